use super::*;

/// What real ONES plugins put in `workspace/plugin.sql`.
const PLUGIN_SQL: &str = r#"
SET NAMES utf8mb4;
CREATE TABLE IF NOT EXISTS `{{email_id_map}}` (
  `id` int(11) unsigned NOT NULL AUTO_INCREMENT COMMENT 'row id',
  `email` varchar(128) NOT NULL DEFAULT '' COMMENT 'mail',
  `user_uuid` char(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `score` decimal(10,2) DEFAULT NULL,
  `enabled` tinyint(1) NOT NULL DEFAULT 1,
  `created_at` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `updated_at` timestamp NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uniq_email` (`email`),
  KEY `idx_user` (`user_uuid`(8))
) ENGINE=InnoDB AUTO_INCREMENT=1 DEFAULT CHARSET=utf8mb4 COMMENT='emails';
INSERT INTO `{{email_id_map}}` (`email`, `user_uuid`) VALUES ('a@x.com', 'U1'), ("b@x.com", 'U2');
"#;

fn db() -> (tempfile::TempDir, PluginDb) {
    let dir = tempfile::tempdir().expect("tmp");
    let db = PluginDb::sqlite(dir.path().join("dbs"));
    std::fs::write(dir.path().join("plugin.sql"), PLUGIN_SQL).expect("write");
    (dir, db)
}

#[tokio::test]
async fn what_plugins_write_for_mysql_runs_on_the_embedded_sqlite() {
    let (dir, db) = db();
    exercise(&db, dir.path()).await;
    assert!(!dir.path().join("dbs/i1.sqlite").exists());
}

/// The same, as written, on a MariaDB server (the tests start their own).
#[tokio::test]
async fn what_plugins_write_for_mysql_runs_on_mariadb() {
    let Some(url) = interpose_test_util::mariadb::server() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("plugin.sql"), PLUGIN_SQL).expect("write");
    let db = PluginDb::mysql(&url).await.expect("connect");
    assert!(!db.is_local());
    exercise(&db, dir.path()).await;
}

async fn exercise(db: &PluginDb, dir: &std::path::Path) {
    db.import_sql("I1", dir, "plugin.sql").await.expect("import");
    let rows = db.select("I1", "select id, email, enabled from email_id_map order by id").await.expect("select");
    assert_eq!(
        serde_json::to_value(&rows).expect("json"),
        serde_json::json!([
            {"id": 1, "email": "a@x.com", "enabled": 1},
            {"id": 2, "email": "b@x.com", "enabled": 1},
        ])
    );
    // Upsert, MySQL style; the row's id is kept.
    db.exec("I1", "insert", "INSERT INTO email_id_map (email, user_uuid) VALUES ('a@x.com', 'U9') ON DUPLICATE KEY UPDATE `user_uuid` = VALUES(`user_uuid`), score = 1.5")
        .await
        .expect("upsert");
    db.exec("I1", "insert", "INSERT IGNORE INTO email_id_map (email, user_uuid) VALUES ('b@x.com', 'X')")
        .await
        .expect("ignore");
    db.exec(
        "I1",
        "update",
        "UPDATE `email_id_map` SET `updated_at` = NOW(), score = score + 1 WHERE email = 'a@x.com'",
    )
    .await
    .expect("update");
    let rows = db
        .select("I1", "SELECT `id`, user_uuid, score, CONCAT(email, '/', user_uuid) AS tag, IF(score > 2, 'hi', 'lo') AS band, UNIX_TIMESTAMP() - UNIX_TIMESTAMP(created_at) < 60 AS fresh FROM email_id_map ORDER BY id LIMIT 0, 1")
        .await
        .expect("select");
    assert_eq!(
        serde_json::to_value(&rows).expect("json"),
        serde_json::json!([
            {"id": 1, "user_uuid": "U9", "score": 2.5, "tag": "a@x.com/U9", "band": "hi", "fresh": 1}
        ])
    );
    assert_eq!(db.count("I1", "select count(*) from email_id_map where enabled = 1").await.expect("count"), 2);
    db.exec("I1", "alter", "ALTER TABLE email_id_map ADD COLUMN note varchar(20) DEFAULT 'n'").await.expect("alter");
    db.exec("I1", "delete", "DELETE FROM email_id_map WHERE id = 2").await.expect("delete");
    assert_eq!(db.count("I1", "SELECT COUNT(id) FROM email_id_map").await.expect("count"), 1);
    // Another instance has its own database.
    let err = db.select("I2", "select * from email_id_map").await.expect_err("no such table there");
    assert_eq!((err.errcode, err.status), ("DB.QuerySqlErr", 500));
    assert!(err.reason.contains("email_id_map"), "{err:?}");
    db.exec("I1", "drop", "DROP TABLE email_id_map").await.expect("drop");
    db.drop_instance("I1").await.expect("gone");
    db.drop_instance("I2").await.expect("gone");
}

#[tokio::test]
async fn refusals_carry_the_reference_errcodes_and_name_what_is_wrong() {
    let (dir, db) = db();
    db.import_sql("I1", dir.path(), "plugin.sql").await.expect("import");
    let cases: Vec<(DbFailure, &str, &str)> = vec![
        (db.select("I1", "selec * from t").await.expect_err("typo"), "DB.SqlSyntaxErr", "selec"),
        (
            db.select("I1", "delete from email_id_map").await.expect_err("not a select"),
            "InvalidParameter",
            "not DELETE",
        ),
        (
            db.exec("I1", "update", "delete from email_id_map").await.expect_err("wrong kind"),
            "InvalidParameter",
            "was given a DELETE",
        ),
        (
            db.exec("I1", "merge", "delete from email_id_map").await.expect_err("no such operate"),
            "InvalidParameter",
            "one of insert",
        ),
        (
            db.count("I1", "select id from email_id_map").await.expect_err("not a count"),
            "InvalidParameter",
            "single count",
        ),
        (db.select("I1", "select 1; select 2").await.expect_err("two"), "InvalidParameter", "one statement, not 2"),
        (
            db.select("I1", "select DATE_FORMAT(created_at, '%Y') from email_id_map").await.expect_err("untranslated"),
            "DB.SqlSyntaxErr",
            "DATE_FORMAT() is not translated",
        ),
        (
            db.exec("I1", "alter", "ALTER TABLE email_id_map MODIFY COLUMN email text").await.expect_err("modify"),
            "DB.SqlSyntaxErr",
            "ALTER TABLE … MODIFY COLUMN",
        ),
        (
            db.exec("I1", "insert", "insert into nowhere values (1)").await.expect_err("no table"),
            "DB.ExecSqlErr",
            "no such table: nowhere",
        ),
        (
            db.import_sql("I1", dir.path(), "../plugin.sql").await.expect_err("outside"),
            "DB.SqlFileNameFormatInvalid",
            "inside the workspace",
        ),
        (
            db.import_sql("I1", dir.path(), "none.sql").await.expect_err("missing"),
            "DB.SqlFileFetchingFailed",
            "cannot read none.sql",
        ),
    ];
    for (err, errcode, says) in cases {
        assert_eq!(err.errcode, errcode, "{err:?}");
        assert!(err.reason.contains(says), "{says:?} in {err:?}");
    }
    // A failing import changes nothing.
    std::fs::write(dir.path().join("bad.sql"), "CREATE TABLE a (x int);\nINSERT INTO b VALUES (1);\n").expect("write");
    let err = db.import_sql("I1", dir.path(), "bad.sql").await.expect_err("b does not exist");
    assert_eq!(err.errcode, "DB.ImportSqlErr");
    assert!(err.reason.contains("statement 2: no such table: b"), "{err:?}");
    assert!(db.select("I1", "select * from a").await.is_err(), "the import was rolled back");
}

#[test]
fn placeholders_are_the_tables_names() {
    assert_eq!(
        translate::unwrap_placeholders("select * from {{ t_1 }} where x = '{{'"),
        "select * from t_1 where x = '{{'"
    );
}
