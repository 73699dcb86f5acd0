use std::path::Path;
use std::sync::Arc;

use interpose_manifest::{HookKind, Manifest, PluginLevel};

use crate::{HookInput, Instance, RouteTable};

/// A tiny plugin: `apis` lines are `kind METHOD /url function [priority] [k=v]`.
fn plugin(name: &str, level: PluginLevel, team: Option<&str>, seq: u64, apis: &[&str]) -> Vec<HookInput<String>> {
    let mut yaml = format!(
        "service: {{app_id: {name}, version: 1.0.0, name: {name}, scope: {}}}\napis:\n",
        if level == PluginLevel::Team { 1 } else { 2 }
    );
    for a in apis {
        let parts: Vec<&str> = a.split_whitespace().collect();
        yaml +=
            &format!("  - {{type: {}, methods: [{}], url: '{}', function: {}", parts[0], parts[1], parts[2], parts[3]);
        for extra in &parts[4..] {
            match extra.split_once('=') {
                Some((k, v)) => yaml += &format!(", query: {{{k}: {v}}}"),
                None => yaml += &format!(", priority: {extra}"),
            }
        }
        yaml += "}\n";
    }
    let m = Manifest::parse(Path::new("plugin.yaml"), &yaml).expect("manifest");
    let id = match team {
        Some(t) => format!("{name}-{t}"),
        None => name.to_string(),
    };
    let inst = Arc::new(Instance {
        id,
        app_id: name.into(),
        name: name.into(),
        version: "1.0.0".into(),
        level,
        team: team.map(String::from),
        seq,
    });
    m.apis
        .into_iter()
        .map(|api| HookInput {
            instance: inst.clone(),
            payload: format!("{name}.{}", api.function),
            api: Arc::new(api),
        })
        .collect()
}

fn ran(table: &RouteTable<String>, method: &str, path: &str, query: &[(&str, &str)]) -> Vec<String> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let q: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let Some(m) = table.lookup("project", method, &segs) else { return vec![] };
    m.plan().groups().filter_map(|g| g.select(&q)).map(|h| format!("{}:{}", h.kind(), h.payload)).collect()
}

#[test]
fn static_beats_param_and_backtracks() {
    let mut inputs = plugin(
        "a",
        PluginLevel::Organization,
        None,
        1,
        &[
            "intercept GET /users/me me",
            "intercept GET /users/:id byId",
            "intercept GET /users/:id/x deep",
            "intercept GET /users/me/y meY",
        ],
    );
    inputs.extend(plugin("b", PluginLevel::Organization, None, 2, &[]));
    let t = RouteTable::build(inputs).expect("no conflict");
    assert_eq!(ran(&t, "GET", "/users/me", &[]), ["intercept:a.me"]);
    assert_eq!(ran(&t, "GET", "/users/u1", &[]), ["intercept:a.byId"]);
    // "me" matches the static branch first, then backtracks to :id for /x.
    assert_eq!(ran(&t, "GET", "/users/me/x", &[]), ["intercept:a.deep"]);
    assert_eq!(ran(&t, "GET", "/users/me/y", &[]), ["intercept:a.meY"]);
    assert!(ran(&t, "POST", "/users/me", &[]).is_empty());
    let m = t.lookup("project", "GET", &["users", "u1", "x"]).expect("match");
    let h = &m.plan().intercepts[0].variants()[0];
    assert_eq!(h.params(&m.values), [("id", "u1")]);
}

#[test]
fn intercepts_run_by_priority_then_install_order() {
    let mut inputs = plugin("first", PluginLevel::Organization, None, 1, &["intercept GET /users/me f"]);
    inputs.extend(plugin("second", PluginLevel::Organization, None, 2, &["intercept GET /users/me f"]));
    inputs.extend(plugin("urgent", PluginLevel::Organization, None, 3, &["intercept GET /users/me f 10"]));
    let t = RouteTable::build(inputs).expect("ok");
    assert_eq!(ran(&t, "GET", "/users/me", &[]), ["intercept:urgent.f", "intercept:first.f", "intercept:second.f"]);
}

#[test]
fn team_level_context() {
    let mut inputs = plugin("org", PluginLevel::Organization, None, 1, &["intercept GET /team/:teamUUID/tasks o"]);
    inputs.extend(plugin("tp", PluginLevel::Team, Some("T1"), 2, &["intercept GET /team/:t/tasks t"]));
    let t = RouteTable::build(inputs).expect("ok");
    assert_eq!(ran(&t, "GET", "/team/T1/tasks", &[]), ["intercept:org.o", "intercept:tp.t"]);
    assert_eq!(ran(&t, "GET", "/team/T2/tasks", &[]), ["intercept:org.o"]);
}

#[test]
fn org_level_interface_runs_a_multi_team_plugin_once() {
    let mut inputs = plugin("tp", PluginLevel::Team, Some("T2"), 5, &["intercept GET /users/me f"]);
    inputs.extend(plugin("tp", PluginLevel::Team, Some("T1"), 3, &["intercept GET /users/me f"]));
    let t = RouteTable::build(inputs).expect("ok");
    let m = t.lookup("project", "GET", &["users", "me"]).expect("match");
    let groups: Vec<_> = m.plan().groups().collect();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].instance().team.as_deref(), Some("T1"));
}

#[test]
fn query_variants_first_declared_wins() {
    let inputs = plugin(
        "q",
        PluginLevel::Organization,
        None,
        1,
        &["subscribe GET /users/me k1 k1=v1", "subscribe GET /users/me k2 k2=v2", "subscribe GET /users/me k3 k3=v3"],
    );
    let t = RouteTable::build(inputs).expect("ok");
    assert_eq!(ran(&t, "GET", "/users/me", &[("k2", "v2")]), ["subscribe:q.k2"]);
    assert_eq!(ran(&t, "GET", "/users/me", &[("k1", "v1"), ("k2", "v2"), ("k3", "v3")]), ["subscribe:q.k1"]);
    assert!(ran(&t, "GET", "/users/me", &[]).is_empty());
    assert!(ran(&t, "GET", "/users/me", &[("k2", "other")]).is_empty());
}

/// An organization-level plugin with one api.
fn org(name: &str, seq: u64, api: &str) -> Vec<HookInput<String>> {
    plugin(name, PluginLevel::Organization, None, seq, &[api])
}

fn conflict(a: Vec<HookInput<String>>, b: Vec<HookInput<String>>) -> String {
    let err = RouteTable::build(a.into_iter().chain(b).collect()).expect_err("conflict");
    assert_eq!(err.len(), 1, "{err:?}");
    err[0].to_string()
}

#[test]
fn conflict_rules() {
    let msg = conflict(org("a", 1, "intercept GET /users/me f"), org("b", 2, "replace GET /users/me g"));
    assert_eq!(msg, "conflict on GET /users/me (scope project, organization): plugin a (app_id a, instance a) intercept hook f() (apis[0]) and plugin b (app_id b, instance b) replace hook g() (apis[0]): intercept and replace cannot be used on the same interface in the same level context");
    let msg = conflict(org("a", 1, "subscribe GET /users/me f"), org("b", 2, "replace GET /users/me g"));
    assert!(msg.contains("subscribe and replace cannot"), "{msg}");
    for kind in ["prefix", "suffix", "replace"] {
        let msg =
            conflict(org("a", 1, &format!("{kind} GET /users/:x f")), org("b", 2, &format!("{kind} GET /users/:y g")));
        assert!(msg.contains("only one"), "{msg}");
    }
    // org-level vs team-level on a team interface
    let msg = conflict(
        org("a", 1, "replace POST /team/:teamUUID/tasks f"),
        plugin(
            "b",
            PluginLevel::Team,
            Some("T1"),
            2,
            &["prefix POST /team/:teamUUID/tasks g", "replace POST /team/:teamUUID/tasks h"],
        ),
    );
    assert!(msg.contains("(scope project, team T1)") && msg.contains("only one replace or external"), "{msg}");
    // Different queries do not keep two plugins apart (`?k=1&k=2` matches both); the message says so.
    let msg = conflict(org("a", 1, "replace GET /users/me f k=1"), org("b", 2, "replace GET /users/me g k=2"));
    assert!(msg.contains("replace hook f() ?k=1 (apis[0])") && msg.contains("g() ?k=2"), "{msg}");
    assert!(msg.ends_with("(a `query` does not keep them apart: one request can match both)"), "{msg}");
    // same plugin, same type, same query
    let err = RouteTable::build(plugin(
        "a",
        PluginLevel::Organization,
        None,
        1,
        &["intercept GET /users/me f k=v", "intercept GET /users/me g k=v"],
    ))
    .expect_err("same query");
    assert!(err[0].to_string().contains("differ by `query`"), "{}", err[0]);
    // allowed combinations
    let mut ok = org("a", 1, "intercept GET /users/me f");
    ok.extend(org("b", 2, "subscribe GET /users/me f"));
    ok.extend(org("c", 3, "prefix GET /users/me f"));
    ok.extend(plugin(
        "d",
        PluginLevel::Organization,
        None,
        4,
        &["intercept GET /users/me f", "prefix GET /wiki/x g", "subscribe GET /users/me h"],
    ));
    let t = RouteTable::build(ok).expect("allowed");
    assert_eq!(
        ran(&t, "GET", "/users/me", &[]),
        ["intercept:a.f", "intercept:d.f", "prefix:c.f", "subscribe:b.f", "subscribe:d.h"]
    );
    // two teams may each have their own replace
    let mut teams = plugin("x", PluginLevel::Team, Some("T1"), 1, &["replace GET /team/:teamUUID/a f"]);
    teams.extend(plugin("y", PluginLevel::Team, Some("T2"), 2, &["replace GET /team/:teamUUID/a f"]));
    RouteTable::build(teams).expect("different teams");
}

#[test]
fn head_goes_where_get_goes() {
    let apis = ["intercept GET /users/me f", "replace POST /users/me g", "subscribe GET,HEAD /tasks h"];
    let t = RouteTable::build(plugin("a", PluginLevel::Organization, None, 1, &apis)).expect("ok");
    assert_eq!(ran(&t, "HEAD", "/users/me", &[]), ["intercept:a.f"]);
    assert_eq!(ran(&t, "HEAD", "/tasks", &[]), ["subscribe:a.h"]);
    assert_eq!(t.hook_count(), 4, "an implied HEAD is not another hook");
    // A clash on GET is reported once, not again for HEAD ...
    let msg = conflict(org("a", 1, "intercept GET /users/me f"), org("b", 2, "replace GET /users/me g"));
    assert!(msg.starts_with("conflict on GET /users/me"), "{msg}");
    // ... and one only on HEAD is refused like any other.
    let msg = conflict(org("a", 1, "intercept GET /users/me f"), org("b", 2, "replace HEAD /users/me g"));
    assert!(msg.starts_with("conflict on HEAD /users/me") && msg.contains("intercept and replace"), "{msg}");
}

#[test]
fn additions_are_per_instance() {
    let inputs = plugin("a", PluginLevel::Organization, None, 1, &["addition GET /hello f"]);
    let t = RouteTable::build(inputs).expect("ok");
    assert!(t.lookup("project", "GET", &["hello"]).is_none());
    let m = t.lookup_addition("a", "project", "GET", &["hello"]).expect("addition");
    assert_eq!(m.plan().answer.as_ref().map(|g| g.kind()), Some(HookKind::Addition));
    assert!(t.lookup_addition("other", "project", "GET", &["hello"]).is_none());
}
