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

    /// A queue over a [`PostgresStore`](actionq::PostgresStore) in a fresh schema
    /// of the test server (`ACTIONQ_TEST_PG_URL`); `None` (after saying why)
    /// when no server is configured outside CI.
    #[cfg(feature = "postgres")]
    pub fn postgres() -> Option<Env> {
        let url = pg::fresh_schema_url()?;
        let store =
            actionq::PostgresStore::open(&url, &actionq::PostgresOptions::default()).unwrap();
        Some(Env::with(
            ActionQueue::new(store),
            None,
            Env::postgres_required,
        ))
    }

    #[cfg(feature = "postgres")]
    fn postgres_required() -> Env {
        Env::postgres().expect("a PostgreSQL test server")
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
        #[cfg(feature = "postgres")]
        $crate::optional_store_suite!(postgres_store, postgres; $($name),*);
    };
}

/// Like [`store_suite!`] for a backend that needs a server: `Env::$backend()`
/// returns `None` when none is configured (outside CI), and the test passes
/// after saying it was skipped.
#[macro_export]
macro_rules! optional_store_suite {
    ($module:ident, $backend:ident; $($name:ident),*) => {
        mod $module {
            $( #[test] fn $name() {
                if let Some(env) = super::common::Env::$backend() { super::$name(env) }
            } )*
        }
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

/// The PostgreSQL test server: `ACTIONQ_TEST_PG_URL`, set by `make test`
/// (mk/with-postgres.sh). Each test gets its own schema, so tests run in
/// parallel on one server without seeing each other.
#[cfg(feature = "postgres")]
pub mod pg {
    /// The server's superuser URL, or `None` (with a message) when it is not
    /// set outside CI. Under `CI=true` a missing server fails the test.
    pub fn admin_url() -> Option<String> {
        match std::env::var("ACTIONQ_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "ACTIONQ_TEST_PG_URL is not set under CI=true: the PostgreSQL tests must run \
                     (`make test` starts a server with mk/with-postgres.sh)"
                );
                // Straight to the process's stderr: the test harness captures
                // `eprintln!` (shown only for failures), and a skip must not
                // pass for a quiet "ok".
                use std::io::Write;
                let test = std::thread::current();
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "SKIPPED {}: ACTIONQ_TEST_PG_URL is not set (run under `make pg-shell` or \
                     `make test`; CI=true makes this a failure)",
                    test.name().unwrap_or("a PostgreSQL test")
                );
                None
            }
        }
    }

    /// A superuser connection to the test server.
    pub fn admin() -> postgres::Client {
        postgres::Client::connect(&admin_url().expect("ACTIONQ_TEST_PG_URL"), postgres::NoTls)
            .unwrap()
    }

    /// `url` with `key=value` added to its query.
    pub fn with_param(url: &str, key: &str, value: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{key}={value}")
    }

    /// The URL of a new, empty schema (first on the search path), or `None` as
    /// [`admin_url`].
    pub fn fresh_schema_url() -> Option<String> {
        let url = admin_url()?;
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        admin()
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        Some(schema_url(&url, &schema))
    }

    /// `url` with `schema` as its search path.
    pub fn schema_url(url: &str, schema: &str) -> String {
        with_param(url, "options", &format!("-csearch_path%3D{schema}"))
    }

    /// The schema a URL of [`fresh_schema_url`] names.
    pub fn schema_of(url: &str) -> String {
        url.rsplit("search_path%3D").next().unwrap().to_owned()
    }
}

/// This test binary's ignored child entry `entry`, run alone under strace
/// with its fsync and fdatasync calls (of every thread) written to `trace`:
/// the sync setting is invisible from inside the process. The caller adds
/// the child's environment and runs it.
pub fn child_under_strace(trace: &std::path::Path, entry: &str) -> std::process::Command {
    let mut command = std::process::Command::new("strace");
    command
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(trace)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "--ignored", entry, "--test-threads=1"]);
    command
}
