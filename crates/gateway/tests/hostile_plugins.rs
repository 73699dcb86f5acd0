//! Plugins that misbehave: each fails only its own call with the documented
//! error, at its deadline; other plugins keep serving; nothing leaks
//! between plugins; a plugin that keeps getting stuck is quarantined.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{decl, org_plugin, start};
use interpose_test_util::{get, Upstream};

const HOSTILE: &str = r#"
export async function f(r) {
  switch (r.headers['x-mode']) {
    case 'huge-string': { let s = 'x'; for (;;) s += s; }
    case 'big-body': return { statusCode: 403, body: 'x'.repeat(50 * 1024 * 1024) };
    // Node's fs resolves (a plugin importing it loads) but does nothing.
    case 'import': { const fs = await import('fs'); fs.readFileSync('/etc/passwd'); return; }
    case 'io': {
      let exit;
      try { process.exit(1); } catch (e) { exit = e.message; }
      return { statusCode: 403, body: { process: typeof process, env: Object.keys(process.env), exit, require: typeof require, fetch: typeof fetch, std: typeof std, os: typeof os } };
    }
    case 'pollute': Object.prototype.polluted = 'yes'; Array.prototype.push = () => 0; globalThis.secret = 's3'; return;
    case 'fetch-out': try { await fetch('http://169.254.169.254/latest/meta-data/'); return; } catch (e) { return { statusCode: 403, body: { name: e.name, errcode: e.cause.errcode } }; }
    case 'eval': return { statusCode: 403, body: { eval: eval('1 + 1'), fn: new Function('return 2')() } };
    case 'throw-number': throw 42;
    case 'bad-headers': return { statusCode: 403, headers: { 'x-a': { nested: true } } };
    case 'stringify-loop': { const big = Array.from({ length: 20000 }, (_, i) => ({ i, s: 'abc' })); for (;;) JSON.stringify(big); }
  }
}
"#;

const NEIGHBOUR: &str = r#"
export function g() {
  return { statusCode: 403, body: { polluted: ({}).polluted ?? null, secret: globalThis.secret ?? null, push: [1].push(2) } };
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_fail_alone() {
    let up = Upstream::start().await;
    let bad = org_plugin(
        "hostile",
        "  - {type: intercept, methods: [GET], url: /bad, function: f, timeout_ms: 300}\n",
        HOSTILE,
    );
    let good = org_plugin("neighbour", "  - {type: intercept, methods: [GET], url: /good, function: g}\n", NEIGHBOUR);
    let gw =
        start(&up, &[decl(bad.path(), &[], None), decl(good.path(), &[], None)], "[limits]\nhook_memory_mb = 16\n")
            .await;
    let bad_url = gw.url("/project/api/project/bad");
    let good_url = gw.url("/project/api/project/good");
    let reason = |g: &interpose_test_util::Got| g.json()["reason"].as_str().unwrap_or("").to_string();

    for (mode, needles) in [
        // QuickJS refuses strings over 2^30 characters before the heap fills.
        ("huge-string", &["ran out of memory", "string too long"][..]),
        ("big-body", &["ran out of memory"][..]),
        ("import", &["fs"][..]),
        ("throw-number", &["a non-Error value: 42"][..]),
        ("bad-headers", &["header \"x-a\" must be a string, number or boolean"][..]),
    ] {
        let got = get(&bad_url, &[("x-mode", mode)]).await;
        assert_eq!(got.status, 500, "{mode}: {}", got.text());
        assert!(needles.iter().any(|n| reason(&got).contains(n)), "{mode}: {}", reason(&got));
    }
    // No I/O but the SDK's (`fetch` reaches only the hosts `fetchHttp` may);
    // Node's `process` holds nothing of the gateway's (its environment, exit);
    // eval is the plugin's own business.
    let io = get(&bad_url, &[("x-mode", "io")]).await.json();
    assert_eq!(
        io,
        serde_json::json!({"process": "object", "env": ["NODE_ENV"], "exit": "process.exit() is not available to plugins", "require": "undefined", "fetch": "function", "std": "undefined", "os": "undefined"})
    );
    let out = get(&bad_url, &[("x-mode", "fetch-out")]).await.json();
    assert_eq!(out, serde_json::json!({"name": "TypeError", "errcode": "Forbidden"}));
    assert_eq!(get(&bad_url, &[("x-mode", "eval")]).await.json(), serde_json::json!({"eval": 2, "fn": 2}));
    // Prototype and global pollution stays in the polluter's runtime.
    assert_eq!(get(&bad_url, &[("x-mode", "pollute")]).await.status, 200);
    assert_eq!(get(&good_url, &[]).await.json(), serde_json::json!({"polluted": null, "secret": null, "push": 2}));

    // A call stuck in a native loop: answered at its deadline, while the
    // neighbour keeps its latency; after three strikes, quarantine.
    for i in 0..3 {
        let t0 = Instant::now();
        let got = get(&bad_url, &[("x-mode", "stringify-loop")]).await;
        assert_eq!(got.status, 500);
        assert!(reason(&got).contains("timed out after 300 ms"), "{i}: {}", reason(&got));
        assert!(t0.elapsed() < Duration::from_millis(1500), "answered late: {:?}", t0.elapsed());
        let t1 = Instant::now();
        assert_eq!(get(&good_url, &[]).await.status, 403);
        assert!(t1.elapsed() < Duration::from_millis(1000), "the neighbour slowed down: {:?}", t1.elapsed());
        tokio::time::sleep(Duration::from_millis(150)).await; // let the watchdog see the stuck worker
    }
    let t0 = Instant::now();
    let got = get(&bad_url, &[("x-mode", "io")]).await;
    assert!(reason(&got).contains("quarantined"), "{}", reason(&got));
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "quarantined calls fail fast, before their 300 ms deadline: {:?}",
        t0.elapsed()
    );
    assert_eq!(gw.gw.host.quarantined().len(), 1);
    assert_eq!(get(&good_url, &[]).await.status, 403, "the neighbour is not quarantined");
    gw.stop().await;
}
