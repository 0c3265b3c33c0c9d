//! The C ABI end to end: a whole action's life, reject and cancel, a lost
//! lease and the handle's count of them, the version, and one handle shared
//! by many threads, as returned JSON.

mod support;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use actionq_c::*;
use support::*;

#[test]
fn whole_flow_returns_wire_json() {
    let q = Queue::in_memory();
    let server = create_server(&q, "web-1");
    assert_eq!(server["id"], "web-1");
    assert_eq!(server["is_paused"], false);
    assert!(server["hostname"].is_null());

    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_server_pause(q.0, host(), c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    let paused = take_json(out);
    assert_eq!(paused["is_paused"], true);
    assert!(paused["paused_at"].as_str().unwrap().ends_with('Z'));

    let action = create_action(
        &q,
        r#"{"server_id":"web-1","action_type":"restart_service","service_name":"nginx","alert_id":7}"#,
    )
    .unwrap();
    assert_eq!(action["status"], "pending");
    assert_eq!(action["command"], "systemctl restart nginx.service");
    assert_eq!(
        action["argv"],
        serde_json::json!(["systemctl", "restart", "nginx.service"])
    );
    assert_eq!(action["created_by"], "dashboard");
    assert_eq!(action["alert_id"], 7);
    assert!(
        action.as_object().unwrap().contains_key("stdout"),
        "nulls included"
    );
    let id = action["id"].as_i64().unwrap();

    assert_eq!(
        unsafe { aq_action_approve(q.0, host(), id, &mut out) },
        aq_status::Ok
    );
    assert_eq!(take_json(out)["approved_by"], "dashboard");

    let mut claim = null_mut();
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, host(), c("web-1").as_ptr(), &60.0, &mut claim) },
        aq_status::Ok
    );
    let claim = take_json(claim);
    assert_eq!(claim["status"], "executing");
    let token = c(claim["lease_token"].as_str().unwrap());

    assert_eq!(
        unsafe { aq_action_heartbeat(q.0, host(), id, token.as_ptr(), null(), &mut out) },
        aq_status::Ok
    );
    assert!(
        take_json(out).get("lease_token").is_none(),
        "token only in the claim"
    );

    let status = unsafe {
        aq_action_report_result(
            q.0,
            host(),
            id,
            token.as_ptr(),
            0,
            c("done").as_ptr(),
            null(),
            &mut out,
        )
    };
    assert_eq!(status, aq_status::Ok);
    let done = take_json(out);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["stdout"], "done");

    // Nothing left to claim: OK with a NULL result.
    let mut none = SENTINEL;
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, host(), c("web-1").as_ptr(), null(), &mut none) },
        aq_status::Ok
    );
    assert!(none.is_null());

    assert_eq!(
        unsafe {
            aq_action_list(
                q.0,
                host(),
                c("completed").as_ptr(),
                null(),
                null(),
                10,
                0,
                null(),
                &mut out,
            )
        },
        aq_status::Ok
    );
    let page = take_json(out);
    assert_eq!(page["total"], 1);
    assert_eq!(page["limit"], 10);
    assert_eq!(page["actions"][0]["id"], id);

    assert_eq!(
        unsafe {
            aq_server_list_actions(
                q.0,
                host(),
                c("web-1").as_ptr(),
                null(),
                50,
                0,
                std::ptr::null(),
                &mut out,
            )
        },
        aq_status::Ok
    );
    assert_eq!(take_json(out)["total"], 1);

    assert_eq!(
        unsafe { aq_event_list(q.0, host(), 0, 100, &mut out) },
        aq_status::Ok
    );
    let events = take_json(out);
    let events = events.as_array().unwrap();
    // Pausing the server is an event of its own, with no action fields.
    assert_eq!(events[0]["kind"], "server");
    assert_eq!(events[0]["subject"], "web-1");
    assert!(events[0]["action_id"].is_null() && events[0]["to_status"].is_null());
    let path: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "action")
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["pending", "approved", "executing", "completed"]);

    assert_eq!(
        unsafe { aq_action_expire_leases(q.0, host(), &mut out) },
        aq_status::Ok
    );
    assert_eq!(take_json(out), serde_json::json!([]));
}

#[test]
fn reject_and_cancel() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_server_pause(q.0, host(), c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    unsafe { aq_string_free(out) };
    let a = create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();
    let b = create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let alice = trusted("alice");
    assert_eq!(
        unsafe { aq_action_reject(q.0, alice.ptr(), a, c("").as_ptr(), &mut out) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { aq_action_reject(q.0, alice.ptr(), a, c("not now").as_ptr(), &mut out) },
        aq_status::Ok
    );
    let rejected = take_json(out);
    assert_eq!(rejected["rejected_by"], "alice");
    assert_eq!(rejected["rejection_reason"], "not now");
    assert_eq!(
        unsafe { aq_action_approve(q.0, host(), a, &mut out) },
        aq_status::Conflict
    );
    assert_eq!(
        last_message(),
        "Cannot approve action with status 'rejected' (must be pending)"
    );
    assert_eq!(
        unsafe { aq_action_cancel(q.0, host(), b, &mut out) },
        aq_status::Ok
    );
    let cancelled = take_json(out);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancelled_by"], "dashboard");
    assert_eq!(
        unsafe { aq_server_unpause(q.0, host(), c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    assert!(take_json(out)["paused_at"].is_null());
}

/// A lease that runs out fails its action once, and the handle counts it,
/// whoever asks (the count is open to every role).
#[test]
fn a_lost_lease_is_counted_by_the_handle() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();
    let count = |actor: *const aq_actor| {
        let mut count = u64::MAX;
        let status = unsafe { aq_queue_lease_expiries(q.ptr(), actor, &mut count) };
        assert_eq!(status, aq_status::Ok, "{}", last_message());
        count
    };
    assert_eq!(count(host()), 0);
    let mut claim = null_mut();
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, host(), c("web-1").as_ptr(), &0.001, &mut claim) },
        aq_status::Ok
    );
    take_json(claim);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_action_expire_leases(q.0, host(), &mut out) },
        aq_status::Ok
    );
    assert_eq!(take_json(out).as_array().unwrap().len(), 1);
    assert_eq!(count(host()), 1);
    assert_eq!(count(principal("victor", "viewer", None).ptr()), 1);
}

#[test]
fn version_macros_match_the_linked_library() {
    let version = unsafe { CStr::from_ptr(aq_version()) }.to_str().unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        format!("{AQ_VERSION_MAJOR}.{AQ_VERSION_MINOR}.{AQ_VERSION_PATCH}"),
        version
    );
}

#[test]
fn one_handle_shared_by_eight_threads_loses_nothing() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..PER_THREAD {
                    create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#)
                        .unwrap();
                }
            });
        }
    });
    let claimed: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut ids = Vec::new();
                    loop {
                        let mut out = null_mut();
                        let status = unsafe {
                            aq_action_claim_next(
                                q.ptr(),
                                host(),
                                c("web-1").as_ptr(),
                                null(),
                                &mut out,
                            )
                        };
                        assert_eq!(status, aq_status::Ok);
                        if out.is_null() {
                            return ids;
                        }
                        ids.push(take_json(out)["id"].as_i64().unwrap());
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claimed.into_iter().flatten().collect();
    all.sort_unstable();
    let expected: Vec<i64> = (1..=(THREADS * PER_THREAD) as i64).collect();
    assert_eq!(all, expected, "every action claimed exactly once");
}
