//! Hearing of registry changes as they happen: on PostgreSQL every change
//! is announced on [`crate::CHANGES_CHANNEL`] when it commits (`NOTIFY`), so
//! the other nodes need not wait for their next poll. A notification can be
//! lost (a listener reconnecting, a pooler that cannot `LISTEN`): the poll
//! of the registry version stays the guarantee.

use sqlx::postgres::PgListener;

use crate::{Db, Store, StoreError, CHANGES_CHANNEL};

/// A listening connection to the store's change announcements.
pub struct Changes {
    listener: PgListener,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Changes")
    }
}

/// What a [`Changes`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// A change moved the registry to this version.
    Version(i64),
    /// The connection was lost and is being made again: announcements made
    /// meanwhile were missed.
    Reconnecting,
}

impl Store {
    /// Listen to the registry's change announcements; `None` on SQLite (one
    /// gateway per file: nothing to hear).
    pub async fn changes(&self) -> Result<Option<Changes>, StoreError> {
        let Db::Postgres(pool) = &self.db else { return Ok(None) };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Some(Changes { listener }))
    }
}

impl Changes {
    /// The next announcement. After [`Heard::Reconnecting`], the next call
    /// connects again (and listens again); an error means it could not.
    pub async fn next(&mut self) -> Result<Heard, StoreError> {
        loop {
            match self.listener.try_recv().await? {
                None => return Ok(Heard::Reconnecting),
                Some(n) => match n.payload().parse() {
                    Ok(v) => return Ok(Heard::Version(v)),
                    // Not one of ours (someone else's NOTIFY on the channel).
                    Err(_) => continue,
                },
            }
        }
    }
}
