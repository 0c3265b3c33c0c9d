//! Identity: `aq_principal` (who acts), authentication, credentials, and the
//! `*_as` entry points — every queue operation performed as a principal, which
//! the core checks against its permission table (`AQ_STATUS_PERMISSION_DENIED`
//! changes nothing) and records under the principal's name. Each converts its
//! arguments and calls `actionq::Acting` once.

use std::borrow::Cow;
use std::ffi::{c_char, CStr};
use std::str::FromStr;

use actionq::{ActionQuery, NewAction, Principal, Role};

use crate::error::{aq_status, Failure};
use crate::ffi::{json_string, opt_str_arg, ref_arg, str_arg, Out};
use crate::ffi_boundary;
use crate::queue::{aq_queue, lease, parse_status, queue_arg};

/// Who is acting: a name (what actions record), a role and, for an agent, its
/// server. From `aq_queue_authenticate` (a credential's secret) or
/// `aq_principal_new` (a host that authenticates people itself). Immutable:
/// may be used from many threads at once. Free with `aq_principal_free`.
#[allow(non_camel_case_types)]
pub struct aq_principal {
    inner: Principal,
}

/// # Safety
///
/// `ptr` must be NULL or a live `aq_principal`.
unsafe fn principal_arg<'a>(ptr: *const aq_principal) -> Result<&'a Principal, Failure> {
    // SAFETY: forwarded to the caller.
    Ok(&unsafe { ref_arg(ptr, "principal") }?.inner)
}

fn new_principal(inner: Principal) -> *mut aq_principal {
    Box::into_raw(Box::new(aq_principal { inner }))
}

/// A principal built by a host that authenticates people itself (trusted, like
/// a `by` string): `name`, `role` (`"admin"`, `"operator"`, `"requester"`,
/// `"viewer"` or `"agent"`; anything else is `AQ_STATUS_INVALID_INPUT`) and,
/// for an agent, its `server_id` (NULL otherwise).
///
/// On `AQ_STATUS_OK`, `*principal_out` receives a new handle that the caller
/// owns and frees with `aq_principal_free`.
///
/// # Safety
///
/// `name`, `role`, `server_id` must be NULL or NUL-terminated strings;
/// `principal_out` NULL or a writable `aq_principal *`.
#[no_mangle]
pub unsafe extern "C" fn aq_principal_new(
    name: *const c_char,
    role: *const c_char,
    server_id: *const c_char,
    principal_out: *mut *mut aq_principal,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let name = unsafe { str_arg(name, "name") }?;
        let role = Role::from_str(unsafe { str_arg(role, "role") }?)?;
        let server_id = unsafe { opt_str_arg(server_id, "server_id") }?;
        let out = unsafe { Out::new(principal_out, "principal_out") }?;
        out.write(new_principal(Principal {
            name: name.to_owned(),
            role,
            server_id: server_id.map(str::to_owned),
        }));
        Ok(())
    }
}

/// The principal a credential's `secret` belongs to. An unknown, revoked or
/// malformed secret (empty, over-long, not ASCII, not even UTF-8) is
/// `AQ_STATUS_UNAUTHENTICATED`, whose message never contains it. Reads only.
///
/// On `AQ_STATUS_OK`, `*principal_out` receives a new handle that the caller
/// owns and frees with `aq_principal_free`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `secret` NULL or a NUL-terminated
/// string; `principal_out` NULL or a writable `aq_principal *`.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_authenticate(
    queue: *const aq_queue,
    secret: *const c_char,
    principal_out: *mut *mut aq_principal,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        if secret.is_null() {
            return Err(Failure::NullArgument("secret"));
        }
        // Bytes that are not UTF-8 are a malformed secret, refused by the
        // core like any other (never INVALID_UTF8, whose message would
        // describe the bytes).
        let secret: Cow<'_, str> = unsafe { CStr::from_ptr(secret) }.to_string_lossy();
        let out = unsafe { Out::new(principal_out, "principal_out") }?;
        out.write(new_principal(queue.authenticate(&secret)?));
        Ok(())
    }
}

/// Writes the principal as JSON `{"name","role","server_id"}` to `*json_out`,
/// which the caller frees with `aq_string_free`.
///
/// # Safety
///
/// `principal` must be NULL or a live handle; `json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_principal_json(
    principal: *const aq_principal,
    json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (both): per the caller's contract.
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(json_out, "json_out") }?;
        out.write_json(principal);
        Ok(())
    }
}

/// Frees a principal. `aq_principal_free(NULL)` does nothing.
///
/// # Safety
///
/// `principal` must be NULL or a handle not yet freed and no longer in use.
#[no_mangle]
pub unsafe extern "C" fn aq_principal_free(principal: *mut aq_principal) {
    if !principal.is_null() {
        // SAFETY: it came from Box::into_raw here and is freed once.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(unsafe { Box::from_raw(principal) })
        }));
    }
}

// ---------------------------------------------------------------------------
// Credentials. The trusted calls take no principal; their `_as` namesakes
// require one (NULL is AQ_STATUS_NULL_ARGUMENT, never "trusted"), so a
// failed `aq_queue_authenticate` that left a NULL principal cannot act.

/// Issues a credential, trusted (for a host that authenticates its admins
/// itself; `aq_credential_issue_as` checks a principal): `name`
/// (1–`AQ_MAX_NAME_CHARS` characters, what actions record when it acts;
/// `agent`, `auto`, `system`, `dashboard` are reserved), `role`, and for an
/// agent its `server_id` (required then, which must exist; NULL for other
/// roles).
///
/// On `AQ_STATUS_OK`, `*issued_json_out` receives
/// `{"id","name","role","server_id","prefix","created_at","revoked_at","secret"}`
/// — the only time the secret exists outside its holder (only its SHA-256 is
/// stored) — which the caller frees with `aq_string_free` (after wiping it,
/// if it cares).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; the strings NULL or NUL-terminated;
/// `issued_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_issue(
    queue: *const aq_queue,
    name: *const c_char,
    role: *const c_char,
    server_id: *const c_char,
    issued_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let role = Role::from_str(unsafe { str_arg(role, "role") }?)?;
        let server_id = unsafe { opt_str_arg(server_id, "server_id") }?;
        let out = unsafe { Out::new(issued_json_out, "issued_json_out") }?;
        out.write(json_string(&queue.issue_credential(name, role, server_id)?));
        Ok(())
    }
}

/// `aq_credential_issue` as `principal`, which must be an admin.
///
/// # Safety
///
/// As for `aq_credential_issue`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_issue_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    name: *const c_char,
    role: *const c_char,
    server_id: *const c_char,
    issued_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let role = Role::from_str(unsafe { str_arg(role, "role") }?)?;
        let server_id = unsafe { opt_str_arg(server_id, "server_id") }?;
        let out = unsafe { Out::new(issued_json_out, "issued_json_out") }?;
        let issued = queue
            .as_principal(principal)
            .issue_credential(name, role, server_id)?;
        out.write(json_string(&issued));
        Ok(())
    }
}

/// Lists every credential, revoked ones included, by id, trusted: a JSON
/// array of `{"id","name","role","server_id","prefix","created_at","revoked_at"}`,
/// never a secret. The caller frees `*credentials_json_out` with
/// `aq_string_free`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `credentials_json_out` NULL or a
/// writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_list(
    queue: *const aq_queue,
    credentials_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let out = unsafe { Out::new(credentials_json_out, "credentials_json_out") }?;
        out.write_json(&queue.list_credentials()?);
        Ok(())
    }
}

/// `aq_credential_list` as `principal`, which must be an admin.
///
/// # Safety
///
/// As for `aq_credential_list`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_list_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    credentials_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(credentials_json_out, "credentials_json_out") }?;
        out.write_json(&queue.as_principal(principal).list_credentials()?);
        Ok(())
    }
}

/// Revokes credential `id` at once, trusted, for every handle and process on
/// the same store (a second revoke keeps the first time);
/// `AQ_STATUS_NOT_FOUND` if unknown. The caller frees `*credential_json_out`
/// with `aq_string_free`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `credential_json_out` NULL or a
/// writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_revoke(
    queue: *const aq_queue,
    id: i64,
    credential_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let out = unsafe { Out::new(credential_json_out, "credential_json_out") }?;
        out.write_json(&queue.revoke_credential(id)?);
        Ok(())
    }
}

/// `aq_credential_revoke` as `principal`, which must be an admin.
///
/// # Safety
///
/// As for `aq_credential_revoke`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_revoke_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: i64,
    credential_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(credential_json_out, "credential_json_out") }?;
        out.write_json(&queue.as_principal(principal).revoke_credential(id)?);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Operations as a principal. Each is its trusted namesake without the `by`
// (the principal's name is recorded), with `principal` required; a refusal is
// AQ_STATUS_PERMISSION_DENIED and changes nothing.

/// `aq_server_create` as `principal` (admin, operator).
///
/// # Safety
///
/// As for `aq_server_create`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_server_create_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: *const c_char,
    hostname: *const c_char,
    server_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let id = unsafe { str_arg(id, "id") }?;
        let hostname = unsafe { opt_str_arg(hostname, "hostname") }?;
        let out = unsafe { Out::new(server_json_out, "server_json_out") }?;
        out.write_json(&queue.as_principal(principal).create_server(id, hostname)?);
        Ok(())
    }
}

/// `aq_server_get` as `principal` (every role but agent).
///
/// # Safety
///
/// As for `aq_server_create_as`.
#[no_mangle]
pub unsafe extern "C" fn aq_server_get_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: *const c_char,
    server_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let id = unsafe { str_arg(id, "id") }?;
        let out = unsafe { Out::new(server_json_out, "server_json_out") }?;
        out.write_json(&queue.as_principal(principal).get_server(id)?);
        Ok(())
    }
}

/// `aq_server_pause` as `principal` (admin, operator).
///
/// # Safety
///
/// As for `aq_server_create_as`.
#[no_mangle]
pub unsafe extern "C" fn aq_server_pause_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: *const c_char,
    server_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let id = unsafe { str_arg(id, "id") }?;
        let out = unsafe { Out::new(server_json_out, "server_json_out") }?;
        out.write_json(&queue.as_principal(principal).pause_server(id)?);
        Ok(())
    }
}

/// `aq_server_unpause` as `principal` (admin, operator).
///
/// # Safety
///
/// As for `aq_server_create_as`.
#[no_mangle]
pub unsafe extern "C" fn aq_server_unpause_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: *const c_char,
    server_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let id = unsafe { str_arg(id, "id") }?;
        let out = unsafe { Out::new(server_json_out, "server_json_out") }?;
        out.write_json(&queue.as_principal(principal).unpause_server(id)?);
        Ok(())
    }
}

/// `aq_server_list_actions` as `principal` (every role but agent).
///
/// # Safety
///
/// As for `aq_server_list_actions`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_server_list_actions_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    server_id: *const c_char,
    status: *const c_char,
    limit: i64,
    offset: i64,
    page_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let server_id = unsafe { str_arg(server_id, "server_id") }?;
        let status = unsafe { opt_str_arg(status, "status") }?;
        let out = unsafe { Out::new(page_json_out, "page_json_out") }?;
        let page = queue.as_principal(principal).list_server_actions(
            server_id,
            parse_status(status)?,
            limit,
            offset,
        )?;
        out.write_json(&page);
        Ok(())
    }
}

/// `aq_action_create` as `principal` (admin, operator, requester): the
/// action's `created_by` is the principal's name, whatever the request says.
///
/// # Safety
///
/// As for `aq_action_create`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_create_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    request_json: *const c_char,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let text = unsafe { str_arg(request_json, "request_json") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let request = NewAction::from_json(text)?;
        out.write_json(&queue.as_principal(principal).create_action(&request)?);
        Ok(())
    }
}

/// `aq_action_get` as `principal` (every role but agent).
///
/// # Safety
///
/// As for `aq_action_get`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_get_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: i64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        out.write_json(&queue.as_principal(principal).get_action(id)?);
        Ok(())
    }
}

/// `aq_action_list` as `principal` (every role but agent).
///
/// # Safety
///
/// As for `aq_action_list`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_list_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    status: *const c_char,
    server_id: *const c_char,
    action_type: *const c_char,
    limit: i64,
    offset: i64,
    page_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
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
        };
        out.write_json(&queue.as_principal(principal).list_actions(&query)?);
        Ok(())
    }
}

/// `aq_action_approve` by `principal` (admin, operator).
///
/// # Safety
///
/// As for `aq_action_get_as`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_approve_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: i64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        out.write_json(&queue.as_principal(principal).approve_action(id)?);
        Ok(())
    }
}

/// `aq_action_reject` by `principal` (admin, operator), with a required `reason`.
///
/// # Safety
///
/// As for `aq_action_get_as`; `reason` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn aq_action_reject_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: i64,
    reason: *const c_char,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let reason = unsafe { str_arg(reason, "reason") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        out.write_json(&queue.as_principal(principal).reject_action(id, reason)?);
        Ok(())
    }
}

/// `aq_action_cancel` by `principal` (admin, operator; a requester only its
/// own pending actions).
///
/// # Safety
///
/// As for `aq_action_get_as`.
#[no_mangle]
pub unsafe extern "C" fn aq_action_cancel_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: i64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        out.write_json(&queue.as_principal(principal).cancel_action(id)?);
        Ok(())
    }
}

/// `aq_action_claim_next` by `principal` (the server's own agent, or an
/// admin): `*claim_json_out` is NULL when nothing is approved.
///
/// # Safety
///
/// As for `aq_action_claim_next`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_claim_next_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    server_id: *const c_char,
    lease_seconds: *const f64,
    claim_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let server_id = unsafe { str_arg(server_id, "server_id") }?;
        let out = unsafe { Out::new(claim_json_out, "claim_json_out") }?;
        let lease = unsafe { lease(lease_seconds) };
        let claim = queue.as_principal(principal).claim_next(server_id, lease)?;
        out.write(claim.map_or(std::ptr::null_mut(), |c| json_string(&c)));
        Ok(())
    }
}

/// `aq_action_heartbeat` by `principal` (the action's server's agent, or an admin).
///
/// # Safety
///
/// As for `aq_action_heartbeat`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_heartbeat_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: i64,
    lease_token: *const c_char,
    lease_seconds: *const f64,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let token = unsafe { str_arg(lease_token, "lease_token") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let lease = unsafe { lease(lease_seconds) };
        out.write_json(&queue.as_principal(principal).heartbeat(id, token, lease)?);
        Ok(())
    }
}

/// `aq_action_report_result` by `principal` (the action's server's agent, or
/// an admin).
///
/// # Safety
///
/// As for `aq_action_report_result`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_report_result_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: i64,
    lease_token: *const c_char,
    exit_code: i32,
    stdout_text: *const c_char,
    stderr_text: *const c_char,
    action_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let token = unsafe { str_arg(lease_token, "lease_token") }?;
        let stdout_text = unsafe { opt_str_arg(stdout_text, "stdout_text") }?;
        let stderr_text = unsafe { opt_str_arg(stderr_text, "stderr_text") }?;
        let out = unsafe { Out::new(action_json_out, "action_json_out") }?;
        let action = queue.as_principal(principal).report_result(
            id,
            token,
            exit_code,
            stdout_text,
            stderr_text,
        )?;
        out.write_json(&action);
        Ok(())
    }
}

/// `aq_action_expire_leases` as `principal` (admin, operator).
///
/// # Safety
///
/// As for `aq_action_expire_leases`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_expire_leases_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    actions_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(actions_json_out, "actions_json_out") }?;
        out.write_json(&queue.as_principal(principal).expire_leases()?);
        Ok(())
    }
}

/// `aq_event_list` as `principal` (every role but agent).
///
/// # Safety
///
/// As for `aq_event_list`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_event_list_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    cursor: i64,
    limit: i64,
    events_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(events_json_out, "events_json_out") }?;
        out.write_json(&queue.as_principal(principal).events_since(cursor, limit)?);
        Ok(())
    }
}

/// `aq_server_list` as `principal` (every role but agent).
///
/// # Safety
///
/// As for `aq_server_list`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_server_list_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    servers_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(servers_json_out, "servers_json_out") }?;
        out.write_json(&queue.as_principal(principal).list_servers()?);
        Ok(())
    }
}

/// `aq_action_count` as `principal` (every role but agent).
///
/// # Safety
///
/// As for `aq_action_count`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_count_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    counts_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(counts_json_out, "counts_json_out") }?;
        out.write_json(&queue.as_principal(principal).count_actions()?);
        Ok(())
    }
}

/// `aq_action_expire_approvals` as `principal` (admin, operator).
///
/// # Safety
///
/// As for `aq_action_expire_approvals`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_action_expire_approvals_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    actions_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(actions_json_out, "actions_json_out") }?;
        out.write_json(&queue.as_principal(principal).expire_approvals()?);
        Ok(())
    }
}

/// `aq_audit_verify` as `principal` (admin).
///
/// # Safety
///
/// As for `aq_audit_verify`; `principal` NULL or a live principal.
#[no_mangle]
pub unsafe extern "C" fn aq_audit_verify_as(
    queue: *const aq_queue,
    principal: *const aq_principal,
    report_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { queue_arg(queue) }?;
        let principal = unsafe { principal_arg(principal) }?;
        let out = unsafe { Out::new(report_json_out, "report_json_out") }?;
        out.write_json(&queue.as_principal(principal).verify_audit()?);
        Ok(())
    }
}
