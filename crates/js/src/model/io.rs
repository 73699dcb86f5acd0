//! What a plugin's outbound calls ask of the gateway, and what comes back:
//! the gateway implements [`HostIo`]; the SDK's `fetch` operation
//! (`sdk/fetch.rs`) makes the requests.

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

/// What the gateway provides to plugins: performs the I/O and calls `done`
/// (from any thread) when it is over.
pub trait HostIo: Send + Sync {
    fn fetch(&self, request: FetchRequest, done: FetchDone);
}
