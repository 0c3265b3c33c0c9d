//! The Rust host of the interop test (`tests/test_interop.py`): follows the
//! audit log of one SQLite file with a cursor while other processes (a Python
//! creator, C agents) write to it, and prints every event it read.
//!
//! Usage: `actionq-interop-reader DB HANDSHAKE_DIR`. Opens the queue, writes
//! `HANDSHAKE_DIR/reader.ready`, waits for `HANDSHAKE_DIR/go`, then reads
//! `events_since(cursor, PAGE)` in a loop, the cursor being the last id read.
//! The first time a read returns fewer than `PAGE` events once it has read
//! some (it has caught up with the writers) it writes
//! `HANDSHAKE_DIR/reader.caught-up` holding its cursor. Once
//! `HANDSHAKE_DIR/stop` exists (the parent writes it when every writer has
//! exited) it reads until a read returns nothing and prints `{"events": [...],
//! "caught_up": [each new cursor such a read ended at], "reads": N}` on
//! stdout. Any error (a busy lock included) is printed on stderr and exits
//! with status 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use actionq::{ActionQueue, Event, SqliteOptions, SqliteStore};
use serde_json::json;

/// Events asked for per read: small, so the writers' work spans many reads.
const PAGE: i64 = 16;
/// Lock waits are absorbed by the busy timeout, never reported.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);
/// Failure timeout of the handshake waits (not a correctness bound).
const DEADLINE: Duration = Duration::from_secs(240);
/// Pause between reads that found nothing (pacing only: correctness comes
/// from the cursor and the `stop` handshake).
const IDLE: Duration = Duration::from_millis(1);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, dir] = args.as_slice() else {
        eprintln!("usage: actionq-interop-reader DB HANDSHAKE_DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(db), Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("actionq-interop-reader: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to `path` atomically (a reader of `path` sees all or nothing).
fn publish(path: &Path, text: &str) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename to {}: {e}", path.display()))
}

fn wait_for(path: &Path) -> Result<(), String> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > DEADLINE {
            return Err(format!("{} never appeared", path.display()));
        }
        std::thread::sleep(IDLE);
    }
    Ok(())
}

fn run(db: &Path, dir: &Path) -> Result<(), String> {
    let options = SqliteOptions {
        busy_timeout: BUSY_TIMEOUT,
        ..SqliteOptions::default()
    };
    let store =
        SqliteStore::open(db, &options).map_err(|e| format!("open {}: {e}", db.display()))?;
    let queue = ActionQueue::new(store);
    publish(&dir.join("reader.ready"), "ready")?;
    wait_for(&dir.join("go"))?;

    let start = Instant::now();
    let stop = dir.join("stop");
    let mut events: Vec<Event> = Vec::new();
    let mut caught_up: Vec<i64> = Vec::new();
    let mut reads = 0u64;
    let mut cursor = 0;
    loop {
        // Checked before the read: a read that starts after `stop` appeared
        // sees every committed event, so an empty one ends the stream.
        let stopping = stop.exists();
        let batch = queue.events_since(cursor, PAGE, None).map_err(|e| {
            let busy = if e.is_busy() {
                " (busy past the timeout)"
            } else {
                ""
            };
            format!("events_since({cursor}, {PAGE}){busy}: {e}")
        })?;
        reads += 1;
        let got = batch.len() as i64;
        if let Some(last) = batch.last() {
            cursor = last.id;
        }
        events.extend(batch);
        // Fewer than asked for: every event committed before this read is read.
        if got < PAGE && !events.is_empty() {
            if caught_up.is_empty() {
                publish(&dir.join("reader.caught-up"), &cursor.to_string())?;
            }
            if caught_up.last() != Some(&cursor) {
                caught_up.push(cursor);
            }
        }
        if got == 0 {
            if stopping {
                break;
            }
            if start.elapsed() > DEADLINE {
                return Err("no stop file before the deadline".into());
            }
            std::thread::sleep(IDLE);
        }
    }
    let out = json!({ "events": events, "caught_up": caught_up, "reads": reads });
    println!("{out}");
    Ok(())
}
