//! Records to and from rows: timestamps as microseconds (`bigint`), argv and
//! env and approvals as JSON text, captured output as its UTF-8 bytes, statuses as their names — the SQLite store's encoding, so
//! both stores hold the same values.

use chrono::DateTime;
use postgres::Row;

use crate::error::{Error, Result};
use crate::identity::{Credential, Role};
use crate::model::{Action, ActionStatus, Event, EventKind, Server, Timestamp};

/// A timestamp as stored: microseconds since the Unix epoch.
pub(super) fn ts(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub(super) fn bad(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Storage(format!("corrupt {what} in the database: {detail}"))
}

pub(super) fn required_micros(v: i64) -> Result<Timestamp> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| bad("timestamp", v))
}

pub(super) fn from_micros(v: Option<i64>) -> Result<Option<Timestamp>> {
    v.map(required_micros).transpose()
}

fn status_from(s: &str) -> Result<ActionStatus> {
    s.parse::<ActionStatus>().map_err(|e| bad("status", e))
}

/// Column `i` of `r`, a Storage error if it has another type.
fn get<'a, T: postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    r.try_get(i)
        .map_err(|e| Error::Storage(format!("read column {i}: {e}")))
}

/// The columns [`server_from_row`] reads, in order.
macro_rules! server_columns {
    () => {
        "id, hostname, is_paused, paused_at, created_at"
    };
}
pub(super) use server_columns;

/// A server from the columns of [`server_columns!`].
pub(super) fn server_from_row(r: &Row) -> Result<Server> {
    Ok(Server {
        id: get(r, 0)?,
        hostname: get(r, 1)?,
        is_paused: get(r, 2)?,
        paused_at: from_micros(get(r, 3)?)?,
        created_at: required_micros(get(r, 4)?)?,
    })
}

/// The columns [`action_from_row`] reads, in order, then the lease token
/// (column [`LEASE_TOKEN_COLUMN`]).
macro_rules! action_columns {
    () => {
        "id, server_id, action_type, status, service_name, command, argv, env, \
        alert_id, created_at, created_by, approved_at, approved_by, rejected_at, rejected_by, \
        rejection_reason, cancelled_at, cancelled_by, executed_at, lease_expires_at, completed_at, \
        exit_code, stdout, stderr, lease_token, approvals, digest, whitelist_version, params, \
        cancel_requested_at, cancel_requested_by"
    };
}
pub(super) use action_columns;

/// Index of `lease_token` in [`action_columns!`].
pub(super) const LEASE_TOKEN_COLUMN: usize = 24;

/// An action from the columns of [`action_columns!`], starting at column `at`.
pub(super) fn action_from_row(r: &Row, at: usize) -> Result<Action> {
    let argv: String = get(r, at + 6)?;
    let env: String = get(r, at + 7)?;
    Ok(Action {
        id: get(r, at)?,
        server_id: get(r, at + 1)?,
        action_type: get(r, at + 2)?,
        status: status_from(get(r, at + 3)?)?,
        service_name: get(r, at + 4)?,
        command: get(r, at + 5)?,
        argv: serde_json::from_str(&argv).map_err(|e| bad("argv", e))?,
        env: serde_json::from_str(&env).map_err(|e| bad("env", e))?,
        alert_id: get(r, at + 8)?,
        created_at: required_micros(get(r, at + 9)?)?,
        created_by: get(r, at + 10)?,
        approved_at: from_micros(get(r, at + 11)?)?,
        approved_by: get(r, at + 12)?,
        rejected_at: from_micros(get(r, at + 13)?)?,
        rejected_by: get(r, at + 14)?,
        rejection_reason: get(r, at + 15)?,
        cancelled_at: from_micros(get(r, at + 16)?)?,
        cancelled_by: get(r, at + 17)?,
        executed_at: from_micros(get(r, at + 18)?)?,
        lease_expires_at: from_micros(get(r, at + 19)?)?,
        completed_at: from_micros(get(r, at + 20)?)?,
        exit_code: get(r, at + 21)?,
        stdout: output(get(r, at + 22)?, "stdout")?,
        stderr: output(get(r, at + 23)?, "stderr")?,
        approvals: serde_json::from_str(&get::<String>(r, at + 25)?)
            .map_err(|e| bad("approvals", e))?,
        digest: get(r, at + 26)?,
        whitelist_version: get(r, at + 27)?,
        params: serde_json::from_str(&get::<String>(r, at + 28)?).map_err(|e| bad("params", e))?,
        cancel_requested_at: from_micros(get(r, at + 29)?)?,
        cancel_requested_by: get(r, at + 30)?,
    })
}

/// Captured output as stored: its UTF-8 bytes (`bytea`, since `text` cannot
/// hold NUL, which output may contain).
pub(super) fn output_bytes(output: &Option<String>) -> Option<&[u8]> {
    output.as_deref().map(str::as_bytes)
}

fn output(bytes: Option<Vec<u8>>, what: &str) -> Result<Option<String>> {
    bytes
        .map(|b| String::from_utf8(b).map_err(|e| bad(what, e)))
        .transpose()
}

/// An action and its lease token.
pub(super) fn action_and_token(r: &Row) -> Result<(Action, Option<String>)> {
    Ok((action_from_row(r, 0)?, get(r, LEASE_TOKEN_COLUMN)?))
}

/// The columns [`event_from_row`] reads, in order.
macro_rules! event_columns {
    () => {
        "id, action_id, from_status, to_status, actor, at, detail, kind, subject"
    };
}
pub(super) use event_columns;

/// An event from the columns of [`event_columns!`].
pub(super) fn event_from_row(r: &Row) -> Result<Event> {
    Ok(Event {
        id: get(r, 0)?,
        action_id: get(r, 1)?,
        from_status: get::<Option<&str>>(r, 2)?.map(status_from).transpose()?,
        to_status: get::<Option<&str>>(r, 3)?.map(status_from).transpose()?,
        by: get(r, 4)?,
        at: required_micros(get(r, 5)?)?,
        detail: get(r, 6)?,
        kind: get::<&str>(r, 7)?
            .parse::<EventKind>()
            .map_err(|e| bad("event kind", e))?,
        subject: get(r, 8)?,
    })
}

/// The columns [`credential_from_row`] reads, in order.
macro_rules! credential_columns {
    () => {
        "id, name, role, server_id, prefix, created_at, revoked_at"
    };
}
pub(super) use credential_columns;

/// A credential from the columns of [`credential_columns!`].
pub(super) fn credential_from_row(r: &Row) -> Result<Credential> {
    Ok(Credential {
        id: get(r, 0)?,
        name: get(r, 1)?,
        role: get::<&str>(r, 2)?
            .parse::<Role>()
            .map_err(|e| bad("credential role", e))?,
        server_id: get(r, 3)?,
        prefix: get(r, 4)?,
        created_at: required_micros(get(r, 5)?)?,
        revoked_at: from_micros(get(r, 6)?)?,
    })
}

/// A stored chain hash: 32 bytes, or a value no chain matches for anything
/// else (a row written outside the library), which then fails verification.
pub(super) fn hash_from(bytes: Option<&[u8]>) -> [u8; 32] {
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .unwrap_or([0xff; 32])
}

/// JSON text of an argv or env (strings always serialize).
pub(super) fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("strings serialize")
}
