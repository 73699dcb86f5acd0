//! The JavaScript plugin host.
//!
//! What is loaded once and what runs per call are kept apart:
//!
//! - [`PluginCode::load`] reads a plugin project's backend (`backend/dist/index.js`,
//!   else `backend/src/index.ts|js`), strips TypeScript with oxc and keeps every
//!   module's JS in memory ([`project`], [`transpile`]).
//! - [`Instance`] is one installed instance of that code: its name, limits and log.
//! - [`JsHost`] owns the worker threads ([`pool`]). Each worker keeps one QuickJS
//!   runtime + context per instance it has served (`runtime`), created on first
//!   use and reused, so a call costs microseconds. [`JsHost::call`] sends a
//!   [`HookRequest`] to a worker and answers by the deadline whatever the engine
//!   is doing: a stuck worker is retired and replaced, never waited for.
//!
//! Read it bottom up; each layer imports only the ones before it:
//!
//! 1. [`code`]: a plugin's modules, transpiled; the names and sources of the
//!    built-in modules.
//! 2. [`model`]: plain data — the hook request, call outcomes and errors, an
//!    instance and its log, the outbound I/O the gateway provides ([`HostIo`]).
//! 3. `engine`: the current call of a thread, the event loop (promises the
//!    host settles, timers), Rust ↔ JS values.
//! 4. `sdk`: the `@ones-op/*` modules, one JS file each, on the native
//!    `interpose:host` module whose operations are the Rust files beside
//!    them. A new SDK module goes there.
//! 5. `runtime`: one QuickJS runtime and context for an instance — module
//!    loading, calling a function, settling its result by the deadline.
//! 6. [`pool`]: the worker threads, their queue and the watchdog, behind
//!    [`JsHost`], the API the gateway calls.

pub mod code;
mod engine;
pub mod model;
pub mod pool;
mod runtime;
mod sdk;

pub use code::builtins::builtin_names;
pub use code::project::{self, CodeError, PluginCode};
pub use code::transpile;
pub use engine::convert::BINARY_BODY_KEY;
pub use model::error::{CallOutcome, FailureKind, HookError, PluginErrorData};
pub use model::instance::{Instance, InstanceLimits, LogEntry, LogLevel, Place};
pub use model::io::{
    FetchDone, FetchError, FetchRequest, FetchResponse, FetchTarget, HostIo, SdkDone, SdkFailure, SdkRequest,
    SdkService,
};
pub use model::request::{Body, Headers, HeadersBuilder, HookRequest, PostHook};
pub use model::values;
pub use pool::wakes::{flush_here, WakeBatch};
pub use pool::{HostOptions, JsHost};
pub use runtime::{check_exports, ExportProblem, LocalRuntime};
