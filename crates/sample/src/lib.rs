//! A small stand-in for a standard system, for `interpose demo`, `invoke run
//! --sample` and tests: a real HTTP server with ONES-shaped routes and an
//! in-memory store.
//!
//! Routes (under `/project/api/project` and `/wiki/api/wiki`):
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET | `/project/api/project/users/me` | the caller (from `Ones-User-Id`) |
//! | GET, POST | `/project/api/project/team/:teamUUID/tasks` | list / create tasks |
//! | GET | `/project/api/project/team/:teamUUID/task/:taskUUID` | one task |
//! | GET | `/wiki/api/wiki/team/:teamUUID/page/:pageUUID` | one page |
//! | POST | `/wiki/api/wiki/team/:teamUUID/page/:pageUUID/update_title` | rename a page (`{"title"}`) |
//! | any | `…/echo/*` | what the server received: method, path, query, headers, body |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[derive(Default)]
struct Store {
    tasks: BTreeMap<String, Vec<Value>>,
    pages: BTreeMap<String, Value>,
    next: u64,
}

/// The sample system, serving on `addr` until the task is dropped.
#[derive(Debug)]
pub struct SampleSystem {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SampleSystem {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SampleSystem {
    /// Start on `addr` (port 0 picks one).
    pub async fn start(addr: SocketAddr) -> std::io::Result<SampleSystem> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Mutex::new(Store::default()));
        {
            let mut s = store.lock().unwrap_or_else(|e| e.into_inner());
            s.pages.insert(
                "P1".into(),
                json!({"uuid": "P1", "team_uuid": "T1", "title": "Welcome", "content": "Hello from the sample wiki"}),
            );
        }
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let store = store.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let store = store.clone();
                        async move { Ok::<_, Infallible>(handle(req, &store).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok(SampleSystem { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

async fn handle(req: Request<Incoming>, store: &Mutex<Store>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 16 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "body too large"})),
    };
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = parts.uri.path().to_string();
    let user = parts.headers.get("ones-user-id").and_then(|v| v.to_str().ok()).unwrap_or("anonymous").to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
    let method = parts.method.as_str();
    match (method, segs.as_slice()) {
        (_, [_, "api", _, "echo", ..]) => {
            let headers: BTreeMap<String, String> = parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            reply(
                StatusCode::OK,
                json!({
                    "method": method,
                    "path": path,
                    "query": parts.uri.query(),
                    "headers": headers,
                    "body": String::from_utf8_lossy(&body),
                }),
            )
        }
        ("GET", ["project", "api", "project", "users", "me"]) => reply(
            StatusCode::OK,
            json!({
                "uuid": user, "name": format!("User {user}"), "email": format!("{}@example.com", user.to_lowercase()),
                "team_uuid": "T1", "status": 1,
            }),
        ),
        ("GET", ["project", "api", "project", "team", team, "tasks"]) => {
            let tasks = store.tasks.get(*team).cloned().unwrap_or_default();
            reply(StatusCode::OK, json!({"tasks": tasks}))
        }
        ("POST", ["project", "api", "project", "team", team, "tasks"]) => {
            store.next += 1;
            let mut task = if json_body.is_object() { json_body.clone() } else { json!({}) };
            task["uuid"] = json!(format!("TK{}", store.next));
            task["owner"] = json!(user);
            store.tasks.entry(team.to_string()).or_default().push(task.clone());
            reply(StatusCode::OK, json!({"task": task}))
        }
        ("GET", ["project", "api", "project", "team", team, "task", id]) => {
            match store.tasks.get(*team).and_then(|t| t.iter().find(|x| x["uuid"] == *id)) {
                Some(t) => reply(StatusCode::OK, json!({"task": t})),
                None => reply(StatusCode::NOT_FOUND, json!({"errcode": "NotFound", "reason": "no such task"})),
            }
        }
        ("GET", ["wiki", "api", "wiki", "team", _team, "page", id]) => match store.pages.get(*id) {
            Some(p) => reply(StatusCode::OK, p.clone()),
            None => reply(StatusCode::NOT_FOUND, json!({"errcode": "NotFound", "reason": "no such page"})),
        },
        ("POST", ["wiki", "api", "wiki", "team", team, "page", id, "update_title"]) => {
            let Some(title) = json_body.get("title").and_then(|t| t.as_str()) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"errcode": "InvalidParameter", "reason": "title is required"}),
                );
            };
            let page = store
                .pages
                .entry(id.to_string())
                .or_insert_with(|| json!({"uuid": id, "team_uuid": team, "content": ""}));
            page["title"] = json!(title);
            reply(StatusCode::OK, page.clone())
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"errcode": "NotFound", "reason": format!("the sample system has no route {method} {path}")}),
        ),
    }
}
