//! Identity through the C ABI: actors, authentication, credentials, and
//! every operation with a permission rule once allowed and once refused for
//! its `actor` argument (refusals are `AQ_STATUS_PERMISSION_DENIED`, write no
//! output and change nothing); a trusted name, recorded wherever the host
//! acts for it and refused on a principal; NULL refused as an actor.

mod support;

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use actionq_c::*;
use serde_json::{json, Value};
use support::*;

fn issue(q: &Queue, name: &str, role: &str, server: Option<&str>) -> Value {
    let mut out = null_mut();
    let server = server.map(c);
    let status = unsafe {
        aq_credential_issue(
            q.ptr(),
            host(),
            c(name).as_ptr(),
            c(role).as_ptr(),
            server.as_ref().map_or(null(), |s| s.as_ptr()),
            &mut out,
        )
    };
    assert_eq!(status, aq_status::Ok, "{}", last_message());
    take_json(out)
}

fn authenticate(q: &Queue, secret: &[u8]) -> Result<Actor, aq_status> {
    let mut bytes = secret.to_vec();
    bytes.push(0);
    let mut out = null_mut();
    let status = unsafe { aq_queue_authenticate(q.ptr(), bytes.as_ptr().cast(), &mut out) };
    if status == aq_status::Ok {
        Ok(Actor(out))
    } else {
        assert!(out.is_null());
        Err(status)
    }
}

fn actor_json(actor: *const aq_actor) -> Value {
    let mut out = null_mut();
    assert_eq!(unsafe { aq_actor_json(actor, &mut out) }, aq_status::Ok);
    take_json(out)
}

#[test]
fn credentials_issue_authenticate_list_revoke() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let issued = issue(&q, "web-1-agent", "agent", Some("web-1"));
    let secret = issued["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("aq_ag_"));
    let agent = authenticate(&q, secret.as_bytes()).unwrap();
    assert_eq!(
        actor_json(agent.ptr()),
        json!({"kind": "principal", "name": "web-1-agent", "role": "agent", "server_id": "web-1"})
    );
    let mut listed = null_mut();
    assert_eq!(
        unsafe { aq_credential_list(q.ptr(), host(), &mut listed) },
        aq_status::Ok
    );
    let listed = take_json(listed);
    assert_eq!(listed[0]["name"], "web-1-agent");
    assert!(!listed.to_string().contains(&secret[6..]));
    let mut revoked = null_mut();
    let id = issued["id"].as_i64().unwrap();
    assert_eq!(
        unsafe { aq_credential_revoke(q.ptr(), host(), id, &mut revoked) },
        aq_status::Ok
    );
    assert!(!take_json(revoked)["revoked_at"].is_null());
    assert_eq!(
        authenticate(&q, secret.as_bytes()).err(),
        Some(aq_status::Unauthenticated)
    );
    assert!(!last_message().contains(&secret[6..]));
    // malformed secrets: never INVALID_UTF8 (whose message describes the bytes)
    for bad in [&b""[..], b"\xff\xfe", b"aq_op_\xc3", b"nope", &[b'a'; 5000]] {
        assert_eq!(
            authenticate(&q, bad).err(),
            Some(aq_status::Unauthenticated)
        );
    }
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_queue_authenticate(q.ptr(), null(), &mut out) },
        aq_status::NullArgument
    );
    assert_eq!(
        unsafe { aq_actor_principal(c("x").as_ptr(), c("root").as_ptr(), null(), &mut out) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { CStr::from_ptr(aq_status_code(aq_status::Unauthenticated as u32)) }
            .to_str()
            .unwrap(),
        "UNAUTHENTICATED"
    );
    unsafe { aq_actor_free(null_mut()) };
}

/// What a permission case acts on: a queue with web-1 and web-2; on web-1 an
/// executing action (and its lease token), an approved one, and three pending
/// ones requested by "rita".
struct Fixture {
    q: Queue,
    pending: Vec<i64>,
    executing: i64,
    token: CString,
}

fn fixture() -> Fixture {
    let q = Queue::in_memory();
    for id in ["web-1", "web-2"] {
        create_server(&q, id);
    }
    create_action(
        &q,
        r#"{"server_id":"web-1","action_type":"restart_service","service_name":"nginx"}"#,
    )
    .unwrap();
    let mut claim = null_mut();
    let status =
        unsafe { aq_action_claim_next(q.ptr(), host(), c("web-1").as_ptr(), null(), &mut claim) };
    assert_eq!(status, aq_status::Ok);
    let claim = take_json(claim);
    create_action(
        &q,
        r#"{"server_id":"web-1","action_type":"restart_service","service_name":"cron"}"#,
    )
    .unwrap();
    let mut out = null_mut();
    let status = unsafe { aq_server_pause(q.ptr(), host(), c("web-1").as_ptr(), &mut out) };
    assert_eq!(status, aq_status::Ok);
    take_json(out);
    let pending = ["a", "b", "c"]
        .iter()
        .map(|s| {
            let request = format!(
                r#"{{"server_id":"web-1","action_type":"restart_service","service_name":"{s}","created_by":"rita"}}"#
            );
            create_action(&q, &request).unwrap()["id"].as_i64().unwrap()
        })
        .collect();
    issue(&q, "spare", "viewer", None);
    Fixture {
        q,
        pending,
        executing: claim["id"].as_i64().unwrap(),
        token: c(claim["lease_token"].as_str().unwrap()),
    }
}

/// Servers, actions, events and credentials, as JSON text.
fn state(q: &Queue) -> String {
    let mut parts = Vec::new();
    for id in ["web-1", "web-2", "web-9"] {
        let mut out = null_mut();
        if unsafe { aq_server_get(q.ptr(), host(), c(id).as_ptr(), &mut out) } == aq_status::Ok {
            parts.push(take_json(out));
        }
    }
    let mut out = null_mut();
    let status = unsafe {
        aq_action_list(
            q.ptr(),
            host(),
            null(),
            null(),
            null(),
            100,
            0,
            std::ptr::null(),
            &mut out,
        )
    };
    assert_eq!(status, aq_status::Ok);
    parts.push(take_json(out));
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_event_list(q.ptr(), host(), 0, 1000, &mut out) },
        aq_status::Ok
    );
    parts.push(take_json(out));
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_credential_list(q.ptr(), host(), &mut out) },
        aq_status::Ok
    );
    parts.push(take_json(out));
    serde_json::to_string(&parts).unwrap()
}

type Call = fn(&Fixture, *const aq_actor, *mut *mut c_char) -> aq_status;

/// One operation: a role allowed to call it, one refused,
/// and the field that records the caller, if any.
struct Case {
    name: &'static str,
    allowed: &'static str,
    refused: &'static str,
    records: Option<&'static str>,
    call: Call,
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        Case { name: "server_create", allowed: "operator", refused: "requester", records: None,
            call: |f, p, o| unsafe { aq_server_create(f.q.ptr(), p, c("web-9").as_ptr(), null(), o) } },
        Case { name: "server_get", allowed: "viewer", refused: "agent", records: None,
            call: |f, p, o| unsafe { aq_server_get(f.q.ptr(), p, c("web-1").as_ptr(), o) } },
        Case { name: "server_pause", allowed: "operator", refused: "viewer", records: None,
            call: |f, p, o| unsafe { aq_server_pause(f.q.ptr(), p, c("web-2").as_ptr(), o) } },
        Case { name: "server_unpause", allowed: "admin", refused: "requester", records: None,
            call: |f, p, o| unsafe { aq_server_unpause(f.q.ptr(), p, c("web-1").as_ptr(), o) } },
        Case { name: "server_list_actions", allowed: "requester", refused: "agent", records: None,
            call: |f, p, o| unsafe { aq_server_list_actions(f.q.ptr(), p, c("web-1").as_ptr(), null(), 10, 0, std::ptr::null(), o) } },
        Case { name: "action_create", allowed: "requester", refused: "viewer", records: Some("created_by"),
            call: |f, p, o| unsafe { aq_action_create(f.q.ptr(), p, c(r#"{"server_id":"web-1","action_type":"clear_logs","created_by":"mallory"}"#).as_ptr(), o) } },
        Case { name: "action_get", allowed: "viewer", refused: "agent", records: None,
            call: |f, p, o| unsafe { aq_action_get(f.q.ptr(), p, f.pending[0], o) } },
        Case { name: "action_list", allowed: "viewer", refused: "agent", records: None,
            call: |f, p, o| unsafe { aq_action_list(f.q.ptr(), p, null(), null(), null(), 10, 0, std::ptr::null(), o) } },
        Case { name: "action_approve", allowed: "operator", refused: "requester", records: Some("approved_by"),
            call: |f, p, o| unsafe { aq_action_approve(f.q.ptr(), p, f.pending[0], o) } },
        Case { name: "action_reject", allowed: "admin", refused: "viewer", records: Some("rejected_by"),
            call: |f, p, o| unsafe { aq_action_reject(f.q.ptr(), p, f.pending[1], c("no").as_ptr(), o) } },
        Case { name: "action_cancel", allowed: "requester", refused: "other-requester", records: Some("cancelled_by"),
            call: |f, p, o| unsafe { aq_action_cancel(f.q.ptr(), p, f.pending[2], o) } },
        Case { name: "action_claim_next", allowed: "agent", refused: "other-agent", records: None,
            call: |f, p, o| unsafe { aq_action_claim_next(f.q.ptr(), p, c("web-1").as_ptr(), null(), o) } },
        Case { name: "action_heartbeat", allowed: "agent", refused: "other-agent", records: None,
            call: |f, p, o| unsafe { aq_action_heartbeat(f.q.ptr(), p, f.executing, f.token.as_ptr(), null(), o) } },
        Case { name: "action_report_result", allowed: "agent", refused: "operator", records: None,
            call: |f, p, o| unsafe { aq_action_report_result(f.q.ptr(), p, f.executing, f.token.as_ptr(), 0, null(), null(), o) } },
        Case { name: "action_expire_leases", allowed: "operator", refused: "agent", records: None,
            call: |f, p, o| unsafe { aq_action_expire_leases(f.q.ptr(), p, o) } },
        Case { name: "server_list", allowed: "viewer", refused: "agent", records: None,
            call: |f, p, o| unsafe { aq_server_list(f.q.ptr(), p, o) } },
        Case { name: "action_count", allowed: "requester", refused: "agent", records: None,
            call: |f, p, o| unsafe { aq_action_count(f.q.ptr(), p, o) } },
        Case { name: "action_expire_approvals", allowed: "operator", refused: "viewer", records: None,
            call: |f, p, o| unsafe { aq_action_expire_approvals(f.q.ptr(), p, o) } },
        Case { name: "audit_verify", allowed: "admin", refused: "operator", records: None,
            call: |f, p, o| unsafe { aq_audit_verify(f.q.ptr(), p, o) } },
        Case { name: "event_list", allowed: "viewer", refused: "agent", records: None,
            call: |f, p, o| unsafe { aq_event_list(f.q.ptr(), p, 0, 10, o) } },
        Case { name: "credential_issue", allowed: "admin", refused: "operator", records: None,
            call: |f, p, o| unsafe { aq_credential_issue(f.q.ptr(), p, c("new").as_ptr(), c("viewer").as_ptr(), null(), o) } },
        Case { name: "credential_list", allowed: "admin", refused: "operator", records: None,
            call: |f, p, o| unsafe { aq_credential_list(f.q.ptr(), p, o) } },
        Case { name: "credential_revoke", allowed: "admin", refused: "viewer", records: None,
            call: |f, p, o| unsafe { aq_credential_revoke(f.q.ptr(), p, 1, o) } },
    ]
}

/// A failed `aq_queue_authenticate` writes no actor, so a host that ignores
/// its status passes on what its variable held before: NULL there is refused
/// by every operation (never the trusted host, who may issue an admin
/// credential), with no output and no change.
#[test]
fn a_failed_authenticate_leaves_null_which_every_operation_refuses() {
    let f = fixture();
    let mut actor: *mut aq_actor = null_mut();
    let status =
        unsafe { aq_queue_authenticate(f.q.ptr(), c("aq_ad_guessed").as_ptr(), &mut actor) };
    assert_eq!(status, aq_status::Unauthenticated);
    assert!(actor.is_null());
    let before = state(&f.q);
    let cases = cases();
    for case in &cases {
        let mut out = SENTINEL;
        let status = (case.call)(&f, actor, &mut out);
        assert_eq!(
            status,
            aq_status::NullArgument,
            "{}: {}",
            case.name,
            last_message()
        );
        assert!(last_message().contains("actor"), "{}", case.name);
        assert_eq!(out, SENTINEL, "{}: output written on a refusal", case.name);
    }
    let mut count = u64::MAX;
    let status = unsafe { aq_queue_lease_expiries(f.q.ptr(), actor, &mut count) };
    assert_eq!(status, aq_status::NullArgument);
    assert_eq!(count, u64::MAX);
    assert_eq!(state(&f.q), before, "a NULL actor changed something");
}

#[test]
fn actors_describe_themselves_and_trusted_names_are_checked() {
    assert_eq!(actor_json(host()), json!({"kind": "host"}));
    assert_eq!(
        actor_json(trusted("ops-bot").ptr()),
        json!({"kind": "trusted", "name": "ops-bot"})
    );
    assert_eq!(
        actor_json(principal("olga", "operator", None).ptr()),
        json!({"kind": "principal", "name": "olga", "role": "operator", "server_id": null})
    );
    for bad in ["", "tab\there", &"x".repeat(AQ_MAX_NAME_CHARS + 1)] {
        let mut out = null_mut();
        let status = unsafe { aq_actor_trusted(c(bad).as_ptr(), &mut out) };
        assert_eq!(status, aq_status::InvalidInput, "{bad:?}");
        assert!(out.is_null());
    }
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_actor_trusted(null(), &mut out) },
        aq_status::NullArgument
    );
    assert_eq!(
        unsafe { aq_actor_json(null(), &mut null_mut()) },
        aq_status::NullArgument
    );
}

/// The trusted host acting for a name records it on every operation that
/// records one, as Rust's `queue.by(name)` does.
#[test]
fn a_trusted_actor_is_recorded_everywhere() {
    let f = fixture();
    let ops = trusted("ops-bot");
    let mut out = null_mut();
    let status = unsafe { aq_server_pause(f.q.ptr(), ops.ptr(), c("web-2").as_ptr(), &mut out) };
    assert_eq!(status, aq_status::Ok, "{}", last_message());
    take_json(out);
    let mut events = null_mut();
    let status = unsafe { aq_event_list(f.q.ptr(), host(), 0, 1000, &mut events) };
    assert_eq!(status, aq_status::Ok);
    let events = take_json(events);
    let last = events.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["subject"], &last["by"]),
        (&json!("web-2"), &json!("ops-bot"))
    );
    for case in cases() {
        let Some(field) = case.records else { continue };
        let mut out = null_mut();
        let status = (case.call)(&f, ops.ptr(), &mut out);
        assert_eq!(status, aq_status::Ok, "{}: {}", case.name, last_message());
        assert_eq!(take_json(out)[field], "ops-bot", "{}", case.name);
    }
}

/// `aq_actor_by`: the trusted host (or a trusted actor) acting for a name;
/// on a principal, whose name is what is recorded, the core refuses it.
#[test]
fn a_trusted_name_is_for_the_trusted_host_only() {
    let by = |actor: *const aq_actor, name: &str| {
        let mut out = SENTINEL.cast::<aq_actor>();
        let status = unsafe { aq_actor_by(actor, c(name).as_ptr(), &mut out) };
        (status, out)
    };
    for actor in [host(), trusted("ops-bot").ptr()] {
        let (status, out) = by(actor, "alice");
        assert_eq!(status, aq_status::Ok, "{}", last_message());
        let alice = Actor(out);
        assert_eq!(
            actor_json(alice.ptr()),
            json!({"kind": "trusted", "name": "alice"})
        );
    }
    let (status, out) = by(principal("olga", "operator", None).ptr(), "somebody");
    assert_eq!(status, aq_status::InvalidInput);
    assert_eq!(
        last_message(),
        "a queue acting as principal 'olga' records that name; it cannot act for 'somebody'"
    );
    assert_eq!(out, SENTINEL.cast(), "output written on a refusal");
    let (status, _) = by(host(), "");
    assert_eq!(status, aq_status::InvalidInput);
    let (status, _) = by(null(), "alice");
    assert_eq!(status, aq_status::NullArgument);
}

#[test]
fn every_operation_checks_its_principal() {
    let principals = [
        ("admin", "ada", principal("ada", "admin", None)),
        ("operator", "olga", principal("olga", "operator", None)),
        ("requester", "rita", principal("rita", "requester", None)),
        (
            "other-requester",
            "ralf",
            principal("ralf", "requester", None),
        ),
        ("viewer", "victor", principal("victor", "viewer", None)),
        (
            "agent",
            "web-1-agent",
            principal("web-1-agent", "agent", Some("web-1")),
        ),
        (
            "other-agent",
            "web-2-agent",
            principal("web-2-agent", "agent", Some("web-2")),
        ),
    ];
    let by = |role: &str| {
        let (_, name, p) = principals.iter().find(|(r, _, _)| *r == role).unwrap();
        (*name, p.ptr())
    };
    let cases = cases();
    assert_eq!(cases.len(), 23);
    for case in cases {
        let f = fixture();
        let before = state(&f.q);
        let (refused_name, refused) = by(case.refused);
        let mut out = SENTINEL;
        let status = (case.call)(&f, refused, &mut out);
        let ctx = format!("{} as {}", case.name, case.refused);
        assert_eq!(
            status,
            aq_status::PermissionDenied,
            "{ctx}: {}",
            last_message()
        );
        assert_eq!(out, SENTINEL, "{ctx}: output written on a refusal");
        let message = last_message();
        assert!(
            message.contains(refused_name) || message.starts_with("Agent for server"),
            "{ctx}: {message}"
        );
        assert_eq!(state(&f.q), before, "{ctx}: a refusal changed something");
        let (allowed_name, allowed) = by(case.allowed);
        let mut out = null_mut();
        let status = (case.call)(&f, allowed, &mut out);
        let ctx = format!("{} as {}", case.name, case.allowed);
        assert_eq!(status, aq_status::Ok, "{ctx}: {}", last_message());
        assert!(!out.is_null(), "{ctx}");
        let value = take_json(out);
        if let Some(field) = case.records {
            assert_eq!(value[field], allowed_name, "{ctx}");
        }
    }
}
