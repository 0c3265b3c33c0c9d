//! The approval policy and the audit chain through the C ABI: a whitelist
//! config's `approval` object applies, actions carry `approvals`, `digest`
//! and `whitelist_version`, an agent checks a claim with
//! `aq_action_digest_matches`, and `aq_audit_verify` reports the chain.

mod support;

use std::ffi::c_int;
use std::ptr::{null, null_mut};

use actionq_c::*;
use support::*;

const WHITELIST: &str = r#"{"actions": {"two_keys": {"command": "systemctl restart {service_name}",
  "params": {"service_name": {"kind": "systemd_unit"}}, "approval": {"required": 2}}}}"#;

fn queue_with_whitelist(config: &str) -> Queue {
    let mut options = null_mut();
    assert_eq!(unsafe { aq_options_new(&mut options) }, aq_status::Ok);
    assert_eq!(
        unsafe { aq_options_set_whitelist(options, c(config).as_ptr()) },
        aq_status::Ok,
        "{}",
        last_message()
    );
    let mut q = null_mut();
    assert_eq!(
        unsafe { aq_queue_open_in_memory(options, &mut q) },
        aq_status::Ok
    );
    unsafe { aq_options_free(options) };
    Queue(q)
}

fn approve(q: &Queue, id: i64, by: &str) -> serde_json::Value {
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_action_approve(q.0, id, c(by).as_ptr(), &mut out) },
        aq_status::Ok,
        "{}",
        last_message()
    );
    take_json(out)
}

fn digest_matches(json: &str) -> Result<bool, aq_status> {
    let mut matches: c_int = -1;
    match unsafe { aq_action_digest_matches(c(json).as_ptr(), &mut matches) } {
        aq_status::Ok => Ok(matches == 1),
        status => Err(status),
    }
}

#[test]
fn two_approvals_a_checked_claim_and_an_intact_chain() {
    let q = queue_with_whitelist(WHITELIST);
    create_server(&q, "web-1");
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_server_pause(q.0, c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    take_json(out);
    let action = create_action(
        &q,
        r#"{"server_id":"web-1","action_type":"two_keys","service_name":"nginx"}"#,
    )
    .unwrap();
    let id = action["id"].as_i64().unwrap();
    assert_eq!(action["digest"].as_str().unwrap().len(), 64);
    assert_eq!(action["approvals"], serde_json::json!([]));
    let first = approve(&q, id, "alice");
    assert_eq!(first["status"], "pending");
    assert_eq!(first["approvals"][0]["by"], "alice");
    assert_eq!(first["approvals"][0]["digest"], action["digest"]);
    assert_eq!(approve(&q, id, "alice"), first, "a repeat counts once");
    assert_eq!(approve(&q, id, "bob")["status"], "approved");

    let mut claim = null_mut();
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, c("web-1").as_ptr(), &60.0, &mut claim) },
        aq_status::Ok
    );
    let claim = take_json(claim);
    assert_eq!(claim["digest"], action["digest"]);
    assert_eq!(digest_matches(&claim.to_string()), Ok(true));
    let mut tampered = claim.clone();
    tampered["argv"][2] = "sshd".into();
    assert_eq!(digest_matches(&tampered.to_string()), Ok(false));
    assert_eq!(digest_matches("{\"id\": 1}"), Err(aq_status::InvalidInput));
    let mut sentinel: c_int = 7;
    assert_eq!(
        unsafe { aq_action_digest_matches(null(), &mut sentinel) },
        aq_status::NullArgument
    );
    assert_eq!(sentinel, 7);

    let mut report = null_mut();
    assert_eq!(unsafe { aq_audit_verify(q.0, &mut report) }, aq_status::Ok);
    assert_eq!(
        take_json(report),
        serde_json::json!({"checked": 4, "first_bad_event_id": null})
    );
    let mut expired = null_mut();
    assert_eq!(
        unsafe { aq_action_expire_approvals(q.0, &mut expired) },
        aq_status::Ok
    );
    assert_eq!(take_json(expired), serde_json::json!([]));
}
