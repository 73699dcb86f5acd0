//! The call running on this thread, for the SDK's operations: which
//! instance, which request, the gateway's I/O and the deadline.

use std::cell::RefCell;
use std::sync::Arc;

use crate::model::instance::Instance;
use crate::model::io::HostIo;

/// What the current call on this thread is for; read by host functions.
#[derive(Clone)]
pub(crate) struct CallScope {
    pub instance: Arc<Instance>,
    pub request_id: Option<String>,
    /// Outbound calls (`@ones-op/fetch`); none in tools and tests without a gateway.
    pub io: Option<Arc<dyn HostIo>>,
    /// When the call must be over; outbound calls get the time that is left.
    pub deadline: std::time::Instant,
}

thread_local! {
    static CURRENT: RefCell<Option<CallScope>> = const { RefCell::new(None) };
}

/// Run `f` with `scope` as the current call of this thread.
pub(crate) fn with_scope<R>(scope: CallScope, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(Some(scope)));
    let out = f();
    CURRENT.with(|c| *c.borrow_mut() = prev);
    out
}

pub(crate) fn current() -> Option<CallScope> {
    CURRENT.with(|c| c.borrow().clone())
}
