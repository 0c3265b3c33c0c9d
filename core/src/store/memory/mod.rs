//! [`MemoryStore`]: everything in process memory, behind one lock.
//!
//! Actions are kept in a compact form (repeated strings such as server ids,
//! action types and actors interned; fields only set later in an action's life
//! boxed together) and turned back into [`Action`]s when read, so a million
//! resident actions fit in a few hundred MiB. Indexes answer every lookup a
//! write needs — conflicts, the oldest approved action, due leases — without
//! scanning, so a write costs the same with a million actions as with ten.
//!
//! By concern, as in the other backends: this file holds the lock and the
//! [`Store`] impl; `rows` is the compact form of records, and `servers`,
//! `actions`, `events`, `credentials` hold what each kind of record does
//! (as methods of the locked state).

mod actions;
mod credentials;
mod events;
mod jobs;
mod output;
mod rows;
mod servers;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use actions::{OrderKey, Ordered, StatusCounts};
use rows::{Interner, Stored, StoredEvent, Sym};

use crate::error::Result;
use crate::identity::{Credential, CredentialDraft};
use crate::model::{Action, ActionCount, ActionFilter, ActionStatus, Event, Server, Timestamp};
use crate::store::sweep::{sweep, Due, Sweep};
use crate::store::wake::Touched;
use crate::store::{
    ActionDraft, AuditReport, Change, ConflictGuard, Delivery, DeliveryUpdate, JobLease, Notifier,
    PageRequest, PruneCheckpoint, Store,
};

/// An in-memory [`Store`]: fast, shared by threads of one process, gone on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    notifier: Arc<Notifier>,
}

/// The write lock; when it is released after a write that logged events,
/// the waiters of the servers they are about are woken.
struct Writing<'a> {
    guard: Option<RwLockWriteGuard<'a, Inner>>,
    events_before: i64,
    notifier: &'a Notifier,
}

impl Deref for Writing<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.guard.as_ref().expect("held until drop")
    }
}

impl DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.guard.as_mut().expect("held until drop")
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut touched = Touched::default();
        if let Some(inner) = self.guard.take() {
            // Events are appended at the back; a prune only takes from the front.
            let added = usize::try_from(inner.last_event_id() - self.events_before).unwrap_or(0);
            for event in inner
                .events
                .iter()
                .skip(inner.events.len().saturating_sub(added))
            {
                touched.record(event.kind, inner.strings.get(event.subject));
            }
        }
        self.notifier.notify(&touched);
    }
}

/// Everything the store holds, behind [`MemoryStore`]'s lock; its methods
/// live in the file of their concern (`servers`, `actions`, `events`, ...).
#[derive(Debug, Default)]
struct Inner {
    strings: Interner,
    /// The whitelist version interned last ([`Inner::intern_version`]).
    last_version: Option<Sym>,
    servers: HashMap<String, Server>,
    /// Action with id `n` at index `n - 1 - pruned.last_action_id`: ids
    /// are dense, and prune removes a prefix of them.
    actions: VecDeque<Stored>,
    /// Event with id `n` at index `n - 1 - pruned.audit.last_event_id`.
    events: VecDeque<StoredEvent>,
    /// Where the log was last pruned.
    pruned: PruneCheckpoint,
    /// Totals per (server, type, status), so listings never count by scanning.
    counts: StatusCounts,
    /// Listing order, all actions and per server.
    by_created: Ordered,
    by_server: HashMap<Sym, Ordered>,
    /// Listing order per status, so a status filter never scans other statuses.
    by_status: HashMap<ActionStatus, BTreeSet<OrderKey>>,
    /// Pending, approved or executing ids per (server, type): exclusive groups.
    active: HashMap<(Sym, Sym), BTreeSet<i64>>,
    /// Pending ids per (server, type, command): pending duplicates.
    pending: HashMap<(Sym, Sym), HashMap<Box<str>, BTreeSet<i64>>>,
    /// Approved actions per server in claim order.
    approved: HashMap<Sym, BTreeSet<OrderKey>>,
    executing: BTreeSet<i64>,
    /// Credential with id `n` at index `n - 1`.
    credentials: Vec<Credential>,
    /// Credential index by the SHA-256 of its secret.
    credential_by_digest: HashMap<[u8; 32], usize>,
    /// Job leases by name.
    leases: HashMap<String, JobLease>,
    /// Delivery cursors by sink name.
    deliveries: BTreeMap<String, jobs::StoredDelivery>,
    /// Live output chunks per action id, by seq.
    output: HashMap<i64, Vec<crate::model::OutputChunk>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic elsewhere cannot leave Inner half-updated: every write below
        // finishes its checks before it mutates.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> Writing<'_> {
        let guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        Writing {
            events_before: guard.last_event_id(),
            guard: Some(guard),
            notifier: &self.notifier,
        }
    }
}

/// The position of record `id` in a vector of dense ids from `first`.
fn position(id: i64, first: i64) -> Option<usize> {
    usize::try_from(id.checked_sub(first)?).ok()
}

impl Inner {
    /// The position of action `id` in `actions`.
    fn index(&self, id: i64) -> Option<usize> {
        position(id, self.pruned.last_action_id + 1)
    }

    /// The id of the newest event (pruned or not), 0 for none.
    fn last_event_id(&self) -> i64 {
        self.pruned.audit.last_event_id + self.events.len() as i64
    }
}

impl Sweep for MemoryStore {
    fn any_due(&self, due: Due<'_>) -> Result<bool> {
        Ok(!self.read().due(due).is_empty())
    }

    fn expire_due(&self, due: Due<'_>, change: &Change) -> Result<Vec<Action>> {
        let mut inner = self.write();
        inner
            .due(due)
            .into_iter()
            .map(|id| inner.apply(id, change))
            .collect()
    }
}

impl Store for MemoryStore {
    fn insert_server(&self, server: &Server) -> Result<()> {
        self.write().insert_server(server)
    }

    fn get_server(&self, id: &str) -> Result<Option<Server>> {
        Ok(self.read().servers.get(id).cloned())
    }

    fn set_paused(
        &self,
        id: &str,
        paused: bool,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<Server>> {
        Ok(self.write().set_paused(id, paused, by, at))
    }

    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
        self.write().insert_action(draft, guard)
    }

    fn get_action(&self, id: i64) -> Result<Option<Action>> {
        let inner = self.read();
        Ok(inner.stored(id).map(|s| inner.action(id, s).0))
    }

    fn list_actions(&self, filter: &ActionFilter, page: PageRequest) -> Result<(Vec<Action>, u64)> {
        Ok(self.read().list_actions(filter, page))
    }

    fn update_action(&self, id: i64, change: &Change) -> Result<Action> {
        self.write().apply(id, change)
    }

    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>> {
        self.write().claim_next(server_id, change)
    }

    fn expire_leases(&self, change: &Change) -> Result<Vec<Action>> {
        sweep(self, Due::Leases(change.at), change)
    }

    fn expire_approvals(
        &self,
        action_type: &str,
        created_until: Timestamp,
        change: &Change,
    ) -> Result<Vec<Action>> {
        let due = Due::Approvals {
            action_type,
            created_until,
        };
        sweep(self, due, change)
    }

    fn events_since(&self, cursor: i64, limit: u32) -> Result<Vec<Event>> {
        Ok(self.read().events_since(cursor, limit))
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        Ok(self.read().verify_audit())
    }

    fn insert_credential(&self, draft: CredentialDraft) -> Result<Credential> {
        self.write().insert_credential(draft)
    }

    fn list_credentials(&self) -> Result<Vec<Credential>> {
        Ok(self.read().credentials.clone())
    }

    fn revoke_credential(&self, id: i64, at: Timestamp, by: &str) -> Result<Option<Credential>> {
        Ok(self.write().revoke_credential(id, at, by))
    }

    fn find_credential(&self, secret_sha256: &[u8; 32]) -> Result<Option<Credential>> {
        Ok(self.read().find_credential(secret_sha256))
    }

    fn list_servers(&self) -> Result<Vec<Server>> {
        Ok(self.read().list_servers())
    }

    fn append_output(&self, id: i64, draft: &crate::store::OutputDraft) -> Result<bool> {
        let stored = self.write().append_output(id, draft)?;
        if let Some(server_id) = &stored {
            // No event is logged, so the write guard wakes nobody: output
            // readers wait on the action's server.
            let mut touched = Touched::default();
            touched.record(crate::model::EventKind::Action, server_id);
            self.notifier.notify(&touched);
        }
        Ok(stored.is_some())
    }

    fn output_since(&self, id: i64, after: i64) -> Result<Vec<crate::model::OutputChunk>> {
        Ok(self.read().output_since(id, after))
    }

    fn count_actions(&self) -> Result<Vec<ActionCount>> {
        Ok(self.read().counts.per_server_status())
    }

    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Result<JobLease, JobLease>> {
        Ok(self.write().take_lease(name, holder, now, expires_at))
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        Ok(self.write().release_lease(name, holder))
    }

    fn register_delivery(&self, name: &str, kind: &str) -> Result<Delivery> {
        Ok(self.write().register_delivery(name, kind))
    }

    fn record_delivery(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        update: &DeliveryUpdate,
    ) -> Result<Delivery> {
        self.write().record_delivery(name, holder, now, update)
    }

    fn list_deliveries(&self) -> Result<Vec<Delivery>> {
        Ok(self.read().list_deliveries())
    }

    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    fn prune_checkpoint(&self) -> Result<PruneCheckpoint> {
        Ok(self.read().pruned)
    }

    fn prune_prefix(
        &self,
        from: &PruneCheckpoint,
        last_event_id: i64,
        last_action_id: i64,
    ) -> Result<Option<u64>> {
        self.write()
            .prune_prefix(from, last_event_id, last_action_id)
    }
}
