//! Actions: create with its conflict check, reads and listings, and every
//! status change (one path, [`apply_change`], for updates, claims and expiry).

use std::sync::LazyLock;

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::events::{self, Marks};
use super::rows::{action_columns, action_from_row, json, status_from, ts, LEASE_TOKEN_COLUMN};
use super::{servers, Context};
use crate::error::{Error, Result};
use crate::model::{Action, ActionCount, ActionFilter, ActionStatus};
use crate::store::sweep::Due;
use crate::store::{ActionDraft, Change, ConflictGuard, PageRequest};

/// One action by id.
pub(super) const SELECT_ACTION_SQL: &str =
    concat!("SELECT ", action_columns!(), " FROM actions WHERE id = ?1");

/// Pending actions of a server with the given type and command, oldest first.
pub(super) const PENDING_DUPLICATES_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = ?1 AND status = 'pending' AND action_type = ?2 \
    AND command = ?3 ORDER BY id"
);

/// Pending, approved or executing actions of a server with the given type, oldest first.
pub(super) const ACTIVE_OF_TYPE_SQL: &str = concat!(
    "SELECT ",
    action_columns!(),
    " FROM actions WHERE server_id = ?1 AND action_type = ?2 \
    AND status IN ('pending', 'approved', 'executing') ORDER BY id"
);

// The sweeps below run before every read and almost never find anything, so
// their plan is all their cost. They name their partial index (`INDEXED BY`:
// SQLite refuses to prepare the statement if that index cannot serve it):
// without statistics the planner prefers an equality on `actions_by_status`
// to a range on the partial index, and walks every executing (or pending) row.

/// Whether any executing action's lease has run out by ?1.
pub(super) const ANY_LEASE_DUE_SQL: &str = "SELECT 1 FROM actions INDEXED BY actions_leases \
     WHERE status = 'executing' AND lease_expires_at <= ?1 LIMIT 1";

/// Executing actions whose lease ran out by ?1, by id.
pub(super) const LEASES_DUE_SQL: &str = "SELECT id FROM actions INDEXED BY actions_leases \
     WHERE status = 'executing' AND lease_expires_at <= ?1 ORDER BY id";

/// Whether any pending action of type ?1 was created at or before ?2.
pub(super) const ANY_APPROVAL_DUE_SQL: &str =
    "SELECT 1 FROM actions INDEXED BY actions_pending_by_type \
     WHERE status = 'pending' AND created_at <= ?2 AND action_type = ?1 LIMIT 1";

/// Pending actions of type ?1 created at or before ?2, by id.
pub(super) const APPROVALS_DUE_SQL: &str =
    "SELECT id FROM actions INDEXED BY actions_pending_by_type \
     WHERE status = 'pending' AND created_at <= ?2 AND action_type = ?1 ORDER BY id";

/// The oldest approved action of server ?1.
pub(super) const NEXT_APPROVED_SQL: &str = "SELECT id FROM actions WHERE server_id = ?1 \
     AND status = 'approved' ORDER BY created_at, id LIMIT 1";

/// Auto-approvals of server ?1 with type ?4 and command ?5 created in
/// (?2, ?3], counted up to ?6. Every status is listed so the window is one
/// range per status of `actions_by_server_status`.
pub(super) static AUTO_APPROVED_SQL: LazyLock<String> = LazyLock::new(|| {
    let statuses = ActionStatus::ALL.map(|s| format!("'{s}'")).join(", ");
    format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM actions WHERE server_id = ?1 \
         AND status IN ({statuses}) AND created_at > ?2 AND created_at <= ?3 \
         AND action_type = ?4 AND command = ?5 AND approved_by = 'auto' LIMIT ?6)"
    )
});

/// Actions per (server, status), summed over types.
pub(super) const COUNT_PER_SERVER_STATUS_SQL: &str = "SELECT server_id, status, SUM(n) \
     FROM action_counts GROUP BY server_id, status HAVING SUM(n) > 0";

pub(super) fn load(tx: &Connection, id: i64) -> Result<Option<(Action, Option<String>)>> {
    tx.prepare_cached(SELECT_ACTION_SQL)
        .and_then(|mut select| {
            select
                .query_row([id], |r| {
                    Ok((action_from_row(r)?, r.get(LEASE_TOKEN_COLUMN)?))
                })
                .optional()
        })
        .context("load action")
}

/// Keeps `action_counts` in step: `delta` actions of `action`'s server and type
/// entered (+1) or left (-1) `status`.
fn count(tx: &Connection, action: &Action, status: ActionStatus, delta: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO action_counts (server_id, action_type, status, n) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (server_id, action_type, status) DO UPDATE SET n = n + excluded.n",
    )
    .and_then(|mut upsert| {
        upsert.execute(params![
            action.server_id,
            action.action_type,
            status.as_str(),
            delta
        ])
    })
    .context("count")?;
    Ok(())
}

/// Applies `change` to the loaded action and writes back row, event and counts.
fn apply_change(tx: &Connection, id: i64, change: &Change) -> Result<Action> {
    let (mut action, mut token) = load(tx, id)?.ok_or_else(|| Error::action_not_found(id))?;
    let from = action.status;
    let Some(event) = change.apply(&mut action, &mut token)? else {
        tx.prepare_cached("UPDATE actions SET lease_expires_at = ?2 WHERE id = ?1")
            .and_then(|mut update| update.execute(params![id, action.lease_expires_at.map(ts)]))
            .context("update action")?;
        return Ok(action);
    };
    tx.prepare_cached(
        "UPDATE actions SET status = ?2, approved_at = ?3, approved_by = ?4, rejected_at = ?5, \
         rejected_by = ?6, rejection_reason = ?7, cancelled_at = ?8, cancelled_by = ?9, \
         executed_at = ?10, lease_expires_at = ?11, lease_token = ?12, completed_at = ?13, \
         exit_code = ?14, stdout = ?15, stderr = ?16, approvals = ?17, \
         cancel_requested_at = ?18, cancel_requested_by = ?19 WHERE id = ?1",
    )
    .and_then(|mut update| {
        update.execute(params![
            id,
            action.status.as_str(),
            action.approved_at.map(ts),
            action.approved_by,
            action.rejected_at.map(ts),
            action.rejected_by,
            action.rejection_reason,
            action.cancelled_at.map(ts),
            action.cancelled_by,
            action.executed_at.map(ts),
            action.lease_expires_at.map(ts),
            token,
            action.completed_at.map(ts),
            action.exit_code,
            action.stdout,
            action.stderr,
            json(&action.approvals),
            action.cancel_requested_at.map(ts),
            action.cancel_requested_by,
        ])
    })
    .context("update action")?;
    count(tx, &action, from, -1)?;
    count(tx, &action, action.status, 1)?;
    events::log(tx, &event)?;
    Ok(action)
}

/// The oldest stored action that `guard` says blocks `draft`, as every store reports it.
fn oldest_collision(
    tx: &Connection,
    draft: &ActionDraft,
    guard: &ConflictGuard,
) -> Result<Option<i64>> {
    let mut oldest: Option<i64> = None;
    // Candidates come ordered by id, so the first collision of a query is its oldest.
    let mut scan = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<()> {
        let mut candidates = tx.prepare_cached(sql)?;
        let mut rows = candidates.query(args)?;
        while let Some(row) = rows.next()? {
            let existing = action_from_row(row)?;
            if guard.collides(draft, &existing) {
                oldest = Some(oldest.map_or(existing.id, |o| o.min(existing.id)));
                break;
            }
        }
        Ok(())
    };
    match guard {
        ConflictGuard::None => {}
        // Only a pending action with the same command can collide: ask for exactly
        // those, not for every active action of the type, which grows with the queue.
        ConflictGuard::PendingDuplicate { .. } => scan(
            PENDING_DUPLICATES_SQL,
            params![draft.server_id, draft.action_type, draft.command],
        )
        .context("create action")?,
        ConflictGuard::ActiveInGroup { action_types, .. } => {
            for action_type in action_types {
                scan(ACTIVE_OF_TYPE_SQL, params![draft.server_id, action_type])
                    .context("create action")?;
            }
        }
    }
    Ok(oldest)
}

/// How many auto-approvals count against `draft`'s budget (at most its
/// `max`; 0 without a budget), read in the insert's write transaction so
/// counting and inserting are one step across processes.
fn auto_approved_in_window(tx: &Connection, draft: &ActionDraft) -> Result<u32> {
    let Some((max, since)) = draft.budget_window() else {
        return Ok(0);
    };
    let n: i64 = tx
        .prepare_cached(&AUTO_APPROVED_SQL)
        .and_then(|mut select| {
            select.query_row(
                params![
                    draft.server_id,
                    ts(since),
                    ts(draft.created_at),
                    draft.action_type,
                    draft.command,
                    max
                ],
                |r| r.get(0),
            )
        })
        .context("create action")?;
    Ok(n.clamp(0, i64::from(max)) as u32)
}

/// [`Store::insert_action`](crate::store::Store::insert_action), inside the write transaction.
pub(super) fn insert(tx: &Connection, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
    let server = servers::get(tx, &draft.server_id, "create action")?
        .ok_or_else(|| Error::server_not_found(&draft.server_id))?;
    if let Some(existing) = oldest_collision(tx, &draft, guard)? {
        return Err(guard.error(existing));
    }
    let spent = auto_approved_in_window(tx, &draft)?;
    let mut marks = Marks::read(tx)?;
    let id = marks.take_action_id();
    let (action, event) = draft.into_action(id, &server, spent);
    tx.prepare_cached(
        "INSERT INTO actions (id, server_id, action_type, status, service_name, command, argv, \
         env, alert_id, created_at, created_by, approved_at, approved_by, digest, \
         whitelist_version, params) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            id,
            action.server_id,
            action.action_type,
            action.status.as_str(),
            action.service_name,
            action.command,
            json(&action.argv),
            json(&action.env),
            action.alert_id,
            ts(action.created_at),
            action.created_by,
            action.approved_at.map(ts),
            action.approved_by,
            action.digest,
            action.whitelist_version,
            json(&action.params),
        ])
    })
    .context("create action")?;
    count(tx, &action, action.status, 1)?;
    marks.append(tx, &event)?;
    marks.write(tx)?;
    Ok(action)
}

/// The action with `id`, if any.
pub(super) fn get(conn: &Connection, id: i64) -> Result<Option<Action>> {
    conn.prepare_cached(SELECT_ACTION_SQL)
        .and_then(|mut select| select.query_row([id], action_from_row).optional())
        .context("get action")
}

/// The two statements of a listing under `filter` and the values they bind:
/// the total (the first `n` values: the filter's) and the page (filter
/// values, then for keyset paging the anchor's `created_at` and id, then
/// `LIMIT` and `OFFSET`). The texts depend only on which filters are set and
/// whether the page has a `before_id`, never on values, so each of the few
/// combinations is prepared once and reused from the statement cache.
/// `anchor` is the place keyset paging starts below ([`anchor`]).
pub(super) fn listing<'a>(
    filter: &'a ActionFilter,
    page: PageRequest,
    anchor: Option<(i64, i64)>,
) -> (String, String, Vec<ToSqlOutput<'a>>, usize) {
    let mut clauses = Vec::new();
    let mut args: Vec<ToSqlOutput<'a>> = Vec::new();
    let status = filter.status.map(ActionStatus::as_str);
    for (column, value) in [
        ("server_id", filter.server_id.as_deref()),
        ("status", status),
        ("action_type", filter.action_type.as_deref()),
    ] {
        if let Some(value) = value {
            args.push(ToSqlOutput::from(value));
            clauses.push(format!("{column} = ?{}", args.len()));
        }
    }
    let n = args.len();
    let total_where = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let total_sql = format!("SELECT COALESCE(SUM(n), 0) FROM action_counts {total_where}");
    // Keyset paging: a range on the index's (created_at, id) after the
    // equality columns, so the page is a seek at any depth.
    if page.before_id.is_some() {
        let (created_at, id) = anchor.unwrap_or((i64::MIN, i64::MIN));
        args.push(ToSqlOutput::from(created_at));
        args.push(ToSqlOutput::from(id));
        clauses.push(format!("(created_at, id) < (?{}, ?{})", n + 1, n + 2));
    }
    let where_clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    // Without a status filter, one arm per status, each read newest first from
    // `actions_by_status` / `actions_by_server_status` and merged (SQLite's
    // MERGE of a compound ORDER BY stops after the page): no index by age
    // alone or by server alone to keep up on every write (schema v6).
    let from = if status.is_some() {
        format!("SELECT {} FROM actions {where_clause}", action_columns!())
    } else {
        let and = if clauses.is_empty() {
            String::new()
        } else {
            format!("{} AND", clauses.join(" AND "))
        };
        ActionStatus::ALL
            .iter()
            .map(|s| {
                format!(
                    "SELECT {} FROM actions WHERE {and} status = '{s}'",
                    action_columns!()
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    };
    let m = args.len();
    let page_sql = format!(
        "{from} ORDER BY created_at DESC, id DESC LIMIT ?{} OFFSET ?{}",
        m + 1,
        m + 2
    );
    args.push(ToSqlOutput::from(i64::from(page.limit)));
    args.push(ToSqlOutput::from(
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    ));
    (total_sql, page_sql, args, n)
}

/// Where keyset paging below `before_id` starts: that action's
/// (`created_at`, id), or the `created_at` of the newest action stored
/// below it with `before_id` (one seek by id).
pub(super) const ANCHOR_SQL: &str =
    "SELECT created_at FROM actions WHERE id <= ?1 ORDER BY id DESC LIMIT 1";

fn anchor(conn: &Connection, before_id: i64) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.prepare_cached(ANCHOR_SQL)?
        .query_row([before_id], |r| r.get(0))
        .optional()
        .map(|created_at| created_at.map(|c| (c, before_id)))
}

/// The requested page of actions under `filter`, newest first, and the total.
pub(super) fn list(
    conn: &Connection,
    filter: &ActionFilter,
    page: PageRequest,
) -> Result<(Vec<Action>, u64)> {
    // One read transaction, so the page, its anchor and the total agree.
    conn.execute_batch("BEGIN").context("list actions")?;
    let result = (|| {
        let anchor = match page.before_id {
            Some(before_id) => anchor(conn, before_id)?,
            None => None,
        };
        let (total_sql, page_sql, args, n) = listing(filter, page, anchor);
        let total: i64 = conn
            .prepare_cached(&total_sql)?
            .query_row(params_from_iter(&args[..n]), |r| r.get(0))?;
        // Nothing is stored at or below `before_id`: nothing is listed after it.
        let actions = if page.before_id.is_some() && anchor.is_none() {
            Vec::new()
        } else {
            conn.prepare_cached(&page_sql)?
                .query_map(params_from_iter(&args), action_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        Ok((actions, total.max(0) as u64))
    })();
    conn.execute_batch("COMMIT").context("list actions")?;
    result.context("list actions")
}

/// [`Store::update_action`](crate::store::Store::update_action), inside the write transaction.
pub(super) fn update(tx: &Connection, id: i64, change: &Change) -> Result<Action> {
    apply_change(tx, id, change)
}

/// Claims the oldest approved action of `server_id`, inside the write
/// transaction; one the rules cancel instead (stale whitelist) is stored as
/// such and the next oldest tried.
pub(super) fn claim_next(
    tx: &Connection,
    server_id: &str,
    change: &Change,
) -> Result<Option<Action>> {
    loop {
        let oldest: Option<i64> = tx
            .prepare_cached(NEXT_APPROVED_SQL)
            .and_then(|mut select| select.query_row([server_id], |r| r.get(0)).optional())
            .context("claim action")?;
        let Some(id) = oldest else {
            return Ok(None);
        };
        let action = apply_change(tx, id, change)?;
        if action.status == ActionStatus::Executing {
            return Ok(Some(action));
        }
    }
}

/// The statement selecting what `due` covers — whether anything (`look`),
/// or every id, in id order — and its parameters.
fn due_statement(due: Due<'_>, look: bool) -> (&'static str, Vec<Value>) {
    match due {
        Due::Leases(at) => {
            let sql = if look {
                ANY_LEASE_DUE_SQL
            } else {
                LEASES_DUE_SQL
            };
            (sql, vec![Value::Integer(ts(at))])
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
            let args = vec![
                Value::Text(action_type.to_owned()),
                Value::Integer(ts(created_until)),
            ];
            (sql, args)
        }
    }
}

/// Whether anything is due: a look without the write lock.
pub(super) fn any_due(conn: &Connection, due: Due<'_>) -> Result<bool> {
    let (sql, args) = due_statement(due, true);
    conn.prepare_cached(sql)
        .and_then(|mut select| {
            select
                .query_row(params_from_iter(args), |_| Ok(()))
                .optional()
        })
        .context(due.what())
        .map(|found| found.is_some())
}

/// Applies `change` to every action `due` selects, inside the write transaction.
pub(super) fn expire_due(tx: &Connection, due: Due<'_>, change: &Change) -> Result<Vec<Action>> {
    let (sql, args) = due_statement(due, false);
    let ids: Vec<i64> = tx
        .prepare_cached(sql)
        .and_then(|mut select| {
            select
                .query_map(params_from_iter(args), |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .context(due.what())?;
    ids.into_iter()
        .map(|id| apply_change(tx, id, change))
        .collect()
}

/// Actions per (server, status) from `action_counts`, the totals every write
/// keeps in step (summed over action types; no scan of `actions`).
pub(super) fn count_per_server_status(conn: &Connection) -> Result<Vec<ActionCount>> {
    let mut counts = conn
        .prepare_cached(COUNT_PER_SERVER_STATUS_SQL)
        .and_then(|mut select| {
            select
                .query_map([], |r| {
                    Ok(ActionCount {
                        server_id: r.get(0)?,
                        status: status_from(r.get(1)?)?,
                        count: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .context("count actions")?;
    // Statuses in their declared order, as every store gives them (SQL would sort by name).
    counts.sort_by(|a, b| (&a.server_id, a.status).cmp(&(&b.server_id, b.status)));
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing's statements are the same text whatever the page, so every
    /// page reuses the cached prepared statements.
    #[test]
    fn listing_text_does_not_depend_on_the_page() {
        let filters = [
            ActionFilter::default(),
            ActionFilter {
                server_id: Some("web-1".into()),
                status: Some(ActionStatus::Approved),
                action_type: Some("apt_update".into()),
            },
        ];
        for filter in &filters {
            let first = listing(
                filter,
                PageRequest {
                    limit: 1,
                    offset: 0,
                    before_id: None,
                },
                None,
            );
            let later = listing(
                filter,
                PageRequest {
                    limit: 100,
                    offset: 12_345,
                    before_id: None,
                },
                None,
            );
            let keyset = |before_id, anchor| {
                listing(
                    filter,
                    PageRequest {
                        limit: 100,
                        offset: 0,
                        before_id: Some(before_id),
                    },
                    Some(anchor),
                )
            };
            assert_eq!(keyset(7, (1, 7)).1, keyset(900_000, (123_456, 900_000)).1);
            assert_eq!((&first.0, &first.1), (&later.0, &later.1));
            assert_eq!(first.2.len(), later.2.len());
            assert!(
                !later.1.contains("12345") && !later.1.contains("100"),
                "{}",
                later.1
            );
        }
    }
}
