//! What a hook's result means for the request: a plugin's `PluginResponse`
//! as HTTP, a rejection, a thrown `PluginError`, and a failure (thrown,
//! timed out, out of memory, or a result the gateway cannot use), which the
//! hook's `on_error` turns into a 500 or lets pass.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Response, StatusCode};
use interpose_js::{CallOutcome, HookError, PluginErrorData};
use interpose_manifest::OnError;
use interpose_routing::Hook;

use crate::body::{self, Body};
use crate::error::{plugin_json_error, GatewayError};
use crate::hookreq::body_bytes;
use crate::plugins::HookTarget;
use crate::proxy;

/// What a hook decided.
pub enum Flow {
    /// Go on to the next step.
    Continue,
    /// This is the response; later steps are skipped.
    Respond(Response<Body>),
}

/// What a hook's call came to, for the request.
pub(crate) enum Returned {
    /// It returned (this value, or nothing).
    Value(Option<serde_json::Value>),
    /// It threw a `PluginError` (which answers) or failed (then its
    /// `on_error` decides: `Flow::Continue` goes on as if it returned nothing).
    Instead(Flow),
}

/// A hook call's outcome as what the request does next.
pub(crate) fn returned(hook: &Hook<HookTarget>, outcome: Result<CallOutcome, HookError>) -> Returned {
    match outcome {
        Ok(CallOutcome::Returned(v)) => Returned::Value(v),
        Ok(CallOutcome::Rejected(p)) => Returned::Instead(Flow::Respond(plugin_error(&p))),
        Err(e) => Returned::Instead(failed(hook, e)),
    }
}

/// A result with an error status is a rejection (intercept and prefix).
pub(crate) fn rejection(
    hook: &Arc<Hook<HookTarget>>,
    v: &serde_json::Value,
    request_id: Option<&str>,
) -> Option<Response<Body>> {
    match v.get("statusCode").filter(|s| !s.is_null()) {
        None => None,
        Some(s) if s.as_u64().is_some_and(|n| (100..400).contains(&n)) => None,
        Some(_) => match plugin_response(v, 200) {
            Ok(resp) => {
                hook.payload.stats.rejects.fetch_add(1, Ordering::Relaxed);
                Some(resp)
            }
            Err(e) => match unusable(hook, e, request_id) {
                Flow::Respond(resp) => Some(resp),
                Flow::Continue => None,
            },
        },
    }
}

/// A failing hook: its `on_error` decides.
pub(crate) fn failed(hook: &Hook<HookTarget>, error: HookError) -> Flow {
    let e =
        GatewayError::PluginFailure { plugin: hook.instance.name.clone(), function: hook.api.function.clone(), error };
    match hook.api.on_error {
        OnError::Reject => Flow::Respond(e.into_response()),
        OnError::Allow => {
            tracing::warn!(plugin = %hook.instance.name, instance = %hook.instance.id, "{e}; on_error: allow, continuing");
            Flow::Continue
        }
    }
}

/// A result the gateway cannot use is the hook's failure like one the JS
/// host finds: counted, written to the plugin's log, then `on_error` decides.
pub(crate) fn unusable(hook: &Hook<HookTarget>, reason: String, request_id: Option<&str>) -> Flow {
    let error = HookError::BadResult(reason);
    hook.payload.stats.failed(error.failure());
    hook.payload.js.record_failure(&hook.api.function, &error, request_id.map(str::to_string));
    failed(hook, error)
}

pub(crate) fn plugin_error(p: &PluginErrorData) -> Response<Body> {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    plugin_json_error(status, &p.kind, &p.reason, &p.errcode)
}

/// A `PluginResponse` (`{statusCode?, headers?, body?}`) as HTTP.
pub(crate) fn plugin_response(v: &serde_json::Value, default_status: u16) -> Result<Response<Body>, String> {
    let obj = v.as_object().ok_or_else(|| format!("expected {{statusCode, headers, body}}, got {v}"))?;
    let status = match obj.get("statusCode") {
        None | Some(serde_json::Value::Null) => default_status,
        Some(s) => s
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (100..=599).contains(n))
            .ok_or_else(|| format!("statusCode {s} is not an HTTP status (100-599)"))?,
    };
    if status < 200 {
        // 1xx are interim answers (101 would promise a protocol switch).
        return Err(format!("statusCode {status} is informational (1xx) and cannot be the response; use 200-599"));
    }
    let (bytes, content_type) = body_bytes(obj.get("body").unwrap_or(&serde_json::Value::Null));
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = StatusCode::from_u16(status).map_err(|e| e.to_string())?;
    if let Some(headers) = obj.get("headers").filter(|h| !h.is_null()) {
        let mut headers = header_map(headers)?;
        // The gateway frames what it sends: a plugin's Content-Length or
        // Transfer-Encoding could only disagree with the body it returned.
        proxy::strip_hop_by_hop(&mut headers);
        headers.remove(http::header::CONTENT_LENGTH);
        *resp.headers_mut() = headers;
    }
    if let Some(ct) = content_type {
        resp.headers_mut().entry(http::header::CONTENT_TYPE).or_insert(HeaderValue::from_static(ct));
    }
    Ok(resp)
}

/// A plugin's `headers` object (values: strings, numbers, booleans or
/// arrays of them) as a header map.
pub(crate) fn header_map(v: &serde_json::Value) -> Result<http::HeaderMap, String> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in interpose_js::values::header_pairs(v)? {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name {k:?}"))?;
        let value = HeaderValue::from_str(&v).map_err(|_| format!("invalid value for header {k:?}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_responses() {
        let r = plugin_response(
            &serde_json::json!({"statusCode": 403, "headers": {"X-A": ["1", "2"], "X-B": 3}, "body": {"a": 1}}),
            200,
        )
        .expect("ok");
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(r.headers()["content-type"], "application/json");
        let r = plugin_response(&serde_json::json!({"body": "hi"}), 200).expect("ok");
        assert_eq!(
            (r.status().as_u16(), r.headers()["content-type"].to_str().ok()),
            (200, Some("text/plain; charset=utf-8"))
        );
        assert!(plugin_response(&serde_json::json!({"statusCode": 99}), 200).is_err());
        for interim in [100, 101, 199] {
            let e = plugin_response(&serde_json::json!({"statusCode": interim}), 200).expect_err("1xx");
            assert!(e.contains("informational (1xx)"), "{e}");
        }
        assert!(plugin_response(&serde_json::json!({"headers": {"X": {"a": 1}}}), 200).is_err());
        assert!(plugin_response(&serde_json::json!({"headers": {"bad name": "x"}}), 200).is_err());
        // Framing is the gateway's: a plugin's length or transfer coding never goes out.
        let framed = serde_json::json!({"headers": {"Content-Length": "999", "Transfer-Encoding": "chunked", "Connection": "close", "X-Kept": "1"}, "body": "short"});
        let r = plugin_response(&framed, 200).expect("ok");
        assert_eq!(r.headers().keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept", "content-type"]);
    }
}
