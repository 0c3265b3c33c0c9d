//! The tamper-evident audit chain: how each event's hash is computed and how
//! a stored chain is verified. Stores only keep the hashes and feed them back
//! to [`AuditVerifier`]; the encoding and the verdict are here, once.
//!
//! Each event stores `prev_hash` (the hash of the event before it, or
//! [`GENESIS_HASH`] for the first) and `hash = SHA-256(prev_hash ‖
//! encoding(event))`. Each event also stores the version of the encoding its
//! hash used, so events written before a new encoding keep their hashes.
//! Version 1 (events written before schema SQLite v5 / PostgreSQL v3):
//!
//! ```text
//! encoding = str("actionq-audit-event-v1")
//!            i64(action_id)
//!            opt(from_status)  str(to_status)  str(by)
//!            i64(at as microseconds since the Unix epoch)
//!            opt(detail)
//! ```
//!
//! Version 2 (every event written since) covers what the event is about and,
//! for an action, what the action *is*:
//!
//! ```text
//! encoding = str("actionq-audit-event-v2")
//!            str(kind)  str(subject)  opt_i64(action_id)
//!            opt(from_status)  opt(to_status)  str(by)
//!            i64(at as microseconds since the Unix epoch)
//!            opt(detail)  opt(digest)
//! i64(n)     = n as 8 bytes, big-endian two's complement
//! opt_i64(n) = one byte 0 when absent, else one byte 1 then i64(n)
//! str(s)     = 8-byte big-endian byte length of s, then its UTF-8 bytes
//! opt(s)     = one byte 0 when absent, else one byte 1 then str(s)
//! ```
//!
//! `digest` is the action digest the event vouches for: on an action's
//! creation event the action's digest (and `subject` its server, `by` its
//! requester), on an approval the digest approved. The chain alone would
//! only protect the events; so [`AuditVerifier`] also checks the action row
//! against them: for a creation event, the row's `digest` *and* the digest
//! recomputed from its stored `server_id`, `action_type`, `argv`, `env` and
//! `whitelist_version` must equal the chained digest, and its `server_id` and
//! `created_by` the event's `subject` and `by`; for an approval, the row's
//! approval by that approver must carry the chained digest. An edited argv,
//! env, digest, server, requester or approval is reported as that event.
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

use crate::model::{Action, ActionStatus, Event, EventKind, Timestamp};
use crate::store::EventDraft;

/// The tag that starts every version 1 event encoding.
pub const AUDIT_EVENT_TAG: &str = "actionq-audit-event-v1";

/// The tag that starts every version 2 event encoding.
pub const AUDIT_EVENT_TAG_V2: &str = "actionq-audit-event-v2";

/// The encoding version stores write for new events ([`event_hash`]).
pub const HASH_VERSION: i64 = 2;

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
    /// The stored encoding version of `hash` (1 or [`HASH_VERSION`]).
    pub hash_version: i64,
    /// The stored digest the event vouches for ([`EventDraft::digest`]).
    pub digest: Option<String>,
    /// For an action event with a `digest`: the action as stored now (the
    /// verifier checks it against the event), `None` if the row is gone.
    /// Stores leave it `None` for every other event.
    pub action: Option<Action>,
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
    /// The id of the last event pruned (`docs/contract/retention.md`): the
    /// chain was verified from its stored hash on. `None` when nothing was
    /// ever pruned.
    pub pruned_through: Option<i64>,
}

fn put_str(h: &mut Vec<u8>, s: &str) {
    h.extend_from_slice(&(s.len() as u64).to_be_bytes());
    h.extend_from_slice(s.as_bytes());
}

fn put_opt(h: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => h.push(0),
        Some(s) => {
            h.push(1);
            put_str(h, s);
        }
    }
}

/// The fields every encoding hashes, borrowed from a draft or a stored event.
struct Fields<'a> {
    kind: EventKind,
    subject: &'a str,
    action_id: Option<i64>,
    from: Option<ActionStatus>,
    to: Option<ActionStatus>,
    by: &'a str,
    at: Timestamp,
    detail: Option<&'a str>,
    digest: Option<&'a str>,
}

impl Fields<'_> {
    /// The hash chained after `prev` in encoding `version`; `None` for a
    /// version this library does not know, or a v1 event that v1 cannot
    /// express (it had only action events).
    fn hash(&self, prev: &[u8; 32], version: i64) -> Option<[u8; 32]> {
        // Built whole and hashed once (this runs for every event).
        let mut h: Vec<u8> = Vec::with_capacity(192);
        h.extend_from_slice(prev);
        match version {
            1 => {
                let (Some(action_id), Some(to)) = (self.action_id, self.to) else {
                    return None;
                };
                put_str(&mut h, AUDIT_EVENT_TAG);
                h.extend_from_slice(&action_id.to_be_bytes());
                put_opt(&mut h, self.from.map(ActionStatus::as_str));
                put_str(&mut h, to.as_str());
                put_str(&mut h, self.by);
                h.extend_from_slice(&self.at.timestamp_micros().to_be_bytes());
                put_opt(&mut h, self.detail);
            }
            2 => {
                put_str(&mut h, AUDIT_EVENT_TAG_V2);
                put_str(&mut h, self.kind.as_str());
                put_str(&mut h, self.subject);
                match self.action_id {
                    None => h.push(0),
                    Some(id) => {
                        h.push(1);
                        h.extend_from_slice(&id.to_be_bytes());
                    }
                }
                put_opt(&mut h, self.from.map(ActionStatus::as_str));
                put_opt(&mut h, self.to.map(ActionStatus::as_str));
                put_str(&mut h, self.by);
                h.extend_from_slice(&self.at.timestamp_micros().to_be_bytes());
                put_opt(&mut h, self.detail);
                put_opt(&mut h, self.digest);
            }
            _ => return None,
        }
        Some(Sha256::digest(&h).into())
    }
}

impl EventDraft {
    fn fields(&self) -> Fields<'_> {
        Fields {
            kind: self.kind,
            subject: &self.subject,
            action_id: self.action_id,
            from: self.from_status,
            to: self.to_status,
            by: &self.by,
            at: self.at,
            detail: self.detail.as_deref(),
            digest: self.digest.as_deref(),
        }
    }
}

/// The hash of `event` chained after `prev`, in encoding [`HASH_VERSION`]
/// (see the [module docs](self)).
pub fn event_hash(prev: &[u8; 32], event: &EventDraft) -> [u8; 32] {
    event
        .fields()
        .hash(prev, HASH_VERSION)
        .expect("the current encoding expresses every event")
}

/// The hash of a stored action event in encoding version 1: what a store
/// migrating events written before version 2 chains them with.
pub fn event_hash_v1(prev: &[u8; 32], event: &Event) -> Option<[u8; 32]> {
    stored_fields(event, None).hash(prev, 1)
}

/// The hash a stored `event` that vouches for no digest (every event but an
/// action's creation and approvals) chained after `prev` must carry in the
/// current encoding: what [`AuditVerifier`] recomputes for such a row.
/// Public so that tamper tests can forge a row the way an attacker who
/// knows the encoding would, and find the forgery caught by the next link.
pub fn stored_event_hash(prev: &[u8; 32], event: &Event) -> [u8; 32] {
    stored_fields(event, None)
        .hash(prev, HASH_VERSION)
        .expect("the current encoding expresses every event")
}

fn stored_fields<'a>(event: &'a Event, digest: Option<&'a str>) -> Fields<'a> {
    Fields {
        kind: event.kind,
        subject: &event.subject,
        action_id: event.action_id,
        from: event.from_status,
        to: event.to_status,
        by: &event.by,
        at: event.at,
        detail: event.detail.as_deref(),
        digest,
    }
}

/// Whether the action row still is what `row` (an action event chaining a
/// digest) vouched for; see the [module docs](self).
fn action_matches(row: &ChainedEvent, digest: &str) -> bool {
    let Some(action) = &row.action else {
        return false;
    };
    let event = &row.event;
    if Some(action.id) != event.action_id || action.server_id != event.subject {
        return false;
    }
    if event.from_status.is_none() {
        action.digest == digest
            && action.computed_digest() == digest
            && action.created_by == event.by
    } else {
        action
            .approvals
            .iter()
            .any(|a| a.by == event.by && a.digest == digest)
    }
}

/// Walks a stored chain: [`AuditVerifier::push`] each event in id order,
/// then [`AuditVerifier::finish`] with the stored head.
#[derive(Debug, Clone)]
pub struct AuditVerifier {
    prev: [u8; 32],
    last_id: i64,
    checked: u64,
    first_bad: Option<i64>,
    pruned_through: Option<i64>,
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
            pruned_through: None,
        }
    }

    /// A verifier that starts after a prune's checkpoint (the last pruned
    /// event's id and hash; the empty log's head when nothing was pruned).
    ///
    /// Prune removes only a prefix of the log (every event up to the
    /// checkpoint, never one after it: `docs/contract/retention.md`), so the
    /// events left still form one unbroken chain whose first link's
    /// `prev_hash` must be the checkpoint's hash. An edited checkpoint hash
    /// breaks that first link; a checkpoint id at or past the first event
    /// left fails the id order; an event left behind at or before the
    /// checkpoint is out of order too. With no event after it, the head must
    /// be the checkpoint itself.
    pub fn resume(checkpoint: &AuditHead) -> Self {
        AuditVerifier {
            prev: checkpoint.hash,
            last_id: checkpoint.last_event_id,
            pruned_through: (checkpoint.last_event_id > 0).then_some(checkpoint.last_event_id),
            ..AuditVerifier::new()
        }
    }

    /// Checks the next stored event: its `prev_hash` must be the hash of the
    /// event before it, its `hash` what its content gives. Returns whether
    /// to go on (false once a bad event is found).
    pub fn push(&mut self, row: &ChainedEvent) -> bool {
        if self.first_bad.is_some() {
            return false;
        }
        let hash =
            stored_fields(&row.event, row.digest.as_deref()).hash(&self.prev, row.hash_version);
        let row_intact = match (&row.digest, row.event.kind) {
            (Some(digest), EventKind::Action) => action_matches(row, digest),
            _ => true,
        };
        if row.prev_hash != self.prev
            || row.event.id <= self.last_id
            || hash != Some(row.hash)
            || !row_intact
        {
            self.first_bad = Some(row.event.id);
            return false;
        }
        self.prev = row.hash;
        self.last_id = row.event.id;
        self.checked += 1;
        true
    }

    /// The walk every store makes over one snapshot of its log: pushes
    /// `events` in id order until one is bad, then finishes with `head`. An
    /// event is its [`ChainedEvent`], or `Err(id)` for a stored row that does
    /// not even decode (an edited status), which is bad too. Reading stops at
    /// the first bad event; a read error is handed back as it is.
    pub(crate) fn walk<E>(
        checkpoint: &AuditHead,
        events: impl IntoIterator<Item = Result<Result<ChainedEvent, i64>, E>>,
        head: Option<&AuditHead>,
    ) -> Result<AuditReport, E> {
        let mut verifier = AuditVerifier::resume(checkpoint);
        for event in events {
            match event? {
                Ok(chained) => {
                    if !verifier.push(&chained) {
                        break;
                    }
                }
                Err(id) => {
                    return Ok(AuditReport {
                        first_bad_event_id: Some(id),
                        ..verifier.finish(None)
                    })
                }
            }
        }
        Ok(verifier.finish(head))
    }

    /// The verdict, given the stored head (`None` if the head is missing):
    /// the last intact event must be the head's event with the head's hash.
    pub fn finish(self, head: Option<&AuditHead>) -> AuditReport {
        let mut report = AuditReport {
            checked: self.checked,
            first_bad_event_id: self.first_bad,
            pruned_through: self.pruned_through,
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
            action_id: None,
            from_status: None,
            to_status: None,
            by: by.into(),
            at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
            detail: Some("paused".into()),
            kind: EventKind::Server,
            subject: "web-1".into(),
        }
    }

    fn chain(n: i64) -> (Vec<ChainedEvent>, AuditHead) {
        let mut prev = GENESIS_HASH;
        let rows: Vec<ChainedEvent> = (1..=n)
            .map(|id| {
                let event = event(id, "dashboard");
                let hash = stored_fields(&event, None)
                    .hash(&prev, HASH_VERSION)
                    .unwrap();
                let row = ChainedEvent {
                    event,
                    prev_hash: prev,
                    hash,
                    hash_version: HASH_VERSION,
                    digest: None,
                    action: None,
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
                first_bad_event_id: None,
                pruned_through: None,
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
        // Every field of the v2 encoding is covered, kind and subject included.
        let mut other_kind = rows.clone();
        other_kind[1].event.kind = EventKind::Credential;
        assert_eq!(verify(&other_kind, Some(&head)).first_bad_event_id, Some(2));
        let mut other_subject = rows.clone();
        other_subject[3].event.subject = "web-2".into();
        assert_eq!(
            verify(&other_subject, Some(&head)).first_bad_event_id,
            Some(4)
        );
        let mut other_version = rows.clone();
        other_version[0].hash_version = 1;
        assert_eq!(
            verify(&other_version, Some(&head)).first_bad_event_id,
            Some(1)
        );
    }
}
