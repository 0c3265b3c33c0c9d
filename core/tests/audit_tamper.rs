//! `docs/contract/audit.md#tamper-evident-audit` against someone editing the SQLite file: rows
//! of `action_events` edited, deleted (in the middle and the newest ones)
//! and reordered directly with SQL, and an edit whose hash was recomputed
//! with the real encoding; `verify_audit` names the first bad event each
//! time, and an untouched file verifies whole.
#![cfg(feature = "sqlite")]

mod audit_cases;

use std::path::{Path, PathBuf};

use actionq::audit::stored_event_hash;
use actionq::{ActionQueue, AuditReport, NewAction};
use rusqlite::Connection;

/// A SQLite queue with `n_actions` actions, each created, claimed and
/// finished (3 events each), on its own file. Returns the file.
fn busy_file(dir: &Path, n_actions: usize) -> PathBuf {
    let path = dir.join("q.sqlite3");
    let queue = ActionQueue::open(&path).unwrap();
    queue.create_server("web-1", None).unwrap();
    for i in 0..n_actions {
        queue
            .create_action(&NewAction::new("web-1", "clear_logs").created_by(format!("u{i}")))
            .unwrap();
        let claim = queue.claim_next("web-1", None, None).unwrap().unwrap();
        queue
            .report_result(claim.action.id, &claim.lease_token, 0, Some("ok"), None)
            .unwrap();
    }
    path
}

fn verify(path: &Path) -> AuditReport {
    ActionQueue::open(path).unwrap().verify_audit().unwrap()
}

fn sql(path: &Path, statements: &str) {
    Connection::open(path)
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

fn report(checked: u64, first_bad: Option<i64>) -> AuditReport {
    AuditReport {
        checked,
        first_bad_event_id: first_bad,
        pruned_through: None,
    }
}

/// Each kind of damage on a fresh copy of a 30-event log.
#[test]
fn every_edit_delete_and_reorder_names_the_first_bad_event() {
    let cases: &[(&str, &str, AuditReport)] = &[
        ("untouched", "", report(30, None)),
        (
            "actor of event 7 edited",
            "UPDATE action_events SET actor = 'mallory' WHERE id = 7",
            report(6, Some(7)),
        ),
        (
            "detail of event 12 edited",
            "UPDATE action_events SET detail = 'exit_code=1' WHERE id = 12",
            report(11, Some(12)),
        ),
        (
            "time of event 1 edited",
            "UPDATE action_events SET at = at + 1 WHERE id = 1",
            report(0, Some(1)),
        ),
        (
            "status of event 20 edited to another valid one",
            "UPDATE action_events SET to_status = 'failed' WHERE id = 20",
            report(19, Some(20)),
        ),
        (
            "status of event 20 edited to garbage",
            "UPDATE action_events SET to_status = 'pwned' WHERE id = 20",
            report(19, Some(20)),
        ),
        (
            "stored prev_hash of event 9 edited (its own hash left alone)",
            "UPDATE action_events SET prev_hash = zeroblob(32) WHERE id = 9",
            report(8, Some(9)),
        ),
        (
            "event 10 deleted",
            "DELETE FROM action_events WHERE id = 10",
            report(9, Some(11)),
        ),
        (
            "the newest event deleted",
            "DELETE FROM action_events WHERE id = 30",
            report(29, Some(30)),
        ),
        (
            "the three newest events deleted",
            "DELETE FROM action_events WHERE id > 27",
            report(27, Some(28)),
        ),
        (
            "every event deleted",
            "DELETE FROM action_events",
            report(0, Some(1)),
        ),
        (
            "events 4 and 5 swapped (ids exchanged)",
            "UPDATE action_events SET id = -4 WHERE id = 4;
             UPDATE action_events SET id = 4 WHERE id = 5;
             UPDATE action_events SET id = 5 WHERE id = -4;",
            report(3, Some(4)),
        ),
        (
            "events 4 and 5 swapped (contents exchanged, hashes kept)",
            "CREATE TEMP TABLE t AS SELECT * FROM action_events WHERE id IN (4, 5);
             UPDATE action_events SET action_id = (SELECT action_id FROM t WHERE id = 5),
               from_status = (SELECT from_status FROM t WHERE id = 5),
               to_status = (SELECT to_status FROM t WHERE id = 5),
               actor = (SELECT actor FROM t WHERE id = 5), at = (SELECT at FROM t WHERE id = 5),
               detail = (SELECT detail FROM t WHERE id = 5) WHERE id = 4;
             UPDATE action_events SET action_id = (SELECT action_id FROM t WHERE id = 4),
               from_status = (SELECT from_status FROM t WHERE id = 4),
               to_status = (SELECT to_status FROM t WHERE id = 4),
               actor = (SELECT actor FROM t WHERE id = 4), at = (SELECT at FROM t WHERE id = 4),
               detail = (SELECT detail FROM t WHERE id = 4) WHERE id = 5;",
            report(3, Some(4)),
        ),
        (
            "a forged event appended without moving the head",
            "INSERT INTO action_events (action_id, from_status, to_status, actor, at, detail,
               prev_hash, hash, kind, subject, hash_version)
             SELECT 1, 'approved', 'cancelled', 'mallory', at, NULL, hash, hash, 'action',
               'web-1', 2
             FROM action_events WHERE id = 30",
            report(30, Some(31)),
        ),
        (
            "stored hash of event 15 zeroed",
            "UPDATE action_events SET hash = zeroblob(32) WHERE id = 15",
            report(14, Some(15)),
        ),
        (
            "the head overwritten with something that is not a head",
            "UPDATE action_counts SET audit_head = 29 WHERE server_id = '' AND status = ''",
            report(30, Some(31)),
        ),
        (
            "the head erased",
            "UPDATE action_counts SET audit_head = NULL WHERE server_id = '' AND status = ''",
            report(30, Some(31)),
        ),
        (
            "the row holding the head deleted",
            "DELETE FROM action_counts WHERE server_id = '' AND status = ''",
            report(30, Some(31)),
        ),
    ];
    let pristine = tempfile::tempdir().unwrap();
    let source = busy_file(pristine.path(), 10);
    for (what, statements, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("q.sqlite3");
        // A consistent copy of the WAL database.
        sql(
            &source,
            &format!(
                "VACUUM INTO '{}'",
                copy.display().to_string().replace('\'', "''")
            ),
        );
        sql(&copy, statements);
        assert_eq!(verify(&copy), *want, "{what}");
    }
}

/// Event 15's actor edited and its hash recomputed with the real encoding
/// ([`stored_event_hash`] over its stored `prev_hash`): event 15 itself
/// verifies, so the break is the next link, event 16, whose `prev_hash` is
/// the hash 15 had before.
#[test]
fn an_edit_with_its_hash_recomputed_is_found_by_the_next_link() {
    let pristine = tempfile::tempdir().unwrap();
    let path = busy_file(pristine.path(), 10);
    let queue = ActionQueue::open(&path).unwrap();
    let mut edited = queue.events_since(14, 1, None).unwrap().remove(0);
    assert_eq!(edited.id, 15);
    edited.by = "mallory".into();
    let conn = Connection::open(&path).unwrap();
    let prev: [u8; 32] = conn
        .query_row(
            "SELECT prev_hash FROM action_events WHERE id = 15",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let forged = stored_event_hash(&prev, &edited);
    conn.execute(
        "UPDATE action_events SET actor = 'mallory', hash = ?1 WHERE id = 15",
        [forged.as_slice()],
    )
    .unwrap();
    assert_eq!(verify(&path), report(15, Some(16)));
}

/// The head (event id, then hash, in one blob) with one half forged and the
/// other left right: either half alone is found.
#[test]
fn a_head_with_either_half_forged_is_found() {
    let pristine = tempfile::tempdir().unwrap();
    let source = busy_file(pristine.path(), 10);
    let forge = |what: &str, edit: fn(&mut Vec<u8>)| {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("q.sqlite3");
        std::fs::copy(&source, &copy).unwrap();
        let conn = Connection::open(&copy).unwrap();
        let select = "SELECT audit_head FROM action_counts WHERE server_id = '' AND status = ''";
        let mut head: Vec<u8> = conn.query_row(select, [], |r| r.get(0)).unwrap();
        assert_eq!(head.len(), 40, "the head is the event id and its hash");
        edit(&mut head);
        conn.execute(
            "UPDATE action_counts SET audit_head = ?1 WHERE server_id = '' AND status = ''",
            [&head],
        )
        .unwrap();
        let edited: Vec<u8> = conn.query_row(select, [], |r| r.get(0)).unwrap();
        assert_eq!(edited, head, "{what}: the forged head is stored as a blob");
        drop(conn);
        assert_eq!(verify(&copy), report(30, Some(31)), "{what}");
    };
    forge("hash forged, event id left right", |head| head[8..].fill(7));
    forge("event id moved back, hash left right", |head| {
        head[..8].copy_from_slice(&29i64.to_be_bytes())
    });
}

/// The chain continues across reopening and across processes' writes
/// (every write reads the head in its own transaction).
#[test]
fn chain_continues_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = busy_file(dir.path(), 3);
    let queue = ActionQueue::open(&path).unwrap();
    queue
        .create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    let second = ActionQueue::open(&path).unwrap();
    second
        .create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap();
    queue.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(verify(&path), report(12, None));
}

/// Edits to what the chain vouches for beyond its events: an action row's
/// argv, env, digest or requester, an approval's digest, a server or
/// credential event (see `audit_cases`).
#[test]
fn edited_actions_approvals_and_server_and_credential_events_are_found() {
    let pristine = tempfile::tempdir().unwrap();
    let source = pristine.path().join("q.sqlite3");
    let queue = ActionQueue::open(&source).unwrap();
    audit_cases::fill(&queue);
    let action = queue.get_action(1).unwrap();
    drop(queue);
    for case in audit_cases::cases(&action) {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("q.sqlite3");
        sql(
            &source,
            &format!(
                "VACUUM INTO '{}'",
                copy.display().to_string().replace('\'', "''")
            ),
        );
        sql(&copy, &case.sqlite);
        assert_eq!(verify(&copy), case.want, "{}", case.what);
    }
}
