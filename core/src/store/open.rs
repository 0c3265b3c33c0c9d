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

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Durability, ErrorKind};

    /// A host's SQLite setting given with a PostgreSQL URL is refused before
    /// any connection (this port has no server: without the refusal the open
    /// would fail as a Storage error instead), never read as a PostgreSQL one.
    #[test]
    fn a_sqlite_setting_for_a_postgres_url_is_refused_before_connecting() {
        let url = "postgresql://actionq@127.0.0.1:1/actionq";
        let settings = [
            SqliteOptions {
                busy_timeout: Duration::from_secs(2),
                ..SqliteOptions::default()
            },
            SqliteOptions {
                durability: Durability::Full,
                ..SqliteOptions::default()
            },
        ];
        for (sqlite, name) in settings.iter().zip(["busy_timeout", "durability"]) {
            let e = open_location(url, sqlite).err().expect("refused");
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains(name), "{e}");
        }
        let e = open_location(url, &SqliteOptions::default())
            .err()
            .expect("no server");
        assert_eq!(
            e.kind(),
            ErrorKind::Storage,
            "defaults pass to the connection: {e}"
        );
    }
}
