//! The admin API (axum, JSON) on `server.admin_listen`: plugins and
//! instances, the route table, logs, health. Every change goes through the
//! control plane's `Manager`. `/api/*` needs `Authorization: Bearer <token>`
//! when `INTERPOSE_ADMIN_TOKEN` is set; the listener refuses to start on a
//! non-loopback address without one. The API is described by the OpenAPI
//! document served at `/openapi.json`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use interpose_control::lifecycle::Step;
use interpose_control::{archive, ControlError, Install, Manager, Placement};
use serde::Deserialize;
use serde_json::json;

const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Clone)]
struct App {
    manager: Arc<Manager>,
    token: Option<Arc<str>>,
}

/// Why the admin listener was not started.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("server.admin_listen {0} is not a loopback address: set INTERPOSE_ADMIN_TOKEN to protect the admin API")]
    NoToken(SocketAddr),
    #[error("cannot listen on {0} (server.admin_listen): {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// The router (tests call it without a socket).
pub fn router(manager: Arc<Manager>, token: Option<String>) -> Router {
    let app = App { manager, token: token.filter(|t| !t.is_empty()).map(Arc::from) };
    let api = Router::new()
        .route("/instances", get(list).post(install))
        .route("/instances/{id}", get(show).delete(uninstall))
        .route("/instances/{id}/enable", post(enable))
        .route("/instances/{id}/disable", post(disable))
        .route("/instances/{id}/upgrade", post(upgrade))
        .route("/instances/{id}/config", axum::routing::put(set_config))
        .route("/instances/{id}/logs", get(logs))
        .route("/instances/{id}/lifecycle/{step}", post(run_step))
        .route("/instances/{id}/timers", get(timers))
        .route("/instances/{id}/timers/{timer}/run", post(run_timer))
        .route("/routes", get(routes))
        .route("/timers", get(all_timers))
        .route("/quarantine", get(quarantine))
        .route("/events", get(events))
        .route("/events/dead", get(dead_events))
        .route("/events/{id}/replay", post(replay_event))
        .route("/events/publish", post(publish_event))
        .layer(DefaultBodyLimit::max(archive::MAX_UPLOAD))
        .layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics).layer(middleware::from_fn_with_state(app.clone(), auth)))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        // The UI: static files that call the API above from the browser.
        .route("/", get(|| async { ui_file("text/html; charset=utf-8", include_str!("ui/index.html")) }))
        .route("/ui/app.js", get(|| async { ui_file("text/javascript; charset=utf-8", include_str!("ui/app.js")) }))
        .route("/ui/style.css", get(|| async { ui_file("text/css; charset=utf-8", include_str!("ui/style.css")) }))
        .nest("/api", api)
        .fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("no admin route {method} {}; the routes are in /openapi.json", uri.path()),
            )
        })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!("{} does not take {method}; the routes are in /openapi.json", uri.path()),
            )
        })
        .with_state(app)
}

/// A file of the UI. It loads nothing from elsewhere and may not be framed
/// (its buttons change the gateway).
fn ui_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; frame-ancestors 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

/// Bind and serve until `shutdown` resolves; returns the task and the
/// address bound (port 0 picks one).
pub async fn serve(
    manager: Arc<Manager>,
    addr: SocketAddr,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(tokio::task::JoinHandle<()>, SocketAddr), AdminError> {
    if !addr.ip().is_loopback() && token.as_deref().is_none_or(str::is_empty) {
        return Err(AdminError::NoToken(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| AdminError::Bind(addr, e))?;
    let bound = listener.local_addr().map_err(|e| AdminError::Bind(addr, e))?;
    let app = router(manager, token);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!("admin API stopped: {e}");
        }
    });
    Ok((task, bound))
}

async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()));
        if !ok {
            return error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "missing or wrong bearer token (Authorization: Bearer $INTERPOSE_ADMIN_TOKEN)",
            );
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, errcode: &str, reason: &str) -> Response {
    (status, Json(json!({"type": "error", "reason": reason, "errcode": errcode, "statusCode": status.as_u16()})))
        .into_response()
}

fn control_error(e: ControlError) -> Response {
    let (status, errcode) = e.status_and_errcode();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = json!({"type": "error", "reason": e.to_string(), "errcode": errcode, "statusCode": status.as_u16()});
    match &e {
        ControlError::BadPlugin(problems) => body["problems"] = json!(problems),
        ControlError::AlreadyInstalled { id, .. } => body["instance"] = json!(id),
        ControlError::Conflict(cs) => {
            body["conflicts"] = json!(cs
                .iter()
                .map(|c| json!({
                    "rule": c.rule.to_string(), "method": c.method, "scope": c.scope, "pattern": c.pattern, "context": c.context,
                    "first": {"name": c.first.0.name, "app_id": c.first.0.app_id, "instance": c.first.0.id, "hook": c.first.1},
                    "second": {"name": c.second.0.name, "app_id": c.second.0.app_id, "instance": c.second.0.id, "hook": c.second.1},
                }))
                .collect::<Vec<_>>())
        }
        _ => {}
    }
    if status.is_server_error() {
        tracing::error!("admin: {e}");
    }
    (status, Json(body)).into_response()
}

fn reply<T: serde::Serialize>(r: Result<T, ControlError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => control_error(e),
    }
}

async fn ready(State(app): State<App>) -> Response {
    let gw = app.manager.gateway();
    let n = gw.snapshot().instances.len();
    let storage = gw.posts.store().map(|s| s.backend());
    Json(json!({
        "status": "ready",
        "enabled_instances": n,
        "registry_version": app.manager.registry_version(),
        "storage": storage,
    }))
    .into_response()
}

async fn list(State(app): State<App>) -> Response {
    Json(app.manager.list().await).into_response()
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Response {
    reply(app.manager.get(&id).await)
}

#[derive(Deserialize)]
struct InstallQuery {
    team: Option<String>,
    #[serde(default)]
    org: bool,
    /// Enable (and start) right away; default true.
    enable: Option<bool>,
    id: Option<String>,
    #[serde(default)]
    debug: bool,
    /// Operator config values: a JSON object of key: value.
    config: Option<String>,
}

async fn install(State(app): State<App>, Query(q): Query<InstallQuery>, body: Bytes) -> Response {
    let config = match q.config.as_deref().map(config_values).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", &format!("config: {e}")),
    };
    let placement = match (q.team, q.org) {
        (Some(t), false) => Placement::Team(t),
        (None, true) => Placement::Organization,
        (Some(_), true) => {
            return error(StatusCode::BAD_REQUEST, "BadRequest", "give either team=UUID or org=true, not both")
        }
        (None, false) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "say where to install: team=UUID (team-level plugin) or org=true (organization-level)",
            )
        }
    };
    let how = Install { placement, enable: q.enable.unwrap_or(true), id: q.id, debug: q.debug, config };
    match app.manager.install(&body, how).await {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => control_error(e),
    }
}

async fn enable(State(app): State<App>, Path(id): Path<String>) -> Response {
    reply(app.manager.enable(&id).await)
}

async fn disable(State(app): State<App>, Path(id): Path<String>) -> Response {
    reply(app.manager.disable(&id).await)
}

async fn upgrade(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    reply(app.manager.upgrade(&id, &body).await)
}

async fn uninstall(State(app): State<App>, Path(id): Path<String>) -> Response {
    reply(app.manager.uninstall(&id).await)
}

async fn set_config(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    match config_values(&String::from_utf8_lossy(&body)) {
        Ok(values) => reply(app.manager.set_config(&id, values).await),
        Err(e) => error(StatusCode::BAD_REQUEST, "BadRequest", &e),
    }
}

/// Config values from a JSON object (non-string values as their JSON text).
fn config_values(text: &str) -> Result<BTreeMap<String, String>, String> {
    let values: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("expected a JSON object of key: value: {e}"))?;
    Ok(values
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect())
}

#[derive(Deserialize)]
struct LogsQuery {
    #[serde(default)]
    after: u64,
}

async fn logs(State(app): State<App>, Path(id): Path<String>, Query(q): Query<LogsQuery>) -> Response {
    reply(app.manager.logs(&id, q.after).await.map(|lines| {
        lines
            .into_iter()
            .map(|l| {
                let time = l.time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
                json!({"seq": l.seq, "time_ms": time, "level": l.level.as_str(), "message": l.message, "request_id": l.request_id})
            })
            .collect::<Vec<_>>()
    }))
}

async fn run_step(State(app): State<App>, Path((id, step)): Path<(String, String)>) -> Response {
    let step = match step.as_str() {
        "install" => Step::Install,
        "enable" => Step::Enable,
        "start" => Step::Start,
        "stop" => Step::Stop,
        "disable" => Step::Disable,
        "uninstall" => Step::UnInstall,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("unknown lifecycle step {other:?}: install, enable, start, stop, disable, uninstall"),
            )
        }
    };
    reply(app.manager.run_step(&id, step).await.map(|ran| json!({"ran": ran})))
}

async fn timers(State(app): State<App>, Path(id): Path<String>) -> Response {
    reply(app.manager.timers(&id).await)
}

async fn run_timer(State(app): State<App>, Path((id, timer)): Path<(String, String)>) -> Response {
    reply(app.manager.run_timer(&id, &timer).await)
}

async fn all_timers(State(app): State<App>) -> Response {
    reply(app.manager.all_timers().await)
}

async fn routes(State(app): State<App>) -> Response {
    Json(interpose_control::routes::describe(&app.manager.gateway().snapshot().routes)).into_response()
}

/// Prometheus text format: requests, upstream latency, per-hook calls,
/// latency, rejects and failures, the post-hook queue, JS workers.
async fn metrics(State(app): State<App>) -> Response {
    let gw = app.manager.gateway();
    let extra = [
        ("interpose_post_queue_depth", "Suffix/subscribe events waiting for dispatch.", gw.posts.depth() as f64),
        (
            "interpose_post_dropped_total",
            "Suffix/subscribe events dropped: the queue or the store writer was full, or the store failed.",
            gw.posts.dropped() as f64,
        ),
        ("interpose_js_workers", "JS worker threads (hooks and post hooks).", gw.host.live_workers() as f64),
        (
            "interpose_js_runtimes",
            "JS runtimes alive (one per instance per worker that ran it).",
            gw.host.runtimes() as f64,
        ),
        (
            "interpose_js_stuck_workers_total",
            "JS workers retired because a call overran its deadline.",
            gw.host.stuck_workers() as f64,
        ),
        ("interpose_enabled_instances", "Plugin instances whose hooks are live.", gw.snapshot().instances.len() as f64),
        (
            "interpose_registry_version",
            "The store's registry version this node serves (nodes sharing a store converge on the same one).",
            app.manager.registry_version() as f64,
        ),
        (
            "interpose_quarantined_plugins",
            "Plugins whose calls fail fast after getting stuck repeatedly.",
            gw.host.quarantined().len() as f64,
        ),
    ];
    // The store's events: totals, and those pending by hook (its queue depth).
    let ((pending, dead), stored) = match gw.posts.store() {
        Some(store) => (
            store.event_counts().await.unwrap_or((0, 0)),
            store
                .pending_by_hook()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(instance, function, kind, n)| ((instance, function, kind), n.max(0) as u64))
                .collect(),
        ),
        None => Default::default(),
    };
    let (delivered, retried) = gw.posts.delivery_counts();
    let extra: Vec<(&str, &str, f64)> = extra
        .into_iter()
        .chain([
            ("interpose_post_events_pending", "Stored suffix/subscribe events not yet delivered.", pending as f64),
            ("interpose_post_events_dead", "Stored events that failed every attempt (dead letters).", dead as f64),
            ("interpose_post_events_delivered_total", "Stored events delivered since start.", delivered as f64),
            (
                "interpose_post_events_retried_total",
                "Delivery attempts that failed and were rescheduled.",
                retried as f64,
            ),
        ])
        .collect();
    let mut text = gw.metrics.render(&extra, &stored);
    text.push_str("# HELP interpose_js_heap_bytes JS heap of a plugin instance's runtime (sampled).\n# TYPE interpose_js_heap_bytes gauge\n");
    for i in &gw.snapshot().instances {
        text.push_str(&format!(
            "interpose_js_heap_bytes{{plugin=\"{}\",instance=\"{}\"}} {}\n",
            i.meta.name,
            i.meta.id,
            i.js.heap_bytes()
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Plugins in quarantine (their calls fail fast), with seconds left.
async fn quarantine(State(app): State<App>) -> Response {
    let q: Vec<serde_json::Value> = app
        .manager
        .gateway()
        .host
        .quarantined()
        .into_iter()
        .map(|(p, s)| json!({"plugin": p, "seconds_left": s}))
        .collect();
    Json(q).into_response()
}

/// Durable post-hook delivery: backlog and counters.
async fn events(State(app): State<App>) -> Response {
    let gw = app.manager.gateway();
    let Some(store) = gw.posts.store() else {
        return Json(json!({"durable": false})).into_response();
    };
    match store.event_counts().await {
        Ok((pending, dead)) => {
            let (delivered, retried) = gw.posts.delivery_counts();
            Json(json!({"durable": true, "pending": pending, "dead": dead, "delivered": delivered, "retried": retried}))
                .into_response()
        }
        Err(e) => control_error(ControlError::Store(e)),
    }
}

/// Events that failed every attempt.
async fn dead_events(State(app): State<App>) -> Response {
    let Some(store) = app.manager.gateway().posts.store() else { return Json(json!([])).into_response() };
    match store.dead_events().await {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|r| json!({"id": r.id, "instance": r.instance, "function": r.function, "type": r.kind, "attempts": r.attempts, "last_error": r.last_error, "created_at": r.created_at}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => control_error(ControlError::Store(e)),
    }
}

/// Publish a ONES event (a system's webhook): `{eventType, eventData,
/// teamID?, triggerUserID?}`; every enabled instance that handles the type
/// gets it through the store's queue.
async fn publish_event(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, "BadRequest", &m);
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("the body must be JSON {{eventType, eventData, teamID?, triggerUserID?}}: {e}")),
    };
    let Some(event_type) = v.get("eventType").and_then(|t| t.as_str()).filter(|t| !t.trim().is_empty()) else {
        return bad("eventType is required (e.g. \"ones:project:issue:updated\")".into());
    };
    let text = |k: &str| v.get(k).and_then(|t| t.as_str()).unwrap_or_default().to_string();
    let cx = interpose_gateway::events::EventContext { team: text("teamID"), user: text("triggerUserID") };
    let data = v.get("eventData").cloned().unwrap_or(serde_json::Value::Null);
    match app.manager.gateway().publish(event_type, cx, data).await {
        Ok(n) => (StatusCode::ACCEPTED, Json(json!({"eventType": event_type, "queued": n}))).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", &e),
    }
}

/// Put a dead event back in the queue.
async fn replay_event(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("event id {id:?} is not a number (see GET /api/events/dead)"),
        );
    };
    let Some(store) = app.manager.gateway().posts.store() else {
        return error(StatusCode::NOT_FOUND, "NotFound", "durable delivery is not enabled");
    };
    match store.replay(id).await {
        Ok(true) => Json(json!({"replayed": id})).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "NotFound", &format!("no dead event {id}")),
        Err(e) => control_error(ControlError::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    /// Every route the router serves (read from this file's source) is in
    /// `/openapi.json` with its methods, so the document cannot fall behind.
    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        let source = include_str!("lib.rs");
        let start = source.find("let api = Router::new()").expect("the api router");
        let api_end = source[start..].find(".layer(").expect("its layers") + start;
        let mut seen = 0;
        for (at, line) in source.match_indices(".route(\"") {
            let rest = &source[at + line.len()..];
            let path = &rest[..rest.find('"').expect("closing quote")];
            if path == "/" || path.starts_with("/ui/") {
                continue; // the UI's static files
            }
            let full = if (start..api_end).contains(&at) { format!("/api{path}") } else { path.to_string() };
            let entry = &doc["paths"][&full];
            assert!(entry.is_object(), "{full} is served but not in openapi.json");
            let line_end = rest.find('\n').unwrap_or(rest.len());
            for method in ["get", "post", "put", "delete"] {
                if rest[..line_end].contains(&format!("{method}(")) {
                    assert!(
                        entry[method].is_object(),
                        "{} {full} is served but not in openapi.json",
                        method.to_uppercase()
                    );
                }
            }
            seen += 1;
        }
        assert!(seen >= 17, "found {seen} routes: is the scan still reading the router?");
    }
}
