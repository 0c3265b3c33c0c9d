//! [`PostgresStore`]: a store in a PostgreSQL database, shared by any number
//! of processes and machines.
//!
//! # Locking and id order
//!
//! Transactions run at READ COMMITTED and lock only what they change:
//! a create locks its server's row (`FOR NO KEY UPDATE`: creates for one
//! server queue, so the conflict check, the count of the auto-approval budget
//! and the insert are one step, and a pause is seen whole), an update locks its action's row (`FOR UPDATE`), a claim
//! takes the oldest approved row of the server that nobody else holds
//! (`FOR UPDATE SKIP LOCKED`). Listing totals live in `action_counts`, one row
//! per (server, type, status), updated in one sorted statement per transaction.
//!
//! Action and event ids are **not** taken from sequences: a sequence hands
//! out ids at insert time, and transactions commit in another order, so a
//! reader could see event 11 before event 10 commits and step its cursor past
//! 10 for ever. Instead the one row of `actionq_ids` is bumped by the *last*
//! statements of every transaction that logs events: a `SELECT ... FOR UPDATE`
//! of the row, then one statement that inserts the events (and a created
//! action) and moves the row. Its row lock is held from the first of those to
//! the end of the commit, so ids are assigned in commit order and an id is
//! visible only after every smaller one: `events_since` can read `id > cursor`
//! and never skip. The lock is taken after all other locks of the transaction
//! (server, action, counts), so it is held only for two statements and the
//! commit, not for the whole transaction, and no transaction ever waits for a
//! lock while holding it (no deadlock through it).
//!
//! The audit chain's head is in the same row: `last_event_id` and
//! `head_hash`. Each event's hash needs the hash before it, so the chain
//! serializes appends; reading the head under the same late lock makes chain
//! order the commit order (and the id order) while transactions for
//! different servers still overlap in everything else. The hashes are
//! computed in Rust between the lock and the insert.
//!
//! Lock order, the same in every transaction: server row, then action rows by
//! id, then `action_counts` rows sorted by key, then `actionq_ids`.
//!
//! By concern, as in the other backends: this file holds the pool, the
//! transaction runner (retries, the error mapping) and the [`Store`] impl;
//! `options` reads the URL and TLS, `connection` is one pooled connection,
//! `schema` migrates, `rows` converts records, and `servers`, `actions`,
//! `events`, `credentials` hold the statements of each table.

mod actions;
mod connection;
mod credentials;
mod events;
mod jobs;
mod options;
mod output;
#[cfg(test)]
mod plans;
mod retention;
mod rows;
mod schema;
mod servers;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;

use connection::{Conn, Manager};

use crate::error::{Error, Result};
use crate::identity::{Credential, CredentialDraft};
use crate::model::{Action, ActionCount, ActionFilter, Event, Server, Timestamp};
use crate::store::sweep::{sweep, Due, Sweep};
use crate::store::wake::{Touched, Watcher};
use crate::store::{
    ActionDraft, AuditReport, Change, ConflictGuard, Delivery, DeliveryUpdate, JobLease, Notifier,
    PageRequest, PruneCheckpoint, Store,
};

pub use options::PostgresOptions;
pub use schema::PG_SCHEMA_VERSION;

/// How often a transaction that lost a deadlock or serialization race, or met
/// a dropped pooled connection before doing anything, is tried again.
const RETRIES: usize = 5;

/// The Storage error for a `postgres` failure during `context` (an operation
/// name such as "create action"). The only mapping from a PostgreSQL error.
fn storage(context: &str, e: postgres::Error) -> Error {
    let Some(db) = e.as_db_error() else {
        // The cause (refused connection, TLS certificate, ...) is in the
        // source chain, not in the top error's text.
        let mut message = format!("{context}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        return Error::Storage(message);
    };
    let code = db.code();
    if *code == SqlState::LOCK_NOT_AVAILABLE {
        Error::Busy(format!(
            "{context}: lock_timeout exceeded waiting for a lock held by another connection (SQLSTATE 55P03 lock_not_available: {})",
            db.message()
        ))
    } else if *code == SqlState::QUERY_CANCELED {
        Error::Storage(format!(
            "{context}: statement cancelled, statement_timeout exceeded or cancel requested (SQLSTATE 57014 query_canceled: {})",
            db.message()
        ))
    } else {
        Error::Storage(format!(
            "{context}: {} (SQLSTATE {})",
            db.message(),
            code.code()
        ))
    }
}

/// What went wrong inside a transaction: a result to hand back, or a
/// database failure that may call for a retry.
enum Failure {
    /// A business answer (NotFound, Conflict) or a non-database error.
    Done(Error),
    /// A database error, with the operation it happened in.
    Db(String, postgres::Error),
}

/// What a function of a transaction returns.
type Out<T> = std::result::Result<T, Failure>;

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Done(e)
    }
}

/// `.db("operation")` on a `postgres` result inside a transaction.
trait Db<T> {
    fn db(self, what: &str) -> std::result::Result<T, Failure>;
}

impl<T> Db<T> for std::result::Result<T, postgres::Error> {
    fn db(self, what: &str) -> std::result::Result<T, Failure> {
        self.map_err(|e| Failure::Db(what.to_owned(), e))
    }
}

/// Whether the whole transaction may simply run again: the server chose it as
/// a deadlock or serialization victim and rolled it back.
fn retryable(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// Whether the connection itself is gone (server restarted, network cut).
fn connection_lost(e: &postgres::Error) -> bool {
    e.is_closed() || (e.as_db_error().is_none() && e.code().is_none())
}

/// How [`PostgresStore::run`] wraps its statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One statement, its own commit.
    Single,
    /// A transaction whose commit wakes the waiters of what it logged
    /// (`wake::commit`; a write that logged no event wakes nobody).
    Write,
}

/// A [`Store`] in a PostgreSQL database. Any number of stores, in any number of
/// processes and machines, may use one database at once.
pub struct PostgresStore {
    pool: r2d2::Pool<Manager>,
    notifier: Arc<Notifier>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.state())
            .finish()
    }
}

impl PostgresStore {
    /// Opens the database at `url` (libpq URL syntax, `postgresql://user:password@host:port/db?...`),
    /// migrating an older schema forward. A database written by a newer actionq
    /// is refused with a Storage error and left untouched. A malformed URL is
    /// InvalidInput; an unreachable server, an unknown database or a wrong
    /// password is a Storage error saying so. The URL's query may set
    /// `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`,
    /// with `sslrootcert`) and override `options` (see [`PostgresOptions`]).
    pub fn open(url: &str, options: &PostgresOptions) -> Result<Self> {
        let target = options::parse(url, options)?;
        let manager = Manager {
            config: target.config,
            tls: target.tls,
        };
        let listener = manager.clone();
        let notifier = Watcher::notifier(move || Box::new(wake::Listener::new(listener)));
        // The first connection is made here, not by the pool, so a wrong host
        // or password is reported as the server said it.
        let mut first = manager
            .connect()
            .map_err(|e| storage("connect to PostgreSQL", e))?;
        let found = schema::version(&mut first.client)?;
        if found > PG_SCHEMA_VERSION {
            return Err(schema::too_new(found));
        }
        if found < PG_SCHEMA_VERSION {
            schema::migrate(&mut first.client)?;
        }
        let pool = r2d2::Pool::builder()
            .max_size(target.options.pool_size.max(1))
            .min_idle(Some(0))
            // A dead connection is found by its first statement and replaced
            // (see `run`), rather than by a round trip on every checkout.
            .test_on_check_out(false)
            .connection_timeout(target.options.connect_timeout.max(Duration::from_millis(1)))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        drop(first);
        Ok(PostgresStore { pool, notifier })
    }

    /// A pooled connection, or the Storage error of the last attempt to connect.
    fn conn(&self, what: &str) -> Result<r2d2::PooledConnection<Manager>> {
        self.pool
            .get()
            .map_err(|e| Error::Storage(format!("{what}: no database connection: {e}")))
    }

    /// Runs `f` on a pooled connection: inside `BEGIN`/`COMMIT` when `tx`, else
    /// as it is (a single statement commits by itself). Retries when the
    /// server rolled the transaction back as a deadlock or serialization
    /// victim, and when the connection turned out dead at its first statement,
    /// before anything was done (the pool's connections all die when the
    /// server restarts). Any other failure rolls back and is returned.
    fn run<T>(
        &self,
        what: &str,
        mode: Mode,
        mut f: impl FnMut(&mut Conn) -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let tx = mode != Mode::Single;
            let mut conn = self.conn(what)?;
            conn.logged = Touched::default();
            let first = if tx {
                conn.client.batch_execute("BEGIN")
            } else {
                Ok(())
            };
            if let Err(e) = first {
                conn.broken = true;
                if connection_lost(&e) && attempts <= self.pool.max_size() as usize + RETRIES {
                    continue;
                }
                return Err(storage(what, e));
            }
            let result = f(&mut conn).and_then(|out| {
                let logged = std::mem::take(&mut conn.logged);
                if tx {
                    wake::commit(&mut conn.client, &logged).db(what)?;
                }
                Ok((out, logged))
            });
            match result {
                Ok((out, logged)) => {
                    drop(conn);
                    self.notifier.notify(&logged);
                    return Ok(out);
                }
                Err(failure) => {
                    if tx && conn.client.batch_execute("ROLLBACK").is_err() {
                        conn.broken = true;
                    }
                    match failure {
                        Failure::Done(e) => return Err(e),
                        Failure::Db(context, e) => {
                            if connection_lost(&e) {
                                conn.broken = true;
                            }
                            if retryable(&e) && attempts <= RETRIES {
                                continue;
                            }
                            // A read that met a dead connection did nothing: try another.
                            if !tx
                                && connection_lost(&e)
                                && attempts <= self.pool.max_size() as usize + RETRIES
                            {
                                continue;
                            }
                            return Err(storage(&context, e));
                        }
                    }
                }
            }
        }
    }

    /// A transaction.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut Conn) -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        self.run(what, Mode::Write, f)
    }

    /// A single statement (its own snapshot, its own commit).
    fn single<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut Conn) -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        self.run(what, Mode::Single, f)
    }
}

impl Sweep for PostgresStore {
    fn any_due(&self, due: Due<'_>) -> Result<bool> {
        self.single(due.what(), |conn| actions::any_due(conn, due))
    }

    fn expire_due(&self, due: Due<'_>, change: &Change) -> Result<Vec<Action>> {
        self.write(due.what(), |conn| actions::expire_due(conn, due, change))
    }
}

impl Store for PostgresStore {
    fn insert_server(&self, server: &Server) -> Result<()> {
        self.single("insert server", |conn| servers::insert(conn, server))
    }

    fn get_server(&self, id: &str) -> Result<Option<Server>> {
        self.single("get server", |conn| servers::get(conn, id, false))
    }

    fn set_paused(
        &self,
        id: &str,
        paused: bool,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<Server>> {
        self.write("pause server", |conn| {
            servers::set_paused(conn, id, paused, by, at)
        })
    }

    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
        self.write("create action", |conn| {
            actions::insert(conn, draft.clone(), guard)
        })
    }

    fn get_action(&self, id: i64) -> Result<Option<Action>> {
        self.single("get action", |conn| actions::get(conn, id))
    }

    fn list_actions(&self, filter: &ActionFilter, page: PageRequest) -> Result<(Vec<Action>, u64)> {
        self.single("list actions", |conn| actions::list(conn, filter, page))
    }

    fn update_action(&self, id: i64, change: &Change) -> Result<Action> {
        self.write("update action", |conn| actions::update(conn, id, change))
    }

    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>> {
        self.write("claim action", |conn| {
            actions::claim_next(conn, server_id, change)
        })
    }

    fn expire_leases(&self, change: &Change) -> Result<Vec<Action>> {
        sweep(self, Due::Leases(change.at), change)
    }

    fn expire_approvals(
        &self,
        action_type: &str,
        created_until: Timestamp,
        change: &Change,
    ) -> Result<Vec<Action>> {
        let due = Due::Approvals {
            action_type,
            created_until,
        };
        sweep(self, due, change)
    }

    fn events_since(&self, cursor: i64, limit: u32) -> Result<Vec<Event>> {
        self.single("events", |conn| events::since(conn, cursor, limit))
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        self.write("verify audit", events::verify)
    }

    fn insert_credential(&self, draft: CredentialDraft) -> Result<Credential> {
        self.write("issue credential", |conn| credentials::insert(conn, &draft))
    }

    fn list_credentials(&self) -> Result<Vec<Credential>> {
        self.single("list credentials", credentials::list)
    }

    fn revoke_credential(&self, id: i64, at: Timestamp, by: &str) -> Result<Option<Credential>> {
        self.write("revoke credential", |conn| {
            credentials::revoke(conn, id, at, by)
        })
    }

    fn find_credential(&self, secret_sha256: &[u8; 32]) -> Result<Option<Credential>> {
        // One statement: a revocation committed by any connection is seen.
        self.single("authenticate", |conn| {
            credentials::find(conn, secret_sha256)
        })
    }

    fn list_servers(&self) -> Result<Vec<Server>> {
        self.single("list servers", servers::list)
    }

    fn append_output(&self, id: i64, draft: &crate::store::OutputDraft) -> Result<bool> {
        self.write("store output", |conn| output::append(conn, id, draft))
    }

    fn output_since(&self, id: i64, after: i64) -> Result<Vec<crate::model::OutputChunk>> {
        self.single("read output", |conn| output::since(conn, id, after))
    }

    fn count_actions(&self) -> Result<Vec<ActionCount>> {
        self.single("count actions", actions::count_per_server_status)
    }

    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Result<JobLease, JobLease>> {
        self.write("take lease", |conn| {
            jobs::take_lease(conn, name, holder, now, expires_at)
        })
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        self.single("release lease", |conn| {
            jobs::release_lease(conn, name, holder)
        })
    }

    fn register_delivery(&self, name: &str, kind: &str) -> Result<Delivery> {
        self.write("register delivery", |conn| jobs::register(conn, name, kind))
    }

    fn record_delivery(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        update: &DeliveryUpdate,
    ) -> Result<Delivery> {
        self.write("record delivery", |conn| {
            jobs::record(conn, name, holder, now, update)
        })
    }

    fn list_deliveries(&self) -> Result<Vec<Delivery>> {
        self.single("list deliveries", jobs::list)
    }

    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    fn prune_checkpoint(&self) -> Result<PruneCheckpoint> {
        self.single("read prune checkpoint", |conn| {
            retention::checkpoint(conn, false)
        })
    }

    fn prune_prefix(
        &self,
        from: &PruneCheckpoint,
        last_event_id: i64,
        last_action_id: i64,
    ) -> Result<Option<u64>> {
        self.write("prune", |conn| {
            retention::prune_prefix(conn, from, last_event_id, last_action_id)
        })
    }
}
