//! The request path, in the order of DESIGN.md:
//!
//! ```text
//! match (mount → scope, method, pattern, query)
//!   → intercept hooks in order: the first rejection is the response
//!   → prefix hook: may rewrite headers, query, body
//!   → replace hook answers, or the upstream does
//!   → after the response: suffix and subscribe hooks (asynchronous)
//! ```
//!
//! A request no hook applies to is streamed to the upstream untouched.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use interpose_config::Upstream;
use interpose_js::values::scalar;
use interpose_js::{CallOutcome, HookError, HookRequest, PluginErrorData};
use interpose_manifest::OnError;
use interpose_routing::{Hook, Matched, Plan};

use crate::body::{self, read_limited, Body, ReadError};
use crate::error::{json_error, GatewayError};
use crate::hookreq::{body_bytes, header_pairs, query_pairs, request_body, view_body};
use crate::metrics::{RouteStats, ScopeStats};
use crate::plugins::HookTarget;
use crate::post::{PostEvent, TeeBody};
use crate::proxy;
use crate::state::Gateway;

/// What a hook decided.
pub enum Flow {
    /// Go on to the next step.
    Continue,
    /// This is the response; later steps are skipped.
    Respond(Response<Body>),
}

/// Serve one request; never fails (errors become JSON responses).
pub async fn handle<B>(gw: &Gateway, req: Request<B>, client: SocketAddr) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<body::BoxError>,
{
    let started = Instant::now();
    let access = gw.config.log.access_log.then(|| (req.method().clone(), req.uri().clone()));
    let mut tally = Tally::default();
    // One span per request (debug level: free unless asked for).
    let span = tracing::debug_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = tracing::field::Empty,
        route = tracing::field::Empty,
    );
    let resp = match route(gw, req, client, &mut tally).instrument(span).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    if let Some(r) = &tally.route {
        r.count(resp.status().as_u16());
    }
    match &tally.scope {
        Some(s) => s.count(tally.hooked, resp.status().as_u16()),
        None => {
            gw.metrics.unmatched.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Some((method, uri)) = access {
        access_log(&method, &uri, &resp, started, client, &tally);
    }
    resp
}

/// What one request did, for metrics and the access log.
#[derive(Default)]
struct Tally {
    scope: Option<Arc<ScopeStats>>,
    /// The hooked route's counters.
    route: Option<Arc<RouteStats>>,
    hooked: bool,
    request_id: Option<String>,
    /// (plugin, function, type, microseconds) of each hook that ran.
    hooks: Vec<(String, String, &'static str, u64)>,
}

/// One JSON line per request on stdout (`log.access_log = true`).
fn access_log(
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

async fn route<B>(
    gw: &Gateway,
    mut req: Request<B>,
    client: SocketAddr,
    tally: &mut Tally,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<body::BoxError>,
{
    check_target(&mut req)?;
    check_header_size(req.headers(), gw.config.limits.max_header_bytes)?;
    check_framing(req.headers())?;
    let uri = req.uri().clone();
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let (upstream, rest) =
        gw.mount_for(path_and_query).ok_or_else(|| GatewayError::NoMount(req.uri().path().to_string()))?;
    tally.scope = gw.metrics.scopes.get(&upstream.scope).cloned();
    let (rest_path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let segments = split_path(rest_path)?;
    let segs: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();

    let snapshot = gw.snapshot();
    let method = req.method().as_str();
    // Addition routes exist only for callers that name the instance.
    let plugin_id = req.headers().get(&ONES_PLUGIN_ID).and_then(|v| v.to_str().ok());
    let addition = plugin_id
        .and_then(|id| snapshot.routes.lookup_addition(id, &upstream.scope, method, &segs).map(|m| (Some(id), m)));
    let matched = addition.or_else(|| snapshot.routes.lookup(&upstream.scope, method, &segs).map(|m| (None, m)));
    let Some((addition_of, matched)) = matched.filter(|(_, m)| !m.plan().is_empty()) else {
        let (mut parts, body) = req.into_parts();
        if gw.config.log.access_log {
            // The access log names the id the upstream gets (forward would make one).
            tally.request_id = Some(stamp_request_id(&mut parts));
        }
        let body = body.map_err(Into::into).boxed_unsync();
        return forward(gw, parts, upstream, rest, client, body, tally.scope.as_deref()).await;
    };
    tally.hooked = true;
    tally.route = snapshot.route_stats.get(addition_of, matched.interface).cloned();
    hooked(gw, req, upstream, rest, rest_path, query, &matched, client, tally).await
}

#[allow(clippy::too_many_arguments)]
async fn hooked<B>(
    gw: &Gateway,
    req: Request<B>,
    upstream: &Upstream,
    rest: &str,
    rest_path: &str,
    query: Option<&str>,
    matched: &Matched<'_, '_, HookTarget>,
    client: SocketAddr,
    tally: &mut Tally,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<body::BoxError>,
{
    let plan: &Plan<HookTarget> = matched.plan();
    let (mut parts, body) = req.into_parts();
    let limit = gw.config.limits.max_body_bytes;
    let read_timeout = Duration::from_millis(gw.config.limits.body_read_timeout_ms);
    // No hook reads it (`body: false`): it streams to the upstream unread.
    let mut streamed = None;
    let bytes = if body.is_end_stream() {
        // Nothing to read (a GET, say): no timer needed.
        Bytes::new()
    } else if !plan.needs_body() {
        streamed = Some(body.map_err(Into::into).boxed_unsync());
        Bytes::new()
    } else {
        match tokio::time::timeout(read_timeout, read_limited(body, limit)).await {
            Err(_) => return Err(GatewayError::BodyTimeout(gw.config.limits.body_read_timeout_ms)),
            Ok(r) => r.map_err(|e| match e {
                ReadError::TooLarge => GatewayError::BodyTooLarge(limit),
                ReadError::Failed(e) => GatewayError::BadRequest(format!("could not read the request body: {e}")),
            })?,
        }
    };
    let query_pairs = query_pairs(query);
    let request_id = stamp_request_id(&mut parts);
    let span = tracing::Span::current();
    span.record("request_id", request_id.as_str());
    span.record("route", matched.interface.pattern.as_str());
    if gw.config.log.access_log {
        tally.request_id = Some(request_id.clone());
    }
    let base = HookRequest {
        method: parts.method.as_str().to_string(),
        url: rest.to_string(),
        path: rest_path.to_string(),
        query: query_pairs,
        params: Vec::new(),
        headers: header_pairs(&parts.headers),
        body: request_body(&parts.headers, &bytes, limit)?,
        team_uuid: matched.interface.team(&matched.values).map(str::to_string),
        user_uuid: parts.headers.get(ONES_USER_ID).and_then(|v| v.to_str().ok()).map(str::to_string),
        post: None,
        request_id: Some(request_id),
        extra: Vec::new(),
    };
    let mut requests = RequestCache::new(base);

    // 1. Intercepts, in order: the first rejection is the response.
    for group in &plan.intercepts {
        let Some(hook) = group.select(&requests.base.query) else { continue };
        let req = requests.for_hook(hook, &matched.values);
        if let Flow::Respond(resp) = intercept(gw, hook, req, requests.base.request_id.as_deref(), tally).await {
            return Ok(resp);
        }
    }

    // 2. Prefix: what it returns is what the upstream gets.
    // The hooks saw the headers as pairs; from here on they are the upstream's.
    let mut outgoing = Outgoing {
        headers: std::mem::take(&mut parts.headers),
        query: query.map(str::to_string),
        body: bytes,
        streamed: streamed.is_some(),
    };
    if let Some(hook) = plan.prefix.as_ref().and_then(|g| g.select(&requests.base.query)) {
        let req = requests.for_hook(hook, &matched.values);
        match call(gw, hook, req, tally).await {
            Ok(CallOutcome::Returned(Some(v))) => {
                if let Some(resp) = rejection(hook, &v, requests.base.request_id.as_deref()) {
                    return Ok(resp);
                }
                if let Err(e) = outgoing.apply(&v) {
                    if let Flow::Respond(resp) = unusable(hook, e, requests.base.request_id.as_deref()) {
                        return Ok(resp);
                    }
                } else {
                    requests.rebase(&outgoing, limit);
                }
            }
            Ok(CallOutcome::Returned(None)) => {}
            Ok(CallOutcome::Rejected(p)) => return Ok(plugin_error(&p)),
            Err(e) => {
                if let Flow::Respond(resp) = failed(hook, e) {
                    return Ok(resp);
                }
            }
        }
    }

    // 3. Replace (or an external/addition route) answers; else the upstream does.
    let mut answered = None;
    if let Some(hook) = plan.answer.as_ref().and_then(|g| g.select(&requests.base.query)) {
        let req = requests.for_hook(hook, &matched.values);
        match call(gw, hook, req, tally).await {
            Ok(CallOutcome::Returned(v)) => {
                match plugin_response(&v.unwrap_or(serde_json::Value::Object(Default::default())), 200) {
                    Ok(resp) => answered = Some(resp),
                    Err(e) => {
                        if let Flow::Respond(resp) = unusable(hook, e, requests.base.request_id.as_deref()) {
                            return Ok(resp);
                        }
                    }
                }
            }
            Ok(CallOutcome::Rejected(p)) => return Ok(plugin_error(&p)),
            Err(e) => {
                if let Flow::Respond(resp) = failed(hook, e) {
                    return Ok(resp);
                }
            }
        }
    }
    let post_hooks: Vec<Arc<Hook<HookTarget>>> = plan
        .suffix
        .iter()
        .chain(plan.subscribes.iter())
        .filter_map(|g| g.select(&requests.base.query).cloned())
        .collect();
    let req_headers = if post_hooks.is_empty() { Default::default() } else { header_pairs(&outgoing.headers) };
    let req_body = if post_hooks.is_empty() {
        interpose_js::Body::Empty
    } else {
        view_body(&outgoing.headers, &outgoing.body, limit)
    };
    let response = match answered {
        Some(resp) => resp,
        None => {
            let rest = match &outgoing.query {
                Some(q) => format!("{rest_path}?{q}"),
                None => rest_path.to_string(),
            };
            let mut parts = parts;
            parts.headers = std::mem::take(&mut outgoing.headers);
            let body = match streamed {
                Some(stream) if outgoing.streamed => stream,
                _ => body::full(outgoing.body.clone()),
            };
            forward(gw, parts, upstream, &rest, client, body, tally.scope.as_deref()).await?
        }
    };

    // 4. Suffix and subscribe: told after the response has been sent.
    if post_hooks.is_empty() {
        return Ok(response);
    }
    let base = (*requests.base).clone();
    let posts = gw.posts.clone();
    let status = response.status().as_u16();
    let (resp_parts, resp_body) = response.into_parts();
    let resp_headers = header_pairs(&resp_parts.headers);
    let resp_content = resp_parts.headers.clone();
    let done = Box::new(move |copied: Option<Bytes>| {
        let resp_body = match copied {
            Some(b) => view_body(&resp_content, &b, limit),
            None => interpose_js::Body::Empty,
        };
        let post = interpose_js::PostHook { req_headers, req_body, resp_headers, resp_body, status };
        let request = Arc::new(HookRequest { post: Some(Arc::new(post)), ..base });
        posts.offer(PostEvent { hooks: post_hooks, request })
    });
    let tee = TeeBody::new(resp_body, gw.config.limits.max_body_bytes, done);
    Ok(Response::from_parts(resp_parts, tee.boxed_unsync()))
}

/// The request the upstream will get, as a prefix hook may rewrite it.
struct Outgoing {
    headers: http::HeaderMap,
    /// Raw query string.
    query: Option<String>,
    body: Bytes,
    /// The client's body goes as it comes (no hook read it, and the prefix
    /// did not replace it): its framing headers stay.
    streamed: bool,
}

impl Outgoing {
    /// Apply a prefix result: `headers`, `query`, `body` replace what was there.
    fn apply(&mut self, v: &serde_json::Value) -> Result<(), String> {
        let obj = v.as_object().ok_or_else(|| format!("a prefix hook returns {{headers, query, body}}, got {v}"))?;
        if let Some(h) = obj.get("headers").filter(|h| !h.is_null()) {
            self.headers = header_map(h)?;
        }
        if let Some(q) = obj.get("query").filter(|q| !q.is_null()) {
            let map = q.as_object().ok_or("query must be an object")?;
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in map {
                match v {
                    serde_json::Value::Array(items) => {
                        for i in items {
                            ser.append_pair(k, &scalar(i, &|| format!("query parameter {k:?}"))?);
                        }
                    }
                    other => {
                        ser.append_pair(k, &scalar(other, &|| format!("query parameter {k:?}"))?);
                    }
                }
            }
            let q = ser.finish();
            self.query = (!q.is_empty()).then_some(q);
        }
        if let Some(b) = obj.get("body") {
            let (bytes, content_type) = body_bytes(b);
            self.body = bytes;
            self.streamed = false;
            // The hook saw the body decoded and returns it plain.
            self.headers.remove(http::header::CONTENT_ENCODING);
            if let Some(ct) = content_type {
                self.headers.entry(http::header::CONTENT_TYPE).or_insert(HeaderValue::from_static(ct));
            }
        }
        if self.streamed {
            return Ok(());
        }
        // The body may have changed size: say so exactly.
        self.headers.remove(http::header::TRANSFER_ENCODING);
        if self.body.is_empty() && !self.headers.contains_key(http::header::CONTENT_LENGTH) {
            return Ok(());
        }
        self.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        Ok(())
    }
}

/// A result with an error status is a rejection (intercept and prefix).
fn rejection(hook: &Arc<Hook<HookTarget>>, v: &serde_json::Value, request_id: Option<&str>) -> Option<Response<Body>> {
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

/// Run one intercept hook: a rejection answers, anything else continues.
async fn intercept(
    gw: &Gateway,
    hook: &Arc<Hook<HookTarget>>,
    req: Arc<HookRequest>,
    request_id: Option<&str>,
    tally: &mut Tally,
) -> Flow {
    match call(gw, hook, req, tally).await {
        // Only a response with an error status rejects; a malformed status
        // is the plugin's mistake, not permission to continue.
        Ok(CallOutcome::Returned(Some(v))) => match rejection(hook, &v, request_id) {
            Some(resp) => Flow::Respond(resp),
            None => Flow::Continue,
        },
        Ok(CallOutcome::Returned(None)) => Flow::Continue,
        Ok(CallOutcome::Rejected(p)) => Flow::Respond(plugin_error(&p)),
        Err(e) => failed(hook, e),
    }
}

/// Call a hook, counting it (calls, latency, rejects, failures by kind).
async fn call(
    gw: &Gateway,
    hook: &Arc<Hook<HookTarget>>,
    req: Arc<HookRequest>,
    tally: &mut Tally,
) -> Result<CallOutcome, HookError> {
    let ms = hook.api.timeout_ms.unwrap_or(gw.config.limits.hook_timeout_ms);
    let stats = &hook.payload.stats;
    let t0 = Instant::now();
    let call = gw.host.call(&hook.payload.js, &hook.api.function, req, Duration::from_millis(ms));
    let out = traced(hook_span(hook, None), t0, call).await;
    let took = t0.elapsed();
    stats.record(took, &out);
    if gw.config.log.access_log {
        tally.hooks.push((
            hook.instance.name.clone(),
            hook.api.function.clone(),
            hook.api.kind.as_str(),
            took.as_micros() as u64,
        ));
    }
    out
}

/// The span a hook call runs in (debug level, like the request's): its
/// plugin, instance, function, type and route. A post hook runs after its
/// request's span has closed, so it passes the request id here.
pub(crate) fn hook_span(hook: &Hook<HookTarget>, request_id: Option<&str>) -> tracing::Span {
    span_of_hook(&hook.instance.name, &hook.instance.id, &hook.api.function, hook.api.kind, &hook.api.url, request_id)
}

/// [`hook_span`] from the hook's parts, for a stored event's delivery,
/// which finds them in the live plugins rather than the route table (it
/// records the event's id in `event`).
pub(crate) fn span_of_hook(
    plugin: &str,
    instance: &str,
    function: &str,
    kind: interpose_manifest::HookKind,
    route: &dyn std::fmt::Display,
    request_id: Option<&str>,
) -> tracing::Span {
    tracing::debug_span!(
        "hook",
        plugin = %plugin,
        instance = %instance,
        function = %function,
        kind = kind.as_str(),
        route = %route,
        request_id,
        event = tracing::field::Empty,
    )
}

/// Run a hook call (started at `t0`) inside `span`, ending with a debug
/// event of its time and outcome, so the event carries the span's fields.
/// A plain function returning the instrumented future, so the call is not
/// wrapped in one more future of its own.
pub(crate) fn traced(
    span: tracing::Span,
    t0: Instant,
    call: impl std::future::Future<Output = Result<CallOutcome, HookError>>,
) -> impl std::future::Future<Output = Result<CallOutcome, HookError>> {
    async move {
        let out = call.await;
        tracing::debug!(took_us = t0.elapsed().as_micros() as u64, outcome = outcome(&out), "hook ran");
        out
    }
    .instrument(span)
}

fn outcome(r: &Result<CallOutcome, HookError>) -> &'static str {
    match r {
        Ok(CallOutcome::Returned(_)) => "returned",
        Ok(CallOutcome::Rejected(_)) => "rejected",
        Err(e) => e.kind(),
    }
}

/// A failing hook: its `on_error` decides.
fn failed(hook: &Hook<HookTarget>, error: HookError) -> Flow {
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
fn unusable(hook: &Hook<HookTarget>, reason: String, request_id: Option<&str>) -> Flow {
    let error = HookError::BadResult(reason);
    hook.payload.stats.failed(error.failure());
    hook.payload.js.record_failure(&hook.api.function, &error, request_id.map(str::to_string));
    failed(hook, error)
}

fn plugin_error(p: &PluginErrorData) -> Response<Body> {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_error(status, &p.kind, &p.reason, &p.errcode)
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
fn header_map(v: &serde_json::Value) -> Result<http::HeaderMap, String> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in interpose_js::values::header_pairs(v)? {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name {k:?}"))?;
        let value = HeaderValue::from_str(&v).map_err(|_| format!("invalid value for header {k:?}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Forward to the upstream; `rest` is the path and query under the mount.
async fn forward(
    gw: &Gateway,
    mut parts: Parts,
    upstream: &Upstream,
    rest: &str,
    client: SocketAddr,
    body: Body,
    stats: Option<&ScopeStats>,
) -> Result<Response<Body>, GatewayError> {
    let uri = proxy::upstream_uri(upstream, rest)?;
    // A protocol switch (WebSocket) becomes a tunnel when the client's
    // connection can be taken over (HTTP/1.1 through the server).
    let switch = match proxy::upgrade_protocol(&parts.headers) {
        Some(protocol) => parts.extensions.remove::<hyper::upgrade::OnUpgrade>().map(|on| (protocol, on)),
        None => None,
    };
    proxy::strip_hop_by_hop(&mut parts.headers);
    proxy::add_forwarded(&mut parts.headers, client.ip());
    // The upstream and the hooks share one request id.
    if !parts.headers.contains_key(&X_REQUEST_ID) {
        parts
            .headers
            .insert(X_REQUEST_ID, HeaderValue::from_maybe_shared(Bytes::from(new_request_id())).expect("hex digits"));
    }
    let mut req = Request::new(body);
    *req.method_mut() = parts.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = parts.headers;
    let timeout = Duration::from_millis(gw.config.limits.upstream_timeout_ms);
    let t0 = Instant::now();
    let out = match switch {
        Some((protocol, on_client)) => {
            proxy::tunnel(&gw.client, req, protocol, on_client, &upstream.scope, timeout).await
        }
        None => proxy::send(&gw.client, req, &upstream.scope, timeout).await,
    };
    if let Some(stats) = stats {
        match &out {
            Ok(_) => stats.upstream.observe(t0.elapsed()),
            Err(_) => {
                stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    out
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const ONES_PLUGIN_ID: HeaderName = HeaderName::from_static("ones-plugin-id");
const ONES_USER_ID: HeaderName = HeaderName::from_static("ones-user-id");

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

/// The request id, set on the request when it came without one: the
/// upstream, the hooks and the logs all get the same.
fn stamp_request_id(parts: &mut Parts) -> String {
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

/// Refuse message framing that two HTTP parsers could read differently
/// (request smuggling): `Transfer-Encoding` with `Content-Length`, or any
/// transfer coding other than `chunked`.
/// The connection's read buffer bounds a request head only roughly (it is
/// checked between reads), so the limit is enforced here exactly.
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

fn check_header_size(headers: &http::HeaderMap, max: usize) -> Result<(), GatewayError> {
    let size: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if size > max {
        return Err(GatewayError::HeadersTooLarge(max));
    }
    Ok(())
}

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
fn split_path(path: &str) -> Result<Vec<Cow<'_, str>>, GatewayError> {
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

/// Hooks usually share parameter names; reuse one request per name list.
struct RequestCache {
    base: Arc<HookRequest>,
    last: Option<(Vec<String>, Arc<HookRequest>)>,
}

impl RequestCache {
    fn new(base: HookRequest) -> Self {
        RequestCache { base: Arc::new(base), last: None }
    }

    /// After a prefix hook: later hooks see the request as the upstream will.
    fn rebase(&mut self, out: &Outgoing, limit: usize) {
        let base = Arc::make_mut(&mut self.base);
        base.headers = header_pairs(&out.headers);
        base.query = query_pairs(out.query.as_deref());
        base.body = view_body(&out.headers, &out.body, limit);
        base.url = match &out.query {
            Some(q) => format!("{}?{q}", base.path),
            None => base.path.clone(),
        };
        self.last = None;
    }

    fn for_hook(&mut self, hook: &Hook<HookTarget>, values: &[&str]) -> Arc<HookRequest> {
        let names: Vec<String> = hook.api.url.param_names().map(str::to_string).collect();
        if let Some((n, r)) = &self.last {
            if *n == names {
                return r.clone();
            }
        }
        if names.is_empty() {
            // No parameters to add: share the base instead of copying it.
            return self.base.clone();
        }
        let params = hook.params(values).into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let req = Arc::new(HookRequest { params, ..(*self.base).clone() });
        self.last = Some((names, req.clone()));
        req
    }
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
