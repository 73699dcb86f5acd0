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
//!
//! What each hook type does at run time, and where:
//!
//! | type | phase here | its result (`hookresult.rs`) |
//! | --- | --- | --- |
//! | intercept | `intercept`, each in order | an error status or a `PluginError` answers; anything else continues |
//! | prefix | step 2 of `hooked` | `{headers, query, body}` replace the upstream's (`Outgoing::apply`); an error status rejects |
//! | replace, addition, external | step 3 of `hooked` | the response (`plugin_response`, status 200 by default) |
//! | suffix, subscribe | step 4: after the response, through [`crate::post`] | ignored; durable with a store |
//!
//! A failure (throw, timeout, memory, unusable result) does what the hook's
//! `on_error` says (`hookresult::failed`). Each call is counted and traced
//! in `hookcall.rs`; requests are admitted in `admission.rs`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use interpose_config::Upstream;
use interpose_js::values::scalar;
use interpose_js::HookRequest;
use interpose_routing::{Hook, Matched, Plan};
use tracing::Instrument;

use crate::access::{access_log, Tally};
use crate::admission::{admit, ensure_request_id, split_path, stamp_request_id};
use crate::body::{self, read_limited, Body, ReadError};
use crate::error::GatewayError;
use crate::hookcall::call;
use crate::hookreq::{body_bytes, header_pairs, query_pairs, request_body, view_body};
pub use crate::hookresult::Flow;
use crate::hookresult::{header_map, plugin_response, rejection, returned, unusable, Returned};
use crate::metrics::ScopeStats;
use crate::plugins::HookTarget;
use crate::post::{PostEvent, TeeBody};
use crate::proxy;
use crate::state::Gateway;

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

/// The request path, with what `[[events]]` emits from the exchange: a
/// request a rule names has its body read first (to go in `eventData`), and
/// its response copied as it streams, as post hooks do.
async fn route<B>(
    gw: &Gateway,
    req: Request<B>,
    client: SocketAddr,
    tally: &mut Tally,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<body::BoxError>,
{
    if gw.emitter.is_empty() {
        return route_inner(gw, req, client, tally).await;
    }
    let emission = emission_of(gw, req.uri(), req.method().as_str());
    let Some((emission, rest)) = emission else {
        return route_inner(gw, req, client, tally).await;
    };
    let limit = gw.config.limits.max_body_bytes;
    let (parts, body) = req.into_parts();
    let read_timeout = Duration::from_millis(gw.config.limits.body_read_timeout_ms);
    let bytes = match tokio::time::timeout(read_timeout, read_limited(body, limit)).await {
        Err(_) => return Err(GatewayError::BodyTimeout(gw.config.limits.body_read_timeout_ms)),
        Ok(r) => r.map_err(|e| match e {
            ReadError::TooLarge => GatewayError::BodyTooLarge(limit),
            ReadError::Failed(e) => GatewayError::BadRequest(format!("could not read the request body: {e}")),
        })?,
    };
    let method = parts.method.as_str().to_string();
    let user = parts.headers.get("ones-user-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let req_body = view_body(&parts.headers, &bytes, limit);
    let response = route_boxed(gw, Request::from_parts(parts, body::full(bytes)), client, tally).await?;
    let status = response.status().as_u16();
    let fired = gw.emitter.fired(&emission, status);
    let Some(gw) = gw.shared().filter(|_| !fired.is_empty()) else {
        return Ok(response);
    };
    let (rest_path, query) = match rest.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (rest.clone(), None),
    };
    let query = query_pairs(query.as_deref());
    let (resp_parts, resp_body) = response.into_parts();
    let resp_content = resp_parts.headers.clone();
    let done = Box::new(move |copied: Option<Bytes>| {
        let resp_body = match copied {
            Some(b) => view_body(&resp_content, &b, limit),
            None => interpose_js::Body::Empty,
        };
        let fired = fired
            .into_iter()
            .map(|(t, params)| {
                let data = crate::events::exchange(&method, &rest_path, &query, &params, &req_body, status, &resp_body);
                // The team the path names (`:teamUUID`); none: the organization's.
                let team = params.iter().find(|(k, _)| k == "teamUUID" || k == "team_uuid" || k == "teamID");
                let cx = crate::events::EventContext {
                    team: team.map(|(_, v)| v.clone()).unwrap_or_default(),
                    user: user.clone(),
                };
                (t, data, cx)
            })
            .collect();
        crate::events::emit(gw, fired);
        None
    });
    let tee = TeeBody::new(resp_body, limit, done);
    Ok(Response::from_parts(resp_parts, tee.boxed_unsync()))
}

/// [`route_inner`] for a buffered body, as a boxed future: its `Send` is
/// then checked here, where the compiler can (not inside `route`'s).
fn route_boxed<'a>(
    gw: &'a Gateway,
    req: Request<Body>,
    client: SocketAddr,
    tally: &'a mut Tally,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, GatewayError>> + Send + 'a>> {
    Box::pin(route_inner(gw, req, client, tally))
}

/// The `[[events]]` rules a request may fire, and its path under the mount.
fn emission_of(gw: &Gateway, uri: &http::Uri, method: &str) -> Option<(crate::events::Emission, String)> {
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let (upstream, rest) = gw.mount_for(path_and_query)?;
    let rest_path = rest.split_once('?').map(|(p, _)| p).unwrap_or(rest);
    let segments = split_path(rest_path).ok()?;
    let segs: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
    gw.emitter.matching(&upstream.scope, method, &segs).map(|e| (e, rest.to_string()))
}

async fn route_inner<B>(
    gw: &Gateway,
    mut req: Request<B>,
    client: SocketAddr,
    tally: &mut Tally,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<body::BoxError>,
{
    admit(&mut req, gw.config.limits.max_header_bytes)?;
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
        match returned(hook, call(gw, hook, req, tally).await) {
            Returned::Value(Some(v)) => {
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
            Returned::Value(None) | Returned::Instead(Flow::Continue) => {}
            Returned::Instead(Flow::Respond(resp)) => return Ok(resp),
        }
    }

    // 3. Replace (or an external/addition route) answers; else the upstream does.
    let mut answered = None;
    if let Some(hook) = plan.answer.as_ref().and_then(|g| g.select(&requests.base.query)) {
        let req = requests.for_hook(hook, &matched.values);
        match returned(hook, call(gw, hook, req, tally).await) {
            Returned::Value(v) => {
                match plugin_response(&v.unwrap_or(serde_json::Value::Object(Default::default())), 200) {
                    Ok(resp) => answered = Some(resp),
                    Err(e) => {
                        if let Flow::Respond(resp) = unusable(hook, e, requests.base.request_id.as_deref()) {
                            return Ok(resp);
                        }
                    }
                }
            }
            Returned::Instead(Flow::Continue) => {}
            Returned::Instead(Flow::Respond(resp)) => return Ok(resp),
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

/// Run one intercept hook: a rejection answers, anything else continues.
async fn intercept(
    gw: &Gateway,
    hook: &Arc<Hook<HookTarget>>,
    req: Arc<HookRequest>,
    request_id: Option<&str>,
    tally: &mut Tally,
) -> Flow {
    match returned(hook, call(gw, hook, req, tally).await) {
        // Only a response with an error status rejects; a malformed status
        // is the plugin's mistake, not permission to continue.
        Returned::Value(Some(v)) => match rejection(hook, &v, request_id) {
            Some(resp) => Flow::Respond(resp),
            None => Flow::Continue,
        },
        Returned::Value(None) => Flow::Continue,
        Returned::Instead(flow) => flow,
    }
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
    ensure_request_id(&mut parts.headers);
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

const ONES_PLUGIN_ID: HeaderName = HeaderName::from_static("ones-plugin-id");
const ONES_USER_ID: HeaderName = HeaderName::from_static("ones-user-id");

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
