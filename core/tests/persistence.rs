//! What a SQLite file keeps across closing and reopening.
#![cfg(feature = "sqlite")]

use actionq::{
    ActionQueue, ActionStatus, Durability, ErrorKind, NewAction, SqliteOptions, SqliteStore,
    SCHEMA_VERSION,
};

fn open(path: &std::path::Path) -> ActionQueue {
    ActionQueue::new(SqliteStore::open(path, &SqliteOptions::default()).unwrap())
}

#[test]
fn actions_survive_reopen_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let (a, claim_token) = {
        let q = open(&path);
        q.create_server("web-1", Some("host")).unwrap();
        q.pause_server("web-1").unwrap();
        let a = q
            .create_action(&NewAction::new("web-1", "apt_update").alert_id(9))
            .unwrap();
        q.by("alice").unwrap().approve_action(a.id).unwrap();
        let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
        (q.get_action(a.id).unwrap(), claim.lease_token)
    };
    let q = open(&path);
    assert_eq!(q.get_action(a.id).unwrap(), a);
    assert!(q.get_server("web-1").unwrap().is_paused);
    // The pause, the creation, the approval and the claim.
    assert_eq!(q.events_since(0, 100, None).unwrap().len(), 4);
    // The lease token survives too: the agent can still finish after a restart.
    let done = q
        .report_result(a.id, &claim_token, 0, Some("ok"), None)
        .unwrap();
    assert_eq!(done.status, ActionStatus::Completed);
    let b = q
        .create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    assert_eq!(b.id, a.id + 1);
    let b_event = q.events_since(0, 100, None).unwrap().pop().unwrap().id;
    drop(q);
    // Even if the newest rows disappear (an operator's manual delete), their
    // ids stay retired: the action's and its event's.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "DELETE FROM action_events WHERE action_id = {id}; DELETE FROM actions WHERE id = {id};",
        id = b.id
    ))
    .unwrap();
    drop(conn);
    let q = open(&path);
    let c = q
        .create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    assert_eq!(c.id, b.id + 1);
    let events = q.events_since(b_event - 1, 100, None).unwrap();
    assert_eq!(
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        [b_event + 1],
        "event {b_event} was deleted, its id not reused"
    );
}

#[test]
fn full_durability_opens_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        durability: Durability::Full,
        ..Default::default()
    };
    let q = ActionQueue::new(SqliteStore::open(dir.path().join("q.db"), &options).unwrap());
    q.create_server("web-1", None).unwrap();
    q.create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
}

#[test]
fn newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStore::open(&path, &SqliteOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert!(
        err.to_string().contains("newer than this library supports"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn unopenable_path_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = ActionQueue::open(dir.path().join("missing-dir/q.db")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
    let not_db = dir.path().join("garbage.db");
    std::fs::write(&not_db, vec![0x42u8; 8192]).unwrap();
    assert_eq!(
        ActionQueue::open(&not_db).unwrap_err().kind(),
        ErrorKind::Storage
    );
}

/// The database and its `-wal`/`-shm` files are created 0600 (they hold
/// every command's output), whatever the process umask lets through.
#[cfg(unix)]
#[test]
fn database_files_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("private.sqlite3");
    let queue = actionq::ActionQueue::new(
        actionq::SqliteStore::open(&db, &actionq::SqliteOptions::default()).unwrap(),
    );
    queue.create_server("web-1", None).unwrap();
    queue
        .create_action(&actionq::NewAction::new("web-1", "clear_logs"))
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("private.sqlite3{suffix}"));
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}: {:o}", file.display(), mode);
    }
}
