//! The tamper-evident audit chain: how each event's hash is computed and how
//! a stored chain is verified. Stores only keep the hashes and feed them back
//! to [`AuditVerifier`]; the encoding and the verdict are here, once.
//!
//! Each event stores `prev_hash` (the hash of the event before it, or
//! [`GENESIS_HASH`] for the first) and `hash = SHA-256(prev_hash ‖
//! encoding(event))`, where the encoding (version 1) is:
//!
//! ```text
//! encoding = str("actionq-audit-event-v1")
//!            i64(action_id)
//!            opt(from_status)  str(to_status)  str(by)
//!            i64(at as microseconds since the Unix epoch)
//!            opt(detail)
//! i64(n)   = n as 8 bytes, big-endian two's complement
//! str(s)   = 8-byte big-endian byte length of s, then its UTF-8 bytes
//! opt(s)   = one byte 0 when absent, else one byte 1 then str(s)
//! ```
//!
//! The event's id is not hashed (a PostgreSQL sequence may leave gaps); order
//! is what the `prev_hash` links fix. The chain's head (last event id and
//! hash) is kept apart from the events, so removing the newest events, which
//! leaves a chain that is intact as far as it goes, is found too.
//!
//! Without a secret key, someone who can rewrite the whole database can also
//! rewrite every later hash and the head: the chain makes edits evident to
//! anyone who compares a head (or any hash) kept elsewhere, and catches every
//! edit, removal or reordering of rows done without recomputing the chain.

use sha2::{Digest, Sha256};

use crate::model::{ActionStatus, Event, Timestamp};
use crate::store::EventDraft;

/// The tag that starts every event encoding.
pub const AUDIT_EVENT_TAG: &str = "actionq-audit-event-v1";

/// `prev_hash` of the first event, and the head's hash of an empty log.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The head of the chain, stored apart from the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    /// Id of the newest event (0 when there is none).
    pub last_event_id: i64,
    /// Its hash ([`GENESIS_HASH`] when there is none).
    pub hash: [u8; 32],
}

impl Default for AuditHead {
    fn default() -> Self {
        AuditHead {
            last_event_id: 0,
            hash: GENESIS_HASH,
        }
    }
}

/// A stored event with the chain hashes stored beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEvent {
    /// The event as stored.
    pub event: Event,
    /// The stored hash of the previous event.
    pub prev_hash: [u8; 32],
    /// The stored hash of this one.
    pub hash: [u8; 32],
}

/// What [`crate::ActionQueue::verify_audit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditReport {
    /// Events verified before the first bad one (all of them when none is bad).
    pub checked: u64,
    /// The first event that does not verify: an edited event, the event
    /// after a removed or moved one, or — when the newest events were removed
    /// — the id after the last intact event. `None` when the chain is intact.
    pub first_bad_event_id: Option<i64>,
}

fn hash_fields(
    prev: &[u8; 32],
    action_id: i64,
    from: Option<ActionStatus>,
    to: ActionStatus,
    by: &str,
    at: Timestamp,
    detail: Option<&str>,
) -> [u8; 32] {
    // Built whole and hashed once (this runs for every event).
    let mut h: Vec<u8> = Vec::with_capacity(160);
    let put_str = |h: &mut Vec<u8>, s: &str| {
        h.extend_from_slice(&(s.len() as u64).to_be_bytes());
        h.extend_from_slice(s.as_bytes());
    };
    let put_opt = |h: &mut Vec<u8>, s: Option<&str>| match s {
        None => h.push(0),
        Some(s) => {
            h.push(1);
            put_str(h, s);
        }
    };
    h.extend_from_slice(prev);
    put_str(&mut h, AUDIT_EVENT_TAG);
    h.extend_from_slice(&action_id.to_be_bytes());
    put_opt(&mut h, from.map(ActionStatus::as_str));
    put_str(&mut h, to.as_str());
    put_str(&mut h, by);
    h.extend_from_slice(&at.timestamp_micros().to_be_bytes());
    put_opt(&mut h, detail);
    Sha256::digest(&h).into()
}

/// The hash of `event` chained after `prev` (see the [module docs](self)).
pub fn event_hash(prev: &[u8; 32], event: &EventDraft) -> [u8; 32] {
    hash_fields(
        prev,
        event.action_id,
        event.from_status,
        event.to_status,
        &event.by,
        event.at,
        event.detail.as_deref(),
    )
}

/// The hash a stored `event` chained after `prev` must carry: what
/// [`AuditVerifier`] recomputes for each row. Public so that tamper tests can
/// forge a row the way an attacker who knows the encoding would, and find
/// the forgery caught by the next link.
pub fn stored_event_hash(prev: &[u8; 32], event: &Event) -> [u8; 32] {
    hash_fields(
        prev,
        event.action_id,
        event.from_status,
        event.to_status,
        &event.by,
        event.at,
        event.detail.as_deref(),
    )
}

/// Walks a stored chain: [`AuditVerifier::push`] each event in id order,
/// then [`AuditVerifier::finish`] with the stored head.
#[derive(Debug, Clone)]
pub struct AuditVerifier {
    prev: [u8; 32],
    last_id: i64,
    checked: u64,
    first_bad: Option<i64>,
}

impl Default for AuditVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditVerifier {
    /// A verifier at the start of the chain.
    pub fn new() -> Self {
        AuditVerifier {
            prev: GENESIS_HASH,
            last_id: 0,
            checked: 0,
            first_bad: None,
        }
    }

    /// Checks the next stored event: its `prev_hash` must be the hash of the
    /// event before it, its `hash` what its content gives. Returns whether
    /// to go on (false once a bad event is found).
    pub fn push(&mut self, row: &ChainedEvent) -> bool {
        if self.first_bad.is_some() {
            return false;
        }
        if row.prev_hash != self.prev
            || row.event.id <= self.last_id
            || stored_event_hash(&self.prev, &row.event) != row.hash
        {
            self.first_bad = Some(row.event.id);
            return false;
        }
        self.prev = row.hash;
        self.last_id = row.event.id;
        self.checked += 1;
        true
    }

    /// The verdict, given the stored head (`None` if the head is missing):
    /// the last intact event must be the head's event with the head's hash.
    pub fn finish(self, head: Option<&AuditHead>) -> AuditReport {
        let mut report = AuditReport {
            checked: self.checked,
            first_bad_event_id: self.first_bad,
        };
        // A missing head reads as the empty log's, so stored events then
        // fail this comparison too.
        let head = head.copied().unwrap_or_default();
        if report.first_bad_event_id.is_none()
            && (head.last_event_id != self.last_id || head.hash != self.prev)
        {
            report.first_bad_event_id = Some(self.last_id + 1);
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, by: &str) -> Event {
        Event {
            id,
            action_id: 1,
            from_status: None,
            to_status: ActionStatus::Approved,
            by: by.into(),
            at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
            detail: Some("auto-approved".into()),
        }
    }

    fn chain(n: i64) -> (Vec<ChainedEvent>, AuditHead) {
        let mut prev = GENESIS_HASH;
        let rows: Vec<ChainedEvent> = (1..=n)
            .map(|id| {
                let event = event(id, "dashboard");
                let hash = stored_event_hash(&prev, &event);
                let row = ChainedEvent {
                    event,
                    prev_hash: prev,
                    hash,
                };
                prev = hash;
                row
            })
            .collect();
        let head = AuditHead {
            last_event_id: n,
            hash: prev,
        };
        (rows, head)
    }

    fn verify(rows: &[ChainedEvent], head: Option<&AuditHead>) -> AuditReport {
        let mut v = AuditVerifier::new();
        for row in rows {
            if !v.push(row) {
                break;
            }
        }
        v.finish(head)
    }

    #[test]
    fn intact_chain_verifies_and_each_kind_of_damage_names_its_event() {
        let (rows, head) = chain(5);
        assert_eq!(
            verify(&rows, Some(&head)),
            AuditReport {
                checked: 5,
                first_bad_event_id: None
            }
        );
        let mut edited = rows.clone();
        edited[2].event.by = "mallory".into();
        assert_eq!(verify(&edited, Some(&head)).first_bad_event_id, Some(3));
        let mut deleted = rows.clone();
        deleted.remove(1);
        assert_eq!(verify(&deleted, Some(&head)).first_bad_event_id, Some(3));
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped, Some(&head)).first_bad_event_id, Some(3));
        let truncated = &rows[..3];
        let report = verify(truncated, Some(&head));
        assert_eq!((report.checked, report.first_bad_event_id), (3, Some(4)));
        assert_eq!(verify(&rows, None).first_bad_event_id, Some(6));
        let forged_hash = AuditHead {
            hash: [7; 32],
            ..head
        };
        assert_eq!(
            verify(&rows, Some(&forged_hash)).first_bad_event_id,
            Some(6)
        );
        let moved_id = AuditHead {
            last_event_id: 4,
            ..head
        };
        assert_eq!(verify(&rows, Some(&moved_id)).first_bad_event_id, Some(6));
        assert_eq!(
            verify(&[], Some(&AuditHead::default())).first_bad_event_id,
            None
        );
    }
}
