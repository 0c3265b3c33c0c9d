//! Who performs an operation, and the names the queue records on its own.
//!
//! Every operation of [`ActionQueue`](crate::ActionQueue) runs as the queue's
//! [`Actor`]: the trusted host (the default), the host acting for a name it
//! vouches for ([`ActionQueue::by`](crate::ActionQueue::by)), or an
//! authenticated [`Principal`] checked against the permission table
//! ([`ActionQueue::as_principal`](crate::ActionQueue::as_principal)).

use crate::error::{Error, Result};
use crate::identity::Principal;
use crate::limits;

/// Recorded for the trusted host's requests and decisions (`created_by`,
/// `approved_by`, pause events) when it names nobody else.
pub const DASHBOARD: &str = "dashboard";
/// Recorded for the trusted host's agent-side operations (claim, heartbeat, result).
pub const AGENT: &str = "agent";
/// Recorded for what the queue does on its own clock (lease and approval expiry).
pub const SYSTEM: &str = "system";
/// Recorded as the approver of an action approved by policy, not by a person.
pub(crate) const AUTO: &str = "auto";

/// Names no credential may take (in any case): the queue records them on its
/// own, so a principal called `system` could pass for the queue itself.
pub const RESERVED_CREDENTIAL_NAMES: [&str; 4] = [AGENT, AUTO, SYSTEM, DASHBOARD];

/// Who performs an operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Actor {
    /// The trusted host itself: nothing is checked, and each operation records
    /// its own default name ([`DASHBOARD`] for requests and decisions,
    /// [`AGENT`] for the agent side, `created_by` from the request).
    #[default]
    Host,
    /// The trusted host acting for a name it vouches for (its own login,
    /// say): nothing is checked, and the name is recorded.
    Trusted(String),
    /// An authenticated principal: the permission table decides first, and
    /// the principal's name is recorded.
    Principal(Principal),
}

impl Actor {
    /// The trusted host acting for `name`: InvalidInput for a name that is
    /// empty, longer than [`limits::MAX_NAME_CHARS`] or holds control
    /// characters.
    pub fn trusted(name: &str) -> Result<Actor> {
        crate::queue::check_len("actor", name, limits::MAX_NAME_CHARS)?;
        Ok(Actor::Trusted(name.to_owned()))
    }

    /// This actor acting for the trusted name `name`: what
    /// [`ActionQueue::by`](crate::ActionQueue::by) makes of its queue's actor.
    /// InvalidInput for a principal (whose own name is what is recorded; a
    /// principal never becomes trusted) and for a name [`Actor::trusted`]
    /// refuses.
    pub fn by(&self, name: &str) -> Result<Actor> {
        if let Actor::Principal(principal) = self {
            return Err(Error::InvalidInput(format!(
                "a queue acting as principal '{}' records that name; it cannot act for '{}'",
                principal.name.escape_debug(),
                name.escape_debug()
            )));
        }
        Actor::trusted(name)
    }

    /// The name recorded for an operation whose trusted default is `default`.
    pub(crate) fn recorded_name<'a>(&'a self, default: &'a str) -> &'a str {
        match self {
            Actor::Host => default,
            Actor::Trusted(name) => name,
            Actor::Principal(principal) => &principal.name,
        }
    }

    /// The principal, when the actor is one.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Actor::Principal(principal) => Some(principal),
            Actor::Host | Actor::Trusted(_) => None,
        }
    }
}
