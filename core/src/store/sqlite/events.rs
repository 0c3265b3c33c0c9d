//! The audit log: appended inside each write, read by cursor.

use rusqlite::{params, Connection, Transaction};

use super::rows::{event_from_row, ts};
use super::Context;
use crate::error::Result;
use crate::model::{ActionStatus, Event};
use crate::store::EventDraft;

/// Appends `event` in the caller's write transaction.
pub(super) fn log(tx: &Transaction<'_>, event: &EventDraft) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO action_events (action_id, from_status, to_status, actor, at, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            event.action_id,
            event.from_status.map(ActionStatus::as_str),
            event.to_status.as_str(),
            event.by,
            ts(event.at),
            event.detail
        ])
    })
    .context("log event")?;
    Ok(())
}

/// Up to `limit` events after `cursor`, oldest first.
pub(super) fn since(conn: &Connection, cursor: i64, limit: u32) -> Result<Vec<Event>> {
    conn.prepare_cached(
        "SELECT id, action_id, from_status, to_status, actor, at, detail FROM action_events \
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )
    .and_then(|mut select| {
        select
            .query_map(params![cursor, limit], event_from_row)?
            .collect()
    })
    .context("events")
}
