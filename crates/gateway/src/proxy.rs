//! Forwarding to the standard system: the request as the client sent it
//! (minus hop-by-hop headers, plus `X-Forwarded-*`), the response as the
//! upstream sent it. Bodies stream unless a hook needed them buffered.

use std::net::IpAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::{Body, BoxError};
use crate::error::GatewayError;

pub type Client = hyper_util::client::legacy::Client<HttpConnector, Body>;

/// A pooled keep-alive client for all upstreams.
pub fn client(connect_timeout: Duration) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

thread_local! {
    /// One pool per thread: a serving thread's upstream connections live on
    /// its own runtime, so a request never crosses threads to reach one.
    static LOCAL: std::cell::RefCell<Vec<(Duration, Client)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// This thread's pooled client (made on first use).
pub fn local_client(connect_timeout: Duration) -> Client {
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        if let Some((_, c)) = local.iter().find(|(t, _)| *t == connect_timeout) {
            return c.clone();
        }
        let c = client(connect_timeout);
        local.push((connect_timeout, c.clone()));
        c
    })
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Add the client's address to `X-Forwarded-For` and set `X-Forwarded-Proto`.
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&xff).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {client}"),
        None => client.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(xff, v);
    }
    let xfp = HeaderName::from_static("x-forwarded-proto");
    if !headers.contains_key(&xfp) {
        headers.insert(xfp, HeaderValue::from_static("http"));
    }
}

/// The upstream URI for a path (with query) under the mount.
pub fn upstream_uri(origin: &str, base_path: &str, rest: &str) -> Result<Uri, GatewayError> {
    let uri = if rest.is_empty() || rest.starts_with('?') {
        let base = if base_path.is_empty() { "/" } else { base_path };
        format!("{origin}{base}{rest}")
    } else {
        format!("{origin}{base_path}{rest}")
    };
    uri.parse().map_err(|e| GatewayError::BadRequest(format!("the request path cannot be forwarded: {e}")))
}

/// Send `req` upstream and return its response with hop-by-hop headers removed.
pub async fn send(
    client: &Client,
    mut req: Request<Body>,
    scope: &str,
    timeout: Duration,
) -> Result<Response<Body>, GatewayError> {
    *req.version_mut() = http::Version::HTTP_11;
    let resp = match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => {
            return Err(GatewayError::UpstreamTimeout { scope: scope.to_string(), ms: timeout.as_millis() as u64 })
        }
        Ok(Err(e)) => {
            let cause = error_chain(&e);
            return Err(GatewayError::UpstreamUnavailable { scope: scope.to_string(), cause });
        }
        Ok(Ok(resp)) => resp,
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
