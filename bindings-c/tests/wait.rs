//! The waiting forms of the C ABI (`docs/contract/push.md`):
//! `aq_action_claim_next_wait` and `aq_event_list_wait` woken by another
//! thread on the same handle, ending empty at their wait, answering at once
//! for 0, refusing a wait out of range.

mod support;

use std::ptr::null_mut;
use std::time::{Duration, Instant};

use actionq_c::*;
use support::*;

const LONG: f64 = 30.0;

#[test]
fn a_claim_wait_is_woken_by_an_approval_on_another_thread() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_server_pause(q.ptr(), host(), c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    take_json(out);
    let action = create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();
    let id = action["id"].as_i64().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut claim = null_mut();
            let start = Instant::now();
            let status = unsafe {
                aq_action_claim_next_wait(
                    q.ptr(),
                    host(),
                    c("web-1").as_ptr(),
                    std::ptr::null(),
                    LONG,
                    &mut claim,
                )
            };
            assert_eq!(status, aq_status::Ok);
            assert!(!claim.is_null(), "woken with a claim");
            (take_json(claim), start.elapsed())
        });
        // The waiter is asleep (or about to be: it re-checks after any change).
        std::thread::sleep(Duration::from_millis(200));
        let mut out = null_mut();
        assert_eq!(
            unsafe { aq_action_approve(q.ptr(), host(), id, &mut out) },
            aq_status::Ok
        );
        take_json(out);
        let (claim, waited) = waiter.join().unwrap();
        assert_eq!(claim["id"], id);
        assert!(claim["lease_token"].is_string());
        assert!(waited < Duration::from_secs_f64(LONG));
    });
}

#[test]
fn an_events_wait_is_woken_by_the_next_event() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut events = null_mut();
            let status = unsafe { aq_event_list_wait(q.ptr(), host(), 0, 10, LONG, &mut events) };
            assert_eq!(status, aq_status::Ok);
            take_json(events)
        });
        std::thread::sleep(Duration::from_millis(200));
        let mut out = null_mut();
        assert_eq!(
            unsafe { aq_server_pause(q.ptr(), host(), c("web-1").as_ptr(), &mut out) },
            aq_status::Ok
        );
        take_json(out);
        let events = waiter.join().unwrap();
        assert_eq!(events.as_array().unwrap().len(), 1);
        assert_eq!(events[0]["kind"], "server");
    });
}

#[test]
fn a_wait_times_out_empty_and_zero_answers_at_once() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let start = Instant::now();
    let mut claim = null_mut();
    let status = unsafe {
        aq_action_claim_next_wait(
            q.ptr(),
            host(),
            c("web-1").as_ptr(),
            std::ptr::null(),
            0.2,
            &mut claim,
        )
    };
    assert_eq!(status, aq_status::Ok);
    assert!(claim.is_null(), "nothing claimed: NULL");
    assert!(start.elapsed() >= Duration::from_millis(200));
    let mut events = null_mut();
    let status = unsafe { aq_event_list_wait(q.ptr(), host(), 5, 10, 0.2, &mut events) };
    assert_eq!(status, aq_status::Ok);
    assert_eq!(take_json(events), serde_json::json!([]));
    let mut claim = null_mut();
    let status = unsafe {
        aq_action_claim_next_wait(
            q.ptr(),
            host(),
            c("web-1").as_ptr(),
            std::ptr::null(),
            0.0,
            &mut claim,
        )
    };
    assert_eq!(status, aq_status::Ok);
    assert!(claim.is_null());
}

#[test]
fn a_wait_out_of_range_is_invalid_input() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    for bad in [-1.0, 60.5, f64::NAN, f64::INFINITY] {
        let mut claim = null_mut();
        let status = unsafe {
            aq_action_claim_next_wait(
                q.ptr(),
                host(),
                c("web-1").as_ptr(),
                std::ptr::null(),
                bad,
                &mut claim,
            )
        };
        assert_eq!(status, aq_status::InvalidInput, "{bad}");
        assert!(last_message().contains("wait must be between 0 and 60 seconds"));
        let mut events = null_mut();
        let status = unsafe { aq_event_list_wait(q.ptr(), host(), 0, 10, bad, &mut events) };
        assert_eq!(status, aq_status::InvalidInput, "{bad}");
    }
    // NULL actor, as every operation.
    let mut events = null_mut();
    let status = unsafe { aq_event_list_wait(q.ptr(), std::ptr::null(), 0, 10, 1.0, &mut events) };
    assert_eq!(status, aq_status::NullArgument);
}
