//! Walks the YAML tree of a manifest and builds a [`Manifest`], collecting
//! every problem instead of stopping at the first.

use std::collections::BTreeMap;
use std::path::Path;

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{LoaderOptions, Node, Span};

use crate::{
    Api, ConfigItem, Diagnostic, Diagnostics, HookKind, Location, Manifest, OnError, PluginLevel, Service, UrlPattern,
};

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const MAX_TIMEOUT_MS: u64 = 600_000;

pub(crate) struct Cx<'a> {
    file: &'a Path,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Cx<'_> {
    pub(crate) fn loc(&self, span: &Span) -> Location {
        match span.start() {
            Some(m) => Location { file: self.file.to_path_buf(), line: m.line(), column: m.column() },
            None => Location::file(self.file),
        }
    }

    pub(crate) fn error(&mut self, span: &Span, key: &str, msg: impl Into<String>) {
        let loc = self.loc(span);
        self.errors.push(Diagnostic::error(loc, key, msg));
    }

    pub(crate) fn warn(&mut self, span: &Span, key: &str, msg: impl Into<String>) {
        let loc = self.loc(span);
        self.warnings.push(Diagnostic::warning(loc, key, msg));
    }

    /// A scalar as a string; an error (and `None`) for a mapping or list.
    pub(crate) fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match node {
            Node::Scalar(s) => Some(s.as_str().to_string()),
            _ => {
                self.error(node.span(), key, "expected a single value, not a list or mapping");
                None
            }
        }
    }

    pub(crate) fn required_string(&mut self, map: &MarkedMappingNode, name: &str, key: &str) -> Option<String> {
        match map.get_node(name) {
            None => {
                self.error(map.span(), key, format!("missing required key `{name}`"));
                None
            }
            Some(node) => {
                let s = self.string(node, key)?;
                if s.trim().is_empty() {
                    self.error(node.span(), key, "must not be empty");
                    return None;
                }
                Some(s)
            }
        }
    }

    /// `true`/`false` at `map.name` (`default` when absent; an error, and
    /// `default`, when it is anything else).
    pub(crate) fn flag(&mut self, map: &MarkedMappingNode, name: &str, key: &str, default: bool) -> bool {
        let Some(node) = present(map.get_node(name)) else { return default };
        if let Node::Scalar(s) = node {
            if let Some(b) = s.as_bool() {
                return b;
            }
        }
        self.error(node.span(), &format!("{key}.{name}"), "expected true or false");
        default
    }

    pub(crate) fn integer(&mut self, node: &Node, key: &str) -> Option<i64> {
        let s = self.string(node, key)?;
        match s.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(node.span(), key, format!("expected an integer, found {s:?}"));
                None
            }
        }
    }
}

pub(crate) fn parse(file: &Path, text: &str) -> Result<Manifest, Diagnostics> {
    let mut cx = Cx { file, errors: Vec::new(), warnings: Vec::new() };
    let options = LoaderOptions::default().error_on_duplicate_keys(true).toplevel_mapping();
    let root = match marked_yaml::parse_yaml_with_options(0, text, options) {
        Ok(node) => node,
        Err(e) => return Err(Diagnostics::single(load_error(file, &e))),
    };
    let Some(root) = root.as_mapping() else {
        cx.error(root.span(), "", "the manifest must be a mapping with `service` and `apis`");
        return Err(Diagnostics(cx.errors));
    };

    let mut unsupported = BTreeMap::new();
    let mut entities = Vec::new();
    let mut timers = Vec::new();
    let mut events = Vec::new();
    for (k, v) in root.iter() {
        match k.as_str() {
            "service" | "apis" => {}
            // Empty: nothing to run or not run.
            _ if is_null(v) || matches!(v, Node::Sequence(s) if s.is_empty()) => {}
            // Read where used (`FetchAsUser`/`FetchAsAdmin`): nothing to warn of.
            other @ "oauth" => {
                unsupported.insert(other.to_string(), to_json(v));
            }
            "storage" => entities = crate::storage::parse(&mut cx, v),
            "events" => events = crate::abilities::parse_events(&mut cx, v),
            other @ "abilities" => {
                timers = crate::abilities::parse(&mut cx, v);
                unsupported.insert(other.to_string(), to_json(v));
            }
            other => {
                cx.warn(k.span(), other, unsupported_section(other));
                unsupported.insert(other.to_string(), to_json(v));
            }
        }
    }

    let service = match present(root.get_node("service")) {
        None => {
            cx.error(root.span(), "service", "missing required section `service`");
            None
        }
        Some(Node::Mapping(m)) => parse_service(&mut cx, m),
        Some(other) => {
            cx.error(other.span(), "service", "must be a mapping (app_id, version, name, …)");
            None
        }
    };

    let mut apis = Vec::new();
    match present(root.get_node("apis")) {
        None => {}
        Some(Node::Sequence(seq)) => {
            for (i, item) in seq.iter().enumerate() {
                let key = format!("apis[{i}]");
                match item {
                    Node::Mapping(m) => {
                        if let Some(api) = parse_api(&mut cx, m, i, &key) {
                            apis.push(api);
                        }
                    }
                    other => {
                        cx.error(other.span(), &key, "each api must be a mapping with type, methods, url, function")
                    }
                }
            }
        }
        Some(other) => cx.error(other.span(), "apis", "must be a list of api entries"),
    }

    cx.warnings.extend(shadowed(&apis));
    match service {
        Some(service) if cx.errors.is_empty() => {
            Ok(Manifest { service, apis, entities, timers, events, unsupported, warnings: cx.warnings })
        }
        _ => Err(Diagnostics(cx.errors)),
    }
}

/// A YAML null (`~`, `null`, or nothing after the colon) is an absent value,
/// as ONES reads it: its scaffold writes `config: null`, its platform echoes
/// `modules: null`.
fn is_null(node: &Node) -> bool {
    matches!(node, Node::Scalar(s) if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
}

/// `node` unless it is a YAML null.
pub(crate) fn present(node: Option<&Node>) -> Option<&Node> {
    node.filter(|n| !is_null(n))
}

fn load_error(file: &Path, e: &marked_yaml::LoadError) -> Diagnostic {
    use marked_yaml::LoadError as E;
    let (marker, msg) = match e {
        E::TopLevelMustBeMapping(m) => {
            (Some(m), "the manifest must be a mapping with `service` and `apis`".to_string())
        }
        E::TopLevelMustBeSequence(m) => (Some(m), "unexpected top-level list".to_string()),
        E::UnexpectedAnchor(m) => (Some(m), "YAML anchors are not supported".to_string()),
        E::MappingKeyMustBeScalar(m) => (Some(m), "mapping keys must be plain values".to_string()),
        E::UnexpectedTag(m) => (Some(m), "YAML tags are not supported".to_string()),
        E::ScanError(m, se) => (Some(m), format!("invalid YAML: {se}")),
        E::DuplicateKey(d) => (d.key.span().start(), format!("duplicate key `{}`", d.key.as_str())),
    };
    let loc = match marker {
        Some(m) => Location { file: file.to_path_buf(), line: m.line(), column: m.column() },
        None => Location::file(file),
    };
    Diagnostic::error(loc, "", msg)
}

fn parse_service(cx: &mut Cx<'_>, map: &MarkedMappingNode) -> Option<Service> {
    let app_id = cx.required_string(map, "app_id", "service.app_id");
    if let Some(id) = &app_id {
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            let span = map.get_node("app_id").map(|n| *n.span()).unwrap_or(*map.span());
            cx.error(&span, "service.app_id", format!("{id:?} may only hold letters, digits, '-' and '_'"));
        }
    }
    let version = cx.required_string(map, "version", "service.version");
    if let Some(v) = &version {
        if !is_semver(v) {
            let span = map.get_node("version").map(|n| *n.span()).unwrap_or(*map.span());
            cx.error(&span, "service.version", format!("{v:?} is not a version like 1.0.0"));
        }
    }
    let name = cx.required_string(map, "name", "service.name");
    let description = match present(map.get_node("description")) {
        Some(n) => cx.string(n, "service.description").unwrap_or_default(),
        None => String::new(),
    };
    let level = match map.get_node("scope") {
        None => Some(PluginLevel::Team),
        Some(n) => match cx.integer(n, "service.scope") {
            Some(1) => Some(PluginLevel::Team),
            Some(2) => Some(PluginLevel::Organization),
            Some(other) => {
                cx.error(
                    n.span(),
                    "service.scope",
                    format!("{other} is not a plugin scope: use 1 (team-level) or 2 (organization-level)"),
                );
                None
            }
            None => None,
        },
    };
    let config = match present(map.get_node("config")) {
        None => Vec::new(),
        Some(Node::Sequence(seq)) => seq
            .iter()
            .enumerate()
            .filter_map(|(i, item)| parse_config_item(cx, item, &format!("service.config[{i}]")))
            .collect(),
        Some(other) => {
            cx.error(other.span(), "service.config", "must be a list of {key, type} items");
            Vec::new()
        }
    };
    let mut extra = BTreeMap::new();
    for (k, v) in map.iter() {
        if !matches!(k.as_str(), "app_id" | "version" | "name" | "description" | "scope" | "config") {
            extra.insert(k.as_str().to_string(), to_json(v));
        }
    }
    Some(Service { app_id: app_id?, version: version?, name: name?, description, level: level?, config, extra })
}

fn parse_config_item(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<ConfigItem> {
    let Node::Mapping(map) = node else {
        cx.error(node.span(), key, "must be a mapping with `key` and `type`");
        return None;
    };
    let k = cx.required_string(map, "key", &format!("{key}.key"));
    // ONES 0.x wrote the types as numbers, and stores them so.
    let kind = match present(map.get_node("type")) {
        Some(n) => cx.string(n, &format!("{key}.type")).map(|t| match t.as_str() {
            "101" => "Input".to_string(),
            "102" => "TextArea".to_string(),
            "103" => "Password".to_string(),
            _ => t,
        }),
        None => Some("Input".to_string()),
    };
    if let (Some(kind), Some(n)) = (&kind, present(map.get_node("type"))) {
        if !matches!(kind.as_str(), "Input" | "TextArea" | "Password") {
            cx.warn(
                n.span(),
                &format!("{key}.type"),
                format!("unknown config type {kind:?} (known: Input, TextArea, Password); treated as Input"),
            );
        }
    }
    let required = cx.flag(map, "required", key, false);
    let label = present(map.get_node("label")).and_then(|n| cx.string(n, &format!("{key}.label")));
    let default = present(map.get_node("value")).and_then(|n| cx.string(n, &format!("{key}.value")));
    for (k, _) in map.iter() {
        let hint = match k.as_str() {
            "key" | "type" | "required" | "label" | "value" => continue,
            "default" | "default_value" | "defaultValue" => "unknown key, ignored; the default value is `value:`",
            _ => "unknown key, ignored (known: key, type, required, label, value)",
        };
        cx.warn(k.span(), &format!("{key}.{}", k.as_str()), hint);
    }
    Some(ConfigItem { key: k?, kind: kind?, required, label, default })
}

fn parse_api(cx: &mut Cx<'_>, map: &MarkedMappingNode, index: usize, key: &str) -> Option<Api> {
    let location = cx.loc(map.span());
    let kind = cx.required_string(map, "type", &format!("{key}.type")).and_then(|t| {
        let k = HookKind::parse(&t);
        if k.is_none() {
            let span = map.get_node("type").map(|n| *n.span()).unwrap_or(*map.span());
            let all: Vec<&str> = HookKind::ALL.iter().map(|k| k.as_str()).collect();
            cx.error(
                &span,
                &format!("{key}.type"),
                format!("unknown hook type {t:?}; expected one of {}", all.join(", ")),
            );
        }
        k
    });

    let methods = parse_methods(cx, map, key);

    let url = cx.required_string(map, "url", &format!("{key}.url")).and_then(|u| {
        let span = map.get_node("url").map(|n| *n.span()).unwrap_or(*map.span());
        match UrlPattern::parse(u.trim()) {
            Ok(p) => Some(p),
            Err(msg) => {
                cx.error(&span, &format!("{key}.url"), msg);
                None
            }
        }
    });
    if let (Some(HookKind::External), Some(p)) = (kind, &url) {
        if !p.starts_with_team() {
            let span = map.get_node("url").map(|n| *n.span()).unwrap_or(*map.span());
            cx.error(
                &span,
                &format!("{key}.url"),
                format!("an external route must start with /team/:teamUUID, found {:?}", p.as_str()),
            );
        }
    }

    let scope = match map.get_node("scope") {
        None => Some("project".to_string()),
        Some(n) => cx.string(n, &format!("{key}.scope")).and_then(|s| {
            let ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                cx.error(n.span(), &format!("{key}.scope"), format!("{s:?} is not a scope name (e.g. project, wiki)"));
            }
            ok.then_some(s)
        }),
    };

    let function = cx.required_string(map, "function", &format!("{key}.function")).and_then(|f| {
        if is_identifier(&f) {
            Some(f)
        } else {
            let span = map.get_node("function").map(|n| *n.span()).unwrap_or(*map.span());
            cx.error(&span, &format!("{key}.function"), format!("{f:?} is not a JavaScript function name"));
            None
        }
    });

    let priority = match map.get_node("priority") {
        None => Some(0),
        Some(n) => cx.integer(n, &format!("{key}.priority")).and_then(|p| {
            let ok = i32::try_from(p).ok();
            if ok.is_none() {
                cx.error(n.span(), &format!("{key}.priority"), "out of range");
            }
            ok
        }),
    };

    let timeout_ms = match map.get_node("timeout_ms") {
        None => Some(None),
        Some(n) => cx.integer(n, &format!("{key}.timeout_ms")).and_then(|t| {
            if t <= 0 || t as u64 > MAX_TIMEOUT_MS {
                cx.error(
                    n.span(),
                    &format!("{key}.timeout_ms"),
                    format!("{t} is out of range: use 1..={MAX_TIMEOUT_MS} milliseconds"),
                );
                None
            } else {
                Some(Some(t as u64))
            }
        }),
    };

    let on_error = match map.get_node("on_error") {
        None => Some(OnError::Reject),
        Some(n) => cx.string(n, &format!("{key}.on_error")).and_then(|s| match s.as_str() {
            "reject" => Some(OnError::Reject),
            "allow" => Some(OnError::Allow),
            _ => {
                cx.error(n.span(), &format!("{key}.on_error"), format!("{s:?} is not reject or allow"));
                None
            }
        }),
    };

    let query = match map.get_node("query") {
        None => Some(BTreeMap::new()),
        Some(Node::Mapping(q)) => {
            let mut out = BTreeMap::new();
            let mut ok = true;
            for (k, v) in q.iter() {
                match cx.string(v, &format!("{key}.query.{}", k.as_str())) {
                    Some(v) => {
                        out.insert(k.as_str().to_string(), v);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        Some(Node::Scalar(s)) if s.as_str().is_empty() => Some(BTreeMap::new()),
        Some(n) => {
            cx.error(n.span(), &format!("{key}.query"), "must be a mapping of parameter: value");
            None
        }
    };

    let body = cx.flag(map, "body", key, true);

    for (k, _) in map.iter() {
        if !matches!(
            k.as_str(),
            "type"
                | "methods"
                | "url"
                | "scope"
                | "function"
                | "priority"
                | "timeout_ms"
                | "on_error"
                | "query"
                | "body"
        ) {
            cx.warn(k.span(), &format!("{key}.{}", k.as_str()), "unknown key, ignored");
        }
    }

    Some(Api {
        index,
        kind: kind?,
        methods: methods?,
        url: url?,
        scope: scope?,
        function: function?,
        priority: priority?,
        timeout_ms: timeout_ms?,
        on_error: on_error?,
        query: query?,
        body,
        location,
    })
}

fn parse_methods(cx: &mut Cx<'_>, map: &MarkedMappingNode, key: &str) -> Option<Vec<String>> {
    let key = format!("{key}.methods");
    let node = match map.get_node("methods") {
        Some(n) => n,
        None => {
            cx.error(map.span(), &key, "missing required key `methods` (e.g. [GET])");
            return None;
        }
    };
    let raw: Vec<&Node> = match node {
        Node::Sequence(seq) => seq.iter().collect(),
        Node::Scalar(s) if !s.as_str().is_empty() => vec![node],
        _ => {
            cx.error(node.span(), &key, "must list at least one HTTP method, e.g. [GET]");
            return None;
        }
    };
    if raw.is_empty() {
        cx.error(node.span(), &key, "must list at least one HTTP method, e.g. [GET]");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for n in raw {
        let Some(m) = cx.string(n, &key) else {
            ok = false;
            continue;
        };
        let upper = m.trim().to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            cx.error(n.span(), &key, format!("{m:?} is not an HTTP method ({})", METHODS.join(", ")));
            ok = false;
        } else if out.contains(&upper) {
            cx.error(n.span(), &key, format!("{upper} is listed twice"));
            ok = false;
        } else {
            out.push(upper);
        }
    }
    ok.then_some(out)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// A YAML node as JSON, for sections kept verbatim.
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Scalar(s) => {
            if s.may_coerce() {
                if let Some(b) = s.as_bool() {
                    return Value::Bool(b);
                }
                if let Ok(i) = s.as_str().parse::<i64>() {
                    return Value::from(i);
                }
                if s.as_str() == "null" || s.as_str() == "~" {
                    return Value::Null;
                }
            }
            Value::String(s.as_str().to_string())
        }
        Node::Sequence(seq) => Value::Array(seq.iter().map(to_json).collect()),
        Node::Mapping(m) => Value::Object(m.iter().map(|(k, v)| (k.as_str().to_string(), to_json(v))).collect()),
    }
}

/// Query variants that can never run: among hooks of one type on one
/// interface the first declared that matches wins, so a later entry whose
/// query asks for more than an earlier one's (for every method it has) is
/// always beaten by it. Equal queries are a conflict, reported at load.
fn shadowed(apis: &[Api]) -> Vec<Diagnostic> {
    let render = |a: &Api| if a.query.is_empty() { "no query".to_string() } else { a.query_string() };
    let mut out = Vec::new();
    for (j, later) in apis.iter().enumerate() {
        let beaten_by = apis[..j].iter().find(|first| {
            first.kind == later.kind
                && first.scope == later.scope
                && first.url.shape() == later.url.shape()
                && first.query.len() < later.query.len()
                && first.query.iter().all(|(k, v)| later.query.get(k) == Some(v))
                && later.methods.iter().all(|m| first.methods.contains(m))
        });
        if let Some(first) = beaten_by {
            out.push(Diagnostic::warning(
                later.location.clone(),
                format!("apis[{}].query", later.index),
                format!(
                    "never runs: apis[{}] ({}(), {}) is declared first and matches every request this one ({}(), {}) \
                     would; declare the narrower query first",
                    first.index,
                    first.function,
                    render(first),
                    later.function,
                    render(later)
                ),
            ));
        }
    }
    out
}

/// What `check` says of a section interpose keeps but does not run.
fn unsupported_section(name: &str) -> String {
    format!("section `{name}` is kept but not run by interpose (it runs `service`, `apis`, `storage`, `events` and TimerTask `abilities`)")
}
