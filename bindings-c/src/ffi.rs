//! Argument and output helpers shared by every entry point, and the panic
//! boundary macro.

use std::ffi::{c_char, CStr, CString};

use serde::Serialize;

use crate::error::Failure;

/// Wraps an entry point's body (which evaluates to [`FfiResult`](crate::error::FfiResult)):
/// catches panics, records the thread's last error, returns the `aq_status`.
#[macro_export]
#[doc(hidden)]
macro_rules! ffi_boundary {
    ( $($body:tt)* ) => {
        $crate::error::boundary(move || -> $crate::error::FfiResult { $($body)* })
    };
}

/// A required string argument: NUL-terminated UTF-8.
///
/// # Safety
///
/// `ptr` must be NULL or point to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<&'a str, Failure> {
    // SAFETY: forwarded to the caller.
    unsafe { opt_str_arg(ptr, name) }?.ok_or(Failure::NullArgument(name))
}

/// An optional string argument: NULL means "not given".
///
/// # Safety
///
/// As for [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map(Some)
        .map_err(|e| Failure::InvalidUtf8(name, e))
}

/// A required borrowed object argument.
///
/// # Safety
///
/// `ptr` must be NULL or point to a live `T` that no other thread mutates for `'a`.
pub(crate) unsafe fn ref_arg<'a, T>(ptr: *const T, name: &'static str) -> Result<&'a T, Failure> {
    // SAFETY: forwarded to the caller.
    unsafe { ptr.as_ref() }.ok_or(Failure::NullArgument(name))
}

/// A required mutably borrowed object argument.
///
/// # Safety
///
/// `ptr` must be NULL or point to a live `T` that nothing else uses for `'a`.
pub(crate) unsafe fn mut_arg<'a, T>(ptr: *mut T, name: &'static str) -> Result<&'a mut T, Failure> {
    // SAFETY: forwarded to the caller.
    unsafe { ptr.as_mut() }.ok_or(Failure::NullArgument(name))
}

/// An output pointer, checked before any work is done so that a NULL output
/// never leaves a half-reported change behind.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Checks `ptr` is not NULL.
    ///
    /// # Safety
    ///
    /// `ptr` must be NULL or writable for a `T` until [`Out::write`] is called.
    pub(crate) unsafe fn new(ptr: *mut T, name: &'static str) -> Result<Self, Failure> {
        if ptr.is_null() {
            Err(Failure::NullArgument(name))
        } else {
            Ok(Out(ptr))
        }
    }

    /// Stores `value` (called only on success).
    pub(crate) fn write(self, value: T) {
        // SAFETY: non-NULL (checked in `new`) and writable per `new`'s contract.
        unsafe { self.0.write(value) }
    }
}

impl Out<*mut c_char> {
    /// Stores `value` as JSON, in a string that the caller frees with `aq_string_free`.
    pub(crate) fn write_json<T: Serialize + ?Sized>(self, value: &T) {
        self.write(json_string(value))
    }
}

/// `text` as a C string. A NUL inside (a message may quote user input)
/// would cut it short, so it is written as `\0`.
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\\0")).expect("NULs were escaped")
}

/// A copy of `text` that the caller frees with `aq_string_free`.
pub(crate) fn owned_c_string(text: &str) -> *mut c_char {
    c_string(text).into_raw()
}

/// `value` as JSON, in a string that the caller frees with `aq_string_free`.
pub(crate) fn json_string<T: Serialize + ?Sized>(value: &T) -> *mut c_char {
    owned_c_string(&serde_json::to_string(value).expect("actionq records serialize to JSON"))
}
