//! The audit log: appended inside each write, chained to the one before it,
//! read by cursor, verified.
//!
//! The chain's head (last event id and hash) is kept apart from the events,
//! in the reserved row of `action_counts` ([`reserved_row!`]), with the
//! high-water marks of action and event ids: a create rewrites a count row
//! anyway, and with up to a few dozen (server, type, status) keys the
//! reserved row (its key sorts first) shares that leaf, so head and ids cost
//! a create no page of their own. (Before schema v8 they lived in
//! `sqlite_sequence`, whose AUTOINCREMENT counters cost every create a page:
//! 6 pages instead of 5, tests/sqlite_pages.rs.)

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{event_columns, event_from_row, ts};
use super::Context;
use crate::audit::{event_hash, AuditHead, AuditReport, AuditVerifier, ChainedEvent, HASH_VERSION};
use crate::error::Result;
use crate::model::{ActionStatus, Event};
use crate::store::EventDraft;

/// A stored hash: 32 bytes, or zeros for a value that is not (a row written
/// outside the library), which then fails verification.
fn hash_from(bytes: Option<Vec<u8>>) -> [u8; 32] {
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .unwrap_or([0xff; 32])
}

/// The reserved row of `action_counts`: the empty key, which sorts before
/// every count's (no count has an empty status), with `n` = 0 so totals
/// stay right. Its `actions_seq` and `events_seq` are the ids' high-water
/// marks, its `audit_head` the chain's head ([`head_blob`]).
macro_rules! reserved_row {
    () => {
        "server_id = '' AND action_type = '' AND status = ''"
    };
}

/// A table whose ids come from a high-water mark in the reserved row.
#[derive(Clone, Copy)]
pub(super) enum Ids {
    /// `actions.id`, marked in `actions_seq`.
    Actions,
    /// `action_events.id`, marked in `events_seq`.
    Events,
}

/// The statement taking the next id of `$table` (see [`next_id`]), whose
/// mark is the reserved row's column `$mark`.
macro_rules! take_next_id {
    ($mark:literal, $table:literal) => {
        concat!(
            "INSERT INTO action_counts (server_id, action_type, status, n, ",
            $mark,
            ") VALUES ('', '', '', 0, (SELECT COALESCE(MAX(id), 0) + 1 FROM ",
            $table,
            ")) ON CONFLICT (server_id, action_type, status) DO UPDATE SET ",
            $mark,
            " = MAX(COALESCE(",
            $mark,
            ", 0) + 1, excluded.",
            $mark,
            ") RETURNING ",
            $mark
        )
    };
}

/// Takes the next action id.
pub(super) const NEXT_ACTION_ID_SQL: &str = take_next_id!("actions_seq", "actions");

/// Takes the next event id.
pub(super) const NEXT_EVENT_ID_SQL: &str = take_next_id!("events_seq", "action_events");

/// Takes the next id for `table`, in the caller's write transaction: one
/// past both its high-water mark and its largest stored id (as
/// AUTOINCREMENT did), and moves the mark there, so no id is ever reused,
/// even after the newest rows are deleted.
pub(super) fn next_id(tx: &Connection, table: Ids) -> Result<i64> {
    let sql = match table {
        Ids::Actions => NEXT_ACTION_ID_SQL,
        Ids::Events => NEXT_EVENT_ID_SQL,
    };
    tx.prepare_cached(sql)
        .and_then(|mut take| take.query_row([], |r| r.get(0)))
        .context("take next id")
}

/// The audit head's stored value.
pub(super) const HEAD_SQL: &str = concat!(
    "SELECT audit_head FROM action_counts WHERE ",
    reserved_row!()
);

/// The head as stored: the last event id (8 bytes, big-endian), then its hash.
pub(super) fn head_blob(head: &AuditHead) -> [u8; 40] {
    let mut blob = [0u8; 40];
    blob[..8].copy_from_slice(&head.last_event_id.to_be_bytes());
    blob[8..].copy_from_slice(&head.hash);
    blob
}

/// The head of the chain, if stored (a value that is not a head reads as a
/// head no chain matches).
fn head(conn: &Connection) -> Result<Option<AuditHead>> {
    conn.prepare_cached(HEAD_SQL)
        .and_then(|mut select| {
            select
                .query_row([], |r| {
                    let value: rusqlite::types::Value = r.get(0)?;
                    Ok(match value {
                        rusqlite::types::Value::Null => None,
                        rusqlite::types::Value::Blob(b) if b.len() == 40 => Some(AuditHead {
                            last_event_id: i64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
                            hash: b[8..].try_into().expect("32 bytes"),
                        }),
                        _ => Some(AuditHead {
                            last_event_id: -1,
                            hash: [0xff; 32],
                        }),
                    })
                })
                .optional()
        })
        .map(Option::flatten)
        .context("read audit head")
}

/// Appends `event` in the caller's write transaction, chained after the head,
/// and moves the head to it.
pub(super) fn log(tx: &Connection, event: &EventDraft) -> Result<()> {
    let prev = head(tx)?.unwrap_or_default().hash;
    let hash = event_hash(&prev, event);
    let id = next_id(tx, Ids::Events)?;
    tx.prepare_cached(
        "INSERT INTO action_events (id, action_id, from_status, to_status, actor, at, detail, \
         prev_hash, hash, kind, subject, digest, hash_version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            id,
            event.action_id,
            event.from_status.map(ActionStatus::as_str),
            event.to_status.map(ActionStatus::as_str),
            event.by,
            ts(event.at),
            event.detail,
            &prev[..],
            &hash[..],
            event.kind.as_str(),
            event.subject,
            event.digest,
            HASH_VERSION,
        ])
    })
    .context("log event")?;
    let head = AuditHead {
        last_event_id: id,
        hash,
    };
    tx.prepare_cached(concat!(
        "UPDATE action_counts SET audit_head = ?1 WHERE ",
        reserved_row!()
    ))
    .and_then(|mut update| update.execute([&head_blob(&head)[..]]))
    .context("log event")?;
    Ok(())
}

/// Up to ?2 events after id ?1, oldest first.
pub(super) const SINCE_SQL: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM action_events WHERE id > ?1 ORDER BY id LIMIT ?2"
);

/// Up to `limit` events after `cursor`, oldest first.
pub(super) fn since(conn: &Connection, cursor: i64, limit: u32) -> Result<Vec<Event>> {
    conn.prepare_cached(SINCE_SQL)
        .and_then(|mut select| {
            select
                .query_map(params![cursor, limit], event_from_row)?
                .collect()
        })
        .context("events")
}

/// Walks the whole chain and the head in one read transaction.
pub(super) fn verify(conn: &Connection) -> Result<AuditReport> {
    conn.execute_batch("BEGIN").context("verify audit")?;
    let result = (|| {
        let head = head(conn)?;
        let mut select = conn
            .prepare_cached(concat!(
                "SELECT ",
                event_columns!(),
                ", prev_hash, hash, hash_version, digest FROM action_events ORDER BY id"
            ))
            .context("verify audit")?;
        let mut rows = select.query([]).context("verify audit")?;
        let chain = std::iter::from_fn(|| match rows.next().context("verify audit") {
            Ok(Some(row)) => Some(link(conn, row)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        });
        AuditVerifier::walk(chain, head.as_ref())
    })();
    conn.execute_batch("COMMIT").context("verify audit")?;
    result
}

/// One stored event as the chain's walk reads it: chained, or the id of a
/// row that does not even decode (an edited status).
fn link(
    conn: &Connection,
    row: &rusqlite::Row<'_>,
) -> Result<std::result::Result<ChainedEvent, i64>> {
    let chained = (|| -> rusqlite::Result<ChainedEvent> {
        let event = event_from_row(row)?;
        let digest: Option<String> = row.get(12)?;
        // What the event vouches for is checked against the row as it is now.
        let action = match (&digest, event.action_id) {
            (Some(_), Some(id)) => super::actions::get(conn, id)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            _ => None,
        };
        Ok(ChainedEvent {
            event,
            prev_hash: hash_from(row.get(9)?),
            hash: hash_from(row.get(10)?),
            hash_version: row.get(11)?,
            digest,
            action,
        })
    })();
    match chained {
        Ok(chained) => Ok(Ok(chained)),
        Err(_) => Ok(Err(row.get(0).context("verify audit")?)),
    }
}
