//! The core's limits and defaults as header macros (`AQ_*`). cbindgen writes
//! only literal values, so each is written here once more and checked against
//! `actionq::limits` at compile time: the crate does not build if they differ.

use actionq::limits;

/// Page size of `aq_action_list` / `aq_server_list_actions` the HTTP API and
/// Python use when the caller names none (C callers always pass a limit).
pub const AQ_DEFAULT_PAGE_LIMIT: i64 = 50;
/// Largest `limit` of a listing.
pub const AQ_MAX_PAGE_LIMIT: i64 = 100;
/// Events the HTTP API and Python return when the caller names no limit.
pub const AQ_DEFAULT_EVENTS_LIMIT: i64 = 100;
/// Largest `limit` of `aq_event_list`.
pub const AQ_MAX_EVENTS_LIMIT: i64 = 1000;
/// Longest server id, in characters.
pub const AQ_MAX_SERVER_ID_CHARS: usize = 100;
/// Longest name (a credential's, or one the trusted host acts for), in characters.
pub const AQ_MAX_NAME_CHARS: usize = 100;
/// Longest rejection reason, in characters.
pub const AQ_MAX_REASON_CHARS: usize = 1000;
/// Characters of `stdout`/`stderr` a result keeps by default.
pub const AQ_DEFAULT_OUTPUT_CAP_CHARS: usize = 10_000;
/// Lease (seconds) a claim or heartbeat gets when its `lease_seconds` is NULL.
pub const AQ_DEFAULT_LEASE_SECONDS: u64 = 300;
/// Longest lease (seconds) a caller may ask for by default.
pub const AQ_DEFAULT_MAX_LEASE_SECONDS: u64 = 86_400;
/// Whether reads expire lost leases first, by default (see
/// `aq_options_set_expire_leases_on_read`).
pub const AQ_DEFAULT_EXPIRE_LEASES_ON_READ: bool = true;
/// How long (seconds) a SQLite write waits for another connection's lock by default.
pub const AQ_DEFAULT_BUSY_TIMEOUT_SECONDS: u64 = 10;
/// Longest wait (seconds) of `aq_action_claim_next_wait` and `aq_event_list_wait`.
pub const AQ_MAX_WAIT_SECONDS: u64 = 60;
/// Longest job lease (seconds) `aq_lease_take` gives at once.
pub const AQ_MAX_JOB_LEASE_SECONDS: u64 = 3600;
/// Longest notification sink name, in characters.
pub const AQ_MAX_SINK_NAME_CHARS: usize = 64;

const _: () = {
    assert!(AQ_DEFAULT_PAGE_LIMIT == limits::DEFAULT_PAGE_LIMIT);
    assert!(AQ_MAX_PAGE_LIMIT == limits::MAX_PAGE_LIMIT);
    assert!(AQ_DEFAULT_EVENTS_LIMIT == limits::DEFAULT_EVENTS_LIMIT);
    assert!(AQ_MAX_EVENTS_LIMIT == limits::MAX_EVENTS_LIMIT);
    assert!(AQ_MAX_SERVER_ID_CHARS == limits::MAX_SERVER_ID_CHARS);
    assert!(AQ_MAX_NAME_CHARS == limits::MAX_NAME_CHARS);
    assert!(AQ_MAX_REASON_CHARS == limits::MAX_REASON_CHARS);
    assert!(AQ_DEFAULT_OUTPUT_CAP_CHARS == limits::DEFAULT_OUTPUT_CAP_CHARS);
    assert!(AQ_DEFAULT_LEASE_SECONDS == limits::DEFAULT_LEASE_SECONDS);
    assert!(AQ_DEFAULT_MAX_LEASE_SECONDS == limits::DEFAULT_MAX_LEASE_SECONDS);
    assert!(AQ_DEFAULT_EXPIRE_LEASES_ON_READ == limits::DEFAULT_EXPIRE_LEASES_ON_READ);
    assert!(AQ_DEFAULT_BUSY_TIMEOUT_SECONDS == limits::DEFAULT_BUSY_TIMEOUT_SECONDS);
    assert!(AQ_MAX_WAIT_SECONDS == limits::MAX_WAIT_SECONDS);
    assert!(AQ_MAX_JOB_LEASE_SECONDS == limits::MAX_JOB_LEASE_SECONDS);
    assert!(AQ_MAX_SINK_NAME_CHARS == limits::MAX_SINK_NAME_CHARS);
};
