//! Retention and keyset paging (`docs/contract/retention.md`), on every
//! store: prune deletes only old finished actions, a prefix of the log,
//! keeps counts and the audit chain (with its checkpoint) right; export
//! lists what prune may delete; keyset pages equal offset pages.

mod common;

use std::collections::BTreeMap;

use actionq::{
    limits, ActionCount, ActionQuery, ActionStatus, ErrorKind, NewAction, Principal, Role,
};
use common::Env;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const DAY: i64 = 86_400;

fn create(env: &Env, server: &str, n: usize) -> actionq::Action {
    env.queue
        .create_action(&NewAction::new(server, "restart_service").service_name(format!("s{n}")))
        .unwrap()
}

/// Actions in every status on server `run` (unpaused) and the one after
/// it (paused): one each of completed, failed, rejected, cancelled, and
/// live pending, approved, executing. Returns the ids by status.
fn one_of_each(env: &Env, first: usize, run: usize) -> BTreeMap<ActionStatus, i64> {
    let q = &env.queue;
    let (run, hold) = (format!("web-{run}"), format!("web-{}", run + 1));
    let mut ids = BTreeMap::new();
    let finish = |n: usize, exit_code| {
        let a = create(env, &run, n);
        let claim = q.claim_next(&run, None, None).unwrap().unwrap();
        assert_eq!(claim.action.id, a.id);
        q.report_result(a.id, &claim.lease_token, exit_code, None, None)
            .unwrap();
        a.id
    };
    ids.insert(ActionStatus::Completed, finish(first, 0));
    ids.insert(ActionStatus::Failed, finish(first + 1, 3));
    let rejected = create(env, &hold, first + 2);
    q.reject_action(rejected.id, "not now").unwrap();
    ids.insert(ActionStatus::Rejected, rejected.id);
    let cancelled = create(env, &run, first + 3);
    q.cancel_action(cancelled.id).unwrap();
    ids.insert(ActionStatus::Cancelled, cancelled.id);
    ids.insert(ActionStatus::Pending, create(env, &hold, first + 4).id);
    let executing = create(env, &run, first + 5);
    let claim = q.claim_next(&run, None, None).unwrap().unwrap();
    assert_eq!(claim.action.id, executing.id);
    ids.insert(ActionStatus::Executing, executing.id);
    ids.insert(ActionStatus::Approved, create(env, &run, first + 6).id);
    ids
}

fn servers(env: &Env) {
    for n in 1..=4 {
        env.queue.create_server(&format!("web-{n}"), None).unwrap();
    }
    env.queue.pause_server("web-2").unwrap();
    env.queue.pause_server("web-4").unwrap();
}

/// Counts as every store keeps them, checked against a listing of each.
fn counts_agree(env: &Env) -> Vec<ActionCount> {
    let counts = env.queue.count_actions().unwrap();
    for status in ActionStatus::ALL {
        let page = env
            .queue
            .list_actions(&ActionQuery {
                status: Some(status),
                limit: limits::MAX_PAGE_LIMIT,
                ..ActionQuery::default()
            })
            .unwrap();
        let counted: u64 = counts
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.count)
            .sum();
        assert_eq!(page.total, page.actions.len() as u64, "{status}");
        assert_eq!(counted, page.total, "{status}");
    }
    counts
}

fn prune_never_deletes_live_actions_and_keeps_counts_and_chain(env: Env) {
    servers(&env);
    let q = &env.queue;
    let old = one_of_each(&env, 0, 1);
    env.advance_secs(10 * DAY);
    let report = q.prune(5 * DAY).unwrap();
    // The first live action holds back everything logged after its first
    // event: only the finished actions before it go.
    let first_live = old
        .iter()
        .filter(|(s, _)| !s.is_terminal())
        .map(|(_, &id)| id)
        .min()
        .unwrap();
    assert_eq!(report.pruned_actions, first_live as u64 - 1);
    for id in 1..first_live {
        assert_eq!(q.get_action(id).unwrap_err().kind(), ErrorKind::NotFound);
    }
    for (status, id) in &old {
        if !status.is_terminal() {
            assert!(
                q.get_action(*id).is_ok(),
                "live action {id} ({status}) kept"
            );
        }
    }
    counts_agree(&env);
    let audit = q.verify_audit().unwrap();
    assert_eq!(audit.first_bad_event_id, None);
    assert_eq!(audit.pruned_through, report.pruned_through);
    let through = report.pruned_through.unwrap();
    assert!(q.events_since(0, 1000, None).unwrap()[0].id > through);

    // Once the old live actions finish and age, they go; young ones,
    // finished or not, stay.
    q.cancel_action(old[&ActionStatus::Pending]).unwrap();
    q.cancel_action(old[&ActionStatus::Approved]).unwrap();
    q.expire_leases().unwrap();
    assert!(q
        .get_action(old[&ActionStatus::Executing])
        .unwrap()
        .status
        .is_terminal());
    let young = one_of_each(&env, 100, 3);
    let kept = q.prune(5 * DAY).unwrap();
    assert_eq!(kept.pruned_actions, 0);
    assert_eq!(kept.pruned_through, report.pruned_through);
    env.advance_secs(10 * DAY);
    let again = q.prune(5 * DAY).unwrap();
    // The three old ones, then the young finished ones up to the young pending.
    assert_eq!(again.pruned_actions, 3 + 4);
    for (status, id) in &young {
        assert_eq!(
            q.get_action(*id).is_ok(),
            !status.is_terminal(),
            "{status} {id}"
        );
    }
    counts_agree(&env);
    let audit = q.verify_audit().unwrap();
    assert_eq!(
        (audit.first_bad_event_id, audit.pruned_through),
        (None, again.pruned_through)
    );
    // Nothing more to prune is a no-op with the same checkpoint.
    assert_eq!(
        q.prune(5 * DAY).unwrap(),
        actionq::PruneReport {
            pruned_actions: 0,
            pruned_through: again.pruned_through
        }
    );
    // New work after a prune chains on as before, with new ids.
    let later = create(&env, "web-1", 999);
    assert!(later.id > *young.values().max().unwrap());
    assert_eq!(q.verify_audit().unwrap().first_bad_event_id, None);
}

fn prune_goes_in_batches_and_empties_the_log(env: Env) {
    servers(&env);
    let q = &env.queue;
    let n = limits::PRUNE_BATCH_EVENTS as usize + 50;
    for i in 0..n {
        let a = create(&env, "web-1", i);
        q.cancel_action(a.id).unwrap();
    }
    q.pause_server("web-1").unwrap();
    env.advance_secs(DAY);
    // Younger than the cutoff: kept.
    let young = create(&env, "web-1", n);
    let report = q.prune(DAY / 2).unwrap();
    assert_eq!(report.pruned_actions, n as u64);
    // 2 events per action, the server pauses, and no more.
    let events = q.events_since(0, 1000, None).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].action_id, Some(young.id));
    assert_eq!(
        q.verify_audit().unwrap(),
        actionq::AuditReport {
            checked: 1,
            first_bad_event_id: None,
            pruned_through: Some(events[0].id - 1),
        }
    );
    q.cancel_action(young.id).unwrap();
    env.advance_secs(DAY);
    assert_eq!(q.prune(0).unwrap().pruned_actions, 1);
    // All gone: the head is the checkpoint.
    assert!(q.events_since(0, 10, None).unwrap().is_empty());
    let audit = q.verify_audit().unwrap();
    assert_eq!((audit.checked, audit.first_bad_event_id), (0, None));
    assert_eq!(counts_agree(&env), vec![]);
    assert_eq!(q.list_actions(&ActionQuery::default()).unwrap().total, 0);
}

fn export_lists_what_prune_deletes_with_every_event(env: Env) {
    servers(&env);
    let ids = one_of_each(&env, 0, 1);
    env.advance_secs(DAY);
    let cutoff = env.clock_now();
    env.advance_secs(DAY);
    let later = create(&env, "web-1", 50);
    env.queue.cancel_action(later.id).unwrap();
    let lines: Vec<actionq::ExportedAction> = env
        .queue
        .export(cutoff)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut exported: Vec<i64> = lines.iter().map(|l| l.action.id).collect();
    exported.sort();
    // Every action finished before the cutoff, none finished after it, no
    // live one.
    let _ = ids;
    let finished_before: Vec<i64> = (1..later.id)
        .filter(|&id| {
            let a = env.queue.get_action(id).unwrap();
            let last = [a.completed_at, a.rejected_at, a.cancelled_at]
                .into_iter()
                .flatten()
                .max();
            a.status.is_terminal() && last.is_some_and(|t| t < cutoff)
        })
        .collect();
    assert!(finished_before.len() >= 4, "{finished_before:?}");
    assert_eq!(exported, finished_before);
    for line in &lines {
        let events = &line.events;
        assert!(events.iter().all(|e| e.action_id == Some(line.action.id)));
        assert_eq!(events[0].from_status, None, "creation first");
        assert_eq!(events.last().unwrap().to_status, Some(line.action.status));
        assert!(events.windows(2).all(|w| w[0].id < w[1].id));
        let json = serde_json::to_string(line).unwrap();
        assert!(!json.contains('\n'));
    }
    // What a prune at that cutoff removes was all exported.
    let pruned_before: Vec<i64> = (1..=later.id)
        .filter(|&id| env.queue.get_action(id).is_ok())
        .collect();
    env.queue.prune(DAY + 1).unwrap();
    for id in pruned_before {
        if env.queue.get_action(id).is_err() {
            assert!(exported.contains(&id), "pruned {id} was not exported");
        }
    }
}

fn retention_is_for_admins_and_checks_its_input(env: Env) {
    servers(&env);
    let q = &env.queue;
    for role in [Role::Operator, Role::Requester, Role::Viewer] {
        let as_role = q.as_principal(&Principal::new("p", role));
        assert_eq!(
            as_role.prune(0).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            as_role.export(env.clock_now()).err().unwrap().kind(),
            ErrorKind::PermissionDenied
        );
    }
    let admin = q.as_principal(&Principal::new("root", Role::Admin));
    assert_eq!(admin.prune(0).unwrap().pruned_actions, 0);
    assert_eq!(q.prune(-1).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        q.prune(limits::MAX_PRUNE_AGE_SECONDS + 1)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    let bad_cursor = ActionQuery {
        before_id: Some(0),
        ..ActionQuery::default()
    };
    assert_eq!(
        q.list_actions(&bad_cursor).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

fn keyset_pages_walk_the_listing_and_survive_a_prune(env: Env) {
    servers(&env);
    let q = &env.queue;
    for i in 0..7 {
        let a = create(&env, "web-1", i);
        if i < 4 {
            q.cancel_action(a.id).unwrap();
        }
        env.advance_secs(1);
    }
    let page = |before_id| {
        q.list_actions(&ActionQuery {
            limit: 3,
            before_id,
            ..ActionQuery::default()
        })
        .unwrap()
    };
    let first = page(None);
    assert_eq!(ids(&first.actions), [7, 6, 5]);
    assert_eq!(first.next_before_id, Some(5));
    let second = page(first.next_before_id);
    assert_eq!(ids(&second.actions), [4, 3, 2]);
    assert_eq!(second.total, 7);
    let last = page(second.next_before_id);
    assert_eq!((ids(&last.actions), last.next_before_id), (vec![1], None));
    // A page that ends exactly at the last match says so too.
    let exact = q
        .list_actions(&ActionQuery {
            limit: 7,
            ..ActionQuery::default()
        })
        .unwrap();
    assert_eq!(exact.next_before_id, None);
    // The cursor's own action pruned meanwhile: the page goes on from where it was.
    env.advance_secs(DAY);
    q.prune(DAY / 2).unwrap();
    assert!(q.get_action(4).is_err());
    assert!(ids(&page(Some(5)).actions).is_empty());
    assert_eq!(ids(&page(Some(6)).actions), [5]);
    // A cursor past the newest action lists from the top.
    assert_eq!(ids(&page(Some(1000)).actions), [7, 6, 5]);
    // Server listings take it too.
    let server_page = q.list_server_actions("web-1", None, 1, 0, Some(7)).unwrap();
    assert_eq!(
        (ids(&server_page.actions), server_page.next_before_id),
        (vec![6], Some(6))
    );
}

fn ids(actions: &[actionq::Action]) -> Vec<i64> {
    actions.iter().map(|a| a.id).collect()
}

/// Random actions (clock steps of 0 or 1 s, so keys tie on `created_at`),
/// random statuses, servers and types; then every filter combination walked
/// by keyset pages of a random size must give exactly the offset pages.
fn keyset_paging_equals_offset_paging(env: Env) {
    let cases = std::env::var("ACTIONQ_KEYSET_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec((0u8..2, 0u8..3, 0u8..2, 0u8..2), 1..40),
        1i64..6,
    );
    runner
        .run(&strategy, |(actions, limit)| {
            let env = env.fresh();
            let q = &env.queue;
            for server in ["s0", "s1"] {
                q.create_server(server, None).unwrap();
                q.pause_server(server).unwrap();
            }
            for (i, (server, fate, kind, step)) in actions.iter().enumerate() {
                let request = if *kind == 0 {
                    NewAction::new(format!("s{server}"), "restart_service")
                        .service_name(format!("x{i}"))
                } else {
                    NewAction::new(format!("s{server}"), "clear_logs")
                };
                let Ok(a) = q.create_action(&request) else {
                    continue; // a pending duplicate: no matter
                };
                match fate {
                    0 => {}
                    1 => {
                        q.reject_action(a.id, "no").unwrap();
                    }
                    _ => {
                        q.cancel_action(a.id).unwrap();
                    }
                }
                env.advance_secs(i64::from(*step));
            }
            for mask in 0..8u8 {
                let filter = ActionQuery {
                    server_id: (mask & 1 != 0).then(|| "s1".to_owned()),
                    status: (mask & 2 != 0).then_some(ActionStatus::Pending),
                    action_type: (mask & 4 != 0).then(|| "clear_logs".to_owned()),
                    limit,
                    ..ActionQuery::default()
                };
                let mut by_offset = Vec::new();
                let mut offset = 0;
                loop {
                    let page = q
                        .list_actions(&ActionQuery {
                            offset,
                            ..filter.clone()
                        })
                        .unwrap();
                    if page.actions.is_empty() {
                        break;
                    }
                    offset += page.actions.len() as i64;
                    by_offset.push(ids(&page.actions));
                }
                let mut by_keyset = Vec::new();
                let mut before_id = None;
                loop {
                    let page = q
                        .list_actions(&ActionQuery {
                            before_id,
                            ..filter.clone()
                        })
                        .unwrap();
                    if !page.actions.is_empty() {
                        by_keyset.push(ids(&page.actions));
                    }
                    match page.next_before_id {
                        Some(next) => before_id = Some(next),
                        None => break,
                    }
                }
                prop_assert_eq!(&by_keyset, &by_offset, "filter {:?}", filter);
            }
            Ok(())
        })
        .unwrap();
}

for_each_store!(
    prune_never_deletes_live_actions_and_keeps_counts_and_chain,
    prune_goes_in_batches_and_empties_the_log,
    export_lists_what_prune_deletes_with_every_event,
    retention_is_for_admins_and_checks_its_input,
    keyset_pages_walk_the_listing_and_survive_a_prune,
    keyset_paging_equals_offset_paging,
);
