//! The debug-level spans that find a slow or failing hook in production:
//! a request's span names its route and request id, and every hook call,
//! in the request or after it, runs in a span naming its plugin, function
//! and type. Its own test binary: the subscriber is process-wide.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{decl, eventually, org_plugin, start};
use interpose_test_util::{get, Upstream};

/// What the subscriber writes, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The captured line that contains every one of `parts`.
    fn line_with(&self, parts: &[&str]) -> Option<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().find(|l| parts.iter().all(|p| l.contains(p))).map(str::to_string)
    }
}

#[tokio::test]
async fn hook_calls_are_logged_in_spans_naming_route_plugin_hook_and_request_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("interpose_gateway=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let up = Upstream::start().await;
    let p = org_plugin(
        "spans",
        "  - {type: intercept, methods: [GET], url: /users/me, function: check}\n\
         \x20 - {type: subscribe, methods: [GET], url: /users/me, function: seen}\n",
        "export function check(r) {}\nexport function seen(r) {}\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    let got = get(&gw.url("/project/api/project/users/me"), &[("X-Request-Id", "trace-me-1")]).await;
    assert_eq!(got.status.as_u16(), 200);

    // The intercept: inside the request's span, which names the route.
    eventually("the intercept's line", || captured.line_with(&["request{", "function=check", "hook ran"]).is_some())
        .await;
    let line = captured.line_with(&["function=check", "hook ran"]).unwrap();
    for part in [
        "request{method=GET path=/project/api/project/users/me",
        "request_id=\"trace-me-1\"",
        "route=\"/users/me\"",
        "}:hook{plugin=spans",
        "kind=\"intercept\"",
        "outcome=\"returned\"",
        "took_us=",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    // The subscriber runs after the response, outside the request's span:
    // its own span carries the request id.
    eventually("the subscriber's line", || captured.line_with(&["function=seen", "hook ran"]).is_some()).await;
    let line = captured.line_with(&["function=seen", "hook ran"]).unwrap();
    for part in [
        "hook{plugin=spans",
        "kind=\"subscribe\"",
        "route=/users/me",
        "request_id=\"trace-me-1\"",
        "outcome=\"returned\"",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    gw.stop().await;
}
