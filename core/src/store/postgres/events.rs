//! The audit log: events appended with their chain (the ids row's lock and
//! head, see the module docs of the store), read by cursor, and the chain
//! walked for verification.

use std::collections::BTreeMap;

use postgres::fallible_iterator::FallibleIterator;

use super::actions::get;
use super::rows::{event_columns, event_from_row, hash_from, ts};
use super::{Conn, Db, Failure, Out};
use crate::audit::{event_hash, AuditHead, AuditReport, AuditVerifier, ChainedEvent, HASH_VERSION};
use crate::error::Error;
use crate::model::{ActionStatus, Event};
use crate::store::EventDraft;

/// Up to $2 events after id $1, oldest first.
pub(super) const SINCE_SQL: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM action_events WHERE id > $1 ORDER BY id LIMIT $2"
);

/// The row of `actionq_ids`: the last ids handed out and the chain's head.
pub(super) struct Ids {
    pub(super) last_action_id: i64,
    pub(super) head: AuditHead,
}

/// Locks the row of `actionq_ids` (ids and chain head) and reads it: the
/// second-to-last statement of every transaction that logs events, followed
/// only by the one that writes the events and moves the row (module docs).
pub(super) fn lock_ids(conn: &mut Conn) -> Out<Ids> {
    let rows = conn
        .query(
            "SELECT last_action_id, last_event_id, head_hash FROM actionq_ids FOR UPDATE",
            &[],
        )
        .db("log event")?;
    let row = rows
        .first()
        .ok_or_else(|| Error::Storage("log event: the id counter row is missing".into()))?;
    Ok(Ids {
        last_action_id: row.try_get(0).db("log event")?,
        head: AuditHead {
            last_event_id: row.try_get(1).db("log event")?,
            hash: hash_from(row.try_get(2).db("log event")?),
        },
    })
}

/// Events chained after a head: their ids, `prev_hash`es and hashes, as
/// the insert binds them, and the head after the last.
pub(super) struct Chained {
    pub(super) ids: Vec<i64>,
    pub(super) prevs: Vec<Vec<u8>>,
    pub(super) hashes: Vec<Vec<u8>>,
    pub(super) head: AuditHead,
}

/// `events` chained after `head`.
pub(super) fn chain(head: &AuditHead, events: &[EventDraft]) -> Chained {
    let mut chained = Chained {
        ids: Vec::with_capacity(events.len()),
        prevs: Vec::with_capacity(events.len()),
        hashes: Vec::with_capacity(events.len()),
        head: *head,
    };
    for event in events {
        let hash = event_hash(&chained.head.hash, event);
        chained.ids.push(chained.head.last_event_id + 1);
        chained.prevs.push(chained.head.hash.to_vec());
        chained.hashes.push(hash.to_vec());
        chained.head = AuditHead {
            last_event_id: chained.head.last_event_id + 1,
            hash,
        };
    }
    chained
}

/// Logs `events` with the next event ids, chained after the head: locks the
/// id row, then one statement inserts the events and moves ids and head. The
/// last two statements before the commit (see the module docs).
pub(super) fn log(conn: &mut Conn, events: &[EventDraft]) -> Out<()> {
    let ids = lock_ids(conn)?;
    let Chained {
        ids: event_ids,
        prevs,
        hashes,
        head,
    } = chain(&ids.head, events);
    let action_ids: Vec<Option<i64>> = events.iter().map(|e| e.action_id).collect();
    let from: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.from_status.map(ActionStatus::as_str))
        .collect();
    let to: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.to_status.map(ActionStatus::as_str))
        .collect();
    let by: Vec<&str> = events.iter().map(|e| e.by.as_str()).collect();
    let at: Vec<i64> = events.iter().map(|e| ts(e.at)).collect();
    let detail: Vec<Option<&str>> = events.iter().map(|e| e.detail.as_deref()).collect();
    let kind: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let subject: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    let digest: Vec<Option<&str>> = events.iter().map(|e| e.digest.as_deref()).collect();
    conn.execute(
        "WITH ids AS (UPDATE actionq_ids SET last_event_id = $1, head_hash = $2) \
         INSERT INTO action_events (id, action_id, from_status, to_status, actor, at, detail, \
                                    prev_hash, hash, kind, subject, digest, hash_version) \
         SELECT *, $15::bigint FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], \
                              $7::text[], $8::bigint[], $9::text[], $10::bytea[], $11::bytea[], \
                              $12::text[], $13::text[], $14::text[])",
        &[
            &head.last_event_id,
            &&head.hash[..],
            &event_ids,
            &action_ids,
            &from,
            &to,
            &by,
            &at,
            &detail,
            &prevs,
            &hashes,
            &kind,
            &subject,
            &digest,
            &HASH_VERSION,
        ],
    )
    .db("log event")?;
    for event in events {
        conn.logged.record_event(event);
    }
    Ok(())
}

/// Up to `limit` events after `cursor`, oldest first. Ids become visible in
/// order (module docs), so nothing below the last one returned can appear later.
pub(super) fn since(conn: &mut Conn, cursor: i64, limit: u32) -> Out<Vec<Event>> {
    let rows = conn
        .query(SINCE_SQL, &[&cursor, &i64::from(limit)])
        .db("events")?;
    Ok(rows.iter().map(event_from_row).collect::<Result<_, _>>()?)
}

/// Walks the chain and the head, inside a transaction at REPEATABLE READ
/// (one snapshot of both), streaming the events.
pub(super) fn verify(conn: &mut Conn) -> Out<AuditReport> {
    conn.client
        .batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .db("verify audit")?;
    let rows = conn
        .query("SELECT last_event_id, head_hash FROM actionq_ids", &[])
        .db("verify audit")?;
    let head = rows
        .first()
        .map(|row| -> Out<AuditHead> {
            Ok(AuditHead {
                last_event_id: row.try_get(0).db("verify audit")?,
                hash: hash_from(row.try_get(1).db("verify audit")?),
            })
        })
        .transpose()?;
    let checkpoint = super::retention::checkpoint(conn, false)?;
    let statement = conn
        .prepared(concat!(
            "SELECT ",
            event_columns!(),
            ", prev_hash, hash, hash_version, digest FROM action_events ORDER BY id"
        ))
        .db("verify audit")?;
    let mut events = conn
        .client
        .query_raw(&statement, std::iter::empty::<i64>())
        .db("verify audit")?;
    // What each creation or approval event vouches for is checked against
    // the action row as it is now (read in the same snapshot, once the
    // events are read: one connection runs one statement at a time).
    let mut vouched = Vec::new();
    let mut chain = Vec::new();
    while let Some(row) = events.next().db("verify audit")? {
        let storage = |e: postgres::Error| Error::Storage(e.to_string());
        let chained = event_from_row(&row).and_then(|event| {
            let digest: Option<String> = row.try_get(12).map_err(storage)?;
            if let (Some(_), Some(id)) = (&digest, event.action_id) {
                vouched.push(id);
            }
            Ok(ChainedEvent {
                event,
                prev_hash: hash_from(row.try_get(9).map_err(storage)?),
                hash: hash_from(row.try_get(10).map_err(storage)?),
                hash_version: row.try_get(11).map_err(storage)?,
                digest,
                action: None,
            })
        });
        // A row that does not decode is reported by its id.
        chain.push(match chained {
            Ok(chained) => Ok(chained),
            Err(_) => Err(row.try_get::<_, i64>(0).db("verify audit")?),
        });
    }
    drop(events);
    let mut actions = BTreeMap::new();
    for id in vouched {
        if let Some(action) = get(conn, id)? {
            actions.insert(id, action);
        }
    }
    let chain = chain.into_iter().map(|link| {
        Ok::<_, Failure>(link.map(|mut chained| {
            if chained.digest.is_some() {
                chained.action = chained
                    .event
                    .action_id
                    .and_then(|id| actions.get(&id).cloned());
            }
            chained
        }))
    });
    AuditVerifier::walk(&checkpoint.audit, chain, head.as_ref())
}
