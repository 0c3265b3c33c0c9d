//! [`SqliteStore`]: a durable store in one SQLite file, shareable by processes.
//!
//! WAL journal, a busy timeout, and every write in a `BEGIN IMMEDIATE`
//! transaction: a deferred transaction that later upgrades to a write fails with
//! SQLITE_BUSY at once instead of waiting, which would surface as spurious errors
//! under multi-process load. One writer connection per store; reads go through a
//! small pool of connections, which WAL lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::DateTime;
use rusqlite::config::DbConfig;
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior,
};

use crate::error::{Error, Result};
use crate::model::{Action, ActionFilter, ActionStatus, Event, Server, Timestamp};
use crate::store::{ActionDraft, Change, ConflictGuard, EventDraft, PageRequest, Store};

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

/// Settings for [`SqliteStore::open`].
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

/// Forward migrations; entry `n` takes a database from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: servers, actions, audit events.
    r#"
    CREATE TABLE servers (
        id          TEXT PRIMARY KEY NOT NULL,
        hostname    TEXT,
        is_paused   INTEGER NOT NULL DEFAULT 0,
        paused_at   INTEGER,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE actions (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        server_id         TEXT NOT NULL REFERENCES servers(id),
        action_type       TEXT NOT NULL,
        status            TEXT NOT NULL,
        service_name      TEXT,
        command           TEXT NOT NULL,
        argv              TEXT NOT NULL,
        env               TEXT NOT NULL,
        alert_id          INTEGER,
        created_at        INTEGER NOT NULL,
        created_by        TEXT NOT NULL,
        approved_at       INTEGER,
        approved_by       TEXT,
        rejected_at       INTEGER,
        rejected_by       TEXT,
        rejection_reason  TEXT,
        cancelled_at      INTEGER,
        cancelled_by      TEXT,
        executed_at       INTEGER,
        lease_expires_at  INTEGER,
        lease_token       TEXT,
        completed_at      INTEGER,
        exit_code         INTEGER,
        stdout            TEXT,
        stderr            TEXT
    );
    CREATE INDEX actions_by_created ON actions(created_at, id);
    CREATE INDEX actions_by_server ON actions(server_id, created_at, id);
    CREATE INDEX actions_by_server_status ON actions(server_id, status, created_at, id);
    CREATE INDEX actions_by_status ON actions(status, created_at, id);
    CREATE TABLE action_events (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id    INTEGER NOT NULL REFERENCES actions(id),
        from_status  TEXT,
        to_status    TEXT NOT NULL,
        actor        TEXT NOT NULL,
        at           INTEGER NOT NULL,
        detail       TEXT
    );
    "#,
    // v2: per-(server, type, status) totals kept in step with every write, so a
    // listing's `total` never scans; partial indexes for conflicts and expiry.
    r#"
    CREATE TABLE action_counts (
        server_id    TEXT NOT NULL,
        action_type  TEXT NOT NULL,
        status       TEXT NOT NULL,
        n            INTEGER NOT NULL,
        PRIMARY KEY (server_id, action_type, status)
    ) WITHOUT ROWID;
    INSERT INTO action_counts (server_id, action_type, status, n)
        SELECT server_id, action_type, status, COUNT(*) FROM actions
        GROUP BY server_id, action_type, status;
    CREATE INDEX actions_active ON actions(server_id, action_type)
        WHERE status IN ('pending', 'approved', 'executing');
    CREATE INDEX actions_leases ON actions(lease_expires_at)
        WHERE status = 'executing';
    "#,
];

/// The schema version this library writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A [`Store`] in a SQLite file. Several stores — in one process or many — may
/// open the same file at once.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

fn storage(context: &str, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Storage(format!(
            "{context}: database is busy (another connection held the lock past the busy timeout)"
        )),
        _ => Error::Storage(format!("{context}: {e}")),
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection rolls its transaction back on drop, so
    // the connection itself is still sound.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let mut conn = Connection::open(path).map_err(|e| storage("open", e))?;
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

/// Longest single sleep while waiting for a lock.
const BUSY_MAX_PAUSE: Duration = Duration::from_millis(1);

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<()> {
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

fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| storage("read schema version", e))
}

fn too_new(found: i64) -> Error {
    Error::Storage(format!(
        "database schema version {found} is newer than this library supports ({SCHEMA_VERSION}); upgrade actionq (the file was not modified)"
    ))
}

/// Switches to WAL, retrying while another connection holds a lock. SQLite
/// does not call the busy handler for this switch (it needs an exclusive lock,
/// and waiting for one while holding a shared lock could deadlock), so several
/// processes opening a fresh file at once would otherwise fail at once.
fn enable_wal(conn: &Connection, timeout: Duration) -> Result<String> {
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

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| storage("migrate", e))?;
    // Re-read inside the write lock: another process may have migrated meanwhile.
    let found = user_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(too_new(found));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)
            .map_err(|e| storage(&format!("migrate to version {}", version + 1), e))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| storage("migrate", e))?;
    tx.commit().map_err(|e| storage("migrate", e))
}

fn ts(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

fn required_micros(v: i64) -> rusqlite::Result<Timestamp> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            format!("timestamp {v} out of range").into(),
        )
    })
}

fn from_micros(v: Option<i64>) -> rusqlite::Result<Option<Timestamp>> {
    v.map(required_micros).transpose()
}

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn status_from(s: String) -> rusqlite::Result<ActionStatus> {
    s.parse::<ActionStatus>().map_err(conversion)
}

/// The columns `server_from_row` reads, in order.
macro_rules! server_columns {
    () => {
        "id, hostname, is_paused, paused_at, created_at"
    };
}

fn server_from_row(r: &Row<'_>) -> rusqlite::Result<Server> {
    Ok(Server {
        id: r.get(0)?,
        hostname: r.get(1)?,
        is_paused: r.get(2)?,
        paused_at: from_micros(r.get(3)?)?,
        created_at: required_micros(r.get(4)?)?,
    })
}

/// The columns `action_from_row` reads, in order (a macro so statements can be
/// built with `concat!` at compile time instead of formatted on every call).
macro_rules! action_columns {
    () => {
        "id, server_id, action_type, status, service_name, command, argv, env, \
        alert_id, created_at, created_by, approved_at, approved_by, rejected_at, rejected_by, \
        rejection_reason, cancelled_at, cancelled_by, executed_at, lease_expires_at, completed_at, \
        exit_code, stdout, stderr, lease_token"
    };
}

const ACTION_COLUMNS: &str = action_columns!();

/// One action by id.
const SELECT_ACTION_SQL: &str =
    concat!("SELECT ", action_columns!(), " FROM actions WHERE id = ?1");

/// Pending actions of a server with the given type and command, oldest first.
const PENDING_DUPLICATES_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = ?1 AND status = 'pending' AND action_type = ?2 \
    AND command = ?3 ORDER BY id"
);

/// Pending, approved or executing actions of a server with the given type, oldest first.
const ACTIVE_OF_TYPE_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = ?1 AND action_type = ?2 \
    AND status IN ('pending', 'approved', 'executing') ORDER BY id"
);

/// Whether any executing action's lease has run out by ?1.
const ANY_LEASE_DUE_SQL: &str =
    "SELECT 1 FROM actions WHERE status = 'executing' AND lease_expires_at <= ?1 LIMIT 1";

/// One server by id.
const SELECT_SERVER_SQL: &str =
    concat!("SELECT ", server_columns!(), " FROM servers WHERE id = ?1");

fn action_from_row(r: &Row<'_>) -> rusqlite::Result<Action> {
    let argv: String = r.get(6)?;
    let env: String = r.get(7)?;
    Ok(Action {
        id: r.get(0)?,
        server_id: r.get(1)?,
        action_type: r.get(2)?,
        status: status_from(r.get(3)?)?,
        service_name: r.get(4)?,
        command: r.get(5)?,
        argv: serde_json::from_str(&argv).map_err(conversion)?,
        env: serde_json::from_str(&env).map_err(conversion)?,
        alert_id: r.get(8)?,
        created_at: required_micros(r.get(9)?)?,
        created_by: r.get(10)?,
        approved_at: from_micros(r.get(11)?)?,
        approved_by: r.get(12)?,
        rejected_at: from_micros(r.get(13)?)?,
        rejected_by: r.get(14)?,
        rejection_reason: r.get(15)?,
        cancelled_at: from_micros(r.get(16)?)?,
        cancelled_by: r.get(17)?,
        executed_at: from_micros(r.get(18)?)?,
        lease_expires_at: from_micros(r.get(19)?)?,
        completed_at: from_micros(r.get(20)?)?,
        exit_code: r.get(21)?,
        stdout: r.get(22)?,
        stderr: r.get(23)?,
    })
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        action_id: r.get(1)?,
        from_status: r
            .get::<_, Option<String>>(2)?
            .map(status_from)
            .transpose()?,
        to_status: status_from(r.get(3)?)?,
        by: r.get(4)?,
        at: required_micros(r.get(5)?)?,
        detail: r.get(6)?,
    })
}

fn load_action(tx: &Transaction<'_>, id: i64) -> Result<Option<(Action, Option<String>)>> {
    tx.prepare_cached(SELECT_ACTION_SQL)?
        .query_row([id], |r| Ok((action_from_row(r)?, r.get(24)?)))
        .optional()
        .map_err(|e| storage("load action", e))
}

fn log_event(tx: &Transaction<'_>, event: &EventDraft) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO action_events (action_id, from_status, to_status, actor, at, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        event.action_id,
        event.from_status.map(ActionStatus::as_str),
        event.to_status.as_str(),
        event.by,
        ts(event.at),
        event.detail
    ])
    .map_err(|e| storage("log event", e))?;
    Ok(())
}

fn count(tx: &Transaction<'_>, action: &Action, status: ActionStatus, delta: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO action_counts (server_id, action_type, status, n) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (server_id, action_type, status) DO UPDATE SET n = n + excluded.n",
    )?
    .execute(params![
        action.server_id,
        action.action_type,
        status.as_str(),
        delta
    ])
    .map_err(|e| storage("count", e))?;
    Ok(())
}

/// Applies `change` to the loaded action and writes back row, event and counts.
fn apply_change(tx: &Transaction<'_>, id: i64, change: &Change) -> Result<Action> {
    let (mut action, mut token) =
        load_action(tx, id)?.ok_or_else(|| Error::action_not_found(id))?;
    let from = action.status;
    let Some(event) = change.apply(&mut action, &mut token)? else {
        tx.prepare_cached("UPDATE actions SET lease_expires_at = ?2 WHERE id = ?1")?
            .execute(params![id, action.lease_expires_at.map(ts)])
            .map_err(|e| storage("update action", e))?;
        return Ok(action);
    };
    tx.prepare_cached(
        "UPDATE actions SET status = ?2, approved_at = ?3, approved_by = ?4, rejected_at = ?5, \
         rejected_by = ?6, rejection_reason = ?7, cancelled_at = ?8, cancelled_by = ?9, \
         executed_at = ?10, lease_expires_at = ?11, lease_token = ?12, completed_at = ?13, \
         exit_code = ?14, stdout = ?15, stderr = ?16 WHERE id = ?1",
    )?
    .execute(params![
        id,
        action.status.as_str(),
        action.approved_at.map(ts),
        action.approved_by,
        action.rejected_at.map(ts),
        action.rejected_by,
        action.rejection_reason,
        action.cancelled_at.map(ts),
        action.cancelled_by,
        action.executed_at.map(ts),
        action.lease_expires_at.map(ts),
        token,
        action.completed_at.map(ts),
        action.exit_code,
        action.stdout,
        action.stderr,
    ])
    .map_err(|e| storage("update action", e))?;
    count(tx, &action, from, -1)?;
    count(tx, &action, action.status, 1)?;
    log_event(tx, &event)?;
    Ok(action)
}

/// The oldest stored action that `guard` says blocks `draft`, as every store reports it.
fn oldest_collision(
    tx: &Transaction<'_>,
    draft: &ActionDraft,
    guard: &ConflictGuard,
) -> Result<Option<i64>> {
    let mut oldest: Option<i64> = None;
    // Candidates come ordered by id, so the first collision of a query is its oldest.
    let mut scan = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<()> {
        let mut candidates = tx.prepare_cached(sql)?;
        let mut rows = candidates.query(args)?;
        while let Some(row) = rows.next()? {
            let existing = action_from_row(row)?;
            if guard.collides(draft, &existing) {
                oldest = Some(oldest.map_or(existing.id, |o| o.min(existing.id)));
                break;
            }
        }
        Ok(())
    };
    match guard {
        ConflictGuard::None => {}
        // Only a pending action with the same command can collide: ask for exactly
        // those, not for every active action of the type, which grows with the queue.
        ConflictGuard::PendingDuplicate { .. } => scan(
            PENDING_DUPLICATES_SQL,
            params![draft.server_id, draft.action_type, draft.command],
        )?,
        ConflictGuard::ActiveInGroup { action_types, .. } => {
            for action_type in action_types {
                scan(ACTIVE_OF_TYPE_SQL, params![draft.server_id, action_type])?;
            }
        }
    }
    Ok(oldest)
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path`, migrating an older
    /// schema forward. A database written by a newer actionq is refused with a
    /// Storage error and left untouched.
    pub fn open(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut writer = connect(&path, options)?;
        // Check before anything writes to the file (even switching to WAL does).
        let found = user_version(&writer)?;
        if found > SCHEMA_VERSION {
            return Err(too_new(found));
        }
        let mode = enable_wal(&writer, options.busy_timeout)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Storage(format!(
                "could not enable WAL journal on {} (got '{mode}')",
                path.display()
            )));
        }
        configure(&writer, options)?;
        if found < SCHEMA_VERSION {
            migrate(&mut writer)?;
        }
        let readers = (0..options.read_connections.max(1))
            .map(|_| {
                let conn = connect(&path, options)?;
                configure(&conn, options)?;
                conn.execute_batch("PRAGMA query_only = ON;")
                    .map_err(|e| storage("open reader", e))?;
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

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write<T>(&self, what: &str, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| storage(what, e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| storage(what, e))?;
        Ok(out)
    }

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
        self.write("insert server", |tx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO servers (id, hostname, is_paused, paused_at, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    server.id,
                    server.hostname,
                    server.is_paused,
                    server.paused_at.map(ts),
                    ts(server.created_at)
                ])
                .map_err(|e| storage("insert server", e))?;
            if inserted == 0 {
                return Err(Error::conflict(format!(
                    "Server '{}' already exists",
                    server.id
                )));
            }
            Ok(())
        })
    }

    fn get_server(&self, id: &str) -> Result<Option<Server>> {
        self.read_point(|conn| {
            conn.prepare_cached(SELECT_SERVER_SQL)?
                .query_row([id], server_from_row)
                .optional()
                .map_err(|e| storage("get server", e))
        })
    }

    fn set_paused(&self, id: &str, paused_at: Option<Timestamp>) -> Result<Option<Server>> {
        self.write("pause server", |tx| {
            tx.prepare_cached(
                "UPDATE servers SET is_paused = ?2, paused_at = ?3 WHERE id = ?1 AND is_paused != ?2",
            )?
            .execute(params![id, paused_at.is_some(), paused_at.map(ts)])
            .map_err(|e| storage("pause server", e))?;
            tx.prepare_cached(SELECT_SERVER_SQL)?
                .query_row([id], server_from_row)
                .optional()
                .map_err(|e| storage("pause server", e))
        })
    }

    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
        self.write("create action", |tx| {
            let server = tx
                .prepare_cached(SELECT_SERVER_SQL)?
                .query_row([&draft.server_id], server_from_row)
                .optional()
                .map_err(|e| storage("create action", e))?
                .ok_or_else(|| Error::server_not_found(&draft.server_id))?;
            if let Some(existing) = oldest_collision(tx, &draft, guard)? {
                return Err(guard.error(existing));
            }
            let (mut action, mut event) = draft.into_action(0, &server);
            tx.prepare_cached(
                "INSERT INTO actions (server_id, action_type, status, service_name, command, argv, \
                 env, alert_id, created_at, created_by, approved_at, approved_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                action.server_id,
                action.action_type,
                action.status.as_str(),
                action.service_name,
                action.command,
                serde_json::to_string(&action.argv).expect("strings serialize"),
                serde_json::to_string(&action.env).expect("strings serialize"),
                action.alert_id,
                ts(action.created_at),
                action.created_by,
                action.approved_at.map(ts),
                action.approved_by,
            ])
            .map_err(|e| storage("create action", e))?;
            action.id = tx.last_insert_rowid();
            event.action_id = action.id;
            count(tx, &action, action.status, 1)?;
            log_event(tx, &event)?;
            Ok(action)
        })
    }

    fn get_action(&self, id: i64) -> Result<Option<Action>> {
        self.read_point(|conn| {
            conn.prepare_cached(SELECT_ACTION_SQL)?
                .query_row([id], action_from_row)
                .optional()
                .map_err(|e| storage("get action", e))
        })
    }

    fn list_actions(&self, filter: &ActionFilter, page: PageRequest) -> Result<(Vec<Action>, u64)> {
        let mut clauses = Vec::new();
        let mut args: Vec<&str> = Vec::new();
        let status = filter.status.map(ActionStatus::as_str);
        for (column, value) in [
            ("server_id", filter.server_id.as_deref()),
            ("status", status),
            ("action_type", filter.action_type.as_deref()),
        ] {
            if let Some(value) = value {
                args.push(value);
                clauses.push(format!("{column} = ?{}", args.len()));
            }
        }
        let where_clause = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
        self.read(|conn| {
            // One read transaction, so the page and the total agree.
            conn.execute_batch("BEGIN")?;
            let result = (|| {
                let total: i64 = conn
                    .prepare_cached(&format!(
                        "SELECT COALESCE(SUM(n), 0) FROM action_counts {where_clause}"
                    ))?
                    .query_row(rusqlite::params_from_iter(&args), |r| r.get(0))?;
                let actions = conn
                    .prepare_cached(&format!(
                        "SELECT {ACTION_COLUMNS} FROM actions {where_clause} \
                         ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {offset}",
                        page.limit
                    ))?
                    .query_map(rusqlite::params_from_iter(&args), action_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((actions, total.max(0) as u64))
            })();
            conn.execute_batch("COMMIT")?;
            result.map_err(|e| storage("list actions", e))
        })
    }

    fn update_action(&self, id: i64, change: &Change) -> Result<Action> {
        self.write("update action", |tx| apply_change(tx, id, change))
    }

    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>> {
        self.write("claim action", |tx| {
            let oldest: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM actions WHERE server_id = ?1 AND status = 'approved' \
                     ORDER BY created_at, id LIMIT 1",
                )?
                .query_row([server_id], |r| r.get(0))
                .optional()
                .map_err(|e| storage("claim action", e))?;
            oldest.map(|id| apply_change(tx, id, change)).transpose()
        })
    }

    fn expire_leases(&self, change: &Change) -> Result<Vec<Action>> {
        // Hosts sweep often (before reads and claims) and there is rarely
        // anything due: look first without taking the write lock. One that falls
        // due after this look is caught by the next sweep.
        let any_due = self.read_point(|conn| {
            conn.prepare_cached(ANY_LEASE_DUE_SQL)?
                .query_row([ts(change.at)], |_| Ok(()))
                .optional()
                .map_err(|e| storage("expire leases", e))
        })?;
        if any_due.is_none() {
            return Ok(Vec::new());
        }
        self.write("expire leases", |tx| {
            let due: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM actions WHERE status = 'executing' AND lease_expires_at <= ?1 ORDER BY id",
                )?
                .query_map([ts(change.at)], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| storage("expire leases", e))?;
            due.into_iter().map(|id| apply_change(tx, id, change)).collect()
        })
    }

    fn events_since(&self, cursor: i64, limit: u32) -> Result<Vec<Event>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT id, action_id, from_status, to_status, actor, at, detail FROM action_events \
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![cursor, limit], event_from_row)?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| storage("events", e))
        })
    }
}
