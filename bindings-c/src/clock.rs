//! `aq_clock`: the core's manual clock, so a C host can test leases and
//! timestamps without waiting, as Rust and Python hosts can.

use std::sync::Arc;

use actionq::{Clock, Error, ManualClock};

use crate::error::aq_status;
use crate::ffi::{ref_arg, Out};
use crate::ffi_boundary;

/// A clock that stands still until moved (`aq_clock_advance`). Give it to
/// `aq_options_set_clock` before opening a queue. Safe to use from many
/// threads at once. Create with `aq_clock_new_manual`, free with
/// `aq_clock_free` (queues opened with it keep their own reference).
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct aq_clock {
    pub(crate) inner: Arc<ManualClock>,
}

/// Creates a manual clock stopped at `start_unix_micros` (microseconds since
/// 1970-01-01T00:00:00Z). Out of range: `AQ_STATUS_INVALID_INPUT`.
///
/// On `AQ_STATUS_OK`, `*clock_out` receives a new clock that the caller owns
/// and frees with `aq_clock_free`.
///
/// # Safety
///
/// `clock_out` must be NULL or point to a writable `aq_clock *`.
#[no_mangle]
pub unsafe extern "C" fn aq_clock_new_manual(
    start_unix_micros: i64,
    clock_out: *mut *mut aq_clock,
) -> aq_status {
    ffi_boundary! {
        // SAFETY: `clock_out` is writable per the caller's contract.
        let out = unsafe { Out::new(clock_out, "clock_out") }?;
        let start = chrono::DateTime::from_timestamp_micros(start_unix_micros).ok_or_else(|| {
            Error::InvalidInput(format!("start_unix_micros {start_unix_micros} is out of range"))
        })?;
        let clock = aq_clock { inner: Arc::new(ManualClock::new(start)) };
        out.write(Box::into_raw(Box::new(clock)));
        Ok(())
    }
}

/// Moves the clock by `seconds` (fractions to the microsecond; back, if
/// negative). Not finite, or out of range: `AQ_STATUS_INVALID_INPUT`, and the
/// clock does not move.
///
/// # Safety
///
/// `clock` must be NULL or a live clock from `aq_clock_new_manual`.
#[no_mangle]
pub unsafe extern "C" fn aq_clock_advance(clock: *const aq_clock, seconds: f64) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let clock = unsafe { ref_arg(clock, "clock") }?;
        clock.inner.advance_seconds(seconds)?;
        Ok(())
    }
}

/// Writes the clock's time, in microseconds since 1970-01-01T00:00:00Z, to
/// `*unix_micros_out`.
///
/// # Safety
///
/// `clock` must be NULL or a live clock from `aq_clock_new_manual`;
/// `unix_micros_out` must be NULL or point to a writable `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn aq_clock_now(
    clock: *const aq_clock,
    unix_micros_out: *mut i64,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (both): per the caller's contract.
        let clock = unsafe { ref_arg(clock, "clock") }?;
        let out = unsafe { Out::new(unix_micros_out, "unix_micros_out") }?;
        out.write(clock.inner.now().timestamp_micros());
        Ok(())
    }
}

/// Frees a clock from `aq_clock_new_manual`. Queues opened with it keep
/// working (they hold their own reference). `aq_clock_free(NULL)` does nothing.
///
/// # Safety
///
/// `clock` must be NULL or a clock from `aq_clock_new_manual` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn aq_clock_free(clock: *mut aq_clock) {
    if !clock.is_null() {
        // SAFETY: it came from Box::into_raw in aq_clock_new_manual and is freed once.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(clock) }));
    }
}
