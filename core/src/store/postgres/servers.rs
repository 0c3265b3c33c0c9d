//! Servers: registration and maintenance mode.

use super::events::log;
use super::rows::{server_columns, server_from_row, ts};
use super::{Conn, Db, Out};
use crate::error::Error;
use crate::model::{Server, Timestamp};
use crate::store::EventDraft;

pub(super) const SELECT_SERVER_SQL: &str =
    concat!("SELECT ", server_columns!(), " FROM servers WHERE id = $1");
pub(super) const LOCK_SERVER_SQL: &str = concat!(
    "SELECT ",
    server_columns!(),
    " FROM servers WHERE id = $1 FOR NO KEY UPDATE"
);
/// Adds `server` (one statement); Conflict if its id is taken.
pub(super) fn insert(conn: &mut Conn, server: &Server) -> Out<()> {
    let inserted = conn
        .execute(
            "INSERT INTO servers (id, hostname, is_paused, paused_at, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            &[
                &server.id,
                &server.hostname,
                &server.is_paused,
                &server.paused_at.map(ts),
                &ts(server.created_at),
            ],
        )
        .db("insert server")?;
    if inserted == 0 {
        return Err(Error::conflict(format!("Server '{}' already exists", server.id)).into());
    }
    Ok(())
}

/// The server with `id`, if registered; row-locked when `lock`.
pub(super) fn get(conn: &mut Conn, id: &str, lock: bool) -> Out<Option<Server>> {
    let sql = if lock {
        LOCK_SERVER_SQL
    } else {
        SELECT_SERVER_SQL
    };
    let rows = conn.query(sql, &[&id]).db("get server")?;
    Ok(rows.first().map(server_from_row).transpose()?)
}

/// Enters or leaves maintenance mode, keeping an earlier `paused_at`, and
/// logs a change (in the caller's transaction). The update locks the row
/// and only matches a server in the other state, so a concurrent pause logs once.
pub(super) fn set_paused(
    conn: &mut Conn,
    id: &str,
    paused: bool,
    by: &str,
    at: Timestamp,
) -> Out<Option<Server>> {
    let rows = conn
        .query(
            concat!(
                "UPDATE servers SET is_paused = $2, paused_at = $3 \
                 WHERE id = $1 AND is_paused <> $2 RETURNING ",
                server_columns!()
            ),
            &[&id, &paused, &paused.then_some(ts(at))],
        )
        .db("pause server")?;
    match rows.first() {
        Some(row) => {
            let server = server_from_row(row)?;
            log(conn, &[EventDraft::server_paused(id, paused, by, at)])?;
            Ok(Some(server))
        }
        None => get(conn, id, false),
    }
}

/// Every server, ordered by id.
pub(super) fn list(conn: &mut Conn) -> Out<Vec<Server>> {
    let rows = conn
        .query(
            concat!("SELECT ", server_columns!(), " FROM servers ORDER BY id"),
            &[],
        )
        .db("list servers")?;
    Ok(rows.iter().map(server_from_row).collect::<Result<_, _>>()?)
}
