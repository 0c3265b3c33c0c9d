//! The rules every store applies the same way: who is auto-approved, the
//! conflict guards of a create, and the status machine (which statuses each
//! change may leave, which fields it sets, which event it logs).
//!
//! The types these rules act on ([`ActionDraft`], [`ConflictGuard`],
//! [`Change`], [`ChangeKind`], [`EventDraft`]) are defined here, beside the
//! rules, and are the storage vocabulary that [`crate::store`] re-exports: a
//! backend depends on the rules, never the reverse, and only provides
//! atomicity, so backends cannot disagree on what a change means. A backend
//! calls [`ActionDraft::into_action`], [`ConflictGuard::collides`] /
//! [`ConflictGuard::error`] and [`Change::apply`] inside its atomic section.
//!
//! By concern: `draft` (a create: the draft and its guard), `change` (an
//! update: the status machine), `event` (what the audit log records).

mod change;
mod draft;
mod event;
mod output;

use chrono::TimeDelta;

use crate::model::{Action, ActionStatus, Timestamp};

pub use change::{Change, ChangeKind};
pub use draft::{ActionDraft, ConflictGuard};
pub use event::EventDraft;
pub use output::{OutputDraft, OutputSoFar};

pub(crate) use crate::actor::AUTO;

/// Detail of the creation event of an action approved automatically.
pub const AUTO_APPROVED: &str = "auto-approved";

/// Why an expired lease failed its action (the action's `stderr`).
pub const LEASE_EXPIRED_STDERR: &str =
    "actionq: lease expired before the agent reported a result; the action was not retried";

/// Why an expired lease failed an action someone had asked to cancel.
pub const LEASE_EXPIRED_WITH_CANCEL_STDERR: &str =
    "actionq: lease expired while a cancel was pending; the agent never reported the command stopped";

/// Detail of the event of a cancel request on an executing action.
pub const CANCEL_REQUESTED: &str = "cancel requested";

/// Start of the Conflict (and of the claim's cancel detail) for an action
/// built under another whitelist version: `"{STALE_WHITELIST} {id} was created"`.
pub const STALE_WHITELIST: &str = "Whitelist changed since action";

fn stale_whitelist(id: i64) -> String {
    format!("{STALE_WHITELIST} {id} was created")
}

/// Whether `action` was built under another whitelist than `version`.
/// Actions stored before whitelists had versions (an empty
/// `whitelist_version`) predate the check and pass it.
fn is_stale(action: &Action, version: &str) -> bool {
    !action.whitelist_version.is_empty() && action.whitelist_version != version
}

/// Statuses during which an exclusive-group action blocks another.
pub(crate) const ACTIVE_STATUSES: [ActionStatus; 3] = [
    ActionStatus::Pending,
    ActionStatus::Approved,
    ActionStatus::Executing,
];

/// When a pending action created at `created_at` under `ttl_seconds` expires
/// (it is expired at this instant and after).
pub(crate) fn approval_deadline(created_at: Timestamp, ttl_seconds: u64) -> Timestamp {
    TimeDelta::try_seconds(ttl_seconds as i64)
        .and_then(|ttl| created_at.checked_add_signed(ttl))
        .unwrap_or(Timestamp::MAX_UTC)
}
