//! Prune, export and keyset paging through the C API
//! (`docs/contract/retention.md`): the core's answers as JSON, errors as
//! statuses, the export handle read to its end and freed.

mod support;

use std::ptr::{null, null_mut};

use actionq_c::*;
use support::*;

#[test]
fn export_then_prune_then_keyset_pages() {
    let q = Queue::in_memory();
    create_server(&q, "web-1");
    let mut ids = Vec::new();
    for n in 0..3 {
        let a = create_action(
            &q,
            &format!(
                r#"{{"server_id":"web-1","action_type":"restart_service","service_name":"s{n}"}}"#
            ),
        )
        .unwrap();
        let id = a["id"].as_i64().unwrap();
        let mut out = null_mut();
        assert_eq!(
            unsafe { aq_action_cancel(q.0, host(), id, &mut out) },
            aq_status::Ok
        );
        take_json(out);
        ids.push(id);
    }
    let live = create_action(&q, r#"{"server_id":"web-1","action_type":"clear_logs"}"#).unwrap();

    // Keyset: the page after the live one, then the last page.
    let mut out = null_mut();
    let before = live["id"].as_i64().unwrap();
    let status =
        unsafe { aq_action_list(q.0, host(), null(), null(), null(), 2, 0, &before, &mut out) };
    assert_eq!(status, aq_status::Ok);
    let page = take_json(out);
    assert_eq!(page["actions"][0]["id"], ids[2]);
    assert_eq!(page["next_before_id"], ids[1]);
    let zero = 0i64;
    let status = unsafe {
        aq_server_list_actions(
            q.0,
            host(),
            c("web-1").as_ptr(),
            null(),
            2,
            0,
            &zero,
            &mut out,
        )
    };
    assert_eq!(status, aq_status::InvalidInput, "{}", last_message());

    // Export: one line per finished action, then NULL.
    let mut export = null_mut();
    let status =
        unsafe { aq_queue_export(q.0, host(), c("2100-01-01T00:00:00Z").as_ptr(), &mut export) };
    assert_eq!(status, aq_status::Ok);
    let mut exported = Vec::new();
    loop {
        let mut line = null_mut();
        assert_eq!(unsafe { aq_export_next(export, &mut line) }, aq_status::Ok);
        if line.is_null() {
            break;
        }
        let line = take_json(line);
        assert_eq!(line["events"].as_array().unwrap().len(), 2);
        exported.push(line["action"]["id"].as_i64().unwrap());
    }
    unsafe { aq_export_free(export) };
    assert_eq!(exported, ids);
    let status = unsafe { aq_queue_export(q.0, host(), c("not a time").as_ptr(), &mut export) };
    assert_eq!(status, aq_status::InvalidInput);

    // Prune: the three finished ones; the chain verifies from the checkpoint.
    let status = unsafe { aq_queue_prune(q.0, host(), 0, &mut out) };
    assert_eq!(status, aq_status::Ok);
    let report = take_json(out);
    assert_eq!(report["pruned_actions"], 3);
    assert_eq!(
        unsafe { aq_audit_verify(q.0, host(), &mut out) },
        aq_status::Ok
    );
    let audit = take_json(out);
    assert_eq!(audit["pruned_through"], report["pruned_through"]);
    assert!(audit["first_bad_event_id"].is_null());
    assert_eq!(
        unsafe { aq_queue_prune(q.0, host(), -1, &mut out) },
        aq_status::InvalidInput
    );
    let viewer = principal("v", "viewer", None);
    assert_eq!(
        unsafe { aq_queue_prune(q.0, viewer.ptr(), 0, &mut out) },
        aq_status::PermissionDenied
    );
}
