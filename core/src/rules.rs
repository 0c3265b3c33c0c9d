//! The rules every store applies the same way: SPEC's create rule 5 (who is
//! auto-approved), the conflict guards of create rules 6 and 7, and the status
//! machine (which statuses each change may leave, which fields it sets, which
//! event it logs).
//!
//! The types these rules act on are the storage vocabulary of [`crate::store`];
//! the rules live here, as methods on those types, so a backend only provides
//! atomicity and cannot disagree on what a change means. A backend calls
//! [`ActionDraft::into_action`], [`ConflictGuard::collides`] /
//! [`ConflictGuard::error`] and [`Change::apply`] inside its atomic section.

use crate::actor::{AUTO, SYSTEM};
use crate::error::{Error, Result};
use chrono::TimeDelta;

use crate::model::{Action, ActionStatus, Approval, EventKind, Server, Timestamp};
use crate::store::{ActionDraft, Change, ChangeKind, ConflictGuard, EventDraft};

/// Detail of the creation event of an action approved automatically.
pub const AUTO_APPROVED: &str = "auto-approved";

/// Why an expired lease failed its action (the action's `stderr`).
pub const LEASE_EXPIRED_STDERR: &str =
    "actionq: lease expired before the agent reported a result; the action was not retried";

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
    /// (SPEC create rule 5), the entry's policy needs people
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

impl Change {
    fn verb(&self) -> &'static str {
        match self.kind {
            ChangeKind::Approve { .. } => "approve",
            ChangeKind::Reject { .. } => "reject",
            ChangeKind::Cancel | ChangeKind::CancelPending => "cancel",
            ChangeKind::Claim { .. } => "claim",
            ChangeKind::Heartbeat { .. } => "heartbeat",
            ChangeKind::Report { .. } => "report result for",
            ChangeKind::Expire | ChangeKind::ExpireApproval { .. } => "expire",
        }
    }

    fn allowed_from(&self) -> &'static [ActionStatus] {
        use ActionStatus::*;
        match self.kind {
            ChangeKind::Approve { .. }
            | ChangeKind::Reject { .. }
            | ChangeKind::CancelPending
            | ChangeKind::ExpireApproval { .. } => &[Pending],
            ChangeKind::Cancel => &[Pending, Approved],
            ChangeKind::Claim { .. } => &[Approved],
            ChangeKind::Heartbeat { .. } | ChangeKind::Report { .. } | ChangeKind::Expire => {
                &[Executing]
            }
        }
    }

    /// Applies the change to `action` (whose stored lease token is `lease_token`)
    /// or returns the Conflict (or PermissionDenied: four-eyes) that forbids
    /// it, leaving both untouched. Returns the audit event when something
    /// was recorded: a status change, or an approval that is not yet the
    /// last one needed (pending → pending). `None` when nothing but the lease
    /// changed (a heartbeat) or nothing changed at all (a second approval by
    /// the same approver).
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
        let mut by = self.by.clone();
        let to = match &self.kind {
            ChangeKind::Approve {
                policy,
                whitelist_version,
            } => {
                if is_stale(action, whitelist_version) {
                    return Err(Error::conflict(stale_whitelist(action.id)));
                }
                if let Some(ttl) = policy.ttl_seconds {
                    if approval_deadline(action.created_at, ttl) <= self.at {
                        return Err(Error::conflict(format!(
                            "Approval of action {} expired after {ttl}s",
                            action.id
                        )));
                    }
                }
                if policy.four_eyes && action.created_by == self.by {
                    return Err(Error::PermissionDenied(format!(
                        "Four-eyes policy: '{}' requested action {} and cannot approve it",
                        self.by, action.id
                    )));
                }
                if action.approvals.iter().any(|a| a.by == self.by) {
                    // Counted once: the action is returned as it is.
                    return Ok(None);
                }
                action.approvals.push(Approval {
                    by: self.by.clone(),
                    at: self.at,
                    digest: action.digest.clone(),
                });
                let given = action.approvals.len();
                let required = policy.required.max(1) as usize;
                if required > 1 {
                    detail = Some(format!("{given} of {required}"));
                }
                if given < required {
                    ActionStatus::Pending
                } else {
                    action.approved_at = Some(self.at);
                    action.approved_by = Some(self.by.clone());
                    ActionStatus::Approved
                }
            }
            ChangeKind::Reject { reason } => {
                action.rejected_at = Some(self.at);
                action.rejected_by = Some(self.by.clone());
                action.rejection_reason = Some(reason.clone());
                detail = Some(reason.clone());
                ActionStatus::Rejected
            }
            ChangeKind::Cancel | ChangeKind::CancelPending => {
                action.cancelled_at = Some(self.at);
                action.cancelled_by = Some(self.by.clone());
                ActionStatus::Cancelled
            }
            ChangeKind::Claim {
                whitelist_version, ..
            } if is_stale(action, whitelist_version) => {
                // Never run what the current whitelist did not build; cancel it
                // so it cannot block the server, and let the claim go on.
                action.cancelled_at = Some(self.at);
                action.cancelled_by = Some(SYSTEM.to_owned());
                by = SYSTEM.to_owned();
                detail = Some(stale_whitelist(action.id));
                ActionStatus::Cancelled
            }
            ChangeKind::Claim {
                lease_token: token,
                lease_expires_at,
                ..
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
            ChangeKind::ExpireApproval { ttl_seconds } => {
                let reason = format!("approval expired after {ttl_seconds}s");
                action.rejected_at = Some(self.at);
                action.rejected_by = Some(self.by.clone());
                action.rejection_reason = Some(reason.clone());
                detail = Some(reason);
                ActionStatus::Rejected
            }
        };
        action.status = to;
        // An approval vouches for the digest it approved.
        let digest = matches!(self.kind, ChangeKind::Approve { .. }).then(|| action.digest.clone());
        Ok(Some(EventDraft {
            kind: EventKind::Action,
            subject: action.server_id.clone(),
            action_id: Some(action.id),
            from_status: Some(from),
            to_status: Some(to),
            by,
            at: self.at,
            detail,
            digest,
        }))
    }
}

impl EventDraft {
    /// The event of `by` pausing (or unpausing) server `server_id` at `at`;
    /// stores log it only when the state changed.
    pub fn server_paused(server_id: &str, paused: bool, by: &str, at: Timestamp) -> EventDraft {
        EventDraft {
            kind: EventKind::Server,
            subject: server_id.to_owned(),
            action_id: None,
            from_status: None,
            to_status: None,
            by: by.to_owned(),
            at,
            detail: Some(if paused { "paused" } else { "unpaused" }.to_owned()),
            digest: None,
        }
    }

    /// The event of `by` issuing (`detail` `"issued <role>[ for server <id>]"`)
    /// or revoking ("revoked") credential `name` at `at`.
    pub fn credential(name: &str, detail: String, by: &str, at: Timestamp) -> EventDraft {
        EventDraft {
            kind: EventKind::Credential,
            subject: name.to_owned(),
            action_id: None,
            from_status: None,
            to_status: None,
            by: by.to_owned(),
            at,
            detail: Some(detail),
            digest: None,
        }
    }
}

/// When a pending action created at `created_at` under `ttl_seconds` expires
/// (it is expired at this instant and after).
pub(crate) fn approval_deadline(created_at: Timestamp, ttl_seconds: u64) -> Timestamp {
    TimeDelta::try_seconds(ttl_seconds as i64)
        .and_then(|ttl| created_at.checked_add_signed(ttl))
        .unwrap_or(Timestamp::MAX_UTC)
}
