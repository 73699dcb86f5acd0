//! `INTERPOSE_<SECTION>_<KEY>` environment overrides, applied to the parsed
//! TOML table before it is deserialized, so they get the same checks.
//! Returns whether anything was overridden.

/// Settings that can be overridden, as (section, key).
const OVERRIDABLE: &[(&str, &str)] = &[
    ("server", "listen"),
    ("server", "admin_listen"),
    ("server", "workers"),
    ("server", "shutdown_grace_ms"),
    ("server", "organization_uuid"),
    ("storage", "url"),
    ("storage", "workspaces"),
    ("storage", "plugins"),
    ("storage", "poll_ms"),
    ("storage", "listen"),
    ("limits", "max_body_bytes"),
    ("limits", "hook_timeout_ms"),
    ("limits", "hook_memory_mb"),
    ("limits", "upstream_timeout_ms"),
    ("limits", "upstream_connect_timeout_ms"),
    ("limits", "header_read_timeout_ms"),
    ("limits", "max_header_bytes"),
    ("limits", "post_queue_size"),
    ("limits", "post_max_attempts"),
    ("limits", "post_retry_base_ms"),
    ("limits", "body_read_timeout_ms"),
    ("sandbox", "http_allow"),
    ("sandbox", "ca_file"),
    ("plugin_db", "url"),
    ("plugin_db", "dir"),
    ("log", "level"),
    ("log", "access_log"),
];

/// Variables that belong to interpose but are not config keys.
const NOT_SETTINGS: &[&str] = &["INTERPOSE_ADMIN_TOKEN", "INTERPOSE_ADMIN", "INTERPOSE_LOG"];

pub(crate) fn apply(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<bool, Vec<String>> {
    let mut problems = Vec::new();
    let mut applied = false;
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("INTERPOSE_") else { continue };
        if NOT_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = OVERRIDABLE.iter().find(|(s, k)| lower == format!("{s}_{k}")) else {
            let known: Vec<String> = OVERRIDABLE
                .iter()
                .map(|(s, k)| format!("INTERPOSE_{}_{}", s.to_uppercase(), k.to_uppercase()))
                .collect();
            problems.push(format!("environment variable {name}: not a setting; known: {}", known.join(", ")));
            continue;
        };
        let parsed = if *key == "http_allow" {
            toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.into()))
                    .collect(),
            )
        } else if let Ok(n) = value.trim().parse::<i64>() {
            toml::Value::Integer(n)
        } else if let Ok(b) = value.trim().parse::<bool>() {
            toml::Value::Boolean(b)
        } else {
            toml::Value::String(value.clone())
        };
        let entry = table.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key.to_string(), parsed);
                applied = true;
            }
            _ => problems.push(format!("{section}: must be a table to apply {name}")),
        }
    }
    if problems.is_empty() {
        Ok(applied)
    } else {
        Err(problems)
    }
}
