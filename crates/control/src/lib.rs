//! The control plane: installing, enabling, upgrading and removing plugin
//! instances on a running gateway.
//!
//! Every change goes the same way ([`Manager`]): validate everything first
//! (archive, manifest, code, exported functions, conflicts with all that is
//! enabled), then run the plugin's lifecycle functions ([`lifecycle`]), then
//! record it in the store, then swap the route table — so a refused or
//! failed change leaves nothing behind, and no request sees half of one.

pub mod archive;
mod declared;
mod error;
pub mod lifecycle;
mod manager;
pub mod routes;
mod sync;
mod timers;

pub use error::ControlError;
pub use manager::{Install, InstanceInfo, Manager, Placement};
pub use timers::{LastRun, TimerInfo};
