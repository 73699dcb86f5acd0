//! The plugin manifest: `config/plugin.yaml` in the ONES format, parsed into a
//! validated [`Manifest`].
//!
//! Start at [`Manifest::parse`]: it walks the YAML tree (with positions) and
//! reports *every* problem at once as a [`Diagnostic`] carrying file, line,
//! column and key path. Sections interpose does not run (`modules`,
//! …) are kept in [`Manifest::unsupported`] and reported as warnings, so a
//! ONES plugin with a front end still loads. `storage.entities` ([`storage`])
//! and `TimerTask` abilities are parsed and checked; other abilities are
//! kept for `getAbilityConfig()` and named as not run here.
//!
//! URL patterns (`/team/:teamUUID/tasks/:taskUUID`) live in [`pattern`]; the
//! route table in `interpose-routing` is built from them.

mod abilities;
mod diagnostic;
mod parse;
pub mod pattern;
pub mod storage;

pub use abilities::{EventHandler, Schedule, TimerTask};
pub use diagnostic::{Diagnostic, Diagnostics, Location, Severity};
pub use pattern::{Segment, UrlPattern};
pub use storage::{Attribute, AttributeType, Entity, EntityIndex};

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A validated plugin manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub service: Service,
    pub apis: Vec<Api>,
    /// `storage.entities`: what `storage.entity(name)` may keep.
    pub entities: Vec<Entity>,
    /// `abilities` of type `TimerTask`.
    pub timers: Vec<TimerTask>,
    /// `events`: which function handles which event type.
    pub events: Vec<EventHandler>,
    /// Top-level sections kept but not run (e.g. `modules`, `abilities`), as JSON.
    pub unsupported: BTreeMap<String, serde_json::Value>,
    /// Non-fatal findings (unsupported sections, unknown keys).
    pub warnings: Vec<Diagnostic>,
}

/// The `service` section.
#[derive(Debug, Clone)]
pub struct Service {
    /// Identity across versions.
    pub app_id: String,
    pub version: String,
    pub name: String,
    pub description: String,
    /// `scope: 1` team-level plugin (installed per team), `2` organization-level.
    pub level: PluginLevel,
    /// Operator-set values the plugin reads at run time.
    pub config: Vec<ConfigItem>,
    /// Other `service` keys (language, host_version, permission, …), kept as JSON.
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Where a plugin is installed: per team, or once for the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginLevel {
    Team,
    Organization,
}

impl fmt::Display for PluginLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginLevel::Team => "team",
            PluginLevel::Organization => "organization",
        })
    }
}

/// One `service.config` item.
#[derive(Debug, Clone)]
pub struct ConfigItem {
    pub key: String,
    pub kind: String,
    pub required: bool,
    pub label: Option<String>,
    pub default: Option<String>,
}

/// One `apis[]` entry: a hook on an interface, or a new route.
#[derive(Debug, Clone)]
pub struct Api {
    /// Position in `apis[]` (declaration order matters for `query` variants).
    pub index: usize,
    pub kind: HookKind,
    /// Upper-case HTTP methods.
    pub methods: Vec<String>,
    pub url: UrlPattern,
    /// The upstream service the URL belongs to (`project` by default).
    pub scope: String,
    /// The exported function that runs.
    pub function: String,
    /// Intercept order: higher first (default 0).
    pub priority: i32,
    /// Per-call deadline; `None` uses the gateway's `limits.hook_timeout_ms`.
    pub timeout_ms: Option<u64>,
    pub on_error: OnError,
    /// The request's query must contain every pair for the hook to match.
    pub query: BTreeMap<String, String>,
    /// Whether the hook reads the request body (`body: false`: it is not
    /// buffered for this hook, and the hook sees none).
    pub body: bool,
    /// Where the entry starts in the manifest.
    pub location: Location,
}

impl Api {
    /// The `query` pairs as in a URL (`mode=a&x=1`); empty without any.
    pub fn query_string(&self) -> String {
        self.query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    }

    /// One line: `intercept GET project:/users/me ?x=1 -> f()`.
    pub fn describe(&self) -> String {
        let query = if self.query.is_empty() { String::new() } else { format!(" ?{}", self.query_string()) };
        let body = if self.body { "" } else { " [body: false]" };
        format!(
            "{} {} {}:{}{query} -> {}(){body}",
            self.kind,
            self.methods.join(","),
            self.scope,
            self.url,
            self.function
        )
    }
}

/// The hook types of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookKind {
    Intercept,
    Prefix,
    Replace,
    Suffix,
    Subscribe,
    Addition,
    External,
    /// A plugin's `events` handler (never in a route table: the gateway
    /// emits events; their deliveries share the post-hook queue).
    Event,
}

impl HookKind {
    pub const ALL: [HookKind; 7] = [
        HookKind::Intercept,
        HookKind::Prefix,
        HookKind::Replace,
        HookKind::Suffix,
        HookKind::Subscribe,
        HookKind::Addition,
        HookKind::External,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Intercept => "intercept",
            HookKind::Prefix => "prefix",
            HookKind::Replace => "replace",
            HookKind::Suffix => "suffix",
            HookKind::Subscribe => "subscribe",
            HookKind::Addition => "addition",
            HookKind::External => "external",
            HookKind::Event => "event",
        }
    }

    /// A hook type of `apis[].type`.
    pub fn parse(s: &str) -> Option<HookKind> {
        HookKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A type as the post-hook queue stores it (`event` too).
    pub fn from_stored(s: &str) -> Option<HookKind> {
        if s == "event" {
            return Some(HookKind::Event);
        }
        HookKind::parse(s)
    }

    /// Suffix and subscribe: told of the exchange once the response went
    /// out (through the post-hook queue, durable with a store).
    pub fn runs_after_the_response(self) -> bool {
        matches!(self, HookKind::Suffix | HookKind::Subscribe | HookKind::Event)
    }

    /// Does this hook need the request body before the upstream is called?
    pub fn reads_body_before_upstream(self) -> bool {
        !self.runs_after_the_response()
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failing (throwing, timing-out, out-of-memory) hook does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Answer 500 `PluginFailure` (the default).
    #[default]
    Reject,
    /// Carry on as if the hook had allowed the request.
    Allow,
}

impl Manifest {
    /// Read and validate `<project>/config/plugin.yaml`.
    pub fn load(project: &Path) -> Result<Manifest, Diagnostics> {
        let file = project.join("config").join("plugin.yaml");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Diagnostics::single(Diagnostic::error(Location::file(&file), "", format!("cannot read the manifest: {e}")))
        })?;
        let mut m = Manifest::parse(&file, &text)?;
        m.localize(project);
        Ok(m)
    }

    /// Resolve ONES's `'{{.Key}}'` placeholders in the names a person reads
    /// (the plugin's name and description, config labels) from the
    /// project's `workspace/language/<lang>.yaml`: English, else Chinese,
    /// else Japanese — the first file that has the key. A key no file has
    /// stays as written.
    pub fn localize(&mut self, project: &Path) {
        let texts = std::iter::once(&self.service.name)
            .chain(std::iter::once(&self.service.description))
            .chain(self.service.config.iter().filter_map(|c| c.label.as_ref()));
        if !texts.into_iter().any(|t| t.contains("{{")) {
            return;
        }
        let files: Vec<BTreeMap<String, String>> = ["en", "zh", "ja"]
            .iter()
            .filter_map(|lang| std::fs::read_to_string(project.join(format!("workspace/language/{lang}.yaml"))).ok())
            .map(|text| language_strings(&text))
            .collect();
        let resolve = |s: &mut String| {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let Some(len) = rest[start..].find("}}") else { break };
                let key = rest[start + 2..start + len].trim().trim_start_matches('.');
                match files.iter().find_map(|f| f.get(key)) {
                    Some(text) => {
                        out.push_str(&rest[..start]);
                        out.push_str(text);
                    }
                    None => out.push_str(&rest[..start + len + 2]),
                }
                rest = &rest[start + len + 2..];
            }
            out.push_str(rest);
            *s = out;
        };
        resolve(&mut self.service.name);
        resolve(&mut self.service.description);
        for c in &mut self.service.config {
            if let Some(l) = &mut c.label {
                resolve(l);
            }
        }
    }

    /// Validate manifest text; `file` is only used in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Manifest, Diagnostics> {
        parse::parse(file, text)
    }

    /// The APIs of one hook kind, in declaration order.
    pub fn apis_of(&self, kind: HookKind) -> impl Iterator<Item = &Api> {
        self.apis.iter().filter(move |a| a.kind == kind)
    }
}

/// A flat `Key: text` language file (ONES's `workspace/language/*.yaml`).
fn language_strings(text: &str) -> BTreeMap<String, String> {
    let Ok(marked_yaml::Node::Mapping(map)) = marked_yaml::parse_yaml(0, text) else { return BTreeMap::new() };
    map.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.as_scalar()?.as_str().to_string()))).collect()
}

#[cfg(test)]
mod tests;
