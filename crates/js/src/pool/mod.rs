//! Worker threads that run JS, and the deadline that protects the caller.
//!
//! A job goes to an idle worker directly — the one that last ran its
//! instance when it can, so calls that do not overlap share one runtime and
//! its module state — or, when none is idle, into one shared queue, taken
//! round-robin between instances (a plugin with many queued calls does not
//! make another plugin's call wait behind all of them). Each worker owns
//! the runtimes of the instances it has served (created on first use, reused,
//! dropped when the instance is gone or the runtime failed hard). A caller
//! waits at most until its deadline. A watchdog retires a worker that is still
//! busy well past its job's deadline (QuickJS only checks the interrupt every
//! so often, and never inside one long native call) and starts a replacement,
//! so one stuck plugin never takes the pool's capacity with it.
//!
//! A call waiting for its plugin's outbound I/O (`OPFetch`) or timers holds
//! its worker but uses no CPU: while calls wait, the pool starts extra
//! workers so that `threads` of them stay free for other calls (up to
//! `max_waiting` waiting ones); an extra worker exits after a second without
//! work once it is not needed. One instance has at most `per_instance` calls
//! in the pool at once (the rest wait in its own queue, their deadline
//! running), so a plugin that waits or loops under load cannot take every
//! worker from the others.

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::sync::Condvar;

// Keys are the gateway's own (instance keys, worker ids, export names):
// a fast seeded hash (SipHash was ~1k instructions a call).
use foldhash::HashMap;
use tokio::sync::oneshot;

use crate::model::error::{CallOutcome, HookError};
use crate::model::instance::Instance;
use crate::model::io::HostIo;
use crate::model::request::HookRequest;
use crate::runtime::{nanos, PluginRuntime};

pub mod wakes;

/// How long past its deadline a worker may stay busy before it is replaced.
const STUCK_GRACE: Duration = Duration::from_millis(50);
const WATCHDOG_TICK: Duration = Duration::from_millis(10);
/// How long the watchdog sleeps while no call runs, unless one starts.
const WATCHDOG_IDLE_TICK: Duration = Duration::from_secs(1);
const WORKER_STACK: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Worker threads kept running.
    pub threads: usize,
    /// Upper bound on workers running besides those waiting for I/O,
    /// including workers retired while stuck.
    pub max_threads: usize,
    /// Extra workers for calls that wait (outbound I/O, timers).
    pub max_waiting: usize,
    /// Calls of one instance in the pool (queued or running) at once.
    pub per_instance: usize,
    /// Workers that may run calls a client waits for ([`JsHost::call`]) at
    /// once, besides those waiting for I/O; more of those calls queue.
    pub foreground: usize,
    /// Workers that may run detached calls (suffix and subscribe hooks,
    /// [`JsHost::call_detached`]) at once. Waited-for calls are taken first.
    pub background: usize,
    /// A worker drops a runtime it has not used for this long (its module
    /// state goes with it; the next call loads the plugin afresh). Keeps
    /// memory proportional to the plugins in use, not to those installed.
    pub runtime_idle: Duration,
}

impl HostOptions {
    pub fn new(threads: usize) -> HostOptions {
        let threads = threads.max(1);
        HostOptions {
            threads,
            max_threads: threads * 4 + 4,
            max_waiting: 256,
            per_instance: 64.max(threads),
            foreground: threads,
            background: threads,
            runtime_idle: Duration::from_secs(600),
        }
    }
}

struct Job {
    instance: Arc<Instance>,
    function: String,
    request: Arc<HookRequest>,
    /// JSON arguments instead of the request (lifecycle functions).
    args: Option<Vec<serde_json::Value>>,
    /// `None`: the deadline starts when a worker picks the job up.
    deadline: Option<Instant>,
    timeout_ms: u64,
    reply: oneshot::Sender<Result<CallOutcome, HookError>>,
    /// The instance's share of the pool, given back when the job is done.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// What a call passes to its function.
enum Payload {
    /// The `PluginRequest` (hooks).
    Request(Arc<HookRequest>),
    /// JSON arguments (lifecycle functions).
    Json(Vec<serde_json::Value>),
}

/// What the watchdog knows about a worker.
struct WorkerState {
    /// The worker's id in the queue ([`Waiter::id`]).
    id: usize,
    /// Deadline (as `nanos`) of the job being run; 0 when idle.
    busy_until: AtomicU64,
    retired: AtomicBool,
    /// The instance whose call is running (to blame it when stuck).
    running: Mutex<Weak<Instance>>,
    bell: Arc<Bell>,
}

/// Wakes the watchdog from its idle sleep when a call starts, so an idle
/// gateway is not woken 100 times a second for nothing.
#[derive(Default)]
struct Bell {
    /// Set (SeqCst) while the watchdog sleeps for want of calls.
    idle: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Bell {
    /// After a worker marked itself busy (SeqCst): against the watchdog's
    /// flag-then-check, one of the two sees the other's write.
    fn ring(&self) {
        if self.idle.load(Ordering::SeqCst) {
            let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_one();
        }
    }
}

/// How often a runtime in use has its heap measured (`interpose_js_heap_bytes`).
const HEAP_SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A worker retired while running this instance's call counts against it;
/// after `QUARANTINE_AFTER` such strikes its calls fail fast for
/// `QUARANTINE_FOR`, so one plugin cannot eat every thread.
const QUARANTINE_AFTER: u32 = 3;
const QUARANTINE_FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Strikes {
    count: u32,
    until: Option<Instant>,
    name: String,
}

struct Shared {
    queue: Arc<JobQueue>,
    io: Option<Arc<dyn HostIo>>,
    workers: Mutex<Vec<Arc<WorkerState>>>,
    live: AtomicUsize,
    total: AtomicUsize,
    options: HostOptions,
    stopping: AtomicBool,
    stuck_total: AtomicU64,
    /// By instance key; `quarantined` is the lock-free fast path.
    strikes: Mutex<HashMap<u64, Strikes>>,
    quarantined: AtomicBool,
    /// JS runtimes alive across the workers (one per instance a worker served).
    runtimes: Arc<AtomicUsize>,
    /// Calls waiting for outbound I/O (their workers are not available).
    io_waiting: AtomicUsize,
    bell: Arc<Bell>,
}

thread_local! {
    /// The pool of the worker running on this thread.
    static POOL: std::cell::RefCell<Weak<Shared>> = const { std::cell::RefCell::new(Weak::new()) };
    /// This worker's id and the class of the job it runs now.
    static RUNNING: std::cell::Cell<Option<(usize, Class)>> = const { std::cell::Cell::new(None) };
}

/// A worker's call starts (`true`) or ends (`false`) a blocking wait for
/// its outbound I/O or timers (`engine::event_loop::on_blocking_wait`): while it
/// waits the worker is counted as unavailable, and an extra worker starts
/// if fewer than `threads` are left.
fn io_wait(waiting: bool) {
    let Some(shared) = POOL.with(|p| p.borrow().upgrade()) else { return };
    let running = RUNNING.with(|c| c.get());
    if !waiting {
        if let Some((id, class)) = running {
            shared.queue.waiting(id, class, false);
        }
        shared.io_waiting.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let waiting = shared.io_waiting.fetch_add(1, Ordering::Relaxed) + 1;
    let available = shared.live.load(Ordering::Relaxed).saturating_sub(waiting);
    if available < shared.options.threads
        && shared.total.load(Ordering::Relaxed) < shared.options.max_threads + waiting.min(shared.options.max_waiting)
        && !shared.stopping.load(Ordering::Relaxed)
    {
        spawn_worker(&shared);
    }
    // Meanwhile another call of its class may run in its place.
    if let Some((id, class)) = running {
        shared.queue.waiting(id, class, true);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: workers finish what is queued and exit.
        self.queue.close();
    }
}

/// Emptied per-instance queues kept for reuse before they are dropped.
const KEEP_EMPTY_QUEUES: usize = 256;

/// Jobs waiting for a worker: per [`Class`], one FIFO per instance, served
/// in turn; calls a client waits for before detached ones, each class
/// running on at most its cap of workers at once.
///
/// A job that finds room and a worker idle is handed to one directly: the
/// worker that last ran its instance if that one is idle (or just
/// answering), else the most recently idle. So an instance whose calls do
/// not overlap keeps running on one runtime (its module state carries from
/// call to call, as in a single Node process), and workers idle longest
/// stay idle (their runtimes go after [`HostOptions::runtime_idle`]).
struct JobQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    /// By [`Class`]: the queued jobs, how many run, how many may.
    queued: [Turns; 2],
    running: [usize; 2],
    cap: [usize; 2],
    /// The class of the job each worker runs, by worker id, while it counts
    /// in `running` (not while it waits for I/O, nor once its worker was
    /// retired as stuck).
    counted: HashMap<usize, Class>,
    /// Workers blocked in `pop`, most recently idle last.
    parked: Vec<Arc<Waiter>>,
    /// Jobs handed to a parked worker, by worker id.
    handed: HashMap<usize, Job>,
    /// The worker that last took each instance's job.
    home: HashMap<u64, Arc<Waiter>>,
    closed: bool,
}

/// Calls a client waits for, and detached ones (post hooks); an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Waited = 0,
    Detached = 1,
}

impl Job {
    fn class(&self) -> Class {
        if self.deadline.is_none() {
            Class::Detached
        } else {
            Class::Waited
        }
    }
}

/// Queued jobs of one class: one FIFO per instance, served in turn.
#[derive(Default)]
struct Turns {
    by_instance: HashMap<u64, VecDeque<Job>>,
    /// Instances with queued jobs, in the order they are served.
    turn: VecDeque<u64>,
}

/// A worker as the queue knows it.
struct Waiter {
    id: usize,
    wake: Condvar,
    /// Set between answering a call and coming back for the next job: a
    /// job for an instance whose worker is on its way back waits for it
    /// (a moment) rather than going to another worker's fresh runtime.
    returning: AtomicBool,
}

/// Instances remembered in [`QueueState::home`] before it starts afresh.
const MAX_HOMES: usize = 4096;

/// Why [`JobQueue::pop`] returned no job.
enum NoJob {
    TimedOut,
    Closed,
}

impl JobQueue {
    fn new(foreground: usize, background: usize) -> JobQueue {
        let cap = [foreground.max(1), background.max(1)];
        JobQueue { state: Mutex::new(QueueState { cap, ..QueueState::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, job: Job) -> Result<(), Job> {
        let mut st = self.lock();
        if st.closed {
            return Err(job);
        }
        let key = job.instance.key;
        let class = job.class() as usize;
        let home = st.home.get(&key).cloned();
        // Its instance's worker is on its way back from answering a call:
        // it takes this one next (it ran one of the class's calls already,
        // so none more run at once), unless others queued first.
        if let Some(h) = &home {
            if h.returning.load(Ordering::Acquire) && st.queued[class].is_empty() && !st.handed.contains_key(&h.id) {
                st.running[class] += 1;
                st.handed.insert(h.id, job);
                return Ok(());
            }
        }
        if st.running[class] < st.cap[class] {
            let at_home = home.and_then(|h| st.parked.iter().rposition(|w| w.id == h.id));
            if let Some(i) = at_home.or_else(|| st.parked.len().checked_sub(1)) {
                let waiter = st.parked.remove(i);
                st.running[class] += 1;
                self.hand(st, &waiter, job);
                return Ok(());
            }
        }
        st.queued[class].push(job);
        Ok(())
    }

    /// Give `job` to `waiter`, taken out of `parked`.
    fn hand(&self, mut st: std::sync::MutexGuard<'_, QueueState>, waiter: &Waiter, job: Job) {
        st.handed.insert(waiter.id, job);
        drop(st);
        waiter.wake.notify_one();
    }

    /// The next job for worker `me` (one handed to it, else the next
    /// instance's oldest), waiting at most `timeout`; the job it ran last
    /// no longer counts.
    fn pop(&self, me: &Arc<Waiter>, timeout: Duration) -> Result<Job, NoJob> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        me.returning.store(false, Ordering::Relaxed);
        st.uncount(me.id);
        loop {
            // A handed job was counted when it was handed.
            let job = match st.handed.remove(&me.id) {
                Some(job) => Some(job),
                None => st.next(),
            };
            if let Some(job) = job {
                st.counted.insert(me.id, job.class());
                if st.home.len() >= MAX_HOMES {
                    st.home.clear();
                }
                let home = st.home.entry(job.instance.key).or_insert_with(|| me.clone());
                if home.id != me.id {
                    *home = me.clone();
                }
                return Ok(job);
            }
            if st.closed {
                return Err(NoJob::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(NoJob::TimedOut);
            }
            st.parked.push(me.clone());
            st = me.wake.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
            if let Some(i) = st.parked.iter().rposition(|w| w.id == me.id) {
                st.parked.remove(i);
            }
        }
    }

    /// Worker `id` takes no more jobs, or its job no longer counts (the
    /// worker was retired as stuck): what waited for it goes to another.
    fn leave(&self, id: usize) {
        let mut st = self.lock();
        st.uncount(id);
        let handed = st.handed.remove(&id);
        if let Some(job) = &handed {
            st.running[job.class() as usize] -= 1;
        }
        let wake = st.room_freed();
        drop(st);
        if let Some(w) = wake {
            w.wake.notify_one();
        }
        if let Some(job) = handed {
            // Failing only when the pool is closing: the caller is told
            // the worker ended.
            let _ = self.push(job);
        }
    }

    /// Worker `id`'s call starts (`true`) or stops waiting for I/O: while
    /// it waits it does not count against its class's cap.
    fn waiting(&self, id: usize, class: Class, waits: bool) {
        let mut st = self.lock();
        if waits {
            if st.uncount(id) {
                let wake = st.room_freed();
                drop(st);
                if let Some(w) = wake {
                    w.wake.notify_one();
                }
            }
        } else if !st.counted.contains_key(&id) {
            st.running[class as usize] += 1;
            st.counted.insert(id, class);
        }
    }

    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        for w in st.parked.drain(..) {
            w.wake.notify_one();
        }
    }
}

impl QueueState {
    /// The next job to run: a waited-for call first, else a detached one,
    /// each if its class has room.
    fn next(&mut self) -> Option<Job> {
        for class in [Class::Waited as usize, Class::Detached as usize] {
            if self.running[class] < self.cap[class] {
                if let Some(job) = self.queued[class].next() {
                    self.running[class] += 1;
                    return Some(job);
                }
            }
        }
        None
    }

    /// Worker `id`'s job stops counting; whether it did.
    fn uncount(&mut self, id: usize) -> bool {
        match self.counted.remove(&id) {
            Some(c) => {
                self.running[c as usize] -= 1;
                true
            }
            None => false,
        }
    }

    /// A parked worker to wake, taken out of `parked`, when a queued job
    /// now has room to run.
    fn room_freed(&mut self) -> Option<Arc<Waiter>> {
        let ready = (0..2).any(|c| self.running[c] < self.cap[c] && !self.queued[c].is_empty());
        if ready {
            self.parked.pop()
        } else {
            None
        }
    }
}

impl Turns {
    fn is_empty(&self) -> bool {
        self.turn.is_empty()
    }

    fn push(&mut self, job: Job) {
        let key = job.instance.key;
        let queue = self.by_instance.entry(key).or_default();
        let was_empty = queue.is_empty();
        queue.push_back(job);
        if was_empty {
            self.turn.push_back(key);
        }
    }

    /// The next instance's oldest queued job.
    fn next(&mut self) -> Option<Job> {
        while let Some(key) = self.turn.pop_front() {
            let Some(queue) = self.by_instance.get_mut(&key) else { continue };
            let Some(job) = queue.pop_front() else { continue };
            if !queue.is_empty() {
                self.turn.push_back(key);
            } else if self.by_instance.len() > KEEP_EMPTY_QUEUES {
                // Empty queues are kept for reuse (no allocation per
                // call), up to a bound: instances come and go.
                self.by_instance.retain(|_, q| !q.is_empty());
            }
            return Some(job);
        }
        None
    }
}

/// The pool of JS worker threads. Cheap to clone.
#[derive(Clone)]
pub struct JsHost {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for JsHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsHost").field("live", &self.shared.live.load(Ordering::Relaxed)).finish()
    }
}

impl JsHost {
    /// Start the workers; `io` performs plugins' outbound calls.
    pub fn new(options: HostOptions, io: Option<Arc<dyn HostIo>>) -> JsHost {
        let shared = Arc::new(Shared {
            queue: Arc::new(JobQueue::new(options.foreground, options.background)),
            io,
            workers: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            options,
            stopping: AtomicBool::new(false),
            stuck_total: AtomicU64::new(0),
            strikes: Mutex::new(HashMap::default()),
            quarantined: AtomicBool::new(false),
            runtimes: Arc::new(AtomicUsize::new(0)),
            io_waiting: AtomicUsize::new(0),
            bell: Arc::new(Bell::default()),
        });
        for _ in 0..shared.options.threads {
            spawn_worker(&shared);
        }
        let (weak, bell) = (Arc::downgrade(&shared), shared.bell.clone());
        let _ = thread::Builder::new().name("js-watchdog".into()).spawn(move || watchdog(weak, bell));
        JsHost { shared }
    }

    /// Run `function(request)` of `instance`; answers by `timeout` whatever the
    /// engine does. Time waiting for a worker counts: a client is waiting.
    pub async fn call(
        &self,
        instance: &Arc<Instance>,
        function: &str,
        request: Arc<HookRequest>,
        timeout: Duration,
    ) -> Result<CallOutcome, HookError> {
        self.send_waited(instance, function, Payload::Request(request), timeout).await
    }

    /// Run `function(...args)` of `instance` with JSON arguments (lifecycle
    /// functions), on the workers that run its hooks: what it leaves in
    /// module state is there for the hooks that run after it on that
    /// worker. `NotExported` when the module has no such function.
    pub async fn call_json(
        &self,
        instance: &Arc<Instance>,
        function: &str,
        args: Vec<serde_json::Value>,
        timeout: Duration,
    ) -> Result<CallOutcome, HookError> {
        self.send_waited(instance, function, Payload::Json(args), timeout).await
    }

    /// A call someone waits for: its deadline runs from now.
    async fn send_waited(
        &self,
        instance: &Arc<Instance>,
        function: &str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<CallOutcome, HookError> {
        let deadline = Instant::now() + timeout;
        // A little slack lets the engine report its own timeout (with the
        // runtime recycled) when it can; the caller is answered either way.
        let until = deadline + Duration::from_millis(2);
        self.send(instance, function, payload, timeout, Some(deadline), until).await
    }

    /// Like [`JsHost::call`], but `timeout` starts when a worker takes the
    /// call (post hooks: nobody waits for them, queueing is not their fault).
    pub async fn call_detached(
        &self,
        instance: &Arc<Instance>,
        function: &str,
        request: Arc<HookRequest>,
        timeout: Duration,
    ) -> Result<CallOutcome, HookError> {
        // Bounded anyway, in case every worker is stuck.
        let give_up = Instant::now() + timeout + Duration::from_secs(60);
        self.send(instance, function, Payload::Request(request), timeout, None, give_up).await
    }

    async fn send(
        &self,
        instance: &Arc<Instance>,
        function: &str,
        payload: Payload,
        timeout: Duration,
        deadline: Option<Instant>,
        wait_until: Instant,
    ) -> Result<CallOutcome, HookError> {
        // A lifecycle function tried by name: not exporting it is no failure.
        let probing = matches!(payload, Payload::Json(_));
        let (request, args) = match payload {
            Payload::Request(r) => (r, None),
            Payload::Json(args) => (Arc::new(HookRequest::default()), Some(args)),
        };
        // The request itself goes to the worker; this handle names it in the log.
        let held = request.clone();
        let result = async {
            let timeout_ms = timeout.as_millis() as u64;
            if self.shared.quarantined.load(Ordering::Relaxed) {
                if let Some(until) = self.quarantined_until(instance.key) {
                    return Err(HookError::Unavailable(format!(
                        "plugin {} is quarantined for {} s more: its calls kept getting stuck past their deadline",
                        instance.name,
                        until.saturating_duration_since(Instant::now()).as_secs() + 1
                    )));
                }
            }
            // The instance's share of the pool; waiting for it is waiting
            // for a worker, within the deadline.
            let slots = instance.pool_slots(self.shared.options.per_instance);
            let slot = match tokio::time::timeout_at(tokio::time::Instant::from_std(wait_until), slots.acquire_owned())
                .await
            {
                Ok(Ok(slot)) => slot,
                Ok(Err(_)) => return Err(HookError::Unavailable("the JS host has stopped".into())),
                Err(_) => return Err(HookError::Timeout(timeout_ms)),
            };
            let (reply, rx) = oneshot::channel();
            let job = Job {
                instance: instance.clone(),
                function: function.to_string(),
                request,
                args,
                deadline,
                timeout_ms,
                reply,
                _slot: slot,
            };
            if self.shared.queue.push(job).is_err() {
                return Err(HookError::Unavailable("the JS host has stopped".into()));
            }
            let reply = wakes::batched(rx);
            match tokio::time::timeout_at(tokio::time::Instant::from_std(wait_until), reply).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(HookError::Unavailable("the JS worker ended during the call".into())),
                Err(_) => Err(HookError::Timeout(timeout_ms)),
            }
        }
        .await;
        if let Some(e) = result.as_ref().err().filter(|e| !(probing && matches!(e, HookError::NotExported(_)))) {
            // The plugin's own log (`interpose plugin logs`) says why its
            // call failed, next to what its Logger wrote.
            instance.record_failure(function, e, held.request_id.clone());
        }
        result
    }

    fn quarantined_until(&self, key: u64) -> Option<Instant> {
        let mut strikes = self.shared.strikes.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let until = strikes.get(&key).and_then(|s| s.until).filter(|u| *u > now);
        if until.is_none() {
            if let Some(s) = strikes.get_mut(&key).filter(|s| s.until.is_some()) {
                // Served its time: a clean slate.
                s.until = None;
                s.count = 0;
            }
            let any = strikes.values().any(|s| s.until.is_some_and(|u| u > now));
            self.shared.quarantined.store(any, Ordering::Relaxed);
        }
        until
    }

    /// Plugins whose calls fail fast now (name, seconds left).
    pub fn quarantined(&self) -> Vec<(String, u64)> {
        let strikes = self.shared.strikes.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        strikes
            .values()
            .filter_map(|s| s.until.filter(|u| *u > now).map(|u| (s.name.clone(), u.duration_since(now).as_secs() + 1)))
            .collect()
    }

    /// Workers retired so far because a call overran its deadline.
    pub fn stuck_workers(&self) -> u64 {
        self.shared.stuck_total.load(Ordering::Relaxed)
    }

    /// JS runtimes alive across the workers. A runtime goes within about a
    /// second of its instance (uninstall, upgrade) on an idle worker, and
    /// every 1,024 calls on a busy one.
    pub fn runtimes(&self) -> usize {
        self.shared.runtimes.load(Ordering::Relaxed)
    }

    /// Workers accepting jobs now.
    pub fn live_workers(&self) -> usize {
        self.shared.live.load(Ordering::Relaxed)
    }

    /// Stop accepting work; workers exit once idle.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
    }
}

impl Shared {
    /// Take one worker out of `live` if more are running than the target
    /// plus those waiting for I/O.
    fn claim_exit(&self) -> bool {
        let needed = self.options.threads + self.io_waiting.load(Ordering::Relaxed);
        self.live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| (l > needed).then(|| l - 1)).is_ok()
    }
}

/// Worker ids, unique for the life of the process.
static NEXT_WORKER_ID: AtomicUsize = AtomicUsize::new(0);

fn spawn_worker(shared: &Arc<Shared>) {
    let id = NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed);
    let state = Arc::new(WorkerState {
        id,
        busy_until: AtomicU64::new(0),
        retired: AtomicBool::new(false),
        running: Mutex::new(Weak::new()),
        bell: shared.bell.clone(),
    });
    shared.workers.lock().unwrap_or_else(|e| e.into_inner()).push(state.clone());
    shared.live.fetch_add(1, Ordering::Relaxed);
    let n = shared.total.fetch_add(1, Ordering::Relaxed);
    let queue = shared.queue.clone();
    let io = shared.io.clone();
    let count = shared.runtimes.clone();
    let weak = Arc::downgrade(shared);
    let me = Arc::new(Waiter { id, wake: Condvar::new(), returning: AtomicBool::new(false) });
    let spawned = thread::Builder::new()
        .name(format!("js-worker-{n}"))
        .stack_size(WORKER_STACK)
        .spawn(move || worker(queue, me, state, weak, io, count));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start a JS worker thread");
        shared.live.fetch_sub(1, Ordering::Relaxed);
        shared.total.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Slot {
    instance: Weak<Instance>,
    runtime: PluginRuntime,
    /// When the heap was last measured for the metrics.
    heap_sampled: Option<Instant>,
    last_used: Instant,
    /// The pool's count of live runtimes, decremented on drop.
    count: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

fn worker(
    queue: Arc<JobQueue>,
    me: Arc<Waiter>,
    state: Arc<WorkerState>,
    shared: Weak<Shared>,
    io: Option<Arc<dyn HostIo>>,
    count: Arc<AtomicUsize>,
) {
    POOL.with(|p| *p.borrow_mut() = shared.clone());
    crate::engine::event_loop::on_blocking_wait(io_wait);
    // Set when this worker already took itself out of `live`.
    let mut counted_out = false;
    let mut runtimes: HashMap<u64, Slot> = HashMap::default();
    let mut since_sweep = 0u32;
    let idle = shared.upgrade().map_or(Duration::MAX, |s| s.options.runtime_idle);
    loop {
        if state.retired.load(Ordering::Relaxed) {
            break;
        }
        let job = match queue.pop(&me, Duration::from_secs(1)) {
            Ok(job) => job,
            Err(NoJob::TimedOut) => {
                sweep(&mut runtimes, idle);
                match shared.upgrade() {
                    // More workers than needed now that I/O waits are over:
                    // one leaves (the claim keeps two from leaving for one).
                    Some(s) if s.claim_exit() => {
                        counted_out = true;
                        break;
                    }
                    Some(s) if !s.stopping.load(Ordering::Relaxed) => continue,
                    _ => break,
                }
            }
            Err(NoJob::Closed) => break,
        };
        since_sweep += 1;
        if since_sweep >= 1024 {
            since_sweep = 0;
            sweep(&mut runtimes, idle);
        }
        let deadline = job.deadline.unwrap_or_else(|| Instant::now() + Duration::from_millis(job.timeout_ms));
        if job.reply.is_closed() || Instant::now() >= deadline {
            // The caller gave up (or the deadline passed in the queue).
            me.returning.store(true, Ordering::Release);
            let _ = job.reply.send(Err(HookError::Timeout(job.timeout_ms)));
            continue;
        }
        *state.running.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&job.instance);
        state.busy_until.store(nanos(deadline), Ordering::SeqCst);
        state.bell.ring();
        RUNNING.with(|c| c.set(Some((me.id, job.class()))));
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&mut runtimes, &job, deadline, io.clone(), &count)
        })) {
            Ok(r) => r,
            Err(_) => {
                // Never expected; keep the worker and drop the runtime it was in.
                runtimes.remove(&job.instance.key);
                Err(HookError::Unavailable("internal error in the JS host (see the gateway log)".into()))
            }
        };
        state.busy_until.store(0, Ordering::Relaxed);
        RUNNING.with(|c| c.set(None));
        // Before the answer: a caller that answers with its next call finds
        // this worker on its way back to take it.
        me.returning.store(true, Ordering::Release);
        let _ = job.reply.send(result);
    }
    queue.leave(me.id);
    // Runtimes drop here, on their own thread.
    drop(runtimes);
    if !state.retired.load(Ordering::Relaxed) && !counted_out {
        if let Some(s) = shared.upgrade() {
            s.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if let Some(s) = shared.upgrade() {
        s.total.fetch_sub(1, Ordering::Relaxed);
        s.workers.lock().unwrap_or_else(|e| e.into_inner()).retain(|w| !Arc::ptr_eq(w, &state));
    }
}

/// Drop the runtimes whose instance is gone or that sat unused for `idle`.
fn sweep(runtimes: &mut HashMap<u64, Slot>, idle: Duration) {
    runtimes.retain(|_, s| s.instance.strong_count() > 0 && s.last_used.elapsed() < idle);
}

fn run(
    runtimes: &mut HashMap<u64, Slot>,
    job: &Job,
    deadline: Instant,
    io: Option<Arc<dyn HostIo>>,
    count: &Arc<AtomicUsize>,
) -> Result<CallOutcome, HookError> {
    let key = job.instance.key;
    let slot = match runtimes.entry(key) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => {
            let runtime = PluginRuntime::new(job.instance.clone(), deadline, io.clone())
                .map_err(|e| fix_timeout(e, job.timeout_ms))?;
            count.fetch_add(1, Ordering::Relaxed);
            e.insert(Slot {
                instance: Arc::downgrade(&job.instance),
                runtime,
                heap_sampled: None,
                last_used: Instant::now(),
                count: count.clone(),
            })
        }
    };
    let result = match &job.args {
        Some(args) => slot.runtime.call_json(&job.function, args, deadline, io),
        None => slot.runtime.call(&job.function, &job.request, deadline, io),
    }
    .map_err(|e| fix_timeout(e, job.timeout_ms));
    // Sampled: measuring the heap walks it.
    let now = Instant::now();
    if slot.heap_sampled.is_none_or(|t| now.duration_since(t) >= HEAP_SAMPLE_EVERY) {
        job.instance.record_heap(slot.runtime.memory_used());
        slot.heap_sampled = Some(now);
    }
    slot.last_used = now;
    if let Err(e) = &result {
        if e.poisons_runtime() {
            // A runtime that was interrupted or ran out of memory may hold
            // half-updated module state: start the next call fresh.
            runtimes.remove(&key);
        } else if slot.runtime.memory_used() > ((job.instance.limits.memory_mb as i64) << 20) / 8 * 7 {
            runtimes.remove(&key);
        }
    }
    result
}

fn fix_timeout(e: HookError, ms: u64) -> HookError {
    match e {
        HookError::Timeout(_) => HookError::Timeout(ms),
        other => other,
    }
}

/// Nothing to watch: no call running and every worker there.
fn at_rest(shared: &Weak<Shared>) -> bool {
    let Some(shared) = shared.upgrade() else { return false };
    let workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
    shared.live.load(Ordering::Relaxed) >= shared.options.threads
        && workers.iter().all(|w| w.busy_until.load(Ordering::SeqCst) == 0)
}

fn watchdog(shared: Weak<Shared>, bell: Arc<Bell>) {
    loop {
        if at_rest(&shared) {
            let held = bell.lock.lock().unwrap_or_else(|e| e.into_inner());
            bell.idle.store(true, Ordering::SeqCst);
            if at_rest(&shared) {
                drop(bell.wake.wait_timeout(held, WATCHDOG_IDLE_TICK));
            }
            bell.idle.store(false, Ordering::SeqCst);
        } else {
            thread::sleep(WATCHDOG_TICK);
        }
        let Some(shared) = shared.upgrade() else { return };
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let now = nanos(Instant::now());
        let grace = STUCK_GRACE.as_nanos() as u64;
        let stuck: Vec<Arc<WorkerState>> = shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|w| {
                let busy = w.busy_until.load(Ordering::Relaxed);
                busy != 0 && now > busy.saturating_add(grace) && !w.retired.load(Ordering::Relaxed)
            })
            .cloned()
            .collect();
        for w in stuck {
            w.retired.store(true, Ordering::Relaxed);
            // Its call no longer takes room from the calls of its class.
            shared.queue.leave(w.id);
            shared.live.fetch_sub(1, Ordering::Relaxed);
            shared.stuck_total.fetch_add(1, Ordering::Relaxed);
            let running = w.running.lock().unwrap_or_else(|e| e.into_inner()).upgrade();
            if let Some(instance) = running {
                let (key, name) = (instance.key, instance.name.clone());
                let mut strikes = shared.strikes.lock().unwrap_or_else(|e| e.into_inner());
                let s = strikes.entry(key).or_default();
                s.count += 1;
                s.name = name.clone();
                if s.count >= QUARANTINE_AFTER && s.until.is_none() {
                    s.until = Some(Instant::now() + QUARANTINE_FOR);
                    shared.quarantined.store(true, Ordering::Relaxed);
                    tracing::error!(plugin = %name, "plugin quarantined for {} s: {} calls stuck past their deadline", QUARANTINE_FOR.as_secs(), s.count);
                }
            }
            tracing::warn!("a JS worker is stuck past its deadline; retiring it and starting a replacement");
            let waiting = shared.io_waiting.load(Ordering::Relaxed).min(shared.options.max_waiting);
            if shared.total.load(Ordering::Relaxed) < shared.options.max_threads + waiting {
                spawn_worker(&shared);
            } else {
                tracing::error!(
                    max = shared.options.max_threads,
                    "JS worker limit reached; calls wait for stuck workers"
                );
            }
        }
        // Keep the target when a worker exited for another reason.
        while shared.live.load(Ordering::Relaxed) < shared.options.threads
            && shared.total.load(Ordering::Relaxed) < shared.options.max_threads
        {
            spawn_worker(&shared);
        }
    }
}
