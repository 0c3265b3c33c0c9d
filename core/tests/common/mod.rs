//! Shared fixtures: a queue on each backend with a manual clock.
#![allow(dead_code)]

use std::sync::Arc;

use actionq::{ActionQueue, ManualClock, MemoryStore, QueueOptions, SqliteOptions, SqliteStore};
use tempfile::TempDir;

/// A queue under test, its clock, and (for SQLite) the directory holding its file.
pub struct Env {
    pub queue: ActionQueue,
    pub clock: Arc<ManualClock>,
    pub dir: Option<TempDir>,
}

pub fn start_time() -> actionq::Timestamp {
    "2026-03-01T12:00:00.123456Z".parse().unwrap()
}

impl Env {
    pub fn memory() -> Env {
        Env::with(ActionQueue::new(MemoryStore::new()), None)
    }

    pub fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("q.sqlite3"), &SqliteOptions::default()).unwrap();
        Env::with(ActionQueue::new(store), Some(dir))
    }

    fn with(queue: ActionQueue, dir: Option<TempDir>) -> Env {
        let clock = Arc::new(ManualClock::new(start_time()));
        Env {
            queue: queue.with_clock(clock.clone()),
            clock,
            dir,
        }
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

/// Generates one `#[test]` per backend for each named test function `fn(Env)`.
#[macro_export]
macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $( #[test] fn $name() { super::$name(super::common::Env::memory()) } )*
        }
        mod sqlite_store {
            $( #[test] fn $name() { super::$name(super::common::Env::sqlite()) } )*
        }
    };
}
