//! Actions: creates with their conflict and budget checks, updates through
//! the rules, claims, listings, and the indexes that answer each without a scan.

use std::collections::BTreeSet;

use super::rows::{Stored, Sym};
use super::Inner;
use crate::error::{Error, Result};
use crate::model::{Action, ActionCount, ActionFilter, ActionStatus, Timestamp};
use crate::rules::ACTIVE_STATUSES;
use crate::store::sweep::Due;
use crate::store::{ActionDraft, Change, ConflictGuard, PageRequest, PruneCheckpoint};

/// An action's place in creation order.
pub(super) type OrderKey = (Timestamp, i64);

/// Totals per (server, type, status): lets a listing report `total` without
/// scanning (the SQLite store keeps the same in its `action_counts` table).
#[derive(Debug, Default, Clone)]
pub(super) struct StatusCounts {
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
    pub(super) fn per_server_status(&self) -> Vec<ActionCount> {
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
pub(super) struct Ordered(Vec<OrderKey>);

impl Ordered {
    fn insert(&mut self, key: OrderKey) {
        let at = self.0.partition_point(|k| *k < key);
        self.0.insert(at, key);
    }

    fn iter(&self) -> std::slice::Iter<'_, OrderKey> {
        self.0.iter()
    }

    /// The keys below `key`, largest first.
    fn below(&self, key: OrderKey) -> impl Iterator<Item = &OrderKey> {
        self.0[..self.0.partition_point(|k| *k < key)].iter().rev()
    }

    /// Drops every key of an action with id up to `last_id`.
    fn forget_through(&mut self, last_id: i64) {
        self.0.retain(|&(_, id)| id > last_id);
    }
}

impl Inner {
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
    pub(super) fn apply(&mut self, id: i64, change: &Change) -> Result<Action> {
        let stored = self.stored(id).ok_or_else(|| Error::action_not_found(id))?;
        let (mut action, mut token) = self.action(id, stored);
        let Some(event) = change.apply(&mut action, &mut token)? else {
            // Nothing recorded (a heartbeat, a repeated approval): only the
            // lease may have moved.
            let index = self.index(id).expect("exists");
            let later = self.actions[index].later.get_or_insert_with(Box::default);
            later.lease_expires_at = action.lease_expires_at;
            return Ok(action);
        };
        let old = self.actions[self.index(id).expect("exists")].clone();
        let new = self.compact(&action, token);
        self.index_status(id, &old, false);
        self.index_status(id, &new, true);
        self.count(&old, old.status, -1);
        self.count(&new, new.status, 1);
        let index = self.index(id).expect("exists");
        self.actions[index] = new;
        self.log(event);
        Ok(action)
    }

    /// The creation time of action `before`, or of the newest stored
    /// action below it; `None` when there is none (nothing is below).
    fn anchor(&self, before: i64) -> Option<Timestamp> {
        let last = self.pruned.last_action_id + self.actions.len() as i64;
        let id = before.min(last);
        (id > self.pruned.last_action_id).then(|| self.stored(id).expect("dense").created_at)
    }

    /// [`Store::prune_prefix`](crate::store::Store::prune_prefix).
    pub(super) fn prune_prefix(
        &mut self,
        from: &PruneCheckpoint,
        last_event_id: i64,
        last_action_id: i64,
    ) -> Result<Option<u64>> {
        if self.pruned != *from {
            return Ok(None);
        }
        let actions = usize::try_from(last_action_id - from.last_action_id)
            .unwrap_or(0)
            .min(self.actions.len());
        let events = usize::try_from(last_event_id - from.audit.last_event_id)
            .unwrap_or(0)
            .min(self.events.len());
        if let Some((i, live)) = self
            .actions
            .iter()
            .take(actions)
            .enumerate()
            .find(|(_, s)| !s.status.is_terminal())
        {
            return Err(Error::conflict(format!(
                "prune refused: action {} is {}",
                from.last_action_id + 1 + i as i64,
                live.status
            )));
        }
        let Some(last) = events.checked_sub(1).map(|i| self.events[i].hash) else {
            return Ok(None);
        };
        for (i, stored) in self
            .actions
            .drain(..actions)
            .collect::<Vec<_>>()
            .iter()
            .enumerate()
        {
            let id = from.last_action_id + 1 + i as i64;
            self.output.remove(&id);
            self.index_status(id, stored, false);
            self.count(stored, stored.status, -1);
            if let Some(keys) = self.by_server.get_mut(&stored.server_id) {
                keys.forget_through(id);
            }
        }
        self.by_created.forget_through(last_action_id);
        self.events.drain(..events);
        self.pruned = PruneCheckpoint {
            audit: crate::audit::AuditHead {
                last_event_id: from.audit.last_event_id + events as i64,
                hash: last,
            },
            last_action_id: from.last_action_id + actions as i64,
        };
        Ok(Some(actions as u64))
    }

    /// Resolves `filter`'s names; `None` when a name was never stored (no match).
    fn resolve(&self, name: Option<&str>) -> Option<Option<Sym>> {
        match name {
            None => Some(None),
            Some(n) => self.strings.lookup(n).map(Some),
        }
    }

    /// Creates the action of `draft` unless `guard` finds a collision.
    pub(super) fn insert_action(
        &mut self,
        draft: ActionDraft,
        guard: &ConflictGuard,
    ) -> Result<Action> {
        let server = self
            .servers
            .get(&draft.server_id)
            .ok_or_else(|| Error::server_not_found(&draft.server_id))?;
        if let Some(existing) = self.collision(&draft, guard) {
            return Err(guard.error(existing));
        }
        let id = self.pruned.last_action_id + self.actions.len() as i64 + 1;
        let spent = self.auto_approved_in_window(&draft);
        let (action, event) = draft.into_action(id, server, spent);
        let stored = self.compact(&action, None);
        self.by_created.insert((action.created_at, id));
        self.by_server
            .entry(stored.server_id)
            .or_default()
            .insert((action.created_at, id));
        self.index_status(id, &stored, true);
        self.count(&stored, stored.status, 1);
        self.actions.push_back(stored);
        self.log(event);
        Ok(action)
    }

    /// The requested page of actions under `filter`, newest first, and the total.
    pub(super) fn list_actions(
        &self,
        filter: &ActionFilter,
        page: PageRequest,
    ) -> (Vec<Action>, u64) {
        let (Some(server), Some(kind)) = (
            self.resolve(filter.server_id.as_deref()),
            self.resolve(filter.action_type.as_deref()),
        ) else {
            return (Vec::new(), 0);
        };
        let total = self.counts.total(filter);
        if page.offset >= total {
            return (Vec::new(), total);
        }
        // Keyset paging starts below the place of `before_id` (module docs
        // of `PageRequest`): the key of that action, or of the newest one
        // stored below it.
        let below = match page.before_id {
            None => (Timestamp::MAX_UTC, i64::MAX),
            Some(before) => match self.anchor(before) {
                Some(created_at) => (created_at, before),
                None => return (Vec::new(), total),
            },
        };
        // Walk the narrowest order index the filter allows, newest first.
        let newest_first: Box<dyn Iterator<Item = &OrderKey>> = match (server, filter.status) {
            (Some(server), _) => match self.by_server.get(&server) {
                Some(keys) => Box::new(keys.below(below)),
                None => return (Vec::new(), 0),
            },
            (None, Some(status)) => match self.by_status.get(&status) {
                Some(keys) => Box::new(keys.range(..below).rev()),
                None => return (Vec::new(), 0),
            },
            (None, None) => Box::new(self.by_created.below(below)),
        };
        let actions = newest_first
            .map(|&(_, id)| (id, self.stored(id).expect("indexed ids exist")))
            .filter(|(_, s)| {
                filter.status.is_none_or(|f| f == s.status)
                    && server.is_none_or(|f| f == s.server_id)
                    && kind.is_none_or(|f| f == s.action_type)
            })
            .skip(page.offset.try_into().unwrap_or(usize::MAX))
            .take(page.limit as usize)
            .map(|(id, s)| self.action(id, s).0)
            .collect();
        (actions, total)
    }

    /// Claims the oldest approved action of `server_id`, going on past any
    /// the rules cancel instead.
    pub(super) fn claim_next(
        &mut self,
        server_id: &str,
        change: &Change,
    ) -> Result<Option<Action>> {
        loop {
            let oldest = self
                .strings
                .lookup(server_id)
                .and_then(|server| self.approved.get(&server))
                .and_then(|keys| keys.first())
                .map(|&(_, id)| id);
            let Some(id) = oldest else {
                return Ok(None);
            };
            let action = self.apply(id, change)?;
            if action.status == ActionStatus::Executing {
                return Ok(Some(action));
            }
        }
    }

    /// What `due` selects now, by id.
    pub(super) fn due(&self, due: Due<'_>) -> Vec<i64> {
        match due {
            Due::Leases(at) => self
                .executing
                .iter()
                .copied()
                .filter(|&id| {
                    self.stored(id)
                        .and_then(|s| s.later.as_ref())
                        .and_then(|l| l.lease_expires_at)
                        .is_some_and(|until| until <= at)
                })
                .collect(),
            Due::Approvals {
                action_type,
                created_until,
            } => {
                let Some(kind) = self.strings.lookup(action_type) else {
                    return Vec::new();
                };
                let mut ids: Vec<i64> = self
                    .by_status
                    .get(&ActionStatus::Pending)
                    .into_iter()
                    .flat_map(|keys| keys.iter())
                    .take_while(|(created_at, _)| *created_at <= created_until)
                    .map(|&(_, id)| id)
                    .filter(|&id| self.stored(id).is_some_and(|s| s.action_type == kind))
                    .collect();
                ids.sort_unstable();
                ids
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
