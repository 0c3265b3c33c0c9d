//! Crash safety of the SQLite store: a child process doing creates and
//! transitions is SIGKILLed at random moments; after every kill the file must be
//! sound and hold everything the child had acknowledged.
//!
//! The child is this test binary re-executed (see `fault_support::spawn_child`).
//! After each call returns it appends `id status` to a side file and fsyncs it, so
//! the side file is a lower bound of what the database must contain.
//!
//! Rounds: `ACTIONQ_CRASH_ROUNDS` (default 24; `make soak` raises it).
//! Seed: `ACTIONQ_CRASH_SEED` replays a run (printed on failure).
#![cfg(feature = "sqlite")]

mod fault_support;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actionq::{
    ActionQuery, ActionQueue, ActionStatus, Durability, ErrorKind, NewAction, SqliteOptions,
    SqliteStore,
};
use fault_support::*;

const ENTRY: &str = "crash_child_entry";
const SERVERS: [&str; 4] = ["web-0", "web-1", "maint-0", "maint-1"];
const SERVICES: [&str; 6] = [
    "nginx.service",
    "ssh",
    "postgresql@15-main.service",
    "cron",
    "docker.socket",
    "systemd-journald",
];

/// The child's workload. A no-op unless started by the parent below.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn crash_child_entry() {
    if child_role().as_deref() != Some("crash") {
        return;
    }
    let db = PathBuf::from(std::env::var("ACTIONQ_CRASH_DB").unwrap());
    let acks = PathBuf::from(std::env::var("ACTIONQ_CRASH_ACKS").unwrap());
    let seed = env_num("ACTIONQ_CRASH_SEED", 1);
    let durability = if std::env::var("ACTIONQ_CRASH_FULL").is_ok() {
        Durability::Full
    } else {
        Durability::Normal
    };
    let options = SqliteOptions {
        durability,
        ..SqliteOptions::default()
    };
    let queue = ActionQueue::new(SqliteStore::open(&db, &options).expect("child open"));
    child_workload(&queue, &acks, seed);
}

fn child_workload(queue: &ActionQueue, acks: &Path, seed: u64) -> ! {
    let mut rng = Rng::new(seed);
    let mut ack_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(acks)
        .unwrap();
    let mut ack = |id: i64, status: ActionStatus| {
        ack_file
            .write_all(format!("{id} {status}\n").as_bytes())
            .unwrap();
        ack_file.sync_data().unwrap();
    };
    for (i, server) in SERVERS.iter().enumerate() {
        match queue.create_server(server, None) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => panic!("create server: {e}"),
        }
        if i >= 2 {
            queue.pause_server(server).unwrap();
        }
    }
    // Pick up the live actions earlier rounds left behind.
    let mut live: Vec<i64> = Vec::new();
    for status in [ActionStatus::Pending, ActionStatus::Approved] {
        let page = queue
            .list_actions(&ActionQuery {
                status: Some(status),
                limit: 100,
                ..ActionQuery::default()
            })
            .unwrap();
        live.extend(page.actions.iter().map(|a| a.id));
    }
    let mut held: Vec<(i64, String)> = Vec::new();
    let ok_or_expected = |e: &actionq::Error| {
        assert!(
            matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound),
            "unexpected error in child: {e}"
        )
    };
    loop {
        let roll = rng.below(100);
        match roll {
            0..=34 => {
                let server = *rng.pick(&SERVERS);
                let request = match rng.below(4) {
                    0 | 1 => {
                        NewAction::new(server, "restart_service").service_name(*rng.pick(&SERVICES))
                    }
                    2 => NewAction::new(server, "clear_logs"),
                    _ => NewAction::new(server, *rng.pick(&["apt_update", "apt_upgrade_all"])),
                };
                match queue.create_action(&request) {
                    Ok(a) => {
                        ack(a.id, a.status);
                        live.push(a.id);
                    }
                    Err(e) => ok_or_expected(&e),
                }
            }
            35..=49 if !live.is_empty() => {
                let id = *rng.pick(&live);
                match queue.approve_action(id, "dashboard") {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            50..=54 if !live.is_empty() => {
                let id = *rng.pick(&live);
                match queue.reject_action(id, "dashboard", "not now") {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            55..=61 if !live.is_empty() => {
                let id = *rng.pick(&live);
                match queue.cancel_action(id, "dashboard") {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            62..=76 => {
                let server = *rng.pick(&SERVERS);
                let lease = Duration::from_secs(1 + rng.below(5));
                match queue.claim_next(server, Some(lease)) {
                    Ok(Some(c)) => {
                        ack(c.action.id, c.action.status);
                        held.push((c.action.id, c.lease_token));
                    }
                    Ok(None) => {}
                    Err(e) => ok_or_expected(&e),
                }
            }
            77..=88 if !held.is_empty() => {
                let (id, token) = held.swap_remove(rng.below(held.len() as u64) as usize);
                let exit = *rng.pick(&[0, 0, 1, 2, 137]);
                let out = "x".repeat(rng.below(20_000) as usize);
                match queue.report_result(id, &token, exit, Some(&out), Some("err")) {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            89..=95 if !held.is_empty() => {
                let (id, token) = held[rng.below(held.len() as u64) as usize].clone();
                match queue.heartbeat(id, &token, Some(Duration::from_secs(3))) {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            96..=99 => {
                for a in queue.expire_leases().expect("expire") {
                    ack(a.id, a.status);
                }
            }
            _ => {}
        }
    }
}

fn read_acks(path: &Path) -> Vec<(i64, ActionStatus)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only complete lines: the kill may tear the last one.
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let (id, status) = line.split_once(' ').expect("ack line");
            (id.parse().unwrap(), status.parse().unwrap())
        })
        .collect()
}

fn db_statuses(path: &Path) -> BTreeMap<i64, ActionStatus> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT id, status FROM actions").unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    rows.map(|r| {
        let (id, s) = r.unwrap();
        (id, s.parse().unwrap())
    })
    .collect()
}

#[test]
fn sigkilled_writer_never_loses_or_half_applies_anything() {
    if child_role().is_some() {
        return;
    }
    let rounds = env_num("ACTIONQ_CRASH_ROUNDS", 24);
    let seed = env_num("ACTIONQ_CRASH_SEED", time_seed());
    let budget = Duration::from_secs(env_num("ACTIONQ_CRASH_MAX_SECS", 150));
    eprintln!("crash_consistency: {rounds} rounds, ACTIONQ_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.sqlite3");
    let acks = dir.path().join("acks.log");
    // Start from a file written by schema v1 (the committed fixture), so the
    // first child migrates it under the kill schedule and old rows ride along.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; BEGIN; {} {} PRAGMA user_version = 1; COMMIT;",
            include_str!("fixtures/v1_schema.sql"),
            include_str!("fixtures/v1_data.sql")
        ))
        .unwrap();
    }
    // The fixture's rows count as acknowledged: they must survive every round.
    std::fs::write(
        &acks,
        "1 completed\n2 failed\n3 pending\n4 rejected\n5 approved\n6 executing\n7 cancelled\n",
    )
    .unwrap();
    let started = Instant::now();
    let mut max_id_ever = 7i64; // the fixture's ids
    let mut total_acks = 0usize;
    let mut rounds_done = 0;
    let mut killed_in_open = 0;
    for round in 0..rounds {
        if started.elapsed() > budget {
            eprintln!("crash_consistency: time budget reached after {round} rounds");
            break;
        }
        let acks_before = read_acks(&acks).len();
        let mut envs = vec![
            ("ACTIONQ_CRASH_DB", db.display().to_string()),
            ("ACTIONQ_CRASH_ACKS", acks.display().to_string()),
            ("ACTIONQ_CRASH_SEED", rng.next().to_string()),
        ];
        if round % 3 == 2 {
            envs.push(("ACTIONQ_CRASH_FULL", "1".into()));
        }
        let mut child = spawn_child(ENTRY, "crash", &envs);
        // Mostly mid-workload kills; every fifth round a very early one (during
        // open / migration / the first writes).
        let delay = if round % 5 == 0 {
            rng.below(30)
        } else {
            20 + rng.below(400)
        };
        std::thread::sleep(Duration::from_millis(delay));
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "round {round} (seed {seed}): child exited by itself with {status}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        rounds_done += 1;

        let integrity = integrity_check(&db);
        assert_eq!(
            integrity, "ok",
            "round {round} (seed {seed}): integrity_check"
        );
        let version: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        if version < actionq::SCHEMA_VERSION {
            // Killed before the migration committed: nothing was acknowledged
            // yet, the v1 data is untouched, and the next open must migrate.
            killed_in_open += 1;
            assert_eq!(read_acks(&acks).len(), 7, "acks before the migration");
            assert_eq!(version, 1, "round {round}: half-migrated schema");
            continue;
        }
        let stats = assert_invariants(&db, &format!("round {round} (seed {seed})"));
        let all_acks = read_acks(&acks);
        total_acks += all_acks.len() - acks_before;
        let in_db = db_statuses(&db);
        for (id, acked) in &all_acks {
            let now = in_db.get(id).unwrap_or_else(|| {
                panic!("round {round} (seed {seed}): acknowledged action {id} ({acked}) is missing")
            });
            assert!(
                reachable(*acked, *now),
                "round {round} (seed {seed}): action {id} was acknowledged '{acked}' but is '{now}'"
            );
        }
        let max_acked = all_acks.iter().map(|(id, _)| *id).max().unwrap_or(0);
        max_id_ever = max_id_ever.max(stats.max_action_id).max(max_acked);

        // Reopen through the library: ids continue above everything ever seen.
        let queue = ActionQueue::open(&db).expect("reopen after crash");
        match queue.create_server("probe", None) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
        let probe = queue
            .create_action(&NewAction::new("probe", "clear_logs"))
            .expect("create after reopen");
        assert!(
            probe.id > max_id_ever,
            "round {round} (seed {seed}): new id {} reuses an id (max ever {max_id_ever})",
            probe.id
        );
        max_id_ever = probe.id;
        let listed = queue.list_actions(&ActionQuery::default()).unwrap();
        assert_eq!(
            listed.total,
            stats.actions + 1,
            "listing total after reopen"
        );
        drop(queue);
        let mut f = OpenOptions::new().append(true).open(&acks).unwrap();
        writeln!(f, "{} {}", probe.id, probe.status).unwrap();
    }
    let final_stats = assert_invariants(&db, "final");
    eprintln!(
        "crash_consistency: {rounds_done} rounds ({killed_in_open} killed before the v1 -> v2 migration committed), \
         {total_acks} acknowledged operations, {} actions / {} events in the file, statuses {:?}, {:.1}s",
        final_stats.actions,
        final_stats.events,
        final_stats.status,
        started.elapsed().as_secs_f64()
    );
    assert!(rounds_done >= rounds.min(20), "fewer than 20 rounds ran");
    assert!(total_acks > 0, "the children acknowledged nothing");
}

/// The invariant checker itself must catch each kind of damage it claims to.
#[test]
fn invariant_checker_detects_tampering() {
    if child_role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.sqlite3");
    {
        let queue = ActionQueue::open(&db).unwrap();
        queue.create_server("web-1", None).unwrap();
        let a = queue
            .create_action(&NewAction::new("web-1", "clear_logs"))
            .unwrap();
        let c = queue.claim_next("web-1", None).unwrap().unwrap();
        queue
            .report_result(c.action.id, &c.lease_token, 0, None, None)
            .unwrap();
        queue
            .create_action(&NewAction::new("web-1", "restart_service").service_name("ssh"))
            .unwrap();
        assert_eq!(a.id, 1);
    }
    assert_invariants(&db, "untouched");
    let tamper = [
        "UPDATE actions SET approved_at = NULL WHERE id = 2",
        "UPDATE actions SET exit_code = NULL WHERE id = 1",
        "UPDATE actions SET status = 'executing' WHERE id = 2",
        "INSERT INTO action_events (action_id, from_status, to_status, actor, at) VALUES (99, NULL, 'approved', 'x', 0)",
        "DELETE FROM action_events WHERE action_id = 2",
        "UPDATE action_counts SET n = n + 1 WHERE status = 'approved'",
        "UPDATE sqlite_sequence SET seq = 1 WHERE name = 'actions'",
    ];
    for sql in tamper {
        let copy = dir.path().join("copy.sqlite3");
        std::fs::copy(&db, &copy).unwrap();
        let conn = rusqlite::Connection::open(&copy).unwrap();
        conn.execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
            .unwrap();
        let (bad, _) = fault_support::check_invariants(&conn);
        assert!(!bad.is_empty(), "checker missed: {sql}");
        drop(conn);
        std::fs::remove_file(&copy).unwrap();
    }
}
