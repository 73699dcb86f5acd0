//! The JavaScript plugin host.
//!
//! What is loaded once and what runs per call are kept apart:
//!
//! - [`PluginCode::load`] reads a plugin project's backend (`backend/dist/index.js`,
//!   else `backend/src/index.ts|js`), strips TypeScript with oxc and keeps every
//!   module's JS in memory ([`project`], [`transpile`]).
//! - [`Instance`] is one installed instance of that code: its name, limits and log.
//! - [`JsHost`] owns the worker threads ([`pool`]). Each worker keeps one QuickJS
//!   runtime + context per instance it has served ([`runtime`]), created on first
//!   use and reused, so a call costs microseconds. [`JsHost::call`] sends a
//!   [`HookRequest`] to a worker and answers by the deadline whatever the engine
//!   is doing: a stuck worker is retired and replaced, never waited for.
//!
//! Built-in modules (`@ones-op/node-logger`, `node-error`, `node-types`,
//! `fetch`, `node-fetch`, `node-file`) are JS sources in `builtins/` on top of
//! a native `interpose:host` module that only they can import ([`loader`]);
//! outbound calls go through the gateway's [`HostIo`].

mod convert;
mod error;
mod files;
mod host;
mod loader;
mod ops;
pub mod pool;
pub mod project;
mod request;
mod runtime;
pub mod transpile;
pub mod values;
mod wakes;

pub use convert::BINARY_BODY_KEY;
pub use error::{CallOutcome, HookError, PluginErrorData};
pub use host::{Instance, InstanceLimits, LogEntry, LogLevel};
pub use loader::builtin_names;
pub use ops::{FetchDone, FetchError, FetchRequest, FetchResponse, FetchTarget, HostIo};
pub use pool::{HostOptions, JsHost};
pub use project::{CodeError, PluginCode};
pub use request::{Body, Headers, HeadersBuilder, HookRequest, PostHook};
pub use runtime::{check_exports, ExportProblem, LocalRuntime};
pub use wakes::{flush_here, WakeBatch};
