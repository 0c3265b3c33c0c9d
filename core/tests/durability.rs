//! `docs/contract/storage.md#durability`: `durability = full` (synchronous=FULL) also survives power loss, i.e.
//! every acknowledged commit is synced to disk; the default (synchronous=NORMAL
//! in WAL) does not sync per commit. Observed from outside: the number of
//! fsync/fdatasync calls a process makes while committing N writes, counted
//! with strace on a child run of this test binary.
#![cfg(feature = "sqlite")]

mod common;

use std::path::Path;
use std::process::Command;

use actionq::{ActionQueue, Durability, NewAction, SqliteOptions, SqliteStore};

const CHILD_ENV: &str = "ACTIONQ_DURABILITY_CHILD";
const WRITES: usize = 40;

fn options(mode: &str) -> SqliteOptions {
    SqliteOptions {
        durability: match mode {
            "full" => Durability::Full,
            _ => Durability::Normal,
        },
        ..SqliteOptions::default()
    }
}

/// The child: opens the file (already created by the parent) and commits
/// `WRITES` actions. A no-op unless started by the parent below.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn durability_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, path) = spec.split_once(':').unwrap();
    let q = ActionQueue::new(SqliteStore::open(path, &options(mode)).unwrap());
    for i in 0..WRITES {
        q.create_action(&NewAction::new("web-1", "restart_service").service_name(format!("s{i}")))
            .unwrap();
    }
}

/// fsync + fdatasync calls made by a child committing `WRITES` writes; `None`
/// when strace could not run it.
fn syncs_during_writes(mode: &str, dir: &Path) -> Option<usize> {
    let db = dir.join(format!("{mode}.sqlite3"));
    {
        let q = ActionQueue::new(SqliteStore::open(&db, &options(mode)).unwrap());
        q.create_server("web-1", None).unwrap();
    }
    let trace = dir.join(format!("{mode}.strace"));
    let status = common::child_under_strace(&trace, "durability_child_entry")
        .env(CHILD_ENV, format!("{mode}:{}", db.display()))
        .output()
        .ok()?;
    if !status.status.success() {
        eprintln!(
            "strace run failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        return None;
    }
    let q = ActionQueue::open(&db).unwrap();
    assert_eq!(
        q.list_actions(&Default::default()).unwrap().total,
        WRITES as u64,
        "the child committed its writes"
    );
    let text = std::fs::read_to_string(&trace).ok()?;
    Some(
        text.lines()
            .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
            .count(),
    )
}

#[test]
fn full_durability_syncs_every_commit_and_normal_does_not() {
    assert_eq!(SqliteOptions::default().durability, Durability::Normal);
    let tracer_works = Command::new("strace")
        .args(["-qq", "-e", "trace=fsync", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    // No skipping: the sync setting is invisible from inside the process, so
    // without a tracer this promise would go unchecked (`make test` installs strace).
    assert!(
        tracer_works,
        "strace is missing or may not trace here; install it (apt-get install strace)"
    );
    let dir = tempfile::tempdir().unwrap();
    let normal = syncs_during_writes("normal", dir.path()).expect("strace traced the child");
    let full = syncs_during_writes("full", dir.path()).expect("strace traced the child");
    eprintln!("syncs for {WRITES} commits: normal {normal}, full {full}");
    assert!(
        full >= normal + WRITES,
        "durability=full syncs each commit: normal {normal}, full {full}"
    );
    assert!(
        normal < WRITES,
        "the default does not sync per commit: normal {normal}"
    );
}
