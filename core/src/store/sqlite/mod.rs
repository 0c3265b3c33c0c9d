//! [`SqliteStore`]: a durable store in one SQLite file, shareable by processes.
//!
//! WAL journal, a busy timeout, and every write in a `BEGIN IMMEDIATE`
//! transaction: a deferred transaction that later upgrades to a write fails with
//! SQLITE_BUSY at once instead of waiting, which would surface as spurious errors
//! under multi-process load. One writer connection per store; reads go through a
//! small pool of connections, which WAL lets run beside the writer.
//!
//! By concern: this file opens the store and holds its connections (the writer,
//! the reader pool) and the [`Store`] impl; `options` is what a user sets,
//! `connection` configures one connection, `schema` migrates, `rows` converts
//! records, and `servers`, `actions`, `events`, `credentials` hold the statements of each table.
//! Every rusqlite failure becomes an [`Error::Storage`] here, through
//! [`storage`] / [`Context::context`], naming the operation that failed.

mod actions;
mod connection;
mod credentials;
mod events;
mod options;
mod rows;
mod schema;
mod servers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::error::{Error, Result};
use crate::identity::{Credential, CredentialDraft};
use crate::model::{Action, ActionCount, ActionFilter, Event, Server, Timestamp};
use crate::store::{ActionDraft, AuditReport, Change, ConflictGuard, PageRequest, Store};

pub use options::{Durability, SqliteOptions};
pub use schema::SCHEMA_VERSION;

/// A [`Store`] in a SQLite file. Several stores — in one process or many — may
/// open the same file at once.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// The Storage error for a rusqlite failure during `context` (an operation
/// name such as "create action"). The only mapping from a SQLite error.
fn storage(context: &str, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy(format!(
            "{context}: database is busy (another connection held the lock past the busy timeout)"
        )),
        _ => Error::Storage(format!("{context}: {e}")),
    }
}

/// `.context("operation")` on a rusqlite result: [`storage`] as a method.
trait Context<T> {
    /// The value, or the Storage error naming `what`.
    fn context(self, what: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| storage(what, e))
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection rolls its transaction back on drop, so
    // the connection itself is still sound.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path`, migrating an older
    /// schema forward. A database written by a newer actionq is refused with a
    /// Storage error and left untouched.
    pub fn open(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut writer = connection::connect(&path, options)?;
        // Check before anything writes to the file (even switching to WAL does).
        let found = schema::user_version(&writer)?;
        if found > SCHEMA_VERSION {
            return Err(schema::too_new(found));
        }
        let mode = connection::enable_wal(&writer, options.busy_timeout)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Storage(format!(
                "could not enable WAL journal on {} (got '{mode}')",
                path.display()
            )));
        }
        connection::configure(&writer, options)?;
        if found < SCHEMA_VERSION {
            schema::migrate(&mut writer)?;
        }
        let readers = (0..options.read_connections.max(1))
            .map(|_| {
                let conn = connection::connect(&path, options)?;
                connection::configure(&conn, options)?;
                conn.execute_batch("PRAGMA query_only = ON;")
                    .context("open reader")?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<_>>()?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Test instrumentation, hidden from the docs: `hook` runs inside every
    /// later migration in this process, once its write transaction holds the
    /// lock and before its first step, so that a crash test can tell a kill
    /// inside the migration from one before it. The first hook set stays.
    #[doc(hidden)]
    pub fn on_migration_start(hook: fn()) {
        let _ = schema::MIGRATION_START_HOOK.set(hook);
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer, committing
    /// only if it succeeds.
    fn write<T>(&self, what: &str, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(what)?;
        let out = f(&tx)?;
        tx.commit().context(what)?;
        Ok(out)
    }

    /// Runs `f` on the next reader of the pool.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let n = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = lock(&self.readers[n]);
        f(&conn)
    }

    /// A single-statement read: on the writer connection when no write is
    /// running, else on a reader. Any write to the file empties a reader's page
    /// cache, while the writer's stays warm with the pages it wrote itself, so a
    /// lookup that follows writes (the server check before every create) reads
    /// from memory. Never waits for the writer; kept to point lookups so a long
    /// listing can never hold up writes.
    fn read_point<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match self.writer.try_lock() {
            Ok(conn) => f(&conn),
            Err(std::sync::TryLockError::Poisoned(e)) => f(&e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => self.read(f),
        }
    }
}

impl Store for SqliteStore {
    fn insert_server(&self, server: &Server) -> Result<()> {
        self.write("insert server", |tx| servers::insert(tx, server))
    }

    fn get_server(&self, id: &str) -> Result<Option<Server>> {
        self.read_point(|conn| servers::get(conn, id, "get server"))
    }

    fn set_paused(&self, id: &str, paused_at: Option<Timestamp>) -> Result<Option<Server>> {
        self.write("pause server", |tx| servers::set_paused(tx, id, paused_at))
    }

    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
        self.write("create action", |tx| actions::insert(tx, draft, guard))
    }

    fn get_action(&self, id: i64) -> Result<Option<Action>> {
        self.read_point(|conn| actions::get(conn, id))
    }

    fn list_actions(&self, filter: &ActionFilter, page: PageRequest) -> Result<(Vec<Action>, u64)> {
        self.read(|conn| actions::list(conn, filter, page))
    }

    fn update_action(&self, id: i64, change: &Change) -> Result<Action> {
        self.write("update action", |tx| actions::update(tx, id, change))
    }

    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>> {
        self.write("claim action", |tx| {
            actions::claim_next(tx, server_id, change)
        })
    }

    fn expire_leases(&self, change: &Change) -> Result<Vec<Action>> {
        // Hosts sweep often (before reads and claims) and there is rarely
        // anything due: look first without taking the write lock. One that falls
        // due after this look is caught by the next sweep.
        if !self.read_point(|conn| actions::any_lease_due(conn, change))? {
            return Ok(Vec::new());
        }
        self.write("expire leases", |tx| actions::expire_leases(tx, change))
    }

    fn expire_approvals(
        &self,
        action_type: &str,
        created_until: Timestamp,
        change: &Change,
    ) -> Result<Vec<Action>> {
        // Like leases: swept before every read, rarely anything due.
        if !self.read_point(|conn| actions::any_approval_due(conn, action_type, created_until))? {
            return Ok(Vec::new());
        }
        self.write("expire approvals", |tx| {
            actions::expire_approvals(tx, action_type, created_until, change)
        })
    }

    fn events_since(&self, cursor: i64, limit: u32) -> Result<Vec<Event>> {
        self.read(|conn| events::since(conn, cursor, limit))
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        self.read(events::verify)
    }

    fn insert_credential(&self, draft: CredentialDraft) -> Result<Credential> {
        self.write("issue credential", |tx| credentials::insert(tx, draft))
    }

    fn list_credentials(&self) -> Result<Vec<Credential>> {
        self.read(credentials::list)
    }

    fn revoke_credential(&self, id: i64, at: Timestamp) -> Result<Option<Credential>> {
        self.write("revoke credential", |tx| credentials::revoke(tx, id, at))
    }

    fn find_credential(&self, secret_sha256: &[u8; 32]) -> Result<Option<Credential>> {
        // Every authenticated request comes here: a point read that never
        // waits for the writer. A revocation committed by any process is
        // visible to the next read (WAL readers see the latest commit).
        self.read_point(|conn| credentials::find(conn, secret_sha256))
    }

    fn list_servers(&self) -> Result<Vec<Server>> {
        self.read(servers::list)
    }

    fn count_actions(&self) -> Result<Vec<ActionCount>> {
        self.read(actions::count_per_server_status)
    }
}
