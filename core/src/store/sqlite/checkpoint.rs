//! Checkpoints off the commit path. SQLite's automatic checkpoint runs
//! inside the commit that takes the WAL past 1,000 pages: that caller copies
//! the WAL into the database file and syncs both, for every writer's pages.
//! Here the writer's commits only signal the WAL's size, and a thread of the
//! store, on a connection of its own, checkpoints each 1,000 new pages
//! (PASSIVE: it never waits for readers or writers, nor makes them wait).
//! The WAL starts over from its beginning only when a write finds it wholly
//! copied, which commits landing during every checkpoint can prevent: past
//! four times that size the checkpoint is a RESTART, which makes writers wait
//! (in their busy handler) for the rest of the copy, so the WAL stays bounded.

use std::os::raw::c_int;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::options::SqliteOptions;
use super::{connection, storage};
use crate::error::{Error, Result};

/// New WAL pages after which the checkpointer runs: SQLite's own default.
const CHECKPOINT_PAGES: c_int = 1000;

/// WAL size past which a checkpoint makes writers wait until the WAL can
/// start over.
const RESTART_PAGES: c_int = 4 * CHECKPOINT_PAGES;

#[derive(Debug, Default)]
struct Signal {
    /// The WAL's size after the last commit.
    pages: c_int,
    /// Its size when the last checkpoint started (0 after the WAL restarted).
    checkpointed_at: c_int,
    /// A checkpoint is due.
    due: bool,
    stop: bool,
}

type Shared = Arc<(Mutex<Signal>, Condvar)>;

/// The checkpointing thread; stopped and joined on drop.
#[derive(Debug)]
pub(super) struct Checkpointer {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Signal> {
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path` and replaces
    /// `writer`'s automatic checkpoint with a signal to it.
    pub(super) fn start(
        path: &Path,
        options: &SqliteOptions,
        writer: &mut Connection,
    ) -> Result<Self> {
        let conn = connection::connect(path, options)?;
        connection::configure(&conn, options)?;
        let shared: Shared = Arc::default();
        let signal = shared.clone();
        writer
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: c_int| {
                let mut state = lock(&signal);
                if pages < state.pages {
                    state.checkpointed_at = 0;
                }
                state.pages = pages;
                if pages - state.checkpointed_at >= CHECKPOINT_PAGES && !state.due {
                    state.due = true;
                    signal.1.notify_one();
                }
                Ok(())
            }))
            .map_err(|e| storage("open", e))?;
        let work = shared.clone();
        let thread = std::thread::Builder::new()
            .name("actionq-checkpoint".into())
            .spawn(move || loop {
                let mut signal = lock(&work);
                while !signal.due && !signal.stop {
                    signal = work.1.wait(signal).unwrap_or_else(|e| e.into_inner());
                }
                if signal.stop {
                    return;
                }
                signal.due = false;
                signal.checkpointed_at = signal.pages;
                let mode = if signal.pages >= RESTART_PAGES {
                    "RESTART"
                } else {
                    "PASSIVE"
                };
                drop(signal);
                // A failure (busy past the timeout, I/O error) leaves the WAL
                // to the next checkpoint; the writes themselves are committed.
                let _ = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
            })
            .map_err(|e| Error::Storage(format!("open: start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
