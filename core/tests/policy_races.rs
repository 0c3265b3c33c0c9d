//! `docs/contract/approval-policy.md` under races: 8 contenders at once, as threads on
//! every store and as processes sharing one SQLite file or one PostgreSQL
//! database.
//!
//! - last approval: two racing approvers on the last one needed → one
//!   transition to `approved`, both approvals recorded once; the same
//!   approver racing itself counts once;
//! - auto-approval budget of 3 with 8 contenders creating at once → exactly
//!   3 auto-approved per key;
//! - ttl expiry sweeping while approvers approve → each action has one
//!   outcome (approved, or rejected by `system`), never both. The outcome is
//!   forced by construction with manual clocks, as `multiprocess_races.rs`
//!   does for leases: the `gone` group has run out on every clock (the sweep
//!   must win), the `open` group runs out after every clock (an approval must
//!   win), and the `middle` group is open on the approvers' clocks and runs
//!   out on the sweepers' (a real race). Every expiry is attributed to the
//!   sweeper whose `expire_approvals` returned it.
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

/// When the short-lived groups are created (action k of a group one second
/// after action k - 1); each runs out 60 s later.
const GONE_CREATED: i64 = 0;
const MIDDLE_CREATED: i64 = 1000;
const OPEN_CREATED: i64 = 5000;
/// Approvers' clock: past every `gone` deadline, before every `middle` one.
const APPROVER_OFFSET: i64 = MIDDLE_CREATED + 59;
/// Sweepers start on the approvers' clock and walk one second per `middle`
/// action, closing one more each step; they stop before any `open` deadline.
const SWEEPER_OFFSET: i64 = APPROVER_OFFSET;

/// The sweepers among the contenders (the odd ones; the even ones approve).
fn is_sweeper(me: usize) -> bool {
    me % 2 == 1
}

fn shuffled(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

/// The ids the setup made, by scenario: two_keys, three_keys, and the
/// short_lived groups `gone`, `middle` and `open`.
struct Setup {
    two: Vec<i64>,
    three: Vec<i64>,
    gone: Vec<i64>,
    middle: Vec<i64>,
    open: Vec<i64>,
}

impl Setup {
    /// Every short-lived action with its group.
    fn short(&self) -> Vec<(i64, &'static str)> {
        let tagged = |ids: &[i64], group| ids.iter().map(|&id| (id, group)).collect::<Vec<_>>();
        [
            tagged(&self.gone, "gone"),
            tagged(&self.middle, "middle"),
            tagged(&self.open, "open"),
        ]
        .concat()
    }
}

/// On a paused server `hold`: two- and three-key actions with alice's first
/// approval, and short-lived ones; a normal server `free` for the budget.
fn setup(queue: &ActionQueue) -> Setup {
    let q = contender(queue.clone(), 0);
    q.create_server("hold", None).unwrap();
    q.pause_server("hold").unwrap();
    q.create_server("free", None).unwrap();
    let make = |kind: &str, k: usize| {
        let a = q
            .create_action(&NewAction::new("hold", kind).service_name(format!("s{k}")))
            .unwrap();
        let a = q.by("alice").unwrap().approve_action(a.id).unwrap();
        assert_eq!(a.status, ActionStatus::Pending);
        a.id
    };
    // Short-lived ones one second apart, so a sweeper walking its clock
    // forward through the middle group expires them one at a time while
    // approvers approve.
    assert!(
        keys() < 900,
        "the short-lived groups' windows would overlap"
    );
    let short = |created: i64| -> Vec<i64> {
        (0..keys() as i64)
            .map(|k| {
                contender(queue.clone(), created + k)
                    .create_action(
                        &NewAction::new("hold", "short_lived")
                            .service_name(format!("s{}", created + k)),
                    )
                    .unwrap()
                    .id
            })
            .collect()
    };
    Setup {
        two: (0..keys()).map(|k| make("two_keys", k)).collect(),
        three: (0..keys()).map(|k| make("three_keys", k)).collect(),
        gone: short(GONE_CREATED),
        middle: short(MIDDLE_CREATED),
        open: short(OPEN_CREATED),
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
        let r = approver.by(&format!("p{me}")).unwrap().approve_action(id);
        out.push(format!("two {id} {}", line(r)));
    }
    for i in shuffled(setup.three.len(), &mut rng) {
        let id = setup.three[i];
        out.push(format!(
            "three {id} {}",
            line(approver.by("bob").unwrap().approve_action(id))
        ));
    }
    for k in shuffled(keys(), &mut rng) {
        let r = approver
            .create_action(&NewAction::new("free", "budgeted").service_name(format!("s{k}")));
        out.push(format!("budget s{k} {}", line(r)));
    }
    if !is_sweeper(me) {
        let short = setup.short();
        for i in shuffled(short.len(), &mut rng) {
            let (id, _) = short[i];
            out.push(format!(
                "short {id} {}",
                line(approver.by(&format!("p{me}")).unwrap().approve_action(id))
            ));
        }
    } else {
        let clock = Arc::new(ManualClock::new(
            start() + TimeDelta::seconds(SWEEPER_OFFSET),
        ));
        let sweeper = queue
            .clone()
            .with_whitelist(whitelist())
            .with_clock(clock.clone());
        let swept = |out: &mut Vec<String>| {
            for a in sweeper.expire_approvals().unwrap() {
                out.push(format!("expired {} {me}", a.id));
            }
        };
        // The first sweep closes the whole `gone` group (unless another
        // sweeper got there first).
        swept(&mut out);
        for &id in &setup.middle {
            // Middle action k (created at MIDDLE_CREATED + k s) runs out at
            // MIDDLE_CREATED + k + 60 s: each step expires one more, unless
            // an approver got there first.
            clock.advance(TimeDelta::seconds(1));
            swept(&mut out);
            let seen = sweeper.get_action(id).unwrap();
            assert_ne!(
                seen.status,
                ActionStatus::Pending,
                "a read showed an expired approval"
            );
        }
        out.push(format!("swept {me} {}", setup.middle.len()));
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
                .events_since(all.last().map_or(0, |e| e.id), 1000, None)
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
    check_ttl_race(&q, setup, &by_action, lines, context);
    let audit = q.verify_audit().unwrap();
    assert_eq!(
        (audit.checked, audit.first_bad_event_id),
        (events.len() as u64, None),
        "{context}"
    );
}

/// The ttl race: each short-lived action has one outcome, the one its group
/// forces (`gone`: expired, `open`: approved; `middle`: either), every
/// expiry was returned to exactly one sweeper, and every sweeper walked the
/// whole middle group.
fn check_ttl_race(
    q: &ActionQueue,
    setup: &Setup,
    by_action: &BTreeMap<i64, Vec<&Event>>,
    lines: &[String],
    context: &str,
) {
    let words: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    let approvers = (0..CONTENDERS).filter(|&me| !is_sweeper(me)).count();
    let sweepers = CONTENDERS - approvers;
    let mut walked: Vec<&str> = words
        .iter()
        .filter(|w| w[0] == "swept")
        .map(|w| w[1])
        .collect();
    walked.sort_unstable();
    let want: Vec<String> = (0..CONTENDERS)
        .filter(|&me| is_sweeper(me))
        .map(|me| me.to_string())
        .collect();
    assert_eq!(walked, want, "{context}: every sweeper walks to its end");
    assert!(
        words
            .iter()
            .filter(|w| w[0] == "swept")
            .all(|w| w[2] == setup.middle.len().to_string()),
        "{context}: every sweeper steps through the whole middle group"
    );
    let (mut middle_approved, mut middle_expired, mut expired_total) = (0, 0, 0);
    for (id, group) in setup.short() {
        let key = id.to_string();
        let outcomes: Vec<&[&str]> = words
            .iter()
            .filter(|w| w[0] == "short" && w[1] == key)
            .map(|w| &w[2..])
            .collect();
        assert_eq!(outcomes.len(), approvers, "{context}: short {id}");
        let oks = outcomes.iter().filter(|o| o[0] == "ok").count();
        assert!(
            outcomes
                .iter()
                .all(|o| *o == ["ok", "approved", "1"] || *o == ["CONFLICT"]),
            "{context}: short {id} ({group}): {outcomes:?}"
        );
        let expirers = words
            .iter()
            .filter(|w| w[0] == "expired" && w[1] == key)
            .count();
        let a = q.get_action(id).unwrap();
        let leaving: Vec<&&Event> = by_action[&id]
            .iter()
            .filter(|e| e.from_status == Some(ActionStatus::Pending))
            .collect();
        assert_eq!(leaving.len(), 1, "{context}: short {id}: {leaving:?}");
        let expired = match a.status {
            ActionStatus::Approved => {
                assert_eq!((oks, expirers), (1, 0), "{context}: short {id} ({group})");
                false
            }
            ActionStatus::Rejected => {
                assert_eq!((oks, expirers), (0, 1), "{context}: short {id} ({group})");
                assert_eq!(a.rejected_by.as_deref(), Some("system"));
                assert_eq!(
                    leaving[0].detail.as_deref(),
                    Some("approval expired after 60s")
                );
                true
            }
            other => panic!("{context}: short {id} ({group}) ended {other}"),
        };
        expired_total += usize::from(expired);
        match group {
            "gone" => assert!(
                expired,
                "{context}: short {id} ran out on every clock but was approved"
            ),
            "open" => assert!(
                !expired,
                "{context}: short {id} was open on every clock but expired"
            ),
            _ if expired => middle_expired += 1,
            _ => middle_approved += 1,
        }
    }
    let expiries = words.iter().filter(|w| w[0] == "expired").count();
    assert_eq!(
        expiries, expired_total,
        "{context}: every expiry, and only those, returned to one sweeper"
    );
    eprintln!(
        "{context}: ttl race: gone {n} expired, open {n} approved, middle {middle_approved} \
         approved first and {middle_expired} expired first, {sweepers} sweepers",
        n = keys()
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
            gone: read("gone"),
            middle: read("middle"),
            open: read("open"),
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
        write_ids(dir.path(), "gone", &setup.gone);
        write_ids(dir.path(), "middle", &setup.middle);
        write_ids(dir.path(), "open", &setup.open);
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
