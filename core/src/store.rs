//! The storage trait and the record-level rules every backend shares.
//!
//! A backend only has to provide atomic read-modify-write on its own terms
//! (a mutex, an SQLite `BEGIN IMMEDIATE`, a PostgreSQL `SELECT ... FOR UPDATE`).
//! What a change *means* — which statuses it may leave, which fields it sets,
//! which event it logs — lives here, in [`Change::apply`] and
//! [`ActionDraft::into_action`], so backends cannot disagree on the rules.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::{Action, ActionFilter, ActionStatus, Event, Server, Timestamp};

/// Who the automatic decisions are attributed to.
pub(crate) const AUTO: &str = "auto";

/// Detail of the creation event of an action approved automatically.
pub const AUTO_APPROVED: &str = "auto-approved";

/// A validated action not yet stored: everything but the id and the
/// approval decision, which depend on the store's state at insert time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDraft {
    /// Target server.
    pub server_id: String,
    /// Whitelisted action type.
    pub action_type: String,
    /// The `service_name` parameter, if any.
    pub service_name: Option<String>,
    /// Display command.
    pub command: String,
    /// Executor argv.
    pub argv: Vec<String>,
    /// Executor environment.
    pub env: BTreeMap<String, String>,
    /// Originating alert.
    pub alert_id: Option<i64>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Requester.
    pub created_by: String,
}

impl ActionDraft {
    /// The stored action with id `id`: auto-approved unless `server` is paused
    /// (SPEC create rule 5). Also returns the creation event (without its id).
    pub fn into_action(self, id: i64, server: &Server) -> (Action, EventDraft) {
        let (status, approved_at, approved_by) = if server.is_paused {
            (ActionStatus::Pending, None, None)
        } else {
            (
                ActionStatus::Approved,
                Some(self.created_at),
                Some(AUTO.to_owned()),
            )
        };
        let event = EventDraft {
            action_id: id,
            from_status: None,
            to_status: status,
            by: self.created_by.clone(),
            at: self.created_at,
            // The creator asked; the approval was automatic (`approved_by` "auto").
            detail: (status == ActionStatus::Approved).then(|| AUTO_APPROVED.to_owned()),
        };
        let action = Action {
            id,
            server_id: self.server_id,
            action_type: self.action_type,
            status,
            service_name: self.service_name,
            command: self.command,
            argv: self.argv,
            env: self.env,
            alert_id: self.alert_id,
            created_at: self.created_at,
            created_by: self.created_by,
            approved_at,
            approved_by,
            rejected_at: None,
            rejected_by: None,
            rejection_reason: None,
            cancelled_at: None,
            cancelled_by: None,
            executed_at: None,
            lease_expires_at: None,
            completed_at: None,
            exit_code: None,
            stdout: None,
            stderr: None,
        };
        (action, event)
    }
}

/// Which existing action makes an insert a conflict. Checked atomically with the insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictGuard {
    /// No check.
    None,
    /// A `pending` action with the same server, type and command exists.
    PendingDuplicate {
        /// Message for the Conflict error.
        message: String,
    },
    /// A pending, approved or executing action of the same server with a type in
    /// `action_types` exists.
    ActiveInGroup {
        /// The group's member action types.
        action_types: Vec<String>,
        /// Message for the Conflict error.
        message: String,
    },
}

/// Statuses during which an exclusive-group action blocks another.
pub(crate) const ACTIVE_STATUSES: [ActionStatus; 3] = [
    ActionStatus::Pending,
    ActionStatus::Approved,
    ActionStatus::Executing,
];

impl ConflictGuard {
    /// True when `existing` blocks inserting `draft`.
    pub fn collides(&self, draft: &ActionDraft, existing: &Action) -> bool {
        existing.server_id == draft.server_id
            && match self {
                ConflictGuard::None => false,
                ConflictGuard::PendingDuplicate { .. } => {
                    existing.status == ActionStatus::Pending
                        && existing.action_type == draft.action_type
                        && existing.command == draft.command
                }
                ConflictGuard::ActiveInGroup { action_types, .. } => {
                    ACTIVE_STATUSES.contains(&existing.status)
                        && action_types.contains(&existing.action_type)
                }
            }
    }

    /// The Conflict error for a collision with action `existing_action_id`.
    pub fn error(&self, existing_action_id: i64) -> Error {
        let message = match self {
            ConflictGuard::None => String::new(),
            ConflictGuard::PendingDuplicate { message }
            | ConflictGuard::ActiveInGroup { message, .. } => message.clone(),
        };
        Error::Conflict {
            message,
            existing_action_id: Some(existing_action_id),
        }
    }
}

/// An audit event not yet stored (the store assigns the cursor id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// The action that changed.
    pub action_id: i64,
    /// Previous status; `None` on creation.
    pub from_status: Option<ActionStatus>,
    /// New status.
    pub to_status: ActionStatus,
    /// Who made the change.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Extra detail.
    pub detail: Option<String>,
}

/// What a change does to an action. Built by the queue, applied by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// pending → approved.
    Approve,
    /// pending → rejected.
    Reject {
        /// Why (1–1000 characters, checked by the queue).
        reason: String,
    },
    /// pending | approved → cancelled.
    Cancel,
    /// approved → executing, with a new lease.
    Claim {
        /// The fresh lease token.
        lease_token: String,
        /// When the lease runs out.
        lease_expires_at: Timestamp,
    },
    /// executing → executing: extend the lease of the token's holder.
    Heartbeat {
        /// The holder's token.
        lease_token: String,
        /// The new expiry.
        lease_expires_at: Timestamp,
    },
    /// executing → completed | failed, by the token's holder.
    Report {
        /// The holder's token.
        lease_token: String,
        /// Exit code: 0 completes, anything else fails.
        exit_code: i32,
        /// Captured output, already capped.
        stdout: Option<String>,
        /// Captured errors, already capped.
        stderr: Option<String>,
    },
    /// executing (lease ran out) → failed with exit code -1.
    Expire,
}

/// A change with its actor and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happens.
    pub kind: ChangeKind,
    /// Who does it.
    pub by: String,
    /// When (the queue's clock).
    pub at: Timestamp,
}

/// Why an expired lease failed its action (the action's `stderr`).
pub const LEASE_EXPIRED_STDERR: &str =
    "actionq: lease expired before the agent reported a result; the action was not retried";

impl Change {
    fn verb(&self) -> &'static str {
        match self.kind {
            ChangeKind::Approve => "approve",
            ChangeKind::Reject { .. } => "reject",
            ChangeKind::Cancel => "cancel",
            ChangeKind::Claim { .. } => "claim",
            ChangeKind::Heartbeat { .. } => "heartbeat",
            ChangeKind::Report { .. } => "report result for",
            ChangeKind::Expire => "expire",
        }
    }

    fn allowed_from(&self) -> &'static [ActionStatus] {
        use ActionStatus::*;
        match self.kind {
            ChangeKind::Approve | ChangeKind::Reject { .. } => &[Pending],
            ChangeKind::Cancel => &[Pending, Approved],
            ChangeKind::Claim { .. } => &[Approved],
            ChangeKind::Heartbeat { .. } | ChangeKind::Report { .. } | ChangeKind::Expire => {
                &[Executing]
            }
        }
    }

    /// Applies the change to `action` (whose stored lease token is `lease_token`)
    /// or returns the Conflict that forbids it, leaving both untouched.
    /// Returns the audit event when the status changed.
    pub fn apply(
        &self,
        action: &mut Action,
        lease_token: &mut Option<String>,
    ) -> Result<Option<EventDraft>> {
        let from = action.status;
        let allowed = self.allowed_from();
        if !allowed.contains(&from) {
            let must: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            return Err(Error::conflict(format!(
                "Cannot {} action with status '{}' (must be {})",
                self.verb(),
                from,
                must.join(" or ")
            )));
        }
        if let ChangeKind::Heartbeat {
            lease_token: given, ..
        }
        | ChangeKind::Report {
            lease_token: given, ..
        } = &self.kind
        {
            if lease_token.as_deref() != Some(given.as_str()) {
                return Err(Error::conflict(format!(
                    "Lease token does not match the current lease of action {}",
                    action.id
                )));
            }
            if action.lease_expires_at.is_none_or(|until| until <= self.at) {
                return Err(Error::conflict(format!(
                    "Lease of action {} has expired",
                    action.id
                )));
            }
        }
        let mut detail = None;
        let to = match &self.kind {
            ChangeKind::Approve => {
                action.approved_at = Some(self.at);
                action.approved_by = Some(self.by.clone());
                ActionStatus::Approved
            }
            ChangeKind::Reject { reason } => {
                action.rejected_at = Some(self.at);
                action.rejected_by = Some(self.by.clone());
                action.rejection_reason = Some(reason.clone());
                detail = Some(reason.clone());
                ActionStatus::Rejected
            }
            ChangeKind::Cancel => {
                action.cancelled_at = Some(self.at);
                action.cancelled_by = Some(self.by.clone());
                ActionStatus::Cancelled
            }
            ChangeKind::Claim {
                lease_token: token,
                lease_expires_at,
            } => {
                action.executed_at = Some(self.at);
                action.lease_expires_at = Some(*lease_expires_at);
                *lease_token = Some(token.clone());
                ActionStatus::Executing
            }
            ChangeKind::Heartbeat {
                lease_expires_at, ..
            } => {
                action.lease_expires_at = Some(*lease_expires_at);
                return Ok(None);
            }
            ChangeKind::Report {
                exit_code,
                stdout,
                stderr,
                ..
            } => {
                action.completed_at = Some(self.at);
                action.exit_code = Some(*exit_code);
                action.stdout = stdout.clone();
                action.stderr = stderr.clone();
                *lease_token = None;
                detail = Some(format!("exit_code={exit_code}"));
                if *exit_code == 0 {
                    ActionStatus::Completed
                } else {
                    ActionStatus::Failed
                }
            }
            ChangeKind::Expire => {
                action.completed_at = Some(self.at);
                action.exit_code = Some(-1);
                action.stderr = Some(LEASE_EXPIRED_STDERR.to_owned());
                *lease_token = None;
                detail = Some("lease expired".to_owned());
                ActionStatus::Failed
            }
        };
        action.status = to;
        Ok(Some(EventDraft {
            action_id: action.id,
            from_status: Some(from),
            to_status: to,
            by: self.by.clone(),
            at: self.at,
            detail,
        }))
    }
}

/// Pagination of a listing, already validated by the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size, 1..=100.
    pub limit: u32,
    /// Matches to skip.
    pub offset: u64,
}

/// Persistent (or not) home of servers, actions and events.
///
/// Contract for implementors:
/// - Every method is atomic: a reader sees a change whole or not at all, and two
///   callers — threads, or processes sharing the backing database — never both
///   succeed at a compare-and-set. Backends may serialize writers however suits
///   them (mutex, `BEGIN IMMEDIATE`, `SELECT ... FOR UPDATE SKIP LOCKED`).
/// - Action ids and event ids start at 1, strictly increase in commit order,
///   and are never reused, even after deletes, crashes or reopening.
/// - Business rules are not the backend's: it calls [`ActionDraft::into_action`],
///   [`ConflictGuard::collides`] and [`Change::apply`] inside its atomic section.
/// - Backend failures are [`Error::Storage`]; nothing SQL-specific appears here.
pub trait Store: Send + Sync + 'static {
    /// Adds `server`. Conflict `Server '{id}' already exists` if the id is taken.
    fn insert_server(&self, server: &Server) -> Result<()>;

    /// The server with `id`, if registered.
    fn get_server(&self, id: &str) -> Result<Option<Server>>;

    /// Enters (`Some(at)`) or leaves (`None`) maintenance mode. Idempotent: pausing
    /// a paused server keeps its original `paused_at`. `None` if the server is unknown.
    fn set_paused(&self, id: &str, paused_at: Option<Timestamp>) -> Result<Option<Server>>;

    /// In one atomic step: NotFound if the draft's server is unknown; Conflict
    /// (`guard.error(existing_id)`) if any stored action collides per `guard`;
    /// otherwise assigns the next id, stores `draft.into_action(id, &server)` and
    /// its creation event, and returns the action.
    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action>;

    /// The action with `id`, if any.
    fn get_action(&self, id: i64) -> Result<Option<Action>>;

    /// Actions matching `filter`, newest first (`created_at` desc, `id` desc), the
    /// requested page of them, and how many match in total.
    fn list_actions(&self, filter: &ActionFilter, page: PageRequest) -> Result<(Vec<Action>, u64)>;

    /// Atomically applies `change` to action `id` with [`Change::apply`], storing the
    /// result and its event. NotFound if there is no such action; the Conflict from
    /// `apply` leaves everything unchanged.
    fn update_action(&self, id: i64, change: &Change) -> Result<Action>;

    /// Atomically picks the oldest (`created_at`, then `id`) approved action of
    /// `server_id` and applies `change` (a [`ChangeKind::Claim`]) to it. Each action is
    /// claimed at most once, however many claimers race. `None` when there is none.
    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>>;

    /// Applies `change` (a [`ChangeKind::Expire`]) to every executing action whose
    /// `lease_expires_at <= change.at`; returns them.
    fn expire_leases(&self, change: &Change) -> Result<Vec<Action>>;

    /// Up to `limit` events with id greater than `cursor`, oldest first.
    fn events_since(&self, cursor: i64, limit: u32) -> Result<Vec<Event>>;
}
