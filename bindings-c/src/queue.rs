//! `aq_queue`: the opaque handle, and the queue operations. Each one converts
//! its arguments, calls the core once as the actor `acting` picks, and
//! returns its result as JSON.

use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::time::Duration;

use actionq::{
    limits, ActionQuery, ActionQueue, ActionStatus, Error, MemoryStore, NewAction, Store,
};

use crate::error::{aq_status, Failure};
use crate::ffi::{json_string, opt_str_arg, owned_c_string, ref_arg, str_arg, Out};
use crate::ffi_boundary;
use crate::identity::{acting, aq_actor};
use crate::options::aq_options;

/// An open action queue: a SQLite file or an in-memory store, a whitelist and
/// settings.
///
/// Create with `aq_queue_open` or `aq_queue_open_in_memory`, free with
/// `aq_queue_free`. Every other function takes it as `const aq_queue *` and
/// may be called on the same handle from any number of threads at once;
/// only `aq_queue_free` must not overlap with any other use.
#[allow(non_camel_case_types)]
pub struct aq_queue {
    inner: ActionQueue,
}

/// The required `queue` argument: the queue behind the handle.
///
/// # Safety
///
/// `ptr` must be NULL or a live handle.
pub(crate) unsafe fn queue_arg<'a>(ptr: *const aq_queue) -> Result<&'a ActionQueue, Failure> {
    // SAFETY: forwarded to the caller.
    Ok(&unsafe { ref_arg(ptr, "queue") }?.inner)
}

/// The promise above, checked at compile time.
#[allow(dead_code)]
fn assert_queue_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<aq_queue>();
}

/// A new handle on `store` with the settings of `options`.
fn new_handle(store: impl Store, options: aq_options) -> *mut aq_queue {
    queue_handle(ActionQueue::new(store), options)
}

fn queue_handle(queue: ActionQueue, options: aq_options) -> *mut aq_queue {
    let mut inner = queue
        .with_options(options.queue)
        .with_whitelist(options.whitelist);
    if let Some(clock) = options.clock {
        inner = inner.with_clock(clock);
    }
    Box::into_raw(Box::new(aq_queue { inner }))
}

/// Opens (creating it if missing) the queue stored in the SQLite file at
/// `path`, or in the PostgreSQL database of a `postgresql://` (or
/// `postgres://`) URL given as `path`, migrating an older schema forward. A
/// database written by a newer actionq is refused with `AQ_STATUS_STORAGE` and
/// left untouched; so is a PostgreSQL server that cannot be reached or refuses
/// the login (the message says why). Several handles and processes may open
/// the same database at once. On PostgreSQL the busy timeout is the lock
/// timeout; durability does not apply (the server's settings rule).
///
/// `options` may be NULL for the defaults; it is only read during the call.
/// On `AQ_STATUS_OK`, `*queue_out` receives a new handle that the caller owns
/// and frees with `aq_queue_free`.
///
/// # Safety
///
/// `path` must be NULL or a NUL-terminated string; `options` must be NULL or a
/// live `aq_options`; `queue_out` must be NULL or point to a writable `aq_queue *`.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_open(
    path: *const c_char,
    options: *const aq_options,
    queue_out: *mut *mut aq_queue,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all three): per the caller's contract.
        let path = unsafe { str_arg(path, "path") }?;
        let options = unsafe { options.as_ref() }.cloned().unwrap_or_default();
        let out = unsafe { Out::new(queue_out, "queue_out") }?;
        let queue = ActionQueue::open_location(path, &options.sqlite)?;
        out.write(queue_handle(queue, options));
        Ok(())
    }
}

/// Opens a queue held in memory only (gone when freed). `options` may be NULL
/// for the defaults; durability and busy timeout do not apply.
///
/// On `AQ_STATUS_OK`, `*queue_out` receives a new handle that the caller owns
/// and frees with `aq_queue_free`.
///
/// # Safety
///
/// `options` must be NULL or a live `aq_options`; `queue_out` must be NULL or
/// point to a writable `aq_queue *`.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_open_in_memory(
    options: *const aq_options,
    queue_out: *mut *mut aq_queue,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (both): per the caller's contract.
        let options = unsafe { options.as_ref() }.cloned().unwrap_or_default();
        let out = unsafe { Out::new(queue_out, "queue_out") }?;
        out.write(new_handle(MemoryStore::new(), options));
        Ok(())
    }
}

/// Closes a queue from `aq_queue_open*`. `aq_queue_free(NULL)` does nothing.
///
/// # Safety
///
/// `queue` must be NULL or a handle not yet freed, and no other call may be
/// using it, now or later.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_free(queue: *mut aq_queue) {
    if !queue.is_null() {
        // SAFETY: it came from Box::into_raw in aq_queue_open* and is freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(queue) })));
    }
}

/// Writes the whitelist in force as JSON config text (the format
/// `aq_options_set_whitelist` reads) to `*json_out`, which the caller frees
/// with `aq_string_free`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `json_out` must be NULL or point to
/// a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_whitelist_json(
    queue: *const aq_queue,
    json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let out = unsafe { Out::new(json_out, "json_out") }?;
        out.write(owned_c_string(&queue.whitelist().to_json()));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Servers

/// Registers a server (not paused). `id`: 1–`AQ_MAX_SERVER_ID_CHARS` characters of
/// `[A-Za-z0-9._-]`, starting with a letter or digit; `hostname` may be NULL.
/// An id already taken is `AQ_STATUS_CONFLICT`.
///
/// On `AQ_STATUS_OK`, `*server_json_out` receives the server as JSON
/// (`{"id","hostname","is_paused","paused_at","created_at"}`), which the
/// caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin or operator (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `id`, `hostname` NULL or NUL-terminated strings;
/// `server_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_server_create(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: *const c_char,
    hostname: *const c_char,
    server_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let id = unsafe { str_arg(id, "id") }?;
        let hostname = unsafe { opt_str_arg(hostname, "hostname") }?;
        let out = unsafe { Out::new(server_json_out, "server_json_out") }?;
        let server = queue.create_server(id, hostname)?;
        out.write_json(&server);
        Ok(())
    }
}

/// Looks up a server: `AQ_STATUS_NOT_FOUND` (`Server '{id}' not found`) if
/// unknown. On `AQ_STATUS_OK`, `*server_json_out` receives the server as
/// JSON, which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must not
/// be an agent (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// As for `aq_server_create`.
#[no_mangle]
pub unsafe extern "C" fn aq_server_get(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: *const c_char,
    server_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let id = unsafe { str_arg(id, "id") }?;
        let out = unsafe { Out::new(server_json_out, "server_json_out") }?;
        let server = queue.get_server(id)?;
        out.write_json(&server);
        Ok(())
    }
}

/// Puts a server in maintenance mode (idempotent): its new actions wait as
/// `pending` for a human. On `AQ_STATUS_OK`, `*server_json_out` receives the
/// server as JSON, which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin or operator (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// As for `aq_server_create`.
#[no_mangle]
pub unsafe extern "C" fn aq_server_pause(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: *const c_char,
    server_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let id = unsafe { str_arg(id, "id") }?;
        let out = unsafe { Out::new(server_json_out, "server_json_out") }?;
        let server = queue.pause_server(id)?;
        out.write_json(&server);
        Ok(())
    }
}

/// Takes a server out of maintenance mode (idempotent). On `AQ_STATUS_OK`,
/// `*server_json_out` receives the server as JSON, which the caller frees
/// with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin or operator (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// As for `aq_server_create`.
#[no_mangle]
pub unsafe extern "C" fn aq_server_unpause(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: *const c_char,
    server_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let id = unsafe { str_arg(id, "id") }?;
        let out = unsafe { Out::new(server_json_out, "server_json_out") }?;
        let server = queue.unpause_server(id)?;
        out.write_json(&server);
        Ok(())
    }
}

/// Lists every registered server, ordered by id. On `AQ_STATUS_OK`,
/// `*servers_json_out` receives a JSON array of servers as `aq_server_create`
/// writes them (possibly `[]`), which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must not
/// be an agent (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `servers_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_server_list(
    queue: *const aq_queue,
    actor: *const aq_actor,
    servers_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(servers_json_out, "servers_json_out") }?;
        out.write_json(&queue.list_servers()?);
        Ok(())
    }
}

pub(crate) fn parse_status(status: Option<&str>) -> Result<Option<ActionStatus>, Error> {
    status.map(ActionStatus::from_str).transpose()
}

/// Lists one server's actions, newest first: `AQ_STATUS_NOT_FOUND` for an
/// unknown server. `status` may be NULL (any) or a status name (`"pending"`,
/// ...); `limit` 1–`AQ_MAX_PAGE_LIMIT` (Python's and HTTP's default is
/// `AQ_DEFAULT_PAGE_LIMIT`), `offset` ≥ 0; `before_id` NULL, or points at
/// an earlier page's `next_before_id` (keyset paging, ≥ 1: the same cost at
/// any depth). Lost leases are expired first.
///
/// On `AQ_STATUS_OK`, `*page_json_out` receives
/// `{"actions":[...],"total":N,"limit":L,"offset":O,"next_before_id":ID|null}`
/// (`total` counts every match; `next_before_id` is null on the last page),
/// which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must not
/// be an agent (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `server_id`, `status` NULL or NUL-terminated strings;
/// `before_id` NULL or a readable `int64_t`; `page_json_out` NULL or a
/// writable `char *`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aq_server_list_actions(
    queue: *const aq_queue,
    actor: *const aq_actor,
    server_id: *const c_char,
    status: *const c_char,
    limit: i64,
    offset: i64,
    before_id: *const i64,
    page_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let server_id = unsafe { str_arg(server_id, "server_id") }?;
        let status = unsafe { opt_str_arg(status, "status") }?;
        let before_id = unsafe { before_id.as_ref() }.copied();
        let out = unsafe { Out::new(page_json_out, "page_json_out") }?;
        let page = queue
            .list_server_actions(server_id, parse_status(status)?, limit, offset, before_id)?;
        out.write_json(&page);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Actions

/// Queues an action. `request_json` is a JSON object:
/// `{"server_id": "web-1", "action_type": "restart_service",
///   "service_name": "nginx", "alert_id": 7, "created_by": "dashboard",
///   "params": {"name": "value"}}` — `server_id` and `action_type` required;
/// `service_name` is shorthand for `params.service_name`; `alert_id` (≥ 1),
/// `created_by` (default `"dashboard"`) and `params` optional; other keys are
/// refused. The queue builds the command from the whitelist.
///
/// The create rules, in order (`docs/contract/create-rules.md#order`):
/// malformed input or JSON →
/// `AQ_STATUS_INVALID_INPUT`; unknown server → `AQ_STATUS_NOT_FOUND`; type or
/// a parameter value not whitelisted → `AQ_STATUS_NOT_WHITELISTED`; the
/// conflict policy → `AQ_STATUS_CONFLICT` (the colliding action's id via
/// `aq_last_error_existing_action_id`). A new action is `approved` by
/// `"auto"`, or `pending` when the server is paused.
///
/// On `AQ_STATUS_OK`, `*action_json_out` receives the action as JSON (every
/// field, nulls included), which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); the trusted host
/// records the request's `created_by`. Any other actor is recorded as
/// `created_by` whatever the request says: a trusted name, or a principal,
/// which must be an admin, operator or requester (else
/// `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `request_json` NULL or a NUL-terminated string;
/// `action_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_create(
    queue: *const aq_queue,
    actor: *const aq_actor,
    request_json: *const c_char,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let text = unsafe { str_arg(request_json, "request_json") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let action = queue.create_action(&NewAction::from_json(text)?)?;
        out.write_json(&action);
        Ok(())
    }
}

/// Looks up an action (after expiring lost leases): `AQ_STATUS_NOT_FOUND`
/// (`Action {id} not found`) if unknown. On `AQ_STATUS_OK`, `*action_json_out` receives the action as
/// JSON, which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must not
/// be an agent (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `action_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_get(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let action = queue.get_action(id)?;
        out.write_json(&action);
        Ok(())
    }
}

/// Lists actions, newest first. Each filter may be NULL (no filter):
/// `status` a status name, `server_id`, `action_type`. `limit`
/// 1–`AQ_MAX_PAGE_LIMIT` (Python's and HTTP's default is
/// `AQ_DEFAULT_PAGE_LIMIT`), `offset` ≥ 0, `before_id` NULL or pointing at
/// an earlier page's `next_before_id` (keyset paging, ≥ 1); otherwise
/// `AQ_STATUS_INVALID_INPUT`. Lost leases are expired first.
///
/// On `AQ_STATUS_OK`, `*page_json_out` receives
/// `{"actions":[...],"total":N,"limit":L,"offset":O,"next_before_id":ID|null}`
/// (`total` counts every match; `next_before_id` is null on the last page),
/// which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must not
/// be an agent (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; the filters NULL or NUL-terminated strings; `before_id` NULL
/// or a readable `int64_t`; `page_json_out` NULL or a writable `char *`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aq_action_list(
    queue: *const aq_queue,
    actor: *const aq_actor,
    status: *const c_char,
    server_id: *const c_char,
    action_type: *const c_char,
    limit: i64,
    offset: i64,
    before_id: *const i64,
    page_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let status = unsafe { opt_str_arg(status, "status") }?;
        let server_id = unsafe { opt_str_arg(server_id, "server_id") }?;
        let action_type = unsafe { opt_str_arg(action_type, "action_type") }?;
        let out = unsafe { Out::new(page_json_out, "page_json_out") }?;
        let query = ActionQuery {
            status: parse_status(status)?,
            server_id: server_id.map(str::to_owned),
            action_type: action_type.map(str::to_owned),
            limit,
            offset,
            before_id: unsafe { before_id.as_ref() }.copied(),
        };
        let page = queue.list_actions(&query)?;
        out.write_json(&page);
        Ok(())
    }
}

/// pending → approved, approved by the actor. Any other current status is
/// `AQ_STATUS_CONFLICT`
/// (`Cannot approve action with status '...' (must be pending)`).
///
/// On `AQ_STATUS_OK`, `*action_json_out` receives the action as JSON, which
/// the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin or operator (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `action_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_approve(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let action = queue.approve_action(id)?;
        out.write_json(&action);
        Ok(())
    }
}

/// pending → rejected, with a `reason` of 1–`AQ_MAX_REASON_CHARS`
/// characters (required), rejected by the actor. On `AQ_STATUS_OK`,
/// `*action_json_out` receives the action as JSON, which the caller frees
/// with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin or operator (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `reason` NULL or a NUL-terminated string;
/// `action_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_reject(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    reason: *const c_char,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let reason = unsafe { str_arg(reason, "reason") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let action = queue.reject_action(id, reason)?;
        out.write_json(&action);
        Ok(())
    }
}

/// pending | approved → cancelled (not once executing), by the actor. On
/// `AQ_STATUS_OK`, `*action_json_out` receives the action as JSON, which the
/// caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin or operator, or a requester for its own pending actions (else
/// `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// As for `aq_action_approve`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_cancel(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let action = queue.cancel_action(id)?;
        out.write_json(&action);
        Ok(())
    }
}

/// The optional lease argument: NULL asks for the queue's default; a value
/// (seconds) goes to the core, which refuses 0 or less like in every host.
///
/// # Safety
///
/// `seconds` must be NULL or point to a readable `double`.
pub(crate) unsafe fn lease(seconds: *const f64) -> Option<Duration> {
    // SAFETY: per the caller's contract.
    unsafe { seconds.as_ref() }.map(|s| limits::lease_seconds(*s))
}

/// For `server_id`'s agent: claims the oldest approved action of that server,
/// which becomes `executing`. Each action is claimed exactly once, even with
/// concurrent claimers in several processes. `lease_seconds` points to the
/// lease in seconds, or is NULL for the queue's default lease; 0 (or less) or
/// more than the longest lease is `AQ_STATUS_INVALID_INPUT`. Lost leases are
/// expired first (see `aq_options_set_expire_leases_on_read`).
///
/// On `AQ_STATUS_OK`, `*claim_json_out` receives either the claim as JSON —
/// the action's fields plus `"lease_token"`, the secret that
/// `aq_action_heartbeat` and `aq_action_report_result` require — which the
/// caller frees with `aq_string_free`, or NULL when no approved action is
/// waiting.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// the server's own agent or an admin (else `AQ_STATUS_PERMISSION_DENIED`,
/// changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `server_id` NULL or a NUL-terminated string; `lease_seconds`
/// NULL or a readable `double`; `claim_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_claim_next(
    queue: *const aq_queue,
    actor: *const aq_actor,
    server_id: *const c_char,
    lease_seconds: *const f64,
    claim_json_out: *mut *mut c_char,
) -> aq_status {
    // SAFETY: per the caller's contract, which is the waiting form's.
    unsafe {
        aq_action_claim_next_wait(queue, actor, server_id, lease_seconds, 0.0, claim_json_out)
    }
}

/// [`aq_action_claim_next`] with a wait (`docs/contract/push.md`): when no
/// approved action of `server_id` is waiting, blocks the calling thread up to
/// `wait_seconds` (0 to `AQ_MAX_WAIT_SECONDS`; 0 answers at once; anything
/// else, NaN included, is `AQ_STATUS_INVALID_INPUT` before anything is
/// done) and claims the first action approved meanwhile — in this process,
/// another process on the same SQLite file or another PostgreSQL replica.
/// `*claim_json_out` receives the claim as JSON (freed with
/// `aq_string_free`), or NULL when the wait ended with nothing approved.
/// The waiting thread holds no lock of the queue: other threads use the
/// same handle meanwhile. Arguments, actor and errors as for
/// [`aq_action_claim_next`].
///
/// # Safety
///
/// As for [`aq_action_claim_next`]; `queue` and `actor` stay live until
/// the call returns.
#[no_mangle]
pub unsafe extern "C" fn aq_action_claim_next_wait(
    queue: *const aq_queue,
    actor: *const aq_actor,
    server_id: *const c_char,
    lease_seconds: *const f64,
    wait_seconds: f64,
    claim_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let server_id = unsafe { str_arg(server_id, "server_id") }?;
        let out = unsafe { Out::new(claim_json_out, "claim_json_out") }?;
        let lease = unsafe { lease(lease_seconds) };
        let wait = limits::wait_seconds(wait_seconds)?;
        let claim = queue.claim_next(server_id, lease, Some(wait))?;
        out.write(claim.map_or(std::ptr::null_mut(), |c| json_string(&c)));
        Ok(())
    }
}

/// Extends the lease of the executor holding `lease_token` to `*lease_seconds`
/// from now (NULL: the queue's default lease; 0 is `AQ_STATUS_INVALID_INPUT`).
/// A wrong or expired token is `AQ_STATUS_CONFLICT`. On `AQ_STATUS_OK`, `*action_json_out` receives
/// the action as JSON, which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// the agent of the action's server or an admin (else
/// `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `lease_token` NULL or a NUL-terminated string;
/// `lease_seconds` NULL or a readable `double`; `action_json_out` NULL or a
/// writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_heartbeat(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    lease_token: *const c_char,
    lease_seconds: *const f64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let token = unsafe { str_arg(lease_token, "lease_token") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let lease = unsafe { lease(lease_seconds) };
        let action = queue.heartbeat(id, token, lease)?;
        out.write_json(&action);
        Ok(())
    }
}

/// Finishes the action held with `lease_token`: `exit_code` 0 → `completed`,
/// anything else → `failed`. `stdout_text` / `stderr_text` may be NULL; they
/// are kept up to the output cap (UTF-8 required: invalid bytes are
/// `AQ_STATUS_INVALID_UTF8`). A wrong or expired token is
/// `AQ_STATUS_CONFLICT`, so a stale agent never overwrites a newer outcome.
///
/// On `AQ_STATUS_OK`, `*action_json_out` receives the action as JSON, which
/// the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// the agent of the action's server or an admin (else
/// `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; the strings NULL or NUL-terminated; `action_json_out` NULL
/// or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_report_result(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    lease_token: *const c_char,
    exit_code: i32,
    stdout_text: *const c_char,
    stderr_text: *const c_char,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let token = unsafe { str_arg(lease_token, "lease_token") }?;
        let stdout_text = unsafe { opt_str_arg(stdout_text, "stdout_text") }?;
        let stderr_text = unsafe { opt_str_arg(stderr_text, "stderr_text") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let action = queue
            .report_result(id, token, exit_code, stdout_text, stderr_text)?;
        out.write_json(&action);
        Ok(())
    }
}

/// A heartbeat that waits (`docs/contract/cancel-and-output.md#cancel-request`):
/// extends the lease like `aq_action_heartbeat`, then waits up to
/// `wait_seconds` (0..=`AQ_MAX_WAIT_SECONDS`; 0 answers at once) for a cancel
/// request on the action. On `AQ_STATUS_OK`, `*action_json_out` receives the
/// action as JSON (`cancel_requested_at` set when someone asked to stop it),
/// which the caller frees with `aq_string_free`. A wrong or expired token is
/// `AQ_STATUS_CONFLICT`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// the agent of the action's server or an admin.
///
/// # Safety
///
/// As for `aq_action_heartbeat`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_await_cancel(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    lease_token: *const c_char,
    lease_seconds: *const f64,
    wait_seconds: f64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let token = unsafe { str_arg(lease_token, "lease_token") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let lease = unsafe { lease(lease_seconds) };
        let wait = limits::wait_seconds(wait_seconds)?;
        let action = queue.await_cancel(id, token, lease, Some(wait))?;
        out.write_json(&action);
        Ok(())
    }
}

/// Finishes the action held with `lease_token` whose command the agent
/// stopped on a cancel request: it ends `cancelled`, `cancelled_by` who
/// asked, with `exit_code` and the output (kept up to the output cap). No
/// cancel requested, or a wrong or expired token, is `AQ_STATUS_CONFLICT`.
/// On `AQ_STATUS_OK`, `*action_json_out` receives the action as JSON, which
/// the caller frees with `aq_string_free`.
///
/// `actor`: as for `aq_action_report_result`.
///
/// # Safety
///
/// As for `aq_action_report_result`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_report_cancelled(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    lease_token: *const c_char,
    exit_code: i32,
    stdout_text: *const c_char,
    stderr_text: *const c_char,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let token = unsafe { str_arg(lease_token, "lease_token") }?;
        let stdout_text = unsafe { opt_str_arg(stdout_text, "stdout_text") }?;
        let stderr_text = unsafe { opt_str_arg(stderr_text, "stderr_text") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let action = queue
            .report_cancelled(id, token, exit_code, stdout_text, stderr_text)?;
        out.write_json(&action);
        Ok(())
    }
}

/// Adds chunk `seq` (from 1) of the live output of the executing action held
/// with `lease_token` (`docs/contract/cancel-and-output.md#live-output`);
/// `stdout_text` / `stderr_text` may be NULL. `*stored_out` receives 1 when
/// the chunk was stored, 0 for a repeated seq or nothing left under the
/// output cap. `seq` < 1 is `AQ_STATUS_INVALID_INPUT`; a wrong or expired
/// token, or an action no longer executing, `AQ_STATUS_CONFLICT`.
///
/// `actor`: as for `aq_action_report_result`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; the strings NULL or NUL-terminated; `stored_out` NULL or a
/// writable `int`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_append_output(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    lease_token: *const c_char,
    seq: i64,
    stdout_text: *const c_char,
    stderr_text: *const c_char,
    stored_out: *mut c_int,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let token = unsafe { str_arg(lease_token, "lease_token") }?;
        let stdout_text = unsafe { opt_str_arg(stdout_text, "stdout_text") }?;
        let stderr_text = unsafe { opt_str_arg(stderr_text, "stderr_text") }?;
        let out = unsafe { Out::new(stored_out, "stored_out") }?;
        let stored = queue.append_output(id, token, seq, stdout_text, stderr_text)?;
        out.write(c_int::from(stored));
        Ok(())
    }
}

/// The live output chunks of action `id` with `seq` > `after`, by seq. With
/// `wait_seconds` > 0 (at most `AQ_MAX_WAIT_SECONDS`) an empty answer waits
/// for a chunk or for the action to finish. On `AQ_STATUS_OK`,
/// `*chunks_json_out` receives a JSON array of `{seq, stdout, stderr, at}`,
/// which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); every role but agent.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `chunks_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_output_since(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    after: i64,
    wait_seconds: f64,
    chunks_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(chunks_json_out, "chunks_json_out") }?;
        let wait = limits::wait_seconds(wait_seconds)?;
        let chunks = queue.output_since(id, after, Some(wait))?;
        out.write_json(&chunks);
        Ok(())
    }
}

/// Fails every executing action whose lease has run out (`exit_code` -1,
/// `stderr` says why; never retried). On `AQ_STATUS_OK`, `*actions_json_out`
/// receives a JSON array of the actions it failed (possibly `[]`), which the
/// caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin or operator (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `actions_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_expire_leases(
    queue: *const aq_queue,
    actor: *const aq_actor,
    actions_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(actions_json_out, "actions_json_out") }?;
        let actions = queue.expire_leases()?;
        out.write_json(&actions);
        Ok(())
    }
}

/// How many actions each server has in each status, read from the totals the
/// store keeps (no scan of the actions; lost leases are expired first). On
/// `AQ_STATUS_OK`, `*counts_json_out` receives a JSON array of
/// `{"server_id","status","count"}`, one per pair with at least one action,
/// ordered by server id, then status in lifecycle order (`"pending"`,
/// `"approved"`, ...), which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must not
/// be an agent (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `counts_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_count(
    queue: *const aq_queue,
    actor: *const aq_actor,
    counts_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(counts_json_out, "counts_json_out") }?;
        out.write_json(&queue.count_actions()?);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Audit events

/// Reads the audit log: up to `limit` (1–`AQ_MAX_EVENTS_LIMIT`) events with
/// an id greater than `cursor` (0 for the start), oldest first (lost leases
/// are expired first). Pass the last event's `id` as the
/// next cursor.
///
/// On `AQ_STATUS_OK`, `*events_json_out` receives a JSON array of
/// `{"id","action_id","from_status","to_status","by","at","detail","kind","subject"}`
/// (possibly `[]`; `kind` is `action`, `server` or `credential`, and the
/// latter two have null `action_id`, `from_status` and `to_status`), which
/// the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must not
/// be an agent (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `events_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_event_list(
    queue: *const aq_queue,
    actor: *const aq_actor,
    cursor: i64,
    limit: i64,
    events_json_out: *mut *mut c_char,
) -> aq_status {
    // SAFETY: per the caller's contract, which is the waiting form's.
    unsafe { aq_event_list_wait(queue, actor, cursor, limit, 0.0, events_json_out) }
}

/// [`aq_event_list`] with a wait (`docs/contract/push.md`): when no event
/// past `cursor` exists, blocks the calling thread up to `wait_seconds` (0
/// to `AQ_MAX_WAIT_SECONDS`; 0 answers at once; anything else, NaN
/// included, is `AQ_STATUS_INVALID_INPUT`) for the next one committed
/// anywhere. `*events_json_out` receives the JSON array as for
/// [`aq_event_list`] (`[]` when the wait ended empty), which the caller
/// frees with `aq_string_free`. Arguments, actor and errors as for
/// [`aq_event_list`].
///
/// # Safety
///
/// As for [`aq_event_list`]; `queue` and `actor` stay live until the call
/// returns.
#[no_mangle]
pub unsafe extern "C" fn aq_event_list_wait(
    queue: *const aq_queue,
    actor: *const aq_actor,
    cursor: i64,
    limit: i64,
    wait_seconds: f64,
    events_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(events_json_out, "events_json_out") }?;
        let wait = limits::wait_seconds(wait_seconds)?;
        let events = queue.events_since(cursor, limit, Some(wait))?;
        out.write_json(&events);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Approval policy and tamper-evident audit

/// Rejects (by `system`, reason `approval expired after {ttl}s`) every pending
/// action whose whitelist entry's `approval.ttl_seconds` has run out (reads do
/// this first unless disabled with `aq_options_set_expire_leases_on_read`).
/// On `AQ_STATUS_OK`, `*actions_json_out` receives a JSON array of the actions
/// it rejected (possibly `[]`), which the caller frees with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin or operator (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `actions_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_expire_approvals(
    queue: *const aq_queue,
    actor: *const aq_actor,
    actions_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(actions_json_out, "actions_json_out") }?;
        let actions = queue.expire_approvals()?;
        out.write_json(&actions);
        Ok(())
    }
}

/// How many actions this handle has failed for a lost lease since it was
/// opened, whichever call expired them (a read, a claim or
/// `aq_action_expire_leases`). Other handles and processes count their own:
/// like any process-local counter, a metrics scrape sums them. On
/// `AQ_STATUS_OK`, `*count_out` receives the count.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); every principal may
/// read it.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `count_out` NULL or a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_lease_expiries(
    queue: *const aq_queue,
    actor: *const aq_actor,
    count_out: *mut u64,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(count_out, "count_out") }?;
        out.write(queue.lease_expiries());
        Ok(())
    }
}

/// Walks the tamper-evident audit chain and the head kept apart from it. On
/// `AQ_STATUS_OK`, `*report_json_out` receives
/// `{"checked": <events verified before the first bad one>,
/// "first_bad_event_id": <id or null>, "pruned_through": <id or null>}`
/// (`pruned_through`: the last pruned event, the chain verified from its
/// checkpoint on), which the caller frees with
/// `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `report_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_audit_verify(
    queue: *const aq_queue,
    actor: *const aq_actor,
    report_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(report_json_out, "report_json_out") }?;
        let report = queue.verify_audit()?;
        out.write_json(&report);
        Ok(())
    }
}

/// Deletes the finished actions (completed, failed, rejected, cancelled)
/// whose last change is more than `older_than_seconds` old, with their
/// events, in batches, behind an audit checkpoint
/// (`docs/contract/retention.md#prune`). A negative age is
/// `AQ_STATUS_INVALID_INPUT`.
///
/// On `AQ_STATUS_OK`, `*report_json_out` receives `{"pruned_actions": N,
/// "pruned_through": <event id or null>}`, which the caller frees with
/// `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `report_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_prune(
    queue: *const aq_queue,
    actor: *const aq_actor,
    older_than_seconds: i64,
    report_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(report_json_out, "report_json_out") }?;
        out.write_json(&queue.prune(older_than_seconds)?);
        Ok(())
    }
}

/// An export in progress (`aq_queue_export`): read it line by line with
/// `aq_export_next`, free it with `aq_export_free`. Owned by the caller;
/// used by one thread at a time.
#[allow(non_camel_case_types)]
pub struct aq_export {
    lines: std::sync::Mutex<actionq::Export>,
}

/// Starts an export of the finished actions whose last change is before
/// `before` (RFC 3339, e.g. `"2026-01-01T00:00:00Z"`), oldest first
/// (`docs/contract/retention.md#export`). A malformed time is
/// `AQ_STATUS_INVALID_INPUT`.
///
/// On `AQ_STATUS_OK`, `*export_out` receives a new `aq_export`, which the
/// caller reads with `aq_export_next` and frees with `aq_export_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `before` NULL or a NUL-terminated string; `export_out` NULL
/// or a writable `aq_export *`.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_export(
    queue: *const aq_queue,
    actor: *const aq_actor,
    before: *const c_char,
    export_out: *mut *mut aq_export,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let before = unsafe { str_arg(before, "before") }?;
        let before = chrono::DateTime::parse_from_rfc3339(before)
            .map_err(|e| Error::InvalidInput(format!("before is not an RFC 3339 time: {e}")))?
            .to_utc();
        let out = unsafe { Out::new(export_out, "export_out") }?;
        let lines = queue.export(before)?;
        out.write(Box::into_raw(Box::new(aq_export {
            lines: std::sync::Mutex::new(lines),
        })));
        Ok(())
    }
}

/// The next line of an export: on `AQ_STATUS_OK`, `*line_out` receives one
/// action with its events as JSON (`{"action": {...}, "events": [...]}`),
/// which the caller frees with `aq_string_free`, or NULL once every line was
/// read. Reads the store a page at a time.
///
/// # Safety
///
/// `export` must be NULL or a live `aq_export`; `line_out` NULL or a
/// writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_export_next(
    export: *const aq_export,
    line_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let export = unsafe { ref_arg(export, "export") }?;
        let out = unsafe { Out::new(line_out, "line_out") }?;
        let next = export.lines.lock().unwrap_or_else(|e| e.into_inner()).next();
        match next {
            None => out.write(std::ptr::null_mut()),
            Some(line) => out.write_json(&line?),
        }
        Ok(())
    }
}

/// Frees an export from `aq_queue_export`. NULL is ignored.
///
/// # Safety
///
/// `export` must be NULL or an `aq_export` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn aq_export_free(export: *mut aq_export) {
    if !export.is_null() {
        // SAFETY: per the caller's contract, it came from `aq_queue_export`.
        drop(unsafe { Box::from_raw(export) });
    }
}

/// For an agent, before it runs a claimed action: whether the claim is the
/// server's, signed by the claim-signing key it pins. `public_key_pem` is
/// that key (PEM `PUBLIC KEY`, the server's `claim-signing.pub`);
/// `claim_json` the claim response as the server sent it, with its
/// `signature` field. `AQ_STATUS_OK` when the signature verifies over the
/// claim's fields; `AQ_STATUS_UNAUTHENTICATED` when it is missing or does
/// not; `AQ_STATUS_INVALID_INPUT` for a key or JSON that is not one. The
/// caller still checks the claim against its own whitelist (README "What
/// the agent trusts").
///
/// # Safety
///
/// `public_key_pem` and `claim_json` must be NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn aq_claim_verify(
    public_key_pem: *const c_char,
    claim_json: *const c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let pem = unsafe { str_arg(public_key_pem, "public_key_pem") }?;
        let text = unsafe { str_arg(claim_json, "claim_json") }?;
        actionq::ClaimVerifyingKey::from_pem(pem)?.verify_claim_json(text)?;
        Ok(())
    }
}

/// For an agent, before it runs a claimed action: whether what would run is
/// what was approved. `action_json` is an action or claim as this API returns
/// it (`aq_action_claim_next`'s JSON); `*matches_out` receives 1 when the
/// digest recomputed from its `server_id`, `action_type`, `argv`, `env` and
/// `whitelist_version` equals its `digest` and every approval approved that
/// digest, else 0. JSON that is not such a record is `AQ_STATUS_INVALID_INPUT`.
///
/// # Safety
///
/// `action_json` must be NULL or a NUL-terminated string; `matches_out` NULL
/// or a writable `int`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_digest_matches(
    action_json: *const c_char,
    matches_out: *mut std::ffi::c_int,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let text = unsafe { str_arg(action_json, "action_json") }?;
        let out = unsafe { Out::new(matches_out, "matches_out") }?;
        let action: actionq::Action = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("action_json is not an action: {e}")))?;
        out.write(std::ffi::c_int::from(action.digest_matches()));
        Ok(())
    }
}
