//! [`ActionQueue`]: the public face of actionq. It validates input, applies the
//! whitelist and the create rules, checks who acts, and hands atomic work to a
//! [`Store`].
//!
//! - `mod.rs`: the queue value, how it is built and who it acts as;
//! - `operations.rs`: every operation, once, for every kind of [`Actor`];
//! - `requests.rs`: what hosts pass in ([`NewAction`], [`ActionQuery`],
//!   [`QueueOptions`]);
//! - `retention.rs`: prune and export (`docs/contract/retention.md`);
//! - `validation.rs`: the argument checks shared by the operations;
//! - `jobs.rs`: the operations of background jobs (job leases, delivery cursors);
//! - `waiting.rs`: how an operation waits for a change (`docs/contract/push.md`).

mod jobs;
mod operations;
mod requests;
mod retention;
mod validation;
mod waiting;

#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::actor::Actor;
use crate::clock::{to_micros, Clock, SystemClock};
use crate::error::Result;
use crate::identity::{authorize, Operation, Principal, Target};
use crate::model::Timestamp;
use crate::store::memory::MemoryStore;
#[cfg(feature = "sqlite")]
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::Store;
use crate::whitelist::Whitelist;

pub use operations::OPERATIONS;
pub use requests::{ActionQuery, NewAction, QueueOptions};
pub use retention::{Export, PruneReport};
pub(crate) use validation::check_len;
#[cfg(feature = "sqlite")]
pub(crate) use validation::lease_token_digest;

/// The remediation action queue, acting as one [`Actor`].
///
/// Cheap to clone (shared state) and safe to use from many threads. A queue
/// acts as the trusted host until [`ActionQueue::by`] or
/// [`ActionQueue::as_principal`] gives a view of the same queue acting as
/// someone else; every operation exists once and takes its actor from there.
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
/// let claim = queue.claim_next("web-1", None, None)?.expect("one approved action");
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
    actor: Actor,
}

impl std::fmt::Debug for ActionQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionQueue")
            .field("actor", &self.actor)
            .field("whitelist", &self.whitelist)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ActionQueue {
    /// A queue over `store` with the default whitelist, system clock and
    /// options, acting as the trusted host.
    pub fn new(store: impl Store) -> Self {
        Self::on_store(Arc::new(store))
    }

    fn on_store(store: Arc<dyn Store>) -> Self {
        ActionQueue {
            store,
            whitelist: Arc::new(Whitelist::default()),
            clock: Arc::new(SystemClock),
            options: QueueOptions::default(),
            lease_expiries: Arc::default(),
            actor: Actor::Host,
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
    /// `postgres` feature; see `PostgresStore::open` for what the URL may
    /// set), anything else the path of a SQLite file opened with `sqlite`.
    #[cfg(feature = "sqlite")]
    pub fn open_location(location: &str, sqlite: &SqliteOptions) -> Result<Self> {
        Ok(Self::on_store(crate::store::open::open_location(
            location, sqlite,
        )?))
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

    /// The whitelist in force.
    pub fn whitelist(&self) -> &Whitelist {
        &self.whitelist
    }

    /// The options in force.
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// Who this queue acts as.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// This queue acting as the trusted host for `name`, which every
    /// operation records (`approved_by`, `created_by`, event `by`, ...) in
    /// place of its default. Nothing is checked: the host vouches for the
    /// name. InvalidInput for a name that is empty, longer than
    /// [`MAX_NAME_CHARS`](crate::limits::MAX_NAME_CHARS) or holds control characters, and on a queue
    /// acting as a principal (whose name is already what is recorded; a
    /// principal's view never becomes a trusted one).
    ///
    /// ```
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// queue.pause_server("web-1")?;
    /// let action = queue.create_action(&actionq::NewAction::new("web-1", "clear_logs"))?;
    /// let approved = queue.by("alice")?.approve_action(action.id)?;
    /// assert_eq!(approved.approved_by.as_deref(), Some("alice"));
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn by(&self, name: &str) -> Result<ActionQueue> {
        Ok(self.acting(self.actor.by(name)?))
    }

    /// This queue acting as `actor`: itself for [`Actor::Host`],
    /// [`ActionQueue::by`] for a trusted name (so it is refused on a queue
    /// acting as a principal), [`ActionQueue::as_principal`] for a principal.
    /// How a host that holds an [`Actor`] value (C's `aq_actor`) picks the
    /// queue it calls.
    pub fn acting_as(&self, actor: &Actor) -> Result<ActionQueue> {
        match actor {
            Actor::Host => Ok(self.clone()),
            Actor::Trusted(name) => self.by(name),
            Actor::Principal(principal) => Ok(self.as_principal(principal)),
        }
    }

    /// This queue as `principal` sees it: every operation checked against the
    /// permission table ([`authorize`]) before anything changes, and the
    /// principal's name recorded as `created_by`, `approved_by`, ... . A
    /// refusal is PermissionDenied and changes nothing. Role refusals come
    /// before any lookup (a viewer learns nothing about action 7 by trying to
    /// approve it); scope checks (an agent's server, a requester's own pending
    /// actions) read their target first, so an unknown id is NotFound.
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
    pub fn as_principal(&self, principal: &Principal) -> ActionQueue {
        self.acting(Actor::Principal(principal.clone()))
    }

    fn acting(&self, actor: Actor) -> ActionQueue {
        ActionQueue {
            actor,
            ..self.clone()
        }
    }

    /// Now, at the microsecond precision every store keeps, whatever the host's
    /// clock gives.
    fn now(&self) -> Timestamp {
        to_micros(self.clock.now())
    }

    /// Whether the actor may perform `op` on `target`: always for the trusted
    /// host, the permission table for a principal.
    fn allow(&self, op: Operation, target: Target<'_>) -> Result<()> {
        match &self.actor {
            Actor::Principal(principal) => authorize(principal, op, target),
            Actor::Host | Actor::Trusted(_) => Ok(()),
        }
    }

    /// The name recorded for this operation, whose trusted default is `default`.
    fn recorded_name<'a>(&'a self, default: &'a str) -> &'a str {
        self.actor.recorded_name(default)
    }
}
