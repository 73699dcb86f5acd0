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
//!
//! `tee.rs` is the body, `memory.rs` the queue without a store,
//! `durable.rs` the store-backed one (claims, leases, retries, dead letters,
//! the drain at a clean stop).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use interpose_js::HookRequest;
use interpose_registry::{NewEvent, Store};
use interpose_routing::Hook;
use tokio::sync::{mpsc, oneshot};

use crate::plugins::HookTarget;

mod durable;
mod memory;
mod tee;

use durable::Durable;
pub use durable::{Drained, HookLookup, LookedUp, Missing, RetryPolicy};
pub use tee::{DoneFn, TeeBody};

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

impl PostQueue {
    /// Hand an event over. In memory: without waiting (a full queue drops
    /// it, counted). Durable: the receiver resolves once it is stored.
    pub fn offer(&self, event: PostEvent) -> Option<oneshot::Receiver<()>> {
        if self.durable.get().is_some() {
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
            return self.offer_rows(events, stats);
        }
        self.offer_in_memory(event);
        None
    }

    /// Store rows for delivery (durable only); the receiver resolves once
    /// they are stored. `None` when there is no store or its writer is full
    /// (the rows are then dropped, counted against `stats`).
    pub fn offer_rows(
        &self,
        rows: Vec<NewEvent>,
        stats: Vec<Arc<crate::metrics::HookStats>>,
    ) -> Option<oneshot::Receiver<()>> {
        let d = self.durable.get()?;
        let (ack, acked) = oneshot::channel();
        if let Err(mpsc::error::TrySendError::Full((_, stats, _)) | mpsc::error::TrySendError::Closed((_, stats, _))) =
            d.writer.try_send((rows, stats, ack))
        {
            for s in &stats {
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped_total = n, "post-hook store writer is saturated: event dropped");
            return None;
        }
        Some(acked)
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
