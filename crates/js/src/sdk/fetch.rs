//! `@ones-op/fetch`'s and `@ones-op/node-fetch`'s native operation: an
//! outbound call through the gateway's [`HostIo`], answered as a promise the
//! event loop settles while the call waits. Everything counts against the
//! hook's deadline.

use std::time::Instant;

use rquickjs::{Ctx, Value};

use crate::engine::event_loop;
use crate::engine::scope::{current, CallScope};
use crate::model::io::{FetchRequest, FetchResponse, FetchTarget};

pub(super) fn declare(decl: &rquickjs::module::Declarations<'_>) -> rquickjs::Result<()> {
    decl.declare("fetch")?;
    Ok(())
}

pub(super) fn export<'js>(ctx: &rquickjs::Ctx<'js>, exports: &rquickjs::module::Exports<'js>) -> rquickjs::Result<()> {
    exports.export("fetch", rquickjs::Function::new(ctx.clone(), host_fetch)?)?;
    Ok(())
}

/// `interpose:host` `fetch(optionsJson)`: a promise of
/// `{ok: true, response: {statusCode, headers, body}}` or `{ok: false, error: {errcode, reason}}`.
fn host_fetch<'js>(ctx: Ctx<'js>, options: String) -> rquickjs::Result<Value<'js>> {
    let (promise, done) = event_loop::pending(&ctx)?;
    let fail = |done: event_loop::Settle, errcode: &str, reason: String| {
        done.settle(serde_json::json!({"ok": false, "error": {"errcode": errcode, "reason": reason}}));
    };
    let Some(scope) = current() else {
        fail(done, "NetworkError", "fetch is only available inside a hook call".into());
        return Ok(promise);
    };
    let Some(io) = scope.io.clone() else {
        fail(done, "NetworkError", "fetch is not available here (no gateway)".into());
        return Ok(promise);
    };
    let request = match parse_options(&options, &scope) {
        Ok(r) => r,
        Err(reason) => {
            fail(done, "InvalidParameter", reason);
            return Ok(promise);
        }
    };
    let raw = request.raw;
    io.fetch(
        request.request,
        Box::new(move |result| {
            let value = match result {
                Ok(r) => serde_json::json!({"ok": true, "response": response_json(r, raw)}),
                Err(e) => serde_json::json!({"ok": false, "error": {"errcode": e.errcode, "reason": e.reason}}),
            };
            done.settle(value);
        }),
    );
    Ok(promise)
}

/// A [`FetchRequest`] and how its answer is wanted.
struct Parsed {
    request: FetchRequest,
    /// The body as bytes (base64 in `bodyBase64`), not parsed (global `fetch`).
    raw: bool,
}

fn parse_options(text: &str, scope: &CallScope) -> Result<Parsed, String> {
    let o: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("bad fetch options: {e}"))?;
    let method = o.get("method").and_then(|m| m.as_str()).unwrap_or("GET").to_ascii_uppercase();
    let mut headers = match o.get("headers") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(h) => crate::model::values::header_pairs(h)?,
    };
    let body = match o.get("body") {
        _ if o.get("bodyBase64").is_some() => {
            use base64::Engine as _;
            let text = o["bodyBase64"].as_str().ok_or("bodyBase64 must be a string")?;
            Some(base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("bodyBase64: {e}"))?)
        }
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone().into_bytes()),
        Some(other) => {
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                headers.push(("content-type".into(), "application/json".into()));
            }
            Some(serde_json::to_vec(other).unwrap_or_default())
        }
    };
    let target = match o.get("url").and_then(|u| u.as_str()) {
        Some(url) => FetchTarget::Http { url: url.to_string() },
        None => {
            let path = o.get("path").and_then(|p| p.as_str()).ok_or("fetch needs a `path` (or `url` for fetchHttp)")?;
            if !path.starts_with('/') {
                return Err(format!("path {path:?} must start with '/'"));
            }
            FetchTarget::System {
                path: path.to_string(),
                scope: o.get("scope").and_then(|s| s.as_str()).map(str::to_string),
                root: o.get("root").and_then(|r| r.as_bool()).unwrap_or(true),
                team_uuid: o.get("teamUUID").and_then(|t| t.as_str()).map(str::to_string),
            }
        }
    };
    let timeout = scope.deadline.saturating_duration_since(Instant::now());
    Ok(Parsed {
        request: FetchRequest { target, method, headers, body, timeout, instance: scope.instance.id.clone() },
        raw: o.get("raw").and_then(|r| r.as_bool()).unwrap_or(false),
    })
}

fn response_json(r: FetchResponse, raw: bool) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for (k, v) in r.headers {
        match headers.get_mut(&k) {
            Some(serde_json::Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(k, serde_json::Value::String(v));
            }
        }
    }
    if raw {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(&r.body);
        return serde_json::json!({"statusCode": r.status, "headers": headers, "bodyBase64": body});
    }
    let body = match serde_json::from_slice::<serde_json::Value>(&r.body) {
        Ok(v) if !r.body.is_empty() => v,
        _ => serde_json::Value::String(String::from_utf8_lossy(&r.body).into_owned()),
    };
    serde_json::json!({"statusCode": r.status, "headers": headers, "body": body})
}
