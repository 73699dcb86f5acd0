//! The request path against a real upstream on port 0:
//! client sends / upstream sees / client gets.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use interpose_config::Config;
use interpose_gateway::{Gateway, Listening};
use interpose_test_util::{get, plugin, send, send_json, Upstream};
use serde_json::json;

mod common;

use common::Running;

async fn gateway(up: &Upstream, plugins: &[String], extra: &str) -> Running {
    common::start(up, plugins, extra).await
}

fn decl(dir: &tempfile::TempDir, teams: &[&str]) -> String {
    common::decl(dir.path(), teams, None)
}

fn url(gw: &Running, path: &str) -> String {
    gw.url(path)
}

fn org_plugin(name: &str, apis: &str, code: &str) -> tempfile::TempDir {
    common::org_plugin(name, apis, code)
}

#[tokio::test]
async fn unhooked_requests_pass_through_unchanged() {
    let up = Upstream::start().await;
    let gw = gateway(&up, &[], "").await;
    let req = http::Request::post(url(&gw, "/project/api/project/things/a%20b?x=1&y=%2F"))
        .header("host", "example.test:8443")
        .header("x-custom", "1")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("x-forwarded-for", "10.0.0.1")
        .header("content-type", "text/plain")
        .body(interpose_test_util::body("raw body"))
        .unwrap();
    let got = send(req).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["x-upstream"], "yes");
    assert_eq!(got.json(), json!({"upstream": "ok", "path": "/project/api/project/things/a%20b"}));
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/project/api/project/things/a%20b?x=1&y=%2F");
    assert_eq!(seen.headers["host"], "example.test:8443");
    assert_eq!(seen.headers["x-custom"], "1");
    assert_eq!(seen.headers.get_all("x-multi").iter().collect::<Vec<_>>(), ["a", "b"]);
    assert!(seen.headers.get("x-hop").is_none(), "headers named in Connection are hop-by-hop");
    assert_eq!(seen.headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(&seen.body[..], b"raw body");
    assert_eq!(seen.headers["x-request-id"].len(), 32, "a request id is generated and passed upstream");
    get(&url(&gw, "/project/api/project/x"), &[("x-request-id", "mine-1")]).await;
    assert_eq!(up.last().headers["x-request-id"], "mine-1", "the client's request id is kept");

    // Upstream statuses come back as they are.
    let got = get(&url(&gw, "/wiki/api/wiki/status/418"), &[]).await;
    assert_eq!((got.status.as_u16(), got.json()), (418, json!({"status": 418})));
    assert_eq!(up.last().uri, "/wiki/api/wiki/status/418");
    gw.stop().await;
}

#[tokio::test]
async fn errors_outside_the_standard_system() {
    let up = Upstream::start().await;
    let gw = gateway(&up, &[], "[limits]\nupstream_timeout_ms = 300\n").await;
    let got = get(&url(&gw, "/elsewhere/x"), &[]).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["errcode"], "NotFound");
    // Near-miss of a mount is not under it.
    assert_eq!(get(&url(&gw, "/project/api/projectX/users/me"), &[]).await.status, 404);
    let got = get(&url(&gw, "/project/api/project/slow/2000"), &[]).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.json()["errcode"], "UpstreamTimeout");
    for bad in [
        "/project/api/project/a/../../../wiki/api/wiki/x",
        "/project/api/project/a/%2e%2e/b",
        "/project/api/project/a%2Fb",
        "/project/api/project/a/..;/b",
    ] {
        let got = get(&url(&gw, bad), &[]).await;
        assert_eq!(got.status, 400, "{bad}: {}", got.text());
    }
    gw.stop().await;

    // An upstream that is down.
    let dead = Upstream::start().await;
    let dead_url = dead.url();
    drop(dead);
    let text = format!("[[upstreams]]\nscope = \"project\"\nmount = \"/p\"\nurl = \"{dead_url}\"\n");
    let config = Config::from_str_with_env(&text, "t.toml", Path::new("/"), Vec::new()).unwrap();
    let gw = Listening::start(Gateway::new(config).unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let got = get(&format!("http://{}/p/x", gw.addr), &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json()["errcode"], "UpstreamUnavailable");
    gw.shutdown().await;
}

const REJECTS: &str = r#"
import { PluginError, clientError, serverError } from '@ones-op/node-error'
export function byStatus(r) {
  if (r.headers['X-Mode'] === 'status') return { statusCode: 451, headers: { 'X-Why': 'law' }, body: { reason: 'unavailable' } }
  if (r.headers['X-Mode'] === 'text') return { statusCode: 409, body: 'plain conflict' }
  if (r.headers['X-Mode'] === 'allow-200') return { statusCode: 200, body: { ignored: true } }
  if (r.headers['X-Mode'] === 'client') throw clientError('bad input')
  if (r.headers['X-Mode'] === 'server') throw serverError('backend down')
  if (r.headers['X-Mode'] === 'custom') throw new PluginError('warning', 'Custom', 'custom reason', 429)
  if (r.headers['X-Mode'] === 'throw') throw new Error('oops')
  if (r.headers['X-Mode'] === 'spin') { while (true) {} }
  if (r.headers['X-Mode'] === 'alloc') { const a = []; for (;;) a.push(new Array(10000).fill(1)) }
  if (r.headers['X-Mode'] === 'recurse') { const f = (n) => f(n + 1) + 1; f(0) }
  if (r.headers['X-Mode'] === 'bad') return { statusCode: 'nope' }
}
"#;

#[tokio::test]
async fn every_reject_form_and_failure() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "rejects",
        "  - {type: intercept, methods: [GET], url: /users/me, function: byStatus, timeout_ms: 200}\n",
        REJECTS,
    );
    let gw = gateway(&up, &[decl(&p, &[])], "").await;
    let u = url(&gw, "/project/api/project/users/me");
    let cases: &[(&str, u16, serde_json::Value)] = &[
        ("status", 451, json!({"reason": "unavailable"})),
        (
            "client",
            400,
            json!({"type": "warning", "reason": "bad input", "errcode": "ClientError", "statusCode": 400, "model": "plugin.ClientError"}),
        ),
        (
            "server",
            500,
            json!({"type": "error", "reason": "backend down", "errcode": "ServerError", "statusCode": 500, "model": "plugin.ServerError"}),
        ),
        (
            "custom",
            429,
            json!({"type": "warning", "reason": "custom reason", "errcode": "Custom", "statusCode": 429, "model": "plugin.Custom"}),
        ),
    ];
    for (mode, status, body) in cases {
        let before = up.count();
        let got = get(&u, &[("x-mode", mode)]).await;
        assert_eq!((got.status.as_u16(), got.json()), (*status, body.clone()), "{mode}");
        assert_eq!(up.count(), before, "{mode}: the upstream must not be called");
    }
    let got = get(&u, &[("x-mode", "status")]).await;
    assert_eq!(got.headers["x-why"], "law");
    // Path parameters do not dodge the hook (a servlet container would
    // route `me;v=1` to `me`); the upstream would get the path as sent.
    let got = get(&format!("{u};v=1"), &[("x-mode", "status")]).await;
    assert_eq!(got.status, 451);
    let got = get(&u, &[("x-mode", "text")]).await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (409, "plain conflict"));
    // Exact bytes: key order is the plugin's.
    let got = get(&u, &[("x-mode", "client")]).await;
    assert_eq!(
        got.text(),
        r#"{"type":"warning","reason":"bad input","errcode":"ClientError","statusCode":400,"model":"plugin.ClientError"}"#
    );

    // Anything that is not a rejection lets the request through, unmodified.
    for mode in ["none", "allow-200"] {
        let got = get(&u, &[("x-mode", mode), ("ones-user-id", "U1")]).await;
        assert_eq!(got.status, 200, "{mode}");
        assert_eq!(got.headers["x-upstream"], "yes");
        assert_eq!(up.last().headers["ones-user-id"], "U1");
    }

    // Failures: 500 PluginFailure naming the plugin; the plugin keeps serving.
    for (mode, needle) in [
        ("throw", "threw Error: oops"),
        ("spin", "timed out after 200 ms"),
        ("alloc", "ran out of memory"),
        ("recurse", "stack"),
        ("bad", "statusCode"),
    ] {
        let got = get(&u, &[("x-mode", mode)]).await;
        assert_eq!(got.status, 500, "{mode}: {}", got.text());
        let b = got.json();
        assert_eq!(
            (b["type"].as_str(), b["errcode"].as_str(), b["statusCode"].as_u64()),
            (Some("error"), Some("PluginFailure"), Some(500))
        );
        let reason = b["reason"].as_str().unwrap();
        assert!(reason.starts_with("plugin rejects failed: byStatus()"), "{reason}");
        assert!(reason.contains(needle), "{mode}: {reason}");
        assert_eq!(get(&u, &[("x-mode", "none")]).await.status, 200, "after {mode}");
    }
    // Each failure is counted by kind and said in the plugin's own log —
    // a result only the gateway finds unusable (`bad`) as well.
    let metrics = gw.gw.metrics.render(&[], &Default::default());
    for (kind, n) in [("throw", 2), ("timeout", 1), ("memory", 1), ("other", 1)] {
        let line = format!("function=\"byStatus\",type=\"intercept\",kind=\"{kind}\"}} {n}\n");
        assert!(metrics.contains(&line), "{kind}: {metrics}");
    }
    let js = gw.gw.snapshot().instances[0].js.clone();
    let logged: Vec<String> = js.logs_after(0).into_iter().map(|l| l.message).collect();
    assert_eq!(logged.len(), 5, "{logged:?}");
    assert!(logged[4].starts_with("byStatus() returned a value that cannot be used: statusCode"), "{logged:?}");
    gw.stop().await;
}

#[tokio::test]
async fn on_error_allow_lets_requests_through() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "lenient",
        "  - {type: intercept, methods: [GET], url: /users/me, function: f, on_error: allow, timeout_ms: 100}\n",
        "export function f() { while (true) {} }\n",
    );
    let gw = gateway(&up, &[decl(&p, &[])], "").await;
    let got = get(&url(&gw, "/project/api/project/users/me"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(up.count(), 1);
    gw.stop().await;
}

const NAMED: &str = r#"
export function reject(r) { return { statusCode: 403, body: { by: NAME, seen: r.params } } }
export function allow(r) { globalThis.calls = (globalThis.calls || 0) + 1 }
"#;

#[tokio::test]
async fn chain_order_priority_then_install_order() {
    let up = Upstream::start().await;
    let first = org_plugin(
        "first",
        "  - {type: intercept, methods: [GET], url: /users/:id, function: reject}\n",
        &format!("const NAME = 'first'\n{NAMED}"),
    );
    let second = org_plugin(
        "second",
        "  - {type: intercept, methods: [GET], url: /users/:uid, function: reject}\n",
        &format!("const NAME = 'second'\n{NAMED}"),
    );
    let urgent = org_plugin(
        "urgent",
        "  - {type: intercept, methods: [GET], url: /users/me, function: reject, priority: 5, query: {urgent: '1'}}\n",
        &format!("const NAME = 'urgent'\n{NAMED}"),
    );
    let gw = gateway(&up, &[decl(&first, &[]), decl(&second, &[]), decl(&urgent, &[])], "").await;
    let got = get(&url(&gw, "/project/api/project/users/U7"), &[]).await;
    assert_eq!(got.json(), json!({"by": "first", "seen": {"id": "U7"}}), "install order breaks the tie");
    let got = get(&url(&gw, "/project/api/project/users/me?urgent=1"), &[]).await;
    assert_eq!(got.json()["by"], "urgent", "higher priority first");
    // `/users/me` is its own interface (static beats `:id`), so the `:id`
    // hooks do not run for it, and urgent's query does not match.
    let got = get(&url(&gw, "/project/api/project/users/me?urgent=0"), &[]).await;
    assert_eq!((got.status.as_u16(), got.json()["upstream"].as_str()), (200, Some("ok")));
    gw.stop().await;
}

#[tokio::test]
async fn team_and_org_contexts_and_scopes() {
    let up = Upstream::start().await;
    let team = plugin(
        "service: {app_id: tp, version: 1.0.0, name: team-plugin, scope: 1}\napis:\n  - {type: intercept, methods: [POST], url: '/team/:teamUUID/tasks', function: reject}\n",
        &format!("const NAME = 'team'\n{NAMED}"),
    );
    let wiki = org_plugin(
        "wiki-only",
        "  - {type: intercept, methods: [POST], url: '/team/:teamUUID/tasks', scope: wiki, function: reject}\n",
        &format!("const NAME = 'wiki'\n{NAMED}"),
    );
    let gw = gateway(&up, &[decl(&team, &["T1", "T3"]), decl(&wiki, &[])], "").await;
    let body = json!({"summary": "s"});
    for (t, want) in [("T1", 403), ("T2", 200), ("T3", 403)] {
        let got = send_json("POST", &url(&gw, &format!("/project/api/project/team/{t}/tasks")), &body, &[]).await;
        assert_eq!(got.status.as_u16(), want, "team {t}: {}", got.text());
    }
    // What the upstream got after intercepts is the client's body, byte for byte.
    assert_eq!(up.last().body, body.to_string());
    let got = send_json("POST", &url(&gw, "/wiki/api/wiki/team/T2/tasks"), &body, &[]).await;
    assert_eq!(got.json()["by"], "wiki", "the wiki-scope hook runs on the wiki mount only");
    gw.stop().await;
}

#[tokio::test]
async fn query_variants_pick_the_first_declared_match() {
    let up = Upstream::start().await;
    let apis = "  - {type: intercept, methods: [GET], url: /users/me, function: k1, query: {k1: v1}}\n  - {type: intercept, methods: [GET], url: /users/me, function: k2, query: {k2: v2}}\n  - {type: intercept, methods: [GET], url: /users/me, function: k3, query: {k3: v3}}\n";
    let code = "export const k1 = () => ({ statusCode: 403, body: 'k1' })\nexport const k2 = () => ({ statusCode: 403, body: 'k2' })\nexport const k3 = () => ({ statusCode: 403, body: 'k3' })\n";
    let p = org_plugin("variants", apis, code);
    let gw = gateway(&up, &[decl(&p, &[])], "").await;
    let u = |q: &str| url(&gw, &format!("/project/api/project/users/me{q}"));
    assert_eq!(get(&u("?k2=v2"), &[]).await.text(), "k2");
    assert_eq!(get(&u("?k1=v1&k2=v2&k3=v3"), &[]).await.text(), "k1");
    assert_eq!(get(&u("?k3=v3&k2=v2"), &[]).await.text(), "k2");
    let got = get(&u(""), &[]).await;
    assert_eq!((got.status.as_u16(), got.headers.get("x-upstream").is_some()), (200, true));
    assert_eq!(get(&u("?k1=other"), &[]).await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn hooked_bodies_are_limited_and_parsed() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "bodies",
        "  - {type: intercept, methods: [POST], url: /echo, function: f}\n",
        "export function f(r) { if (r.body && r.body.deny) return { statusCode: 403, body: { got: r.body } } }\n",
    );
    let gw = gateway(&up, &[decl(&p, &[])], "[limits]\nmax_body_bytes = 1000\n").await;
    let u = url(&gw, "/project/api/project/echo");
    let got = send_json("POST", &u, &json!({"deny": true, "n": [1, 2]}), &[]).await;
    assert_eq!(got.json(), json!({"got": {"deny": true, "n": [1, 2]}}));
    let got = send_json("POST", &u, &json!({"pad": "x".repeat(2000)}), &[]).await;
    assert_eq!(got.status, 413);
    assert_eq!(got.json()["errcode"], "PayloadTooLarge");
    let req = http::Request::post(&u)
        .header("content-type", "application/json")
        .body(interpose_test_util::body("{not json"))
        .unwrap();
    let got = send(req).await;
    assert_eq!(got.status, 400);
    assert!(got.json()["reason"].as_str().unwrap().contains("not valid JSON"));
    // JSON that is not even UTF-8 is refused too; other bytes are a body.
    let req = http::Request::post(&u)
        .header("content-type", "application/json")
        .body(interpose_test_util::body(vec![b'{', 0xff, 0xfe]))
        .unwrap();
    assert_eq!(send(req).await.status, 400);
    let req = http::Request::post(&u)
        .header("content-type", "text/plain")
        .body(interpose_test_util::body(vec![0xff, 0xfe]))
        .unwrap();
    assert_eq!(send(req).await.status, 200);
    // An unhooked route takes a body far over the limit: it is streamed.
    let req = http::Request::post(url(&gw, "/project/api/project/count"))
        .body(interpose_test_util::body(vec![b'a'; 100_000]))
        .unwrap();
    let got = send(req).await;
    assert_eq!(got.json(), json!({"bytes": 100000}));
    gw.stop().await;
}

/// Hooks that say `body: false` leave the body unread: it streams to the
/// upstream past `max_body_bytes`, as on an unhooked route. One hook on the
/// route that reads bodies (the default) makes it buffered again.
#[tokio::test]
async fn hooks_that_do_not_read_the_body_leave_it_streaming() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "headers-only",
        "  - {type: intercept, methods: [POST], url: /count, function: f, body: false}\n  \
         - {type: prefix, methods: [PUT], url: /count, function: p, body: false}\n",
        "export function f(r) { if (r.body !== undefined || r.headers['x-deny']) return { statusCode: 403, body: { saw: typeof r.body } } }\n\
         export function p(r) { if (r.query.replace) return { body: 'short' }; return { headers: { ...r.headers, 'x-prefixed': '1' } } }\n",
    );
    let gw = gateway(&up, &[decl(&p, &[])], "[limits]\nmax_body_bytes = 1000\n").await;
    let big = |method: &str, at: String| {
        http::Request::builder().method(method).uri(at).body(interpose_test_util::body(vec![b'a'; 100_000])).unwrap()
    };
    let got = send(big("POST", url(&gw, "/project/api/project/count"))).await;
    assert_eq!(got.json(), json!({"bytes": 100000}));
    let mut denied = big("POST", url(&gw, "/project/api/project/count"));
    denied.headers_mut().insert("x-deny", "1".parse().unwrap());
    let got = send(denied).await;
    assert_eq!((got.status.as_u16(), got.json()), (403, json!({"saw": "undefined"})));
    // A prefix that keeps the body keeps its length; one that replaces it sends its own.
    let got = send(big("PUT", url(&gw, "/project/api/project/count"))).await;
    assert_eq!(got.json(), json!({"bytes": 100000}));
    assert_eq!(up.last().headers["x-prefixed"], "1");
    let got = send(big("PUT", url(&gw, "/project/api/project/count?replace=1"))).await;
    assert_eq!(got.json(), json!({"bytes": 5}));
    gw.stop().await;

    // Another plugin's subscriber on the route reads bodies: buffered, limited.
    let s = org_plugin(
        "reader",
        "  - {type: subscribe, methods: [POST], url: /count, function: s}\n",
        "export function s(r) {}\n",
    );
    let gw = gateway(&up, &[decl(&p, &[]), decl(&s, &[])], "[limits]\nmax_body_bytes = 1000\n").await;
    assert_eq!(send(big("POST", url(&gw, "/project/api/project/count"))).await.status, 413);
    gw.stop().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn unhooked_routes_stream_100_mb_both_ways_with_flat_memory() {
    use http_body_util::BodyExt;
    let up = Upstream::start().await;
    let gw = gateway(&up, &[], "").await;
    let before = rss_kib();
    // Download: read frame by frame, never holding the whole body.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<interpose_test_util::TestBody>();
    let req = http::Request::get(url(&gw, "/project/api/project/big/100")).body(interpose_test_util::body("")).unwrap();
    let resp = client.request(req).await.unwrap();
    let mut body = resp.into_body();
    let mut n = 0usize;
    while let Some(frame) = body.frame().await {
        n += frame.unwrap().data_ref().map(|d| d.len()).unwrap_or(0);
    }
    assert_eq!(n, 100 << 20);
    // Upload: a 100 MiB stream the upstream counts without keeping.
    let chunk = bytes::Bytes::from(vec![b'u'; 1 << 20]);
    let stream = futures_util::stream::iter(
        (0..100).map(move |_| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone()))),
    );
    let req = http::Request::post(url(&gw, "/project/api/project/count"))
        .body(http_body_util::StreamBody::new(stream).boxed())
        .unwrap();
    let got = send(req).await;
    assert_eq!(got.json(), json!({"bytes": 100 << 20}));
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 40 * 1024, "RSS grew by {grown} KiB while streaming 200 MiB");
    gw.stop().await;
}

#[tokio::test]
async fn bad_plugins_keep_the_gateway_from_starting() {
    let up = Upstream::start().await;
    let missing_fn = org_plugin(
        "nofn",
        "  - {type: intercept, methods: [GET], url: /users/me, function: absent}\n",
        "export function present() {}\n",
    );
    let bad_scope = org_plugin(
        "badscope",
        "  - {type: intercept, methods: [GET], url: /users/me, scope: crm, function: f}\n",
        "export function f() {}\n",
    );
    let team_no_teams = plugin("service: {app_id: t, version: 1.0.0, name: t, scope: 1}\napis: []\n", "export {}\n");
    let text = format!(
        "[[upstreams]]\nscope = \"project\"\nmount = \"/p\"\nurl = \"{}\"\n{}{}{}",
        up.url(),
        decl(&missing_fn, &[]),
        decl(&bad_scope, &[]),
        decl(&team_no_teams, &[])
    );
    let config = Config::from_str_with_env(&text, "t.toml", Path::new("/"), Vec::new()).unwrap();
    let err = Gateway::new(config).expect_err("refused").to_string();
    assert!(err.contains("absent() is not exported by backend/src/index.ts"), "{err}");
    assert!(err.contains("no upstream serves scope \"crm\""), "{err}");
    assert!(err.contains("is a team-level plugin (service.scope 1); list the teams"), "{err}");
}

/// A plugin is installed once per team or organization: the config file
/// cannot declare it twice at one place (its intercepts would run twice).
#[tokio::test]
async fn a_plugin_declared_twice_at_one_place_is_refused() {
    let up = Upstream::start().await;
    let team = plugin(
        "service: {app_id: tw, version: 1.0.0, name: twice, scope: 1}\napis:\n  - {type: intercept, methods: [GET], url: '/team/:teamUUID/x', function: f}\n",
        "export function f() {}\n",
    );
    let org = org_plugin(
        "orgtwice",
        "  - {type: intercept, methods: [GET], url: /users/me, function: f}\n",
        "export function f() {}\n",
    );
    let start = |decls: String| {
        let text = format!("[[upstreams]]\nscope = \"project\"\nmount = \"/p\"\nurl = \"{}\"\n{decls}", up.url());
        let config = Config::from_str_with_env(&text, "t.toml", Path::new("/"), Vec::new()).unwrap();
        Gateway::new(config).map(|_| ()).map_err(|e| e.to_string())
    };
    let err = start(format!("{}{}", decl(&team, &["T1"]), decl(&team, &["T2", "T1"]))).expect_err("refused");
    assert!(
        err.contains("plugins[1]: twice (app_id tw) is already declared for team T1 by plugins[0]; a plugin is installed once per team or organization"),
        "{err}"
    );
    let err = start(format!("{}{}", decl(&org, &[]), decl(&org, &[]))).expect_err("refused");
    assert!(
        err.contains("plugins[1]: orgtwice (app_id orgtwice) is already declared for the organization by plugins[0]"),
        "{err}"
    );
    // Other teams are other places.
    start(format!("{}{}", decl(&team, &["T1"]), decl(&team, &["T2"]))).expect("starts");
}
