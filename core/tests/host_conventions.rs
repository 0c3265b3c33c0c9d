//! The conventions every host shares (README "Shared conventions"), on the
//! Rust side.
//! bindings-python/tests/test_conventions.py and bindings-c/tests/test_api.c
//! (`test_conventions`) check the same points through their hosts:
//!
//! - limits and defaults come from `actionq::limits` (Python `actionq.limits`,
//!   C `AQ_*` macros), and the queue's defaults are those values;
//! - lost leases are expired before every read, by default, in every host;
//!   a queue option turns it off;
//! - a lease of 0 is InvalidInput; the default lease is asked for by leaving
//!   the lease out (`None`, `NULL`);
//! - durations are seconds; durability is parsed by the core (`"normal"`, `"full"`);
//! - `reject_action(id, reason, by)`: the actor last, as in every change;
//! - `service_name` given both on its own and in params is InvalidInput;
//! - the status list is `ActionStatus::ALL`, in life-cycle order.

mod common;

use std::time::Duration;

use actionq::limits;
use actionq::{ActionQuery, ActionStatus, ErrorKind, NewAction, QueueOptions};
#[cfg(feature = "sqlite")]
use actionq::{Durability, SqliteOptions};
use common::Env;

fn restart(server: &str, service: &str) -> NewAction {
    NewAction::new(server, "restart_service").service_name(service)
}

/// A read of action `id`'s status after its lease ran out.
type ReadStatus = fn(&actionq::ActionQueue, i64) -> ActionStatus;

fn lost_leases_are_expired_before_every_read(env: Env) {
    let q = &env.queue;
    assert!(q.options().expire_leases_on_read, "on by default");
    q.create_server("web-1", None).unwrap();
    let reads: [(&str, ReadStatus); 5] = [
        ("get_action", |q, id| q.get_action(id).unwrap().status),
        ("list_actions", |q, _| {
            q.list_actions(&ActionQuery::default()).unwrap().actions[0].status
        }),
        ("list_server_actions", |q, _| {
            q.list_server_actions("web-1", None, 1, 0, None)
                .unwrap()
                .actions[0]
                .status
        }),
        ("events_since", |q, _| {
            q.events_since(0, limits::MAX_EVENTS_LIMIT, None)
                .unwrap()
                .last()
                .unwrap()
                .to_status
                .expect("an action event")
        }),
        ("claim_next", |q, id| {
            assert!(q.claim_next("web-1", None, None).unwrap().is_none());
            // Read raw through a queue that does not sweep.
            q.clone()
                .with_options(QueueOptions {
                    expire_leases_on_read: false,
                    ..QueueOptions::default()
                })
                .get_action(id)
                .unwrap()
                .status
        }),
    ];
    for (i, (read, status_after)) in reads.into_iter().enumerate() {
        let a = q
            .create_action(&restart("web-1", &format!("s{i}")))
            .unwrap();
        let claim = q
            .claim_next("web-1", Some(Duration::from_secs(10)), None)
            .unwrap()
            .unwrap();
        assert_eq!(claim.action.id, a.id);
        env.advance_secs(10);
        assert_eq!(status_after(q, a.id), ActionStatus::Failed, "{read}");
        assert!(q.expire_leases().unwrap().is_empty(), "{read} swept it");
    }
}

fn the_sweep_before_reads_can_be_turned_off(env: Env) {
    let env = env.options(QueueOptions {
        expire_leases_on_read: false,
        ..QueueOptions::default()
    });
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let a = q.create_action(&restart("web-1", "a")).unwrap();
    q.claim_next("web-1", Some(Duration::from_secs(10)), None)
        .unwrap()
        .unwrap();
    env.advance_secs(10);
    assert_eq!(q.get_action(a.id).unwrap().status, ActionStatus::Executing);
    let page = q.list_actions(&ActionQuery::default()).unwrap();
    assert_eq!(page.actions[0].status, ActionStatus::Executing);
    assert_eq!(q.expire_leases().unwrap().len(), 1, "the host's own call");
    assert_eq!(q.get_action(a.id).unwrap().status, ActionStatus::Failed);
}

fn a_zero_lease_is_invalid_and_none_is_the_default(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.create_action(&restart("web-1", "a")).unwrap();
    let zero = q.claim_next("web-1", Some(Duration::ZERO), None);
    assert_eq!(zero.unwrap_err().kind(), ErrorKind::InvalidInput);
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    let a = &claim.action;
    assert_eq!(
        a.lease_expires_at.unwrap() - a.executed_at.unwrap(),
        chrono::TimeDelta::seconds(limits::DEFAULT_LEASE_SECONDS as i64)
    );
    let zero = q.heartbeat(a.id, &claim.lease_token, Some(Duration::ZERO));
    assert_eq!(zero.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        limits::lease_seconds(0.0),
        Duration::ZERO,
        "hosts pass 0 on to be refused"
    );
}

fn reject_takes_the_reason_then_the_actor(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
    let a = q.create_action(&restart("web-1", "a")).unwrap();
    let rejected = q
        .by("alice")
        .unwrap()
        .reject_action(a.id, "not now")
        .unwrap();
    assert_eq!(rejected.rejection_reason.as_deref(), Some("not now"));
    assert_eq!(rejected.rejected_by.as_deref(), Some("alice"));
}

fn service_name_given_twice_is_invalid_input(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let twice = NewAction::new("web-1", "restart_service")
        .param("service_name", "nginx")
        .service_name_shorthand(Some("nginx".into()));
    assert_eq!(twice.unwrap_err().kind(), ErrorKind::InvalidInput);
    let json = NewAction::from_json(
        r#"{"server_id": "web-1", "action_type": "restart_service",
            "service_name": "a", "params": {"service_name": "a"}}"#,
    );
    assert_eq!(json.unwrap_err().kind(), ErrorKind::InvalidInput);
    let once = NewAction::new("web-1", "restart_service")
        .service_name_shorthand(Some("nginx".into()))
        .unwrap();
    assert_eq!(q.create_action(&once).unwrap().argv[2], "nginx.service");
}

fn defaults_are_the_named_limits(env: Env) {
    let q = &env.queue;
    let options = q.options();
    assert_eq!(options.output_cap_chars, limits::DEFAULT_OUTPUT_CAP_CHARS);
    assert_eq!(options.default_lease, limits::DEFAULT_LEASE);
    assert_eq!(options.max_lease, limits::DEFAULT_MAX_LEASE);
    assert_eq!(
        options.expire_leases_on_read,
        limits::DEFAULT_EXPIRE_LEASES_ON_READ
    );
    assert_eq!(ActionQuery::default().limit, limits::DEFAULT_PAGE_LIMIT);
    q.create_server("web-1", None).unwrap();
    let too_many = ActionQuery {
        limit: limits::MAX_PAGE_LIMIT + 1,
        ..ActionQuery::default()
    };
    assert_eq!(
        q.list_actions(&too_many).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let err = q
        .events_since(0, limits::MAX_EVENTS_LIMIT + 1, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    q.events_since(0, limits::MAX_EVENTS_LIMIT, None).unwrap();
}

for_each_store!(
    lost_leases_are_expired_before_every_read,
    the_sweep_before_reads_can_be_turned_off,
    a_zero_lease_is_invalid_and_none_is_the_default,
    reject_takes_the_reason_then_the_actor,
    service_name_given_twice_is_invalid_input,
    defaults_are_the_named_limits,
);

#[cfg(feature = "sqlite")]
#[test]
fn durability_is_parsed_by_the_core() {
    let names: Vec<&str> = Durability::ALL.iter().map(|d| d.as_str()).collect();
    assert_eq!(names, ["normal", "full"]);
    for d in Durability::ALL {
        assert_eq!(d.as_str().parse::<Durability>().unwrap(), d);
    }
    for bad in ["", "FULL", "off", "normal "] {
        let err = bad.parse::<Durability>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert!(err.to_string().contains("normal, full"), "{err}");
    }
    assert_eq!(SqliteOptions::default().durability, Durability::Normal);
    assert_eq!(
        SqliteOptions::default().busy_timeout,
        limits::DEFAULT_BUSY_TIMEOUT
    );
}

#[test]
fn settings_are_seconds_and_must_be_finite() {
    assert_eq!(
        limits::setting_seconds("busy_timeout_seconds", 2.5).unwrap(),
        Duration::from_millis(2500)
    );
    assert_eq!(
        limits::setting_seconds("x", 0.0).unwrap(),
        Duration::ZERO,
        "0 means zero, not the default"
    );
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let err = limits::setting_seconds("busy_timeout_seconds", bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().starts_with("busy_timeout_seconds must be"));
    }
}

#[test]
fn the_status_list_is_in_life_cycle_order() {
    let names: Vec<&str> = ActionStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "pending",
            "approved",
            "rejected",
            "cancelled",
            "executing",
            "completed",
            "failed"
        ]
    );
}
