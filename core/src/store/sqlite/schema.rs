//! The schema: forward migrations, versioned in `PRAGMA user_version`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::events::head_blob;
use super::rows::event_from_row;
use super::storage;
use crate::audit::{event_hash_v1, AuditHead};
use crate::error::{Error, Result};
use crate::model::Event;

/// One forward migration: SQL, then (for what SQL cannot compute) a step
/// in Rust, in the same transaction.
struct Migration {
    sql: &'static str,
    then: Option<fn(&Transaction<'_>) -> Result<()>>,
}

const fn sql(sql: &'static str) -> Migration {
    Migration { sql, then: None }
}

/// Forward migrations; entry `n` takes a database from version `n` to `n + 1`.
const MIGRATIONS: &[Migration] = &[
    // v1: servers, actions, audit events.
    sql(r#"
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
    "#),
    // v2: per-(server, type, status) totals kept in step with every write, so a
    // listing's `total` never scans; partial indexes for conflicts and expiry.
    sql(r#"
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
    "#),
    // v3: credentials (only the SHA-256 of each secret), looked up by digest.
    sql(r#"
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
    "#),
    // v4: approval policy and tamper-evident audit.
    Migration {
        sql: V4_APPROVALS_AND_AUDIT_CHAIN,
        then: Some(v4_digests_and_chain),
    },
    // v5: each action's params; lease tokens kept as their SHA-256 only.
    Migration {
        sql: V5_HARDENING,
        then: Some(v5_hash_lease_tokens),
    },
    // v6: fewer pages per write. Each index costs every create a page in the
    // WAL (and again at checkpoint); these three repeat what the other
    // indexes answer: a listing without a status filter merges one ordered
    // seek per status of `actions_by_status` / `actions_by_server_status`
    // (`actions::listing`), and the conflict checks and the auto-approval
    // budget seek `actions_by_server_status` per status. A create writes 6
    // pages instead of 9 (tests/sqlite_pages.rs).
    sql(r#"
    DROP INDEX actions_by_created;
    DROP INDEX actions_by_server;
    DROP INDEX actions_active;
    "#),
    // v7: the audit chain covers digests, servers and credentials.
    sql(V7_EVENT_KINDS),
    // v8: ids and the audit head in a reserved row of `action_counts`.
    sql(V8_NO_SEQUENCE_PAGE),
    // v9: job leases and notification delivery cursors (`crate::jobs`).
    sql(r#"
    CREATE TABLE job_leases (
        name        TEXT PRIMARY KEY NOT NULL,
        holder      TEXT NOT NULL,
        expires_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        name             TEXT PRIMARY KEY NOT NULL,
        kind             TEXT NOT NULL,
        cursor           INTEGER NOT NULL,
        sent             INTEGER NOT NULL DEFAULT 0,
        failed           INTEGER NOT NULL DEFAULT 0,
        dead             INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        last_success_at  INTEGER
    ) WITHOUT ROWID;
    "#),
    // v10: cancel requests on executing actions; their live output, by seq.
    sql(r#"
    ALTER TABLE actions ADD COLUMN cancel_requested_at INTEGER;
    ALTER TABLE actions ADD COLUMN cancel_requested_by TEXT;
    CREATE TABLE action_output (
        action_id  INTEGER NOT NULL REFERENCES actions(id),
        seq        INTEGER NOT NULL,
        stdout     TEXT NOT NULL,
        stderr     TEXT NOT NULL,
        at         INTEGER NOT NULL,
        PRIMARY KEY (action_id, seq)
    ) WITHOUT ROWID;
    "#),
    // v11: the prune checkpoint (`docs/contract/retention.md`): the last
    // pruned event's id and hash, and the last pruned action id. No row
    // until the first prune.
    sql(r#"
    CREATE TABLE prune_checkpoint (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        last_event_id   INTEGER NOT NULL,
        hash            BLOB NOT NULL,
        last_action_id  INTEGER NOT NULL
    );
    "#),
];

/// v5's Rust part: lease tokens are kept as their SHA-256 only; the tokens
/// of actions executing during the upgrade are hashed in place, so their
/// agents' heartbeats and results still match.
fn v5_hash_lease_tokens(tx: &Transaction<'_>) -> Result<()> {
    let context = |e| storage("migrate to version 5", e);
    let held: Vec<(i64, String)> = tx
        .prepare("SELECT id, lease_token FROM actions WHERE lease_token IS NOT NULL")
        .and_then(|mut select| {
            select
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(context)?;
    let mut update = tx
        .prepare("UPDATE actions SET lease_token = ?2 WHERE id = ?1")
        .map_err(context)?;
    for (id, token) in held {
        update
            .execute(params![id, crate::queue::lease_token_digest(&token)])
            .map_err(context)?;
    }
    Ok(())
}

/// v5: each action's `params` (JSON object). Actions stored before keep
/// what can be rebuilt from their row: `service_name` where they have one.
/// (The Rust step hashes stored lease tokens.)
const V5_HARDENING: &str = r#"
    ALTER TABLE actions ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
    UPDATE actions SET params = json_object('service_name', service_name)
        WHERE service_name IS NOT NULL;
"#;

/// v7: events of every kind (`kind`, `subject`; `action_id` and `to_status`
/// nullable, for server and credential events: SQLite cannot drop a NOT
/// NULL, so the table is rebuilt, ids, hashes and its AUTOINCREMENT counter
/// kept) with the digest they vouch for and the version of their hash's
/// encoding (1 for every event written before: their hashes stay valid).
/// Old events' `subject` is their action's server.
const V7_EVENT_KINDS: &str = r#"
    CREATE TABLE action_events_v7 (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id     INTEGER REFERENCES actions(id),
        from_status   TEXT,
        to_status     TEXT,
        actor         TEXT NOT NULL,
        at            INTEGER NOT NULL,
        detail        TEXT,
        prev_hash     BLOB,
        hash          BLOB,
        kind          TEXT NOT NULL,
        subject       TEXT NOT NULL,
        digest        TEXT,
        hash_version  INTEGER NOT NULL
    );
    INSERT INTO action_events_v7 (id, action_id, from_status, to_status, actor, at, detail,
                                  prev_hash, hash, kind, subject, digest, hash_version)
        SELECT e.id, e.action_id, e.from_status, e.to_status, e.actor, e.at, e.detail,
               e.prev_hash, e.hash, 'action',
               COALESCE((SELECT a.server_id FROM actions a WHERE a.id = e.action_id), ''),
               NULL, 1
        FROM action_events e ORDER BY e.id;
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'action_events_v7', seq FROM sqlite_sequence WHERE name = 'action_events'
        AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'action_events_v7');
    UPDATE sqlite_sequence SET seq = MAX(seq,
        (SELECT seq FROM sqlite_sequence WHERE name = 'action_events'))
        WHERE name = 'action_events_v7'
        AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'action_events');
    DROP TABLE action_events;
    ALTER TABLE action_events_v7 RENAME TO action_events;
"#;

/// v8: one page fewer per create (5, tests/sqlite_pages.rs). The
/// AUTOINCREMENT counters of `actions` and `action_events` and the audit
/// head move from `sqlite_sequence` (a page every create rewrote) into the
/// reserved row of `action_counts` (`events::reserved_row!`), whose leaf a
/// create rewrites anyway for its count. Both tables are rebuilt without
/// AUTOINCREMENT (SQLite cannot drop it in place), ids, hashes and indexes
/// kept; renaming them first moves `action_events`' reference to the old
/// `actions` along, so the old tables drop without a foreign key violation.
/// The high-water marks start at the old counters (or the largest ids, if
/// higher), so ids deleted before the upgrade stay unused.
const V8_NO_SEQUENCE_PAGE: &str = r#"
    ALTER TABLE action_counts ADD COLUMN actions_seq INTEGER;
    ALTER TABLE action_counts ADD COLUMN events_seq INTEGER;
    ALTER TABLE action_counts ADD COLUMN audit_head BLOB;
    INSERT INTO action_counts (server_id, action_type, status, n,
                               actions_seq, events_seq, audit_head)
        VALUES ('', '', '', 0,
            MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'actions'), 0),
                COALESCE((SELECT MAX(id) FROM actions), 0)),
            MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'action_events'), 0),
                COALESCE((SELECT MAX(id) FROM action_events), 0)),
            (SELECT seq FROM sqlite_sequence WHERE name = 'actionq_audit_head'));
    DELETE FROM sqlite_sequence WHERE name = 'actionq_audit_head';
    ALTER TABLE actions RENAME TO actions_v7;
    ALTER TABLE action_events RENAME TO action_events_v7;
    CREATE TABLE actions (
        id                 INTEGER PRIMARY KEY,
        server_id          TEXT NOT NULL REFERENCES servers(id),
        action_type        TEXT NOT NULL,
        status             TEXT NOT NULL,
        service_name       TEXT,
        command            TEXT NOT NULL,
        argv               TEXT NOT NULL,
        env                TEXT NOT NULL,
        alert_id           INTEGER,
        created_at         INTEGER NOT NULL,
        created_by         TEXT NOT NULL,
        approved_at        INTEGER,
        approved_by        TEXT,
        rejected_at        INTEGER,
        rejected_by        TEXT,
        rejection_reason   TEXT,
        cancelled_at       INTEGER,
        cancelled_by       TEXT,
        executed_at        INTEGER,
        lease_expires_at   INTEGER,
        lease_token        TEXT,
        completed_at       INTEGER,
        exit_code          INTEGER,
        stdout             TEXT,
        stderr             TEXT,
        approvals          TEXT NOT NULL DEFAULT '[]',
        digest             TEXT NOT NULL DEFAULT '',
        whitelist_version  TEXT NOT NULL DEFAULT '',
        params             TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE action_events (
        id            INTEGER PRIMARY KEY,
        action_id     INTEGER REFERENCES actions(id),
        from_status   TEXT,
        to_status     TEXT,
        actor         TEXT NOT NULL,
        at            INTEGER NOT NULL,
        detail        TEXT,
        prev_hash     BLOB,
        hash          BLOB,
        kind          TEXT NOT NULL,
        subject       TEXT NOT NULL,
        digest        TEXT,
        hash_version  INTEGER NOT NULL
    );
    INSERT INTO actions SELECT * FROM actions_v7 ORDER BY id;
    INSERT INTO action_events SELECT * FROM action_events_v7 ORDER BY id;
    DROP TABLE action_events_v7;
    DROP TABLE actions_v7;
    CREATE INDEX actions_by_server_status ON actions(server_id, status, created_at, id);
    CREATE INDEX actions_by_status ON actions(status, created_at, id);
    CREATE INDEX actions_leases ON actions(lease_expires_at)
        WHERE status = 'executing';
    CREATE INDEX actions_pending_by_type ON actions(action_type, created_at)
        WHERE status = 'pending';
"#;

/// v4: each action's `approvals` (JSON list), `digest` and
/// `whitelist_version`; each event's `prev_hash` and `hash`; pending actions
/// by type and age, so the ttl sweep before every read is a seek whatever
/// else is pending (auto-approved creates never touch it). The chain's head
/// goes into `sqlite_sequence` ([`V4_HEAD_ROW`]), written by the Rust step.
const V4_APPROVALS_AND_AUDIT_CHAIN: &str = r#"
    ALTER TABLE actions ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE actions ADD COLUMN digest TEXT NOT NULL DEFAULT '';
    ALTER TABLE actions ADD COLUMN whitelist_version TEXT NOT NULL DEFAULT '';
    ALTER TABLE action_events ADD COLUMN prev_hash BLOB;
    ALTER TABLE action_events ADD COLUMN hash BLOB;
    CREATE INDEX actions_pending_by_type ON actions(action_type, created_at)
        WHERE status = 'pending';
"#;

/// The `sqlite_sequence` row that held the audit head from v4 to v7 (its
/// page was rewritten by every event's AUTOINCREMENT anyway; v8 moves it).
const V4_HEAD_ROW: &str = "actionq_audit_head";

/// v4's Rust part: actions stored before whitelists had versions get the
/// digest of their payload under the empty version (and stay exempt from
/// the stale-whitelist check); the existing events are chained in id order.
fn v4_digests_and_chain(tx: &Transaction<'_>) -> Result<()> {
    let context = |e| storage("migrate to version 4", e);
    let actions: Vec<(i64, String, String, String, String)> = tx
        .prepare("SELECT id, server_id, action_type, argv, env FROM actions")
        .and_then(|mut select| {
            select
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
        })
        .map_err(context)?;
    let mut update = tx
        .prepare("UPDATE actions SET digest = ?2 WHERE id = ?1")
        .map_err(context)?;
    for (id, server_id, action_type, argv, env) in actions {
        let bad = |e: serde_json::Error| {
            Error::Storage(format!("migrate to version 4: action {id}: {e}"))
        };
        let argv: Vec<String> = serde_json::from_str(&argv).map_err(bad)?;
        let env: BTreeMap<String, String> = serde_json::from_str(&env).map_err(bad)?;
        let digest = crate::action_digest(&server_id, &action_type, &argv, &env, "");
        update.execute(params![id, digest]).map_err(context)?;
    }
    // Version 4's events are action events (kind and subject came with v5,
    // and the v1 encoding hashes neither).
    let events: Vec<Event> = tx
        .prepare(
            "SELECT id, action_id, from_status, to_status, actor, at, detail, 'action', '' \
             FROM action_events ORDER BY id",
        )
        .and_then(|mut select| select.query_map([], event_from_row)?.collect())
        .map_err(context)?;
    let mut chain = tx
        .prepare("UPDATE action_events SET prev_hash = ?2, hash = ?3 WHERE id = ?1")
        .map_err(context)?;
    let mut head = AuditHead::default();
    for event in events {
        let hash = event_hash_v1(&head.hash, &event).ok_or_else(|| {
            Error::Storage(format!(
                "migrate to version 4: event {} has no status",
                event.id
            ))
        })?;
        chain
            .execute(params![event.id, &head.hash[..], &hash[..]])
            .map_err(context)?;
        head = AuditHead {
            last_event_id: event.id,
            hash,
        };
    }
    tx.execute(
        "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
        params![V4_HEAD_ROW, &head_blob(&head)[..]],
    )
    .map_err(context)?;
    Ok(())
}

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

/// Set by [`super::SqliteStore::on_migration_start`]: test instrumentation.
pub(super) static MIGRATION_START_HOOK: OnceLock<fn()> = OnceLock::new();

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
    if let Some(hook) = MIGRATION_START_HOOK.get() {
        hook();
    }
    for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(migration.sql)
            .map_err(|e| storage(&format!("migrate to version {}", version + 1), e))?;
        if let Some(step) = migration.then {
            step(&tx)?;
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| storage("migrate", e))?;
    tx.commit().map_err(|e| storage("migrate", e))
}
