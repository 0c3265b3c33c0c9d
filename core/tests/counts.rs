//! What a dashboard and a metrics scrape read about the whole queue: the
//! servers (`list_servers`), the actions per server and status
//! (`count_actions`) and the lost leases (`lease_expiries`), on every store.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use actionq::{ActionQuery, ActionStatus, ErrorKind, NewAction, Principal, Role};
use common::Env;

/// (server, status) → count, as `count_actions` gives it.
fn counted(env: &Env) -> Vec<(String, ActionStatus, u64)> {
    env.queue
        .count_actions()
        .unwrap()
        .into_iter()
        .map(|c| (c.server_id, c.status, c.count))
        .collect()
}

/// The same, by reading every action page by page (what the counts spare a caller).
fn scanned(env: &Env) -> Vec<(String, ActionStatus, u64)> {
    let mut counts: BTreeMap<(String, ActionStatus), u64> = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = env
            .queue
            .list_actions(&ActionQuery {
                limit: 100,
                offset,
                ..ActionQuery::default()
            })
            .unwrap();
        for a in &page.actions {
            *counts.entry((a.server_id.clone(), a.status)).or_default() += 1;
        }
        if page.actions.is_empty() {
            break;
        }
        offset += page.actions.len() as i64;
    }
    counts.into_iter().map(|((s, st), n)| (s, st, n)).collect()
}

fn restart(server: &str, service: &str) -> NewAction {
    NewAction::new(server, "restart_service").service_name(service)
}

fn counts_follow_every_transition(env: Env) {
    let q = &env.queue;
    assert!(counted(&env).is_empty(), "no actions, no rows");
    q.create_server("web-2", None).unwrap();
    q.create_server("db-1", None).unwrap();
    assert!(
        counted(&env).is_empty(),
        "a server without actions has no rows"
    );
    q.pause_server("db-1").unwrap();
    let pending: Vec<i64> = (0..4)
        .map(|i| {
            q.create_action(&restart("db-1", &format!("p{i}")))
                .unwrap()
                .id
        })
        .collect();
    q.by("alice").unwrap().approve_action(pending[0]).unwrap();
    q.by("bob")
        .unwrap()
        .reject_action(pending[1], "not now")
        .unwrap();
    q.by("carol").unwrap().cancel_action(pending[2]).unwrap();
    for i in 0..3 {
        q.create_action(&restart("web-2", &format!("s{i}")))
            .unwrap();
    }
    let ok = q.claim_next("web-2", None, None).unwrap().unwrap();
    q.report_result(ok.action.id, &ok.lease_token, 0, None, None)
        .unwrap();
    let bad = q.claim_next("web-2", None, None).unwrap().unwrap();
    q.report_result(bad.action.id, &bad.lease_token, 2, None, None)
        .unwrap();
    q.claim_next("web-2", None, None).unwrap().unwrap();

    let expected = |s: &str, st, n| (s.to_owned(), st, n);
    assert_eq!(
        counted(&env),
        [
            expected("db-1", ActionStatus::Pending, 1),
            expected("db-1", ActionStatus::Approved, 1),
            expected("db-1", ActionStatus::Rejected, 1),
            expected("db-1", ActionStatus::Cancelled, 1),
            expected("web-2", ActionStatus::Executing, 1),
            expected("web-2", ActionStatus::Completed, 1),
            expected("web-2", ActionStatus::Failed, 1),
        ]
    );
    assert_eq!(counted(&env), scanned(&env));
}

fn counts_expire_lost_leases_first_and_count_them(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.create_action(&restart("web-1", "a")).unwrap();
    q.create_action(&restart("web-1", "b")).unwrap();
    q.claim_next("web-1", Some(Duration::from_secs(10)), None)
        .unwrap()
        .unwrap();
    q.claim_next("web-1", Some(Duration::from_secs(100)), None)
        .unwrap()
        .unwrap();
    assert_eq!(q.lease_expiries(), 0);
    env.advance_secs(10);
    // No explicit sweep: the count is a read, and reads expire lost leases first.
    assert_eq!(
        counted(&env),
        [
            ("web-1".to_owned(), ActionStatus::Executing, 1),
            ("web-1".to_owned(), ActionStatus::Failed, 1),
        ]
    );
    assert_eq!(q.lease_expiries(), 1);
    let clone = q.clone();
    env.advance_secs(100);
    assert_eq!(clone.expire_leases().unwrap().len(), 1);
    assert_eq!(q.lease_expiries(), 2, "clones share the counter");
    assert_eq!(
        env.fresh().queue.lease_expiries(),
        0,
        "another queue counts its own"
    );
}

fn many_actions_are_counted_exactly(env: Env) {
    let q = &env.queue;
    for s in ["a-1", "b-1", "c-1"] {
        q.create_server(s, None).unwrap();
    }
    q.pause_server("b-1").unwrap();
    for i in 0..250 {
        let server = ["a-1", "b-1", "c-1"][i % 3];
        let id = q
            .create_action(&restart(server, &format!("s{i}")))
            .unwrap()
            .id;
        if i % 7 == 0 {
            q.cancel_action(id).unwrap();
        }
    }
    assert_eq!(counted(&env), scanned(&env));
    let total: u64 = counted(&env).iter().map(|(_, _, n)| n).sum();
    assert_eq!(total, 250);
}

fn servers_are_listed_by_id_with_their_state(env: Env) {
    let q = &env.queue;
    assert!(q.list_servers().unwrap().is_empty());
    for id in ["web-2", "db-1", "Web-1", "web-10"] {
        q.create_server(id, Some(&format!("{id}.lan"))).unwrap();
    }
    q.pause_server("web-2").unwrap();
    let servers = q.list_servers().unwrap();
    let ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["Web-1", "db-1", "web-10", "web-2"]);
    for s in &servers {
        assert_eq!(s, &q.get_server(&s.id).unwrap());
    }
    assert!(servers[3].is_paused);
    assert!(!servers[0].is_paused);
}

fn every_role_but_agent_reads_servers_and_counts(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.create_action(&restart("web-1", "a")).unwrap();
    for role in [Role::Admin, Role::Operator, Role::Requester, Role::Viewer] {
        let who = Principal::new("someone", role);
        let acting = q.as_principal(&who);
        assert_eq!(acting.list_servers().unwrap(), q.list_servers().unwrap());
        assert_eq!(acting.count_actions().unwrap(), q.count_actions().unwrap());
    }
    let agent = Principal::agent("agent-1", "web-1");
    let acting = q.as_principal(&agent);
    assert_eq!(
        acting.list_servers().unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        acting.count_actions().unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

for_each_store!(
    every_role_but_agent_reads_servers_and_counts,
    counts_follow_every_transition,
    counts_expire_lost_leases_first_and_count_them,
    many_actions_are_counted_exactly,
    servers_are_listed_by_id_with_their_state,
);
