//! Statements of `action_output`: the live output chunks of actions.

use super::actions::LOCK_ACTION_SQL;
use super::rows::{action_and_token, bad, required_micros, ts};
use super::{Conn, Db, Out};
use crate::error::Error;
use crate::model::{EventKind, OutputChunk};
use crate::store::{OutputDraft, OutputSoFar};

/// The last seq and the characters kept so far of action `$1`'s output.
pub(super) const SO_FAR_SQL: &str = "SELECT COALESCE(MAX(seq), 0)::bigint, \
     COALESCE(SUM(stdout_chars), 0)::bigint, COALESCE(SUM(stderr_chars), 0)::bigint \
     FROM action_output WHERE action_id = $1";

/// The chunks of action `$1` after seq `$2`.
pub(super) const SINCE_SQL: &str = "SELECT seq, stdout, stderr, at FROM action_output \
     WHERE action_id = $1 AND seq > $2 ORDER BY seq";

/// Checks and stores one chunk, inside a transaction that locks the action
/// row first (so chunks of one action are appended one at a time).
pub(super) fn append(conn: &mut Conn, id: i64, draft: &OutputDraft) -> Out<bool> {
    let rows = conn.query(LOCK_ACTION_SQL, &[&id]).db("store output")?;
    let row = rows.first().ok_or_else(|| Error::action_not_found(id))?;
    let (action, token) = action_and_token(row)?;
    let sums = conn.query(SO_FAR_SQL, &[&id]).db("read output")?;
    let sums = &sums[0];
    let so_far = OutputSoFar {
        last_seq: sums.get(0),
        stdout_chars: sums.get::<_, i64>(1) as usize,
        stderr_chars: sums.get::<_, i64>(2) as usize,
    };
    let Some(chunk) = draft.to_store(&action, token.as_deref(), so_far)? else {
        return Ok(false);
    };
    conn.execute(
        "INSERT INTO action_output (action_id, seq, stdout, stderr, stdout_chars, stderr_chars, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &id,
            &chunk.seq,
            &chunk.stdout.as_bytes(),
            &chunk.stderr.as_bytes(),
            &(chunk.stdout.chars().count() as i64),
            &(chunk.stderr.chars().count() as i64),
            &ts(chunk.at),
        ],
    )
    .db("store output")?;
    // No event is logged: named in the commit's NOTIFY so that output
    // readers on every replica, waiting on the action's server, wake.
    conn.logged.record(EventKind::Action, &action.server_id);
    Ok(true)
}

/// The chunks of action `id` after `after`, by seq.
pub(super) fn since(conn: &mut Conn, id: i64, after: i64) -> Out<Vec<OutputChunk>> {
    let rows = conn.query(SINCE_SQL, &[&id, &after]).db("read output")?;
    let text = |bytes: Vec<u8>, what: &str| String::from_utf8(bytes).map_err(|e| bad(what, e));
    rows.iter()
        .map(|r| {
            Ok(OutputChunk {
                seq: r.get(0),
                stdout: text(r.get(1), "stdout")?,
                stderr: text(r.get(2), "stderr")?,
                at: required_micros(r.get(3))?,
            })
        })
        .collect()
}
