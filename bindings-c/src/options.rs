//! `aq_options`: settings for opening a queue, built with setters.

use std::ffi::c_char;
use std::sync::Arc;

use actionq::{limits, Durability, ManualClock, QueueOptions, SqliteOptions, Whitelist};

use crate::clock::aq_clock;
use crate::error::{aq_status, Failure};
use crate::ffi::{mut_arg, ref_arg, str_arg, Out};
use crate::ffi_boundary;

/// How hard a SQLite store works to keep acknowledged writes (the core's
/// `"normal"` and `"full"`, in that order). Pass to `aq_options_set_durability`.
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

// The C values index the core's list, every one of it: checked at compile time.
const _: () = {
    assert!(matches!(
        Durability::ALL[aq_durability::Normal as usize],
        Durability::Normal
    ));
    assert!(matches!(
        Durability::ALL[aq_durability::Full as usize],
        Durability::Full
    ));
    assert!(Durability::ALL.len() == 2);
};

/// Settings for `aq_queue_open` / `aq_queue_open_in_memory`: whitelist,
/// durability, output cap, leases, busy timeout, expiry before reads. Unset
/// settings keep the library defaults (the `AQ_DEFAULT_*` macros).
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
    pub(crate) clock: Option<Arc<ManualClock>>,
}

/// Creates options holding the defaults: the default whitelist
/// (`docs/contract/whitelist.md#default-whitelist`), durability
/// `AQ_DURABILITY_NORMAL`, `AQ_DEFAULT_OUTPUT_CAP_CHARS`,
/// `AQ_DEFAULT_LEASE_SECONDS`, `AQ_DEFAULT_MAX_LEASE_SECONDS`,
/// `AQ_DEFAULT_BUSY_TIMEOUT_SECONDS`, `AQ_DEFAULT_EXPIRE_LEASES_ON_READ`.
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
        // The C values index the core's list (checked above).
        let Some(chosen) = usize::try_from(durability).ok().and_then(|i| Durability::ALL.get(i))
        else {
            let choices: Vec<String> = Durability::ALL
                .iter()
                .enumerate()
                .map(|(i, d)| format!("AQ_DURABILITY_{} ({i})", d.as_str().to_uppercase()))
                .collect();
            return Err(Failure::Core(actionq::Error::InvalidInput(format!(
                "durability must be one of: {} (got {durability})",
                choices.join(", ")
            ))));
        };
        options.sqlite.durability = *chosen;
        Ok(())
    }
}

/// Sets how many characters of `stdout`/`stderr` a result keeps
/// (`AQ_DEFAULT_OUTPUT_CAP_CHARS`); 0 keeps none.
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

/// Sets the lease, in seconds, that claim and heartbeat give when the
/// caller's `lease_seconds` is NULL (`default_seconds`,
/// `AQ_DEFAULT_LEASE_SECONDS`) and the longest lease a caller may ask for
/// (`max_seconds`, `AQ_DEFAULT_MAX_LEASE_SECONDS`). Fractions are kept. A
/// negative, NaN or infinite value is `AQ_STATUS_INVALID_INPUT` and changes
/// nothing; leases are checked against them when claiming.
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_leases(
    options: *mut aq_options,
    default_seconds: f64,
    max_seconds: f64,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        let default_lease = limits::setting_seconds("default_seconds", default_seconds)?;
        let max_lease = limits::setting_seconds("max_seconds", max_seconds)?;
        options.queue.default_lease = default_lease;
        options.queue.max_lease = max_lease;
        Ok(())
    }
}

/// Sets whether every read (`aq_action_get`, the listings, `aq_event_list`)
/// and `aq_action_claim_next` first fails the actions whose lease ran out, as
/// `aq_action_expire_leases` does (`AQ_DEFAULT_EXPIRE_LEASES_ON_READ`: true,
/// as in every host). With false, the host calls `aq_action_expire_leases`
/// itself.
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_expire_leases_on_read(
    options: *mut aq_options,
    enabled: bool,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        options.queue.expire_leases_on_read = enabled;
        Ok(())
    }
}

/// Sets how long, in seconds, a SQLite write waits for another connection's
/// lock before failing with `AQ_STATUS_STORAGE`
/// (`AQ_DEFAULT_BUSY_TIMEOUT_SECONDS`; fractions are kept, 0 fails at once).
/// A negative, NaN or infinite value is `AQ_STATUS_INVALID_INPUT`. No effect
/// on in-memory queues.
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_busy_timeout_seconds(
    options: *mut aq_options,
    seconds: f64,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        options.sqlite.busy_timeout = limits::setting_seconds("seconds", seconds)?;
        Ok(())
    }
}

/// Makes queues opened with these options read time from `clock` (a manual
/// clock, e.g. in tests) instead of the system clock. The options and the
/// queues keep their own reference: the clock may be freed at any time.
///
/// # Safety
///
/// `options` must be NULL or a live object from `aq_options_new`, not used by
/// another thread during the call; `clock` must be NULL or a live clock from
/// `aq_clock_new_manual`.
#[no_mangle]
pub unsafe extern "C" fn aq_options_set_clock(
    options: *mut aq_options,
    clock: *const aq_clock,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (both): per the caller's contract.
        let options = unsafe { mut_arg(options, "options") }?;
        let clock = unsafe { ref_arg(clock, "clock") }?;
        options.clock = Some(clock.inner.clone());
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
