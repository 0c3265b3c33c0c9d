//! SPEC Storage: a busy timeout (a lock held beyond it is a Storage error, never
//! a hang), and write transactions start IMMEDIATE (a writer that has to wait for
//! another connection's commit waits instead of failing with SQLITE_BUSY).

use std::path::Path;
use std::time::{Duration, Instant};

use actionq::{ActionQueue, ErrorKind, NewAction, SqliteOptions, SqliteStore};

fn open(path: &Path, busy_timeout: Duration) -> ActionQueue {
    let options = SqliteOptions {
        busy_timeout,
        ..SqliteOptions::default()
    };
    ActionQueue::new(SqliteStore::open(path, &options).unwrap())
}

fn restart(service: &str) -> NewAction {
    NewAction::new("web-1", "restart_service").service_name(service)
}

#[test]
fn lock_held_beyond_the_busy_timeout_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let q = open(&path, Duration::from_millis(300));
    q.create_server("web-1", None).unwrap();
    let before = q.get_server("web-1").unwrap();

    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let err = q.create_action(&restart("nginx")).unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    assert_eq!((err.code(), err.http_status()), ("STORAGE_ERROR", 503));
    assert!(
        waited >= Duration::from_millis(250),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    assert_eq!(
        q.pause_server("web-1").unwrap_err().kind(),
        ErrorKind::Storage
    );
    holder.execute_batch("ROLLBACK").unwrap();

    // Nothing half-done; the store works again once the lock is gone.
    assert_eq!(q.get_server("web-1").unwrap(), before);
    assert_eq!(q.events_since(0, 10).unwrap().len(), 0);
    let a = q.create_action(&restart("nginx")).unwrap();
    assert_eq!(a.id, 1);
}

#[test]
fn writer_waits_for_another_connections_commit_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let q = open(&path, Duration::from_secs(20));
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
    let first = q.create_action(&restart("a")).unwrap();
    for round in 0..5 {
        // Another connection writes and commits while our writes are waiting:
        // a deferred transaction would read a snapshot that the commit makes
        // stale, then fail with SQLITE_BUSY instead of waiting.
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        holder
            .execute(
                "UPDATE servers SET hostname = ?1 WHERE id = 'web-1'",
                [format!("h{round}")],
            )
            .unwrap();
        let committer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            holder.execute_batch("COMMIT").unwrap();
        });
        let q2 = q.clone();
        let creator = std::thread::spawn(move || q2.create_action(&restart(&format!("r{round}"))));
        let dup = q.create_action(&restart("a"));
        let created = creator.join().unwrap().expect("waits, then succeeds");
        committer.join().unwrap();
        assert_eq!(created.service_name.unwrap(), format!("r{round}"));
        let dup = dup.unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::Conflict, "{dup}");
        assert_eq!(dup.existing_action_id(), Some(first.id));
        assert_eq!(
            q.get_server("web-1").unwrap().hostname.as_deref(),
            Some(format!("h{round}").as_str())
        );
    }
}
