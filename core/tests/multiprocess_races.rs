//! Races between processes sharing one SQLite file: 4 processes × 4 threads.
//!
//! Each child is this test binary re-executed. Two threads of each process share
//! the process's queue (one store, as an embedding host would) and two open a
//! store of their own, so both in-process and cross-connection contention occur.
//! Children wait on a start file so that all 16 threads hit the file together,
//! and write what they observed to a result file the parent checks:
//! - duplicate creates: exactly one winner per key, every loser points at it;
//! - claim_next: every approved action claimed exactly once;
//! - approve / reject / cancel on one pending action: each transition succeeds
//!   at most once, and the successes are exactly the audit log's path;
//! - report_result vs expire_leases at the end of a lease: exactly one finisher;
//! - processes opening a brand-new file together all succeed;
//! - no Storage (busy/locked) error escapes under the configured busy timeout,
//!   for writers or for the readers (list, events) running beside them.
//!
//! Scale: `ACTIONQ_RACE_SCALE` (default 3; `make soak` raises it).
#![cfg(feature = "sqlite")]

mod fault_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actionq::{
    ActionQuery, ActionQueue, ActionStatus, ErrorKind, NewAction, SqliteOptions, SqliteStore,
};
use fault_support::*;

const ENTRY: &str = "race_child_entry";
const PROCESSES: usize = 4;
const THREADS: usize = 4;

struct Plan {
    services: usize,
    apt_servers: usize,
    claimable: usize,
    contested: usize,
}

fn plan() -> Plan {
    let scale = env_num("ACTIONQ_RACE_SCALE", 3).max(1) as usize;
    Plan {
        services: 16 * scale,
        apt_servers: 8 * scale,
        claimable: 240 * scale,
        contested: 60 * scale,
    }
}

fn options() -> SqliteOptions {
    SqliteOptions::default() // busy timeout 10 s
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "start signal never came");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts one child per process running `entry` as `role` on `db`.
fn spawn_processes(entry: &str, role: &str, db: &Path) -> Vec<std::process::Child> {
    (0..PROCESSES)
        .map(|p| {
            let envs = [
                ("ACTIONQ_RACE_DB", db.display().to_string()),
                ("ACTIONQ_RACE_PROC", p.to_string()),
            ];
            spawn_child(entry, role, &envs)
        })
        .collect()
}

/// The whole audit log, page by page.
fn all_events(queue: &ActionQueue) -> Vec<actionq::Event> {
    let mut all: Vec<actionq::Event> = Vec::new();
    loop {
        let cursor = all.last().map_or(0, |e| e.id);
        let more = queue.events_since(cursor, 1000).unwrap();
        if more.is_empty() {
            return all;
        }
        all.extend(more);
    }
}

/// Opens a possibly brand-new file at the same moment as its siblings.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn open_child_entry() {
    if child_role().as_deref() != Some("open") {
        return;
    }
    let db = PathBuf::from(std::env::var("ACTIONQ_RACE_DB").unwrap());
    let me = std::env::var("ACTIONQ_RACE_PROC").unwrap();
    wait_for(&db.parent().unwrap().join("go"));
    let queue = ActionQueue::new(SqliteStore::open(&db, &options()).expect("concurrent open"));
    let server = format!("host-{me}");
    queue.create_server(&server, None).expect("create server");
    queue
        .create_action(&NewAction::new(server.as_str(), "clear_logs"))
        .expect("create action");
}

#[test]
fn processes_opening_a_fresh_file_together_all_succeed() {
    if child_role().is_some() {
        return;
    }
    for round in 0..env_num("ACTIONQ_OPEN_ROUNDS", 5) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fresh.sqlite3");
        let children = spawn_processes("open_child_entry", "open", &db);
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(dir.path().join("go"), b"").unwrap();
        for child in children {
            wait_success(child, &format!("round {round}: a concurrent first open"));
        }
        let stats = assert_invariants(&db, "after concurrent first opens");
        assert_eq!(stats.actions, PROCESSES as u64);
    }
}

/// One line per observation: `kind key outcome [id]`.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn race_child_entry() {
    if child_role().as_deref() != Some("race") {
        return;
    }
    let db = PathBuf::from(std::env::var("ACTIONQ_RACE_DB").unwrap());
    let dir = db.parent().unwrap().to_path_buf();
    let me: usize = std::env::var("ACTIONQ_RACE_PROC").unwrap().parse().unwrap();
    let shared = ActionQueue::new(SqliteStore::open(&db, &options()).expect("child open"));
    let plan = plan();
    let contested: Vec<i64> = std::fs::read_to_string(dir.join("contested"))
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let contested = Arc::new(contested);
    std::fs::write(dir.join(format!("ready-{me}")), b"").unwrap();
    wait_for(&dir.join("go"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let queue = if t < 2 {
                shared.clone()
            } else {
                ActionQueue::new(SqliteStore::open(&db, &options()).expect("thread open"))
            };
            let contested = Arc::clone(&contested);
            let (services, apt_servers) = (plan.services, plan.apt_servers);
            std::thread::spawn(move || {
                let mut rng = Rng::new(time_seed() ^ ((me * THREADS + t) as u64) << 32);
                let mut out = String::new();
                let mut note = |line: String| {
                    out.push_str(&line);
                    out.push('\n');
                };
                let record = |r: &actionq::Result<actionq::Action>| -> String {
                    match r {
                        Ok(a) => format!("ok {}", a.id),
                        Err(e) if e.kind() == ErrorKind::Storage => {
                            format!("storage {}", e.to_string().replace(' ', "_"))
                        }
                        Err(e) => format!("{} {}", e.code(), e.existing_action_id().unwrap_or(0)),
                    }
                };
                // 1. Duplicate creates, in a per-thread random order.
                let mut keys: Vec<usize> = (0..services).collect();
                for i in (1..keys.len()).rev() {
                    keys.swap(i, rng.below(i as u64 + 1) as usize);
                }
                for k in keys {
                    let r = queue.create_action(
                        &NewAction::new("dup", "restart_service")
                            .service_name(format!("svc-{k}.service")),
                    );
                    note(format!("dup svc-{k} {}", record(&r)));
                }
                for s in 0..apt_servers {
                    let kind = if rng.below(2) == 0 {
                        "apt_update"
                    } else {
                        "apt_upgrade_all"
                    };
                    let r = queue.create_action(&NewAction::new(format!("apt-{s}"), kind));
                    note(format!("apt apt-{s} {}", record(&r)));
                }
                // 2. Claim until the server runs dry.
                loop {
                    match queue.claim_next("claim", Some(Duration::from_secs(600))) {
                        Ok(Some(c)) => {
                            note(format!("claim {} ok {}", c.action.id, c.action.id));
                            let r = queue.report_result(
                                c.action.id,
                                &c.lease_token,
                                0,
                                Some("ok"),
                                None,
                            );
                            note(format!("report {} {}", c.action.id, record(&r)));
                            // Readers run beside the writers of every process.
                            let page = queue.list_actions(&ActionQuery {
                                server_id: Some("claim".into()),
                                status: Some(ActionStatus::Executing),
                                limit: 10,
                                ..ActionQuery::default()
                            });
                            let events = queue.events_since(c.action.id, 50);
                            for (what, failed) in [("list", page.err()), ("events", events.err())] {
                                match failed {
                                    None => note(format!("read {what} ok 0")),
                                    Some(e) => note(format!("read {what} {}", record(&Err(e)))),
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            note(format!("claim - {}", record(&Err(e))));
                            break;
                        }
                    }
                }
                // 3. Approve / reject / cancel the same pending actions.
                let mut order: Vec<i64> = contested.to_vec();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
                for id in order {
                    let (verb, r) = match rng.below(3) {
                        0 => ("approve", queue.approve_action(id, "dashboard")),
                        1 => ("reject", queue.reject_action(id, "dashboard", "race")),
                        _ => ("cancel", queue.cancel_action(id, "dashboard")),
                    };
                    note(format!("{verb} {id} {}", record(&r)));
                }
                out
            })
        })
        .collect();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("result-{me}")))
        .unwrap();
    for h in handles {
        file.write_all(h.join().expect("worker thread").as_bytes())
            .unwrap();
    }
    file.sync_all().unwrap();
}

#[test]
fn four_processes_four_threads_race_on_one_file() {
    if child_role().is_some() {
        return;
    }
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("race.sqlite3");
    let queue = ActionQueue::new(SqliteStore::open(&db, &options()).unwrap());
    queue.create_server("dup", None).unwrap();
    queue.pause_server("dup").unwrap();
    for s in 0..plan.apt_servers {
        queue.create_server(&format!("apt-{s}"), None).unwrap();
    }
    queue.create_server("claim", None).unwrap();
    let mut claimable = BTreeSet::new();
    for _ in 0..plan.claimable {
        let a = queue
            .create_action(&NewAction::new("claim", "clear_logs"))
            .unwrap();
        assert_eq!(a.status, ActionStatus::Approved);
        claimable.insert(a.id);
    }
    queue.create_server("contest", None).unwrap();
    queue.pause_server("contest").unwrap();
    let mut contested = Vec::new();
    for _ in 0..plan.contested {
        let a = queue
            .create_action(&NewAction::new("contest", "clear_logs"))
            .unwrap();
        assert_eq!(a.status, ActionStatus::Pending);
        contested.push(a.id);
    }
    std::fs::write(
        dir.path().join("contested"),
        contested
            .iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    )
    .unwrap();

    let children = spawn_processes(ENTRY, "race", &db);
    for p in 0..PROCESSES {
        wait_for(&dir.path().join(format!("ready-{p}")));
    }
    let started = Instant::now();
    std::fs::write(dir.path().join("go"), b"").unwrap();
    for child in children {
        wait_success(child, "race");
    }
    let elapsed = started.elapsed();

    // Gather every observation.
    let mut lines = Vec::new();
    for p in 0..PROCESSES {
        let text = std::fs::read_to_string(dir.path().join(format!("result-{p}"))).unwrap();
        lines.extend(
            text.lines()
                .map(|l| l.split(' ').map(str::to_owned).collect::<Vec<String>>()),
        );
    }
    let storage: Vec<_> = lines.iter().filter(|l| l[2] == "storage").collect();
    assert!(
        storage.is_empty(),
        "{} Storage errors escaped, e.g. {:?}",
        storage.len(),
        &storage[..storage.len().min(5)]
    );

    // 1. Duplicates: one winner per key; every loser is a Conflict naming it.
    let mut winners: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    let mut losers: BTreeMap<(String, String), Vec<(String, i64)>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l[0] == "dup" || l[0] == "apt") {
        let key = (l[0].clone(), l[1].clone());
        if l[2] == "ok" {
            winners.entry(key).or_default().push(l[3].parse().unwrap());
        } else {
            losers
                .entry(key)
                .or_default()
                .push((l[2].clone(), l[3].parse().unwrap()));
        }
    }
    assert_eq!(
        winners.len(),
        plan.services + plan.apt_servers,
        "every key has a winner"
    );
    for (key, ids) in &winners {
        assert_eq!(ids.len(), 1, "{key:?} won by several creates: {ids:?}");
        for (code, existing) in losers.get(key).into_iter().flatten() {
            assert_eq!(code, "CONFLICT", "{key:?}");
            assert_eq!(*existing, ids[0], "{key:?}: loser names the winner");
        }
        assert_eq!(
            losers.get(key).map_or(0, Vec::len),
            PROCESSES * THREADS - 1,
            "{key:?}"
        );
    }

    // 2. Claims: each approved action exactly once, and every report accepted.
    let mut claimed: BTreeMap<i64, usize> = BTreeMap::new();
    for l in lines.iter().filter(|l| l[0] == "claim") {
        assert_eq!(l[2], "ok", "claim error: {l:?}");
        *claimed.entry(l[1].parse().unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = claimed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "claimed more than once: {twice:?}");
    assert_eq!(
        claimed.keys().copied().collect::<BTreeSet<_>>(),
        claimable,
        "every approved action claimed"
    );
    for l in lines.iter().filter(|l| l[0] == "read") {
        assert_eq!(l[2], "ok", "concurrent read failed: {l:?}");
    }
    for l in lines.iter().filter(|l| l[0] == "report") {
        assert_eq!(l[2], "ok", "report of a held lease refused: {l:?}");
    }

    // 3. Contested transitions: each succeeds at most once and the successes
    //    are exactly the recorded path.
    let mut wins: BTreeMap<i64, BTreeMap<String, usize>> = BTreeMap::new();
    for l in lines
        .iter()
        .filter(|l| ["approve", "reject", "cancel"].contains(&l[0].as_str()))
    {
        if l[2] == "ok" {
            *wins
                .entry(l[1].parse().unwrap())
                .or_default()
                .entry(l[0].clone())
                .or_default() += 1;
        } else {
            assert!(l[2] == "CONFLICT", "unexpected outcome {l:?}");
        }
    }
    let all_events = all_events(&queue);
    for id in &contested {
        let w = wins.get(id).cloned().unwrap_or_default();
        assert!(w.values().all(|n| *n == 1), "action {id}: {w:?}");
        let path: Vec<ActionStatus> = all_events
            .iter()
            .filter(|e| e.action_id == *id && e.from_status.is_some())
            .map(|e| e.to_status)
            .collect();
        let expected: Vec<ActionStatus> = match (
            w.contains_key("approve"),
            w.contains_key("reject"),
            w.contains_key("cancel"),
        ) {
            (false, true, false) => vec![ActionStatus::Rejected],
            (false, false, true) => vec![ActionStatus::Cancelled],
            (true, false, true) => vec![ActionStatus::Approved, ActionStatus::Cancelled],
            (true, false, false) => vec![ActionStatus::Approved],
            other => panic!("action {id}: impossible set of winners {other:?}"),
        };
        assert_eq!(path, expected, "action {id}: winners {w:?}");
        assert_eq!(
            queue.get_action(*id).unwrap().status,
            *expected.last().unwrap()
        );
    }
    let stats = assert_invariants(&db, "after the races");
    eprintln!(
        "multiprocess_races: {} observations from {PROCESSES}x{THREADS} workers in {:.2}s; \
         {} keys, {} claims, {} contested actions; {} actions, {} events",
        lines.len(),
        elapsed.as_secs_f64(),
        winners.len(),
        claimed.len(),
        contested.len(),
        stats.actions,
        stats.events
    );
}

/// Reports and lease expiry racing across processes right at the lease's end.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn lease_child_entry() {
    if child_role().as_deref() != Some("lease") {
        return;
    }
    let db = PathBuf::from(std::env::var("ACTIONQ_RACE_DB").unwrap());
    let dir = db.parent().unwrap().to_path_buf();
    let me: usize = std::env::var("ACTIONQ_RACE_PROC").unwrap().parse().unwrap();
    let leases: Vec<(i64, String)> = std::fs::read_to_string(dir.join("leases"))
        .unwrap()
        .lines()
        .map(|l| {
            let (id, token) = l.split_once(' ').unwrap();
            (id.parse().unwrap(), token.to_owned())
        })
        .collect();
    let queue = ActionQueue::new(SqliteStore::open(&db, &options()).expect("child open"));
    std::fs::write(dir.join(format!("ready-{me}")), b"").unwrap();
    wait_for(&dir.join("go"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (queue, leases) = (queue.clone(), leases.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(time_seed() ^ ((me * THREADS + t) as u64) << 40);
                let mut out = String::new();
                let mut order: Vec<usize> = (0..leases.len()).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
                for i in order {
                    let (id, token) = &leases[i];
                    if t % 2 == 0 {
                        let code = (rng.below(2)) as i32;
                        match queue.report_result(*id, token, code, Some("done"), None) {
                            Ok(a) => out.push_str(&format!("report {} ok {}\n", a.id, code)),
                            Err(e) => out.push_str(&format!("report {id} {} 0\n", e.code())),
                        }
                    } else {
                        match queue.expire_leases() {
                            Ok(expired) => {
                                for a in expired {
                                    out.push_str(&format!("expire {} ok -1\n", a.id));
                                }
                            }
                            Err(e) => out.push_str(&format!("expire - {} 0\n", e.code())),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                out
            })
        })
        .collect();
    let text: String = handles
        .into_iter()
        .map(|h| h.join().expect("worker thread"))
        .collect();
    std::fs::write(dir.join(format!("result-{me}")), text).unwrap();
}

#[test]
fn report_and_expiry_race_at_the_end_of_the_lease() {
    if child_role().is_some() {
        return;
    }
    let leases_n = 30 * env_num("ACTIONQ_RACE_SCALE", 3).max(1) as usize / 3;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lease.sqlite3");
    let queue = ActionQueue::new(SqliteStore::open(&db, &options()).unwrap());
    queue.create_server("lease", None).unwrap();
    for _ in 0..leases_n {
        queue
            .create_action(&NewAction::new("lease", "clear_logs"))
            .unwrap();
    }
    // Claim everything with a 1 s lease, hand the tokens to the children, and
    // start the race shortly before the leases run out, so it straddles the
    // expiry (on a loaded machine it may start later: then expiry wins all).
    let mut leases = String::new();
    let claimed_at = Instant::now();
    while let Some(c) = queue
        .claim_next("lease", Some(Duration::from_secs(1)))
        .unwrap()
    {
        leases.push_str(&format!("{} {}\n", c.action.id, c.lease_token));
    }
    let last_claim = Instant::now();
    std::fs::write(dir.path().join("leases"), leases).unwrap();
    let children = spawn_processes("lease_child_entry", "lease", &db);
    for p in 0..PROCESSES {
        wait_for(&dir.path().join(format!("ready-{p}")));
    }
    // Anywhere from just before to just after the first expiry.
    let start = Duration::from_millis(975 + Rng::new(time_seed()).below(40));
    if let Some(left) = start.checked_sub(claimed_at.elapsed()) {
        std::thread::sleep(left);
    }
    std::fs::write(dir.path().join("go"), b"").unwrap();
    for child in children {
        wait_success(child, "race");
    }
    // Whatever no racer finished, a last expiry does.
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(last_claim.elapsed()));
    let late = queue.expire_leases().unwrap();

    let mut wins: BTreeMap<i64, Vec<(String, i32)>> = BTreeMap::new();
    let (mut reports, mut expiries, mut refused) = (0, 0, 0);
    for p in 0..PROCESSES {
        for l in std::fs::read_to_string(dir.path().join(format!("result-{p}")))
            .unwrap()
            .lines()
        {
            let f: Vec<&str> = l.split(' ').collect();
            match f[2] {
                "ok" => {
                    if f[0] == "report" {
                        reports += 1;
                    } else {
                        expiries += 1;
                    }
                    wins.entry(f[1].parse().unwrap())
                        .or_default()
                        .push((f[0].to_owned(), f[3].parse().unwrap()));
                }
                "CONFLICT" if f[0] == "report" => refused += 1,
                other => panic!("unexpected outcome {other}: {l}"),
            }
        }
    }
    for a in &late {
        wins.entry(a.id).or_default().push(("late".into(), -1));
    }
    let events = all_events(&queue);
    for id in 1..=leases_n as i64 {
        let w = wins.get(&id).cloned().unwrap_or_default();
        assert_eq!(w.len(), 1, "action {id}: one finisher, got {w:?}");
        let action = queue.get_action(id).unwrap();
        let (who, code) = &w[0];
        assert_eq!(
            action.exit_code,
            Some(*code),
            "action {id} finished by {who}"
        );
        let finishing: Vec<_> = events
            .iter()
            .filter(|e| e.action_id == id && e.from_status == Some(ActionStatus::Executing))
            .collect();
        assert_eq!(finishing.len(), 1, "action {id}: one terminal event");
        assert_eq!(finishing[0].to_status, action.status);
    }
    assert_invariants(&db, "after the lease race");
    eprintln!(
        "multiprocess_races: lease race over {leases_n} actions: {reports} reports won, \
         {expiries} expiries by racers, {} by the final sweep, {refused} stale reports refused",
        late.len()
    );
}
