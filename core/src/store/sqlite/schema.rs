//! The schema: forward migrations, versioned in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::storage;
use crate::error::{Error, Result};

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
    // v3: credentials (only the SHA-256 of each secret), looked up by digest.
    r#"
    CREATE TABLE credentials (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        name           TEXT NOT NULL,
        role           TEXT NOT NULL,
        server_id      TEXT,
        prefix         TEXT NOT NULL,
        secret_sha256  BLOB NOT NULL UNIQUE,
        created_at     INTEGER NOT NULL,
        revoked_at     INTEGER
    );
    "#,
];

/// The schema version this library writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema version of the open database.
pub(super) fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| storage("read schema version", e))
}

/// The refusal of a database written by a newer actionq.
pub(super) fn too_new(found: i64) -> Error {
    Error::Storage(format!(
        "database schema version {found} is newer than this library supports ({SCHEMA_VERSION}); upgrade actionq (the file was not modified)"
    ))
}

/// Brings the database to [`SCHEMA_VERSION`] in one write transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
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
