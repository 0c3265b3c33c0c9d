//! How a SQLite store wakes the waiters a commit concerns.
//!
//! In this process: every event appended on the writer's thread is noted
//! ([`logged`]), and the write that committed it takes the notes
//! ([`take_logged`]) and wakes the waiters of those servers.
//!
//! Other processes: the watch thread reads `PRAGMA data_version` on a
//! connection of its own every [`POLL`] while someone waits (one cheap read
//! of the shared-memory WAL index, never a query of the tables), and not at
//! all while nobody does. When it moved, it reads once what was logged since
//! the last event it saw ([`LOGGED_SINCE_SQL`], by the events' key) and wakes
//! those servers' waiters: one query per change per process, however many
//! wait. What it cannot attribute (a failed read, too many events at once)
//! wakes everyone. Every change also wakes the output readers, as a chunk of
//! output logs no event to attribute it by.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::connection;
use super::options::SqliteOptions;
use crate::model::EventKind;
use crate::store::wake::{Touched, Watch};
use crate::store::EventDraft;

/// How often the watch thread looks while someone waits: well inside the
/// 100 ms the contract gives another process's commit to wake a waiter.
const POLL: Duration = Duration::from_millis(20);

/// The most events one look attributes; more at once wake everyone.
const MOST_ATTRIBUTED: i64 = 1000;

/// What was logged after event ?1: kind and subject, by id, at most ?2 rows.
pub(super) const LOGGED_SINCE_SQL: &str =
    "SELECT id, kind, subject FROM action_events WHERE id > ?1 ORDER BY id LIMIT ?2";

/// The last event id.
pub(super) const LAST_EVENT_SQL: &str = "SELECT coalesce(max(id), 0) FROM action_events";

thread_local! {
    /// What the write on this thread logged so far.
    static LOGGED: RefCell<Touched> = RefCell::default();
}

/// Notes `event`, appended by the write running on this thread.
pub(super) fn logged(event: &EventDraft) {
    LOGGED.with(|logged| logged.borrow_mut().record_event(event));
}

/// Notes a change of `server_id`'s actions that logged no event (a chunk of
/// live output), so that waiters on that server in this process wake.
pub(super) fn touched_server(server_id: &str) {
    LOGGED.with(|logged| logged.borrow_mut().record(EventKind::Action, server_id));
}

/// What this thread logged since the last call (call it before a write to
/// forget what a failed one noted, and after its commit to wake its waiters).
pub(super) fn take_logged() -> Touched {
    LOGGED.with(|logged| std::mem::take(&mut *logged.borrow_mut()))
}

/// The watch of one store: the file, and the connection once opened.
pub(super) struct DataVersion {
    path: PathBuf,
    options: SqliteOptions,
    conn: Option<Connection>,
    version: i64,
    /// The last event attributed.
    last_event: i64,
}

impl DataVersion {
    pub(super) fn new(path: PathBuf, options: SqliteOptions) -> Self {
        DataVersion {
            path,
            options,
            conn: None,
            version: 0,
            last_event: 0,
        }
    }

    fn read(conn: &Connection) -> Option<i64> {
        conn.query_row("PRAGMA data_version", [], |row| row.get(0))
            .ok()
    }

    fn last_event(conn: &Connection) -> Option<i64> {
        conn.prepare_cached(LAST_EVENT_SQL)
            .and_then(|mut select| select.query_row([], |row| row.get(0)))
            .ok()
    }

    /// What was logged after `self.last_event`, which moves to the last one.
    fn logged_since(&mut self, conn: &Connection) -> Touched {
        let rows: rusqlite::Result<Vec<(i64, String, String)>> = conn
            .prepare_cached(LOGGED_SINCE_SQL)
            .and_then(|mut select| {
                select
                    .query_map(params![self.last_event, MOST_ATTRIBUTED], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?
                    .collect()
            });
        let mut touched = Touched::default();
        match rows {
            Ok(rows) if (rows.len() as i64) < MOST_ATTRIBUTED => {
                for (id, kind, subject) in rows {
                    self.last_event = id;
                    match kind.parse::<EventKind>() {
                        Ok(kind) => touched.record(kind, &subject),
                        // A kind this version does not know: about anything.
                        Err(_) => touched.merge(Touched::everything()),
                    }
                }
                touched
            }
            _ => {
                if let Some(last) = Self::last_event(conn) {
                    self.last_event = last;
                }
                Touched::everything()
            }
        }
    }
}

impl Watch for DataVersion {
    fn changed(&mut self, at_most: Duration) -> Touched {
        let Some(conn) = self.conn.take() else {
            // First look (or after a failure): open, and wake everyone, as a
            // commit may have landed before this connection could see it.
            let opened = connection::connect(&self.path, &self.options).ok();
            let marks = opened
                .as_ref()
                .and_then(|conn| Some((Self::read(conn)?, Self::last_event(conn)?)));
            return match marks {
                Some((version, last_event)) => {
                    self.version = version;
                    self.last_event = last_event;
                    self.conn = opened;
                    Touched::everything()
                }
                None => {
                    std::thread::sleep(at_most);
                    Touched::default()
                }
            };
        };
        std::thread::sleep(POLL.min(at_most));
        let touched = match Self::read(&conn) {
            Some(version) if version == self.version => Touched::default(),
            Some(version) => {
                self.version = version;
                // Whatever it logged, the change may also hold output
                // chunks, which log nothing: output readers look.
                let mut touched = self.logged_since(&conn);
                touched.merge(Touched::unlogged());
                touched
            }
            // Lost the file: look again from scratch next time.
            None => return Touched::default(),
        };
        self.conn = Some(conn);
        touched
    }

    fn drains(&self) -> bool {
        false
    }
}
