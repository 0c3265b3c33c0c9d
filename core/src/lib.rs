//! # actionq — an embeddable remediation action queue
//!
//! actionq decides which whitelisted remediation commands may run on which
//! server, auto-approves them on normal servers, holds them for a human on
//! servers in maintenance mode, and tracks each from request through agent
//! execution to result, with an append-only audit log.
//!
//! Start with [`ActionQueue`]; storage is pluggable through [`Store`]
//! ([`MemoryStore`], [`SqliteStore`]); commands come only from a [`Whitelist`].
#![warn(missing_docs)]

mod clock;
mod error;
mod memory;
mod model;
mod queue;
mod sqlite;
mod store;
pub mod whitelist;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use memory::MemoryStore;
pub use model::{Action, ActionFilter, ActionPage, ActionStatus, Claim, Event, Server, Timestamp};
pub use queue::{
    ActionQuery, ActionQueue, NewAction, QueueOptions, AGENT, DASHBOARD, DEFAULT_EVENTS_LIMIT,
    SYSTEM,
};
pub use sqlite::{Durability, SqliteOptions, SqliteStore, SCHEMA_VERSION};
pub use store::{
    ActionDraft, Change, ChangeKind, ConflictGuard, EventDraft, PageRequest, Store, AUTO_APPROVED,
    LEASE_EXPIRED_STDERR,
};
pub use whitelist::{ConflictPolicy, ParamKind, Whitelist, DEFAULT_WHITELIST_JSON};
