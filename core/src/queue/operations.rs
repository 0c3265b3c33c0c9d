//! Every operation of the queue, once. Each starts by asking whether its
//! actor may perform it ([`ActionQueue::allow`]) and records the actor's name
//! ([`ActionQueue::recorded_name`]); the trusted host passes every check and
//! is recorded under the operation's default name.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::TimeDelta;

use super::validation::{cap, check_len, check_server_id, lease_token_digest};
use super::{ActionQuery, ActionQueue, NewAction};
use crate::actor::{Actor, AGENT, DASHBOARD, SYSTEM};
use crate::error::{Error, Result};
use crate::identity::{
    self, authorize_role, Credential, CredentialDraft, IssuedCredential, Operation, Principal,
    Role, Target,
};
use crate::limits;
use crate::model::{
    Action, ActionCount, ActionFilter, ActionPage, ActionStatus, Claim, Event, OutputChunk, Server,
    Timestamp,
};
use crate::store::{
    ActionDraft, Change, ChangeKind, ConflictGuard, OutputDraft, PageRequest, Topic,
};
use crate::whitelist::ConflictPolicy;

/// Every operation an [`ActionQueue`] offers, by name, in the order of this
/// module, then of `jobs.rs`, then of `retention.rs`. Every host offers each under the same name (C:
/// `aq_<noun>_<verb>`), and each host's tests compare its own list with this
/// one, so an operation added here and forgotten in a host fails the build.
pub const OPERATIONS: [&str; 37] = [
    "create_server",
    "get_server",
    "list_servers",
    "pause_server",
    "unpause_server",
    "create_action",
    "get_action",
    "list_actions",
    "list_server_actions",
    "count_actions",
    "events_since",
    "approve_action",
    "reject_action",
    "cancel_action",
    "claim_next",
    "heartbeat",
    "await_cancel",
    "report_result",
    "report_cancelled",
    "append_output",
    "output_since",
    "expire_leases",
    "expire_approvals",
    "lease_expiries",
    "verify_audit",
    "issue_credential",
    "list_credentials",
    "revoke_credential",
    "authenticate",
    "take_lease",
    "release_lease",
    "register_delivery",
    "record_delivery",
    "record_sent",
    "list_deliveries",
    "prune",
    "export",
];

impl ActionQueue {
    /// Registers a server (not paused). Conflict if the id is taken. For the
    /// host, admins and operators.
    pub fn create_server(&self, id: &str, hostname: Option<&str>) -> Result<Server> {
        self.allow(Operation::CreateServer, Target::Server(id))?;
        check_server_id(id)?;
        if let Some(h) = hostname {
            check_len("hostname", h, limits::MAX_HOSTNAME_CHARS)?;
        }
        let server = Server {
            id: id.to_owned(),
            hostname: hostname.map(str::to_owned),
            is_paused: false,
            paused_at: None,
            created_at: self.now(),
        };
        self.store.insert_server(&server)?;
        Ok(server)
    }

    /// The server `id`, or NotFound `Server '{id}' not found`. For every role
    /// but agent.
    pub fn get_server(&self, id: &str) -> Result<Server> {
        self.allow(Operation::Read, Target::Server(id))?;
        self.find_server(id)
    }

    fn find_server(&self, id: &str) -> Result<Server> {
        self.store
            .get_server(id)?
            .ok_or_else(|| Error::server_not_found(id))
    }

    /// Every registered server, ordered by id. For every role but agent.
    pub fn list_servers(&self) -> Result<Vec<Server>> {
        self.allow(Operation::Read, Target::None)?;
        self.store.list_servers()
    }

    /// Puts the server in maintenance mode (idempotent). The change is an
    /// audit event by the actor (the host's default: `"dashboard"`). For the
    /// host, admins and operators.
    pub fn pause_server(&self, id: &str) -> Result<Server> {
        self.set_paused(id, true)
    }

    /// Takes the server out of maintenance mode (idempotent); an audit event
    /// like [`ActionQueue::pause_server`].
    pub fn unpause_server(&self, id: &str) -> Result<Server> {
        self.set_paused(id, false)
    }

    fn set_paused(&self, id: &str, paused: bool) -> Result<Server> {
        self.allow(Operation::PauseServer, Target::Server(id))?;
        self.store
            .set_paused(id, paused, self.recorded_name(DASHBOARD), self.now())?
            .ok_or_else(|| Error::server_not_found(id))
    }

    /// Queues an action, applying the create rules in order: malformed input
    /// (InvalidInput), unknown server (NotFound), whitelist (NotWhitelisted),
    /// conflict policy (Conflict); then auto-approves unless the server is
    /// paused. `created_by` is the request's for the host, else the actor's
    /// name (whatever the request says). For the host, admins, operators and
    /// requesters.
    pub fn create_action(&self, request: &NewAction) -> Result<Action> {
        self.allow(Operation::CreateAction, Target::Server(&request.server_id))?;
        let created_by = self.recorded_name(&request.created_by);
        check_server_id(&request.server_id)?;
        check_len("action_type", &request.action_type, limits::MAX_NAME_CHARS)?;
        check_len("created_by", created_by, limits::MAX_NAME_CHARS)?;
        if let Some(alert_id) = request.alert_id {
            if alert_id < 1 {
                return Err(Error::InvalidInput(format!(
                    "alert_id must be at least 1 (got {alert_id})"
                )));
            }
        }
        self.whitelist
            .check_shape(&request.action_type, &request.params)?;
        // Rule 2 (unknown server) outranks rule 3 (not whitelisted). The store
        // checks the server atomically with the insert, so it is read here only
        // when the whitelist refuses, to pick the right error.
        let built = match self.whitelist.build(&request.action_type, &request.params) {
            Ok(built) => built,
            Err(refused) => {
                self.find_server(&request.server_id)?;
                return Err(refused);
            }
        };
        let entry = self
            .whitelist
            .get(&request.action_type)
            .expect("build succeeded");
        let guard = match entry.conflict() {
            ConflictPolicy::None => ConflictGuard::None,
            ConflictPolicy::PendingDuplicate => ConflictGuard::PendingDuplicate {
                message: match &built.service_name {
                    Some(service) => format!(
                        "Pending action already exists for service '{service}' on server '{}'",
                        request.server_id
                    ),
                    None => format!(
                        "Pending action already exists for '{}' on server '{}'",
                        request.action_type, request.server_id
                    ),
                },
            },
            ConflictPolicy::ExclusiveGroup(group) => ConflictGuard::ActiveInGroup {
                action_types: self.whitelist.group_members(group),
                message: format!(
                    "An {} action is already pending/in-progress for server '{}'",
                    group.to_uppercase(),
                    request.server_id
                ),
            },
        };
        let draft = ActionDraft {
            created_at: self.now(),
            created_by: created_by.to_owned(),
            digest: crate::action_digest(
                &request.server_id,
                &request.action_type,
                &built.argv,
                &built.env,
                self.whitelist.version(),
            ),
            whitelist_version: self.whitelist.version().to_owned(),
            auto_approve_budget: entry.approval().auto_approve_budget,
            needs_people: entry.approval().needs_people(),
            server_id: request.server_id.clone(),
            action_type: request.action_type.clone(),
            service_name: built.service_name,
            command: built.command,
            argv: built.argv,
            env: built.env,
            params: built.params,
            alert_id: request.alert_id,
        };
        self.store.insert_action(draft, &guard)
    }

    /// Runs [`ActionQueue::expire_leases`] and
    /// [`ActionQueue::expire_approvals`] when
    /// [`QueueOptions::expire_leases_on_read`](super::QueueOptions::expire_leases_on_read)
    /// asks for it: the first step of every read and of `claim_next`, after
    /// the actor's role check and before any check of their arguments.
    fn expire_before_read(&self) -> Result<()> {
        if self.options.expire_leases_on_read {
            self.expire_leases_unchecked()?;
            self.expire_approvals_unchecked()?;
        }
        Ok(())
    }

    /// The action `id`, or NotFound `Action {id} not found`. For every role
    /// but agent.
    pub fn get_action(&self, id: i64) -> Result<Action> {
        self.allow(Operation::Read, Target::None)?;
        self.expire_before_read()?;
        self.find_action(id)
    }

    fn find_action(&self, id: i64) -> Result<Action> {
        self.store
            .get_action(id)?
            .ok_or_else(|| Error::action_not_found(id))
    }

    /// A page of actions matching `query`, newest first, with the total
    /// count. For every role but agent.
    pub fn list_actions(&self, query: &ActionQuery) -> Result<ActionPage> {
        self.allow(Operation::Read, Target::None)?;
        check_page(query)?;
        self.expire_before_read()?;
        self.list_checked(query)
    }

    /// A page of `query`, whose bounds [`check_page`] accepted.
    fn list_checked(&self, query: &ActionQuery) -> Result<ActionPage> {
        let filter = ActionFilter {
            status: query.status,
            server_id: query.server_id.clone(),
            action_type: query.action_type.clone(),
        };
        // One match more than the page, to tell whether a next page exists.
        let page = PageRequest {
            limit: query.limit as u32 + 1,
            offset: query.offset as u64,
            before_id: query.before_id,
        };
        let (mut actions, total) = self.store.list_actions(&filter, page)?;
        let more = actions.len() > query.limit as usize;
        actions.truncate(query.limit as usize);
        Ok(ActionPage {
            next_before_id: more.then(|| actions.last().map(|a| a.id)).flatten(),
            actions,
            total,
            limit: query.limit,
            offset: query.offset,
        })
    }

    /// A page of one server's actions; NotFound for an unknown server. For
    /// every role but agent.
    pub fn list_server_actions(
        &self,
        server_id: &str,
        status: Option<ActionStatus>,
        limit: i64,
        offset: i64,
        before_id: Option<i64>,
    ) -> Result<ActionPage> {
        self.allow(Operation::Read, Target::Server(server_id))?;
        let query = ActionQuery {
            status,
            server_id: Some(server_id.to_owned()),
            action_type: None,
            limit,
            offset,
            before_id,
        };
        check_page(&query)?;
        self.expire_before_read()?;
        self.find_server(server_id)?;
        self.list_checked(&query)
    }

    /// How many actions each server has in each status: one row per (server,
    /// status) with at least one action, ordered by server id, then status in
    /// [`ActionStatus::ALL`] order. Read from the totals the store keeps in step
    /// with every write (as listings' `total` is), so it costs the same with a
    /// million actions as with ten; lost leases are expired first, as before
    /// any read. For every role but agent.
    ///
    /// ```
    /// use actionq::{ActionQueue, ActionStatus, NewAction};
    ///
    /// let queue = ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// queue.create_action(&NewAction::new("web-1", "clear_logs"))?;
    /// let counts = queue.count_actions()?;
    /// assert_eq!(counts.len(), 1);
    /// assert_eq!((counts[0].server_id.as_str(), counts[0].status, counts[0].count), ("web-1", ActionStatus::Approved, 1));
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn count_actions(&self) -> Result<Vec<ActionCount>> {
        self.allow(Operation::Read, Target::None)?;
        self.expire_before_read()?;
        self.store.count_actions()
    }

    /// Up to `limit` (1..=[`limits::MAX_EVENTS_LIMIT`]; hosts default to
    /// [`limits::DEFAULT_EVENTS_LIMIT`]) audit events after `cursor` (0 for the
    /// start), oldest first. Pass the last event's `id` as the next cursor.
    /// With a `wait` (up to [`limits::MAX_WAIT`]; `None` or zero answers at
    /// once), an empty answer waits until an event past the cursor is
    /// committed — by this process, another process on the same SQLite file
    /// or another PostgreSQL replica — and returns it, or returns empty when
    /// the wait ends (`docs/contract/push.md`). For every role but agent.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let queue = actionq::ActionQueue::in_memory();
    /// let waiter = queue.clone();
    /// let reader = std::thread::spawn(move || waiter.events_since(0, 10, Some(Duration::from_secs(30))));
    /// queue.create_server("web-1", None)?;
    /// queue.pause_server("web-1")?; // logs an event, which wakes the reader
    /// assert_eq!(reader.join().unwrap()?.len(), 1);
    /// assert!(queue.events_since(1, 10, Some(Duration::from_millis(10)))?.is_empty());
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn events_since(
        &self,
        cursor: i64,
        limit: i64,
        wait: Option<Duration>,
    ) -> Result<Vec<Event>> {
        self.allow(Operation::Read, Target::None)?;
        if cursor < 0 {
            return Err(Error::InvalidInput(format!(
                "cursor must be at least 0 (got {cursor})"
            )));
        }
        if !(1..=limits::MAX_EVENTS_LIMIT).contains(&limit) {
            return Err(Error::InvalidInput(format!(
                "limit must be between 1 and {} (got {limit})",
                limits::MAX_EVENTS_LIMIT
            )));
        }
        self.waiting(Topic::Events, wait, || {
            self.expire_before_read()?;
            let events = self.store.events_since(cursor, limit as u32)?;
            Ok((!events.is_empty()).then_some(events))
        })
        .map(Option::unwrap_or_default)
    }

    /// The action `id` after the role check for `op`, then the scope check
    /// on it (an agent's server, a requester's own pending actions).
    pub(super) fn target_action(&self, op: Operation, id: i64) -> Result<Action> {
        if let Actor::Principal(principal) = &self.actor {
            authorize_role(principal, op)?;
        }
        let action = self.find_action(id)?;
        self.allow(op, Target::Action(&action))?;
        Ok(action)
    }

    fn change(&self, id: i64, kind: ChangeKind, default_by: &str) -> Result<Action> {
        self.change_at(id, kind, default_by, self.now())
    }

    fn change_at(
        &self,
        id: i64,
        kind: ChangeKind,
        default_by: &str,
        at: Timestamp,
    ) -> Result<Action> {
        let by = self.recorded_name(default_by);
        check_len("actor", by, limits::MAX_NAME_CHARS)?;
        let change = Change {
            kind,
            by: by.to_owned(),
            at,
        };
        self.store.update_action(id, &change)
    }

    /// One approval of a pending action by the actor (the host's default:
    /// `"dashboard"`), under its whitelist entry's approval policy: the
    /// action becomes `approved` once `required` distinct approvers approved
    /// it (until then it stays `pending`, the approval recorded in
    /// `approvals` and logged as an event `"1 of 2"`); a second approval by
    /// the same approver returns the action unchanged. PermissionDenied when
    /// `four_eyes` forbids the requester to approve; Conflict when the
    /// approval's ttl ran out or the action was built under another
    /// whitelist version (`Whitelist changed since action {id} was created`).
    /// For the host, admins and operators.
    pub fn approve_action(&self, id: i64) -> Result<Action> {
        // The policy is the entry's for the action's type, which never
        // changes; reading it first does not race with anything.
        let action = self.target_action(Operation::ApproveAction, id)?;
        let policy = self
            .whitelist
            .get(&action.action_type)
            .map(|entry| *entry.approval())
            .unwrap_or_default();
        let kind = ChangeKind::Approve {
            policy,
            whitelist_version: self.whitelist.version().to_owned(),
        };
        self.change(id, kind, DASHBOARD)
    }

    /// pending → rejected by the actor, with a reason of 1–1000 characters.
    /// For the host, admins and operators.
    pub fn reject_action(&self, id: i64, reason: &str) -> Result<Action> {
        if self.actor.principal().is_some() {
            self.target_action(Operation::RejectAction, id)?;
        }
        let n = reason.chars().count();
        if !(1..=limits::MAX_REASON_CHARS).contains(&n) {
            return Err(Error::InvalidInput(format!(
                "reason must be 1-{} characters (got {n})",
                limits::MAX_REASON_CHARS
            )));
        }
        let reason = reason.to_owned();
        self.change(id, ChangeKind::Reject { reason }, DASHBOARD)
    }

    /// pending | approved → cancelled by the actor. On an executing action
    /// it is a cancel request: `cancel_requested_at`/`_by` are recorded with
    /// an event (detail `"cancel requested"`), the status stays `executing`
    /// and the agent, which learns of it through
    /// [`ActionQueue::await_cancel`], stops the command and reports with
    /// [`ActionQueue::report_cancelled`]; a second request changes nothing
    /// (`docs/contract/cancel-and-output.md`). A finished action is a
    /// Conflict. The host, admins and operators cancel any pending, approved
    /// or executing action; a requester only its own pending ones (checked
    /// again atomically with the change, so an approval that lands in
    /// between makes it a Conflict, not a cancel).
    pub fn cancel_action(&self, id: i64) -> Result<Action> {
        let kind = match &self.actor {
            Actor::Principal(principal) => {
                self.target_action(Operation::CancelAction, id)?;
                if principal.role == Role::Requester {
                    ChangeKind::CancelPending
                } else {
                    ChangeKind::Cancel
                }
            }
            Actor::Host | Actor::Trusted(_) => ChangeKind::Cancel,
        };
        self.change(id, kind, DASHBOARD)
    }

    /// The length of a lease of `lease` (default: the options'). A zero lease
    /// is InvalidInput: "the default" is `None`, never 0.
    fn checked_lease(&self, lease: Option<Duration>) -> Result<TimeDelta> {
        let lease = lease.unwrap_or(self.options.default_lease);
        if lease.is_zero() || lease > self.options.max_lease {
            return Err(Error::InvalidInput(format!(
                "lease must be more than 0 seconds and at most {} seconds",
                self.options.max_lease.as_secs()
            )));
        }
        Ok(TimeDelta::from_std(lease).expect("bounded by max_lease"))
    }

    /// Claims the oldest approved action of `server_id` for its agent: the
    /// action becomes `executing` and the returned token fences the executor.
    /// `None` when nothing is approved — at once without a `wait` (or a zero
    /// one), else when the wait (up to [`limits::MAX_WAIT`]) ends with
    /// nothing approved; the claim is made as soon as an action of the server
    /// is approved, by this process, another process on the same SQLite file
    /// or another PostgreSQL replica (`docs/contract/push.md`). `lease`
    /// defaults to
    /// [`QueueOptions::default_lease`](super::QueueOptions::default_lease).
    /// For the host (recorded as `"agent"`), admins, and the agent of that
    /// server.
    ///
    /// ```
    /// use std::time::Duration;
    /// use actionq::{ActionQueue, NewAction};
    ///
    /// let queue = ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// let agent = queue.clone();
    /// let claimer = std::thread::spawn(move || agent.claim_next("web-1", None, Some(Duration::from_secs(30))));
    /// let action = queue.create_action(&NewAction::new("web-1", "clear_logs"))?; // approved: wakes the claimer
    /// assert_eq!(claimer.join().unwrap()?.expect("claimed").action.id, action.id);
    /// assert!(queue.claim_next("web-1", None, Some(Duration::ZERO))?.is_none());
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn claim_next(
        &self,
        server_id: &str,
        lease: Option<Duration>,
        wait: Option<Duration>,
    ) -> Result<Option<Claim>> {
        let lease = self.claim_allowed(server_id, lease)?;
        let topic = Topic::Server(server_id);
        let notifier = self.store.notifier();
        // An idle agent's renewed wait (most of a fleet's requests) starts
        // asleep when nothing changed since its last look found nothing.
        let mut may_skip = wait.is_some_and(|w| !w.is_zero());
        self.waiting(topic, wait, || {
            if std::mem::take(&mut may_skip) && notifier.unchanged_since_nothing(topic) {
                return Ok(None);
            }
            let seen = notifier.generation();
            self.expire_before_read()?;
            let now = self.now();
            let lease_expires_at = now + lease;
            self.find_server(server_id)?;
            let lease_token = uuid::Uuid::new_v4().to_string();
            let change = Change {
                kind: ChangeKind::Claim {
                    lease_token: lease_token_digest(&lease_token),
                    lease_expires_at,
                    whitelist_version: self.whitelist.version().to_owned(),
                },
                by: self.recorded_name(AGENT).to_owned(),
                at: now,
            };
            let claimed = self.store.claim_next(server_id, &change)?;
            if claimed.is_none() {
                notifier.found_nothing(topic, seen);
            }
            Ok(claimed.map(|action| Claim {
                action,
                lease_token,
            }))
        })
    }

    /// The checks of a claim before any read: the right, then the lease.
    pub(super) fn claim_allowed(
        &self,
        server_id: &str,
        lease: Option<Duration>,
    ) -> Result<chrono::TimeDelta> {
        self.allow(Operation::Claim, Target::Server(server_id))?;
        self.checked_lease(lease)
    }

    /// Extends the lease of the executor holding `lease_token`. Conflict for a
    /// wrong or expired token. For the host, admins, and the agent of the
    /// action's server.
    pub fn heartbeat(&self, id: i64, lease_token: &str, lease: Option<Duration>) -> Result<Action> {
        if self.actor.principal().is_some() {
            self.target_action(Operation::Heartbeat, id)?;
        }
        let now = self.now();
        let lease_expires_at = now + self.checked_lease(lease)?;
        let kind = ChangeKind::Heartbeat {
            lease_token: lease_token_digest(lease_token),
            lease_expires_at,
        };
        self.change_at(id, kind, AGENT, now)
    }

    /// A heartbeat that waits: extends the lease like
    /// [`ActionQueue::heartbeat`], then waits up to `wait` (at most
    /// [`limits::MAX_WAIT`]) for a cancel request on the action, and returns
    /// the action as it is then: `cancel_requested_at` set when someone asked
    /// to stop it. How an agent learns of a cancel at once while holding no
    /// polling loop (`docs/contract/cancel-and-output.md#cancel-request`).
    /// Conflict for a wrong or expired token. For the host, admins, and the
    /// agent of the action's server.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// queue.create_action(&actionq::NewAction::new("web-1", "clear_logs"))?;
    /// let claim = queue.claim_next("web-1", None, None)?.expect("approved");
    /// let (id, token) = (claim.action.id, claim.lease_token.clone());
    /// let agent = queue.clone();
    /// let heard = std::thread::spawn(move || agent.await_cancel(id, &token, None, Some(Duration::from_secs(30))));
    /// queue.by("alice")?.cancel_action(id)?; // a cancel request: still executing
    /// let action = heard.join().unwrap()?;
    /// assert_eq!(action.cancel_requested_by.as_deref(), Some("alice"));
    /// let done = queue.report_cancelled(id, &claim.lease_token, 143, None, None)?;
    /// assert_eq!((done.status, done.cancelled_by.as_deref()), (actionq::ActionStatus::Cancelled, Some("alice")));
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn await_cancel(
        &self,
        id: i64,
        lease_token: &str,
        lease: Option<Duration>,
        wait: Option<Duration>,
    ) -> Result<Action> {
        if let Some(wait) = wait.filter(|w| *w > limits::MAX_WAIT) {
            return Err(limits::wait_out_of_range(wait.as_secs_f64()));
        }
        let renewed = self.heartbeat(id, lease_token, lease)?;
        if renewed.cancel_requested_at.is_some() {
            return Ok(renewed);
        }
        Ok(self
            .waiting(Topic::Server(&renewed.server_id), wait, || {
                self.cancel_request(id)
            })?
            .unwrap_or(renewed))
    }

    /// Finishes the action held with `lease_token`: exit code 0 completes it,
    /// anything else fails it. Output is capped at
    /// [`QueueOptions::output_cap_chars`](super::QueueOptions::output_cap_chars).
    /// Conflict for a wrong or expired token. For the host, admins, and the
    /// agent of the action's server.
    pub fn report_result(
        &self,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: Option<&str>,
        stderr: Option<&str>,
    ) -> Result<Action> {
        self.report(id, lease_token, exit_code, stdout, stderr, false)
    }

    /// Finishes the action held with `lease_token` whose command the agent
    /// stopped on a cancel request: it ends `cancelled`, `cancelled_by` the
    /// one who asked, with the exit code and output it had (capped as by
    /// [`ActionQueue::report_result`]). Conflict when no cancel was requested
    /// or for a wrong or expired token. The HTTP form is the result with
    /// `"cancelled": true`. For the host, admins, and the agent of the
    /// action's server.
    pub fn report_cancelled(
        &self,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: Option<&str>,
        stderr: Option<&str>,
    ) -> Result<Action> {
        self.report(id, lease_token, exit_code, stdout, stderr, true)
    }

    fn report(
        &self,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: Option<&str>,
        stderr: Option<&str>,
        cancelled: bool,
    ) -> Result<Action> {
        if self.actor.principal().is_some() {
            self.target_action(Operation::ReportResult, id)?;
        }
        let kind = ChangeKind::Report {
            lease_token: lease_token_digest(lease_token),
            exit_code,
            stdout: cap(stdout, self.options.output_cap_chars),
            stderr: cap(stderr, self.options.output_cap_chars),
            cancelled,
        };
        self.change(id, kind, AGENT)
    }

    /// Adds a chunk of the output of the executing action held with
    /// `lease_token`, while its command runs: `seq` numbers the agent's
    /// chunks from 1; a repeated (or older) `seq` is ignored, so a retried
    /// chunk is never stored twice. What is kept stays within
    /// [`QueueOptions::output_cap_chars`](super::QueueOptions::output_cap_chars)
    /// per stream. Whether the chunk was stored. InvalidInput for a `seq`
    /// below 1; Conflict for a wrong or expired token or an action no longer
    /// executing. For the host, admins, and the agent of the action's server.
    pub fn append_output(
        &self,
        id: i64,
        lease_token: &str,
        seq: i64,
        stdout: Option<&str>,
        stderr: Option<&str>,
    ) -> Result<bool> {
        if self.actor.principal().is_some() {
            self.target_action(Operation::ReportResult, id)?;
        }
        if seq < 1 {
            return Err(Error::InvalidInput(format!(
                "seq must be at least 1 (got {seq})"
            )));
        }
        let draft = OutputDraft {
            lease_token: lease_token_digest(lease_token),
            seq,
            stdout: stdout.unwrap_or_default().to_owned(),
            stderr: stderr.unwrap_or_default().to_owned(),
            at: self.now(),
            cap_chars: self.options.output_cap_chars,
        };
        self.store.append_output(id, &draft)
    }

    /// The live output of action `id` stored after chunk `after` (0: from
    /// the start), by `seq`. Empty at once without a `wait`; with one (at
    /// most [`limits::MAX_WAIT`]) it returns as soon as a chunk arrives or
    /// the action has finished, else empty when the wait ends. NotFound
    /// for an unknown action. For every role but agent.
    ///
    /// ```
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// queue.create_action(&actionq::NewAction::new("web-1", "clear_logs"))?;
    /// let claim = queue.claim_next("web-1", None, None)?.expect("approved");
    /// let id = claim.action.id;
    /// assert!(queue.append_output(id, &claim.lease_token, 1, Some("Vacuuming...\n"), None)?);
    /// assert!(!queue.append_output(id, &claim.lease_token, 1, Some("Vacuuming...\n"), None)?); // a retry
    /// let chunks = queue.output_since(id, 0, None)?;
    /// assert_eq!((chunks.len(), chunks[0].stdout.as_str()), (1, "Vacuuming...\n"));
    /// assert!(queue.output_since(id, 1, None)?.is_empty());
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn output_since(
        &self,
        id: i64,
        after: i64,
        wait: Option<Duration>,
    ) -> Result<Vec<OutputChunk>> {
        self.allow(Operation::Read, Target::None)?;
        if after < 0 {
            return Err(Error::InvalidInput(format!(
                "after must be at least 0 (got {after})"
            )));
        }
        let server_id = self.find_action(id)?.server_id;
        let found = self.waiting(Topic::Output(&server_id), wait, || {
            let chunks = self.store.output_since(id, after)?;
            if !chunks.is_empty() {
                return Ok(Some(chunks));
            }
            self.expire_before_read()?;
            let status = self.find_action(id)?.status;
            let ended = !matches!(
                status,
                ActionStatus::Pending | ActionStatus::Approved | ActionStatus::Executing
            );
            Ok(ended.then(Vec::new))
        })?;
        Ok(found.unwrap_or_default())
    }

    /// Fails every executing action whose lease has run out (exit code -1;
    /// never retried, since remediation is not idempotent), recorded as
    /// `"system"` whoever asks. Returns them. For the host, admins and
    /// operators.
    pub fn expire_leases(&self) -> Result<Vec<Action>> {
        self.allow(Operation::ExpireLeases, Target::None)?;
        self.expire_leases_unchecked()
    }

    fn expire_leases_unchecked(&self) -> Result<Vec<Action>> {
        let change = Change {
            kind: ChangeKind::Expire,
            by: SYSTEM.to_owned(),
            at: self.now(),
        };
        let expired = self.store.expire_leases(&change)?;
        self.lease_expiries
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        Ok(expired)
    }

    /// Rejects (by `system`, reason `approval expired after {ttl}s`) every
    /// pending action whose whitelist entry has an `approval.ttl_seconds`
    /// that has run out. Returns them. Runs before every read with
    /// [`QueueOptions::expire_leases_on_read`](super::QueueOptions::expire_leases_on_read),
    /// like [`ActionQueue::expire_leases`]; nothing to do (and no store call)
    /// when no entry has a ttl. For the host, admins and operators (the same
    /// permission as expiring leases).
    pub fn expire_approvals(&self) -> Result<Vec<Action>> {
        self.allow(Operation::ExpireLeases, Target::None)?;
        self.expire_approvals_unchecked()
    }

    fn expire_approvals_unchecked(&self) -> Result<Vec<Action>> {
        let now = self.now();
        let mut expired = Vec::new();
        for entry in self.whitelist.entries() {
            let Some(ttl_seconds) = entry.approval().ttl_seconds else {
                continue;
            };
            let ttl = TimeDelta::try_seconds(ttl_seconds as i64).unwrap_or(TimeDelta::MAX);
            let Some(created_until) = now.checked_sub_signed(ttl) else {
                continue;
            };
            let change = Change {
                kind: ChangeKind::ExpireApproval { ttl_seconds },
                by: SYSTEM.to_owned(),
                at: now,
            };
            expired.extend(
                self.store
                    .expire_approvals(entry.name(), created_until, &change)?,
            );
        }
        Ok(expired)
    }

    /// How many actions this queue object (with its clones) has failed for a
    /// lost lease since it was built, whichever call expired them (a read, a
    /// claim or [`ActionQueue::expire_leases`]). Other processes' expiries are
    /// theirs: like any process-local counter, a metrics scrape sums them.
    /// A counter of this process, open to every actor.
    pub fn lease_expiries(&self) -> u64 {
        self.lease_expiries.load(Ordering::Relaxed)
    }

    /// Walks the tamper-evident audit chain (every event's `prev_hash` and
    /// `hash`, then the head kept apart from the events) and reports how many
    /// events verified and the first that does not, if any. For the host and
    /// admins.
    ///
    /// ```
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// queue.create_action(&actionq::NewAction::new("web-1", "clear_logs"))?;
    /// let report = queue.verify_audit()?;
    /// assert_eq!((report.checked, report.first_bad_event_id), (1, None));
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn verify_audit(&self) -> Result<crate::AuditReport> {
        self.allow(Operation::VerifyAudit, Target::None)?;
        self.store.verify_audit()
    }

    /// Issues a credential for `name` with `role` (an agent's bound to
    /// `server_id`, which must exist; other roles take none) and returns it
    /// with its secret: 32 random bytes from the OS as URL-safe text behind the
    /// role's prefix (`aq_op_...`). The secret is shown this once; the store
    /// keeps only its SHA-256. For the host and admins.
    ///
    /// Names are what actions record when the credential acts; credentials
    /// sharing a name are one principal (rotate by issuing, then revoking).
    /// The names the queue records on its own
    /// ([`RESERVED_CREDENTIAL_NAMES`](crate::RESERVED_CREDENTIAL_NAMES)) are
    /// reserved.
    ///
    /// ```
    /// use actionq::{ActionQueue, Role};
    ///
    /// let queue = ActionQueue::in_memory();
    /// let issued = queue.issue_credential("alice", Role::Operator, None)?;
    /// assert!(issued.secret.starts_with("aq_op_"));
    /// assert_eq!(queue.authenticate(&issued.secret)?.name, "alice");
    /// queue.revoke_credential(issued.credential.id)?;
    /// assert!(queue.authenticate(&issued.secret).is_err());
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn issue_credential(
        &self,
        name: &str,
        role: Role,
        server_id: Option<&str>,
    ) -> Result<IssuedCredential> {
        self.allow(Operation::ManageCredentials, Target::None)?;
        check_len("name", name, limits::MAX_NAME_CHARS)?;
        identity::check_credential_name(name)?;
        match (role, server_id) {
            (Role::Agent, None) => {
                return Err(Error::InvalidInput(
                    "an agent credential needs a server_id".into(),
                ))
            }
            (Role::Agent, Some(server_id)) => {
                check_server_id(server_id)?;
                self.find_server(server_id)?;
            }
            (_, Some(_)) => {
                return Err(Error::InvalidInput(format!(
                    "server_id is only for agent credentials, not {role}"
                )))
            }
            (_, None) => {}
        }
        let secret = identity::new_secret(role)?;
        let draft = CredentialDraft {
            name: name.to_owned(),
            role,
            server_id: server_id.map(str::to_owned),
            prefix: identity::shown_prefix(&secret, role),
            secret_sha256: identity::secret_digest(&secret),
            created_at: self.now(),
            issued_by: self.recorded_name(DASHBOARD).to_owned(),
        };
        let credential = self.store.insert_credential(draft)?;
        Ok(IssuedCredential { credential, secret })
    }

    /// Every credential, revoked ones included, by id. Never a secret. For
    /// the host and admins.
    pub fn list_credentials(&self) -> Result<Vec<Credential>> {
        self.allow(Operation::ManageCredentials, Target::None)?;
        self.store.list_credentials()
    }

    /// Revokes credential `id` at once, for every process sharing the store
    /// (idempotent: a second revoke keeps the first time). NotFound
    /// `Credential {id} not found`. For the host and admins.
    pub fn revoke_credential(&self, id: i64) -> Result<Credential> {
        self.allow(Operation::ManageCredentials, Target::None)?;
        self.store
            .revoke_credential(id, self.now(), self.recorded_name(DASHBOARD))?
            .ok_or_else(|| Error::NotFound(format!("Credential {id} not found")))
    }

    /// The principal a secret belongs to, or Unauthenticated (one message for
    /// an unknown, revoked, empty, over-long or non-ASCII secret, never
    /// echoing it). The secret is looked up by its SHA-256, so how long a
    /// refusal takes does not depend on how much of a real secret it matched.
    /// Reads only: no write per request. Open to every actor (it is how a
    /// host learns who is asking).
    pub fn authenticate(&self, secret: &str) -> Result<Principal> {
        if secret.is_empty()
            || secret.len() > limits::MAX_SECRET_BYTES
            || !secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(identity::unauthenticated());
        }
        match self
            .store
            .find_credential(&identity::secret_digest(secret))?
        {
            Some(credential) if credential.revoked_at.is_none() => Ok(credential.principal()),
            _ => Err(identity::unauthenticated()),
        }
    }
}

/// Refuses a page query out of bounds, before any sweep: a refused read
/// changes nothing.
fn check_page(query: &ActionQuery) -> Result<()> {
    if !(1..=limits::MAX_PAGE_LIMIT).contains(&query.limit) {
        return Err(Error::InvalidInput(format!(
            "limit must be between 1 and {} (got {})",
            limits::MAX_PAGE_LIMIT,
            query.limit
        )));
    }
    if query.offset < 0 {
        return Err(Error::InvalidInput(format!(
            "offset must be at least 0 (got {})",
            query.offset
        )));
    }
    if let Some(before_id) = query.before_id.filter(|&id| id < 1) {
        return Err(Error::InvalidInput(format!(
            "before_id must be at least 1 (got {before_id})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::OPERATIONS;

    /// The list is this file's public functions, then `jobs.rs`'s, then `retention.rs`'s, in order: adding an
    /// operation without listing it (and so without every host's tests
    /// noticing) fails here.
    #[test]
    fn operations_list_is_this_files_public_functions() {
        let source = [
            include_str!("operations.rs"),
            include_str!("jobs.rs"),
            include_str!("retention.rs"),
        ]
        .concat();
        let defined: Vec<&str> = source
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("pub fn "))
            .map(|rest| rest.split(['(', '<']).next().unwrap())
            .collect();
        assert_eq!(defined, OPERATIONS);
    }
}
