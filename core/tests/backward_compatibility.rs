//! Schema evolution: a database written by the previous schema version opens and
//! migrates with its data intact; one written by a newer library is refused with a
//! Storage error and left exactly as it was.
//!
//! The v1 database is generated from the frozen SQL in `tests/fixtures/`
//! (`v1_schema.sql` = what `MIGRATIONS[0]` created, `v1_data.sql` = rows as 0.1 wrote
//! them), so the fixture stays reviewable text rather than an opaque binary.
#![cfg(feature = "sqlite")]

mod fault_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actionq::{
    ActionQuery, ActionQueue, ActionStatus, ErrorKind, EventKind, NewAction, QueueOptions, Role,
    SqliteOptions, SqliteStore, Store, SCHEMA_VERSION,
};
use rusqlite::Connection;

const V1_SCHEMA: &str = include_str!("fixtures/v1_schema.sql");
const V1_DATA: &str = include_str!("fixtures/v1_data.sql");
const V7_FILE: &str = include_str!("fixtures/v7_file.sql");

fn write_v1(path: &Path) {
    let conn = Connection::open(path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(&format!(
        "BEGIN; {V1_SCHEMA} {V1_DATA} PRAGMA user_version = 1; COMMIT;"
    ))
    .unwrap();
}

/// Writes the v7 file of `tests/fixtures/v7_file.sql` at `path`.
fn write_v7(path: &Path) {
    let conn = Connection::open(path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(V7_FILE).unwrap();
    conn.execute_batch("PRAGMA user_version = 7").unwrap();
}

/// Every row of `table` in id order, every column.
fn rows(db: &Path, table: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let conn = Connection::open(db).unwrap();
    let mut select = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY id"))
        .unwrap();
    let columns = select.column_count();
    let rows = select
        .query_map([], |r| (0..columns).map(|i| r.get(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn v1_database_migrates_with_data_intact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.sqlite3");
    write_v1(&db);
    assert_eq!(user_version(&db), 1);
    let before: Vec<(i64, String)> = {
        let conn = Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, status FROM actions ORDER BY id")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows
    };
    assert_eq!(before.len(), 7);

    // Reads as stored: the fixture's executing action holds a lease from 2026-01-01,
    // which the default sweep before reads would fail.
    let queue = ActionQueue::new(SqliteStore::open(&db, &SqliteOptions::default()).unwrap())
        .with_options(QueueOptions {
            expire_leases_on_read: false,
            ..QueueOptions::default()
        });
    assert_eq!(user_version(&db), SCHEMA_VERSION);
    // Every row, every field survived and reads back through the library.
    let completed = queue.get_action(1).unwrap();
    assert_eq!(completed.status, ActionStatus::Completed);
    assert_eq!(completed.argv, ["systemctl", "restart", "nginx"]);
    assert_eq!(completed.alert_id, Some(42));
    assert_eq!(completed.stdout.as_deref(), Some("ok"));
    assert_eq!(completed.exit_code, Some(0));
    assert_eq!(
        completed.created_at.to_rfc3339(),
        "2026-01-01T00:00:20+00:00"
    );
    // v5: an old action's params are what its row still says: the unit of
    // a restart, nothing for the others.
    assert_eq!(
        completed.params,
        BTreeMap::from([("service_name".to_owned(), "nginx".to_owned())])
    );
    let failed = queue.get_action(2).unwrap();
    assert!(failed.params.is_empty());
    assert_eq!(failed.env["DEBIAN_FRONTEND"], "noninteractive");
    assert_eq!(failed.exit_code, Some(100));
    assert_eq!(failed.created_by, "monitor");
    let rejected = queue.get_action(4).unwrap();
    assert_eq!(
        rejected.rejection_reason.as_deref(),
        Some("not during the migration")
    );
    let cancelled = queue.get_action(7).unwrap();
    assert_eq!(cancelled.argv.len(), 10);
    assert_eq!(cancelled.argv[5], "Dpkg::Options::=--force-confdef");
    for (id, status) in &before {
        assert_eq!(queue.get_action(*id).unwrap().status.as_str(), status);
    }
    let maint = queue.get_server("maint-1").unwrap();
    assert!(maint.is_paused && maint.paused_at.is_some());

    // action_counts was populated from the existing rows.
    fault_support::assert_invariants(&db, "after migration");
    let total = |q: ActionQuery| queue.list_actions(&q).unwrap().total;
    assert_eq!(total(ActionQuery::default()), 7);
    assert_eq!(
        total(ActionQuery {
            server_id: Some("web-1".into()),
            ..ActionQuery::default()
        }),
        4
    );
    for status in ActionStatus::ALL {
        let n = total(ActionQuery {
            status: Some(status),
            ..ActionQuery::default()
        });
        assert_eq!(n, 1, "one fixture action is {status}");
    }
    // The audit log reads back in order with its cursor.
    let events = queue.events_since(0, 100, None).unwrap();
    assert_eq!(events.len(), 15);
    assert_eq!(
        events[8].detail.as_deref(),
        Some("not during the migration")
    );

    // v4: the old events were chained at migration; the old actions carry the
    // digest of their payload under the empty whitelist version, no approvals.
    let audit = queue.verify_audit().unwrap();
    assert_eq!((audit.checked, audit.first_bad_event_id), (15, None));
    for (id, _) in &before {
        let action = queue.get_action(*id).unwrap();
        assert_eq!(action.whitelist_version, "", "action {id}");
        assert!(action.approvals.is_empty(), "action {id}");
        assert_eq!(
            action.digest,
            actionq::action_digest(
                &action.server_id,
                &action.action_type,
                &action.argv,
                &action.env,
                ""
            ),
            "action {id}"
        );
        assert!(action.digest_matches(), "action {id}");
    }

    // The migrated data takes part in the rules: the executing apt-free server
    // may take an apt action, the approved one is claimable. (v1 stored the
    // bare unit name `ssh`, which the row's digest covers, so the row keeps
    // it; a new request for `ssh` means `ssh.service`, another command.)
    assert_eq!(
        queue.get_action(3).unwrap().command,
        "systemctl restart ssh"
    );
    let claim = queue.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(claim.action.id, 5);
    // v5: lease tokens are stored as their SHA-256 only; v1's token of the
    // executing action 6 was hashed in place...
    let stored: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT lease_token FROM actions WHERE id = 6", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        stored,
        "cc682034a06b49e8a76dd322f4f498bd47888e7c6a4b1695eb1b936d3fb4b224"
    );
    // ...so the agent holding it still fences action 6: before its lease ran
    // out (2026-01-01T00:06:11Z) the token heartbeats, a wrong one does not...
    let before_expiry =
        ActionQueue::new(SqliteStore::open(&db, &SqliteOptions::default()).unwrap())
            .with_options(QueueOptions {
                expire_leases_on_read: false,
                ..QueueOptions::default()
            })
            .with_clock(std::sync::Arc::new(actionq::ManualClock::new(
                "2026-01-01T00:06:00Z".parse().unwrap(),
            )));
    let wrong = before_expiry.heartbeat(6, &stored, Some(std::time::Duration::from_secs(1)));
    assert_eq!(
        wrong.unwrap_err().kind(),
        ErrorKind::Conflict,
        "the digest is no token"
    );
    let beat = before_expiry
        .heartbeat(
            6,
            "6f1c2a52-3f0e-4a8e-9d59-0c6f7b2f6a01",
            Some(std::time::Duration::from_secs(1)),
        )
        .unwrap();
    assert_eq!(beat.status, ActionStatus::Executing);
    // ...and after it, the token is right but expired.
    let hb = queue.heartbeat(6, "6f1c2a52-3f0e-4a8e-9d59-0c6f7b2f6a01", None);
    assert_eq!(hb.unwrap_err().kind(), ErrorKind::Conflict);
    // A new claim's token is stored hashed too.
    let raw: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT lease_token FROM actions WHERE id = 5", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_ne!(raw, claim.lease_token);
    assert_eq!(raw.len(), 64);
    // New ids continue after the old ones; new events after the old cursor.
    let fresh = queue
        .create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    assert_eq!(fresh.id, 8);
    let later = queue.events_since(15, 100, None).unwrap();
    assert!(later.iter().all(|e| e.id > 15));
    fault_support::assert_invariants(&db, "after use");
    // An action from before whitelist versions is not stale: still approvable.
    let legacy = queue.approve_action(3).unwrap();
    assert_eq!(legacy.status, ActionStatus::Approved);
    assert_eq!(legacy.approvals[0].digest, legacy.digest);
    let audit = queue.verify_audit().unwrap();
    assert_eq!(audit.first_bad_event_id, None);
    assert!(audit.checked > 15);

    // The migrated file starts with no credentials and takes them (v3).
    assert!(queue.list_credentials().unwrap().is_empty());
    let issued = queue
        .issue_credential("web-1-agent", Role::Agent, Some("web-1"))
        .unwrap();
    assert_eq!(issued.credential.id, 1);
    // v6: the old events are action events naming their action's server,
    // still checked in their v1 form; the issue is a credential event chained
    // after them in the v2 form.
    for event in &events {
        let action = queue.get_action(event.action_id.unwrap()).unwrap();
        assert_eq!(
            (event.kind, event.subject.as_str()),
            (EventKind::Action, action.server_id.as_str())
        );
    }
    let issue = queue.events_since(0, 1000, None).unwrap().pop().unwrap();
    assert_eq!(
        (issue.kind, issue.subject.as_str()),
        (EventKind::Credential, "web-1-agent")
    );
    assert_eq!(queue.verify_audit().unwrap().first_bad_event_id, None);
    let agent = queue.authenticate(&issued.secret).unwrap();
    let acted = queue
        .as_principal(&agent)
        .cancel_action(fresh.id)
        .unwrap_err();
    assert_eq!(acted.kind(), ErrorKind::PermissionDenied);

    // Reopening the migrated file is a no-op, and keeps the credential.
    drop(queue);
    let again = SqliteStore::open(&db, &SqliteOptions::default()).unwrap();
    assert_eq!(again.get_action(8).unwrap().unwrap().id, 8);
    assert_eq!(again.list_credentials().unwrap(), [issued.credential]);
    assert_eq!(user_version(&db), SCHEMA_VERSION);
}

/// Every file in `dir` with its exact bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn stamp_newer(db: &Path, journal_mode: &str) {
    {
        let queue = ActionQueue::open(db).unwrap();
        queue.create_server("web-1", None).unwrap();
        queue
            .create_action(&NewAction::new("web-1", "clear_logs"))
            .unwrap();
    }
    let conn = Connection::open(db).unwrap();
    let mode: String = conn
        .query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode.to_lowercase(), journal_mode.to_lowercase());
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    // A future schema may have anything; make sure it is not "fixed" by us.
    conn.execute_batch("CREATE TABLE from_the_future (x INTEGER)")
        .unwrap();
    drop(conn);
}

fn assert_refused_untouched(journal_mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("newer.sqlite3");
    stamp_newer(&db, journal_mode);
    let before = snapshot(dir.path());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        [&db],
        "only the database file exists before the open ({journal_mode})"
    );
    for attempt in 0..2 {
        let err = SqliteStore::open(&db, &SqliteOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("version {}", SCHEMA_VERSION + 1)) && msg.contains("newer"),
            "clear message: {msg}"
        );
        let err = ActionQueue::open(&db).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage);
        // Byte-identical, and no -wal / -shm / -journal left behind.
        let after = snapshot(dir.path());
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "files in the directory after refused open #{attempt} ({journal_mode})"
        );
        assert!(
            after == before,
            "database bytes changed by refused open #{attempt} ({journal_mode})"
        );
    }
    assert_eq!(user_version(&db), SCHEMA_VERSION + 1);
}

#[test]
fn newer_wal_database_is_refused_and_left_byte_identical() {
    assert_refused_untouched("wal");
}

#[test]
fn newer_rollback_journal_database_is_refused_and_left_byte_identical() {
    assert_refused_untouched("delete");
}

/// Not a database at all, or a database cut short: a Storage error (never a
/// panic), and a file that is not SQLite is left as it was.
#[test]
fn garbage_or_truncated_file_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.sqlite3");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let err = SqliteStore::open(&garbage, &SqliteOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    assert!(!err.is_busy(), "a damaged file is not a lock: {err}");
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        bytes,
        "garbage file modified"
    );

    // A real database cut in half: refused at open or at the first query that
    // touches the missing pages, always as a Storage error.
    let whole = dir.path().join("whole.sqlite3");
    write_v1(&whole);
    {
        let queue = ActionQueue::open(&whole).unwrap();
        for i in 0..200 {
            queue
                .create_action(
                    &NewAction::new("web-1", "restart_service").service_name(format!("svc-{i}")),
                )
                .unwrap();
        }
    }
    let full = std::fs::read(&whole).unwrap();
    assert!(full.len() > 16 * 4096, "big enough to cut: {}", full.len());
    // Cut in half, or only the last page lost: the open reads the schema
    // version and finds the file damaged. A damaged file must be refused there,
    // as a Storage error, before any call can serve it as whole (or report a lost
    // row as NotFound).
    for keep in [full.len() / 2, full.len() - 4096] {
        let cut = dir.path().join(format!("cut-{keep}.sqlite3"));
        std::fs::write(&cut, &full[..keep]).unwrap();
        let e = SqliteStore::open(&cut, &SqliteOptions::default())
            .map(drop)
            .expect_err("a truncated file was opened");
        assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    }
}

/// The ids and total of every listing: each combination of filters, two pages.
fn listings(queue: &ActionQueue) -> Vec<(Vec<i64>, u64)> {
    let mut all = Vec::new();
    for server_id in [None, Some("web-1")] {
        for status in [None, Some(ActionStatus::Approved)] {
            for action_type in [None, Some("clear_logs")] {
                for offset in [0, 5] {
                    let page = queue
                        .list_actions(&ActionQuery {
                            server_id: server_id.map(str::to_owned),
                            status,
                            action_type: action_type.map(str::to_owned),
                            limit: 5,
                            offset,
                            before_id: None,
                        })
                        .unwrap();
                    all.push((page.actions.iter().map(|a| a.id).collect(), page.total));
                }
            }
        }
    }
    all
}

/// The names of the indexes on `actions`.
fn action_indexes(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut select = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'actions'")
        .unwrap();
    let names = select
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
}

/// A v7 file (ids counted and the audit head kept in `sqlite_sequence`; its
/// two newest actions deleted, so the counters are ahead of the largest
/// ids) migrates: every action and event reads the same, the chain
/// verifies, the old counters are gone, and new ids continue after them.
#[test]
fn v7_file_migrates_and_its_ids_continue_after_its_counters() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v7.sqlite3");
    write_v7(&db);
    let (actions, events) = (rows(&db, "actions"), rows(&db, "action_events"));
    assert_eq!((actions.len(), events.len()), (6, 12));

    let queue = ActionQueue::new(SqliteStore::open(&db, &SqliteOptions::default()).unwrap());
    assert_eq!(user_version(&db), SCHEMA_VERSION);
    // Columns added since v7 (the cancel request's) come after the old ones, null.
    let migrated: Vec<_> = rows(&db, "actions")
        .into_iter()
        .map(|mut row| {
            let added = row.split_off(actions[0].len());
            assert!(
                added.iter().all(|v| *v == rusqlite::types::Value::Null),
                "{added:?}"
            );
            row
        })
        .collect();
    assert_eq!(migrated, actions);
    assert_eq!(rows(&db, "action_events"), events);
    let sequences: Vec<String> = Connection::open(&db)
        .unwrap()
        .prepare("SELECT name FROM sqlite_sequence")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sequences, ["credentials"]);
    fault_support::assert_invariants(&db, "after migration");
    let audit = queue.verify_audit().unwrap();
    assert_eq!((audit.checked, audit.first_bad_event_id), (12, None));

    let created = queue
        .create_action(&NewAction::new("web-2", "restart_service").service_name("cron"))
        .unwrap();
    assert_eq!(created.id, 9, "ids 7 and 8 were taken before the upgrade");
    let logged = queue.events_since(12, 10, None).unwrap();
    assert_eq!(
        logged.iter().map(|e| e.id).collect::<Vec<_>>(),
        [15],
        "events 13 and 14 were taken before the upgrade"
    );
    let audit = queue.verify_audit().unwrap();
    assert_eq!((audit.checked, audit.first_bad_event_id), (13, None));
    fault_support::assert_invariants(&db, "after a create");
}

/// The last migration drops the indexes by age, by server and of active
/// actions (what the others answer, so a create writes fewer pages): a file
/// of the version before, written with them, migrates and every listing,
/// conflict check and budget reads as before.
#[test]
fn file_with_the_dropped_indexes_migrates_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    // The v7 file migrated as it is: what every listing must read.
    let migrated = dir.path().join("v7.sqlite3");
    write_v7(&migrated);
    let before = listings(&ActionQueue::new(
        SqliteStore::open(&migrated, &SqliteOptions::default()).unwrap(),
    ));
    // The file as the version before v6 kept it: the same, with its three
    // indexes, and only action events (events of servers and credentials
    // came with v7, whose migration runs again on it).
    let db = dir.path().join("previous.sqlite3");
    write_v7(&db);
    const INDEXES_DROPPED_AT: i64 = 6;
    Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS actions_by_created ON actions(created_at, id);
             CREATE INDEX IF NOT EXISTS actions_by_server ON actions(server_id, created_at, id);
             CREATE INDEX IF NOT EXISTS actions_active ON actions(server_id, action_type)
                 WHERE status IN ('pending', 'approved', 'executing');
             DELETE FROM action_events WHERE kind != 'action';
             PRAGMA user_version = {};",
            INDEXES_DROPPED_AT - 1
        ))
        .unwrap();
    assert!(action_indexes(&db).contains(&"actions_active".to_owned()));

    let queue = ActionQueue::new(SqliteStore::open(&db, &SqliteOptions::default()).unwrap());
    assert_eq!(user_version(&db), SCHEMA_VERSION);
    let indexes = action_indexes(&db);
    for dropped in ["actions_by_created", "actions_by_server", "actions_active"] {
        assert!(!indexes.contains(&dropped.to_owned()), "{indexes:?}");
    }
    assert_eq!(listings(&queue), before);
    // The exclusive group's check (which read `actions_active`) still finds
    // the active apt action (5, approved, of web-1).
    let clash = queue
        .create_action(&NewAction::new("web-1", "apt_upgrade_all"))
        .unwrap_err();
    assert_eq!(clash.kind(), ErrorKind::Conflict);
    assert_eq!(clash.existing_action_id(), Some(5));
    fault_support::assert_invariants(&db, "after migration");
}
