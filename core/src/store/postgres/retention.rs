//! Prune (`docs/contract/retention.md`): the checkpoint row and the batch
//! that deletes a prefix of the log with its actions.

use std::collections::BTreeMap;

use super::actions::count;
use super::rows::hash_from;
use super::{Conn, Db, Out};
use crate::audit::AuditHead;
use crate::error::Error;
use crate::store::PruneCheckpoint;

/// Tables holding rows per action (keyed by `action_id`), deleted with
/// their action. The one place a new per-action table is added.
const PER_ACTION_TABLES: &[&str] = &["action_output"];

/// The checkpoint row; `FOR UPDATE` in a prune batch.
const CHECKPOINT_SQL: &str =
    "SELECT last_event_id, hash, last_action_id FROM actionq_prune_checkpoint";

/// The stored checkpoint (`lock`: locked until the transaction ends).
/// Without the lock, a missing row reads as nothing pruned.
pub(super) fn checkpoint(conn: &mut Conn, lock: bool) -> Out<PruneCheckpoint> {
    let sql = if lock {
        format!("{CHECKPOINT_SQL} FOR UPDATE")
    } else {
        CHECKPOINT_SQL.to_owned()
    };
    let rows = conn.query(&sql, &[]).db("read prune checkpoint")?;
    let Some(row) = rows.first() else {
        // A reader sees a deleted row as no prune (which the chain then
        // contradicts); a prune cannot move what is not there.
        if lock {
            return Err(Error::Storage("the prune checkpoint row is missing".into()).into());
        }
        return Ok(PruneCheckpoint::default());
    };
    Ok(PruneCheckpoint {
        audit: AuditHead {
            last_event_id: row.try_get(0).db("read prune checkpoint")?,
            hash: hash_from(
                row.try_get::<_, Option<&[u8]>>(1)
                    .db("read prune checkpoint")?,
            ),
        },
        last_action_id: row.try_get(2).db("read prune checkpoint")?,
    })
}

/// [`Store::prune_prefix`](crate::store::Store::prune_prefix), inside a
/// transaction. Locks the checkpoint row first (only prunes take it), then
/// the actions by deleting them, then counts in key order: the store's lock
/// order.
pub(super) fn prune_prefix(
    conn: &mut Conn,
    from: &PruneCheckpoint,
    last_event_id: i64,
    last_action_id: i64,
) -> Out<Option<u64>> {
    if checkpoint(conn, true)? != *from || last_event_id <= from.audit.last_event_id {
        return Ok(None);
    }
    let rows = conn
        .query(
            "SELECT hash FROM action_events WHERE id = $1",
            &[&last_event_id],
        )
        .db("prune")?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let hash = hash_from(row.try_get::<_, Option<&[u8]>>(0).db("prune")?);
    let range: [&(dyn postgres::types::ToSql + Sync); 2] = [&from.last_action_id, &last_action_id];
    let live = conn
        .query(
            "SELECT id, status FROM actions WHERE id > $1 AND id <= $2 \
             AND status IN ('pending', 'approved', 'executing') LIMIT 1",
            &range,
        )
        .db("prune")?;
    if let Some(row) = live.first() {
        let (id, status): (i64, String) =
            (row.try_get(0).db("prune")?, row.try_get(1).db("prune")?);
        return Err(Error::conflict(format!("prune refused: action {id} is {status}")).into());
    }
    let gone = conn
        .query(
            "WITH gone AS (DELETE FROM actions WHERE id > $1 AND id <= $2 \
                           RETURNING server_id, action_type, status) \
             SELECT server_id, action_type, status, COUNT(*) FROM gone GROUP BY 1, 2, 3",
            &range,
        )
        .db("prune actions")?;
    let mut deltas = BTreeMap::new();
    let mut deleted = 0;
    for row in &gone {
        let status: String = row.try_get(2).db("prune counts")?;
        let status = status
            .parse::<crate::ActionStatus>()
            .map_err(|e| Error::Storage(format!("corrupt status in the database: {e}")))?;
        let n: i64 = row.try_get(3).db("prune counts")?;
        deleted += n as u64;
        deltas.insert(
            (
                row.try_get::<_, String>(0).db("prune counts")?,
                row.try_get::<_, String>(1).db("prune counts")?,
                status.as_str(),
            ),
            -n,
        );
    }
    count(conn, deltas)?;
    for table in PER_ACTION_TABLES {
        conn.execute(
            &format!("DELETE FROM {table} WHERE action_id > $1 AND action_id <= $2"),
            &range,
        )
        .db("prune")?;
    }
    conn.execute(
        "DELETE FROM action_events WHERE id > $1 AND id <= $2",
        &[&from.audit.last_event_id, &last_event_id],
    )
    .db("prune events")?;
    conn.execute(
        "UPDATE actionq_prune_checkpoint SET last_event_id = $1, hash = $2, last_action_id = $3",
        &[&last_event_id, &&hash[..], &last_action_id],
    )
    .db("prune checkpoint")?;
    Ok(Some(deleted))
}
