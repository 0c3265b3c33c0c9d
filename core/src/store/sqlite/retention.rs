//! Prune (`docs/contract/retention.md`): the checkpoint row and the batch
//! that deletes a prefix of the log with its actions.

use rusqlite::{params, Connection, OptionalExtension};

use super::Context;
use crate::audit::AuditHead;
use crate::error::{Error, Result};
use crate::store::PruneCheckpoint;

/// Tables holding rows per action (keyed by `action_id`), deleted with
/// their action. The one place a new per-action table is added.
pub(super) const PER_ACTION_TABLES: &[&str] = &["action_output"];

/// The checkpoint row (none until the first prune).
pub(super) const CHECKPOINT_SQL: &str =
    "SELECT last_event_id, hash, last_action_id FROM prune_checkpoint WHERE id = 1";

/// The stored checkpoint; the empty log's when nothing was pruned. A stored
/// hash that is not 32 bytes reads as one no chain matches.
pub(super) fn checkpoint(conn: &Connection) -> Result<PruneCheckpoint> {
    let row: Option<(i64, Vec<u8>, i64)> = conn
        .prepare_cached(CHECKPOINT_SQL)
        .and_then(|mut select| {
            select
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .context("read prune checkpoint")?;
    Ok(match row {
        None => PruneCheckpoint::default(),
        Some((last_event_id, hash, last_action_id)) => PruneCheckpoint {
            audit: AuditHead {
                last_event_id,
                hash: hash.try_into().unwrap_or([0xff; 32]),
            },
            last_action_id,
        },
    })
}

/// Whether a live action has an id in `(after, through]`: a seek by id.
const LIVE_IN_RANGE_SQL: &str = "SELECT id, status FROM actions WHERE id > ?1 AND id <= ?2 \
     AND status IN ('pending', 'approved', 'executing') LIMIT 1";

/// [`Store::prune_prefix`](crate::store::Store::prune_prefix), inside the
/// write transaction.
pub(super) fn prune_prefix(
    tx: &Connection,
    from: &PruneCheckpoint,
    last_event_id: i64,
    last_action_id: i64,
) -> Result<Option<u64>> {
    if checkpoint(tx)? != *from {
        return Ok(None);
    }
    let hash: Option<Vec<u8>> = tx
        .prepare_cached("SELECT hash FROM action_events WHERE id = ?1")
        .and_then(|mut select| select.query_row([last_event_id], |r| r.get(0)).optional())
        .context("prune")?;
    let Some(hash) = hash.filter(|_| last_event_id > from.audit.last_event_id) else {
        return Ok(None);
    };
    let live: Option<(i64, String)> = tx
        .prepare_cached(LIVE_IN_RANGE_SQL)
        .and_then(|mut select| {
            select
                .query_row(params![from.last_action_id, last_action_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
        })
        .context("prune")?;
    if let Some((id, status)) = live {
        return Err(Error::conflict(format!(
            "prune refused: action {id} is {status}"
        )));
    }
    let range = params![from.last_action_id, last_action_id];
    // The running totals lose the pruned actions (the reserved row, whose
    // status is empty, never matches a group).
    tx.prepare_cached(
        "UPDATE action_counts SET n = n - g.k FROM \
           (SELECT server_id, action_type, status, COUNT(*) AS k FROM actions \
            WHERE id > ?1 AND id <= ?2 GROUP BY server_id, action_type, status) AS g \
         WHERE action_counts.server_id = g.server_id \
           AND action_counts.action_type = g.action_type \
           AND action_counts.status = g.status",
    )
    .and_then(|mut update| update.execute(range))
    .context("prune counts")?;
    for table in PER_ACTION_TABLES {
        tx.execute(
            &format!("DELETE FROM {table} WHERE action_id > ?1 AND action_id <= ?2"),
            range,
        )
        .context("prune")?;
    }
    tx.prepare_cached("DELETE FROM action_events WHERE id > ?1 AND id <= ?2")
        .and_then(|mut delete| delete.execute(params![from.audit.last_event_id, last_event_id]))
        .context("prune events")?;
    let deleted = tx
        .prepare_cached("DELETE FROM actions WHERE id > ?1 AND id <= ?2")
        .and_then(|mut delete| delete.execute(range))
        .context("prune actions")?;
    tx.prepare_cached(
        "INSERT INTO prune_checkpoint (id, last_event_id, hash, last_action_id) \
         VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET \
         last_event_id = excluded.last_event_id, hash = excluded.hash, \
         last_action_id = excluded.last_action_id",
    )
    .and_then(|mut upsert| upsert.execute(params![last_event_id, hash, last_action_id]))
    .context("prune checkpoint")?;
    Ok(Some(deleted as u64))
}
