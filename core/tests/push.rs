//! Waits instead of polling (`docs/contract/push.md`): `claim_next` and
//! `events_since` with a wait, on every store; woken by another thread, by
//! another store on the same SQLite file or PostgreSQL database (whose only
//! way to wake this one is the store's watch thread: `data_version`, or
//! `LISTEN`/`NOTIFY`), and by another process.
//!
//! Timings printed here are measurements; the assertions only say that a
//! waiter woke before its wait ended, never how fast.

mod common;
mod fault_support;

#[cfg(feature = "sqlite")]
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
#[cfg(feature = "sqlite")]
use std::time::{SystemTime, UNIX_EPOCH};

use actionq::store::Topic;
use actionq::{limits, ActionQueue, ErrorKind, NewAction};
use common::Env;

/// Long enough that a waiter woken by a change never reaches it.
const LONG: Duration = Duration::from_secs(30);

fn pending_action(q: &ActionQueue, server: &str) -> i64 {
    q.create_action(&NewAction::new(server, "clear_logs"))
        .unwrap()
        .id
}

/// Waits (a test's own patience, not an assertion on speed) until `queue`
/// has `n` waiters registered.
fn until_waiters(queue: &ActionQueue, n: usize) {
    let start = Instant::now();
    while queue.waiters() < n {
        assert!(start.elapsed() < LONG, "no waiter registered");
        thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(feature = "sqlite")]
fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

// ------------------------------------------------------------ every store

fn claim_wait_is_woken_by_an_approval_from_another_thread(env: Env) {
    let q = env.queue.clone();
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
    let id = pending_action(&q, "web-1");
    let agent = q.clone();
    let waiter = thread::spawn(move || {
        let start = Instant::now();
        let claim = agent.claim_next("web-1", None, Some(LONG)).unwrap();
        (claim, start.elapsed())
    });
    until_waiters(&q, 1);
    q.approve_action(id).unwrap();
    let approved = Instant::now();
    let (claim, waited) = waiter.join().unwrap();
    let latency = approved.elapsed();
    assert_eq!(claim.expect("claimed once approved").action.id, id);
    assert!(waited < LONG, "woke before the wait ended");
    eprintln!("claim woken by another thread: {latency:?} after the approval returned");
    assert_eq!(q.waiters(), 0, "the wait left nothing registered");
}

fn claim_wait_ignores_other_servers_and_takes_its_own(env: Env) {
    let q = env.queue.clone();
    q.create_server("web-1", None).unwrap();
    q.create_server("web-2", None).unwrap();
    let agent = q.clone();
    let waiter = thread::spawn(move || agent.claim_next("web-2", None, Some(LONG)).unwrap());
    until_waiters(&q, 1);
    let other = pending_action(&q, "web-1"); // approved at once: wakes the waiter, not its server
                                             // The waiter re-checked and went back to sleep: still waiting.
    until_waiters(&q, 1);
    let own = pending_action(&q, "web-2");
    let claim = waiter.join().unwrap().expect("its own server's action");
    assert_eq!(claim.action.id, own);
    assert_eq!(
        q.get_action(other).unwrap().status,
        actionq::ActionStatus::Approved
    );
}

fn events_wait_is_woken_by_the_next_event(env: Env) {
    let q = env.queue.clone();
    q.create_server("web-1", None).unwrap();
    let cursor = q
        .events_since(0, 100, None)
        .unwrap()
        .last()
        .map_or(0, |e| e.id);
    let reader = q.clone();
    let waiter = thread::spawn(move || reader.events_since(cursor, 100, Some(LONG)).unwrap());
    until_waiters(&q, 1);
    q.pause_server("web-1").unwrap();
    let events = waiter.join().unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].id > cursor);
    assert_eq!(q.waiters(), 0);
}

fn a_wait_with_nothing_to_find_ends_empty_at_its_end(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let cursor = q.events_since(0, 100, None).unwrap().len() as i64;
    let wait = Duration::from_millis(300);
    let start = Instant::now();
    assert!(q.claim_next("web-1", None, Some(wait)).unwrap().is_none());
    assert!(start.elapsed() >= wait);
    let start = Instant::now();
    assert!(q.events_since(cursor, 10, Some(wait)).unwrap().is_empty());
    assert!(start.elapsed() >= wait);
    assert_eq!(q.waiters(), 0);
}

fn a_zero_wait_answers_at_once(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let start = Instant::now();
    assert!(q
        .claim_next("web-1", None, Some(Duration::ZERO))
        .unwrap()
        .is_none());
    assert!(q
        .events_since(100, 10, Some(Duration::ZERO))
        .unwrap()
        .is_empty());
    assert!(q.claim_next("web-1", None, None).unwrap().is_none());
    // Far below any wait: nothing slept.
    assert!(start.elapsed() < LONG);
    let id = pending_action(q, "web-1");
    let claim = q.claim_next("web-1", None, Some(Duration::ZERO)).unwrap();
    assert_eq!(claim.unwrap().action.id, id);
}

fn a_wait_out_of_range_is_refused_before_anything(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let id = pending_action(q, "web-1");
    let too_long = limits::MAX_WAIT + Duration::from_millis(1);
    let e = q.claim_next("web-1", None, Some(too_long)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string()
            .contains("wait must be between 0 and 60 seconds"),
        "{e}"
    );
    assert_eq!(
        q.get_action(id).unwrap().status,
        actionq::ActionStatus::Approved,
        "nothing was claimed"
    );
    let e = q.events_since(0, 10, Some(too_long)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // Hosts convert seconds with the same bound and message.
    for bad in [-0.5, 60.001, f64::NAN, f64::INFINITY] {
        let e = limits::wait_seconds(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(limits::wait_seconds(60.0).unwrap(), limits::MAX_WAIT);
    // The bound itself is a valid wait (answered at once here: an action waits).
    assert!(q
        .claim_next("web-1", None, Some(limits::MAX_WAIT))
        .unwrap()
        .is_some());
}

fn a_wait_still_checks_its_arguments_and_its_actor(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let e = q.claim_next("nope", None, Some(LONG)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = q
        .claim_next("web-1", Some(Duration::ZERO), Some(LONG))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = q.events_since(-1, 10, Some(LONG)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let agent = actionq::Principal::agent("agent-2", "web-2");
    let e = q
        .as_principal(&agent)
        .claim_next("web-1", None, Some(LONG))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(q.waiters(), 0);
}

fn concurrent_waiters_each_claim_one_action_once(env: Env) {
    let q = env.queue.clone();
    q.create_server("web-1", None).unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let agent = q.clone();
            thread::spawn(move || agent.claim_next("web-1", None, Some(LONG)).unwrap())
        })
        .collect();
    until_waiters(&q, 4);
    let ids: Vec<i64> = (0..4).map(|_| pending_action(&q, "web-1")).collect();
    let mut claimed: Vec<i64> = waiters
        .into_iter()
        .map(|w| w.join().unwrap().expect("one each").action.id)
        .collect();
    claimed.sort();
    assert_eq!(claimed, ids);
}

/// After a claim found nothing, a wait on that server begins asleep until
/// something about it changes; any change of the server ends that, and a
/// caller who may not claim there is refused all the same.
fn a_claim_after_one_found_nothing_waits_without_looking(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.create_server("web-2", None).unwrap();
    assert!(!q.claim_would_wait("web-1", None).unwrap(), "no look yet");
    assert!(q.claim_next("web-1", None, None).unwrap().is_none());
    assert!(q.claim_would_wait("web-1", None).unwrap());
    pending_action(q, "web-2");
    assert!(
        q.claim_would_wait("web-1", None).unwrap(),
        "another server changed"
    );
    let stranger = actionq::Principal::agent("agent-2", "web-2");
    let e = q
        .as_principal(&stranger)
        .claim_would_wait("web-1", None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let e = q
        .claim_would_wait("web-1", Some(Duration::ZERO))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    q.pause_server("web-1").unwrap();
    assert!(
        !q.claim_would_wait("web-1", None).unwrap(),
        "its server changed"
    );
    q.unpause_server("web-1").unwrap();
    assert!(q.claim_next("web-1", None, None).unwrap().is_none());
    assert!(q.claim_would_wait("web-1", None).unwrap());
    let agent = q.clone();
    let waiter = thread::spawn(move || agent.claim_next("web-1", None, Some(LONG)).unwrap());
    until_waiters(q, 1);
    let id = pending_action(q, "web-1");
    assert_eq!(waiter.join().unwrap().expect("woken").action.id, id);
}

fn a_dropped_subscription_is_never_called(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let (tx, rx) = mpsc::channel();
    let kept_tx = tx.clone();
    let kept = q.on_change(Topic::Server("web-1"), move || {
        kept_tx.send("kept").unwrap()
    });
    let dropped = q.on_change(Topic::Events, move || tx.send("dropped").unwrap());
    assert_eq!(q.waiters(), 2);
    drop(dropped);
    q.pause_server("web-1").unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "kept");
    drop(kept);
    assert_eq!(q.waiters(), 0);
    q.unpause_server("web-1").unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
}

/// Lets a shared store's watch thread take its first look, which wakes every
/// waiter once (a commit may have landed before it could see it).
fn settle() {
    thread::sleep(Duration::from_millis(300));
}

fn a_change_of_one_server_wakes_no_waiter_of_another(env: Env) {
    let q = env.queue.clone();
    q.create_server("web-a", None).unwrap();
    q.create_server("web-b", None).unwrap();
    let agent = q.clone();
    let waiter = thread::spawn(move || agent.claim_next("web-b", None, Some(LONG)).unwrap());
    until_waiters(&q, 1);
    settle();
    let (tx, rx) = mpsc::channel();
    let b_tx = tx.clone();
    let _b = q.on_change(Topic::Server("web-b"), move || b_tx.send("web-b").unwrap());
    let _events = q.on_change(Topic::Events, move || tx.send("events").unwrap());
    let before = q.wakes();
    for _ in 0..5 {
        pending_action(&q, "web-a");
    }
    q.pause_server("web-a").unwrap();
    settle(); // the watch thread (SQLite, PostgreSQL) hears these commits too
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["events"]);
    assert_eq!(q.wakes() - before, 1, "only the events reader was woken");
    assert_eq!(q.waiters(), 2, "web-b's claim and callback still wait");
    let own = pending_action(&q, "web-b");
    assert_eq!(waiter.join().unwrap().expect("its approval").action.id, own);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "web-b");
    assert_eq!(q.waiters(), 0);
}

for_each_store!(
    a_change_of_one_server_wakes_no_waiter_of_another,
    claim_wait_is_woken_by_an_approval_from_another_thread,
    claim_wait_ignores_other_servers_and_takes_its_own,
    events_wait_is_woken_by_the_next_event,
    a_wait_with_nothing_to_find_ends_empty_at_its_end,
    a_zero_wait_answers_at_once,
    a_wait_out_of_range_is_refused_before_anything,
    a_wait_still_checks_its_arguments_and_its_actor,
    concurrent_waiters_each_claim_one_action_once,
    a_dropped_subscription_is_never_called,
    a_claim_after_one_found_nothing_waits_without_looking,
);

// ------------------------------------------------- another store, same data

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// `waiting` waits on `server` while `writer` (another store on the same
/// database: nothing in-process connects them) approves an action there.
/// The latency from the approval's return to the wake-up.
fn woken_across_stores(waiting: &ActionQueue, writer: &ActionQueue, server: &str) -> Duration {
    writer.create_server(server, None).unwrap();
    writer.pause_server(server).unwrap();
    let id = pending_action(writer, server);
    let agent = waiting.clone();
    let (woke_tx, woke_rx) = mpsc::channel();
    let s = server.to_owned();
    let waiter = thread::spawn(move || {
        let claim = agent.claim_next(&s, None, Some(LONG)).unwrap();
        woke_tx.send(Instant::now()).unwrap();
        claim
    });
    until_waiters(waiting, 1);
    // Let the watch thread start and take its first look.
    thread::sleep(Duration::from_millis(300));
    writer.approve_action(id).unwrap();
    let approved = Instant::now();
    let claim = waiter.join().unwrap();
    let woke = woke_rx.recv().unwrap();
    assert_eq!(claim.expect("woken by the other store").action.id, id);
    assert_eq!(waiting.waiters(), 0);
    woke.saturating_duration_since(approved)
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// `waiting` looks at a server and finds nothing; `writer` (another store on
/// the same database) approves an action there, and `waiting` waits again at
/// once, before its watch thread read that commit. Whether that wait began
/// asleep (`claim_would_wait`: nothing it had heard of changed since its
/// look); either way the watch thread's wake brings it the action.
fn a_wait_begun_asleep_still_takes_what_another_store_approved(
    waiting: &ActionQueue,
    writer: &ActionQueue,
) -> bool {
    writer.create_server("web-q", None).unwrap();
    writer.pause_server("web-q").unwrap();
    let id = pending_action(writer, "web-q");
    // A short wait: the watch thread starts and hears everything so far.
    let short = Some(Duration::from_millis(300));
    assert!(waiting.claim_next("web-q", None, short).unwrap().is_none());
    assert!(waiting.claim_would_wait("web-q", None).unwrap());
    writer.approve_action(id).unwrap();
    let asleep = waiting.claim_would_wait("web-q", None).unwrap();
    let claim = waiting.claim_next("web-q", None, Some(LONG)).unwrap();
    assert_eq!(claim.expect("woken by the watch thread").action.id, id);
    assert!(
        !waiting.claim_would_wait("web-q", None).unwrap(),
        "its claim changed the server"
    );
    assert_eq!(waiting.waiters(), 0);
    asleep
}

#[cfg(feature = "sqlite")]
#[test]
fn a_wait_begun_asleep_takes_what_another_sqlite_store_approved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let (a, b) = (
        ActionQueue::open(&path).unwrap(),
        ActionQueue::open(&path).unwrap(),
    );
    // Nobody waited on `a` meanwhile: its watch thread slept, had not read
    // the approval, and the wait began without a look.
    assert!(a_wait_begun_asleep_still_takes_what_another_store_approved(
        &a, &b
    ));
}

#[cfg(feature = "postgres")]
#[test]
fn a_wait_begun_asleep_takes_what_another_postgres_replica_approved() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let open = || pg_replica(&url);
    // The listener reads on while nobody waits: it may have heard already.
    a_wait_begun_asleep_still_takes_what_another_store_approved(&open(), &open());
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// `writer` (another store on the same database) changes server `web-a`
/// many times, then approves an action of `web-b`: the claim waiter of
/// `web-b` on `waiting` is woken once, by its own approval.
fn only_its_own_server_wakes_across_stores(waiting: &ActionQueue, writer: &ActionQueue) {
    writer.create_server("web-a", None).unwrap();
    writer.create_server("web-b", None).unwrap();
    writer.pause_server("web-b").unwrap();
    let own = pending_action(writer, "web-b");
    let agent = waiting.clone();
    let waiter = thread::spawn(move || agent.claim_next("web-b", None, Some(LONG)).unwrap());
    until_waiters(waiting, 1);
    settle();
    let before = waiting.wakes();
    for _ in 0..10 {
        pending_action(writer, "web-a");
    }
    settle();
    assert_eq!(waiting.wakes(), before, "web-a's changes woke nobody here");
    assert_eq!(waiting.waiters(), 1);
    writer.approve_action(own).unwrap();
    assert_eq!(waiter.join().unwrap().expect("woken").action.id, own);
    assert_eq!(waiting.wakes() - before, 1, "one wake: its own approval");
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// A reader of `waiting` waits for the live output of an action while a claim
/// waiter of another server waits too; `writer` (another store on the same
/// database) runs the action and stores a chunk, which logs no event: the
/// reader gets it long before its wait ends, and the claim waiter sleeps on.
fn output_reader_woken_across_stores(waiting: &ActionQueue, writer: &ActionQueue) {
    writer.create_server("web-out", None).unwrap();
    writer.create_server("web-idle", None).unwrap();
    let id = pending_action(writer, "web-out");
    let claim = writer
        .claim_next("web-out", None, None)
        .unwrap()
        .expect("approved on an unpaused server");
    assert_eq!(claim.action.id, id);
    let reader = waiting.clone();
    let read = thread::spawn(move || {
        let start = Instant::now();
        (
            reader.output_since(id, 0, Some(LONG)).unwrap(),
            start.elapsed(),
        )
    });
    let agent = waiting.clone();
    let idle = thread::spawn(move || agent.claim_next("web-idle", None, Some(LONG)).unwrap());
    until_waiters(waiting, 2);
    // Let the watch thread start and take its first look.
    thread::sleep(Duration::from_millis(300));
    assert!(writer
        .append_output(id, &claim.lease_token, 1, Some("first\n"), None)
        .unwrap());
    let (chunks, waited) = read.join().unwrap();
    assert_eq!(
        chunks.iter().map(|c| c.stdout.as_str()).collect::<Vec<_>>(),
        ["first\n"]
    );
    assert!(
        waited < LONG / 2,
        "woken by the chunk, not the deadline: {waited:?}"
    );
    assert_eq!(
        waiting.waiters(),
        1,
        "the claim waiter of web-idle sleeps on"
    );
    let own = pending_action(writer, "web-idle");
    assert_eq!(idle.join().unwrap().expect("claimed").action.id, own);
}

#[cfg(feature = "sqlite")]
#[test]
fn another_sqlite_store_wakes_an_output_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let (a, b) = (
        ActionQueue::open(&path).unwrap(),
        ActionQueue::open(&path).unwrap(),
    );
    output_reader_woken_across_stores(&a, &b);
}

#[cfg(feature = "postgres")]
#[test]
fn another_postgres_replica_wakes_an_output_reader() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let open = || pg_replica(&url);
    output_reader_woken_across_stores(&open(), &open());
}

#[cfg(feature = "sqlite")]
#[test]
fn another_sqlite_store_wakes_only_the_servers_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let (a, b) = (
        ActionQueue::open(&path).unwrap(),
        ActionQueue::open(&path).unwrap(),
    );
    only_its_own_server_wakes_across_stores(&a, &b);
}

#[cfg(feature = "postgres")]
/// A queue of its own on the PostgreSQL database at `url`: another replica.
fn pg_replica(url: &str) -> ActionQueue {
    ActionQueue::new(
        actionq::PostgresStore::open(url, &actionq::PostgresOptions::default()).unwrap(),
    )
}

#[cfg(feature = "postgres")]
#[test]
fn another_postgres_replica_wakes_only_the_servers_it_changed() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let open = || pg_replica(&url);
    only_its_own_server_wakes_across_stores(&open(), &open());
}

#[cfg(feature = "postgres")]
#[test]
fn a_postgres_change_too_large_to_name_wakes_every_replica_waiter() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let open = || pg_replica(&url);
    let clock = std::sync::Arc::new(actionq::ManualClock::new(common::start_time()));
    let (writer, waiting) = (
        open().with_clock(clock.clone()),
        open().with_clock(clock.clone()),
    );
    // 100 servers with 99-character ids: their names overflow a NOTIFY
    // payload (8000 bytes), so the commit that touches them all says "everything".
    let ids: Vec<String> = (0..100).map(|i| format!("s{i:0>98}")).collect();
    for id in &ids {
        writer.create_server(id, None).unwrap();
        pending_action(&writer, id);
        writer
            .claim_next(id, Some(Duration::from_secs(60)), None)
            .unwrap()
            .expect("claimed");
    }
    writer.create_server("web-z", None).unwrap();
    let agent = waiting.clone();
    let waiter = thread::spawn(move || agent.claim_next("web-z", None, Some(LONG)).unwrap());
    until_waiters(&waiting, 1);
    settle();
    let before = waiting.wakes();
    clock.advance_seconds(61.0).unwrap();
    assert_eq!(writer.expire_leases().unwrap().len(), ids.len());
    let start = Instant::now();
    while waiting.wakes() == before {
        assert!(start.elapsed() < LONG, "the waiter of web-z was not woken");
        thread::sleep(Duration::from_millis(5));
    }
    // Woken, it found nothing and waits again; its own action ends the wait.
    until_waiters(&waiting, 1);
    let own = pending_action(&writer, "web-z");
    assert_eq!(waiter.join().unwrap().expect("claimed").action.id, own);
}

#[cfg(feature = "sqlite")]
#[test]
fn a_second_store_on_the_same_sqlite_file_wakes_a_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let a = ActionQueue::open(&path).unwrap();
    let b = ActionQueue::open(&path).unwrap();
    let mut latencies: Vec<Duration> = (0..5)
        .map(|i| woken_across_stores(&a, &b, &format!("web-{i}")))
        .collect();
    latencies.sort();
    eprintln!("SQLite, another store on the file: wake latencies {latencies:?} (contract: 100 ms)");
}

#[cfg(feature = "postgres")]
#[test]
fn a_second_postgres_store_wakes_a_waiter_through_notify() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let open = || pg_replica(&url);
    let (a, b) = (open(), open());
    let mut latencies: Vec<Duration> = (0..5)
        .map(|i| woken_across_stores(&a, &b, &format!("web-{i}")))
        .collect();
    latencies.sort();
    eprintln!("PostgreSQL, another store: wake latencies {latencies:?} (contract: 50 ms)");
    // Events too: a reader of store `a` is woken by a pause through `b`.
    let cursor = a.events_since(0, 1000, None).unwrap().last().unwrap().id;
    let reader = a.clone();
    let waiter = thread::spawn(move || reader.events_since(cursor, 10, Some(LONG)).unwrap());
    until_waiters(&a, 1);
    b.unpause_server("web-0").unwrap();
    assert_eq!(waiter.join().unwrap().len(), 1);
}

// ------------------------------------------------------ another process

#[cfg(feature = "sqlite")]
/// The child: opens the SQLite file, waits for the go file, approves the
/// action, and writes when its approval returned (µs since the epoch).
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn approve_child_entry() {
    if fault_support::child_role().as_deref() != Some("approve") {
        return;
    }
    let db = PathBuf::from(std::env::var("ACTIONQ_PUSH_DB").unwrap());
    let id: i64 = std::env::var("ACTIONQ_PUSH_ACTION")
        .unwrap()
        .parse()
        .unwrap();
    let queue = ActionQueue::open(&db).unwrap();
    let go = db.with_extension("go");
    while !go.exists() {
        thread::sleep(Duration::from_millis(1));
    }
    queue.approve_action(id).unwrap();
    let approved = now_micros();
    std::fs::write(db.with_extension("approved"), approved.to_string()).unwrap();
}

#[cfg(feature = "sqlite")]
fn spawn_approver(db: &Path, id: i64) -> std::process::Child {
    fault_support::spawn_child(
        "approve_child_entry",
        "approve",
        &[
            ("ACTIONQ_PUSH_DB", db.display().to_string()),
            ("ACTIONQ_PUSH_ACTION", id.to_string()),
        ],
    )
}

#[cfg(feature = "sqlite")]
#[test]
fn another_process_on_the_sqlite_file_wakes_a_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite3");
    let queue = ActionQueue::open(&db).unwrap();
    queue.create_server("web-1", None).unwrap();
    queue.pause_server("web-1").unwrap();
    let id = pending_action(&queue, "web-1");
    let child = spawn_approver(&db, id);
    let go = db.with_extension("go");
    let signal = thread::spawn(move || {
        // The waiter below is asleep by then; the child approves at once.
        thread::sleep(Duration::from_millis(500));
        std::fs::write(go, "").unwrap();
    });
    let start = Instant::now();
    let claim = queue.claim_next("web-1", None, Some(LONG)).unwrap();
    let woke = now_micros();
    signal.join().unwrap();
    fault_support::wait_success(child, "approver");
    let approved: u128 = std::fs::read_to_string(db.with_extension("approved"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(claim.expect("woken by the other process").action.id, id);
    assert!(start.elapsed() < LONG, "woke before the wait ended");
    eprintln!(
        "SQLite, another process: woke {} µs after its approval returned (contract: 100 ms)",
        woke.saturating_sub(approved)
    );
}
