//! What a call runs on, below the SDK: which call is current on this thread
//! ([`scope`]), the promises the host settles later and the timers
//! ([`event_loop`]), and values between Rust and JS ([`convert`]).

pub(crate) mod convert;
pub(crate) mod event_loop;
pub(crate) mod scope;
