//! Registry reads and writes: plugin versions and instances. Every write
//! takes the version the caller last read ([`Store::registry_version`]) and
//! returns the new one.

use std::collections::BTreeMap;

use crate::{now, on, BeginWrite, InstanceRow, PluginVersion, State, Store, StoreError};

/// An instance row as stored.
#[derive(sqlx::FromRow)]
struct Raw {
    id: String,
    app_id: String,
    version: String,
    level: String,
    team: Option<String>,
    state: String,
    config: String,
    seq: i64,
    installed_at: i64,
    debug: bool,
    rev: i64,
}

const INSTANCE_COLUMNS: &str = "id, app_id, version, level, team, state, config, seq, installed_at, debug, rev";

impl Raw {
    fn into_row(self) -> Result<InstanceRow, StoreError> {
        Ok(InstanceRow {
            config: serde_json::from_str(&self.config)
                .map_err(|e| StoreError::Corrupt(format!("instance {} config: {e}", self.id)))?,
            state: if self.state == "enabled" { State::Enabled } else { State::Disabled },
            id: self.id,
            app_id: self.app_id,
            version: self.version,
            level: self.level,
            team: self.team,
            seq: self.seq,
            installed_at: self.installed_at,
            debug: self.debug,
            rev: self.rev,
        })
    }
}

/// Inside a write transaction: move the registry version on from
/// `expected` (and announce the new one to the nodes listening, at commit),
/// or fail with [`StoreError::Stale`] (the caller's transaction then rolls
/// back).
macro_rules! bump {
    ($tx:expr, $expected:expr) => {{
        let next: Option<i64> = sqlx::query_scalar(
            "UPDATE registry_version SET version = version + 1 WHERE id = 1 AND version = $1 RETURNING version",
        )
        .bind($expected)
        .fetch_optional(&mut *$tx)
        .await?;
        match next {
            Some(v) => {
                crate::Announce::announce(&mut *$tx, v).await?;
                v
            }
            None => {
                let found: i64 = sqlx::query_scalar("SELECT version FROM registry_version WHERE id = 1")
                    .fetch_one(&mut *$tx)
                    .await?;
                return Err(StoreError::Stale { expected: $expected, found });
            }
        }
    }};
}

/// Store a version (a re-upload of the same version replaces its code; the
/// instances on it pick the new code up with the change that stored it).
macro_rules! put_version {
    ($tx:expr, $v:expr) => {
        sqlx::query(
            "INSERT INTO plugin_versions (app_id, version, name, manifest, archive, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (app_id, version) DO UPDATE SET name = excluded.name, manifest = excluded.manifest, archive = excluded.archive",
        )
        .bind(&$v.app_id)
        .bind(&$v.version)
        .bind(&$v.name)
        .bind(&$v.manifest)
        .bind(&$v.archive)
        .bind(now())
        .execute(&mut *$tx)
        .await?
    };
}

/// Forget a version no instance uses any more.
macro_rules! forget_unused_version {
    ($tx:expr, $app_id:expr, $version:expr) => {
        sqlx::query(
            "DELETE FROM plugin_versions WHERE app_id = $1 AND version = $2
             AND NOT EXISTS (SELECT 1 FROM instances WHERE app_id = $1 AND version = $2)",
        )
        .bind($app_id)
        .bind($version)
        .execute(&mut *$tx)
        .await?
    };
}

impl Store {
    /// The registry's version: bumped by every change, from any node. A node
    /// that reads the same version as before has nothing to catch up on.
    pub async fn registry_version(&self) -> Result<i64, StoreError> {
        let sql = "SELECT version FROM registry_version WHERE id = 1";
        Ok(on!(&self.db, |p| sqlx::query_scalar(sql).fetch_one(p).await?))
    }

    pub async fn plugin_version(&self, app_id: &str, version: &str) -> Result<Option<PluginVersion>, StoreError> {
        let sql =
            "SELECT app_id, version, name, manifest, archive FROM plugin_versions WHERE app_id = $1 AND version = $2";
        let row: Option<(String, String, String, String, Vec<u8>)> =
            on!(&self.db, |p| sqlx::query_as(sql).bind(app_id).bind(version).fetch_optional(p).await?);
        Ok(row.map(|(app_id, version, name, manifest, archive)| PluginVersion {
            app_id,
            version,
            name,
            manifest,
            archive,
        }))
    }

    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY seq, id");
        let rows: Vec<Raw> = on!(&self.db, |p| sqlx::query_as(&sql).fetch_all(p).await?);
        rows.into_iter().map(Raw::into_row).collect()
    }

    pub async fn instance(&self, id: &str) -> Result<Option<InstanceRow>, StoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = $1");
        let row: Option<Raw> = on!(&self.db, |p| sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        row.map(Raw::into_row).transpose()
    }

    /// The next install sequence number (install order breaks priority ties).
    pub async fn next_seq(&self) -> Result<i64, StoreError> {
        let sql = "SELECT MAX(seq) FROM instances";
        let n: Option<i64> = on!(&self.db, |p| sqlx::query_scalar(sql).fetch_one(p).await?);
        Ok(n.unwrap_or(0) + 1)
    }

    /// Record an install: the version (if new) and the instance, in one
    /// transaction. Returns the new registry version.
    pub async fn install(&self, expected: i64, version: &PluginVersion, i: &InstanceRow) -> Result<i64, StoreError> {
        let config = serde_json::to_string(&i.config).unwrap_or_else(|_| "{}".into());
        on!(&self.db, |p| {
            let mut tx = p.begin_write().await?;
            let rev = bump!(tx, expected);
            put_version!(tx, version);
            sqlx::query(
                "INSERT INTO instances (id, app_id, version, level, team, state, config, seq, installed_at, updated_at, debug, rev)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&i.id)
            .bind(&i.app_id)
            .bind(&i.version)
            .bind(&i.level)
            .bind(&i.team)
            .bind(i.state.as_str())
            .bind(&config)
            .bind(i.seq)
            .bind(i.installed_at)
            .bind(now())
            .bind(i.debug)
            .bind(rev)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(rev)
        })
    }

    /// Move an instance to another version (upgrade), storing the version if
    /// new. The version left behind is forgotten when no instance uses it.
    pub async fn upgrade(&self, expected: i64, id: &str, version: &PluginVersion) -> Result<i64, StoreError> {
        on!(&self.db, |p| {
            let mut tx = p.begin_write().await?;
            let rev = bump!(tx, expected);
            let old: Option<String> = sqlx::query_scalar("SELECT version FROM instances WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            put_version!(tx, version);
            sqlx::query("UPDATE instances SET version = $1, updated_at = $2, rev = $3 WHERE id = $4")
                .bind(&version.version)
                .bind(now())
                .bind(rev)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if let Some(old) = old.filter(|v| *v != version.version) {
                forget_unused_version!(tx, &version.app_id, &old);
            }
            tx.commit().await?;
            Ok(rev)
        })
    }

    pub async fn set_state(&self, expected: i64, id: &str, state: State) -> Result<i64, StoreError> {
        self.update_column(expected, id, "state", state.as_str().to_string()).await
    }

    pub async fn set_config(
        &self,
        expected: i64,
        id: &str,
        config: &BTreeMap<String, String>,
    ) -> Result<i64, StoreError> {
        let json = serde_json::to_string(config).unwrap_or_else(|_| "{}".into());
        self.update_column(expected, id, "config", json).await
    }

    /// `column` is one of this file's constants, never input.
    async fn update_column(&self, expected: i64, id: &str, column: &str, value: String) -> Result<i64, StoreError> {
        let sql = format!("UPDATE instances SET {column} = $1, updated_at = $2, rev = $3 WHERE id = $4");
        on!(&self.db, |p| {
            let mut tx = p.begin_write().await?;
            let rev = bump!(tx, expected);
            sqlx::query(&sql).bind(&value).bind(now()).bind(rev).bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(rev)
        })
    }

    /// Forget an instance (and its version when no other instance uses it);
    /// its pending events become dead letters.
    pub async fn uninstall(&self, expected: i64, id: &str) -> Result<i64, StoreError> {
        on!(&self.db, |p| {
            let mut tx = p.begin_write().await?;
            let rev = bump!(tx, expected);
            let row: Option<(String, String)> = sqlx::query_as("SELECT app_id, version FROM instances WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM instances WHERE id = $1").bind(id).execute(&mut *tx).await?;
            // Its undelivered events go to the dead letters now: no node runs
            // it any more (a node that has not polled yet would leave them).
            sqlx::query(
                "UPDATE post_events SET state = 'dead', last_error = 'the instance was uninstalled', locked_until = 0
                 WHERE instance = $1 AND state = 'pending'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if let Some((app_id, version)) = row {
                forget_unused_version!(tx, &app_id, &version);
            }
            tx.commit().await?;
            Ok(rev)
        })
    }

    /// How many plugin versions are stored (all apps).
    pub async fn version_count(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM plugin_versions";
        Ok(on!(&self.db, |p| sqlx::query_scalar(sql).fetch_one(p).await?))
    }
}
