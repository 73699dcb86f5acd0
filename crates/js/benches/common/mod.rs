//! The benchmark plugin of ../shared/bench and the request it is called
//! with, shared by the criterion bench and `examples/callcost.rs`.

use interpose_js::{Body, HookRequest};

/// Rejects when `X-Block: 1`, as every peer in the harness does.
pub const PLUGIN: &str = r#"
export async function preIntercept(request) {
  if (request.headers['x-block'] === '1') {
    return { statusCode: 403, body: { type: 'error', reason: 'blocked by plugin', statusCode: 403 } };
  }
  return undefined;
}
"#;

/// `GET /users/me` as wrk sends it, with `X-Block: 1` when `block`.
pub fn request(block: bool) -> HookRequest {
    let mut headers = vec![
        ("host".to_string(), "127.0.0.1:18089".to_string()),
        ("user-agent".to_string(), "wrk".to_string()),
        ("accept".to_string(), "*/*".to_string()),
    ];
    if block {
        headers.push(("x-block".into(), "1".into()));
    }
    HookRequest {
        method: "GET".into(),
        url: "/users/me".into(),
        path: "/users/me".into(),
        headers: headers.into_iter().collect(),
        body: Body::Empty,
        request_id: Some("bench".into()),
        ..Default::default()
    }
}
