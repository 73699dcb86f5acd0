//! The post-hook event queue: enqueue, claim (with a lease), then
//! delivered / retry / bury. On SQLite it is written on its own connection
//! with `synchronous = NORMAL` (WAL): an accepted event survives the
//! process being killed; registry changes keep `FULL`. On PostgreSQL several
//! nodes claim from one queue; a lease returns the events of a node that
//! died mid-delivery to the others.

use crate::{on, Store, StoreError};

/// How long a claimed event stays with the node that claimed it; a node
/// still delivering renews it every half lease ([`Store::hold`]). After it,
/// another node may deliver the event again (at least once).
pub const LEASE_MS: i64 = 60_000;

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub instance: String,
    pub function: String,
    pub kind: String,
    /// The hook request as JSON.
    pub payload: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub instance: String,
    pub function: String,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

const EVENT_COLUMNS: &str = "id, instance, function, kind, payload, attempts, last_error, created_at";

impl Store {
    /// Store events in one transaction (the caller acknowledges after this).
    pub async fn enqueue(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let now = crate::now();
        on!(&self.events, |p| {
            let mut tx = p.begin().await?;
            for e in events {
                sqlx::query(
                    "INSERT INTO post_events (instance, function, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&e.instance)
                .bind(&e.function)
                .bind(&e.kind)
                .bind(&e.payload)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Take up to `limit` due events for delivery, each the oldest pending
    /// event of its instance (delivery is in order per instance, one event
    /// at a time), and hold them for [`LEASE_MS`]. Oldest first. Events of
    /// the instances in `skip` are left to other nodes.
    pub async fn claim(&self, now_ms: i64, limit: i64, skip: &[String]) -> Result<Vec<EventRow>, StoreError> {
        // PostgreSQL: nodes claiming at the same moment skip each other's rows
        // instead of waiting or taking them twice. SQLite has one writer.
        // `skip` goes in as one JSON array on either.
        let (lock, skipped) = match self.events {
            crate::Db::Postgres(_) => ("FOR UPDATE SKIP LOCKED", "SELECT jsonb_array_elements_text($4::jsonb)"),
            crate::Db::Sqlite(_) => ("", "SELECT value FROM json_each($4)"),
        };
        let sql = format!(
            "UPDATE post_events SET locked_until = $2 WHERE id IN (
               SELECT e.id FROM post_events e
               WHERE e.state = 'pending' AND e.next_at <= $1 AND e.locked_until <= $1
                 AND e.id = (SELECT MIN(id) FROM post_events WHERE state = 'pending' AND instance = e.instance)
                 AND e.instance NOT IN ({skipped})
               ORDER BY e.id LIMIT $3 {lock})
             RETURNING {EVENT_COLUMNS}"
        );
        let skip = serde_json::to_string(skip).unwrap_or_else(|_| "[]".into());
        let mut rows: Vec<EventRow> = on!(&self.events, |p| sqlx::query_as(&sql)
            .bind(now_ms)
            .bind(now_ms + LEASE_MS)
            .bind(limit)
            .bind(&skip)
            .fetch_all(p)
            .await?);
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Still delivering: keep holding the event until `until_ms` (a call
    /// longer than the lease renews it, so no other node takes it meanwhile).
    pub async fn hold(&self, id: i64, until_ms: i64) -> Result<(), StoreError> {
        let sql = "UPDATE post_events SET locked_until = $1 WHERE id = $2";
        on!(&self.events, |p| sqlx::query(sql).bind(until_ms).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Not for this node (it does not run the event's instance): give the
    /// claim back untouched, for a node that does.
    pub async fn release(&self, id: i64) -> Result<(), StoreError> {
        let sql = "UPDATE post_events SET locked_until = 0 WHERE id = $1";
        on!(&self.events, |p| sqlx::query(sql).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Whether other gateway nodes may share this store (PostgreSQL); a
    /// SQLite file has one.
    pub fn is_shared(&self) -> bool {
        matches!(self.events, crate::Db::Postgres(_))
    }

    /// Delivered: forget it.
    pub async fn delivered(&self, id: i64) -> Result<(), StoreError> {
        on!(&self.events, |p| sqlx::query("DELETE FROM post_events WHERE id = $1")
            .bind(id)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Failed: try again at `next_at_ms` (on whichever node claims it then).
    pub async fn retry(&self, id: i64, attempts: i64, next_at_ms: i64, error: &str) -> Result<(), StoreError> {
        let sql = "UPDATE post_events SET attempts = $1, next_at = $2, last_error = $3, locked_until = 0 WHERE id = $4";
        on!(&self.events, |p| sqlx::query(sql)
            .bind(attempts)
            .bind(next_at_ms)
            .bind(error)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Failed for good: to the dead-letter list.
    pub async fn bury(&self, id: i64, attempts: i64, error: &str) -> Result<(), StoreError> {
        let sql =
            "UPDATE post_events SET state = 'dead', attempts = $1, last_error = $2, locked_until = 0 WHERE id = $3";
        on!(&self.events, |p| sqlx::query(sql).bind(attempts).bind(error).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    pub async fn dead_events(&self) -> Result<Vec<EventRow>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM post_events WHERE state = 'dead' ORDER BY id");
        Ok(on!(&self.events, |p| sqlx::query_as(&sql).fetch_all(p).await?))
    }

    /// Put a dead event back in the queue; false if there is no such dead event.
    pub async fn replay(&self, id: i64) -> Result<bool, StoreError> {
        let sql = "UPDATE post_events SET state = 'pending', attempts = 0, next_at = 0, locked_until = 0
                   WHERE id = $1 AND state = 'dead'";
        let r = on!(&self.events, |p| sqlx::query(sql).bind(id).execute(p).await?.rows_affected());
        Ok(r == 1)
    }

    /// Pending events by hook: (instance, function, kind, count).
    pub async fn pending_by_hook(&self) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        let sql = "SELECT instance, function, kind, COUNT(*) FROM post_events WHERE state = 'pending'
                   GROUP BY instance, function, kind";
        Ok(on!(&self.events, |p| sqlx::query_as(sql).fetch_all(p).await?))
    }

    /// (pending, dead) counts.
    pub async fn event_counts(&self) -> Result<(i64, i64), StoreError> {
        // CASE, not SUM(state = 'pending'): PostgreSQL does not sum booleans.
        let sql = "SELECT COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0),
                          COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0)
                   FROM post_events";
        Ok(on!(&self.events, |p| sqlx::query_as(sql).fetch_one(p).await?))
    }
}
