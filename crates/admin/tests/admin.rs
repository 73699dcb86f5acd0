//! The control plane through the admin API, against a real gateway, store
//! and upstream: lifecycle order, rollback, persistence, conflicts, uploads,
//! auth, and a hot upgrade under load.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use interpose_config::Config;
use interpose_control::{archive, ControlError, Manager};
use interpose_gateway::{Gateway, Listening};
use interpose_registry::Store;
use interpose_test_util::{body, get, send, Got, Upstream};
use serde_json::json;

struct Env {
    admin: String,
    data: Listening,
    manager: Arc<Manager>,
    server: tokio::task::JoinHandle<()>,
}

impl Env {
    async fn start(up: &Upstream, dir: &Path, token: Option<&str>) -> Env {
        Env::start_with(up, dir, token, "").await
    }

    async fn start_with(up: &Upstream, dir: &Path, token: Option<&str>, extra: &str) -> Env {
        let manager = Env::manager(up, dir, extra).await.unwrap();
        let data =
            Listening::start(manager.gateway().clone(), "127.0.0.1:0".parse::<SocketAddr>().unwrap()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = format!("http://{}", listener.local_addr().unwrap());
        let app = interpose_admin::router(manager.clone(), token.map(str::to_string));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Env { admin, data, manager, server }
    }

    /// The control plane on the registry in `dir`, `extra` added to the config.
    async fn manager(up: &Upstream, dir: &Path, extra: &str) -> Result<Arc<Manager>, ControlError> {
        let text = format!(
            "[server]\nworkers = 2\n[storage]\nurl = \"sqlite://{}/reg.db\"\nworkspaces = \"ws\"\nplugins = \"plugins\"\n{extra}\n\
             [[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{}/project/api/project\"\n",
            dir.display(),
            up.url()
        );
        let config = Config::from_str_with_env(&text, "t.toml", dir, Vec::new()).unwrap();
        let store = Store::open(&config.storage.url).await.unwrap();
        Manager::start(Gateway::new(config).unwrap(), store).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.data.addr)
    }

    async fn call(&self, method: &str, path: &str, payload: Vec<u8>) -> Got {
        let req = Request::builder().method(method).uri(format!("{}{path}", self.admin)).body(body(payload)).unwrap();
        send(req).await
    }

    async fn stop(self) {
        self.server.abort();
        self.data.shutdown().await;
    }
}

const LIFECYCLE: &str = r#"
import { appendStrings } from '@ones-op/node-file'
import { Logger } from '@ones-op/node-logger'
const note = (s) => { Logger.info(s + ' ' + VERSION); return appendStrings('life.txt', s + '\n') }
export async function Install() { await note('Install') }
export async function Enable() { if (globalThis.FAIL_ENABLE) throw new Error('enable refused'); await note('Enable') }
export async function Start() { await note('Start') }
export async function Stop() { await note('Stop') }
export async function Disable() { await note('Disable') }
export async function UnInstall() { await note('UnInstall') }
export async function Upgrade(old) { await note('Upgrade from ' + old.version + ' ' + old.instance_uuid) }
export function check(r) { return { statusCode: 403, body: { version: VERSION } } }
"#;

fn project(version: &str, extra: &str) -> tempfile::TempDir {
    interpose_test_util::project(&[
        ("config/plugin.yaml", &format!("service: {{app_id: life, version: {version}, name: life, scope: 1}}\napis:\n  - {{type: intercept, methods: [GET], url: '/team/:teamUUID/x', function: check}}\n")),
        ("backend/src/index.js", &format!("const VERSION = '{version}'\n{extra}\n{LIFECYCLE}")),
    ])
}

fn pack(dir: &Path) -> Vec<u8> {
    archive::pack(dir).unwrap()
}

fn life(dir: &Path, id: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join("ws").join(id).join("life.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Lifecycle functions run on the workers that run the hooks: what `Start`
/// leaves in module state (a cache it loads, say) is there for the hooks.
#[tokio::test]
async fn what_start_sets_up_is_there_for_the_hooks() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), None).await;
    let p = interpose_test_util::project(&[
        ("config/plugin.yaml", "service: {app_id: warm, version: 1.0.0, name: warm, scope: 1}\napis:\n  - {type: intercept, methods: [GET], url: '/team/:teamUUID/x', function: check}\n"),
        (
            "backend/src/index.js",
            "let cache = null\nlet starts = 0\n\
             export async function Start() { starts += 1; cache = { loaded: 'by Start' } }\n\
             export function check(r) { return { statusCode: 403, body: { cache, starts } } }\n",
        ),
    ]);
    let got = env.call("POST", "/api/instances?team=T1&id=W1", pack(p.path())).await;
    assert_eq!(got.status, 201, "{}", got.text());
    let got = get(&env.url("/project/api/project/team/T1/x"), &[]).await;
    assert_eq!(got.json(), json!({"cache": {"loaded": "by Start"}, "starts": 1}));
    env.stop().await;
}

#[tokio::test]
async fn lifecycle_order_upgrade_and_uninstall() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), None).await;
    let v1 = project("1.0.0", "");
    let got = env.call("POST", "/api/instances?team=T1&id=L1", pack(v1.path())).await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!((got.json()["state"].as_str(), got.json()["team"].as_str()), (Some("enabled"), Some("T1")));
    assert_eq!(life(dir.path(), "L1"), ["Install", "Enable", "Start"]);
    assert_eq!(get(&env.url("/project/api/project/team/T1/x"), &[]).await.json(), json!({"version": "1.0.0"}));
    assert_eq!(get(&env.url("/project/api/project/team/T2/x"), &[]).await.status, 200, "other teams are not hooked");

    assert_eq!(env.call("POST", "/api/instances/L1/disable", vec![]).await.status, 200);
    assert_eq!(get(&env.url("/project/api/project/team/T1/x"), &[]).await.status, 200);
    assert_eq!(env.call("POST", "/api/instances/L1/enable", vec![]).await.status, 200);
    let v2 = project("2.0.0", "");
    let got = env.call("POST", "/api/instances/L1/upgrade", pack(v2.path())).await;
    assert_eq!((got.status.as_u16(), got.json()["version"].as_str()), (200, Some("2.0.0")), "{}", got.text());
    assert_eq!(get(&env.url("/project/api/project/team/T1/x"), &[]).await.json(), json!({"version": "2.0.0"}));
    // The instance's log runs on across the upgrade, in order.
    let logs = env.call("GET", "/api/instances/L1/logs", vec![]).await.json();
    let lines: Vec<&str> = logs.as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(
        lines,
        [
            "Install 1.0.0",
            "Enable 1.0.0",
            "Start 1.0.0",
            "Stop 1.0.0",
            "Disable 1.0.0",
            "Enable 1.0.0",
            "Start 1.0.0",
            "Upgrade from 1.0.0 L1 2.0.0"
        ]
    );
    let seqs: Vec<u64> = logs.as_array().unwrap().iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let got = env.call("DELETE", "/api/instances/L1", vec![]).await;
    assert_eq!(got.status, 200);
    assert_eq!((got.json()["id"].as_str(), got.json()["state"].as_str()), (Some("L1"), Some("uninstalled")));
    assert_eq!(
        life(dir.path(), "L1"),
        [
            "Install",
            "Enable",
            "Start",
            "Stop",
            "Disable",
            "Enable",
            "Start",
            "Upgrade from 1.0.0 L1",
            "Stop",
            "Disable",
            "UnInstall"
        ]
    );
    assert_eq!(env.call("GET", "/api/instances/L1", vec![]).await.status, 404);
    assert_eq!(get(&env.url("/project/api/project/team/T1/x"), &[]).await.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn a_failing_lifecycle_function_rolls_the_change_back() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), None).await;
    let bad = project("1.0.0", "globalThis.FAIL_ENABLE = true");
    let got = env.call("POST", "/api/instances?team=T1&id=B1", pack(bad.path())).await;
    assert_eq!(got.status, 422);
    assert_eq!(got.json()["errcode"], "LifecycleFailed");
    assert!(
        got.json()["reason"].as_str().unwrap().contains("Enable() of plugin life failed: threw Error: enable refused"),
        "{}",
        got.text()
    );
    assert_eq!(env.call("GET", "/api/instances", vec![]).await.json(), json!([]));
    assert_eq!(get(&env.url("/project/api/project/team/T1/x"), &[]).await.status, 200, "no hook went live");
    // Installed disabled, then an upgrade whose Upgrade() throws: the old code keeps serving.
    let good = project("1.0.0", "");
    assert_eq!(env.call("POST", "/api/instances?team=T1&id=G1", pack(good.path())).await.status, 201);
    let throws_upgrade = interpose_test_util::project(&[
        ("config/plugin.yaml", "service: {app_id: life, version: 3.0.0, name: life, scope: 1}\napis:\n  - {type: intercept, methods: [GET], url: '/team/:teamUUID/x', function: check}\n"),
        ("backend/src/index.js", "export function Upgrade() { throw new Error('no way') }\nexport function check() { return { statusCode: 403, body: { version: '3.0.0' } } }\n"),
    ]);
    let got = env.call("POST", "/api/instances/G1/upgrade", pack(throws_upgrade.path())).await;
    assert_eq!(got.status, 422, "{}", got.text());
    assert_eq!(get(&env.url("/project/api/project/team/T1/x"), &[]).await.json(), json!({"version": "1.0.0"}));
    assert_eq!(env.call("GET", "/api/instances/G1", vec![]).await.json()["version"], "1.0.0");
    env.stop().await;
}

#[tokio::test]
async fn a_restart_brings_back_exactly_the_enabled_set() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = project("1.0.0", "");
    {
        let env = Env::start(&up, dir.path(), None).await;
        assert_eq!(env.call("POST", "/api/instances?team=T1&id=A1", pack(a.path())).await.status, 201);
        assert_eq!(env.call("POST", "/api/instances?team=T2&id=A2", pack(a.path())).await.status, 201);
        assert_eq!(env.call("POST", "/api/instances/A2/disable", vec![]).await.status, 200);
        let got = env.call("PUT", "/api/instances/A1/config", b"{\"nope\": \"x\"}".to_vec()).await;
        assert_eq!(got.status, 400, "{}", got.text());
        env.stop().await;
    }
    // The project folder is gone: the registry holds the code.
    drop(a);
    let env = Env::start(&up, dir.path(), None).await;
    let list = env.call("GET", "/api/instances", vec![]).await.json();
    let states: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().into(), i["state"].as_str().unwrap().into()))
        .collect();
    assert_eq!(states, [("A1".to_string(), "enabled".to_string()), ("A2".to_string(), "disabled".to_string())]);
    assert_eq!(get(&env.url("/project/api/project/team/T1/x"), &[]).await.status, 403);
    assert_eq!(get(&env.url("/project/api/project/team/T2/x"), &[]).await.status, 200);
    assert_eq!(life(dir.path(), "A1").last().map(String::as_str), Some("Start"), "Start() runs again after a restart");
    env.stop().await;

    // The config file declaring what the registry runs at the same place.
    let a = project("1.0.0", "");
    let twice = format!("[[plugins]]\npath = \"{}\"\nteams = [\"T1\"]\ninstance = \"C1\"\n", a.path().display());
    let err = Env::manager(&up, dir.path(), &twice).await.err().expect("refused").to_string();
    assert!(
        err.contains("life (app_id life) is declared in the config file's [[plugins]] (instance C1) and installed through the admin API at the same place (instance A1, team T1)"),
        "{err}"
    );
    let elsewhere = twice.replace("T1", "T3");
    Env::manager(&up, dir.path(), &elsewhere).await.expect("another team is another place");
}

#[tokio::test]
async fn conflicts_bad_uploads_and_wrong_placements_are_refused() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), None).await;
    let a = project("1.0.0", "");
    assert_eq!(env.call("POST", "/api/instances?team=T1&id=A1", pack(a.path())).await.status, 201);
    let rep = interpose_test_util::project(&[
        ("config/plugin.yaml", "service: {app_id: rep, version: 1.0.0, name: rep, scope: 2}\napis:\n  - {type: replace, methods: [GET], url: '/team/:t/x', function: f}\n"),
        ("backend/src/index.js", "export function f() {}\n"),
    ]);
    let got = env.call("POST", "/api/instances?org=true&id=R1", pack(rep.path())).await;
    assert_eq!(got.status, 409, "{}", got.text());
    let b = got.json();
    assert_eq!(b["errcode"], "Conflict");
    assert_eq!(
        b["conflicts"][0]["first"],
        json!({"name": "life", "app_id": "life", "instance": "A1", "hook": "intercept hook check() (apis[0])"})
    );
    assert_eq!(b["conflicts"][0]["second"]["instance"], "R1");
    assert!(b["reason"].as_str().unwrap().contains("intercept and replace cannot be used"));
    assert_eq!(
        env.call("GET", "/api/instances", vec![]).await.json().as_array().unwrap().len(),
        1,
        "nothing was added"
    );

    // A plugin is installed once per place: again for T1 is refused before
    // any of its code runs; for another team it is a new instance.
    let got = env.call("POST", "/api/instances?team=T1&id=A2", pack(a.path())).await;
    assert_eq!(got.status, 409, "{}", got.text());
    let b = got.json();
    assert_eq!((b["errcode"].as_str(), b["instance"].as_str()), (Some("AlreadyInstalled"), Some("A1")));
    assert_eq!(
        b["reason"],
        "life (app_id life) is already installed for team T1 as instance A1: upgrade that instance (`interpose plugin upgrade A1 DIR`) or uninstall it first"
    );
    assert!(life(dir.path(), "A2").is_empty(), "Install() did not run");
    assert_eq!(env.call("GET", "/api/instances", vec![]).await.json().as_array().unwrap().len(), 1);
    assert_eq!(env.call("POST", "/api/instances?team=T2&id=A2", pack(a.path())).await.status, 201);

    // Path traversal inside the upload.
    let mut raw = Vec::new();
    {
        let enc = flate2::write::GzEncoder::new(&mut raw, flate2::Compression::default());
        let mut t = tar::Builder::new(enc);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        let name = b"../evil.txt";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        t.append(&h, &b"x"[..]).unwrap();
        t.into_inner().unwrap().finish().unwrap();
    }
    let got = env.call("POST", "/api/instances?org=true", raw).await;
    assert_eq!(got.status, 422);
    assert!(got.json()["problems"][0].as_str().unwrap().contains("climbs out with '..'"), "{}", got.text());
    assert!(!dir.path().join("plugins/evil.txt").exists() && !dir.path().join("evil.txt").exists());

    let got = env.call("POST", "/api/instances?org=true", pack(a.path())).await;
    assert_eq!(got.status, 400);
    assert!(got.json()["reason"].as_str().unwrap().contains("team-level plugin"));
    let got = env.call("POST", "/api/instances", pack(a.path())).await;
    assert_eq!(got.status, 400);
    let broken = interpose_test_util::project(&[("config/plugin.yaml", "service: {app_id: x, version: 1.0.0, name: x, scope: 2}\napis:\n  - {type: intercept, methods: [GET], url: /a, function: missing}\n"), ("backend/src/index.js", "export function other() {}\n")]);
    let got = env.call("POST", "/api/instances?org=true", pack(broken.path())).await;
    assert_eq!(got.status, 422);
    let problem = got.json()["problems"][0].as_str().unwrap().to_string();
    assert!(problem.starts_with("config/plugin.yaml:3:5: apis[0].function: missing() is not exported"), "{problem}");
    assert_eq!(env.call("POST", "/api/instances/nope/enable", vec![]).await.status, 404);
    env.stop().await;
}

#[tokio::test]
async fn the_admin_token_is_required_when_set() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), Some("s3cret")).await;
    assert_eq!(env.call("GET", "/api/instances", vec![]).await.status, 401);
    let wrong = Request::get(format!("{}/api/instances", env.admin))
        .header("authorization", "Bearer nope")
        .body(body(""))
        .unwrap();
    assert_eq!(send(wrong).await.status, 401);
    let right = Request::get(format!("{}/api/instances", env.admin))
        .header("authorization", "Bearer s3cret")
        .body(body(""))
        .unwrap();
    assert_eq!(send(right).await.status, 200);
    assert_eq!(env.call("GET", "/health", vec![]).await.status, 200);
    let doc = env.call("GET", "/openapi.json", vec![]).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let refused = interpose_admin::serve(env.manager.clone(), "0.0.0.0:0".parse().unwrap(), None, async {}).await;
    assert!(refused.expect_err("no token").to_string().contains("set INTERPOSE_ADMIN_TOKEN"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_steady_traffic_drops_nothing() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), None).await;
    assert_eq!(env.call("POST", "/api/instances?team=T1&id=H1", pack(project("1.0.0", "").path())).await.status, 201);
    let url = env.url("/project/api/project/team/T1/x");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (url, stop) = (url.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let got = get(&url, &[]).await;
                seen.push((got.status.as_u16(), got.json()["version"].as_str().unwrap_or("?").to_string()));
            }
            seen
        }));
    }
    for v in ["1.1.0", "1.2.0", "1.3.0"] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(env.call("POST", "/api/instances/H1/upgrade", pack(project(v, "").path())).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = Vec::new();
    for l in load {
        all.extend(l.await.unwrap());
    }
    assert!(all.len() > 20, "{}", all.len());
    assert!(
        all.iter().all(|(s, _)| *s == 403),
        "every request was answered by some version of the hook: {:?}",
        all.iter().filter(|(s, _)| *s != 403).take(3).collect::<Vec<_>>()
    );
    let versions: std::collections::BTreeSet<&str> = all.iter().map(|(_, v)| v.as_str()).collect();
    assert!(versions.contains("1.0.0") && versions.contains("1.3.0"), "{versions:?}");
    // Nothing of the old versions stays: not their unpacked code...
    let unpacked: Vec<_> = std::fs::read_dir(dir.path().join("plugins"))
        .unwrap()
        .flat_map(|app| std::fs::read_dir(app.unwrap().path()).into_iter().flatten())
        .map(|v| v.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    assert!(unpacked[0].starts_with("1.3.0-"), "{unpacked:?}");
    // ...nor their JS runtimes (at most one per worker for the live version).
    let gw = env.manager.gateway().clone();
    let t0 = std::time::Instant::now();
    while gw.host.runtimes() > gw.host.live_workers() {
        assert!(t0.elapsed() < Duration::from_secs(5), "{} runtimes stay after the upgrades", gw.host.runtimes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_and_hooks() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), Some("t")).await;
    let install = Request::post(format!("{}/api/instances?team=T1&id=M1", env.admin))
        .header("authorization", "Bearer t")
        .body(body(pack(project("1.0.0", "").path())))
        .unwrap();
    assert_eq!(send(install).await.status, 201);
    for _ in 0..3 {
        assert_eq!(get(&env.url("/project/api/project/team/T1/x"), &[]).await.status, 403);
    }
    assert_eq!(get(&env.url("/project/api/project/team/T2/x"), &[]).await.status, 200);
    // A new route table (another instance) keeps the route's counters.
    let install = Request::post(format!("{}/api/instances?team=T2&id=M2", env.admin))
        .header("authorization", "Bearer t")
        .body(body(pack(project("1.0.0", "").path())))
        .unwrap();
    assert_eq!(send(install).await.status, 201);
    assert_eq!(get(&env.url("/project/api/project/team/T2/x"), &[]).await.status, 403);
    assert_eq!(env.call("GET", "/metrics", vec![]).await.status, 401, "metrics need the token too");
    let req =
        Request::get(format!("{}/metrics", env.admin)).header("authorization", "Bearer t").body(body("")).unwrap();
    let text = send(req).await.text();
    for line in [
        "interpose_requests_total{scope=\"project\",hooked=\"true\",status=\"4xx\"} 4",
        "interpose_route_requests_total{scope=\"project\",method=\"GET\",route=\"/team/:teamUUID/x\",status=\"4xx\"} 4",
        "interpose_route_requests_total{scope=\"project\",method=\"GET\",route=\"/team/:teamUUID/x\",status=\"2xx\"} 0",
        "interpose_requests_total{scope=\"project\",hooked=\"false\",status=\"2xx\"} 1",
        "interpose_hook_calls_total{plugin=\"life\",instance=\"M1\",function=\"check\",type=\"intercept\"} 3",
        "interpose_hook_rejects_total{plugin=\"life\",instance=\"M1\",function=\"check\",type=\"intercept\"} 3",
        "interpose_hook_duration_seconds_count{plugin=\"life\",instance=\"M1\",function=\"check\",type=\"intercept\"} 3",
        "interpose_upstream_duration_seconds_count{scope=\"project\"} 1",
        "interpose_post_dropped_total 0",
        "interpose_js_heap_bytes{plugin=\"life\",instance=\"M1\"}",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    env.stop().await;
}

#[tokio::test]
async fn durable_events_retry_dead_letter_and_replay_in_order() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env =
        Env::start_with(&up, dir.path(), None, "[limits]\npost_retry_base_ms = 20\npost_max_attempts = 3\n").await;
    let sub = interpose_test_util::project(&[
        ("config/plugin.yaml", "service: {app_id: sub, version: 1.0.0, name: sub, scope: 2}\napis:\n  - {type: subscribe, methods: [GET], url: /feed, function: f}\n"),
        ("backend/src/index.js", "import { isExist, appendStrings } from '@ones-op/node-file'\nexport async function f(r) {\n  if (!(await isExist('ok'))) throw new Error('not ready')\n  await appendStrings('got.txt', r.query.n + '\\n')\n}\n"),
    ]);
    assert_eq!(env.call("POST", "/api/instances?org=true&id=S1", pack(sub.path())).await.status, 201);
    for n in 1..=3 {
        assert_eq!(get(&env.url(&format!("/project/api/project/feed?n={n}")), &[]).await.status, 200);
    }
    // Every attempt fails: after three, all three are dead letters.
    let t0 = std::time::Instant::now();
    loop {
        let dead = env.call("GET", "/api/events/dead", vec![]).await.json();
        if dead.as_array().unwrap().len() == 3 {
            assert_eq!(dead[0]["attempts"], 3);
            assert!(dead[0]["last_error"].as_str().unwrap().contains("not ready"), "{dead}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not dead-lettered: {dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = env.call("GET", "/api/events", vec![]).await.json();
    assert_eq!((counts["pending"].as_i64(), counts["dead"].as_i64()), (Some(0), Some(3)));
    // Fixed: replay all three; they arrive in order.
    std::fs::write(dir.path().join("ws/S1/ok"), "").unwrap();
    let dead = env.call("GET", "/api/events/dead", vec![]).await.json();
    for e in dead.as_array().unwrap() {
        let id = e["id"].as_i64().unwrap();
        assert_eq!(env.call("POST", &format!("/api/events/{id}/replay"), vec![]).await.status, 200);
    }
    assert_eq!(env.call("POST", "/api/events/999999/replay", vec![]).await.status, 404);
    // Bad calls get the API's JSON errors, not the framework's plain text.
    for (method, path, status, errcode) in [
        ("POST", "/api/events/xyz/replay", 400, "BadRequest"),
        ("GET", "/api/nothing", 404, "NotFound"),
        ("DELETE", "/api/routes", 405, "MethodNotAllowed"),
    ] {
        let got = env.call(method, path, vec![]).await;
        assert_eq!((got.status.as_u16(), got.json()["errcode"].as_str()), (status, Some(errcode)), "{method} {path}");
    }
    let got = dir.path().join("ws/S1/got.txt");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&got).unwrap_or_default().lines().count() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(10), "replayed events not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // New events go straight through, still in order.
    for n in 4..=8 {
        get(&env.url(&format!("/project/api/project/feed?n={n}")), &[]).await;
    }
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&got).unwrap_or_default().lines().count() < 8 {
        assert!(t0.elapsed() < Duration::from_secs(10), "new events not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "1\n2\n3\n4\n5\n6\n7\n8\n");
    let counts = env.call("GET", "/api/events", vec![]).await.json();
    assert_eq!((counts["pending"].as_i64(), counts["dead"].as_i64()), (Some(0), Some(0)));
    // Every delivery attempt counts as a call of the subscriber: 3 × 3 failed, 3 replayed, 5 new.
    let text = env.call("GET", "/metrics", vec![]).await.text();
    for line in [
        "interpose_hook_calls_total{plugin=\"sub\",instance=\"S1\",function=\"f\",type=\"subscribe\"} 17",
        "interpose_hook_failures_total{plugin=\"sub\",instance=\"S1\",function=\"f\",type=\"subscribe\",kind=\"throw\"} 9",
        "interpose_hook_duration_seconds_count{plugin=\"sub\",instance=\"S1\",function=\"f\",type=\"subscribe\"} 17",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    env.stop().await;
}

/// Events a subscriber has not taken yet show as its queue depth, per hook.
#[tokio::test]
async fn stored_events_are_a_hooks_queue_depth() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The first attempt fails and the next is far off: the events stay pending.
    let env = Env::start_with(&up, dir.path(), None, "[limits]\npost_retry_base_ms = 600000\n").await;
    let sub = interpose_test_util::project(&[
        ("config/plugin.yaml", "service: {app_id: sub, version: 1.0.0, name: sub, scope: 2}\napis:\n  - {type: subscribe, methods: [GET], url: /feed, function: f}\n"),
        ("backend/src/index.js", "export function f() { throw new Error('not ready') }\n"),
    ]);
    assert_eq!(env.call("POST", "/api/instances?org=true&id=S1", pack(sub.path())).await.status, 201);
    for n in 1..=3 {
        assert_eq!(get(&env.url(&format!("/project/api/project/feed?n={n}")), &[]).await.status, 200);
    }
    let labels = "{plugin=\"sub\",instance=\"S1\",function=\"f\",type=\"subscribe\"}";
    let t0 = std::time::Instant::now();
    loop {
        let text = env.call("GET", "/metrics", vec![]).await.text();
        let failed =
            text.contains(&format!("interpose_hook_failures_total{}", labels.replace('}', ",kind=\"throw\"} 1")));
        if failed {
            for line in
                [format!("interpose_hook_queue_depth{labels} 3"), format!("interpose_hook_dropped_total{labels} 0")]
            {
                assert!(text.contains(&line), "missing {line:?} in\n{text}");
            }
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "the first attempt did not fail:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.stop().await;
}

/// Config values set through the admin API reach the running plugin at once
/// and stay after a restart.
#[tokio::test]
async fn config_values_reach_the_plugin() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = interpose_test_util::project(&[
        ("config/plugin.yaml", "service:\n  app_id: conf\n  version: 1.0.0\n  name: conf\n  scope: 1\n  config:\n    - {key: limit, type: Input, value: '10'}\napis:\n  - {type: replace, methods: [GET], url: '/team/:teamUUID/conf', function: f}\n"),
        ("backend/src/index.ts", "import { Plugin } from '@ones-op/node-ability';\nexport async function f(r: any) { const c = await Plugin.getPluginConfig(r.teamUUID); return { body: { limit: c.find((i: any) => i.key === 'limit').value } } }\n"),
    ]);
    let read = |env: &Env| {
        let url = env.url("/project/api/project/team/T1/conf");
        async move { get(&url, &[]).await.json()["limit"].clone() }
    };
    {
        let env = Env::start(&up, dir.path(), None).await;
        assert_eq!(env.call("POST", "/api/instances?team=T1&id=C1", pack(p.path())).await.status, 201);
        assert_eq!(read(&env).await, json!("10"), "the manifest's default");
        let got = env.call("PUT", "/api/instances/C1/config", b"{\"limit\": \"25\"}".to_vec()).await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(read(&env).await, json!("25"), "the next call sees the new value");
        env.stop().await;
    }
    let env = Env::start(&up, dir.path(), None).await;
    assert_eq!(read(&env).await, json!("25"), "kept across a restart");
    env.stop().await;
}

#[tokio::test]
async fn required_config_is_asked_for_and_passwords_are_not_shown() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = interpose_test_util::project(&[
        ("config/plugin.yaml", "service:\n  app_id: req\n  version: 1.0.0\n  name: req\n  scope: 1\n  config:\n    - {key: token, type: Password, required: true}\n    - {key: mode, type: Input, required: true, value: soft}\napis:\n  - {type: replace, methods: [GET], url: '/team/:teamUUID/req', function: f}\n"),
        ("backend/src/index.ts", "import { Plugin } from '@ones-op/node-ability';\nexport async function f() { const c = await Plugin.getPluginConfig(); return { body: Object.fromEntries(c.map((i: any) => [i.key, i.value])) } }\n"),
    ]);
    let env = Env::start(&up, dir.path(), None).await;
    // Enabled without a required value: refused, naming the key and the way to set it.
    let got = env.call("POST", "/api/instances?team=T1&id=R1", pack(p.path())).await;
    assert_eq!(got.status, 400, "{}", got.text());
    let reason = got.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("config \"token\"") && reason.contains("--config token=") && !reason.contains("mode"),
        "{reason}"
    );
    assert_eq!(env.call("GET", "/api/instances/R1", vec![]).await.status, 404, "nothing was installed");
    // Given at install: enabled; the plugin reads it, the API shows it masked.
    let q = "/api/instances?team=T1&id=R1&config=%7B%22token%22%3A%22s3cr%C3%A9t%22%7D";
    let got = env.call("POST", q, pack(p.path())).await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(got.json()["config"], json!({"token": "********", "mode": "soft"}));
    let answer = get(&env.url("/project/api/project/team/T1/req"), &[]).await;
    assert_eq!(answer.json(), json!({"token": "s3crét", "mode": "soft"}));
    // Installed disabled, then set, then enabled.
    let got = env.call("POST", "/api/instances?team=T2&id=R2&enable=false", pack(p.path())).await;
    assert_eq!(got.status, 201, "{}", got.text());
    let got = env.call("POST", "/api/instances/R2/enable", vec![]).await;
    assert!(got.status == 400 && got.text().contains("plugin config set R2 token="), "{}", got.text());
    assert_eq!(env.call("PUT", "/api/instances/R2/config", b"{\"token\": \"t2\"}".to_vec()).await.status, 200);
    let got = env.call("POST", "/api/instances/R2/enable", vec![]).await;
    assert_eq!((got.status.as_u16(), got.json()["state"].clone()), (200, json!("enabled")));
    assert_eq!(get(&env.url("/project/api/project/team/T2/req"), &[]).await.json()["token"], "t2");
    // A config parameter that is not a JSON object, or names an undeclared key.
    let got = env.call("POST", "/api/instances?team=T3&config=nope", pack(p.path())).await;
    assert!(got.status == 400 && got.text().contains("config: expected a JSON object"), "{}", got.text());
    let got = env.call("POST", "/api/instances?team=T3&config=%7B%22x%22%3A1%7D", pack(p.path())).await;
    assert!(got.status == 400 && got.json()["reason"].as_str().unwrap().contains("declares no config key \"x\""));
    env.stop().await;
}

#[tokio::test]
async fn the_ui_is_served_and_every_call_it_makes_exists() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), None).await;
    let page = env.call("GET", "/", vec![]).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(page.headers["content-security-policy"], "default-src 'self'; frame-ancestors 'none'");
    let html = page.text();
    let script = env.call("GET", "/ui/app.js", vec![]).await;
    assert_eq!(script.status, 200);
    let js = script.text();
    // What the page loads and links to.
    for path in ["/ui/app.js", "/ui/style.css", "/openapi.json", "/metrics"] {
        assert!(html.contains(&format!("\"{path}\"")), "{path} not in the page");
        assert_eq!(env.call("GET", path, vec![]).await.status, 200, "{path}");
    }
    // What the script reads: every GET answers JSON of the shape it uses.
    for path in ["/ready", "/api/instances", "/api/routes", "/api/events", "/api/events/dead", "/api/quarantine"] {
        assert!(js.contains(&format!("'{path}'")), "{path} not in app.js");
        let got = env.call("GET", path, vec![]).await;
        assert_eq!(got.status, 200, "{path}");
        got.json();
    }
    for field in ["status", "enabled_instances", "registry_version", "storage"] {
        assert!(!env.call("GET", "/ready", vec![]).await.json()[field].is_null(), "{field}");
    }
    for field in ["durable", "pending", "delivered", "retried", "dead"] {
        assert!(!env.call("GET", "/api/events", vec![]).await.json()[field].is_null(), "{field}");
    }
    env.stop().await;
}

#[tokio::test]
async fn a_disabled_subscriber_keeps_its_events_and_a_removed_hook_dead_letters_them() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(&up, dir.path(), None).await;
    let sub = |version: &str, function: &str| {
        interpose_test_util::project(&[
            ("config/plugin.yaml", &format!("service: {{app_id: sub, version: {version}, name: sub, scope: 2}}\napis:\n  - {{type: subscribe, methods: [GET], url: /feed, function: {function}}}\n")),
            ("backend/src/index.js", &format!("import {{ appendStrings }} from '@ones-op/node-file'\nexport async function {function}(r) {{\n  const t = Date.now(); while (Date.now() - t < 300) {{}}\n  await appendStrings('got.txt', r.query.n + '\\n')\n}}\n")),
        ])
    };
    let v1 = sub("1.0.0", "f");
    assert_eq!(env.call("POST", "/api/instances?org=true&id=S2", pack(v1.path())).await.status, 201);
    let feed = |from: u32| {
        let urls: Vec<String> =
            (from..from + 4).map(|n| env.url(&format!("/project/api/project/feed?n={n}"))).collect();
        async move {
            for url in urls {
                assert_eq!(get(&url, &[]).await.status, 200);
            }
        }
    };
    let got = dir.path().join("ws/S2/got.txt");
    let lines = || std::fs::read_to_string(&got).unwrap_or_default().lines().count();
    let counts = || async { env.call("GET", "/api/events", vec![]).await.json() };
    // Disabled with a backlog: the events wait, none is lost or dead.
    feed(1).await;
    assert_eq!(env.call("POST", "/api/instances/S2/disable", vec![]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let held = counts().await;
    assert_eq!(held["dead"], 0, "{held}");
    assert!(held["pending"].as_i64().unwrap() >= 1 && lines() < 4, "{held}, {} delivered", lines());
    // Enabled again: delivered, in order.
    assert_eq!(env.call("POST", "/api/instances/S2/enable", vec![]).await.status, 200);
    let t0 = std::time::Instant::now();
    while lines() < 4 {
        assert!(t0.elapsed() < Duration::from_secs(10), "held events not delivered after enable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "1\n2\n3\n4\n");
    // Upgraded to code without that subscriber: what is left of the
    // backlog can never be delivered, and the dead letters say why.
    feed(5).await;
    let v2 = sub("2.0.0", "g");
    assert_eq!(env.call("POST", "/api/instances/S2/upgrade", pack(v2.path())).await.status, 200);
    let t0 = std::time::Instant::now();
    let dead = loop {
        let c = counts().await;
        if c["pending"] == 0 {
            break env.call("GET", "/api/events/dead", vec![]).await.json();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let dead = dead.as_array().unwrap();
    assert!(!dead.is_empty() && dead.len() + lines() == 8, "{dead:?}, {} delivered", lines());
    for e in dead {
        assert_eq!(e["last_error"], "instance S2 (sub 2.0.0) has no subscribe hook f() any more", "{e}");
    }
    env.stop().await;
}
