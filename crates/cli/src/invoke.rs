//! `interpose invoke …`: plugin development in a plugin project.
//!
//! `run` starts a local gateway in front of the system named in
//! `config/local.yaml` (or the built-in sample system with `--sample`),
//! installs the project as a debug instance (Install → Enable → Start),
//! prints how to call it, streams its logs, and re-installs on every change
//! to `config/plugin.yaml` or `backend/` — keeping the last good version
//! serving when the change is broken. The debug instance lives in
//! `.interpose/` of the project until `invoke clear` (Stop → Disable →
//! UnInstall); `invoke <step>` runs one lifecycle function.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::watch::{changed, fingerprint, Fingerprint};

use clap::Subcommand;
use http::Method;
use interpose_config::Config;
use interpose_control::lifecycle::Step;
use interpose_control::{archive, ControlError, Install, InstanceInfo, Manager, Placement};
use interpose_gateway::{serve, Gateway};
use interpose_manifest::{Manifest, PluginLevel};
use interpose_registry::Store;
use marked_yaml::Node;
use serde_json::json;

use crate::client::Admin;
use crate::serve::stopped;
use crate::EXIT_BAD_INPUT;

#[derive(Subcommand)]
pub enum InvokeCmd {
    /// Run the project as a debug instance, reloading it on every change.
    Run {
        /// Run in front of the built-in sample system instead of config/local.yaml's.
        #[arg(long)]
        sample: bool,
        /// Gateway address (default from config/local.yaml, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Stop, Disable and UnInstall the debug instance, and remove it.
    Clear,
    /// Run Install() of the debug instance.
    Install,
    /// Run Enable().
    Enable,
    /// Run Start().
    Start,
    /// Run Stop().
    Stop,
    /// Run Disable().
    Disable,
    /// Run UnInstall().
    Uninstall,
    /// Run a timer task (a TimerTask ability, by its id) now.
    Timer {
        /// The ability's `id` in config/plugin.yaml.
        name: String,
    },
}

/// `config/local.yaml`: interpose's keys (`system`, `listen`, `team`,
/// `config`), or the ONES CLI's where interpose's are absent
/// (`platform.baseURL`, `local.team_uuid`, `local.organization_uuid`).
#[derive(PartialEq)]
struct Local {
    system: Option<String>,
    listen: Option<SocketAddr>,
    team: String,
    /// What plugins read as `onesEnv.organizationUUID`.
    organization: String,
    /// `config:` — the debug instance's operator config values.
    config: BTreeMap<String, String>,
}

fn read_local(dir: &Path) -> Result<Local, String> {
    let file = dir.join(LOCAL_YAML);
    let mut local =
        Local { system: None, listen: None, team: "T1".into(), organization: String::new(), config: BTreeMap::new() };
    let Ok(text) = std::fs::read_to_string(&file) else { return Ok(local) };
    let node = marked_yaml::parse_yaml(0, &text).map_err(|e| format!("{}: {e}", file.display()))?;
    let Some(map) = node.as_mapping() else { return Ok(local) };
    let get = |k: &str| map.get_node(k).and_then(Node::as_scalar).map(|s| s.as_str().to_string());
    // The ONES CLI's file (`op login` writes it): `platform:` and `local:` sections.
    let ones = |section: &str, k: &str| {
        map.get_node(section)
            .and_then(Node::as_mapping)
            .and_then(|m| m.get_node(k))
            .and_then(Node::as_scalar)
            .map(|s| s.as_str().to_string())
            .filter(|s| !s.is_empty())
    };
    local.system = get("system").or_else(|| ones("platform", "baseURL")).map(|s| s.trim_end_matches('/').to_string());
    local.organization = ones("local", "organization_uuid").unwrap_or_default();
    if let Some(t) = ones("local", "team_uuid") {
        local.team = t;
    }
    if let Some(l) = get("listen") {
        local.listen = Some(
            l.parse()
                .map_err(|_| format!("{}: listen: {l:?} is not an address like 127.0.0.1:8080", file.display()))?,
        );
    }
    if let Some(t) = get("team") {
        local.team = t;
    }
    if let Some(config) = map.get_node("config") {
        let Some(config) = config.as_mapping() else {
            return Err(format!("{}: config: expected a mapping of key: value", file.display()));
        };
        for (k, v) in config.iter() {
            let Some(v) = v.as_scalar() else {
                return Err(format!(
                    "{}: config.{}: expected a value, not a list or mapping",
                    file.display(),
                    k.as_str()
                ));
            };
            local.config.insert(k.as_str().to_string(), v.as_str().to_string());
        }
    }
    Ok(local)
}

fn local_config(dir: &Path, system: &str, listen: SocketAddr, organization: &str) -> Result<Config, String> {
    let state = dir.join(".interpose");
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    let admin = SocketAddr::new(listen.ip(), if listen.port() == 0 { 0 } else { listen.port().wrapping_add(1) });
    let text = format!(
        "[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 2\norganization_uuid = {organization:?}\n\
         [storage]\nurl = \"sqlite://{db}\"\nworkspaces = \"workspaces\"\nplugins = \"plugins\"\n\
         [[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"{system}/project/api/project\"\n\
         [[upstreams]]\nscope = \"wiki\"\nmount = \"/wiki/api/wiki\"\nurl = \"{system}/wiki/api/wiki\"\n",
        db = state.join("registry.db").display()
    );
    Config::from_str_with_env(&text, "config/local.yaml", &state, Vec::new()).map_err(|e| e.to_string())
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join(".interpose/invoke.json")
}

fn read_state(dir: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(state_file(dir)).ok().and_then(|t| serde_json::from_str(&t).ok())
}

pub fn run(cmd: InvokeCmd) -> anyhow::Result<ExitCode> {
    let dir = std::env::current_dir()?;
    if !dir.join("config/plugin.yaml").is_file() {
        eprintln!("error: {} is not a plugin project (no config/plugin.yaml); run this in one, or create one with `interpose new NAME`", dir.display());
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    crate::init_tracing("warn");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cmd {
            InvokeCmd::Run { sample, listen } => run_debug(&dir, sample, listen).await,
            InvokeCmd::Clear => step(&dir, None).await,
            InvokeCmd::Install => step(&dir, Some("install")).await,
            InvokeCmd::Enable => step(&dir, Some("enable")).await,
            InvokeCmd::Start => step(&dir, Some("start")).await,
            InvokeCmd::Stop => step(&dir, Some("stop")).await,
            InvokeCmd::Disable => step(&dir, Some("disable")).await,
            InvokeCmd::Uninstall => step(&dir, Some("uninstall")).await,
            InvokeCmd::Timer { name } => timer(&dir, &name).await,
        }
    })
}

async fn run_debug(dir: &Path, sample: bool, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let bad = |msg: String| {
        eprintln!("error: {msg}");
        Ok(ExitCode::from(EXIT_BAD_INPUT))
    };
    let local_stamp = stamp(&dir.join(LOCAL_YAML));
    let local = match read_local(dir) {
        Ok(l) => l,
        Err(e) => return bad(e),
    };
    let sample_system =
        if sample { Some(interpose_sample::SampleSystem::start("127.0.0.1:0".parse()?).await?) } else { None };
    let system = match (&sample_system, &local.system) {
        (Some(s), _) => s.url(),
        (None, Some(s)) => s.clone(),
        (None, None) => {
            return bad(
                "config/local.yaml names no `system:` (the standard system's URL); add one, or use --sample".into()
            )
        }
    };
    let listen = listen.or(local.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let config = match local_config(dir, &system, listen, &local.organization) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let admin_addr = config.server.admin_listen;
    let store = match Store::open(&config.storage.url).await {
        Ok(s) => s,
        Err(e) => return bad(e.to_string()),
    };
    let gw = Gateway::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let manager = match Manager::start(gw.clone(), store).await {
        Ok(m) => m,
        Err(e) => return bad(e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            return bad(format!(
                "cannot listen on {listen}: {e}; pick another with --listen or `listen:` in config/local.yaml"
            ))
        }
    };
    let listen = listener.local_addr()?;
    let level = Manifest::load(dir).map(|m| m.service.level).unwrap_or(PluginLevel::Team);
    let placement = match level {
        PluginLevel::Organization => Placement::Organization,
        PluginLevel::Team => Placement::Team(local.team.clone()),
    };
    // Taken before the code is packed, so an edit made at any moment after
    // this is seen by the watcher.
    let files = fingerprint(dir);
    let previous = read_state(dir).and_then(|s| s["instance"].as_str().map(str::to_string));
    let installed = match install_or_reload(&manager, dir, previous.as_deref(), placement.clone(), local.config.clone())
        .await
    {
        Ok(info) => info,
        Err(ControlError::MissingConfig { plugin, keys, .. }) => {
            // The debug instance's values come from config/local.yaml.
            return bad(format!(
                    "the plugin did not install: {plugin} requires a value for config {}: give it under `config:` in config/local.yaml",
                    keys.join(", ")
                ));
        }
        Err(e) => return bad(format!("the plugin did not install:\n{e}")),
    };
    let id = installed.id.clone();
    // Ctrl-C, SIGTERM, or the debug instance removed (`invoke clear`).
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let signal = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            crate::serve::shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
    };
    let admin_stop = stopped(stop.clone());
    // The next port when it is free, else any: `invoke clear` finds it in invoke.json.
    let admin_url = match interpose_admin::serve(manager.clone(), admin_addr, None, admin_stop).await {
        Ok((_, bound)) => Some(format!("http://{bound}")),
        Err(_) => {
            match interpose_admin::serve(
                manager.clone(),
                SocketAddr::new(admin_addr.ip(), 0),
                None,
                stopped(stop.clone()),
            )
            .await
            {
                Ok((_, bound)) => Some(format!("http://{bound}")),
                Err(e) => {
                    eprintln!("warning: {e}; `invoke clear` will work once this stops");
                    None
                }
            }
        }
    };
    let state = json!({"instance": id, "admin": admin_url, "app_id": installed.app_id});
    std::fs::write(state_file(dir), state.to_string())?;
    println!("{}", banner(&installed, listen, &system, &local.team, &gw));

    let watcher = tokio::spawn(watch(
        manager.clone(),
        dir.to_path_buf(),
        id.clone(),
        installed.hooks.clone(),
        (files, local_stamp, Local { system: if sample { None } else { local.system.clone() }, ..local }),
        stop_tx.clone(),
    ));
    let logs = tokio::spawn(stream_logs(manager.clone(), id.clone()));
    serve(gw, listener, stopped(stop)).await;
    signal.abort();
    watcher.abort();
    logs.abort();
    let removed = manager.get(&id).await.is_err();
    manager.shutdown().await;
    if removed {
        println!("stopped: the debug instance {id} was removed");
    } else {
        println!("stopped; the debug instance {id} stays installed (`interpose invoke clear` removes it)");
    }
    drop(sample_system);
    Ok(ExitCode::SUCCESS)
}

/// Install the project, or (when this project already has a debug instance)
/// upgrade that instance to the current code.
async fn install_or_reload(
    manager: &Arc<Manager>,
    dir: &Path,
    previous: Option<&str>,
    placement: Placement,
    config: BTreeMap<String, String>,
) -> Result<InstanceInfo, ControlError> {
    let archive = archive::pack(dir).map_err(|e| ControlError::BadRequest(e.to_string()))?;
    let here = |i: &InstanceInfo| match &placement {
        Placement::Organization => i.team.is_none(),
        Placement::Team(t) => i.team.as_ref() == Some(t),
    };
    let previous = match previous {
        Some(id) => manager.get(id).await.ok(),
        None => None,
    };
    let id = match previous {
        Some(i) if here(&i) => i.id,
        _ => {
            if let Some(i) = previous {
                // config/local.yaml names another team now: the debug
                // instance moves there.
                manager.uninstall(&i.id).await?;
            }
            let how = Install { placement, enable: true, id: None, debug: true, config: config.clone() };
            match manager.install(&archive, how).await {
                // This project's debug instance from an earlier run whose
                // state file is gone: it is taken up again, with this code.
                Err(ControlError::AlreadyInstalled { id, .. }) if manager.get(&id).await.is_ok_and(|i| i.debug) => id,
                other => return other,
            }
        }
    };
    let upgraded = manager.upgrade(&id, &archive).await?;
    if config.is_empty() {
        return Ok(upgraded);
    }
    manager.set_config(&id, config).await
}

fn banner(info: &InstanceInfo, listen: SocketAddr, system: &str, team: &str, gw: &Gateway) -> String {
    let mut s = format!(
        "interpose invoke run: {} {} ({} plugin)\n  debug instance  {}\n  gateway         http://{listen}\n  standard system {system}\n  workspace       {}\n\nCall it (Ctrl-C stops; edits to config/plugin.yaml, backend/ and the config values in config/local.yaml apply within a second):\n",
        info.name,
        info.version,
        info.level,
        info.id,
        gw.config.storage.workspaces.join(&info.id).display()
    );
    let manifest_hooks = gw
        .snapshot()
        .instances
        .iter()
        .find(|i| i.meta.id == info.id)
        .map(|i| i.plugin.manifest.apis.clone())
        .unwrap_or_default();
    for api in manifest_hooks {
        let mount = gw.config.upstream(&api.scope).map(|u| u.mount.clone()).unwrap_or_default();
        let path = api.url.example(team);
        let query = if api.query.is_empty() {
            String::new()
        } else {
            format!("?{}", api.query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
        };
        let method = api.methods.first().cloned().unwrap_or_else(|| "GET".into());
        let mut line = format!("  curl -s -X {method} 'http://{listen}{mount}{path}{query}' -H 'Ones-User-Id: U1' -H 'Ones-Auth-Token: debug'");
        if api.kind == interpose_manifest::HookKind::Addition {
            line +=
                &format!(" -H 'Ones-Plugin-Id: {}' -H 'Ones-Check-Point: team' -H 'Ones-Check-Id: {team}'", info.id);
        }
        if method != "GET" {
            line += " -H 'Content-Type: application/json' -d '{}'";
        }
        s += &format!("  # {} -> {}()\n{line}\n", api.kind, api.function);
    }
    s
}

/// Reload the debug instance when the project's files change; end the
/// session when the instance is gone (`invoke clear` through the admin API).
async fn watch(
    manager: Arc<Manager>,
    dir: PathBuf,
    id: String,
    mut hooks: Vec<String>,
    (mut last, mut local_stamp, mut local): (Fingerprint, Stamp, Local),
    stop: Arc<tokio::sync::watch::Sender<bool>>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if manager.get(&id).await.is_err() {
            println!("the debug instance {id} was removed; stopping");
            let _ = stop.send(true);
            return;
        }
        if stamp(&dir.join(LOCAL_YAML)) != local_stamp {
            // Let an editor finish writing.
            tokio::time::sleep(Duration::from_millis(100)).await;
            local_stamp = stamp(&dir.join(LOCAL_YAML));
            local_changed(&manager, &dir, &id, &mut local).await;
        }
        if !changed(&dir, &mut last).await {
            continue;
        }
        let archive = match archive::pack(&dir) {
            Ok(a) => a,
            Err(e) => {
                println!("reload failed: {e}; still serving the last good version");
                continue;
            }
        };
        match manager.upgrade(&id, &archive).await {
            Ok(info) => {
                let added: Vec<&String> = info.hooks.iter().filter(|h| !hooks.contains(h)).collect();
                let removed: Vec<&String> = hooks.iter().filter(|h| !info.hooks.contains(h)).collect();
                if added.is_empty() && removed.is_empty() {
                    println!("reloaded {} {} (its hooks unchanged)", info.name, info.version);
                } else {
                    println!("reloaded {} {}:", info.name, info.version);
                    for h in added {
                        println!("  + {h}");
                    }
                    for h in removed {
                        println!("  - {h}");
                    }
                }
                hooks = info.hooks;
            }
            Err(e) => println!("reload failed; still serving the last good version:\n{e}"),
        }
    }
}

const LOCAL_YAML: &str = "config/local.yaml";

/// A file's size and modification time (`None`: no such file).
type Stamp = Option<(u64, Option<std::time::SystemTime>)>;

fn stamp(file: &Path) -> Stamp {
    std::fs::metadata(file).ok().map(|m| (m.len(), m.modified().ok()))
}

/// config/local.yaml changed under a running session: its `config:` values
/// apply at once; `system`, `listen` and `team` are read at start, and the
/// session says so rather than going on as if they had been taken.
async fn local_changed(manager: &Manager, dir: &Path, id: &str, local: &mut Local) {
    let next = match read_local(dir) {
        Ok(next) => next,
        Err(e) => return println!("{e}; nothing changed"),
    };
    let system = if local.system.is_none() { None } else { next.system.clone() };
    let next = Local { system, ..next };
    if next == *local {
        return;
    }
    let set: BTreeMap<String, String> = next
        .config
        .iter()
        .filter(|(k, v)| local.config.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !set.is_empty() {
        match manager.set_config(id, set.clone()).await {
            Ok(_) => {
                let keys: Vec<&str> = set.keys().map(String::as_str).collect();
                println!("config/local.yaml: config values set: {}", keys.join(", "));
            }
            Err(e) => return println!("config/local.yaml: config values not set: {e}"),
        }
    }
    let removed: Vec<&str> =
        local.config.keys().filter(|k| !next.config.contains_key(*k)).map(String::as_str).collect();
    if !removed.is_empty() {
        println!(
            "config/local.yaml: {} no longer listed; the debug instance keeps the value it has (`interpose invoke clear` starts afresh)",
            removed.join(", ")
        );
    }
    let restart: Vec<&str> = [
        ("system", local.system != next.system),
        ("listen", local.listen != next.listen),
        ("team", local.team != next.team),
    ]
    .into_iter()
    .filter_map(|(k, differs)| differs.then_some(k))
    .collect();
    if !restart.is_empty() {
        println!(
            "config/local.yaml: {} changed; restart `interpose invoke run` to use it (config values apply at once)",
            restart.join(", ")
        );
    }
    *local = next;
}

async fn stream_logs(manager: Arc<Manager>, id: String) {
    let mut after = 0;
    loop {
        if let Ok(lines) = manager.logs(&id, after).await {
            for l in lines {
                after = after.max(l.seq);
                println!("[{}] {}", l.level.as_str(), l.message);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `clear` (None) or one lifecycle step, through the running `invoke run`
/// when there is one, else directly on the project's registry.
async fn step(dir: &Path, step_name: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(state) = read_state(dir) else {
        eprintln!("error: this project has no debug instance; start one with `interpose invoke run`");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    };
    let Some(id) = state["instance"].as_str().map(str::to_string) else {
        eprintln!("error: .interpose/invoke.json names no instance");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    };
    if let Some(url) = state["admin"].as_str() {
        let admin = Admin::new(Some(url.to_string()));
        let result = match step_name {
            None => admin.call(Method::DELETE, &format!("/api/instances/{id}"), None).await,
            Some(s) => admin.call(Method::POST, &format!("/api/instances/{id}/lifecycle/{s}"), None).await,
        };
        match result {
            Ok(v) => return Ok(done(dir, &id, step_name, v["ran"].as_str().map(str::to_string))),
            Err(e) if e.status != 0 => {
                eprintln!("error: {e}");
                return Ok(ExitCode::FAILURE);
            }
            Err(_) => {} // not running: do it here
        }
    }
    let config = local_config(dir, "http://127.0.0.1:9", "127.0.0.1:0".parse()?, "").map_err(|e| anyhow::anyhow!(e))?;
    let store = Store::open(&config.storage.url).await?;
    let gw = Gateway::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let manager = Manager::start(gw, store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = match step_name {
        None => manager.uninstall(&id).await.map(|_| None),
        Some(s) => {
            let step = match s {
                "install" => Step::Install,
                "enable" => Step::Enable,
                "start" => Step::Start,
                "stop" => Step::Stop,
                "disable" => Step::Disable,
                _ => Step::UnInstall,
            };
            manager.run_step(&id, step).await
        }
    };
    match result {
        Ok(ran) => Ok(done(dir, &id, step_name, ran)),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `invoke timer NAME`: run one timer task of the debug instance now,
/// through the running `invoke run` when there is one.
async fn timer(dir: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let Some(id) = read_state(dir).and_then(|s| s["instance"].as_str().map(str::to_string)) else {
        eprintln!("error: this project has no debug instance; start one with `interpose invoke run`");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    };
    let path = format!("/api/instances/{id}/timers/{name}/run");
    let mut ran = None;
    if let Some(url) = read_state(dir).and_then(|s| s["admin"].as_str().map(str::to_string)) {
        match Admin::new(Some(url)).call(Method::POST, &path, None).await {
            Ok(v) => ran = Some(v),
            Err(e) if e.status != 0 => {
                eprintln!("error: {e}");
                return Ok(ExitCode::FAILURE);
            }
            Err(_) => {} // not running: do it here
        }
    }
    let info = match ran {
        Some(v) => v,
        None => {
            let config =
                local_config(dir, "http://127.0.0.1:9", "127.0.0.1:0".parse()?, "").map_err(|e| anyhow::anyhow!(e))?;
            let store = Store::open(&config.storage.url).await?;
            let gw = Gateway::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let manager = Manager::start(gw, store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            match manager.run_timer(&id, name).await {
                Ok(info) => serde_json::to_value(info)?,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    };
    let last = &info["last_run"];
    let function = info["function"].as_str().unwrap_or("?");
    if last["ok"].as_bool() == Some(true) {
        println!("ran timer {name}: {function}() in {} ms", last["ms"]);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("timer {name}: {function}() failed: {}", last["error"].as_str().unwrap_or("?"));
        Ok(ExitCode::FAILURE)
    }
}

fn done(dir: &Path, id: &str, step_name: Option<&str>, ran: Option<String>) -> ExitCode {
    match step_name {
        None => {
            let _ = std::fs::remove_file(state_file(dir));
            println!("cleared: ran Stop, Disable, UnInstall; debug instance {id} removed");
        }
        Some(s) => match ran {
            Some(f) => println!("ran {f}() of debug instance {id}"),
            None => println!("the plugin exports no {s} function; nothing ran"),
        },
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A control plane on an in-memory registry, its files in `dir`.
    async fn manager(dir: &Path) -> Arc<Manager> {
        let text = "[storage]\nurl = \"sqlite::memory:\"\nworkspaces = \"ws\"\nplugins = \"plugins\"\n";
        let config = Config::from_str_with_env(text, "t.toml", dir, Vec::new()).unwrap();
        let store = Store::open(&config.storage.url).await.unwrap();
        Manager::start(Gateway::new(config).unwrap(), store).await.unwrap()
    }

    /// The file `op login` writes (ONES's CLI) is read too: its base URL is
    /// the system, its team and organization the debug instance's; where
    /// both are given, interpose's own keys win.
    #[test]
    fn the_ones_cli_local_yaml_is_read() {
        let p = interpose_test_util::project(&[(
            "config/local.yaml",
            "platform:\n  address: tcp://127.0.0.1:9006\n  baseURL: http://127.0.0.1:9000/\n  username: a@b.c\n  password: x\nlocal:\n  id: h1\n  language: nodejs\n  debug_mode: true\n  organization_uuid: ORG9\n  team_uuid: TEAM9\n  user_uuid: U9\n  instance_uuid: ''\n",
        )]);
        let local = read_local(p.path()).unwrap();
        assert_eq!(
            (local.system.as_deref(), local.team.as_str(), local.organization.as_str()),
            (Some("http://127.0.0.1:9000"), "TEAM9", "ORG9")
        );
        std::fs::write(
            p.path().join(LOCAL_YAML),
            "system: http://127.0.0.1:7\nteam: T1\nplatform: {baseURL: 'http://x'}\nlocal: {team_uuid: T2}\n",
        )
        .unwrap();
        let local = read_local(p.path()).unwrap();
        assert_eq!((local.system.as_deref(), local.team.as_str()), (Some("http://127.0.0.1:7"), "T1"));
    }

    /// Values under `config:` in config/local.yaml reach a running session's
    /// debug instance when the file changes; a bad file changes nothing.
    #[tokio::test]
    async fn config_values_from_local_yaml_apply_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let manager = manager(dir.path()).await;
        let p = interpose_test_util::project(&[
            ("config/plugin.yaml", "service:\n  app_id: cfg\n  version: 1.0.0\n  name: cfg\n  scope: 1\n  config:\n    - {key: deny, type: Input}\n    - {key: token, type: Password}\napis:\n  - {type: intercept, methods: [GET], url: '/team/:teamUUID/x', function: f}\n"),
            ("backend/src/index.js", "export function f() {}\n"),
            ("config/local.yaml", "system: http://127.0.0.1:9\nteam: T1\nconfig:\n  deny: U1\n"),
        ]);
        let mut local = read_local(p.path()).unwrap();
        let id = install_or_reload(&manager, p.path(), None, Placement::Team("T1".into()), local.config.clone())
            .await
            .unwrap()
            .id;
        let values = || async { manager.get(&id).await.unwrap().config };
        assert_eq!(values().await.get("deny").map(String::as_str), Some("U1"));
        let write = |text: &str| std::fs::write(p.path().join(LOCAL_YAML), text).unwrap();
        write("system: http://127.0.0.1:9\nteam: T2\nconfig:\n  deny: U2\n  token: t\n");
        local_changed(&manager, p.path(), &id, &mut local).await;
        let now = values().await;
        assert_eq!((now["deny"].as_str(), now.contains_key("token")), ("U2", true), "{now:?}");
        assert_eq!(local.team, "T2", "noted (and said to need a restart)");
        // Not YAML, or a key the plugin does not declare: nothing changes.
        write("config: [");
        local_changed(&manager, p.path(), &id, &mut local).await;
        write("system: http://127.0.0.1:9\nteam: T2\nconfig:\n  deny: U3\n  nope: 1\n");
        local_changed(&manager, p.path(), &id, &mut local).await;
        assert_eq!(values().await["deny"], "U2");
    }

    /// The debug instance follows `team:` in config/local.yaml, and one left
    /// by a run whose state file is gone is taken up again rather than a
    /// second instance installed beside it (which the gateway refuses).
    #[tokio::test]
    async fn the_debug_instance_is_one_and_follows_the_team() {
        let dir = tempfile::tempdir().unwrap();
        let manager = manager(dir.path()).await;
        let p = interpose_test_util::project(&[
            ("config/plugin.yaml", "service: {app_id: dbg, version: 1.0.0, name: dbg, scope: 1}\napis:\n  - {type: intercept, methods: [GET], url: '/team/:teamUUID/x', function: f}\n"),
            ("backend/src/index.js", "export function f() {}\n"),
        ]);
        let team = |t: &str| Placement::Team(t.to_string());
        let reload = |previous: Option<String>, t: &str| {
            let manager = manager.clone();
            let (dir, placement) = (p.path().to_path_buf(), team(t));
            async move { install_or_reload(&manager, &dir, previous.as_deref(), placement, BTreeMap::new()).await }
        };
        let first = reload(None, "T1").await.unwrap();
        assert_eq!(reload(Some(first.id.clone()), "T1").await.unwrap().id, first.id);
        // invoke.json lost: the same instance again.
        assert_eq!(reload(None, "T1").await.unwrap().id, first.id);
        // Another team: the instance moves there.
        let moved = reload(Some(first.id.clone()), "T2").await.unwrap();
        assert_ne!(moved.id, first.id);
        let placed: Vec<_> = manager.list().await.into_iter().map(|i| (i.team, i.debug)).collect();
        assert_eq!(placed, [(Some("T2".to_string()), true)]);
        // An instance the operator installed is not taken over.
        let how = Install {
            placement: team("T3"),
            enable: true,
            id: Some("op1".into()),
            debug: false,
            config: BTreeMap::new(),
        };
        manager.install(&archive::pack(p.path()).unwrap(), how).await.unwrap();
        let err = reload(None, "T3").await.unwrap_err();
        assert!(matches!(&err, ControlError::AlreadyInstalled { id, .. } if id == "op1"), "{err}");
    }
}
