//! The schema: forward migrations, versioned in the one-row table
//! `actionq_schema`, run under an advisory lock so that any number of
//! processes may open a fresh database at once.

use std::collections::BTreeMap;

use postgres::{Client, GenericClient, Transaction};

use super::rows::event_from_row;
use super::storage;
use crate::audit::{event_hash_v1, AuditHead};
use crate::error::{Error, Result};

/// One forward migration: SQL, then an optional Rust step in the same
/// transaction (for values only Rust computes: digests, chain hashes).
struct Migration {
    sql: &'static str,
    then: Option<fn(&mut Transaction<'_>) -> Result<()>>,
}

const fn sql(sql: &'static str) -> Migration {
    Migration { sql, then: None }
}

/// Forward migrations; entry `n` takes a database from version `n` to `n + 1`.
/// Tables live in the first schema of the connection's `search_path`.
const MIGRATIONS: &[Migration] = &[
    sql(
        // v1: servers, actions, audit events, per-(server, type, status) totals,
        // and the id counters (see the module docs of `postgres` for why ids are
        // counted in a row and not taken from sequences).
        r#"
    CREATE TABLE servers (
        id          text PRIMARY KEY,
        hostname    text,
        is_paused   boolean NOT NULL DEFAULT false,
        paused_at   bigint,
        created_at  bigint NOT NULL
    );
    CREATE TABLE actions (
        id                bigint PRIMARY KEY,
        server_id         text NOT NULL REFERENCES servers(id),
        action_type       text NOT NULL,
        status            text NOT NULL,
        service_name      text,
        command           text NOT NULL,
        argv              text NOT NULL,
        env               text NOT NULL,
        alert_id          bigint,
        created_at        bigint NOT NULL,
        created_by        text NOT NULL,
        approved_at       bigint,
        approved_by       text,
        rejected_at       bigint,
        rejected_by       text,
        rejection_reason  text,
        cancelled_at      bigint,
        cancelled_by      text,
        executed_at       bigint,
        lease_expires_at  bigint,
        lease_token       text,
        completed_at      bigint,
        exit_code         integer,
        stdout            text,
        stderr            text
    );
    CREATE INDEX actions_by_created ON actions (created_at, id);
    CREATE INDEX actions_by_server ON actions (server_id, created_at, id);
    CREATE INDEX actions_by_server_status ON actions (server_id, status, created_at, id);
    CREATE INDEX actions_by_status ON actions (status, created_at, id);
    CREATE INDEX actions_by_server_type ON actions (server_id, action_type, created_at, id);
    CREATE INDEX actions_by_type ON actions (action_type, created_at, id);
    CREATE INDEX actions_active ON actions (server_id, action_type, id)
        WHERE status IN ('pending', 'approved', 'executing');
    CREATE INDEX actions_leases ON actions (lease_expires_at) WHERE status = 'executing';
    CREATE TABLE action_events (
        id           bigint PRIMARY KEY,
        action_id    bigint NOT NULL,
        from_status  text,
        to_status    text NOT NULL,
        actor        text NOT NULL,
        at           bigint NOT NULL,
        detail       text
    );
    CREATE TABLE action_counts (
        server_id    text NOT NULL,
        action_type  text NOT NULL,
        status       text NOT NULL,
        n            bigint NOT NULL,
        PRIMARY KEY (server_id, action_type, status)
    );
    CREATE TABLE actionq_ids (
        singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        last_action_id  bigint NOT NULL,
        last_event_id   bigint NOT NULL
    );
    INSERT INTO actionq_ids (last_action_id, last_event_id) VALUES (0, 0);
    "#,
    ),
    // v2: credentials, approval policy and tamper-evident audit.
    Migration {
        sql: V2_CREDENTIALS_APPROVALS_AND_AUDIT_CHAIN,
        then: Some(v2_digests_and_chain),
    },
    // v3: `params` on every action; lease tokens kept as their SHA-256.
    sql(V3_HARDENING),
    // v4: the audit chain covers digests, servers and credentials.
    sql(V4_EVENT_KINDS),
    // v5: job leases and notification delivery cursors (`crate::jobs`).
    sql(r#"
    CREATE TABLE job_leases (
        name        text PRIMARY KEY,
        holder      text NOT NULL,
        expires_at  bigint NOT NULL
    );
    CREATE TABLE deliveries (
        name             text PRIMARY KEY,
        kind             text NOT NULL,
        cursor           bigint NOT NULL,
        sent             bigint NOT NULL DEFAULT 0,
        failed           bigint NOT NULL DEFAULT 0,
        dead             bigint NOT NULL DEFAULT 0,
        last_error       text,
        last_success_at  bigint
    );
    "#),
    // v6: cancel requests on executing actions; their live output, by seq
    // (bytea like `stdout`, since text cannot hold NUL; the character counts
    // kept beside it so the cap needs no decoding).
    sql(r#"
    ALTER TABLE actions ADD COLUMN cancel_requested_at bigint;
    ALTER TABLE actions ADD COLUMN cancel_requested_by text;
    CREATE TABLE action_output (
        action_id     bigint NOT NULL REFERENCES actions(id),
        seq           bigint NOT NULL,
        stdout        bytea NOT NULL,
        stderr        bytea NOT NULL,
        stdout_chars  bigint NOT NULL,
        stderr_chars  bigint NOT NULL,
        at            bigint NOT NULL,
        PRIMARY KEY (action_id, seq)
    );
    "#),
    // v7: the prune checkpoint (`docs/contract/retention.md`): the last
    // pruned event's id and hash and the last pruned action id, in one row
    // that every prune batch locks first (two pruners take turns).
    sql(r#"
    CREATE TABLE actionq_prune_checkpoint (
        singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        last_event_id   bigint NOT NULL,
        hash            bytea NOT NULL,
        last_action_id  bigint NOT NULL
    );
    INSERT INTO actionq_prune_checkpoint (last_event_id, hash, last_action_id)
        VALUES (0, decode(repeat('00', 32), 'hex'), 0);
    "#),
];

/// v3: each action's `params` (JSON object as text, like `env`). Actions
/// stored before keep what can be rebuilt from their row: `service_name`
/// where they have one. Lease tokens are kept as their SHA-256 (hex) only:
/// those of actions executing during the upgrade are hashed in place, so
/// their agents' heartbeats and results still match.
const V3_HARDENING: &str = r#"
    ALTER TABLE actions ADD COLUMN params text NOT NULL DEFAULT '{}';
    UPDATE actions SET params = json_build_object('service_name', service_name)::text
        WHERE service_name IS NOT NULL;
    UPDATE actions SET lease_token = encode(sha256(convert_to(lease_token, 'UTF8')), 'hex')
        WHERE lease_token IS NOT NULL;
"#;

/// v4: events of every kind: `kind`, `subject` (old events: their action's
/// server), `action_id` and `to_status` nullable (server and credential
/// events), the digest an event vouches for, and the version of its hash's
/// encoding (1 for every event written before: their hashes stay valid).
/// The defaults only fill the old rows: every insert names each column.
const V4_EVENT_KINDS: &str = r#"
    ALTER TABLE action_events
        ALTER COLUMN action_id DROP NOT NULL,
        ALTER COLUMN to_status DROP NOT NULL,
        ADD COLUMN kind text NOT NULL DEFAULT 'action',
        ADD COLUMN subject text NOT NULL DEFAULT '',
        ADD COLUMN digest text,
        ADD COLUMN hash_version bigint NOT NULL DEFAULT 1;
    UPDATE action_events e SET subject = a.server_id FROM actions a WHERE a.id = e.action_id;
    ALTER TABLE action_events
        ALTER COLUMN kind DROP DEFAULT,
        ALTER COLUMN subject DROP DEFAULT,
        ALTER COLUMN hash_version DROP DEFAULT;
"#;

/// v2: credentials (only the SHA-256 of each secret, unique, looked up by
/// it); each action's `approvals` (JSON list), `digest` and
/// `whitelist_version`; each event's `prev_hash` and `hash`; the chain's
/// head hash beside `last_event_id` in the row of `actionq_ids` (the head is
/// that id and this hash: moved by the same late statement that takes event
/// ids, see the module docs of `postgres`); pending actions by type and age
/// for the ttl sweep before every read; `stdout` and `stderr` as `bytea`
/// (their UTF-8 bytes): executor output may hold NUL, which `text` refuses.
/// The Rust step fills digests and chains the existing events.
const V2_CREDENTIALS_APPROVALS_AND_AUDIT_CHAIN: &str = r#"
    CREATE TABLE credentials (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name           text NOT NULL,
        role           text NOT NULL,
        server_id      text,
        prefix         text NOT NULL,
        secret_sha256  bytea NOT NULL UNIQUE,
        created_at     bigint NOT NULL,
        revoked_at     bigint
    );
    ALTER TABLE actions ADD COLUMN approvals text NOT NULL DEFAULT '[]';
    ALTER TABLE actions ADD COLUMN digest text NOT NULL DEFAULT '';
    ALTER TABLE actions ADD COLUMN whitelist_version text NOT NULL DEFAULT '';
    ALTER TABLE action_events ADD COLUMN prev_hash bytea;
    ALTER TABLE action_events ADD COLUMN hash bytea;
    ALTER TABLE actionq_ids ADD COLUMN head_hash bytea;
    CREATE INDEX actions_pending_by_type ON actions (action_type, created_at)
        WHERE status = 'pending';
    ALTER TABLE actions ALTER COLUMN stdout TYPE bytea USING convert_to(stdout, 'UTF8'),
                        ALTER COLUMN stderr TYPE bytea USING convert_to(stderr, 'UTF8');
"#;

/// v2's Rust part: actions stored before whitelists had versions get the
/// digest of their payload under the empty version (and stay exempt from
/// the stale-whitelist check); the existing events are chained in id order
/// and the head set to the last one.
fn v2_digests_and_chain(tx: &mut Transaction<'_>) -> Result<()> {
    let context = |e| storage("migrate to version 2", e);
    let actions = tx
        .query(
            "SELECT id, server_id, action_type, argv, env FROM actions",
            &[],
        )
        .map_err(context)?;
    let update = tx
        .prepare("UPDATE actions SET digest = $2 WHERE id = $1")
        .map_err(context)?;
    for row in &actions {
        let (id, server_id, action_type, argv, env): (i64, String, String, String, String) = (
            row.try_get(0).map_err(context)?,
            row.try_get(1).map_err(context)?,
            row.try_get(2).map_err(context)?,
            row.try_get(3).map_err(context)?,
            row.try_get(4).map_err(context)?,
        );
        let bad = |e: serde_json::Error| {
            Error::Storage(format!("migrate to version 2: action {id}: {e}"))
        };
        let argv: Vec<String> = serde_json::from_str(&argv).map_err(bad)?;
        let env: BTreeMap<String, String> = serde_json::from_str(&env).map_err(bad)?;
        let digest = crate::action_digest(&server_id, &action_type, &argv, &env, "");
        tx.execute(&update, &[&id, &digest]).map_err(context)?;
    }
    // Version 2's events are action events (kind and subject came with v3,
    // and the v1 encoding hashes neither).
    let events = tx
        .query(
            "SELECT id, action_id, from_status, to_status, actor, at, detail, 'action', '' \
             FROM action_events ORDER BY id",
            &[],
        )
        .map_err(context)?;
    let chain = tx
        .prepare("UPDATE action_events SET prev_hash = $2, hash = $3 WHERE id = $1")
        .map_err(context)?;
    let mut head = AuditHead::default();
    for row in &events {
        let event = event_from_row(row)?;
        let hash = event_hash_v1(&head.hash, &event).ok_or_else(|| {
            Error::Storage(format!(
                "migrate to version 2: event {} has no status",
                event.id
            ))
        })?;
        tx.execute(&chain, &[&event.id, &&head.hash[..], &&hash[..]])
            .map_err(context)?;
        head = AuditHead {
            last_event_id: event.id,
            hash,
        };
    }
    // The head's id is `last_event_id`, which already counts every event.
    tx.execute("UPDATE actionq_ids SET head_hash = $1", &[&&head.hash[..]])
        .map_err(context)?;
    Ok(())
}

/// The schema version this library writes to PostgreSQL.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Key of the advisory lock migrations run under ("actionq" in ASCII).
const MIGRATION_LOCK: i64 = 0x61_6374_696f_6e71;

/// The schema version of the database (0 when actionq never wrote to it).
pub(super) fn version(client: &mut impl GenericClient) -> Result<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass('actionq_schema') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| storage("read schema version", e))?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one("SELECT version FROM actionq_schema", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| storage("read schema version", e))
}

/// The refusal of a database written by a newer actionq.
pub(super) fn too_new(found: i64) -> Error {
    Error::Storage(format!(
        "database schema version {found} is newer than this library supports ({PG_SCHEMA_VERSION}); upgrade actionq (the database was not modified)"
    ))
}

/// Brings the database to [`PG_SCHEMA_VERSION`] in one transaction, under the
/// advisory lock: a second process opening at the same time waits, then finds
/// the work done. The lock is a session lock taken *before* the transaction
/// starts: a transaction that began before another one's migration committed
/// may still resolve table names from its stale catalog cache (an advisory
/// lock does not refresh it), and would then create the tables a second time.
pub(super) fn migrate(client: &mut Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| storage("migrate: take the migration lock", e))?;
    let result = migrate_locked(client);
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| storage("migrate: release the migration lock", e));
    result.and(unlocked.map(|_| ()))
}

fn migrate_locked(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction().map_err(|e| storage("migrate", e))?;
    // Re-read under the lock: another process may have migrated meanwhile.
    let found = version(&mut tx)?;
    if found > PG_SCHEMA_VERSION {
        return Err(too_new(found));
    }
    if found == PG_SCHEMA_VERSION {
        return Ok(());
    }
    if found == 0 {
        tx.batch_execute(
            "CREATE TABLE actionq_schema (version bigint NOT NULL); \
             INSERT INTO actionq_schema (version) VALUES (0);",
        )
        .map_err(|e| storage("migrate: create the version table", e))?;
    }
    for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(migration.sql)
            .map_err(|e| storage(&format!("migrate to version {}", version + 1), e))?;
        if let Some(step) = migration.then {
            step(&mut tx)?;
        }
    }
    tx.execute(
        "UPDATE actionq_schema SET version = $1",
        &[&PG_SCHEMA_VERSION],
    )
    .map_err(|e| storage("migrate", e))?;
    tx.commit().map_err(|e| storage("migrate", e))
}
