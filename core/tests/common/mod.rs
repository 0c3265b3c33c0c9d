//! Shared fixtures: a queue on each backend with a manual clock, and the
//! registry of backends the behavioural suite runs on ([`for_each_store!`]).
//!
//! A backend is registered once, here: an `Env` constructor and one line in
//! `for_each_store!`. Tests never ask which backend they run on; one that needs
//! another empty queue of the same kind calls [`Env::fresh`].
#![allow(dead_code)]

use std::sync::Arc;

use actionq::{ActionQueue, ManualClock, MemoryStore, QueueOptions};
#[cfg(feature = "sqlite")]
use actionq::{SqliteOptions, SqliteStore};
use tempfile::TempDir;

/// A queue under test, its clock, and (for file-backed stores) the directory
/// holding its files.
pub struct Env {
    pub queue: ActionQueue,
    pub clock: Arc<ManualClock>,
    pub dir: Option<TempDir>,
    /// The constructor that made this Env: another one on the same backend.
    make: fn() -> Env,
}

pub fn start_time() -> actionq::Timestamp {
    "2026-03-01T12:00:00.123456Z".parse().unwrap()
}

impl Env {
    /// A queue over a fresh [`MemoryStore`].
    pub fn memory() -> Env {
        Env::with(ActionQueue::new(MemoryStore::new()), None, Env::memory)
    }

    /// A queue over a fresh [`SqliteStore`] in its own temporary directory.
    #[cfg(feature = "sqlite")]
    pub fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("q.sqlite3"), &SqliteOptions::default()).unwrap();
        Env::with(ActionQueue::new(store), Some(dir), Env::sqlite)
    }

    fn with(queue: ActionQueue, dir: Option<TempDir>, make: fn() -> Env) -> Env {
        let clock = Arc::new(ManualClock::new(start_time()));
        Env {
            queue: queue.with_clock(clock.clone()),
            clock,
            dir,
            make,
        }
    }

    /// Another empty queue (default options and whitelist, its own clock at
    /// [`start_time`]) on the same backend as this one.
    pub fn fresh(&self) -> Env {
        (self.make)()
    }

    pub fn options(mut self, options: QueueOptions) -> Env {
        self.queue = self.queue.with_options(options);
        self
    }

    pub fn whitelist(mut self, json: &str) -> Env {
        self.queue = self
            .queue
            .with_whitelist(actionq::Whitelist::from_json(json).unwrap());
        self
    }

    pub fn clock_now(&self) -> actionq::Timestamp {
        actionq::Clock::now(&*self.clock)
    }

    pub fn advance_secs(&self, secs: i64) {
        self.clock.advance(chrono::TimeDelta::seconds(secs));
    }
}

/// Generates one `#[test]` per backend for each named test function `fn(Env)`,
/// in a module per backend (`memory_store::name`, `sqlite_store::name`). This
/// is the list of backends the suite runs on: one line each.
#[macro_export]
macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        $crate::store_suite!(memory_store, memory; $($name),*);
        #[cfg(feature = "sqlite")]
        $crate::store_suite!(sqlite_store, sqlite; $($name),*);
    };
}

/// The tests of one backend: `mod $module` with one `#[test]` per name, each
/// given a fresh `Env::$backend()`.
#[macro_export]
macro_rules! store_suite {
    ($module:ident, $backend:ident; $($name:ident),*) => {
        mod $module {
            $( #[test] fn $name() { super::$name(super::common::Env::$backend()) } )*
        }
    };
}
