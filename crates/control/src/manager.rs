//! [`Manager`]: the one place plugin instances change on a running gateway.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use interpose_gateway::{Gateway, InstalledInstance, LoadedPlugin, Snapshot};
use interpose_js::LogEntry;
use interpose_manifest::PluginLevel;
use interpose_registry::{InstanceRow, PluginVersion, State, Store};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::archive;
use crate::lifecycle::{self, Step};
use crate::ControlError;

/// Registry instances sort after the config file's in install order.
pub(crate) const REGISTRY_SEQ_BASE: u64 = 1_000_000;

/// What [`Manager::install`] does with an upload.
#[derive(Debug, Clone)]
pub struct Install {
    pub placement: Placement,
    /// Enable (and start) it right away.
    pub enable: bool,
    /// Pin the instance UUID.
    pub id: Option<String>,
    /// A debug instance (`interpose invoke run`).
    pub debug: bool,
    /// Operator config values, over the manifest's defaults.
    pub config: BTreeMap<String, String>,
}

/// Where an instance goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Organization,
    Team(String),
}

pub(crate) struct Entry {
    pub(crate) inst: InstalledInstance,
    pub(crate) state: State,
    /// From `[[plugins]]` in the config file: read-only here.
    pub(crate) declarative: bool,
    pub(crate) installed_at: i64,
    pub(crate) debug: bool,
    /// The registry version of the change this entry reflects (0: declarative).
    pub(crate) rev: i64,
}

/// An instance as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceInfo {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub level: String,
    pub team: Option<String>,
    pub state: String,
    /// `registry` (installed through the API) or `config` (`[[plugins]]`).
    pub source: String,
    pub debug: bool,
    pub installed_at: i64,
    pub config: BTreeMap<String, String>,
    /// `kind METHODS scope:url -> function()`, in manifest order.
    pub hooks: Vec<String>,
    /// Its `TimerTask` abilities (with their runs when shown alone).
    pub timers: Vec<crate::timers::TimerInfo>,
}

pub struct Manager {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) store: Store,
    /// Every instance; the lock also serialises changes.
    pub(crate) entries: Mutex<Vec<Entry>>,
    /// The registry version `entries` reflects; written only under the
    /// `entries` lock. Changes made by other nodes move the store past it.
    /// Shared with the event dispatcher (`Gateway::enable_durable_events`).
    pub(crate) version: Arc<AtomicI64>,
    /// Timer tasks on this node.
    pub(crate) timers: crate::timers::Timers,
}

impl Manager {
    /// Bring back the registry's instances next to the config file's, and
    /// make the enabled ones live. Refuses (and changes nothing) on a conflict.
    pub async fn start(gw: Arc<Gateway>, store: Store) -> Result<Arc<Manager>, ControlError> {
        gw.use_store(store.clone());
        if let (Some(url), None) = (&gw.config.plugin_db.url, gw.databases()) {
            let db = interpose_plugindb::PluginDb::mysql(url).await.map_err(ControlError::BadRequest)?;
            gw.use_databases(db);
        }
        let mut entries: Vec<Entry> = gw
            .snapshot()
            .instances
            .iter()
            .map(|i| Entry {
                inst: i.clone(),
                state: State::Enabled,
                declarative: true,
                installed_at: 0,
                debug: false,
                rev: 0,
            })
            .collect();
        // Read before the rows: a change landing in between shows as a newer
        // version at the next poll.
        let version = store.registry_version().await?;
        for row in store.instances().await? {
            let Some(version) = store.plugin_version(&row.app_id, &row.version).await? else {
                tracing::error!(instance = %row.id, "the registry has no code for {} {}; instance skipped", row.app_id, row.version);
                continue;
            };
            let plugin = match materialize(&gw, &version) {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::error!(instance = %row.id, "cannot load {} {}: {e}; instance skipped", row.app_id, row.version);
                    continue;
                }
            };
            entries.push(registry_entry(registry_instance(&gw, plugin, &row), &row));
        }
        // A `[[plugins]]` entry added for what the registry already runs there
        // (the admin API refuses a second install at one place).
        for e in entries.iter().filter(|e| !e.declarative) {
            let m = &e.inst.meta;
            if let Some(d) = entries.iter().find(|d| d.declarative && d.inst.meta.same_place(m)) {
                return Err(ControlError::BadRequest(format!(
                    "{} (app_id {}) is declared in the config file's [[plugins]] (instance {}) and installed through the admin API at the same place (instance {}, {}): a plugin is installed once per team or organization; remove the [[plugins]] entry, or start without it and uninstall instance {}",
                    m.name,
                    m.app_id,
                    d.inst.meta.id,
                    m.id,
                    m.place(),
                    m.id
                )));
            }
        }
        if let Some((d, r)) = entries
            .iter()
            .filter(|e| e.declarative)
            .find_map(|d| entries.iter().find(|r| !r.declarative && r.inst.meta.id == d.inst.meta.id).map(|r| (d, r)))
        {
            return Err(ControlError::BadRequest(format!(
                "instance {} of the config file's [[plugins]] ({}) has the id of registry instance {} ({}): pin another `instance` for the [[plugins]] entry",
                d.inst.meta.id, d.inst.meta.name, r.inst.meta.id, r.inst.meta.name
            )));
        }
        if let Some(why) = entries.iter().find_map(|e| gw.database_refusal(&e.inst.plugin)) {
            return Err(ControlError::BadRequest(why));
        }
        let snapshot = prepare(&gw, &entries, None)?;
        // Declared instances new at their place, or at a new version, run
        // Install and Enable, or Upgrade, before they serve.
        for e in entries.iter().filter(|e| e.declarative) {
            crate::declared::arrive(&gw, &store, &e.inst).await?;
        }
        gw.swap(snapshot);
        let version = Arc::new(AtomicI64::new(version));
        gw.enable_durable_events(store.clone(), version.clone());
        let manager =
            Arc::new(Manager { gw, store, entries: Mutex::new(entries), version, timers: Default::default() });
        crate::sync::poll(Arc::downgrade(&manager));
        crate::sync::listen(Arc::downgrade(&manager)).await;
        // Start() for every enabled instance (a failure is logged, not fatal).
        for e in manager.entries.lock().await.iter().filter(|e| e.state == State::Enabled) {
            if let Err(err) = lifecycle::run(&manager.gw, &e.inst, Step::Start).await {
                tracing::error!(instance = %e.inst.meta.id, "{err}");
            }
        }
        crate::timers::start(Arc::downgrade(&manager));
        Ok(manager)
    }

    /// Stop() for every enabled instance (the gateway is going down).
    pub async fn shutdown(&self) {
        crate::timers::stop(self);
        for e in self.entries.lock().await.iter().filter(|e| e.state == State::Enabled) {
            if let Err(err) = lifecycle::run(&self.gw, &e.inst, Step::Stop).await {
                tracing::warn!(instance = %e.inst.meta.id, "{err}");
            }
        }
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gw
    }

    pub async fn list(&self) -> Vec<InstanceInfo> {
        self.entries.lock().await.iter().map(info).collect()
    }

    pub async fn get(&self, id: &str) -> Result<InstanceInfo, ControlError> {
        let mut shown = {
            let entries = self.entries.lock().await;
            entries
                .iter()
                .find(|e| e.inst.meta.id == id)
                .map(info)
                .ok_or_else(|| ControlError::NotFound(id.to_string()))?
        };
        if !shown.timers.is_empty() {
            shown.timers = self.timers(id).await?;
        }
        Ok(shown)
    }

    /// Log lines of an instance after sequence number `after`.
    pub async fn logs(&self, id: &str, after: u64) -> Result<Vec<LogEntry>, ControlError> {
        let entries = self.entries.lock().await;
        let e = entries.iter().find(|e| e.inst.meta.id == id).ok_or_else(|| ControlError::NotFound(id.to_string()))?;
        Ok(e.inst.js.logs_after(after))
    }

    /// Install a plugin from an uploaded archive: Install, then (with
    /// `enable`) Enable and Start; live when it returns.
    pub async fn install(&self, upload: &[u8], how: Install) -> Result<InstanceInfo, ControlError> {
        let Install { placement, enable, id, debug, config } = how;
        let mut entries = self.entries.lock().await;
        self.catch_up(&mut entries).await?;
        let (plugin, version) = self.unpack(upload)?;
        let level = plugin.manifest.service.level;
        let team = match (level, placement) {
            (PluginLevel::Organization, Placement::Organization) => None,
            (PluginLevel::Team, Placement::Team(t)) => Some(t),
            (PluginLevel::Organization, Placement::Team(_)) => {
                return Err(ControlError::BadRequest(format!(
                    "{} is an organization-level plugin (service.scope 2): install it with --org, not for a team",
                    plugin.manifest.service.name
                )))
            }
            (PluginLevel::Team, Placement::Organization) => {
                return Err(ControlError::BadRequest(format!(
                    "{} is a team-level plugin (service.scope 1): install it for a team (--team UUID)",
                    plugin.manifest.service.name
                )))
            }
        };
        if let Some(t) = &team {
            if !valid_id(t) {
                return Err(ControlError::BadRequest(format!("{t:?} is not a team UUID")));
            }
        }
        if let Some(e) =
            entries.iter().find(|e| e.inst.meta.app_id == plugin.manifest.service.app_id && e.inst.meta.team == team)
        {
            return Err(already_installed(e));
        }
        let id = match id {
            Some(id) if !valid_id(&id) => {
                return Err(ControlError::BadRequest(format!("{id:?} is not an instance UUID")))
            }
            Some(id) if entries.iter().any(|e| e.inst.meta.id == id) => {
                return Err(ControlError::BadRequest(format!("instance {id} already exists")))
            }
            Some(id) => id,
            None => new_id(&entries),
        };
        let seq = REGISTRY_SEQ_BASE + self.store.next_seq().await? as u64;
        let mut inst = InstalledInstance::new(plugin.clone(), id.clone(), team.clone(), seq, &self.gw.config);
        let config = with_values(&plugin, default_config(&plugin), config)?;
        if enable {
            need_required(&plugin, &config, None)?;
        }
        inst.set_config(config);
        let mut entry = Entry {
            inst: inst.clone(),
            state: if enable { State::Enabled } else { State::Disabled },
            declarative: false,
            installed_at: interpose_registry::now(),
            debug,
            rev: 0,
        };
        // Validate against everything enabled before running any plugin code.
        let prepared = if enable { Some(prepare(&self.gw, &entries, Some(&entry))?) } else { None };
        let mut steps = vec![Step::Install];
        if enable {
            steps.extend([Step::Enable, Step::Start]);
        }
        lifecycle::run_all(&self.gw, &inst, &steps).await?;
        let row = InstanceRow {
            id: id.clone(),
            app_id: inst.meta.app_id.clone(),
            version: inst.meta.version.clone(),
            level: level_str(level).into(),
            team,
            state: entry.state,
            config: inst.config.clone(),
            seq: (seq - REGISTRY_SEQ_BASE) as i64,
            installed_at: entry.installed_at,
            debug,
            rev: 0,
        };
        entry.rev = self.record(self.store.install(self.registry_version(), &version, &row).await)?;
        entries.push(entry);
        if let Some(snapshot) = prepared {
            self.gw.swap(snapshot);
        }
        tracing::info!(instance = %id, "installed {} {}", inst.meta.name, inst.meta.version);
        Ok(info(entries.last().ok_or_else(|| ControlError::Internal("entry vanished".into()))?))
    }

    pub async fn enable(&self, id: &str) -> Result<InstanceInfo, ControlError> {
        self.set_state(id, State::Enabled).await
    }

    pub async fn disable(&self, id: &str) -> Result<InstanceInfo, ControlError> {
        self.set_state(id, State::Disabled).await
    }

    async fn set_state(&self, id: &str, state: State) -> Result<InstanceInfo, ControlError> {
        let mut entries = self.entries.lock().await;
        self.catch_up(&mut entries).await?;
        let i = find_mutable(&entries, id)?;
        if entries[i].state == state {
            return Ok(info(&entries[i]));
        }
        if state == State::Enabled {
            need_required(&entries[i].inst.plugin, &entries[i].inst.config, Some(id))?;
        }
        let mut changed = Entry { state, ..clone_entry(&entries[i]) };
        let snapshot = prepare_replacing(&self.gw, &entries, i, &changed)?;
        let steps = match state {
            State::Enabled => vec![Step::Enable, Step::Start],
            State::Disabled => vec![Step::Stop, Step::Disable],
        };
        lifecycle::run_all(&self.gw, &changed.inst, &steps).await?;
        changed.rev = self.record(self.store.set_state(self.registry_version(), id, state).await)?;
        entries[i] = changed;
        self.gw.swap(snapshot);
        Ok(info(&entries[i]))
    }

    /// Replace an instance's code with a new version of the same plugin;
    /// `Upgrade(oldPluginInfo)` of the new code runs first.
    pub async fn upgrade(&self, id: &str, upload: &[u8]) -> Result<InstanceInfo, ControlError> {
        let mut entries = self.entries.lock().await;
        self.catch_up(&mut entries).await?;
        let i = find_mutable(&entries, id)?;
        let (plugin, version) = self.unpack(upload)?;
        let old = &entries[i].inst;
        if plugin.manifest.service.app_id != old.meta.app_id {
            return Err(ControlError::BadRequest(format!(
                "instance {id} runs app_id {:?}; the upload is app_id {:?} (upgrade keeps the app_id)",
                old.meta.app_id, plugin.manifest.service.app_id
            )));
        }
        if plugin.manifest.service.level != old.meta.level {
            return Err(ControlError::BadRequest(
                "an upgrade cannot change service.scope (team vs organization)".into(),
            ));
        }
        let old_info = serde_json::json!({
            "app_id": old.meta.app_id, "version": old.meta.version, "name": old.meta.name, "instance_uuid": old.meta.id,
        });
        let mut inst =
            InstalledInstance::new(plugin, id.to_string(), old.meta.team.clone(), old.meta.seq, &self.gw.config);
        inst.set_config(old.config.clone());
        // The log goes on across versions (what `Upgrade()` logs comes after).
        inst.js.adopt_log(&old.js);
        let mut changed = Entry { inst: inst.clone(), ..clone_entry(&entries[i]) };
        let snapshot = prepare_replacing(&self.gw, &entries, i, &changed)?;
        lifecycle::run(&self.gw, &inst, Step::Upgrade(old_info)).await?;
        changed.rev = self.record(self.store.upgrade(self.registry_version(), id, &version).await)?;
        let old = std::mem::replace(&mut entries[i], changed);
        self.gw.swap(snapshot);
        self.forget_dir(&entries, &old.inst.plugin.dir);
        tracing::info!(instance = %id, "upgraded to {} {}", inst.meta.name, inst.meta.version);
        Ok(info(&entries[i]))
    }

    /// Stop, Disable (when enabled), UnInstall, and forget the instance.
    pub async fn uninstall(&self, id: &str) -> Result<InstanceInfo, ControlError> {
        let mut entries = self.entries.lock().await;
        self.catch_up(&mut entries).await?;
        let i = find_mutable(&entries, id)?;
        let mut rest: Vec<&Entry> = entries.iter().collect();
        rest.remove(i);
        let snapshot = self.gw.prepare(enabled(rest.into_iter())).map_err(ControlError::Conflict)?;
        let mut steps = Vec::new();
        if entries[i].state == State::Enabled {
            steps.extend([Step::Stop, Step::Disable]);
        }
        steps.push(Step::UnInstall);
        lifecycle::run_all(&self.gw, &entries[i].inst, &steps).await?;
        self.record(self.store.uninstall(self.registry_version(), id).await)?;
        // Its data goes with it, once UnInstall has run (and could read it).
        match self.store.drop_entities(id).await {
            Ok(n) if n > 0 => tracing::info!(instance = %id, "removed its {n} entity record(s)"),
            Ok(_) => {}
            Err(e) => tracing::warn!(instance = %id, "its entity records stay in the store: {e}"),
        }
        if let Err(e) = self.store.drop_timers(id).await {
            tracing::warn!(instance = %id, "its timers' records stay in the store: {e}");
        }
        if let Some(db) = self.gw.databases() {
            if let Err(e) = db.drop_instance(id).await {
                tracing::warn!(instance = %id, "its plugin database stays: {e}");
            }
        }
        let gone = entries.remove(i);
        self.gw.swap(snapshot);
        self.forget_dir(&entries, &gone.inst.plugin.dir);
        Ok(InstanceInfo { state: "uninstalled".into(), ..info(&gone) })
    }

    /// Set operator config values (keys declared in `service.config`).
    pub async fn set_config(&self, id: &str, values: BTreeMap<String, String>) -> Result<InstanceInfo, ControlError> {
        let mut entries = self.entries.lock().await;
        self.catch_up(&mut entries).await?;
        let i = find_mutable(&entries, id)?;
        let next = with_values(&entries[i].inst.plugin, entries[i].inst.config.clone(), values)?;
        entries[i].rev = self.record(self.store.set_config(self.registry_version(), id, &next).await)?;
        entries[i].inst.set_config(next);
        Ok(info(&entries[i]))
    }

    /// Run one lifecycle step by hand (`interpose invoke <step>`).
    pub async fn run_step(&self, id: &str, step: Step) -> Result<Option<String>, ControlError> {
        let entries = self.entries.lock().await;
        let e = entries.iter().find(|e| e.inst.meta.id == id).ok_or_else(|| ControlError::NotFound(id.to_string()))?;
        lifecycle::run(&self.gw, &e.inst, step).await
    }

    /// Remove an unpacked version no instance runs any more (only ever under
    /// `storage.plugins`: a project folder named in the config is the user's).
    pub(crate) fn forget_dir(&self, entries: &[Entry], dir: &Path) {
        let root = &self.gw.config.storage.plugins;
        if dir.starts_with(root) && dir != root && !entries.iter().any(|e| e.inst.plugin.dir == dir) {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove an unused plugin version");
            }
        }
    }

    /// Unpack and validate an upload; keep it under `storage.plugins`.
    fn unpack(&self, upload: &[u8]) -> Result<(Arc<LoadedPlugin>, PluginVersion), ControlError> {
        let root = &self.gw.config.storage.plugins;
        std::fs::create_dir_all(root).map_err(|e| ControlError::Internal(format!("{}: {e}", root.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix(".upload-")
            .tempdir_in(root)
            .map_err(|e| ControlError::Internal(e.to_string()))?;
        let project =
            archive::unpack(upload, tmp.path()).map_err(|e| ControlError::BadPlugin(vec![format!("upload: {e}")]))?;
        let loaded = LoadedPlugin::load(&project, &self.gw.config).map_err(|e| {
            // Places in the upload are said relative to the project (the
            // uploader's `config/plugin.yaml`), not in the server's temp folder.
            let at = format!("{}/", project.display());
            ControlError::BadPlugin(e.problems.iter().map(|p| p.replace(&at, "")).collect())
        })?;
        let s = &loaded.manifest.service;
        let manifest = std::fs::read_to_string(project.join("config/plugin.yaml")).unwrap_or_default();
        let version = PluginVersion {
            app_id: s.app_id.clone(),
            version: s.version.clone(),
            name: s.name.clone(),
            manifest,
            archive: upload.to_vec(),
        };
        let dir = version_dir(&self.gw.config.storage.plugins, &version);
        if !dir.join("config/plugin.yaml").is_file() {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(|e| ControlError::Internal(e.to_string()))?;
            }
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&project, &dir).map_err(|e| ControlError::Internal(format!("{}: {e}", dir.display())))?;
        }
        let plugin = LoadedPlugin { dir, manifest: loaded.manifest, code: loaded.code };
        if let Some(why) = self.gw.database_refusal(&plugin) {
            return Err(ControlError::BadPlugin(vec![why]));
        }
        Ok((Arc::new(plugin), version))
    }
}

/// Unpack a stored version (after a restart) and load it.
pub(crate) fn materialize(gw: &Gateway, version: &PluginVersion) -> Result<LoadedPlugin, String> {
    let dir = version_dir(&gw.config.storage.plugins, version);
    if !dir.join("config/plugin.yaml").is_file() {
        let tmp = dir.with_extension("unpacking");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
        let project = archive::unpack(&version.archive, &tmp)?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::rename(&project, &dir).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    LoadedPlugin::load(&dir, &gw.config).map_err(|e| e.problems.join("; "))
}

/// `<plugins>/<app_id>/<version>-<content hash>`: a re-upload of a version
/// never overwrites code another instance was loaded from.
pub(crate) fn version_dir(root: &Path, v: &PluginVersion) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.archive.hash(&mut h);
    root.join(&v.app_id).join(format!("{}-{:016x}", v.version, h.finish()))
}

/// `current` with `values` set, each a key the plugin declares.
fn with_values(
    plugin: &LoadedPlugin,
    mut current: BTreeMap<String, String>,
    values: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ControlError> {
    let declared = &plugin.manifest.service.config;
    for (k, v) in values {
        if !declared.iter().any(|c| c.key == k) {
            let known: Vec<&str> = declared.iter().map(|c| c.key.as_str()).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(ControlError::BadRequest(format!(
                "{} declares no config key {k:?} (declared: {known})",
                plugin.manifest.service.name
            )));
        }
        current.insert(k, v);
    }
    Ok(current)
}

/// An instance runs only with a value for every `required` config item;
/// `installed` names the instance when it exists (an enable, not an install).
fn need_required(
    plugin: &LoadedPlugin,
    config: &BTreeMap<String, String>,
    installed: Option<&str>,
) -> Result<(), ControlError> {
    let missing: Vec<&str> = plugin
        .manifest
        .service
        .config
        .iter()
        .filter(|c| c.required && config.get(&c.key).is_none_or(|v| v.is_empty()))
        .map(|c| c.key.as_str())
        .collect();
    let Some(first) = missing.first() else { return Ok(()) };
    let how = match installed {
        Some(id) => format!("set it with `interpose plugin config set {id} {first}=…`, then enable"),
        None => format!("install with `--config {first}=…` (or `--disabled`, then `plugin config set`)"),
    };
    Err(ControlError::MissingConfig {
        plugin: plugin.manifest.service.name.clone(),
        keys: missing.iter().map(|k| k.to_string()).collect(),
        how,
    })
}

fn default_config(plugin: &LoadedPlugin) -> BTreeMap<String, String> {
    plugin.manifest.service.config.iter().filter_map(|c| c.default.clone().map(|d| (c.key.clone(), d))).collect()
}

/// A new instance for a registry row, running `plugin`.
pub(crate) fn registry_instance(gw: &Gateway, plugin: Arc<LoadedPlugin>, row: &InstanceRow) -> InstalledInstance {
    InstalledInstance::new(plugin, row.id.clone(), row.team.clone(), REGISTRY_SEQ_BASE + row.seq as u64, &gw.config)
}

/// The entry of a registry row, with `inst` taking the row's config values.
pub(crate) fn registry_entry(mut inst: InstalledInstance, row: &InstanceRow) -> Entry {
    inst.set_config(row.config.clone());
    Entry { inst, state: row.state, declarative: false, installed_at: row.installed_at, debug: row.debug, rev: row.rev }
}

pub(crate) fn clone_entry(e: &Entry) -> Entry {
    Entry {
        inst: e.inst.clone(),
        state: e.state,
        declarative: e.declarative,
        installed_at: e.installed_at,
        debug: e.debug,
        rev: e.rev,
    }
}

fn find_mutable(entries: &[Entry], id: &str) -> Result<usize, ControlError> {
    let i = entries.iter().position(|e| e.inst.meta.id == id).ok_or_else(|| ControlError::NotFound(id.to_string()))?;
    if entries[i].declarative {
        return Err(ControlError::Declarative(id.to_string()));
    }
    Ok(i)
}

fn enabled<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<InstalledInstance> {
    let mut v: Vec<&Entry> = entries.filter(|e| e.state == State::Enabled).collect();
    v.sort_by_key(|e| e.inst.meta.seq);
    v.into_iter().map(|e| e.inst.clone()).collect()
}

/// The snapshot with `extra` added.
pub(crate) fn prepare(gw: &Gateway, entries: &[Entry], extra: Option<&Entry>) -> Result<Snapshot, ControlError> {
    gw.prepare(enabled(entries.iter().chain(extra))).map_err(ControlError::Conflict)
}

/// The snapshot with entry `i` replaced by `with`.
pub(crate) fn prepare_replacing(
    gw: &Gateway,
    entries: &[Entry],
    i: usize,
    with: &Entry,
) -> Result<Snapshot, ControlError> {
    let all = entries.iter().enumerate().map(|(j, e)| if j == i { with } else { e });
    gw.prepare(enabled(all)).map_err(ControlError::Conflict)
}

/// The error for installing again what `e` already runs at its place.
pub(crate) fn already_installed(e: &Entry) -> ControlError {
    let meta = &e.inst.meta;
    ControlError::AlreadyInstalled {
        name: meta.name.clone(),
        app_id: meta.app_id.clone(),
        place: meta.place(),
        id: meta.id.clone(),
    }
}

fn new_id(entries: &[Entry]) -> String {
    loop {
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        if !entries.iter().any(|e| e.inst.meta.id == id) {
            return id;
        }
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn level_str(l: PluginLevel) -> &'static str {
    match l {
        PluginLevel::Team => "team",
        PluginLevel::Organization => "organization",
    }
}

/// How a `Password` config value is shown by the admin API: set, not what.
const SECRET_SHOWN_AS: &str = "********";

pub(crate) fn info(e: &Entry) -> InstanceInfo {
    let m = &e.inst.plugin.manifest;
    InstanceInfo {
        id: e.inst.meta.id.clone(),
        app_id: m.service.app_id.clone(),
        name: m.service.name.clone(),
        version: m.service.version.clone(),
        description: m.service.description.clone(),
        level: level_str(m.service.level).into(),
        team: e.inst.meta.team.clone(),
        state: e.state.as_str().into(),
        source: if e.declarative { "config" } else { "registry" }.into(),
        debug: e.debug,
        installed_at: e.installed_at,
        config: e
            .inst
            .config
            .iter()
            .map(|(k, v)| {
                let secret = m.service.config.iter().any(|c| &c.key == k && c.kind == "Password");
                (k.clone(), if secret { SECRET_SHOWN_AS.to_string() } else { v.clone() })
            })
            .collect(),
        hooks: m.apis.iter().map(|a| a.describe()).collect(),
        timers: m.timers.iter().map(crate::timers::TimerInfo::declared).collect(),
    }
}
