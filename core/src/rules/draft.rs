//! What a create is: the validated [`ActionDraft`], the [`ConflictGuard`]
//! checked with its insert, and the rules that decide who is auto-approved
//! and which stored action makes a create a conflict.

use std::collections::BTreeMap;

use chrono::TimeDelta;

use super::{EventDraft, ACTIVE_STATUSES, AUTO, AUTO_APPROVED};
use crate::error::Error;
use crate::model::{Action, ActionStatus, EventKind, Server, Timestamp};
use crate::whitelist::AutoApproveBudget;

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
    /// The parameter values the command was built from (normalised).
    pub params: BTreeMap<String, String>,
    /// Originating alert.
    pub alert_id: Option<i64>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Requester.
    pub created_by: String,
    /// The payload digest ([`crate::action_digest`] under `whitelist_version`).
    pub digest: String,
    /// Version of the whitelist the action was built under.
    pub whitelist_version: String,
    /// The entry's auto-approval budget, if any: the store counts this
    /// server's auto-approved actions of the same type and command created in
    /// the window ([`ActionDraft::budget_window`]) inside its atomic section
    /// and passes the count to [`ActionDraft::into_action`].
    pub auto_approve_budget: Option<AutoApproveBudget>,
    /// Why the entry's policy needs people ([`ApprovalPolicy::needs_people`](crate::whitelist::ApprovalPolicy::needs_people)):
    /// such an action is never auto-approved, on any server, and on a normal
    /// server this is its creation event's detail.
    pub needs_people: Option<String>,
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

impl ActionDraft {
    /// When the draft's entry has an auto-approval budget: the budget's
    /// `max`, and the instant after which this server's auto-approved actions
    /// of the same type and command count against it (those with
    /// `created_at` strictly later, up to the draft's own `created_at`). The
    /// store counts them (at most `max` are needed) atomically with the
    /// insert and gives the count to [`ActionDraft::into_action`].
    pub fn budget_window(&self) -> Option<(u32, Timestamp)> {
        self.auto_approve_budget.map(|budget| {
            let window =
                TimeDelta::try_seconds(budget.window_seconds as i64).unwrap_or(TimeDelta::MAX);
            let since = self
                .created_at
                .checked_sub_signed(window)
                .unwrap_or(Timestamp::MIN_UTC);
            (budget.max, since)
        })
    }

    /// Whether `existing` is one of the auto-approvals that
    /// [`ActionDraft::budget_window`] counts (the store may select by these
    /// columns instead: same server, type and command, `approved_by` "auto",
    /// `created_at` in the window).
    pub fn counts_against_budget(&self, existing: &Action) -> bool {
        self.budget_window().is_some_and(|(_, since)| {
            existing.server_id == self.server_id
                && existing.action_type == self.action_type
                && existing.command == self.command
                && existing.approved_by.as_deref() == Some(AUTO)
                && existing.created_at > since
                && existing.created_at <= self.created_at
        })
    }

    /// The stored action with id `id`: auto-approved unless `server` is paused
    /// (maintenance mode holds everything), the entry's policy needs people
    /// ([`ActionDraft::needs_people`]) or its auto-approval budget is spent
    /// (`auto_approved_in_window` is the store's count for
    /// [`ActionDraft::budget_window`], 0 without a budget). Also returns the
    /// creation event (without its id).
    pub fn into_action(
        self,
        id: i64,
        server: &Server,
        auto_approved_in_window: u32,
    ) -> (Action, EventDraft) {
        let over_budget = self
            .auto_approve_budget
            .filter(|budget| auto_approved_in_window >= budget.max);
        let held = server.is_paused || over_budget.is_some() || self.needs_people.is_some();
        let (status, approved_at, approved_by) = if held {
            (ActionStatus::Pending, None, None)
        } else {
            (
                ActionStatus::Approved,
                Some(self.created_at),
                Some(AUTO.to_owned()),
            )
        };
        let event = EventDraft {
            kind: EventKind::Action,
            subject: self.server_id.clone(),
            action_id: Some(id),
            from_status: None,
            to_status: Some(status),
            by: self.created_by.clone(),
            at: self.created_at,
            // What the action is: its payload's digest (with its server and
            // requester, which the event names), chained.
            digest: Some(self.digest.clone()),
            // The creator asked; the approval was automatic (`approved_by` "auto").
            detail: match (&self.needs_people, over_budget) {
                _ if server.is_paused => None,
                (Some(why), _) => Some(why.clone()),
                (None, Some(budget)) => Some(format!(
                    "auto-approval budget exceeded: {} in the last {}s",
                    budget.max, budget.window_seconds
                )),
                (None, None) => Some(AUTO_APPROVED.to_owned()),
            },
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
            approvals: Vec::new(),
            digest: self.digest,
            whitelist_version: self.whitelist_version,
            params: self.params,
            cancel_requested_at: None,
            cancel_requested_by: None,
        };
        (action, event)
    }
}

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
