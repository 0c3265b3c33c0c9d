//! The storage seam: the [`Store`] trait and the types a backend writer needs.
//!
//! Users of actionq pick a store ([`MemoryStore`](crate::MemoryStore), or
//! [`SqliteStore`](crate::SqliteStore) with the `sqlite` feature) and hand it to
//! [`ActionQueue::new`](crate::ActionQueue::new); they never build the types of
//! this module. The queue validates every call, turns it into an [`ActionDraft`]
//! with its [`ConflictGuard`], or a [`Change`], and gives it to the store.
//!
//! A backend only provides atomic read-modify-write on its own terms (a mutex,
//! an SQLite `BEGIN IMMEDIATE`, a PostgreSQL `SELECT ... FOR UPDATE`). What a
//! change *means* — which statuses it may leave, which fields it sets, which
//! event it logs — is not the backend's: it is in the core's rules
//! ([`Change::apply`], [`ActionDraft::into_action`], [`ConflictGuard::collides`]),
//! so backends cannot disagree on them.
//!
//! # Adding a backend
//!
//! Every place a new backend (say PostgreSQL) touches:
//!
//! 1. **Module**: `core/src/store/<name>/`, declared in
//!    `core/src/store/mod.rs` behind its own cargo feature in `core/Cargo.toml`
//!    (like `sqlite = ["dep:rusqlite"]`, default-on only if every user should
//!    pay for it), and its public type re-exported from `core/src/lib.rs`
//!    under the same `#[cfg(feature = ...)]`. Split it as every backend is:
//!    `mod.rs` (the store type and the [`Store`] impl, one call per method),
//!    `servers.rs`, `actions.rs`, `events.rs`, `credentials.rs` (each table's
//!    statements), `rows.rs` (records to and from rows), and where the
//!    backend has them `options.rs`, `connection.rs`, `schema.rs`. What every
//!    backend does alike is written once, here: the expiries go through
//!    `sweep::sweep` (the backend implements `sweep::Sweep`: a look without
//!    the write lock, then the locked re-check), and [`Store::verify_audit`]
//!    hands its rows to `AuditVerifier::walk`.
//! 2. **The trait**: implement every [`Store`] method. Duties beyond the
//!    signatures, all on the trait's documentation: each method is atomic
//!    against threads *and* other processes sharing the database;
//!    [`Store::insert_action`] checks the server, the guard and inserts in one
//!    step (the guard's oldest collision is the one reported);
//!    [`Store::update_action`], [`Store::claim_next`] and [`Store::expire_leases`]
//!    call [`Change::apply`] under the same lock that writes its result; ids of
//!    actions and events start at 1, increase in commit order and are never
//!    reused; [`Store::events_since`] never steps past an event whose
//!    transaction is still open; listing totals and pages come from one snapshot.
//!    Approval policy and audit (`docs/contract/approval-policy.md`): [`Store::insert_action`] counts
//!    the draft's auto-approvals ([`ActionDraft::budget_window`]) in the same
//!    atomic step as the insert; [`Store::claim_next`] goes on past an action
//!    the rules cancelled (stale whitelist); [`Store::expire_approvals`]
//!    applies [`ChangeKind::ExpireApproval`] like [`Store::expire_leases`];
//!    every event is chained ([`crate::audit::event_hash`]) to a head kept
//!    apart from the events, read and moved in the event's own transaction
//!    (a chain serializes appends: in PostgreSQL lock the head row
//!    `FOR UPDATE` as the transaction's last step, so writes for different
//!    servers overlap in everything else), and [`Store::verify_audit`] feeds one snapshot of
//!    events and head to an [`AuditVerifier`]. `Action`'s `approvals`
//!    (JSON), `digest`, `whitelist_version` and `params` (JSON) are stored and
//!    read back.
//! 3. **Errors**: map every backend failure to [`Error::Storage`](crate::Error::Storage) inside the
//!    backend module (as the SQLite module's `storage(context, e)` does); the
//!    core's [`Error`](crate::Error) names no backend type, and no `From` impl is added for one.
//! 4. **Behavioural suite**: register the backend in `core/tests/common/mod.rs`
//!    (an `Env` constructor and one line in the `for_each_store!` macro); every
//!    test of `core/tests/behaviour.rs` then runs on it under its own module.
//! 5. **Differential test**: add it to `backends()` in `core/tests/differential.rs`,
//!    so random sequences must give the same results as the other stores and
//!    the reference model.
//! 6. **Backend-specific tests** (persistence, locking, crashes, migrations) in
//!    their own `core/tests/<name>_*.rs` files, gated with
//!    `#![cfg(feature = "<name>")]`.
//! 7. **Hosts**: an open function in each binding — `ActionQueue(...)` in
//!    `bindings-python`, `aq_queue_open` in `bindings-c` (and its header) — and
//!    the HTTP server's `--database` option; options a user can set (timeouts,
//!    pool size) exposed the same way in every host.
//! 8. **Waking waiters**: [`Store::notifier`]; a backend other processes
//!    share starts a watch thread through `wake::Watcher`.
//! 9. **Build gates**: the `Makefile`'s `test-rust` already builds and tests the
//!    core without default features; add a run with the new feature alone if it
//!    is not default-on.

pub use crate::audit::{AuditHead, AuditReport, AuditVerifier, ChainedEvent};
use crate::error::Result;
use crate::identity::Credential;
pub use crate::identity::CredentialDraft;
pub use crate::jobs::{Delivery, DeliveryUpdate, JobLease};
use crate::model::{Action, ActionCount, ActionFilter, Event, OutputChunk, Server, Timestamp};
pub use crate::rules::{
    ActionDraft, Change, ChangeKind, ConflictGuard, EventDraft, OutputDraft, OutputSoFar,
};

pub(crate) mod memory;
#[cfg(feature = "sqlite")]
pub(crate) mod open;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
pub(crate) mod sweep;
pub mod wake;

pub use wake::{Notifier, Subscription, Topic, Touched};

/// Whether `location` names a PostgreSQL database (a `postgresql://` or
/// `postgres://` URL) rather than a SQLite file: how every host picks the store.
///
/// ```
/// assert!(actionq::is_postgres_url("postgresql://aq@db.lan/actionq"));
/// assert!(!actionq::is_postgres_url("data/actionq.sqlite3"));
/// ```
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgresql://") || location.starts_with("postgres://")
}

/// Pagination of a listing, already validated by the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size, 1..=100.
    pub limit: u32,
    /// Matches to skip (after `before_id`'s place, when it is set).
    pub offset: u64,
    /// Keyset paging: only the matches listed after the action with this id,
    /// or after where it would be when it no longer exists — the newest
    /// stored action with a lower id gives the place
    /// (`docs/contract/retention.md#keyset-paging`). A seek in the listing's
    /// index, whatever the depth.
    pub before_id: Option<i64>,
}

/// Where the log was last pruned: the last pruned event's id and hash, and
/// the highest action id pruned (`docs/contract/retention.md`). All zero
/// (and [`crate::audit::GENESIS_HASH`]) when nothing was ever pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneCheckpoint {
    /// The last pruned event (the chain resumes after it).
    pub audit: AuditHead,
    /// Every action with an id up to this one is pruned.
    pub last_action_id: i64,
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
/// - Backend failures are [`Error::Storage`](crate::Error::Storage); nothing SQL-specific appears here.
pub trait Store: Send + Sync + 'static {
    /// Adds `server`. Conflict `Server '{id}' already exists` if the id is taken.
    fn insert_server(&self, server: &Server) -> Result<()>;

    /// The server with `id`, if registered.
    fn get_server(&self, id: &str) -> Result<Option<Server>>;

    /// Enters (`paused`, with `paused_at = at`) or leaves maintenance mode,
    /// and when that changes the server, logs
    /// [`EventDraft::server_paused`]`(id, paused, by, at)` in the same atomic
    /// step. Idempotent: pausing a paused server keeps its original
    /// `paused_at` and logs nothing. `None` if the server is unknown.
    fn set_paused(&self, id: &str, paused: bool, by: &str, at: Timestamp)
        -> Result<Option<Server>>;

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
    /// claimed at most once, however many claimers race. When the rules
    /// leave the picked action in another status than `executing` (they
    /// cancel one built under an older whitelist), that result and its event
    /// are stored too and the next oldest approved action is tried, in the
    /// same atomic step. `None` when no approved action is left.
    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>>;

    /// Applies `change` (a [`ChangeKind::Expire`]) to every executing action whose
    /// `lease_expires_at <= change.at`; returns them.
    fn expire_leases(&self, change: &Change) -> Result<Vec<Action>>;

    /// Applies `change` (a [`ChangeKind::ExpireApproval`]) to every
    /// `pending` action of `action_type` with `created_at <= created_until`,
    /// in one atomic step; returns them, by id. Called before reads for each
    /// whitelist entry with a `ttl_seconds` (none for the default whitelist),
    /// so it should first look without the write lock, as
    /// [`Store::expire_leases`] does.
    fn expire_approvals(
        &self,
        action_type: &str,
        created_until: Timestamp,
        change: &Change,
    ) -> Result<Vec<Action>>;

    /// Up to `limit` events with id greater than `cursor`, oldest first.
    fn events_since(&self, cursor: i64, limit: u32) -> Result<Vec<Event>>;

    /// Walks the tamper-evident audit chain: feeds every stored event with
    /// its stored `prev_hash`, `hash`, `hash_version` and `digest` (and, for
    /// an action event with a digest, the action as stored now: see
    /// [`ChainedEvent::action`]), in id order, to an
    /// [`AuditVerifier`] (stopping when [`AuditVerifier::push`] returns
    /// false), then gives it the stored head with [`AuditVerifier::finish`]
    /// and returns its report. Events and head come from one snapshot.
    ///
    /// Appending (every method that logs an event) keeps the chain: in the
    /// same atomic section as the event's insert, the store reads the head's
    /// hash as the event's `prev_hash`, stores
    /// `hash = `[`crate::audit::event_hash`]`(prev_hash, event)` (and its
    /// version, [`crate::audit::HASH_VERSION`], and `event.digest`) with the
    /// event, and moves the head (kept apart from the events: in SQLite the
    /// reserved row of `action_counts`, whose page such a write usually
    /// rewrites anyway) to the event's id and hash. The head of an
    /// empty log is id 0 and [`crate::audit::GENESIS_HASH`].
    /// Events before the [`PruneCheckpoint`] are gone; the walk starts
    /// from it ([`AuditVerifier::resume`]), reading the checkpoint in the
    /// same snapshot.
    fn verify_audit(&self) -> Result<AuditReport>;

    /// Stores a new credential with the next id (from 1, never reused) and
    /// its issue event ([`CredentialDraft::event`]) in one atomic step, and
    /// returns it. Only the secret's digest is given, and only it is stored;
    /// digests are unique (a second insert of the same digest is a Conflict,
    /// which random secrets never meet).
    fn insert_credential(&self, draft: CredentialDraft) -> Result<Credential>;

    /// Every credential, revoked ones included, by id ascending. Never the digest.
    fn list_credentials(&self) -> Result<Vec<Credential>>;

    /// Marks credential `id` revoked at `at` and logs
    /// [`EventDraft::credential`]`(name, "revoked", by, at)` in the same
    /// atomic step; an already revoked one keeps its first `revoked_at` and
    /// logs nothing. `None` if there is no such credential. Once this
    /// returns, [`Store::find_credential`] on any connection or process sharing
    /// the database sees the revocation.
    fn revoke_credential(&self, id: i64, at: Timestamp, by: &str) -> Result<Option<Credential>>;

    /// The credential whose secret's SHA-256 is `secret_sha256`, revoked or not
    /// (the caller checks `revoked_at`). A lookup by digest, never a scan that
    /// compares secrets. Reads only: called on every authenticated request.
    fn find_credential(&self, secret_sha256: &[u8; 32]) -> Result<Option<Credential>>;

    /// Every registered server, ordered by id.
    fn list_servers(&self) -> Result<Vec<Server>>;

    /// In one atomic step (against the action's own updates): NotFound for
    /// an unknown action; reads the action with its stored token and the
    /// [`OutputSoFar`] of its stored chunks, asks [`OutputDraft::to_store`]
    /// (its Conflict changes nothing) and stores the chunk it returns.
    /// Whether a chunk was stored; a store that stored one wakes waiters as
    /// after any commit.
    fn append_output(&self, id: i64, draft: &OutputDraft) -> Result<bool>;

    /// The stored chunks of action `id` with `seq > after`, by `seq` (all of
    /// them: the output cap bounds how many there are).
    fn output_since(&self, id: i64, after: i64) -> Result<Vec<OutputChunk>>;

    /// The notifier that wakes this store's waiters (`docs/contract/push.md`).
    /// The store calls [`Notifier::notify`] after every commit that logged an
    /// event, with the servers its events were about ([`Touched::record`];
    /// never for a write that logged nothing, or waiters that re-check would
    /// wake each other for ever), once its own locks are released; a store
    /// that other processes share also signals it, from one watch thread per
    /// store, when one of them commits (SQLite within 100 ms, PostgreSQL
    /// through `LISTEN`/`NOTIFY`), with the servers that commit touched when
    /// it can tell, else [`Touched::everything`].
    fn notifier(&self) -> &std::sync::Arc<Notifier>;

    /// How many actions each server has in each status, from the running
    /// totals the store keeps for listings (never by scanning actions): one
    /// row per (server, status) with a count of at least 1, ordered by server
    /// id, then status in [`ActionStatus::ALL`](crate::ActionStatus::ALL) order.
    fn count_actions(&self) -> Result<Vec<ActionCount>>;

    /// Takes the job lease `name` for `holder` until `expires_at`, in one
    /// atomic step, when it is free, lapsed (its `expires_at <= now`) or
    /// `holder`'s already (a renewal): `Ok(Ok(lease))`. When another holder
    /// has it, `Ok(Err(their lease))` and nothing changes. Lease writes log
    /// no event and wake no waiter.
    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<std::result::Result<JobLease, JobLease>>;

    /// Drops the job lease `name` if `holder` has it; whether it did.
    fn release_lease(&self, name: &str, holder: &str) -> Result<bool>;

    /// The delivery cursor of sink `name`, created at the id of the last
    /// event logged (a new sink starts at the end of the log) when missing;
    /// an existing one keeps its cursor and takes `kind`.
    fn register_delivery(&self, name: &str, kind: &str) -> Result<Delivery>;

    /// Applies `update` ([`DeliveryUpdate`]'s rules) to sink `name`'s cursor
    /// in one atomic step that first checks, in this order: NotFound
    /// ([`crate::jobs`]' `no_delivery`) if it is not registered; Conflict
    /// (`lease_not_held`) unless `holder` holds the job lease
    /// [`delivery_lease_name`](crate::jobs::delivery_lease_name)`(name)`
    /// with `expires_at > now`; Conflict (`already_past`) unless
    /// `update.event_id` is after the cursor. Returns the cursor after, with
    /// its lag. Logs no event and wakes no waiter.
    fn record_delivery(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        update: &DeliveryUpdate,
    ) -> Result<Delivery>;

    /// Every delivery cursor, by name, each with the events logged after it
    /// (`lag_events`, counted from the event index, and `oldest_pending_at`).
    fn list_deliveries(&self) -> Result<Vec<Delivery>>;
    /// The stored [`PruneCheckpoint`], read without the write lock.
    fn prune_checkpoint(&self) -> Result<PruneCheckpoint>;

    /// One prune batch, in one atomic step: when the stored checkpoint is
    /// still `from` (else `None`: another pruner moved it; nothing changes),
    /// deletes every event with an id in `(from.audit.last_event_id,
    /// last_event_id]`, every action with an id in `(from.last_action_id,
    /// last_action_id]` and its per-action rows, takes those actions off the
    /// running totals, and stores the new checkpoint: `last_event_id` with
    /// that event's stored hash, and `last_action_id`. Returns how many
    /// actions it deleted (`None` too when there is no such event).
    ///
    /// The queue plans the range ([`crate::ActionQueue::prune`]): a prefix
    /// of the log made only of finished actions' events. The store still
    /// refuses (Conflict, nothing changed) when an action in the range is
    /// not in a terminal status, so no plan can delete a live action.
    fn prune_prefix(
        &self,
        from: &PruneCheckpoint,
        last_event_id: i64,
        last_action_id: i64,
    ) -> Result<Option<u64>>;
}
