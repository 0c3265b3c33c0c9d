//! The audit log: appended inside each write, chained to the one before it,
//! read by cursor, verified.
//!
//! The chain's head (last event id and hash) is kept apart from the events,
//! in the reserved row of `action_counts` (`reserved_row!`), with the
//! high-water marks of action and event ids ([`Marks`]). A create rewrites
//! a count row anyway, and while `action_counts` fits one leaf (a hundred
//! or so (server, type, status) keys) the reserved row, whose key sorts
//! first, shares it: head and ids then cost a create no page of their own,
//! 5 pages in all. With a thousand servers most creates count in another
//! leaf and write 6, as every create did before schema v8, when head and
//! ids lived in `sqlite_sequence`, AUTOINCREMENT's page
//! (tests/sqlite_pages.rs).

use rusqlite::types::Value;
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

/// The reserved row as one write reads it: with the largest stored ids
/// (rows written by hand), so the ids taken are past both, as AUTOINCREMENT
/// did, and the head; one row even if the reserved row is gone.
pub(super) const MARKS_SQL: &str = concat!(
    "SELECT MAX(COALESCE(r.actions_seq, 0), (SELECT COALESCE(MAX(id), 0) FROM actions)), \
     MAX(COALESCE(r.events_seq, 0), (SELECT COALESCE(MAX(id), 0) FROM action_events)), \
     r.audit_head, r.n IS NOT NULL \
     FROM (SELECT 1) LEFT JOIN action_counts r ON r.",
    reserved_row!()
);

/// The ids' high-water marks and the audit head, read once per write
/// transaction that takes ids or logs events, and written back once at its
/// end ([`Marks::write`]): two statements for all of it.
pub(super) struct Marks {
    /// The last action id taken.
    last_action_id: i64,
    /// The last event id taken.
    last_event_id: i64,
    /// The chain's head, if stored (a stored value that is not a head reads
    /// as a head no chain matches).
    head: Option<AuditHead>,
    /// Whether the reserved row exists.
    stored: bool,
}

impl Marks {
    /// The marks as stored, in the caller's write transaction.
    pub(super) fn read(tx: &Connection) -> Result<Marks> {
        tx.prepare_cached(MARKS_SQL)
            .and_then(|mut select| {
                select.query_row([], |r| {
                    Ok(Marks {
                        last_action_id: r.get(0)?,
                        last_event_id: r.get(1)?,
                        head: head_from(r.get(2)?),
                        stored: r.get(3)?,
                    })
                })
            })
            .context("read id marks")
    }

    /// Takes the next action id: never one taken before, even once the
    /// newest rows are deleted.
    pub(super) fn take_action_id(&mut self) -> i64 {
        self.last_action_id += 1;
        self.last_action_id
    }

    /// Appends `event`, chained after the head, and moves the head to it.
    pub(super) fn append(&mut self, tx: &Connection, event: &EventDraft) -> Result<()> {
        let prev = self.head.unwrap_or_default().hash;
        let hash = event_hash(&prev, event);
        let id = self.last_event_id + 1;
        tx.prepare_cached(
            "INSERT INTO action_events (id, action_id, from_status, to_status, actor, at, \
             detail, prev_hash, hash, kind, subject, digest, hash_version) \
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
        super::wake::logged(event);
        self.last_event_id = id;
        self.head = Some(AuditHead {
            last_event_id: id,
            hash,
        });
        Ok(())
    }

    /// Stores the marks (the reserved row again, if it was deleted).
    pub(super) fn write(&self, tx: &Connection) -> Result<()> {
        let head = self.head.as_ref().map(|h| head_blob(h).to_vec());
        let values = params![self.last_action_id, self.last_event_id, head];
        let sql = if self.stored {
            concat!(
                "UPDATE action_counts SET actions_seq = ?1, events_seq = ?2, audit_head = ?3 \
                 WHERE ",
                reserved_row!()
            )
        } else {
            "INSERT INTO action_counts (server_id, action_type, status, n, actions_seq, \
             events_seq, audit_head) VALUES ('', '', '', 0, ?1, ?2, ?3)"
        };
        tx.prepare_cached(sql)
            .and_then(|mut write| write.execute(values))
            .context("write id marks")?;
        Ok(())
    }
}

/// The head as stored: the last event id (8 bytes, big-endian), then its hash.
pub(super) fn head_blob(head: &AuditHead) -> [u8; 40] {
    let mut blob = [0u8; 40];
    blob[..8].copy_from_slice(&head.last_event_id.to_be_bytes());
    blob[8..].copy_from_slice(&head.hash);
    blob
}

/// The head a stored value holds: none for NULL, one no chain matches for a
/// value that is not a head.
fn head_from(value: Value) -> Option<AuditHead> {
    match value {
        Value::Null => None,
        Value::Blob(b) if b.len() == 40 => Some(AuditHead {
            last_event_id: i64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            hash: b[8..].try_into().expect("32 bytes"),
        }),
        _ => Some(AuditHead {
            last_event_id: -1,
            hash: [0xff; 32],
        }),
    }
}

/// The audit head's stored value.
pub(super) const HEAD_SQL: &str = concat!(
    "SELECT audit_head FROM action_counts WHERE ",
    reserved_row!()
);

/// The head of the chain, if stored.
fn head(conn: &Connection) -> Result<Option<AuditHead>> {
    conn.prepare_cached(HEAD_SQL)
        .and_then(|mut select| select.query_row([], |r| r.get(0)).optional())
        .map(|value| value.and_then(head_from))
        .context("read audit head")
}

/// Appends `event` in the caller's write transaction, chained after the head,
/// and moves the head to it.
pub(super) fn log(tx: &Connection, event: &EventDraft) -> Result<()> {
    let mut marks = Marks::read(tx)?;
    marks.append(tx, event)?;
    marks.write(tx)
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
        let checkpoint = super::retention::checkpoint(conn)?;
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
        AuditVerifier::walk(&checkpoint.audit, chain, head.as_ref())
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
