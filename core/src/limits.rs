//! Every named limit and default of actionq, in one place.
//!
//! The queue checks its input against these, [`QueueOptions::default`] and
//! [`SqliteOptions::default`](crate::SqliteOptions) are built from them, and
//! every host takes them from here instead of restating them: the Python
//! package as `actionq.limits`, the C header as `AQ_*` macros (checked against
//! these at compile time), the HTTP server's query defaults and descriptions.
//!
//! Units and meanings are the same in every host:
//! - durations are **seconds** (a `Duration` in Rust, a float in Python and in
//!   C, a number in HTTP bodies);
//! - "the default" is always spelled by leaving the value out (`None` in Rust
//!   and Python, `NULL` in C, an absent key in HTTP), never by `0`;
//! - a lease of 0 seconds is InvalidInput everywhere (it would expire at once);
//! - a setting of 0 means zero: an output cap of 0 keeps no output, a busy
//!   timeout of 0 fails at once when another connection holds the lock.
//!
//! [`QueueOptions::default`]: crate::QueueOptions

use std::time::Duration;

use crate::error::{Error, Result};

/// Page size of a listing when the caller names none.
pub const DEFAULT_PAGE_LIMIT: i64 = 50;
/// Largest page of a listing.
pub const MAX_PAGE_LIMIT: i64 = 100;
/// Events returned by `events_since` when the caller names no limit.
pub const DEFAULT_EVENTS_LIMIT: i64 = 100;
/// Largest `events_since` limit.
pub const MAX_EVENTS_LIMIT: i64 = 1000;
/// Most events one prune batch deletes (with their actions) in one write
/// transaction: the longest any writer waits behind a prune
/// (`docs/contract/retention.md`). A batch may go past it only to take
/// the rest of an action whose events it already holds.
pub const PRUNE_BATCH_EVENTS: u32 = 256;
/// Most events a prune batch reads past [`PRUNE_BATCH_EVENTS`] looking for
/// the end of an action whose events interleave with others'; a batch that
/// finds none stops the prune there (the next run tries again).
pub const PRUNE_SCAN_EVENTS: u32 = 100_000;
/// How many times a batch's own time a prune pauses after it when other
/// writers wrote since the batch before: a prune then takes about 1 % of a
/// busy store (a writer's p99 during a prune stays near its p99 without
/// one) and runs at full speed on an idle one (`docs/contract/retention.md`).
pub const PRUNE_YIELD_FACTOR: u32 = 99;
/// The longest pause between two prune batches (a batch slowed by a stall
/// must not hold the prune back for minutes).
pub const PRUNE_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
/// Largest `older_than_seconds` a prune accepts (about 1000 years): larger
/// values would overflow the clock and prune nothing anyway.
pub const MAX_PRUNE_AGE_SECONDS: i64 = 1000 * 366 * 86_400;
/// Longest server id, in characters (bytes: ids are ASCII).
pub const MAX_SERVER_ID_CHARS: usize = 100;
/// Longest hostname, in characters.
pub const MAX_HOSTNAME_CHARS: usize = 255;
/// Longest action type name, requester (`created_by`) or actor (`by`), in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest rejection reason, in characters (at least 1 is required).
pub const MAX_REASON_CHARS: usize = 1000;
/// Most approvals a whitelist entry's policy may require (`approval.required`).
pub const MAX_REQUIRED_APPROVALS: u32 = 10;
/// Longest approval expiry or budget window a policy may set (366 days).
pub const MAX_POLICY_SECONDS: u64 = 366 * 24 * 3600;

/// Longest credential secret accepted for authentication, in bytes (issued
/// secrets are 49); anything longer is refused before it is hashed.
pub const MAX_SECRET_BYTES: usize = 256;
/// Largest HTTP request body a web host reads, in bytes (1 MiB): a result's
/// output is capped anyway, so nothing legitimate is larger.
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;

/// Longest name of a job lease (`take_lease`), in characters.
pub const MAX_LEASE_NAME_CHARS: usize = 128;
/// Longest job lease a caller may take at once, in seconds (it renews it).
pub const MAX_JOB_LEASE_SECONDS: u64 = 3600;
/// Longest notification sink name (`[a-z0-9_-]`), in characters.
pub const MAX_SINK_NAME_CHARS: usize = 64;
/// Characters of a delivery's error a cursor keeps (`last_error`); longer ones are cut.
pub const MAX_DELIVERY_ERROR_CHARS: usize = 500;
/// How long a notification is retried before it is dead-lettered, when a
/// sink names no `max_age_seconds` (one day).
pub const DEFAULT_NOTIFY_MAX_AGE_SECONDS: u64 = 24 * 3600;
/// The first retry delay of a failed notification; each retry doubles it.
pub const NOTIFY_RETRY_FIRST_SECONDS: u64 = 1;
/// The longest retry delay of a failed notification (10 minutes).
pub const NOTIFY_RETRY_MAX_SECONDS: u64 = 600;

/// Characters of `stdout`/`stderr` a result keeps by default.
pub const DEFAULT_OUTPUT_CAP_CHARS: usize = 10_000;
/// Lease given by a claim or heartbeat that names none, in seconds.
pub const DEFAULT_LEASE_SECONDS: u64 = 300;
/// Longest lease a caller may ask for by default, in seconds.
pub const DEFAULT_MAX_LEASE_SECONDS: u64 = 24 * 3600;
/// Longest wait of `claim_next` and `events_since`, in seconds
/// (`docs/contract/push.md`); 0, the default, answers at once.
pub const MAX_WAIT_SECONDS: u64 = 60;
/// [`MAX_WAIT_SECONDS`] as a `Duration`.
pub const MAX_WAIT: Duration = Duration::from_secs(MAX_WAIT_SECONDS);

/// Whether reads first fail the actions whose lease ran out (default: yes, as
/// `docs/contract/queries.md#reads-see-expiries` asks: no read ever shows an
/// action `executing` past its lease).
pub const DEFAULT_EXPIRE_LEASES_ON_READ: bool = true;

/// How long a SQLite write waits for another connection's lock by default, in seconds.
pub const DEFAULT_BUSY_TIMEOUT_SECONDS: u64 = 10;
/// Read connections of a SQLite store by default.
pub const DEFAULT_READ_CONNECTIONS: usize = 4;
/// Connections in a PostgreSQL store's pool by default.
pub const DEFAULT_PG_POOL_SIZE: u32 = 8;
/// How long a PostgreSQL statement waits for a row lock by default, in seconds
/// (its `lock_timeout`).
pub const DEFAULT_PG_LOCK_TIMEOUT_SECONDS: u64 = 10;
/// How long connecting to PostgreSQL, or waiting for a free pooled
/// connection, may take by default, in seconds.
pub const DEFAULT_PG_CONNECT_TIMEOUT_SECONDS: u64 = 10;

/// [`DEFAULT_LEASE_SECONDS`] as a `Duration`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(DEFAULT_LEASE_SECONDS);
/// [`DEFAULT_MAX_LEASE_SECONDS`] as a `Duration`.
pub const DEFAULT_MAX_LEASE: Duration = Duration::from_secs(DEFAULT_MAX_LEASE_SECONDS);
/// [`DEFAULT_BUSY_TIMEOUT_SECONDS`] as a `Duration`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(DEFAULT_BUSY_TIMEOUT_SECONDS);
/// [`DEFAULT_PG_LOCK_TIMEOUT_SECONDS`] as a `Duration`.
pub const DEFAULT_PG_LOCK_TIMEOUT: Duration = Duration::from_secs(DEFAULT_PG_LOCK_TIMEOUT_SECONDS);
/// [`DEFAULT_PG_CONNECT_TIMEOUT_SECONDS`] as a `Duration`.
pub const DEFAULT_PG_CONNECT_TIMEOUT: Duration =
    Duration::from_secs(DEFAULT_PG_CONNECT_TIMEOUT_SECONDS);

/// A setting given in seconds by a host (Python float, C `double`) as a
/// `Duration`: InvalidInput naming `name` unless it is finite and ≥ 0.
///
/// ```
/// use std::time::Duration;
/// use actionq::limits::setting_seconds;
///
/// assert_eq!(setting_seconds("busy_timeout_seconds", 0.5)?, Duration::from_millis(500));
/// assert!(setting_seconds("busy_timeout_seconds", -1.0).is_err());
/// # Ok::<(), actionq::Error>(())
/// ```
pub fn setting_seconds(name: &str, seconds: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        Error::InvalidInput(format!(
            "{name} must be a finite number of seconds >= 0 (got {seconds})"
        ))
    })
}

/// A wait given in seconds by a host, as the `Duration` the queue takes:
/// InvalidInput unless it is between 0 and [`MAX_WAIT_SECONDS`] (the same
/// message as the queue's own check).
///
/// ```
/// use std::time::Duration;
/// use actionq::limits::wait_seconds;
///
/// assert_eq!(wait_seconds(0.25)?, Duration::from_millis(250));
/// assert!(wait_seconds(-1.0).is_err());
/// assert!(wait_seconds(60.5).is_err());
/// # Ok::<(), actionq::Error>(())
/// ```
pub fn wait_seconds(seconds: f64) -> Result<Duration> {
    match Duration::try_from_secs_f64(seconds) {
        Ok(wait) if wait <= MAX_WAIT => Ok(wait),
        _ => Err(wait_out_of_range(seconds)),
    }
}

/// The InvalidInput for a wait outside `0..=`[`MAX_WAIT_SECONDS`].
pub(crate) fn wait_out_of_range(seconds: f64) -> Error {
    Error::InvalidInput(format!(
        "wait must be between 0 and {MAX_WAIT_SECONDS} seconds (got {seconds})"
    ))
}

/// A lease given in seconds by a host, as the `Duration` the queue checks.
/// Values a `Duration` cannot hold become the nearest one the queue refuses
/// (zero for `<= 0` or NaN, the maximum for overflow), so every host gets the
/// queue's own InvalidInput message for them.
///
/// ```
/// use std::time::Duration;
/// use actionq::limits::lease_seconds;
///
/// assert_eq!(lease_seconds(30.0), Duration::from_secs(30));
/// assert_eq!(lease_seconds(-1.0), Duration::ZERO);
/// ```
pub fn lease_seconds(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}
