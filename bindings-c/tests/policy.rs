//! The approval policy and the audit chain through the C ABI: a whitelist
//! config's `approval` object applies, actions carry `approvals`, `digest`
//! and `whitelist_version`, an agent checks a claim with
//! `aq_action_digest_matches`, `aq_audit_verify` reports the chain,
//! `aq_action_expire_approvals` rejects what outlived its ttl, and
//! `aq_server_list`/`aq_action_count` read the servers and totals.

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
        unsafe { aq_action_approve(q.0, trusted(by).ptr(), id, &mut out) },
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
        unsafe { aq_server_pause(q.0, host(), c("web-1").as_ptr(), &mut out) },
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
        unsafe { aq_action_claim_next(q.0, host(), c("web-1").as_ptr(), &60.0, &mut claim) },
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
    assert_eq!(
        unsafe { aq_audit_verify(q.0, host(), &mut report) },
        aq_status::Ok
    );
    assert_eq!(
        take_json(report),
        // the pause, the creation, two approvals, the claim
        serde_json::json!({"checked": 5, "first_bad_event_id": null, "pruned_through": null})
    );
    let mut expired = null_mut();
    assert_eq!(
        unsafe { aq_action_expire_approvals(q.0, host(), &mut expired) },
        aq_status::Ok
    );
    assert_eq!(
        take_json(expired),
        serde_json::json!([]),
        "no entry has a ttl"
    );
}

/// `ttl_seconds`: with the sweep before reads off and a manual clock, only
/// the action past its ttl is expired, by the trusted host and by a principal.
#[test]
fn expire_approvals_rejects_exactly_the_action_past_its_ttl() {
    const TTL: &str = r#"{"actions": {"short_lived": {"command": "journalctl --vacuum-time=1d",
      "approval": {"ttl_seconds": 60}}}}"#;
    let mut clock = null_mut();
    assert_eq!(
        unsafe { aq_clock_new_manual(1_700_000_000_000_000, &mut clock) },
        aq_status::Ok
    );
    let mut options = null_mut();
    assert_eq!(unsafe { aq_options_new(&mut options) }, aq_status::Ok);
    for status in [
        unsafe { aq_options_set_whitelist(options, c(TTL).as_ptr()) },
        unsafe { aq_options_set_expire_leases_on_read(options, false) },
        unsafe { aq_options_set_clock(options, clock) },
    ] {
        assert_eq!(status, aq_status::Ok, "{}", last_message());
    }
    let mut handle = null_mut();
    assert_eq!(
        unsafe { aq_queue_open_in_memory(options, &mut handle) },
        aq_status::Ok
    );
    unsafe { aq_options_free(options) };
    let q = Queue(handle);
    create_server(&q, "web-1");
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_server_pause(q.0, host(), c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    take_json(out);
    let request = r#"{"server_id":"web-1","action_type":"short_lived"}"#;
    let create = || create_action(&q, request).unwrap()["id"].as_i64().unwrap();
    let advance =
        |seconds: f64| assert_eq!(unsafe { aq_clock_advance(clock, seconds) }, aq_status::Ok);
    let first = create();
    advance(30.0);
    let second = create();
    advance(31.0);
    // Reads do not sweep: the first is still pending, 61 s after its creation.
    let mut got = null_mut();
    assert_eq!(
        unsafe { aq_action_get(q.0, host(), first, &mut got) },
        aq_status::Ok
    );
    assert_eq!(take_json(got)["status"], "pending");

    let mut expired = null_mut();
    assert_eq!(
        unsafe { aq_action_expire_approvals(q.0, host(), &mut expired) },
        aq_status::Ok
    );
    let expired = take_json(expired);
    let ids: Vec<i64> = expired
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [first], "{expired}");
    assert_eq!(expired[0]["status"], "rejected");
    assert_eq!(expired[0]["rejected_by"], "system");

    // The second runs out 60 s after its creation; an operator sweeps it.
    advance(30.0);
    let operator = principal("olga", "operator", None);
    let mut expired = null_mut();
    let status = unsafe { aq_action_expire_approvals(q.0, operator.ptr(), &mut expired) };
    assert_eq!(status, aq_status::Ok, "{}", last_message());
    let expired = take_json(expired);
    assert_eq!(expired.as_array().unwrap().len(), 1, "{expired}");
    assert_eq!(expired[0]["id"], second);
    unsafe { aq_clock_free(clock) };
}

/// `aq_server_list` and `aq_action_count`: the store's servers and totals.
#[test]
fn server_list_and_action_counts() {
    let q = Queue::in_memory();
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_server_list(q.0, host(), &mut out) },
        aq_status::Ok
    );
    assert_eq!(take_json(out), serde_json::json!([]));
    assert_eq!(
        unsafe { aq_action_count(q.0, host(), &mut out) },
        aq_status::Ok
    );
    assert_eq!(take_json(out), serde_json::json!([]));
    for id in ["web-2", "web-1"] {
        create_server(&q, id);
    }
    for service in ["a.service", "b.service"] {
        create_action(
            &q,
            &format!(
                r#"{{"server_id":"web-2","action_type":"restart_service","service_name":"{service}"}}"#
            ),
        )
        .unwrap();
    }
    assert_eq!(
        unsafe { aq_server_pause(q.0, host(), c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    take_json(out);
    create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();

    assert_eq!(
        unsafe { aq_server_list(q.0, host(), &mut out) },
        aq_status::Ok
    );
    let servers = take_json(out);
    let ids: Vec<&str> = servers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["web-1", "web-2"]);
    assert_eq!(servers[0]["is_paused"], true);
    assert_eq!(
        unsafe { aq_action_count(q.0, host(), &mut out) },
        aq_status::Ok
    );
    assert_eq!(
        take_json(out),
        serde_json::json!([
            {"server_id": "web-1", "status": "pending", "count": 1},
            {"server_id": "web-2", "status": "approved", "count": 2},
        ])
    );
    let mut sentinel = SENTINEL;
    assert_eq!(
        unsafe { aq_action_count(null(), host(), &mut sentinel) },
        aq_status::NullArgument
    );
    assert_eq!(
        unsafe { aq_server_list(q.0, host(), null_mut()) },
        aq_status::NullArgument
    );
    assert_eq!(sentinel, SENTINEL);
}
