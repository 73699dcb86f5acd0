use super::*;

fn version(v: &str) -> PluginVersion {
    PluginVersion { app_id: "a".into(), version: v.into(), name: "n".into(), manifest: "m".into(), archive: vec![1, 2] }
}

fn instance(id: &str, seq: i64) -> InstanceRow {
    InstanceRow {
        id: id.into(),
        app_id: "a".into(),
        version: "1.0.0".into(),
        level: "team".into(),
        team: Some("T1".into()),
        state: State::Enabled,
        config: BTreeMap::from([("k".into(), "v".into())]),
        seq,
        installed_at: now(),
        debug: false,
        rev: 0,
    }
}

/// A SQLite file (in `dir`) and, when PostgreSQL is installed, a fresh
/// PostgreSQL database: every store test runs on both.
async fn urls(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![format!("sqlite://{}/sub/reg.db", dir.path().display())];
    urls.extend(interpose_test_util::postgres::database().await);
    urls
}

#[tokio::test]
async fn survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    for url in urls(&dir).await {
        {
            let s = Store::open(&url).await.expect("open");
            assert_eq!(s.next_seq().await.expect("seq"), 1);
            let v0 = s.registry_version().await.expect("version");
            let v1 = s.install(v0, &version("1.0.0"), &instance("i1", 1)).await.expect("install");
            let v2 = s.install(v1, &version("1.0.0"), &instance("i2", 2)).await.expect("install");
            let v3 = s.set_state(v2, "i2", State::Disabled).await.expect("state");
            let v4 = s.upgrade(v3, "i1", &version("2.0.0")).await.expect("upgrade");
            assert_eq!([v1, v2, v3, v4], [v0 + 1, v0 + 2, v0 + 3, v0 + 4], "{url}");
        }
        let s = Store::open(&url).await.expect("reopen");
        let all = s.instances().await.expect("list");
        assert_eq!(
            all.iter().map(|i| (i.id.as_str(), i.version.as_str(), i.state, i.rev)).collect::<Vec<_>>(),
            [("i1", "2.0.0", State::Enabled, 4), ("i2", "1.0.0", State::Disabled, 3)],
            "{url}"
        );
        assert_eq!(all[0].config["k"], "v");
        let mut v = s.registry_version().await.expect("version");
        v = s.uninstall(v, "i2").await.expect("uninstall");
        assert!(s.plugin_version("a", "1.0.0").await.expect("get").is_none(), "unused version is removed");
        assert!(s.plugin_version("a", "2.0.0").await.expect("get").is_some());
        assert_eq!(s.next_seq().await.expect("seq"), 2);
        // Upgrades leave no stored versions behind.
        for n in 3..10 {
            v = s.upgrade(v, "i1", &version(&format!("{n}.0.0"))).await.expect("upgrade");
        }
        assert_eq!(s.version_count().await.expect("count"), 1);
        assert!(s.plugin_version("a", "9.0.0").await.expect("get").is_some());
        v = s.set_config(v, "i1", &BTreeMap::from([("k".into(), "w".into())])).await.expect("config");
        let i1 = s.instance("i1").await.expect("get").expect("i1");
        assert_eq!((i1.config["k"].as_str(), i1.rev), ("w", v), "{url}");
    }
}

#[tokio::test]
async fn a_write_from_a_stale_version_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    for url in urls(&dir).await {
        // Two handles on one store: two gateway nodes.
        let (a, b) = (Store::open(&url).await.expect("open"), Store::open(&url).await.expect("open"));
        let seen = b.registry_version().await.expect("version");
        a.install(a.registry_version().await.expect("v"), &version("1.0.0"), &instance("i1", 1)).await.expect("a");
        let e = b.install(seen, &version("1.0.0"), &instance("i2", 2)).await.expect_err("b is stale");
        assert!(matches!(e, StoreError::Stale { expected, found } if expected == seen && found == seen + 1), "{e}");
        assert!(e.to_string().contains("changed by another gateway node"), "{e}");
        assert_eq!(b.instances().await.expect("list").len(), 1, "{url}: nothing written");
        b.install(seen + 1, &version("1.0.0"), &instance("i2", 2)).await.expect("b after catching up");
    }
}

#[tokio::test]
async fn events_are_claimed_in_order_per_instance_and_held() {
    let dir = tempfile::tempdir().expect("tmp");
    for url in urls(&dir).await {
        let (a, b) = (Store::open(&url).await.expect("open"), Store::open(&url).await.expect("open"));
        let ev = |instance: &str, n: u32| NewEvent {
            instance: instance.into(),
            function: "f".into(),
            kind: "subscribe".into(),
            payload: n.to_string(),
        };
        a.enqueue(&[ev("x", 1), ev("x", 2), ev("y", 1)]).await.expect("enqueue");
        let now = 1_000;
        let first = a.claim(now, 10, &[]).await.expect("claim");
        assert_eq!(
            first.iter().map(|e| (e.instance.as_str(), e.payload.as_str())).collect::<Vec<_>>(),
            [("x", "1"), ("y", "1")],
            "{url}: the oldest of each instance"
        );
        // Held: neither node gets them (or x's next event) again until the lease ends.
        assert!(b.claim(now, 10, &[]).await.expect("claim").is_empty(), "{url}");
        assert!(a.claim(now + LEASE_MS - 1, 10, &[]).await.expect("claim").is_empty(), "{url}");
        // A renewed claim holds on past the first lease.
        a.hold(first[1].id, now + 2 * LEASE_MS).await.expect("hold");
        let renewed = b.claim(now + LEASE_MS, 10, &[]).await.expect("claim");
        assert_eq!(renewed.iter().map(|e| e.instance.as_str()).collect::<Vec<_>>(), ["x"], "{url}");
        let again = b.claim(now + 2 * LEASE_MS, 10, &[]).await.expect("claim after the leases");
        assert_eq!(again.len(), 2, "{url}: a dead node's events go to another");
        b.delivered(again[0].id).await.expect("delivered");
        b.retry(again[1].id, 1, 0, "boom").await.expect("retry");
        let next = a.claim(now + LEASE_MS, 10, &[]).await.expect("claim");
        assert_eq!(
            next.iter().map(|e| (e.instance.as_str(), e.payload.as_str(), e.attempts)).collect::<Vec<_>>(),
            [("x", "2", 0), ("y", "1", 1)],
            "{url}"
        );
        a.bury(next[1].id, 2, "gave up").await.expect("bury");
        assert_eq!(a.event_counts().await.expect("counts"), (1, 1), "{url}");
        assert_eq!(a.dead_events().await.expect("dead")[0].last_error.as_deref(), Some("gave up"));
        assert!(a.replay(next[1].id).await.expect("replay"));
        assert!(!a.replay(next[1].id).await.expect("replay twice"));
        // A node that does not run x leaves x's events to the others, and
        // gives back a claim it cannot deliver untouched.
        let later = now + 3 * LEASE_MS;
        let not_x = b.claim(later, 10, &["x".to_string()]).await.expect("claim skipping x");
        assert_eq!(not_x.iter().map(|e| e.instance.as_str()).collect::<Vec<_>>(), ["y"], "{url}");
        b.release(not_x[0].id).await.expect("release");
        let all = a.claim(later, 10, &[]).await.expect("claim after the release");
        assert_eq!(
            all.iter().map(|e| (e.instance.as_str(), e.attempts)).collect::<Vec<_>>(),
            [("x", 0), ("y", 0)],
            "{url}: released, not retried"
        );
    }
}

#[tokio::test]
async fn memory_and_bad_urls() {
    let s = Store::open("sqlite::memory:").await.expect("memory");
    assert!(s.instances().await.expect("list").is_empty());
    assert_eq!(s.backend(), "sqlite");
    let e = Store::open("postgres://someone:secret@127.0.0.1:1/db").await.expect_err("nothing listens on port 1");
    let msg = e.to_string();
    assert!(msg.contains("cannot connect to PostgreSQL") && msg.contains("someone:***@127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
}

/// A file written before several nodes could share a store (migrations 1
/// and 2 only) opens, migrates and keeps its instances.
#[tokio::test]
async fn an_older_sqlite_file_is_migrated_in_place() {
    let dir = tempfile::tempdir().expect("tmp");
    let old = dir.path().join("old-migrations");
    std::fs::create_dir_all(&old).expect("mkdir");
    for f in ["0001_registry.sql", "0002_post_events.sql"] {
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite").join(f);
        std::fs::copy(from, old.join(f)).expect("copy");
    }
    let url = format!("sqlite://{}/reg.db", dir.path().display());
    {
        let opts = SqliteConnectOptions::from_str(&url).expect("url").create_if_missing(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("open");
        sqlx::migrate::Migrator::new(old.as_path()).await.expect("migrator").run(&pool).await.expect("old schema");
        sqlx::query("INSERT INTO plugin_versions VALUES ('a', '1.0.0', 'n', 'm', x'01', 0)")
            .execute(&pool)
            .await
            .expect("version");
        sqlx::query("INSERT INTO instances (id, app_id, version, level, team, state, config, seq, installed_at, updated_at) VALUES ('i1', 'a', '1.0.0', 'team', 'T1', 'enabled', '{}', 1, 0, 0)")
            .execute(&pool)
            .await
            .expect("instance");
        pool.close().await;
    }
    let s = Store::open(&url).await.expect("migrates");
    let all = s.instances().await.expect("list");
    assert_eq!(all.iter().map(|i| (i.id.as_str(), i.rev)).collect::<Vec<_>>(), [("i1", 0)]);
    assert_eq!(s.registry_version().await.expect("version"), 0);
    s.set_state(0, "i1", State::Disabled).await.expect("writes after the migration");
}

#[tokio::test]
async fn uninstalling_dead_letters_the_instances_pending_events() {
    let dir = tempfile::tempdir().expect("tmp");
    for url in urls(&dir).await {
        let s = Store::open(&url).await.expect("open");
        let v = s.registry_version().await.expect("version");
        let v = s.install(v, &version("1.0.0"), &instance("i1", 1)).await.expect("install");
        let v = s.install(v, &version("1.0.0"), &instance("i2", 2)).await.expect("install");
        let ev = |instance: &str| NewEvent {
            instance: instance.into(),
            function: "f".into(),
            kind: "subscribe".into(),
            payload: "{}".into(),
        };
        s.enqueue(&[ev("i1"), ev("i1"), ev("i2")]).await.expect("enqueue");
        s.uninstall(v, "i1").await.expect("uninstall");
        assert_eq!(s.event_counts().await.expect("counts"), (1, 2), "{url}: (pending, dead)");
        let dead = s.dead_events().await.expect("dead");
        assert!(dead
            .iter()
            .all(|e| e.instance == "i1" && e.last_error.as_deref() == Some("the instance was uninstalled")));
    }
}

/// The `employee` entity of ONES's storage guide, with a default and a
/// partitioned index.
fn employee() -> interpose_manifest::Entity {
    let yaml = r#"
service: {app_id: a, version: 1.0.0, name: n}
storage:
  entities:
    - name: employee
      attributes:
        name: {type: string, length: 32, required: true}
        age: {type: integer, required: true}
        deleted: {type: boolean, default: false}
        note: {type: text}
      indexes:
        - name: find_by_name
          range_attribute: name
        - name: by_age_in_deleted
          range_attribute: age
          partition: [deleted]
"#;
    let m = interpose_manifest::Manifest::parse(std::path::Path::new("plugin.yaml"), yaml).expect("manifest");
    m.entities.into_iter().next().expect("one entity")
}

#[tokio::test]
async fn entities_keep_their_rules_order_and_pages_on_both_stores() {
    use serde_json::json;
    let dir = tempfile::tempdir().expect("tmp");
    let e = employee();
    for url in urls(&dir).await {
        let s = Store::open(&url).await.expect("open");
        let items: Vec<(String, serde_json::Value)> = (0..25)
            .map(|i| {
                (
                    format!("emp{i:02}"),
                    json!({"name": format!("n{:02}", 24 - i), "age": 20 + i % 5, "deleted": i % 2 == 0}),
                )
            })
            .collect();
        s.entity_set("I1", &e, &items).await.expect("batch set");
        // Another instance's records are its own.
        s.entity_set("I2", &e, &[("emp00".into(), json!({"name": "other", "age": 1}))]).await.expect("set");
        let got = s.entity_get("I1", "employee", "emp03").await.expect("get").expect("there");
        assert_eq!(got, json!({"name": "n21", "age": 23, "deleted": false}));
        assert_eq!(
            s.entity_get("I2", "employee", "emp00").await.expect("get"),
            Some(json!({"name": "other", "age": 1, "deleted": false}))
        );

        // Update: required attributes again, the defaulted one kept.
        s.entity_set("I1", &e, &[("emp03".into(), json!({"name": "x", "age": 99, "note": "hi"}))])
            .await
            .expect("update");
        assert_eq!(
            s.entity_get("I1", "employee", "emp03").await.expect("get"),
            Some(json!({"name": "x", "age": 99, "deleted": false, "note": "hi"}))
        );
        for (bad, says) in [
            (json!({"age": 1}), "\"name\" of entity \"employee\" is required"),
            (json!({"name": "a", "age": "1"}), "expected integer, found the string \"1\""),
            (json!({"name": "a", "age": 1, "salary": 3}), "declares no attribute \"salary\""),
            (json!({"name": "a".repeat(33), "age": 1}), "longer than its declared length 32"),
        ] {
            let err =
                s.entity_set("I1", &e, &[("ok".into(), json!({"name": "a", "age": 1})), ("bad".into(), bad)]).await;
            let msg = err.expect_err("refused").to_string();
            assert!(msg.contains(says) && msg.contains("key \"bad\""), "{url}: {msg}");
        }
        assert_eq!(s.entity_get("I1", "employee", "ok").await.expect("get"), None, "all or nothing");

        // Pages by key, then on from the cursor.
        let q = EntityQuery { limit: Some(10), ..Default::default() };
        let p1 = s.entity_query("I1", &e, &q).await.expect("page 1");
        assert_eq!(p1.data.len(), 10);
        assert!(p1.has_more);
        assert_eq!(p1.data[0].0, "emp00");
        let p3 = s
            .entity_query(
                "I1",
                &e,
                &EntityQuery {
                    cursor: Some(
                        s.entity_query("I1", &e, &EntityQuery { cursor: p1.end_cursor.clone(), ..q.clone() })
                            .await
                            .expect("p2")
                            .end_cursor
                            .expect("c"),
                    ),
                    ..q.clone()
                },
            )
            .await
            .expect("page 3");
        assert_eq!(
            p3.data.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
            ["emp20", "emp21", "emp22", "emp23", "emp24"]
        );
        assert!(!p3.has_more);

        // An index in a partition, a range, descending.
        let q = EntityQuery {
            index: Some(("by_age_in_deleted".into(), vec![json!(true)])),
            condition: Some(Condition::Between(json!(21), json!(23))),
            descending: true,
            ..Default::default()
        };
        let page = s.entity_query("I1", &e, &q).await.expect("index query");
        let ages: Vec<i64> = page.data.iter().map(|d| d.1["age"].as_i64().expect("age")).collect();
        assert!(page.data.iter().all(|d| d.1["deleted"] == json!(true)));
        assert!(ages.windows(2).all(|w| w[0] >= w[1]) && ages.iter().all(|a| (21..=23).contains(a)), "{ages:?}");
        assert_eq!(s.entity_count("I1", &e, &q).await.expect("count") as usize, ages.len());
        assert_eq!(s.entity_count("I1", &e, &EntityQuery::default()).await.expect("count"), 25);
        let names = EntityQuery {
            index: Some(("find_by_name".into(), vec![])),
            condition: Some(Condition::BeginsWith("n1".into())),
            ..Default::default()
        };
        let page = s.entity_query("I1", &e, &names).await.expect("beginsWith");
        assert_eq!(
            page.data.iter().map(|d| d.1["name"].as_str().expect("name")).collect::<Vec<_>>(),
            ["n10", "n11", "n12", "n13", "n14", "n15", "n16", "n17", "n18", "n19"]
        );
        let err =
            s.entity_query("I1", &e, &EntityQuery { index: Some(("nope".into(), vec![])), ..Default::default() }).await;
        assert!(err.expect_err("no such index").to_string().contains("has no index \"nope\""));

        // Read (SQLite keeps it at hand), deleted, read again: gone.
        assert!(s.entity_get("I1", "employee", "emp00").await.expect("get").is_some());
        assert_eq!(s.entity_get("I1", "employee", "nothing").await.expect("get"), None);
        assert_eq!(s.entity_delete("I1", "employee", &["emp00".into(), "nothing".into()]).await.expect("delete"), 1);
        assert_eq!(s.entity_get("I1", "employee", "emp00").await.expect("get"), None, "{url}");
        s.entity_set("I1", &e, &[("nothing".into(), json!({"name": "now", "age": 1}))]).await.expect("set");
        assert_eq!(s.entity_get("I1", "employee", "nothing").await.expect("get").expect("there")["name"], "now");
        s.entity_delete("I1", "employee", &["nothing".into()]).await.expect("delete");
        assert_eq!(s.entity_count("I1", &e, &EntityQuery::default()).await.expect("count"), 24);
        assert_eq!(s.drop_entities("I1").await.expect("drop"), 24);
        assert_eq!(s.entity_count("I2", &e, &EntityQuery::default()).await.expect("count"), 1);
    }
}
