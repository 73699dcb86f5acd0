//! What a request must be before anything routes it: a target and `Host`
//! as RFC 9112 asks, headers within the limit, framing no two parsers read
//! differently, a path that cannot dodge a hook; and its request id, the
//! client's or a new one.

use std::borrow::Cow;

use http::request::Parts;
use http::{HeaderName, HeaderValue, Request};

use crate::error::GatewayError;

/// Check what can be checked of a request before it is routed: its target
/// and `Host`, the size of its headers, its framing.
pub(crate) fn admit<B>(req: &mut Request<B>, max_header_bytes: usize) -> Result<(), GatewayError> {
    check_target(req)?;
    check_header_size(req.headers(), max_header_bytes)?;
    check_framing(req.headers())
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The request id: the client's `X-Request-Id` when it is sane, else a new one.
fn request_id(parts: &Parts) -> String {
    parts
        .headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

/// A request id for the upstream of a request that has none yet (an
/// unhooked one, which nothing else needed it for).
pub(crate) fn ensure_request_id(headers: &mut http::HeaderMap) {
    if !headers.contains_key(&X_REQUEST_ID) {
        headers.insert(
            X_REQUEST_ID,
            HeaderValue::from_maybe_shared(bytes::Bytes::from(new_request_id())).expect("hex digits"),
        );
    }
}

/// The request id, set on the request when it came without one: the
/// upstream, the hooks and the logs all get the same.
pub(crate) fn stamp_request_id(parts: &mut Parts) -> String {
    let id = request_id(parts);
    if !parts.headers.contains_key(&X_REQUEST_ID) {
        if let Ok(v) = HeaderValue::from_str(&id) {
            parts.headers.insert(X_REQUEST_ID, v);
        }
    }
    id
}

/// A unique id without a system call per request: a random per-process
/// prefix and a counter, 32 hex digits.
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    fn hex(word: u64, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = HEX[((word >> (60 - 4 * i)) & 0xf) as usize];
        }
    }
    static PREFIX: OnceLock<[u8; 16]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut p = [0u8; 16];
        hex(uuid::Uuid::new_v4().as_u64_pair().0, &mut p);
        p
    });
    let mut out = vec![0u8; 32];
    out[..16].copy_from_slice(prefix);
    hex(COUNTER.fetch_add(1, Ordering::Relaxed), &mut out[16..]);
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// What RFC 9112 §3.2 asks of a request's target and `Host`: exactly one
/// `Host` on HTTP/1.1; an absolute-form target's authority is the host
/// (the `Host` header is replaced by it). CONNECT asks for a tunnel to
/// anywhere, which a gateway in front of one system does not give.
fn check_target<B>(req: &mut Request<B>) -> Result<(), GatewayError> {
    if req.method() == http::Method::CONNECT {
        return Err(GatewayError::MethodNotAllowed("CONNECT".into()));
    }
    if let Some(authority) = req.uri().authority() {
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| GatewayError::BadRequest("the request target's authority is not a valid host".into()))?;
        req.headers_mut().insert(http::header::HOST, host);
    }
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(GatewayError::BadRequest("the request has more than one Host header".into())),
        (None, _) if req.version() == http::Version::HTTP_11 => {
            Err(GatewayError::BadRequest("an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)".into()))
        }
        _ => Ok(()),
    }
}

/// The connection's read buffer bounds a request head only roughly (it is
/// checked between reads), so the limit is enforced here exactly.
fn check_header_size(headers: &http::HeaderMap, max: usize) -> Result<(), GatewayError> {
    let size: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if size > max {
        return Err(GatewayError::HeadersTooLarge(max));
    }
    Ok(())
}

/// Refuse message framing that two HTTP parsers could read differently
/// (request smuggling): `Transfer-Encoding` with `Content-Length`, or any
/// transfer coding other than `chunked`.
fn check_framing(headers: &http::HeaderMap) -> Result<(), GatewayError> {
    let mut te = headers.get_all(http::header::TRANSFER_ENCODING).iter().peekable();
    if te.peek().is_none() {
        return Ok(());
    }
    if headers.contains_key(http::header::CONTENT_LENGTH) {
        return Err(GatewayError::BadRequest("both Content-Length and Transfer-Encoding are set".into()));
    }
    for v in te {
        let chunked_only = v.to_str().map(|s| s.trim().eq_ignore_ascii_case("chunked")).unwrap_or(false);
        if !chunked_only {
            return Err(GatewayError::BadRequest("unsupported Transfer-Encoding (only chunked is accepted)".into()));
        }
    }
    Ok(())
}

/// Path segments under the mount, decoded; refuses paths that could reach
/// something other than what the route table matched (`..`, encoded
/// slashes, empty segments).
pub(crate) fn split_path(path: &str) -> Result<Vec<Cow<'_, str>>, GatewayError> {
    let bad = |why: &str| GatewayError::BadRequest(format!("path {path:?} is not allowed: {why}"));
    let encoded_slash = |w: &[u8]| {
        w[0] == b'%' && w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f')
            || w[0] == b'%' && w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c')
    };
    let encoded = path.contains('%');
    if path.contains('\\') || encoded && path.as_bytes().windows(3).any(encoded_slash) {
        return Err(bad("encoded slashes and backslashes are refused"));
    }
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(8);
    for raw in trimmed.split('/') {
        // RFC 3986 path parameters (`tasks;v=1`, `..;`): servlet containers
        // drop them before routing, so matching does too.
        let raw = raw.split_once(';').map_or(raw, |(name, _)| name);
        if raw.is_empty() {
            return Err(bad("empty path segment (//, or one that is only ;parameters)"));
        }
        let decoded = if encoded && raw.contains('%') {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| bad("percent-encoding does not decode to UTF-8"))?
        } else {
            Cow::Borrowed(raw)
        };
        if decoded == "." || decoded == ".." {
            return Err(bad("dot segments are refused"));
        }
        out.push(decoded);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_dodge_a_hook_are_refused() {
        assert_eq!(split_path("/users/me").expect("ok"), ["users", "me"]);
        assert_eq!(split_path("/users/me/").expect("ok"), ["users", "me"]);
        assert_eq!(split_path("/users/%6De").expect("ok"), ["users", "me"]);
        assert!(split_path("").expect("ok").is_empty());
        assert_eq!(split_path("/team/T1;x=1/tasks;jsessionid=2").expect("ok"), ["team", "T1", "tasks"]);
        assert_eq!(split_path("/a/b%3Bc").expect("ok"), ["a", "b;c"], "an encoded ; is data");
        for bad in [
            "/users/../x",
            "/users/%2e%2e/x",
            "/a//b",
            "/users%2fme",
            "/a/%5c",
            "/a/%ff",
            "/a/%2F",
            "/a/%5C",
            "/users/..;/x",
            "/users/.;x=1/x",
            "/a/;x/b",
        ] {
            assert!(split_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_request_ids_are_32_hex_digits_and_unique() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{id}");
        }
        assert_eq!(a[..16], b[..16], "one per-process prefix");
    }
}
