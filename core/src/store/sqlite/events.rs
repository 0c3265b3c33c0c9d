//! The audit log: appended inside each write, chained to the one before it,
//! read by cursor, verified.
//!
//! The chain's head (last event id and hash) is kept apart from the events
//! in the row [`HEAD_ROW`] of `sqlite_sequence`, SQLite's own table of
//! AUTOINCREMENT counters: every transaction that logs an event already
//! rewrites that table's one page (for `action_events`' counter), so the
//! head costs no extra page per commit. A table of its own would add a WAL
//! frame to every write, about 10% of create throughput (it brings the
//! checkpoint, with its fsyncs, round 10% sooner). SQLite reads that table
//! only by the names of its tables; no table is named [`HEAD_ROW`].

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

/// The `sqlite_sequence` row holding the chain's head.
pub(super) const HEAD_ROW: &str = "actionq_audit_head";

/// The head as stored: the last event id (8 bytes, big-endian), then its hash.
pub(super) fn head_blob(head: &AuditHead) -> [u8; 40] {
    let mut blob = [0u8; 40];
    blob[..8].copy_from_slice(&head.last_event_id.to_be_bytes());
    blob[8..].copy_from_slice(&head.hash);
    blob
}

/// The head of the chain, if its row exists (a value that is not a head
/// reads as a head no chain matches).
fn head(conn: &Connection) -> Result<Option<AuditHead>> {
    conn.prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = ?1")
        .and_then(|mut select| {
            select
                .query_row([HEAD_ROW], |r| {
                    let blob: Option<Vec<u8>> = r.get(0).ok();
                    Ok(match blob.as_deref() {
                        Some(b) if b.len() == 40 => AuditHead {
                            last_event_id: i64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
                            hash: b[8..].try_into().expect("32 bytes"),
                        },
                        _ => AuditHead {
                            last_event_id: -1,
                            hash: [0xff; 32],
                        },
                    })
                })
                .optional()
        })
        .context("read audit head")
}

/// Appends `event` in the caller's write transaction, chained after the head,
/// and moves the head to it.
pub(super) fn log(tx: &Connection, event: &EventDraft) -> Result<()> {
    let prev = head(tx)?.unwrap_or_default().hash;
    let hash = event_hash(&prev, event);
    tx.prepare_cached(
        "INSERT INTO action_events (action_id, from_status, to_status, actor, at, detail, \
         prev_hash, hash, kind, subject, digest, hash_version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
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
        last_event_id: tx.last_insert_rowid(),
        hash,
    };
    tx.prepare_cached("UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1")
        .and_then(|mut update| update.execute(params![HEAD_ROW, &head_blob(&head)[..]]))
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
