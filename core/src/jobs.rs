//! Background jobs kept in the queue (`docs/contract/notifications.md#delivery`):
//! named [`JobLease`]s, so one replica among several runs a job, and the
//! [`Delivery`] cursors of notification sinks, so a restart resumes where
//! the last delivery stopped.
//!
//! A job lease is a row `{name, holder, expires_at}`: taking it succeeds when
//! it is free, expired, or already the caller's (a renewal). A delivery's
//! cursor moves only for the holder of the delivery's lease
//! ([`delivery_lease_name`]), checked in the same atomic step as the move: a
//! replica whose lease ran out (and was taken over) cannot move the cursor
//! back or record over the new holder's work.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::limits;
use crate::model::{wire_time, Timestamp};

/// A named lease on a background job, held by one holder until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobLease {
    /// The job's name (`delivery:<sink>` for a notification sink).
    pub name: String,
    /// Who holds it (a replica's id).
    pub holder: String,
    /// When it lapses unless renewed.
    #[serde(serialize_with = "wire_time::serialize")]
    pub expires_at: Timestamp,
}

/// The name of the job lease that guards sink `sink`'s delivery cursor.
pub fn delivery_lease_name(sink: &str) -> String {
    format!("delivery:{sink}")
}

/// What became of one event sent (or not) to a sink
/// ([`ActionQueue::record_delivery`](crate::ActionQueue::record_delivery)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// Not for this sink (its filters): the cursor passes it, nothing is counted.
    Skipped,
    /// Delivered: the cursor passes it, `sent` counts it, `last_error` clears.
    Sent,
    /// One try failed: the cursor stays, `failed` counts it, `last_error` keeps why.
    Failed,
    /// Given up on after its retries: the cursor passes it, `failed` and
    /// `dead` count it, `last_error` keeps why.
    Dead,
}

impl DeliveryOutcome {
    /// Every outcome.
    pub const ALL: [DeliveryOutcome; 4] = [
        DeliveryOutcome::Skipped,
        DeliveryOutcome::Sent,
        DeliveryOutcome::Failed,
        DeliveryOutcome::Dead,
    ];

    /// Its name in every host: `skipped`, `sent`, `failed`, `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Skipped => "skipped",
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Dead => "dead",
        }
    }

    /// Whether the cursor moves past the event.
    pub fn passes(self) -> bool {
        self != DeliveryOutcome::Failed
    }

    /// Whether the outcome is a failure, which must say why.
    pub fn is_failure(self) -> bool {
        matches!(self, DeliveryOutcome::Failed | DeliveryOutcome::Dead)
    }
}

impl fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryOutcome {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        DeliveryOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "Invalid delivery outcome '{}' (must be one of: skipped, sent, failed, dead)",
                    s.escape_debug()
                ))
            })
    }
}

/// The delivery cursor of one notification sink, with how far it lags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The sink's name.
    pub name: String,
    /// Its kind (`webhook`, `apprise`), as registered.
    pub kind: String,
    /// The id of the last event delivered, skipped or dead-lettered.
    pub cursor: i64,
    /// Events logged after the cursor.
    pub lag_events: u64,
    /// When the oldest event after the cursor was logged; `None` when none is.
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub oldest_pending_at: Option<Timestamp>,
    /// Messages delivered.
    pub sent: u64,
    /// Tries that failed (every retry counts).
    pub failed: u64,
    /// Messages given up on (dead-lettered).
    pub dead: u64,
    /// Why the last try failed, until a message is delivered again.
    pub last_error: Option<String>,
    /// When a message was last delivered.
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub last_success_at: Option<Timestamp>,
}

/// What one recorded outcome does to a cursor: the rules every store applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    /// The event the outcome is about; it must lie after the cursor.
    pub event_id: i64,
    /// The outcome.
    pub outcome: DeliveryOutcome,
    /// Messages delivered: 1 for a `Sent` outcome of one event, a batch's
    /// count for [`ActionQueue::record_sent`](crate::ActionQueue::record_sent),
    /// else 0.
    pub sent: u64,
    /// Why it failed (a failure only), cut to [`limits::MAX_DELIVERY_ERROR_CHARS`].
    pub error: Option<String>,
    /// When it was recorded.
    pub at: Timestamp,
}

impl DeliveryUpdate {
    /// The cursor after the update.
    pub fn cursor(&self, before: i64) -> i64 {
        if self.outcome.passes() {
            self.event_id
        } else {
            before
        }
    }

    /// Counts added: (sent, failed, dead).
    pub fn counts(&self) -> (u64, u64, u64) {
        match self.outcome {
            DeliveryOutcome::Skipped => (0, 0, 0),
            DeliveryOutcome::Sent => (self.sent, 0, 0),
            DeliveryOutcome::Failed => (0, 1, 0),
            DeliveryOutcome::Dead => (0, 1, 1),
        }
    }

    /// `last_error` after the update: a failure's reason, cleared by a
    /// delivery, kept by a skip.
    pub fn last_error(&self, before: Option<&str>) -> Option<String> {
        match self.outcome {
            DeliveryOutcome::Skipped => before.map(str::to_owned),
            DeliveryOutcome::Sent => None,
            DeliveryOutcome::Failed | DeliveryOutcome::Dead => self.error.clone(),
        }
    }

    /// `last_success_at` after the update.
    pub fn last_success_at(&self, before: Option<Timestamp>) -> Option<Timestamp> {
        match self.outcome {
            DeliveryOutcome::Sent => Some(self.at),
            _ => before,
        }
    }
}

/// Why a store refused to record a delivery.
pub(crate) fn lease_not_held(name: &str, holder: &str) -> Error {
    Error::conflict(format!(
        "Lease '{}' is not held by '{}'",
        name.escape_debug(),
        holder.escape_debug()
    ))
}

/// Conflict for an outcome about an event the cursor already passed.
pub(crate) fn already_past(sink: &str, cursor: i64, event_id: i64) -> Error {
    Error::conflict(format!(
        "Delivery '{sink}' is already past event {event_id} (cursor {cursor})"
    ))
}

/// NotFound for a sink never registered.
pub(crate) fn no_delivery(sink: &str) -> Error {
    Error::NotFound(format!("Delivery '{}' not found", sink.escape_debug()))
}

/// InvalidInput unless `name` is a sink name: 1–64 of `[a-z0-9_-]`.
pub fn check_sink_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= limits::MAX_SINK_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "Invalid sink name '{}' (1-{} characters of a-z, 0-9, '_' and '-')",
            name.escape_debug(),
            limits::MAX_SINK_NAME_CHARS
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_parse_by_name() {
        for outcome in DeliveryOutcome::ALL {
            assert_eq!(
                outcome.as_str().parse::<DeliveryOutcome>().unwrap(),
                outcome
            );
        }
        assert!("delivered".parse::<DeliveryOutcome>().is_err());
    }

    #[test]
    fn sink_names() {
        assert!(check_sink_name("ops_1-a").is_ok());
        for bad in ["", "Ops", "a b", "é", &"a".repeat(65)] {
            assert!(check_sink_name(bad).is_err(), "{bad}");
        }
    }
}
