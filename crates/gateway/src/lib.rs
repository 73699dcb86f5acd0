//! The data plane: an HTTP/1.1 gateway in front of the standard system.
//!
//! Read in this order:
//! - [`server`]: accepts connections, graceful shutdown.
//! - [`pipeline`]: the request path, one linear function that follows the
//!   diagram in DESIGN.md: match → intercepts → prefix → replace or upstream →
//!   post hooks; its module doc says what each hook type does. Beneath it,
//!   each one concept: `admission` (request checks, request ids),
//!   `hookreq` (the request a hook gets), `hookcall` (a call's counters and
//!   span), `hookresult` (a result as HTTP, `on_error`), `access` (the
//!   access log).
//! - [`post`]: suffix and subscribe hooks after the response (`tee`,
//!   `memory`, `durable`).
//! - [`proxy`]: forwarding to the upstream (streamed when no hook needs the body).
//! - [`plugins`]: loading plugin projects into instances and building the
//!   route table snapshot that [`Gateway`] swaps atomically.
//! - `io` and `storage`: what plugins reach outside themselves (outbound
//!   calls; entity storage in the gateway's store).
//! - [`error`]: every failure mapped to an HTTP status and a JSON body, in one place.

mod access;
mod admission;
pub mod body;
pub mod coding;
pub mod error;
pub mod events;
mod hookcall;
mod hookreq;
mod hookresult;
pub mod io;
pub mod linger;
pub mod metrics;
pub mod pipeline;
pub mod plugins;
pub mod post;
pub mod proxy;
pub mod server;
mod state;
mod storage;

pub use plugins::{HookTarget, InstalledInstance, LoadedPlugin, PluginError};
pub use server::{serve, serve_threads, stopped, Listening};
pub use state::{Gateway, Snapshot, StartError};
