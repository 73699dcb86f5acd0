//! The config file as written: serde model with defaults and unknown-key refusal.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The built-in configuration (the defaults of DESIGN.md, spelled out).
pub const DEFAULT_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"
workers = 0

[storage]
url = "sqlite://data/interpose.db"

[[upstreams]]
scope = "project"
mount = "/project/api/project"
url = "http://127.0.0.1:9000/project/api/project"

[[upstreams]]
scope = "wiki"
mount = "/wiki/api/wiki"
url = "http://127.0.0.1:9000/wiki/api/wiki"

[limits]
max_body_bytes = 1048576
hook_timeout_ms = 1000
hook_memory_mb = 32
"#;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    pub server: RawServer,
    pub storage: RawStorage,
    pub upstreams: Option<Vec<RawUpstream>>,
    pub limits: RawLimits,
    pub sandbox: RawSandbox,
    pub log: RawLog,
    pub plugin_db: RawPluginDb,
    pub events: Vec<RawEventRule>,
    pub plugins: Vec<RawPlugin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    pub listen: String,
    pub admin_listen: String,
    pub workers: i64,
    pub shutdown_grace_ms: i64,
    pub organization_uuid: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:8081".into(),
            workers: 0,
            shutdown_grace_ms: 10_000,
            organization_uuid: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStorage {
    pub url: String,
    pub workspaces: String,
    pub plugins: String,
    pub poll_ms: i64,
    pub listen: bool,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            url: "sqlite://data/interpose.db".into(),
            workspaces: "data/workspaces".into(),
            plugins: "data/plugins".into(),
            poll_ms: 2_000,
            listen: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub scope: String,
    pub mount: String,
    pub url: String,
    #[serde(default)]
    pub root_headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLimits {
    pub max_body_bytes: i64,
    pub hook_timeout_ms: i64,
    pub hook_memory_mb: i64,
    pub upstream_timeout_ms: i64,
    pub upstream_connect_timeout_ms: i64,
    pub header_read_timeout_ms: i64,
    pub max_header_bytes: i64,
    pub body_read_timeout_ms: i64,
    pub post_queue_size: i64,
    pub post_max_attempts: i64,
    pub post_retry_base_ms: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_body_bytes: 1_048_576,
            hook_timeout_ms: 1000,
            hook_memory_mb: 32,
            upstream_timeout_ms: 30_000,
            upstream_connect_timeout_ms: 2_000,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 65_536,
            body_read_timeout_ms: 30_000,
            post_queue_size: 10_000,
            post_max_attempts: 8,
            post_retry_base_ms: 1000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPluginDb {
    pub url: Option<String>,
    pub dir: String,
}

impl Default for RawPluginDb {
    fn default() -> Self {
        RawPluginDb { url: None, dir: "data/databases".into() }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSandbox {
    pub http_allow: Vec<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub level: String,
    pub access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { level: "info".into(), access_log: false }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEventRule {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub methods: Vec<String>,
    pub url: String,
    pub scope: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlugin {
    pub path: String,
    #[serde(default)]
    pub teams: Vec<String>,
    pub instance: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}
