//! Plugin projects → instances → the route table.
//!
//! [`LoadedPlugin::load`] validates a project once (manifest, code, exported
//! functions); [`InstalledInstance`] is one placement of it (organization or
//! a team); [`build_routes`] turns the enabled instances into a
//! [`RouteTable`], refusing conflicts. Nothing here touches the live table:
//! the caller swaps it in only when everything succeeded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use interpose_config::Config;
use interpose_js::{ExportProblem, Instance as JsInstance, InstanceLimits, PluginCode};
use interpose_manifest::{Manifest, PluginLevel};
use interpose_routing::{Conflict, HookInput, Instance, RouteTable};

/// What a route-table hook carries: the JS instance that runs it.
#[derive(Debug, Clone)]
pub struct HookTarget {
    pub js: Arc<JsInstance>,
    /// This hook's counters (the route table carries them to the request path).
    pub stats: Arc<crate::metrics::HookStats>,
}

/// A validated plugin project.
#[derive(Debug)]
pub struct LoadedPlugin {
    pub dir: PathBuf,
    pub manifest: Arc<Manifest>,
    pub code: Arc<PluginCode>,
}

/// Why a plugin cannot be installed: every problem, each located.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {}:\n  - {}", .plugin, .problems.join("\n  - "))]
pub struct PluginError {
    pub plugin: String,
    pub problems: Vec<String>,
}

impl LoadedPlugin {
    /// Read and check a plugin project against the gateway config: manifest,
    /// code, scopes that exist, functions that are exported.
    pub fn load(dir: &Path, config: &Config) -> Result<LoadedPlugin, PluginError> {
        let err = |problems: Vec<String>| PluginError { plugin: dir.display().to_string(), problems };
        let manifest = Manifest::load(dir).map_err(|d| err(d.0.iter().map(ToString::to_string).collect()))?;
        let mut problems = Vec::new();
        for api in &manifest.apis {
            if config.upstream(&api.scope).is_none() {
                let known: Vec<&str> = config.upstreams.iter().map(|u| u.scope.as_str()).collect();
                problems.push(format!(
                    "{}: apis[{}].scope: no upstream serves scope {:?} (configured: {})",
                    api.location,
                    api.index,
                    api.scope,
                    known.join(", ")
                ));
            }
        }
        // Its own hooks must not conflict with each other: installed alone it
        // would be refused, so say so here (and in `interpose check`).
        let s = &manifest.service;
        let alone = Arc::new(Instance {
            id: "-".into(),
            app_id: s.app_id.clone(),
            name: s.name.clone(),
            version: s.version.clone(),
            level: s.level,
            team: (s.level == PluginLevel::Team).then(|| "-".into()),
            seq: 0,
        });
        let inputs = manifest
            .apis
            .iter()
            .map(|api| HookInput { instance: alone.clone(), api: Arc::new(api.clone()), payload: () })
            .collect();
        if let Err(conflicts) = RouteTable::<()>::build(inputs) {
            for c in conflicts {
                let at = manifest.apis.iter().find(|a| a.index == c.apis.1);
                problems.push(format!(
                    "{}: the plugin's own hooks conflict on {} {} (scope {}): {} and {}: {}",
                    at.map(|a| a.location.to_string()).unwrap_or_else(|| "config/plugin.yaml".into()),
                    c.method,
                    c.pattern,
                    c.scope,
                    c.first.1,
                    c.second.1,
                    c.rule
                ));
            }
        }
        let code = match PluginCode::load(dir) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                problems.extend(e.0);
                return Err(err(problems));
            }
        };
        let probe = JsInstance::new("check", &manifest.service.name, code.clone(), limits(config), None);
        let functions: Vec<&str> = manifest
            .apis
            .iter()
            .map(|a| a.function.as_str())
            .chain(manifest.timers.iter().map(|t| t.function.as_str()))
            .chain(manifest.events.iter().map(|e| e.function.as_str()))
            .collect();
        match interpose_js::check_exports(
            probe,
            &functions,
            Duration::from_millis(config.limits.hook_timeout_ms.max(1000)),
        ) {
            Ok(missing) => {
                for (f, problem) in missing {
                    let entry = &code.entry;
                    let why = match problem {
                        ExportProblem::Missing => format!("{f}() is not exported by {entry}"),
                        ExportProblem::NotAFunction(t) => {
                            let what = match t.as_str() {
                                "null" => t.clone(),
                                "object" | "undefined" => format!("an {t}"),
                                _ => format!("a {t}"),
                            };
                            format!("{f} is exported by {entry} as {what}, not a function")
                        }
                        ExportProblem::OnlyInDefault => format!(
                            "{f}() is not exported by name from {entry}, only through its default export; \
                             hooks call named exports: `export async function {f}(request)`"
                        ),
                    };
                    for api in manifest.apis.iter().filter(|a| a.function == f) {
                        problems.push(format!("{}: apis[{}].function: {why}", api.location, api.index));
                    }
                    for t in manifest.timers.iter().filter(|t| t.function == f) {
                        problems.push(format!("{}: timer {:?} function.taskActionFunc: {why}", t.location, t.id));
                    }
                    for e in manifest.events.iter().filter(|e| e.function == f) {
                        problems.push(format!("{}: events handler of {:?}: {why}", e.location, e.event_type));
                    }
                }
            }
            Err(e) => problems.push(format!("{}: {e}", code.entry)),
        }
        if !problems.is_empty() {
            return Err(err(problems));
        }
        Ok(LoadedPlugin { dir: dir.to_path_buf(), manifest: Arc::new(manifest), code })
    }
}

pub fn limits(config: &Config) -> InstanceLimits {
    InstanceLimits { memory_mb: config.limits.hook_memory_mb, ..InstanceLimits::default() }
}

/// One placement of a plugin.
#[derive(Debug, Clone)]
pub struct InstalledInstance {
    pub meta: Arc<Instance>,
    pub js: Arc<JsInstance>,
    pub plugin: Arc<LoadedPlugin>,
    pub config: BTreeMap<String, String>,
}

impl InstalledInstance {
    pub fn new(
        plugin: Arc<LoadedPlugin>,
        id: String,
        team: Option<String>,
        seq: u64,
        config: &Config,
    ) -> InstalledInstance {
        let s = &plugin.manifest.service;
        let meta = Arc::new(Instance {
            id: id.clone(),
            app_id: s.app_id.clone(),
            name: s.name.clone(),
            version: s.version.clone(),
            level: s.level,
            team,
            seq,
        });
        let workspace = config.storage.workspaces.join(&id);
        seed_workspace(&plugin.dir.join("workspace"), &workspace);
        let js = JsInstance::new(&id, &s.name, plugin.code.clone(), limits(config), Some(workspace));
        js.set_place(meta.team.as_deref(), &config.server.organization_uuid);
        js.set_ability_config(ability_config(&plugin.manifest));
        js.set_entities(plugin.manifest.entities.clone());
        let mut inst = InstalledInstance { meta, js, plugin, config: BTreeMap::new() };
        inst.set_config(BTreeMap::new());
        inst
    }

    /// The operator's config values; the plugin reads them, with the items
    /// its manifest declares, through `Plugin.getPluginConfig()`: one row per
    /// item, in manifest order, as ONES stores them (`arg_key`, `arg_value`,
    /// `type` 101/102/103, the instance's ids), plus `key`, `value` (null
    /// when unset), `label` for plugins written against interpose's first form.
    pub fn set_config(&mut self, values: BTreeMap<String, String>) {
        let place = self.js.place();
        let m = &self.meta;
        let items: Vec<serde_json::Value> = self
            .plugin
            .manifest
            .service
            .config
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let value = values.get(&c.key).or(c.default.as_ref());
                let kind = match c.kind.as_str() {
                    "TextArea" => 102,
                    "Password" => 103,
                    _ => 101,
                };
                serde_json::json!({
                    "id": i + 1,
                    "create_time": 0,
                    "update_time": 0,
                    "deleted": false,
                    "org_uuid": place.organization_uuid,
                    "team_uuid": m.team.as_deref().unwrap_or_default(),
                    "app_uuid": m.app_id,
                    "instance_uuid": m.id,
                    "arg_key": c.key,
                    "arg_value": value.map(String::as_str).unwrap_or_default(),
                    "required": c.required,
                    "type": kind,
                    "key": c.key,
                    "value": value,
                    "label": c.label.as_deref().unwrap_or(&c.key),
                })
            })
            .collect();
        self.js.set_config(serde_json::Value::Array(items));
        self.config = values;
    }
}

/// The route table for these enabled instances.
pub fn build_routes(
    instances: &[InstalledInstance],
    metrics: &crate::metrics::Metrics,
) -> Result<RouteTable<HookTarget>, Vec<Conflict>> {
    let inputs = instances
        .iter()
        .flat_map(|inst| {
            inst.plugin.manifest.apis.iter().map(move |api| HookInput {
                instance: inst.meta.clone(),
                api: Arc::new(api.clone()),
                payload: HookTarget {
                    js: inst.js.clone(),
                    stats: metrics.hook(&inst.meta.name, &inst.meta.id, &api.function, api.kind),
                },
            })
        })
        .collect();
    RouteTable::build(inputs)
}

/// The config file's `[[plugins]]` as instances (ids: the pinned one, else
/// [`derived_id`]). Every problem of every entry is reported.
pub fn declared_instances(config: &Config) -> Result<Vec<InstalledInstance>, Vec<String>> {
    let mut out: Vec<InstalledInstance> = Vec::new();
    // The `[[plugins]]` entry each of `out` comes from.
    let mut from: Vec<usize> = Vec::new();
    let mut problems = Vec::new();
    for decl in &config.plugins {
        let key = format!("plugins[{}]", decl.index);
        let plugin = match LoadedPlugin::load(&decl.path, config) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                problems.push(format!("{key}: {e}"));
                continue;
            }
        };
        match declared(config, decl, plugin, out.len() as u64, &[]) {
            Ok(instances) => {
                for inst in instances {
                    let m = &inst.meta;
                    if let Some(n) = out.iter().position(|i| i.meta.same_place(m)) {
                        problems.push(format!(
                            "{key}: {} (app_id {}) is already declared for {} by plugins[{}]; a plugin is installed once per team or organization",
                            m.name,
                            m.app_id,
                            m.place(),
                            from[n]
                        ));
                    } else if out.iter().any(|i| i.meta.id == m.id) {
                        problems.push(format!("{key}.instance: instance {:?} is used twice", m.id));
                    } else {
                        out.push(inst);
                        from.push(decl.index);
                    }
                }
            }
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The instances of one `[[plugins]]` entry running `plugin`: one for an
/// organization-level plugin, one per listed team for a team-level one.
/// Sequence numbers follow `seq_before`; an instance whose placement is in
/// `keep` (team → id, from the running gateway) keeps its id.
pub fn declared(
    config: &Config,
    decl: &interpose_config::PluginDecl,
    plugin: Arc<LoadedPlugin>,
    seq_before: u64,
    keep: &[(Option<String>, String, u64)],
) -> Result<Vec<InstalledInstance>, Vec<String>> {
    let key = format!("plugins[{}]", decl.index);
    let mut problems = Vec::new();
    let s = &plugin.manifest.service;
    let mut instance_config = BTreeMap::new();
    for item in &s.config {
        // An empty value does not meet `required` (as for the admin API).
        match decl.config.get(&item.key).or(item.default.as_ref()) {
            Some(v) if !(v.is_empty() && item.required) => {
                instance_config.insert(item.key.clone(), v.clone());
            }
            _ if item.required => {
                problems.push(format!("{key}.config: {} requires a value for {:?}", s.name, item.key))
            }
            _ => {}
        }
    }
    for k in decl.config.keys() {
        if !s.config.iter().any(|i| &i.key == k) {
            problems.push(format!("{key}.config: {} declares no config key {k:?}", s.name));
        }
    }
    let placements: Vec<Option<String>> = match (s.level, decl.teams.is_empty()) {
        (PluginLevel::Organization, true) => vec![None],
        (PluginLevel::Organization, false) => {
            problems.push(format!(
                "{key}.teams: {} is an organization-level plugin (service.scope 2); remove `teams`",
                s.name
            ));
            vec![]
        }
        (PluginLevel::Team, true) => {
            problems.push(format!(
                "{key}.teams: {} is a team-level plugin (service.scope 1); list the teams to install it for",
                s.name
            ));
            vec![]
        }
        (PluginLevel::Team, false) => decl.teams.iter().cloned().map(Some).collect(),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut out = Vec::new();
    for (n, team) in placements.into_iter().enumerate() {
        let (id, seq) = match keep.iter().find(|(t, _, _)| *t == team) {
            Some((_, id, seq)) => (id.clone(), *seq),
            None => (
                decl.instance.clone().unwrap_or_else(|| derived_id(&s.app_id, team.as_deref())),
                seq_before + n as u64 + 1,
            ),
        };
        let mut inst = InstalledInstance::new(plugin.clone(), id, team, seq, config);
        inst.set_config(instance_config.clone());
        out.push(inst);
    }
    Ok(out)
}

/// The namespace of derived instance ids (a fixed UUID: changing it would
/// move every declared instance to a new id).
const DERIVED_ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6a0e_52c1_9d3b_4f7a_8e21_5c4d_a7b9_0f13);

/// The id of a declared instance without a pinned `instance`: derived from
/// what identifies it — the plugin's app_id and its place — so it is the
/// same at every start, whatever else of the entry or the plugin changes,
/// and stored events, config values and data stay attached to it.
pub fn derived_id(app_id: &str, team: Option<&str>) -> String {
    let place = match team {
        Some(t) => format!("team:{t}"),
        None => "organization".to_string(),
    };
    let name = format!("{app_id}\n{place}");
    uuid::Uuid::new_v5(&DERIVED_ID_NAMESPACE, name.as_bytes()).simple().to_string()[..8].to_string()
}

/// A new instance's workspace starts as a copy of the project's `workspace/`
/// (if any); an existing one is kept as it is.
fn seed_workspace(from: &Path, to: &Path) {
    if to.exists() || !from.is_dir() {
        return;
    }
    if let Err(e) = copy_dir(from, to) {
        tracing::warn!(from = %from.display(), to = %to.display(), "could not seed the instance workspace: {e}");
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// `{abilityId: {key: value}}` from the manifest's `abilities[].config`
/// (ONES 0.x's `setting:` too): what `getAbilityConfig()` gives a plugin.
fn ability_config(manifest: &interpose_manifest::Manifest) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let Some(abilities) = manifest.unsupported.get("abilities").and_then(|a| a.as_array()) else {
        return serde_json::Value::Object(out);
    };
    for a in abilities {
        let Some(id) = a.get("id").and_then(|i| i.as_str()) else { continue };
        let items = a.get("config").or_else(|| a.get("setting")).and_then(|c| c.as_array());
        let values: serde_json::Map<String, serde_json::Value> = items
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((c.get("key")?.as_str()?.to_string(), c.get("value").cloned().unwrap_or(serde_json::Value::Null)))
            })
            .collect();
        out.insert(id.to_string(), serde_json::Value::Object(values));
    }
    serde_json::Value::Object(out)
}
