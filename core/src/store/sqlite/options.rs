//! What a user can set when opening a [`SqliteStore`](super::SqliteStore).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::limits;

/// How hard the store works to keep acknowledged writes. Hosts name it by its
/// wire name (`"normal"`, `"full"`), parsed here with [`FromStr`].
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

impl Durability {
    /// Every setting, in the order of the C enum `aq_durability` (0, 1, ...).
    pub const ALL: [Durability; 2] = [Durability::Normal, Durability::Full];

    /// The wire name: `"normal"` or `"full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Normal => "normal",
            Durability::Full => "full",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = Error;

    /// `"normal"` or `"full"`; anything else is InvalidInput naming the choices.
    ///
    /// ```
    /// use actionq::Durability;
    /// assert_eq!("full".parse::<Durability>()?, Durability::Full);
    /// assert!("FULL".parse::<Durability>().is_err());
    /// # Ok::<(), actionq::Error>(())
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        Durability::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Durability::ALL.iter().map(|d| d.as_str()).collect();
                Error::InvalidInput(format!(
                    "Invalid durability '{}' (must be one of: {})",
                    s.escape_debug(),
                    names.join(", ")
                ))
            })
    }
}

/// Settings for [`SqliteStore::open`](super::SqliteStore::open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// See [`Durability`].
    pub durability: Durability,
    /// How long a write waits for another connection's lock before failing
    /// with a Storage error ([`limits::DEFAULT_BUSY_TIMEOUT`]); zero fails at once.
    pub busy_timeout: Duration,
    /// Read connections in the pool ([`limits::DEFAULT_READ_CONNECTIONS`], at least 1).
    pub read_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::default(),
            busy_timeout: limits::DEFAULT_BUSY_TIMEOUT,
            read_connections: limits::DEFAULT_READ_CONNECTIONS,
        }
    }
}
