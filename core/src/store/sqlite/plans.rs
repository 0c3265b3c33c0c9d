//! Every sweep-before-read and every hot statement uses the index it was made
//! for, on a populated store: `EXPLAIN QUERY PLAN` of the statement texts the
//! store runs. Checked as the store runs in production (no `ANALYZE`: the
//! library never runs it, so the planner has no statistics), then again after
//! `ANALYZE` (which a user may run), where the row counts below shape the plans.

use rusqlite::Connection;

use super::actions::{
    listing, ACTIVE_OF_TYPE_SQL, ANCHOR_SQL, ANY_APPROVAL_DUE_SQL, ANY_LEASE_DUE_SQL,
    APPROVALS_DUE_SQL, AUTO_APPROVED_SQL, LEASES_DUE_SQL, NEXT_APPROVED_SQL,
    PENDING_DUPLICATES_SQL, SELECT_ACTION_SQL,
};
use super::credentials::FIND_SQL;
use super::events::{HEAD_SQL, MARKS_SQL, SINCE_SQL};
use super::output;
use super::retention::CHECKPOINT_SQL;
use super::servers::SELECT_SERVER_SQL;
use super::wake::{LAST_EVENT_SQL, LOGGED_SINCE_SQL};
use super::{lock, SqliteOptions, SqliteStore};
use crate::model::{ActionFilter, ActionStatus};
use crate::store::PageRequest;

/// Actions in the populated store: statuses cycle as in the bench's 1M-row
/// file (a third completed, a ninth executing, a ninth pending), over 100
/// servers, so that after `ANALYZE` every index has realistic selectivity.
const ACTIONS: i64 = 30_000;

/// Fills `conn`'s store: servers, actions (executing ones with leases far
/// ahead, so no sweep finds anything, as on most reads), their events, counts
/// and a few credentials.
fn populate(conn: &Connection) {
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99)
         INSERT INTO servers (id, hostname, created_at) SELECT 'srv-' || i, NULL, 0 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO actions (id, server_id, action_type, status, command, argv, env,
                              created_at, created_by, approved_by, lease_expires_at)
         SELECT i + 1, 'srv-' || (i % 100),
                CASE WHEN i % 2 = 0 THEN 'restart_service' ELSE 'apt_update' END,
                CASE WHEN i % 3 = 0 THEN 'completed' ELSE
                  CASE (i / 3 * 2 + i % 3 - 1) % 6 WHEN 0 THEN 'pending'
                    WHEN 1 THEN 'approved' WHEN 2 THEN 'rejected' WHEN 3 THEN 'cancelled'
                    WHEN 4 THEN 'executing' ELSE 'failed' END END,
                'systemctl restart s' || i || '.service', '[]', '{{}}',
                1000000 + i * 1000, 'dashboard', 'auto', NULL
         FROM n;
         UPDATE actions SET lease_expires_at = 9000000000000000 WHERE status = 'executing';
         INSERT INTO action_events (action_id, to_status, actor, at, kind, subject, hash_version)
             SELECT id, status, 'dashboard', created_at, 'action', server_id, 2 FROM actions;
         INSERT INTO action_counts (server_id, action_type, status, n)
             SELECT server_id, action_type, status, COUNT(*) FROM actions
             GROUP BY server_id, action_type, status;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99)
         INSERT INTO credentials (name, role, prefix, secret_sha256, created_at)
             SELECT 'c' || i, 'viewer', 'aq_', randomblob(32), 0 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5)
         INSERT INTO action_output (action_id, seq, stdout, stderr, at)
             SELECT a.id, n.i, 'line', '', 0 FROM actions a, n
             WHERE a.status IN ('executing', 'completed');
         COMMIT;",
        last = ACTIONS - 1
    ))
    .unwrap();
}

/// The plan of `sql`, one line per step.
fn plan(conn: &Connection, sql: &str) -> String {
    let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    // Plans do not depend on bound values (the store sets QPSG): NULLs will do.
    let nulls = vec![rusqlite::types::Null; explain.parameter_count()];
    let steps = explain
        .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    steps.join("\n")
}

/// Whether every table `plan` reads (at least one) is read through one of
/// `indexes` (index names, `INTEGER PRIMARY KEY` for the rowid, `PRIMARY
/// KEY` for a WITHOUT ROWID table's key, or `MAX` for the one seek to the
/// end of a b-tree that SQLite's plan shows as a bare `SEARCH table`).
fn reads_through(plan: &str, indexes: &[&str]) -> bool {
    let reads: Vec<&str> = plan
        .lines()
        .map(|line| line.trim_start_matches(|c: char| "|`- ".contains(c)))
        .filter(|step| {
            (step.starts_with("SEARCH ") || step.starts_with("SCAN "))
                && !step.contains("(subquery")
                && *step != "SCAN CONSTANT ROW"
        })
        .collect();
    !reads.is_empty()
        && reads.iter().all(|step| {
            let words: Vec<&str> = step.split_whitespace().collect();
            indexes.iter().any(|&index| {
                if index == "INTEGER PRIMARY KEY" || index == "PRIMARY KEY" {
                    step.contains(&format!("USING {index}"))
                } else if index == "MAX" {
                    words.len() == 2 && words[0] == "SEARCH"
                } else {
                    words.windows(2).any(|w| w == ["INDEX", index])
                }
            })
        })
}

/// Whether every read step of `plan` seeks with a range on `created_at`
/// (SQLite shows a row-value range on the index's trailing `created_at, id`
/// as `created_at<?`).
fn seeks_below_anchor(plan: &str) -> bool {
    plan.lines()
        .map(|line| line.trim_start_matches(|c: char| "|`- ".contains(c)))
        .filter(|step| step.starts_with("SEARCH ") || step.starts_with("SCAN "))
        .all(|step| step.starts_with("SEARCH ") && step.contains("created_at<"))
}

/// Each statement the store runs per read or write, and the index it must use.
fn expectations() -> Vec<(String, String, Vec<&'static str>)> {
    let mut cases: Vec<(String, String, Vec<&'static str>)> = [
        ("get action", SELECT_ACTION_SQL, "INTEGER PRIMARY KEY"),
        (
            "get server",
            SELECT_SERVER_SQL,
            "sqlite_autoindex_servers_1",
        ),
        ("lease sweep: look", ANY_LEASE_DUE_SQL, "actions_leases"),
        ("lease sweep: expire", LEASES_DUE_SQL, "actions_leases"),
        (
            "approval sweep: look",
            ANY_APPROVAL_DUE_SQL,
            "actions_pending_by_type",
        ),
        (
            "approval sweep: expire",
            APPROVALS_DUE_SQL,
            "actions_pending_by_type",
        ),
        ("claim", NEXT_APPROVED_SQL, "actions_by_server_status"),
        (
            "pending-duplicate check",
            PENDING_DUPLICATES_SQL,
            "actions_by_server_status",
        ),
        (
            "active-in-group check",
            ACTIVE_OF_TYPE_SQL,
            "actions_by_server_status",
        ),
        (
            "auto-approval budget",
            AUTO_APPROVED_SQL.as_str(),
            "actions_by_server_status",
        ),
        ("events since", SINCE_SQL, "INTEGER PRIMARY KEY"),
        (
            "watch: logged since",
            LOGGED_SINCE_SQL,
            "INTEGER PRIMARY KEY",
        ),
        ("keyset anchor", ANCHOR_SQL, "INTEGER PRIMARY KEY"),
        ("prune checkpoint", CHECKPOINT_SQL, "INTEGER PRIMARY KEY"),
        ("audit head", HEAD_SQL, "PRIMARY KEY"),
        ("authenticate", FIND_SQL, "sqlite_autoindex_credentials_1"),
        ("output so far", output::SO_FAR_SQL, "PRIMARY KEY"),
        ("output since", output::SINCE_SQL, "PRIMARY KEY"),
    ]
    .into_iter()
    .map(|(what, sql, index)| (what.to_owned(), sql.to_owned(), vec![index]))
    .collect();
    // The reserved row by its key, the largest ids by one seek each.
    cases.push((
        "id marks".to_owned(),
        MARKS_SQL.to_owned(),
        vec!["PRIMARY KEY", "MAX"],
    ));
    cases.push((
        "watch: last event".to_owned(),
        LAST_EVENT_SQL.to_owned(),
        vec!["MAX"],
    ));
    // Listing pages, per combination of filters; without a status filter,
    // every arm of the merge per status.
    for mask in 0..8u8 {
        let filter = ActionFilter {
            server_id: (mask & 1 != 0).then(|| "srv-7".to_owned()),
            status: (mask & 2 != 0).then_some(ActionStatus::Approved),
            action_type: (mask & 4 != 0).then(|| "apt_update".to_owned()),
        };
        // (By type alone, the pending arm may read the pending actions of
        // the type, in age order, from the approval sweep's index.)
        let indexes = match (filter.server_id.is_some(), filter.action_type.is_some()) {
            (true, _) => vec!["actions_by_server_status"],
            (false, true) => vec!["actions_by_status", "actions_pending_by_type"],
            (false, false) => vec!["actions_by_status"],
        };
        for before_id in [None, Some(27_000)] {
            let (_, page_sql, _, _) = listing(
                &filter,
                PageRequest {
                    limit: 50,
                    offset: 0,
                    before_id,
                },
                before_id.map(|id| (1_000_000 + id * 1000, id)),
            );
            let what = match before_id {
                None => format!("list page {filter:?}"),
                Some(_) => format!("list keyset page {filter:?}"),
            };
            cases.push((what, page_sql, indexes.clone()));
        }
    }
    cases
}

/// The statements whose plan is not the expected one, with their plans.
fn wrong_plans(conn: &Connection) -> Vec<String> {
    expectations()
        .into_iter()
        .filter_map(|(what, sql, indexes)| {
            let plan = plan(conn, &sql);
            // A listing or an output read sorts nothing: it comes in index
            // order (and a page stops).
            let ordered = what.starts_with("list") || what == "output since";
            let sorts = ordered && plan.contains("TEMP B-TREE");
            // A keyset page seeks to its anchor in every index it reads: a
            // range on `created_at` after the equality columns, not a walk
            // from the newest entry down to the anchor.
            let walks = what.starts_with("list keyset") && !seeks_below_anchor(&plan);
            (sorts || walks || !reads_through(&plan, &indexes)).then(|| {
                format!("{what}: expected {indexes:?}, no sort (keyset: a seek), got:\n{plan}")
            })
        })
        .collect()
}

#[test]
fn sweeps_and_hot_statements_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.sqlite3"), &SqliteOptions::default()).unwrap();
    let conn = lock(&store.writer);
    populate(&conn);
    let executing: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM actions WHERE status = 'executing'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(executing >= ACTIONS / 10, "{executing} executing");

    let wrong = wrong_plans(&conn);
    assert!(wrong.is_empty(), "without ANALYZE:\n{}", wrong.join("\n\n"));

    conn.execute_batch("ANALYZE").unwrap();
    let wrong = wrong_plans(&conn);
    assert!(wrong.is_empty(), "after ANALYZE:\n{}", wrong.join("\n\n"));
}
