//! The jobs waiting for a worker, and how a worker gets its next one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use foldhash::HashMap;
use tokio::sync::oneshot;

use crate::model::error::{CallOutcome, HookError};
use crate::model::instance::Instance;
use crate::model::request::HookRequest;

pub(super) struct Job {
    pub(super) instance: Arc<Instance>,
    pub(super) function: String,
    pub(super) request: Arc<HookRequest>,
    /// JSON arguments instead of the request (lifecycle functions).
    pub(super) args: Option<Vec<serde_json::Value>>,
    /// `None`: the deadline starts when a worker picks the job up.
    pub(super) deadline: Option<Instant>,
    pub(super) timeout_ms: u64,
    pub(super) reply: oneshot::Sender<Result<CallOutcome, HookError>>,
    /// The instance's share of the pool, given back when the job is done.
    pub(super) _slot: tokio::sync::OwnedSemaphorePermit,
}

/// What a call passes to its function.
pub(super) enum Payload {
    /// The `PluginRequest` (hooks).
    Request(Arc<HookRequest>),
    /// JSON arguments (lifecycle functions).
    Json(Vec<serde_json::Value>),
}

/// Emptied per-instance queues kept for reuse before they are dropped.
pub(super) const KEEP_EMPTY_QUEUES: usize = 256;

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
pub(super) struct JobQueue {
    pub(super) state: Mutex<QueueState>,
}

#[derive(Default)]
pub(super) struct QueueState {
    /// By [`Class`]: the queued jobs, how many run, how many may.
    pub(super) queued: [Turns; 2],
    pub(super) running: [usize; 2],
    pub(super) cap: [usize; 2],
    /// The class of the job each worker runs, by worker id, while it counts
    /// in `running` (not while it waits for I/O, nor once its worker was
    /// retired as stuck).
    pub(super) counted: HashMap<usize, Class>,
    /// Workers blocked in `pop`, most recently idle last.
    pub(super) parked: Vec<Arc<Waiter>>,
    /// Jobs handed to a parked worker, by worker id.
    pub(super) handed: HashMap<usize, Job>,
    /// The worker that last took each instance's job.
    pub(super) home: HashMap<u64, Arc<Waiter>>,
    pub(super) closed: bool,
}

/// Calls a client waits for, and detached ones (post hooks); an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Waited = 0,
    Detached = 1,
}

impl Job {
    pub(super) fn class(&self) -> Class {
        if self.deadline.is_none() {
            Class::Detached
        } else {
            Class::Waited
        }
    }
}

/// Queued jobs of one class: one FIFO per instance, served in turn.
#[derive(Default)]
pub(super) struct Turns {
    pub(super) by_instance: HashMap<u64, VecDeque<Job>>,
    /// Instances with queued jobs, in the order they are served.
    pub(super) turn: VecDeque<u64>,
}

/// A worker as the queue knows it.
pub(super) struct Waiter {
    pub(super) id: usize,
    pub(super) wake: Condvar,
    /// Set between answering a call and coming back for the next job: a
    /// job for an instance whose worker is on its way back waits for it
    /// (a moment) rather than going to another worker's fresh runtime.
    pub(super) returning: AtomicBool,
}

/// Instances remembered in [`QueueState::home`] before it starts afresh.
pub(super) const MAX_HOMES: usize = 4096;

/// Why [`JobQueue::pop`] returned no job.
pub(super) enum NoJob {
    TimedOut,
    Closed,
}

impl JobQueue {
    pub(super) fn new(foreground: usize, background: usize) -> JobQueue {
        let cap = [foreground.max(1), background.max(1)];
        JobQueue { state: Mutex::new(QueueState { cap, ..QueueState::default() }) }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn push(&self, job: Job) -> Result<(), Job> {
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
    pub(super) fn hand(&self, mut st: std::sync::MutexGuard<'_, QueueState>, waiter: &Waiter, job: Job) {
        st.handed.insert(waiter.id, job);
        drop(st);
        waiter.wake.notify_one();
    }

    /// The next job for worker `me` (one handed to it, else the next
    /// instance's oldest), waiting at most `timeout`; the job it ran last
    /// no longer counts.
    pub(super) fn pop(&self, me: &Arc<Waiter>, timeout: Duration) -> Result<Job, NoJob> {
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
    pub(super) fn leave(&self, id: usize) {
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
    pub(super) fn waiting(&self, id: usize, class: Class, waits: bool) {
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

    pub(super) fn close(&self) {
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
    pub(super) fn next(&mut self) -> Option<Job> {
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
    pub(super) fn uncount(&mut self, id: usize) -> bool {
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
    pub(super) fn room_freed(&mut self) -> Option<Arc<Waiter>> {
        let ready = (0..2).any(|c| self.running[c] < self.cap[c] && !self.queued[c].is_empty());
        if ready {
            self.parked.pop()
        } else {
            None
        }
    }
}

impl Turns {
    pub(super) fn is_empty(&self) -> bool {
        self.turn.is_empty()
    }

    pub(super) fn push(&mut self, job: Job) {
        let key = job.instance.key;
        let queue = self.by_instance.entry(key).or_default();
        let was_empty = queue.is_empty();
        queue.push_back(job);
        if was_empty {
            self.turn.push_back(key);
        }
    }

    /// The next instance's oldest queued job.
    pub(super) fn next(&mut self) -> Option<Job> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::code::project::PluginCode;
    use crate::model::instance::InstanceLimits;

    fn instance(id: &str) -> Arc<Instance> {
        let code = Arc::new(PluginCode::from_source("index.js", "export function f() {}").unwrap());
        Instance::new(id, id, code, InstanceLimits::default(), None)
    }

    /// A job labelled `label` (its function name); `waited`: a client waits for it.
    fn job(instance: &Arc<Instance>, label: &str, waited: bool) -> Job {
        let (reply, _) = oneshot::channel();
        Job {
            instance: instance.clone(),
            function: label.into(),
            request: Arc::new(HookRequest::default()),
            args: None,
            deadline: waited.then(|| Instant::now() + Duration::from_secs(5)),
            timeout_ms: 5000,
            reply,
            _slot: Arc::new(tokio::sync::Semaphore::new(1)).try_acquire_owned().unwrap(),
        }
    }

    fn worker(id: usize) -> Arc<Waiter> {
        Arc::new(Waiter { id, wake: Condvar::new(), returning: AtomicBool::new(false) })
    }

    fn next(q: &JobQueue, w: &Arc<Waiter>) -> Option<String> {
        q.pop(w, Duration::from_millis(20)).ok().map(|j| j.function)
    }

    #[test]
    fn instances_take_turns_and_each_runs_its_jobs_in_order() {
        let q = JobQueue::new(1, 1);
        let (a, b) = (instance("a"), instance("b"));
        for j in [job(&a, "a1", true), job(&a, "a2", true), job(&a, "a3", true), job(&b, "b1", true)] {
            assert!(q.push(j).is_ok());
        }
        let w = worker(1);
        let order: Vec<_> = std::iter::from_fn(|| next(&q, &w)).collect();
        assert_eq!(order, ["a1", "b1", "a2", "a3"]);
    }

    #[test]
    fn waited_for_calls_go_before_detached_ones() {
        let q = JobQueue::new(1, 1);
        let a = instance("a");
        assert!(q.push(job(&a, "detached", false)).is_ok());
        assert!(q.push(job(&a, "waited", true)).is_ok());
        let w = worker(1);
        assert_eq!(next(&q, &w).as_deref(), Some("waited"));
        assert_eq!(next(&q, &w).as_deref(), Some("detached"));
    }

    #[test]
    fn a_class_runs_on_at_most_its_cap_of_workers() {
        let q = JobQueue::new(1, 1);
        let a = instance("a");
        assert!(q.push(job(&a, "w1", true)).is_ok());
        assert!(q.push(job(&a, "w2", true)).is_ok());
        assert!(q.push(job(&a, "d1", false)).is_ok());
        let (one, two) = (worker(1), worker(2));
        assert_eq!(next(&q, &one).as_deref(), Some("w1"));
        // w1 still runs on worker 1: worker 2 may take only the other class.
        assert_eq!(next(&q, &two).as_deref(), Some("d1"));
        assert!(matches!(q.pop(&two, Duration::from_millis(20)), Err(NoJob::TimedOut)));
        // Worker 1 is done with w1 when it comes back: w2's turn.
        assert_eq!(next(&q, &one).as_deref(), Some("w2"));
    }

    #[test]
    fn a_parked_worker_is_handed_a_job_and_a_closed_queue_refuses() {
        let q = Arc::new(JobQueue::new(1, 1));
        let w = worker(1);
        let (q2, w2) = (q.clone(), w.clone());
        let waiting = std::thread::spawn(move || q2.pop(&w2, Duration::from_secs(5)).ok().map(|j| j.function));
        while q.lock().parked.is_empty() {
            std::thread::yield_now();
        }
        assert!(q.push(job(&instance("a"), "handed", true)).is_ok());
        assert_eq!(waiting.join().unwrap().as_deref(), Some("handed"));
        q.close();
        assert!(q.push(job(&instance("a"), "late", true)).is_err());
        assert!(matches!(q.pop(&w, Duration::from_secs(5)), Err(NoJob::Closed)));
    }
}
