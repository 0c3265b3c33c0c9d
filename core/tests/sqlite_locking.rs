//! `docs/contract/storage.md#sqlite`: a busy timeout (a lock held beyond it is a Storage error, never
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

/// A store call running on its own thread, with that thread's id for watching it.
struct Waiter<T> {
    tid: String,
    done: mpsc::Receiver<()>,
    handle: JoinHandle<T>,
}

/// Far longer than any busy timeout here: a call still running this long
/// after its lock went away (or its timeout passed) waits forever.
const WATCHDOG: Duration = Duration::from_secs(120);

fn spawn_waiter<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Waiter<T> {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        tid_tx.send(current_tid()).unwrap();
        let result = call();
        let _ = done_tx.send(());
        result
    });
    Waiter {
        tid: tid_rx.recv().unwrap(),
        done,
        handle,
    }
}

fn spawn_create(q: &ActionQueue, service: String) -> Waiter<Result<Action>> {
    let q = q.clone();
    spawn_waiter(move || q.create_action(&restart(&service)))
}

fn spawn_open(path: &Path, busy_timeout: Duration) -> Waiter<Result<SqliteStore>> {
    let path = path.to_owned();
    let options = SqliteOptions {
        busy_timeout,
        ..SqliteOptions::default()
    };
    spawn_waiter(move || SqliteStore::open(&path, &options))
}

impl<T> Waiter<T> {
    /// Watches the call until it is seen waiting for the lock (true) or it
    /// has returned without ever being seen waiting (false).
    fn seen_waiting(&self) -> bool {
        let deadline = Instant::now() + WATCHDOG;
        while Instant::now() < deadline {
            if in_busy_wait(&self.tid) {
                return true;
            }
            if self.done.try_recv().is_ok() {
                return false;
            }
            std::thread::yield_now();
        }
        panic!("thread {} neither waited nor returned", self.tid);
    }

    /// The call's result; panics instead of hanging if it never returns.
    fn finish(self) -> T {
        if self.done.recv_timeout(WATCHDOG).is_err() {
            panic!(
                "thread {} still waiting after {WATCHDOG:?}: its busy timeout is ignored",
                self.tid
            );
        }
        self.handle.join().unwrap()
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
        let err = writer.finish().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
        assert_eq!((err.code(), err.http_status()), ("STORAGE_ERROR", 503));
        assert!(err.to_string().contains("busy timeout"), "{err}");
        assert!(err.is_busy(), "{err}");
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
    assert_eq!(q.events_since(0, 10, None).unwrap().len(), 0);
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
        let created = creator.finish().expect("waits, then succeeds");
        assert_eq!(created.service_name.unwrap(), format!("r{round}.service"));
        let dup = dup.finish().unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::Conflict, "{dup}");
        assert_eq!(dup.existing_action_id(), Some(first.id));
        assert_eq!(
            q.get_server("web-1").unwrap().hostname.as_deref(),
            Some(format!("h{round}").as_str())
        );
    }
}

/// A connection on a fresh file in SQLite's default rollback journal, holding
/// a read transaction: its SHARED lock blocks the exclusive lock that
/// switching the file to WAL needs.
fn fresh_file_with_reader(path: &Path) -> rusqlite::Connection {
    let reader = rusqlite::Connection::open(path).unwrap();
    reader
        .execute_batch("CREATE TABLE unrelated (x); BEGIN; SELECT * FROM unrelated;")
        .unwrap();
    reader
}

#[test]
fn switching_a_fresh_file_to_wal_waits_for_a_reader_to_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let reader = fresh_file_with_reader(&path);
    // It waits in the busy handler; two openers switching at once, where SQLite
    // refuses to wait, are multiprocess_races' open race.
    let opener = spawn_open(&path, Duration::from_secs(600));
    assert!(opener.seen_waiting(), "open never waited for the reader");
    reader.execute_batch("COMMIT").unwrap();
    let q = ActionQueue::new(opener.finish().expect("waits, then opens"));
    q.create_server("web-1", None).unwrap();
    assert_eq!(q.create_action(&restart("nginx")).unwrap().id, 1);
    drop(reader);
    let mode: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn switching_to_wal_blocked_beyond_the_busy_timeout_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let reader = fresh_file_with_reader(&path);
    let opener = spawn_open(&path, Duration::from_secs(2));
    assert!(opener.seen_waiting(), "open never waited for the reader");
    let err = opener.finish().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    assert!(err.is_busy(), "{err}");
    assert!(err.to_string().contains("busy timeout"), "{err}");
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    // Refused without a trace: still the reader's file, in its journal mode.
    let mode: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
}

#[test]
fn opening_a_current_file_needs_no_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let q = open(&path, Duration::ZERO);
    q.create_server("web-1", None).unwrap();
    drop(q);
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // With no busy timeout at all, any wait for the writer's lock would fail.
    let q = open(&path, Duration::ZERO);
    assert_eq!(q.get_server("web-1").unwrap().id, "web-1");
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn two_stores_migrating_one_old_file_at_once_both_open() {
    const V1_SCHEMA: &str = include_str!("fixtures/v1_schema.sql");
    const V1_DATA: &str = include_str!("fixtures/v1_data.sql");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL; BEGIN; {V1_SCHEMA} {V1_DATA} PRAGMA user_version = 1; COMMIT;"
        ))
        .unwrap();
    let actions_before: i64 = holder
        .query_row("SELECT count(*) FROM actions", [], |r| r.get(0))
        .unwrap();
    // Both stores read version 1, then wait for the migration's write lock;
    // whichever gets it second finds the file already migrated.
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let openers: Vec<_> = (0..2)
        .map(|_| spawn_open(&path, Duration::from_secs(600)))
        .collect();
    for (i, opener) in openers.iter().enumerate() {
        assert!(opener.seen_waiting(), "opener {i} never waited to migrate");
    }
    holder.execute_batch("ROLLBACK").unwrap();
    for (i, opener) in openers.into_iter().enumerate() {
        let store = opener
            .finish()
            .unwrap_or_else(|e| panic!("opener {i}: {e}"));
        let q = ActionQueue::new(store);
        assert_eq!(
            q.list_actions(&Default::default()).unwrap().total as i64,
            actions_before
        );
    }
    let version: i64 = holder
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, actionq::SCHEMA_VERSION);
}

#[test]
fn switching_to_wal_retries_while_another_connection_is_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    // A writer in the middle of a transaction (RESERVED) on a fresh rollback-
    // journal file: SQLite refuses the switch's lock at once, without the busy
    // handler (waiting there could deadlock), so only the store's own retry waits.
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer
        .execute_batch(
            "CREATE TABLE unrelated (x); BEGIN IMMEDIATE; INSERT INTO unrelated VALUES (1);",
        )
        .unwrap();
    let opener = spawn_open(&path, Duration::from_secs(600));
    assert!(opener.seen_waiting(), "open never waited for the writer");
    writer.execute_batch("ROLLBACK").unwrap();
    let q = ActionQueue::new(opener.finish().expect("retries, then opens"));
    q.create_server("web-1", None).unwrap();
    assert_eq!(q.create_action(&restart("nginx")).unwrap().id, 1);
}
