//! [`SqliteStore`]: a durable store in one SQLite file, shareable by processes.
//!
//! WAL journal, a busy timeout, and every write in a `BEGIN IMMEDIATE`
//! transaction: a deferred transaction that later upgrades to a write fails with
//! SQLITE_BUSY at once instead of waiting, which would surface as spurious errors
//! under multi-process load. One writer connection per store; reads go through a
//! small pool of connections, which WAL lets run beside the writer.
//!
//! By concern: this file opens the store and holds its connections (the writer,
//! the reader pool) and the [`Store`] impl; `options` is what a user sets,
//! `connection` configures one connection, `schema` migrates, `rows` converts
//! records, and `servers`, `actions`, `events`, `credentials` hold the statements of each table.
//! Every rusqlite failure becomes an [`Error::Storage`] here, through
//! [`storage`] / [`Context::context`], naming the operation that failed.

mod actions;
mod checkpoint;
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::error::{Error, Result};
use crate::identity::{Credential, CredentialDraft};
use crate::model::{Action, ActionCount, ActionFilter, Event, Server, Timestamp};
use crate::store::sweep::{sweep, Due, Sweep};
use crate::store::wake::Watcher;
use crate::store::{
    ActionDraft, AuditReport, Change, ConflictGuard, Delivery, DeliveryUpdate, JobLease, Notifier,
    PageRequest, PruneCheckpoint, Store,
};

pub use options::{Durability, SqliteOptions};
pub use schema::SCHEMA_VERSION;

/// A [`Store`] in a SQLite file. Several stores — in one process or many — may
/// open the same file at once.
#[derive(Debug)]
pub struct SqliteStore {
    /// Held for its drop (which stops the thread); first, so it stops before
    /// the connections close.
    _checkpointer: checkpoint::Checkpointer,
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Writes waiting for `writer`. While any is, point reads go to a reader:
    /// `Mutex` is not fair, and a thread that takes the writer for one point
    /// read after another (a prune planning its next batch: one per action)
    /// would otherwise keep a waiting create from it for many batches.
    writers_waiting: AtomicUsize,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    creates: CreateGroups,
    notifier: Arc<Notifier>,
}

/// Group commit of creates: concurrent creators' inserts share one write
/// transaction and one commit (one sync under `Durability::Full`). A caller
/// queues its create; whoever finds no group being written takes the whole
/// queue (their own create and every one waiting), writes it in one
/// transaction, each create inside its own savepoint (a create that fails is
/// rolled back alone and the others go on), commits, and only then hands each
/// caller its result: nobody is answered before the commit holding their
/// create has returned. Creates that arrive meanwhile form the next group.
#[derive(Debug, Default)]
struct CreateGroups {
    state: Mutex<GroupState>,
    /// Signalled when a group's results are in.
    written: Condvar,
}

#[derive(Debug, Default)]
struct GroupState {
    next_ticket: u64,
    queued: Vec<QueuedCreate>,
    /// A caller is writing a group now.
    writing: bool,
    /// Results not yet taken by their callers, by ticket.
    results: HashMap<u64, Result<Action>>,
}

#[derive(Debug)]
struct QueuedCreate {
    ticket: u64,
    draft: ActionDraft,
    guard: ConflictGuard,
}

/// Resets the group state when the writing caller leaves, normally or by a
/// panic (then every create of the group gets a Storage error, none is left
/// waiting).
struct Writing<'a> {
    groups: &'a CreateGroups,
    tickets: Vec<u64>,
    results: Vec<(u64, Result<Action>)>,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut state = self.groups.state.lock().unwrap_or_else(|e| e.into_inner());
        state.writing = false;
        for (ticket, result) in self.results.drain(..) {
            state.results.insert(ticket, result);
        }
        for ticket in self.tickets.drain(..) {
            state.results.entry(ticket).or_insert_with(|| {
                Err(Error::Storage(
                    "create action: the group commit was interrupted".into(),
                ))
            });
        }
        self.groups.written.notify_all();
    }
}

/// The Storage error for a rusqlite failure during `context` (an operation
/// name such as "create action"). The only mapping from a SQLite error.
fn storage(context: &str, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy(format!(
            "{context}: database is busy (another connection held the lock past the busy timeout)"
        )),
        _ => Error::Storage(format!("{context}: {e}")),
    }
}

/// `.context("operation")` on a rusqlite result: [`storage`] as a method.
trait Context<T> {
    /// The value, or the Storage error naming `what`.
    fn context(self, what: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| storage(what, e))
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection rolls its transaction back on drop, so
    // the connection itself is still sound.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path`, migrating an older
    /// schema forward. A database written by a newer actionq is refused with a
    /// Storage error and left untouched.
    pub fn open(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut writer = connection::connect(&path, options)?;
        // Check before anything writes to the file (even switching to WAL does).
        let found = schema::user_version(&writer)?;
        if found > SCHEMA_VERSION {
            return Err(schema::too_new(found));
        }
        let mode = connection::enable_wal(&writer, options.busy_timeout)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Storage(format!(
                "could not enable WAL journal on {} (got '{mode}')",
                path.display()
            )));
        }
        connection::configure(&writer, options)?;
        if found < SCHEMA_VERSION {
            schema::migrate(&mut writer)?;
        }
        let checkpointer = checkpoint::Checkpointer::start(&path, options, &mut writer)?;
        let readers = (0..options.read_connections.max(1))
            .map(|_| {
                let conn = connection::connect(&path, options)?;
                connection::configure(&conn, options)?;
                conn.execute_batch("PRAGMA query_only = ON;")
                    .context("open reader")?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<_>>()?;
        let (watch_path, watch_options) = (path.clone(), options.clone());
        let notifier =
            Watcher::notifier(move || Box::new(wake::DataVersion::new(watch_path, watch_options)));
        Ok(SqliteStore {
            notifier,
            _checkpointer: checkpointer,
            path,
            writer: Mutex::new(writer),
            writers_waiting: AtomicUsize::new(0),
            readers,
            next_reader: AtomicUsize::new(0),
            creates: CreateGroups::default(),
        })
    }

    /// Test instrumentation, hidden from the docs: `hook` runs inside every
    /// later migration in this process, once its write transaction holds the
    /// lock and before its first step, so that a crash test can tell a kill
    /// inside the migration from one before it. The first hook set stays.
    #[doc(hidden)]
    pub fn on_migration_start(hook: fn()) {
        let _ = schema::MIGRATION_START_HOOK.set(hook);
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer connection, for a write: counted in `writers_waiting`
    /// while it waits.
    fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        self.writers_waiting.fetch_add(1, Ordering::SeqCst);
        let conn = lock(&self.writer);
        self.writers_waiting.fetch_sub(1, Ordering::SeqCst);
        conn
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer, committing
    /// only if it succeeds; then wakes the waiters of what its events were
    /// about (none when it logged nothing).
    fn write<T>(&self, what: &str, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.write_checking(what, true, f)
    }

    /// [`SqliteStore::write`], with SQLite's foreign key checks on or off
    /// for this transaction (the pragma only changes outside one).
    fn write_checking<T>(
        &self,
        what: &str,
        foreign_keys: bool,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock_writer();
        wake::take_logged();
        if !foreign_keys {
            conn.execute_batch("PRAGMA foreign_keys = OFF")
                .context(what)?;
        }
        let out = Self::write_locked(&mut conn, what, f);
        if !foreign_keys {
            conn.execute_batch("PRAGMA foreign_keys = ON")
                .context(what)?;
        }
        let out = out?;
        drop(conn);
        self.notifier.notify(&wake::take_logged());
        Ok(out)
    }

    fn write_locked<T>(
        conn: &mut Connection,
        what: &str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(what)?;
        let out = f(&tx)?;
        tx.commit().context(what)?;
        Ok(out)
    }

    /// Queues the create and waits for its result: written by this caller
    /// (with every create queued meanwhile) when no group is being written,
    /// else by a later group ([`CreateGroups`]).
    fn create_in_group(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
        let groups = &self.creates;
        let mut state = groups.state.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queued.push(QueuedCreate {
            ticket,
            draft,
            guard: guard.clone(),
        });
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if !state.writing {
                state.writing = true;
                let group = std::mem::take(&mut state.queued);
                drop(state);
                let mut writing = Writing {
                    groups,
                    tickets: group.iter().map(|c| c.ticket).collect(),
                    results: Vec::new(),
                };
                wake::take_logged();
                writing.results = self.write_group(group);
                // Signalled before anyone of the group is answered.
                let logged = wake::take_logged();
                if writing.results.iter().any(|(_, r)| r.is_ok()) {
                    self.notifier.notify(&logged);
                }
                drop(writing);
                state = groups.state.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state = groups
                .written
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Writes `group` in one transaction, each create in a savepoint of its
    /// own (a lone create needs none: its failure rolls back the whole), and
    /// commits; the results by ticket. A failed commit fails every create.
    fn write_group(&self, group: Vec<QueuedCreate>) -> Vec<(u64, Result<Action>)> {
        let what = "create action";
        let mut conn = self.lock_writer();
        let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let e = storage(what, e);
                return group
                    .into_iter()
                    .map(|c| (c.ticket, Err(e.clone())))
                    .collect();
            }
        };
        let alone = group.len() == 1;
        let mut results = Vec::with_capacity(group.len());
        for create in group {
            let ticket = create.ticket;
            let result = if alone {
                actions::insert(&tx, create.draft, &create.guard)
            } else {
                tx.savepoint().context(what).and_then(|mut savepoint| {
                    let result = actions::insert(&savepoint, create.draft, &create.guard);
                    if result.is_ok() {
                        savepoint.commit().context(what)?;
                    } else {
                        savepoint.rollback().context(what)?;
                    }
                    result
                })
            };
            results.push((ticket, result));
            if tx.is_autocommit() {
                // SQLite rolled the whole transaction back (I/O error, disk
                // full): nothing of the group is written.
                let e = Error::Storage(format!("{what}: the transaction was rolled back"));
                return results
                    .into_iter()
                    .map(|(ticket, r)| (ticket, r.and(Err(e.clone()))))
                    .collect();
            }
        }
        if alone && results[0].1.is_err() {
            return results;
        }
        match tx.commit() {
            Ok(()) => results,
            Err(e) => {
                let e = storage(what, e);
                results
                    .into_iter()
                    .map(|(ticket, r)| (ticket, r.and(Err(e.clone()))))
                    .collect()
            }
        }
    }

    /// Runs `f` on the next reader of the pool.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let n = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = lock(&self.readers[n]);
        f(&conn)
    }

    /// A single-statement read: on the writer connection when no write is
    /// running, else on a reader. Any write to the file empties a reader's page
    /// cache, while the writer's stays warm with the pages it wrote itself, so a
    /// lookup that follows writes (the server check before every create) reads
    /// from memory. Never waits for the writer, nor takes it while a write
    /// waits for it; kept to point lookups so a long listing can never hold up
    /// writes.
    fn read_point<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.writers_waiting.load(Ordering::SeqCst) > 0 {
            return self.read(f);
        }
        match self.writer.try_lock() {
            Ok(conn) => f(&conn),
            Err(std::sync::TryLockError::Poisoned(e)) => f(&e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => self.read(f),
        }
    }
}

impl Sweep for SqliteStore {
    fn any_due(&self, due: Due<'_>) -> Result<bool> {
        self.read_point(|conn| actions::any_due(conn, due))
    }

    fn expire_due(&self, due: Due<'_>, change: &Change) -> Result<Vec<Action>> {
        self.write(due.what(), |tx| actions::expire_due(tx, due, change))
    }
}

impl Store for SqliteStore {
    fn insert_server(&self, server: &Server) -> Result<()> {
        self.write("insert server", |tx| servers::insert(tx, server))
    }

    fn get_server(&self, id: &str) -> Result<Option<Server>> {
        self.read_point(|conn| servers::get(conn, id, "get server"))
    }

    fn set_paused(
        &self,
        id: &str,
        paused: bool,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<Server>> {
        self.write("pause server", |tx| {
            servers::set_paused(tx, id, paused, by, at)
        })
    }

    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> Result<Action> {
        self.create_in_group(draft, guard)
    }

    fn get_action(&self, id: i64) -> Result<Option<Action>> {
        self.read_point(|conn| actions::get(conn, id))
    }

    fn list_actions(&self, filter: &ActionFilter, page: PageRequest) -> Result<(Vec<Action>, u64)> {
        self.read(|conn| actions::list(conn, filter, page))
    }

    fn update_action(&self, id: i64, change: &Change) -> Result<Action> {
        self.write("update action", |tx| actions::update(tx, id, change))
    }

    fn claim_next(&self, server_id: &str, change: &Change) -> Result<Option<Action>> {
        self.write("claim action", |tx| {
            actions::claim_next(tx, server_id, change)
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
        self.read(|conn| events::since(conn, cursor, limit))
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        self.read(events::verify)
    }

    fn insert_credential(&self, draft: CredentialDraft) -> Result<Credential> {
        self.write("issue credential", |tx| credentials::insert(tx, draft))
    }

    fn list_credentials(&self) -> Result<Vec<Credential>> {
        self.read(credentials::list)
    }

    fn revoke_credential(&self, id: i64, at: Timestamp, by: &str) -> Result<Option<Credential>> {
        self.write("revoke credential", |tx| {
            credentials::revoke(tx, id, at, by)
        })
    }

    fn find_credential(&self, secret_sha256: &[u8; 32]) -> Result<Option<Credential>> {
        // Every authenticated request comes here: a point read that never
        // waits for the writer. A revocation committed by any process is
        // visible to the next read (WAL readers see the latest commit).
        self.read_point(|conn| credentials::find(conn, secret_sha256))
    }

    fn list_servers(&self) -> Result<Vec<Server>> {
        self.read(servers::list)
    }

    fn append_output(&self, id: i64, draft: &crate::store::OutputDraft) -> Result<bool> {
        self.write("store output", |tx| output::append(tx, id, draft))
    }

    fn output_since(&self, id: i64, after: i64) -> Result<Vec<crate::model::OutputChunk>> {
        self.read(|conn| output::since(conn, id, after))
    }

    fn count_actions(&self) -> Result<Vec<ActionCount>> {
        self.read(actions::count_per_server_status)
    }

    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Result<JobLease, JobLease>> {
        self.write("take lease", |tx| {
            jobs::take_lease(tx, name, holder, now, expires_at)
        })
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        self.write("release lease", |tx| jobs::release_lease(tx, name, holder))
    }

    fn register_delivery(&self, name: &str, kind: &str) -> Result<Delivery> {
        self.write("register delivery", |tx| jobs::register(tx, name, kind))
    }

    fn record_delivery(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        update: &DeliveryUpdate,
    ) -> Result<Delivery> {
        self.write("record delivery", |tx| {
            jobs::record(tx, name, holder, now, update)
        })
    }

    fn list_deliveries(&self) -> Result<Vec<Delivery>> {
        self.read(jobs::list)
    }

    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    fn prune_checkpoint(&self) -> Result<PruneCheckpoint> {
        self.read_point(retention::checkpoint)
    }

    fn prune_prefix(
        &self,
        from: &PruneCheckpoint,
        last_event_id: i64,
        last_action_id: i64,
    ) -> Result<Option<u64>> {
        // The batch deletes the events of the actions it deletes itself;
        // SQLite's check per deleted action would scan `action_events`
        // (no index by action: each would cost every write a page, schema v6).
        self.write_checking("prune", false, |tx| {
            retention::prune_prefix(tx, from, last_event_id, last_action_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::error::ErrorKind;

    fn draft(command: &str) -> ActionDraft {
        let argv = vec![command.to_owned()];
        ActionDraft {
            server_id: "maint-1".into(),
            action_type: "restart_service".into(),
            service_name: None,
            command: command.into(),
            // The audit chain vouches for it: the payload's real digest.
            digest: crate::action_digest("maint-1", "restart_service", &argv, &BTreeMap::new(), ""),
            argv,
            env: BTreeMap::new(),
            alert_id: None,
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            created_by: "test".into(),
            whitelist_version: String::new(),
            auto_approve_budget: None,
            params: BTreeMap::new(),
            needs_people: None,
        }
    }

    /// A point read takes the writer connection only while no write waits
    /// for it (`Mutex` is not fair: a prune planning its batches, one point
    /// read per action on the writer, kept creates waiting for many batches),
    /// and a write counts itself waiting while it does.
    #[test]
    fn point_reads_leave_the_writer_to_a_waiting_write() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("q.sqlite3"), &SqliteOptions::default()).unwrap();
        let on_reader = |store: &SqliteStore| {
            store
                .read_point(|conn| {
                    conn.query_row("PRAGMA query_only", [], |r| r.get::<_, bool>(0))
                        .context("test")
                })
                .unwrap()
        };
        assert!(!on_reader(&store), "nothing waits: the writer serves");

        let held = lock(&store.writer);
        std::thread::scope(|scope| {
            let write = scope.spawn(|| {
                store.write("test", |tx| {
                    tx.execute_batch("CREATE TABLE t (x)").context("test")
                })
            });
            while store.writers_waiting.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            drop(held);
            write.join().unwrap().unwrap();
        });
        // The moment just after the writer is released, its waiter not yet
        // running: the count is all that tells a point read to keep off.
        store.writers_waiting.fetch_add(1, Ordering::SeqCst);
        assert!(on_reader(&store), "a write waits: a reader serves");
        store.writers_waiting.fetch_sub(1, Ordering::SeqCst);
        assert_eq!(store.writers_waiting.load(Ordering::SeqCst), 0);
        assert!(!on_reader(&store));
    }

    /// In one group, the second of two pending duplicates fails (it collides
    /// with the first, written earlier in the same transaction) and is rolled
    /// back alone: the creates before and after it are committed.
    #[test]
    fn a_failing_create_fails_alone_in_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("q.sqlite3"), &SqliteOptions::default()).unwrap();
        store
            .insert_server(&Server {
                id: "maint-1".into(),
                hostname: None,
                is_paused: true,
                paused_at: None,
                created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            })
            .unwrap();
        let guard = ConflictGuard::PendingDuplicate {
            message: "duplicate".into(),
        };
        let group = [
            "systemctl restart a",
            "systemctl restart a",
            "systemctl restart b",
        ]
        .into_iter()
        .enumerate()
        .map(|(ticket, command)| QueuedCreate {
            ticket: ticket as u64,
            draft: draft(command),
            guard: guard.clone(),
        })
        .collect();
        let results = store.write_group(group);
        let first = results[0].1.as_ref().unwrap();
        let clash = results[1].1.as_ref().unwrap_err();
        assert_eq!(clash.kind(), ErrorKind::Conflict);
        assert_eq!(clash.existing_action_id(), Some(first.id));
        let third = results[2].1.as_ref().unwrap();
        assert_eq!(third.id, first.id + 1, "the failed create left no row");
        let filter = ActionFilter::default();
        let page = PageRequest {
            limit: 10,
            offset: 0,
            before_id: None,
        };
        let (stored, total) = store.list_actions(&filter, page).unwrap();
        assert_eq!(total, 2);
        assert_eq!(
            stored.iter().map(|a| a.id).collect::<Vec<_>>(),
            [third.id, first.id]
        );
        let audit = store.verify_audit().unwrap();
        assert_eq!((audit.checked, audit.first_bad_event_id), (2, None));
    }
}
