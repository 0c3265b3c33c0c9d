//! Actions: creates with their conflict checks and auto-approval budget,
//! every status change (one path, [`Pending::apply`] then
//! [`Pending::finish`], for updates, claims and both expiries), listings and
//! counts. Every function runs on a connection the store's runner hands it,
//! inside a transaction where it says so.

use std::collections::BTreeMap;

use postgres::types::ToSql;
use postgres::Row;

use super::events::{chain, lock_ids, log, Chained};
use super::rows::{action_and_token, action_columns, action_from_row, json, output_bytes, ts};
use super::servers;
use super::{Conn, Db, Out};
use crate::audit::HASH_VERSION;
use crate::error::Error;
use crate::limits;
use crate::model::{Action, ActionCount, ActionFilter, ActionStatus};
use crate::store::sweep::Due;
use crate::store::{ActionDraft, Change, ConflictGuard, EventDraft, PageRequest};

pub(super) const SELECT_ACTION_SQL: &str =
    concat!("SELECT ", action_columns!(), " FROM actions WHERE id = $1");
pub(super) const LOCK_ACTION_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE id = $1 FOR UPDATE"
);

/// Pending actions of a server with the given type and command, oldest first.
pub(super) const PENDING_DUPLICATES_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = $1 AND status = 'pending' AND action_type = $2 \
    AND command = $3 ORDER BY id"
);

/// Pending, approved or executing actions of a server with one of the types, oldest first.
pub(super) const ACTIVE_OF_TYPES_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = $1 AND action_type = ANY($2) \
    AND status IN ('pending', 'approved', 'executing') ORDER BY id"
);

/// The oldest approved action of a server that no other transaction holds.
pub(super) const NEXT_APPROVED_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = $1 AND status = 'approved' \
    ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
);

/// Pending actions of type $1 created at or before $2, locked, by id.
pub(super) const APPROVALS_DUE_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE status = 'pending' AND action_type = $1 AND created_at <= $2 \
    ORDER BY id FOR UPDATE"
);

/// Executing actions whose lease ran out by $1, locked, by id.
pub(super) const LEASES_DUE_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE status = 'executing' AND lease_expires_at <= $1 ORDER BY id FOR UPDATE"
);

// The looks of the sweeps before every read order by their partial index's
// key: with a bare `LIMIT 1` the generic plan (what a prepared statement runs
// after five executions) expects a sequential scan to find a match at once,
// and when nothing is due, as on almost every read, it reads the whole table.

/// Whether any pending action of type $1 was created at or before $2.
pub(super) const ANY_APPROVAL_DUE_SQL: &str = "SELECT 1 FROM actions WHERE status = 'pending' \
     AND action_type = $1 AND created_at <= $2 ORDER BY created_at LIMIT 1";

/// Whether any executing action's lease has run out by $1.
pub(super) const ANY_LEASE_DUE_SQL: &str = "SELECT 1 FROM actions WHERE status = 'executing' \
     AND lease_expires_at <= $1 ORDER BY lease_expires_at LIMIT 1";

/// Auto-approvals of server $1 with type $2 and command $5 created in
/// ($3, $4], counted up to $6.
pub(super) const AUTO_APPROVED_SQL: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM actions \
     WHERE server_id = $1 AND action_type = $2 AND created_at > $3 AND created_at <= $4 \
     AND command = $5 AND approved_by = 'auto' LIMIT $6) t";

/// The action with `id`, if any.
pub(super) fn get(conn: &mut Conn, id: i64) -> Out<Option<Action>> {
    let rows = conn.query(SELECT_ACTION_SQL, &[&id]).db("get action")?;
    Ok(rows.first().map(|r| action_from_row(r, 0)).transpose()?)
}

/// Keeps `action_counts` in step with the given changes of (server, type,
/// status) totals, in one statement that locks the rows in key order.
pub(super) fn count(
    conn: &mut Conn,
    deltas: BTreeMap<(String, String, &'static str), i64>,
) -> Out<()> {
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
    let server = servers::get(conn, &draft.server_id, true)?
        .ok_or_else(|| Error::server_not_found(&draft.server_id))?;
    if let Some(existing) = oldest_collision(conn, &draft, guard)? {
        return Err(guard.error(existing).into());
    }
    let spent = auto_approved_in_window(conn, &draft)?;
    let (mut action, mut event) = draft.into_action(0, &server, spent);
    let key = (
        action.server_id.clone(),
        action.action_type.clone(),
        action.status.as_str(),
    );
    count(conn, BTreeMap::from([(key, 1)]))?;
    // Last: lock the id row, then one statement stores the action and its
    // chained creation event and moves the ids and the head; the row stays
    // locked until the commit.
    let ids = lock_ids(conn)?;
    action.id = ids.last_action_id + 1;
    event.action_id = Some(action.id);
    let Chained {
        ids: event_ids,
        prevs,
        hashes,
        head,
    } = chain(&ids.head, std::slice::from_ref(&event));
    let params_json = json(&action.params);
    let params: [&(dyn ToSql + Sync); 28] = [
        &action.id,
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
        &json(&action.approvals),
        &action.digest,
        &action.whitelist_version,
        &event_ids[0],
        &event.to_status.map(ActionStatus::as_str),
        &event.by,
        &ts(event.at),
        &event.detail,
        &prevs[0],
        &hashes[0],
        &&head.hash[..],
        &params_json,
        &event.subject,
        &event.digest,
        &HASH_VERSION,
    ];
    conn.execute(
        "WITH ids AS (UPDATE actionq_ids SET last_action_id = $1, last_event_id = $17, \
                      head_hash = $24), \
         a AS (INSERT INTO actions (id, server_id, action_type, status, service_name, command, \
                   argv, env, alert_id, created_at, created_by, approved_at, approved_by, \
                   approvals, digest, whitelist_version, params) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                       $25)) \
         INSERT INTO action_events (id, action_id, from_status, to_status, actor, at, detail, \
                                    prev_hash, hash, kind, subject, digest, hash_version) \
         VALUES ($17, $1, NULL, $18, $19, $20, $21, $22, $23, 'action', $26, $27, $28)",
        &params,
    )
    .db("create action")?;
    conn.logged.record_event(&event);
    Ok(action)
}

/// How many auto-approvals count against `draft`'s budget (at most its
/// `max`; 0 without a budget). Read under the server's row lock, which
/// every create for the server takes, so counting and inserting are one
/// step across processes.
fn auto_approved_in_window(conn: &mut Conn, draft: &ActionDraft) -> Out<u32> {
    let Some((max, since)) = draft.budget_window() else {
        return Ok(0);
    };
    let rows = conn
        .query(
            AUTO_APPROVED_SQL,
            &[
                &draft.server_id,
                &draft.action_type,
                &ts(since),
                &ts(draft.created_at),
                &draft.command,
                &i64::from(max),
            ],
        )
        .db("create action")?;
    let n: i64 = rows
        .first()
        .map(|r| r.try_get(0))
        .transpose()
        .db("create action")?
        .unwrap_or(0);
    Ok(n.clamp(0, i64::from(max)) as u32)
}

/// Status changes applied and written back to their rows, whose counts and
/// events are still to be written ([`Pending::finish`], last).
#[derive(Default)]
struct Pending {
    deltas: BTreeMap<(String, String, &'static str), i64>,
    events: Vec<EventDraft>,
}

impl Pending {
    /// Applies `change` to the locked `(action, token)` and writes the row
    /// back. Heartbeats change only the lease.
    fn apply(
        &mut self,
        conn: &mut Conn,
        (mut action, mut token): (Action, Option<String>),
        change: &Change,
    ) -> Out<Action> {
        let from = action.status;
        let Some(event) = change.apply(&mut action, &mut token)? else {
            conn.execute(
                "UPDATE actions SET lease_expires_at = $2 WHERE id = $1",
                &[&action.id, &action.lease_expires_at.map(ts)],
            )
            .db("update action")?;
            return Ok(action);
        };
        let params: [&(dyn ToSql + Sync); 19] = [
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
            &output_bytes(&action.stdout),
            &output_bytes(&action.stderr),
            &json(&action.approvals),
            &action.cancel_requested_at.map(ts),
            &action.cancel_requested_by,
        ];
        conn.execute(
            "UPDATE actions SET status = $2, approved_at = $3, approved_by = $4, rejected_at = $5, \
             rejected_by = $6, rejection_reason = $7, cancelled_at = $8, cancelled_by = $9, \
             executed_at = $10, lease_expires_at = $11, lease_token = $12, completed_at = $13, \
             exit_code = $14, stdout = $15, stderr = $16, approvals = $17, \
             cancel_requested_at = $18, cancel_requested_by = $19 WHERE id = $1",
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
        *self.deltas.entry(key(from)).or_insert(0) -= 1;
        *self.deltas.entry(key(action.status)).or_insert(0) += 1;
        self.events.push(event);
        Ok(action)
    }

    /// Counts, then the chained events: the transaction's last statements.
    fn finish(self, conn: &mut Conn) -> Out<()> {
        count(conn, self.deltas)?;
        if !self.events.is_empty() {
            log(conn, &self.events)?;
        }
        Ok(())
    }
}

/// Applies `change` to each locked `(action, token)`, then writes counts and events.
fn write_back(
    conn: &mut Conn,
    locked: Vec<(Action, Option<String>)>,
    change: &Change,
) -> Out<Vec<Action>> {
    let mut pending = Pending::default();
    let out = locked
        .into_iter()
        .map(|row| pending.apply(conn, row, change))
        .collect::<Out<Vec<_>>>()?;
    pending.finish(conn)?;
    Ok(out)
}

/// [`Store::update_action`](crate::store::Store::update_action), inside a transaction.
pub(super) fn update(conn: &mut Conn, id: i64, change: &Change) -> Out<Action> {
    let rows = conn.query(LOCK_ACTION_SQL, &[&id]).db("update action")?;
    let row = rows.first().ok_or_else(|| Error::action_not_found(id))?;
    let locked = action_and_token(row)?;
    Ok(write_back(conn, vec![locked], change)?.remove(0))
}

/// Claims the oldest approved action of `server_id`, inside a transaction;
/// one the rules cancel instead (stale whitelist) is stored as such and the
/// next oldest tried. Counts and events of all of them are written last.
pub(super) fn claim_next(conn: &mut Conn, server_id: &str, change: &Change) -> Out<Option<Action>> {
    let mut pending = Pending::default();
    let claimed = loop {
        let rows = conn
            .query(NEXT_APPROVED_SQL, &[&server_id])
            .db("claim action")?;
        let Some(row) = rows.first() else {
            break None;
        };
        let action = pending.apply(conn, action_and_token(row)?, change)?;
        if action.status == ActionStatus::Executing {
            break Some(action);
        }
    };
    pending.finish(conn)?;
    Ok(claimed)
}

/// What `due` selects: whether anything (`look`, without a transaction),
/// or every row, locked, by id.
fn due_rows(conn: &mut Conn, due: Due<'_>, look: bool) -> Out<Vec<Row>> {
    match due {
        Due::Leases(at) => {
            let sql = if look {
                ANY_LEASE_DUE_SQL
            } else {
                LEASES_DUE_SQL
            };
            conn.query(sql, &[&ts(at)])
        }
        Due::Approvals {
            action_type,
            created_until,
        } => {
            let sql = if look {
                ANY_APPROVAL_DUE_SQL
            } else {
                APPROVALS_DUE_SQL
            };
            conn.query(sql, &[&action_type, &ts(created_until)])
        }
    }
    .db(due.what())
}

/// Whether anything is due: a look without a transaction.
pub(super) fn any_due(conn: &mut Conn, due: Due<'_>) -> Out<bool> {
    Ok(!due_rows(conn, due, true)?.is_empty())
}

/// Applies `change` to every action `due` selects, inside a transaction.
/// The rows are locked by id; one decided, reported or given a longer lease
/// meanwhile no longer matches and is left alone.
pub(super) fn expire_due(conn: &mut Conn, due: Due<'_>, change: &Change) -> Out<Vec<Action>> {
    let locked = due_rows(conn, due, false)?
        .iter()
        .map(action_and_token)
        .collect::<Result<Vec<_>, _>>()?;
    write_back(conn, locked, change)
}

/// The statement of a listing under `filter`: page and total in one, binding
/// the set filters (server, type, status, in that order), then `LIMIT` and
/// `OFFSET`, then with `keyset` the `before_id`. The text depends only on
/// which filters are set and on `keyset`, so each combination is prepared
/// once per connection.
///
/// Keyset paging is a range on the index's trailing (`created_at`, id)
/// below the place of `before_id`: its own key, or the `created_at` of the
/// newest action stored below it (`PageRequest::before_id`), one seek by id.
///
/// With `capped` (see [`capped`]) the page is cut from the first
/// [`LISTING_CAP`] matches, a literal: the planner then prices the generic
/// plan like the custom ones and keeps it after its fifth run, instead of
/// planning the statement again at every page (about half of a deep page's
/// time). A `LIMIT` or `OFFSET` that is only a parameter is priced as a
/// tenth of the table, so those statements get a custom plan every time.
pub(super) fn listing_sql(filter: &ActionFilter, keyset: bool, capped: bool) -> String {
    let mut clauses = Vec::new();
    for (column, set) in [
        ("server_id", filter.server_id.is_some()),
        ("action_type", filter.action_type.is_some()),
        ("status", filter.status.is_some()),
    ] {
        if set {
            clauses.push(format!("{column} = ${}", clauses.len() + 1));
        }
    }
    let where_of = |clauses: &[String]| {
        if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        }
    };
    let total_where = where_of(&clauses);
    let n = clauses.len();
    if keyset {
        clauses.push(format!(
            "(created_at, id) < ((SELECT created_at FROM actions WHERE id <= ${k} \
             ORDER BY id DESC LIMIT 1), ${k})",
            k = n + 3
        ));
    }
    let matches = format!(
        "SELECT {columns} FROM actions {where_clause} ORDER BY created_at DESC, id DESC",
        columns = action_columns!(),
        where_clause = where_of(&clauses),
    );
    let page = if capped {
        // Ordered again, so the page's rows are the right ones by the
        // letter of SQL; the planner knows the rows come in that order.
        format!(
            "SELECT * FROM ({matches} LIMIT {LISTING_CAP}) capped \
             ORDER BY created_at DESC, id DESC"
        )
    } else {
        matches
    };
    format!(
        "WITH page AS ({page} LIMIT ${l} OFFSET ${o}) \
         SELECT t.total, page.* FROM \
           (SELECT COALESCE(SUM(n), 0)::bigint AS total FROM action_counts {total_where}) t \
         LEFT JOIN page ON true ORDER BY page.created_at DESC, page.id DESC",
        l = n + 1,
        o = n + 2,
    )
}

/// The most rows a listing reads: the longest page and the one past it that
/// tells whether a next page exists.
const LISTING_CAP: i64 = limits::MAX_PAGE_LIMIT + 1;

/// Whether a listing may take [`listing_sql`]'s capped shape, whose plan the
/// planner keeps: when the page lies within the first [`LISTING_CAP`]
/// matches (every keyset page, and offset pages near the start), and when
/// one plan suits every value of the filters. A filter by status or action
/// type does not: a rare status is best found through its own index, a
/// common one by walking `actions_by_created`, and only a plan made for
/// the value knows which (a generic plan walking the whole table for a
/// status it lacks would be the slowest read there is).
fn capped(filter: &ActionFilter, page: PageRequest) -> bool {
    filter.status.is_none()
        && filter.action_type.is_none()
        && i64::from(page.limit).saturating_add(i64::try_from(page.offset).unwrap_or(i64::MAX))
            <= LISTING_CAP
}

/// The requested page of actions under `filter`, newest first, and the total,
/// from one statement (one snapshot).
pub(super) fn list(
    conn: &mut Conn,
    filter: &ActionFilter,
    page: PageRequest,
) -> Out<(Vec<Action>, u64)> {
    let status = filter.status.map(ActionStatus::as_str);
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    for value in [filter.server_id.as_ref(), filter.action_type.as_ref()]
        .into_iter()
        .flatten()
    {
        args.push(value);
    }
    if let Some(status) = &status {
        args.push(status);
    }
    let limit = i64::from(page.limit);
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    args.push(&limit);
    args.push(&offset);
    if let Some(before_id) = &page.before_id {
        args.push(before_id);
    }
    let rows = conn
        .query(
            &listing_sql(filter, page.before_id.is_some(), capped(filter, page)),
            &args,
        )
        .db("list actions")?;
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

/// Actions per (server, status) from `action_counts`, the totals every write
/// keeps in step (summed over action types; no scan of `actions`).
pub(super) fn count_per_server_status(conn: &mut Conn) -> Out<Vec<ActionCount>> {
    let rows = conn
        .query(
            "SELECT server_id, status, SUM(n)::bigint FROM action_counts \
             GROUP BY server_id, status HAVING SUM(n) > 0",
            &[],
        )
        .db("count actions")?;
    let mut counts = Vec::with_capacity(rows.len());
    for row in &rows {
        let status: &str = row.try_get(1).db("count actions")?;
        counts.push(ActionCount {
            server_id: row.try_get(0).db("count actions")?,
            status: status
                .parse::<ActionStatus>()
                .map_err(|e| Error::Storage(format!("corrupt status in the database: {e}")))?,
            count: row.try_get::<_, i64>(2).db("count actions")?.max(0) as u64,
        });
    }
    // Statuses in their declared order, as every store gives them (SQL would sort by name).
    counts.sort_by(|a, b| (&a.server_id, a.status).cmp(&(&b.server_id, b.status)));
    Ok(counts)
}
