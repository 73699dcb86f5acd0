//! The watchdog: retires a worker still busy well past its job's deadline
//! (QuickJS checks its interrupt only now and then, never inside one long
//! native call) and starts a replacement, so a stuck plugin never takes the
//! pool's capacity with it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::worker::spawn_worker;
use super::{Bell, Shared, WorkerState, QUARANTINE_AFTER, QUARANTINE_FOR};
use crate::runtime::nanos;

/// How long past its deadline a worker may stay busy before it is replaced.
pub(super) const STUCK_GRACE: Duration = Duration::from_millis(50);
pub(super) const WATCHDOG_TICK: Duration = Duration::from_millis(10);
/// How long the watchdog sleeps while no call runs, unless one starts.
pub(super) const WATCHDOG_IDLE_TICK: Duration = Duration::from_secs(1);

/// Nothing to watch: no call running and every worker there.
pub(super) fn at_rest(shared: &Weak<Shared>) -> bool {
    let Some(shared) = shared.upgrade() else { return false };
    let workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
    shared.live.load(Ordering::Relaxed) >= shared.options.threads
        && workers.iter().all(|w| w.busy_until.load(Ordering::SeqCst) == 0)
}

pub(super) fn watchdog(shared: Weak<Shared>, bell: Arc<Bell>) {
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
