//! `abilities`: the ones interpose runs (`TimerTask`), and the ones only
//! ONES itself can invoke, which `check` names as not run here. Every
//! ability stays in [`crate::Manifest::unsupported`] as JSON too, for
//! `getAbilityConfig()`.

use std::str::FromStr;

use marked_yaml::Node;

use crate::parse::{present, Cx};
use crate::Location;

/// A `TimerTask` ability: a function run on a schedule.
#[derive(Debug, Clone)]
pub struct TimerTask {
    /// The ability's `id` (its name in the admin API and `invoke timer`).
    pub id: String,
    /// The exported function (`function.taskActionFunc`).
    pub function: String,
    pub schedule: Schedule,
    pub location: Location,
}

/// When a timer runs, on the gateway's clock.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so many seconds.
    Every(u64),
    /// A 6-field cron with seconds (`30 * * * * *`, `0 0 6 * * ?`), in the
    /// gateway's local time.
    Cron { expr: String, schedule: Box<cron::Schedule> },
}

impl Schedule {
    /// `every 30 s` or `cron "0 0 6 * * *"`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(s) => format!("every {s} s"),
            Schedule::Cron { expr, .. } => format!("cron {expr:?}"),
        }
    }

    /// The first run strictly after `after` (seconds since the epoch).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        match self {
            Schedule::Every(s) => Some(after + *s as i64),
            Schedule::Cron { schedule, .. } => {
                let from = chrono::DateTime::from_timestamp(after, 0)?.with_timezone(&chrono::Local);
                schedule.after(&from).next().map(|t| t.timestamp())
            }
        }
    }
}

/// Ability types ONES's own services invoke (on its events, logins,
/// man-hour changes, …): nothing in front of a standard system calls them.
const ONES_INVOKED: &[(&str, &str)] = &[
    ("TaskEventHandler", "ONES calls it around its own task changes"),
    ("item-mutation", "ONES calls it when man-hours are added or changed"),
    ("account", "ONES's login calls it"),
    ("SimpleAuth", "ONES's login calls it"),
    ("web_service", "ONES starts the service from the plugin's workspace"),
    ("CustomPermission", "ONES's permission checks call it"),
    ("ThirdImport", "ONES's import calls it"),
    ("ScriptFieldFloat", "ONES computes the field with it"),
    ("ItemHandler", "ONES calls it on its own items"),
    ("UserListFilter", "ONES's user lists call it"),
    ("send_short_message", "ONES's notifications call it"),
];

/// The timer tasks among `abilities`, checked; a warning for each ability
/// this host does not run.
pub(crate) fn parse(cx: &mut Cx<'_>, node: &Node) -> Vec<TimerTask> {
    let Node::Sequence(seq) = node else {
        cx.error(node.span(), "abilities", "must be a list of abilities");
        return Vec::new();
    };
    let mut timers: Vec<TimerTask> = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let key = format!("abilities[{i}]");
        let Node::Mapping(map) = item else {
            cx.error(item.span(), &key, "each ability must be a mapping with id, abilityType, function");
            continue;
        };
        let kind = present(map.get_node("abilityType")).and_then(|n| cx.string(n, &format!("{key}.abilityType")));
        let id = present(map.get_node("id")).and_then(|n| cx.string(n, &format!("{key}.id")));
        let label = id.clone().unwrap_or_else(|| format!("#{i}"));
        match kind.as_deref() {
            Some("TimerTask") => {
                if let Some(t) = parse_timer(cx, map, &key) {
                    if timers.iter().any(|o| o.id == t.id) {
                        cx.error(item.span(), &format!("{key}.id"), format!("timer {:?} is declared twice", t.id));
                    }
                    timers.push(t);
                }
            }
            Some(k) => {
                let why =
                    ONES_INVOKED.iter().find(|(t, _)| *t == k).map(|(_, why)| format!("{why}, ")).unwrap_or_default();
                cx.warn(
                    item.span(),
                    &key,
                    format!("ability {label:?} ({k}) is not run by this host: {why}nothing in front of a standard system invokes it"),
                );
            }
            None => cx.warn(item.span(), &key, format!("ability {label:?} has no abilityType: not run")),
        }
    }
    timers
}

fn parse_timer(cx: &mut Cx<'_>, map: &marked_yaml::types::MarkedMappingNode, key: &str) -> Option<TimerTask> {
    let location = cx.loc(map.span());
    let id = cx.required_string(map, "id", &format!("{key}.id"));
    let function = match present(map.get_node("function")) {
        Some(Node::Mapping(f)) => cx.required_string(f, "taskActionFunc", &format!("{key}.function.taskActionFunc")),
        Some(other) => {
            cx.error(
                other.span(),
                &format!("{key}.function"),
                "must be a mapping `taskActionFunc: <exported function>`",
            );
            None
        }
        None => {
            cx.error(map.span(), &format!("{key}.function"), "a TimerTask needs `function: {taskActionFunc: <name>}`");
            None
        }
    };
    // `config: [{key: interval, value: 30}]` or `[{key: cron, value: '0 0 6 * * *'}]`.
    let mut interval = None;
    let mut cron_expr = None;
    if let Some(Node::Sequence(items)) = present(map.get_node("config").or_else(|| map.get_node("setting"))) {
        for (j, c) in items.iter().enumerate() {
            let Node::Mapping(c) = c else { continue };
            let ckey = format!("{key}.config[{j}]");
            let Some(k) = c.get_node("key").and_then(|k| k.as_scalar()).map(|k| k.as_str().to_string()) else {
                continue;
            };
            let Some(v) = present(c.get_node("value")) else {
                if k == "interval" || k == "cron" {
                    cx.error(c.span(), &format!("{ckey}.value"), format!("the timer's {k} has no value"));
                }
                continue;
            };
            match k.as_str() {
                "interval" => interval = Some((cx.integer(v, &format!("{ckey}.value")), *v.span())),
                "cron" => cron_expr = cx.string(v, &format!("{ckey}.value")).map(|s| (s, *v.span())),
                _ => {}
            }
        }
    }
    let schedule = match (interval, cron_expr) {
        (Some(_), Some((_, span))) => {
            cx.error(&span, &format!("{key}.config"), "a TimerTask has an interval or a cron, not both");
            None
        }
        (Some((Some(s), span)), None) => {
            if (1..=315_360_000).contains(&s) {
                Some(Schedule::Every(s as u64))
            } else {
                cx.error(&span, &format!("{key}.config"), format!("interval {s}: seconds from 1 to 315360000"));
                None
            }
        }
        (Some((None, _)), None) => None,
        (None, Some((expr, span))) => {
            let fields = expr.split_whitespace().count();
            if fields != 6 {
                cx.error(
                    &span,
                    &format!("{key}.config"),
                    format!("cron {expr:?} has {fields} fields; a TimerTask's cron has 6 (second minute hour day month weekday)"),
                );
                None
            } else {
                match cron::Schedule::from_str(&expr) {
                    Ok(s) => Some(Schedule::Cron { expr, schedule: Box::new(s) }),
                    Err(e) => {
                        cx.error(&span, &format!("{key}.config"), format!("cron {expr:?}: {e}"));
                        None
                    }
                }
            }
        }
        (None, None) => {
            cx.error(
                map.span(),
                &format!("{key}.config"),
                "a TimerTask needs a config item `interval` (seconds) or `cron` (6 fields)",
            );
            None
        }
    };
    Some(TimerTask { id: id?, function: function?, schedule: schedule?, location })
}

/// One `events` subscription: ONES's event type (`ones:project:issue:updated`;
/// a trailing `*` takes every type with that prefix) and the function that
/// handles it.
#[derive(Debug, Clone)]
pub struct EventHandler {
    pub event_type: String,
    pub function: String,
    pub location: Location,
}

impl EventHandler {
    pub fn handles(&self, event_type: &str) -> bool {
        match self.event_type.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => self.event_type == event_type,
        }
    }
}

/// `events`, in the forms plugins write it (ONES does not publish the
/// format): a list of `{eventType | type | event: <type>, function |
/// handler: <name>}` (`types: [...]` for several, `function` a one-entry
/// mapping too), or a mapping of `<type>: <function>`.
pub(crate) fn parse_events(cx: &mut Cx<'_>, node: &Node) -> Vec<EventHandler> {
    let mut out = Vec::new();
    match node {
        Node::Mapping(map) => {
            for (k, v) in map.iter() {
                let key = format!("events.{}", k.as_str());
                if let Some(f) = function_name(cx, v, &key) {
                    out.push(EventHandler {
                        event_type: k.as_str().to_string(),
                        function: f,
                        location: cx.loc(k.span()),
                    });
                }
            }
        }
        Node::Sequence(seq) => {
            for (i, item) in seq.iter().enumerate() {
                let key = format!("events[{i}]");
                let Node::Mapping(map) = item else {
                    cx.error(item.span(), &key, "each event subscription is a mapping {eventType, function}");
                    continue;
                };
                let mut types = Vec::new();
                for name in ["eventType", "event_type", "type", "event", "name"] {
                    if let Some(n) = present(map.get_node(name)) {
                        if let Some(t) = cx.string(n, &format!("{key}.{name}")) {
                            types.push(t);
                        }
                        break;
                    }
                }
                if let Some(Node::Sequence(ts)) = present(map.get_node("types").or_else(|| map.get_node("eventTypes")))
                {
                    for t in ts.iter() {
                        match t {
                            Node::Mapping(m) => {
                                if let Some(t) =
                                    m.get_node("eventType").and_then(|n| cx.string(n, &format!("{key}.types")))
                                {
                                    types.push(t);
                                }
                            }
                            other => {
                                if let Some(t) = cx.string(other, &format!("{key}.types")) {
                                    types.push(t);
                                }
                            }
                        }
                    }
                }
                let function = ["function", "handler", "func", "eventHandlerFunc"]
                    .iter()
                    .find_map(|name| present(map.get_node(name)).map(|n| (name, n)))
                    .and_then(|(name, n)| function_name(cx, n, &format!("{key}.{name}")));
                if types.is_empty() {
                    cx.error(
                        map.span(),
                        &key,
                        "an event subscription needs its event type (`eventType: ones:project:issue:updated`)",
                    );
                }
                let Some(function) = function else {
                    cx.error(
                        map.span(),
                        &key,
                        "an event subscription needs the function that handles it (`function: onEvent`)",
                    );
                    continue;
                };
                for t in types {
                    out.push(EventHandler { event_type: t, function: function.clone(), location: cx.loc(map.span()) });
                }
            }
        }
        other => cx.error(other.span(), "events", "must be a list of {eventType, function} subscriptions"),
    }
    out
}

fn function_name(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<String> {
    match node {
        Node::Mapping(m) => m.iter().next().and_then(|(_, v)| cx.string(v, key)),
        other => cx.string(other, key),
    }
}
