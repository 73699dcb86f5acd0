//! Suffix and subscribe hooks: after the response has gone to the client.
//!
//! The response body is copied as it streams to the client ([`TeeBody`],
//! up to `limits.max_body_bytes`); when it ends, one [`PostEvent`] is offered
//! to the [`PostQueue`]. The queue is bounded: when it is full the event is
//! dropped, counted and logged — never waited for, so the request path is
//! never slowed. Calls run on their own JS worker pool, each hook on its own,
//! so a slow or failing subscriber delays neither requests nor other
//! subscribers.
//!
//! With a store ([`PostQueue::make_durable`], done when the registry is
//! open), events are instead written to it before the response's last byte
//! goes out, and delivered at least once, in order per instance,
//! with retries and backoff; an event that keeps failing goes to a
//! dead-letter list that can be replayed. A gateway killed mid-stream
//! delivers its backlog after the restart.

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use interpose_js::{HookRequest, JsHost};
use interpose_manifest::HookKind;
use interpose_routing::Hook;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

use interpose_registry::{EventRow, NewEvent, Store};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::body::{Body, BoxError};
use crate::hookcall::{hook_span, span_of_hook, traced};
use crate::metrics::HookStats;
use crate::plugins::HookTarget;

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

/// Called once at the end of a response with its copied body; may return an
/// acknowledgement the end of the response waits for.
pub type DoneFn = Box<dyn FnOnce(Option<Bytes>) -> Option<oneshot::Receiver<()>> + Send>;

/// One finished exchange and the post hooks that should hear about it.
pub struct PostEvent {
    pub hooks: Vec<Arc<Hook<HookTarget>>>,
    /// The request as the upstream received it, with `post` filled in.
    pub request: Arc<HookRequest>,
}

/// Bounded hand-off from the request path to the post-hook workers.
pub struct PostQueue {
    tx: mpsc::Sender<PostEvent>,
    depth: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    durable: std::sync::OnceLock<Durable>,
}

/// One response's events for the store writer: the rows, the stats of
/// their hooks (to count a drop), and the acknowledgement it waits for.
type StoreWrite = (Vec<NewEvent>, Vec<Arc<HookStats>>, oneshot::Sender<()>);

/// The store-backed path.
struct Durable {
    writer: mpsc::Sender<StoreWrite>,
    store: Store,
    delivered: Arc<AtomicU64>,
    retried: Arc<AtomicU64>,
    /// Ids of the events being delivered now.
    in_flight: Arc<Mutex<HashSet<i64>>>,
    /// Set by [`PostQueue::drain`]: claim nothing more.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Set by the dispatcher once it claims no more.
    stopped: Arc<std::sync::atomic::AtomicBool>,
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
    /// Start the dispatcher on the current runtime; at most `in_flight`
    /// calls run at once, the rest wait in the bounded queue.
    pub fn start(host: JsHost, capacity: usize, in_flight: usize, default_timeout_ms: u64) -> Arc<PostQueue> {
        let (tx, mut rx) = mpsc::channel::<PostEvent>(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(PostQueue {
            tx,
            depth: depth.clone(),
            dropped: Arc::default(),
            durable: std::sync::OnceLock::new(),
        });
        // Calls in flight, about one per post worker: the backlog stays in
        // the bounded queue, where it is visible and can overflow.
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                depth.fetch_sub(1, Ordering::Relaxed);
                for hook in event.hooks {
                    let Ok(permit) = slots.clone().acquire_owned().await else { return };
                    hook.payload.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    let host = host.clone();
                    let request = event.request.clone();
                    tokio::spawn(async move {
                        let ms = hook.api.timeout_ms.unwrap_or(default_timeout_ms);
                        let t0 = Instant::now();
                        let span = hook_span(&hook, request.request_id.as_deref());
                        let call = host.call_detached(
                            &hook.payload.js,
                            &hook.api.function,
                            request,
                            Duration::from_millis(ms),
                        );
                        let r = traced(span, t0, call).await;
                        hook.payload.stats.record(t0.elapsed(), &r);
                        if let Err(e) = r {
                            tracing::warn!(
                                plugin = %hook.instance.name, instance = %hook.instance.id, hook = %hook.api.kind,
                                "plugin {} failed: {}() {e}", hook.instance.name, hook.api.function
                            );
                        }
                        drop(permit);
                    });
                }
            }
        });
        q
    }

    /// Hand an event over. In memory: without waiting (a full queue drops
    /// it, counted). Durable: the receiver resolves once it is stored.
    pub fn offer(&self, event: PostEvent) -> Option<oneshot::Receiver<()>> {
        if let Some(d) = self.durable.get() {
            let payload = match serde_json::to_string(&*event.request) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("cannot serialise a post-hook event: {e}");
                    return None;
                }
            };
            let events = event
                .hooks
                .iter()
                .map(|h| NewEvent {
                    instance: h.instance.id.clone(),
                    function: h.api.function.clone(),
                    kind: h.api.kind.as_str().to_string(),
                    payload: payload.clone(),
                })
                .collect();
            let stats = event.hooks.iter().map(|h| h.payload.stats.clone()).collect();
            let (ack, acked) = oneshot::channel();
            if d.writer.try_send((events, stats, ack)).is_err() {
                for h in &event.hooks {
                    h.payload.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(dropped_total = n, "post-hook store writer is saturated: event dropped");
                return None;
            }
            return Some(acked);
        }
        self.offer_in_memory(event);
        None
    }

    fn offer_in_memory(&self, event: PostEvent) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        for h in &event.hooks {
            h.payload.stats.queued.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = self.tx.try_send(event) {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let hooks: Vec<String> = match &e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev
                    .hooks
                    .iter()
                    .map(|h| {
                        h.payload.stats.queued.fetch_sub(1, Ordering::Relaxed);
                        h.payload.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        format!("{}.{}()", h.instance.name, h.api.function)
                    })
                    .collect(),
            };
            tracing::warn!(dropped_total = n, hooks = ?hooks, "post-hook queue full: event dropped");
        }
    }

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
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dispatcher_stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
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

    /// The store behind durable delivery, if any (admin API: backlog, dead letters).
    pub fn store(&self) -> Option<&Store> {
        self.durable.get().map(|d| &d.store)
    }

    /// (delivered, retried) since start, for durable delivery.
    pub fn delivery_counts(&self) -> (u64, u64) {
        self.durable
            .get()
            .map(|d| (d.delivered.load(Ordering::Relaxed), d.retried.load(Ordering::Relaxed)))
            .unwrap_or((0, 0))
    }

    /// Events waiting for dispatch.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Events dropped: the queue (or the store writer) was full, or the store failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
        let Some(kind) = HookKind::parse(&row.kind) else {
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

/// A response body that copies what it passes on (up to `limit` bytes) and
/// calls `done` once: at the end of the stream, or when dropped early.
pub struct TeeBody {
    inner: Body,
    copy: BytesMut,
    limit: usize,
    truncated: bool,
    done: Option<DoneFn>,
    /// The store's acknowledgement the end of the stream waits for.
    ack: Option<oneshot::Receiver<()>>,
    /// The last frame (when the body knows it is the last: a known length
    /// reached), held back so the last bytes go out only after the event is
    /// stored; a body that learns its end only after its last frame (chunked)
    /// holds back its end instead.
    held: Option<Frame<Bytes>>,
    ended: bool,
}

impl TeeBody {
    /// `done` gets the whole body, or `None` when it was larger than
    /// `limit` or did not arrive whole (the upstream failed mid-body, the
    /// client went away); it may return a receiver the end of the response
    /// waits for (durable events are stored before the response completes).
    pub fn new(inner: Body, limit: usize, done: DoneFn) -> TeeBody {
        TeeBody {
            inner,
            copy: BytesMut::new(),
            limit,
            truncated: false,
            done: Some(done),
            ack: None,
            held: None,
            ended: false,
        }
    }

    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            let body = (self.ended && !self.truncated).then(|| std::mem::take(&mut self.copy).freeze());
            self.ack = done(body);
        }
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        // The client went away early: the exchange still happened.
        self.finish();
    }
}

impl http_body::Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                if let Some(ack) = this.ack.as_mut() {
                    if Pin::new(ack).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.ack = None;
                }
                return Poll::Ready(this.held.take().map(Ok));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        if !this.truncated {
                            if this.copy.len() + data.len() > this.limit {
                                this.truncated = true;
                                this.copy = BytesMut::new();
                            } else {
                                this.copy.extend_from_slice(data);
                            }
                        }
                    }
                    if !this.inner.is_end_stream() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // The last frame: it goes out once the event is stored.
                    this.held = Some(frame);
                    this.ended = true;
                    this.finish();
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.ended = true;
                    this.finish();
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.held.is_none() && self.ack.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
