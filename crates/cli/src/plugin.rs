//! `interpose plugin …`: the admin API from the command line. Tables for
//! people, `--json` for scripts; a refusal prints the server's message and
//! exits non-zero.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use http::Method;
use serde_json::Value;

use crate::client::{Admin, Refused};

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Upload a plugin project and install it (enabled unless --disabled).
    Install {
        dir: std::path::PathBuf,
        /// Team to install a team-level plugin for.
        #[arg(long, conflicts_with = "org")]
        team: Option<String>,
        /// Install an organization-level plugin.
        #[arg(long)]
        org: bool,
        /// Install only; enable later with `plugin enable`.
        #[arg(long)]
        disabled: bool,
        /// Pin the instance UUID.
        #[arg(long)]
        id: Option<String>,
        /// An operator config value (repeat for several); required ones
        /// must be given here for the instance to be enabled.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// List instances.
    List,
    /// Show one instance.
    Show { id: String },
    /// Enable (Enable, Start): hooks go live.
    Enable { id: String },
    /// Disable (Stop, Disable): hooks leave the route table.
    Disable { id: String },
    /// Replace an instance's code with a new version from DIR.
    Upgrade { id: String, dir: std::path::PathBuf },
    /// Uninstall (Stop, Disable, UnInstall) and forget the instance.
    Uninstall { id: String },
    /// Operator config values: `config set ID KEY=VALUE …`.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// What the instance's Logger wrote.
    Logs {
        id: String,
        /// Keep following new lines.
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    Set { id: String, pairs: Vec<String> },
}

pub fn run(cmd: PluginCmd, admin: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(admin);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let result = match cmd {
            PluginCmd::Install { dir, team, org, disabled, id, config } => {
                let archive = match pack(&dir) {
                    Ok(a) => a,
                    Err(e) => return Ok(fail(&e)),
                };
                let mut q = form_urlencoded::Serializer::new(String::new());
                match (team, org) {
                    (Some(t), _) => q.append_pair("team", &t),
                    (None, true) => q.append_pair("org", "true"),
                    (None, false) => return Ok(fail("say where to install: --team UUID (team-level plugin) or --org")),
                };
                if disabled {
                    q.append_pair("enable", "false");
                }
                if let Some(id) = id {
                    q.append_pair("id", &id);
                }
                if !config.is_empty() {
                    match pairs(&config) {
                        Ok(values) => q.append_pair("config", &values.to_string()),
                        Err(e) => return Ok(fail(&e)),
                    };
                }
                let q = q.finish();
                admin.call(Method::POST, &format!("/api/instances?{q}"), Some((archive, "application/gzip"))).await
            }
            PluginCmd::List => admin.call(Method::GET, "/api/instances", None).await,
            PluginCmd::Show { id } => admin.call(Method::GET, &format!("/api/instances/{id}"), None).await,
            PluginCmd::Enable { id } => admin.call(Method::POST, &format!("/api/instances/{id}/enable"), None).await,
            PluginCmd::Disable { id } => admin.call(Method::POST, &format!("/api/instances/{id}/disable"), None).await,
            PluginCmd::Upgrade { id, dir } => {
                let archive = match pack(&dir) {
                    Ok(a) => a,
                    Err(e) => return Ok(fail(&e)),
                };
                admin
                    .call(Method::POST, &format!("/api/instances/{id}/upgrade"), Some((archive, "application/gzip")))
                    .await
            }
            PluginCmd::Uninstall { id } => admin.call(Method::DELETE, &format!("/api/instances/{id}"), None).await,
            PluginCmd::Config { cmd: ConfigCmd::Set { id, pairs: given } } => {
                let values = match pairs(&given) {
                    Ok(v) => v,
                    Err(e) => return Ok(fail(&e)),
                };
                admin
                    .call(
                        Method::PUT,
                        &format!("/api/instances/{id}/config"),
                        Some((values.to_string().into_bytes(), "application/json")),
                    )
                    .await
            }
            PluginCmd::Logs { id, follow } => return logs(&admin, &id, follow, json).await,
        };
        Ok(match result {
            Ok(v) => {
                print(&v, json);
                ExitCode::SUCCESS
            }
            Err(e) => refused(&e, json),
        })
    })
}

/// `KEY=VALUE` arguments as a JSON object.
fn pairs(given: &[String]) -> Result<Value, String> {
    let mut map = serde_json::Map::new();
    for p in given {
        let Some((k, v)) = p.split_once('=') else { return Err(format!("{p:?}: expected KEY=VALUE")) };
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(Value::Object(map))
}

fn pack(dir: &Path) -> Result<Vec<u8>, String> {
    if !dir.join("config/plugin.yaml").is_file() {
        return Err(format!("{} is not a plugin project (no config/plugin.yaml)", dir.display()));
    }
    // The gateway refuses what is wrong; what is only dubious is said here,
    // with this machine's paths, as `interpose check` says it.
    if let Ok(m) = interpose_manifest::Manifest::load(dir) {
        for w in &m.warnings {
            eprintln!("{w}");
        }
    }
    interpose_control::archive::pack(dir).map_err(|e| format!("cannot pack {}: {e}", dir.display()))
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

fn refused(e: &Refused, json: bool) -> ExitCode {
    if json && !e.body.is_null() {
        println!("{}", serde_json::to_string_pretty(&e.body).unwrap_or_default());
    }
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

fn print(v: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    match v {
        Value::Array(items) => {
            println!(
                "{:<10} {:<24} {:<9} {:<13} {:<10} {:<9} SOURCE",
                "ID", "NAME", "VERSION", "LEVEL", "TEAM", "STATE"
            );
            for i in items {
                println!(
                    "{:<10} {:<24} {:<9} {:<13} {:<10} {:<9} {}",
                    s(&i["id"]),
                    s(&i["name"]),
                    s(&i["version"]),
                    s(&i["level"]),
                    i["team"].as_str().unwrap_or("-"),
                    s(&i["state"]),
                    s(&i["source"])
                );
            }
        }
        Value::Object(_) if v.get("id").is_some() => {
            println!("{} {} {} (instance {})", s(&v["name"]), s(&v["version"]), s(&v["state"]), s(&v["id"]));
            if v["state"] == "uninstalled" {
                return;
            }
            println!(
                "  app_id {}  level {}  team {}",
                s(&v["app_id"]),
                s(&v["level"]),
                v["team"].as_str().unwrap_or("-")
            );
            for h in v["hooks"].as_array().into_iter().flatten() {
                println!("  {}", s(h));
            }
            for t in v["timers"].as_array().into_iter().flatten() {
                println!("  {}", crate::routes::timer_line(t));
            }
            if let Some(cfg) = v["config"].as_object().filter(|c| !c.is_empty()) {
                for (k, val) in cfg {
                    println!("  config {k} = {}", s(val));
                }
            }
        }
        other => println!("{other}"),
    }
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

async fn logs(admin: &Admin, id: &str, follow: bool, json: bool) -> anyhow::Result<ExitCode> {
    let mut after = 0u64;
    loop {
        match admin.call(Method::GET, &format!("/api/instances/{id}/logs?after={after}"), None).await {
            Ok(Value::Array(lines)) => {
                for l in &lines {
                    after = after.max(l["seq"].as_u64().unwrap_or(0));
                    if json {
                        println!("{l}");
                    } else {
                        println!(
                            "{:<5} {} {}",
                            s(&l["level"]).to_uppercase(),
                            l["request_id"].as_str().map(|r| format!("[{r}]")).unwrap_or_default(),
                            s(&l["message"])
                        );
                    }
                }
            }
            Ok(other) => println!("{other}"),
            Err(e) => return Ok(refused(&e, json)),
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
