//! Cancel while running, and live output (`docs/contract/cancel-and-output.md`),
//! run against every store.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use actionq::{ActionStatus, ErrorKind, NewAction, Principal, QueueOptions, Role};
use common::Env;

/// An executing action of `web-1` and its lease token.
fn executing(env: &Env) -> (i64, String) {
    env.queue.create_server("web-1", None).unwrap();
    env.queue
        .create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    let claim = env.queue.claim_next("web-1", None, None).unwrap().unwrap();
    (claim.action.id, claim.lease_token)
}

fn cancel_of_executing_is_a_request(env: Env) {
    let (id, token) = executing(&env);
    let q = &env.queue;
    assert_eq!(q.get_action(id).unwrap().cancel_requested_at, None);
    env.advance_secs(1);
    let asked = q.by("alice").unwrap().cancel_action(id).unwrap();
    assert_eq!(asked.status, ActionStatus::Executing);
    assert_eq!(asked.cancel_requested_at, Some(env.clock_now()));
    assert_eq!(asked.cancel_requested_by.as_deref(), Some("alice"));
    assert_eq!(
        (asked.cancelled_at, asked.cancelled_by.as_deref()),
        (None, None)
    );
    assert_eq!(q.get_action(id).unwrap(), asked);
    let events = q.events_since(0, 1000, None).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.action_id, last.from_status, last.to_status),
        (
            Some(id),
            Some(ActionStatus::Executing),
            Some(ActionStatus::Executing)
        )
    );
    assert_eq!(
        (last.by.as_str(), last.detail.as_deref()),
        ("alice", Some("cancel requested"))
    );
    // A second request keeps the first and logs nothing.
    let again = q.by("bob").unwrap().cancel_action(id).unwrap();
    assert_eq!(again.cancel_requested_by.as_deref(), Some("alice"));
    assert_eq!(q.events_since(0, 1000, None).unwrap().len(), events.len());
    // The agent's heartbeat still works while the request stands.
    q.heartbeat(id, &token, None).unwrap();
}

fn cancelled_report_ends_cancelled_by_who_asked(env: Env) {
    let (id, token) = executing(&env);
    let q = &env.queue;
    assert_eq!(
        q.report_cancelled(id, &token, 143, None, None)
            .unwrap_err()
            .to_string(),
        format!("No cancel was requested for action {id}")
    );
    q.by("alice").unwrap().cancel_action(id).unwrap();
    env.advance_secs(2);
    assert_eq!(
        q.report_cancelled(id, "not-the-token", 143, None, None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    let done = q
        .report_cancelled(id, &token, 143, Some("partial"), Some("Terminated"))
        .unwrap();
    assert_eq!(done.status, ActionStatus::Cancelled);
    assert_eq!(done.cancelled_by.as_deref(), Some("alice"));
    assert_eq!(done.cancelled_at, Some(env.clock_now()));
    assert_eq!(done.completed_at, Some(env.clock_now()));
    assert_eq!(done.exit_code, Some(143));
    assert_eq!(
        (done.stdout.as_deref(), done.stderr.as_deref()),
        (Some("partial"), Some("Terminated"))
    );
    let last = q.events_since(0, 1000, None).unwrap().pop().unwrap();
    assert_eq!(
        (
            last.from_status,
            last.to_status,
            last.by.as_str(),
            last.detail.as_deref()
        ),
        (
            Some(ActionStatus::Executing),
            Some(ActionStatus::Cancelled),
            "agent",
            Some("cancelled, exit_code=143")
        )
    );
    // Finished: a cancel, a second report and more output are Conflicts.
    assert_eq!(q.cancel_action(id).unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(
        q.report_result(id, &token, 0, None, None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        q.append_output(id, &token, 9, Some("x"), None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
}

/// The race of a cancel with the command's own exit: whichever report comes
/// first is the outcome, the other is a Conflict.
fn cancel_racing_the_exit_has_one_outcome(env: Env) {
    let (id, token) = executing(&env);
    let q = &env.queue;
    q.by("alice").unwrap().cancel_action(id).unwrap();
    // The command exited on its own before the agent heard of the cancel.
    let done = q.report_result(id, &token, 0, Some("ok"), None).unwrap();
    assert_eq!(done.status, ActionStatus::Completed);
    assert_eq!(done.cancel_requested_by.as_deref(), Some("alice"));
    assert_eq!(done.cancelled_by, None);
    assert_eq!(
        q.report_cancelled(id, &token, 143, None, None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    let to: Vec<_> = q
        .events_since(0, 1000, None)
        .unwrap()
        .iter()
        .filter(|e| e.action_id == Some(id))
        .map(|e| e.to_status)
        .collect();
    let last_two = &to[to.len() - 2..];
    assert_eq!(
        last_two,
        [Some(ActionStatus::Executing), Some(ActionStatus::Completed)]
    );
}

fn lost_lease_with_a_pending_cancel_says_so(env: Env) {
    let (id, _token) = executing(&env);
    let q = &env.queue;
    q.by("alice").unwrap().cancel_action(id).unwrap();
    env.advance_secs(301);
    let failed = q.get_action(id).unwrap();
    assert_eq!(
        (failed.status, failed.exit_code),
        (ActionStatus::Failed, Some(-1))
    );
    assert_eq!(
        failed.stderr.as_deref(),
        Some(actionq::LEASE_EXPIRED_WITH_CANCEL_STDERR)
    );
    let last = q.events_since(0, 1000, None).unwrap().pop().unwrap();
    assert_eq!(
        last.detail.as_deref(),
        Some("lease expired (a cancel was pending)")
    );
}

fn await_cancel_renews_and_wakes_on_a_request(env: Env) {
    let (id, token) = executing(&env);
    let q = env.queue.clone();
    env.advance_secs(100);
    let idle = q.await_cancel(id, &token, None, None).unwrap();
    assert_eq!(idle.cancel_requested_at, None);
    assert_eq!(
        idle.lease_expires_at,
        Some(env.clock_now() + chrono::TimeDelta::seconds(300))
    );
    let agent = q.clone();
    let waiting_token = token.clone();
    let started = Instant::now();
    let heard = thread::spawn(move || {
        agent.await_cancel(id, &waiting_token, None, Some(Duration::from_secs(30)))
    });
    thread::sleep(Duration::from_millis(100));
    q.by("alice").unwrap().cancel_action(id).unwrap();
    let action = heard.join().unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the request, not the wait's end"
    );
    assert_eq!(action.cancel_requested_by.as_deref(), Some("alice"));
    // Asked already: answers at once.
    let again = q
        .await_cancel(id, &token, None, Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(again.cancel_requested_by.as_deref(), Some("alice"));
    assert_eq!(
        q.await_cancel(id, "wrong", None, None).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        q.await_cancel(id, &token, None, Some(Duration::from_secs(61)))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

fn output_chunks_are_fenced_ordered_and_deduplicated(env: Env) {
    let (id, token) = executing(&env);
    let q = &env.queue;
    assert_eq!(
        q.append_output(id, &token, 0, Some("x"), None)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        q.append_output(id, "wrong", 1, Some("x"), None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        q.append_output(999, &token, 1, Some("x"), None)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(q.append_output(id, &token, 1, Some("one\n"), None).unwrap());
    env.advance_secs(1);
    assert!(q
        .append_output(id, &token, 2, None, Some("warn\n"))
        .unwrap());
    assert!(
        !q.append_output(id, &token, 2, Some("two again\n"), None)
            .unwrap(),
        "a repeat is ignored"
    );
    assert!(
        !q.append_output(id, &token, 1, Some("old"), None).unwrap(),
        "an older seq is ignored"
    );
    assert!(q.append_output(id, &token, 3, Some("ünï\0"), None).unwrap());
    let all = q.output_since(id, 0, None).unwrap();
    let seen: Vec<(i64, &str, &str)> = all
        .iter()
        .map(|c| (c.seq, c.stdout.as_str(), c.stderr.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(1, "one\n", ""), (2, "", "warn\n"), (3, "ünï\0", "")]
    );
    assert_eq!(all[1].at, env.clock_now());
    assert_eq!(q.output_since(id, 2, None).unwrap(), all[2..]);
    assert!(q.output_since(id, 3, None).unwrap().is_empty());
    assert_eq!(
        q.output_since(999, 0, None).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Chunks outlive the run; none is added after it.
    q.report_result(id, &token, 0, Some("one\n"), None).unwrap();
    assert_eq!(
        q.append_output(id, &token, 4, Some("late"), None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(q.output_since(id, 0, None).unwrap(), all);
    // After the lease ran out nothing more is taken either.
    let (id2, token2) = {
        q.create_action(&NewAction::new("web-1", "clear_logs"))
            .unwrap();
        let c = q.claim_next("web-1", None, None).unwrap().unwrap();
        (c.action.id, c.lease_token)
    };
    env.advance_secs(301);
    assert_eq!(
        q.append_output(id2, &token2, 1, Some("x"), None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
}

fn kept_output_stays_within_the_cap(env: Env) {
    let env = env.options(QueueOptions {
        output_cap_chars: 10,
        ..QueueOptions::default()
    });
    let (id, token) = executing(&env);
    let q = &env.queue;
    assert!(q
        .append_output(id, &token, 1, Some("ééééééé"), Some("e"))
        .unwrap());
    assert!(q
        .append_output(id, &token, 2, Some("12345"), Some("rr"))
        .unwrap());
    assert!(q
        .append_output(id, &token, 3, None, Some("0123456789"))
        .unwrap());
    assert!(
        !q.append_output(id, &token, 4, Some("more"), Some("more"))
            .unwrap(),
        "nothing left under the cap"
    );
    let chunks = q.output_since(id, 0, None).unwrap();
    let stdout: String = chunks.iter().map(|c| c.stdout.as_str()).collect();
    let stderr: String = chunks.iter().map(|c| c.stderr.as_str()).collect();
    assert_eq!(stdout, "ééééééé123");
    assert_eq!(stderr, "err0123456");
    assert_eq!(chunks.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
}

fn output_since_waits_for_a_chunk_or_the_end(env: Env) {
    let (id, token) = executing(&env);
    let q = env.queue.clone();
    let reader = q.clone();
    let started = Instant::now();
    let follow = thread::spawn(move || reader.output_since(id, 0, Some(Duration::from_secs(30))));
    thread::sleep(Duration::from_millis(100));
    q.append_output(id, &token, 1, Some("line\n"), None)
        .unwrap();
    let chunks = follow.join().unwrap().unwrap();
    assert_eq!(chunks.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nothing new: the wait ends empty at its end...
    let t = Instant::now();
    assert!(q
        .output_since(id, 1, Some(Duration::from_millis(200)))
        .unwrap()
        .is_empty());
    assert!(t.elapsed() >= Duration::from_millis(200));
    // ...or at once when the action finishes.
    let reader = q.clone();
    let follow = thread::spawn(move || reader.output_since(id, 1, Some(Duration::from_secs(30))));
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    q.report_result(id, &token, 0, None, None).unwrap();
    assert!(follow.join().unwrap().unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_secs(10));
}

fn who_may_cancel_running_and_read_output(env: Env) {
    let (id, token) = executing(&env);
    let q = &env.queue;
    let requester = Principal::new("rita", Role::Requester);
    let viewer = Principal::new("victor", Role::Viewer);
    let other_agent = Principal::agent("agent-2", "web-2");
    let agent = Principal::agent("agent-1", "web-1");
    assert_eq!(
        q.as_principal(&requester)
            .cancel_action(id)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        q.as_principal(&viewer)
            .cancel_action(id)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        q.as_principal(&other_agent)
            .append_output(id, &token, 1, Some("x"), None)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        q.as_principal(&agent)
            .output_since(id, 0, None)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    assert!(q
        .as_principal(&agent)
        .append_output(id, &token, 1, Some("x"), None)
        .unwrap());
    assert_eq!(
        q.as_principal(&viewer)
            .output_since(id, 0, None)
            .unwrap()
            .len(),
        1
    );
    let operator = Principal::new("olga", Role::Operator);
    let asked = q.as_principal(&operator).cancel_action(id).unwrap();
    assert_eq!(asked.cancel_requested_by.as_deref(), Some("olga"));
    let done = q
        .as_principal(&agent)
        .report_cancelled(id, &token, -15, None, None)
        .unwrap();
    assert_eq!(
        (done.status, done.cancelled_by.as_deref()),
        (ActionStatus::Cancelled, Some("olga"))
    );
}

for_each_store!(
    cancel_of_executing_is_a_request,
    cancelled_report_ends_cancelled_by_who_asked,
    cancel_racing_the_exit_has_one_outcome,
    lost_lease_with_a_pending_cancel_says_so,
    await_cancel_renews_and_wakes_on_a_request,
    output_chunks_are_fenced_ordered_and_deduplicated,
    kept_output_stays_within_the_cap,
    output_since_waits_for_a_chunk_or_the_end,
    who_may_cancel_running_and_read_output,
);
