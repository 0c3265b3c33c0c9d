//! Which backend a location names: how every host opens a store.

use std::sync::Arc;

use crate::error::Result;
#[cfg(feature = "postgres")]
use crate::store::postgres::{PostgresOptions, PostgresStore};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{is_postgres_url, Store};

/// The store `location` names: a `postgresql://` or `postgres://` URL is a
/// PostgreSQL database (with the `postgres` feature; see `PostgresStore::open`
/// for what the URL may set), anything else the path of a SQLite file opened
/// with `sqlite`. On PostgreSQL, `sqlite.busy_timeout` is the lock timeout,
/// so a host's one busy-timeout setting means the same on both.
pub(crate) fn open_location(location: &str, sqlite: &SqliteOptions) -> Result<Arc<dyn Store>> {
    if is_postgres_url(location) {
        #[cfg(feature = "postgres")]
        {
            let options = PostgresOptions {
                lock_timeout: sqlite.busy_timeout,
                ..PostgresOptions::default()
            };
            return Ok(Arc::new(PostgresStore::open(location, &options)?));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(crate::Error::InvalidInput(
            "this build of actionq has no PostgreSQL support (cargo feature `postgres`)".into(),
        ));
    }
    Ok(Arc::new(SqliteStore::open(location, sqlite)?))
}
