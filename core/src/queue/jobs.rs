//! The operations of background jobs (`crate::jobs`): named job leases and
//! notification delivery cursors. For the host and admins (a server runs
//! its delivery loops as an admin); listed in [`OPERATIONS`](super::OPERATIONS)
//! after the queue's other operations.

use std::time::Duration;

use chrono::TimeDelta;

use super::validation::{cap, check_len};
use super::ActionQueue;
use crate::error::{Error, Result};
use crate::identity::{Operation, Target};
use crate::jobs::{check_sink_name, Delivery, DeliveryOutcome, DeliveryUpdate, JobLease};
use crate::limits;

impl ActionQueue {
    /// Takes the job lease `name` for `holder` (a replica's id) for `ttl`,
    /// or renews it when `holder` has it already. Conflict
    /// `Lease '{name}' is held by '{other}' until {time}` while another
    /// holder's lease runs. InvalidInput for a name or holder that is empty,
    /// too long ([`limits::MAX_LEASE_NAME_CHARS`], [`limits::MAX_NAME_CHARS`])
    /// or holds control characters, and a `ttl` of 0 or over
    /// [`limits::MAX_JOB_LEASE_SECONDS`]. Any job may use one, so that one
    /// replica among several runs it; a delivery's is
    /// [`delivery_lease_name`](crate::jobs::delivery_lease_name).
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = actionq::ActionQueue::in_memory();
    /// let lease = queue.take_lease("pruner", "replica-a", Duration::from_secs(30))?;
    /// assert_eq!(lease.holder, "replica-a");
    /// assert!(queue.take_lease("pruner", "replica-b", Duration::from_secs(30)).is_err());
    /// assert!(queue.release_lease("pruner", "replica-a")?);
    /// queue.take_lease("pruner", "replica-b", Duration::from_secs(30))?;
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn take_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<JobLease> {
        self.allow(Operation::RunJobs, Target::None)?;
        check_len("lease name", name, limits::MAX_LEASE_NAME_CHARS)?;
        check_len("lease holder", holder, limits::MAX_NAME_CHARS)?;
        if ttl.is_zero() || ttl > Duration::from_secs(limits::MAX_JOB_LEASE_SECONDS) {
            return Err(Error::InvalidInput(format!(
                "lease ttl must be more than 0 and at most {} seconds (got {})",
                limits::MAX_JOB_LEASE_SECONDS,
                ttl.as_secs_f64()
            )));
        }
        let now = self.now();
        let ttl = TimeDelta::from_std(ttl).expect("at most an hour");
        let expires_at = crate::clock::to_micros(now + ttl);
        match self.store.take_lease(name, holder, now, expires_at)? {
            Ok(lease) => Ok(lease),
            Err(held) => Err(Error::conflict(format!(
                "Lease '{}' is held by '{}' until {}",
                name.escape_debug(),
                held.holder.escape_debug(),
                held.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ))),
        }
    }

    /// Gives up the job lease `name` if `holder` has it (another replica may
    /// take it at once); whether it did. Same checks as
    /// [`ActionQueue::take_lease`].
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        self.allow(Operation::RunJobs, Target::None)?;
        check_len("lease name", name, limits::MAX_LEASE_NAME_CHARS)?;
        check_len("lease holder", holder, limits::MAX_NAME_CHARS)?;
        self.store.release_lease(name, holder)
    }

    /// The delivery cursor of notification sink `name` (1–64 of
    /// `[a-z0-9_-]`), created at the last event logged when the sink is new,
    /// so a new sink starts at the end of the log; an existing sink keeps
    /// its cursor and takes `kind` (1–[`limits::MAX_NAME_CHARS`] characters).
    pub fn register_delivery(&self, name: &str, kind: &str) -> Result<Delivery> {
        self.allow(Operation::RunJobs, Target::None)?;
        check_sink_name(name)?;
        check_len("sink kind", kind, limits::MAX_NAME_CHARS)?;
        self.store.register_delivery(name, kind)
    }

    /// Records what became of event `event_id` for sink `name`
    /// ([`DeliveryOutcome`]: `sent`, `skipped` and `dead` move the cursor to
    /// it, `failed` counts a try and keeps it), for `holder`, who must hold
    /// the sink's delivery lease. A failure says why (`error`, cut to
    /// [`limits::MAX_DELIVERY_ERROR_CHARS`]; InvalidInput when missing, or
    /// given with another outcome). NotFound for a sink never registered;
    /// Conflict `Lease 'delivery:{name}' is not held by '{holder}'` for a
    /// holder whose lease lapsed or was taken over (so a replica that lost
    /// it never moves the cursor), and `Delivery '{name}' is already past
    /// event {id}` for an event at or before the cursor.
    ///
    /// ```
    /// use std::time::Duration;
    /// use actionq::{jobs::delivery_lease_name, DeliveryOutcome, NewAction};
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.register_delivery("ops", "webhook")?;
    /// queue.create_server("web-1", None)?;
    /// queue.create_action(&NewAction::new("web-1", "clear_logs"))?;
    /// queue.take_lease(&delivery_lease_name("ops"), "replica-a", Duration::from_secs(30))?;
    /// let failed = queue.record_delivery("ops", "replica-a", 1, DeliveryOutcome::Failed, Some("HTTP 500"))?;
    /// assert_eq!((failed.cursor, failed.lag_events, failed.failed), (0, 1, 1));
    /// let sent = queue.record_delivery("ops", "replica-a", 1, DeliveryOutcome::Sent, None)?;
    /// assert_eq!((sent.cursor, sent.lag_events, sent.sent, sent.last_error), (1, 0, 1, None));
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn record_delivery(
        &self,
        name: &str,
        holder: &str,
        event_id: i64,
        outcome: DeliveryOutcome,
        error: Option<&str>,
    ) -> Result<Delivery> {
        self.check_record(name, holder, "event_id", event_id)?;
        match (outcome.is_failure(), error) {
            (true, None) | (true, Some("")) => {
                return Err(Error::InvalidInput(format!(
                    "a '{outcome}' delivery must say why (error)"
                )))
            }
            (false, Some(_)) => {
                return Err(Error::InvalidInput(format!(
                    "a '{outcome}' delivery has no error"
                )))
            }
            _ => {}
        }
        let now = self.now();
        let update = DeliveryUpdate {
            event_id,
            outcome,
            sent: u64::from(outcome == DeliveryOutcome::Sent),
            error: cap(error, limits::MAX_DELIVERY_ERROR_CHARS),
            at: now,
        };
        self.store.record_delivery(name, holder, now, &update)
    }

    /// Records a batch in one write: every event after sink `name`'s cursor
    /// through `through_event_id` was delivered or skipped, `sent` of them
    /// delivered. The cursor moves to `through_event_id` and `sent` counts
    /// them; when `sent` is above 0, `last_error` clears and
    /// `last_success_at` is now, as [`ActionQueue::record_delivery`] does for
    /// one `sent` event (with `sent` 0 it is a skip). Same checks and
    /// errors as [`ActionQueue::record_delivery`]; InvalidInput when `sent`
    /// is more than `through_event_id` (more events than can be).
    ///
    /// ```
    /// use std::time::Duration;
    /// use actionq::{jobs::delivery_lease_name, NewAction};
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.register_delivery("ops", "webhook")?;
    /// queue.create_server("web-1", None)?;
    /// for _ in 0..3 {
    ///     queue.create_action(&NewAction::new("web-1", "clear_logs"))?;
    /// }
    /// queue.take_lease(&delivery_lease_name("ops"), "replica-a", Duration::from_secs(30))?;
    /// let batch = queue.record_sent("ops", "replica-a", 3, 2)?;
    /// assert_eq!((batch.cursor, batch.lag_events, batch.sent), (3, 0, 2));
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn record_sent(
        &self,
        name: &str,
        holder: &str,
        through_event_id: i64,
        sent: i64,
    ) -> Result<Delivery> {
        self.check_record(name, holder, "through_event_id", through_event_id)?;
        if sent < 0 {
            return Err(Error::InvalidInput(format!(
                "sent must be at least 0 (got {sent})"
            )));
        }
        if sent > through_event_id {
            return Err(Error::InvalidInput(format!(
                "sent ({sent}) is more than the events through {through_event_id}"
            )));
        }
        let now = self.now();
        let update = DeliveryUpdate {
            event_id: through_event_id,
            outcome: if sent > 0 {
                DeliveryOutcome::Sent
            } else {
                DeliveryOutcome::Skipped
            },
            sent: sent as u64,
            error: None,
            at: now,
        };
        self.store.record_delivery(name, holder, now, &update)
    }

    /// The checks a record of sink `name`'s deliveries starts with: the
    /// role, the names, and the event id (`field`) at least 1.
    fn check_record(&self, name: &str, holder: &str, field: &str, event_id: i64) -> Result<()> {
        self.allow(Operation::RunJobs, Target::None)?;
        check_sink_name(name)?;
        check_len("lease holder", holder, limits::MAX_NAME_CHARS)?;
        if event_id < 1 {
            return Err(Error::InvalidInput(format!(
                "{field} must be at least 1 (got {event_id})"
            )));
        }
        Ok(())
    }

    /// Every sink's delivery cursor, by name, with how far it lags the log.
    pub fn list_deliveries(&self) -> Result<Vec<Delivery>> {
        self.allow(Operation::RunJobs, Target::None)?;
        self.store.list_deliveries()
    }
}
