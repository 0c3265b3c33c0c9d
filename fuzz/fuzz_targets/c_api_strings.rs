//! C API entry points that take strings, fed arbitrary bytes (invalid UTF-8
//! included) and NULLs: every call returns a status, never crashes, never lets
//! a panic through (AQ_STATUS_PANIC would mean one was caught at the boundary),
//! and every returned string is valid, NUL-terminated JSON freed with
//! aq_string_free. The error message buffer is read back each time.
#![no_main]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use actionq_fuzz_c::*;
use libfuzzer_sys::fuzz_target;

fn cstr(bytes: &[u8]) -> CString {
    CString::new(
        bytes
            .iter()
            .map(|&b| if b == 0 { 1 } else { b })
            .collect::<Vec<u8>>(),
    )
    .unwrap()
}

unsafe fn take_json(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    let text = unsafe { CStr::from_ptr(s) }
        .to_str()
        .expect("UTF-8 output")
        .to_owned();
    serde_json::from_str::<serde_json::Value>(&text).expect("JSON output");
    unsafe { aq_string_free(s) };
}

fn check(status: aq_status) {
    assert_ne!(status, aq_status::Panic, "a panic reached the boundary");
    let mut buf = [0 as c_char; 64];
    let mut len = 0usize;
    let s = unsafe { aq_last_error_message(buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_ne!(s, aq_status::Panic);
}

// Input: `null mask (1 byte), number (8 bytes LE), string \0 string \0 ...`;
// bit i of the mask passes NULL instead of string i (bit 7: no whitelist call).
fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let nulls = data[0];
    let number = i64::from_le_bytes(data[1..9].try_into().unwrap());
    let strings: Vec<Vec<u8>> = data[9..].split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    let arg = |i: usize| -> Option<CString> {
        if nulls & (1 << (i % 8)) != 0 {
            None
        } else {
            Some(cstr(strings.get(i).map(Vec::as_slice).unwrap_or(b"web-1")))
        }
    };
    let ptr_of = |c: &Option<CString>| c.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    unsafe {
        let mut options = ptr::null_mut();
        check(aq_options_new(&mut options));
        let wl = arg(7);
        if nulls & 0x80 == 0 {
            check(aq_options_set_whitelist(options, ptr_of(&wl)));
        }
        let mut queue = ptr::null_mut();
        check(aq_queue_open_in_memory(options, &mut queue));
        aq_options_free(options);
        if queue.is_null() {
            return;
        }
        let mut out: *mut c_char = ptr::null_mut();
        let (a0, a1, a2, a3, a4, a5) = (arg(0), arg(1), arg(2), arg(3), arg(4), arg(5));
        for (id, host) in [(&a0, &a1), (&Some(c"web-1".to_owned()), &None)] {
            check(aq_server_create(queue, ptr_of(id), ptr_of(host), &mut out));
            take_json(std::mem::replace(&mut out, ptr::null_mut()));
        }
        check(aq_server_pause(queue, ptr_of(&a0), &mut out));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        check(aq_server_get(queue, ptr_of(&a2), &mut out));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        // The create request: the raw fuzz string, and a well-formed request
        // carrying fuzz strings as values.
        let request = serde_json::json!({
            "server_id": String::from_utf8_lossy(strings.first().map(Vec::as_slice).unwrap_or(b"web-1")),
            "action_type": String::from_utf8_lossy(strings.get(3).map(Vec::as_slice).unwrap_or(b"restart_service")),
            "service_name": String::from_utf8_lossy(strings.get(4).map(Vec::as_slice).unwrap_or(b"nginx")),
        });
        let request = Some(cstr(request.to_string().as_bytes()));
        for req in [&a3, &request] {
            check(aq_action_create(queue, ptr_of(req), &mut out));
            if !out.is_null() {
                let text = CStr::from_ptr(out).to_str().unwrap().to_owned();
                let action: serde_json::Value = serde_json::from_str(&text).unwrap();
                for word in action["argv"].as_array().unwrap().iter().skip(2) {
                    actionq_fuzz_c::check_safe_value(word.as_str().unwrap());
                }
                aq_string_free(std::mem::replace(&mut out, ptr::null_mut()));
            }
        }
        check(aq_action_reject(
            queue,
            number,
            ptr_of(&a4),
            ptr_of(&a5),
            &mut out,
        ));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        check(aq_action_approve(queue, number, ptr_of(&a4), &mut out));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        check(aq_action_cancel(queue, number, ptr_of(&a5), &mut out));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        check(aq_action_heartbeat(
            queue,
            number,
            ptr_of(&a4),
            30,
            &mut out,
        ));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        check(aq_action_report_result(
            queue,
            number,
            ptr_of(&a4),
            (number & 0xff) as i32,
            ptr_of(&a1),
            ptr_of(&a2),
            &mut out,
        ));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        let mut list = ptr::null_mut();
        check(aq_server_list_actions(
            queue,
            ptr_of(&a0),
            ptr_of(&a5),
            10,
            0,
            &mut list,
        ));
        take_json(list);
        let mut list = ptr::null_mut();
        check(aq_action_list(
            queue,
            ptr_of(&a5),
            ptr_of(&a0),
            ptr_of(&a3),
            10,
            0,
            &mut list,
        ));
        take_json(list);
        let mut open_q = ptr::null_mut();
        // A path from fuzz bytes would create files: only NULL / invalid UTF-8 /
        // a directory that cannot exist are tried.
        let bad_path = Some(cstr(b"/nonexistent-actionq-fuzz/\xff/db"));
        for p in [&None, &bad_path] {
            check(aq_queue_open(ptr_of(p), ptr::null(), &mut open_q));
            if !open_q.is_null() {
                aq_queue_free(std::mem::replace(&mut open_q, ptr::null_mut()));
            }
        }
        aq_queue_free(queue);
    }
});
