//! Without a store: a bounded in-memory queue and a dispatcher that runs
//! each event's hooks on the JS pool's detached workers. A full queue drops
//! the event, counted; nothing survives a restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use interpose_js::JsHost;
use tokio::sync::{mpsc, Semaphore};

use super::{PostEvent, PostQueue};
use crate::hookcall::{hook_span, traced};

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

    pub(super) fn offer_in_memory(&self, event: PostEvent) {
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
}
