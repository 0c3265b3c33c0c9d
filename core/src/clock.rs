//! Injectable time, so leases and timestamps are testable.

use std::sync::Mutex;

use chrono::{DurationRound, TimeDelta, Utc};

use crate::error::{Error, Result};
use crate::model::Timestamp;

/// A source of the current time. Implementations must be cheap and thread-safe.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC, truncated to microseconds.
    fn now(&self) -> Timestamp;
}

/// Truncates to the microsecond precision every store keeps.
pub(crate) fn to_micros(t: Timestamp) -> Timestamp {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        to_micros(Utc::now())
    }
}

/// A clock that only moves when told to: for tests and simulations.
///
/// ```
/// use actionq::{Clock, ManualClock};
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
/// clock.advance(chrono::TimeDelta::seconds(30));
/// assert_eq!(clock.now().to_rfc3339(), "2026-01-01T00:00:30+00:00");
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: Mutex::new(to_micros(start)),
        }
    }

    /// Moves the clock forward (or back, for a negative delta).
    pub fn advance(&self, delta: TimeDelta) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = to_micros(*now + delta);
    }

    /// Moves the clock by `seconds` (fractions to the microsecond; back, if
    /// negative), the unit hosts pass durations in. A value that is not finite,
    /// or moves the clock out of range, is InvalidInput and leaves it alone.
    pub fn advance_seconds(&self, seconds: f64) -> Result<()> {
        let refused = || {
            Error::InvalidInput(format!(
                "seconds must be a finite number of seconds that keeps the clock in range (got {seconds})"
            ))
        };
        let micros = seconds * 1e6;
        if !micros.is_finite() || micros.abs() >= i64::MAX as f64 {
            return Err(refused());
        }
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = now
            .checked_add_signed(TimeDelta::microseconds(micros.round() as i64))
            .ok_or_else(refused)?;
        Ok(())
    }

    /// Sets the clock.
    pub fn set(&self, t: Timestamp) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to_micros(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}
