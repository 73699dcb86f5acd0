//! Replies from JS workers to a busy serving thread, handed over in batches.
//!
//! A worker's reply wakes the task waiting for it. Waking a task of a
//! single-threaded tokio runtime from another thread writes the runtime's
//! eventfd every time, a system call on the worker and often a wake-up of
//! the serving thread's `epoll_wait` besides — about half the hooked
//! requests paid one under load. A serving thread that installs a
//! [`WakeBatch`] is instead handed the wake-ups in a list that it empties
//! itself, with plain local wake-ups: whenever one of its connection tasks
//! is polled ([`flush_here`]) and before it parks. A reply that arrives
//! while the thread is parked (or about to park) wakes it at once, as
//! before, so no reply waits for the next request.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

/// The wake-ups deferred to one serving thread.
#[derive(Default)]
struct Inner {
    /// Set (SeqCst) before the thread parks, cleared when it wakes.
    parked: AtomicBool,
    /// Set when `pending` holds something, so that a flush finds out
    /// without the lock that there is nothing to do.
    any: AtomicBool,
    pending: Mutex<Vec<Waker>>,
}

impl Inner {
    fn flush(&self) {
        let wakers = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            self.any.store(false, Ordering::Relaxed);
            std::mem::take(&mut *pending)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// From a worker: queue the wake-up; wake the thread now if it parked.
    /// Against the park hook of [`WakeBatch::attach`] (flag, then the list) this side goes
    /// list, then flag, so one of the two always sees the other's write.
    fn defer(&self, waker: Waker) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.push(waker);
            self.any.store(true, Ordering::Relaxed);
        }
        if self.parked.load(Ordering::SeqCst) {
            self.flush();
        }
    }
}

thread_local! {
    static HERE: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
}

/// The batch of one serving thread: [`WakeBatch::install`] it on the thread
/// and [`WakeBatch::attach`] it to the thread's runtime.
#[derive(Clone, Default)]
pub struct WakeBatch(Arc<Inner>);

impl WakeBatch {
    pub fn new() -> WakeBatch {
        WakeBatch::default()
    }

    /// Replies awaited on the calling thread go through this batch.
    pub fn install(&self) {
        HERE.with(|h| *h.borrow_mut() = Some(self.0.clone()));
    }

    /// Have the runtime `builder` makes tell the batch when its thread
    /// parks (the pending wake-ups are taken first, and later ones wake the
    /// thread at once) and when it wakes.
    pub fn attach<'b>(&self, builder: &'b mut tokio::runtime::Builder) -> &'b mut tokio::runtime::Builder {
        let (park, unpark) = (self.0.clone(), self.0.clone());
        builder
            .on_thread_park(move || {
                park.parked.store(true, Ordering::SeqCst);
                park.flush();
            })
            .on_thread_unpark(move || unpark.parked.store(false, Ordering::SeqCst))
    }
}

/// Wake the tasks whose replies arrived, if the calling thread has a batch.
/// Cheap when there are none (a thread-local and an atomic load).
pub fn flush_here() {
    HERE.with(|h| {
        if let Some(inner) = h.borrow().as_ref() {
            if inner.any.load(Ordering::Relaxed) {
                inner.flush();
            }
        }
    });
}

/// `fut` with a task that a batch on this thread wakes.
struct Deferred {
    real: Waker,
    batch: Arc<Inner>,
}

impl Wake for Deferred {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.batch.defer(self.real.clone());
    }
}

/// Await `fut` (a reply from another thread): on a thread with a batch its
/// wake-up goes through the batch, elsewhere it is unchanged.
pub(crate) async fn batched<F: Future>(fut: F) -> F::Output {
    let Some(batch) = HERE.with(|h| h.borrow().clone()) else { return fut.await };
    let mut fut = pin!(fut);
    let mut waker: Option<(Waker, Waker)> = None;
    std::future::poll_fn(move |cx| {
        let deferred = match &waker {
            Some((real, deferred)) if real.will_wake(cx.waker()) => deferred.clone(),
            _ => {
                let real = cx.waker().clone();
                let deferred = Waker::from(Arc::new(Deferred { real: real.clone(), batch: batch.clone() }));
                waker = Some((real, deferred.clone()));
                deferred
            }
        };
        fut.as_mut().poll(&mut Context::from_waker(&deferred))
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn serving_runtime(batch: &WakeBatch) -> tokio::runtime::Runtime {
        batch.install();
        batch.attach(tokio::runtime::Builder::new_current_thread().enable_all()).build().expect("runtime")
    }

    #[test]
    fn a_reply_to_an_idle_thread_wakes_it() {
        let batch = WakeBatch::new();
        let rt = serving_runtime(&batch);
        for _ in 0..200 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(200));
                tx.send(7).unwrap();
            });
            // Were the reply's wake-up lost, only the timer (or its
            // driver's early wake-up) would wake the thread, 2 s later.
            let t0 = std::time::Instant::now();
            let got = rt.block_on(async {
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(Duration::from_secs(2)) => None,
                    got = batched(rx) => Some(got),
                }
            });
            assert_eq!(got.expect("woken by the reply").unwrap(), 7);
            assert!(t0.elapsed() < Duration::from_secs(1), "woken after {:?}", t0.elapsed());
        }
    }

    #[test]
    fn a_reply_to_a_busy_thread_is_taken_at_its_next_flush() {
        let batch = WakeBatch::new();
        let rt = serving_runtime(&batch);
        rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let waiting = tokio::spawn(batched(rx));
            tokio::task::yield_now().await;
            // The thread stays busy (never parks) while the reply comes.
            std::thread::spawn(move || tx.send(7).unwrap()).join().unwrap();
            assert!(batch.0.any.load(Ordering::Relaxed), "deferred, not woken");
            flush_here();
            assert_eq!(waiting.await.unwrap().unwrap(), 7);
        });
    }

    #[test]
    fn without_a_batch_nothing_changes() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(rt.block_on(batched(rx)).unwrap(), 7);
    }
}
