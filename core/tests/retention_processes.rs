//! Prune across processes (`docs/contract/retention.md`), on a real SQLite
//! file and on PostgreSQL:
//!
//! - two pruner processes run while others create, approve, reject, claim
//!   and finish actions: nobody's live action disappears under it (each
//!   worker's next call on it would fail), the ones left live at the end are
//!   all there, counts agree with the rows, the chain verifies after the
//!   checkpoint; the processes' working windows are recorded and shown to
//!   overlap;
//! - a pruner killed (SIGKILL) while its prune runs, once the checkpoint has
//!   moved and before it is done: the store holds whole batches only (every
//!   action up to the checkpoint gone, every later one there), verifies, and
//!   the next prune finishes the work.

// The workers open the queue by location with SQLite options.
#![cfg(feature = "sqlite")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actionq::{ActionQuery, ActionQueue, ActionStatus, NewAction, SqliteOptions};

const ROLE: &str = "ACTIONQ_RETENTION_ROLE";
const LOCATION: &str = "ACTIONQ_RETENTION_LOCATION";
const OUT: &str = "ACTIONQ_RETENTION_OUT";

fn open(location: &str) -> ActionQueue {
    ActionQueue::open_location(location, &SqliteOptions::default()).unwrap()
}

fn micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn spawn(role: &str, location: &str, out: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(LOCATION, location)
        .env(OUT, out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_ok(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a child records: its working window, and the ids it left live.
#[derive(serde::Serialize, serde::Deserialize, Debug, Default)]
struct Record {
    start: i64,
    end: i64,
    live: Vec<(i64, ActionStatus)>,
    finished: Vec<i64>,
    pruned: u64,
    prunes_that_deleted: u64,
}

/// Child processes of the tests below (ignored: run only as children).
#[test]
#[ignore]
fn child_entry() {
    let (Ok(role), Ok(location), Ok(out)) = (
        std::env::var(ROLE),
        std::env::var(LOCATION),
        std::env::var(OUT),
    ) else {
        return;
    };
    let q = open(&location);
    let mut record = Record {
        start: micros(),
        ..Record::default()
    };
    let tag = format!("{role}-{}", std::process::id());
    let new = |server: &str, i: usize| {
        NewAction::new(server, "restart_service").service_name(format!("{tag}-{i}"))
    };
    let pause = || std::thread::sleep(Duration::from_millis(3));
    match role.as_str() {
        // Pending actions a human rejects a little later; the last ones stay pending.
        "hold" => {
            for i in 0..60 {
                let a = q.create_action(&new("hold", i)).unwrap();
                pause();
                if i < 55 {
                    q.reject_action(a.id, "no").unwrap();
                    record.finished.push(a.id);
                } else {
                    record.live.push((a.id, ActionStatus::Pending));
                }
            }
        }
        // Approved, then cancelled a little later; the last ones stay approved.
        "approve" => {
            for i in 0..60 {
                let a = q.create_action(&new("hold2", i)).unwrap();
                q.approve_action(a.id).unwrap();
                pause();
                if i < 55 {
                    q.cancel_action(a.id).unwrap();
                    record.finished.push(a.id);
                } else {
                    record.live.push((a.id, ActionStatus::Approved));
                }
            }
        }
        // Auto-approved, claimed, run, finished; the last one stays executing.
        "run" => {
            for i in 0..60 {
                let a = q.create_action(&new("run", i)).unwrap();
                let claim = q
                    .claim_next("run", Some(Duration::from_secs(600)), None)
                    .unwrap()
                    .unwrap();
                assert_eq!(claim.action.id, a.id);
                pause();
                if i < 59 {
                    q.report_result(a.id, &claim.lease_token, 0, Some("ok"), None)
                        .unwrap();
                    record.finished.push(a.id);
                } else {
                    record.live.push((a.id, ActionStatus::Executing));
                }
            }
        }
        // Prunes everything finished, over and over, until told to stop.
        "prune" => {
            let stop = PathBuf::from(format!("{out}.stop"));
            while !stop.exists() {
                let report = q.prune(0).unwrap();
                record.pruned += report.pruned_actions;
                record.prunes_that_deleted += u64::from(report.pruned_actions > 0);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // One prune of everything, killed by the parent on the way.
        "prune-once" => {
            q.prune(0).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    record.end = micros();
    std::fs::write(&out, serde_json::to_string(&record).unwrap()).unwrap();
}

fn seed_finished(q: &ActionQueue, server: &str, n: usize) {
    for i in 0..n {
        let a = q
            .create_action(
                &NewAction::new(server, "restart_service").service_name(format!("seed-{i}")),
            )
            .unwrap();
        q.cancel_action(a.id).unwrap();
    }
}

/// Listing totals, `count_actions` and the rows agree, status by status.
fn counts_agree(q: &ActionQueue) {
    let counts = q.count_actions().unwrap();
    for status in ActionStatus::ALL {
        let mut listed = 0;
        let mut before_id = None;
        let total = loop {
            let page = q
                .list_actions(&ActionQuery {
                    status: Some(status),
                    limit: 100,
                    before_id,
                    ..ActionQuery::default()
                })
                .unwrap();
            listed += page.actions.len() as u64;
            match page.next_before_id {
                Some(next) => before_id = Some(next),
                None => break page.total,
            }
        };
        let counted: u64 = counts
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.count)
            .sum();
        assert_eq!((listed, counted), (total, total), "{status}");
    }
}

fn prune_races_workers(location: &str, dir: &Path) {
    let q = open(location);
    for server in ["hold", "hold2", "run", "seed"] {
        q.create_server(server, None).unwrap();
    }
    q.pause_server("hold").unwrap();
    q.pause_server("hold2").unwrap();
    seed_finished(&q, "seed", 300);
    let out = |name: &str| dir.join(format!("{name}.json"));
    let pruners: Vec<Child> = ["prune-a", "prune-b"]
        .iter()
        .map(|name| spawn("prune", location, &out(name)))
        .collect();
    let workers: Vec<(&str, Child)> = ["hold", "approve", "run"]
        .iter()
        .map(|role| (*role, spawn(role, location, &out(role))))
        .collect();
    for (role, child) in workers {
        wait_ok(child, role);
    }
    for name in ["prune-a", "prune-b"] {
        std::fs::write(format!("{}.stop", out(name).display()), "").unwrap();
    }
    for (child, name) in pruners.into_iter().zip(["prune-a", "prune-b"]) {
        wait_ok(child, name);
    }
    let read = |name: &str| -> Record {
        serde_json::from_str(&std::fs::read_to_string(out(name)).unwrap()).unwrap()
    };
    let records: Vec<(&str, Record)> = ["prune-a", "prune-b", "hold", "approve", "run"]
        .into_iter()
        .map(|name| (name, read(name)))
        .collect();
    // The contenders overlapped: every window began before any ended.
    let latest_start = records.iter().map(|(_, r)| r.start).max().unwrap();
    let earliest_end = records.iter().map(|(_, r)| r.end).min().unwrap();
    eprintln!(
        "windows (µs after the first start): {:?}",
        records
            .iter()
            .map(|(n, r)| (
                n,
                r.start - records[0].1.start.min(latest_start),
                r.end - r.start
            ))
            .collect::<Vec<_>>()
    );
    assert!(latest_start < earliest_end, "the processes did not overlap");
    let deleting: u64 = records.iter().map(|(_, r)| r.prunes_that_deleted).sum();
    eprintln!("prunes that deleted something: {deleting}");
    // Then once more, alone: what the workers finished before the first
    // action they left live goes too.
    let last = q.prune(0).unwrap();
    let pruned: u64 = records.iter().map(|(_, r)| r.pruned).sum::<u64>() + last.pruned_actions;
    // The seeded 300 always go. Workers' finished actions go only up to the
    // first event of an action still open (a prefix of the log,
    // docs/contract/retention.md#chain-checkpoint), and the workers leave
    // their last actions open, so how many more go depends on how the
    // processes interleaved; what must hold whatever the timing is below.
    assert!(pruned >= 300, "pruned {pruned}");
    // Nothing live was lost; every finished action is there or was pruned
    // exactly once (the pruned count matches what is gone).
    let mut gone = 300u64; // the seeded ones: all finished before any worker began
    for (_, r) in &records {
        for (id, status) in &r.live {
            assert_eq!(
                q.get_action(*id).unwrap().status,
                *status,
                "live action {id}"
            );
        }
        gone += r
            .finished
            .iter()
            .filter(|id| q.get_action(**id).is_err())
            .count() as u64;
    }
    assert_eq!(gone, pruned);
    counts_agree(&q);
    let audit = q.verify_audit().unwrap();
    assert_eq!(audit.first_bad_event_id, None);
    assert!(audit.pruned_through.is_some());
}

/// Kills a prune inside its run: between two batches or inside one, the
/// store is whole batches.
fn killed_prune_leaves_whole_batches(location: &str, dir: &Path, checkpoint: impl Fn() -> i64) {
    let q = open(location);
    q.create_server("seed", None).unwrap();
    let n = 6 * actionq::limits::PRUNE_BATCH_EVENTS as usize / 2;
    seed_finished(&q, "seed", n);
    let events_total = 2 * n as i64;
    let mut child = spawn("prune-once", location, &dir.join("once.json"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let moved = checkpoint();
        if moved > 0 {
            child.kill().unwrap();
            break moved;
        }
        assert!(
            Instant::now() < deadline,
            "the prune never moved the checkpoint"
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    let status = child.wait().unwrap();
    // The kill landed inside the prune: the process did not finish, and the
    // checkpoint it left is short of the end.
    assert!(!status.success(), "the pruner finished before the kill");
    let after_kill = checkpoint();
    assert!(
        after_kill >= at_kill && after_kill < events_total,
        "{after_kill}"
    );
    let audit = q.verify_audit().unwrap();
    assert_eq!(
        (audit.first_bad_event_id, audit.pruned_through),
        (None, Some(after_kill))
    );
    // Whole batches: each action's two events go together, so the actions
    // up to half the checkpoint are gone and every later one is there.
    let last_gone = after_kill / 2;
    assert_eq!(after_kill % 2, 0);
    assert!(q.get_action(last_gone).is_err());
    assert!(q.get_action(last_gone + 1).is_ok());
    let total = q.list_actions(&ActionQuery::default()).unwrap().total;
    assert_eq!(total, n as u64 - last_gone as u64);
    counts_agree(&q);
    let rest = q.prune(0).unwrap();
    assert_eq!(rest.pruned_actions, n as u64 - last_gone as u64);
    assert_eq!(q.verify_audit().unwrap().pruned_through, Some(events_total));
}

#[test]
fn sqlite_prune_races_workers_in_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite3");
    prune_races_workers(db.to_str().unwrap(), dir.path());
}

#[test]
fn sqlite_killed_prune_leaves_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite3");
    let location = db.to_str().unwrap().to_owned();
    let read = rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_CREATE,
    )
    .unwrap();
    killed_prune_leaves_whole_batches(&location, dir.path(), || {
        read.query_row(
            "SELECT COALESCE((SELECT last_event_id FROM prune_checkpoint), 0)",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
    });
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_prune_races_workers_in_other_processes() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    prune_races_workers(&url, dir.path());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_killed_prune_leaves_whole_batches() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = common::pg::schema_of(&url);
    let client = std::cell::RefCell::new(common::pg::admin());
    killed_prune_leaves_whole_batches(&url, dir.path(), || {
        client
            .borrow_mut()
            .query_one(
                &format!("SELECT last_event_id FROM {schema}.actionq_prune_checkpoint"),
                &[],
            )
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0)
    });
}
