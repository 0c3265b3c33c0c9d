//! SPEC "Approval policy" under races: 8 contenders at once, as threads on
//! every store and as processes sharing one SQLite file or one PostgreSQL
//! database.
//!
//! - last approval: two racing approvers on the last one needed → one
//!   transition to `approved`, both approvals recorded once; the same
//!   approver racing itself counts once;
//! - auto-approval budget of 3 with 8 contenders creating at once → exactly
//!   3 auto-approved per key;
//! - ttl expiry sweeping while approvers approve → each action has one
//!   outcome (approved, or rejected by `system`), never both. Approvers'
//!   clocks say the approval is still open, sweepers' that it ran out.
//!
//! Every contender writes a ready marker (a file, or a barrier for threads)
//! and starts on `go`, so all overlap. Scale: `ACTIONQ_RACE_SCALE` (default 3).

mod common;
mod fault_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use actionq::{ActionQueue, ActionStatus, Event, ManualClock, NewAction, Timestamp, Whitelist};
use chrono::TimeDelta;
use common::Env;
use fault_support::*;

const CONTENDERS: usize = 8;

const RACE_WHITELIST: &str = r#"{"actions": {
  "two_keys": {"command": "two {service_name}", "params": {"service_name": {"kind": "systemd_unit"}},
               "approval": {"required": 2}},
  "three_keys": {"command": "three {service_name}", "params": {"service_name": {"kind": "systemd_unit"}},
                 "approval": {"required": 3}},
  "budgeted": {"command": "budget {service_name}", "params": {"service_name": {"kind": "systemd_unit"}},
               "approval": {"auto_approve_budget": {"max": 3, "window_seconds": 3600}}},
  "short_lived": {"command": "short {service_name}", "params": {"service_name": {"kind": "systemd_unit"}},
                  "approval": {"ttl_seconds": 60}}
}}"#;

fn keys() -> usize {
    8 * env_num("ACTIONQ_RACE_SCALE", 3).max(1) as usize
}

fn whitelist() -> Whitelist {
    Whitelist::from_json(RACE_WHITELIST).unwrap()
}

fn start() -> Timestamp {
    common::start_time()
}

/// The queue a contender uses: `queue` with the race whitelist and a clock
/// `offset_secs` after [`start`].
fn contender(queue: ActionQueue, offset_secs: i64) -> ActionQueue {
    queue
        .with_whitelist(whitelist())
        .with_clock(Arc::new(ManualClock::new(
            start() + TimeDelta::seconds(offset_secs),
        )))
}

/// Approvers see every approval window still open (the first closes at 60 s);
/// sweepers walk from 60 s on, closing one per second.
const APPROVER_OFFSET: i64 = 59;
const SWEEPER_OFFSET: i64 = 60;

fn shuffled(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

/// The ids the setup made, by scenario: (two_keys, three_keys, short_lived).
struct Setup {
    two: Vec<i64>,
    three: Vec<i64>,
    short: Vec<i64>,
}

/// On a paused server `hold`: two- and three-key actions with alice's first
/// approval, and short-lived ones; a normal server `free` for the budget.
fn setup(queue: &ActionQueue) -> Setup {
    let q = contender(queue.clone(), 0);
    q.create_server("hold", None).unwrap();
    q.pause_server("hold").unwrap();
    q.create_server("free", None).unwrap();
    let make = |kind: &str, k: usize, first: bool| {
        // Short-lived ones one second apart, so a sweeper walking its clock
        // forward expires them one at a time while approvers approve.
        let q = if kind == "short_lived" {
            contender(queue.clone(), k as i64)
        } else {
            q.clone()
        };
        let a = q
            .create_action(&NewAction::new("hold", kind).service_name(format!("s{k}")))
            .unwrap();
        if first {
            let a = q.approve_action(a.id, "alice").unwrap();
            assert_eq!(a.status, ActionStatus::Pending);
        }
        a.id
    };
    Setup {
        two: (0..keys()).map(|k| make("two_keys", k, true)).collect(),
        three: (0..keys()).map(|k| make("three_keys", k, true)).collect(),
        short: (0..keys()).map(|k| make("short_lived", k, false)).collect(),
    }
}

/// One contender's work on every scenario; one line per call:
/// `scenario key outcome [detail]`.
fn work(queue: &ActionQueue, me: usize, setup: &Setup, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let approver = contender(queue.clone(), APPROVER_OFFSET);
    let line = |r: actionq::Result<actionq::Action>| match r {
        Ok(a) => format!("ok {} {}", a.status, a.approvals.len()),
        Err(e) => e.code().to_owned(),
    };
    for i in shuffled(setup.two.len(), &mut rng) {
        let id = setup.two[i];
        let r = approver.approve_action(id, &format!("p{me}"));
        out.push(format!("two {id} {}", line(r)));
    }
    for i in shuffled(setup.three.len(), &mut rng) {
        let id = setup.three[i];
        out.push(format!(
            "three {id} {}",
            line(approver.approve_action(id, "bob"))
        ));
    }
    for k in shuffled(keys(), &mut rng) {
        let r = approver
            .create_action(&NewAction::new("free", "budgeted").service_name(format!("s{k}")));
        out.push(format!("budget s{k} {}", line(r)));
    }
    if me % 2 == 0 {
        for i in shuffled(setup.short.len(), &mut rng) {
            let id = setup.short[i];
            out.push(format!(
                "short {id} {}",
                line(approver.approve_action(id, &format!("p{me}")))
            ));
        }
    } else {
        let clock = Arc::new(ManualClock::new(
            start() + TimeDelta::seconds(SWEEPER_OFFSET - 1),
        ));
        let sweeper = queue
            .clone()
            .with_whitelist(whitelist())
            .with_clock(clock.clone());
        for &id in &setup.short {
            // Action k (created at start + k s) has run out at start + k + 60 s:
            // each step's sweep before the read expires one more.
            clock.advance(TimeDelta::seconds(1));
            let seen = sweeper.get_action(id).unwrap();
            assert_ne!(
                seen.status,
                ActionStatus::Pending,
                "a read showed an expired approval"
            );
        }
        out.push(format!(
            "sweep - ok {}",
            sweeper.expire_approvals().unwrap().len()
        ));
    }
    out
}

/// Checks the store after every contender's `lines`.
fn check(queue: &ActionQueue, setup: &Setup, lines: &[String], context: &str) {
    let q = contender(queue.clone(), 0);
    let events: Vec<Event> = {
        let mut all: Vec<Event> = Vec::new();
        loop {
            let more = q
                .events_since(all.last().map_or(0, |e| e.id), 1000)
                .unwrap();
            if more.is_empty() {
                break all;
            }
            all.extend(more);
        }
    };
    let mut by_action: BTreeMap<i64, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        if let Some(id) = e.action_id {
            by_action.entry(id).or_default().push(e);
        }
    }
    let calls = |scenario: &str, key: &str| -> Vec<Vec<&str>> {
        lines
            .iter()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|w| w[0] == scenario && w[1] == key)
            .map(|w| w[2..].to_vec())
            .collect()
    };
    for &id in &setup.two {
        let outcomes = calls("two", &id.to_string());
        assert_eq!(outcomes.len(), CONTENDERS, "{context}: two {id}");
        let winners = outcomes.iter().filter(|o| o[0] == "ok").count();
        assert_eq!(winners, 1, "{context}: two {id}: {outcomes:?}");
        assert!(outcomes
            .iter()
            .all(|o| o == &["ok", "approved", "2"] || o == &["CONFLICT"]));
        let a = q.get_action(id).unwrap();
        assert_eq!(a.status, ActionStatus::Approved);
        let by: Vec<&str> = a.approvals.iter().map(|x| x.by.as_str()).collect();
        assert_eq!(by.len(), 2, "{context}: two {id}: {by:?}");
        assert_eq!(by[0], "alice");
        assert_eq!(a.approved_by.as_deref(), Some(by[1]));
        let log: Vec<(&str, Option<&str>)> = by_action[&id]
            .iter()
            .map(|e| (e.by.as_str(), e.detail.as_deref()))
            .collect();
        assert_eq!(
            log,
            [
                ("dashboard", None),
                ("alice", Some("1 of 2")),
                (by[1], Some("2 of 2"))
            ],
            "{context}: two {id}"
        );
    }
    for &id in &setup.three {
        let outcomes = calls("three", &id.to_string());
        assert_eq!(outcomes.len(), CONTENDERS);
        assert!(
            outcomes.iter().all(|o| o == &["ok", "pending", "2"]),
            "{context}: three {id}: {outcomes:?}"
        );
        let a = q.get_action(id).unwrap();
        let by: Vec<&str> = a.approvals.iter().map(|x| x.by.as_str()).collect();
        assert_eq!(
            (a.status, by),
            (ActionStatus::Pending, vec!["alice", "bob"])
        );
        let details: Vec<Option<&str>> =
            by_action[&id].iter().map(|e| e.detail.as_deref()).collect();
        assert_eq!(
            details,
            [None, Some("1 of 3"), Some("2 of 3")],
            "{context}: three {id}"
        );
    }
    let page = |status| {
        q.list_actions(&actionq::ActionQuery {
            server_id: Some("free".into()),
            status: Some(status),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
    };
    for k in 0..keys() {
        let key = format!("s{k}");
        let outcomes = calls("budget", &key);
        assert_eq!(outcomes.len(), CONTENDERS);
        let approved = outcomes.iter().filter(|o| o[1] == "approved").count();
        let pending = outcomes.iter().filter(|o| o[1] == "pending").count();
        assert_eq!(
            (approved, pending),
            (3, 5),
            "{context}: budget {key}: {outcomes:?}"
        );
    }
    let (approved, pending) = (page(ActionStatus::Approved), page(ActionStatus::Pending));
    assert_eq!(approved.total, 3 * keys() as u64, "{context}");
    assert_eq!(pending.total, 5 * keys() as u64, "{context}");
    for a in &pending.actions {
        assert_eq!(
            by_action[&a.id][0].detail.as_deref(),
            Some("auto-approval budget exceeded: 3 in the last 3600s")
        );
    }
    let (mut approved_n, mut expired_n) = (0, 0);
    for &id in &setup.short {
        let oks = calls("short", &id.to_string())
            .into_iter()
            .filter(|o| o[0] == "ok")
            .count();
        let a = q.get_action(id).unwrap();
        let leaving: Vec<&&Event> = by_action[&id]
            .iter()
            .filter(|e| e.from_status == Some(ActionStatus::Pending))
            .collect();
        assert_eq!(leaving.len(), 1, "{context}: short {id}: {leaving:?}");
        match a.status {
            ActionStatus::Approved => {
                approved_n += 1;
                assert_eq!(oks, 1, "{context}: short {id}");
            }
            ActionStatus::Rejected => {
                expired_n += 1;
                assert_eq!(oks, 0, "{context}: short {id}");
                assert_eq!(a.rejected_by.as_deref(), Some("system"));
                assert_eq!(
                    leaving[0].detail.as_deref(),
                    Some("approval expired after 60s")
                );
            }
            other => panic!("{context}: short {id} ended {other}"),
        }
    }
    eprintln!("{context}: ttl race: {approved_n} approved first, {expired_n} expired first");
    let audit = q.verify_audit().unwrap();
    assert_eq!(
        (audit.checked, audit.first_bad_event_id),
        (events.len() as u64, None),
        "{context}"
    );
}

/// Threads on one queue of each store.
fn threads_race_on_every_policy(env: Env) {
    let setup = Arc::new(setup(&env.queue));
    let go = Arc::new(Barrier::new(CONTENDERS));
    let handles: Vec<_> = (0..CONTENDERS)
        .map(|me| {
            let (queue, setup, go) = (env.queue.clone(), setup.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                work(&queue, me, &setup, time_seed() ^ (me as u64) << 40)
            })
        })
        .collect();
    let lines: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    check(&env.queue, &setup, &lines, "threads");
}

for_each_store!(threads_race_on_every_policy);

/// Eight processes on one SQLite file, or on one PostgreSQL database.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod processes {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;

    const ENTRY: &str = "processes::policy_race_child_entry";
    const HANDSHAKE_LIMIT: Duration = Duration::from_secs(60);

    fn ids(text: &str) -> Vec<i64> {
        text.split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect()
    }

    /// A queue on `location`: a PostgreSQL URL or a SQLite file.
    fn open(location: &str) -> ActionQueue {
        #[cfg(feature = "postgres")]
        if actionq::is_postgres_url(location) {
            let options = actionq::PostgresOptions::default();
            return ActionQueue::new(actionq::PostgresStore::open(location, &options).unwrap());
        }
        #[cfg(feature = "sqlite")]
        return ActionQueue::open(location).unwrap();
        #[allow(unreachable_code)]
        {
            panic!("no store for {location}")
        }
    }

    #[test]
    #[ignore = "child process entry: started by its parent test, checks nothing alone"]
    fn policy_race_child_entry() {
        if child_role().as_deref() != Some("policy") {
            return;
        }
        let location = std::env::var("ACTIONQ_RACE_DB").unwrap();
        let dir = std::path::PathBuf::from(std::env::var("ACTIONQ_RACE_DIR").unwrap());
        let me: usize = std::env::var("ACTIONQ_RACE_PROC").unwrap().parse().unwrap();
        let read = |name: &str| ids(&std::fs::read_to_string(dir.join(name)).unwrap());
        let setup = Setup {
            two: read("two"),
            three: read("three"),
            short: read("short"),
        };
        let queue = open(&location);
        std::fs::write(dir.join(format!("ready-{me}")), b"").unwrap();
        let deadline = Instant::now() + HANDSHAKE_LIMIT;
        while !dir.join("go").exists() {
            assert!(Instant::now() < deadline, "no go within the limit");
            std::thread::yield_now();
        }
        let lines = work(&queue, me, &setup, time_seed() ^ (me as u64) << 40);
        std::fs::write(dir.join(format!("result-{me}")), lines.join("\n")).unwrap();
    }

    fn write_ids(dir: &Path, name: &str, ids: &[i64]) {
        let text: Vec<String> = ids.iter().map(i64::to_string).collect();
        std::fs::write(dir.join(name), text.join(" ")).unwrap();
    }

    /// Sets up the scenarios on `location`, races [`CONTENDERS`] processes
    /// on it, and checks the result.
    fn race(location: &str, context: &str) {
        let dir = tempfile::tempdir().unwrap();
        let queue = open(location);
        let setup = setup(&queue);
        write_ids(dir.path(), "two", &setup.two);
        write_ids(dir.path(), "three", &setup.three);
        write_ids(dir.path(), "short", &setup.short);
        let mut children: Vec<_> = (0..CONTENDERS)
            .map(|p| {
                let envs = [
                    ("ACTIONQ_RACE_DB", location.to_owned()),
                    ("ACTIONQ_RACE_DIR", dir.path().display().to_string()),
                    ("ACTIONQ_RACE_PROC", p.to_string()),
                ];
                spawn_child(ENTRY, "policy", &envs)
            })
            .collect();
        let deadline = Instant::now() + HANDSHAKE_LIMIT;
        while (0..CONTENDERS).any(|p| !dir.path().join(format!("ready-{p}")).exists()) {
            for child in children.iter_mut() {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "a child exited before go"
                );
            }
            assert!(Instant::now() < deadline, "children not ready in time");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::write(dir.path().join("go"), b"").unwrap();
        for child in children {
            wait_success(child, "policy race child");
        }
        let lines: Vec<String> = (0..CONTENDERS)
            .flat_map(|p| {
                std::fs::read_to_string(dir.path().join(format!("result-{p}")))
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        check(&queue, &setup, &lines, context);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn processes_race_on_every_policy() {
        if child_role().is_some() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.sqlite3");
        race(&db.display().to_string(), "processes");
        assert_invariants(&db, "after the policy races");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn processes_race_on_every_policy_postgres() {
        if child_role().is_some() {
            return;
        }
        let Some(url) = common::pg::fresh_schema_url() else {
            return;
        };
        race(&url, "processes on PostgreSQL");
    }
}
