//! Domain records: servers, actions, statuses, events and pages.
//!
//! Field names are the wire names of `docs/contract/domain.md#action-fields`
//! everywhere (Rust, Python, JSON, C).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A UTC timestamp with microsecond precision.
///
/// Records serialise it as RFC 3339 in UTC with a `Z`, and six fractional
/// digits only when there are microseconds (`2026-01-01T00:00:00Z`,
/// `2026-01-01T00:00:00.120000Z`): the form pydantic writes, so the JSON of
/// every host (C, Rust, Python's `to_json()`, HTTP) is the same text.
pub type Timestamp = DateTime<Utc>;

/// [`Timestamp`]'s wire form, for `#[serde(serialize_with)]`.
pub(crate) mod wire_time {
    use std::fmt;

    use chrono::{Datelike, Timelike};
    use serde::Serializer;

    use super::Timestamp;

    struct Wire<'a>(&'a Timestamp);

    impl fmt::Display for Wire<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let t = self.0.naive_utc();
            write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )?;
            // Only a leap second takes nanosecond() past 1e9; the queue's clock
            // never makes one, and the modulus keeps six digits regardless.
            let micros = (t.nanosecond() % 1_000_000_000) / 1_000;
            if micros != 0 {
                write!(f, ".{micros:06}")?;
            }
            f.write_str("Z")
        }
    }

    pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Wire(t))
    }

    pub(crate) fn serialize_opt<S: Serializer>(
        t: &Option<Timestamp>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

/// A managed server. Paused servers hold new actions for human approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// 1–100 characters of `[A-Za-z0-9._-]`, starting alphanumeric.
    pub id: String,
    /// Optional display hostname.
    pub hostname: Option<String>,
    /// Maintenance mode: new actions start `pending` instead of `approved`.
    pub is_paused: bool,
    /// When maintenance mode was entered; `None` while not paused.
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub paused_at: Option<Timestamp>,
    /// When the server was registered.
    #[serde(serialize_with = "wire_time::serialize")]
    pub created_at: Timestamp,
}

/// Where an action is in its life: `docs/contract/domain.md#status-machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Waiting for a human (server in maintenance mode).
    Pending,
    /// May be claimed by the server's agent.
    Approved,
    /// Refused by a human. Terminal.
    Rejected,
    /// Withdrawn before execution. Terminal.
    Cancelled,
    /// Claimed by an agent holding the lease.
    Executing,
    /// Finished with exit code 0. Terminal.
    Completed,
    /// Finished with a non-zero exit code or a lost lease. Terminal.
    Failed,
}

impl ActionStatus {
    /// Every status, in life-cycle order: the list every host builds its own
    /// enum from (Python's `actionq.ActionStatus`, the HTTP schema's).
    pub const ALL: [ActionStatus; 7] = [
        ActionStatus::Pending,
        ActionStatus::Approved,
        ActionStatus::Rejected,
        ActionStatus::Cancelled,
        ActionStatus::Executing,
        ActionStatus::Completed,
        ActionStatus::Failed,
    ];

    /// Whether nothing can change the action any more (completed, failed,
    /// rejected, cancelled): what prune may delete.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            ActionStatus::Pending | ActionStatus::Approved | ActionStatus::Executing
        )
    }

    /// The wire name, e.g. `"pending"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Approved => "approved",
            ActionStatus::Rejected => "rejected",
            ActionStatus::Cancelled => "cancelled",
            ActionStatus::Executing => "executing",
            ActionStatus::Completed => "completed",
            ActionStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ActionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ActionStatus::ALL.iter().map(|s| s.as_str()).collect();
                Error::InvalidInput(format!(
                    "Invalid status '{}' (must be one of: {})",
                    s.escape_debug(),
                    names.join(", ")
                ))
            })
    }
}

/// A remediation action and its whole history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Unique, strictly increasing from 1, never reused.
    pub id: i64,
    /// The server it runs on.
    pub server_id: String,
    /// The whitelist entry it was built from.
    pub action_type: String,
    /// Current status.
    pub status: ActionStatus,
    /// The systemd unit, for actions that take one.
    pub service_name: Option<String>,
    /// Display form of the command, as a POSIX shell would read it.
    pub command: String,
    /// What an executor runs, without a shell.
    pub argv: Vec<String>,
    /// Environment variables for the executor.
    pub env: BTreeMap<String, String>,
    /// The monitoring alert that prompted the action, if any.
    pub alert_id: Option<i64>,
    /// When the action was requested.
    #[serde(serialize_with = "wire_time::serialize")]
    pub created_at: Timestamp,
    /// Who requested it (default `"dashboard"`).
    pub created_by: String,
    /// When it was approved (equal to `created_at` for auto-approval).
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub approved_at: Option<Timestamp>,
    /// Who approved it (`"auto"` for auto-approval).
    pub approved_by: Option<String>,
    /// When it was rejected.
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub rejected_at: Option<Timestamp>,
    /// Who rejected it.
    pub rejected_by: Option<String>,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
    /// When it was cancelled.
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub cancelled_at: Option<Timestamp>,
    /// Who cancelled it.
    pub cancelled_by: Option<String>,
    /// When an agent claimed it.
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub executed_at: Option<Timestamp>,
    /// When the current lease runs out, while executing.
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub lease_expires_at: Option<Timestamp>,
    /// When it finished (completed or failed).
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub completed_at: Option<Timestamp>,
    /// The command's exit code; -1 for a lost lease.
    pub exit_code: Option<i32>,
    /// Captured standard output, capped.
    pub stdout: Option<String>,
    /// Captured standard error, capped.
    pub stderr: Option<String>,
    /// The human approvals so far, oldest first (empty for an auto-approved
    /// action). With the approval policy's `required` > 1 an action stays
    /// `pending` until this holds that many distinct approvers.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// The payload digest: [`crate::action_digest`] of (`server_id`,
    /// `action_type`, `argv`, `env`, `whitelist_version`). What approvers
    /// approve and what an executor checks before it runs anything
    /// ([`Action::digest_matches`]).
    #[serde(default)]
    pub digest: String,
    /// [`crate::Whitelist::version`] of the whitelist the action was built
    /// under. Empty for actions stored before whitelists had versions
    /// (SQLite schema < 4), which are exempt from the stale-whitelist check.
    #[serde(default)]
    pub whitelist_version: String,
    /// The parameter values the command was built from, by name: defaults
    /// applied and values normalised (e.g. `nginx` → `nginx.service`), so an
    /// executor can rebuild `argv`/`env` from the action type with its own
    /// whitelist. Empty for actions stored before actions kept their
    /// parameters, except `service_name` where the action has one.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// When someone asked to stop the command while it was executing
    /// (`docs/contract/cancel-and-output.md`); `None` otherwise.
    #[serde(default, serialize_with = "wire_time::serialize_opt")]
    pub cancel_requested_at: Option<Timestamp>,
    /// Who asked to stop it; becomes `cancelled_by` when the agent reports
    /// the command stopped.
    #[serde(default)]
    pub cancel_requested_by: Option<String>,
}

impl Action {
    /// The digest recomputed from this action's payload: what
    /// [`Action::digest`] must be.
    pub fn computed_digest(&self) -> String {
        crate::action_digest(
            &self.server_id,
            &self.action_type,
            &self.argv,
            &self.env,
            &self.whitelist_version,
        )
    }

    /// Whether what would run is what was approved: the digest recomputed
    /// from `server_id`, `action_type`, `argv`, `env` and `whitelist_version`
    /// equals the stored `digest`, and every approval approved that digest.
    /// An executor calls this on a claim before running anything.
    ///
    /// ```
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// queue.create_action(&actionq::NewAction::new("web-1", "clear_logs"))?;
    /// let mut claim = queue.claim_next("web-1", None, None)?.expect("approved");
    /// assert!(claim.action.digest_matches());
    /// claim.action.argv.push("--now".into()); // not what was approved
    /// assert!(!claim.action.digest_matches());
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn digest_matches(&self) -> bool {
        let digest = self.computed_digest();
        digest == self.digest && self.approvals.iter().all(|a| a.digest == digest)
    }
}

/// One human approval of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved (a principal's name, or the trusted caller's `by`).
    pub by: String,
    /// When.
    #[serde(serialize_with = "wire_time::serialize")]
    pub at: Timestamp,
    /// The action's digest at the time: what this approver approved.
    pub digest: String,
}

/// An action just claimed by an agent, with the token that fences its executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The action, now `executing`.
    #[serde(flatten)]
    pub action: Action,
    /// Secret lease token (a UUID); required by `heartbeat` and `report_result`.
    pub lease_token: String,
}

/// A piece of an executing action's output, as its agent sent it while the
/// command ran (`docs/contract/cancel-and-output.md#live-output`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// The agent's sequence number: from 1, increasing per action.
    pub seq: i64,
    /// Standard output of this piece (empty when there was none, or the
    /// output cap was reached).
    pub stdout: String,
    /// Standard error of this piece, likewise.
    pub stderr: String,
    /// When the queue stored it.
    #[serde(serialize_with = "wire_time::serialize")]
    pub at: Timestamp,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionPage {
    /// The actions on this page.
    pub actions: Vec<Action>,
    /// How many actions match the filter in all.
    pub total: u64,
    /// The page size asked for.
    pub limit: i64,
    /// How many matches were skipped.
    pub offset: i64,
    /// Ask for the next page with `before_id` set to this: the id of this
    /// page's last action, or `None` on the last page
    /// (`docs/contract/retention.md#keyset-paging`).
    pub next_before_id: Option<i64>,
}

/// One line of an export (`docs/contract/retention.md#export`): a finished
/// action as stored, and every event of it, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedAction {
    /// The action.
    pub action: Action,
    /// Its events, by id.
    pub events: Vec<Event>,
}

/// What an audit event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// An action changed status (or gained an approval).
    Action,
    /// A server was paused or unpaused.
    Server,
    /// A credential was issued or revoked.
    Credential,
}

impl EventKind {
    /// The wire name, e.g. `"action"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Action => "action",
            EventKind::Server => "server",
            EventKind::Credential => "credential",
        }
    }
}

impl FromStr for EventKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        [EventKind::Action, EventKind::Server, EventKind::Credential]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!("Invalid event kind '{}'", s.escape_debug()))
            })
    }
}

/// One entry of the append-only audit log: an action's status change, a
/// server's pause or unpause, a credential's issue or revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Cursor position: strictly increasing, never reused.
    pub id: i64,
    /// The action that changed; `None` for server and credential events.
    pub action_id: Option<i64>,
    /// Status before the change; `None` when the action was created, and for
    /// server and credential events.
    pub from_status: Option<ActionStatus>,
    /// Status after the change; `None` for server and credential events.
    pub to_status: Option<ActionStatus>,
    /// Who made the change (`"auto"`, `"dashboard"`, `"agent"`, `"system"`, ...).
    pub by: String,
    /// When.
    #[serde(serialize_with = "wire_time::serialize")]
    pub at: Timestamp,
    /// Extra detail: rejection reason, exit code, why a lease was lost;
    /// `paused`/`unpaused`; `issued <role>`/`revoked`.
    pub detail: Option<String>,
    /// What the event is about.
    pub kind: EventKind,
    /// The server id (action and server events) or the credential name
    /// (credential events).
    pub subject: String,
}

/// How many actions one server has in one status: a row of
/// [`ActionQueue::count_actions`](crate::ActionQueue::count_actions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCount {
    /// The server.
    pub server_id: String,
    /// The status counted.
    pub status: ActionStatus,
    /// How many of the server's actions are in `status` (at least 1).
    pub count: u64,
}

/// Filters and pagination for listing actions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionFilter {
    /// Only actions with this status.
    pub status: Option<ActionStatus>,
    /// Only actions on this server.
    pub server_id: Option<String>,
    /// Only actions of this type.
    pub action_type: Option<String>,
}
