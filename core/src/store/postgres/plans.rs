//! Every sweep-before-read and every hot statement uses the index it was made
//! for, on a populated database: `EXPLAIN (FORMAT JSON)` of the statement
//! texts the store runs, both as a custom plan (the first executions of a
//! prepared statement) and as the generic plan PostgreSQL may switch to after
//! five. Checked after `ANALYZE`, as autovacuum leaves a table in production.
//! Needs `ACTIONQ_TEST_PG_URL` (mk/with-postgres.sh); without it the test says
//! it was skipped (and fails under `CI=true`).

use postgres::{Client, NoTls, SimpleQueryMessage};

use super::actions::{
    listing_sql, ACTIVE_OF_TYPES_SQL, ANY_APPROVAL_DUE_SQL, ANY_LEASE_DUE_SQL, APPROVALS_DUE_SQL,
    AUTO_APPROVED_SQL, LEASES_DUE_SQL, LOCK_ACTION_SQL, NEXT_APPROVED_SQL, PENDING_DUPLICATES_SQL,
    SELECT_ACTION_SQL,
};
use super::credentials::FIND_SQL;
use super::events::SINCE_SQL;
use super::output;
use super::servers::{LOCK_SERVER_SQL, SELECT_SERVER_SQL};
use super::{PostgresOptions, PostgresStore};
use crate::model::{ActionFilter, ActionStatus};
use crate::store::{PageRequest, Store};

/// Actions in the populated database: statuses cycle as in the bench's
/// 1M-row file (a third completed, a ninth executing, a ninth pending), over
/// 100 servers and two types, so the statistics give realistic selectivity.
const ACTIONS: i64 = 30_000;

/// A lease expiry far after every sweep's "now", so no sweep finds anything
/// (as on most reads).
const FAR: i64 = 9_000_000_000_000_000;

fn populate(client: &mut Client) {
    client
        .batch_execute(&format!(
            "INSERT INTO servers (id, created_at) SELECT 'srv-' || i, 0 FROM generate_series(0, 1999) i;
             INSERT INTO actions (id, server_id, action_type, status, command, argv, env,
                                  created_at, created_by, approved_by, lease_expires_at)
             SELECT i + 1, 'srv-' || (i % 100),
                    CASE WHEN i % 2 = 0 THEN 'restart_service' ELSE 'apt_update' END,
                    s.status, 'systemctl restart s' || i || '.service', '[]', '{{}}',
                    1000000 + i * 1000, 'dashboard', 'auto',
                    CASE WHEN s.status = 'executing' THEN {FAR} END
             FROM generate_series(0, {last}) i,
                  LATERAL (SELECT CASE WHEN i % 3 = 0 THEN 'completed' ELSE
                      (ARRAY['pending', 'approved', 'rejected', 'cancelled', 'executing',
                             'failed'])[(i / 3 * 2 + i % 3 - 1) % 6 + 1] END AS status) s;
             INSERT INTO action_events (id, action_id, to_status, actor, at, kind, subject,
                                        hash_version)
                 SELECT id, id, status, 'dashboard', created_at, 'action', server_id, 2
                 FROM actions;
             INSERT INTO action_counts (server_id, action_type, status, n)
                 SELECT server_id, action_type, status, COUNT(*) FROM actions
                 GROUP BY server_id, action_type, status;
             INSERT INTO credentials (name, role, prefix, secret_sha256, created_at)
                 SELECT 'c' || i, 'viewer', 'aq_', sha256(i::text::bytea), 0
                 FROM generate_series(0, 1999) i;
             INSERT INTO action_output (action_id, seq, stdout, stderr, stdout_chars,
                                        stderr_chars, at)
                 SELECT a.id, n, 'line', '', 4, 0, 0
                 FROM actions a, generate_series(1, 5) n
                 WHERE a.status IN ('executing', 'completed');
             ANALYZE;",
            last = ACTIONS - 1
        ))
        .unwrap();
}

/// The tables that grow with the actions (the counts and the other tables
/// stay small, and a sequential scan of them is the planner's right choice).
const GROWING: [&str; 3] = ["actions", "action_events", "action_output"];

/// The index names of a JSON plan (any depth), and whether it scans a
/// [`GROWING`] table sequentially.
fn walk(plan: &serde_json::Value, indexes: &mut Vec<String>, seq_scan: &mut bool) {
    match plan {
        serde_json::Value::Object(node) => {
            if let Some(serde_json::Value::String(index)) = node.get("Index Name") {
                indexes.push(index.clone());
            }
            if node.get("Node Type").and_then(|t| t.as_str()) == Some("Seq Scan")
                && node
                    .get("Relation Name")
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| GROWING.contains(&t))
            {
                *seq_scan = true;
            }
            node.values().for_each(|v| walk(v, indexes, seq_scan));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, indexes, seq_scan)),
        _ => {}
    }
}

/// The plan of `sql` executed with `args` (SQL literals), under `mode`
/// (`force_custom_plan` or `force_generic_plan`).
fn plan(client: &mut Client, sql: &str, args: &str, mode: &str) -> serde_json::Value {
    client
        .batch_execute(&format!(
            "DEALLOCATE ALL; SET plan_cache_mode = {mode}; PREPARE q AS {sql}"
        ))
        .unwrap();
    let execute = if args.is_empty() {
        "EXECUTE q".to_owned()
    } else {
        format!("EXECUTE q({args})")
    };
    let messages = client
        .simple_query(&format!("EXPLAIN (FORMAT JSON) {execute}"))
        .unwrap();
    let text = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An approval ttl's cut-off with half the pending actions older.
const HALFWAY: &str = "'restart_service', 16000000000";

/// Each statement the store runs per read or write, the literals to run it
/// with, and the indexes it may use (any one of them).
fn expectations() -> Vec<(String, String, String, Vec<&'static str>)> {
    let mut cases: Vec<(String, String, String, Vec<&'static str>)> = [
        ("get action", SELECT_ACTION_SQL, "5", vec!["actions_pkey"]),
        ("lock action", LOCK_ACTION_SQL, "5", vec!["actions_pkey"]),
        (
            "get server",
            SELECT_SERVER_SQL,
            "'srv-7'",
            vec!["servers_pkey"],
        ),
        (
            "lock server",
            LOCK_SERVER_SQL,
            "'srv-7'",
            vec!["servers_pkey"],
        ),
        (
            "lease sweep: look",
            ANY_LEASE_DUE_SQL,
            "2000000000000000",
            vec!["actions_leases"],
        ),
        (
            "lease sweep: expire",
            LEASES_DUE_SQL,
            "2000000000000000",
            vec!["actions_leases"],
        ),
        (
            "approval sweep: look",
            ANY_APPROVAL_DUE_SQL,
            HALFWAY,
            vec!["actions_pending_by_type"],
        ),
        (
            "approval sweep: expire",
            APPROVALS_DUE_SQL,
            HALFWAY,
            vec!["actions_pending_by_type"],
        ),
        (
            "claim",
            NEXT_APPROVED_SQL,
            "'srv-7'",
            vec!["actions_by_server_status"],
        ),
        (
            "pending-duplicate check",
            PENDING_DUPLICATES_SQL,
            "'srv-7', 'restart_service', 'systemctl restart x.service'",
            vec!["actions_by_server_status", "actions_active"],
        ),
        (
            "active-in-group check",
            ACTIVE_OF_TYPES_SQL,
            "'srv-7', ARRAY['restart_service']",
            vec!["actions_active"],
        ),
        (
            "auto-approval budget",
            AUTO_APPROVED_SQL,
            "'srv-7', 'restart_service', 0, 2000000000000000, 'systemctl restart x.service', 5",
            vec!["actions_by_server_type", "actions_by_server"],
        ),
        (
            "events since",
            SINCE_SQL,
            "100, 100",
            vec!["action_events_pkey"],
        ),
        (
            "authenticate",
            FIND_SQL,
            "sha256('7'::bytea)",
            vec!["credentials_secret_sha256_key"],
        ),
        (
            "output so far",
            output::SO_FAR_SQL,
            "5",
            vec!["action_output_pkey"],
        ),
        (
            "output since",
            output::SINCE_SQL,
            "5, 2",
            vec!["action_output_pkey"],
        ),
    ]
    .into_iter()
    .map(|(what, sql, args, indexes)| (what.to_owned(), sql.to_owned(), args.to_owned(), indexes))
    .collect();
    for mask in 0..8u8 {
        let filter = ActionFilter {
            server_id: (mask & 1 != 0).then(|| "srv-7".to_owned()),
            status: (mask & 2 != 0).then_some(ActionStatus::Approved),
            action_type: (mask & 4 != 0).then(|| "apt_update".to_owned()),
        };
        // Bound in the order of `listing_sql`: server, type, status, limit, offset.
        let mut args: Vec<&str> = Vec::new();
        filter.server_id.is_some().then(|| args.push("'srv-7'"));
        filter
            .action_type
            .is_some()
            .then(|| args.push("'apt_update'"));
        filter.status.is_some().then(|| args.push("'approved'"));
        args.extend(["50", "0"]);
        // A listing by status or type alone may also walk `actions_by_created`
        // newest first, filtering: PostgreSQL's costs prefer that (its rows
        // come in heap order) when the filter keeps an average share of the
        // rows, as a generic plan assumes; either way it stops after the page.
        let indexes = match (
            filter.server_id.is_some(),
            filter.status.is_some(),
            filter.action_type.is_some(),
        ) {
            (true, true, true) => vec!["actions_by_server_status", "actions_by_server_type"],
            (true, true, false) => vec!["actions_by_server_status"],
            (true, false, true) => vec!["actions_by_server_type"],
            (true, false, false) => vec!["actions_by_server"],
            (false, true, true) => {
                vec!["actions_by_status", "actions_by_type", "actions_by_created"]
            }
            (false, true, false) => vec!["actions_by_status", "actions_by_created"],
            (false, false, true) => vec!["actions_by_type", "actions_by_created"],
            (false, false, false) => vec!["actions_by_created"],
        };
        // Each shape the store may run for these filters (see `capped`).
        let shapes: &[bool] = if filter.status.is_none() && filter.action_type.is_none() {
            &[false, true]
        } else {
            &[false]
        };
        for &capped in shapes {
            cases.push((
                format!("list {filter:?} capped: {capped}"),
                listing_sql(&filter, false, capped),
                args.join(", "),
                indexes.clone(),
            ));
            // Keyset paging deep in the listing: the same index, from a seek.
            let mut keyset_args = args.clone();
            keyset_args.push("27000");
            cases.push((
                format!("list keyset {filter:?} capped: {capped}"),
                listing_sql(&filter, true, capped),
                keyset_args.join(", "),
                indexes.clone(),
            ));
        }
    }
    cases
}

#[test]
fn sweeps_and_hot_statements_use_their_indexes() {
    let Some(url) = std::env::var("ACTIONQ_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ACTIONQ_TEST_PG_URL is not set under CI=true"
        );
        eprintln!("skipped: ACTIONQ_TEST_PG_URL is not set (run under mk/with-postgres.sh)");
        return;
    };
    let schema = format!("plans_{}", uuid::Uuid::new_v4().simple());
    let mut client = Client::connect(&url, NoTls).unwrap();
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store_url = format!("{url}{sep}options=-csearch_path%3D{schema}");
    drop(PostgresStore::open(&store_url, &PostgresOptions::default()).unwrap());
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    populate(&mut client);

    let mut wrong = Vec::new();
    for (what, sql, args, expected) in expectations() {
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let plan = plan(&mut client, &sql, &args, mode);
            let (mut indexes, mut seq_scan) = (Vec::new(), false);
            walk(&plan, &mut indexes, &mut seq_scan);
            if seq_scan || !indexes.iter().any(|i| expected.contains(&i.as_str())) {
                wrong.push(format!(
                    "{what} ({mode}): expected one of {expected:?}, got indexes {indexes:?}, \
                     sequential scan: {seq_scan}\n{plan:#}"
                ));
            }
        }
    }
    let plans = plans_kept(&store_url);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    for (what, generic, custom) in plans {
        if what.contains("status") {
            // Planned for each status asked for: a generic plan cannot know
            // whether the status is rare (`capped`).
            assert_eq!((generic, custom), (0, RUNS), "{what}");
        } else {
            // Planned five times, then the generic plan kept.
            assert!(
                generic >= RUNS - 5,
                "{what}: {generic} generic plans, {custom} custom"
            );
        }
    }
}

/// Pages each listing [`plans_kept`] runs.
const RUNS: i64 = 12;

/// Through the store (one pooled connection), [`RUNS`] keyset pages deep in
/// the listing and as many first pages by status; then how often the
/// server used a generic plan and planned anew for each statement
/// (`pg_prepared_statements`, PostgreSQL 14 and later).
fn plans_kept(store_url: &str) -> Vec<(String, i64, i64)> {
    let options = PostgresOptions {
        pool_size: 1,
        ..PostgresOptions::default()
    };
    let store = PostgresStore::open(store_url, &options).unwrap();
    let keyset = PageRequest {
        limit: 51,
        offset: 0,
        before_id: Some(27_000),
    };
    let first = PageRequest {
        before_id: None,
        ..keyset
    };
    let unfiltered = ActionFilter::default();
    let by_status = ActionFilter {
        status: Some(ActionStatus::Pending),
        ..ActionFilter::default()
    };
    for _ in 0..RUNS {
        let (page, _) = store.list_actions(&unfiltered, keyset).unwrap();
        assert_eq!(page.len(), 51);
        store.list_actions(&unfiltered, first).unwrap();
        store.list_actions(&by_status, first).unwrap();
    }
    let mut conn = store.conn("plans").unwrap();
    let rows = conn
        .client
        .query(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements \
             WHERE statement LIKE 'WITH page AS%'",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 3, "one statement per listing shape");
    let kept = rows
        .iter()
        .map(|r| {
            let sql: String = r.get(0);
            let what = if sql.contains("status =") {
                "listing by status"
            } else if sql.contains("id <=") {
                "keyset listing"
            } else {
                "first page"
            };
            (what.to_owned(), r.get(1), r.get(2))
        })
        .collect();
    drop(conn);
    // Both sides of the cap: the last page inside the first 101 matches
    // (capped) and one past them (not), each starting where offset says.
    for offset in [50, 100] {
        let page = PageRequest { offset, ..first };
        let (page, _) = store.list_actions(&unfiltered, page).unwrap();
        assert_eq!(page.len(), 51, "offset {offset}");
        assert_eq!(page[0].id, ACTIONS - offset as i64, "offset {offset}");
    }
    kept
}
