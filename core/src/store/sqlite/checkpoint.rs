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
//! The thread starts with the first checkpoint due, so a store that writes
//! little never has one (nor a process that forks after opening a small one);
//! should it fail to start, that commit checkpoints itself, as SQLite would.

use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::connection;
use super::options::SqliteOptions;
use super::storage;
use crate::error::Result;

/// New WAL pages after which a checkpoint runs: SQLite's own default.
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

#[derive(Debug, Default)]
struct Shared {
    signal: Mutex<Signal>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The checkpoints of one store: stops and joins its thread on drop.
#[derive(Debug)]
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
}

impl Checkpointer {
    /// Replaces `writer`'s automatic checkpoint with a signal to the
    /// checkpoint thread (started on the first signal) on `path`.
    pub(super) fn start(
        path: &Path,
        options: &SqliteOptions,
        writer: &mut Connection,
    ) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let (hook, path, options) = (shared.clone(), path.to_owned(), options.clone());
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: c_int| {
                let mut signal = lock(&hook.signal);
                if pages < signal.pages {
                    signal.checkpointed_at = 0;
                }
                signal.pages = pages;
                if pages - signal.checkpointed_at < CHECKPOINT_PAGES || signal.due {
                    return Ok(());
                }
                signal.due = true;
                drop(signal);
                hook.wake.notify_one();
                let mut thread = lock(&hook.thread);
                if thread.is_none() {
                    *thread = spawn(hook.clone(), path.clone(), options.clone());
                }
                if thread.is_none() {
                    // No thread: checkpoint here, as SQLite itself would.
                    lock(&hook.signal).due = false;
                    return wal.checkpoint();
                }
                Ok(())
            }))
            .map_err(|e| storage("open", e))?;
        Ok(Checkpointer { shared })
    }
}

/// The checkpoint thread, on a connection of its own; `None` if it cannot start.
fn spawn(shared: Arc<Shared>, path: PathBuf, options: SqliteOptions) -> Option<JoinHandle<()>> {
    let conn = connection::connect(&path, &options).ok()?;
    connection::configure(&conn, &options).ok()?;
    std::thread::Builder::new()
        .name("actionq-checkpoint".into())
        .spawn(move || loop {
            let mut signal = lock(&shared.signal);
            while !signal.due && !signal.stop {
                signal = shared.wake.wait(signal).unwrap_or_else(|e| e.into_inner());
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
            // A failure (busy past the timeout, I/O error) leaves the WAL to
            // the next checkpoint; the writes themselves are committed.
            let _ = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
        })
        .ok()
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.shared.signal).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = lock(&self.shared.thread).take() {
            let _ = thread.join();
        }
    }
}
