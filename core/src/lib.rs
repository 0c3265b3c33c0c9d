//! # actionq — an embeddable remediation action queue
//!
//! actionq decides which whitelisted remediation commands may run on which
//! server, auto-approves them on normal servers, holds them for a human on
//! servers in maintenance mode, and tracks each from request through agent
//! execution to result, with an append-only audit log.
//!
//! Start with [`ActionQueue`]; commands come only from a [`Whitelist`].
//! Storage is pluggable: [`MemoryStore`], or [`SqliteStore`] with the default-on
//! `sqlite` cargo feature. The crate root is the user's API; the storage seam
//! (the [`Store`] trait and the types a backend writer needs) is the [`store`]
//! module, whose docs list every place a new backend touches.
//!
//! Layout: `queue` (the API: every operation once, requests, validation),
//! `actor` (who acts, and the names the queue records on its own), [`limits`] (every named
//! limit and default, which every host takes from there), `rules` (the
//! create rules and the status machine every store applies alike), `store`
//! (the trait) with one module per backend under `store/`, `whitelist`,
//! `model` (the records), [`jobs`] (job leases and delivery cursors), [`identity`] (credentials, roles and the one
//! permission table), `error`, `clock`.
//!
//! Features: `sqlite` (default) — [`SqliteStore`] and [`ActionQueue::open`],
//! through rusqlite with a bundled SQLite; `postgres` — `PostgresStore` and
//! [`ActionQueue::open_location`] on a `postgresql://` URL, through the
//! `postgres` crate and an r2d2 pool, TLS by rustls.
#![warn(missing_docs)]

mod actor;
pub mod audit;
mod clock;
pub mod digest;
mod error;
pub mod identity;
pub mod jobs;
pub mod limits;
mod model;
mod queue;
mod rules;
pub mod signing;
pub mod store;
pub mod whitelist;

pub use actor::{Actor, AGENT, DASHBOARD, SYSTEM};
pub use audit::AuditReport;
pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::{action_digest, ACTION_DIGEST_TAG};
pub use error::{Error, ErrorKind, Result};
pub use identity::{
    check_credential_name, Credential, IssuedCredential, Operation, Principal, Role,
    RESERVED_CREDENTIAL_NAMES,
};
pub use jobs::{Delivery, DeliveryOutcome, JobLease};
pub use limits::DEFAULT_EVENTS_LIMIT;
pub use model::{
    Action, ActionCount, ActionFilter, ActionPage, ActionStatus, Approval, Claim, Event, EventKind,
    ExportedAction, OutputChunk, Server, Timestamp,
};
pub use queue::{
    ActionQuery, ActionQueue, Export, NewAction, PruneReport, QueueOptions, OPERATIONS,
};
pub use rules::{
    AUTO_APPROVED, CANCEL_REQUESTED, LEASE_EXPIRED_STDERR, LEASE_EXPIRED_WITH_CANCEL_STDERR,
    STALE_WHITELIST,
};
pub use signing::{ClaimFields, ClaimSigningKey, ClaimVerifyingKey, CLAIM_SIGNATURE_TAG};
pub use store::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use store::postgres::{PostgresOptions, PostgresStore, PG_SCHEMA_VERSION};
#[cfg(feature = "sqlite")]
pub use store::sqlite::{Durability, SqliteOptions, SqliteStore, SCHEMA_VERSION};
pub use store::{is_postgres_url, Store};
pub use whitelist::{
    ApprovalPolicy, AutoApproveBudget, ConflictPolicy, ParamKind, Whitelist, DEFAULT_WHITELIST_JSON,
};

/// The book's Rust chapter (docs/guide/rust.md): its examples are doctests, so
/// they compile and run as the book shows them (`cargo test --doc BookGuide`).
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/rust.md")]
pub struct BookGuideRust;
