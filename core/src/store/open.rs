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
/// with `sqlite`. PostgreSQL takes its own settings from the URL's query
/// (`lock_timeout`, `pool_size`, ...); a SQLite-only setting given for it is
/// InvalidInput rather than silently read as something else.
pub(crate) fn open_location(location: &str, sqlite: &SqliteOptions) -> Result<Arc<dyn Store>> {
    if is_postgres_url(location) {
        #[cfg(feature = "postgres")]
        {
            PostgresOptions::refuse_sqlite_settings(sqlite)?;
            return Ok(Arc::new(PostgresStore::open(
                location,
                &PostgresOptions::default(),
            )?));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(crate::Error::InvalidInput(
            "this build of actionq has no PostgreSQL support (cargo feature `postgres`)".into(),
        ));
    }
    Ok(Arc::new(SqliteStore::open(location, sqlite)?))
}
