//! With a store: events are written to it before the response's last byte
//! goes out, then claimed (with a lease), delivered at least once in order
//! per instance, retried with backoff, and dead-lettered when they keep
//! failing or when no node should ever deliver them. Several nodes sharing
//! a PostgreSQL store claim from one queue.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interpose_js::{HookRequest, JsHost};
use interpose_manifest::HookKind;
use interpose_registry::{EventRow, NewEvent, Store};
use tokio::sync::{mpsc, oneshot};

use super::PostQueue;
use crate::hookcall::{span_of_hook, traced};
use crate::metrics::HookStats;

/// Finds a stored event's hook in the live route table: (instance, function,
/// type) → the JS instance, the call's timeout, its route and the hook's
/// counters, or why there is none.
pub type HookLookup = dyn Fn(&str, &str, HookKind) -> Result<LookedUp, Missing> + Send + Sync;

/// Why this node's route table has no hook for a stored event.
#[derive(Debug)]
pub enum Missing {
    /// This node does not run the instance (enabled).
    Instance,
    /// It runs the instance, whose code (at this version) has no such hook.
    Hook { plugin: String, version: String },
}

/// An enabled hook a stored event is for: its instance, timeout, route
/// (the pattern, for its span) and counters.
pub struct LookedUp {
    pub js: Arc<interpose_js::Instance>,
    pub timeout_ms: u64,
    pub route: interpose_manifest::UrlPattern,
    pub stats: Arc<HookStats>,
}

/// One response's events for the store writer: the rows, the stats of
/// their hooks (to count a drop), and the acknowledgement it waits for.
type StoreWrite = (Vec<NewEvent>, Vec<Arc<HookStats>>, oneshot::Sender<()>);

/// The store-backed path.
pub(super) struct Durable {
    pub(super) writer: mpsc::Sender<StoreWrite>,
    pub(super) store: Store,
    pub(super) delivered: Arc<AtomicU64>,
    pub(super) retried: Arc<AtomicU64>,
    /// Ids of the events being delivered now.
    in_flight: Arc<Mutex<HashSet<i64>>>,
    /// Set by [`PostQueue::drain`]: claim nothing more.
    stopping: Arc<AtomicBool>,
    /// Set by the dispatcher once it claims no more.
    stopped: Arc<AtomicBool>,
    /// Wakes the dispatcher (an event stored, a delivery done, a stop).
    notify: Arc<tokio::sync::Notify>,
}

/// What [`PostQueue::drain`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Deliveries still running at the deadline, given back to the queue.
    pub given_back: usize,
    /// Events pending in the store (every instance, every node), delivered
    /// after the restart; `None` when the store could not say.
    pub pending: Option<i64>,
}

/// Retry policy of stored events.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    /// Deliveries in flight at once.
    pub in_flight: usize,
}

impl PostQueue {
    /// Switch to store-backed delivery; `lookup` finds a hook's instance and
    /// timeout in the live route table at delivery time; `applied` is the
    /// registry version this node's route table was built from (a node behind
    /// the store leaves events of instances it does not know yet to others).
    pub fn make_durable(
        &self,
        store: Store,
        host: JsHost,
        lookup: Arc<HookLookup>,
        policy: RetryPolicy,
        applied: Arc<AtomicI64>,
    ) {
        let (writer, mut rx) = mpsc::channel::<StoreWrite>(4096);
        let delivered = Arc::new(AtomicU64::new(0));
        let retried = Arc::new(AtomicU64::new(0));
        let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let dispatcher_stopped = Arc::new(AtomicBool::new(false));
        let notify = Arc::new(tokio::sync::Notify::new());
        let durable = Durable {
            writer,
            store: store.clone(),
            delivered: delivered.clone(),
            retried: retried.clone(),
            in_flight: in_flight.clone(),
            stopping: stopping.clone(),
            stopped: dispatcher_stopped.clone(),
            notify: notify.clone(),
        };
        if self.durable.set(durable).is_err() {
            return;
        }
        // Writer: batches what arrives together into one transaction.
        let (wstore, wnotify, wdropped) = (store.clone(), notify.clone(), self.dropped.clone());
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let events: Vec<NewEvent> = batch.iter().flat_map(|(e, _, _)| e.iter().cloned()).collect();
                // A store across the network may blip: try a few times before
                // giving the events up, counted. The responses wait for this;
                // an unreachable store fails an attempt within the pool's 5 s
                // wait for a connection. A slow but working store is waited
                // for: cutting a write short under load lost events.
                let mut pause = Duration::from_millis(50);
                for attempt in 1.. {
                    match wstore.enqueue(&events).await {
                        Ok(()) => break,
                        Err(e) if attempt < 3 => {
                            tracing::warn!("cannot store {} post-hook event(s), retrying: {e}", events.len());
                            tokio::time::sleep(pause).await;
                            pause *= 4;
                        }
                        Err(e) => {
                            for stats in batch.iter().flat_map(|(_, s, _)| s) {
                                stats.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            let n = wdropped.fetch_add(events.len() as u64, Ordering::Relaxed) + events.len() as u64;
                            tracing::error!(dropped_total = n, "cannot store {} post-hook event(s): {e}", events.len());
                            break;
                        }
                    }
                }
                for (_, _, ack) in batch {
                    let _ = ack.send(());
                }
                wnotify.notify_one();
            }
        });
        // Dispatcher: the oldest due event of each instance, one at a time,
        // claimed only when a delivery slot is free (a claim holds the event
        // from other nodes sharing the store).
        let dispatch = Arc::new(Dispatch { store, host, lookup, policy, delivered, retried, applied });
        let stopped = dispatcher_stopped;
        tokio::spawn(async move {
            // Instances whose events this node gave back (it does not run
            // them): not claimed again for a while, or until its registry
            // version moves.
            let skipped: Arc<Mutex<Skipped>> = Arc::default();
            while !stopping.load(Ordering::Acquire) {
                let free = policy.in_flight.max(1).saturating_sub(lock(&in_flight).len());
                let skip = lock(&skipped).current(dispatch.applied.load(Ordering::Acquire));
                let claimed =
                    if free == 0 { Ok(Vec::new()) } else { dispatch.store.claim(now_ms(), free as i64, &skip).await };
                match claimed {
                    Ok(rows) if stopping.load(Ordering::Acquire) => {
                        for row in rows {
                            let _ = dispatch.store.release(row.id).await;
                        }
                    }
                    Ok(rows) => {
                        for row in rows {
                            if !lock(&in_flight).insert(row.id) {
                                continue;
                            }
                            let (dispatch, in_flight, skipped, notify) =
                                (dispatch.clone(), in_flight.clone(), skipped.clone(), notify.clone());
                            tokio::spawn(async move {
                                if let Delivery::LeftToOthers(version) = dispatch.deliver(&row).await {
                                    lock(&skipped).add(row.instance.clone(), version);
                                }
                                lock(&in_flight).remove(&row.id);
                                notify.notify_one();
                            });
                        }
                    }
                    Err(e) => tracing::error!("post-hook queue: {e}"),
                }
                tokio::select! {
                    _ = notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            stopped.store(true, Ordering::Release);
        });
    }

    /// Stop delivering stored events (the gateway is going down): claim no
    /// more, wait up to `within` for the deliveries running to end, and give
    /// back those still running, so that whoever starts next — this gateway
    /// after its restart, or another node — delivers them at once instead
    /// of after their lease. `None` without a store.
    pub async fn drain(&self, within: Duration) -> Option<Drained> {
        let d = self.durable.get()?;
        d.stopping.store(true, Ordering::Release);
        d.notify.notify_one();
        let deadline = Instant::now() + within;
        let busy = || !d.stopped.load(Ordering::Acquire) || !lock(&d.in_flight).is_empty();
        while busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let running: Vec<i64> = lock(&d.in_flight).iter().copied().collect();
        for id in &running {
            if let Err(e) = d.store.release(*id).await {
                tracing::warn!(event = id, "cannot give back a post-hook event: {e}");
            }
        }
        let pending = d.store.event_counts().await.ok().map(|(pending, _)| pending);
        Some(Drained { given_back: running.len(), pending })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A lock whose holder panicked is still usable (the sets it guards stay consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a node leaves an instance's events to others before it looks
/// at them again (its registry version moving ends it sooner).
const SKIP_FOR: Duration = Duration::from_secs(60);

/// An event no node of a shared store has taken for this long, for an
/// instance that is not in the registry (a `[[plugins]]` instance of a node
/// that no longer runs it), goes to the dead letters.
const ORPHAN_MS: i64 = 3_600_000;

/// The instances a node leaves to others, each with the registry version
/// it ran when it gave their events back.
#[derive(Default)]
struct Skipped(Vec<(String, i64, Instant)>);

impl Skipped {
    fn add(&mut self, instance: String, version: i64) {
        self.0.retain(|(i, ..)| *i != instance);
        self.0.push((instance, version, Instant::now()));
    }

    /// What to leave out of the next claim, at registry version `applied`.
    fn current(&mut self, applied: i64) -> Vec<String> {
        self.0.retain(|(_, v, at)| *v == applied && at.elapsed() < SKIP_FOR);
        self.0.iter().map(|(i, ..)| i.clone()).collect()
    }
}

/// What became of a claimed event.
enum Delivery {
    /// Delivered, rescheduled or buried.
    Done,
    /// Given back untouched: this node (at the registry version given) does
    /// not run the event's instance, another node may.
    LeftToOthers(i64),
}

/// Everything a delivery needs.
struct Dispatch {
    store: Store,
    host: JsHost,
    lookup: Arc<HookLookup>,
    policy: RetryPolicy,
    delivered: Arc<AtomicU64>,
    retried: Arc<AtomicU64>,
    applied: Arc<AtomicI64>,
}

impl Dispatch {
    /// One delivery attempt of a stored event.
    async fn deliver(&self, row: &EventRow) -> Delivery {
        let store = &self.store;
        let attempts = row.attempts + 1;
        // Read before the lookup: the route table is swapped before the
        // version moves, so the table looked in is at least this version.
        let applied = self.applied.load(Ordering::Acquire);
        // Stored as text; a type this version does not know is no hook of its.
        let Some(kind) = HookKind::from_stored(&row.kind) else {
            let why = format!("instance {} has no hook of type {:?}", row.instance, row.kind);
            let _ = self.store.bury(row.id, attempts, &why).await;
            return Delivery::Done;
        };
        let LookedUp { js, timeout_ms, route, stats } = match (self.lookup)(&row.instance, &row.function, kind) {
            Ok(found) => found,
            Err(missing) => return self.not_here(row, attempts, applied, missing).await,
        };
        let request: HookRequest = match serde_json::from_str(&row.payload) {
            Ok(r) => r,
            Err(e) => {
                let _ = store.bury(row.id, attempts, &format!("unreadable event: {e}")).await;
                return Delivery::Done;
            }
        };
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let t0 = Instant::now();
        let span = span_of_hook(&js.name, &row.instance, &row.function, kind, &route, request.request_id.as_deref());
        span.record("event", row.id);
        let call = traced(span, t0, self.host.call_detached(&js, &row.function, Arc::new(request), timeout));
        tokio::pin!(call);
        // A call that outlasts half the claim's lease renews it, so no other node
        // sharing the store takes the event while this one still delivers it.
        let renew_every = Duration::from_millis(interpose_registry::LEASE_MS as u64 / 2);
        let outcome = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tokio::time::sleep(renew_every) => {
                    if let Err(e) = store.hold(row.id, now_ms() + interpose_registry::LEASE_MS).await {
                        tracing::warn!(event = row.id, "cannot renew the claim on a post-hook event: {e}");
                    }
                }
            }
        };
        stats.record(t0.elapsed(), &outcome);
        match outcome {
            Ok(_) => {
                if let Err(e) = store.delivered(row.id).await {
                    tracing::error!("post-hook queue: {e}");
                }
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let why = format!("plugin {} failed: {}() {e}", js.name, row.function);
                if attempts as u32 >= self.policy.max_attempts {
                    tracing::warn!(event = row.id, attempts, "post-hook event dead-lettered: {why}");
                    let _ = store.bury(row.id, attempts, &why).await;
                } else {
                    let backoff = self
                        .policy
                        .base
                        .saturating_mul(1u32 << (attempts.clamp(1, 20) - 1) as u32)
                        .min(Duration::from_secs(300));
                    tracing::warn!(
                        event = row.id,
                        attempts,
                        "post-hook delivery failed (attempt {attempts} of {}), retrying in {backoff:?}: {why}",
                        self.policy.max_attempts
                    );
                    self.retried.fetch_add(1, Ordering::Relaxed);
                    let _ = store.retry(row.id, attempts, now_ms() + backoff.as_millis() as i64, &why).await;
                }
            }
        }
        Delivery::Done
    }

    /// This node's route table has no enabled hook for the event. It goes
    /// to the dead letters only when no node should ever deliver it: the
    /// node is at the store's registry version and either runs the instance
    /// without that hook (its code changed), or the instance is gone — in
    /// neither this node's config nor the registry (on a shared store, after
    /// [`ORPHAN_MS`] untaken: another node's `[[plugins]]` may run it). A node
    /// behind the store, an instance the registry has disabled (its events
    /// wait for it to be enabled again) or one that another node runs leave
    /// the event pending, untouched.
    async fn not_here(&self, row: &EventRow, attempts: i64, applied: i64, missing: Missing) -> Delivery {
        let store = &self.store;
        let hook = format!("{} hook {}()", row.kind, row.function);
        let leave = |reason: String| async move {
            tracing::debug!(event = row.id, "post-hook event left pending: {reason}");
            if let Err(e) = store.release(row.id).await {
                tracing::warn!(event = row.id, "cannot give back a post-hook event: {e}");
            }
            Delivery::LeftToOthers(applied)
        };
        let bury = |why: String| async move {
            tracing::warn!(event = row.id, "post-hook event dead-lettered: {why}");
            let _ = store.bury(row.id, attempts, &why).await;
            Delivery::Done
        };
        match store.registry_version().await {
            Ok(v) if v != applied => {
                return leave(format!("instance {} not run here at registry version {applied} of {v}", row.instance))
                    .await
            }
            Ok(_) => {}
            Err(e) => return leave(format!("the store cannot say whether instance {} runs: {e}", row.instance)).await,
        }
        if let Missing::Hook { plugin, version } = missing {
            return bury(format!("instance {} ({plugin} {version}) has no {hook} any more", row.instance)).await;
        }
        match store.instance(&row.instance).await {
            Ok(Some(r)) if r.state == interpose_registry::State::Disabled => {
                leave(format!("instance {} is disabled; its events wait until it is enabled", row.instance)).await
            }
            Ok(Some(_)) => leave(format!("instance {} is enabled but does not run here", row.instance)).await,
            Ok(None) if store.is_shared() && now_ms() - row.created_at * 1000 < ORPHAN_MS => {
                leave(format!("instance {} is not in the registry (another node's [[plugins]]?)", row.instance)).await
            }
            Ok(None) if store.is_shared() => {
                bury(format!(
                    "instance {} is gone: it is not in the registry and no gateway node sharing the store ran it for an hour (removed from the [[plugins]] of every config file?)",
                    row.instance
                ))
                .await
            }
            Ok(None) => {
                bury(format!(
                    "instance {} is gone: neither the config file's [[plugins]] nor the registry has it (removed from the config, or uninstalled)",
                    row.instance
                ))
                .await
            }
            Err(e) => leave(format!("the store cannot say whether instance {} runs: {e}", row.instance)).await,
        }
    }
}
