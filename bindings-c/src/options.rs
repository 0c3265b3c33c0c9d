//! `aq_options`: settings for opening a queue, built with setters.

use std::ffi::c_char;
use std::time::Duration;

use actionq_core::{Durability, QueueOptions, SqliteOptions, Whitelist};

use crate::error::{aq_status, Failure};
use crate::ffi::{mut_arg, str_arg, Out};
use crate::ffi_boundary;

/// How hard a SQLite store works to keep acknowledged writes. Pass to
/// `aq_options_set_durability`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum aq_durability {
    /// WAL with `synchronous=NORMAL` (the default): nothing acknowledged is
    /// lost when the process dies; the last commits may be lost on power failure.
    Normal = 0,
    /// WAL with `synchronous=FULL`: also survives power loss (an fsync per commit).
    Full = 1,
}

/// Settings for `aq_queue_open` / `aq_queue_open_in_memory`: whitelist,
/// durability, output cap, leases, busy timeout. Unset settings keep the
/// library defaults.
///
/// Create with `aq_options_new`, free with `aq_options_free`. Opening a queue
/// only reads the options: free them whenever convenient afterwards. Not safe
/// to modify from several threads at once.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Default)]
pub struct aq_options {
    pub(crate) whitelist: Whitelist,
    pub(crate) queue: QueueOptions,
    pub(crate) sqlite: SqliteOptions,
}

/// Creates options holding the defaults (SPEC's default whitelist, durability
/// `AQ_DURABILITY_NORMAL`, output cap 10,000 characters, default lease 300 s,
/// longest lease 24 h, SQLite busy timeout 10 s).
///
/// On `AQ_STATUS_OK`, `*options_out` receives a new object that the caller
/// owns and frees with `aq_options_free`.
///
/// # Safety
///
/// `options_out` must be NULL or point to a writable `aq_options *`.
#[no_mangle]
pub unsafe extern "C" fn aq_options_new(options_out: *mut *mut aq_options) -> aq_status {
    ffi_boundary! {
        // SAFETY: `options_out` is writable per the caller's contract.
        let out = unsafe { Out::new(options_out, "options_out") }?;
        out.write(Box::into_raw(Box::default()));
        Ok(())
    }
}

/// Replaces the whitelist with one parsed from its JSON config text (format:
/// see `aq_whitelist_default_json` and the README). The text is validated
/// now: a malformed config is `AQ_STATUS_INVALID_INPUT` naming the problem,
/// and leaves the options unchanged.
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call; `config_json` must be NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_whitelist(
    options: *mut aq_options,
    config_json: *const c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        // SAFETY: per the caller's contract.
        let text = unsafe { str_arg(config_json, "config_json") }?;
        options.whitelist = Whitelist::from_json(text)?;
        Ok(())
    }
}

/// Sets the durability of a SQLite store: an `aq_durability` value. Any other
/// number is `AQ_STATUS_INVALID_INPUT`. No effect on in-memory queues.
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_durability(
    options: *mut aq_options,
    durability: u32,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        options.sqlite.durability = match durability {
            d if d == aq_durability::Normal as u32 => Durability::Normal,
            d if d == aq_durability::Full as u32 => Durability::Full,
            other => {
                return Err(Failure::Core(actionq_core::Error::InvalidInput(format!(
                    "durability must be AQ_DURABILITY_NORMAL (0) or AQ_DURABILITY_FULL (1) (got {other})"
                ))))
            }
        };
        Ok(())
    }
}

/// Sets how many characters of `stdout`/`stderr` a result keeps (default 10,000).
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_output_cap(
    options: *mut aq_options,
    max_chars: usize,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        options.queue.output_cap_chars = max_chars;
        Ok(())
    }
}

/// Sets the lease that claim and heartbeat give when the caller passes 0
/// seconds (`default_seconds`, default 300) and the longest lease a caller
/// may ask for (`max_seconds`, default 86,400). Leases are checked against
/// them when claiming, not here.
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_leases(
    options: *mut aq_options,
    default_seconds: u64,
    max_seconds: u64,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        options.queue.default_lease = Duration::from_secs(default_seconds);
        options.queue.max_lease = Duration::from_secs(max_seconds);
        Ok(())
    }
}

/// Sets how long a SQLite write waits for another connection's lock before
/// failing with `AQ_STATUS_STORAGE` (default 10,000 ms). No effect on
/// in-memory queues.
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_busy_timeout(
    options: *mut aq_options,
    milliseconds: u64,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        options.sqlite.busy_timeout = Duration::from_millis(milliseconds);
        Ok(())
    }
}

/// Frees options from `aq_options_new`. `aq_options_free(NULL)` does nothing.
///
/// # Safety
///
/// `options` must be NULL or an object from `aq_options_new` not yet freed,
/// and no other thread may be using it.
#[no_mangle]
pub unsafe extern "C" fn aq_options_free(options: *mut aq_options) {
    if !options.is_null() {
        // SAFETY: it came from Box::into_raw in aq_options_new and is freed once.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(options) }));
    }
}
