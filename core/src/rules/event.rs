//! What the audit log records: an [`EventDraft`], and the events of changes
//! that are not an action's (a pause, a credential issued or revoked).

use crate::model::{ActionStatus, EventKind, Timestamp};

/// An audit event not yet stored (the store assigns the cursor id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// What the event is about.
    pub kind: EventKind,
    /// The server id (action and server events) or credential name.
    pub subject: String,
    /// The action that changed (action events only).
    pub action_id: Option<i64>,
    /// Previous status; `None` on creation and for other kinds.
    pub from_status: Option<ActionStatus>,
    /// New status (action events only).
    pub to_status: Option<ActionStatus>,
    /// Who made the change.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Extra detail.
    pub detail: Option<String>,
    /// The action digest the event vouches for, chained with it but not
    /// shown: the action's on its creation event, the approved one on an
    /// approval. Stored beside the event (see [`crate::audit`]).
    pub digest: Option<String>,
}

impl EventDraft {
    /// The event of `by` pausing (or unpausing) server `server_id` at `at`;
    /// stores log it only when the state changed.
    pub fn server_paused(server_id: &str, paused: bool, by: &str, at: Timestamp) -> EventDraft {
        EventDraft {
            kind: EventKind::Server,
            subject: server_id.to_owned(),
            action_id: None,
            from_status: None,
            to_status: None,
            by: by.to_owned(),
            at,
            detail: Some(if paused { "paused" } else { "unpaused" }.to_owned()),
            digest: None,
        }
    }

    /// The event of `by` issuing (`detail` `"issued <role>[ for server <id>]"`)
    /// or revoking ("revoked") credential `name` at `at`.
    pub fn credential(name: &str, detail: String, by: &str, at: Timestamp) -> EventDraft {
        EventDraft {
            kind: EventKind::Credential,
            subject: name.to_owned(),
            action_id: None,
            from_status: None,
            to_status: None,
            by: by.to_owned(),
            at,
            detail: Some(detail),
            digest: None,
        }
    }
}
