//! The plugin registry: installed plugin versions and their instances,
//! persisted in the store named by `[storage] url` (SQLite through sqlx;
//! `sqlite::memory:` keeps nothing). Schema migrations are versioned files
//! in `migrations/`, applied at open.
//!
//! The store only records; validation and lifecycle live in
//! `interpose-control`, which writes here once a change has succeeded.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage.url {url:?}: {why}")]
    Open { url: String, why: String },
    #[error("storage: {0}")]
    Db(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("storage: {0}")]
    Corrupt(String),
}

/// One uploaded version of a plugin.
#[derive(Debug, Clone)]
pub struct PluginVersion {
    pub app_id: String,
    pub version: String,
    pub name: String,
    /// `config/plugin.yaml` as uploaded.
    pub manifest: String,
    /// The project as a tar.gz.
    pub archive: Vec<u8>,
}

/// Whether an instance's hooks are live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Enabled,
    Disabled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Enabled => "enabled",
            State::Disabled => "disabled",
        }
    }
}

/// One instance row.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: String,
    pub app_id: String,
    pub version: String,
    /// `team` or `organization`.
    pub level: String,
    pub team: Option<String>,
    pub state: State,
    pub config: BTreeMap<String, String>,
    pub seq: i64,
    /// Seconds since the epoch.
    pub installed_at: i64,
    pub debug: bool,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Post-hook events: a second connection with a lighter sync (none for memory).
    events: Option<SqlitePool>,
}

mod events;
pub use events::{EventRow, NewEvent};

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Store {
    /// Open (creating the file and its folder if needed) and migrate.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let open_err = |why: String| StoreError::Open { url: url.to_string(), why };
        if url.starts_with("postgres") {
            return Err(open_err(
                "PostgreSQL storage is not supported yet; use sqlite://FILE or sqlite::memory:".into(),
            ));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| open_err(format!("cannot create {}: {e}", parent.display())))?;
            }
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| open_err(e.to_string()))?
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Registry changes are rare and must survive a crash of the machine.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        // One connection: changes are serialised anyway, and `sqlite::memory:`
        // is one database per connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_err(e.to_string()))?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let events = if url.contains(":memory:") {
            None
        } else {
            // WAL + NORMAL survives the process being killed (not a power cut).
            let opts = options.synchronous(SqliteSynchronous::Normal);
            Some(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .map_err(|e| open_err(e.to_string()))?,
            )
        };
        Ok(Store { pool, events })
    }

    /// A write transaction that takes the write lock up front: a deferred one
    /// that reads first fails with "database is locked" instead of waiting
    /// when the event writer holds the lock at the moment it upgrades.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub async fn plugin_version(&self, app_id: &str, version: &str) -> Result<Option<PluginVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT app_id, version, name, manifest, archive FROM plugin_versions WHERE app_id = ? AND version = ?",
        )
        .bind(app_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| PluginVersion {
            app_id: r.get("app_id"),
            version: r.get("version"),
            name: r.get("name"),
            manifest: r.get("manifest"),
            archive: r.get("archive"),
        }))
    }

    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM instances ORDER BY seq").fetch_all(&self.pool).await?;
        rows.into_iter().map(instance_row).collect()
    }

    pub async fn instance(&self, id: &str) -> Result<Option<InstanceRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM instances WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.map(instance_row).transpose()
    }

    /// The next install sequence number (install order breaks priority ties).
    pub async fn next_seq(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM instances").fetch_one(&self.pool).await?;
        Ok(n.unwrap_or(0) + 1)
    }

    /// Record an install: the version (if new) and the instance, in one transaction.
    pub async fn install(&self, version: &PluginVersion, instance: &InstanceRow) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        put_version(&mut tx, version).await?;
        sqlx::query(
            "INSERT INTO instances (id, app_id, version, level, team, state, config, seq, installed_at, updated_at, debug)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&instance.id)
        .bind(&instance.app_id)
        .bind(&instance.version)
        .bind(&instance.level)
        .bind(&instance.team)
        .bind(instance.state.as_str())
        .bind(serde_json::to_string(&instance.config).unwrap_or_else(|_| "{}".into()))
        .bind(instance.seq)
        .bind(instance.installed_at)
        .bind(now())
        .bind(instance.debug)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Move an instance to another version (upgrade), storing the version if new.
    /// The version left behind is forgotten when no instance uses it any more.
    pub async fn upgrade(&self, id: &str, version: &PluginVersion) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let old: Option<String> =
            sqlx::query_scalar("SELECT version FROM instances WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
        put_version(&mut tx, version).await?;
        sqlx::query("UPDATE instances SET version = ?, updated_at = ? WHERE id = ?")
            .bind(&version.version)
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(old) = old.filter(|v| *v != version.version) {
            forget_unused_version(&mut tx, &version.app_id, &old).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_state(&self, id: &str, state: State) -> Result<(), StoreError> {
        sqlx::query("UPDATE instances SET state = ?, updated_at = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_config(&self, id: &str, config: &BTreeMap<String, String>) -> Result<(), StoreError> {
        sqlx::query("UPDATE instances SET config = ?, updated_at = ? WHERE id = ?")
            .bind(serde_json::to_string(config).unwrap_or_else(|_| "{}".into()))
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget an instance (and its version when no other instance uses it).
    pub async fn uninstall(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let row =
            sqlx::query("SELECT app_id, version FROM instances WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
        sqlx::query("DELETE FROM instances WHERE id = ?").bind(id).execute(&mut *tx).await?;
        if let Some(r) = row {
            let (app_id, version): (String, String) = (r.get("app_id"), r.get("version"));
            forget_unused_version(&mut tx, &app_id, &version).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many plugin versions are stored (all apps).
    pub async fn version_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM plugin_versions").fetch_one(&self.pool).await?)
    }
}

async fn forget_unused_version(tx: &mut sqlx::SqliteConnection, app_id: &str, version: &str) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM plugin_versions WHERE app_id = ? AND version = ?
         AND NOT EXISTS (SELECT 1 FROM instances WHERE app_id = ? AND version = ?)",
    )
    .bind(app_id)
    .bind(version)
    .bind(app_id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn put_version(tx: &mut sqlx::SqliteConnection, v: &PluginVersion) -> Result<(), StoreError> {
    // A version's code may be replaced (a developer re-uploading 1.0.0); the
    // instances on it pick the new code up with the change that stored it.
    sqlx::query(
        "INSERT INTO plugin_versions (app_id, version, name, manifest, archive, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (app_id, version) DO UPDATE SET name = excluded.name, manifest = excluded.manifest, archive = excluded.archive",
    )
    .bind(&v.app_id)
    .bind(&v.version)
    .bind(&v.name)
    .bind(&v.manifest)
    .bind(&v.archive)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn instance_row(r: sqlx::sqlite::SqliteRow) -> Result<InstanceRow, StoreError> {
    let state: String = r.get("state");
    let config: String = r.get("config");
    Ok(InstanceRow {
        id: r.get("id"),
        app_id: r.get("app_id"),
        version: r.get("version"),
        level: r.get("level"),
        team: r.get("team"),
        state: if state == "enabled" { State::Enabled } else { State::Disabled },
        config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("instance config: {e}")))?,
        seq: r.get("seq"),
        installed_at: r.get("installed_at"),
        debug: r.get("debug"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: &str) -> PluginVersion {
        PluginVersion {
            app_id: "a".into(),
            version: v.into(),
            name: "n".into(),
            manifest: "m".into(),
            archive: vec![1, 2],
        }
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
        }
    }

    #[tokio::test]
    async fn survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite://{}/sub/reg.db", dir.path().display());
        {
            let s = Store::open(&url).await.expect("open");
            assert_eq!(s.next_seq().await.expect("seq"), 1);
            s.install(&version("1.0.0"), &instance("i1", 1)).await.expect("install");
            s.install(&version("1.0.0"), &instance("i2", 2)).await.expect("install");
            s.set_state("i2", State::Disabled).await.expect("state");
            s.upgrade("i1", &version("2.0.0")).await.expect("upgrade");
        }
        let s = Store::open(&url).await.expect("reopen");
        let all = s.instances().await.expect("list");
        assert_eq!(
            all.iter().map(|i| (i.id.as_str(), i.version.as_str(), i.state)).collect::<Vec<_>>(),
            [("i1", "2.0.0", State::Enabled), ("i2", "1.0.0", State::Disabled)]
        );
        assert_eq!(all[0].config["k"], "v");
        s.uninstall("i2").await.expect("uninstall");
        assert!(s.plugin_version("a", "1.0.0").await.expect("get").is_none(), "unused version is removed");
        assert!(s.plugin_version("a", "2.0.0").await.expect("get").is_some());
        assert_eq!(s.next_seq().await.expect("seq"), 2);
        // Upgrades leave no stored versions behind.
        for n in 3..10 {
            s.upgrade("i1", &version(&format!("{n}.0.0"))).await.expect("upgrade");
        }
        assert_eq!(s.version_count().await.expect("count"), 1);
        assert!(s.plugin_version("a", "9.0.0").await.expect("get").is_some());
    }

    #[tokio::test]
    async fn memory_and_bad_urls() {
        let s = Store::open("sqlite::memory:").await.expect("memory");
        assert!(s.instances().await.expect("list").is_empty());
        let e = Store::open("postgres://x/y").await.expect_err("pg");
        assert!(e.to_string().contains("not supported yet"), "{e}");
    }
}
