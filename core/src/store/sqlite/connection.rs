//! One configured connection: busy handling, pragmas, the WAL switch.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode};

use super::options::{Durability, SqliteOptions};
use super::storage;
use crate::error::Result;

/// Longest single sleep while waiting for a lock.
const BUSY_MAX_PAUSE: Duration = Duration::from_millis(1);

/// Prepared statements kept per connection. Every statement the store runs is
/// a fixed text (listings have one per filter combination, with the page bound
/// as parameters), about 30 in all: they must all fit, or the cache evicts the
/// ones it is about to need.
const STATEMENT_CACHE: usize = 64;

/// Creates the database file, if it does not exist yet, readable and
/// writable by its owner only (0600): it holds every command's output.
/// SQLite gives its `-wal` and `-shm` files the mode of the database file,
/// so they are 0600 from their creation too. Created here, before SQLite
/// opens it, rather than narrowed after: there is no moment when the file
/// exists with wider permissions. Any failure is left to SQLite's open to
/// report (an existing file keeps its mode).
fn create_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if path.as_os_str() != ":memory:" && !path.as_os_str().is_empty() {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Opens `path` with the store's busy handler and statement cache.
pub(super) fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    create_private(path);
    let mut conn = Connection::open(path).map_err(|e| storage("open", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let timeout = options.busy_timeout;
    let mut started = Instant::now();
    // Like `busy_timeout`, but polls the lock every few microseconds at first
    // instead of sleeping 1 ms, 2 ms, 5 ms, ...: a writer holds the WAL write
    // lock for tens of microseconds, so SQLite's default back-off leaves the
    // lock idle most of the time another process is waiting for it.
    conn.busy_handler(Some(move |count: i32| {
        if count == 0 {
            started = Instant::now();
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return false;
        }
        match count {
            0..=2 => std::thread::yield_now(),
            n => {
                let pause = Duration::from_micros(10 << (n - 3).min(7)).min(BUSY_MAX_PAUSE);
                std::thread::sleep(pause.min(timeout - waited));
            }
        }
        true
    }))
    .map_err(|e| storage("open", e))?;
    Ok(conn)
}

/// Per-connection settings: foreign keys, durability, planner stability.
pub(super) fn configure(conn: &Connection, options: &SqliteOptions) -> Result<()> {
    let synchronous = match options.durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous};"
    ))
    .map_err(|e| storage("configure", e))?;
    // Query planner stability: plans never depend on bound values. Without it
    // SQLite marks most of our statements (ORDER BY, MIN, ranges) to be compiled
    // again whenever a parameter changes, i.e. on nearly every call, which
    // defeats the statement cache; with it they are compiled once. The plans
    // are the same (no ANALYZE statistics; partial-index conditions are written
    // as literals in the statements that use them).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| storage("configure", e))?;
    Ok(())
}

/// Switches to WAL, retrying while another connection holds a lock. SQLite
/// waits in the busy handler for a plain reader, but when two connections
/// both switch at once it refuses to (each holds the shared lock the other's
/// exclusive lock waits for: a deadlock), so several processes opening a fresh
/// file at once would otherwise fail at once.
pub(super) fn enable_wal(conn: &Connection, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Ok(mode) => return Ok(mode),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(storage("enable WAL", e)),
        }
    }
}
