//! Races on one rule, fought by real threads and real processes on a real SQLite file.
//!
//! Every test here involves the SQLite store (the memory-only races sit beside
//! their SQLite twins), so the file needs the `sqlite` feature.
#![cfg(feature = "sqlite")]

mod fault_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
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
    const THREADS: usize = 8;
    let opened = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (path, opened) = (path.clone(), opened.clone());
            thread::spawn(move || {
                let q = open(&path);
                opened.wait();
                let t = if i % 2 == 0 {
                    "apt_update"
                } else {
                    "apt_upgrade_all"
                };
                q.create_action(&NewAction::new("web-1", t))
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for h in handles {
        match h.join().unwrap() {
            Ok(a) => winners.push(a.id),
            Err(actionq::Error::Conflict {
                existing_action_id, ..
            }) => losers.push(existing_action_id),
            Err(other) => panic!("a losing create must be a Conflict, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one apt create wins: {winners:?}");
    assert_eq!(losers, vec![Some(winners[0]); THREADS - 1]);
}

fn claim_all(q: &ActionQueue) -> Vec<i64> {
    let mut got = Vec::new();
    while let Some(claim) = q.claim_next("web-1", None, None).unwrap() {
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
    const THREADS: usize = 4;
    let shared = Arc::new(Barrier::new(THREADS));
    let memory_threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (q, holding) = (memory.clone(), shared.clone());
            thread::spawn(move || claim_all_holding_one(&q, &holding))
        })
        .collect();
    let (opened, holding) = (
        Arc::new(Barrier::new(THREADS)),
        Arc::new(Barrier::new(THREADS)),
    );
    let sqlite_threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (path, opened, holding) = (path.clone(), opened.clone(), holding.clone());
            thread::spawn(move || {
                let q = open(&path);
                opened.wait();
                claim_all_holding_one(&q, &holding)
            })
        })
        .collect();
    for (store, threads) in [("memory", memory_threads), ("sqlite", sqlite_threads)] {
        let claimed: Vec<Vec<i64>> = threads.into_iter().map(|h| h.join().unwrap()).collect();
        let spread: Vec<usize> = claimed.iter().map(Vec::len).collect();
        assert!(
            spread.iter().all(|&n| n >= 1),
            "{store}: every thread claims at least once, claims per thread: {spread:?}"
        );
        assert_claimed_exactly_once(claimed, 400);
    }
}

// ------------------------------------------------------------------ processes
//
// Every contender (child process or thread) opens its store, writes `ready-<i>`
// and spins on `go`; the parent writes `go` only once every `ready-<i>` exists.
// A second rendezvous inside the race (`half-<i>`, `holding-<i>`) proves the
// contenders were in it at the same time, not one after another.

/// Bound on every handshake wait: generous, so a loaded machine only slows a run.
const HANDSHAKE: Duration = Duration::from_secs(60);

/// Waits until `path` exists, calling `alive` between polls so that a contender
/// that died is reported instead of waited for.
fn wait_file(path: &Path, who: &str, mut alive: impl FnMut()) {
    let deadline = Instant::now() + HANDSHAKE;
    while !path.exists() {
        alive();
        assert!(
            Instant::now() < deadline,
            "{who}: {} did not appear within {HANDSHAKE:?}",
            path.display()
        );
        thread::sleep(Duration::from_micros(200));
    }
}

/// Waits until every `<stage>-<i>` marker (i < n) exists in `dir`.
fn wait_markers(dir: &Path, stage: &str, n: usize, who: &str, mut alive: impl FnMut()) {
    for i in 0..n {
        wait_file(&dir.join(format!("{stage}-{i}")), who, &mut alive);
    }
}

/// Contender `me` of `n` has reached `stage`; returns once all `n` have.
fn rendezvous(dir: &Path, stage: &str, me: usize, n: usize) {
    std::fs::write(dir.join(format!("{stage}-{me}")), b"").unwrap();
    wait_markers(dir, stage, n, &format!("contender {me} at {stage}"), || {});
}

/// Contender `me`, its store open: says ready, then spins until the parent says go.
fn ready_then_wait_go(dir: &Path, me: usize) {
    std::fs::write(dir.join(format!("ready-{me}")), b"").unwrap();
    wait_file(&dir.join("go"), &format!("contender {me}"), || {});
}

/// The parent: writes `go` once all `n` contenders are ready; `alive` fails the
/// test if one of them ended before that.
fn go_when_all_ready(dir: &Path, n: usize, alive: impl FnMut()) {
    wait_markers(
        dir,
        "ready",
        n,
        "parent waiting for ready contenders",
        alive,
    );
    std::fs::write(dir.join("go"), b"").unwrap();
}

/// Fails the test if a child ended before the race started, with its stderr.
fn children_alive(children: &mut [Child]) {
    for (i, child) in children.iter_mut().enumerate() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!("child contender {i} exited ({status}) before the race started: {err}");
        }
    }
}

/// Runs this test binary again as contender `me` of `n`, doing `role` on `path`
/// with its handshake files in `dir`; it writes one line per result to `out-<me>`.
fn spawn_worker(role: &str, path: &Path, dir: &Path, me: usize, n: usize) -> Child {
    spawn_child(
        "child_process_entry",
        role,
        &[
            ("ACTIONQ_TEST_DB", path.display().to_string()),
            ("ACTIONQ_TEST_DIR", dir.display().to_string()),
            ("ACTIONQ_TEST_ME", me.to_string()),
            ("ACTIONQ_TEST_CONTENDERS", n.to_string()),
        ],
    )
}

/// Waits for contender `me`'s process and returns the lines it wrote.
fn worker_lines(child: Child, dir: &Path, me: usize) -> Vec<String> {
    wait_success(child, &format!("child contender {me}"));
    std::fs::read_to_string(dir.join(format!("out-{me}")))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Contender `me` of `n` creates the same restart per round as every other
/// contender. It starts with its home round (round `me`), which no one else
/// touches until all meet at `home`, so each wins at least one round by
/// construction; then the other rounds in order, meeting again halfway, so
/// their rounds overlap. One line per round, in round order:
/// `<round> won <id>` or `<round> lost <winner id>`.
fn create_rounds(q: &ActionQueue, dir: &Path, me: usize, n: usize) -> Vec<String> {
    let mut lines = BTreeMap::new();
    let mut create = |round: usize| {
        let r = q.create_action(
            &NewAction::new("web-1", "restart_service").service_name(format!("svc{round}")),
        );
        let line = match r {
            Ok(a) => format!("{round} won {}", a.id),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                format!("{round} lost {}", e.existing_action_id().unwrap())
            }
        };
        lines.insert(round, line);
    };
    create(me);
    rendezvous(dir, "home", me, n);
    for round in (0..ROUNDS).filter(|&r| r != me) {
        if round == ROUNDS / 2 {
            rendezvous(dir, "half", me, n);
        }
        create(round);
    }
    lines.into_values().collect()
}

/// Thread contender `me` of the threads meeting at `holding`: one claim
/// first, held until every thread holds one (all were inside the race at
/// once, and each claims at least one), then the rest until none is left.
fn claim_all_holding_one(q: &ActionQueue, holding: &Barrier) -> Vec<i64> {
    let first = q.claim_next("web-1", None, None).unwrap();
    holding.wait();
    let mut got = Vec::new();
    if let Some(claim) = first {
        got.push(claim.action.id);
        q.report_result(claim.action.id, &claim.lease_token, 0, None, None)
            .unwrap();
    }
    got.extend(claim_all(q));
    got
}

/// Contender `me` of `n` claims: one claim first, held until every contender
/// holds one (all were inside the race at once), then the rest until none is
/// left. Returns the claimed ids; an empty first claim is left to the parent
/// to report.
fn contend_claims(q: &ActionQueue, dir: &Path, me: usize, n: usize) -> Vec<i64> {
    let first = q.claim_next("web-1", None, None).unwrap();
    rendezvous(dir, "holding", me, n);
    let mut got = Vec::new();
    if let Some(claim) = first {
        got.push(claim.action.id);
        q.report_result(claim.action.id, &claim.lease_token, 0, None, None)
            .unwrap();
    }
    got.extend(claim_all(q));
    got
}

/// The child side: does nothing unless started by `spawn_worker`.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn child_process_entry() {
    let Some(role) = child_role() else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let path = PathBuf::from(var("ACTIONQ_TEST_DB"));
    let dir = PathBuf::from(var("ACTIONQ_TEST_DIR"));
    let me: usize = var("ACTIONQ_TEST_ME").parse().unwrap();
    let n: usize = var("ACTIONQ_TEST_CONTENDERS").parse().unwrap();
    let q = open(&path);
    ready_then_wait_go(&dir, me);
    let lines = match role.as_str() {
        "create" => create_rounds(&q, &dir, me, n),
        "claim" => contend_claims(&q, &dir, me, n)
            .iter()
            .map(i64::to_string)
            .collect(),
        other => panic!("unknown role {other}"),
    };
    std::fs::write(dir.join(format!("out-{me}")), lines.join("\n")).unwrap();
}

#[test]
fn processes_racing_duplicate_create_one_winner() {
    const CHILDREN: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    paused_server(&open(&path));
    let mut children: Vec<Child> = (0..CHILDREN)
        .map(|me| spawn_worker("create", &path, dir.path(), me, CHILDREN))
        .collect();
    go_when_all_ready(dir.path(), CHILDREN, || children_alive(&mut children));
    let results: Vec<Vec<String>> = children
        .into_iter()
        .enumerate()
        .map(|(me, c)| worker_lines(c, dir.path(), me))
        .collect();
    // Every contender attempted every round and reported its outcome.
    for (me, lines) in results.iter().enumerate() {
        let rounds: Vec<String> = lines
            .iter()
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (0..ROUNDS).map(|r| r.to_string()).collect();
        assert_eq!(
            rounds, expected,
            "child contender {me} must report one outcome per round"
        );
    }
    let wins: Vec<usize> = results
        .iter()
        .map(|lines| lines.iter().filter(|l| l.contains(" won ")).count())
        .collect();
    eprintln!("{CHILDREN} contenders ready; rounds won per contender: {wins:?}");
    for (me, lines) in results.iter().enumerate() {
        assert!(
            lines[me].starts_with(&format!("{me} won ")),
            "contender {me} must win its home round: {}",
            lines[me]
        );
    }
    assert_eq!(wins.iter().sum::<usize>(), ROUNDS, "{wins:?}");
    for round in 0..ROUNDS {
        let lines: Vec<&String> = results.iter().map(|lines| &lines[round]).collect();
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
    const CHILDREN: usize = 2;
    const CONTENDERS: usize = 4; // children 0-1, threads of this process 2-3
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    seed_approved(&open(&path), 300);
    let mut children: Vec<Child> = (0..CHILDREN)
        .map(|me| spawn_worker("claim", &path, dir.path(), me, CONTENDERS))
        .collect();
    let threads: Vec<_> = (CHILDREN..CONTENDERS)
        .map(|me| {
            let (path, dir) = (path.clone(), dir.path().to_path_buf());
            thread::spawn(move || {
                let q = open(&path);
                ready_then_wait_go(&dir, me);
                contend_claims(&q, &dir, me, CONTENDERS)
            })
        })
        .collect();
    go_when_all_ready(dir.path(), CONTENDERS, || {
        children_alive(&mut children);
        for (t, h) in threads.iter().enumerate() {
            assert!(
                !h.is_finished(),
                "thread contender {} ended before the race started",
                CHILDREN + t
            );
        }
    });
    let mut claimed: Vec<Vec<i64>> = children
        .into_iter()
        .enumerate()
        .map(|(me, child)| {
            worker_lines(child, dir.path(), me)
                .iter()
                .map(|l| l.parse().unwrap())
                .collect()
        })
        .collect();
    claimed.extend(threads.into_iter().map(|h| h.join().unwrap()));
    let spread: Vec<usize> = claimed.iter().map(Vec::len).collect();
    eprintln!("{CONTENDERS} contenders ready; claims per contender (children 0-1, threads 2-3): {spread:?}");
    for (me, ids) in claimed.iter().enumerate() {
        assert!(
            !ids.is_empty(),
            "contender {me} claimed nothing, so it never raced; claims per contender: {spread:?}"
        );
    }
    assert_claimed_exactly_once(claimed, 300);
}
