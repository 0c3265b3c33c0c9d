//! Identity: `aq_principal` (who acts), authentication, credentials, and
//! [`acting`], which every operation's entry point calls first: the queue
//! acting as the trusted host (the default), as a name the host vouches for
//! (`by`), or as a principal, which the core checks against its permission
//! table (`AQ_STATUS_PERMISSION_DENIED` changes nothing) and records under the
//! principal's name.

use std::borrow::Cow;
use std::ffi::{c_char, CStr};
use std::ptr::null;
use std::str::FromStr;

use actionq::{ActionQueue, Principal, Role};

use crate::error::{aq_status, Failure};
use crate::ffi::{json_string, opt_str_arg, ref_arg, str_arg, Out};
use crate::ffi_boundary;
use crate::queue::{aq_queue, queue_arg};

/// Who is acting: a name (what actions record), a role and, for an agent, its
/// server. From `aq_queue_authenticate` (a credential's secret) or
/// `aq_principal_new` (a host that authenticates people itself). Immutable:
/// may be used from many threads at once. Free with `aq_principal_free`.
#[allow(non_camel_case_types)]
pub struct aq_principal {
    inner: Principal,
}

/// A required principal argument (`aq_principal_json`'s).
///
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

/// The queue behind `queue` acting as the caller says: `principal` when not
/// NULL, else the trusted host; under the name `by` when not NULL, which the
/// core refuses for a principal (`by` is given only where the trusted host
/// may name who acts: approve, reject, cancel).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `principal` NULL or a live
/// `aq_principal`; `by` NULL or a NUL-terminated string.
pub(crate) unsafe fn acting(
    queue: *const aq_queue,
    principal: *const aq_principal,
    by: *const c_char,
) -> Result<ActionQueue, Failure> {
    // SAFETY (all): forwarded to the caller.
    let queue = unsafe { queue_arg(queue) }?;
    let principal = unsafe { principal.as_ref() };
    let by = unsafe { opt_str_arg(by, "by") }?;
    let queue = match principal {
        Some(principal) => queue.as_principal(&principal.inner),
        None => queue.clone(),
    };
    Ok(match by {
        Some(name) => queue.by(name)?,
        None => queue,
    })
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
// Credentials

/// Issues a credential: `name` (1–`AQ_MAX_NAME_CHARS` characters, what
/// actions record when it acts; `agent`, `auto`, `system`, `dashboard` are
/// reserved), `role`, and for an agent its `server_id` (required then, which
/// must exist; NULL for other roles).
///
/// On `AQ_STATUS_OK`, `*issued_json_out` receives
/// `{"id","name","role","server_id","prefix","created_at","revoked_at","secret"}`
/// — the only time the secret exists outside its holder (only its SHA-256 is
/// stored) — which the caller frees with `aq_string_free` (after wiping it,
/// if it cares).
///
/// `principal`: NULL to act as the trusted host (for a host that
/// authenticates its admins itself), else the principal acting, which must be
/// an admin (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `principal` NULL or a live
/// `aq_principal`; the strings NULL or NUL-terminated; `issued_json_out` NULL
/// or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_issue(
    queue: *const aq_queue,
    principal: *const aq_principal,
    name: *const c_char,
    role: *const c_char,
    server_id: *const c_char,
    issued_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, principal, null()) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let role = Role::from_str(unsafe { str_arg(role, "role") }?)?;
        let server_id = unsafe { opt_str_arg(server_id, "server_id") }?;
        let out = unsafe { Out::new(issued_json_out, "issued_json_out") }?;
        out.write(json_string(&queue.issue_credential(name, role, server_id)?));
        Ok(())
    }
}

/// Lists every credential, revoked ones included, by id: a JSON array of
/// `{"id","name","role","server_id","prefix","created_at","revoked_at"}`,
/// never a secret. The caller frees `*credentials_json_out` with
/// `aq_string_free`.
///
/// `principal`: NULL to act as the trusted host, else the principal acting,
/// which must be an admin (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `principal` NULL or a live
/// `aq_principal`; `credentials_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_list(
    queue: *const aq_queue,
    principal: *const aq_principal,
    credentials_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, principal, null()) }?;
        let out = unsafe { Out::new(credentials_json_out, "credentials_json_out") }?;
        out.write_json(&queue.list_credentials()?);
        Ok(())
    }
}

/// Revokes credential `id` at once, for every handle and process on the same
/// store (a second revoke keeps the first time); `AQ_STATUS_NOT_FOUND` if
/// unknown. The caller frees `*credential_json_out` with `aq_string_free`.
///
/// `principal`: NULL to act as the trusted host, else the principal acting,
/// which must be an admin (else `AQ_STATUS_PERMISSION_DENIED`, changing
/// nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `principal` NULL or a live
/// `aq_principal`; `credential_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_revoke(
    queue: *const aq_queue,
    principal: *const aq_principal,
    id: i64,
    credential_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, principal, null()) }?;
        let out = unsafe { Out::new(credential_json_out, "credential_json_out") }?;
        out.write_json(&queue.revoke_credential(id)?);
        Ok(())
    }
}
