//! Semantic checks on the raw config; every problem names its key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use crate::raw::RawConfig;
use crate::{Config, EventRule, Limits, Log, PluginDbConfig, PluginDecl, Sandbox, Server, Storage, Upstream};

pub(crate) fn validate(raw: RawConfig, base_dir: &Path) -> Result<Config, Vec<String>> {
    let mut p = Vec::new();

    let listen = addr(&mut p, "server.listen", &raw.server.listen);
    let admin_listen = addr(&mut p, "server.admin_listen", &raw.server.admin_listen);
    let workers = match raw.server.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n @ 1..=256 => n as usize,
        n => {
            p.push(format!("server.workers: {n} is out of range; use 0 (one per core) to 256"));
            1
        }
    };
    let shutdown_grace_ms = range(&mut p, "server.shutdown_grace_ms", raw.server.shutdown_grace_ms, 0, 3_600_000);

    let url = raw.storage.url.trim().to_string();
    let storage_ok = url == "sqlite::memory:"
        || url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://");
    if !storage_ok {
        p.push(format!(
            "storage.url: {url:?} is not a storage URL; use sqlite://path/to/file.db, sqlite::memory: or postgres://…"
        ));
    }
    let storage_url = match url.strip_prefix("sqlite://") {
        Some(rel) if !rel.starts_with('/') && !rel.is_empty() => {
            format!("sqlite://{}", base_dir.join(rel).display())
        }
        _ => url,
    };

    let poll_ms = range(&mut p, "storage.poll_ms", raw.storage.poll_ms, 100, 600_000);

    let raw_upstreams = raw.upstreams.unwrap_or_else(default_upstreams);
    let mut upstreams = Vec::new();
    let mut scopes = HashSet::new();
    let mut mounts = HashSet::new();
    if raw_upstreams.is_empty() {
        p.push("upstreams: at least one [[upstreams]] entry is needed (scope, mount, url)".into());
    }
    for (i, u) in raw_upstreams.into_iter().enumerate() {
        let key = format!("upstreams[{i}]");
        let scope_ok =
            !u.scope.is_empty() && u.scope.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !scope_ok {
            p.push(format!("{key}.scope: {:?} is not a scope name (letters, digits, '-', '_')", u.scope));
        } else if !scopes.insert(u.scope.clone()) {
            p.push(format!("{key}.scope: scope {:?} is declared twice", u.scope));
        }
        let mount = u.mount.trim_end_matches('/').to_string();
        if !u.mount.starts_with('/') {
            p.push(format!("{key}.mount: {:?} must start with '/'", u.mount));
        } else if mount.contains("//") || mount.contains('?') || mount.split('/').any(|s| s == ".." || s == ".") {
            p.push(format!("{key}.mount: {:?} is not a clean path prefix", u.mount));
        } else if !mounts.insert(mount.clone()) {
            p.push(format!("{key}.mount: mount {:?} is used twice", u.mount));
        }
        match split_url(&u.url) {
            Ok((authority, base_path)) => {
                upstreams.push(Upstream { scope: u.scope, mount, authority, base_path, root_headers: u.root_headers })
            }
            Err(msg) => p.push(format!("{key}.url: {msg}")),
        }
    }

    let l = &raw.limits;
    let limits = Limits {
        max_body_bytes: range(&mut p, "limits.max_body_bytes", l.max_body_bytes, 1, 1 << 30) as usize,
        hook_timeout_ms: range(&mut p, "limits.hook_timeout_ms", l.hook_timeout_ms, 1, 600_000),
        hook_memory_mb: range(&mut p, "limits.hook_memory_mb", l.hook_memory_mb, 1, 4096) as usize,
        upstream_timeout_ms: range(&mut p, "limits.upstream_timeout_ms", l.upstream_timeout_ms, 1, 3_600_000),
        upstream_connect_timeout_ms: range(
            &mut p,
            "limits.upstream_connect_timeout_ms",
            l.upstream_connect_timeout_ms,
            1,
            600_000,
        ),
        header_read_timeout_ms: range(&mut p, "limits.header_read_timeout_ms", l.header_read_timeout_ms, 1, 600_000),
        max_header_bytes: range(&mut p, "limits.max_header_bytes", l.max_header_bytes, 1024, 1 << 20) as usize,
        body_read_timeout_ms: range(&mut p, "limits.body_read_timeout_ms", l.body_read_timeout_ms, 1, 3_600_000),
        post_max_attempts: range(&mut p, "limits.post_max_attempts", l.post_max_attempts, 1, 1000) as u32,
        post_retry_base_ms: range(&mut p, "limits.post_retry_base_ms", l.post_retry_base_ms, 1, 3_600_000),
        post_queue_size: range(&mut p, "limits.post_queue_size", l.post_queue_size, 1, 10_000_000) as usize,
    };

    let plugin_db_url = raw.plugin_db.url.clone().filter(|u| !u.trim().is_empty());
    if let Some(u) = &plugin_db_url {
        if !(u.starts_with("mysql://") || u.starts_with("mariadb://")) {
            p.push(format!(
                "plugin_db.url {u:?}: a MySQL or MariaDB server as mysql://user:password@host:3306/prefix (leave it out for the embedded SQLite databases)"
            ));
        }
    }
    let ca_file = raw.sandbox.ca_file.as_ref().map(|f| base_dir.join(f));
    if let Some(f) = &ca_file {
        if let Err(e) = std::fs::metadata(f) {
            p.push(format!("sandbox.ca_file: cannot read {}: {e}", f.display()));
        }
    }
    for (i, h) in raw.sandbox.http_allow.iter().enumerate() {
        if h.is_empty() || h.contains('/') || h.contains(' ') {
            p.push(format!("sandbox.http_allow[{i}]: {h:?} must be a host or host:port, without scheme or path"));
        }
    }

    if tracing_level_invalid(&raw.log.level) {
        p.push(format!("log.level: {:?} is not a log filter: use a level (off, error, warn, info, debug, trace), optionally with target=level directives (warn,interpose=debug)", raw.log.level));
    }

    let mut events = Vec::new();
    for (i, e) in raw.events.iter().enumerate() {
        let key = format!("events[{i}]");
        if e.event_type.trim().is_empty() {
            p.push(format!("{key}.type: the event type to emit (e.g. \"ones:project:issue-status:changed\")"));
        }
        if !e.url.starts_with('/') {
            p.push(format!("{key}.url {:?}: a path pattern of the scope's API, starting with '/'", e.url));
        }
        let methods: Vec<String> = if e.methods.is_empty() {
            vec!["POST".into()]
        } else {
            e.methods.iter().map(|m| m.to_ascii_uppercase()).collect()
        };
        for m in &methods {
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                p.push(format!("{key}.methods: {m:?} is not GET, POST, PUT, PATCH or DELETE"));
            }
        }
        let status = match e.status.as_deref().unwrap_or("2xx") {
            s if s.len() == 3 && s.ends_with("xx") && s.as_bytes()[0].is_ascii_digit() => {
                let c = u16::from(s.as_bytes()[0] - b'0');
                (c * 100, c * 100 + 99)
            }
            s => match s.parse::<u16>() {
                Ok(n) if (100..600).contains(&n) => (n, n),
                _ => {
                    p.push(format!("{key}.status {s:?}: a status (201) or a class (2xx)"));
                    (200, 299)
                }
            },
        };
        events.push(EventRule {
            event_type: e.event_type.trim().to_string(),
            methods,
            url: e.url.clone(),
            scope: e.scope.clone().unwrap_or_else(|| "project".into()),
            status,
            index: i,
        });
    }
    let mut plugins = Vec::new();
    for (i, pl) in raw.plugins.into_iter().enumerate() {
        let key = format!("plugins[{i}]");
        let path = base_dir.join(&pl.path);
        if !path.join("config").join("plugin.yaml").is_file() {
            p.push(format!("{key}.path: {} is not a plugin project (no config/plugin.yaml there)", path.display()));
        }
        let mut seen = HashSet::new();
        for t in &pl.teams {
            if !valid_id(t) {
                p.push(format!("{key}.teams: {t:?} is not a team UUID (letters, digits, '-', '_')"));
            } else if !seen.insert(t) {
                p.push(format!("{key}.teams: team {t:?} is listed twice"));
            }
        }
        if let Some(inst) = &pl.instance {
            if !valid_id(inst) {
                p.push(format!("{key}.instance: {inst:?} is not an instance UUID (letters, digits, '-', '_')"));
            }
            if pl.teams.len() > 1 {
                p.push(format!("{key}.instance: an instance UUID can be pinned only with at most one team; split the entry per team"));
            }
        }
        plugins.push(PluginDecl { path, teams: pl.teams, instance: pl.instance, config: pl.config, index: i });
    }

    if !p.is_empty() {
        return Err(p);
    }
    Ok(Config {
        server: Server {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_listen: admin_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081))),
            workers,
            shutdown_grace_ms,
            organization_uuid: raw.server.organization_uuid.clone(),
        },
        storage: Storage {
            url: storage_url,
            workspaces: base_dir.join(&raw.storage.workspaces),
            plugins: base_dir.join(&raw.storage.plugins),
            poll: std::time::Duration::from_millis(poll_ms),
            listen: raw.storage.listen,
        },
        upstreams,
        limits,
        sandbox: Sandbox { http_allow: raw.sandbox.http_allow, ca_file },
        log: Log { level: raw.log.level, access_log: raw.log.access_log },
        plugin_db: PluginDbConfig { url: plugin_db_url, dir: base_dir.join(&raw.plugin_db.dir) },
        events,
        plugins,
        base_dir: base_dir.to_path_buf(),
    })
}

fn default_upstreams() -> Vec<crate::raw::RawUpstream> {
    let raw: RawConfig = toml::from_str(crate::DEFAULT_CONFIG).unwrap_or_default();
    raw.upstreams.unwrap_or_default()
}

fn addr(p: &mut Vec<String>, key: &str, v: &str) -> Option<SocketAddr> {
    match v.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push(format!("{key}: {v:?} is not an address like 127.0.0.1:8080"));
            None
        }
    }
}

fn range(p: &mut Vec<String>, key: &str, v: i64, min: i64, max: i64) -> u64 {
    if v < min || v > max {
        p.push(format!("{key}: {v} is out of range {min}..={max}"));
        return min.max(0) as u64;
    }
    v as u64
}

pub(crate) fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `log.level` is a level (`info`) or comma-separated `target=level`
/// directives with an optional default level (`warn,interpose=debug`). A bare
/// word that is no level (`loud`, `warning`) would be read as a target name
/// and silence every log line, so it is refused.
fn tracing_level_invalid(s: &str) -> bool {
    let is_level =
        |l: &str| ["off", "error", "warn", "info", "debug", "trace"].iter().any(|k| l.eq_ignore_ascii_case(k));
    s.trim().is_empty()
        || s.chars().any(|c| c.is_whitespace())
        || s.split(',').filter(|d| !d.is_empty()).any(|d| match d.rsplit_once('=') {
            Some((target, level)) => target.is_empty() || !is_level(level),
            None => !is_level(d),
        })
}

/// `http://host:port/base` → (`host:port`, `/base`).
fn split_url(url: &str) -> Result<(http::uri::Authority, String), String> {
    let rest = match url.strip_prefix("http://") {
        Some(r) => r,
        None if url.starts_with("https://") => {
            return Err(format!(
            "{url:?}: https upstreams are not supported; put the gateway next to the standard system and use http://"
        ))
        }
        None => return Err(format!("{url:?} is not an http:// URL")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || authority.contains(' ') {
        return Err(format!("{url:?} has no valid host:port"));
    }
    let authority: http::uri::Authority =
        authority.parse().map_err(|e| format!("{url:?} has no valid host:port ({e})"))?;
    let after_host = authority.as_str().rsplit_once(']').map_or(authority.as_str(), |(_, r)| r);
    if after_host.contains(':') && authority.port_u16().is_none_or(|p| p == 0) {
        return Err(format!("{url:?} has no valid host:port (the port must be 1-65535)"));
    }
    if path.contains('?') || path.contains('#') {
        return Err(format!("{url:?} must not carry a query or fragment"));
    }
    if !path.is_empty() && http::uri::PathAndQuery::try_from(path).is_err() {
        return Err(format!("{url:?} has characters a URL path cannot carry (percent-encode them)"));
    }
    Ok((authority, path.trim_end_matches('/').to_string()))
}
