//! C API entry points that take strings, fed arbitrary bytes (invalid UTF-8
//! included) and NULLs, as the trusted host, as a trusted name and as
//! principals made of them, and with no actor (always NULL_ARGUMENT):
//! every call returns a status, never crashes, never lets a panic through
//! (AQ_STATUS_PANIC would mean one was caught at the boundary), and every
//! returned string is valid, NUL-terminated JSON freed with aq_string_free. The error message buffer is read back each time. In every
//! action created, the argv words that came from parameters, and only those,
//! must be safe values (see `check_parameter_words`).
#![no_main]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use actionq::whitelist::WhitelistEntry;
use actionq::{NewAction, Whitelist};
use actionq_c::*;
use actionq_fuzz::check_safe_value;
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

/// Builds `entry`'s template with every parameter set to `value(name)`, through
/// a whitelist holding only a copy of that template whose parameters accept
/// just the two sentinels "a" and "b" (so the real validators play no part).
fn sentinel_argv(entry: &WhitelistEntry, value: impl Fn(&str) -> &'static str) -> Vec<String> {
    let params: serde_json::Map<String, serde_json::Value> = entry
        .params()
        .keys()
        .map(|name| {
            let spec = serde_json::json!({ "kind": "one_of", "values": ["a", "b"] });
            (name.clone(), spec)
        })
        .collect();
    let config = serde_json::json!({ "actions": { entry.name(): {
        "command": entry.command_template(),
        "params": params,
    } } });
    let copy = Whitelist::from_json(&config.to_string()).expect("the template parses again");
    let values = entry
        .params()
        .keys()
        .map(|name| (name.clone(), value(name).to_owned()))
        .collect();
    copy.build(entry.name(), &values)
        .expect("sentinels are accepted")
        .argv
}

/// Checks exactly the argv words of a created action that came from
/// parameters, and no literal word of the template: a word is
/// parameter-derived when building the template with every parameter "a" and
/// with every parameter "b" (same length, every character different) gives two
/// different words; the parameters inside it are those whose change alone
/// changes it. A word that is one parameter's value and nothing else ("a" in
/// the first build) must itself be a safe value; in a word mixing template
/// text and values (`--days={n}`), each value in it must be.
fn check_parameter_words(whitelist: &Whitelist, request: &str, action: &serde_json::Value) {
    let argv: Vec<&str> = action["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let action_type = action["action_type"].as_str().unwrap();
    let entry = whitelist.get(action_type).expect("created from an entry");
    let request = NewAction::from_json(request).expect("an accepted request parses");
    // The values the queue used, as the action records them: given or the
    // parameter's default, normalised (a bare unit name gains `.service`).
    let value = |name: &str| -> &str {
        action["params"][name]
            .as_str()
            .expect("the action records every parameter's value")
    };
    let rebuilt = whitelist.build(action_type, &request.params).unwrap();
    assert_eq!(
        argv, rebuilt.argv,
        "argv is the entry built from the request"
    );
    let all_a = sentinel_argv(entry, |_| "a");
    let all_b = sentinel_argv(entry, |_| "b");
    let one_b: Vec<(&String, Vec<String>)> = entry
        .params()
        .keys()
        .map(|p| {
            (
                p,
                sentinel_argv(entry, |n| if n == p.as_str() { "b" } else { "a" }),
            )
        })
        .collect();
    assert_eq!(argv.len(), all_a.len());
    for (i, word) in argv.iter().enumerate() {
        if all_a[i] == all_b[i] {
            // Template text only: the same in every build, never checked.
            assert_eq!(*word, all_a[i], "literal word {i} of {action_type}");
            continue;
        }
        let inside: Vec<&String> = one_b
            .iter()
            .filter(|(_, b)| b[i] != all_a[i])
            .map(|(p, _)| *p)
            .collect();
        assert!(!inside.is_empty(), "word {i} changes with some parameter");
        if all_a[i] == "a" && all_b[i] == "b" {
            assert_eq!(inside.len(), 1);
            assert_eq!(*word, value(inside[0]), "word {i} is the value itself");
            check_safe_value(word);
        } else {
            for p in inside {
                check_safe_value(value(p));
            }
        }
    }
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
        let mut host = ptr::null_mut();
        check(aq_actor_host(&mut host));
        // The trusted host acting for a name of fuzz bytes, when they make one.
        let mut named = ptr::null_mut();
        check(aq_actor_trusted(ptr_of(&a5), &mut named));
        let trusted: Vec<*const aq_actor> = [host, named]
            .into_iter()
            .filter(|a| !a.is_null())
            .map(<*mut aq_actor>::cast_const)
            .collect();
        for (id, hostname) in [(&a0, &a1), (&Some(c"web-1".to_owned()), &None)] {
            check(aq_server_create(
                queue,
                host,
                ptr_of(id),
                ptr_of(hostname),
                &mut out,
            ));
            take_json(std::mem::replace(&mut out, ptr::null_mut()));
        }
        check(aq_server_pause(queue, named, ptr_of(&a0), &mut out));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        check(aq_server_get(queue, host, ptr_of(&a2), &mut out));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        // The create request: the raw fuzz string, and a well-formed request
        // carrying fuzz strings as values.
        let request = serde_json::json!({
            "server_id": String::from_utf8_lossy(strings.first().map(Vec::as_slice).unwrap_or(b"web-1")),
            "action_type": String::from_utf8_lossy(strings.get(3).map(Vec::as_slice).unwrap_or(b"restart_service")),
            "service_name": String::from_utf8_lossy(strings.get(4).map(Vec::as_slice).unwrap_or(b"nginx")),
        });
        let request = Some(cstr(request.to_string().as_bytes()));
        let mut wl_out: *mut c_char = ptr::null_mut();
        check(aq_queue_whitelist_json(queue, &mut wl_out));
        let whitelist = Whitelist::from_json(CStr::from_ptr(wl_out).to_str().unwrap())
            .expect("the queue's whitelist reloads");
        aq_string_free(wl_out);
        for req in [&a3, &request] {
            check(aq_action_create(queue, host, ptr_of(req), &mut out));
            if !out.is_null() {
                let text = CStr::from_ptr(out).to_str().unwrap().to_owned();
                let action: serde_json::Value = serde_json::from_str(&text).unwrap();
                let request = req.as_ref().unwrap().to_str().unwrap();
                check_parameter_words(&whitelist, request, &action);
                aq_string_free(std::mem::replace(&mut out, ptr::null_mut()));
            }
        }
        for &actor in &trusted {
            check(aq_action_reject(
                queue,
                actor,
                number,
                ptr_of(&a4),
                &mut out,
            ));
            take_json(std::mem::replace(&mut out, ptr::null_mut()));
            check(aq_action_approve(queue, actor, number, &mut out));
            take_json(std::mem::replace(&mut out, ptr::null_mut()));
            check(aq_action_cancel(queue, actor, number, &mut out));
            take_json(std::mem::replace(&mut out, ptr::null_mut()));
        }
        // No actor: refused before anything else, whatever the arguments.
        let status = aq_action_approve(queue, ptr::null(), number, &mut out);
        assert_eq!(status, aq_status::NullArgument);
        assert!(out.is_null());
        // The same as a principal named by fuzz bytes (when they make one);
        // a trusted name on it is refused.
        for role in [c"operator", c"requester", c"agent"] {
            let mut principal = ptr::null_mut();
            check(aq_actor_principal(
                ptr_of(&a0),
                role.as_ptr(),
                ptr_of(&a2),
                &mut principal,
            ));
            if principal.is_null() {
                continue;
            }
            let mut refused = ptr::null_mut();
            check(aq_actor_by(principal, ptr_of(&a4), &mut refused));
            assert!(refused.is_null(), "a trusted name on a principal");
            check(aq_action_approve(queue, principal, number, &mut out));
            take_json(std::mem::replace(&mut out, ptr::null_mut()));
            check(aq_action_cancel(queue, principal, number, &mut out));
            take_json(std::mem::replace(&mut out, ptr::null_mut()));
            check(aq_action_claim_next(
                queue,
                principal,
                ptr_of(&a2),
                ptr::null(),
                &mut out,
            ));
            take_json(std::mem::replace(&mut out, ptr::null_mut()));
            aq_actor_free(principal);
        }
        check(aq_action_heartbeat(
            queue,
            host,
            number,
            ptr_of(&a4),
            &30.0,
            &mut out,
        ));
        take_json(std::mem::replace(&mut out, ptr::null_mut()));
        check(aq_action_report_result(
            queue,
            host,
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
            host,
            ptr_of(&a0),
            ptr_of(&a5),
            10,
            0,
            ptr::null(),
            &mut list,
        ));
        take_json(list);
        let mut list = ptr::null_mut();
        check(aq_action_list(
            queue,
            host,
            ptr_of(&a5),
            ptr_of(&a0),
            ptr_of(&a3),
            10,
            0,
            ptr::null(),
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
        aq_actor_free(named);
        aq_actor_free(host);
        aq_queue_free(queue);
    }
});
