//! Job leases and notification delivery cursors
//! (`docs/contract/notifications.md#delivery`), on every store: a lease is
//! exclusive until it lapses or is released, a cursor moves only for its
//! lease's holder and only forward, a new sink starts at the end of the log,
//! and two stores on one database (threads racing on real files and real
//! PostgreSQL) never both hold a lease.

mod common;

use std::time::Duration;

use actionq::jobs::delivery_lease_name;
use actionq::{limits, ActionQueue, DeliveryOutcome, ErrorKind, NewAction, Principal, Role};
use common::Env;

const TTL: Duration = Duration::from_secs(30);

fn log_events(q: &ActionQueue, n: usize) -> Vec<i64> {
    if q.get_server("web-1").is_err() {
        q.create_server("web-1", None).unwrap();
    }
    let after = q
        .events_since(0, 1000, None)
        .unwrap()
        .last()
        .map_or(0, |e| e.id);
    for _ in 0..n {
        q.create_action(&NewAction::new("web-1", "clear_logs"))
            .unwrap();
    }
    q.events_since(after, 1000, None)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

fn a_lease_is_exclusive_until_it_lapses_or_is_released(env: Env) {
    let q = &env.queue;
    let a = q.take_lease("pruner", "replica-a", TTL).unwrap();
    assert_eq!(
        (a.name.as_str(), a.holder.as_str()),
        ("pruner", "replica-a")
    );
    assert_eq!(a.expires_at, env.clock_now() + TTL);
    let refused = q.take_lease("pruner", "replica-b", TTL).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert!(
        refused
            .to_string()
            .starts_with("Lease 'pruner' is held by 'replica-a' until "),
        "{refused}"
    );
    // A renewal by the holder moves the expiry.
    env.advance_secs(20);
    let renewed = q.take_lease("pruner", "replica-a", TTL).unwrap();
    assert_eq!(renewed.expires_at, env.clock_now() + TTL);
    env.advance_secs(20);
    assert!(
        q.take_lease("pruner", "replica-b", TTL).is_err(),
        "renewed, so still held"
    );
    env.advance_secs(10);
    let b = q.take_lease("pruner", "replica-b", TTL).unwrap();
    assert_eq!(b.holder, "replica-b", "a lapsed lease is anyone's");
    // Release: only by the holder.
    assert!(!q.release_lease("pruner", "replica-a").unwrap());
    assert!(q.release_lease("pruner", "replica-b").unwrap());
    assert!(!q.release_lease("pruner", "replica-b").unwrap());
    q.take_lease("pruner", "replica-a", TTL).unwrap();
    // Leases are per name.
    q.take_lease("other-job", "replica-b", TTL).unwrap();
}

fn a_new_sink_starts_at_the_end_of_the_log(env: Env) {
    let q = &env.queue;
    let empty = q.register_delivery("early", "webhook").unwrap();
    assert_eq!(
        (empty.cursor, empty.lag_events, empty.oldest_pending_at),
        (0, 0, None)
    );
    let ids = log_events(q, 3);
    let late = q.register_delivery("late", "apprise").unwrap();
    assert_eq!((late.cursor, late.lag_events), (ids[2], 0));
    let early = q.register_delivery("early", "apprise").unwrap();
    assert_eq!(early.cursor, 0, "registering again keeps the cursor");
    assert_eq!(early.kind, "apprise", "and takes the kind");
    assert_eq!(early.lag_events, 3);
    let first_at = q.events_since(0, 1, None).unwrap()[0].at;
    assert_eq!(early.oldest_pending_at, Some(first_at));
    let names: Vec<String> = q
        .list_deliveries()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["early", "late"]);
}

fn outcomes_move_the_cursor_and_count(env: Env) {
    let q = &env.queue;
    q.register_delivery("ops", "webhook").unwrap();
    let ids = log_events(q, 4);
    q.take_lease(&delivery_lease_name("ops"), "r1", TTL)
        .unwrap();
    let record = |id, outcome, error| q.record_delivery("ops", "r1", id, outcome, error);

    let failed = record(ids[0], DeliveryOutcome::Failed, Some("HTTP 500")).unwrap();
    assert_eq!((failed.cursor, failed.lag_events, failed.failed), (0, 4, 1));
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 500"));
    let failed = record(ids[0], DeliveryOutcome::Failed, Some("timed out")).unwrap();
    assert_eq!(
        (failed.cursor, failed.failed, failed.sent),
        (0, 2, 0),
        "a retry of the same event"
    );
    let skipped = record(ids[0], DeliveryOutcome::Skipped, None).unwrap();
    assert_eq!((skipped.cursor, skipped.sent), (ids[0], 0));
    assert_eq!(
        skipped.last_error.as_deref(),
        Some("timed out"),
        "a skip says nothing of the sink"
    );
    env.advance_secs(1);
    let sent = record(ids[1], DeliveryOutcome::Sent, None).unwrap();
    assert_eq!(
        (sent.cursor, sent.lag_events, sent.sent, sent.last_error),
        (ids[1], 2, 1, None)
    );
    assert_eq!(sent.last_success_at, Some(env.clock_now()));
    let long = "x".repeat(2000);
    let dead = record(ids[2], DeliveryOutcome::Dead, Some(&long)).unwrap();
    assert_eq!(
        (dead.cursor, dead.dead, dead.failed, dead.lag_events),
        (ids[2], 1, 3, 1)
    );
    assert_eq!(
        dead.last_error.unwrap().chars().count(),
        limits::MAX_DELIVERY_ERROR_CHARS,
        "a long error is cut"
    );
    assert_eq!(dead.last_success_at, sent.last_success_at);

    // Never backwards, never the same event twice.
    for id in [ids[0], ids[2]] {
        let past = record(id, DeliveryOutcome::Sent, None).unwrap_err();
        assert_eq!(past.kind(), ErrorKind::Conflict, "{past}");
        assert!(past.to_string().contains("is already past event"), "{past}");
    }
    // Skipping to a later event passes everything before it.
    let end = record(ids[3] + 100, DeliveryOutcome::Skipped, None).unwrap();
    assert_eq!((end.cursor, end.lag_events), (ids[3] + 100, 0));
    let listed = q.list_deliveries().unwrap();
    assert_eq!(listed, [end]);
}

fn a_batch_moves_the_cursor_once_and_counts_what_it_sent(env: Env) {
    let q = &env.queue;
    q.register_delivery("ops", "webhook").unwrap();
    let ids = log_events(q, 5);
    let lease = delivery_lease_name("ops");
    q.take_lease(&lease, "r1", TTL).unwrap();
    for bad in [-1, ids[1] + 1] {
        let refused = q.record_sent("ops", "r1", ids[1], bad).unwrap_err();
        assert_eq!(
            refused.kind(),
            ErrorKind::InvalidInput,
            "sent {bad}: {refused}"
        );
    }
    let not_held = q.record_sent("ops", "r2", ids[1], 1).unwrap_err();
    assert_eq!(not_held.kind(), ErrorKind::Conflict, "{not_held}");
    q.record_delivery(
        "ops",
        "r1",
        ids[0],
        DeliveryOutcome::Failed,
        Some("HTTP 500"),
    )
    .unwrap();
    env.advance_secs(1);
    let batch = q.record_sent("ops", "r1", ids[2], 2).unwrap();
    assert_eq!(
        (batch.cursor, batch.lag_events, batch.sent, batch.failed),
        (ids[2], 2, 2, 1)
    );
    assert_eq!(
        (batch.last_error, batch.last_success_at),
        (None, Some(env.clock_now()))
    );
    let past = q.record_sent("ops", "r1", ids[2], 1).unwrap_err();
    assert_eq!(past.kind(), ErrorKind::Conflict, "{past}");
    assert!(past.to_string().contains("is already past event"), "{past}");
    // None sent: a skip, which says nothing of the sink.
    q.record_delivery(
        "ops",
        "r1",
        ids[3],
        DeliveryOutcome::Failed,
        Some("timed out"),
    )
    .unwrap();
    env.advance_secs(1);
    let skipped = q.record_sent("ops", "r1", ids[4], 0).unwrap();
    assert_eq!(
        (skipped.cursor, skipped.lag_events, skipped.sent),
        (ids[4], 0, 2)
    );
    assert_eq!(skipped.last_error.as_deref(), Some("timed out"));
    assert_eq!(skipped.last_success_at, batch.last_success_at);
    assert_eq!(q.list_deliveries().unwrap(), [skipped]);
}

fn only_the_lease_holder_moves_a_cursor(env: Env) {
    let q = &env.queue;
    q.register_delivery("ops", "webhook").unwrap();
    let ids = log_events(q, 2);
    let lease = delivery_lease_name("ops");
    let not_held = q
        .record_delivery("ops", "r1", ids[0], DeliveryOutcome::Sent, None)
        .unwrap_err();
    assert_eq!(not_held.kind(), ErrorKind::Conflict);
    assert_eq!(
        not_held.to_string(),
        "Lease 'delivery:ops' is not held by 'r1'"
    );
    q.take_lease(&lease, "r1", TTL).unwrap();
    q.record_delivery("ops", "r1", ids[0], DeliveryOutcome::Sent, None)
        .unwrap();
    // r1 stalls past its lease; r2 takes over; r1's late record is refused.
    env.advance_secs(31);
    q.take_lease(&lease, "r2", TTL).unwrap();
    let fenced = q
        .record_delivery("ops", "r1", ids[1], DeliveryOutcome::Sent, None)
        .unwrap_err();
    assert_eq!(fenced.kind(), ErrorKind::Conflict, "{fenced}");
    let d = q
        .record_delivery("ops", "r2", ids[1], DeliveryOutcome::Sent, None)
        .unwrap();
    assert_eq!((d.cursor, d.sent), (ids[1], 2));
    // A lapsed lease no one took is not held either.
    env.advance_secs(31);
    let lapsed = q.record_delivery("ops", "r2", ids[1] + 1, DeliveryOutcome::Skipped, None);
    assert_eq!(lapsed.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(q.list_deliveries().unwrap()[0].cursor, ids[1]);
}

fn bad_input_is_refused_before_anything(env: Env) {
    let q = &env.queue;
    q.register_delivery("ops", "webhook").unwrap();
    q.take_lease(&delivery_lease_name("ops"), "r1", TTL)
        .unwrap();
    let invalid = |r: actionq::Result<_>| {
        let e = r.map(|_: actionq::Delivery| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    };
    for name in ["", "Ops", "a/b", &"a".repeat(65)] {
        invalid(q.register_delivery(name, "webhook"));
        invalid(q.record_delivery(name, "r1", 1, DeliveryOutcome::Sent, None));
    }
    invalid(q.register_delivery("ops", ""));
    invalid(q.record_delivery("ops", "r1", 0, DeliveryOutcome::Sent, None));
    invalid(q.record_delivery("ops", "r1", 1, DeliveryOutcome::Failed, None));
    invalid(q.record_delivery("ops", "r1", 1, DeliveryOutcome::Dead, Some("")));
    invalid(q.record_delivery("ops", "r1", 1, DeliveryOutcome::Sent, Some("why")));
    invalid(q.record_delivery("ops", "", 1, DeliveryOutcome::Sent, None));
    invalid(q.record_sent("Ops", "r1", 1, 1));
    invalid(q.record_sent("ops", "", 1, 1));
    invalid(q.record_sent("ops", "r1", 0, 0));
    invalid(q.record_sent("ops", "r1", 2, 3));
    let missing = q
        .record_delivery("nope", "r1", 1, DeliveryOutcome::Sent, None)
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(missing.to_string(), "Delivery 'nope' not found");
    for ttl in [
        Duration::ZERO,
        Duration::from_secs(limits::MAX_JOB_LEASE_SECONDS + 1),
    ] {
        let e = q.take_lease("job", "r1", ttl).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    assert_eq!(
        q.take_lease("", "r1", TTL).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        q.take_lease("job", "a\nb", TTL).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(q.list_deliveries().unwrap()[0].cursor, 0, "nothing moved");
    assert!("delivered".parse::<DeliveryOutcome>().is_err());
}

fn only_admins_run_jobs(env: Env) {
    let q = &env.queue;
    let admin = q.as_principal(&Principal::new("root", Role::Admin));
    admin.register_delivery("ops", "webhook").unwrap();
    admin.take_lease("job", "r1", TTL).unwrap();
    for role in [Role::Operator, Role::Requester, Role::Viewer] {
        let p = q.as_principal(&Principal::new("someone", role));
        let denied = [
            p.take_lease("job", "someone", TTL).map(|_| ()),
            p.release_lease("job", "r1").map(|_| ()),
            p.register_delivery("ops", "webhook").map(|_| ()),
            p.record_delivery("ops", "r1", 1, DeliveryOutcome::Sent, None)
                .map(|_| ()),
            p.record_sent("ops", "r1", 1, 1).map(|_| ()),
            p.list_deliveries().map(|_| ()),
        ];
        for e in denied {
            let e = e.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{role}: {e}");
            assert!(
                e.to_string()
                    .contains("cannot run background jobs: only admin may"),
                "{e}"
            );
        }
    }
    let agent = q.as_principal(&Principal::agent("a", "web-1"));
    assert_eq!(
        agent.list_deliveries().unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(admin.list_deliveries().unwrap().len(), 1);
    assert!(admin.release_lease("job", "r1").unwrap());
}

/// Cursor and lease writes log nothing, so a waiter on the log is not woken
/// by them (a delivery loop would otherwise wake every waiter per message).
fn job_writes_log_no_event(env: Env) {
    let q = &env.queue;
    let ids = log_events(q, 1);
    q.register_delivery("ops", "webhook").unwrap();
    q.take_lease(&delivery_lease_name("ops"), "r1", TTL)
        .unwrap();
    q.record_delivery("ops", "r1", ids[0] + 1, DeliveryOutcome::Skipped, None)
        .unwrap();
    assert_eq!(q.events_since(0, 100, None).unwrap().len(), 1);
    assert_eq!(q.verify_audit().unwrap().first_bad_event_id, None);
}

for_each_store!(
    a_lease_is_exclusive_until_it_lapses_or_is_released,
    a_new_sink_starts_at_the_end_of_the_log,
    outcomes_move_the_cursor_and_count,
    a_batch_moves_the_cursor_once_and_counts_what_it_sent,
    only_the_lease_holder_moves_a_cursor,
    bad_input_is_refused_before_anything,
    only_admins_run_jobs,
    job_writes_log_no_event,
);

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Threads, each with its own store on one database, race for one lease
/// many times: exactly one wins each round; the cursor the winner moves is
/// what every store then reads.
fn race_for_one_lease(queues: Vec<ActionQueue>) {
    let rounds = 20;
    queues[0].register_delivery("ops", "webhook").unwrap();
    for round in 0..rounds {
        let name = format!("job-{round}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(queues.len()));
        let winners: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = queues
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    let barrier = barrier.clone();
                    let name = name.clone();
                    s.spawn(move || {
                        barrier.wait();
                        match q.take_lease(&name, &format!("replica-{i}"), TTL) {
                            Ok(_) => true,
                            Err(e) if e.kind() == ErrorKind::Conflict => false,
                            Err(e) => panic!("{e}"),
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            winners.iter().filter(|w| **w).count(),
            1,
            "round {round}: {winners:?}"
        );
    }
    let holder = "replica-0";
    queues[1]
        .take_lease(&delivery_lease_name("ops"), holder, TTL)
        .unwrap();
    let ids = log_events(&queues[0], 1);
    queues[0]
        .record_delivery("ops", holder, ids[0], DeliveryOutcome::Sent, None)
        .unwrap();
    for q in &queues {
        let d = &q.list_deliveries().unwrap()[0];
        assert_eq!((d.cursor, d.sent), (ids[0], 1));
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn stores_on_one_sqlite_file_share_leases_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let queues = (0..4).map(|_| ActionQueue::open(&path).unwrap()).collect();
    race_for_one_lease(queues);
    // And the cursor survives reopening the file.
    let reopened = ActionQueue::open(&path).unwrap();
    assert_eq!(reopened.list_deliveries().unwrap()[0].sent, 1);
}

#[cfg(feature = "postgres")]
#[test]
fn stores_on_one_postgres_database_share_leases_and_cursors() {
    let Some(url) = common::pg::fresh_schema_url() else {
        return;
    };
    let open = || {
        ActionQueue::new(
            actionq::PostgresStore::open(&url, &actionq::PostgresOptions::default()).unwrap(),
        )
    };
    race_for_one_lease((0..4).map(|_| open()).collect());
}
