//! The compact form of actions and events: repeated strings interned,
//! fields only set later in an action's life boxed together.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::Inner;
use crate::model::{Action, ActionStatus, Approval, Event, EventKind, Timestamp};

/// An interned string: index into [`Interner::strings`].
pub(super) type Sym = u32;

#[derive(Debug, Default)]
pub(super) struct Interner {
    strings: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, Sym>,
}

impl Interner {
    pub(super) fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = Sym::try_from(self.strings.len()).expect("fewer than 2^32 distinct strings");
        let s: Arc<str> = Arc::from(s);
        self.strings.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    pub(super) fn lookup(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    pub(super) fn get(&self, id: Sym) -> &str {
        &self.strings[id as usize]
    }
}

/// Fields set after creation (decision, execution, result): absent for most
/// resident actions until they move on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Later {
    pub(super) rejected_at: Option<Timestamp>,
    pub(super) rejected_by: Option<String>,
    pub(super) rejection_reason: Option<String>,
    pub(super) cancelled_at: Option<Timestamp>,
    pub(super) cancelled_by: Option<String>,
    pub(super) executed_at: Option<Timestamp>,
    pub(super) lease_expires_at: Option<Timestamp>,
    pub(super) completed_at: Option<Timestamp>,
    pub(super) exit_code: Option<i32>,
    pub(super) stdout: Option<String>,
    pub(super) stderr: Option<String>,
    pub(super) lease_token: Option<String>,
    pub(super) approvals: Vec<Approval>,
    pub(super) cancel_requested_at: Option<Timestamp>,
    pub(super) cancel_requested_by: Option<String>,
}

impl Later {
    fn is_empty(&self) -> bool {
        *self == Later::default()
    }
}

/// One action, compactly. Its id is its position in [`Inner::actions`] + 1.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) created_at: Timestamp,
    pub(super) approved_at: Option<Timestamp>,
    pub(super) alert_id: Option<i64>,
    pub(super) server_id: Sym,
    pub(super) action_type: Sym,
    pub(super) created_by: Sym,
    pub(super) approved_by: Option<Sym>,
    pub(super) status: ActionStatus,
    pub(super) service_name: Option<Box<str>>,
    pub(super) command: Box<str>,
    pub(super) argv: Box<[Box<str>]>,
    pub(super) env: Box<[(Box<str>, Box<str>)]>,
    pub(super) params: Box<[(Box<str>, Box<str>)]>,
    pub(super) digest: Box<str>,
    pub(super) whitelist_version: Sym,
    pub(super) later: Option<Box<Later>>,
}

/// One audit event, compactly.
#[derive(Debug, Clone)]
pub(super) struct StoredEvent {
    pub(super) action_id: Option<i64>,
    pub(super) at: Timestamp,
    pub(super) by: Sym,
    pub(super) kind: EventKind,
    pub(super) subject: Sym,
    pub(super) from_status: Option<ActionStatus>,
    pub(super) to_status: Option<ActionStatus>,
    pub(super) detail: Option<Box<str>>,
    pub(super) digest: Option<Box<str>>,
    /// The chain hash (the previous event's is this one's `prev_hash`).
    pub(super) hash: [u8; 32],
}

pub(super) fn boxed(s: &Option<String>) -> Option<Box<str>> {
    s.as_deref().map(Box::from)
}

pub(super) fn box_map(map: &BTreeMap<String, String>) -> Box<[(Box<str>, Box<str>)]> {
    map.iter()
        .map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str())))
        .collect()
}

pub(super) fn unbox_map(pairs: &[(Box<str>, Box<str>)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Inner {
    pub(super) fn stored(&self, id: i64) -> Option<&Stored> {
        self.actions.get(self.index(id)?)
    }

    /// The public form of a stored action, and its lease token.
    pub(super) fn action(&self, id: i64, s: &Stored) -> (Action, Option<String>) {
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
            cancel_requested_at: later.cancel_requested_at,
            cancel_requested_by: later.cancel_requested_by,
        };
        (action, later.lease_token)
    }

    /// The compact form of `a` (with lease token `token`).
    pub(super) fn compact(&mut self, a: &Action, token: Option<String>) -> Stored {
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
            cancel_requested_at: a.cancel_requested_at,
            cancel_requested_by: a.cancel_requested_by.clone(),
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
    pub(super) fn intern_version(&mut self, version: &str) -> Sym {
        if let Some(last) = self.last_version {
            if self.strings.get(last) == version {
                return last;
            }
        }
        let sym = self.strings.intern(version);
        self.last_version = Some(sym);
        sym
    }

    pub(super) fn event(&self, id: i64, e: &StoredEvent) -> Event {
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
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

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
            cancel_requested_at: Some(at),
            cancel_requested_by: Some("q".into()),
        };
        let stored = inner.compact(&action, Some("tok".into()));
        assert_eq!(inner.action(1, &stored), (action, Some("tok".to_owned())));
    }
}
