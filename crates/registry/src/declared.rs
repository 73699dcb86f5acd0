//! The config file's `[[plugins]]` instances as the store last saw them, so
//! their lifecycle runs as an installed instance's would: `Install` (and
//! `Enable`) the first time their place has them, `Upgrade` when their
//! version changed, once across every node sharing the store. These rows are
//! not part of the registry version: they change no node's route table.

use crate::{now, on, Store, StoreError};

/// A declared instance: its (derived or pinned) id and what runs there.
#[derive(Debug, Clone)]
pub struct DeclaredRow {
    pub id: String,
    pub app_id: String,
    pub team: Option<String>,
    pub version: String,
    pub name: String,
}

/// What the node starting a declared instance has to run for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Its place never had it: `Install`, `Enable`.
    First,
    /// It ran another version before: `Upgrade(old)`.
    Upgraded { version: String, name: String },
    /// Known at this version (or another node claimed the change): nothing.
    Known,
}

impl Store {
    /// Record that a node runs `d` and say which lifecycle functions that
    /// node owes it. The claim is atomic (an insert, or an update from the
    /// version read), so of several nodes starting together only one runs
    /// `Install` or `Upgrade`; [`Store::undo_arrival`] takes it back when
    /// that function fails.
    pub async fn arrive_declared(&self, d: &DeclaredRow) -> Result<Arrival, StoreError> {
        let now = now();
        let inserted = on!(&self.db, |p| sqlx::query(
            "INSERT INTO declared_instances (id, app_id, team, version, name, first_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&d.id)
        .bind(&d.app_id)
        .bind(&d.team)
        .bind(&d.version)
        .bind(&d.name)
        .bind(now)
        .execute(p)
        .await?
        .rows_affected());
        if inserted == 1 {
            return Ok(Arrival::First);
        }
        let Some(old) = self.declared(&d.id).await? else { return Ok(Arrival::Known) };
        if old.version == d.version && old.app_id == d.app_id {
            return Ok(Arrival::Known);
        }
        let moved = on!(&self.db, |p| sqlx::query(
            "UPDATE declared_instances SET app_id = $1, version = $2, name = $3, updated_at = $4
             WHERE id = $5 AND version = $6",
        )
        .bind(&d.app_id)
        .bind(&d.version)
        .bind(&d.name)
        .bind(now)
        .bind(&d.id)
        .bind(&old.version)
        .execute(p)
        .await?
        .rows_affected());
        Ok(if moved == 1 { Arrival::Upgraded { version: old.version, name: old.name } } else { Arrival::Known })
    }

    /// Take back an [`Arrival`] whose lifecycle function failed: the next
    /// start owes it again.
    pub async fn undo_arrival(&self, d: &DeclaredRow, arrival: &Arrival) -> Result<(), StoreError> {
        match arrival {
            Arrival::Known => {}
            Arrival::First => {
                on!(&self.db, |p| sqlx::query("DELETE FROM declared_instances WHERE id = $1 AND version = $2")
                    .bind(&d.id)
                    .bind(&d.version)
                    .execute(p)
                    .await?
                    .rows_affected());
            }
            Arrival::Upgraded { version, name } => {
                on!(&self.db, |p| sqlx::query(
                    "UPDATE declared_instances SET version = $1, name = $2 WHERE id = $3 AND version = $4"
                )
                .bind(version)
                .bind(name)
                .bind(&d.id)
                .bind(&d.version)
                .execute(p)
                .await?
                .rows_affected());
            }
        }
        Ok(())
    }

    /// A declared instance some node of this store ran, if any.
    pub async fn declared(&self, id: &str) -> Result<Option<DeclaredRow>, StoreError> {
        let sql = "SELECT id, app_id, team, version, name FROM declared_instances WHERE id = $1";
        let row: Option<(String, String, Option<String>, String, String)> =
            on!(&self.db, |p| sqlx::query_as(sql).bind(id).fetch_optional(p).await?);
        Ok(row.map(|(id, app_id, team, version, name)| DeclaredRow { id, app_id, team, version, name }))
    }
}
