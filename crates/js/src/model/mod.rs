//! Plain data the rest of the crate passes around: the request a hook gets
//! ([`request`]), what a call ends with ([`error`]), an installed instance
//! and its log ([`instance`]), the outbound I/O the gateway provides
//! ([`io`]), and value helpers ([`values`]).

pub mod error;
pub mod instance;
pub mod io;
pub mod request;
pub mod values;
