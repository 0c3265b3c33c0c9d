//! [`MemoryStore`]: everything in process memory, behind one lock.

use std::collections::{BTreeSet, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::model::{Action, ActionFilter, ActionStatus, Event, Server, Timestamp};
use crate::store::{
    ActionDraft, Change, ConflictGuard, EventDraft, PageRequest, StatusCounts, Store,
    ACTIVE_STATUSES,
};

/// An in-memory [`Store`]: fast, shared by threads of one process, gone on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

type OrderKey = (Timestamp, i64);

#[derive(Debug, Default)]
struct Inner {
    servers: HashMap<String, Server>,
    /// Action with id `n` at index `n - 1`: ids are dense.
    actions: Vec<Action>,
    lease_tokens: HashMap<i64, String>,
    events: Vec<Event>,
    counts: StatusCounts,
    /// Listing order, all actions and per server.
    by_created: BTreeSet<OrderKey>,
    by_server: HashMap<String, BTreeSet<OrderKey>>,
    /// Pending, approved or executing ids per server: conflicts and claims look here.
    active: HashMap<String, BTreeSet<i64>>,
    executing: BTreeSet<i64>,
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
    fn action_mut(&mut self, id: i64) -> Option<&mut Action> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.actions.get_mut(index)
    }

    fn log(&mut self, event: EventDraft) {
        let id = self.events.len() as i64 + 1;
        self.events.push(event.with_id(id));
    }

    /// Applies `change` to action `id` and keeps every index in step.
    fn apply(&mut self, id: i64, change: &Change) -> Result<Action> {
        let mut token = self.lease_tokens.get(&id).cloned();
        let action = self
            .action_mut(id)
            .ok_or_else(|| Error::action_not_found(id))?;
        let mut updated = action.clone();
        let event = change.apply(&mut updated, &mut token)?;
        let from = action.status;
        *action = updated.clone();
        match token {
            Some(t) => self.lease_tokens.insert(id, t),
            None => self.lease_tokens.remove(&id),
        };
        if let Some(event) = event {
            self.on_status_change(&updated, from);
            self.log(event);
        }
        Ok(updated)
    }

    fn on_status_change(&mut self, action: &Action, from: ActionStatus) {
        let (server, kind, to) = (&action.server_id, &action.action_type, action.status);
        self.counts.add(server, kind, from, -1);
        self.counts.add(server, kind, to, 1);
        if !ACTIVE_STATUSES.contains(&to) {
            if let Some(ids) = self.active.get_mut(server) {
                ids.remove(&action.id);
            }
        }
        if to == ActionStatus::Executing {
            self.executing.insert(action.id);
        } else {
            self.executing.remove(&action.id);
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

    fn set_paused(&self, id: &str, paused_at: Option<Timestamp>) -> Result<Option<Server>> {
        let mut inner = self.write();
        let Some(server) = inner.servers.get_mut(id) else {
            return Ok(None);
        };
        if server.is_paused != paused_at.is_some() {
            server.is_paused = paused_at.is_some();
            server.paused_at = paused_at;
        }
        Ok(Some(server.clone()))
    }

    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
        let mut inner = self.write();
        let inner = &mut *inner;
        let server = inner
            .servers
            .get(&draft.server_id)
            .ok_or_else(|| Error::server_not_found(&draft.server_id))?;
        if let Some(active) = inner.active.get(&draft.server_id) {
            if let Some(&existing) = active
                .iter()
                .find(|&&id| guard.collides(&draft, &inner.actions[id as usize - 1]))
            {
                return Err(guard.error(existing));
            }
        }
        let id = inner.actions.len() as i64 + 1;
        let (action, event) = draft.into_action(id, server);
        let key = (action.created_at, id);
        inner.by_created.insert(key);
        inner
            .by_server
            .entry(action.server_id.clone())
            .or_default()
            .insert(key);
        inner
            .active
            .entry(action.server_id.clone())
            .or_default()
            .insert(id);
        inner
            .counts
            .add(&action.server_id, &action.action_type, action.status, 1);
        inner.actions.push(action.clone());
        inner.log(event);
        Ok(action)
    }

    fn get_action(&self, id: i64) -> Result<Option<Action>> {
        let inner = self.read();
        let index = usize::try_from(id.saturating_sub(1)).ok();
        Ok(index
            .filter(|_| id >= 1)
            .and_then(|i| inner.actions.get(i))
            .cloned())
    }

    fn list_actions(&self, filter: &ActionFilter, page: PageRequest) -> Result<(Vec<Action>, u64)> {
        let inner = self.read();
        let total = inner.counts.total(filter);
        let order = match &filter.server_id {
            Some(server) => match inner.by_server.get(server) {
                Some(keys) => keys,
                None => return Ok((Vec::new(), 0)),
            },
            None => &inner.by_created,
        };
        let actions = order
            .iter()
            .rev()
            .map(|(_, id)| &inner.actions[*id as usize - 1])
            .filter(|a| filter.matches(a))
            .skip(page.offset.try_into().unwrap_or(usize::MAX))
            .take(page.limit as usize)
            .cloned()
            .collect();
        Ok((actions, total))
    }

    fn update_action(&self, id: i64, change: &Change) -> Result<Action> {
        self.write().apply(id, change)
    }

    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>> {
        let mut inner = self.write();
        let oldest = inner.active.get(server_id).and_then(|ids| {
            ids.iter()
                .map(|id| &inner.actions[*id as usize - 1])
                .filter(|a| a.status == ActionStatus::Approved)
                .min_by_key(|a| (a.created_at, a.id))
                .map(|a| a.id)
        });
        oldest.map(|id| inner.apply(id, change)).transpose()
    }

    fn expire_leases(&self, change: &Change) -> Result<Vec<Action>> {
        let mut inner = self.write();
        let due: Vec<i64> = inner
            .executing
            .iter()
            .copied()
            .filter(|id| {
                inner.actions[*id as usize - 1]
                    .lease_expires_at
                    .is_some_and(|until| until <= change.at)
            })
            .collect();
        due.into_iter().map(|id| inner.apply(id, change)).collect()
    }

    fn events_since(&self, cursor: i64, limit: u32) -> Result<Vec<Event>> {
        let inner = self.read();
        let start = usize::try_from(cursor).unwrap_or(0).min(inner.events.len());
        Ok(inner.events[start..]
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
    }
}
