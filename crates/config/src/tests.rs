use std::path::Path;
use std::time::Duration;

use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_str_with_env(text, "interpose.toml", Path::new("/etc/ip"), vars)
}

#[test]
fn empty_file_gets_every_default() {
    let c = load("", &[]).expect("defaults");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:8081");
    assert!(c.server.workers >= 1);
    assert_eq!(c.storage.url, "sqlite:///etc/ip/data/interpose.db");
    assert_eq!(c.upstreams.len(), 2);
    let p = c.upstream("project").expect("project");
    assert_eq!(
        (p.mount.as_str(), p.authority.as_str(), p.base_path.as_str()),
        ("/project/api/project", "127.0.0.1:9000", "/project/api/project")
    );
    assert_eq!((c.limits.max_body_bytes, c.limits.hook_timeout_ms, c.limits.hook_memory_mb), (1_048_576, 1000, 32));
    assert!(DEFAULT_CONFIG.contains("[limits]"));
    load(DEFAULT_CONFIG, &[]).expect("the embedded default is valid");
}

#[test]
fn env_overrides_win_and_are_checked() {
    let c = load(
        "[server]\nlisten = \"127.0.0.1:1\"\n",
        &[
            ("INTERPOSE_SERVER_LISTEN", "127.0.0.1:2"),
            ("INTERPOSE_LIMITS_HOOK_TIMEOUT_MS", "50"),
            ("INTERPOSE_ADMIN_TOKEN", "x"),
        ],
    )
    .expect("ok");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:2");
    assert_eq!(c.limits.hook_timeout_ms, 50);
    let e = load("", &[("INTERPOSE_SERVER_LISEN", "x")]).expect_err("unknown");
    assert!(e.to_string().contains("INTERPOSE_SERVER_LISEN: not a setting"), "{e}");
    let e = load("", &[("INTERPOSE_LIMITS_HOOK_TIMEOUT_MS", "0")]).expect_err("range");
    assert!(e.to_string().contains("limits.hook_timeout_ms: 0 is out of range"), "{e}");
}

#[test]
fn bad_keys_and_values_are_named() {
    let e = load("[server]\nlisen = \"x\"\n", &[]).expect_err("unknown key");
    assert!(e.to_string().contains("unknown field `lisen`"), "{e}");
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = load("[limits]\nmax_body_bytes = \"big\"\n", &[]).expect_err("type");
    assert!(e.to_string().contains("max_body_bytes"), "{e}");
    let e = load("[limits]\nmax_header_bytes = 100\n", &[]).expect_err("range");
    assert!(e.to_string().contains("limits.max_header_bytes: 100 is out of range 1024..=1048576"), "{e}");
    let e = load("[storage]\npoll_ms = 5\n", &[]).expect_err("range");
    assert!(e.to_string().contains("storage.poll_ms: 5 is out of range 100..=600000"), "{e}");
    for bad in ["loud", "warning", "info,interpose=lots", "=debug", "info debug"] {
        let e = load(&format!("[log]\nlevel = {bad:?}\n"), &[]).expect_err(bad);
        assert!(e.to_string().contains(&format!("log.level: {bad:?} is not a log filter")), "{e}");
    }
    for good in ["warn", "INFO", "off", "warn,interpose=debug", "info,hyper=warn,"] {
        assert_eq!(load(&format!("[log]\nlevel = {good:?}\n"), &[]).expect(good).log.level, good);
    }
    let c = load("[storage]\nurl = \"postgres://u:p@db.internal/ip\"\n", &[]).expect("postgres");
    assert_eq!((c.storage.url.as_str(), c.storage.poll), ("postgres://u:p@db.internal/ip", Duration::from_secs(2)));
    let text = "[server]\nlisten = \"nowhere\"\nworkers = -1\n[storage]\nurl = \"mysql://x\"\n[[upstreams]]\nscope = \"project\"\nmount = \"api\"\nurl = \"https://x\"\n[[upstreams]]\nscope = \"project\"\nmount = \"/b\"\nurl = \"http://h:1\"\n[[upstreams]]\nscope = \"c\"\nmount = \"/c\"\nurl = \"http://h:99999\"\n[[upstreams]]\nscope = \"d\"\nmount = \"/d\"\nurl = \"http://h/a b\"\n";
    let e = load(text, &[]).expect_err("many");
    let s = e.to_string();
    for needle in [
        "server.listen: \"nowhere\" is not an address",
        "server.workers: -1 is out of range",
        "storage.url: \"mysql://x\" is not a storage URL",
        "upstreams[0].mount: \"api\" must start with '/'",
        "upstreams[0].url: \"https://x\": https upstreams are not supported",
        "upstreams[1].scope: scope \"project\" is declared twice",
        "upstreams[2].url: \"http://h:99999\" has no valid host:port",
        "upstreams[3].url: \"http://h/a b\" has characters a URL path cannot carry",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in {s}");
    }
}

#[test]
fn plugins_resolve_relative_to_the_file() {
    let dir = std::env::temp_dir().join(format!("ip-cfg-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("p/config")).expect("mkdir");
    std::fs::write(dir.join("p/config/plugin.yaml"), "service: {}").expect("write");
    let vars: Vec<(String, String)> = Vec::new();
    let c = Config::from_str_with_env(
        "[[plugins]]\npath = \"p\"\nteams = [\"T1\"]\ninstance = \"i1\"\n",
        "x.toml",
        &dir,
        vars.clone(),
    )
    .expect("ok");
    assert_eq!(c.plugins[0].path, dir.join("p"));
    let e = Config::from_str_with_env(
        "[[plugins]]\npath = \"missing\"\n[[plugins]]\npath = \"p\"\nteams = [\"A\", \"B\"]\ninstance = \"x\"\n",
        "x.toml",
        &dir,
        vars,
    )
    .expect_err("bad");
    let s = e.to_string();
    assert!(s.contains("plugins[0].path:") && s.contains("no config/plugin.yaml"), "{s}");
    assert!(s.contains("plugins[1].instance: an instance UUID can be pinned only with at most one team"), "{s}");
    std::fs::remove_dir_all(&dir).ok();
}
