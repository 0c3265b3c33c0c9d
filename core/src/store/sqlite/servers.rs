//! Servers: registration, lookup, maintenance mode.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::rows::{server_columns, server_from_row, ts};
use super::{events, Context};
use crate::error::{Error, Result};
use crate::model::{Server, Timestamp};
use crate::store::EventDraft;

/// One server by id.
pub(super) const SELECT_SERVER_SQL: &str =
    concat!("SELECT ", server_columns!(), " FROM servers WHERE id = ?1");

/// Adds `server`; Conflict if its id is taken.
pub(super) fn insert(tx: &Transaction<'_>, server: &Server) -> Result<()> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO servers (id, hostname, is_paused, paused_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                server.id,
                server.hostname,
                server.is_paused,
                server.paused_at.map(ts),
                ts(server.created_at)
            ])
        })
        .context("insert server")?;
    if inserted == 0 {
        return Err(Error::conflict(format!(
            "Server '{}' already exists",
            server.id
        )));
    }
    Ok(())
}

/// The server with `id`, if registered (`what` names the operation in errors).
pub(super) fn get(conn: &Connection, id: &str, what: &str) -> Result<Option<Server>> {
    conn.prepare_cached(SELECT_SERVER_SQL)
        .and_then(|mut select| select.query_row([id], server_from_row).optional())
        .context(what)
}

/// Enters or leaves maintenance mode (keeping an earlier `paused_at`),
/// logging the change.
pub(super) fn set_paused(
    tx: &Transaction<'_>,
    id: &str,
    paused: bool,
    by: &str,
    at: Timestamp,
) -> Result<Option<Server>> {
    let changed = tx
        .prepare_cached(
            "UPDATE servers SET is_paused = ?2, paused_at = ?3 WHERE id = ?1 AND is_paused != ?2",
        )
        .and_then(|mut update| update.execute(params![id, paused, paused.then_some(ts(at))]))
        .context("pause server")?;
    if changed > 0 {
        events::log(tx, &EventDraft::server_paused(id, paused, by, at))?;
    }
    get(tx, id, "pause server")
}

/// Every server, ordered by id.
pub(super) fn list(conn: &Connection) -> Result<Vec<Server>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        server_columns!(),
        " FROM servers ORDER BY id"
    ))
    .and_then(|mut select| {
        select
            .query_map([], server_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .context("list servers")
}
