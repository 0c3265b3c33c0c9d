//! Records to and from rows: timestamps as microseconds, argv and env as JSON,
//! statuses as their names, and the column lists the readers expect.

use chrono::DateTime;
use rusqlite::Row;

use crate::identity::{Credential, Role};
use crate::model::{Action, ActionStatus, Event, EventKind, Server, Timestamp};

/// A timestamp as stored: microseconds since the Unix epoch.
pub(super) fn ts(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub(super) fn required_micros(v: i64) -> rusqlite::Result<Timestamp> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            format!("timestamp {v} out of range").into(),
        )
    })
}

pub(super) fn from_micros(v: Option<i64>) -> rusqlite::Result<Option<Timestamp>> {
    v.map(required_micros).transpose()
}

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

pub(super) fn status_from(s: String) -> rusqlite::Result<ActionStatus> {
    s.parse::<ActionStatus>().map_err(conversion)
}

/// The columns [`server_from_row`] reads, in order.
macro_rules! server_columns {
    () => {
        "id, hostname, is_paused, paused_at, created_at"
    };
}
pub(super) use server_columns;

/// A server from the columns of [`server_columns!`].
pub(super) fn server_from_row(r: &Row<'_>) -> rusqlite::Result<Server> {
    Ok(Server {
        id: r.get(0)?,
        hostname: r.get(1)?,
        is_paused: r.get(2)?,
        paused_at: from_micros(r.get(3)?)?,
        created_at: required_micros(r.get(4)?)?,
    })
}

/// The columns [`action_from_row`] reads, in order, with the lease token
/// (column [`LEASE_TOKEN_COLUMN`], which it skips) among them. A macro so statements can be built with
/// `concat!` at compile time instead of formatted on every call.
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

/// An action from the columns of [`action_columns!`].
pub(super) fn action_from_row(r: &Row<'_>) -> rusqlite::Result<Action> {
    let argv: String = r.get(6)?;
    let env: String = r.get(7)?;
    Ok(Action {
        id: r.get(0)?,
        server_id: r.get(1)?,
        action_type: r.get(2)?,
        status: status_from(r.get(3)?)?,
        service_name: r.get(4)?,
        command: r.get(5)?,
        argv: serde_json::from_str(&argv).map_err(conversion)?,
        env: serde_json::from_str(&env).map_err(conversion)?,
        alert_id: r.get(8)?,
        created_at: required_micros(r.get(9)?)?,
        created_by: r.get(10)?,
        approved_at: from_micros(r.get(11)?)?,
        approved_by: r.get(12)?,
        rejected_at: from_micros(r.get(13)?)?,
        rejected_by: r.get(14)?,
        rejection_reason: r.get(15)?,
        cancelled_at: from_micros(r.get(16)?)?,
        cancelled_by: r.get(17)?,
        executed_at: from_micros(r.get(18)?)?,
        lease_expires_at: from_micros(r.get(19)?)?,
        completed_at: from_micros(r.get(20)?)?,
        exit_code: r.get(21)?,
        stdout: r.get(22)?,
        stderr: r.get(23)?,
        approvals: serde_json::from_str(&r.get::<_, String>(25)?).map_err(conversion)?,
        digest: r.get(26)?,
        whitelist_version: r.get(27)?,
        params: serde_json::from_str(&r.get::<_, String>(28)?).map_err(conversion)?,
        cancel_requested_at: from_micros(r.get(29)?)?,
        cancel_requested_by: r.get(30)?,
    })
}

/// The columns [`event_from_row`] reads, in order.
macro_rules! event_columns {
    () => {
        "id, action_id, from_status, to_status, actor, at, detail, kind, subject"
    };
}
pub(super) use event_columns;

/// An event from the columns of [`event_columns!`].
pub(super) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        action_id: r.get(1)?,
        from_status: r
            .get::<_, Option<String>>(2)?
            .map(status_from)
            .transpose()?,
        to_status: r
            .get::<_, Option<String>>(3)?
            .map(status_from)
            .transpose()?,
        by: r.get(4)?,
        at: required_micros(r.get(5)?)?,
        detail: r.get(6)?,
        kind: r
            .get::<_, String>(7)?
            .parse::<EventKind>()
            .map_err(conversion)?,
        subject: r.get(8)?,
    })
}

/// The columns [`credential_from_row`] reads, in order.
macro_rules! credential_columns {
    () => {
        "id, name, role, server_id, prefix, created_at, revoked_at"
    };
}
pub(super) use credential_columns;

/// A credential from a row of [`credential_columns`].
pub(super) fn credential_from_row(r: &Row<'_>) -> rusqlite::Result<Credential> {
    let role: String = r.get(2)?;
    Ok(Credential {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role.parse::<Role>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        server_id: r.get(3)?,
        prefix: r.get(4)?,
        created_at: required_micros(r.get(5)?)?,
        revoked_at: from_micros(r.get(6)?)?,
    })
}

/// JSON text of an argv, env or params (strings always serialize).
pub(super) fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("strings serialize")
}
