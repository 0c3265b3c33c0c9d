//! The prune checkpoint against someone editing the database
//! (`docs/contract/retention.md#chain-checkpoint`): after a prune, the
//! checkpoint's hash or id edited, the checkpoint removed, an event after it
//! edited, or a pruned event put back before it — `verify_audit` names the
//! first bad event each time; untouched, it verifies everything after the
//! checkpoint and reports `pruned_through`. SQLite and PostgreSQL (the
//! memory store has no one to edit it).
#![cfg(feature = "sqlite")] // both open their stores by location (a SQLite-feature call)

mod common;

use std::sync::Arc;

use actionq::{ActionQueue, AuditReport, ManualClock, NewAction};

/// Ten finished actions, one left pending (paused server), five finished
/// after it; an hour later, a prune. Returns the checkpoint's event id and
/// the id of the last event.
fn pruned_log(queue: ActionQueue) -> (i64, i64) {
    let clock = Arc::new(ManualClock::new(common::start_time()));
    let q = queue.with_clock(clock.clone());
    q.create_server("web-1", None).unwrap();
    q.create_server("web-2", None).unwrap();
    q.pause_server("web-2").unwrap();
    let finish = |i: usize| {
        let a = q
            .create_action(&NewAction::new("web-1", "clear_logs").created_by(format!("u{i}")))
            .unwrap();
        q.cancel_action(a.id).unwrap();
    };
    (0..10).for_each(finish);
    q.create_action(&NewAction::new("web-2", "clear_logs"))
        .unwrap();
    (10..15).for_each(finish);
    clock.advance(chrono::TimeDelta::hours(1));
    let report = q.prune(60).unwrap();
    assert_eq!(report.pruned_actions, 10);
    let last = q.events_since(0, 1000, None).unwrap().last().unwrap().id;
    (report.pruned_through.unwrap(), last)
}

/// Each case: what was done, the statements, and the report expected, given
/// the checkpoint `p` and the last event id `last` of the untouched log.
fn cases(
    p: i64,
    last: i64,
    checkpoint: &str,
    other_hash: &str,
    put_back: &str,
) -> Vec<(&'static str, String, AuditReport)> {
    let first = p + 1;
    let report = |checked, first_bad_event_id| AuditReport {
        checked,
        first_bad_event_id,
        pruned_through: Some(p),
    };
    vec![
        ("untouched", String::new(), report((last - p) as u64, None)),
        (
            "checkpoint hash edited",
            format!("UPDATE {checkpoint} SET hash = {other_hash}"),
            report(0, Some(first)),
        ),
        (
            "checkpoint moved onto the first event left",
            format!("UPDATE {checkpoint} SET last_event_id = {first}"),
            AuditReport {
                pruned_through: Some(first),
                ..report(0, Some(first))
            },
        ),
        (
            "checkpoint removed",
            format!("DELETE FROM {checkpoint}"),
            AuditReport {
                pruned_through: None,
                ..report(0, Some(first))
            },
        ),
        (
            "event after the checkpoint edited",
            format!(
                "UPDATE action_events SET actor = 'mallory' WHERE id = {}",
                first + 2
            ),
            report(2, Some(first + 2)),
        ),
        (
            "pruned event put back before the checkpoint",
            put_back
                .replace("{p}", &p.to_string())
                .replace("{first}", &first.to_string()),
            report(0, Some(p)),
        ),
    ]
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_checkpoint_tampering_before_and_after_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let (p, last) = pruned_log(ActionQueue::open(&path).unwrap());
    let put_back = "INSERT INTO action_events SELECT {p}, action_id, from_status, to_status, \
                    actor, at, detail, prev_hash, hash, kind, subject, digest, hash_version \
                    FROM action_events WHERE id = {first}";
    let pristine = std::fs::read(&path).unwrap();
    for (what, statements, want) in cases(p, last, "prune_checkpoint", "randomblob(32)", put_back) {
        std::fs::write(&path, &pristine).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&statements).unwrap();
        drop(conn);
        let got = ActionQueue::open(&path).unwrap().verify_audit().unwrap();
        assert_eq!(got, want, "{what}");
    }
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_checkpoint_tampering_before_and_after_is_found() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let open = || ActionQueue::open_location(&url, &Default::default()).unwrap();
    let (p, last) = pruned_log(open());
    let schema = common::pg::schema_of(&url);
    let put_back = "INSERT INTO action_events SELECT {p}, action_id, from_status, to_status, \
                    actor, at, detail, prev_hash, hash, kind, subject, digest, hash_version \
                    FROM action_events WHERE id = {first}";
    let mut admin = common::pg::admin();
    admin
        .batch_execute(&format!(
            "SET search_path = {schema}; \
             CREATE TABLE pristine_events AS SELECT * FROM action_events; \
             CREATE TABLE pristine_checkpoint AS SELECT * FROM actionq_prune_checkpoint;"
        ))
        .unwrap();
    for (what, statements, want) in cases(
        p,
        last,
        "actionq_prune_checkpoint",
        "sha256(hash)",
        put_back,
    ) {
        admin
            .batch_execute(&format!(
                "BEGIN; \
                 DELETE FROM action_events; INSERT INTO action_events SELECT * FROM pristine_events; \
                 DELETE FROM actionq_prune_checkpoint; \
                 INSERT INTO actionq_prune_checkpoint SELECT * FROM pristine_checkpoint; \
                 {statements}; COMMIT;"
            ))
            .unwrap();
        assert_eq!(open().verify_audit().unwrap(), want, "{what}");
    }
}
