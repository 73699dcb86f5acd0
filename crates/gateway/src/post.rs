//! Suffix and subscribe hooks: after the response has gone to the client.
//!
//! The response body is copied as it streams to the client ([`TeeBody`],
//! up to `limits.max_body_bytes`); when it ends, one [`PostEvent`] is offered
//! to the [`PostQueue`]. The queue is bounded: when it is full the event is
//! dropped, counted and logged — never waited for, so the request path is
//! never slowed. Calls run on their own JS worker pool, each hook on its own,
//! so a slow or failing subscriber delays neither requests nor other
//! subscribers. (The queue is the seam where a durable store goes later:
//! `offer` is the only way in.)

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use interpose_js::{HookRequest, JsHost};
use interpose_routing::Hook;
use tokio::sync::{mpsc, Semaphore};

use crate::body::{Body, BoxError};
use crate::plugins::HookTarget;

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
    dropped: AtomicU64,
}

impl PostQueue {
    /// Start the dispatcher on the current runtime; at most `in_flight`
    /// calls run at once, the rest wait in the bounded queue.
    pub fn start(host: JsHost, capacity: usize, in_flight: usize, default_timeout_ms: u64) -> Arc<PostQueue> {
        let (tx, mut rx) = mpsc::channel::<PostEvent>(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(PostQueue { tx, depth: depth.clone(), dropped: AtomicU64::new(0) });
        // Calls in flight, about one per post worker: the backlog stays in
        // the bounded queue, where it is visible and can overflow.
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                depth.fetch_sub(1, Ordering::Relaxed);
                for hook in event.hooks {
                    let Ok(permit) = slots.clone().acquire_owned().await else { return };
                    let host = host.clone();
                    let request = event.request.clone();
                    tokio::spawn(async move {
                        let ms = hook.api.timeout_ms.unwrap_or(default_timeout_ms);
                        let r = host
                            .call_detached(&hook.payload.js, &hook.api.function, request, Duration::from_millis(ms))
                            .await;
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

    /// Hand an event over without waiting; a full queue drops it (counted).
    pub fn offer(&self, event: PostEvent) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(event) {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let hooks: Vec<String> = match &e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => {
                    ev.hooks.iter().map(|h| format!("{}.{}()", h.instance.name, h.api.function)).collect()
                }
            };
            tracing::warn!(dropped_total = n, hooks = ?hooks, "post-hook queue full: event dropped");
        }
    }

    /// Events waiting for dispatch.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A response body that copies what it passes on (up to `limit` bytes) and
/// calls `done` once: at the end of the stream, or when dropped early.
pub struct TeeBody {
    inner: Body,
    copy: BytesMut,
    limit: usize,
    truncated: bool,
    done: Option<Box<dyn FnOnce(Option<Bytes>) + Send>>,
}

impl TeeBody {
    /// `done` gets the whole body, or `None` when it was larger than `limit`.
    pub fn new(inner: Body, limit: usize, done: Box<dyn FnOnce(Option<Bytes>) + Send>) -> TeeBody {
        TeeBody { inner, copy: BytesMut::new(), limit, truncated: false, done: Some(done) }
    }

    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            let body = (!self.truncated).then(|| std::mem::take(&mut self.copy).freeze());
            done(body);
        }
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl http_body::Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
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
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
