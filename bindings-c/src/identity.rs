//! Identity: `aq_actor` (who acts), authentication, credentials, and
//! [`acting`], which every operation's entry point calls first: the queue
//! acting as the actor the host passed (`ActionQueue::acting_as`), which the
//! core checks against its permission table for a principal
//! (`AQ_STATUS_PERMISSION_DENIED` changes nothing) and records under the
//! actor's name.

use std::borrow::Cow;
use std::ffi::{c_char, CStr};
use std::str::FromStr;

use actionq::{ActionQueue, Actor, Principal, Role};
use serde_json::json;

use crate::error::{aq_status, Failure};
use crate::ffi::{json_string, opt_str_arg, ref_arg, str_arg, Out};
use crate::ffi_boundary;
use crate::queue::{aq_queue, queue_arg};

/// Who acts: the trusted host (`aq_actor_host`), the trusted host acting for
/// a name it vouches for (`aq_actor_trusted`), or a principal — a name, a
/// role and, for an agent, its server — from `aq_queue_authenticate` (a
/// credential's secret) or `aq_actor_principal` (a host that authenticates
/// people itself). Every queue operation takes one. Immutable: may be used
/// from many threads at once. Free with `aq_actor_free`.
#[allow(non_camel_case_types)]
pub struct aq_actor {
    inner: Actor,
}

/// A required actor argument.
///
/// # Safety
///
/// `ptr` must be NULL or a live `aq_actor`.
unsafe fn actor_arg<'a>(ptr: *const aq_actor) -> Result<&'a Actor, Failure> {
    // SAFETY: forwarded to the caller.
    Ok(&unsafe { ref_arg(ptr, "actor") }?.inner)
}

/// Writes a new handle on `inner` to `out`.
fn write_actor(out: Out<*mut aq_actor>, inner: Actor) {
    out.write(Box::into_raw(Box::new(aq_actor { inner })));
}

/// The queue behind `queue` acting as `actor`, both required.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live `aq_actor`.
pub(crate) unsafe fn acting(
    queue: *const aq_queue,
    actor: *const aq_actor,
) -> Result<ActionQueue, Failure> {
    // SAFETY (both): forwarded to the caller.
    let queue = unsafe { queue_arg(queue) }?;
    let actor = unsafe { actor_arg(actor) }?;
    Ok(queue.acting_as(actor)?)
}

/// The trusted host itself: nothing is checked, and each operation records
/// its own default name (`"dashboard"` for requests and decisions, `"agent"`
/// for claims, heartbeats and results, a request's `created_by`).
///
/// On `AQ_STATUS_OK`, `*actor_out` receives a new handle that the caller owns
/// and frees with `aq_actor_free`.
///
/// # Safety
///
/// `actor_out` must be NULL or a writable `aq_actor *`.
#[no_mangle]
pub unsafe extern "C" fn aq_actor_host(actor_out: *mut *mut aq_actor) -> aq_status {
    ffi_boundary! {
        // SAFETY: per the caller's contract.
        let out = unsafe { Out::new(actor_out, "actor_out") }?;
        write_actor(out, Actor::Host);
        Ok(())
    }
}

/// The trusted host acting for `name`, a name it vouches for (its own
/// login, say): nothing is checked, and `name` is recorded (as `created_by`,
/// `approved_by`, ...). A name that is empty, longer than
/// `AQ_MAX_NAME_CHARS` or holds control characters is
/// `AQ_STATUS_INVALID_INPUT`.
///
/// On `AQ_STATUS_OK`, `*actor_out` receives a new handle that the caller owns
/// and frees with `aq_actor_free`.
///
/// # Safety
///
/// `name` must be NULL or a NUL-terminated string; `actor_out` NULL or a
/// writable `aq_actor *`.
#[no_mangle]
pub unsafe extern "C" fn aq_actor_trusted(
    name: *const c_char,
    actor_out: *mut *mut aq_actor,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (both): per the caller's contract.
        let name = unsafe { str_arg(name, "name") }?;
        let out = unsafe { Out::new(actor_out, "actor_out") }?;
        write_actor(out, Actor::trusted(name)?);
        Ok(())
    }
}

/// `actor` acting for `name`, as Rust's `queue.by(name)` and Python's
/// `queue.by(name)` on a queue acting as `actor`: the trusted host acting for
/// `name` (as `aq_actor_trusted`) when `actor` is the trusted host or acts
/// for a name itself; `AQ_STATUS_INVALID_INPUT` when `actor` is a principal,
/// whose own name is what is recorded.
///
/// On `AQ_STATUS_OK`, `*actor_out` receives a new handle that the caller owns
/// and frees with `aq_actor_free`.
///
/// # Safety
///
/// `actor` must be NULL or a live `aq_actor`; `name` NULL or a NUL-terminated
/// string; `actor_out` NULL or a writable `aq_actor *`.
#[no_mangle]
pub unsafe extern "C" fn aq_actor_by(
    actor: *const aq_actor,
    name: *const c_char,
    actor_out: *mut *mut aq_actor,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let actor = unsafe { actor_arg(actor) }?;
        let name = unsafe { str_arg(name, "name") }?;
        let out = unsafe { Out::new(actor_out, "actor_out") }?;
        write_actor(out, actor.by(name)?);
        Ok(())
    }
}

/// A principal vouched for by a host that authenticates people itself:
/// `name`, `role` (`"admin"`, `"operator"`, `"requester"`, `"viewer"` or
/// `"agent"`; anything else is `AQ_STATUS_INVALID_INPUT`) and, for an agent,
/// its `server_id` (NULL otherwise). Operations check it against the
/// permission table, as one from `aq_queue_authenticate`.
///
/// On `AQ_STATUS_OK`, `*actor_out` receives a new handle that the caller owns
/// and frees with `aq_actor_free`.
///
/// # Safety
///
/// `name`, `role`, `server_id` must be NULL or NUL-terminated strings;
/// `actor_out` NULL or a writable `aq_actor *`.
#[no_mangle]
pub unsafe extern "C" fn aq_actor_principal(
    name: *const c_char,
    role: *const c_char,
    server_id: *const c_char,
    actor_out: *mut *mut aq_actor,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let name = unsafe { str_arg(name, "name") }?;
        let role = Role::from_str(unsafe { str_arg(role, "role") }?)?;
        let server_id = unsafe { opt_str_arg(server_id, "server_id") }?;
        let out = unsafe { Out::new(actor_out, "actor_out") }?;
        let principal = Principal {
            name: name.to_owned(),
            role,
            server_id: server_id.map(str::to_owned),
        };
        write_actor(out, Actor::Principal(principal));
        Ok(())
    }
}

/// The principal a credential's `secret` belongs to, as an actor. An
/// unknown, revoked or malformed secret (empty, over-long, not ASCII, not
/// even UTF-8) is `AQ_STATUS_UNAUTHENTICATED`, whose message never contains
/// it, and leaves `*actor_out` as it was: a NULL there stays NULL, which
/// every operation refuses (`AQ_STATUS_NULL_ARGUMENT`). Reads only.
///
/// On `AQ_STATUS_OK`, `*actor_out` receives a new handle that the caller owns
/// and frees with `aq_actor_free`.
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `secret` NULL or a NUL-terminated
/// string; `actor_out` NULL or a writable `aq_actor *`.
#[no_mangle]
pub unsafe extern "C" fn aq_queue_authenticate(
    queue: *const aq_queue,
    secret: *const c_char,
    actor_out: *mut *mut aq_actor,
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
        let out = unsafe { Out::new(actor_out, "actor_out") }?;
        write_actor(out, Actor::Principal(queue.authenticate(&secret)?));
        Ok(())
    }
}

/// Writes the actor as JSON to `*json_out`, which the caller frees with
/// `aq_string_free`: `{"kind":"host"}`, `{"kind":"trusted","name"}` or
/// `{"kind":"principal","name","role","server_id"}`.
///
/// # Safety
///
/// `actor` must be NULL or a live handle; `json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_actor_json(
    actor: *const aq_actor,
    json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (both): per the caller's contract.
        let actor = unsafe { actor_arg(actor) }?;
        let out = unsafe { Out::new(json_out, "json_out") }?;
        let value = match actor {
            Actor::Host => json!({"kind": "host"}),
            Actor::Trusted(name) => json!({"kind": "trusted", "name": name}),
            Actor::Principal(principal) => {
                let mut value = json!({"kind": "principal"});
                value.as_object_mut().expect("an object").extend(
                    serde_json::to_value(principal)
                        .expect("a principal serializes")
                        .as_object()
                        .expect("a principal is an object")
                        .clone(),
                );
                value
            }
        };
        out.write_json(&value);
        Ok(())
    }
}

/// Frees an actor. `aq_actor_free(NULL)` does nothing.
///
/// # Safety
///
/// `actor` must be NULL or a handle not yet freed and no longer in use.
#[no_mangle]
pub unsafe extern "C" fn aq_actor_free(actor: *mut aq_actor) {
    if !actor.is_null() {
        // SAFETY: it came from Box::into_raw here and is freed once.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(unsafe { Box::from_raw(actor) })
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
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; the strings NULL or NUL-terminated; `issued_json_out` NULL
/// or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_issue(
    queue: *const aq_queue,
    actor: *const aq_actor,
    name: *const c_char,
    role: *const c_char,
    server_id: *const c_char,
    issued_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
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
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin (else `AQ_STATUS_PERMISSION_DENIED`).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `credentials_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_list(
    queue: *const aq_queue,
    actor: *const aq_actor,
    credentials_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(credentials_json_out, "credentials_json_out") }?;
        out.write_json(&queue.list_credentials()?);
        Ok(())
    }
}

/// Revokes credential `id` at once, for every handle and process on the same
/// store (a second revoke keeps the first time); `AQ_STATUS_NOT_FOUND` if
/// unknown. The caller frees `*credential_json_out` with `aq_string_free`.
///
/// `actor`: who acts (NULL is `AQ_STATUS_NULL_ARGUMENT`); a principal must be
/// an admin (else `AQ_STATUS_PERMISSION_DENIED`, changing nothing).
///
/// # Safety
///
/// `queue` must be NULL or a live handle; `actor` NULL or a live
/// `aq_actor`; `credential_json_out` NULL or a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn aq_credential_revoke(
    queue: *const aq_queue,
    actor: *const aq_actor,
    id: i64,
    credential_json_out: *mut *mut c_char,
) -> aq_status {
    ffi_boundary! {
        // SAFETY (all): per the caller's contract.
        let queue = unsafe { acting(queue, actor) }?;
        let out = unsafe { Out::new(credential_json_out, "credential_json_out") }?;
        out.write_json(&queue.revoke_credential(id)?);
        Ok(())
    }
}
