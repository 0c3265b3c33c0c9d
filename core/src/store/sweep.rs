//! The shape every expiry sweep shares (leases run out, approvals waited too
//! long): look without the write lock, then lock and re-check. Backends
//! supply the row access ([`Sweep`]); the order of the steps lives here once.

use crate::error::Result;
use crate::model::{Action, Timestamp};
use crate::store::Change;

/// What a sweep expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due<'a> {
    /// Executing actions whose lease ran out by this instant
    /// ([`Store::expire_leases`](crate::Store::expire_leases)).
    Leases(Timestamp),
    /// Pending actions of `action_type` created at or before `created_until`
    /// ([`Store::expire_approvals`](crate::Store::expire_approvals)).
    Approvals {
        /// The whitelist entry whose approvals have a time to live.
        action_type: &'a str,
        /// The newest creation time already expired.
        created_until: Timestamp,
    },
}

impl Due<'_> {
    /// The operation's name, for errors.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn what(self) -> &'static str {
        match self {
            Due::Leases(_) => "expire leases",
            Due::Approvals { .. } => "expire approvals",
        }
    }
}

/// The row access of one backend's sweeps.
pub(crate) trait Sweep {
    /// Whether anything may be due, looked up without the write lock: a
    /// stale answer only delays a sweep to the next one.
    fn any_due(&self, due: Due<'_>) -> Result<bool>;

    /// Under the write lock, in one atomic step: selects what is due now
    /// (again: a lease extended or an action decided since the look no
    /// longer matches), applies `change` to each by id order through the
    /// rules, and returns the results.
    fn expire_due(&self, due: Due<'_>, change: &Change) -> Result<Vec<Action>>;
}

/// Expires what `due` selects with `change`. Hosts sweep before reads and
/// claims and there is rarely anything due, so the write lock is taken only
/// once a look without it found something; one that falls due after the
/// look is caught by the next sweep.
pub(crate) fn sweep(store: &impl Sweep, due: Due<'_>, change: &Change) -> Result<Vec<Action>> {
    if !store.any_due(due)? {
        return Ok(Vec::new());
    }
    store.expire_due(due, change)
}
