//! Races on one rule, fought by real threads and real processes on a real SQLite file.
//!
//! Every test here involves the SQLite store (the memory-only races sit beside
//! their SQLite twins), so the file needs the `sqlite` feature.
#![cfg(feature = "sqlite")]

mod fault_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use actionq::{ActionQueue, ErrorKind, MemoryStore, NewAction, SqliteOptions, SqliteStore};
use fault_support::{child_role, spawn_child, wait_success};

/// Duplicate-create rounds per process race: enough that the two children overlap.
const ROUNDS: usize = 200;

fn open(path: &Path) -> ActionQueue {
    ActionQueue::new(SqliteStore::open(path, &SqliteOptions::default()).unwrap())
}

/// Creates the same restart from `threads` threads at once on each queue in
/// `queues` (cycled); returns (winners, conflicts carrying the winner's id).
fn race_duplicate_creates(
    queues: &[ActionQueue],
    threads: usize,
    service: &str,
) -> (Vec<i64>, Vec<Option<i64>>) {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let q = queues[i % queues.len()].clone();
            let barrier = barrier.clone();
            let service = service.to_owned();
            thread::spawn(move || {
                barrier.wait();
                q.create_action(&NewAction::new("web-1", "restart_service").service_name(service))
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    for h in handles {
        match h.join().unwrap() {
            Ok(a) => winners.push(a.id),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                conflicts.push(e.existing_action_id());
            }
        }
    }
    (winners, conflicts)
}

fn assert_one_winner(queues: &[ActionQueue], threads: usize) {
    for round in 0..25 {
        let (winners, conflicts) =
            race_duplicate_creates(queues, threads, &format!("svc{}-{round}", queues.len()));
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one create succeeds"
        );
        assert_eq!(conflicts.len(), threads - 1);
        assert!(conflicts.iter().all(|id| *id == Some(winners[0])));
    }
}

fn paused_server(q: &ActionQueue) {
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
}

#[test]
fn threads_racing_duplicate_create_memory() {
    let q = ActionQueue::new(MemoryStore::new());
    paused_server(&q);
    assert_one_winner(&[q], 8);
}

#[test]
fn threads_racing_duplicate_create_sqlite_shared_and_separate_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let shared = open(&path);
    paused_server(&shared);
    assert_one_winner(std::slice::from_ref(&shared), 8);
    let handles: Vec<ActionQueue> = (0..4).map(|_| open(&path)).collect();
    assert_one_winner(&handles, 8);
}

#[test]
fn threads_racing_apt_group_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let q = open(&path);
    q.create_server("web-1", None).unwrap(); // not paused: approved actions block too
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let q = open(&path);
            thread::spawn(move || {
                let t = if i % 2 == 0 {
                    "apt_update"
                } else {
                    "apt_upgrade_all"
                };
                q.create_action(&NewAction::new("web-1", t)).is_ok()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(wins, 1);
}

fn claim_all(q: &ActionQueue) -> Vec<i64> {
    let mut got = Vec::new();
    while let Some(claim) = q.claim_next("web-1", None).unwrap() {
        got.push(claim.action.id);
        q.report_result(claim.action.id, &claim.lease_token, 0, None, None)
            .unwrap();
    }
    got
}

fn assert_claimed_exactly_once(claimed: Vec<Vec<i64>>, expected: usize) {
    let total: usize = claimed.iter().map(Vec::len).sum();
    let distinct: BTreeSet<i64> = claimed.into_iter().flatten().collect();
    assert_eq!(total, expected, "every action claimed, none twice");
    assert_eq!(distinct.len(), expected);
    assert_eq!(distinct, (1..=expected as i64).collect());
}

fn seed_approved(q: &ActionQueue, n: usize) {
    q.create_server("web-1", None).unwrap();
    for i in 0..n {
        q.create_action(&NewAction::new("web-1", "restart_service").service_name(format!("s{i}")))
            .unwrap();
    }
}

#[test]
fn threads_claim_each_action_once() {
    let memory = ActionQueue::new(MemoryStore::new());
    seed_approved(&memory, 400);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let sqlite = open(&path);
    seed_approved(&sqlite, 400);
    let separate: Vec<ActionQueue> = (0..4).map(|_| open(&path)).collect();
    for queues in [vec![memory], separate] {
        let claimed = (0..4)
            .map(|i| {
                let q = queues[i % queues.len()].clone();
                thread::spawn(move || claim_all(&q))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_claimed_exactly_once(claimed, 400);
    }
}

// ------------------------------------------------------------------ processes

/// Runs this test binary again as a child doing `role` on `path` once `go`
/// exists; it writes one line per result to `out`.
fn spawn_worker(role: &str, path: &Path, go: &Path, out: &Path) -> Child {
    spawn_child(
        "child_process_entry",
        role,
        &[
            ("ACTIONQ_TEST_DB", path.display().to_string()),
            ("ACTIONQ_TEST_GO", go.display().to_string()),
            ("ACTIONQ_TEST_OUT", out.display().to_string()),
        ],
    )
}

/// Waits for a worker and returns the lines it wrote.
fn worker_lines(child: Child, out: &Path) -> Vec<String> {
    wait_success(child, "worker");
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The child side: does nothing unless started by `spawn_worker`.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn child_process_entry() {
    let Some(role) = child_role() else {
        return;
    };
    let var = |name: &str| PathBuf::from(std::env::var(name).unwrap());
    let (path, go) = (var("ACTIONQ_TEST_DB"), var("ACTIONQ_TEST_GO"));
    let q = open(&path);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() {
        assert!(Instant::now() < deadline, "parent never said go");
        thread::sleep(Duration::from_micros(200));
    }
    let mut lines = Vec::new();
    match role.as_str() {
        "create" => {
            for round in 0..ROUNDS {
                let r = q.create_action(
                    &NewAction::new("web-1", "restart_service").service_name(format!("svc{round}")),
                );
                match r {
                    Ok(a) => lines.push(format!("{round} won {}", a.id)),
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                        lines.push(format!("{round} lost {}", e.existing_action_id().unwrap()));
                    }
                }
            }
        }
        "claim" => lines.extend(claim_all(&q).iter().map(i64::to_string)),
        other => panic!("unknown role {other}"),
    }
    std::fs::write(var("ACTIONQ_TEST_OUT"), lines.join("\n")).unwrap();
}

#[test]
fn processes_racing_duplicate_create_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let go = dir.path().join("go");
    paused_server(&open(&path));
    let outs: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("out-{i}")))
        .collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| spawn_worker("create", &path, &go, out))
        .collect();
    std::fs::write(&go, b"").unwrap();
    let results: Vec<Vec<String>> = children
        .into_iter()
        .zip(&outs)
        .map(|(c, out)| worker_lines(c, out))
        .collect();
    for round in 0..ROUNDS {
        let lines: Vec<&String> = results
            .iter()
            .flatten()
            .filter(|l| l.split(' ').next() == Some(&round.to_string()))
            .collect();
        assert_eq!(lines.len(), 2);
        let won: Vec<&&String> = lines.iter().filter(|l| l.contains(" won ")).collect();
        assert_eq!(won.len(), 1, "round {round}: {lines:?}");
        let winner_id = won[0].rsplit(' ').next().unwrap();
        assert!(lines.iter().all(|l| l.ends_with(&format!(" {winner_id}"))));
    }
    let q = open(&path);
    assert_eq!(
        q.list_actions(&Default::default()).unwrap().total,
        ROUNDS as u64
    );
}

#[test]
fn processes_and_threads_claim_each_action_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let go = dir.path().join("go");
    let q = open(&path);
    seed_approved(&q, 300);
    let outs: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("out-{i}")))
        .collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| spawn_worker("claim", &path, &go, out))
        .collect();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let q = open(&path);
            let go = go.clone();
            thread::spawn(move || {
                while !go.exists() {
                    thread::sleep(Duration::from_micros(200));
                }
                claim_all(&q)
            })
        })
        .collect();
    std::fs::write(&go, b"").unwrap();
    let mut claimed: Vec<Vec<i64>> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    for (child, out) in children.into_iter().zip(&outs) {
        claimed.push(
            worker_lines(child, out)
                .iter()
                .map(|l| l.parse().unwrap())
                .collect(),
        );
    }
    assert_claimed_exactly_once(claimed, 300);
}
