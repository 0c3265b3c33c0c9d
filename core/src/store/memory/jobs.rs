//! Job leases and delivery cursors (`crate::jobs`).

use super::Inner;
use crate::error::Result;
use crate::jobs::{already_past, delivery_lease_name, lease_not_held, no_delivery};
use crate::model::Timestamp;
use crate::store::{Delivery, DeliveryUpdate, JobLease};

/// A cursor as kept: everything but the lag, which is computed when read.
#[derive(Debug, Clone)]
pub(super) struct StoredDelivery {
    kind: String,
    cursor: i64,
    sent: u64,
    failed: u64,
    dead: u64,
    last_error: Option<String>,
    last_success_at: Option<Timestamp>,
}

impl Inner {
    pub(super) fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<JobLease, JobLease> {
        if let Some(held) = self.leases.get(name) {
            if held.holder != holder && held.expires_at > now {
                return Err(held.clone());
            }
        }
        let lease = JobLease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            expires_at,
        };
        self.leases.insert(name.to_owned(), lease.clone());
        Ok(lease)
    }

    pub(super) fn release_lease(&mut self, name: &str, holder: &str) -> bool {
        let held = self.leases.get(name).is_some_and(|l| l.holder == holder);
        if held {
            self.leases.remove(name);
        }
        held
    }

    pub(super) fn register_delivery(&mut self, name: &str, kind: &str) -> Delivery {
        let end = self.events.len() as i64;
        let stored = self
            .deliveries
            .entry(name.to_owned())
            .or_insert_with(|| StoredDelivery {
                kind: kind.to_owned(),
                cursor: end,
                sent: 0,
                failed: 0,
                dead: 0,
                last_error: None,
                last_success_at: None,
            });
        kind.clone_into(&mut stored.kind);
        self.delivery(name, &self.deliveries[name])
    }

    pub(super) fn record_delivery(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        update: &DeliveryUpdate,
    ) -> Result<Delivery> {
        let cursor = self
            .deliveries
            .get(name)
            .ok_or_else(|| no_delivery(name))?
            .cursor;
        let lease = delivery_lease_name(name);
        let held = self
            .leases
            .get(&lease)
            .is_some_and(|l| l.holder == holder && l.expires_at > now);
        if !held {
            return Err(lease_not_held(&lease, holder));
        }
        if update.event_id <= cursor {
            return Err(already_past(name, cursor, update.event_id));
        }
        let stored = self.deliveries.get_mut(name).expect("checked above");
        let (sent, failed, dead) = update.counts();
        stored.cursor = update.cursor(cursor);
        stored.sent += sent;
        stored.failed += failed;
        stored.dead += dead;
        stored.last_error = update.last_error(stored.last_error.as_deref());
        stored.last_success_at = update.last_success_at(stored.last_success_at);
        Ok(self.delivery(name, &self.deliveries[name]))
    }

    pub(super) fn list_deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .iter()
            .map(|(name, stored)| self.delivery(name, stored))
            .collect()
    }

    fn delivery(&self, name: &str, stored: &StoredDelivery) -> Delivery {
        let after = usize::try_from(stored.cursor)
            .unwrap_or(0)
            .min(self.events.len());
        Delivery {
            name: name.to_owned(),
            kind: stored.kind.clone(),
            cursor: stored.cursor,
            lag_events: (self.events.len() - after) as u64,
            oldest_pending_at: self.events.get(after).map(|e| e.at),
            sent: stored.sent,
            failed: stored.failed,
            dead: stored.dead,
            last_error: stored.last_error.clone(),
            last_success_at: stored.last_success_at,
        }
    }
}
