//! [`ActionQueue`]: the public face of actionq. It validates input, applies the
//! whitelist and SPEC's create rules, and hands atomic work to a [`Store`].

use std::collections::BTreeMap;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use crate::clock::{to_micros, Clock, SystemClock};
use crate::error::{Error, Result};
use crate::identity::{
    self, authorize, authorize_role, Credential, CredentialDraft, IssuedCredential, Operation,
    Principal, Role, Target,
};
use crate::limits;
use crate::model::{
    Action, ActionCount, ActionFilter, ActionPage, ActionStatus, Claim, Event, Server, Timestamp,
};
use crate::store::memory::MemoryStore;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
use crate::store::postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{ActionDraft, Change, ChangeKind, ConflictGuard, PageRequest, Store};
use crate::whitelist::{ConflictPolicy, Whitelist};

/// Default `created_by` and actor for dashboard operations.
pub const DASHBOARD: &str = "dashboard";
/// Actor recorded for agent operations (claim, result).
pub const AGENT: &str = "agent";
/// Actor recorded for lease expiry.
pub const SYSTEM: &str = "system";

/// Tunables of a queue. Defaults: the [`limits`] module's `DEFAULT_*` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// `stdout`/`stderr` are cut to this many characters
    /// ([`limits::DEFAULT_OUTPUT_CAP_CHARS`]); 0 keeps none.
    pub output_cap_chars: usize,
    /// Lease given by `claim_next`/`heartbeat` when the caller names none
    /// ([`limits::DEFAULT_LEASE`]).
    pub default_lease: Duration,
    /// Longest lease a caller may ask for ([`limits::DEFAULT_MAX_LEASE`]).
    pub max_lease: Duration,
    /// Whether every read (`get_action`, the listings, `events_since`) and
    /// `claim_next` first runs [`ActionQueue::expire_leases`], so no read shows
    /// an action `executing` after its lease ran out
    /// ([`limits::DEFAULT_EXPIRE_LEASES_ON_READ`]: on). Off, the host must call
    /// `expire_leases` itself.
    pub expire_leases_on_read: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            output_cap_chars: limits::DEFAULT_OUTPUT_CAP_CHARS,
            default_lease: limits::DEFAULT_LEASE,
            max_lease: limits::DEFAULT_MAX_LEASE,
            expire_leases_on_read: limits::DEFAULT_EXPIRE_LEASES_ON_READ,
        }
    }
}

/// A request to queue an action. Build with [`NewAction::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAction {
    /// Target server id.
    pub server_id: String,
    /// Whitelisted action type.
    pub action_type: String,
    /// Parameter values by name (`service_name` for `restart_service`).
    pub params: BTreeMap<String, String>,
    /// Originating alert (≥ 1).
    pub alert_id: Option<i64>,
    /// Requester (default `"dashboard"`).
    pub created_by: String,
}

impl NewAction {
    /// A request for `action_type` on `server_id`, no parameters, by `"dashboard"`.
    pub fn new(server_id: impl Into<String>, action_type: impl Into<String>) -> Self {
        NewAction {
            server_id: server_id.into(),
            action_type: action_type.into(),
            params: BTreeMap::new(),
            alert_id: None,
            created_by: DASHBOARD.to_owned(),
        }
    }

    /// Sets the `service_name` parameter.
    pub fn service_name(self, service_name: impl Into<String>) -> Self {
        self.param("service_name", service_name)
    }

    /// Applies the `service_name` shorthand every host offers beside the
    /// parameters (the HTTP body's field, Python's argument, the C request's
    /// key): sets that parameter, or InvalidInput when it is already set in
    /// the parameters. `None` leaves the request as it is.
    ///
    /// ```
    /// let request = actionq::NewAction::new("web-1", "restart_service").param("service_name", "a");
    /// assert!(request.service_name_shorthand(Some("b".into())).is_err());
    /// ```
    pub fn service_name_shorthand(self, service_name: Option<String>) -> Result<Self> {
        match service_name {
            None => Ok(self),
            Some(_) if self.params.contains_key("service_name") => Err(Error::InvalidInput(
                "service_name given both on its own and in params".into(),
            )),
            Some(service_name) => Ok(self.service_name(service_name)),
        }
    }

    /// Sets a parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Links the originating alert.
    pub fn alert_id(mut self, alert_id: i64) -> Self {
        self.alert_id = Some(alert_id);
        self
    }

    /// Sets the requester.
    pub fn created_by(mut self, created_by: impl Into<String>) -> Self {
        self.created_by = created_by.into();
        self
    }

    /// Reads a request in the shape of the HTTP create body:
    /// `{"server_id", "action_type", "service_name"?, "params"?, "alert_id"?,
    /// "created_by"?}`, where `service_name` is shorthand for that parameter.
    /// Unknown keys, a `service_name` given both ways, or malformed JSON are
    /// InvalidInput; what is not given keeps [`NewAction::new`]'s default.
    ///
    /// ```
    /// let request = actionq::NewAction::from_json(
    ///     r#"{"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}"#,
    /// )?;
    /// assert_eq!(request.params["service_name"], "nginx");
    /// assert_eq!(request.created_by, "dashboard");
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            server_id: String,
            action_type: String,
            service_name: Option<String>,
            #[serde(default)]
            params: BTreeMap<String, String>,
            alert_id: Option<i64>,
            created_by: Option<String>,
        }
        let body: Body = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("invalid create request: {e}")))?;
        let mut request = NewAction::new(body.server_id, body.action_type);
        request.params = body.params;
        request = request.service_name_shorthand(body.service_name)?;
        request.alert_id = body.alert_id;
        if let Some(created_by) = body.created_by {
            request.created_by = created_by;
        }
        Ok(request)
    }
}

/// Filters and page of a listing. Defaults: no filter, `limit`
/// [`limits::DEFAULT_PAGE_LIMIT`], `offset` 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionQuery {
    /// Only this status.
    pub status: Option<ActionStatus>,
    /// Only this server.
    pub server_id: Option<String>,
    /// Only this action type.
    pub action_type: Option<String>,
    /// Page size, 1..=[`limits::MAX_PAGE_LIMIT`].
    pub limit: i64,
    /// Matches to skip, ≥ 0.
    pub offset: i64,
}

impl Default for ActionQuery {
    fn default() -> Self {
        ActionQuery {
            status: None,
            server_id: None,
            action_type: None,
            limit: limits::DEFAULT_PAGE_LIMIT,
            offset: 0,
        }
    }
}

/// The remediation action queue.
///
/// Cheap to clone (shared state) and safe to use from many threads.
///
/// ```
/// use actionq::{ActionQueue, ActionStatus, NewAction};
///
/// let queue = ActionQueue::in_memory();
/// queue.create_server("web-1", Some("web-1.lan"))?;
/// let action = queue.create_action(&NewAction::new("web-1", "restart_service").service_name("nginx"))?;
/// assert_eq!(action.status, ActionStatus::Approved); // server not paused
/// assert_eq!(action.argv, ["systemctl", "restart", "nginx.service"]); // a bare name is a service
///
/// let claim = queue.claim_next("web-1", None)?.expect("one approved action");
/// let done = queue.report_result(claim.action.id, &claim.lease_token, 0, Some("ok"), None)?;
/// assert_eq!(done.status, ActionStatus::Completed);
/// # Ok::<(), actionq::Error>(())
/// ```
#[derive(Clone)]
pub struct ActionQueue {
    store: Arc<dyn Store>,
    whitelist: Arc<Whitelist>,
    clock: Arc<dyn Clock>,
    options: QueueOptions,
    /// Actions this queue (and its clones) failed for a lost lease.
    lease_expiries: Arc<AtomicU64>,
}

impl std::fmt::Debug for ActionQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionQueue")
            .field("whitelist", &self.whitelist)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn check_len(what: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(Error::InvalidInput(format!(
            "{what} must be 1-{max} characters (got {n})"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Checks a server id: 1–100 chars of `[A-Za-z0-9._-]`, starting alphanumeric.
fn check_server_id(id: &str) -> Result<()> {
    let max = limits::MAX_SERVER_ID_CHARS;
    let ok = (1..=max).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "Invalid server id '{}': 1-{max} characters of [A-Za-z0-9._-], starting with a letter or digit",
            id.chars().take(max).collect::<String>().escape_debug()
        )))
    }
}

/// What the stores keep of a lease token: its SHA-256 (lower-case hex), so
/// a copy of the database does not hand out live leases. Only the claimer
/// ever holds the token itself.
pub(crate) fn lease_token_digest(token: &str) -> String {
    use sha2::Digest as _;
    crate::digest::lower_hex(&sha2::Sha256::digest(token.as_bytes()))
}

fn cap(text: Option<&str>, max_chars: usize) -> Option<String> {
    text.map(|t| match t.char_indices().nth(max_chars) {
        Some((cut, _)) => t[..cut].to_owned(),
        None => t.to_owned(),
    })
}

impl ActionQueue {
    /// A queue over `store` with the default whitelist, system clock and options.
    pub fn new(store: impl Store) -> Self {
        ActionQueue {
            store: Arc::new(store),
            whitelist: Arc::new(Whitelist::default()),
            clock: Arc::new(SystemClock),
            options: QueueOptions::default(),
            lease_expiries: Arc::default(),
        }
    }

    /// A queue on the SQLite file at `path` (created if missing), default settings.
    /// Needs the `sqlite` feature (on by default).
    #[cfg(feature = "sqlite")]
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::new(SqliteStore::open(
            path,
            &SqliteOptions::default(),
        )?))
    }

    /// A queue on the store `location` names, as every host opens one: a
    /// `postgresql://` or `postgres://` URL is a PostgreSQL database (with the
    /// `postgres` feature; see `PostgresStore::open` for what the URL may set), anything else the path of a SQLite file opened
    /// with `sqlite`. On PostgreSQL, `sqlite.busy_timeout` is the lock timeout,
    /// so a host's one busy-timeout setting means the same on both.
    #[cfg(feature = "sqlite")]
    pub fn open_location(location: &str, sqlite: &SqliteOptions) -> Result<Self> {
        if crate::store::is_postgres_url(location) {
            #[cfg(feature = "postgres")]
            {
                let options = PostgresOptions {
                    lock_timeout: sqlite.busy_timeout,
                    ..PostgresOptions::default()
                };
                return Ok(Self::new(PostgresStore::open(location, &options)?));
            }
            #[cfg(not(feature = "postgres"))]
            return Err(Error::InvalidInput(
                "this build of actionq has no PostgreSQL support (cargo feature `postgres`)".into(),
            ));
        }
        Ok(Self::new(SqliteStore::open(location, sqlite)?))
    }

    /// A queue held in memory only.
    pub fn in_memory() -> Self {
        Self::new(MemoryStore::new())
    }

    /// Replaces the whitelist.
    pub fn with_whitelist(mut self, whitelist: Whitelist) -> Self {
        self.whitelist = Arc::new(whitelist);
        self
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: QueueOptions) -> Self {
        self.options = options;
        self
    }

    /// Now, at the microsecond precision every store keeps, whatever the host's
    /// clock gives.
    fn now(&self) -> Timestamp {
        to_micros(self.clock.now())
    }

    /// The whitelist in force.
    pub fn whitelist(&self) -> &Whitelist {
        &self.whitelist
    }

    /// The options in force.
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// Registers a server (not paused). Conflict if the id is taken.
    pub fn create_server(&self, id: &str, hostname: Option<&str>) -> Result<Server> {
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

    /// The server `id`, or NotFound `Server '{id}' not found`.
    pub fn get_server(&self, id: &str) -> Result<Server> {
        self.store
            .get_server(id)?
            .ok_or_else(|| Error::server_not_found(id))
    }

    /// Puts the server in maintenance mode (idempotent). The change is an
    /// audit event by `"dashboard"` (by the principal through
    /// [`Acting::pause_server`]).
    pub fn pause_server(&self, id: &str) -> Result<Server> {
        self.set_paused(id, true, DASHBOARD)
    }

    /// Takes the server out of maintenance mode (idempotent); an audit event
    /// like [`ActionQueue::pause_server`].
    pub fn unpause_server(&self, id: &str) -> Result<Server> {
        self.set_paused(id, false, DASHBOARD)
    }

    fn set_paused(&self, id: &str, paused: bool, by: &str) -> Result<Server> {
        self.store
            .set_paused(id, paused, by, self.now())?
            .ok_or_else(|| Error::server_not_found(id))
    }

    /// Queues an action, applying SPEC's create rules in order: malformed input
    /// (InvalidInput), unknown server (NotFound), whitelist (NotWhitelisted),
    /// conflict policy (Conflict); then auto-approves unless the server is paused.
    pub fn create_action(&self, request: &NewAction) -> Result<Action> {
        check_server_id(&request.server_id)?;
        check_len("action_type", &request.action_type, limits::MAX_NAME_CHARS)?;
        check_len("created_by", &request.created_by, limits::MAX_NAME_CHARS)?;
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
                self.get_server(&request.server_id)?;
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
            created_by: request.created_by.clone(),
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

    /// Runs [`ActionQueue::expire_leases`] when
    /// [`QueueOptions::expire_leases_on_read`] asks for it: the first step of
    /// every read and of `claim_next`, before any check of their arguments.
    fn expire_before_read(&self) -> Result<()> {
        if self.options.expire_leases_on_read {
            self.expire_leases()?;
            self.expire_approvals()?;
        }
        Ok(())
    }

    /// Rejects (by `system`, reason `approval expired after {ttl}s`) every
    /// pending action whose whitelist entry has an `approval.ttl_seconds`
    /// that has run out. Returns them. Runs before every read with
    /// [`QueueOptions::expire_leases_on_read`], like [`ActionQueue::expire_leases`];
    /// nothing to do (and no store call) when no entry has a ttl.
    pub fn expire_approvals(&self) -> Result<Vec<Action>> {
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

    /// Walks the tamper-evident audit chain (every event's `prev_hash` and
    /// `hash`, then the head kept apart from the events) and reports how many
    /// events verified and the first that does not, if any.
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
        self.store.verify_audit()
    }

    /// The action `id`, or NotFound `Action {id} not found`.
    pub fn get_action(&self, id: i64) -> Result<Action> {
        self.expire_before_read()?;
        self.store
            .get_action(id)?
            .ok_or_else(|| Error::action_not_found(id))
    }

    /// A page of actions matching `query`, newest first, with the total count.
    pub fn list_actions(&self, query: &ActionQuery) -> Result<ActionPage> {
        self.expire_before_read()?;
        self.list_unswept(query)
    }

    /// [`ActionQueue::list_actions`] without the sweep before it.
    fn list_unswept(&self, query: &ActionQuery) -> Result<ActionPage> {
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
        let filter = ActionFilter {
            status: query.status,
            server_id: query.server_id.clone(),
            action_type: query.action_type.clone(),
        };
        let page = PageRequest {
            limit: query.limit as u32,
            offset: query.offset as u64,
        };
        let (actions, total) = self.store.list_actions(&filter, page)?;
        Ok(ActionPage {
            actions,
            total,
            limit: query.limit,
            offset: query.offset,
        })
    }

    /// A page of one server's actions; NotFound for an unknown server.
    pub fn list_server_actions(
        &self,
        server_id: &str,
        status: Option<ActionStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<ActionPage> {
        self.expire_before_read()?;
        self.get_server(server_id)?;
        self.list_unswept(&ActionQuery {
            status,
            server_id: Some(server_id.to_owned()),
            action_type: None,
            limit,
            offset,
        })
    }

    fn change(&self, id: i64, kind: ChangeKind, by: &str) -> Result<Action> {
        self.change_at(id, kind, by, self.now())
    }

    fn change_at(&self, id: i64, kind: ChangeKind, by: &str, at: Timestamp) -> Result<Action> {
        check_len("actor", by, limits::MAX_NAME_CHARS)?;
        let change = Change {
            kind,
            by: by.to_owned(),
            at,
        };
        self.store.update_action(id, &change)
    }

    /// One approval of a pending action by `by` (the dashboard passes
    /// `"dashboard"`), under its whitelist entry's approval policy: the
    /// action becomes `approved` once `required` distinct approvers approved
    /// it (until then it stays `pending`, the approval recorded in
    /// `approvals` and logged as an event `"1 of 2"`); a second approval by
    /// the same approver returns the action unchanged. PermissionDenied when
    /// `four_eyes` forbids the requester to approve; Conflict when the
    /// approval's ttl ran out or the action was built under another
    /// whitelist version (`Whitelist changed since action {id} was created`).
    pub fn approve_action(&self, id: i64, by: &str) -> Result<Action> {
        // The policy is the entry's for the action's type, which never
        // changes; reading it first does not race with anything.
        let action = self
            .store
            .get_action(id)?
            .ok_or_else(|| Error::action_not_found(id))?;
        let policy = self
            .whitelist
            .get(&action.action_type)
            .map(|entry| *entry.approval())
            .unwrap_or_default();
        let kind = ChangeKind::Approve {
            policy,
            whitelist_version: self.whitelist.version().to_owned(),
        };
        self.change(id, kind, by)
    }

    /// pending → rejected by `by`, with a reason of 1–1000 characters.
    ///
    /// Arguments in the order of every host (Rust, Python, C): id, reason, by —
    /// the actor last, as in every change.
    pub fn reject_action(&self, id: i64, reason: &str, by: &str) -> Result<Action> {
        let n = reason.chars().count();
        if !(1..=limits::MAX_REASON_CHARS).contains(&n) {
            return Err(Error::InvalidInput(format!(
                "reason must be 1-{} characters (got {n})",
                limits::MAX_REASON_CHARS
            )));
        }
        let reason = reason.to_owned();
        self.change(id, ChangeKind::Reject { reason }, by)
    }

    /// pending | approved → cancelled.
    pub fn cancel_action(&self, id: i64, by: &str) -> Result<Action> {
        self.change(id, ChangeKind::Cancel, by)
    }

    /// When a lease of `lease` (default: the options') taken at `now` runs out.
    /// A zero lease is InvalidInput: "the default" is `None`, never 0.
    fn lease_until(&self, now: Timestamp, lease: Option<Duration>) -> Result<Timestamp> {
        let lease = lease.unwrap_or(self.options.default_lease);
        if lease.is_zero() || lease > self.options.max_lease {
            return Err(Error::InvalidInput(format!(
                "lease must be more than 0 seconds and at most {} seconds",
                self.options.max_lease.as_secs()
            )));
        }
        let delta = TimeDelta::from_std(lease).expect("bounded by max_lease");
        Ok(now + delta)
    }

    /// Claims the oldest approved action of `server_id` for its agent: the action
    /// becomes `executing` and the returned token fences the executor. `None` when
    /// nothing is approved. `lease` defaults to [`QueueOptions::default_lease`].
    pub fn claim_next(&self, server_id: &str, lease: Option<Duration>) -> Result<Option<Claim>> {
        self.claim_next_by(server_id, lease, AGENT)
    }

    fn claim_next_by(
        &self,
        server_id: &str,
        lease: Option<Duration>,
        by: &str,
    ) -> Result<Option<Claim>> {
        self.expire_before_read()?;
        let now = self.now();
        let lease_expires_at = self.lease_until(now, lease)?;
        self.get_server(server_id)?;
        let lease_token = uuid::Uuid::new_v4().to_string();
        let change = Change {
            kind: ChangeKind::Claim {
                lease_token: lease_token_digest(&lease_token),
                lease_expires_at,
                whitelist_version: self.whitelist.version().to_owned(),
            },
            by: by.to_owned(),
            at: now,
        };
        Ok(self
            .store
            .claim_next(server_id, &change)?
            .map(|action| Claim {
                action,
                lease_token,
            }))
    }

    /// Extends the lease of the executor holding `lease_token`. Conflict for a
    /// wrong or expired token.
    pub fn heartbeat(&self, id: i64, lease_token: &str, lease: Option<Duration>) -> Result<Action> {
        self.heartbeat_by(id, lease_token, lease, AGENT)
    }

    fn heartbeat_by(
        &self,
        id: i64,
        lease_token: &str,
        lease: Option<Duration>,
        by: &str,
    ) -> Result<Action> {
        let now = self.now();
        let lease_expires_at = self.lease_until(now, lease)?;
        let kind = ChangeKind::Heartbeat {
            lease_token: lease_token_digest(lease_token),
            lease_expires_at,
        };
        self.change_at(id, kind, by, now)
    }

    /// Finishes the action held with `lease_token`: exit code 0 completes it,
    /// anything else fails it. Output is capped at
    /// [`QueueOptions::output_cap_chars`]. Conflict for a wrong or expired token.
    pub fn report_result(
        &self,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: Option<&str>,
        stderr: Option<&str>,
    ) -> Result<Action> {
        self.report_result_by(id, lease_token, exit_code, stdout, stderr, AGENT)
    }

    fn report_result_by(
        &self,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: Option<&str>,
        stderr: Option<&str>,
        by: &str,
    ) -> Result<Action> {
        let kind = ChangeKind::Report {
            lease_token: lease_token_digest(lease_token),
            exit_code,
            stdout: cap(stdout, self.options.output_cap_chars),
            stderr: cap(stderr, self.options.output_cap_chars),
        };
        self.change(id, kind, by)
    }

    /// Fails every executing action whose lease has run out (exit code -1; never
    /// retried, since remediation is not idempotent). Returns them.
    pub fn expire_leases(&self) -> Result<Vec<Action>> {
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

    /// How many actions this queue object (with its clones) has failed for a
    /// lost lease since it was built, whichever call expired them (a read, a
    /// claim or [`ActionQueue::expire_leases`]). Other processes' expiries are
    /// theirs: like any process-local counter, a metrics scrape sums them.
    pub fn lease_expiries(&self) -> u64 {
        self.lease_expiries.load(Ordering::Relaxed)
    }

    /// Every registered server, ordered by id.
    pub fn list_servers(&self) -> Result<Vec<Server>> {
        self.store.list_servers()
    }

    /// How many actions each server has in each status: one row per (server,
    /// status) with at least one action, ordered by server id, then status in
    /// [`ActionStatus::ALL`] order. Read from the totals the store keeps in step
    /// with every write (as listings' `total` is), so it costs the same with a
    /// million actions as with ten; lost leases are expired first, as before
    /// any read.
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
        self.expire_before_read()?;
        self.store.count_actions()
    }

    /// Up to `limit` (1..=[`limits::MAX_EVENTS_LIMIT`]; hosts default to
    /// [`limits::DEFAULT_EVENTS_LIMIT`]) audit events after `cursor` (0 for the
    /// start), oldest first. Pass the last event's `id` as the next cursor.
    pub fn events_since(&self, cursor: i64, limit: i64) -> Result<Vec<Event>> {
        self.expire_before_read()?;
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
        self.store.events_since(cursor, limit as u32)
    }

    /// Issues a credential for `name` with `role` (an agent's bound to
    /// `server_id`, which must exist; other roles take none) and returns it
    /// with its secret: 32 random bytes from the OS as URL-safe text behind the
    /// role's prefix (`aq_op_...`). The secret is shown this once; the store
    /// keeps only its SHA-256. A trusted call: hosts offer it to admins only
    /// (see [`Acting::issue_credential`]).
    ///
    /// Names are what actions record when the credential acts; credentials
    /// sharing a name are one principal (rotate by issuing, then revoking).
    /// The names the queue records on its own (`auto`, `system`) and the
    /// bootstrap principal's (`dashboard`) are reserved.
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
        self.issue_credential_by(name, role, server_id, DASHBOARD)
    }

    fn issue_credential_by(
        &self,
        name: &str,
        role: Role,
        server_id: Option<&str>,
        by: &str,
    ) -> Result<IssuedCredential> {
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
                self.get_server(server_id)?;
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
            issued_by: by.to_owned(),
        };
        let credential = self.store.insert_credential(draft)?;
        Ok(IssuedCredential { credential, secret })
    }

    /// Every credential, revoked ones included, by id. Never a secret.
    pub fn list_credentials(&self) -> Result<Vec<Credential>> {
        self.store.list_credentials()
    }

    /// Revokes credential `id` at once, for every process sharing the store
    /// (idempotent: a second revoke keeps the first time). NotFound
    /// `Credential {id} not found`.
    pub fn revoke_credential(&self, id: i64) -> Result<Credential> {
        self.revoke_credential_by(id, DASHBOARD)
    }

    fn revoke_credential_by(&self, id: i64, by: &str) -> Result<Credential> {
        self.store
            .revoke_credential(id, self.now(), by)?
            .ok_or_else(|| Error::NotFound(format!("Credential {id} not found")))
    }

    /// The principal a secret belongs to, or Unauthenticated (one message for
    /// an unknown, revoked, empty, over-long or non-ASCII secret, never
    /// echoing it). The secret is looked up by its SHA-256, so how long a
    /// refusal takes does not depend on how much of a real secret it matched.
    /// Reads only: no write per request.
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

    /// The queue as `principal` sees it: every operation checked against the
    /// permission table ([`identity::authorize`]) before anything changes, and
    /// the principal's name recorded as `created_by`, `approved_by`, ... .
    ///
    /// ```
    /// use actionq::{ActionQueue, ErrorKind, NewAction, Principal, Role};
    ///
    /// let queue = ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// queue.pause_server("web-1")?;
    /// let alice = Principal::new("alice", Role::Operator);
    /// let viewer = Principal::new("victor", Role::Viewer);
    /// let action = queue.as_principal(&alice).create_action(&NewAction::new("web-1", "clear_logs"))?;
    /// assert_eq!(action.created_by, "alice");
    /// let refused = queue.as_principal(&viewer).approve_action(action.id).unwrap_err();
    /// assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
    /// let approved = queue.as_principal(&alice).approve_action(action.id)?;
    /// assert_eq!(approved.approved_by.as_deref(), Some("alice"));
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn as_principal<'q>(&'q self, principal: &'q Principal) -> Acting<'q> {
        Acting {
            queue: self,
            principal,
        }
    }
}

/// The queue acting as one [`Principal`]: made by [`ActionQueue::as_principal`].
///
/// The same operations as [`ActionQueue`] without a `by` argument: the
/// principal's name is the actor, and [`identity::authorize`] decides first.
/// A refusal is PermissionDenied and changes nothing. Role refusals come
/// before any lookup (a viewer learns nothing about action 7 by trying to
/// approve it); scope checks (an agent's server, a requester's own pending
/// actions) read their target first, so an unknown id is NotFound.
#[derive(Debug, Clone, Copy)]
pub struct Acting<'q> {
    queue: &'q ActionQueue,
    principal: &'q Principal,
}

impl Acting<'_> {
    /// Who is acting.
    pub fn principal(&self) -> &Principal {
        self.principal
    }

    fn allow(&self, op: Operation, target: Target<'_>) -> Result<()> {
        authorize(self.principal, op, target)
    }

    /// The action `id` after the role check for `op`, then the scope check on it.
    fn target_action(&self, op: Operation, id: i64) -> Result<Action> {
        authorize_role(self.principal, op)?;
        let action = self
            .queue
            .store
            .get_action(id)?
            .ok_or_else(|| Error::action_not_found(id))?;
        self.allow(op, Target::Action(&action))?;
        Ok(action)
    }

    fn name(&self) -> &str {
        &self.principal.name
    }

    /// [`ActionQueue::create_server`], for admins and operators.
    pub fn create_server(&self, id: &str, hostname: Option<&str>) -> Result<Server> {
        self.allow(Operation::CreateServer, Target::Server(id))?;
        self.queue.create_server(id, hostname)
    }

    /// [`ActionQueue::get_server`], for every role but agent.
    pub fn get_server(&self, id: &str) -> Result<Server> {
        self.allow(Operation::Read, Target::Server(id))?;
        self.queue.get_server(id)
    }

    /// [`ActionQueue::list_servers`], for every role but agent.
    pub fn list_servers(&self) -> Result<Vec<Server>> {
        self.allow(Operation::Read, Target::None)?;
        self.queue.list_servers()
    }

    /// [`ActionQueue::pause_server`], for admins and operators.
    pub fn pause_server(&self, id: &str) -> Result<Server> {
        self.allow(Operation::PauseServer, Target::Server(id))?;
        self.queue.set_paused(id, true, self.name())
    }

    /// [`ActionQueue::unpause_server`], for admins and operators.
    pub fn unpause_server(&self, id: &str) -> Result<Server> {
        self.allow(Operation::PauseServer, Target::Server(id))?;
        self.queue.set_paused(id, false, self.name())
    }

    /// [`ActionQueue::create_action`] with `created_by` the principal's name
    /// (whatever the request says), for admins, operators and requesters.
    pub fn create_action(&self, request: &NewAction) -> Result<Action> {
        self.allow(Operation::CreateAction, Target::Server(&request.server_id))?;
        let request = NewAction {
            created_by: self.name().to_owned(),
            ..request.clone()
        };
        self.queue.create_action(&request)
    }

    /// [`ActionQueue::get_action`], for every role but agent.
    pub fn get_action(&self, id: i64) -> Result<Action> {
        self.allow(Operation::Read, Target::None)?;
        self.queue.get_action(id)
    }

    /// [`ActionQueue::list_actions`], for every role but agent.
    pub fn list_actions(&self, query: &ActionQuery) -> Result<ActionPage> {
        self.allow(Operation::Read, Target::None)?;
        self.queue.list_actions(query)
    }

    /// [`ActionQueue::list_server_actions`], for every role but agent.
    pub fn list_server_actions(
        &self,
        server_id: &str,
        status: Option<ActionStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<ActionPage> {
        self.allow(Operation::Read, Target::Server(server_id))?;
        self.queue
            .list_server_actions(server_id, status, limit, offset)
    }

    /// [`ActionQueue::events_since`], for every role but agent.
    pub fn events_since(&self, cursor: i64, limit: i64) -> Result<Vec<Event>> {
        self.allow(Operation::Read, Target::None)?;
        self.queue.events_since(cursor, limit)
    }

    /// [`ActionQueue::count_actions`], for every role but agent.
    pub fn count_actions(&self) -> Result<Vec<ActionCount>> {
        self.allow(Operation::Read, Target::None)?;
        self.queue.count_actions()
    }

    /// [`ActionQueue::approve_action`] by the principal, for admins and operators.
    pub fn approve_action(&self, id: i64) -> Result<Action> {
        self.target_action(Operation::ApproveAction, id)?;
        self.queue.approve_action(id, self.name())
    }

    /// [`ActionQueue::reject_action`] by the principal, for admins and operators.
    pub fn reject_action(&self, id: i64, reason: &str) -> Result<Action> {
        self.target_action(Operation::RejectAction, id)?;
        self.queue.reject_action(id, reason, self.name())
    }

    /// [`ActionQueue::cancel_action`] by the principal: admins and operators
    /// cancel any pending or approved action; a requester only its own
    /// pending ones (checked again atomically with the change, so an approval
    /// that lands in between makes it a Conflict, not a cancel).
    pub fn cancel_action(&self, id: i64) -> Result<Action> {
        self.target_action(Operation::CancelAction, id)?;
        let kind = if self.principal.role == Role::Requester {
            ChangeKind::CancelPending
        } else {
            ChangeKind::Cancel
        };
        self.queue.change(id, kind, self.name())
    }

    /// [`ActionQueue::claim_next`] by the principal: an agent for its own
    /// server only, or an admin.
    pub fn claim_next(&self, server_id: &str, lease: Option<Duration>) -> Result<Option<Claim>> {
        self.allow(Operation::Claim, Target::Server(server_id))?;
        self.queue.claim_next_by(server_id, lease, self.name())
    }

    /// [`ActionQueue::heartbeat`] by the principal: an agent for its own
    /// server's actions only, or an admin.
    pub fn heartbeat(&self, id: i64, lease_token: &str, lease: Option<Duration>) -> Result<Action> {
        self.target_action(Operation::Heartbeat, id)?;
        self.queue.heartbeat_by(id, lease_token, lease, self.name())
    }

    /// [`ActionQueue::report_result`] by the principal: an agent for its own
    /// server's actions only, or an admin.
    pub fn report_result(
        &self,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: Option<&str>,
        stderr: Option<&str>,
    ) -> Result<Action> {
        self.target_action(Operation::ReportResult, id)?;
        self.queue
            .report_result_by(id, lease_token, exit_code, stdout, stderr, self.name())
    }

    /// [`ActionQueue::expire_leases`], for admins and operators.
    pub fn expire_leases(&self) -> Result<Vec<Action>> {
        self.allow(Operation::ExpireLeases, Target::None)?;
        self.queue.expire_leases()
    }

    /// [`ActionQueue::expire_approvals`], for admins and operators (the
    /// same permission as expiring leases).
    pub fn expire_approvals(&self) -> Result<Vec<Action>> {
        self.allow(Operation::ExpireLeases, Target::None)?;
        self.queue.expire_approvals()
    }

    /// [`ActionQueue::verify_audit`], for admins.
    pub fn verify_audit(&self) -> Result<crate::AuditReport> {
        self.allow(Operation::VerifyAudit, Target::None)?;
        self.queue.verify_audit()
    }

    /// [`ActionQueue::issue_credential`], for admins.
    pub fn issue_credential(
        &self,
        name: &str,
        role: Role,
        server_id: Option<&str>,
    ) -> Result<IssuedCredential> {
        self.allow(Operation::ManageCredentials, Target::None)?;
        self.queue
            .issue_credential_by(name, role, server_id, self.name())
    }

    /// [`ActionQueue::list_credentials`], for admins.
    pub fn list_credentials(&self) -> Result<Vec<Credential>> {
        self.allow(Operation::ManageCredentials, Target::None)?;
        self.queue.list_credentials()
    }

    /// [`ActionQueue::revoke_credential`], for admins.
    pub fn revoke_credential(&self, id: i64) -> Result<Credential> {
        self.allow(Operation::ManageCredentials, Target::None)?;
        self.queue.revoke_credential_by(id, self.name())
    }
}
