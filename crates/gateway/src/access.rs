//! What one request did — its scope, route, request id and the hooks that
//! ran — for the metrics and the access log (`log.access_log`: one JSON
//! line per request on stdout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::Response;

use crate::body::Body;
use crate::metrics::{RouteStats, ScopeStats};

/// What one request did, for metrics and the access log.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) scope: Option<Arc<ScopeStats>>,
    /// The hooked route's counters.
    pub(crate) route: Option<Arc<RouteStats>>,
    pub(crate) hooked: bool,
    pub(crate) request_id: Option<String>,
    /// (plugin, function, type, microseconds) of each hook that ran.
    pub(crate) hooks: Vec<(String, String, &'static str, u64)>,
}

/// One JSON line per request on stdout (`log.access_log = true`).
pub(crate) fn access_log(
    method: &http::Method,
    uri: &http::Uri,
    resp: &Response<Body>,
    started: Instant,
    client: SocketAddr,
    tally: &Tally,
) {
    let hooks: Vec<serde_json::Value> = tally
        .hooks
        .iter()
        .map(|(p, f, k, us)| serde_json::json!({"plugin": p, "function": f, "type": k, "us": us}))
        .collect();
    let line = serde_json::json!({
        "time_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        "client": client.ip().to_string(),
        "method": method.as_str(),
        "uri": uri.to_string(),
        "status": resp.status().as_u16(),
        "us": started.elapsed().as_micros() as u64,
        "request_id": tally.request_id,
        "hooks": hooks,
    });
    println!("{line}");
}
