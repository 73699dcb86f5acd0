//! What a plugin's outbound calls ask of the gateway, and what comes back:
//! the gateway implements [`HostIo`]; the SDK's operations make the
//! requests (`fetch` in `sdk/fetch.rs`, entity storage in `sdk/storage.rs`).

use std::sync::Arc;
use std::time::Duration;

/// An outbound call a plugin asked for.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub target: FetchTarget,
    pub method: String,
    /// Header values as the plugin gave them (arrays flattened).
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// What is left of the hook's deadline.
    pub timeout: Duration,
    /// The instance asking (for logs).
    pub instance: String,
}

#[derive(Debug, Clone)]
pub enum FetchTarget {
    /// The standard system: `path` relative to a scope's API root.
    System { path: String, scope: Option<String>, root: bool, team_uuid: Option<String> },
    /// Another host (`fetchHttp`), allowed only when listed in `[sandbox] http_allow`.
    Http { url: String },
}

/// The answer to a [`FetchRequest`].
#[derive(Debug, Clone)]
pub struct FetchResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why an outbound call failed (refused, unreachable, timed out).
#[derive(Debug, Clone)]
pub struct FetchError {
    pub errcode: String,
    pub reason: String,
}

pub type FetchDone = Box<dyn FnOnce(Result<FetchResponse, FetchError>) + Send>;

/// Which of the gateway's services an SDK call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkService {
    /// Entity storage (`@ones-op/sdk` `storage.entity(name)…`).
    Storage,
    /// The plugin's SQL database (`@ones-op/node-database`).
    Database,
}

/// One call of an SDK module the gateway serves.
#[derive(Debug, Clone)]
pub struct SdkRequest {
    pub service: SdkService,
    /// The instance making it (whose records, whose database).
    pub instance: String,
    /// Its manifest's `storage.entities`.
    pub entities: Arc<[interpose_manifest::Entity]>,
    /// Its workspace folder (`importSQL` reads files there).
    pub workspace: Option<std::path::PathBuf>,
    /// `{op, …}` as the SDK module sends it.
    pub op: serde_json::Value,
    /// What is left of the hook's deadline.
    pub timeout: Duration,
}

/// Why an SDK call the gateway serves failed: what the plugin's SDK error
/// (`SDKError`, `DBError`) carries.
#[derive(Debug, Clone)]
pub struct SdkFailure {
    pub errcode: String,
    pub reason: String,
    pub status: u16,
}

impl SdkFailure {
    pub fn new(errcode: &str, status: u16, reason: impl Into<String>) -> SdkFailure {
        SdkFailure { errcode: errcode.to_string(), reason: reason.into(), status }
    }
}

pub type SdkDone = Box<dyn FnOnce(Result<serde_json::Value, SdkFailure>) + Send>;

/// What the gateway provides to plugins: performs the I/O and calls `done`
/// (from any thread) when it is over.
pub trait HostIo: Send + Sync {
    fn fetch(&self, request: FetchRequest, done: FetchDone);

    /// Entity storage and the plugin database; without a gateway they are
    /// not available.
    fn sdk(&self, request: SdkRequest, done: SdkDone) {
        let _ = request;
        done(Err(SdkFailure::new("NotAvailable", 501, "this needs the gateway (its store, its plugin databases)")));
    }
}
