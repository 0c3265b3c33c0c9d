//! What an update is: a [`Change`] of a [`ChangeKind`], and the status
//! machine that applies it (which statuses it may leave, which fields it
//! sets, which event it logs).

use super::{
    approval_deadline, is_stale, stale_whitelist, EventDraft, CANCEL_REQUESTED,
    LEASE_EXPIRED_STDERR, LEASE_EXPIRED_WITH_CANCEL_STDERR,
};
use crate::actor::SYSTEM;
use crate::error::{Error, Result};
use crate::model::{Action, ActionStatus, Approval, EventKind, Timestamp};
use crate::whitelist::ApprovalPolicy;

/// What a change does to an action. Built by the queue, applied by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// One approval of a pending action: pending → approved once the
    /// entry's policy has enough distinct approvers, else pending → pending
    /// with the approval recorded (see [`Change::apply`]).
    Approve {
        /// The policy of the action's whitelist entry.
        policy: ApprovalPolicy,
        /// Version of the queue's whitelist: an action built under another
        /// one can no longer be approved.
        whitelist_version: String,
    },
    /// pending → rejected.
    Reject {
        /// Why (1–1000 characters, checked by the queue).
        reason: String,
    },
    /// pending | approved → cancelled; executing → executing with a cancel
    /// request recorded (`cancel_requested_at`/`_by`), which the agent
    /// answers with a cancelled report.
    Cancel,
    /// pending → cancelled only: a requester withdrawing its own request,
    /// which must not stop an action someone else already approved.
    CancelPending,
    /// approved → executing, with a new lease; or, for an action built
    /// under another whitelist version, approved → cancelled by `system`
    /// (the claim then goes on to the next action).
    Claim {
        /// The SHA-256 (hex) of the fresh lease token: all a store keeps.
        lease_token: String,
        /// When the lease runs out.
        lease_expires_at: Timestamp,
        /// Version of the queue's whitelist.
        whitelist_version: String,
    },
    /// executing → executing: extend the lease of the token's holder.
    Heartbeat {
        /// The SHA-256 (hex) of the holder's token.
        lease_token: String,
        /// The new expiry.
        lease_expires_at: Timestamp,
    },
    /// executing → completed | failed, by the token's holder; → cancelled
    /// when `cancelled` (the agent stopped the command on a cancel request).
    Report {
        /// The SHA-256 (hex) of the holder's token.
        lease_token: String,
        /// Exit code: 0 completes, anything else fails.
        exit_code: i32,
        /// Captured output, already capped.
        stdout: Option<String>,
        /// Captured errors, already capped.
        stderr: Option<String>,
        /// The agent stopped the command because a cancel was requested.
        cancelled: bool,
    },
    /// executing (lease ran out) → failed with exit code -1.
    Expire,
    /// pending (approval waited too long) → rejected by `system` with
    /// `rejection_reason` `approval expired after {ttl_seconds}s`.
    ExpireApproval {
        /// The entry's `approval.ttl_seconds`.
        ttl_seconds: u64,
    },
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
            ChangeKind::Cancel => &[Pending, Approved, Executing],
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
            check_lease(action, lease_token.as_deref(), given, self.at)?;
        }
        if let ChangeKind::Report {
            cancelled: true, ..
        } = &self.kind
        {
            if action.cancel_requested_at.is_none() {
                return Err(Error::conflict(format!(
                    "No cancel was requested for action {}",
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
            ChangeKind::Cancel if from == ActionStatus::Executing => {
                if action.lease_expires_at.is_none_or(|until| until <= self.at) {
                    // Its agent is gone: the lease sweep fails it; nobody is
                    // left to hear a request.
                    return Err(Error::conflict(format!(
                        "Lease of action {} has expired: it fails, it is not cancelled",
                        action.id
                    )));
                }
                if action.cancel_requested_at.is_some() {
                    // Asked once: the first request stands.
                    return Ok(None);
                }
                action.cancel_requested_at = Some(self.at);
                action.cancel_requested_by = Some(self.by.clone());
                detail = Some(CANCEL_REQUESTED.to_owned());
                ActionStatus::Executing
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
                cancelled,
                ..
            } => {
                action.completed_at = Some(self.at);
                action.exit_code = Some(*exit_code);
                action.stdout = stdout.clone();
                action.stderr = stderr.clone();
                *lease_token = None;
                detail = Some(format!("exit_code={exit_code}"));
                if *cancelled {
                    action.cancelled_at = Some(self.at);
                    action.cancelled_by = action.cancel_requested_by.clone();
                    detail = Some(format!("cancelled, exit_code={exit_code}"));
                    ActionStatus::Cancelled
                } else if *exit_code == 0 {
                    ActionStatus::Completed
                } else {
                    ActionStatus::Failed
                }
            }
            ChangeKind::Expire => {
                action.completed_at = Some(self.at);
                action.exit_code = Some(-1);
                *lease_token = None;
                if action.cancel_requested_at.is_some() {
                    action.stderr = Some(LEASE_EXPIRED_WITH_CANCEL_STDERR.to_owned());
                    detail = Some("lease expired (a cancel was pending)".to_owned());
                } else {
                    action.stderr = Some(LEASE_EXPIRED_STDERR.to_owned());
                    detail = Some("lease expired".to_owned());
                }
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

/// Conflict unless `given` (a token's SHA-256) is the current lease of the
/// executing `action` (whose stored token is `stored`) and it runs past `at`:
/// what fences every call of an agent.
pub(crate) fn check_lease(
    action: &Action,
    stored: Option<&str>,
    given: &str,
    at: Timestamp,
) -> Result<()> {
    if action.status != ActionStatus::Executing {
        return Err(Error::conflict(format!(
            "Action {} is not executing (status '{}')",
            action.id, action.status
        )));
    }
    if stored != Some(given) {
        return Err(Error::conflict(format!(
            "Lease token does not match the current lease of action {}",
            action.id
        )));
    }
    if action.lease_expires_at.is_none_or(|until| until <= at) {
        return Err(Error::conflict(format!(
            "Lease of action {} has expired",
            action.id
        )));
    }
    Ok(())
}
