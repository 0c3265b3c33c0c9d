//! Helpers shared by the fault-injection suites (crash consistency, multi-process
//! races): child-process plumbing, the status order, and a raw-SQL checker of the
//! database invariants every committed state must satisfy.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use actionq::ActionStatus;
use rusqlite::Connection;

/// Environment variable that turns a test binary into a child worker.
pub const CHILD_ROLE_ENV: &str = "ACTIONQ_FAULT_CHILD_ROLE";

/// Re-executes the current test binary so that only the test `entry` runs (child
/// entries are `#[ignore]`d, so a plain `cargo test` neither runs nor counts them), with
/// `role` in [`CHILD_ROLE_ENV`] plus `envs`.
pub fn spawn_child(entry: &str, role: &str, envs: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        entry,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ROLE_ENV, role)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}

/// Waits for a child started by [`spawn_child`] and fails the test, with its
/// stderr and `context`, unless it exited successfully.
pub fn wait_success(child: Child, context: &str) {
    let out = child.wait_with_output().expect("wait for child");
    assert!(
        out.status.success(),
        "{context}: child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The role of this process, if it was started by [`spawn_child`].
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE_ENV).ok()
}

/// An env var as a number, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic PRNG (xorshift64*), so children need no extra crates.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A seed from the clock, printed by callers so a failure can be replayed.
pub fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// True when `to` is `from` or can follow it through the status machine
/// (`docs/contract/domain.md#status-machine`): the
/// meaning of "at least that status" for an acknowledged operation.
pub fn reachable(from: ActionStatus, to: ActionStatus) -> bool {
    use ActionStatus::*;
    if from == to {
        return true;
    }
    match from {
        Pending => to != Pending,
        Approved => matches!(to, Cancelled | Executing | Completed | Failed),
        Executing => matches!(to, Completed | Failed),
        Rejected | Cancelled | Completed | Failed => false,
    }
}

/// What [`check_invariants`] saw.
#[derive(Debug, Default, Clone)]
pub struct DbStats {
    pub actions: u64,
    pub events: u64,
    pub max_action_id: i64,
    pub status: BTreeMap<String, i64>,
}

fn q_i64(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or(0)
}

/// `PRAGMA integrity_check` on a fresh raw connection.
pub fn integrity_check(path: &Path) -> String {
    let conn = Connection::open(path).expect("open raw connection");
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.join("; ")
}

/// Checks, with plain SQL on a v2 database, every invariant a committed state
/// must satisfy. Returns every violation found (empty when sound).
pub fn check_invariants(conn: &Connection) -> (Vec<String>, DbStats) {
    let mut bad = Vec::new();
    let mut stats = DbStats::default();
    // 1. Per-status field completeness: no half-applied transition.
    let rules: &[(&str, &str)] = &[
        (
            "pending",
            "approved_at IS NULL AND approved_by IS NULL AND rejected_at IS NULL \
             AND cancelled_at IS NULL AND executed_at IS NULL AND lease_token IS NULL \
             AND completed_at IS NULL AND exit_code IS NULL",
        ),
        (
            "approved",
            "approved_at IS NOT NULL AND approved_by IS NOT NULL AND rejected_at IS NULL \
             AND cancelled_at IS NULL AND executed_at IS NULL AND lease_token IS NULL \
             AND completed_at IS NULL AND exit_code IS NULL",
        ),
        (
            "rejected",
            "rejected_at IS NOT NULL AND rejected_by IS NOT NULL AND rejection_reason IS NOT NULL \
             AND approved_at IS NULL AND executed_at IS NULL AND completed_at IS NULL",
        ),
        (
            "cancelled",
            "cancelled_at IS NOT NULL AND cancelled_by IS NOT NULL AND rejected_at IS NULL \
             AND executed_at IS NULL AND lease_token IS NULL AND completed_at IS NULL",
        ),
        (
            "executing",
            "approved_at IS NOT NULL AND executed_at IS NOT NULL AND lease_expires_at IS NOT NULL \
             AND lease_token IS NOT NULL AND completed_at IS NULL AND exit_code IS NULL \
             AND cancelled_at IS NULL",
        ),
        (
            "completed",
            "approved_at IS NOT NULL AND executed_at IS NOT NULL AND completed_at IS NOT NULL \
             AND exit_code = 0 AND lease_token IS NULL",
        ),
        (
            "failed",
            "approved_at IS NOT NULL AND executed_at IS NOT NULL AND completed_at IS NOT NULL \
             AND exit_code IS NOT NULL AND exit_code != 0 AND lease_token IS NULL",
        ),
    ];
    for (status, ok) in rules {
        let n = q_i64(
            conn,
            &format!("SELECT COUNT(*) FROM actions WHERE status = '{status}' AND NOT COALESCE(({ok}), 0)"),
        );
        if n > 0 {
            let ids: Vec<i64> = conn
                .prepare(&format!(
                    "SELECT id FROM actions WHERE status = '{status}' AND NOT COALESCE(({ok}), 0) LIMIT 5"
                ))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            bad.push(format!("{n} half-applied '{status}' actions, e.g. {ids:?}"));
        }
    }
    let unknown = q_i64(
        conn,
        "SELECT COUNT(*) FROM actions WHERE status NOT IN \
         ('pending','approved','rejected','cancelled','executing','completed','failed')",
    );
    if unknown > 0 {
        bad.push(format!("{unknown} actions with an unknown status"));
    }
    // 2. Events: no orphan, one creation event first, a continuous chain ending
    //    in the current status.
    let orphans = q_i64(
        conn,
        "SELECT COUNT(*) FROM action_events e LEFT JOIN actions a ON a.id = e.action_id \
         WHERE e.kind = 'action' AND a.id IS NULL",
    );
    if orphans > 0 {
        bad.push(format!("{orphans} events of actions that do not exist"));
    }
    let mut current: BTreeMap<i64, String> = BTreeMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT id, status FROM actions ORDER BY id")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .unwrap();
        for row in rows {
            let (id, status) = row.unwrap();
            *stats.status.entry(status.clone()).or_default() += 1;
            current.insert(id, status);
        }
    }
    stats.actions = current.len() as u64;
    stats.max_action_id = current.keys().next_back().copied().unwrap_or(0);
    let mut chain_end: BTreeMap<i64, Option<String>> = BTreeMap::new();
    {
        let mut stmt = conn
            .prepare(
                "SELECT id, action_id, from_status, to_status FROM action_events \
                 WHERE kind = 'action' ORDER BY id",
            )
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .unwrap();
        for row in rows {
            let (event_id, action_id, from, to) = row.unwrap();
            stats.events += 1;
            let prev = chain_end.get(&action_id).cloned();
            match (&prev, &from) {
                (None, None) => {}
                (None, Some(f)) => bad.push(format!(
                    "event {event_id}: action {action_id}'s first event starts from '{f}', not creation"
                )),
                (Some(p), f) if f.as_ref() != p.as_ref() => bad.push(format!(
                    "event {event_id}: action {action_id} goes from {f:?} but was {p:?}"
                )),
                _ => {}
            }
            chain_end.insert(action_id, Some(to));
        }
    }
    for (id, status) in &current {
        match chain_end.get(id) {
            None => bad.push(format!("action {id} has no creation event")),
            Some(Some(last)) if last != status => bad.push(format!(
                "action {id} is '{status}' but its last event says '{last}'"
            )),
            _ => {}
        }
    }
    // 3. action_counts equals a GROUP BY over actions.
    let grouped = |sql: &str| -> BTreeMap<(String, String, String), i64> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)))
            .unwrap()
            .collect::<Result<BTreeMap<_, _>, _>>()
            .unwrap()
    };
    let truth = grouped(
        "SELECT server_id, action_type, status, COUNT(*) FROM actions \
         GROUP BY server_id, action_type, status",
    );
    let counts =
        grouped("SELECT server_id, action_type, status, n FROM action_counts WHERE n != 0");
    if truth != counts {
        bad.push(format!(
            "action_counts disagrees with actions: counts {counts:?} vs truth {truth:?}"
        ));
    }
    // 4. The id high-water marks (the reserved row of action_counts) cover
    //    every id (ids never reused).
    for (table, mark) in [("actions", "actions_seq"), ("action_events", "events_seq")] {
        let max = q_i64(conn, &format!("SELECT MAX(id) FROM {table}"));
        let seq = q_i64(
            conn,
            &format!("SELECT {mark} FROM action_counts WHERE server_id = '' AND status = ''"),
        );
        if seq < max {
            bad.push(format!("{mark} is {seq} < max id {max} of {table}"));
        }
    }
    (bad, stats)
}

/// Opens a raw connection and runs [`check_invariants`], panicking on violations.
pub fn assert_invariants(path: &Path, context: &str) -> DbStats {
    let conn = Connection::open(path).expect("open raw connection");
    let (bad, stats) = check_invariants(&conn);
    assert!(
        bad.is_empty(),
        "{context}: invariants violated:\n{}",
        bad.join("\n")
    );
    stats
}
