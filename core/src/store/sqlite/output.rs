//! Statements of `action_output`: the live output chunks of actions.

use rusqlite::{params, Connection};

use super::actions::load;
use super::rows::{required_micros, ts};
use super::Context;
use crate::error::{Error, Result};
use crate::model::OutputChunk;
use crate::store::{OutputDraft, OutputSoFar};

/// The last seq and the characters kept so far of action `?1`'s output.
pub(super) const SO_FAR_SQL: &str =
    "SELECT COALESCE(MAX(seq), 0), COALESCE(SUM(length(stdout)), 0), \
     COALESCE(SUM(length(stderr)), 0) FROM action_output WHERE action_id = ?1";

/// The chunks of action `?1` after seq `?2`.
pub(super) const SINCE_SQL: &str = "SELECT seq, stdout, stderr, at FROM action_output \
     WHERE action_id = ?1 AND seq > ?2 ORDER BY seq";

/// Checks and stores one chunk, inside the caller's write transaction.
pub(super) fn append(tx: &Connection, id: i64, draft: &OutputDraft) -> Result<bool> {
    let (action, token) = load(tx, id)?.ok_or_else(|| Error::action_not_found(id))?;
    let so_far = tx
        .prepare_cached(SO_FAR_SQL)
        .and_then(|mut select| {
            select.query_row([id], |r| {
                Ok(OutputSoFar {
                    last_seq: r.get(0)?,
                    stdout_chars: r.get::<_, i64>(1)? as usize,
                    stderr_chars: r.get::<_, i64>(2)? as usize,
                })
            })
        })
        .context("read output")?;
    let Some(chunk) = draft.to_store(&action, token.as_deref(), so_far)? else {
        return Ok(false);
    };
    tx.prepare_cached(
        "INSERT INTO action_output (action_id, seq, stdout, stderr, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut insert| {
        insert.execute(params![id, chunk.seq, chunk.stdout, chunk.stderr, ts(chunk.at)])
    })
    .context("store output")?;
    super::wake::touched_server(&action.server_id);
    Ok(true)
}

/// The chunks of action `id` after `after`, by seq.
pub(super) fn since(conn: &Connection, id: i64, after: i64) -> Result<Vec<OutputChunk>> {
    conn.prepare_cached(SINCE_SQL)
        .and_then(|mut select| {
            select
                .query_map(params![id, after], |r| {
                    Ok(OutputChunk {
                        seq: r.get(0)?,
                        stdout: r.get(1)?,
                        stderr: r.get(2)?,
                        at: required_micros(r.get(3)?)?,
                    })
                })?
                .collect()
        })
        .context("read output")
}
