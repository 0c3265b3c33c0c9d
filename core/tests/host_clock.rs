//! `docs/contract/domain.md#timestamps`: all timestamps are UTC with microsecond precision, whatever clock the
//! host plugs in (`ActionQueue::with_clock` takes any `Clock`).

mod common;

use std::sync::Arc;

use actionq::{Clock, NewAction, Timestamp};
use common::Env;

#[derive(Debug)]
struct NanoClock;

impl Clock for NanoClock {
    fn now(&self) -> Timestamp {
        "2026-03-01T13:14:15.987654321Z".parse().unwrap()
    }
}

fn host_clock_with_nanoseconds_is_truncated(env: Env) {
    let q = env.queue.clone().with_clock(Arc::new(NanoClock));
    let micros: Timestamp = "2026-03-01T13:14:15.987654Z".parse().unwrap();
    let s = q.create_server("web-1", None).unwrap();
    assert_eq!(s.created_at, micros);
    assert_eq!(q.get_server("web-1").unwrap(), s);
    let a = q
        .create_action(&NewAction::new("web-1", "restart_service").service_name("nginx"))
        .unwrap();
    assert_eq!(a.created_at, micros);
    assert_eq!(a.approved_at, Some(micros));
    assert_eq!(q.get_action(a.id).unwrap(), a, "returned == stored");
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(claim.action.executed_at, Some(micros));
    assert_eq!(q.get_action(a.id).unwrap(), claim.action);
    let events = q.events_since(0, 10, None).unwrap();
    assert!(events.iter().all(|e| e.at == micros), "{events:?}");
}

for_each_store!(host_clock_with_nanoseconds_is_truncated);
