//! Commits do not pay for checkpoints: the thread that creates never syncs
//! the database file (only a checkpoint writes and syncs it) under the default
//! durability, while checkpoints still run (in the store's checkpoint thread).
//! Observed with strace on a child run of this test binary: every
//! fsync/fdatasync with the thread that made it and the file it synced. (The
//! creating thread does sync the WAL once each time the WAL starts over: SQLite
//! syncs a new WAL header with the first commit after a restart.)
#![cfg(feature = "sqlite")]

use std::process::Command;

use actionq::{ActionQueue, NewAction, SqliteOptions, SqliteStore};

const CHILD_ENV: &str = "ACTIONQ_CHECKPOINT_CHILD";
/// Enough creates (6 WAL pages each) for several checkpoints at 1,000 pages.
const CREATES: usize = 1500;

/// The child: `CREATES` creates on the file named in [`CHILD_ENV`], then the
/// creating thread's id into `<file>.tid`. A no-op unless started by the parent.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn checkpoint_child_entry() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let queue = ActionQueue::new(SqliteStore::open(&db, &SqliteOptions::default()).unwrap());
    // Markers in the trace around the creates (the lookups fail: no such files).
    let _ = std::fs::metadata("/actionq-creates-start");
    for i in 0..CREATES {
        queue
            .create_action(
                &NewAction::new("web-1", "restart_service").service_name(format!("s{i}")),
            )
            .unwrap();
    }
    let _ = std::fs::metadata("/actionq-creates-end");
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    let me = std::fs::read_link("/proc/thread-self").unwrap();
    let tid = me.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::write(format!("{db}.tid"), tid).unwrap();
    // Not closed here: closing the last connection checkpoints on this thread.
    std::mem::forget(queue);
}

#[test]
fn the_creating_thread_never_checkpoints_and_checkpoints_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite3");
    ActionQueue::new(SqliteStore::open(&db, &SqliteOptions::default()).unwrap())
        .create_server("web-1", None)
        .unwrap();
    let trace = dir.path().join("strace");
    let run = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=fsync,fdatasync,stat,statx,newfstatat",
            "-o",
        ])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "--ignored",
            "checkpoint_child_entry",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db)
        .output()
        .expect("strace runs (apt-get install strace)");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let creator = std::fs::read_to_string(format!("{}.tid", db.display())).unwrap();
    // Lines are "<tid> fsync(<fd><path>) = 0"; the syncs of the database file
    // between the markers, by thread.
    let text = std::fs::read_to_string(&trace).unwrap();
    let database = format!("{}>", db.display());
    let syncs: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains("/actionq-creates-start"))
        .take_while(|l| !l.contains("/actionq-creates-end"))
        .filter(|l| (l.contains("fsync(") || l.contains("fdatasync(")) && l.contains(&database))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    let by_creator = syncs.iter().filter(|tid| **tid == creator).count();
    eprintln!(
        "{} syncs of the database file, {by_creator} by the creating thread {creator}",
        syncs.len()
    );
    assert_eq!(by_creator, 0, "the creating thread checkpointed");
    assert!(!syncs.is_empty(), "no checkpoint ran");
    // The WAL stayed bounded: past 4,000 pages each checkpoint tries to start
    // it over, giving up after a few milliseconds (it holds writers while it
    // waits) with twice the patience next time, so beside this thread that
    // commits without pause it starts over within a few rounds.
    let wal = std::fs::metadata(format!("{}-wal", db.display()))
        .unwrap()
        .len();
    eprintln!("WAL: {wal} bytes");
    assert!(wal < 10_000 * 4120, "the WAL grew to {wal} bytes");
    let queue = ActionQueue::open(&db).unwrap();
    assert_eq!(
        queue.list_actions(&Default::default()).unwrap().total,
        CREATES as u64
    );
}

/// A reader that keeps the WAL in use makes no writer wait: the checkpoint
/// that would start the WAL over waits for readers only briefly, holding the
/// write lock, then leaves the restart to a later round. (A RESTART that
/// waited for readers up to the busy timeout held every writer as long.)
#[test]
fn a_long_reader_holds_up_no_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite3");
    let busy_timeout = std::time::Duration::from_secs(4);
    let options = SqliteOptions {
        busy_timeout,
        ..SqliteOptions::default()
    };
    let queue = ActionQueue::new(SqliteStore::open(&db, &options).unwrap());
    queue.create_server("web-1", None).unwrap();
    // A read transaction open on a snapshot of the WAL throughout.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM actions", [], |r| r.get(0))
        .unwrap();
    let mut slowest = std::time::Duration::ZERO;
    // Past the size at which a checkpoint tries to start the WAL over, twice.
    for i in 0..CREATES {
        let started = std::time::Instant::now();
        queue
            .create_action(
                &NewAction::new("web-1", "restart_service").service_name(format!("s{i}")),
            )
            .unwrap();
        slowest = slowest.max(started.elapsed());
    }
    // The reader kept every page in the WAL: a restart was due while it read.
    let wal = std::fs::metadata(format!("{}-wal", db.display()))
        .unwrap()
        .len();
    eprintln!("WAL under the reader: {wal} bytes");
    assert!(
        wal > 4000 * 4096,
        "the WAL ({wal} bytes) never reached the size at which a checkpoint restarts it"
    );
    reader.execute_batch("COMMIT").unwrap();
    assert!(
        slowest < busy_timeout / 2,
        "a create waited {slowest:?} for the reader"
    );
}
