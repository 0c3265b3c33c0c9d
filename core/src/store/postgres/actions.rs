//! The statements: servers, actions with their conflict checks, every status
//! change (one path, [`write_back`], for updates, claims and expiry), counts,
//! events. Every function runs on a connection the store's runner hands it,
//! inside a transaction where it says so.

use std::collections::BTreeMap;

use postgres::types::ToSql;

use super::rows::{
    action_and_token, action_columns, action_from_row, event_from_row, json, server_columns,
    server_from_row, ts,
};
use super::{Conn, Db, Failure};
use crate::error::Error;
use crate::model::{Action, ActionFilter, ActionStatus, Event, Server, Timestamp};
use crate::store::{ActionDraft, Change, ConflictGuard, EventDraft, PageRequest};

type Out<T> = std::result::Result<T, Failure>;

const SELECT_SERVER_SQL: &str =
    concat!("SELECT ", server_columns!(), " FROM servers WHERE id = $1");
const LOCK_SERVER_SQL: &str = concat!(
    "SELECT ",
    server_columns!(),
    " FROM servers WHERE id = $1 FOR NO KEY UPDATE"
);
const SELECT_ACTION_SQL: &str =
    concat!("SELECT ", action_columns!(), " FROM actions WHERE id = $1");
const LOCK_ACTION_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE id = $1 FOR UPDATE"
);

/// Pending actions of a server with the given type and command, oldest first.
const PENDING_DUPLICATES_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = $1 AND status = 'pending' AND action_type = $2 \
    AND command = $3 ORDER BY id"
);

/// Pending, approved or executing actions of a server with one of the types, oldest first.
const ACTIVE_OF_TYPES_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = $1 AND action_type = ANY($2) \
    AND status IN ('pending', 'approved', 'executing') ORDER BY id"
);

/// The oldest approved action of a server that no other transaction holds.
const NEXT_APPROVED_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = $1 AND status = 'approved' \
    ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
);

/// Executing actions whose lease ran out by $1, locked, by id.
const DUE_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE status = 'executing' AND lease_expires_at <= $1 ORDER BY id FOR UPDATE"
);

/// Adds `server` (one statement); Conflict if its id is taken.
pub(super) fn insert_server(conn: &mut Conn, server: &Server) -> Out<()> {
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
pub(super) fn get_server(conn: &mut Conn, id: &str, lock: bool) -> Out<Option<Server>> {
    let sql = if lock {
        LOCK_SERVER_SQL
    } else {
        SELECT_SERVER_SQL
    };
    let rows = conn.query(sql, &[&id]).db("get server")?;
    Ok(rows.first().map(server_from_row).transpose()?)
}

/// Enters or leaves maintenance mode, keeping an earlier `paused_at`. One
/// statement: it locks the row, so it reads the state it changes.
pub(super) fn set_paused(
    conn: &mut Conn,
    id: &str,
    paused_at: Option<Timestamp>,
) -> Out<Option<Server>> {
    let rows = conn
        .query(
            concat!(
                "UPDATE servers SET is_paused = $2, \
                 paused_at = CASE WHEN is_paused = $2 THEN paused_at ELSE $3 END \
                 WHERE id = $1 RETURNING ",
                server_columns!()
            ),
            &[&id, &paused_at.is_some(), &paused_at.map(ts)],
        )
        .db("pause server")?;
    Ok(rows.first().map(server_from_row).transpose()?)
}

/// The action with `id`, if any.
pub(super) fn get(conn: &mut Conn, id: i64) -> Out<Option<Action>> {
    let rows = conn.query(SELECT_ACTION_SQL, &[&id]).db("get action")?;
    Ok(rows.first().map(|r| action_from_row(r, 0)).transpose()?)
}

/// Keeps `action_counts` in step with the given changes of (server, type,
/// status) totals, in one statement that locks the rows in key order.
fn count(conn: &mut Conn, deltas: BTreeMap<(String, String, &'static str), i64>) -> Out<()> {
    let deltas: Vec<_> = deltas.into_iter().filter(|(_, n)| *n != 0).collect();
    if deltas.is_empty() {
        return Ok(());
    }
    let servers: Vec<&str> = deltas.iter().map(|((s, _, _), _)| s.as_str()).collect();
    let types: Vec<&str> = deltas.iter().map(|((_, t, _), _)| t.as_str()).collect();
    let statuses: Vec<&str> = deltas.iter().map(|((_, _, st), _)| *st).collect();
    let ns: Vec<i64> = deltas.iter().map(|(_, n)| *n).collect();
    conn.execute(
        "INSERT INTO action_counts (server_id, action_type, status, n) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) \
         ON CONFLICT (server_id, action_type, status) DO UPDATE SET n = action_counts.n + excluded.n",
        &[&servers, &types, &statuses, &ns],
    )
    .db("count")?;
    Ok(())
}

/// Logs `events` with the next event ids, taken from `actionq_ids` in the same
/// statement; the last statement before the commit (see the module docs).
fn log_events(conn: &mut Conn, events: &[EventDraft]) -> Out<()> {
    let n = events.len() as i64;
    let action_ids: Vec<i64> = events.iter().map(|e| e.action_id).collect();
    let from: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.from_status.map(ActionStatus::as_str))
        .collect();
    let to: Vec<&str> = events.iter().map(|e| e.to_status.as_str()).collect();
    let by: Vec<&str> = events.iter().map(|e| e.by.as_str()).collect();
    let at: Vec<i64> = events.iter().map(|e| ts(e.at)).collect();
    let detail: Vec<Option<&str>> = events.iter().map(|e| e.detail.as_deref()).collect();
    conn.execute(
        "WITH ids AS (UPDATE actionq_ids SET last_event_id = last_event_id + $1 \
                      RETURNING last_event_id) \
         INSERT INTO action_events (id, action_id, from_status, to_status, actor, at, detail) \
         SELECT ids.last_event_id - $1 + e.n, e.action_id, e.from_status, e.to_status, \
                e.actor, e.at, e.detail \
         FROM ids, unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[]) \
              WITH ORDINALITY AS e(action_id, from_status, to_status, actor, at, detail, n)",
        &[&n, &action_ids, &from, &to, &by, &at, &detail],
    )
    .db("log event")?;
    Ok(())
}

/// The oldest stored action that `guard` says blocks `draft`, as every store
/// reports it. The server's row is locked, so no create for it runs meanwhile.
fn oldest_collision(
    conn: &mut Conn,
    draft: &ActionDraft,
    guard: &ConflictGuard,
) -> Out<Option<i64>> {
    let rows = match guard {
        ConflictGuard::None => return Ok(None),
        ConflictGuard::PendingDuplicate { .. } => conn.query(
            PENDING_DUPLICATES_SQL,
            &[&draft.server_id, &draft.action_type, &draft.command],
        ),
        ConflictGuard::ActiveInGroup { action_types, .. } => {
            conn.query(ACTIVE_OF_TYPES_SQL, &[&draft.server_id, action_types])
        }
    }
    .db("create action")?;
    // Rows come by id: the first collision is the oldest.
    for row in &rows {
        let existing = action_from_row(row, 0)?;
        if guard.collides(draft, &existing) {
            return Ok(Some(existing.id));
        }
    }
    Ok(None)
}

/// [`Store::insert_action`](crate::store::Store::insert_action), inside a transaction.
pub(super) fn insert(conn: &mut Conn, draft: ActionDraft, guard: &ConflictGuard) -> Out<Action> {
    let server = get_server(conn, &draft.server_id, true)?
        .ok_or_else(|| Error::server_not_found(&draft.server_id))?;
    if let Some(existing) = oldest_collision(conn, &draft, guard)? {
        return Err(guard.error(existing).into());
    }
    let (mut action, event) = draft.into_action(0, &server);
    let key = (
        action.server_id.clone(),
        action.action_type.clone(),
        action.status.as_str(),
    );
    count(conn, BTreeMap::from([(key, 1)]))?;
    // Last: the action and event ids, the action and its creation event, in
    // one statement holding the id row until the commit.
    let params: [&(dyn ToSql + Sync); 15] = [
        &action.server_id,
        &action.action_type,
        &action.status.as_str(),
        &action.service_name,
        &action.command,
        &json(&action.argv),
        &json(&action.env),
        &action.alert_id,
        &ts(action.created_at),
        &action.created_by,
        &action.approved_at.map(ts),
        &action.approved_by,
        &event.to_status.as_str(),
        &event.by,
        &event.detail,
    ];
    let rows = conn
        .query(
            "WITH ids AS (UPDATE actionq_ids SET last_action_id = last_action_id + 1, \
                          last_event_id = last_event_id + 1 \
                          RETURNING last_action_id, last_event_id), \
             a AS (INSERT INTO actions (id, server_id, action_type, status, service_name, command, \
                       argv, env, alert_id, created_at, created_by, approved_at, approved_by) \
                   SELECT last_action_id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM ids), \
             e AS (INSERT INTO action_events (id, action_id, from_status, to_status, actor, at, detail) \
                   SELECT last_event_id, last_action_id, NULL, $13, $14, $9, $15 FROM ids) \
             SELECT last_action_id FROM ids",
            &params,
        )
        .db("create action")?;
    action.id = rows
        .first()
        .ok_or_else(|| Error::Storage("create action: the id counter row is missing".into()))?
        .try_get(0)
        .db("create action")?;
    Ok(action)
}

/// Applies `change` to each locked `(action, token)`, writes the rows back,
/// then counts and events. Heartbeats change only the lease.
fn write_back(
    conn: &mut Conn,
    locked: Vec<(Action, Option<String>)>,
    change: &Change,
) -> Out<Vec<Action>> {
    let mut deltas = BTreeMap::new();
    let mut events = Vec::new();
    let mut out = Vec::with_capacity(locked.len());
    for (mut action, mut token) in locked {
        let from = action.status;
        let Some(event) = change.apply(&mut action, &mut token)? else {
            conn.execute(
                "UPDATE actions SET lease_expires_at = $2 WHERE id = $1",
                &[&action.id, &action.lease_expires_at.map(ts)],
            )
            .db("update action")?;
            out.push(action);
            continue;
        };
        let params: [&(dyn ToSql + Sync); 16] = [
            &action.id,
            &action.status.as_str(),
            &action.approved_at.map(ts),
            &action.approved_by,
            &action.rejected_at.map(ts),
            &action.rejected_by,
            &action.rejection_reason,
            &action.cancelled_at.map(ts),
            &action.cancelled_by,
            &action.executed_at.map(ts),
            &action.lease_expires_at.map(ts),
            &token,
            &action.completed_at.map(ts),
            &action.exit_code,
            &action.stdout,
            &action.stderr,
        ];
        conn.execute(
            "UPDATE actions SET status = $2, approved_at = $3, approved_by = $4, rejected_at = $5, \
             rejected_by = $6, rejection_reason = $7, cancelled_at = $8, cancelled_by = $9, \
             executed_at = $10, lease_expires_at = $11, lease_token = $12, completed_at = $13, \
             exit_code = $14, stdout = $15, stderr = $16 WHERE id = $1",
            &params,
        )
        .db("update action")?;
        let key = |status: ActionStatus| {
            (
                action.server_id.clone(),
                action.action_type.clone(),
                status.as_str(),
            )
        };
        *deltas.entry(key(from)).or_insert(0) -= 1;
        *deltas.entry(key(action.status)).or_insert(0) += 1;
        events.push(event);
        out.push(action);
    }
    count(conn, deltas)?;
    if !events.is_empty() {
        log_events(conn, &events)?;
    }
    Ok(out)
}

/// [`Store::update_action`](crate::store::Store::update_action), inside a transaction.
pub(super) fn update(conn: &mut Conn, id: i64, change: &Change) -> Out<Action> {
    let rows = conn.query(LOCK_ACTION_SQL, &[&id]).db("update action")?;
    let row = rows.first().ok_or_else(|| Error::action_not_found(id))?;
    let locked = action_and_token(row)?;
    Ok(write_back(conn, vec![locked], change)?.remove(0))
}

/// Claims the oldest approved action of `server_id`, inside a transaction.
pub(super) fn claim_next(conn: &mut Conn, server_id: &str, change: &Change) -> Out<Option<Action>> {
    let rows = conn
        .query(NEXT_APPROVED_SQL, &[&server_id])
        .db("claim action")?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let locked = action_and_token(row)?;
    Ok(write_back(conn, vec![locked], change)?.pop())
}

/// Whether any executing action's lease has run out by `change.at`.
pub(super) fn any_lease_due(conn: &mut Conn, change: &Change) -> Out<bool> {
    let rows = conn
        .query(
            "SELECT 1 FROM actions WHERE status = 'executing' AND lease_expires_at <= $1 LIMIT 1",
            &[&ts(change.at)],
        )
        .db("expire leases")?;
    Ok(!rows.is_empty())
}

/// Expires every lease run out by `change.at`, inside a transaction. The
/// rows are locked by id; one whose lease was extended or which was reported
/// meanwhile no longer matches and is left alone.
pub(super) fn expire_leases(conn: &mut Conn, change: &Change) -> Out<Vec<Action>> {
    let rows = conn.query(DUE_SQL, &[&ts(change.at)]).db("expire leases")?;
    let locked = rows
        .iter()
        .map(action_and_token)
        .collect::<Result<Vec<_>, _>>()?;
    write_back(conn, locked, change)
}

/// The requested page of actions under `filter`, newest first, and the total,
/// from one statement (one snapshot).
pub(super) fn list(
    conn: &mut Conn,
    filter: &ActionFilter,
    page: PageRequest,
) -> Out<(Vec<Action>, u64)> {
    let status = filter.status.map(ActionStatus::as_str);
    let mut clauses = Vec::new();
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let values = [
        ("server_id", filter.server_id.as_ref()),
        ("action_type", filter.action_type.as_ref()),
    ];
    for (column, value) in &values {
        if let Some(value) = value {
            args.push(*value);
            clauses.push(format!("{column} = ${}", args.len()));
        }
    }
    if let Some(status) = &status {
        args.push(status);
        clauses.push(format!("status = ${}", args.len()));
    }
    let where_clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let limit = i64::from(page.limit);
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    let n = args.len();
    args.push(&limit);
    args.push(&offset);
    // The statement text depends only on which filters are set, so each
    // combination is prepared once per connection.
    let sql = format!(
        "WITH page AS (SELECT {columns} FROM actions {where_clause} \
                       ORDER BY created_at DESC, id DESC LIMIT ${l} OFFSET ${o}) \
         SELECT t.total, page.* FROM \
           (SELECT COALESCE(SUM(n), 0)::bigint AS total FROM action_counts {where_clause}) t \
         LEFT JOIN page ON true ORDER BY page.created_at DESC, page.id DESC",
        columns = action_columns!(),
        l = n + 1,
        o = n + 2,
    );
    let rows = conn.query(&sql, &args).db("list actions")?;
    let mut total = 0i64;
    let mut actions = Vec::new();
    for row in &rows {
        total = row.try_get(0).db("list actions")?;
        if row
            .try_get::<_, Option<i64>>(1)
            .db("list actions")?
            .is_some()
        {
            actions.push(action_from_row(row, 1)?);
        }
    }
    Ok((actions, total.max(0) as u64))
}

/// Up to `limit` events after `cursor`, oldest first. Ids become visible in
/// order (module docs), so nothing below the last one returned can appear later.
pub(super) fn events_since(conn: &mut Conn, cursor: i64, limit: u32) -> Out<Vec<Event>> {
    let rows = conn
        .query(
            "SELECT id, action_id, from_status, to_status, actor, at, detail FROM action_events \
             WHERE id > $1 ORDER BY id LIMIT $2",
            &[&cursor, &i64::from(limit)],
        )
        .db("events")?;
    Ok(rows.iter().map(event_from_row).collect::<Result<_, _>>()?)
}
