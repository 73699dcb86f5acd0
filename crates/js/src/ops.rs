//! Asynchronous host calls (`@ones-op/fetch`): the JS side gets a promise;
//! the I/O runs on the gateway's tokio runtime through [`HostIo`]; the
//! result comes back over this worker's channel and settles the promise
//! while the call waits for it (`runtime.rs`, `settle`). Everything counts
//! against the hook's deadline.
//!
//! Timers (`setTimeout` and friends) are a host sleep on the same footing:
//! a promise settled when its time comes, while the call waits. They run
//! only while a call is in progress: what is still pending when it returns
//! is dropped with it.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rquickjs::{Ctx, Function, Persistent, Value};

use crate::convert::json_to_js;
use crate::host::current;

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

type Completion = (u64, serde_json::Value);

struct Ops {
    next: u64,
    waiting: HashMap<u64, Persistent<Function<'static>>>,
    /// Sleeps by due time (then id: equal times fire in the order asked).
    timers: BTreeSet<(Instant, u64)>,
    /// Calls ended on this thread: timers of an earlier generation are gone.
    generation: u64,
    tx: Sender<Completion>,
    rx: Receiver<Completion>,
}

thread_local! {
    static OPS: RefCell<Ops> = RefCell::new({
        let (tx, rx) = crossbeam_channel::unbounded();
        Ops { next: 0, waiting: HashMap::new(), timers: BTreeSet::new(), generation: 0, tx, rx }
    });
}

/// Register `resolve` for a completion; its id.
fn register<'js>(ctx: &Ctx<'js>, resolve: Function<'js>) -> u64 {
    OPS.with(|o| {
        let mut o = o.borrow_mut();
        o.next += 1;
        let id = o.next;
        o.waiting.insert(id, Persistent::save(ctx, resolve));
        id
    })
}

pub(crate) fn has_waiting() -> bool {
    OPS.with(|o| !o.borrow().waiting.is_empty())
}

/// Drop every pending resolver and timer (at the end of a call, while the
/// runtime lives); the next call is a new generation.
pub(crate) fn clear() {
    let old = OPS.with(|o| {
        let mut o = o.borrow_mut();
        o.timers.clear();
        o.generation += 1;
        std::mem::take(&mut o.waiting)
    });
    drop(old);
}

/// Wait for one completion or timer until `deadline` and settle its
/// promise. Returns false when the deadline passed first.
pub(crate) fn wait_one<'js>(ctx: &Ctx<'js>, deadline: Instant) -> rquickjs::Result<bool> {
    let rx = OPS.with(|o| o.borrow().rx.clone());
    loop {
        let timer = OPS.with(|o| o.borrow().timers.first().copied());
        let until = timer.map_or(deadline, |(due, _)| due.min(deadline));
        let (id, value) = match rx.try_recv() {
            Ok(c) => c,
            Err(_) if timer.is_some_and(|(due, _)| due <= Instant::now()) => {
                let (due, id) = timer.unwrap_or((deadline, 0));
                OPS.with(|o| o.borrow_mut().timers.remove(&(due, id)));
                (id, serde_json::Value::Null)
            }
            Err(_) => match crate::pool::io_wait(|| rx.recv_deadline(until)) {
                Ok(c) => c,
                Err(_) if until < deadline => continue,
                Err(_) => return Ok(false),
            },
        };
        let resolve = OPS.with(|o| o.borrow_mut().waiting.remove(&id));
        // A completion of an earlier, abandoned call has no resolver: skip it.
        let Some(resolve) = resolve else { continue };
        let resolve = resolve.restore(ctx)?;
        let v = json_to_js(ctx, &value)?;
        resolve.call::<_, ()>((v,))?;
        return Ok(true);
    }
}

/// `interpose:host` `generation()`: changes when a call ends, so the timer
/// bookkeeping in JS can forget the timers the host dropped with it.
pub(crate) fn generation() -> f64 {
    OPS.with(|o| o.borrow().generation as f64)
}

/// The host side of timers: a promise settled after `ms` milliseconds,
/// if the call is still running then.
pub(crate) fn host_sleep<'js>(ctx: Ctx<'js>, ms: f64) -> rquickjs::Result<Value<'js>> {
    let (promise, resolve, _reject) = ctx.promise()?;
    let id = register(&ctx, resolve);
    let ms = if ms.is_finite() && ms > 0.0 { ms.min(86_400_000.0) } else { 0.0 };
    let due = Instant::now() + Duration::from_secs_f64(ms / 1000.0);
    OPS.with(|o| o.borrow_mut().timers.insert((due, id)));
    Ok(promise.into_value())
}

/// `interpose:host` `fetch(optionsJson)`: a promise of
/// `{ok: true, response: {statusCode, headers, body}}` or `{ok: false, error: {errcode, reason}}`.
pub(crate) fn host_fetch<'js>(ctx: Ctx<'js>, options: String) -> rquickjs::Result<Value<'js>> {
    let (promise, resolve, _reject) = ctx.promise()?;
    let id = register(&ctx, resolve);
    let tx = OPS.with(|o| o.borrow().tx.clone());
    let fail = move |errcode: &str, reason: String| {
        let _ = tx.send((id, serde_json::json!({"ok": false, "error": {"errcode": errcode, "reason": reason}})));
    };
    let Some(scope) = current() else {
        fail("NetworkError", "fetch is only available inside a hook call".into());
        return Ok(promise.into_value());
    };
    let Some(io) = scope.io.clone() else {
        fail("NetworkError", "fetch is not available here (no gateway)".into());
        return Ok(promise.into_value());
    };
    let request = match parse_options(&options, &scope) {
        Ok(r) => r,
        Err(reason) => {
            fail("InvalidParameter", reason);
            return Ok(promise.into_value());
        }
    };
    let tx = OPS.with(|o| o.borrow().tx.clone());
    let raw = request.raw;
    io.fetch(
        request.request,
        Box::new(move |result| {
            let value = match result {
                Ok(r) => serde_json::json!({"ok": true, "response": response_json(r, raw)}),
                Err(e) => serde_json::json!({"ok": false, "error": {"errcode": e.errcode, "reason": e.reason}}),
            };
            let _ = tx.send((id, value));
        }),
    );
    Ok(promise.into_value())
}

/// A [`FetchRequest`] and how its answer is wanted.
struct Parsed {
    request: FetchRequest,
    /// The body as bytes (base64 in `bodyBase64`), not parsed (global `fetch`).
    raw: bool,
}

fn parse_options(text: &str, scope: &crate::host::CallScope) -> Result<Parsed, String> {
    let o: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("bad fetch options: {e}"))?;
    let method = o.get("method").and_then(|m| m.as_str()).unwrap_or("GET").to_ascii_uppercase();
    let mut headers = match o.get("headers") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(h) => crate::values::header_pairs(h)?,
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
