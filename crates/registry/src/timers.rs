//! Timer tasks' schedule, shared by every node on the store: when each
//! instance's timer is due next, and a lease on the tick being run, so one
//! node runs it. A node claims a due tick by moving `next_at` on and taking
//! the lease in one conditional update; a node that dies mid-run leaves a
//! lease that runs out, and the schedule goes on.

use crate::{on, Store, StoreError};

/// One instance's timer as the store has it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimerRow {
    pub instance: String,
    pub timer: String,
    pub schedule: String,
    /// Seconds since the epoch.
    pub next_at: i64,
    /// Milliseconds since the epoch; 0 when no node runs it.
    pub lease_until: i64,
    pub runs: i64,
    pub failures: i64,
    /// When the last run started (seconds), how long it took, and why it failed.
    pub last_at: Option<i64>,
    pub last_ms: Option<i64>,
    pub last_error: Option<String>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// Make sure `timer` of `instance` has a schedule row: a new one is
    /// first due at `first`; one planned by another schedule (the plugin
    /// was upgraded) is due at `first` from now on.
    pub async fn plan_timer(&self, instance: &str, timer: &str, schedule: &str, first: i64) -> Result<(), StoreError> {
        let _turn = self.data_write_turn().await;
        on!(&self.data, |p| sqlx::query(
            "INSERT INTO timer_runs (instance, timer, schedule, next_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (instance, timer) DO UPDATE SET schedule = excluded.schedule, next_at = excluded.next_at
             WHERE timer_runs.schedule <> excluded.schedule",
        )
        .bind(instance)
        .bind(timer)
        .bind(schedule)
        .bind(first)
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The timers rows of these instances (all when `instances` is empty).
    pub async fn timers(&self, instance: Option<&str>) -> Result<Vec<TimerRow>, StoreError> {
        let rows = on!(&self.data, |p| sqlx::query_as::<_, TimerRow>(
            "SELECT instance, timer, schedule, next_at, lease_until, runs, failures, last_at, last_ms, last_error
             FROM timer_runs WHERE $1 IS NULL OR instance = $1 ORDER BY instance, timer",
        )
        .bind(instance)
        .fetch_all(p)
        .await?);
        Ok(rows)
    }

    /// Take the tick due at `due` (seconds) if no node has: it is then due
    /// next at `next`, and this node holds it until `lease_until` (ms).
    /// `false` when another node took it first.
    pub async fn claim_timer(
        &self,
        instance: &str,
        timer: &str,
        due: i64,
        next: i64,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.data_write_turn().await;
        let n = on!(&self.data, |p| sqlx::query(
            "UPDATE timer_runs SET next_at = $1, lease_until = $2
             WHERE instance = $3 AND timer = $4 AND next_at = $5 AND lease_until < $6",
        )
        .bind(next)
        .bind(lease_until)
        .bind(instance)
        .bind(timer)
        .bind(due)
        .bind(now_ms())
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Take the timer now, out of schedule (`invoke timer`): `false` while a
    /// node runs it.
    pub async fn claim_timer_now(&self, instance: &str, timer: &str, lease_until: i64) -> Result<bool, StoreError> {
        let _turn = self.data_write_turn().await;
        let n = on!(&self.data, |p| sqlx::query(
            "UPDATE timer_runs SET lease_until = $1 WHERE instance = $2 AND timer = $3 AND lease_until < $4",
        )
        .bind(lease_until)
        .bind(instance)
        .bind(timer)
        .bind(now_ms())
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Record a run that started at `at` (seconds) and give the lease back.
    pub async fn timer_ran(
        &self,
        instance: &str,
        timer: &str,
        at: i64,
        ms: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let _turn = self.data_write_turn().await;
        on!(&self.data, |p| sqlx::query(
            "UPDATE timer_runs SET lease_until = 0, runs = runs + 1, failures = failures + $1,
                 last_at = $2, last_ms = $3, last_error = $4
             WHERE instance = $5 AND timer = $6",
        )
        .bind(i64::from(error.is_some()))
        .bind(at)
        .bind(ms)
        .bind(error)
        .bind(instance)
        .bind(timer)
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Forget `instance`'s timers (its uninstall).
    pub async fn drop_timers(&self, instance: &str) -> Result<(), StoreError> {
        let _turn = self.data_write_turn().await;
        on!(&self.data, |p| sqlx::query("DELETE FROM timer_runs WHERE instance = $1")
            .bind(instance)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }
}
