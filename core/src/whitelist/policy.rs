//! What an entry says beyond its command: which earlier actions a new one
//! collides with ([`ConflictPolicy`]), who must approve it and for how long
//! ([`ApprovalPolicy`], with its [`AutoApproveBudget`]).

use serde::{Deserialize, Serialize};

use crate::limits;

/// Which earlier actions a new one collides with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ConflictPolicy {
    /// Never collides.
    #[default]
    None,
    /// Collides with a `pending` action of the same server, type and parameters.
    PendingDuplicate,
    /// Collides with any pending, approved or executing action of the same
    /// server whose type is in the same named group.
    ExclusiveGroup(String),
}

/// How many actions of one type, with the same parameters, a normal server
/// auto-approves within a sliding window before holding the next for a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApproveBudget {
    /// Auto-approvals allowed per window (at least 1).
    pub max: u32,
    /// The window's length in seconds (at least 1).
    pub window_seconds: u64,
}

/// Who must approve an entry's actions, and for how long an approval may wait.
/// The default is the seed's behaviour: one approval, by anyone, no expiry,
/// no budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// Distinct principals that must approve a held action (1..=[`limits::MAX_REQUIRED_APPROVALS`]).
    pub required: u32,
    /// The requester may not approve its own action.
    pub four_eyes: bool,
    /// A pending action older than this is rejected by `system`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Auto-approvals allowed per window on a normal server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_approve_budget: Option<AutoApproveBudget>,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            required: 1,
            four_eyes: false,
            ttl_seconds: None,
            auto_approve_budget: None,
        }
    }
}

impl ApprovalPolicy {
    /// Why an action under this policy must wait for people whatever the
    /// server's state: more than one approval, or four eyes (an automatic
    /// approval would skip both). `None` when auto-approval may decide.
    pub fn needs_people(&self) -> Option<String> {
        match (self.required > 1, self.four_eyes) {
            (true, _) => Some(format!(
                "held for approval: {} approvals required",
                self.required
            )),
            (false, true) => Some("held for approval: four-eyes policy".to_owned()),
            (false, false) => None,
        }
    }

    pub(super) fn is_default(&self) -> bool {
        *self == ApprovalPolicy::default()
    }

    pub(super) fn check_config(&self) -> std::result::Result<(), String> {
        let max = limits::MAX_REQUIRED_APPROVALS;
        if !(1..=max).contains(&self.required) {
            return Err(format!("approval.required must be from 1 to {max}"));
        }
        if let Some(ttl) = self.ttl_seconds {
            if !(1..=limits::MAX_POLICY_SECONDS).contains(&ttl) {
                return Err(format!(
                    "approval.ttl_seconds must be from 1 to {}",
                    limits::MAX_POLICY_SECONDS
                ));
            }
        }
        if let Some(budget) = self.auto_approve_budget {
            if budget.max < 1 {
                return Err("approval.auto_approve_budget.max must be at least 1".into());
            }
            if !(1..=limits::MAX_POLICY_SECONDS).contains(&budget.window_seconds) {
                return Err(format!(
                    "approval.auto_approve_budget.window_seconds must be from 1 to {}",
                    limits::MAX_POLICY_SECONDS
                ));
            }
        }
        Ok(())
    }
}
