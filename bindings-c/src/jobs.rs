//! Job leases and notification delivery cursors (`actionq::jobs`): one
//! function per operation, like every other (`aq_lease_*`, `aq_delivery_*`).

use std::ffi::c_char;
use std::str::FromStr;

use actionq::DeliveryOutcome;

use crate::error::aq_status;
use crate::ffi::{opt_str_arg, str_arg, Out};
use crate::ffi_boundary;
use crate::identity::{acting, aq_actor};
use crate::queue::aq_queue;

/// Takes the job lease `name` for `holder` for `ttl_seconds` (more than 0, at
/// most `AQ_MAX_JOB_LEASE_SECONDS`), or renews it when `holder` has it;
/// `AQ_STATUS_CONFLICT` while another holder's lease runs. On `AQ_STATUS_OK`,
/// `*lease_json_out` receives `{"name","holder","expires_at"}`; the caller
/// frees it with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live `aq_actor`;
/// `name` and `holder` NULL or NUL-terminated; `lease_json_out` NULL or a
/// writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_lease_take(
    queue: *const aq_queue,
    actor: *const aq_actor,
    name: *const c_char,
    holder: *const c_char,
    ttl_seconds: f64,
    lease_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let holder = unsafe { str_arg(holder, "holder") }?;
        let ttl = actionq::limits::setting_seconds("ttl_seconds", ttl_seconds)?;
        let out = unsafe { Out::new(lease_json_out, "lease_json_out") }?;
        out.write_json(&queue.take_lease(name, holder, ttl)?);
        Ok(())
    }
}

/// Gives up the job lease `name` if `holder` has it; `*released_out`
/// receives whether it did.
///
/// `actor`: as `aq_lease_take`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live `aq_actor`;
/// `name` and `holder` NULL or NUL-terminated; `released_out` NULL or a
/// writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn aq_lease_release(
    queue: *const aq_queue,
    actor: *const aq_actor,
    name: *const c_char,
    holder: *const c_char,
    released_out: *mut bool,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let holder = unsafe { str_arg(holder, "holder") }?;
        let out = unsafe { Out::new(released_out, "released_out") }?;
        out.write(queue.release_lease(name, holder)?);
        Ok(())
    }
}

/// The delivery cursor of notification sink `name` (1-`AQ_MAX_SINK_NAME_CHARS`
/// of `[a-z0-9_-]`), created at the end of the log when new; an existing one
/// keeps its cursor and takes `kind`. On `AQ_STATUS_OK`, `*delivery_json_out`
/// receives `{"name","kind","cursor","lag_events","oldest_pending_at","sent",
/// "failed","dead","last_error","last_success_at"}`; the caller frees it with
/// `aq_string_free`.
///
/// `actor`: as `aq_lease_take`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live `aq_actor`;
/// `name` and `kind` NULL or NUL-terminated; `delivery_json_out` NULL or a
/// writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_delivery_register(
    queue: *const aq_queue,
    actor: *const aq_actor,
    name: *const c_char,
    kind: *const c_char,
    delivery_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let kind = unsafe { str_arg(kind, "kind") }?;
        let out = unsafe { Out::new(delivery_json_out, "delivery_json_out") }?;
        out.write_json(&queue.register_delivery(name, kind)?);
        Ok(())
    }
}

/// Records what became of event `event_id` for sink `name`: `outcome`
/// `"sent"`, `"skipped"` or `"dead"` (the cursor moves to it) or `"failed"`
/// (one try; it stays); `error` (NULL for none) says why a failure failed.
/// `holder` must hold the lease `"delivery:<name>"` (else
/// `AQ_STATUS_CONFLICT`, changing nothing). On `AQ_STATUS_OK`,
/// `*delivery_json_out` receives the cursor after, as `aq_delivery_register`
/// gives it; the caller frees it with `aq_string_free`.
///
/// `actor`: as `aq_lease_take`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live `aq_actor`;
/// `name`, `holder` and `outcome` NULL or NUL-terminated; `error` NULL or
/// NUL-terminated; `delivery_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_delivery_record(
    queue: *const aq_queue,
    actor: *const aq_actor,
    name: *const c_char,
    holder: *const c_char,
    event_id: i64,
    outcome: *const c_char,
    error: *const c_char,
    delivery_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let holder = unsafe { str_arg(holder, "holder") }?;
        let outcome = DeliveryOutcome::from_str(unsafe { str_arg(outcome, "outcome") }?)?;
        let error = unsafe { opt_str_arg(error, "error") }?;
        let out = unsafe { Out::new(delivery_json_out, "delivery_json_out") }?;
        out.write_json(&queue.record_delivery(name, holder, event_id, outcome, error)?);
        Ok(())
    }
}

/// Records a batch in one write: every event after sink `name`'s cursor
/// through `through_event_id` was delivered or skipped, `sent` of them
/// delivered. The cursor moves to `through_event_id`; with `sent` above 0,
/// `sent` counts them and `last_error` clears, as one `"sent"` event of
/// `aq_delivery_record` does, else it is a skip. Same checks and statuses as
/// `aq_delivery_record`; on `AQ_STATUS_OK`, `*delivery_json_out` receives
/// the cursor after (freed with `aq_string_free`).
///
/// `actor`: as `aq_lease_take`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live `aq_actor`;
/// `name` and `holder` NULL or NUL-terminated; `delivery_json_out` NULL or a
/// writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_delivery_record_sent(
    queue: *const aq_queue,
    actor: *const aq_actor,
    name: *const c_char,
    holder: *const c_char,
    through_event_id: i64,
    sent: i64,
    delivery_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let holder = unsafe { str_arg(holder, "holder") }?;
        let out = unsafe { Out::new(delivery_json_out, "delivery_json_out") }?;
        out.write_json(&queue.record_sent(name, holder, through_event_id, sent)?);
        Ok(())
    }
}

/// Every sink's delivery cursor, by name, as a JSON array of what
/// `aq_delivery_register` gives. The caller frees `*deliveries_json_out`
/// with `aq_string_free`.
///
/// `actor`: as `aq_lease_take`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live `aq_actor`;
/// `deliveries_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_delivery_list(
    queue: *const aq_queue,
    actor: *const aq_actor,
    deliveries_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(deliveries_json_out, "deliveries_json_out") }?;
        out.write_json(&queue.list_deliveries()?);
        Ok(())
    }
}
