//! [`MemoryStore`]: everything in process memory, behind one lock.
//!
//! Actions are kept in a compact form (repeated strings such as server ids,
//! action types and actors interned; fields only set later in an action's life
//! boxed together) and turned back into [`Action`]s when read, so a million
//! resident actions fit in a few hundred MiB. Indexes answer every lookup a
//! write needs — conflicts, the oldest approved action, due leases — without
//! scanning, so a write costs the same with a million actions as with ten.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::audit::{
    event_hash, AuditHead, AuditReport, AuditVerifier, ChainedEvent, GENESIS_HASH, HASH_VERSION,
};
use crate::error::{Error, Result};
use crate::identity::{Credential, CredentialDraft};
use crate::model::{
    Action, ActionCount, ActionFilter, ActionStatus, Approval, Event, EventKind, Server, Timestamp,
};
use crate::rules::ACTIVE_STATUSES;
use crate::store::{ActionDraft, Change, ConflictGuard, EventDraft, PageRequest, Store};

/// An in-memory [`Store`]: fast, shared by threads of one process, gone on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

type OrderKey = (Timestamp, i64);

/// An interned string: index into [`Interner::strings`].
type Sym = u32;

#[derive(Debug, Default)]
struct Interner {
    strings: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, Sym>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = Sym::try_from(self.strings.len()).expect("fewer than 2^32 distinct strings");
        let s: Arc<str> = Arc::from(s);
        self.strings.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    fn lookup(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    fn get(&self, id: Sym) -> &str {
        &self.strings[id as usize]
    }
}

/// Fields set after creation (decision, execution, result): absent for most
/// resident actions until they move on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Later {
    rejected_at: Option<Timestamp>,
    rejected_by: Option<String>,
    rejection_reason: Option<String>,
    cancelled_at: Option<Timestamp>,
    cancelled_by: Option<String>,
    executed_at: Option<Timestamp>,
    lease_expires_at: Option<Timestamp>,
    completed_at: Option<Timestamp>,
    exit_code: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
    lease_token: Option<String>,
    approvals: Vec<Approval>,
}

impl Later {
    fn is_empty(&self) -> bool {
        *self == Later::default()
    }
}

/// One action, compactly. Its id is its position in [`Inner::actions`] + 1.
#[derive(Debug, Clone)]
struct Stored {
    created_at: Timestamp,
    approved_at: Option<Timestamp>,
    alert_id: Option<i64>,
    server_id: Sym,
    action_type: Sym,
    created_by: Sym,
    approved_by: Option<Sym>,
    status: ActionStatus,
    service_name: Option<Box<str>>,
    command: Box<str>,
    argv: Box<[Box<str>]>,
    env: Box<[(Box<str>, Box<str>)]>,
    params: Box<[(Box<str>, Box<str>)]>,
    digest: Box<str>,
    whitelist_version: Sym,
    later: Option<Box<Later>>,
}

/// One audit event, compactly.
#[derive(Debug, Clone)]
struct StoredEvent {
    action_id: Option<i64>,
    at: Timestamp,
    by: Sym,
    kind: EventKind,
    subject: Sym,
    from_status: Option<ActionStatus>,
    to_status: Option<ActionStatus>,
    detail: Option<Box<str>>,
    digest: Option<Box<str>>,
    /// The chain hash (the previous event's is this one's `prev_hash`).
    hash: [u8; 32],
}

/// Totals per (server, type, status): lets a listing report `total` without
/// scanning (the SQLite store keeps the same in its `action_counts` table).
#[derive(Debug, Default, Clone)]
struct StatusCounts {
    counts: std::collections::HashMap<(String, String, ActionStatus), u64>,
}

impl StatusCounts {
    fn add(&mut self, server_id: &str, action_type: &str, status: ActionStatus, delta: i64) {
        let n = self
            .counts
            .entry((server_id.to_owned(), action_type.to_owned(), status))
            .or_default();
        *n = n.saturating_add_signed(delta);
    }

    /// Per (server, status), summed over types; zero totals left out.
    fn per_server_status(&self) -> Vec<ActionCount> {
        let mut sums: std::collections::BTreeMap<(&str, ActionStatus), u64> =
            std::collections::BTreeMap::new();
        for ((server, _, status), n) in &self.counts {
            if *n > 0 {
                *sums.entry((server.as_str(), *status)).or_default() += n;
            }
        }
        sums.into_iter()
            .map(|((server_id, status), count)| ActionCount {
                server_id: server_id.to_owned(),
                status,
                count,
            })
            .collect()
    }

    fn total(&self, filter: &ActionFilter) -> u64 {
        self.counts
            .iter()
            .filter(|((server, kind, status), _)| {
                filter.status.is_none_or(|s| s == *status)
                    && filter.server_id.as_deref().is_none_or(|s| s == server)
                    && filter.action_type.as_deref().is_none_or(|t| t == kind)
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// Keys in ascending order. Creation keys nearly always arrive in order (the
/// clock moves forward), so an insert lands at the end and moves nothing; an
/// earlier key (a clock set back, or racing threads) goes in its sorted place.
#[derive(Debug, Default)]
struct Ordered(Vec<OrderKey>);

impl Ordered {
    fn insert(&mut self, key: OrderKey) {
        let at = self.0.partition_point(|k| *k < key);
        self.0.insert(at, key);
    }

    fn iter(&self) -> std::slice::Iter<'_, OrderKey> {
        self.0.iter()
    }
}

#[derive(Debug, Default)]
struct Inner {
    strings: Interner,
    /// The whitelist version interned last ([`Inner::intern_version`]).
    last_version: Option<Sym>,
    servers: HashMap<String, Server>,
    /// Action with id `n` at index `n - 1`: ids are dense.
    actions: Vec<Stored>,
    events: Vec<StoredEvent>,
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

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Executing actions whose lease ran out at `at`, by id.
    fn due_leases(&self, at: Timestamp) -> Vec<i64> {
        self.executing
            .iter()
            .copied()
            .filter(|&id| {
                self.stored(id)
                    .and_then(|s| s.later.as_ref())
                    .and_then(|l| l.lease_expires_at)
                    .is_some_and(|until| until <= at)
            })
            .collect()
    }
}

fn boxed(s: &Option<String>) -> Option<Box<str>> {
    s.as_deref().map(Box::from)
}

fn box_map(map: &BTreeMap<String, String>) -> Box<[(Box<str>, Box<str>)]> {
    map.iter()
        .map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str())))
        .collect()
}

fn unbox_map(pairs: &[(Box<str>, Box<str>)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn index(id: i64) -> Option<usize> {
    usize::try_from(id.checked_sub(1)?).ok()
}

impl Inner {
    fn stored(&self, id: i64) -> Option<&Stored> {
        self.actions.get(index(id)?)
    }

    /// The public form of a stored action, and its lease token.
    fn action(&self, id: i64, s: &Stored) -> (Action, Option<String>) {
        let name = |sym: Sym| self.strings.get(sym).to_owned();
        let later = s.later.as_deref().cloned().unwrap_or_default();
        let action = Action {
            id,
            server_id: name(s.server_id),
            action_type: name(s.action_type),
            status: s.status,
            service_name: s.service_name.as_deref().map(str::to_owned),
            command: s.command.to_string(),
            argv: s.argv.iter().map(|w| w.to_string()).collect(),
            env: unbox_map(&s.env),
            alert_id: s.alert_id,
            created_at: s.created_at,
            created_by: name(s.created_by),
            approved_at: s.approved_at,
            approved_by: s.approved_by.map(name),
            rejected_at: later.rejected_at,
            rejected_by: later.rejected_by,
            rejection_reason: later.rejection_reason,
            cancelled_at: later.cancelled_at,
            cancelled_by: later.cancelled_by,
            executed_at: later.executed_at,
            lease_expires_at: later.lease_expires_at,
            completed_at: later.completed_at,
            exit_code: later.exit_code,
            stdout: later.stdout,
            stderr: later.stderr,
            approvals: later.approvals,
            digest: s.digest.to_string(),
            whitelist_version: name(s.whitelist_version),
            params: unbox_map(&s.params),
        };
        (action, later.lease_token)
    }

    /// The compact form of `a` (with lease token `token`).
    fn compact(&mut self, a: &Action, token: Option<String>) -> Stored {
        let later = Later {
            rejected_at: a.rejected_at,
            rejected_by: a.rejected_by.clone(),
            rejection_reason: a.rejection_reason.clone(),
            cancelled_at: a.cancelled_at,
            cancelled_by: a.cancelled_by.clone(),
            executed_at: a.executed_at,
            lease_expires_at: a.lease_expires_at,
            completed_at: a.completed_at,
            exit_code: a.exit_code,
            stdout: a.stdout.clone(),
            stderr: a.stderr.clone(),
            lease_token: token,
            approvals: a.approvals.clone(),
        };
        Stored {
            created_at: a.created_at,
            approved_at: a.approved_at,
            alert_id: a.alert_id,
            server_id: self.strings.intern(&a.server_id),
            action_type: self.strings.intern(&a.action_type),
            created_by: self.strings.intern(&a.created_by),
            approved_by: a.approved_by.as_deref().map(|s| self.strings.intern(s)),
            status: a.status,
            service_name: boxed(&a.service_name),
            command: Box::from(a.command.as_str()),
            argv: a.argv.iter().map(|w| Box::from(w.as_str())).collect(),
            env: box_map(&a.env),
            params: box_map(&a.params),
            digest: Box::from(a.digest.as_str()),
            whitelist_version: self.intern_version(&a.whitelist_version),
            later: (!later.is_empty()).then(|| Box::new(later)),
        }
    }

    /// Interns a whitelist version: the same one on nearly every action, so
    /// the last one is compared first instead of hashing 64 bytes each time.
    fn intern_version(&mut self, version: &str) -> Sym {
        if let Some(last) = self.last_version {
            if self.strings.get(last) == version {
                return last;
            }
        }
        let sym = self.strings.intern(version);
        self.last_version = Some(sym);
        sym
    }

    fn event(&self, id: i64, e: &StoredEvent) -> Event {
        Event {
            id,
            action_id: e.action_id,
            from_status: e.from_status,
            to_status: e.to_status,
            by: self.strings.get(e.by).to_owned(),
            at: e.at,
            detail: e.detail.as_deref().map(str::to_owned),
            kind: e.kind,
            subject: self.strings.get(e.subject).to_owned(),
        }
    }

    fn log(&mut self, event: EventDraft) {
        let by = self.strings.intern(&event.by);
        let subject = self.strings.intern(&event.subject);
        let prev = self.events.last().map_or(GENESIS_HASH, |e| e.hash);
        let hash = event_hash(&prev, &event);
        self.events.push(StoredEvent {
            action_id: event.action_id,
            at: event.at,
            by,
            kind: event.kind,
            subject,
            from_status: event.from_status,
            to_status: event.to_status,
            detail: boxed(&event.detail),
            digest: boxed(&event.digest),
            hash,
        });
    }

    /// How many auto-approvals count against `draft`'s budget, up to its
    /// `max` (0 without a budget): the server's actions, newest first, while
    /// they are inside the window.
    fn auto_approved_in_window(&self, draft: &ActionDraft) -> u32 {
        let Some((max, since)) = draft.budget_window() else {
            return 0;
        };
        let Some(keys) = self
            .strings
            .lookup(&draft.server_id)
            .and_then(|server| self.by_server.get(&server))
        else {
            return 0;
        };
        let mut n = 0;
        for &(created_at, id) in keys.iter().rev() {
            if created_at <= since || n >= max {
                break;
            }
            let stored = self.stored(id).expect("indexed ids exist");
            if draft.counts_against_budget(&self.action(id, stored).0) {
                n += 1;
            }
        }
        n
    }

    fn count(&mut self, s: &Stored, status: ActionStatus, delta: i64) {
        let (server, kind) = (
            self.strings.get(s.server_id),
            self.strings.get(s.action_type),
        );
        self.counts.add(server, kind, status, delta);
    }

    /// Adds (`add`) or removes action `id` in the indexes of its current status.
    fn index_status(&mut self, id: i64, s: &Stored, add: bool) {
        let pair = (s.server_id, s.action_type);
        let key = (s.created_at, id);
        let listed = self.by_status.entry(s.status).or_default();
        if add {
            listed.insert(key);
        } else {
            listed.remove(&key);
        }
        if ACTIVE_STATUSES.contains(&s.status) {
            let ids = self.active.entry(pair).or_default();
            if add {
                ids.insert(id);
            } else {
                ids.remove(&id);
            }
        }
        match s.status {
            ActionStatus::Pending => {
                let by_command = self.pending.entry(pair).or_default();
                if add {
                    by_command.entry(s.command.clone()).or_default().insert(id);
                } else if let Some(ids) = by_command.get_mut(&*s.command) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        by_command.remove(&*s.command);
                    }
                }
            }
            ActionStatus::Approved => {
                let keys = self.approved.entry(s.server_id).or_default();
                if add {
                    keys.insert(key);
                } else {
                    keys.remove(&key);
                }
            }
            ActionStatus::Executing => {
                if add {
                    self.executing.insert(id);
                } else {
                    self.executing.remove(&id);
                }
            }
            _ => {}
        }
    }

    /// The first (lowest id) stored action that collides with `draft` per `guard`.
    fn collision(&self, draft: &ActionDraft, guard: &ConflictGuard) -> Option<i64> {
        let server = self.strings.lookup(&draft.server_id)?;
        let candidates: Vec<&BTreeSet<i64>> = match guard {
            ConflictGuard::None => return None,
            ConflictGuard::PendingDuplicate { .. } => {
                let kind = self.strings.lookup(&draft.action_type)?;
                self.pending
                    .get(&(server, kind))
                    .and_then(|by_command| by_command.get(draft.command.as_str()))
                    .into_iter()
                    .collect()
            }
            ConflictGuard::ActiveInGroup { action_types, .. } => action_types
                .iter()
                .filter_map(|t| self.strings.lookup(t))
                .filter_map(|kind| self.active.get(&(server, kind)))
                .collect(),
        };
        candidates
            .into_iter()
            .filter_map(|ids| {
                ids.iter().copied().find(|&id| {
                    let stored = self.stored(id).expect("indexed ids exist");
                    guard.collides(draft, &self.action(id, stored).0)
                })
            })
            .min()
    }

    /// Applies `change` to action `id` and keeps every index in step.
    fn apply(&mut self, id: i64, change: &Change) -> Result<Action> {
        let stored = self.stored(id).ok_or_else(|| Error::action_not_found(id))?;
        let (mut action, mut token) = self.action(id, stored);
        let Some(event) = change.apply(&mut action, &mut token)? else {
            // Nothing recorded (a heartbeat, a repeated approval): only the
            // lease may have moved.
            let index = index(id).expect("exists");
            let later = self.actions[index].later.get_or_insert_with(Box::default);
            later.lease_expires_at = action.lease_expires_at;
            return Ok(action);
        };
        let old = self.actions[index(id).expect("exists")].clone();
        let new = self.compact(&action, token);
        self.index_status(id, &old, false);
        self.index_status(id, &new, true);
        self.count(&old, old.status, -1);
        self.count(&new, new.status, 1);
        self.actions[index(id).expect("exists")] = new;
        self.log(event);
        Ok(action)
    }

    /// Resolves `filter`'s names; `None` when a name was never stored (no match).
    fn resolve(&self, name: Option<&str>) -> Option<Option<Sym>> {
        match name {
            None => Some(None),
            Some(n) => self.strings.lookup(n).map(Some),
        }
    }
}

impl Store for MemoryStore {
    fn insert_server(&self, server: &Server) -> Result<()> {
        let mut inner = self.write();
        if inner.servers.contains_key(&server.id) {
            return Err(Error::conflict(format!(
                "Server '{}' already exists",
                server.id
            )));
        }
        inner.servers.insert(server.id.clone(), server.clone());
        Ok(())
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
        let mut inner = self.write();
        let Some(server) = inner.servers.get_mut(id) else {
            return Ok(None);
        };
        let server = server.clone();
        if server.is_paused == paused {
            return Ok(Some(server));
        }
        let changed = Server {
            is_paused: paused,
            paused_at: paused.then_some(at),
            ..server
        };
        inner.servers.insert(id.to_owned(), changed.clone());
        inner.log(EventDraft::server_paused(id, paused, by, at));
        Ok(Some(changed))
    }

    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
        let mut inner = self.write();
        let inner = &mut *inner;
        let server = inner
            .servers
            .get(&draft.server_id)
            .ok_or_else(|| Error::server_not_found(&draft.server_id))?;
        if let Some(existing) = inner.collision(&draft, guard) {
            return Err(guard.error(existing));
        }
        let id = inner.actions.len() as i64 + 1;
        let spent = inner.auto_approved_in_window(&draft);
        let (action, event) = draft.into_action(id, server, spent);
        let stored = inner.compact(&action, None);
        inner.by_created.insert((action.created_at, id));
        inner
            .by_server
            .entry(stored.server_id)
            .or_default()
            .insert((action.created_at, id));
        inner.index_status(id, &stored, true);
        inner.count(&stored, stored.status, 1);
        inner.actions.push(stored);
        inner.log(event);
        Ok(action)
    }

    fn get_action(&self, id: i64) -> Result<Option<Action>> {
        let inner = self.read();
        Ok(inner.stored(id).map(|s| inner.action(id, s).0))
    }

    fn list_actions(&self, filter: &ActionFilter, page: PageRequest) -> Result<(Vec<Action>, u64)> {
        let inner = self.read();
        let (Some(server), Some(kind)) = (
            inner.resolve(filter.server_id.as_deref()),
            inner.resolve(filter.action_type.as_deref()),
        ) else {
            return Ok((Vec::new(), 0));
        };
        let total = inner.counts.total(filter);
        if page.offset >= total {
            return Ok((Vec::new(), total));
        }
        // Walk the narrowest order index the filter allows, newest first.
        let newest_first: Box<dyn Iterator<Item = &OrderKey>> = match (server, filter.status) {
            (Some(server), _) => match inner.by_server.get(&server) {
                Some(keys) => Box::new(keys.iter().rev()),
                None => return Ok((Vec::new(), 0)),
            },
            (None, Some(status)) => match inner.by_status.get(&status) {
                Some(keys) => Box::new(keys.iter().rev()),
                None => return Ok((Vec::new(), 0)),
            },
            (None, None) => Box::new(inner.by_created.iter().rev()),
        };
        let actions = newest_first
            .map(|&(_, id)| (id, &inner.actions[id as usize - 1]))
            .filter(|(_, s)| {
                filter.status.is_none_or(|f| f == s.status)
                    && server.is_none_or(|f| f == s.server_id)
                    && kind.is_none_or(|f| f == s.action_type)
            })
            .skip(page.offset.try_into().unwrap_or(usize::MAX))
            .take(page.limit as usize)
            .map(|(id, s)| inner.action(id, s).0)
            .collect();
        Ok((actions, total))
    }

    fn update_action(&self, id: i64, change: &Change) -> Result<Action> {
        self.write().apply(id, change)
    }

    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>> {
        let mut inner = self.write();
        loop {
            let oldest = inner
                .strings
                .lookup(server_id)
                .and_then(|server| inner.approved.get(&server))
                .and_then(|keys| keys.first())
                .map(|&(_, id)| id);
            let Some(id) = oldest else {
                return Ok(None);
            };
            let action = inner.apply(id, change)?;
            if action.status == ActionStatus::Executing {
                return Ok(Some(action));
            }
        }
    }

    fn expire_approvals(
        &self,
        action_type: &str,
        created_until: Timestamp,
        change: &Change,
    ) -> Result<Vec<Action>> {
        let due = |inner: &Inner| -> Vec<i64> {
            let Some(kind) = inner.strings.lookup(action_type) else {
                return Vec::new();
            };
            inner
                .by_status
                .get(&ActionStatus::Pending)
                .into_iter()
                .flat_map(|keys| keys.iter())
                .take_while(|(created_at, _)| *created_at <= created_until)
                .map(|&(_, id)| id)
                .filter(|&id| inner.stored(id).is_some_and(|s| s.action_type == kind))
                .collect()
        };
        if due(&self.read()).is_empty() {
            return Ok(Vec::new());
        }
        let mut inner = self.write();
        let mut ids = due(&inner);
        ids.sort_unstable();
        ids.into_iter().map(|id| inner.apply(id, change)).collect()
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        let inner = self.read();
        let mut verifier = AuditVerifier::new();
        let mut prev = GENESIS_HASH;
        for (e, id) in inner.events.iter().zip(1..) {
            let action = match (&e.digest, e.action_id) {
                (Some(_), Some(action_id)) => inner
                    .stored(action_id)
                    .map(|s| inner.action(action_id, s).0),
                _ => None,
            };
            let row = ChainedEvent {
                event: inner.event(id, e),
                prev_hash: prev,
                hash: e.hash,
                hash_version: HASH_VERSION,
                digest: e.digest.as_deref().map(str::to_owned),
                action,
            };
            prev = e.hash;
            if !verifier.push(&row) {
                break;
            }
        }
        let head = AuditHead {
            last_event_id: inner.events.len() as i64,
            hash: inner.events.last().map_or(GENESIS_HASH, |e| e.hash),
        };
        Ok(verifier.finish(Some(&head)))
    }

    fn expire_leases(&self, change: &Change) -> Result<Vec<Action>> {
        // Reads sweep first (QueueOptions::expire_leases_on_read) and there is
        // rarely anything due: look under the shared lock before taking the
        // exclusive one. One that falls due after this look is caught next time.
        if self.read().due_leases(change.at).is_empty() {
            return Ok(Vec::new());
        }
        let mut inner = self.write();
        let due = inner.due_leases(change.at);
        due.into_iter().map(|id| inner.apply(id, change)).collect()
    }

    fn insert_credential(&self, draft: CredentialDraft) -> Result<Credential> {
        let mut inner = self.write();
        if inner
            .credential_by_digest
            .contains_key(&draft.secret_sha256)
        {
            return Err(Error::conflict(
                "A credential with this secret already exists",
            ));
        }
        let index = inner.credentials.len();
        let digest = draft.secret_sha256;
        inner.log(draft.event());
        let credential = draft.into_credential(index as i64 + 1);
        inner.credentials.push(credential.clone());
        inner.credential_by_digest.insert(digest, index);
        Ok(credential)
    }

    fn list_credentials(&self) -> Result<Vec<Credential>> {
        Ok(self.read().credentials.clone())
    }

    fn revoke_credential(&self, id: i64, at: Timestamp, by: &str) -> Result<Option<Credential>> {
        let mut inner = self.write();
        let Some(credential) = index(id).and_then(|i| inner.credentials.get_mut(i)) else {
            return Ok(None);
        };
        if credential.revoked_at.is_some() {
            return Ok(Some(credential.clone()));
        }
        credential.revoked_at = Some(at);
        let credential = credential.clone();
        inner.log(EventDraft::credential(
            &credential.name,
            "revoked".to_owned(),
            by,
            at,
        ));
        Ok(Some(credential))
    }

    fn find_credential(&self, secret_sha256: &[u8; 32]) -> Result<Option<Credential>> {
        let inner = self.read();
        Ok(inner
            .credential_by_digest
            .get(secret_sha256)
            .map(|&i| inner.credentials[i].clone()))
    }

    fn events_since(&self, cursor: i64, limit: u32) -> Result<Vec<Event>> {
        let inner = self.read();
        let start = usize::try_from(cursor).unwrap_or(0).min(inner.events.len());
        Ok(inner.events[start..]
            .iter()
            .take(limit as usize)
            .zip(start as i64 + 1..)
            .map(|(e, id)| inner.event(id, e))
            .collect())
    }

    fn list_servers(&self) -> Result<Vec<Server>> {
        let mut servers: Vec<Server> = self.read().servers.values().cloned().collect();
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(servers)
    }

    fn count_actions(&self) -> Result<Vec<ActionCount>> {
        Ok(self.read().counts.per_server_status())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn ordered_keeps_keys_sorted_whatever_the_arrival_order() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        let mut ordered = Ordered::default();
        for key in [(at(5), 1), (at(7), 2), (at(6), 3), (at(7), 4), (at(1), 5)] {
            ordered.insert(key);
        }
        let keys: Vec<OrderKey> = ordered.iter().copied().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 5);
    }

    #[test]
    fn compact_round_trip_keeps_every_field() {
        let mut inner = Inner::default();
        let at: Timestamp = "2026-01-02T03:04:05.123456Z".parse().unwrap();
        let action = Action {
            id: 1,
            server_id: "web-1".into(),
            action_type: "apt_update".into(),
            status: ActionStatus::Failed,
            service_name: Some("nginx".into()),
            command: "x y".into(),
            argv: vec!["x".into(), "y".into()],
            env: BTreeMap::from([("A".to_owned(), "b".to_owned())]),
            alert_id: Some(7),
            created_at: at,
            created_by: "me".into(),
            approved_at: Some(at),
            approved_by: Some("auto".into()),
            rejected_at: Some(at),
            rejected_by: Some("r".into()),
            rejection_reason: Some("why".into()),
            cancelled_at: Some(at),
            cancelled_by: Some("c".into()),
            executed_at: Some(at),
            lease_expires_at: Some(at),
            completed_at: Some(at),
            exit_code: Some(3),
            stdout: Some("out".into()),
            stderr: Some("err".into()),
            approvals: vec![Approval {
                by: "alice".into(),
                at,
                digest: "ab".repeat(32),
            }],
            digest: "ab".repeat(32),
            whitelist_version: "v".into(),
            params: BTreeMap::from([("unit".to_owned(), "x.service".to_owned())]),
        };
        let stored = inner.compact(&action, Some("tok".into()));
        assert_eq!(inner.action(1, &stored), (action, Some("tok".to_owned())));
    }
}
