//! `create_rate --db PATH --n N`: creates N actions on a fresh SQLite file
//! with the default whitelist, the way `make bench`'s create section does, and
//! prints `{"per_s": ...}`. `--db :memory:` uses the in-memory store.
//!
//! Not part of the workspace: `make bench-baseline` copies it into an export
//! of the baseline revision (`BENCH_BASELINE_REV`) as a binary of that
//! revision's Rust example crate, so the same loop runs against the library
//! as it was, beside the current one, in the same `make bench` run. It uses
//! only API that every revision since the seed has.

use std::time::Instant;

use actionq::{ActionQueue, NewAction};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| panic!("usage: create_rate --db PATH --n N (missing {name})"))
            .clone()
    };
    let db = flag("--db");
    let n: usize = flag("--n").parse().expect("--n is a number");
    let queue = if db == ":memory:" {
        ActionQueue::in_memory()
    } else {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{db}{suffix}"));
        }
        ActionQueue::open(&db).expect("open")
    };
    queue.create_server("bench-0", None).expect("server");
    let start = Instant::now();
    for i in 0..n {
        queue
            .create_action(
                &NewAction::new("bench-0", "restart_service").service_name(format!("svc-{i}.service")),
            )
            .expect("create");
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
    println!("{{\"per_s\": {per_s}}}");
}
