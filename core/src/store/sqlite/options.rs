//! What a user can set when opening a [`SqliteStore`](super::SqliteStore).

use std::time::Duration;

/// How hard the store works to keep acknowledged writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: nothing acknowledged is lost when the
    /// process dies; the last transactions may be lost on power failure.
    #[default]
    Normal,
    /// WAL with `synchronous=FULL`: also survives power loss, at the cost of an
    /// fsync per commit.
    Full,
}

/// Settings for [`SqliteStore::open`](super::SqliteStore::open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// See [`Durability`].
    pub durability: Durability,
    /// How long a write waits for another connection's lock before failing
    /// with a Storage error (default 10 s).
    pub busy_timeout: Duration,
    /// Read connections in the pool (default 4, at least 1).
    pub read_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(10),
            read_connections: 4,
        }
    }
}
