//! The whole hook family and the rules between them, end to end:
//! client sends / upstream sees / client gets.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{decl, eventually, example, org_plugin, start, start_error, team_plugin};
use interpose_test_util::{get, send_json, Upstream};
use serde_json::json;

#[tokio::test]
async fn replace_answers_without_the_upstream() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "rep",
        "  - {type: replace, methods: [GET], url: /users/me, function: me}\n  - {type: replace, methods: [GET], url: /text, function: text}\n  - {type: replace, methods: [GET], url: /nothing, function: nothing}\n",
        "export function me(r) { return { headers: { 'X-By': 'rep' }, body: { uuid: r.headers['ones-user-id'], replaced: true } } }\n\
         export function text() { return { statusCode: 201, body: 'made' } }\n\
         export function nothing() {}\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    let got = get(&gw.url("/project/api/project/users/me"), &[("Ones-User-Id", "U1")]).await;
    assert_eq!((got.status.as_u16(), got.json()), (200, json!({"uuid": "U1", "replaced": true})));
    assert_eq!(
        (got.headers["x-by"].to_str().unwrap(), got.headers["content-type"].to_str().unwrap()),
        ("rep", "application/json")
    );
    let got = get(&gw.url("/project/api/project/text"), &[]).await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (201, "made"));
    let got = get(&gw.url("/project/api/project/nothing"), &[]).await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (200, ""));
    assert_eq!(up.count(), 0, "a replaced API never reaches the upstream");
    gw.stop().await;
}

/// The request id a hook sees is the one the upstream gets: the client's
/// `X-Request-Id`, or one made for the request.
#[tokio::test]
async fn hooks_see_the_request_id_the_upstream_gets() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "ids",
        "  - {type: prefix, methods: [GET], url: /users/me, function: tag}\n  - {type: replace, methods: [GET], url: /id, function: id}\n",
        "export function tag(r) { return { headers: { ...r.headers, 'x-seen-id': r.headers['X-Request-Id'] } } }\n\
         export function id(r) { return { body: { id: r.headers['x-request-id'] } } }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    let got = get(&gw.url("/project/api/project/id"), &[("X-Request-Id", "mine-9")]).await;
    assert_eq!(got.json(), json!({"id": "mine-9"}));
    for sent in [Some("mine-10"), None] {
        let headers: Vec<(&str, &str)> = sent.map(|v| ("x-request-id", v)).into_iter().collect();
        assert_eq!(get(&gw.url("/project/api/project/users/me"), &headers).await.status, 200);
        let seen = up.last();
        let upstream_id = seen.headers["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(seen.headers["x-seen-id"].to_str().unwrap(), upstream_id, "the hook saw the id the upstream got");
        match sent {
            Some(v) => assert_eq!(upstream_id, v),
            None => assert_eq!(upstream_id.len(), 32, "a generated id: {upstream_id}"),
        }
    }
    gw.stop().await;
}

/// A hook on GET runs for HEAD too: an intercept is not walked past, a
/// replace answers with its headers and no body.
#[tokio::test]
async fn head_requests_meet_the_hooks_of_get() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "heads",
        "  - {type: intercept, methods: [GET], url: /users/me, function: guard}\n  - {type: replace, methods: [GET], url: /text, function: text}\n",
        "export function guard(r) { if (!r.headers['ones-user-id']) return { statusCode: 401, body: { seen: r.method } } }\n\
         export function text(r) { return { headers: { 'X-Method': r.method }, body: 'made' } }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    let head = |path: &str, user: Option<&str>| {
        let mut req = http::Request::head(gw.url(path));
        if let Some(u) = user {
            req = req.header("ones-user-id", u);
        }
        interpose_test_util::send(req.body(interpose_test_util::body(Vec::new())).unwrap())
    };
    let got = head("/project/api/project/users/me", None).await;
    assert_eq!((got.status.as_u16(), got.body.len()), (401, 0));
    assert_eq!(up.count(), 0, "the rule holds for HEAD");
    let got = head("/project/api/project/users/me", Some("U1")).await;
    assert_eq!(got.status, 200);
    assert_eq!(up.last().method, "HEAD");
    let got = head("/project/api/project/text", None).await;
    assert_eq!((got.status.as_u16(), got.headers["x-method"].to_str().unwrap()), (200, "HEAD"));
    assert_eq!((got.headers["content-length"].to_str().unwrap(), got.body.len()), ("4", 0));
    gw.stop().await;
}

#[tokio::test]
async fn replace_calling_its_own_api_does_not_loop_and_prefix_runs_first() {
    let up = Upstream::start().await;
    let gw =
        start(&up, &[decl(&example("title-suffix"), &[], None), decl(&example("wiki-title-replace"), &[], None)], "")
            .await;
    let got = send_json(
        "POST",
        &gw.url("/wiki/api/wiki/team/T1/page/P1/update_title"),
        &json!({"title": "Roadmap"}),
        &[("Ones-User-Id", "U9")],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.headers["x-replaced-by"], "wiki-title-replace");
    assert_eq!(
        got.json(),
        json!({"upstream": "ok", "path": "/wiki/api/wiki/team/T1/page/P1/update_title", "replacedBy": "wiki-title-replace"})
    );
    // Exactly one upstream call: the replace hook's own fetchONES, with the
    // prefix hook's body and the user's header (root: false).
    assert_eq!(up.count(), 1);
    let seen = up.last();
    assert_eq!((seen.method.as_str(), seen.uri.as_str()), ("POST", "/wiki/api/wiki/team/T1/page/P1/update_title"));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&seen.body).unwrap(), json!({"title": "Roadmap-plugin"}));
    assert_eq!(seen.headers["ones-user-id"], "U9");
    gw.stop().await;
}

#[tokio::test]
async fn prefix_rewrites_what_the_upstream_gets() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "pre",
        "  - {type: prefix, methods: [POST], url: /things, function: rewrite}\n  - {type: prefix, methods: [POST], url: /same, function: same}\n  - {type: prefix, methods: [GET], url: /bad, function: bad}\n",
        "export function rewrite(r) {\n\
           r.headers['X-Keep'] = 'k2';\n\
           delete r.headers['X-Gone'];\n\
           return { headers: { ...r.headers, 'x-added': 'yes', 'x-drop': undefined, 'Ones-User-Id': 'admin' }, query: { ...r.query, page: '2', tag: ['a', 'b'] },\n\
                    body: { ...r.body, name: r.body.name + '-plugin', extra: 'é' } }\n\
         }\n\
         export function same() {}\n\
         export function bad() { return { query: { page: null } } }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    // A value that cannot go in a query string is named as a query parameter.
    let got = interpose_test_util::get(&gw.url("/project/api/project/bad"), &[]).await;
    assert_eq!(got.status, 500);
    let reason = got.json()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains(r#"query parameter "page" must be a string, number or boolean"#), "{reason}");
    let got = send_json(
        "POST",
        &gw.url("/project/api/project/things?page=1&keep=k"),
        &json!({"name": "n"}),
        &[("x-drop", "1"), ("x-keep", "k"), ("x-gone", "g"), ("ones-user-id", "U9")],
    )
    .await;
    assert_eq!(got.status, 200);
    let seen = up.last();
    assert_eq!(seen.uri, "/project/api/project/things?page=2&keep=k&tag=a&tag=b");
    assert_eq!(seen.headers["x-added"], "yes");
    // Set and deleted in any case, the request's own header is the one changed;
    // a later key in another case replaces the header instead of adding to it.
    assert_eq!(seen.headers.get_all("x-keep").iter().collect::<Vec<_>>(), ["k2"]);
    assert!(seen.headers.get("x-gone").is_none());
    assert_eq!(seen.headers.get_all("ones-user-id").iter().collect::<Vec<_>>(), ["admin"]);
    assert!(seen.headers.get("x-drop").is_none());
    let body = r#"{"name":"n-plugin","extra":"é"}"#;
    assert_eq!(std::str::from_utf8(&seen.body).unwrap(), body);
    assert_eq!(seen.headers["content-length"], body.len().to_string().as_str(), "Content-Length fixed");
    // Returning nothing leaves the request as the client sent it.
    let sent = r#"{ "spacing" : "kept" }"#;
    let req = http::Request::post(gw.url("/project/api/project/same?q=1"))
        .header("content-type", "application/json")
        .body(interpose_test_util::body(sent))
        .unwrap();
    assert_eq!(interpose_test_util::send(req).await.status, 200);
    let seen = up.last();
    assert_eq!((seen.uri.as_str(), std::str::from_utf8(&seen.body).unwrap()), ("/project/api/project/same?q=1", sent));
    gw.stop().await;
}

#[tokio::test]
async fn intercept_and_prefix_work_together_in_order() {
    let up = Upstream::start().await;
    let guard = org_plugin("guard", "  - {type: intercept, methods: [POST], url: /things, function: check}\n", "export function check(r) { if (r.body.name.endsWith('-plugin')) return { statusCode: 409, body: 'intercept saw the rewritten body' } }\n");
    let pre = org_plugin(
        "pre",
        "  - {type: prefix, methods: [POST], url: /things, function: f}\n",
        "export function f(r) { return { body: { name: r.body.name + '-plugin' } } }\n",
    );
    let gw = start(&up, &[decl(pre.path(), &[], None), decl(guard.path(), &[], None)], "").await;
    let got = send_json("POST", &gw.url("/project/api/project/things"), &json!({"name": "x"}), &[]).await;
    assert_eq!(got.status, 200, "intercepts run before the prefix: {}", got.text());
    assert_eq!(up.last().body, r#"{"name":"x-plugin"}"#);
    gw.stop().await;
}

#[tokio::test]
async fn suffix_and_subscribe_see_the_exchange_after_the_response() {
    let up = Upstream::start().await;
    let sub = org_plugin(
        "sub",
        "  - {type: subscribe, methods: [POST], url: /team/:teamUUID/things, function: seen}\n",
        "import { writeStrings } from '@ones-op/node-file'\n\
         export async function seen(r) {\n\
           await writeStrings('seen.json', JSON.stringify({ method: r.method, url: r.url, team: r.teamUUID, status: r.statusCode,\n\
             reqHeader: r.reqHeaders['X-Sent'], reqBody: r.reqBody, respHeader: r.respHeaders['X-Upstream'], respBody: r.respBody }))\n\
         }\n",
    );
    let gw =
        start(&up, &[decl(sub.path(), &[], Some("sub1")), decl(&example("suffix-log"), &[], Some("sfx1"))], "").await;
    let got = send_json(
        "POST",
        &gw.url("/project/api/project/team/T1/things?x=1"),
        &json!({"summary": "s"}),
        &[("x-sent", "v")],
    )
    .await;
    assert_eq!(got.json(), json!({"upstream": "ok", "path": "/project/api/project/team/T1/things"}));
    let seen_file = gw.dir.path().join("ws/sub1/seen.json");
    // Whole, not just created: the file exists a moment before it is written.
    let read = || serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&seen_file).ok()?).ok();
    eventually("the subscriber's file", || read().is_some()).await;
    let seen = read().unwrap();
    assert_eq!(
        seen,
        json!({"method": "POST", "url": "/team/T1/things?x=1", "team": "T1", "status": 200, "reqHeader": "v", "reqBody": {"summary": "s"},
               "respHeader": "yes", "respBody": {"upstream": "ok", "path": "/project/api/project/team/T1/things"}})
    );
    // The suffix example on POST /team/:teamUUID/tasks appends one line per request.
    for i in 0..3 {
        send_json("POST", &gw.url("/project/api/project/team/T2/tasks"), &json!({"summary": format!("t{i}")}), &[])
            .await;
    }
    let log = gw.dir.path().join("ws/sfx1/suffix.txt");
    eventually("three suffix lines", || std::fs::read_to_string(&log).map(|s| s.lines().count() == 3).unwrap_or(false))
        .await;
    // Post hooks run concurrently, so the lines may come in any order.
    let mut sent: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!((v["team"].as_str(), v["status"].as_u64()), (Some("T2"), Some(200)));
            v["sent"]["summary"].as_str().unwrap().to_string()
        })
        .collect();
    sent.sort();
    assert_eq!(sent, ["t0", "t1", "t2"]);
    gw.stop().await;
}

#[tokio::test]
async fn slow_or_failing_subscribers_affect_nothing_else() {
    let up = Upstream::start().await;
    let slow = org_plugin(
        "slow",
        "  - {type: subscribe, methods: [GET], url: /users/me, function: f, timeout_ms: 3000}\n",
        "export function f() { const t = Date.now(); while (Date.now() - t < 2000) {} }\n",
    );
    let thrower = org_plugin(
        "thrower",
        "  - {type: subscribe, methods: [GET], url: /users/me, function: f}\n",
        "export function f() { throw new Error('subscriber bug') }\n",
    );
    let steady = org_plugin("steady", "  - {type: subscribe, methods: [GET], url: /users/me, function: f}\n", "import { appendStrings } from '@ones-op/node-file'\nexport async function f(r) { await appendStrings('n.txt', 'x') }\n");
    let gw = start(
        &up,
        &[decl(slow.path(), &[], None), decl(thrower.path(), &[], None), decl(steady.path(), &[], Some("steady1"))],
        "",
    )
    .await;
    let t0 = Instant::now();
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/project/api/project/users/me"), &[]).await.status, 200);
    }
    assert!(t0.elapsed() < Duration::from_millis(1500), "responses waited for a subscriber: {:?}", t0.elapsed());
    let n = gw.dir.path().join("ws/steady1/n.txt");
    eventually("the steady subscriber ran 3 times", || {
        std::fs::read_to_string(&n).map(|s| s == "xxx").unwrap_or(false)
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_millis(1900),
        "the steady subscriber waited for the slow one: {:?}",
        t0.elapsed()
    );
    // Subscribers count in the per-hook metrics like the hooks before the response.
    eventually("the thrower's failures are counted", || {
        gw.gw.metrics.render(&[], &Default::default()).contains("type=\"subscribe\",kind=\"throw\"} 3")
    })
    .await;
    // The third call wrote its file before it returned and was counted.
    eventually("the steady subscriber's calls are counted", || {
        gw.gw.metrics.render(&[], &Default::default()).contains(
            "interpose_hook_calls_total{plugin=\"steady\",instance=\"steady1\",function=\"f\",type=\"subscribe\"} 3",
        )
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn a_full_post_queue_drops_and_counts() {
    let up = Upstream::start().await;
    let slow = org_plugin(
        "slow",
        "  - {type: subscribe, methods: [GET], url: /users/me, function: f, timeout_ms: 500}\n",
        "export function f() { const t = Date.now(); while (Date.now() - t < 300) {} }\n",
    );
    let gw = start(&up, &[decl(slow.path(), &[], None)], "[limits]\npost_queue_size = 1\n").await;
    for _ in 0..40 {
        assert_eq!(get(&gw.url("/project/api/project/users/me"), &[]).await.status, 200);
    }
    let dropped = gw.gw.posts.dropped();
    assert!(dropped > 0, "nothing dropped");
    // The hook's own series say the same: each event had this one hook.
    let labels = "plugin=\"slow\",instance=";
    let metrics = gw.gw.metrics.render(&[], &Default::default());
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{{labels}")))
            .unwrap_or_else(|| panic!("no {name}"))
            .to_string()
    };
    assert!(line("interpose_hook_dropped_total").ends_with(&format!(" {dropped}")), "{metrics}");
    let depth: u64 = line("interpose_hook_queue_depth").rsplit(' ').next().unwrap().parse().unwrap();
    assert!((1..=2).contains(&depth), "one event queued, one maybe waiting for a worker: {depth}");
    // The queue drains.
    eventually("the queue drains", || {
        gw.gw
            .metrics
            .render(&[], &Default::default())
            .lines()
            .any(|l| l.starts_with(&format!("interpose_hook_queue_depth{{{labels}")) && l.ends_with(" 0"))
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn addition_and_external_routes() {
    let up = Upstream::start().await;
    let gw = start(
        &up,
        &[decl(&example("hello-addition"), &[], Some("hello1")), decl(&example("team-report"), &["T1"], Some("rep1"))],
        "",
    )
    .await;
    let got = get(
        &gw.url("/project/api/project/hello"),
        &[("Ones-Plugin-Id", "hello1"), ("Ones-Check-Point", "team"), ("Ones-Check-Id", "T1"), ("Ones-User-Id", "U1")],
    )
    .await;
    assert_eq!(got.json(), json!({"hello": "U1", "checkPoint": "team", "checkId": "T1", "method": "GET"}));
    assert_eq!(up.count(), 0);
    // Without the header (or naming another instance) the route is the standard system's.
    assert_eq!(get(&gw.url("/project/api/project/hello"), &[]).await.json()["upstream"], "ok");
    assert_eq!(
        get(&gw.url("/project/api/project/hello"), &[("Ones-Plugin-Id", "other")]).await.json()["upstream"],
        "ok"
    );
    // External: T1 has the route (it calls the system through OPFetch); T2 does not.
    let before = up.count();
    let got = get(&gw.url("/project/api/project/team/T1/report"), &[]).await;
    assert_eq!(got.json()["team"], "T1");
    assert_eq!(up.last().uri, "/project/api/project/team/T1/tasks", "the plugin's own OPFetch");
    assert_eq!(up.count(), before + 1);
    let got = get(&gw.url("/project/api/project/team/T2/report"), &[]).await;
    assert_eq!(got.json()["path"], "/project/api/project/team/T2/report");
    gw.stop().await;
}

#[tokio::test]
async fn conflicts_are_refused_naming_both_plugins_and_the_rule() {
    let up = Upstream::start().await;
    let i = org_plugin(
        "interceptor",
        "  - {type: intercept, methods: [GET], url: '/team/:teamUUID/x/:a', function: f}\n",
        "export function f() {}\n",
    );
    let r = team_plugin(
        "replacer",
        "  - {type: replace, methods: [GET], url: '/team/:t/x/:b', function: g}\n",
        "export function g() {}\n",
    );
    let err = start_error(&up, &[decl(i.path(), &[], Some("i1")), decl(r.path(), &["T1"], Some("r1"))]);
    assert!(err.contains(
        "conflict on GET /team/:teamUUID/x/:a (scope project, team T1): plugin interceptor (app_id interceptor, instance i1) intercept hook f() (apis[0]) \
         and plugin replacer (app_id replacer, instance r1) replace hook g() (apis[0]): intercept and replace cannot be used on the same interface in the same level context"
    ), "{err}");
    let s = org_plugin(
        "subscriber",
        "  - {type: subscribe, methods: [GET], url: /users/me, function: f}\n",
        "export function f() {}\n",
    );
    let r2 = org_plugin(
        "replacer2",
        "  - {type: replace, methods: [GET], url: /users/me, function: g}\n",
        "export function g() {}\n",
    );
    let err = start_error(&up, &[decl(s.path(), &[], Some("s1")), decl(r2.path(), &[], Some("r2"))]);
    assert!(err.contains("subscribe and replace cannot be used"), "{err}");
    for kind in ["prefix", "suffix", "replace"] {
        let a = org_plugin(
            "a",
            &format!("  - {{type: {kind}, methods: [GET], url: /users/:x, function: f}}\n"),
            "export function f() {}\n",
        );
        let b = org_plugin(
            "b",
            &format!("  - {{type: {kind}, methods: [GET], url: /users/:y, function: f}}\n"),
            "export function f() {}\n",
        );
        let err = start_error(&up, &[decl(a.path(), &[], Some("a1")), decl(b.path(), &[], Some("b1"))]);
        assert!(
            err.contains("only one")
                && err.contains("plugin a (app_id a, instance a1)")
                && err.contains("plugin b (app_id b, instance b1)"),
            "{kind}: {err}"
        );
    }
    let e1 = team_plugin(
        "e1",
        "  - {type: external, methods: [GET], url: '/team/:teamUUID/new', function: f}\n",
        "export function f() {}\n",
    );
    let e2 = team_plugin(
        "e2",
        "  - {type: external, methods: [GET], url: '/team/:teamUUID/new', function: f}\n",
        "export function f() {}\n",
    );
    let err = start_error(&up, &[decl(e1.path(), &["T1"], None), decl(e2.path(), &["T1"], None)]);
    assert!(err.contains("only one plugin may serve an external route for a team"), "{err}");
    // ... but different teams may each have one.
    let gw = start(&up, &[decl(e1.path(), &["T1"], None), decl(e2.path(), &["T2"], None)], "").await;
    gw.stop().await;
}

#[tokio::test]
async fn fetch_http_only_to_allowed_hosts() {
    let up = Upstream::start().await;
    let other = Upstream::start().await;
    let p = org_plugin(
        "caller",
        "  - {type: replace, methods: [GET], url: /call, function: call}\n",
        &format!(
            "import {{ fetchHttp }} from '@ones-op/node-fetch'\n\
             export async function call(r) {{\n\
               try {{ const res = await fetchHttp('http://{}/ext/x', {{ headers: {{ 'X-A': ['1'] }} }}); return {{ body: {{ ok: res.statusCode, got: res.body }} }} }}\n\
               catch (e) {{ return {{ statusCode: 502, body: {{ errcode: e.errcode, reason: e.reason }} }} }}\n\
             }}\n",
            other.addr
        ),
    );
    let refused = start(&up, &[decl(p.path(), &[], None)], "").await;
    let got = get(&refused.url("/project/api/project/call"), &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json()["errcode"], "Forbidden");
    assert!(got.json()["reason"].as_str().unwrap().contains("[sandbox] http_allow"));
    assert_eq!(other.count(), 0);
    refused.stop().await;
    let allowed =
        start(&up, &[decl(p.path(), &[], None)], &format!("[sandbox]\nhttp_allow = [\"{}\"]\n", other.addr)).await;
    let got = get(&allowed.url("/project/api/project/call"), &[]).await;
    assert_eq!(got.json(), json!({"ok": 200, "got": {"upstream": "ok", "path": "/ext/x"}}));
    assert_eq!(other.last().headers["x-a"], "1");
    allowed.stop().await;
}

/// The global `fetch` (Node's, with `Headers` and `Response`) reaches the
/// same allowed hosts as `fetchHttp`, with bodies as bytes both ways.
#[tokio::test]
async fn global_fetch_reaches_allowed_hosts_with_web_semantics() {
    let up = Upstream::start().await;
    let other = Upstream::start().await;
    let p = org_plugin(
        "fetcher",
        "  - {type: replace, methods: [GET], url: /fetch, function: go}\n",
        &format!(
            "export async function go(r) {{\n\
               const base = 'http://{}';\n\
               try {{\n\
                 const res = await fetch(base + '/ext/x?q=1', {{ method: 'post', headers: new Headers({{ 'X-A': '1' }}), body: new Uint8Array([0, 255, 1]) }});\n\
                 const json = await res.clone().json();\n\
                 const text = await res.text();\n\
                 let reused = null; try {{ await res.text() }} catch (e) {{ reused = e.name }}\n\
                 const form = await fetch(new URL('/ext/form', base), {{ method: 'PUT', body: new URLSearchParams({{ a: '1 2' }}) }});\n\
                 const big = await (await fetch(base + '/big/1')).arrayBuffer();\n\
                 return {{ body: {{ status: res.status, ok: res.ok, type: res.headers.get('Content-Type'), json, same: JSON.parse(text).path === json.path, reused, formOk: form.ok, big: big.byteLength }} }}\n\
               }} catch (e) {{ return {{ statusCode: 502, body: {{ name: e.name, message: e.message, errcode: e.cause && e.cause.errcode }} }} }}\n\
             }}\n",
            other.addr
        ),
    );
    let refused = start(&up, &[decl(p.path(), &[], None)], "").await;
    let got = get(&refused.url("/project/api/project/fetch"), &[]).await;
    assert_eq!(
        (got.status.as_u16(), &got.json()["name"], &got.json()["errcode"]),
        (502, &json!("TypeError"), &json!("Forbidden"))
    );
    assert_eq!(other.count(), 0);
    refused.stop().await;
    let allowed =
        start(&up, &[decl(p.path(), &[], None)], &format!("[sandbox]\nhttp_allow = [\"{}\"]\n", other.addr)).await;
    let got = get(&allowed.url("/project/api/project/fetch"), &[]).await;
    assert_eq!(
        got.json(),
        json!({"status": 200, "ok": true, "type": "application/json", "json": {"upstream": "ok", "path": "/ext/x"},
               "same": true, "reused": "TypeError", "formOk": true, "big": 1 << 20}),
        "{}",
        got.text()
    );
    let seen = other.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.as_str(), seen[0].body.to_vec()),
        ("POST", "/ext/x?q=1", vec![0, 255, 1])
    );
    assert_eq!(seen[0].headers["x-a"], "1");
    assert_eq!((seen[1].method.as_str(), seen[1].body.to_vec()), ("PUT", b"a=1+2".to_vec()));
    assert_eq!(seen[1].headers["content-type"], "application/x-www-form-urlencoded;charset=UTF-8");
    allowed.stop().await;
}

/// OPFetch (ONES's `@ones-op/fetch` ≥ 0.6): a relative URL is the standard
/// system, an absolute one plain HTTP to the hosts `[sandbox] http_allow`
/// lists; the legacy `fetchONES` takes only paths.
#[tokio::test]
async fn system_calls_take_a_relative_url_as_the_path_and_an_absolute_one_as_plain_http() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "caller",
        "  - {type: replace, methods: [GET], url: /call, function: call}\n",
        "import { OPFetch } from '@ones-op/fetch'\n\
         import { fetchONES } from '@ones-op/node-fetch'\n\
         export async function call(r) {\n\
           const rel = await OPFetch({ url: '/team/T1/tasks?x=1' });\n\
           const legacy = await fetchONES({ url: '/users/me' });\n\
           let legacyFull = null;\n\
           try { await fetchONES({ url: 'http://example.com/x' }) } catch (e) { legacyFull = [e.name, e.errcode, e.reason] }\n\
           try { await OPFetch({ url: 'http://example.com/x' }); return { body: 'no error' } }\n\
           catch (e) { return { body: { rel: rel.status, legacy: legacy.statusCode, name: e.name, errcode: e.errcode, reason: e.reason, legacyFull } } }\n\
         }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    let got = get(&gw.url("/project/api/project/call"), &[]).await;
    let b = got.json();
    assert_eq!((b["rel"].as_u64(), b["legacy"].as_u64()), (Some(200), Some(200)), "{b}");
    assert_eq!((b["name"].as_str(), b["errcode"].as_str()), (Some("FetchError"), Some("Forbidden")), "{b}");
    let reason = b["reason"].as_str().unwrap();
    assert!(reason.contains("example.com") && reason.contains("http_allow"), "{reason}");
    assert_eq!(
        (b["legacyFull"][0].as_str(), b["legacyFull"][1].as_str()),
        (Some("FetchError"), Some("InvalidParameter")),
        "{b}"
    );
    assert!(b["legacyFull"][2].as_str().unwrap().contains("fetchHttp calls other hosts"), "{b}");
    let paths: Vec<String> = up.seen().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(paths, ["/project/api/project/team/T1/tasks?x=1", "/project/api/project/users/me"]);
    gw.stop().await;
}

#[tokio::test]
async fn bytes_bodies_are_sent_as_bytes() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "bytes",
        "  - {type: replace, methods: [GET], url: '/bytes/:kind', function: bytes}\n  \
         - {type: prefix, methods: [POST], url: /upload, function: upload}\n",
        "import { writeBytes, readBytes } from '@ones-op/node-file'\n\
         export async function bytes(r) {\n\
           const all = new Uint8Array(256).map((_, i) => i)\n\
           switch (r.params.kind) {\n\
             case 'u8': return { body: all }\n\
             case 'buffer': return { headers: { 'content-type': 'image/png' }, body: Buffer.from('\\x89PNG', 'latin1') }\n\
             case 'arraybuffer': return { statusCode: 201, body: all.buffer.slice(250) }\n\
             case 'file': await writeBytes('f.bin', all.subarray(0, 3)); return { body: await readBytes('f.bin') }\n\
             case 'big': return { body: new Uint8Array(300000).fill(7) }\n\
           }\n\
         }\n\
         export function upload(r) { return { body: new Uint8Array([0, 255, 10]) } }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], Some("b1"))], "").await;
    let u = |k: &str| gw.url(&format!("/project/api/project/bytes/{k}"));
    let got = get(&u("u8"), &[]).await;
    assert_eq!(got.body.to_vec(), (0..=255u8).collect::<Vec<u8>>());
    assert_eq!(got.headers["content-type"], "application/octet-stream");
    assert_eq!(got.headers["content-length"], "256");
    let got = get(&u("buffer"), &[]).await;
    assert_eq!(
        (got.body.to_vec(), got.headers["content-type"].to_str().unwrap()),
        (vec![0x89, b'P', b'N', b'G'], "image/png")
    );
    let got = get(&u("arraybuffer"), &[]).await;
    assert_eq!((got.status.as_u16(), got.body.to_vec()), (201, vec![250, 251, 252, 253, 254, 255]));
    assert_eq!(get(&u("file"), &[]).await.body.to_vec(), vec![0, 1, 2]);
    let got = get(&u("big"), &[]).await;
    assert!(got.body.len() == 300_000 && got.body.iter().all(|b| *b == 7));
    // A prefix hook's bytes body is what the upstream gets.
    let sent = send_json("POST", &gw.url("/project/api/project/upload"), &json!({"a": 1}), &[]).await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let seen = up.last();
    assert_eq!(seen.body.to_vec(), vec![0, 255, 10]);
    assert_eq!(seen.headers["content-length"], "3");
    gw.stop().await;
}

/// A request body that is not UTF-8 (an upload) reaches hooks as a `Buffer`
/// and the upstream byte for byte; hooking its route does not change what
/// the upstream gets.
#[tokio::test]
async fn binary_request_bodies_reach_hooks_as_a_buffer_and_the_upstream_unchanged() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "uploads",
        "  - {type: intercept, methods: [POST], url: /upload, function: check}\n  \
         - {type: prefix, methods: [POST], url: /upload, function: tag}\n",
        "export function check(r) {\n\
           if (r.body.length > 4) return { statusCode: 413, body: { len: r.body.length, buffer: r.body instanceof Buffer, first: r.body[0] } }\n\
         }\n\
         export function tag(r) { return { headers: { ...r.headers, 'x-first': r.body.toString('hex', 0, 2) } } }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], Some("u1"))], "").await;
    let upload = |bytes: Vec<u8>| {
        http::Request::post(gw.url("/project/api/project/upload?x=1"))
            .header("content-type", "application/octet-stream")
            .body(interpose_test_util::body(bytes))
            .unwrap()
    };
    let got = interpose_test_util::send(upload(vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10])).await;
    assert_eq!(got.status, 413);
    assert_eq!(got.json(), json!({"len": 6, "buffer": true, "first": 255}));
    let got = interpose_test_util::send(upload(vec![0x89, 0x50, 0x00, 0xfe])).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let seen = up.last();
    assert_eq!(seen.body.to_vec(), vec![0x89, 0x50, 0x00, 0xfe]);
    assert_eq!(
        (seen.headers["x-first"].to_str().unwrap(), seen.headers["content-length"].to_str().unwrap()),
        ("8950", "4")
    );
    gw.stop().await;
}

/// Hooks read bodies with their content coding undone; what goes on the
/// wire is what was sent, unless a prefix returns a (plain) body.
#[tokio::test]
async fn hooks_see_compressed_bodies_decoded() {
    use std::io::Write as _;
    let up = Upstream::start().await;
    let p = org_plugin(
        "codings",
        "  - {type: intercept, methods: [POST, PUT], url: /tasks, function: check}\n  \
         - {type: prefix, methods: [PUT], url: /tasks, function: stamp}\n  \
         - {type: subscribe, methods: [GET], url: /gzip, function: seen}\n  \
         - {type: replace, methods: [GET], url: /fetched, function: fetched}\n",
        "import { writeStrings } from '@ones-op/node-file'\n\
         import { OPFetch } from '@ones-op/fetch'\n\
         export async function fetched() {\n\
           const r = await OPFetch({ path: '/gzip', headers: { 'Accept-Encoding': 'gzip' } })\n\
           return { body: { body: r.body, coding: r.headers['content-encoding'] ?? null, length: r.headers['content-length'] } }\n\
         }\n\
         export function check(r) { if (r.body.title === 'bad') return { statusCode: 422, body: { title: r.body.title } } }\n\
         export function stamp(r) { return { headers: { ...r.headers }, body: { ...r.body, stamped: true } } }\n\
         export async function seen(r) { await writeStrings('seen.json', JSON.stringify(r.respBody)) }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], Some("c1"))], "[limits]\nmax_body_bytes = 65536\n").await;
    let gzip = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let send = |method: &str, coding: &str, bytes: Vec<u8>| {
        interpose_test_util::send(
            http::Request::builder()
                .method(method)
                .uri(gw.url("/project/api/project/tasks"))
                .header("content-type", "application/json")
                .header("content-encoding", coding)
                .body(interpose_test_util::body(bytes))
                .unwrap(),
        )
    };
    // The intercept reads the decoded JSON, so compressing does not dodge it.
    let got = send("POST", "gzip", gzip(br#"{"title":"bad"}"#)).await;
    assert_eq!((got.status.as_u16(), got.json()), (422, json!({"title": "bad"})));
    // Allowed: the upstream gets the compressed bytes as sent.
    let sent = gzip(br#"{"title":"ok"}"#);
    assert_eq!(send("POST", "gzip", sent.clone()).await.status, 200);
    let seen = up.last();
    assert_eq!((seen.body.to_vec(), seen.headers["content-encoding"].to_str().unwrap()), (sent, "gzip"));
    // A prefix's body goes plain, without the coding the client used.
    assert_eq!(send("PUT", "gzip", gzip(br#"{"title":"ok"}"#)).await.status, 200);
    let seen = up.last();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen.body).unwrap(),
        json!({"title": "ok", "stamped": true})
    );
    assert!(seen.headers.get("content-encoding").is_none());
    assert_eq!(seen.headers["content-length"].to_str().unwrap(), seen.body.len().to_string());
    // zstd too (what browsers send), and codings one after another.
    let zstd = |data: &[u8]| ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest);
    let got = send("POST", "zstd", zstd(br#"{"title":"bad"}"#)).await;
    assert_eq!((got.status.as_u16(), got.json()), (422, json!({"title": "bad"})));
    let got = send("POST", "gzip, zstd", zstd(&gzip(br#"{"title":"bad"}"#))).await;
    assert_eq!((got.status.as_u16(), got.json()), (422, json!({"title": "bad"})));
    // What the hooks cannot read is refused, naming why; the upstream is not called.
    let before = up.count();
    let got = send("POST", "compress", b"(lzw)".to_vec()).await;
    assert_eq!((got.status.as_u16(), got.json()["errcode"].as_str()), (415, Some("UnsupportedMediaType")));
    assert!(got.json()["reason"].as_str().unwrap().contains("\"compress\" is not supported"), "{}", got.text());
    let got = send("POST", "zstd", b"not zstd".to_vec()).await;
    assert_eq!((got.status.as_u16(), got.json()["errcode"].as_str()), (400, Some("BadRequest")));
    let got = send("POST", "gzip", b"not gzip".to_vec()).await;
    assert_eq!((got.status.as_u16(), got.json()["errcode"].as_str()), (400, Some("BadRequest")));
    let got = send("POST", "gzip", gzip(&[b' '; 1 << 20])).await;
    assert_eq!(got.status, 413, "a small body that decodes past max_body_bytes: {}", got.text());
    assert_eq!(up.count(), before);
    // The upstream's gzip response: the client gets it as sent, the subscriber decoded.
    let got = get(&gw.url("/project/api/project/gzip"), &[]).await;
    assert_eq!(got.headers["content-encoding"], "gzip");
    assert_ne!(got.body.as_ref(), br#"{"zipped":true}"#);
    let seen_file = gw.dir.path().join("ws/c1/seen.json");
    eventually("the subscriber's file", || seen_file.exists()).await;
    assert_eq!(std::fs::read_to_string(&seen_file).unwrap(), r#"{"zipped":true}"#);
    // OPFetch, like a browser's fetch, gives the body decoded.
    let got = get(&gw.url("/project/api/project/fetched"), &[]).await;
    assert_eq!(got.json(), json!({"body": {"zipped": true}, "coding": null, "length": "15"}));
    gw.stop().await;
}

/// A plugin that passes the client's headers along with another body: the
/// gateway frames the call itself (the client's Content-Length would cut
/// the body short); the rest of the headers go as given.
#[tokio::test]
async fn system_calls_frame_their_own_body() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "forwarder",
        "  - {type: replace, methods: [POST], url: /forward, function: f}\n",
        "import { OPFetch } from '@ones-op/fetch'\n\
         export async function f(r) {\n\
           const out = await OPFetch({ method: 'POST', path: '/echo', headers: { ...r.headers, 'X-Role': ['a', 'b'], 'x-role': 'c', 'Ones-User-Id': 'admin' }, body: { longer: 'than the client body', orig: r.body } })\n\
           return { body: { status: out.statusCode } }\n\
         }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], Some("f1"))], "").await;
    let got = interpose_test_util::send(
        http::Request::post(gw.url("/project/api/project/forward"))
            .header("content-type", "application/json")
            .header("ones-user-id", "U1")
            .header("expect", "100-continue")
            .header("connection", "keep-alive")
            .body(interpose_test_util::body(r#"{"a":1}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(got.json(), json!({"status": 200}), "{}", got.text());
    let seen = up.last();
    assert_eq!(seen.uri, "/project/api/project/echo");
    let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent, json!({"longer": "than the client body", "orig": {"a": 1}}));
    assert_eq!(seen.headers["content-length"].to_str().unwrap(), seen.body.len().to_string());
    // A later key in another case replaces the header rather than adding a value.
    assert_eq!(seen.headers.get_all("ones-user-id").iter().collect::<Vec<_>>(), ["admin"]);
    assert_eq!(seen.headers.get_all("x-role").iter().collect::<Vec<_>>(), ["c"]);
    assert!(seen.headers.get("expect").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn files_stay_inside_the_instance_workspace() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "files",
        "  - {type: replace, methods: [POST], url: /fs, function: fs}\n",
        "import * as f from '@ones-op/node-file'\n\
         export async function fs(r) {\n\
           const out = {}\n\
           for (const [name, fn] of Object.entries({\n\
             write: () => f.writeStrings('a/b.txt', 'one\\ntwo'), append: () => f.appendStrings('a/b.txt', '\\nthree'),\n\
             read: () => f.read('a/b.txt').then((b) => [b instanceof Uint8Array, new TextDecoder().decode(b)]),\n\
             lines: () => f.readLines('a/b.txt'), someLines: () => f.readLines('a/b.txt', 2, 3), list: () => f.list('a'),\n\
             missing: () => f.read('nope.txt'), strings: () => f.writeStrings('s.txt', ['x', 'y']).then(() => f.readLines('s.txt')),\n\
             isFile: () => f.isFile('a/b.txt'), isDir: () => f.isDir('a'), copy: () => f.copy('a/b.txt', 'c.txt'),\n\
             rename: () => f.rename('c.txt', 'd.txt'), exists: () => f.isExist('c.txt'), bytes: () => f.writeBytes('bin', new Uint8Array([1, 2, 255])),\n\
             readBytes: () => f.readBytes('bin').then((b) => Array.from(b)), remove: () => f.remove('d.txt'),\n\
             escape: () => f.read('../../etc/passwd'), absolute: () => f.read('/etc/passwd'), link: () => f.read('link/passwd'),\n\
           })) {\n\
             try { out[name] = await fn() } catch (e) { out[name] = { name: e.name, errcode: e.errcode } }\n\
           }\n\
           return { body: out }\n\
         }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], Some("f1"))], "").await;
    let ws = gw.dir.path().join("ws/f1");
    std::fs::create_dir_all(&ws).unwrap();
    std::os::unix::fs::symlink("/etc", ws.join("link")).unwrap();
    let got = send_json("POST", &gw.url("/project/api/project/fs"), &json!({}), &[]).await;
    let b = got.json();
    // As ONES documents node-file: `read` gives bytes, `readLines` text.
    assert_eq!(b["read"], json!([true, "one\ntwo\nthree"]));
    assert_eq!((b["lines"].as_str(), b["someLines"].as_str()), (Some("one\ntwo\nthree"), Some("two\nthree")));
    assert_eq!(b["strings"], "xy", "writeStrings(name, string[]) writes them one after another");
    assert_eq!(b["missing"], json!({"name": "FileError", "errcode": "File.CannotFindTargetFile"}));
    assert_eq!(b["list"], json!(["b.txt"]));
    assert_eq!(
        (b["isFile"].as_bool(), b["isDir"].as_bool(), b["exists"].as_bool()),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(b["readBytes"], json!([1, 2, 255]));
    for bad in ["escape", "absolute", "link"] {
        assert_eq!(b[bad], json!({"name": "FileError", "errcode": "InvalidParameter"}), "{bad}: {b}");
    }
    assert!(!ws.join("d.txt").exists() && ws.join("a/b.txt").exists());
    gw.stop().await;
}

/// A plugin's subscriber and its other hooks share module state (as in the
/// platform's one Node process): what the subscriber saw, a replace hook of
/// the same plugin can answer with.
#[tokio::test]
async fn a_subscriber_and_a_replace_hook_share_module_state() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "tally",
        "  - {type: subscribe, methods: [POST], url: /things, function: seen}\n  \
         - {type: replace, methods: [GET], url: /things-seen, function: report}\n",
        "import { Logger } from '@ones-op/node-logger'\n\
         const names = []\n\
         export function seen(r) { names.push(r.reqBody.name); Logger.info('seen ' + r.reqBody.name) }\n\
         export function report() { return { body: names } }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], Some("t1"))], "").await;
    for name in ["a", "b", "c"] {
        let sent = send_json("POST", &gw.url("/project/api/project/things"), &json!({ "name": name }), &[]).await;
        assert_eq!(sent.status, 200);
        let snap = gw.gw.snapshot();
        let js = snap.instances.iter().find(|i| i.meta.id == "t1").unwrap().js.clone();
        eventually("the subscriber", || js.logs_after(0).iter().any(|l| l.message == format!("seen {name}"))).await;
    }
    assert_eq!(get(&gw.url("/project/api/project/things-seen"), &[]).await.json(), json!(["a", "b", "c"]));
    gw.stop().await;
}

#[tokio::test]
async fn the_query_variant_and_subscriber_examples() {
    let up = Upstream::start().await;
    let gw = start(
        &up,
        &[decl(&example("query-variants"), &[], Some("qv")), decl(&example("users-me-subscriber"), &[], Some("sub"))],
        "",
    )
    .await;
    let show = [("X-Show-Variant", "1")];
    let u = |q: &str| gw.url(&format!("/project/api/project/users/me{q}"));
    assert_eq!(get(&u("?k2=v2"), &show).await.json(), json!({"variant": "onK2"}));
    assert_eq!(get(&u("?k1=v1&k2=v2&k3=v3"), &show).await.json(), json!({"variant": "onK1"}));
    let plain = get(&u(""), &[("X-Show-Variant", "1"), ("Ones-User-Id", "U5")]).await;
    assert_eq!(plain.json()["upstream"], "ok", "no variant matches a request without the query");
    let snap = gw.gw.snapshot();
    let sub = snap.instances.iter().find(|i| i.meta.id == "sub").unwrap().js.clone();
    eventually("the subscriber's log line", || sub.logs_after(0).iter().any(|l| l.message.contains("\"user\":\"U5\"")))
        .await;
    let line = sub.logs_after(0).into_iter().find(|l| l.message.contains("U5")).unwrap();
    assert_eq!(
        line.message,
        r#"[subscriber] GET /users/me -> 200 {"user":"U5","contentType":"application/json","email":null}"#
    );
    gw.stop().await;
}

#[tokio::test]
async fn outbound_calls_count_against_the_hook_deadline() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "slowcall",
        "  - {type: replace, methods: [GET], url: /x, function: f, timeout_ms: 300}\n",
        "import { OPFetch } from '@ones-op/fetch'\nexport async function f() { const r = await OPFetch({ path: '/slow/3000' }); return { body: r.body } }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    let t0 = Instant::now();
    let got = get(&gw.url("/project/api/project/x"), &[]).await;
    assert_eq!(got.status, 500, "{}", got.text());
    let reason = got.json()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("timed out after 300 ms") || reason.contains("RequestTimeOut"), "{reason}");
    assert!(t0.elapsed() < Duration::from_millis(1500), "{:?}", t0.elapsed());
    gw.stop().await;
}

/// A call waiting for its outbound request holds no capacity: with two JS
/// workers, four calls waiting on a slow upstream do not delay a fifth.
#[tokio::test]
async fn calls_waiting_for_io_do_not_block_other_calls() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "waits",
        "  - {type: replace, methods: [GET], url: /slow, function: slow, timeout_ms: 5000}
  - {type: replace, methods: [GET], url: /quick, function: quick}
",
        "import { OPFetch } from '@ones-op/fetch'
         export async function slow() { const r = await OPFetch({ path: '/slow/1500' }); return { body: { waited: r.statusCode } } }
         export function quick() { return { body: 'quick' } }
",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let url = gw.url("/project/api/project/slow");
            tokio::spawn(async move { get(&url, &[]).await })
        })
        .collect();
    eventually("four slow upstream calls", || up.seen().iter().filter(|s| s.uri.contains("/slow/1500")).count() == 4)
        .await;
    let got = get(&gw.url("/project/api/project/quick"), &[]).await;
    assert_eq!(got.text(), "quick");
    assert!(slow.iter().all(|h| !h.is_finished()), "the quick call was answered while all four were still waiting");
    for h in slow {
        let got = h.await.unwrap();
        assert_eq!((got.status.as_u16(), got.json()), (200, json!({"waited": 200})), "{}", got.text());
    }
    gw.stop().await;
}

/// `Plugin.getPluginConfig()` (`@ones-op/node-ability`) gives each instance
/// the items its manifest declares with the values set for it, as the rows
/// ONES stores (`arg_key`, `arg_value`, numeric `type`, the instance's ids),
/// with `key`/`value`/`label` beside them.
#[tokio::test]
async fn plugins_read_their_config_values() {
    let up = Upstream::start().await;
    let p = interpose_test_util::plugin(
        "service:\n  app_id: conf\n  version: 1.0.0\n  name: conf\n  scope: 1\n  config:\n    - {key: denyList, type: Input, label: Denied users, required: true}\n    - {key: note, type: TextArea, value: hello}\n    - {key: secret, type: Password}\napis:\n  - {type: replace, methods: [GET], url: '/team/:teamUUID/conf', function: f}\n",
        "import { Plugin } from '@ones-op/node-ability';\n\
         export async function f(r) { return { body: await Plugin.getPluginConfig(r.teamUUID) } }\n",
    );
    let text = format!(
        "[[plugins]]\npath = {:?}\nteams = [\"T1\"]\nconfig = {{ denyList = \"u1,u2\" }}\n[[plugins]]\npath = {:?}\nteams = [\"T2\"]\nconfig = {{ denyList = \"u3\", note = \"set\" }}\n",
        p.path().display().to_string(),
        p.path().display().to_string()
    );
    let gw = start(&up, &[text], "").await;
    let got = get(&gw.url("/project/api/project/team/T1/conf"), &[]).await;
    let rows = got.json();
    let instance = rows[0]["instance_uuid"].as_str().unwrap().to_string();
    assert_eq!(instance.len(), 8, "{rows}");
    let row = |id: u32,
               key: &str,
               arg_value: &str,
               kind: u32,
               required: bool,
               value: serde_json::Value,
               label: &str| {
        json!({"id": id, "create_time": 0, "update_time": 0, "deleted": false, "org_uuid": "", "team_uuid": "T1",
               "app_uuid": "conf", "instance_uuid": instance, "arg_key": key, "arg_value": arg_value, "required": required,
               "type": kind, "key": key, "value": value, "label": label})
    };
    assert_eq!(
        rows,
        json!([
            row(1, "denyList", "u1,u2", 101, true, json!("u1,u2"), "Denied users"),
            row(2, "note", "hello", 102, false, json!("hello"), "note"),
            row(3, "secret", "", 103, false, json!(null), "secret"),
        ])
    );
    let got = get(&gw.url("/project/api/project/team/T2/conf"), &[]).await;
    let values: Vec<serde_json::Value> = got.json().as_array().unwrap().iter().map(|i| i["value"].clone()).collect();
    assert_eq!(values, [json!("u3"), json!("set"), json!(null)], "each instance reads its own values");
    gw.stop().await;
    // A required item left out, or empty, keeps the gateway from starting.
    for config in ["", "config = { denyList = \"\" }\n"] {
        let decl = format!("[[plugins]]\npath = {:?}\nteams = [\"T1\"]\n{config}", p.path().display().to_string());
        let e = start_error(&up, &[decl]);
        assert!(e.contains("plugins[0].config: conf requires a value for \"denyList\""), "{e}");
    }
}
