//! Failures at the C boundary: one status per core error kind, NULL and
//! invalid UTF-8 arguments refused without effect, a panic turned into a
//! status, and the thread's last error message.

mod support;

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use actionq_c::*;
use support::*;

#[test]
fn every_core_kind_has_its_own_status() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let cases = [
        (
            r#"{"server_id":"web-1","action_type":"restart_service"}"#,
            aq_status::InvalidInput,
        ),
        (r#"not json"#, aq_status::InvalidInput),
        (
            r#"{"server_id":"web-1","action_type":"clear_logs","bogus":1}"#,
            aq_status::InvalidInput,
        ),
        (
            r#"{"server_id":"nope","action_type":"clear_logs"}"#,
            aq_status::NotFound,
        ),
        (
            r#"{"server_id":"web-1","action_type":"rm_rf"}"#,
            aq_status::NotWhitelisted,
        ),
        (
            r#"{"server_id":"web-1","action_type":"restart_service","service_name":"-x"}"#,
            aq_status::NotWhitelisted,
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(
            create_action(&q, request).unwrap_err(),
            expected,
            "{request}"
        );
        assert!(!last_message().is_empty());
    }
    let first = create_action(&q, r#"{"server_id":"web-1","action_type":"apt_update"}"#).unwrap();
    assert_eq!(
        create_action(
            &q,
            r#"{"server_id":"web-1","action_type":"apt_upgrade_all"}"#
        )
        .unwrap_err(),
        aq_status::Conflict
    );
    assert_eq!(
        last_message(),
        "An APT action is already pending/in-progress for server 'web-1'"
    );
    let mut existing = 0;
    assert_eq!(
        unsafe { aq_last_error_existing_action_id(&mut existing) },
        aq_status::Ok
    );
    assert_eq!(existing, first["id"].as_i64().unwrap());

    // A success clears the last error.
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_action_get(q.0, host(), existing, &mut out) },
        aq_status::Ok
    );
    unsafe { aq_string_free(out) };
    assert_eq!(last_message(), "");
    assert_eq!(
        unsafe { aq_last_error_existing_action_id(&mut existing) },
        aq_status::Ok
    );
    assert_eq!(existing, 0);

    let mut out = SENTINEL;
    assert_eq!(
        unsafe { aq_action_get(q.0, host(), 999, &mut out) },
        aq_status::NotFound
    );
    assert_eq!(out, SENTINEL);
    assert_eq!(last_message(), "Action 999 not found");

    // Storage: a directory is no database file.
    let dir = tempfile::tempdir().unwrap();
    let path = c(dir.path().to_str().unwrap());
    let mut handle = null_mut();
    assert_eq!(
        unsafe { aq_queue_open(path.as_ptr(), null(), &mut handle) },
        aq_status::Storage
    );
    assert!(handle.is_null());
}

/// The header's numbering: the core's first five error kinds, in their order,
/// are the statuses from 1, each with the kind's stable code; then the C-only
/// ones (6-8); kinds added later were appended after them (9, 10), never
/// renumbering anything.
#[test]
fn mapping_covers_every_core_kind_distinctly() {
    let name = |n: u32| {
        unsafe { CStr::from_ptr(aq_status_code(n)) }
            .to_str()
            .unwrap()
    };
    let kinds: Vec<(u32, &str)> = [1, 2, 3, 4, 5, 9, 10]
        .into_iter()
        .zip(actionq::ErrorKind::ALL)
        .map(|(n, k)| (n, k.code()))
        .collect();
    let statuses: Vec<(u32, &str)> = [
        aq_status::InvalidInput,
        aq_status::NotFound,
        aq_status::NotWhitelisted,
        aq_status::Conflict,
        aq_status::Storage,
        aq_status::Unauthenticated,
        aq_status::PermissionDenied,
    ]
    .into_iter()
    .map(|s| (s as u32, name(s as u32)))
    .collect();
    assert_eq!(statuses, kinds);
    assert_eq!(name(0), "OK");
    assert_eq!(name(6), "NULL_ARGUMENT");
    assert_eq!(name(7), "INVALID_UTF8");
    assert_eq!(name(8), "PANIC");
    assert_eq!(name(11), "UNKNOWN");
    assert_eq!(name(u32::MAX), "UNKNOWN");
}

#[test]
fn null_arguments_are_refused_without_effect() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let web = c("web-1");
    let mut out = SENTINEL;
    macro_rules! refused {
        ($call:expr, $arg:literal) => {
            assert_eq!(unsafe { $call }, aq_status::NullArgument, $arg);
            assert_eq!(
                last_message(),
                format!("argument '{}' must not be NULL", $arg)
            );
        };
    }
    refused!(
        aq_server_create(null(), host(), web.as_ptr(), null(), &mut out),
        "queue"
    );
    refused!(
        aq_server_create(q.0, host(), null(), null(), &mut out),
        "id"
    );
    refused!(
        aq_server_create(q.0, null(), web.as_ptr(), null(), &mut out),
        "actor"
    );
    refused!(aq_credential_list(q.0, null(), &mut out), "actor");
    refused!(
        aq_server_get(q.0, host(), web.as_ptr(), null_mut()),
        "server_json_out"
    );
    refused!(aq_server_pause(q.0, host(), null(), &mut out), "id");
    refused!(
        aq_server_unpause(null(), host(), web.as_ptr(), &mut out),
        "queue"
    );
    refused!(
        aq_server_list_actions(
            q.0,
            host(),
            null(),
            null(),
            50,
            0,
            std::ptr::null(),
            &mut out
        ),
        "server_id"
    );
    refused!(
        aq_action_create(q.0, host(), null(), &mut out),
        "request_json"
    );
    refused!(aq_action_get(null(), host(), 1, &mut out), "queue");
    refused!(
        aq_action_list(
            q.0,
            host(),
            null(),
            null(),
            null(),
            50,
            0,
            std::ptr::null(),
            null_mut()
        ),
        "page_json_out"
    );
    refused!(
        aq_action_approve(q.0, host(), 1, null_mut()),
        "action_json_out"
    );
    refused!(aq_action_reject(q.0, host(), 1, null(), &mut out), "reason");
    refused!(aq_action_cancel(null(), host(), 1, &mut out), "queue");
    refused!(
        aq_action_claim_next(q.0, host(), null(), null(), &mut out),
        "server_id"
    );
    refused!(
        aq_action_heartbeat(q.0, host(), 1, null(), null(), &mut out),
        "lease_token"
    );
    refused!(
        aq_action_report_result(q.0, host(), 1, null(), 0, null(), null(), &mut out),
        "lease_token"
    );
    refused!(
        aq_action_expire_leases(q.0, host(), null_mut()),
        "actions_json_out"
    );
    refused!(aq_event_list(null(), host(), 0, 10, &mut out), "queue");
    let mut count = 7u64;
    refused!(aq_queue_lease_expiries(null(), host(), &mut count), "queue");
    refused!(
        aq_queue_lease_expiries(q.0, host(), null_mut()),
        "count_out"
    );
    assert_eq!(count, 7);
    refused!(aq_queue_open(null(), null(), null_mut()), "path");
    refused!(aq_queue_open_in_memory(null(), null_mut()), "queue_out");
    refused!(aq_queue_whitelist_json(null(), &mut out), "queue");
    refused!(aq_whitelist_default_json(null_mut()), "json_out");
    refused!(aq_options_new(null_mut()), "options_out");
    refused!(
        aq_options_set_whitelist(null_mut(), web.as_ptr()),
        "options"
    );
    refused!(aq_options_set_durability(null_mut(), 0), "options");
    refused!(aq_options_set_output_cap(null_mut(), 1), "options");
    refused!(aq_options_set_leases(null_mut(), 1.0, 2.0), "options");
    refused!(
        aq_options_set_busy_timeout_seconds(null_mut(), 1.0),
        "options"
    );
    refused!(
        aq_options_set_expire_leases_on_read(null_mut(), false),
        "options"
    );
    assert_eq!(out, SENTINEL);
    // A NULL output checked before the work: the server was not paused.
    assert_eq!(
        unsafe { aq_server_pause(q.0, host(), web.as_ptr(), null_mut()) },
        aq_status::NullArgument
    );
    let mut s = null_mut();
    assert_eq!(
        unsafe { aq_server_get(q.0, host(), web.as_ptr(), &mut s) },
        aq_status::Ok
    );
    assert_eq!(take_json(s)["is_paused"], false);

    assert_eq!(
        unsafe { aq_last_error_existing_action_id(null_mut()) },
        aq_status::NullArgument
    );
    assert_eq!(
        unsafe { aq_last_error_message(null_mut(), 8, null_mut()) },
        aq_status::NullArgument
    );
    // Frees of NULL are no-ops.
    unsafe {
        aq_string_free(null_mut());
        aq_queue_free(null_mut());
        aq_options_free(null_mut());
    }
}

#[test]
fn invalid_utf8_is_refused() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let bad = CString::new(vec![b'w', 0xff, b'x']).unwrap();
    let mut out = SENTINEL;
    macro_rules! refused {
        ($call:expr, $arg:literal) => {
            assert_eq!(unsafe { $call }, aq_status::InvalidUtf8, $arg);
            assert!(last_message().starts_with(&format!("argument '{}' is not valid UTF-8", $arg)));
        };
    }
    refused!(
        aq_server_create(q.0, host(), bad.as_ptr(), null(), &mut out),
        "id"
    );
    refused!(
        aq_server_create(q.0, host(), c("ok").as_ptr(), bad.as_ptr(), &mut out),
        "hostname"
    );
    refused!(aq_server_get(q.0, host(), bad.as_ptr(), &mut out), "id");
    refused!(
        aq_action_create(q.0, host(), bad.as_ptr(), &mut out),
        "request_json"
    );
    refused!(
        aq_action_list(
            q.0,
            host(),
            bad.as_ptr(),
            null(),
            null(),
            5,
            0,
            std::ptr::null(),
            &mut out
        ),
        "status"
    );
    refused!(
        aq_actor_trusted(bad.as_ptr(), &mut (out as *mut aq_actor)),
        "name"
    );
    refused!(
        aq_action_report_result(
            q.0,
            host(),
            1,
            c("t").as_ptr(),
            0,
            bad.as_ptr(),
            null(),
            &mut out
        ),
        "stdout_text"
    );
    refused!(
        aq_queue_open(bad.as_ptr(), null(), &mut (out as *mut aq_queue)),
        "path"
    );
    assert_eq!(out, SENTINEL);
}

#[test]
fn a_panic_becomes_a_status_never_an_unwind() {
    assert_eq!(aq_test_panic(), aq_status::Panic);
    assert_eq!(
        last_message(),
        "internal error (panic) in actionq: aq_test_panic was called"
    );
    // The thread keeps working afterwards.
    let q = Queue::in_memory();
    create_server(&q, "after-panic");
    assert_eq!(last_message(), "");
}

#[test]
fn last_error_copy_truncates_on_a_character_boundary() {
    let q = Queue::in_memory();
    let mut out = null_mut();
    // "é" is two bytes; the message quotes the id.
    let status = unsafe { aq_server_get(q.0, host(), c("é-host").as_ptr(), &mut out) };
    assert_eq!(status, aq_status::NotFound);
    let full = "Server 'é-host' not found";
    let mut len = 0usize;
    assert_eq!(
        unsafe { aq_last_error_message(null_mut(), 0, &mut len) },
        aq_status::Ok
    );
    assert_eq!(len, full.len());
    // Room for "Server '" plus one byte of "é": the half character is dropped.
    let mut buf = [0x55 as c_char; 10];
    assert_eq!(
        unsafe { aq_last_error_message(buf.as_mut_ptr(), 10, &mut len) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes(),
        b"Server '"
    );
    assert_eq!(len, full.len());
    assert_eq!(last_message(), full, "reading does not clear it");
}
