//! A worker thread: takes jobs, runs them on the instance's runtime (made
//! on first use, kept while used), answers, and counts itself out while its
//! call waits for I/O.

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use foldhash::HashMap;

use super::queue::{Class, Job, JobQueue, NoJob, Waiter};
use super::{Shared, WorkerState};
use crate::model::error::{CallOutcome, HookError};
use crate::model::instance::Instance;
use crate::model::io::HostIo;
use crate::runtime::{nanos, PluginRuntime};

const WORKER_STACK: usize = 8 << 20;
/// How often a runtime in use has its heap measured (`interpose_js_heap_bytes`).
const HEAP_SAMPLE_EVERY: Duration = Duration::from_millis(250);

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
pub(super) fn io_wait(waiting: bool) {
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

/// Worker ids, unique for the life of the process.
static NEXT_WORKER_ID: AtomicUsize = AtomicUsize::new(0);

pub(super) fn spawn_worker(shared: &Arc<Shared>) {
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

pub(super) struct Slot {
    pub(super) instance: Weak<Instance>,
    pub(super) runtime: PluginRuntime,
    /// When the heap was last measured for the metrics.
    pub(super) heap_sampled: Option<Instant>,
    pub(super) last_used: Instant,
    /// The pool's count of live runtimes, decremented on drop.
    pub(super) count: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) fn worker(
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
pub(super) fn sweep(runtimes: &mut HashMap<u64, Slot>, idle: Duration) {
    runtimes.retain(|_, s| s.instance.strong_count() > 0 && s.last_used.elapsed() < idle);
}

pub(super) fn run(
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

pub(super) fn fix_timeout(e: HookError, ms: u64) -> HookError {
    match e {
        HookError::Timeout(_) => HookError::Timeout(ms),
        other => other,
    }
}
