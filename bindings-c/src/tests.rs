//! Tests of the C ABI from Rust: the extern fns called as a C host would,
//! with NULL, invalid UTF-8 and panicking paths.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use serde_json::Value;

use crate::*;

/// A pointer value no function may write over a failure.
const SENTINEL: *mut c_char = std::ptr::dangling_mut::<c_char>();

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn last_message() -> String {
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    let status = unsafe { aq_last_error_message(buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_eq!(status, aq_status::Ok);
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(text.len(), len);
    text
}

/// Takes ownership of a returned string and parses it.
fn take_json(ptr: *mut c_char) -> Value {
    assert!(!ptr.is_null());
    let value = serde_json::from_str(unsafe { CStr::from_ptr(ptr) }.to_str().unwrap()).unwrap();
    unsafe { aq_string_free(ptr) };
    value
}

struct Queue(*mut aq_queue);

impl Queue {
    fn in_memory() -> Queue {
        let mut q = null_mut();
        assert_eq!(
            unsafe { aq_queue_open_in_memory(null(), &mut q) },
            aq_status::Ok
        );
        Queue(q)
    }

    /// The handle (a method, so closures capture the `Sync` wrapper, not the raw field).
    fn ptr(&self) -> *const aq_queue {
        self.0
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        unsafe { aq_queue_free(self.0) };
    }
}

// SAFETY: aq_queue is Send + Sync (checked in queue.rs).
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}

fn create_server(q: &Queue, id: &str) -> Value {
    let mut out = null_mut();
    let status = unsafe { aq_server_create(q.0, c(id).as_ptr(), null(), &mut out) };
    assert_eq!(status, aq_status::Ok, "{}", last_message());
    take_json(out)
}

fn create_action(q: &Queue, request: &str) -> Result<Value, aq_status> {
    let mut out = SENTINEL;
    let status = unsafe { aq_action_create(q.ptr(), c(request).as_ptr(), &mut out) };
    if status == aq_status::Ok {
        Ok(take_json(out))
    } else {
        assert_eq!(out, SENTINEL, "output written on failure");
        Err(status)
    }
}

#[test]
fn whole_flow_returns_wire_json() {
    let q = Queue::in_memory();
    let server = create_server(&q, "web-1");
    assert_eq!(server["id"], "web-1");
    assert_eq!(server["is_paused"], false);
    assert!(server["hostname"].is_null());

    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_server_pause(q.0, c("web-1").as_ptr(), &mut out) },
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
    assert_eq!(action["command"], "systemctl restart nginx");
    assert_eq!(
        action["argv"],
        serde_json::json!(["systemctl", "restart", "nginx"])
    );
    assert_eq!(action["created_by"], "dashboard");
    assert_eq!(action["alert_id"], 7);
    assert!(
        action.as_object().unwrap().contains_key("stdout"),
        "nulls included"
    );
    let id = action["id"].as_i64().unwrap();

    assert_eq!(
        unsafe { aq_action_approve(q.0, id, null(), &mut out) },
        aq_status::Ok
    );
    assert_eq!(take_json(out)["approved_by"], "dashboard");

    let mut claim = null_mut();
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, c("web-1").as_ptr(), &60.0, &mut claim) },
        aq_status::Ok
    );
    let claim = take_json(claim);
    assert_eq!(claim["status"], "executing");
    let token = c(claim["lease_token"].as_str().unwrap());

    assert_eq!(
        unsafe { aq_action_heartbeat(q.0, id, token.as_ptr(), null(), &mut out) },
        aq_status::Ok
    );
    assert!(
        take_json(out).get("lease_token").is_none(),
        "token only in the claim"
    );

    let status = unsafe {
        aq_action_report_result(
            q.0,
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
        unsafe { aq_action_claim_next(q.0, c("web-1").as_ptr(), null(), &mut none) },
        aq_status::Ok
    );
    assert!(none.is_null());

    assert_eq!(
        unsafe {
            aq_action_list(
                q.0,
                c("completed").as_ptr(),
                null(),
                null(),
                10,
                0,
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
        unsafe { aq_server_list_actions(q.0, c("web-1").as_ptr(), null(), 50, 0, &mut out) },
        aq_status::Ok
    );
    assert_eq!(take_json(out)["total"], 1);

    assert_eq!(
        unsafe { aq_event_list(q.0, 0, 100, &mut out) },
        aq_status::Ok
    );
    let events = take_json(out);
    let path: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["pending", "approved", "executing", "completed"]);

    assert_eq!(
        unsafe { aq_action_expire_leases(q.0, &mut out) },
        aq_status::Ok
    );
    assert_eq!(take_json(out), serde_json::json!([]));
}

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
        unsafe { aq_action_get(q.0, existing, &mut out) },
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
        unsafe { aq_action_get(q.0, 999, &mut out) },
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

#[test]
fn mapping_covers_every_core_kind_distinctly() {
    let statuses: Vec<aq_status> = actionq_core::ErrorKind::ALL
        .into_iter()
        .map(aq_status::from_kind)
        .collect();
    assert_eq!(
        statuses,
        [
            aq_status::InvalidInput,
            aq_status::NotFound,
            aq_status::NotWhitelisted,
            aq_status::Conflict,
            aq_status::Storage
        ]
    );
    for kind in actionq_core::ErrorKind::ALL {
        let code = unsafe { CStr::from_ptr(aq_status_code(aq_status::from_kind(kind) as u32)) };
        assert_eq!(code.to_str().unwrap(), kind.code());
    }
    let name = |n: u32| {
        unsafe { CStr::from_ptr(aq_status_code(n)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(name(0), "OK");
    assert_eq!(name(6), "NULL_ARGUMENT");
    assert_eq!(name(7), "INVALID_UTF8");
    assert_eq!(name(8), "PANIC");
    assert_eq!(name(9), "UNKNOWN");
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
        aq_server_create(null(), web.as_ptr(), null(), &mut out),
        "queue"
    );
    refused!(aq_server_create(q.0, null(), null(), &mut out), "id");
    refused!(
        aq_server_get(q.0, web.as_ptr(), null_mut()),
        "server_json_out"
    );
    refused!(aq_server_pause(q.0, null(), &mut out), "id");
    refused!(aq_server_unpause(null(), web.as_ptr(), &mut out), "queue");
    refused!(
        aq_server_list_actions(q.0, null(), null(), 50, 0, &mut out),
        "server_id"
    );
    refused!(aq_action_create(q.0, null(), &mut out), "request_json");
    refused!(aq_action_get(null(), 1, &mut out), "queue");
    refused!(
        aq_action_list(q.0, null(), null(), null(), 50, 0, null_mut()),
        "page_json_out"
    );
    refused!(
        aq_action_approve(q.0, 1, null(), null_mut()),
        "action_json_out"
    );
    refused!(aq_action_reject(q.0, 1, null(), null(), &mut out), "reason");
    refused!(aq_action_cancel(null(), 1, null(), &mut out), "queue");
    refused!(
        aq_action_claim_next(q.0, null(), null(), &mut out),
        "server_id"
    );
    refused!(
        aq_action_heartbeat(q.0, 1, null(), null(), &mut out),
        "lease_token"
    );
    refused!(
        aq_action_report_result(q.0, 1, null(), 0, null(), null(), &mut out),
        "lease_token"
    );
    refused!(aq_action_expire_leases(q.0, null_mut()), "actions_json_out");
    refused!(aq_event_list(null(), 0, 10, &mut out), "queue");
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
        unsafe { aq_server_pause(q.0, web.as_ptr(), null_mut()) },
        aq_status::NullArgument
    );
    let mut s = null_mut();
    assert_eq!(
        unsafe { aq_server_get(q.0, web.as_ptr(), &mut s) },
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
    refused!(aq_server_create(q.0, bad.as_ptr(), null(), &mut out), "id");
    refused!(
        aq_server_create(q.0, c("ok").as_ptr(), bad.as_ptr(), &mut out),
        "hostname"
    );
    refused!(aq_server_get(q.0, bad.as_ptr(), &mut out), "id");
    refused!(
        aq_action_create(q.0, bad.as_ptr(), &mut out),
        "request_json"
    );
    refused!(
        aq_action_list(q.0, bad.as_ptr(), null(), null(), 5, 0, &mut out),
        "status"
    );
    refused!(aq_action_approve(q.0, 1, bad.as_ptr(), &mut out), "by");
    refused!(
        aq_action_report_result(q.0, 1, c("t").as_ptr(), 0, bad.as_ptr(), null(), &mut out),
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
    let status = unsafe { aq_server_get(q.0, c("é-host").as_ptr(), &mut out) };
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

#[test]
fn options_apply_and_are_validated() {
    let mut options = null_mut();
    assert_eq!(unsafe { aq_options_new(&mut options) }, aq_status::Ok);
    assert_eq!(
        unsafe { aq_options_set_whitelist(options, c("{\"actions\":{}}").as_ptr()) },
        aq_status::InvalidInput
    );
    let config = r#"{"actions":{"install_package":{
        "command":"apt-get install -y {package}",
        "params":{"package":{"kind":"debian_package"}}}}}"#;
    assert_eq!(
        unsafe { aq_options_set_whitelist(options, c(config).as_ptr()) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_durability(options, 2) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { aq_options_set_durability(options, aq_durability::Full as u32) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_output_cap(options, 3) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_leases(options, 30.0, 60.0) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_busy_timeout_seconds(options, 2.0) },
        aq_status::Ok
    );

    let dir = tempfile::tempdir().unwrap();
    let path = c(dir.path().join("q.sqlite3").to_str().unwrap());
    let mut handle = null_mut();
    assert_eq!(
        unsafe { aq_queue_open(path.as_ptr(), options, &mut handle) },
        aq_status::Ok
    );
    unsafe { aq_options_free(options) };
    let q = Queue(handle);
    create_server(&q, "db-1");
    assert_eq!(
        create_action(
            &q,
            r#"{"server_id":"db-1","action_type":"restart_service","service_name":"x"}"#
        )
        .unwrap_err(),
        aq_status::NotWhitelisted
    );
    let action = create_action(
        &q,
        r#"{"server_id":"db-1","action_type":"install_package","params":{"package":"htop"}}"#,
    )
    .unwrap();
    assert_eq!(
        action["argv"],
        serde_json::json!(["apt-get", "install", "-y", "htop"])
    );
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_queue_whitelist_json(q.0, &mut out) },
        aq_status::Ok
    );
    assert!(take_json(out)["actions"]["install_package"].is_object());

    // Lease bounds and output cap from the options.
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, c("db-1").as_ptr(), &61.0, &mut out) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, c("db-1").as_ptr(), null(), &mut out) },
        aq_status::Ok
    );
    let claim = take_json(out);
    // The default lease (30 s, not the built-in 300 s) sets the deadline.
    let at = |field: &str| -> actionq_core::Timestamp {
        serde_json::from_value(claim[field].clone()).unwrap()
    };
    assert_eq!(
        (at("lease_expires_at") - at("executed_at")).num_milliseconds(),
        30_000,
        "{claim}"
    );
    let token = c(claim["lease_token"].as_str().unwrap());
    let id = claim["id"].as_i64().unwrap();
    assert_eq!(
        unsafe { aq_action_heartbeat(q.0, id, c("wrong").as_ptr(), null(), &mut out) },
        aq_status::Conflict
    );
    let status = unsafe {
        aq_action_report_result(
            q.0,
            id,
            token.as_ptr(),
            2,
            c("abcdef").as_ptr(),
            c("e").as_ptr(),
            &mut out,
        )
    };
    assert_eq!(status, aq_status::Ok);
    let failed = take_json(out);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["stdout"], "abc");
    assert_eq!(failed["exit_code"], 2);

    assert_eq!(
        unsafe { aq_whitelist_default_json(&mut out) },
        aq_status::Ok
    );
    assert!(take_json(out)["actions"]["apt_upgrade_all"].is_object());
}

#[test]
fn reject_and_cancel() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_server_pause(q.0, c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    unsafe { aq_string_free(out) };
    let a = create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();
    let b = create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    assert_eq!(
        unsafe { aq_action_reject(q.0, a, c("").as_ptr(), c("alice").as_ptr(), &mut out) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { aq_action_reject(q.0, a, c("not now").as_ptr(), c("alice").as_ptr(), &mut out) },
        aq_status::Ok
    );
    let rejected = take_json(out);
    assert_eq!(rejected["rejected_by"], "alice");
    assert_eq!(rejected["rejection_reason"], "not now");
    assert_eq!(
        unsafe { aq_action_approve(q.0, a, null(), &mut out) },
        aq_status::Conflict
    );
    assert_eq!(
        last_message(),
        "Cannot approve action with status 'rejected' (must be pending)"
    );
    assert_eq!(
        unsafe { aq_action_cancel(q.0, b, null(), &mut out) },
        aq_status::Ok
    );
    let cancelled = take_json(out);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancelled_by"], "dashboard");
    assert_eq!(
        unsafe { aq_server_unpause(q.0, c("web-1").as_ptr(), &mut out) },
        aq_status::Ok
    );
    assert!(take_json(out)["paused_at"].is_null());
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
                            aq_action_claim_next(q.ptr(), c("web-1").as_ptr(), null(), &mut out)
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

/// Opens a queue on `path` with a durability and a busy timeout set through
/// the C setters.
fn open_file_queue(path: &std::path::Path, durability: aq_durability, busy_seconds: f64) -> Queue {
    let mut options = null_mut();
    assert_eq!(unsafe { aq_options_new(&mut options) }, aq_status::Ok);
    assert_eq!(
        unsafe { aq_options_set_durability(options, durability as u32) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_busy_timeout_seconds(options, busy_seconds) },
        aq_status::Ok
    );
    let mut handle = null_mut();
    let status = unsafe { aq_queue_open(c(path.to_str().unwrap()).as_ptr(), options, &mut handle) };
    unsafe { aq_options_free(options) };
    assert_eq!(status, aq_status::Ok, "{}", last_message());
    Queue(handle)
}

const DURABILITY_CHILD_ENV: &str = "ACTIONQ_C_DURABILITY_CHILD";
const DURABILITY_WRITES: usize = 40;

/// The child of `durability_set_through_the_c_api_reaches_sqlite`: opens the
/// file with the given durability and commits `DURABILITY_WRITES` actions.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn durability_child_entry() {
    let Ok(spec) = std::env::var(DURABILITY_CHILD_ENV) else {
        return;
    };
    let (mode, path) = spec.split_once(':').unwrap();
    let durability = match mode {
        "full" => aq_durability::Full,
        _ => aq_durability::Normal,
    };
    let q = open_file_queue(std::path::Path::new(path), durability, 10.0);
    for i in 0..DURABILITY_WRITES {
        create_action(
            &q,
            &format!(
                r#"{{"server_id":"web-1","action_type":"restart_service","service_name":"s{i}"}}"#
            ),
        )
        .unwrap();
    }
}

/// fsync + fdatasync calls of a child (this test binary) committing
/// `DURABILITY_WRITES` writes with `mode`, counted by strace.
fn syncs_during_writes(mode: &str, dir: &std::path::Path) -> usize {
    let db = dir.join(format!("{mode}.sqlite3"));
    create_server(&open_file_queue(&db, aq_durability::Normal, 10.0), "web-1");
    let trace = dir.join(format!("{mode}.strace"));
    let run = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "--ignored",
            "tests::durability_child_entry",
            "--test-threads=1",
        ])
        .env(DURABILITY_CHILD_ENV, format!("{mode}:{}", db.display()))
        .output()
        .expect("strace runs (make test-rust installs it)");
    assert!(
        run.status.success(),
        "strace run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let q = open_file_queue(&db, aq_durability::Normal, 10.0);
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_action_list(q.0, null(), null(), null(), 1, 0, &mut out) },
        aq_status::Ok
    );
    assert_eq!(
        take_json(out)["total"],
        DURABILITY_WRITES,
        "the child committed its writes"
    );
    std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .count()
}

/// `aq_options_set_durability(AQ_DURABILITY_FULL)` reaches SQLite: each
/// commit is synced to disk, which the default does not do. Observed from
/// outside the process (PRAGMA synchronous is per connection), as in
/// core/tests/durability.rs.
#[test]
fn durability_set_through_the_c_api_reaches_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let normal = syncs_during_writes("normal", dir.path());
    let full = syncs_during_writes("full", dir.path());
    eprintln!("syncs for {DURABILITY_WRITES} commits: normal {normal}, full {full}");
    assert!(
        full >= normal + DURABILITY_WRITES,
        "durability=full syncs each commit: normal {normal}, full {full}"
    );
    assert!(
        normal < DURABILITY_WRITES,
        "the default does not sync per commit: normal {normal}"
    );
}

/// A connection of the SQLite library linked into this test binary (the one
/// the queue uses), independent of any queue.
#[allow(non_camel_case_types)]
enum sqlite3 {}

extern "C" {
    fn sqlite3_open(filename: *const c_char, db: *mut *mut sqlite3) -> std::ffi::c_int;
    fn sqlite3_exec(
        db: *mut sqlite3,
        sql: *const c_char,
        callback: *const std::ffi::c_void,
        arg: *mut std::ffi::c_void,
        errmsg: *mut *mut c_char,
    ) -> std::ffi::c_int;
    fn sqlite3_close(db: *mut sqlite3) -> std::ffi::c_int;
}

struct RawConnection(*mut sqlite3);

impl RawConnection {
    fn open(path: &std::path::Path) -> RawConnection {
        let mut db = null_mut();
        assert_eq!(
            unsafe { sqlite3_open(c(path.to_str().unwrap()).as_ptr(), &mut db) },
            0
        );
        RawConnection(db)
    }

    fn exec(&self, sql: &str) {
        let rc = unsafe { sqlite3_exec(self.0, c(sql).as_ptr(), null(), null_mut(), null_mut()) };
        assert_eq!(rc, 0, "{sql}");
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        unsafe { sqlite3_close(self.0) };
    }
}

/// `aq_options_set_busy_timeout_seconds` bounds how long a write waits for another
/// connection's write lock: a short timeout gives up (STORAGE) while the lock
/// is still held, a long one waits and succeeds once the lock is released.
#[test]
fn busy_timeout_set_through_the_c_api_bounds_the_wait() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.sqlite3");
    let fast = open_file_queue(&db, aq_durability::Normal, 0.05);
    let patient = open_file_queue(&db, aq_durability::Normal, 600.0);
    create_server(&fast, "web-1");
    let request = r#"{"server_id":"web-1","action_type":"clear_logs"}"#;
    let holder = RawConnection::open(&db);

    // 50 ms: the write fails although the lock is held for at most 5 s (the
    // default timeout, 10 s, would outlast the hold and succeed).
    holder.exec("BEGIN IMMEDIATE");
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let result = create_action(&fast, request).map(|_| ());
            let message = last_message();
            done_tx.send((result, message)).unwrap();
        });
        let outcome = done_rx.recv_timeout(Duration::from_secs(5));
        holder.exec("COMMIT");
        let (result, message) = outcome.expect("the 50 ms write gave up while the lock was held");
        assert_eq!(result, Err(aq_status::Storage));
        assert!(message.contains("database is busy"), "{message}");
    });

    // 600 s: the write waits for the lock and succeeds after its release.
    holder.exec("BEGIN IMMEDIATE");
    let released = AtomicBool::new(false);
    let (started_tx, started_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            started_tx.send(()).unwrap();
            let result = create_action(&patient, request).map(|a| a["id"].clone());
            (result, released.load(Ordering::SeqCst), last_message())
        });
        started_rx.recv().unwrap();
        // Time for the writer to reach the lock; the outcome does not depend on it.
        std::thread::sleep(Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        holder.exec("COMMIT");
        let (result, released_first, message) = writer.join().unwrap();
        assert_eq!(result, Ok(serde_json::json!(1)), "{message}");
        assert!(
            released_first,
            "the write returned only after the lock was released"
        );
    });
    assert_eq!(
        create_action(&fast, request).map(|a| a["id"].clone()),
        Ok(serde_json::json!(2)),
        "the fast queue writes once the lock is free"
    );
}
