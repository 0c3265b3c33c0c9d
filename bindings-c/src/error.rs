//! Status codes, the one mapping from `actionq::Error`, and the thread-local
//! last error.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use actionq::{Error, ErrorKind};

use crate::ffi::c_string;

/// What an `aq_*` function did. `AQ_STATUS_OK` (0) is success; every other
/// value is a failure whose message `aq_last_error_message` returns.
///
/// The numbers are part of the ABI: they are never renumbered, and new values
/// are only ever added.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum aq_status {
    /// Success.
    Ok = 0,
    /// Malformed input: a missing or out-of-range value, bad JSON, a bad
    /// whitelist config (core kind `InvalidInput`, code `VALIDATION_ERROR`, HTTP 422).
    InvalidInput = 1,
    /// The server or action does not exist (core kind `NotFound`, HTTP 404).
    NotFound = 2,
    /// The action type or a parameter value is not on the whitelist
    /// (core kind `NotWhitelisted`, code `FORBIDDEN`, HTTP 403).
    NotWhitelisted = 3,
    /// An illegal status transition, a duplicate action (see
    /// `aq_last_error_existing_action_id`), a server id already taken, or a
    /// wrong or expired lease token (core kind `Conflict`, HTTP 409).
    Conflict = 4,
    /// The store failed: I/O, corruption, busy beyond the timeout, a schema
    /// newer than this library (core kind `Storage`, code `STORAGE_ERROR`, HTTP 503).
    Storage = 5,
    /// A pointer argument that must not be NULL was NULL. Nothing was done.
    NullArgument = 6,
    /// A string argument was not valid UTF-8. Nothing was done.
    InvalidUtf8 = 7,
    /// A bug inside actionq was caught at the C boundary (a Rust panic). The
    /// handle involved may be unusable afterwards; please report it.
    Panic = 8,
    /// An unknown, revoked or malformed credential secret (core kind
    /// `Unauthenticated`, code `UNAUTHENTICATED`, HTTP 401).
    Unauthenticated = 9,
    /// The principal's role or server scope does not allow the operation;
    /// nothing was changed (core kind `PermissionDenied`, code
    /// `PERMISSION_DENIED`, HTTP 403).
    PermissionDenied = 10,
}

impl aq_status {
    /// The status for a core error kind. The one mapping from `actionq::Error`.
    pub(crate) fn from_kind(kind: ErrorKind) -> aq_status {
        match kind {
            ErrorKind::InvalidInput => aq_status::InvalidInput,
            ErrorKind::NotFound => aq_status::NotFound,
            ErrorKind::NotWhitelisted => aq_status::NotWhitelisted,
            ErrorKind::Conflict => aq_status::Conflict,
            ErrorKind::Storage => aq_status::Storage,
            ErrorKind::Unauthenticated => aq_status::Unauthenticated,
            ErrorKind::PermissionDenied => aq_status::PermissionDenied,
            // ErrorKind is non-exhaustive: a kind added to the core without a
            // status here is a storage-class failure until it gets its own value.
            _ => aq_status::Storage,
        }
    }
}

/// Every status with its stable name: the core kinds' error codes
/// (`docs/contract/errors.md#kinds`; the tests check they equal
/// `ErrorKind::code`), the variant otherwise.
const STATUS_CODES: [(aq_status, &CStr); 11] = [
    (aq_status::Ok, c"OK"),
    (aq_status::InvalidInput, c"VALIDATION_ERROR"),
    (aq_status::NotFound, c"NOT_FOUND"),
    (aq_status::NotWhitelisted, c"FORBIDDEN"),
    (aq_status::Conflict, c"CONFLICT"),
    (aq_status::Storage, c"STORAGE_ERROR"),
    (aq_status::NullArgument, c"NULL_ARGUMENT"),
    (aq_status::InvalidUtf8, c"INVALID_UTF8"),
    (aq_status::Panic, c"PANIC"),
    (aq_status::Unauthenticated, c"UNAUTHENTICATED"),
    (aq_status::PermissionDenied, c"PERMISSION_DENIED"),
];

/// Why an entry point failed, before it is turned into a status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The core said no.
    Core(Error),
    /// The named pointer argument was NULL.
    NullArgument(&'static str),
    /// The named string argument was not UTF-8.
    InvalidUtf8(&'static str, std::str::Utf8Error),
    /// A panic was caught; its message.
    Panic(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl Failure {
    fn status(&self) -> aq_status {
        match self {
            Failure::Core(e) => aq_status::from_kind(e.kind()),
            Failure::NullArgument(_) => aq_status::NullArgument,
            Failure::InvalidUtf8(..) => aq_status::InvalidUtf8,
            Failure::Panic(_) => aq_status::Panic,
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::Core(e) => e.message(),
            Failure::NullArgument(name) => format!("argument '{name}' must not be NULL"),
            Failure::InvalidUtf8(name, e) => format!("argument '{name}' is not valid UTF-8: {e}"),
            Failure::Panic(msg) => format!("internal error (panic) in actionq: {msg}"),
        }
    }

    fn existing_action_id(&self) -> Option<i64> {
        match self {
            Failure::Core(e) => e.existing_action_id(),
            _ => None,
        }
    }
}

/// Result of an entry point's body.
pub(crate) type FfiResult = Result<(), Failure>;

struct LastError {
    message: CString,
    existing_action_id: Option<i64>,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

fn record(outcome: FfiResult) -> aq_status {
    let last = match &outcome {
        Ok(()) => None,
        Err(failure) => Some(LastError {
            message: c_string(&failure.message()),
            existing_action_id: failure.existing_action_id(),
        }),
    };
    // `try_with`: during thread teardown the slot may already be gone.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = last);
    match outcome {
        Ok(()) => aq_status::Ok,
        Err(failure) => failure.status(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Runs an entry point's body: catches any panic, records the thread's last
/// error (clearing it on success) and returns the status. Used through
/// [`ffi_boundary!`](crate::ffi_boundary).
pub(crate) fn boundary(body: impl FnOnce() -> FfiResult) -> aq_status {
    let outcome = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(outcome) => outcome,
        Err(payload) => Err(Failure::Panic(panic_message(&*payload))),
    };
    // Recording allocates; never let even that unwind into C.
    catch_unwind(AssertUnwindSafe(|| record(outcome))).unwrap_or(aq_status::Panic)
}

/// Copies the message of the last failed `aq_*` call on the calling thread
/// into `buf`, NUL-terminated.
///
/// Every `aq_*` function that returns `aq_status` (except the two
/// `aq_last_error_*` functions, which leave it untouched) replaces the
/// thread's last error: a failure stores its message, a success clears it.
/// So call this right after the failing call, on the same thread. With no
/// failure recorded the message is the empty string.
///
/// At most `buf_len - 1` bytes are copied (never splitting a UTF-8 character)
/// followed by a NUL. If `message_len_out` is not NULL it receives the full
/// message length in bytes, excluding the NUL: a value `>= buf_len` means the
/// copy was truncated. `buf` may be NULL only when `buf_len` is 0, to ask for
/// the length alone.
///
/// Returns `AQ_STATUS_OK`, or `AQ_STATUS_NULL_ARGUMENT` when `buf` is NULL
/// while `buf_len > 0` (nothing is written then).
///
/// # Safety
///
/// `buf` must be NULL or point to `buf_len` writable bytes; `message_len_out`
/// must be NULL or point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn aq_last_error_message(
    buf: *mut c_char,
    buf_len: usize,
    message_len_out: *mut usize,
) -> aq_status {
    let copy = || {
        if buf.is_null() && buf_len > 0 {
            return aq_status::NullArgument;
        }
        LAST_ERROR
            .try_with(|slot| {
                let slot = slot.borrow();
                let message = slot
                    .as_ref()
                    .map(|e| e.message.to_bytes())
                    .unwrap_or_default();
                if buf_len > 0 {
                    let mut n = message.len().min(buf_len - 1);
                    // Back up to a character boundary (a UTF-8 continuation byte is 0b10xx_xxxx).
                    while n < message.len() && n > 0 && message[n] & 0xC0 == 0x80 {
                        n -= 1;
                    }
                    // SAFETY: the caller guarantees `buf_len` writable bytes at `buf`;
                    // `n + 1 <= buf_len`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), n);
                        *buf.add(n) = 0;
                    }
                }
                if !message_len_out.is_null() {
                    // SAFETY: checked non-NULL; the caller guarantees it is writable.
                    unsafe { *message_len_out = message.len() };
                }
                aq_status::Ok
            })
            .unwrap_or(aq_status::Ok)
    };
    catch_unwind(copy).unwrap_or(aq_status::Panic)
}

/// Writes to `*id_out` the id of the existing action that the last failed
/// call on the calling thread collided with (an `AQ_STATUS_CONFLICT` from a
/// duplicate `aq_action_create`), or 0 when the last error carries none
/// (action ids start at 1). Leaves the last error untouched.
///
/// Returns `AQ_STATUS_OK`, or `AQ_STATUS_NULL_ARGUMENT` when `id_out` is NULL.
///
/// # Safety
///
/// `id_out` must be NULL or point to a writable `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn aq_last_error_existing_action_id(id_out: *mut i64) -> aq_status {
    if id_out.is_null() {
        return aq_status::NullArgument;
    }
    let id = LAST_ERROR
        .try_with(|slot| slot.borrow().as_ref().and_then(|e| e.existing_action_id))
        .ok()
        .flatten()
        .unwrap_or(0);
    // SAFETY: checked non-NULL; the caller guarantees it is writable.
    unsafe { *id_out = id };
    aq_status::Ok
}

/// The stable name of a status value: for the core kinds their error code
/// (`"VALIDATION_ERROR"`, `"NOT_FOUND"`, `"FORBIDDEN"`, `"CONFLICT"`,
/// `"STORAGE_ERROR"`, `"UNAUTHENTICATED"`, `"PERMISSION_DENIED"`; see
/// `docs/contract/errors.md#kinds`), otherwise `"OK"`, `"NULL_ARGUMENT"`,
/// `"INVALID_UTF8"`, `"PANIC"`, or `"UNKNOWN"` for a number that is no
/// `aq_status`.
///
/// The returned string is static: never free it.
#[no_mangle]
pub extern "C" fn aq_status_code(status: u32) -> *const c_char {
    STATUS_CODES
        .iter()
        .find(|(s, _)| *s as u32 == status)
        .map_or(c"UNKNOWN", |(_, code)| code)
        .as_ptr()
}
