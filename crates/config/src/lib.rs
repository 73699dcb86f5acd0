//! The gateway configuration: `interpose.toml`.
//!
//! [`Config::load`] reads the file, applies `INTERPOSE_<SECTION>_<KEY>`
//! environment overrides, fills every default, and validates the result,
//! reporting every problem at once with the key to change ([`ConfigError`]).
//! Relative paths resolve against the config file's folder. Start reading at
//! [`Config`]; the raw serde model is in `raw.rs`, checks in `validate.rs`.

mod env;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use raw::DEFAULT_CONFIG;

/// A validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub upstreams: Vec<Upstream>,
    pub limits: Limits,
    pub sandbox: Sandbox,
    pub log: Log,
    pub plugin_db: PluginDbConfig,
    /// `[[events]]`: ONES events the gateway emits from the traffic it proxies.
    pub events: Vec<EventRule>,
    pub plugins: Vec<PluginDecl>,
    /// Folder that relative paths were resolved against.
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Server {
    /// Data plane address.
    pub listen: SocketAddr,
    /// Admin API / metrics address.
    pub admin_listen: SocketAddr,
    /// Worker threads for the data plane; never 0 after loading (0 in the file = one per core).
    pub workers: usize,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_grace_ms: u64,
    /// The standard system's organization, as plugins read it
    /// (`globalThis.onesEnv.organizationUUID`); empty when not set.
    pub organization_uuid: String,
}

#[derive(Debug, Clone)]
pub struct Storage {
    pub url: String,
    /// Folder holding one `workspace/` per instance (`@ones-op/node-file`).
    pub workspaces: PathBuf,
    /// Folder where installed plugin versions are unpacked (the store keeps the originals).
    pub plugins: PathBuf,
    /// How often the gateway reads the store's registry version to pick up
    /// changes made by other gateway nodes sharing it.
    pub poll: std::time::Duration,
    /// PostgreSQL: also learn of other nodes' changes at once, from a
    /// notification each change sends (`LISTEN`); the poll stays the
    /// guarantee. Off behind a pooler that cannot `LISTEN` (PgBouncer in
    /// transaction mode).
    pub listen: bool,
}

/// One `[[events]]` rule: a response to `methods` `url` (a pattern of the
/// `scope`'s API, like a hook's) with a status in `status` emits an event of
/// `event_type` to every plugin that handles it.
#[derive(Debug, Clone)]
pub struct EventRule {
    pub event_type: String,
    /// Upper-case.
    pub methods: Vec<String>,
    pub url: String,
    pub scope: String,
    /// The statuses that emit, inclusive (`2xx` is 200..=299).
    pub status: (u16, u16),
    /// Position in `[[events]]`, for messages.
    pub index: usize,
}

/// `[plugin_db]`: where plugins' SQL databases (`@ones-op/node-database`) live.
#[derive(Debug, Clone)]
pub struct PluginDbConfig {
    /// A MySQL or MariaDB server (`mysql://user:pass@host:3306/prefix`);
    /// `None`: the embedded SQLite files in `dir`.
    pub url: Option<String>,
    /// Folder of the embedded backend's files, one per instance.
    pub dir: PathBuf,
}

/// One scope of the standard system: requests under `mount` go to `url`.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scope: String,
    /// Public path prefix, without a trailing `/` (e.g. `/project/api/project`).
    pub mount: String,
    /// `host:port` of the upstream (always plain `http://`), parsed once.
    pub authority: http::uri::Authority,
    /// Path prefix on the upstream, without a trailing `/` (may be empty).
    pub base_path: String,
    /// Extra headers sent on `root: true` SDK calls (the gateway's own credentials).
    pub root_headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest body buffered on a hooked route (413 beyond).
    pub max_body_bytes: usize,
    pub hook_timeout_ms: u64,
    pub hook_memory_mb: usize,
    /// Whole upstream exchange up to the response head (504 beyond).
    pub upstream_timeout_ms: u64,
    pub upstream_connect_timeout_ms: u64,
    /// Reading a client's request head (slow clients are cut off).
    pub header_read_timeout_ms: u64,
    /// Header fields of one request, names + values + 4 bytes per field
    /// (431 beyond). The request line has its own limit (414 beyond 64 KiB).
    pub max_header_bytes: usize,
    /// Receiving a hooked route's body (slow senders get 408).
    pub body_read_timeout_ms: u64,
    /// Suffix/subscribe events waiting for dispatch; beyond it they are dropped (counted).
    pub post_queue_size: usize,
    /// Delivery attempts of a stored post-hook event before it is dead-lettered.
    pub post_max_attempts: u32,
    /// First retry delay; it doubles per attempt (at most 5 minutes).
    pub post_retry_base_ms: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// Hosts (`host` or `host:port`) that `fetchHttp` may call.
    pub http_allow: Vec<String>,
    /// PEM certificates of a private CA that plugins' https calls trust
    /// besides the Mozilla roots.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Log {
    /// `tracing` filter, e.g. `info` or `interpose=debug`.
    pub level: String,
    /// Emit one JSON access-log line per request.
    pub access_log: bool,
}

/// A `[[plugins]]` entry: a plugin project installed and enabled at start.
#[derive(Debug, Clone)]
pub struct PluginDecl {
    /// Absolute path of the plugin project.
    pub path: PathBuf,
    /// Teams to install a team-level plugin for (one instance each).
    pub teams: Vec<String>,
    /// Pinned instance UUID; allowed for an org-level plugin or a single team.
    pub instance: Option<String>,
    /// Operator-set config values (`service.config` keys).
    pub config: BTreeMap<String, String>,
    /// Index in the file, for messages (`plugins[2]`).
    pub index: usize,
}

impl Config {
    /// Load `path`, apply environment overrides from the process environment, validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            problems: vec![format!("cannot read the config file: {e}")],
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        Config::from_str_with_env(&text, &path.display().to_string(), &base, std::env::vars())
    }

    /// The embedded default (what `interpose serve` runs without `-c`).
    pub fn default_with_env() -> Result<Config, ConfigError> {
        Config::from_str_with_env(DEFAULT_CONFIG, "<default config>", Path::new("."), std::env::vars())
    }

    /// Parse `text` (named `file` in messages) with the given environment.
    pub fn from_str_with_env(
        text: &str,
        file: &str,
        base_dir: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let err = |problems: Vec<String>| ConfigError { file: file.to_string(), problems };
        // The file alone first, so its errors carry line and column.
        let mut raw: raw::RawConfig = toml::from_str(text).map_err(|e| err(vec![e.to_string()]))?;
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| err(vec![e.to_string()]))?;
        if env::apply(&mut table, vars).map_err(err)? {
            raw = serde::Deserialize::deserialize(table)
                .map_err(|e: toml::de::Error| err(vec![format!("after INTERPOSE_* environment overrides: {e}")]))?;
        }
        validate::validate(raw, base_dir).map_err(err)
    }

    /// The upstream serving `scope`.
    pub fn upstream(&self, scope: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.scope == scope)
    }
}

/// Every problem found in a config, each naming the key to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config {}:", self.file)?;
        for p in &self.problems {
            write!(f, "\n  - {}", p.trim_end().replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests;
