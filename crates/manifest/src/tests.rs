use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Manifest, Diagnostics> {
    Manifest::parse(Path::new("config/plugin.yaml"), text)
}

const SEED: &str = r#"
service:
  app_id: 'a1b2c3d4'
  version: 1.0.0
  name: block-archived-users
  description: Rejects profile reads
  scope: 2
  language: nodejs
apis:
  - type: intercept
    methods:
      - GET
    url: /users/me
    scope: project
    function: jackFunc
  - type: intercept
    methods: [POST, put]
    url: /team/:teamUUID/tasks/:taskUUID
    function: onTask
    priority: 10
    timeout_ms: 500
    on_error: allow
    query: { k1: v1 }
modules:
  - id: settings
"#;

#[test]
fn parses_the_ones_seed_case() {
    let m = parse(SEED).expect("valid");
    assert_eq!(m.service.app_id, "a1b2c3d4");
    assert_eq!(m.service.level, PluginLevel::Organization);
    assert_eq!(m.service.extra["language"], "nodejs");
    assert_eq!(m.apis.len(), 2);
    let a = &m.apis[0];
    assert_eq!(
        (a.kind, a.methods.as_slice(), a.url.as_str()),
        (HookKind::Intercept, &["GET".to_string()][..], "/users/me")
    );
    assert_eq!((a.scope.as_str(), a.function.as_str(), a.priority), ("project", "jackFunc", 0));
    let b = &m.apis[1];
    assert_eq!(b.methods, ["POST", "PUT"]);
    assert!(b.url.is_team_level());
    assert_eq!(b.url.shape(), "/team/:/tasks/:");
    assert_eq!((b.priority, b.timeout_ms, b.on_error), (10, Some(500), OnError::Allow));
    assert_eq!(b.query.get("k1").map(String::as_str), Some("v1"));
    assert_eq!(b.location.line, 16);
    assert!(m.unsupported.contains_key("modules"));
    assert!(m.warnings.iter().any(|w| w.to_string().contains("section `modules` is kept but not run")));
}

#[test]
fn reports_every_problem_with_line_and_key() {
    let text = "service:\n  app_id: x\n  version: one\n  scope: 3\napis:\n  - type: intercep\n    methods: [FETCH]\n    url: users/me\n    function: 1abc\n  - type: external\n    methods: [GET]\n    url: /x/:teamUUID\n    function: f\n    timeout_ms: 0\n";
    let err = parse(text).expect_err("invalid");
    let msgs: Vec<String> = err.0.iter().map(|d| d.to_string()).collect();
    let all = msgs.join("\n");
    for needle in [
        "config/plugin.yaml:3:12: error: service.version: \"one\" is not a version",
        "service.name: missing required key `name`",
        "config/plugin.yaml:4:10: error: service.scope: 3 is not a plugin scope",
        "config/plugin.yaml:6:11: error: apis[0].type: unknown hook type \"intercep\"",
        "apis[0].methods: \"FETCH\" is not an HTTP method",
        "apis[0].url: url \"users/me\" must start with '/'",
        "apis[0].function: \"1abc\" is not a JavaScript function name",
        "apis[1].url: an external route must start with /team/:teamUUID",
        "apis[1].timeout_ms: 0 is out of range",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(msgs.len(), 9, "{all}");
}

#[test]
fn yaml_syntax_and_duplicate_keys_are_located() {
    let err = parse("service:\n  app_id: a\n  app_id: b\n").expect_err("dup");
    assert!(err.to_string().contains("config/plugin.yaml:3:3: error: duplicate key `app_id`"), "{err}");
    let err = parse("service: [\n").expect_err("syntax");
    assert!(err.to_string().contains("invalid YAML"), "{err}");
    let err = parse("- a\n- b\n").expect_err("list");
    assert!(err.to_string().contains("must be a mapping"), "{err}");
}

#[test]
fn missing_methods_and_defaults() {
    let ok = parse("service: {app_id: a, version: 1.0.0, name: n}\napis:\n  - {type: replace, methods: GET, url: /a, function: f}\n").expect("ok");
    assert_eq!(ok.service.level, PluginLevel::Team);
    assert_eq!(ok.apis[0].scope, "project");
    assert_eq!(ok.apis[0].on_error, OnError::Reject);
    assert!(ok.apis[0].body);
    let ok = parse("service: {app_id: a, version: 1.0.0, name: n}\napis:\n  - {type: intercept, methods: [POST], url: /a, function: f, body: false}\n").expect("ok");
    assert!(!ok.apis[0].body);
    assert!(ok.apis[0].describe().ends_with("-> f() [body: false]"), "{}", ok.apis[0].describe());
    let err = parse("service: {app_id: a, version: 1.0.0, name: n}\napis:\n  - {type: intercept, methods: [POST], url: /a, function: f, body: no-thanks}\n").expect_err("bad flag");
    assert!(err.to_string().contains("apis[0].body: expected true or false"), "{err}");
    let err = parse("service: {app_id: a, version: 1.0.0, name: n}\napis:\n  - {type: replace, methods: [], url: /a, function: f}\n").expect_err("no methods");
    assert!(err.to_string().contains("must list at least one HTTP method"), "{err}");
}

#[test]
fn patterns() {
    let p = UrlPattern::parse("/team/:teamUUID/tasks/:taskUUID").expect("ok");
    assert_eq!(p.team_param_index(), Some(1));
    assert!(p.starts_with_team());
    assert_eq!(p.param_names().collect::<Vec<_>>(), ["teamUUID", "taskUUID"]);
    assert_eq!(UrlPattern::parse("/").expect("root").shape(), "/");
    assert!(UrlPattern::parse("/a//b").is_err());
    assert!(UrlPattern::parse("/a/:x/:x").is_err());
    assert!(UrlPattern::parse("/a?x=1").expect_err("query").contains("under `query:`"));
    let e = UrlPattern::parse("/users/:id?").expect_err("optional");
    assert!(e.contains("optional parameters (:id?) are not supported"), "{e}");
    let e = UrlPattern::parse("/files/*").expect_err("wildcard");
    assert!(e.contains("wildcards (\"*\") are not supported"), "{e}");
    assert!(UrlPattern::parse("/a/b:c").expect_err("mixed").contains("mixes text and parameter syntax"));
    assert!(!UrlPattern::parse("/users/:teamUUID").expect("ok").is_team_level());
    assert!(UrlPattern::parse("/team/:t/x").expect("ok").is_team_level());
}

#[test]
fn config_items_name_unknown_keys() {
    let text = "service:\n  app_id: x\n  version: 1.0.0\n  name: n\n  config:\n    - key: k\n      type: Input\n      default: d\n      value: v\napis: []\n";
    let m = parse(text).expect("valid");
    assert_eq!(m.service.config[0].default.as_deref(), Some("v"));
    let w: Vec<String> = m.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("plugin.yaml:8:") && w.contains("service.config[0].default") && w.contains("`value:`")),
        "{w:?}"
    );
}

#[test]
fn example_paths_fill_every_parameter() {
    let p = UrlPattern::parse("/team/:t/tasks/:taskUUID").expect("ok");
    assert_eq!(p.example("T1"), "/team/T1/tasks/taskUUID");
    assert_eq!(p.shape(), "/team/:/tasks/:");
    assert_eq!(UrlPattern::parse("/").expect("ok").example("T1"), "/");
}

#[test]
fn a_query_variant_behind_a_broader_one_is_reported_as_never_running() {
    let text = "service: {app_id: x, version: 1.0.0, name: n}\napis:\n\
  - {type: intercept, methods: [GET], url: /team/:teamUUID/items, query: {mode: a}, function: broad}\n\
  - {type: intercept, methods: [GET], url: /team/:t/items, query: {mode: a, x: '1'}, function: narrow}\n\
  - {type: replace, methods: [GET], url: /team/:t/items, query: {mode: a, y: '1'}, function: otherType}\n\
  - {type: intercept, methods: [GET, POST], url: /team/:t/items, query: {mode: a, z: '1'}, function: morePosts}\n\
  - {type: intercept, methods: [GET], url: /team/:t/items, query: {mode: b, x: '1'}, function: otherValue}\n";
    let m = parse(text).expect("valid");
    let w: Vec<String> = m.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("plugin.yaml:4:") && w[0].contains("apis[1].query"), "{w:?}");
    assert!(w[0].contains("never runs: apis[0] (broad(), mode=a)") && w[0].contains("(narrow(), mode=a&x=1)"), "{w:?}");
}

#[test]
fn what_the_ones_scaffold_writes_loads() {
    // The scaffold's manifest: nulls where a section is empty, lower-case
    // methods, numeric config types, deprecated and front-end keys.
    let text = "service:\n  app_id: 'abcd1234'\n  version: 1.0.0\n  name: scaffold\n  description: null\n  scope: 1\n  mode: org\n  logo: null\n  auth: null\n  language: nodejs\n  host_version: 1.0.0\n  permission: null\n  policy: {policy: simple, target: ''}\n  config: null\n\
apis:\n  - type: addition\n    methods: [get, post]\n    url: /hello\n    function: hello\n\
modules: null\nabilities: []\nstorage: null\nevents: null\noauth:\n  type: [admin]\n  scope: [read:project:project]\n";
    let m = Manifest::parse(Path::new("config/plugin.yaml"), text).expect("loads");
    assert!(m.service.config.is_empty());
    assert_eq!(m.service.description, "");
    assert_eq!(m.apis[0].methods, ["GET", "POST"]);
    assert!(m.warnings.is_empty(), "nothing to warn of: {:?}", m.warnings);
    let text = "service: {app_id: a, version: 1.0.0, name: n, config: [{key: k, type: 103, label: null, value: null, required: null}]}\napis: null\n\
abilities:\n  - id: t1\n    abilityType: TimerTask\n    function: {taskActionFunc: tick}\n    config: [{key: interval, fieldType: Number, value: '30'}]\n  - id: sso\n    abilityType: account\n    function: {CreateLoginUrl: login}\n";
    let m = Manifest::parse(Path::new("config/plugin.yaml"), text).expect("loads");
    assert_eq!(m.service.config[0].kind, "Password");
    assert_eq!((m.service.config[0].label.as_deref(), m.service.config[0].default.as_deref()), (None, None));
    assert!(m.apis.is_empty());
    assert_eq!((m.timers[0].id.as_str(), m.timers[0].function.as_str()), ("t1", "tick"));
    assert_eq!(m.timers[0].schedule.describe(), "every 30 s");
    let w: Vec<String> = m.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("plugin.yaml:8")
            && w[0].contains("\"sso\" (account) is not run by this host: ONES's login calls it"),
        "{w:?}"
    );
}

#[test]
fn timer_schedules_are_checked_where_they_are_written() {
    let timer = |config: &str| {
        format!("service: {{app_id: a, version: 1.0.0, name: n}}\nabilities:\n  - id: t\n    abilityType: TimerTask\n    function: {{taskActionFunc: tick}}\n    config: {config}\n")
    };
    let m = parse(&timer("[{key: cron, fieldType: Input, value: '* 20,40 * * * ?'}]")).expect("ONES's cron with `?`");
    assert_eq!(m.timers[0].schedule.describe(), "cron \"* 20,40 * * * ?\"");
    let next = m.timers[0].schedule.next_after(0).expect("a next run");
    assert!(next > 0 && next < 3 * 3600, "{next}");
    for (config, says) in [
        ("[{key: cron, value: '0 * * * *'}]", "has 5 fields; a TimerTask's cron has 6"),
        ("[{key: cron, value: '0 99 * * * *'}]", "cron \"0 99 * * * *\""),
        ("[{key: interval, value: 0}]", "interval 0: seconds from 1"),
        ("[{key: interval, value: 5}, {key: cron, value: '* * * * * *'}]", "an interval or a cron, not both"),
        ("[]", "needs a config item `interval` (seconds) or `cron`"),
    ] {
        let err = parse(&timer(config)).expect_err(config).to_string();
        assert!(err.contains(says) && err.contains("abilities[0].config"), "{config}: {err}");
    }
}

#[test]
fn storage_entities_are_checked_as_ones_declares_them() {
    let text = "service: {app_id: a, version: 1.0.0, name: n}\nstorage:\n  entities:\n    - name: employee\n      attributes:\n        name: {type: string, length: 32, required: true}\n        age: {type: integer, default: 18}\n        deleted: {type: boolean}\n      indexes:\n        - {name: by_age, range_attribute: age, partition: [deleted]}\n";
    let m = parse(text).expect("valid");
    let e = &m.entities[0];
    assert_eq!(
        (e.name.as_str(), e.attributes.len(), e.indexes[0].partition.as_slice()),
        ("employee", 3, &["deleted".to_string()][..])
    );
    assert_eq!(e.attributes["age"].default, Some(serde_json::json!(18)));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    for (entity, says) in [
        ("- name: e\n      attributes: {s: {type: string}}", "needs a `length`"),
        ("- name: e\n      attributes: {s: {type: string, length: 3000}}", "3000 is outside 1..2048"),
        (
            "- name: e\n      attributes: {a: {type: string, length: 2000}, b: {type: string, length: 100}}",
            "add up to 2100 bytes",
        ),
        (
            "- name: e\n      attributes: {t: {type: text}}\n      indexes: [{name: i, range_attribute: t}]",
            "is text, which cannot be indexed",
        ),
        (
            "- name: e\n      attributes: {t: {type: integer}}\n      indexes: [{name: i, range_attribute: u}]",
            "no attribute \"u\" is declared",
        ),
        ("- name: e\n      attributes: {t: {type: integer, default: 'x'}}", "expected integer, found the string \"x\""),
        ("- name: e\n      attributes: {t: {type: date}}", "unknown type \"date\""),
        ("- name: e\n      attributes: {}", "at least one attribute"),
        (
            "- name: e\n      attributes: {t: {type: integer}}\n    - name: e\n      attributes: {t: {type: integer}}",
            "declared twice",
        ),
    ] {
        let text = format!("service: {{app_id: a, version: 1.0.0, name: n}}\nstorage:\n  entities:\n    {entity}\n");
        let err = parse(&text).expect_err(entity).to_string();
        assert!(
            err.contains(says) && err.contains("storage.entities[0]")
                || err.contains("storage.entities[1]") && err.contains(says),
            "{entity}: {err}"
        );
    }
}

#[test]
fn language_placeholders_are_resolved_from_the_workspace() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("workspace/language")).expect("mkdir");
    std::fs::write(
        dir.path().join("config/plugin.yaml"),
        "service:\n  app_id: a\n  version: 1.0.0\n  name: '{{.PluginName}}'\n  description: 'by {{.Team}}, {{.Nope}}'\n  config:\n    - {key: k, type: Input, label: '{{.KLabel}}'}\napis: []\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("workspace/language/zh.yaml"), "PluginName: 插件\nTeam: 团队\nKLabel: 键\n")
        .expect("write");
    std::fs::write(dir.path().join("workspace/language/en.yaml"), "PluginName: Reviews\nKLabel: The key\n")
        .expect("write");
    let m = Manifest::load(dir.path()).expect("loads");
    assert_eq!(m.service.name, "Reviews");
    assert_eq!(m.service.description, "by 团队, {{.Nope}}");
    assert_eq!(m.service.config[0].label.as_deref(), Some("The key"));
}
