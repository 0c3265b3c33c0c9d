//! SPEC Storage: a busy timeout (a lock held beyond it is a Storage error, never
//! a hang), and write transactions start IMMEDIATE (a writer that has to wait for
//! another connection's commit waits instead of failing with SQLITE_BUSY).
//!
//! No durations are asserted and no sleep stands in for a handshake: a writer is
//! known to be waiting for the lock when its thread is seen, through
//! `/proc/self/task/<tid>/syscall`, inside the busy handler's yield or sleep.
#![cfg(feature = "sqlite")]

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actionq::{Action, ActionQueue, ErrorKind, NewAction, Result, SqliteOptions, SqliteStore};

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

/// Syscalls the store's busy handler waits in: `sched_yield` for its first
/// polls, then `nanosleep`/`clock_nanosleep` (`std::thread::sleep`).
#[cfg(target_arch = "x86_64")]
const WAITING_SYSCALLS: &[i64] = &[24, 35, 230];
#[cfg(target_arch = "aarch64")]
const WAITING_SYSCALLS: &[i64] = &[124, 101, 115];

/// The calling thread's kernel id, so another thread can watch what it does.
fn current_tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name().unwrap().to_string_lossy().into_owned()
}

/// Whether thread `tid` of this process is in one of the busy handler's
/// syscalls right now.
fn in_busy_wait(tid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
        .is_some_and(|nr| WAITING_SYSCALLS.contains(&nr))
}

/// A write running on its own thread, with that thread's id for watching it.
struct Writer {
    tid: String,
    done: mpsc::Receiver<()>,
    handle: JoinHandle<Result<Action>>,
}

fn spawn_create(q: &ActionQueue, service: String) -> Writer {
    let q = q.clone();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        tid_tx.send(current_tid()).unwrap();
        let result = q.create_action(&restart(&service));
        let _ = done_tx.send(());
        result
    });
    Writer {
        tid: tid_rx.recv().unwrap(),
        done,
        handle,
    }
}

impl Writer {
    /// Watches the writer until it is seen waiting for the lock (true) or it
    /// has returned without ever being seen waiting (false).
    fn seen_waiting(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if in_busy_wait(&self.tid) {
                return true;
            }
            if self.done.try_recv().is_ok() {
                return false;
            }
            std::thread::yield_now();
        }
        panic!("writer thread {} neither waited nor returned", self.tid);
    }
}

#[test]
fn lock_held_beyond_the_busy_timeout_is_a_storage_error_after_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    // Long enough that the watcher sees the wait even on a loaded machine;
    // the test only ever asserts that the wait happened, not how long it was.
    let q = open(&path, Duration::from_secs(2));
    q.create_server("web-1", None).unwrap();
    let before = q.get_server("web-1").unwrap();

    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // A store that ignored its busy timeout would fail at once, never waiting;
    // one without a timeout would hang (the test's watchdog panics).
    let mut waited = false;
    for _attempt in 0..5 {
        let writer = spawn_create(&q, "nginx".into());
        waited |= writer.seen_waiting();
        let err = writer.handle.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
        assert_eq!((err.code(), err.http_status()), ("STORAGE_ERROR", 503));
        assert!(err.to_string().contains("busy timeout"), "{err}");
        if waited {
            break;
        }
    }
    assert!(
        waited,
        "the writer never waited for the lock before failing"
    );
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
    let q = open(&path, Duration::from_secs(600));
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
    let first = q.create_action(&restart("a")).unwrap();
    // A second store on the file: each has one writer connection behind a
    // mutex, and both writes must wait on SQLite's lock, not on that mutex.
    let q2 = open(&path, Duration::from_secs(600));
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
        let creator = spawn_create(&q, format!("r{round}"));
        let dup = spawn_create(&q2, "a".into());
        // Commit only once both writes are seen waiting for the lock: each
        // then has to carry on from the other connection's commit.
        assert!(
            creator.seen_waiting(),
            "round {round}: creator never waited"
        );
        assert!(dup.seen_waiting(), "round {round}: duplicate never waited");
        holder.execute_batch("COMMIT").unwrap();
        let created = creator
            .handle
            .join()
            .unwrap()
            .expect("waits, then succeeds");
        assert_eq!(created.service_name.unwrap(), format!("r{round}"));
        let dup = dup.handle.join().unwrap().unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::Conflict, "{dup}");
        assert_eq!(dup.existing_action_id(), Some(first.id));
        assert_eq!(
            q.get_server("web-1").unwrap().hostname.as_deref(),
            Some(format!("h{round}").as_str())
        );
    }
}
