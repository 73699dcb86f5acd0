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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::Condvar;

// Keys are the gateway's own (instance keys, worker ids, export names):
// a fast seeded hash (SipHash was ~1k instructions a call).
use foldhash::HashMap;
use tokio::sync::oneshot;

use crate::model::error::{CallOutcome, HookError};
use crate::model::instance::Instance;
use crate::model::io::HostIo;
use crate::model::request::HookRequest;

mod queue;
pub mod wakes;
mod watchdog;
mod worker;

use queue::{Job, JobQueue, Payload};
use watchdog::watchdog;
use worker::spawn_worker;

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

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: workers finish what is queued and exit.
        self.queue.close();
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
