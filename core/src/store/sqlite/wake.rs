//! How a SQLite store learns of other processes' commits: its watch thread
//! reads `PRAGMA data_version` on a connection of its own every
//! [`POLL`] while someone waits (one cheap read of the shared-memory WAL
//! index, never a query of the tables), and not at all while nobody does.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;

use super::connection;
use super::options::SqliteOptions;
use crate::store::wake::Watch;

/// How often the watch thread looks while someone waits: well inside the
/// 100 ms the contract gives another process's commit to wake a waiter.
const POLL: Duration = Duration::from_millis(20);

/// The watch of one store: the file, and the connection once opened.
pub(super) struct DataVersion {
    path: PathBuf,
    options: SqliteOptions,
    conn: Option<Connection>,
    seen: i64,
}

impl DataVersion {
    pub(super) fn new(path: PathBuf, options: SqliteOptions) -> Self {
        DataVersion {
            path,
            options,
            conn: None,
            seen: 0,
        }
    }

    fn read(conn: &Connection) -> Option<i64> {
        conn.query_row("PRAGMA data_version", [], |row| row.get(0))
            .ok()
    }
}

impl Watch for DataVersion {
    fn changed(&mut self, at_most: Duration) -> bool {
        let Some(conn) = &self.conn else {
            // First look (or after a failure): open, and wake everyone, as a
            // commit may have landed before this connection could see it.
            self.conn = connection::connect(&self.path, &self.options).ok();
            match self.conn.as_ref().and_then(Self::read) {
                Some(version) => {
                    self.seen = version;
                    return true;
                }
                None => {
                    self.conn = None;
                    std::thread::sleep(at_most);
                    return false;
                }
            }
        };
        std::thread::sleep(POLL.min(at_most));
        match Self::read(conn) {
            Some(version) if version == self.seen => false,
            Some(version) => {
                self.seen = version;
                true
            }
            None => {
                self.conn = None;
                false
            }
        }
    }

    fn drains(&self) -> bool {
        false
    }
}
