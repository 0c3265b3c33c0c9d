//! Checkpoints off the commit path. SQLite's automatic checkpoint runs
//! inside the commit that takes the WAL past 1,000 pages: that caller copies
//! the WAL into the database file and syncs both, for every writer's pages.
//! Here the writer's commits only signal the WAL's size, and a thread of the
//! store, on a connection of its own, checkpoints each 1,000 new pages
//! (PASSIVE: it never waits for readers or writers, nor makes them wait).
//! The WAL starts over from its beginning only when a write finds it wholly
//! copied, which commits landing during every checkpoint can prevent (a
//! prune commits a batch every few milliseconds): past four times that size,
//! the PASSIVE copy is followed by a RESTART, which holds the write lock while
//! it copies what landed meanwhile and then waits for readers to leave the
//! WAL. It waits at most [`RESTART_PATIENCE`] for the write lock and for the
//! readers, then gives up until the next round (with more patience, up to
//! [`RESTART_PATIENCE_MAX`]): writers wait for a short tail, never for a long
//! reader nor for the whole copy (a RESTART that copied 1,000 pages itself
//! held writers for tens of milliseconds, and one that waited for readers up
//! to the busy timeout held them as long).
//! Should the thread fall behind all the same (not scheduled while writers
//! commit), a commit that finds the WAL past [`WAIT_PAGES`] and a checkpoint
//! due waits, after its commit and outside the write lock, until the thread
//! has taken it up: the writer never copies the WAL itself, and the WAL stays
//! bounded however the two are scheduled. It waits for the start, not the
//! end: a checkpoint held back by a long reader must not stall every commit.
//! The thread starts with the first checkpoint due, so a store that writes
//! little never has one (nor a process that forks after opening a small one);
//! should it fail to start, that commit checkpoints itself, as SQLite would.

use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::connection;
use super::options::SqliteOptions;
use super::storage;
use crate::error::Result;

/// New WAL pages after which a checkpoint runs: SQLite's own default.
const CHECKPOINT_PAGES: c_int = 1000;

/// WAL size past which a checkpoint tries to make the WAL start over.
const RESTART_PAGES: c_int = 4 * CHECKPOINT_PAGES;

/// WAL size past which a committing writer that finds a checkpoint due waits
/// for the checkpoint thread to take it up before it returns.
const WAIT_PAGES: c_int = RESTART_PAGES + CHECKPOINT_PAGES;

/// The longest a RESTART first waits for the write lock, then for readers to
/// leave the WAL (the checkpoint connection's busy timeout): a few creates,
/// or a short read. Writers wait for the second wait, which a long reader
/// would otherwise stretch to the busy timeout.
const RESTART_PATIENCE: Duration = Duration::from_millis(4);

/// Each RESTART that could not start the WAL over doubles the next one's
/// patience, up to this: beside a writer that is never idle for long the WAL
/// still starts over within a few rounds, and a reader that keeps it in use
/// for minutes (an export) holds writers up this long at most per round.
const RESTART_PATIENCE_MAX: Duration = Duration::from_millis(64);

#[derive(Debug, Default)]
struct Signal {
    /// The WAL's size after the last commit.
    pages: c_int,
    /// Its size when the last checkpoint started (0 after the WAL restarted).
    checkpointed_at: c_int,
    /// A checkpoint is due.
    due: bool,
    /// Checkpoints the thread has taken up, so a waiting writer can tell
    /// that one started after it began to wait.
    started: u64,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    signal: Mutex<Signal>,
    wake: Condvar,
    /// Notified when the thread takes up a checkpoint.
    started: Condvar,
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
                let behind =
                    pages >= WAIT_PAGES && pages - signal.checkpointed_at >= CHECKPOINT_PAGES;
                let due = pages - signal.checkpointed_at >= CHECKPOINT_PAGES && !signal.due;
                if !due && !behind {
                    return Ok(());
                }
                signal.due = true;
                let started = signal.started;
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
                drop(thread);
                if behind {
                    wait_for_checkpoint(&hook, started, options.busy_timeout);
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
    let mut patience = RESTART_PATIENCE;
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
            signal.started += 1;
            shared.started.notify_all();
            signal.checkpointed_at = signal.pages;
            let restart = signal.pages >= RESTART_PAGES;
            drop(signal);
            // A failure (busy past the patience, I/O error) leaves the WAL to
            // the next checkpoint; the writes themselves are committed.
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            if restart {
                // Its first column is 1 when the WAL did not start over.
                let busy = conn.busy_timeout(patience).and_then(|()| {
                    conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))
                });
                patience = match busy {
                    Ok(0) => RESTART_PATIENCE,
                    _ => (patience * 2).min(RESTART_PATIENCE_MAX),
                };
            }
        })
        .ok()
}

/// Waits until the thread took up a checkpoint after `started` ones, the
/// store stopped, or `limit` passed.
fn wait_for_checkpoint(shared: &Shared, started: u64, limit: Duration) {
    let signal = lock(&shared.signal);
    let _ = shared
        .started
        .wait_timeout_while(signal, limit, |s| s.started == started && !s.stop);
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A writer past [`WAIT_PAGES`] is held until the thread takes up a
    /// checkpoint (not until it ends), and never past its limit.
    #[test]
    fn a_writer_past_the_limit_waits_for_the_thread_to_take_up_a_checkpoint() {
        let shared = Arc::new(Shared::default());
        let alone = Instant::now();
        wait_for_checkpoint(&shared, 0, Duration::from_millis(50));
        assert!(
            alone.elapsed() >= Duration::from_millis(50),
            "no thread: waits out the limit"
        );

        let thread = shared.clone();
        let taker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            lock(&thread.signal).started += 1;
            thread.started.notify_all();
        });
        let held = Instant::now();
        wait_for_checkpoint(&shared, 0, Duration::from_secs(60));
        let waited = held.elapsed();
        taker.join().unwrap();
        assert!(
            waited >= Duration::from_millis(20),
            "returned before the thread took it up"
        );
        assert!(
            waited < Duration::from_secs(30),
            "waited for the limit, not the start"
        );
    }
}
