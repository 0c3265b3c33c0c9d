//! Waking waiters when the store changes (`docs/contract/push.md`).
//!
//! Every store owns one [`Notifier`]. The store signals it after each commit
//! that logged something ([`Notifier::notify`]); a store shared with other
//! processes also has one watch thread (`Watcher`) that signals it when
//! another process commits (SQLite: `PRAGMA data_version` on a connection of
//! its own; PostgreSQL: `LISTEN`). Waiters never poll the database: a
//! blocking waiter sleeps on the notifier's condition variable, an async host
//! registers a one-shot callback ([`Notifier::subscribe`]), and both re-check
//! after a wake.
//!
//! No wake is lost between a waiter's check and its sleep: a blocking waiter
//! reads the [`Notifier::generation`] *before* it checks and sleeps only while
//! the generation is still that one; a subscriber registers *before* it checks,
//! so a change after the check has already run (or will run) its callback.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::{thread::Thread, time::Duration};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// How long an idle watch thread sleeps before it looks whether its store is
/// gone (and, for a listener, between reads of the connection).
const WATCH_IDLE: Duration = Duration::from_millis(250);

/// The change signal of one store, shared by the store, its watch thread and
/// every waiter. Counts what is registered so that tests (and hosts) can see
/// that a waiter that gave up left nothing behind ([`Notifier::registrations`]).
pub struct Notifier {
    state: Mutex<State>,
    changed: Condvar,
    /// Runs whenever a waiter registers: makes sure the watch thread of a
    /// store shared with other processes is running.
    on_register: Option<Box<dyn Fn() + Send + Sync>>,
}

type Wake = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    generation: u64,
    /// Blocking waiters asleep in [`Notifier::wait_past`].
    sleepers: usize,
    next_id: u64,
    callbacks: HashMap<u64, Wake>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Notifier")
            .field("generation", &state.generation)
            .field("sleepers", &state.sleepers)
            .field("callbacks", &state.callbacks.len())
            .finish()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// A notifier only this process's commits signal (an in-memory store).
    pub fn new() -> Self {
        Notifier {
            state: Mutex::default(),
            changed: Condvar::new(),
            on_register: None,
        }
    }

    /// A notifier that calls `on_register` whenever a waiter registers
    /// (before the waiter sleeps): a store shared with other processes
    /// starts or wakes its watch thread there.
    pub fn with_watch(on_register: impl Fn() + Send + Sync + 'static) -> Self {
        Notifier {
            on_register: Some(Box::new(on_register)),
            ..Notifier::new()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock still holds sound counters.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something changed: wakes every sleeping waiter and runs (then forgets)
    /// every callback, on this thread, after the lock is released. Call it
    /// after the commit, outside the store's own locks (a callback may take
    /// a host's lock, such as Python's GIL).
    pub fn notify(&self) {
        let callbacks = {
            let mut state = self.lock();
            state.generation = state.generation.wrapping_add(1);
            std::mem::take(&mut state.callbacks)
        };
        self.changed.notify_all();
        for wake in callbacks.into_values() {
            wake();
        }
    }

    /// How many changes were signalled so far: read it before checking, then
    /// [`Notifier::wait_past`] it.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Sleeps until a change after generation `seen` is signalled (true) or
    /// `deadline` passes (false). Returns at once when one already was.
    pub fn wait_past(&self, seen: u64, deadline: Instant) -> bool {
        if let Some(register) = &self.on_register {
            register();
        }
        let mut state = self.lock();
        state.sleepers += 1;
        let changed = loop {
            if state.generation != seen {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        state.sleepers -= 1;
        changed
    }

    /// Runs `wake` once, at the next change (on the thread that signals it),
    /// unless the returned [`Subscription`] is dropped first. Register before
    /// checking, then check, then await the wake: no change is missed.
    pub fn subscribe(self: &Arc<Self>, wake: impl FnOnce() + Send + 'static) -> Subscription {
        if let Some(register) = &self.on_register {
            register();
        }
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.callbacks.insert(id, Box::new(wake));
        Subscription {
            notifier: Arc::downgrade(self),
            id,
        }
    }

    /// Waiters registered now: blocking waiters asleep plus callbacks not yet
    /// run. Zero once every waiter has been answered, timed out or given up.
    pub fn registrations(&self) -> usize {
        let state = self.lock();
        state.sleepers + state.callbacks.len()
    }
}

/// A callback registered with [`Notifier::subscribe`]; dropping it (or
/// [`Subscription::cancel`]) unregisters the callback if it has not run.
#[derive(Debug)]
pub struct Subscription {
    notifier: Weak<Notifier>,
    id: u64,
}

impl Subscription {
    /// Unregisters the callback (the same as dropping the subscription).
    pub fn cancel(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(notifier) = self.notifier.upgrade() {
            // Dropped outside the lock: a host's callback may hold host
            // objects whose release takes the host's own lock.
            let wake = notifier.lock().callbacks.remove(&self.id);
            drop(wake);
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// How a store learns of other processes' commits, on its watch thread.
pub(crate) trait Watch: Send + 'static {
    /// Waits up to about `at_most` for a commit by another connection.
    /// True when there was one, or may have been one unseen (the first call,
    /// after a reconnect): every waiter then checks again.
    fn changed(&mut self, at_most: Duration) -> bool;

    /// Whether the thread must keep reading while nobody waits (a listening
    /// connection must be drained, or the server queues notifications for it).
    fn drains(&self) -> bool;
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The one watch thread of a store: started by the first waiter, asleep
/// while nobody waits (unless its [`Watch`] must drain), gone soon after
/// the store is dropped.
pub(crate) struct Watcher {
    notifier: Weak<Notifier>,
    start: Mutex<WatcherStart>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
enum WatcherStart {
    Idle(Box<dyn FnOnce() -> Box<dyn Watch> + Send>),
    Running(Thread),
    Failed,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Watcher {
    /// A notifier whose watch thread runs the [`Watch`] that `open` makes
    /// (on the thread, so a slow connect never holds up a waiter).
    pub(crate) fn notifier(
        open: impl FnOnce() -> Box<dyn Watch> + Send + 'static,
    ) -> Arc<Notifier> {
        Arc::new_cyclic(|weak: &Weak<Notifier>| {
            let watcher = Watcher {
                notifier: weak.clone(),
                start: Mutex::new(WatcherStart::Idle(Box::new(open))),
            };
            Notifier::with_watch(move || watcher.ensure_running())
        })
    }

    fn ensure_running(&self) {
        let mut start = self.start.lock().unwrap_or_else(|e| e.into_inner());
        match &*start {
            WatcherStart::Running(thread) => thread.unpark(),
            WatcherStart::Failed => {}
            WatcherStart::Idle(_) => {
                let WatcherStart::Idle(open) = std::mem::replace(&mut *start, WatcherStart::Failed)
                else {
                    unreachable!()
                };
                let notifier = self.notifier.clone();
                let spawned = std::thread::Builder::new()
                    .name("actionq-watch".into())
                    .spawn(move || watch(notifier, open()));
                // Without a thread (out of threads) waiters still wake on this
                // process's commits and at their deadline.
                if let Ok(handle) = spawned {
                    *start = WatcherStart::Running(handle.thread().clone());
                }
            }
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The watch thread's loop: ends once the store (and so its notifier) is gone.
fn watch(notifier: Weak<Notifier>, mut source: Box<dyn Watch>) {
    loop {
        let Some(strong) = notifier.upgrade() else {
            return;
        };
        let idle = strong.registrations() == 0 && !source.drains();
        drop(strong);
        if idle {
            std::thread::park_timeout(WATCH_IDLE);
            continue;
        }
        if source.changed(WATCH_IDLE) {
            match notifier.upgrade() {
                Some(strong) => strong.notify(),
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn a_change_before_the_sleep_is_not_missed() {
        let notifier = Notifier::new();
        let seen = notifier.generation();
        notifier.notify();
        let start = Instant::now();
        assert!(notifier.wait_past(seen, Instant::now() + Duration::from_secs(30)));
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_eq!(notifier.registrations(), 0);
    }

    #[test]
    fn callbacks_run_once_and_dropped_ones_never() {
        let notifier = Arc::new(Notifier::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let kept = notifier.subscribe(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let counted = runs.clone();
        let dropped = notifier.subscribe(move || {
            counted.fetch_add(100, Ordering::SeqCst);
        });
        assert_eq!(notifier.registrations(), 2);
        drop(dropped);
        notifier.notify();
        notifier.notify();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop(kept);
        assert_eq!(notifier.registrations(), 0);
    }
}
