//! Several `interpose serve` processes sharing one PostgreSQL store, as an
//! operator runs them behind a load balancer. Skipped (with a message) when
//! PostgreSQL is not installed; CI installs it and sets REQUIRE_POSTGRES=1.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use interpose_test_util::{get, Upstream};

struct Node {
    child: Child,
    port: u16,
    admin: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One gateway node with a folder of its own (as on its own machine) and
/// the shared store.
fn node(dir: &Path, store: &str, upstream: &str, poll_ms: u32) -> Node {
    node_with(dir, store, upstream, poll_ms, "")
}

/// A node that neither listens to change announcements nor polls (10 min):
/// what it knows of others' changes it learns when it makes one.
fn deaf_node(dir: &Path, store: &str, upstream: &str) -> Node {
    node_with(dir, store, upstream, 600_000, "[storage]\nlisten = false\n")
}

/// [`node`] with more config appended (another `[[upstreams]]`, say; a
/// `[storage]` table there adds to the storage keys).
fn node_with(dir: &Path, store: &str, upstream: &str, poll_ms: u32, extra: &str) -> Node {
    let (port, admin_port) = (free_port(), free_port());
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("interpose.toml");
    let (storage, extra) = interpose_test_util::split_table(extra, "storage");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\nworkers = 1\n\
             [storage]\nurl = \"{store}\"\npoll_ms = {poll_ms}\n{storage}\n\
             [[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{upstream}/project/api/project\"\n{extra}"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_interpose"))
        .args(["serve", "-c", cfg.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("INTERPOSE_LOG")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(30), "node on {admin_port} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    Node { child, port, admin: format!("http://127.0.0.1:{admin_port}") }
}

fn plugin_cmd(node: &Node, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_interpose"))
        .arg("plugin")
        .args(args)
        .args(["--admin", &node.admin])
        .output()
        .unwrap();
    assert!(out.status.success(), "plugin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An org-level plugin whose subscriber on `GET /feed` tells the upstream
/// (`/seen?n=…`) which request it heard of.
fn subscriber(dir: &Path) -> std::path::PathBuf {
    let sub = dir.join("sub");
    interpose_test_util::write_files(&sub, &[
        ("config/plugin.yaml", "service: {app_id: sub, version: 1.0.0, name: sub, scope: 2}\napis:\n  - {type: subscribe, methods: [GET], url: /feed, function: f}\n"),
        ("backend/src/index.js", "import { OPFetch } from '@ones-op/fetch'\nexport async function f(r) { await OPFetch({ path: '/seen?n=' + r.query.n }) }\n"),
    ]);
    sub
}

/// Wait until `GET path` on `node` answers `status`.
async fn until_status(node: &Node, path: &str, status: u16) {
    let url = format!("http://127.0.0.1:{}/project/api/project{path}", node.port);
    let t0 = Instant::now();
    loop {
        let got = get(&url, &[]).await.status;
        if got == status {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{url} still answers {got}, not {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_a_postgres_store_follow_each_others_changes_and_split_the_events() {
    let Some(store) = interpose_test_util::postgres::database().await else { return };
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = node(&dir.path().join("a"), &store, &up.url(), 200);
    let b = node(&dir.path().join("b"), &store, &up.url(), 200);
    let c = deaf_node(&dir.path().join("c"), &store, &up.url());

    let guard = dir.path().join("guard");
    interpose_test_util::write_files(&guard, &[
        ("config/plugin.yaml", "service: {app_id: guard, version: 1.0.0, name: guard, scope: 2}\napis:\n  - {type: intercept, methods: [GET], url: /feed, function: f}\n"),
        ("backend/src/index.js", "import { Logger } from '@ones-op/node-logger'\n\
            export function Install() { Logger.info('lifecycle Install') }\n\
            export function Start() { Logger.info('lifecycle Start') }\n\
            export function Stop() { Logger.info('lifecycle Stop') }\n\
            export function f(r) { if (r.query.n === 'x') return { statusCode: 403, body: { blocked: 1 } } }\n"),
    ]);
    // Installed through node a: node b serves it too, within its poll.
    plugin_cmd(&a, &["install", guard.to_str().unwrap(), "--org", "--id", "g1"]);
    until_status(&a, "/feed?n=x", 403).await;
    until_status(&b, "/feed?n=x", 403).await;
    // Install ran once, on a; each node started its own runtime.
    let lifecycle = |n: &Node| -> Vec<String> {
        plugin_cmd(n, &["logs", "g1"])
            .lines()
            .filter_map(|l| l.split("lifecycle ").nth(1).map(str::to_string))
            .collect()
    };
    assert_eq!(lifecycle(&a), ["Install", "Start"]);
    assert_eq!(lifecycle(&b), ["Start"]);
    // Disabled through node b: node a follows.
    plugin_cmd(&b, &["disable", "g1"]);
    until_status(&a, "/feed?n=x", 200).await;
    assert_eq!(lifecycle(&a), ["Install", "Start", "Stop"]);
    // Upgraded through a to code that blocks something else, enabled through b.
    interpose_test_util::write_files(&guard, &[
        ("config/plugin.yaml", "service: {app_id: guard, version: 1.1.0, name: guard, scope: 2}\napis:\n  - {type: intercept, methods: [GET], url: /feed, function: f}\n"),
        ("backend/src/index.js", "export function f(r) { if (r.query.n === 'y') return { statusCode: 451 } }\n"),
    ]);
    plugin_cmd(&a, &["upgrade", "g1", guard.to_str().unwrap()]);
    plugin_cmd(&b, &["enable", "g1"]);
    for n in [&a, &b] {
        until_status(n, "/feed?n=y", 451).await;
        until_status(n, "/feed?n=x", 200).await;
    }
    // A conflicting install through a node that has not polled since the
    // guard came is refused: a change first catches up with the store.
    let rep = dir.path().join("rep");
    interpose_test_util::write_files(&rep, &[
        ("config/plugin.yaml", "service: {app_id: rep, version: 1.0.0, name: rep, scope: 2}\napis:\n  - {type: replace, methods: [GET], url: /feed, function: f}\n"),
        ("backend/src/index.js", "export function f() { return { body: 'mine' } }\n"),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_interpose"))
        .args(["plugin", "install", rep.to_str().unwrap(), "--org", "--admin", &c.admin])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("plugin guard") && err.contains("(409)"), "{err}");
    let listed = plugin_cmd(&a, &["list"]);
    assert!(listed.contains("guard") && listed.contains("1.1.0") && listed.contains("enabled"), "{listed}");

    // A subscriber: every event is delivered once, whichever node took the
    // request and whichever node delivers it.
    let sub = subscriber(dir.path());
    plugin_cmd(&b, &["install", sub.to_str().unwrap(), "--org", "--id", "s1"]);
    // Both nodes run it before traffic starts.
    let t0 = Instant::now();
    for n in [&a, &b] {
        loop {
            let routes =
                Command::new(env!("CARGO_BIN_EXE_interpose")).args(["routes", "--admin", &n.admin]).output().unwrap();
            if String::from_utf8_lossy(&routes.stdout).contains("subscribe f() of sub") {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "node {} never ran the subscriber", n.admin);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for n in 0..40 {
        let node = if n % 2 == 0 { &a } else { &b };
        let r = get(&format!("http://127.0.0.1:{}/project/api/project/feed?n={n}", node.port), &[]).await;
        assert_eq!(r.status, 200);
    }
    let t0 = Instant::now();
    loop {
        let mut seen: Vec<u32> = up
            .seen()
            .iter()
            .filter_map(|s| s.uri.strip_prefix("/project/api/project/seen?n=").and_then(|n| n.parse().ok()))
            .collect();
        seen.sort_unstable();
        if seen.len() >= 40 {
            assert_eq!(seen, (0..40).collect::<Vec<_>>(), "each event exactly once");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "only {} of 40 events delivered: {seen:?}", seen.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(node: &Node) -> serde_json::Value {
    get(&format!("{}/ready", node.admin), &[]).await.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_apply_a_change_keeps_serving_and_shows_its_lag() {
    let Some(store) = interpose_test_util::postgres::database().await else { return };
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wiki =
        format!("[[upstreams]]\nscope = \"wiki\"\nmount = \"/wiki/api/wiki\"\nurl = \"{}/wiki/api/wiki\"\n", up.url());
    let a = node_with(&dir.path().join("a"), &store, &up.url(), 200, &wiki);
    // Node b was set up without the wiki scope.
    let b = node(&dir.path().join("b"), &store, &up.url(), 200);
    let guard = dir.path().join("guard");
    interpose_test_util::write_files(&guard, &[
        ("config/plugin.yaml", "service: {app_id: guard, version: 1.0.0, name: guard, scope: 2}\napis:\n  - {type: intercept, methods: [GET], url: /feed, function: f}\n"),
        ("backend/src/index.js", "export function f() { return { statusCode: 403 } }\n"),
    ]);
    plugin_cmd(&a, &["install", guard.to_str().unwrap(), "--org", "--id", "g1"]);
    until_status(&b, "/feed", 403).await;
    let wiki_plugin = dir.path().join("wiki");
    interpose_test_util::write_files(&wiki_plugin, &[
        ("config/plugin.yaml", "service: {app_id: wk, version: 1.0.0, name: wk, scope: 2}\napis:\n  - {type: intercept, methods: [GET], url: /pages, scope: wiki, function: f}\n"),
        ("backend/src/index.js", "export function f() {}\n"),
    ]);
    plugin_cmd(&a, &["install", wiki_plugin.to_str().unwrap(), "--org", "--id", "w1"]);
    plugin_cmd(&a, &["disable", "g1"]);
    until_status(&a, "/feed", 200).await;
    // b cannot load the wiki plugin: it stays at the version before it, all
    // of it (the guard still rejects there), and says so.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (ra, rb) = (ready(&a).await, ready(&b).await);
    assert_eq!(ra["registry_version"], 3, "{ra}");
    assert_eq!(rb["registry_version"], 1, "{rb}");
    assert_eq!(get(&format!("http://127.0.0.1:{}/project/api/project/feed", b.port), &[]).await.status, 403);
    // A change through b is refused while it cannot catch up, and says why.
    let out = Command::new(env!("CARGO_BIN_EXE_interpose"))
        .args(["plugin", "enable", "g1", "--admin", &b.admin])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cannot load instance w1") && err.contains("scope"), "{err}");
    // Once the plugin is gone, b catches up with everything.
    plugin_cmd(&a, &["uninstall", "w1"]);
    until_status(&b, "/feed", 200).await;
    assert_eq!(ready(&b).await["registry_version"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_the_store_leaves_events_of_instances_it_does_not_know_to_others() {
    let Some(url) = interpose_test_util::postgres::database().await else { return };
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = node(&dir.path().join("a"), &url, &up.url(), 200);
    // It learns of the subscriber only when it makes a change.
    let c = deaf_node(&dir.path().join("c"), &url, &up.url());
    let sub = subscriber(dir.path());
    plugin_cmd(&a, &["install", sub.to_str().unwrap(), "--org", "--id", "s1"]);
    // The only node that runs it goes away; events for it are queued (as a
    // node that took the requests and died would have left them).
    drop(a);
    let store = interpose_registry::Store::open(&url).await.unwrap();
    let events: Vec<_> = (0..3)
        .map(|n| {
            let request = interpose_js::HookRequest {
                method: "GET".into(),
                url: format!("/feed?n={n}"),
                path: "/feed".into(),
                query: vec![("n".into(), n.to_string())],
                ..Default::default()
            };
            interpose_registry::NewEvent {
                instance: "s1".into(),
                function: "f".into(),
                kind: "subscribe".into(),
                payload: serde_json::to_string(&request).unwrap(),
            }
        })
        .collect();
    store.enqueue(&events).await.unwrap();
    // Node c claims them within 200 ms, sees it is behind the store, and
    // gives them back: none is delivered, none dead-lettered.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.event_counts().await.unwrap(), (3, 0), "(pending, dead)");
    assert!(up.seen().iter().all(|s| !s.uri.contains("/seen")), "nothing delivered yet");
    // A change through c catches it up: it runs the subscriber and delivers them, in order.
    let other = dir.path().join("other");
    interpose_test_util::write_files(&other, &[
        ("config/plugin.yaml", "service: {app_id: other, version: 1.0.0, name: other, scope: 2}\napis:\n  - {type: intercept, methods: [GET], url: /other, function: f}\n"),
        ("backend/src/index.js", "export function f() {}\n"),
    ]);
    plugin_cmd(&c, &["install", other.to_str().unwrap(), "--org"]);
    let t0 = Instant::now();
    loop {
        let seen: Vec<String> =
            up.seen().iter().filter_map(|s| s.uri.split("/seen?n=").nth(1).map(str::to_string)).collect();
        if seen.len() >= 3 {
            assert_eq!(seen, ["0", "1", "2"]);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "delivered after catching up: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.event_counts().await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_other_nodes_as_it_commits_and_the_poll_covers_lost_announcements() {
    let Some(store) = interpose_test_util::postgres::database().await else { return };
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // b and c never poll (10 min): only the announcement can tell them.
    let a = node(&dir.path().join("a"), &store, &up.url(), 600_000);
    let b = node(&dir.path().join("b"), &store, &up.url(), 600_000);
    let c = node(&dir.path().join("c"), &store, &up.url(), 600_000);
    // d does not listen (as behind PgBouncer): it learns with its poll.
    let d = node_with(&dir.path().join("d"), &store, &up.url(), 300, "[storage]\nlisten = false\n");
    let guard = dir.path().join("guard");
    interpose_test_util::write_files(&guard, &[
        ("config/plugin.yaml", "service: {app_id: guard, version: 1.0.0, name: guard, scope: 2}\napis:\n  - {type: intercept, methods: [GET], url: /feed, function: f}\n"),
        ("backend/src/index.js", "export function f() { return { statusCode: 403 } }\n"),
    ]);
    plugin_cmd(&a, &["install", guard.to_str().unwrap(), "--org", "--id", "g1"]);
    for n in [&b, &c, &d] {
        until_status(n, "/feed", 403).await;
    }
    plugin_cmd(&a, &["disable", "g1"]);
    for n in [&b, &c, &d] {
        until_status(n, "/feed", 200).await;
    }
    // The listening connections are cut: a change made before they are back
    // is missed by the announcement. b and c catch up when they notice the
    // cut (they cannot know what they missed); d is unaffected.
    let cut = interpose_test_util::postgres::cut_listeners(&store).await;
    assert_eq!(cut, 3, "a, b and c each had a listening connection to cut");
    plugin_cmd(&a, &["enable", "g1"]);
    for n in [&b, &c, &d] {
        until_status(n, "/feed", 403).await;
    }
    // And they listen again: the next change arrives without a poll.
    let t0 = Instant::now();
    loop {
        let listening = interpose_test_util::postgres::listeners(&store).await;
        if listening == 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "only {listening} nodes listen again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    plugin_cmd(&a, &["disable", "g1"]);
    for n in [&b, &c, &d] {
        until_status(n, "/feed", 200).await;
    }
}

/// Benchmark (BENCHMARKS.md "Cluster propagation"): 3 nodes on one store,
/// 50 registry changes made through node a's admin API; for each, the time
/// from a's answer until nodes b and c serve the new route table (their
/// data plane answers as the change says). Prints p50, p99 and max.
/// `LISTEN=false` measures the poll alone (`storage.poll_ms` 2000).
///
/// cargo test --release -p interpose-cli --test nodes -- --ignored --nocapture propagation
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand"]
async fn propagation_latency() {
    let Some(store) = interpose_test_util::postgres::database().await else { return };
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = match std::env::var("LISTEN").as_deref() {
        Ok("false") => "[storage]\nlisten = false\n",
        _ => "",
    };
    let nodes: Vec<Node> =
        ["a", "b", "c"].iter().map(|n| node_with(&dir.path().join(n), &store, &up.url(), 2000, storage)).collect();
    let (a, others) = (&nodes[0], &nodes[1..]);
    let guard = dir.path().join("guard");
    let version = |v: usize| {
        interpose_test_util::write_files(&guard, &[
            ("config/plugin.yaml", &format!("service: {{app_id: guard, version: 1.0.{v}, name: guard, scope: 2, config: [{{key: k, type: Input, value: '0'}}]}}\napis:\n  - {{type: intercept, methods: [GET], url: /feed, function: f}}\n")),
            ("backend/src/index.js", &format!("import {{ Plugin }} from '@ones-op/node-ability'\nexport async function f() {{\n  const k = (await Plugin.getPluginConfig()).find(i => i.key === 'k').value\n  return {{ statusCode: 403, body: 'v{v}:' + k }}\n}}\n")),
        ]);
        interpose_control::archive::pack(&guard).unwrap()
    };
    let admin = |method: &str, path: &str, body: Vec<u8>| {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}/api{path}", a.admin))
            .body(interpose_test_util::body(body))
            .unwrap();
        let path = path.to_string();
        async move {
            let got = interpose_test_util::send(req).await;
            assert!(got.status.is_success(), "{path}: {} {}", got.status, got.text());
        }
    };
    // What the data plane answers once a change is live: (status, body).
    let mut expect: (u16, String);
    let (mut v, mut k) = (0usize, 0usize);
    let mut samples: Vec<(String, Duration)> = Vec::new();
    for i in 0..50 {
        let kind = if i == 0 {
            "install"
        } else {
            ["config", "disable", "enable", "upgrade", "uninstall", "install"][(i - 1) % 6]
        };
        match kind {
            "install" => {
                k = 0;
                admin("POST", "/instances?org=true&id=g1", version(v)).await;
            }
            "config" => {
                k = i;
                admin("PUT", "/instances/g1/config", format!("{{\"k\": \"{k}\"}}").into_bytes()).await;
            }
            "disable" => admin("POST", "/instances/g1/disable", vec![]).await,
            "enable" => admin("POST", "/instances/g1/enable", vec![]).await,
            "upgrade" => {
                v = i;
                admin("POST", "/instances/g1/upgrade", version(v)).await;
            }
            _ => admin("DELETE", "/instances/g1", vec![]).await,
        }
        let t0 = Instant::now();
        expect = match kind {
            "disable" | "uninstall" => (200, String::new()),
            _ => (403, format!("v{v}:{k}")),
        };
        let waits: Vec<_> = others
            .iter()
            .map(|n| {
                let url = format!("http://127.0.0.1:{}/project/api/project/feed", n.port);
                let expect = expect.clone();
                tokio::spawn(async move {
                    loop {
                        let got = get(&url, &[]).await;
                        if got.status.as_u16() == expect.0 && (expect.0 == 200 || got.text() == expect.1) {
                            return t0.elapsed();
                        }
                        assert!(t0.elapsed() < Duration::from_secs(30), "change {i} ({kind}) never reached {url}");
                        tokio::time::sleep(Duration::from_micros(500)).await;
                    }
                })
            })
            .collect();
        for wait in waits {
            samples.push((kind.to_string(), wait.await.unwrap()));
        }
    }
    let mut all: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p).ceil() as usize).saturating_sub(1).min(all.len() - 1)];
    println!(
        "propagation over {} samples (50 changes x 2 nodes, listen {}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        all.len(),
        storage.is_empty(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all[all.len() - 1].as_secs_f64() * 1e3
    );
    for kind in ["install", "config", "disable", "enable", "upgrade", "uninstall"] {
        let mut of: Vec<f64> = samples.iter().filter(|s| s.0 == kind).map(|s| s.1.as_secs_f64() * 1e3).collect();
        of.sort_by(f64::total_cmp);
        println!("  {kind:9} n={:2} median {:.1} ms, max {:.1} ms", of.len(), of[of.len() / 2], of[of.len() - 1]);
    }
}

/// The sum of `interpose_timer_runs_total` for `timer` on `node`.
async fn timer_runs(node: &Node, timer: &str) -> i64 {
    let text = get(&format!("{}/metrics", node.admin), &[]).await.text();
    text.lines()
        .filter(|l| l.starts_with("interpose_timer_runs_total{") && l.contains(&format!("timer=\"{timer}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}

/// Nodes sharing a store share each instance's records (written on one,
/// read on the other), and run each timer tick once between them: the runs
/// the nodes count add up to the store's, one per second, and the ticks go
/// on on the other node when the one running them dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_entity_records_and_run_each_timer_tick_once() {
    let Some(store) = interpose_test_util::postgres::database().await else { return };
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("clock");
    interpose_test_util::write_files(&p, &[
        ("config/plugin.yaml", "service: {app_id: clock, version: 1.0.0, name: clock, scope: 2}\n\
apis:\n  - {type: addition, methods: [POST], url: /put, function: put}\n  - {type: addition, methods: [GET], url: /get, function: read}\n\
storage:\n  entities:\n    - name: kv\n      attributes:\n        v: {type: string, length: 100, required: true}\n    - name: tick\n      attributes:\n        at: {type: integer, required: true}\n\
abilities:\n  - id: beat\n    abilityType: TimerTask\n    function: {taskActionFunc: beat}\n    config: [{key: interval, value: 1}]\n"),
        ("backend/src/index.js", "import { storage } from '@ones-op/sdk/node'\n\
            export async function put(r) { await storage.entity('kv').set(r.body.k, { v: r.body.v }); return { body: {} } }\n\
            export async function read(r) { return { body: { v: (await storage.entity('kv').get(r.query.k))?.v ?? null, ticks: await storage.entity('tick').query().count() } } }\n\
            export async function beat() { await storage.entity('tick').set(String(Date.now()) + Math.random(), { at: Date.now() }) }\n"),
    ]);
    let a = node(&dir.path().join("a"), &store, &up.url(), 200);
    let b = node(&dir.path().join("b"), &store, &up.url(), 200);
    plugin_cmd(&a, &["install", p.to_str().unwrap(), "--org", "--id", "c1"]);
    until_status(&b, "/get?k=x", 200).await;
    let h = [("Ones-Plugin-Id", "c1")];
    let put = interpose_test_util::send_json(
        "POST",
        &format!("http://127.0.0.1:{}/project/api/project/put", a.port),
        &serde_json::json!({"k": "x", "v": "written on a"}),
        &h,
    )
    .await;
    assert_eq!(put.status, 200);
    let read = |n: &Node| {
        let url = format!("http://127.0.0.1:{}/project/api/project/get?k=x", n.port);
        async move { get(&url, &h).await.json() }
    };
    assert_eq!(read(&b).await["v"], "written on a");

    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (on_a, on_b) = (timer_runs(&a, "beat").await, timer_runs(&b, "beat").await);
    let timers = get(&format!("{}/api/instances/c1/timers", a.admin), &[]).await.json();
    let stored = timers[0]["runs"].as_i64().unwrap();
    let secs = t0.elapsed().as_secs() as i64;
    assert!(on_a + on_b >= stored - 1 && on_a + on_b <= stored + 1, "a {on_a} + b {on_b} vs store {stored}");
    assert!((3..=secs + 2).contains(&stored), "{stored} runs in {secs} s: one node per tick");
    let ticks = read(&a).await["ticks"].as_i64().unwrap();
    assert!((ticks - stored).abs() <= 1, "{ticks} ticks recorded, {stored} runs");

    // The node that ran the last ticks dies: the other carries on.
    let (survivor, dead) = if on_a >= on_b { (b, a) } else { (a, b) };
    drop(dead);
    let before = read(&survivor).await["ticks"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = read(&survivor).await["ticks"].as_i64().unwrap();
    assert!(after - before >= 2, "ticks {before} → {after} after a node died");
    assert_eq!(read(&survivor).await["v"], "written on a");
}

/// A node whose store is shared (PostgreSQL) keeps plugin databases in
/// SQLite files of its own by default: a plugin using the database would
/// see different data on each node, so `serve` refuses it and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_with_node_local_plugin_databases_is_refused() {
    let Some(store) = interpose_test_util::postgres::database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db-user");
    interpose_test_util::write_files(&p, &[
        ("config/plugin.yaml", "service: {app_id: dbuser, version: 1.0.0, name: dbuser, scope: 2}\napis:\n  - {type: addition, methods: [GET], url: /n, function: n}\n"),
        ("backend/src/index.js", "import { count } from '@ones-op/node-database'\nexport async function n() { return { body: { n: await count('select count(*) from t') } } }\n"),
    ]);
    let cfg = dir.path().join("interpose.toml");
    let (port, admin_port) = (free_port(), free_port());
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n[storage]\nurl = \"{store}\"\n[[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"http://127.0.0.1:9/project/api/project\"\n[[plugins]]\npath = \"{}\"\n",
            p.display()
        ),
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_interpose")).args(["serve", "-c", cfg.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("dbuser uses @ones-op/node-database")
            && stderr.contains("Set [plugin_db] url to a MySQL or MariaDB server"),
        "{stderr}"
    );
    // With a MariaDB for every node, it starts.
    let Some(mysql) = interpose_test_util::mariadb::server() else { return };
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[[upstreams]]", &format!("[plugin_db]\nurl = \"{mysql}\"\n[[upstreams]]"));
    std::fs::write(&cfg, text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_interpose"))
        .args(["serve", "-c", cfg.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let n = Node { child, port, admin: format!("http://127.0.0.1:{admin_port}") };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the node never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = get(&format!("{}/api/instances", n.admin), &[]).await.json();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let got = get(&format!("http://127.0.0.1:{port}/project/api/project/n"), &[("Ones-Plugin-Id", &id)]).await;
    assert_eq!(
        got.json()["errcode"],
        "DB.QuerySqlErr",
        "the database answers (the table does not exist): {}",
        got.text()
    );
}
