//! The post-hook event queue: claim/ack/retry/bury on SQLite. Written on
//! its own connection with `synchronous = NORMAL` (WAL): an accepted event
//! survives the process being killed; registry changes keep `FULL`.

use sqlx::{Row, SqlitePool};

use crate::{Store, StoreError};

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub instance: String,
    pub function: String,
    pub kind: String,
    /// The hook request as JSON.
    pub payload: String,
}

#[derive(Debug, Clone)]
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

fn row(r: sqlx::sqlite::SqliteRow) -> EventRow {
    EventRow {
        id: r.get("id"),
        instance: r.get("instance"),
        function: r.get("function"),
        kind: r.get("kind"),
        payload: r.get("payload"),
        attempts: r.get("attempts"),
        last_error: r.get("last_error"),
        created_at: r.get("created_at"),
    }
}

impl Store {
    fn events_pool(&self) -> &SqlitePool {
        self.events.as_ref().unwrap_or(&self.pool)
    }

    /// Store events in one transaction (the caller acknowledges after this).
    pub async fn enqueue(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let mut tx = self.events_pool().begin().await?;
        let now = crate::now();
        for e in events {
            sqlx::query(
                "INSERT INTO post_events (instance, function, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)",
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
        Ok(())
    }

    /// For each instance, its oldest pending event if it is due: delivery is
    /// in order per instance, one event at a time.
    pub async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM post_events e WHERE state = 'pending' AND next_at <= ?
             AND id = (SELECT MIN(id) FROM post_events WHERE state = 'pending' AND instance = e.instance)
             ORDER BY id LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(self.events_pool())
        .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// Delivered: forget it.
    pub async fn delivered(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM post_events WHERE id = ?").bind(id).execute(self.events_pool()).await?;
        Ok(())
    }

    /// Failed: try again at `next_at_ms`.
    pub async fn retry(&self, id: i64, attempts: i64, next_at_ms: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE post_events SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?")
            .bind(attempts)
            .bind(next_at_ms)
            .bind(error)
            .bind(id)
            .execute(self.events_pool())
            .await?;
        Ok(())
    }

    /// Failed for good: to the dead-letter list.
    pub async fn bury(&self, id: i64, attempts: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE post_events SET state = 'dead', attempts = ?, last_error = ? WHERE id = ?")
            .bind(attempts)
            .bind(error)
            .bind(id)
            .execute(self.events_pool())
            .await?;
        Ok(())
    }

    pub async fn dead_events(&self) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM post_events WHERE state = 'dead' ORDER BY id")
            .fetch_all(self.events_pool())
            .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// Put a dead event back in the queue; false if there is no such dead event.
    pub async fn replay(&self, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE post_events SET state = 'pending', attempts = 0, next_at = 0 WHERE id = ? AND state = 'dead'",
        )
        .bind(id)
        .execute(self.events_pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// (pending, dead) counts.
    pub async fn event_counts(&self) -> Result<(i64, i64), StoreError> {
        let r = sqlx::query(
            "SELECT COALESCE(SUM(state = 'pending'), 0) AS pending, COALESCE(SUM(state = 'dead'), 0) AS dead FROM post_events",
        )
        .fetch_one(self.events_pool())
        .await?;
        Ok((r.get("pending"), r.get("dead")))
    }
}
