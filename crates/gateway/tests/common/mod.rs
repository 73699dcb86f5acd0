//! Helpers for the gateway's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use interpose_config::Config;
use interpose_gateway::{Gateway, Listening};
use interpose_test_util::{plugin, Upstream};

/// A running gateway, its state, and the folder its workspaces live in.
pub struct Running {
    pub gw: Arc<Gateway>,
    pub listening: Listening,
    pub dir: tempfile::TempDir,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listening.addr)
    }

    pub async fn stop(self) {
        self.listening.shutdown().await;
    }
}

/// The config text for a gateway in front of `up` (scopes project and wiki);
/// `extra` goes after `[storage]`, and a `[server]` table at its start adds
/// to the server keys.
pub fn config_text(up: &Upstream, plugins: &[String], extra: &str) -> String {
    let (server, extra) = interpose_test_util::split_table(extra, "server");
    let mut text = format!(
        "[server]\nworkers = 2\n{server}\n[storage]\nurl = \"sqlite::memory:\"\nworkspaces = \"ws\"\n{extra}\n\
         [[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{u}/project/api/project\"\n\
         [[upstreams]]\nscope = \"wiki\"\nmount = \"/wiki/api/wiki\"\nurl = \"{u}/wiki/api/wiki\"\n",
        u = up.url()
    );
    for p in plugins {
        text += p;
    }
    text
}

/// A gateway on port 0 in front of `up`, with `plugins` as `[[plugins]]` TOML snippets.
pub async fn start(up: &Upstream, plugins: &[String], extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config =
        Config::from_str_with_env(&config_text(up, plugins, extra), "test.toml", dir.path(), Vec::new()).unwrap();
    let gw = Gateway::new(config).unwrap_or_else(|e| panic!("{e}"));
    let listening = Listening::start(gw.clone(), "127.0.0.1:0".parse::<SocketAddr>().unwrap()).await.unwrap();
    Running { gw, listening, dir }
}

/// The error `Gateway::new` gives for this config.
pub fn start_error(up: &Upstream, plugins: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_str_with_env(&config_text(up, plugins, ""), "test.toml", dir.path(), Vec::new()).unwrap();
    Gateway::new(config).expect_err("refused").to_string()
}

pub fn decl(dir: &Path, teams: &[&str], instance: Option<&str>) -> String {
    let teams: Vec<String> = teams.iter().map(|t| format!("{t:?}")).collect();
    let mut s = format!("[[plugins]]\npath = {:?}\nteams = [{}]\n", dir.display().to_string(), teams.join(", "));
    if let Some(i) = instance {
        s += &format!("instance = {i:?}\n");
    }
    s
}

pub fn org_plugin(name: &str, apis: &str, code: &str) -> tempfile::TempDir {
    plugin(&format!("service: {{app_id: {name}, version: 1.0.0, name: {name}, scope: 2}}\napis:\n{apis}"), code)
}

pub fn team_plugin(name: &str, apis: &str, code: &str) -> tempfile::TempDir {
    plugin(&format!("service: {{app_id: {name}, version: 1.0.0, name: {name}, scope: 1}}\napis:\n{apis}"), code)
}

pub fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins").join(name)
}

/// Wait until `f` holds (post hooks run after the response).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
