//! The `interpose` binary as a user runs it.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use interpose_test_util::{get, send_json, Upstream};
use serde_json::json;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_interpose"));
    c.env_remove("RUST_LOG").env_remove("INTERPOSE_LOG").env_remove("INTERPOSE_CONFIG");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn check_accepts_the_examples_and_lists_every_problem() {
    let out = run(&["check", examples().join("block-archived-users").to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok: block-archived-users 1.0.0 (app_id a1b2c3d4, organization-level)"), "{stdout}");
    assert!(stdout.contains("intercept GET          project:/users/me -> jackFunc()"), "{stdout}");
    assert!(run(&["check", examples().join("task-rules").to_str().unwrap()]).status.success());

    let dir = tempfile::tempdir().unwrap();
    interpose_test_util::write_files(dir.path(), &[
        ("config/plugin.yaml", "service:\n  app_id: x\n  version: 1\n  name: n\napis:\n  - type: intercept\n    methods: [GET]\n    url: /users/me\n    function: missing\nmodules: []\n"),
        ("backend/src/index.ts", "export function present() {}\n"),
    ]);
    let out = run(&["check", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plugin.yaml:3:12: error: service.version: \"1\" is not a version like 1.0.0"), "{stderr}");

    std::fs::write(dir.path().join("config/plugin.yaml"), "service:\n  app_id: x\n  version: 1.0.0\n  name: n\napis:\n  - type: intercept\n    methods: [GET]\n    url: /users/me\n    function: missing\nmodules: [{id: m1, title: t}]\n").unwrap();
    let out = run(&["check", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("warning: modules: section `modules` is kept but not run"), "{stderr}");
    assert!(stderr.contains("apis[0].function: missing() is not exported by backend/src/index.ts"), "{stderr}");

    // A plugin whose own hooks conflict could never be installed: check says so.
    std::fs::write(dir.path().join("config/plugin.yaml"), "service:\n  app_id: x\n  version: 1.0.0\n  name: n\napis:\n  - {type: intercept, methods: [GET], url: /users/me, function: present}\n  - {type: replace, methods: [GET, POST], url: /users/me, function: present}\n").unwrap();
    let out = run(&["check", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("plugin.yaml:7:5: the plugin's own hooks conflict on GET /users/me (scope project): intercept hook present() (apis[0]) and replace hook present() (apis[1]): intercept and replace cannot be used"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("backend/src/index.ts"), "export function missing( {\n").unwrap();
    let out = run(&["check", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("backend/src/index.ts:"), "{stderr}");
}

#[test]
fn serve_refuses_bad_config_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("interpose.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:1\"\nworkers = \"many\"\n").unwrap();
    let out = run(&["serve", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("workers") && stderr.contains("line 3"), "{stderr}");

    std::fs::write(&cfg, "[[plugins]]\npath = \"nowhere\"\n").unwrap();
    let out = run(&["serve", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugins[0].path:"));

    let out = bin()
        .args(["serve", "-c", cfg.to_str().unwrap()])
        .env("INTERPOSE_LIMITS_MAX_BODY_BYTES", "-5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limits.max_body_bytes: -5 is out of range"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_plugins_from_a_config_and_stops_on_sigterm() {
    let up = Upstream::start().await;
    let port = free_port();
    let admin_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("interpose.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\nworkers = 2\n[limits]\nhook_timeout_ms = 20000\n[storage]\nurl = \"sqlite::memory:\"\n[[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{}/project/api/project\"\n[[plugins]]\npath = {:?}\ninstance = \"1d99926e\"\n[[plugins]]\npath = {:?}\nteams = [\"T1\"]\n",
        up.url(),
        examples().join("block-archived-users").display().to_string(),
        examples().join("task-rules").display().to_string()
    );
    std::fs::write(&cfg, text).unwrap();
    let child = Running(bin().args(["serve", "-c", cfg.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap());
    wait_for_port(port);
    let base = format!("http://127.0.0.1:{port}/project/api/project");
    let got = get(&format!("{base}/users/me"), &[("Ones-User-Id", "U1")]).await;
    assert_eq!(got.status, 200);
    let got = get(&format!("{base}/users/me"), &[("Ones-User-Id", "archived-9")]).await;
    assert_eq!((got.status.as_u16(), got.json()["errcode"].as_str()), (403, Some("UserArchived")));
    let got = send_json("POST", &format!("{base}/team/T1/tasks"), &json!({"summary": ""}), &[]).await;
    assert_eq!(
        got.json(),
        json!({"type": "warning", "reason": "a task needs a summary", "errcode": "InvalidParameter", "statusCode": 400, "model": "plugin.InvalidParameter"})
    );
    let got = send_json("POST", &format!("{base}/team/T2/tasks"), &json!({"summary": ""}), &[]).await;
    assert_eq!(got.status, 200);

    // Two serving threads share the listener: many connections at once all
    // get answers, each its own hook's (the JS workers' replies reach busy
    // serving threads in batches; a reply left waiting would be taken only
    // when something else woke its thread, at worst at the hook's 20 s
    // deadline).
    let t0 = Instant::now();
    let many: Vec<_> = (0..96)
        .map(|i| {
            let url = format!("{base}/users/me");
            let user = if i % 3 == 0 { format!("archived-{i}") } else { format!("U{i}") };
            tokio::spawn(async move { (i, get(&url, &[("Ones-User-Id", &user)]).await) })
        })
        .collect();
    for r in many {
        let (i, got) = r.await.unwrap();
        assert_eq!(got.status.as_u16(), if i % 3 == 0 { 403 } else { 200 }, "request {i}: {}", got.text());
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "replies waited {:?}", t0.elapsed());

    // SIGTERM: a request in flight finishes, then the process exits 0.
    let slow_url = format!("{base}/slow/700");
    let slow = tokio::spawn(async move { get(&slow_url, &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut child = child;
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let got = slow.await.unwrap();
    assert_eq!(got.status, 200, "in-flight request finished during shutdown");
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut log = String::new();
    BufReader::new(child.0.stderr.take().unwrap()).lines().map_while(Result::ok).for_each(|l| {
        log.push_str(&l);
        log.push('\n');
    });
    assert!(log.contains("installed block-archived-users 1.0.0 as instance 1d99926e organization"), "{log}");
    assert!(log.contains("[Plugin] rejected archived user archived-9"), "{log}");
    assert!(!log.contains('\x1b'), "no colour codes in a log that is not a terminal: {log:?}");
}

/// `log.access_log`: one JSON line per request on stdout, with the request
/// id the upstream got (generated or the client's) and the hooks that ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_name_the_request_id_and_the_hooks() {
    let up = Upstream::start().await;
    let (port, admin_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("interpose.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n[log]\naccess_log = true\n[storage]\nurl = \"sqlite::memory:\"\n[[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{}/project/api/project\"\n[[plugins]]\npath = {:?}\n",
        up.url(),
        examples().join("block-archived-users").display().to_string(),
    );
    std::fs::write(&cfg, text).unwrap();
    let mut child = Running(
        bin()
            .args(["serve", "-c", cfg.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    let base = format!("http://127.0.0.1:{port}/project/api/project");
    assert_eq!(get(&format!("{base}/other"), &[]).await.status, 200);
    let generated = up.last().headers["x-request-id"].to_str().unwrap().to_string();
    let got = get(&format!("{base}/users/me"), &[("Ones-User-Id", "archived-1"), ("X-Request-Id", "mine-7")]).await;
    assert_eq!(got.status, 403);
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(child.0.wait().unwrap().success());
    let lines: Vec<serde_json::Value> = BufReader::new(child.0.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (plain, hooked) = (&lines[0], &lines[1]);
    assert_eq!(
        (plain["method"].as_str(), plain["uri"].as_str(), plain["status"].as_u64()),
        (Some("GET"), Some("/project/api/project/other"), Some(200))
    );
    assert_eq!(plain["request_id"], generated.as_str(), "the id the upstream got");
    assert_eq!(plain["hooks"], json!([]));
    assert_eq!((hooked["status"].as_u64(), hooked["request_id"].as_str()), (Some(403), Some("mine-7")));
    let hook = &hooked["hooks"][0];
    assert_eq!(
        (hook["plugin"].as_str(), hook["type"].as_str(), hook["function"].as_str()),
        (Some("block-archived-users"), Some("intercept"), Some("jackFunc"))
    );
    assert!(hook["us"].as_u64().unwrap() > 0 && hooked["us"].as_u64().unwrap() >= hook["us"].as_u64().unwrap());
    assert!(plain["time_ms"].as_u64().unwrap() > 1_700_000_000_000 && plain["client"] == "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_and_answers_the_curl_lines_it_prints() {
    let port = free_port();
    let mut child = Running(
        bin()
            .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("page/P1") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "demo exited: {banner}");
        banner.push_str(&line);
    }
    wait_for_port(port);
    let g = format!("http://127.0.0.1:{port}");
    assert!(
        banner.contains(&format!("curl -s {g}/project/api/project/users/me -H 'Ones-User-Id: archived-42'")),
        "{banner}"
    );
    let ok = get(&format!("{g}/project/api/project/users/me"), &[("Ones-User-Id", "U1")]).await;
    assert_eq!((ok.status.as_u16(), ok.json()["uuid"].as_str()), (200, Some("U1")));
    let rejected = get(&format!("{g}/project/api/project/users/me"), &[("Ones-User-Id", "archived-42")]).await;
    assert_eq!(rejected.status, 403);
    let page = get(&format!("{g}/wiki/api/wiki/team/T1/page/P1"), &[]).await;
    assert_eq!(page.json()["title"], "Welcome");
}

#[test]
fn routes_prints_the_effective_table_offline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("interpose.toml");
    let text = format!(
        "[storage]\nworkspaces = \"ws\"\n[[plugins]]\npath = {:?}\ninstance = \"org1\"\n[[plugins]]\npath = {:?}\nteams = [\"T1\"]\ninstance = \"team1\"\n[[plugins]]\npath = {:?}\ninstance = \"sfx1\"\n",
        examples().join("block-archived-users").display().to_string(),
        examples().join("task-rules").display().to_string(),
        examples().join("suffix-log").display().to_string()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = run(&["routes", "-c", cfg.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let expected = "POST /team/:teamUUID/tasks  [scope project, team T1]\n    intercept checkNewTask() of task-rules [instance team1, priority 0]\n    suffix    logTask() of suffix-log [instance sfx1, priority 0]\n";
    assert!(stdout.contains(expected), "{stdout}");
    assert!(
        stdout
            .contains("POST /team/:teamUUID/tasks  [scope project, every team]\n    suffix    logTask() of suffix-log"),
        "{stdout}"
    );
    assert!(stdout.contains("GET /users/me  [scope project, organization]\n    intercept jackFunc() of block-archived-users [instance org1, priority 0]"), "{stdout}");
    let out = run(&["routes", "-c", cfg.to_str().unwrap(), "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The GET interface's hooks apply to HEAD too, listed as such.
    assert!(stdout.contains("HEAD /users/me  [scope project, organization]\n    intercept jackFunc()"), "{stdout}");
    assert_eq!(rows.as_array().unwrap().len(), 4);

    // A conflict is refused offline too, naming both plugins.
    let p = tempfile::tempdir().unwrap();
    interpose_test_util::write_files(p.path(), &[
        ("config/plugin.yaml", "service: {app_id: rep, version: 1.0.0, name: rep, scope: 2}\napis:\n  - {type: replace, methods: [GET], url: /users/me, function: f}\n"),
        ("backend/src/index.js", "export function f() {}\n"),
    ]);
    std::fs::write(&cfg, format!("[storage]\nworkspaces = \"ws\"\n[[plugins]]\npath = {:?}\ninstance = \"org1\"\n[[plugins]]\npath = {:?}\ninstance = \"rep1\"\n", examples().join("block-archived-users").display().to_string(), p.path().display().to_string())).unwrap();
    let out = run(&["routes", "-c", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("plugin block-archived-users (app_id a1b2c3d4, instance org1) intercept hook jackFunc()")
            && stderr.contains("plugin rep (app_id rep, instance rep1) replace hook f()"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_check_invoke_run_and_a_live_manifest_edit() {
    let root = tempfile::tempdir().unwrap();
    let out = bin().current_dir(root.path()).args(["new", "dev-plugin"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let project = root.path().join("dev-plugin");
    let out = bin().args(["check", project.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let port = free_port();
    let mut child = Running(
        bin()
            .current_dir(&project)
            .args(["invoke", "run", "--sample", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Keep reading the child's output (a full pipe would stall it) and keep it for messages.
    let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let output = output.clone();
        let stdout = child.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut o = output.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
    let t0 = Instant::now();
    while !output.lock().unwrap().contains("curl -s") {
        assert!(t0.elapsed() < Duration::from_secs(30), "invoke run did not start: {}", output.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let banner = output.lock().unwrap().clone();
    assert!(banner.contains("debug instance"), "{banner}");
    let base = format!("http://127.0.0.1:{port}/project/api/project");
    let got = send_json("POST", &format!("{base}/team/T1/tasks"), &json!({}), &[]).await;
    assert_eq!(got.json()["reason"], "a task needs a summary");
    let got = send_json("PUT", &format!("{base}/team/T1/tasks"), &json!({}), &[]).await;
    assert_eq!(got.status, 404, "PUT is not hooked yet (the sample system has no such route)");

    // Edit the manifest: the change is live without `invoke clear`.
    let manifest = project.join("config/plugin.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("methods: [POST]", "methods: [POST, PUT]");
    std::fs::write(&manifest, text).unwrap();
    let t0 = Instant::now();
    loop {
        let got = send_json("PUT", &format!("{base}/team/T1/tasks"), &json!({}), &[]).await;
        if got.status == 400 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the manifest change never went live:\n{}",
            output.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A broken edit keeps the last good version serving.
    std::fs::write(project.join("backend/src/extra.ts"), "export const x = (\n").unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(send_json("POST", &format!("{base}/team/T1/tasks"), &json!({}), &[]).await.status, 400);
    std::fs::remove_file(project.join("backend/src/extra.ts")).unwrap();

    let out = bin().current_dir(&project).args(["invoke", "clear"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("cleared: ran Stop, Disable, UnInstall"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The session ends with its debug instance.
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "invoke run kept running:\n{}", output.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(200)); // the reader thread's last lines
    let all = output.lock().unwrap().clone();
    assert!(all.contains("was removed; stopping") && all.contains("stopped: the debug instance"), "{all}");
}

#[test]
fn plugin_commands_over_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let cfg = dir.path().join("interpose.toml");
    std::fs::write(
        &cfg,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n"),
    )
    .unwrap();
    let _server = Running(
        bin()
            .args(["serve", "-c", cfg.to_str().unwrap()])
            .env("INTERPOSE_ADMIN_TOKEN", "tok")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(admin_port);
    let admin = format!("http://127.0.0.1:{admin_port}");
    let plugin = |args: &[&str], token: &str| {
        bin().arg("plugin").args(args).args(["--admin", &admin]).env("INTERPOSE_ADMIN_TOKEN", token).output().unwrap()
    };

    let out = plugin(&["list"], "wrong");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong bearer token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let block = examples().join("block-archived-users");
    let out = plugin(&["install", block.to_str().unwrap(), "--org", "--id", "b1"], "tok");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A replace on the same interface conflicts with that intercept.
    let rep = tempfile::tempdir().unwrap();
    interpose_test_util::write_files(rep.path(), &[
        ("config/plugin.yaml", "service: {app_id: rep, version: 1.0.0, name: rep, scope: 2}\napis:\n  - {type: replace, methods: [GET], url: /users/me, function: f}\n"),
        ("backend/src/index.js", "export function f() {}\n"),
    ]);
    let out = plugin(&["install", rep.path().to_str().unwrap(), "--org"], "tok");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("plugin block-archived-users (app_id a1b2c3d4, instance b1) intercept hook jackFunc()")
            && stderr.contains("plugin rep (app_id rep,")
            && stderr.contains("(409)"),
        "{stderr}"
    );

    let out = plugin(&["list", "--json"], "tok");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "b1");
    let out = plugin(&["disable", "b1"], "tok");
    assert!(String::from_utf8_lossy(&out.stdout).contains("disabled (instance b1)"));
    assert!(plugin(&["uninstall", "b1"], "tok").status.success());
    let out = plugin(&["show", "b1"], "tok");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no instance \"b1\""));

    // Config at install: required values are asked for; a Password is never printed.
    let conf = tempfile::tempdir().unwrap();
    interpose_test_util::write_files(conf.path(), &[
        ("config/plugin.yaml", "service:\n  app_id: conf\n  version: 1.0.0\n  name: conf\n  scope: 2\n  config:\n    - {key: token, type: Password, required: true}\napis:\n  - {type: replace, methods: [GET], url: /conf, function: f}\n"),
        ("backend/src/index.js", "import { Plugin } from '@ones-op/node-ability'\nexport async function f() { return { body: (await Plugin.getPluginConfig())[0].value } }\n"),
    ]);
    let dir = conf.path().to_str().unwrap();
    let out = plugin(&["install", dir, "--org"], "tok");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("install with `--config token=…`"), "{stderr}");
    let out = plugin(&["install", dir, "--org", "--id", "c1", "--config", "token=a&b=c d"], "tok");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("config token = ********"), "{stdout}");
    assert!(!stdout.contains("a&b"), "{stdout}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let got = rt.block_on(get(&format!("http://127.0.0.1:{port}/project/api/project/conf"), &[]));
    assert_eq!(got.text(), "a&b=c d", "the plugin reads the value as given");
    let out = plugin(&["install", dir, "--org", "--config", "token"], "tok");
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"token\": expected KEY=VALUE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_survive_sigkill() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("sub");
    interpose_test_util::write_files(&plugin, &[
        ("config/plugin.yaml", "service: {app_id: sub, version: 1.0.0, name: sub, scope: 2}\napis:\n  - {type: subscribe, methods: [GET], url: /feed, function: f, timeout_ms: 2000}\n"),
        ("backend/src/index.js", "import { appendStrings } from '@ones-op/node-file'\nexport async function f(r) {\n  const t = Date.now(); while (Date.now() - t < 150) {}\n  await appendStrings('got.txt', r.query.n + '\\n')\n}\n"),
    ]);
    let (port, admin_port) = (free_port(), free_port());
    let cfg = dir.path().join("interpose.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n[storage]\nurl = \"sqlite://{}/reg.db\"\n[[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{}/project/api/project\"\n[[plugins]]\npath = \"sub\"\ninstance = \"sub1\"\n",
            dir.path().display(),
            up.url()
        ),
    )
    .unwrap();
    let got = dir.path().join("data/workspaces/sub1/got.txt");
    let mut first = Running(bin().args(["serve", "-c", cfg.to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap());
    wait_for_port(port);
    for n in 1..=10 {
        let r = get(&format!("http://127.0.0.1:{port}/project/api/project/feed?n={n}"), &[]).await;
        assert_eq!(r.status, 200);
    }
    // Killed hard while the subscriber works through the backlog.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let before = std::fs::read_to_string(&got).unwrap_or_default().lines().count();
    assert!(before < 10, "the backlog was already delivered ({before}); the test proves nothing");
    let _second = Running(bin().args(["serve", "-c", cfg.to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap());
    wait_for_port(port);
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&got).unwrap_or_default();
        let mut seen: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
        seen.dedup();
        if seen == (1..=10).collect::<Vec<_>>() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "after the restart only {text:?} was delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reloads_a_declared_plugin_when_its_files_change() {
    let up = Upstream::start().await;
    let (port, admin_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("guard");
    let manifest = |version: &str, url: &str| {
        format!("service: {{app_id: guard, version: {version}, name: guard, scope: 1}}\napis:\n  - {{type: intercept, methods: [GET], url: '{url}', function: f}}\n")
    };
    interpose_test_util::write_files(&plugin, &[
        ("config/plugin.yaml", &manifest("1.0.0", "/team/:teamUUID/feed")),
        ("backend/src/index.js", "import { Logger } from '@ones-op/node-logger'\nexport function f() { Logger.info('first'); return { statusCode: 403 } }\n"),
    ]);
    let cfg = dir.path().join("interpose.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n[storage]\nurl = \"sqlite::memory:\"\n[[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{}/project/api/project\"\n[[plugins]]\npath = \"guard\"\nteams = [\"T1\", \"T2\"]\n[[plugins]]\npath = \"guard\"\nteams = [\"T3\"]\n",
            up.url()
        ),
    )
    .unwrap();
    let (_child, log) = serve_logged(&cfg);
    wait_for_port(port);
    let admin = format!("http://127.0.0.1:{admin_port}");
    let ids = || {
        let out = bin().args(["plugin", "list", "--json", "--admin", &admin]).output().unwrap();
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array().unwrap().iter().map(|i| (i["id"].to_string(), i["version"].to_string())).collect::<Vec<_>>()
    };
    let before = ids();
    let feed = |team: &'static str| {
        let url = format!("http://127.0.0.1:{port}/project/api/project/team/{team}/feed");
        async move { get(&url, &[]).await.status.as_u16() }
    };
    let until = |team: &'static str, want: u16| async move {
        let t0 = Instant::now();
        loop {
            let got = feed(team).await;
            if got == want {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "team {team}: still {got}, not {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(feed("T1").await, 403);

    // New code and a new version: both teams' instances pick it up and keep their ids.
    interpose_test_util::write_files(&plugin, &[
        ("config/plugin.yaml", &manifest("1.1.0", "/team/:teamUUID/feed")),
        ("backend/src/index.js", "import { Logger } from '@ones-op/node-logger'\nexport function f() { Logger.info('second'); return { statusCode: 451 } }\n"),
    ]);
    until("T1", 451).await;
    until("T2", 451).await;
    until("T3", 451).await;
    let after = ids();
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(after.iter().map(|i| &i.0).collect::<Vec<_>>(), before.iter().map(|i| &i.0).collect::<Vec<_>>());
    assert!(after.iter().all(|i| i.1 == "\"1.1.0\""), "{after:?}");

    // A broken manifest is reported (file, line, field) and changes nothing.
    interpose_test_util::write_files(&plugin, &[("config/plugin.yaml", &manifest("1.2.0", "no-slash"))]);
    let t0 = Instant::now();
    while !log.lock().unwrap().contains("not reloaded") {
        assert!(t0.elapsed() < Duration::from_secs(10), "no reload error logged:\n{}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = log.lock().unwrap().clone();
    assert!(text.contains("plugin.yaml:3") && text.contains("apis[0].url"), "{text}");
    assert_eq!(feed("T1").await, 451, "the last good version keeps serving");
    // Fixed again: serving the fix.
    interpose_test_util::write_files(&plugin, &[("config/plugin.yaml", &manifest("1.2.0", "/team/:teamUUID/other"))]);
    until("T1", 200).await;
}

/// `interpose serve -c cfg` with its log (stderr) collected as it comes.
fn serve_logged(cfg: &Path) -> (Running, std::sync::Arc<std::sync::Mutex<String>>) {
    let mut child = Running(bin().args(["serve", "-c", cfg.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap());
    let stderr = child.0.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    (child, log)
}

/// `dir/interpose.toml` for a gateway on `port` (admin on `admin_port`) in
/// front of `up`, its store `dir/reg.db`; `server` adds to `[server]`,
/// `rest` follows the upstream (`[[events]]`, `[[plugins]]`).
fn write_serve_config(dir: &Path, port: u16, admin_port: u16, up: &Upstream, server: &str, rest: &str) -> PathBuf {
    let cfg = dir.join("interpose.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n{server}[storage]\nurl = \"sqlite://{}/reg.db\"\n[[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{}/project/api/project\"\n{rest}",
            dir.display(),
            up.url()
        ),
    )
    .unwrap();
    cfg
}

/// The numbers a subscriber wrote (one per line), repeats of the one
/// before it dropped (an event redelivered after a kill: at least once).
fn delivered(file: &Path) -> Vec<u32> {
    let mut seen: Vec<u32> =
        std::fs::read_to_string(file).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect();
    seen.dedup();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_survive_restarts_of_declared_and_installed_plugins() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A subscriber that takes `ms` per event and writes down which request it heard of.
    let subscriber = |name: &str, scope: u8, version: &str, url: &str, ms: u32| {
        interpose_test_util::write_files(&dir.path().join(name), &[
            ("config/plugin.yaml", &format!("service: {{app_id: {name}, version: {version}, name: {name}, scope: {scope}}}\napis:\n  - {{type: subscribe, methods: [GET], url: '{url}', function: f, timeout_ms: 3000}}\n")),
            ("backend/src/index.js", &format!("import {{ appendStrings }} from '@ones-op/node-file'\n\
                const life = (what) => appendStrings('life.txt', what + '\\n')\n\
                export const Install = () => life('Install'), Enable = () => life('Enable'), Start = () => life('Start'), Stop = () => life('Stop')\n\
                export const Upgrade = (old) => life('Upgrade from ' + old.version)\n\
                export async function f(r) {{\n  const t = Date.now(); while (Date.now() - t < {ms}) {{}}\n  await appendStrings('got.txt', r.query.n + '\\n')\n}}\n")),
        ]);
    };
    subscriber("sub", 2, "1.0.0", "/feed", 150);
    subscriber("tsub", 1, "1.0.0", "/team/:teamUUID/feed", 300);
    subscriber("reg", 2, "1.0.0", "/reg", 150);
    let (port, admin_port) = (free_port(), free_port());
    let admin = format!("http://127.0.0.1:{admin_port}");
    let cfg = dir.path().join("interpose.toml");
    let write_config = |plugins: &str| write_serve_config(dir.path(), port, admin_port, &up, "", plugins);
    let ids = || -> std::collections::BTreeMap<String, String> {
        let out = bin().args(["plugin", "list", "--json", "--admin", &admin]).output().unwrap();
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| (i["app_id"].as_str().unwrap().into(), i["id"].as_str().unwrap().into()))
            .collect()
    };
    let send = |path: &'static str, from: u32| async move {
        for n in from..from + 10 {
            let r = get(&format!("http://127.0.0.1:{port}/project/api/project{path}?n={n}"), &[]).await;
            assert_eq!(r.status, 200);
        }
    };
    let file = |id: &str, name: &str| dir.path().join("data/workspaces").join(id).join(name);

    // First run: two declared plugins (no `instance`) and one installed
    // through the admin API, each with a backlog when the gateway is killed.
    write_config("[[plugins]]\npath = \"sub\"\n[[plugins]]\npath = \"tsub\"\nteams = [\"T1\"]\n");
    let (mut first, _) = serve_logged(&cfg);
    wait_for_port(port);
    let out = bin()
        .args(["plugin", "install", dir.path().join("reg").to_str().unwrap(), "--org", "--admin", &admin])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = ids();
    tokio::join!(send("/feed", 1), send("/team/T1/feed", 1), send("/reg", 1));
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    for app in ["sub", "tsub", "reg"] {
        let got = delivered(&file(&before[app], "got.txt"));
        assert!(got.len() < 10, "{app}: the backlog was already delivered ({got:?}); the test proves nothing");
    }

    // Second run: the entries re-ordered, sub at a new version. Same ids,
    // every event delivered, in order.
    subscriber("sub", 2, "1.1.0", "/feed", 150);
    write_config("[[plugins]]\npath = \"tsub\"\nteams = [\"T1\"]\n[[plugins]]\npath = \"sub\"\n");
    let (mut second, log) = serve_logged(&cfg);
    wait_for_port(port);
    assert_eq!(ids(), before, "declared instances keep their ids");
    let t0 = Instant::now();
    for app in ["sub", "tsub", "reg"] {
        let got = file(&before[app], "got.txt");
        while delivered(&got) != (1..=10).collect::<Vec<_>>() {
            assert!(t0.elapsed() < Duration::from_secs(30), "{app} after the restart: {:?}", delivered(&got));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let life = |app: &str| std::fs::read_to_string(file(&before[app], "life.txt")).unwrap_or_default();
    assert_eq!(
        life("sub"),
        "Install\nEnable\nStart\nUpgrade from 1.0.0\nStart\n",
        "declared: installed once, then upgraded"
    );
    assert_eq!(life("tsub"), "Install\nEnable\nStart\nStart\n", "declared: installed once, started every run");
    assert_eq!(life("reg"), "Install\nEnable\nStart\nStart\n");

    // A clean stop with a backlog: what runs finishes, the rest stays
    // pending, and the log says how much.
    send("/team/T1/feed", 11).await;
    let pid = second.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t0 = Instant::now();
    while second.0.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(20), "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let text = log.lock().unwrap().clone();
    let pending: i64 = text
        .split("stopped delivering post-hook events: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of pending events in the log:\n{text}"));
    assert!(pending > 0 && text.contains("left pending in the store"), "{text}");
    assert!(life("tsub").ends_with("Start\nStop\n"), "{}", life("tsub"));

    // Third run without tsub in the config: its pending events are dead
    // letters that say why; nothing else is.
    write_config("[[plugins]]\npath = \"sub\"\n");
    let (_third, _) = serve_logged(&cfg);
    wait_for_port(port);
    let t0 = Instant::now();
    let dead = loop {
        let dead = get(&format!("{admin}/api/events/dead"), &[]).await.json();
        if dead.as_array().unwrap().len() as i64 >= pending {
            break dead;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not dead-lettered: {dead}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len() as i64, pending, "{dead:?}");
    for e in dead {
        assert_eq!(e["instance"], before["tsub"].as_str());
        let why = e["last_error"].as_str().unwrap();
        assert!(why.contains("is gone") && why.contains("removed from the config"), "{why}");
    }
    assert_eq!(delivered(&file(&before["tsub"], "got.txt")).len() as i64, 20 - pending);
}

/// A plugin keeping records with entity storage and two timers: `beat`
/// every second records a tick; `broken` (cron, every second) throws.
fn keeper(dir: &Path, version: &str) -> PathBuf {
    let p = dir.join(format!("keeper-{version}"));
    interpose_test_util::write_files(&p, &[
        ("config/plugin.yaml", &format!("service: {{app_id: keeper, version: {version}, name: keeper, scope: 2}}\n\
apis:\n  - {{type: addition, methods: [POST], url: /notes, function: put}}\n  - {{type: addition, methods: [GET], url: /notes, function: list}}\n\
storage:\n  entities:\n    - name: note\n      attributes:\n        text: {{type: string, length: 64, required: true}}\n    - name: tick\n      attributes:\n        at: {{type: integer, required: true}}\n\
abilities:\n  - id: beat\n    name: beat\n    abilityType: TimerTask\n    function: {{taskActionFunc: beat}}\n    config: [{{key: interval, fieldType: Number, value: 1}}]\n  - id: broken\n    abilityType: TimerTask\n    function: {{taskActionFunc: broken}}\n    config: [{{key: cron, fieldType: Input, value: '* * * * * ?'}}]\n")),
        ("workspace/plugin.sql", "CREATE TABLE IF NOT EXISTS `{{log}}` (`id` int NOT NULL AUTO_INCREMENT, `what` varchar(64) NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\nINSERT INTO `{{log}}` (`what`) VALUES ('installed');\n"),
        ("backend/src/index.js", "import { storage } from '@ones-op/sdk'\n\
            import { importSQL, exec, select } from '@ones-op/node-database'\n\
            export async function Install() { await importSQL('plugin.sql') }\n\
            export async function put(r) {\n  await storage.entity('note').set(r.body.key, { text: r.body.text })\n  await exec('insert', `insert into log (what) values ('${r.body.text}')`)\n  return { body: { ok: true } }\n}\n\
            export async function list() {\n  const notes = await storage.entity('note').query().getMany()\n  const log = (await select('select what from log order by id')).map((r) => r.what)\n  return { body: { notes: notes.data.map((d) => d.value.text), log, ticks: await storage.entity('tick').query().count() } }\n}\n\
            export async function beat() { await storage.entity('tick').set(String(Date.now()), { at: Date.now() }) }\n\
            export async function broken() { throw new Error('no luck') }\n"),
    ]);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_run_on_schedule_and_plugin_data_survives_restarts_and_upgrades_until_uninstall() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let admin = format!("http://127.0.0.1:{admin_port}");
    let cfg = write_serve_config(dir.path(), port, admin_port, &up, "", "");
    let base = format!("http://127.0.0.1:{port}/project/api/project");
    let (mut gw, log) = serve_logged(&cfg);
    wait_for_port(port);
    let install_keeper = || {
        let keeper = keeper(dir.path(), "1.0.0");
        let out = bin()
            .args(["plugin", "install", keeper.to_str().unwrap(), "--org", "--id", "k1", "--admin", &admin])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    install_keeper();
    let h = [("Ones-Plugin-Id", "k1")];
    assert_eq!(
        send_json("POST", &format!("{base}/notes"), &json!({"key": "a", "text": "first"}), &h).await.status,
        200
    );

    // The timers fire on their own: `beat` writes, `broken` fails, each seen
    // in the admin API, the metrics and the plugin's log.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let timers = get(&format!("{admin}/api/instances/k1/timers"), &[]).await.json();
    let beat = timers.as_array().unwrap().iter().find(|t| t["id"] == "beat").unwrap().clone();
    let broken = timers.as_array().unwrap().iter().find(|t| t["id"] == "broken").unwrap().clone();
    assert_eq!((beat["schedule"].as_str(), beat["function"].as_str()), (Some("every 1 s"), Some("beat")), "{timers}");
    assert!(beat["runs"].as_i64().unwrap() >= 2 && beat["failures"] == 0 && beat["last_run"]["ok"] == true, "{timers}");
    assert!(beat["next_run"].as_i64().unwrap() >= chrono_now() - 1, "{timers}");
    assert!(broken["failures"].as_i64().unwrap() >= 2, "{timers}");
    assert!(broken["last_run"]["error"].as_str().unwrap().contains("no luck"), "{timers}");
    let ticks = get(&format!("{base}/notes"), &h).await.json()["ticks"].as_i64().unwrap();
    assert!(ticks >= 2, "{ticks}");
    let metrics = get(&format!("{admin}/metrics"), &[]).await.text();
    assert!(
        metrics.contains(
            "interpose_timer_runs_total{plugin=\"keeper\",instance=\"k1\",timer=\"broken\",outcome=\"failed\"}"
        ),
        "{metrics}"
    );
    let logs =
        String::from_utf8_lossy(&bin().args(["plugin", "logs", "k1", "--admin", &admin]).output().unwrap().stdout)
            .into_owned();
    assert!(logs.contains("timer \"broken\": broken() failed") && logs.contains("no luck"), "{logs}");
    let show =
        String::from_utf8_lossy(&bin().args(["plugin", "show", "k1", "--admin", &admin]).output().unwrap().stdout)
            .into_owned();
    assert!(
        show.contains("timer beat every 1 s -> beat()  next ") && show.contains("timer broken cron \"* * * * * ?\""),
        "{show}"
    );
    let routes =
        String::from_utf8_lossy(&bin().args(["routes", "--admin", &admin]).output().unwrap().stdout).into_owned();
    assert!(routes.contains("timers:") && routes.contains("[keeper instance k1]"), "{routes}");
    // Run out of schedule, with the result.
    let ran = send_json("POST", &format!("{admin}/api/instances/k1/timers/beat/run"), &json!({}), &[]).await.json();
    assert_eq!(ran["last_run"]["ok"], true, "{ran}");
    let none = send_json("POST", &format!("{admin}/api/instances/k1/timers/nope/run"), &json!({}), &[]).await;
    assert_eq!(none.status, 404);
    assert!(none.text().contains("its timers: beat, broken"), "{}", none.text());

    // A restart keeps the records and the runs counted.
    drop(gw);
    let (again, _) = serve_logged(&cfg);
    gw = again;
    wait_for_port(port);
    let b = get(&format!("{base}/notes"), &h).await.json();
    assert_eq!((&b["notes"], &b["log"]), (&json!(["first"]), &json!(["installed", "first"])), "{b}");
    assert!(b["ticks"].as_i64().unwrap() >= ticks, "{b}");
    let runs = get(&format!("{admin}/api/instances/k1/timers"), &[]).await.json()[0]["runs"].as_i64().unwrap();
    assert!(runs >= beat["runs"].as_i64().unwrap(), "{runs}");
    // So does an upgrade.
    let out = bin()
        .args(["plugin", "upgrade", "k1", keeper(dir.path(), "1.1.0").to_str().unwrap(), "--admin", &admin])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b = get(&format!("{base}/notes"), &h).await.json();
    assert_eq!((&b["notes"], &b["log"]), (&json!(["first"]), &json!(["installed", "first"])), "{b}");
    // An uninstall takes them; a new install at the place starts empty.
    let out = bin().args(["plugin", "uninstall", "k1", "--admin", &admin]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    install_keeper();
    let b = get(&format!("{base}/notes"), &h).await.json();
    assert_eq!((&b["notes"], &b["log"]), (&json!([]), &json!(["installed"])), "{b}");
    drop(gw);
    let _ = log;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_timer_runs_a_timer_task_of_the_debug_instance_now() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("ticker");
    interpose_test_util::write_files(&project, &[
        ("config/plugin.yaml", "service: {app_id: ticker, version: 1.0.0, name: ticker, scope: 1}\napis:\n  - {type: addition, methods: [GET], url: /count, function: count}\n\
abilities:\n  - id: hourly\n    abilityType: TimerTask\n    function: {taskActionFunc: tick}\n    config: [{key: cron, value: '0 0 * * * *'}]\n"),
        ("backend/src/index.js", "let n = 0\nexport function tick() { n++ }\nexport function count() { return { body: { n } } }\n"),
    ]);
    let port = free_port();
    let mut child = Running(
        bin()
            .current_dir(&project)
            .args(["invoke", "run", "--sample", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let t0 = Instant::now();
    while !lines.next().and_then(Result::ok).unwrap_or_default().contains("curl -s") {
        assert!(t0.elapsed() < Duration::from_secs(30), "invoke run did not start");
    }
    std::thread::spawn(move || lines.for_each(drop));
    let out = bin().current_dir(&project).args(["invoke", "timer", "hourly"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ran timer hourly: tick() in"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It ran in the debug instance's runtime, where its hooks run.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join(".interpose/invoke.json")).unwrap()).unwrap();
    let id = state["instance"].as_str().unwrap();
    let got = get(&format!("http://127.0.0.1:{port}/project/api/project/count"), &[("Ones-Plugin-Id", id)]).await;
    assert_eq!(got.json(), json!({"n": 1}));
    let out = bin().current_dir(&project).args(["invoke", "timer", "nope"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("its timers: hourly"), "{stderr}");
    let out = bin().current_dir(&project).args(["invoke", "clear"]).output().unwrap();
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_the_traffic_and_the_admin_api_reach_handlers_and_survive_a_restart() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("watcher");
    interpose_test_util::write_files(&p, &[
        ("config/plugin.yaml", "service: {app_id: watcher, version: 1.0.0, name: watcher, scope: 1}\napis:\n  - {type: addition, methods: [GET], url: /seen, function: seen}\n\
storage:\n  entities:\n    - name: seen\n      attributes:\n        kind: {type: string, length: 100, required: true}\n        body: {type: text, required: true}\n\
events:\n  - eventType: ones:project:issue-status:changed\n    function: onStatus\n  - eventType: ones:project:issue:*\n    function: onIssue\n"),
        ("backend/src/index.js", "import { storage } from '@ones-op/sdk'\n\
            const slow = (ms) => { const t = Date.now(); while (Date.now() - t < ms) {} }\n\
            async function keep(request) {\n  const m = request.body\n  slow(m.eventData?.slow ?? 0)\n  await storage.entity('seen').set(m.eventID, { kind: m.eventType, body: JSON.stringify(m) })\n  return { body: { ok: true } }\n}\n\
            export const onStatus = keep, onIssue = keep\n\
            export async function seen() {\n  const r = await storage.entity('seen').query().limit(100).getMany()\n  return { body: r.data.map((d) => JSON.parse(d.value.body)) }\n}\n"),
    ]);
    let (port, admin_port) = (free_port(), free_port());
    let admin = format!("http://127.0.0.1:{admin_port}");
    let cfg = write_serve_config(
        dir.path(),
        port,
        admin_port,
        &up,
        "organization_uuid = \"ORG1\"\n",
        "[[events]]\ntype = \"ones:project:issue-status:changed\"\nmethods = [\"POST\"]\nurl = \"/team/:teamUUID/task/:taskUUID/transit\"\n\
         [[plugins]]\npath = \"watcher\"\nteams = [\"T1\"]\ninstance = \"w1\"\n",
    );
    let base = format!("http://127.0.0.1:{port}/project/api/project");
    let h = [("Ones-Plugin-Id", "w1")];
    let seen = || async { get(&format!("{base}/seen"), &h).await.json().as_array().unwrap().clone() };
    let until = |n: usize| async move {
        let t0 = Instant::now();
        loop {
            let s = seen().await;
            if s.len() >= n {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "only {} of {n} events arrived: {s:?}", s.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (gw, _) = serve_logged(&cfg);
    wait_for_port(port);

    // A transit the standard system answers 2xx emits the event, with the exchange.
    let got = send_json(
        "POST",
        &format!("{base}/team/T1/task/TK9/transit?x=1"),
        &json!({"transition_uuid": "TR1"}),
        &[("Ones-User-Id", "U5")],
    )
    .await;
    assert_eq!(got.status, 200);
    let s = until(1).await;
    let m = &s[0];
    assert_eq!(m["eventType"], "ones:project:issue-status:changed");
    assert_eq!(m["eventContext"], json!({"triggerUserID": "U5", "teamID": "T1", "organizationID": "ORG1"}));
    assert_eq!(m["eventSubscriber"], json!({"subscriberID": "w1", "clientID": "w1"}));
    assert_eq!(m["eventData"]["request"]["params"], json!({"teamUUID": "T1", "taskUUID": "TK9"}));
    assert_eq!(m["eventData"]["request"]["body"], json!({"transition_uuid": "TR1"}));
    assert_eq!(m["eventData"]["response"]["status"], 200);
    assert!(m["eventID"].as_str().unwrap().len() == 36 && m["timestamp"].as_i64().unwrap() > 0, "{m}");
    // Another team's transit is not this instance's.
    send_json("POST", &format!("{base}/team/T2/task/TK9/transit"), &json!({}), &[]).await;
    // Published through the admin API: a prefix subscription takes it.
    let got = send_json(
        "POST",
        &format!("{admin}/api/events/publish"),
        &json!({"eventType": "ones:project:issue:updated", "teamID": "T1", "eventData": {"n": 1}}),
        &[],
    )
    .await;
    assert_eq!((got.status.as_u16(), got.json()["queued"].as_i64()), (202, Some(1)), "{}", got.text());
    let got = send_json("POST", &format!("{admin}/api/events/publish"), &json!({"eventData": {}}), &[]).await;
    assert_eq!(got.status, 400);
    let s = until(2).await;
    assert_eq!(s.len(), 2, "the T2 transit reached nobody: {s:?}");

    // Slow handlers, then a kill: what was not delivered is after the restart.
    for n in 0..4 {
        send_json(
            "POST",
            &format!("{admin}/api/events/publish"),
            &json!({"eventType": "ones:project:issue:created", "eventData": {"slow": 400, "n": n}}),
            &[],
        )
        .await;
    }
    drop(gw);
    let before = get_after_restart(&cfg, port, &base, &h).await;
    assert!(before.0 < 6, "the kill came before every delivery ({} seen)", before.0);
    let s = until(6).await;
    let ns: Vec<i64> = s.iter().filter_map(|m| m["eventData"]["n"].as_i64()).collect();
    assert!((0..4).all(|n| ns.contains(&n)), "{ns:?}");
    drop(before.1);
}

/// Start the gateway again; how many events it had seen, and the process.
async fn get_after_restart(cfg: &Path, port: u16, base: &str, h: &[(&str, &str)]) -> (usize, Running) {
    let (gw, _) = serve_logged(cfg);
    wait_for_port(port);
    let n = get(&format!("{base}/seen"), h).await.json().as_array().map(Vec::len).unwrap_or(0);
    (n, gw)
}
