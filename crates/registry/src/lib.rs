//! The plugin registry: installed plugin versions and their instances, and
//! the post-hook event queue, persisted in the store named by `[storage]
//! url` through sqlx — SQLite (the embedded default; `sqlite::memory:`
//! keeps nothing) or PostgreSQL (one store shared by several gateway
//! nodes). Schema migrations are versioned files in `migrations/<backend>/`,
//! applied at open. Both backends run the same SQL text (`$n` parameters,
//! which SQLite also reads); where they differ the code says why.
//!
//! The store only records; validation and lifecycle live in
//! `interpose-control`, which writes here once a change has succeeded.
//! Every registry write bumps one `registry_version` in the same
//! transaction, and only if it still has the version the writer last saw:
//! a node that missed another node's change is told so instead of
//! overwriting it (see [`Store::registry_version`]).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Connection;

mod changes;
mod declared;
mod entities;
mod events;
mod instances;
pub mod timers;
pub use changes::{Changes, Heard};
pub use declared::{Arrival, DeclaredRow};
pub use entities::{Condition, EntityError, EntityQuery, Page, DEFAULT_LIMIT, MAX_LIMIT};
pub use events::{EventRow, NewEvent, LEASE_MS};
pub use timers::TimerRow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage.url {url:?}: {why}")]
    Open { url: String, why: String },
    #[error("storage: {0}")]
    Db(sqlx::Error),
    /// No connection to the store came free in time (PostgreSQL down or
    /// unreachable, or every connection busy).
    #[error(
        "storage: the store is unreachable (no database connection within 5 s); the gateway keeps serving what it has"
    )]
    Unreachable,
    #[error("storage: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("storage: {0}")]
    Corrupt(String),
    /// The registry changed (on another node) since this node last read it.
    #[error(
        "the registry was changed by another gateway node (it is at version {found}, this node had read {expected}); nothing was changed, try again"
    )]
    Stale { expected: i64, found: i64 },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::PoolTimedOut => StoreError::Unreachable,
            e => StoreError::Db(e),
        }
    }
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
    /// The registry version of the instance's latest change.
    pub rev: i64,
}

/// A connection pool of either backend.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Run `$body` with `$p` bound to the pool of whichever backend `$db` is:
/// the body is compiled once per backend, so one SQL text serves both.
macro_rules! on {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite($p) => $body,
            $crate::Db::Postgres($p) => $body,
        }
    };
}
pub(crate) use on;

/// Opening a transaction that will write.
trait BeginWrite {
    type Database: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    /// Takes the write lock up front: a deferred transaction that reads first
    /// fails with "database is locked" instead of waiting when the event
    /// writer holds the lock at the moment it upgrades.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    /// Registry writes from all nodes take turns (a transaction-scoped
    /// advisory lock), so a version check and the write after it see the
    /// same registry.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7275110001)").execute(&mut *tx).await?;
        Ok(tx)
    }
}

/// The PostgreSQL channel each registry change is announced on, with the
/// new registry version as its payload.
pub const CHANGES_CHANNEL: &str = "interpose_registry";

/// Telling other nodes of a registry change, inside its write transaction.
trait Announce {
    async fn announce(&mut self, version: i64) -> Result<(), sqlx::Error>;
}

impl Announce for sqlx::SqliteConnection {
    /// One SQLite file has one gateway: nobody to tell.
    async fn announce(&mut self, _: i64) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl Announce for PgConnection {
    /// Delivered to listeners when the transaction commits, not before,
    /// and not at all if it rolls back.
    async fn announce(&mut self, version: i64) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(version.to_string())
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Post-hook events. SQLite: a second connection with a lighter sync
    /// (the same one for memory); PostgreSQL: the same pool.
    events: Db,
    /// Entity storage. SQLite: a few connections of their own (WAL readers
    /// run side by side; writers take turns) with the lighter sync; the
    /// same pool for memory. PostgreSQL: the same pool.
    data: Db,
    /// SQLite: entity records as last read or written here (one SQLite file
    /// has one gateway, so nothing else changes them); PostgreSQL: none.
    cache: Option<std::sync::Arc<entities::Cache>>,
    /// SQLite: entity and timer writes take turns here rather than in
    /// SQLite's busy handler, which sleeps between tries.
    data_writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Store {
    /// Open (creating the file and its folder, or nothing for PostgreSQL,
    /// whose database must exist) and migrate.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url).await
        } else {
            Self::open_sqlite(url).await
        }
    }

    async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let open_err = |why: String| StoreError::Open { url: redact(url), why };
        let options = PgConnectOptions::from_str(url).map_err(|e| open_err(e.to_string()))?;
        // One plain connection first: a pool would report any failure as
        // "timed out", hiding "connection refused" or "password authentication failed".
        let first = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options))
            .await
            .map_err(|_| open_err("cannot connect to PostgreSQL: no answer within 10 s".into()))?
            .map_err(|e| open_err(format!("cannot connect to PostgreSQL: {e}")))?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A store that went away fails admin changes and polls after 5 s
            // (`Unreachable`); requests never wait for it (events retry).
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| open_err(format!("cannot connect to PostgreSQL: {e}")))?;
        // sqlx holds an advisory lock while migrating: nodes starting
        // together migrate once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let db = Db::Postgres(pool);
        Ok(Store { events: db.clone(), data: db.clone(), db, cache: None, data_writer: None })
    }

    async fn open_sqlite(url: &str) -> Result<Store, StoreError> {
        let open_err = |why: String| StoreError::Open { url: url.to_string(), why };
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
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let (events, data) = if url.contains(":memory:") {
            (pool.clone(), pool.clone())
        } else {
            // WAL + NORMAL survives the process being killed (not a power cut).
            let opts = options.synchronous(SqliteSynchronous::Normal);
            let events = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await
                .map_err(|e| open_err(e.to_string()))?;
            let data = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await
                .map_err(|e| open_err(e.to_string()))?;
            (events, data)
        };
        // A SQLite file has one gateway: leases left by a killed process are
        // its own, so its events are due again at once.
        sqlx::query("UPDATE post_events SET locked_until = 0 WHERE locked_until <> 0").execute(&events).await?;
        Ok(Store {
            db: Db::Sqlite(pool),
            events: Db::Sqlite(events),
            data: Db::Sqlite(data),
            cache: Some(Default::default()),
            data_writer: Some(Default::default()),
        })
    }

    /// A turn to write entity records or timers (SQLite: one writer at a
    /// time in this process; PostgreSQL: no wait).
    pub(crate) async fn data_write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.data_writer {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
