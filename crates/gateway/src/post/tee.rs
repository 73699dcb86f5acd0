//! The response body a post-hooked exchange goes out through: it copies
//! what it passes on, and holds the last bytes back until the event is
//! stored (durable delivery), so an acknowledged response is a stored event.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

use crate::body::{Body, BoxError};

/// Called once at the end of a response with its copied body; may return an
/// acknowledgement the end of the response waits for.
pub type DoneFn = Box<dyn FnOnce(Option<Bytes>) -> Option<oneshot::Receiver<()>> + Send>;

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
