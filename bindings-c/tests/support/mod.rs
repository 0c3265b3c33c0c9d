//! Helpers shared by the tests of the C ABI, which call the extern fns from
//! Rust as a C host would (each test file uses a part of them).
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use actionq_c::*;
use serde_json::Value;

/// A pointer value no function may write over a failure.
pub const SENTINEL: *mut c_char = std::ptr::dangling_mut::<c_char>();

pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

pub fn last_message() -> String {
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
pub fn take_json(ptr: *mut c_char) -> Value {
    assert!(!ptr.is_null());
    let value = serde_json::from_str(unsafe { CStr::from_ptr(ptr) }.to_str().unwrap()).unwrap();
    unsafe { aq_string_free(ptr) };
    value
}

pub struct Queue(pub *mut aq_queue);

impl Queue {
    pub fn in_memory() -> Queue {
        let mut q = null_mut();
        assert_eq!(
            unsafe { aq_queue_open_in_memory(null(), &mut q) },
            aq_status::Ok
        );
        Queue(q)
    }

    /// The handle (a method, so closures capture the `Sync` wrapper, not the raw field).
    pub fn ptr(&self) -> *const aq_queue {
        self.0
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        unsafe { aq_queue_free(self.0) };
    }
}

// SAFETY: aq_queue is Send + Sync (checked in bindings-c/src/queue.rs).
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}

/// An actor handle, freed when dropped.
pub struct Actor(pub *mut aq_actor);

impl Actor {
    /// The handle (a method, so closures capture the `Sync` wrapper, not the raw field).
    pub fn ptr(&self) -> *const aq_actor {
        self.0
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        unsafe { aq_actor_free(self.0) };
    }
}

// SAFETY: an aq_actor is immutable, usable from any thread.
unsafe impl Send for Actor {}
unsafe impl Sync for Actor {}

/// The trusted host, one handle for the whole test binary.
pub fn host() -> *const aq_actor {
    static HOST: std::sync::OnceLock<Actor> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let mut out = null_mut();
        assert_eq!(unsafe { aq_actor_host(&mut out) }, aq_status::Ok);
        Actor(out)
    })
    .ptr()
}

/// The trusted host acting for `name`.
pub fn trusted(name: &str) -> Actor {
    let mut out = null_mut();
    let status = unsafe { aq_actor_trusted(c(name).as_ptr(), &mut out) };
    assert_eq!(status, aq_status::Ok, "{}", last_message());
    Actor(out)
}

/// A principal vouched for by the host.
pub fn principal(name: &str, role: &str, server: Option<&str>) -> Actor {
    let mut out = null_mut();
    let server = server.map(c);
    let status = unsafe {
        aq_actor_principal(
            c(name).as_ptr(),
            c(role).as_ptr(),
            server.as_ref().map_or(null(), |s| s.as_ptr()),
            &mut out,
        )
    };
    assert_eq!(status, aq_status::Ok, "{}", last_message());
    Actor(out)
}

pub fn create_server(q: &Queue, id: &str) -> Value {
    let mut out = null_mut();
    let status = unsafe { aq_server_create(q.0, host(), c(id).as_ptr(), null(), &mut out) };
    assert_eq!(status, aq_status::Ok, "{}", last_message());
    take_json(out)
}

pub fn create_action(q: &Queue, request: &str) -> Result<Value, aq_status> {
    let mut out = SENTINEL;
    let status = unsafe { aq_action_create(q.ptr(), host(), c(request).as_ptr(), &mut out) };
    if status == aq_status::Ok {
        Ok(take_json(out))
    } else {
        assert_eq!(out, SENTINEL, "output written on failure");
        Err(status)
    }
}

/// Opens a queue on `path` with a durability and a busy timeout set through
/// the C setters.
pub fn open_file_queue(
    path: &std::path::Path,
    durability: aq_durability,
    busy_seconds: f64,
) -> Queue {
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
