//! The audit log: events appended with their chain hash, read by cursor,
//! and the chain walked for verification.

use super::rows::{boxed, StoredEvent};
use super::Inner;
use crate::audit::{event_hash, AuditHead, AuditReport, AuditVerifier, ChainedEvent, HASH_VERSION};
use crate::model::Event;
use crate::store::EventDraft;

impl Inner {
    pub(super) fn log(&mut self, event: EventDraft) {
        let by = self.strings.intern(&event.by);
        let subject = self.strings.intern(&event.subject);
        let prev = self
            .events
            .back()
            .map_or(self.pruned.audit.hash, |e| e.hash);
        let hash = event_hash(&prev, &event);
        self.events.push_back(StoredEvent {
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

    /// Up to `limit` events after `cursor`, oldest first.
    pub(super) fn events_since(&self, cursor: i64, limit: u32) -> Vec<Event> {
        let first = self.pruned.audit.last_event_id + 1;
        let start = super::position(cursor.max(first - 1) + 1, first)
            .unwrap_or(0)
            .min(self.events.len());
        self.events
            .range(start..)
            .take(limit as usize)
            .zip(first + start as i64..)
            .map(|(e, id)| self.event(id, e))
            .collect()
    }

    /// Walks the chain and the head (kept implicitly: the last event).
    pub(super) fn verify_audit(&self) -> AuditReport {
        let mut prev = self.pruned.audit.hash;
        let first = self.pruned.audit.last_event_id + 1;
        let chain = self.events.iter().zip(first..).map(|(e, id)| {
            // What the event vouches for is checked against the action as it is now.
            let action = match (&e.digest, e.action_id) {
                (Some(_), Some(action_id)) => {
                    self.stored(action_id).map(|s| self.action(action_id, s).0)
                }
                _ => None,
            };
            let chained = ChainedEvent {
                event: self.event(id, e),
                prev_hash: std::mem::replace(&mut prev, e.hash),
                hash: e.hash,
                hash_version: HASH_VERSION,
                digest: e.digest.as_deref().map(str::to_owned),
                action,
            };
            Ok::<_, std::convert::Infallible>(Ok(chained))
        });
        let head = AuditHead {
            last_event_id: self.last_event_id(),
            hash: self
                .events
                .back()
                .map_or(self.pruned.audit.hash, |e| e.hash),
        };
        let Ok(report) = AuditVerifier::walk(&self.pruned.audit, chain, Some(&head));
        report
    }
}
