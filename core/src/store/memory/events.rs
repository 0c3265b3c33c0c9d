//! The audit log: events appended with their chain hash, read by cursor,
//! and the chain walked for verification.

use super::rows::{boxed, StoredEvent};
use super::Inner;
use crate::audit::{
    event_hash, AuditHead, AuditReport, AuditVerifier, ChainedEvent, GENESIS_HASH, HASH_VERSION,
};
use crate::model::Event;
use crate::store::EventDraft;

impl Inner {
    pub(super) fn log(&mut self, event: EventDraft) {
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

    /// Up to `limit` events after `cursor`, oldest first.
    pub(super) fn events_since(&self, cursor: i64, limit: u32) -> Vec<Event> {
        let start = usize::try_from(cursor).unwrap_or(0).min(self.events.len());
        self.events[start..]
            .iter()
            .take(limit as usize)
            .zip(start as i64 + 1..)
            .map(|(e, id)| self.event(id, e))
            .collect()
    }

    /// Walks the chain and the head (kept implicitly: the last event).
    pub(super) fn verify_audit(&self) -> AuditReport {
        let mut prev = GENESIS_HASH;
        let chain = self.events.iter().zip(1..).map(|(e, id)| {
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
            last_event_id: self.events.len() as i64,
            hash: self.events.last().map_or(GENESIS_HASH, |e| e.hash),
        };
        let Ok(report) = AuditVerifier::walk(chain, Some(&head));
        report
    }
}
