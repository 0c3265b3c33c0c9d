//! Crash safety of the SQLite store: a child process doing creates and
//! transitions is SIGKILLed at random moments; after every kill the file must be
//! sound, hold everything the child had acknowledged, and hold the one operation
//! that was in flight either completely or not at all.
//!
//! The child is this test binary re-executed (see `fault_support::spawn_child`).
//! It appends to one log file (plain `write(2)` calls, no fsync: a SIGKILL keeps
//! the page cache, so every line whose write returned is there for the parent;
//! only power loss, which this test does not simulate, would need an fsync):
//!
//! - `O` just before `SqliteStore::open`, `P` just after it returns, and `M`
//!   from inside the migration (`SqliteStore::on_migration_start`: its write
//!   transaction holds the lock, no step has run);
//! - `B <n> <kind> <id> <targets>` immediately before each write call into the
//!   store (the child's store is a [`MarkedStore`] around `SqliteStore`) and
//!   `D <n>` right after it returns;
//! - `A <id> <status>` after each queue call returns (the acknowledgement: a
//!   lower bound of what the database must contain).
//!
//! The parent classifies every kill by the log: a `B` without its `D` means the
//! kill landed inside a store write (lock, statements or COMMIT). It asserts a
//! minimum share of kills landed there, and that both halves of "whole or
//! absent" were seen (a kill inside a write that had applied it, and one that
//! had not). A separate test kills children inside the migration of a large
//! v1 file, counted from the `M` marker.
//!
//! Rounds: `ACTIONQ_CRASH_ROUNDS` (default 24; `make soak` raises it).
//! Seed: `ACTIONQ_CRASH_SEED` replays a run (printed on failure).
#![cfg(feature = "sqlite")]

mod fault_support;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actionq::store::{
    ActionDraft, Change, ChangeKind, ConflictGuard, CredentialDraft, PageRequest,
};
use actionq::{
    Action, ActionFilter, ActionQuery, ActionQueue, ActionStatus, Credential, Durability,
    ErrorKind, Event, NewAction, QueueOptions, Server, SqliteOptions, SqliteStore, Store,
    Timestamp,
};
use fault_support::*;

const ENTRY: &str = "crash_child_entry";
const SERVERS: [&str; 4] = ["web-0", "web-1", "maint-0", "maint-1"];
const SERVICES: [&str; 6] = [
    "nginx.service",
    "ssh",
    "postgresql.service",
    "cron",
    "docker",
    "rsyslog",
];
/// At least this share (percent) of the workload kills must land inside a store
/// write, and at least `MIN_INSIDE_WRITES` of them.
const MIN_INSIDE_SHARE_PCT: usize = 20;
const MIN_INSIDE_WRITES: usize = 4;
/// Kills inside the migration of a v1 file (after the child's `M` marker, before
/// open returned) the migration test must see, and how many of them must have
/// left the file at v1 (before the migration committed).
const MIN_KILLED_IN_MIGRATION: usize = 6;
const MIN_KILLED_BEFORE_MIGRATION_COMMIT: usize = 3;
/// Extra pending actions in the migration test's v1 file, so that the migration
/// (a GROUP BY into action_counts and two index builds) takes a while.
const BULK_V1_ACTIONS: u64 = 5_000;

/// Appends one line with a single `write(2)` (the file is opened for append).
fn log_line(log: &File, line: &str) {
    let mut w = log;
    w.write_all(format!("{line}\n").as_bytes())
        .expect("write the crash log");
}

fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the crash log")
}

/// A `SqliteStore` that logs `B`/`D` markers around every write call. With
/// `hold_from`, the first create at or after that write number that succeeds
/// logs `H <n>` once it has returned and then never goes on: the parent kills
/// it there, a kill inside the write (no `D`) with the write whole by
/// construction.
struct MarkedStore {
    inner: SqliteStore,
    log: Arc<File>,
    n: AtomicU64,
    hold_from: Option<u64>,
}

impl MarkedStore {
    fn mark<T>(
        &self,
        what: &str,
        f: impl FnOnce(&SqliteStore) -> actionq::Result<T>,
    ) -> actionq::Result<T> {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        log_line(&self.log, &format!("B {n} {what}"));
        let out = f(&self.inner);
        if what.starts_with("create ") && out.is_ok() && self.hold_from.is_some_and(|h| n >= h) {
            log_line(&self.log, &format!("H {n}"));
            loop {
                std::thread::park();
            }
        }
        log_line(&self.log, &format!("D {n}"));
        out
    }
}

/// The status(es) `kind` leads to, as logged in a `B` line.
fn targets(kind: &ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Approve { .. } => "approved",
        ChangeKind::Reject { .. } => "rejected",
        ChangeKind::Cancel | ChangeKind::CancelPending => "cancelled",
        ChangeKind::Claim { .. } | ChangeKind::Heartbeat { .. } => "executing",
        ChangeKind::Report { exit_code: 0, .. } => "completed",
        ChangeKind::Report { .. } | ChangeKind::Expire => "failed",
        ChangeKind::ExpireApproval { .. } => "rejected",
    }
}

impl Store for MarkedStore {
    fn insert_server(&self, server: &Server) -> actionq::Result<()> {
        self.mark("server 0 -", |s| s.insert_server(server))
    }
    fn get_server(&self, id: &str) -> actionq::Result<Option<Server>> {
        self.inner.get_server(id)
    }
    fn set_paused(
        &self,
        id: &str,
        paused: bool,
        by: &str,
        at: Timestamp,
    ) -> actionq::Result<Option<Server>> {
        self.mark("pause 0 -", |s| s.set_paused(id, paused, by, at))
    }
    fn insert_action(&self, draft: ActionDraft, guard: &ConflictGuard) -> actionq::Result<Action> {
        self.mark("create 0 pending,approved", |s| {
            s.insert_action(draft, guard)
        })
    }
    fn get_action(&self, id: i64) -> actionq::Result<Option<Action>> {
        self.inner.get_action(id)
    }
    fn list_actions(
        &self,
        filter: &ActionFilter,
        page: PageRequest,
    ) -> actionq::Result<(Vec<Action>, u64)> {
        self.inner.list_actions(filter, page)
    }
    fn update_action(&self, id: i64, change: &Change) -> actionq::Result<Action> {
        let what = format!("update {id} {}", targets(&change.kind));
        self.mark(&what, |s| s.update_action(id, change))
    }
    fn claim_next(&self, server_id: &str, change: &Change) -> actionq::Result<Option<Action>> {
        self.mark("claim 0 executing", |s| s.claim_next(server_id, change))
    }
    fn expire_leases(&self, change: &Change) -> actionq::Result<Vec<Action>> {
        self.mark("expire 0 failed", |s| s.expire_leases(change))
    }
    fn expire_approvals(
        &self,
        action_type: &str,
        created_until: Timestamp,
        change: &Change,
    ) -> actionq::Result<Vec<Action>> {
        self.mark("expire 0 rejected", |s| {
            s.expire_approvals(action_type, created_until, change)
        })
    }
    fn events_since(&self, cursor: i64, limit: u32) -> actionq::Result<Vec<Event>> {
        self.inner.events_since(cursor, limit)
    }
    fn notifier(&self) -> &Arc<actionq::store::Notifier> {
        self.inner.notifier()
    }
    fn verify_audit(&self) -> actionq::Result<actionq::AuditReport> {
        self.inner.verify_audit()
    }
    fn prune_checkpoint(&self) -> actionq::Result<actionq::store::PruneCheckpoint> {
        self.inner.prune_checkpoint()
    }
    fn prune_prefix(
        &self,
        from: &actionq::store::PruneCheckpoint,
        last_event_id: i64,
        last_action_id: i64,
    ) -> actionq::Result<Option<u64>> {
        self.inner.prune_prefix(from, last_event_id, last_action_id)
    }
    fn insert_credential(&self, draft: CredentialDraft) -> actionq::Result<Credential> {
        self.inner.insert_credential(draft)
    }
    fn list_credentials(&self) -> actionq::Result<Vec<Credential>> {
        self.inner.list_credentials()
    }
    fn revoke_credential(
        &self,
        id: i64,
        at: Timestamp,
        by: &str,
    ) -> actionq::Result<Option<Credential>> {
        self.inner.revoke_credential(id, at, by)
    }
    fn find_credential(&self, secret_sha256: &[u8; 32]) -> actionq::Result<Option<Credential>> {
        self.inner.find_credential(secret_sha256)
    }
    fn list_servers(&self) -> actionq::Result<Vec<Server>> {
        self.inner.list_servers()
    }
    fn count_actions(&self) -> actionq::Result<Vec<actionq::ActionCount>> {
        self.inner.count_actions()
    }
    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: actionq::Timestamp,
        expires_at: actionq::Timestamp,
    ) -> actionq::Result<Result<actionq::JobLease, actionq::JobLease>> {
        self.inner.take_lease(name, holder, now, expires_at)
    }
    fn release_lease(&self, name: &str, holder: &str) -> actionq::Result<bool> {
        self.inner.release_lease(name, holder)
    }
    fn register_delivery(&self, name: &str, kind: &str) -> actionq::Result<actionq::Delivery> {
        self.inner.register_delivery(name, kind)
    }
    fn record_delivery(
        &self,
        name: &str,
        holder: &str,
        now: actionq::Timestamp,
        update: &actionq::store::DeliveryUpdate,
    ) -> actionq::Result<actionq::Delivery> {
        self.inner.record_delivery(name, holder, now, update)
    }
    fn list_deliveries(&self) -> actionq::Result<Vec<actionq::Delivery>> {
        self.inner.list_deliveries()
    }
    fn append_output(&self, id: i64, draft: &actionq::store::OutputDraft) -> actionq::Result<bool> {
        self.inner.append_output(id, draft)
    }
    fn output_since(&self, id: i64, after: i64) -> actionq::Result<Vec<actionq::OutputChunk>> {
        self.inner.output_since(id, after)
    }
}

/// The child's log, for the migration hook (a plain `fn`).
static CHILD_LOG: std::sync::OnceLock<Arc<File>> = std::sync::OnceLock::new();

/// The child's workload (role `crash`) or a bare open (role `open`). A no-op
/// unless started by a parent below.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn crash_child_entry() {
    let role = child_role();
    if role.as_deref() != Some("crash") && role.as_deref() != Some("open") {
        return;
    }
    let db = PathBuf::from(std::env::var("ACTIONQ_CRASH_DB").unwrap());
    let log = Arc::new(open_log(Path::new(
        &std::env::var("ACTIONQ_CRASH_LOG").unwrap(),
    )));
    let seed = env_num("ACTIONQ_CRASH_SEED", 1);
    let durability = if std::env::var("ACTIONQ_CRASH_FULL").is_ok() {
        Durability::Full
    } else {
        Durability::Normal
    };
    let options = SqliteOptions {
        durability,
        ..SqliteOptions::default()
    };
    CHILD_LOG.set(Arc::clone(&log)).unwrap();
    SqliteStore::on_migration_start(|| log_line(CHILD_LOG.get().unwrap(), "M"));
    log_line(&log, "O");
    let store = SqliteStore::open(&db, &options).expect("child open");
    log_line(&log, "P");
    if role.as_deref() == Some("open") {
        return;
    }
    // Every write of the workload is acknowledged in the log, lease expiry
    // included (its own step): no unlogged sweep before claims.
    let queue = ActionQueue::new(MarkedStore {
        inner: store,
        log: Arc::clone(&log),
        n: AtomicU64::new(0),
        hold_from: std::env::var("ACTIONQ_CRASH_HOLD_FROM")
            .ok()
            .map(|n| n.parse().unwrap()),
    })
    .with_options(QueueOptions {
        expire_leases_on_read: false,
        ..QueueOptions::default()
    });
    child_workload(&queue, &log, seed);
}

fn child_workload(queue: &ActionQueue, log: &File, seed: u64) -> ! {
    let mut rng = Rng::new(seed);
    let ack = |id: i64, status: ActionStatus| log_line(log, &format!("A {id} {status}"));
    for (i, server) in SERVERS.iter().enumerate() {
        match queue.create_server(server, None) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => panic!("create server: {e}"),
        }
        if i >= 2 {
            queue.pause_server(server).unwrap();
        }
    }
    // Pick up the live actions earlier rounds left behind.
    let mut live: Vec<i64> = Vec::new();
    for status in [ActionStatus::Pending, ActionStatus::Approved] {
        let page = queue
            .list_actions(&ActionQuery {
                status: Some(status),
                limit: 100,
                ..ActionQuery::default()
            })
            .unwrap();
        live.extend(page.actions.iter().map(|a| a.id));
    }
    let mut held: Vec<(i64, String)> = Vec::new();
    let ok_or_expected = |e: &actionq::Error| {
        assert!(
            matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound),
            "unexpected error in child: {e}"
        )
    };
    loop {
        let roll = rng.below(100);
        match roll {
            0..=34 => {
                let server = *rng.pick(&SERVERS);
                let request = match rng.below(4) {
                    0 | 1 => {
                        NewAction::new(server, "restart_service").service_name(*rng.pick(&SERVICES))
                    }
                    2 => NewAction::new(server, "clear_logs"),
                    _ => NewAction::new(server, *rng.pick(&["apt_update", "apt_upgrade_all"])),
                };
                match queue.create_action(&request) {
                    Ok(a) => {
                        ack(a.id, a.status);
                        live.push(a.id);
                    }
                    Err(e) => ok_or_expected(&e),
                }
            }
            35..=49 if !live.is_empty() => {
                let id = *rng.pick(&live);
                match queue.approve_action(id) {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            50..=54 if !live.is_empty() => {
                let id = *rng.pick(&live);
                match queue.reject_action(id, "not now") {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            55..=61 if !live.is_empty() => {
                let id = *rng.pick(&live);
                match queue.cancel_action(id) {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            62..=76 => {
                let server = *rng.pick(&SERVERS);
                let lease = Duration::from_secs(1 + rng.below(5));
                match queue.claim_next(server, Some(lease), None) {
                    Ok(Some(c)) => {
                        ack(c.action.id, c.action.status);
                        held.push((c.action.id, c.lease_token));
                    }
                    Ok(None) => {}
                    Err(e) => ok_or_expected(&e),
                }
            }
            77..=88 if !held.is_empty() => {
                let (id, token) = held.swap_remove(rng.below(held.len() as u64) as usize);
                let exit = *rng.pick(&[0, 0, 1, 2, 137]);
                let out = "x".repeat(rng.below(20_000) as usize);
                match queue.report_result(id, &token, exit, Some(&out), Some("err")) {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            89..=95 if !held.is_empty() => {
                let (id, token) = held[rng.below(held.len() as u64) as usize].clone();
                match queue.heartbeat(id, &token, Some(Duration::from_secs(3))) {
                    Ok(a) => ack(a.id, a.status),
                    Err(e) => ok_or_expected(&e),
                }
            }
            96..=99 => {
                for a in queue.expire_leases().expect("expire") {
                    ack(a.id, a.status);
                }
            }
            _ => {}
        }
    }
}

/// A store write the log shows as started: `B <n> <kind> <id> <targets>`.
#[derive(Debug, Clone)]
struct Op {
    n: u64,
    kind: String,
    id: i64,
    targets: Vec<ActionStatus>,
}

/// What a child's part of the log (from some offset on) shows.
#[derive(Debug, Default)]
struct Markers {
    opening: bool,
    /// Inside the migration's write transaction (`M`).
    migrating: bool,
    opened: bool,
    /// The last store write started, and whether it returned (`D`).
    last_op: Option<Op>,
    last_op_done: bool,
    /// The last write returned and the child holds there (`H`).
    held: bool,
}

impl Markers {
    fn inside_write(&self) -> bool {
        self.last_op.is_some() && !self.last_op_done
    }
    fn inside_open(&self) -> bool {
        self.opening && !self.opened
    }
    fn inside_migration(&self) -> bool {
        self.migrating && !self.opened
    }
}

/// Only complete lines: a kill may (in theory) tear the last one.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete.lines()
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn parse_markers(text: &str) -> Markers {
    let mut m = Markers::default();
    for line in complete_lines(text) {
        let mut words = line.split(' ');
        match words.next() {
            Some("O") => m.opening = true,
            Some("M") => m.migrating = true,
            Some("P") => m.opened = true,
            Some("B") => {
                let n = words.next().unwrap().parse().unwrap();
                let kind = words.next().unwrap().to_owned();
                let id = words.next().unwrap().parse().unwrap();
                let targets = match words.next().unwrap() {
                    "-" => Vec::new(),
                    t => t.split(',').map(|s| s.parse().unwrap()).collect(),
                };
                m.last_op = Some(Op {
                    n,
                    kind,
                    id,
                    targets,
                });
                m.last_op_done = false;
            }
            Some("H") => m.held = true,
            Some("D") => {
                let n: u64 = words.next().unwrap().parse().unwrap();
                assert_eq!(m.last_op.as_ref().map(|o| o.n), Some(n), "D without B");
                m.last_op_done = true;
            }
            _ => {}
        }
    }
    m
}

/// Every acknowledgement (`A` line), in order.
fn read_acks(text: &str) -> Vec<(i64, ActionStatus)> {
    complete_lines(text)
        .filter_map(|line| line.strip_prefix("A "))
        .map(|rest| {
            let (id, status) = rest.split_once(' ').expect("ack line");
            (id.parse().unwrap(), status.parse().unwrap())
        })
        .collect()
}

fn db_statuses(path: &Path) -> BTreeMap<i64, ActionStatus> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT id, status FROM actions").unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    rows.map(|r| {
        let (id, s) = r.unwrap();
        (id, s.parse().unwrap())
    })
    .collect()
}

/// Checks that the file differs from the acknowledgements only by the effect of
/// the one store write that may have been in flight (`op`: started, and its
/// result maybe not acknowledged), applied completely or not at all (the
/// per-status field and event-chain checks of `assert_invariants` catch a
/// half-applied row). Returns the rows that differ, so the parent can record
/// them as the new baseline.
fn check_in_flight(
    db: &BTreeMap<i64, ActionStatus>,
    acks: &[(i64, ActionStatus)],
    op: Option<&Op>,
    ctx: &str,
) -> Vec<(i64, ActionStatus)> {
    let last: BTreeMap<i64, ActionStatus> = acks.iter().copied().collect();
    let max_acked = last.keys().next_back().copied().unwrap_or(0);
    for (id, acked) in &last {
        let now = db
            .get(id)
            .unwrap_or_else(|| panic!("{ctx}: acknowledged action {id} ({acked}) is missing"));
        assert!(
            reachable(*acked, *now),
            "{ctx}: action {id} was acknowledged '{acked}' but is '{now}'"
        );
    }
    let diff: Vec<(i64, Option<ActionStatus>, ActionStatus)> = db
        .iter()
        .filter(|(id, now)| last.get(id) != Some(now))
        .map(|(id, now)| (*id, last.get(id).copied(), *now))
        .collect();
    let explained = |&(id, before, now): &(i64, Option<ActionStatus>, ActionStatus)| -> bool {
        let Some(op) = op else { return false };
        if !op.targets.contains(&now) {
            return false;
        }
        match (op.kind.as_str(), before) {
            ("create", None) => id > max_acked,
            ("update", Some(b)) => id == op.id && reachable(b, now),
            ("claim", Some(b)) => b == ActionStatus::Approved,
            ("expire", Some(b)) => b == ActionStatus::Executing,
            _ => false,
        }
    };
    let many_allowed = op.is_some_and(|o| o.kind == "expire");
    assert!(
        diff.iter().all(explained) && (diff.len() <= 1 || many_allowed),
        "{ctx}: the file differs from the acknowledgements by more than the in-flight \
         write {op:?}: (id, acknowledged, in file) {diff:?}"
    );
    diff.into_iter().map(|(id, _, now)| (id, now)).collect()
}

/// Polls the log (a handshake, not a timing assumption) until `pred` holds for
/// the part after `from`. Fails if the child exits first.
fn wait_for(
    log: &Path,
    from: usize,
    child: &mut Child,
    what: &str,
    pred: impl Fn(&Markers) -> bool,
) {
    loop {
        let text = read_log(log);
        if pred(&parse_markers(text.get(from..).unwrap_or(""))) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("child exited with {status} before {what}: {stderr}");
        }
        std::thread::yield_now();
    }
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

/// The v1 fixture (schema and rows as 0.1 wrote them) in a WAL file at `db`,
/// plus `bulk` extra pending actions with their creation events.
fn write_v1_fixture(db: &Path, bulk: u64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; BEGIN; {} {}
         WITH RECURSIVE n(i) AS (SELECT 1 WHERE {bulk} > 0 UNION ALL SELECT i + 1 FROM n WHERE i < {bulk})
         INSERT INTO actions (server_id, action_type, status, command, argv, env,
                              created_at, created_by)
           SELECT 'maint-1', 'clear_logs', 'pending', 'journalctl --vacuum-time=7d',
                  '[\"journalctl\",\"--vacuum-time=7d\"]', '{{}}', 1767225700000000 + i, 'bulk'
           FROM n;
         INSERT INTO action_events (action_id, from_status, to_status, actor, at)
           SELECT id, NULL, 'pending', 'bulk', created_at FROM actions
           WHERE created_by = 'bulk' ORDER BY id;
         PRAGMA user_version = 1; COMMIT;",
        include_str!("fixtures/v1_schema.sql"),
        include_str!("fixtures/v1_data.sql")
    ))
    .unwrap();
}

/// The fixture's rows, acknowledged by construction.
const FIXTURE_ACKS: [(i64, ActionStatus); 7] = [
    (1, ActionStatus::Completed),
    (2, ActionStatus::Failed),
    (3, ActionStatus::Pending),
    (4, ActionStatus::Rejected),
    (5, ActionStatus::Approved),
    (6, ActionStatus::Executing),
    (7, ActionStatus::Cancelled),
];

fn user_version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sigkilled_writer_never_loses_or_half_applies_anything() {
    if child_role().is_some() {
        return;
    }
    let rounds = env_num("ACTIONQ_CRASH_ROUNDS", 24);
    let seed = env_num("ACTIONQ_CRASH_SEED", time_seed());
    let budget = Duration::from_secs(env_num("ACTIONQ_CRASH_MAX_SECS", 150));
    eprintln!("crash_consistency: {rounds} rounds, ACTIONQ_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.sqlite3");
    let log = dir.path().join("crash.log");
    // Start from a file written by schema v1 (the committed fixture), so the
    // first child migrates it and old rows ride along (kills inside the
    // migration itself: the next test).
    write_v1_fixture(&db, 0);
    {
        let f = open_log(&log);
        for (id, status) in FIXTURE_ACKS {
            log_line(&f, &format!("A {id} {status}"));
        }
    }
    let started = Instant::now();
    let mut max_id_ever = 7i64; // the fixture's ids
    let mut total_acks = 0usize;
    let mut kills = 0usize;
    let mut inside_writes = 0usize;
    let mut inside_applied = 0usize;
    let mut held_whole = 0usize;
    for round in 0..rounds {
        if started.elapsed() > budget {
            eprintln!("crash_consistency: time budget reached after {round} rounds");
            break;
        }
        let ctx = format!("round {round} (seed {seed})");
        let from = read_log(&log).len();
        let acks_before = read_acks(&read_log(&log)).len();
        let mut envs = vec![
            ("ACTIONQ_CRASH_DB", db.display().to_string()),
            ("ACTIONQ_CRASH_LOG", log.display().to_string()),
            ("ACTIONQ_CRASH_SEED", rng.next().to_string()),
        ];
        if round % 3 == 2 {
            envs.push(("ACTIONQ_CRASH_FULL", "1".into()));
        }
        // Every fourth round (from the second) kills a child held after a
        // create returned, before its `D`: the "whole" of whole-or-absent by
        // construction. The others kill at a random point.
        let hold = round % 4 == 1;
        if hold {
            envs.push(("ACTIONQ_CRASH_HOLD_FROM", rng.below(30).to_string()));
        }
        let mut child = spawn_child(ENTRY, "crash", &envs);
        wait_for(&log, from, &mut child, "opening the store", |m| m.opened);
        if hold {
            wait_for(&log, from, &mut child, "holding after a write", |m| m.held);
        } else {
            // A random point of the workload: mostly well into it, every fifth
            // round among the first writes (creating and pausing the servers).
            let delay_us = if round % 5 == 0 {
                rng.below(1_000)
            } else {
                rng.below(50_000)
            };
            std::thread::sleep(Duration::from_micros(delay_us));
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "{ctx}: child exited by itself with {status}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        sigkill(&mut child);
        kills += 1;

        let text = read_log(&log);
        let markers = parse_markers(&text[from..]);
        assert_eq!(integrity_check(&db), "ok", "{ctx}: integrity_check");
        assert_eq!(user_version(&db), actionq::SCHEMA_VERSION, "{ctx}: schema");
        let stats = assert_invariants(&db, &ctx);
        let all_acks = read_acks(&text);
        total_acks += all_acks.len() - acks_before;
        let in_db = db_statuses(&db);
        let diff = check_in_flight(&in_db, &all_acks, markers.last_op.as_ref(), &ctx);
        if hold {
            assert!(
                markers.inside_write() && !diff.is_empty(),
                "{ctx}: killed after a create returned, the create must be whole in the file \
                 ({:?}, diff {diff:?})",
                markers.last_op
            );
            held_whole += 1;
        } else if markers.inside_write() {
            inside_writes += 1;
            if !diff.is_empty() {
                inside_applied += 1;
            }
        }
        let max_acked = all_acks.iter().map(|(id, _)| *id).max().unwrap_or(0);
        max_id_ever = max_id_ever.max(stats.max_action_id).max(max_acked);

        // Reopen through the library: ids continue above everything ever seen.
        // No sweep before reads: the next round compares the file with the
        // acknowledgements, and this probe acknowledges nothing.
        let queue = ActionQueue::open(&db)
            .expect("reopen after crash")
            .with_options(QueueOptions {
                expire_leases_on_read: false,
                ..QueueOptions::default()
            });
        match queue.create_server("probe", None) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
        let probe = queue
            .create_action(&NewAction::new("probe", "clear_logs"))
            .expect("create after reopen");
        assert!(
            probe.id > max_id_ever,
            "{ctx}: new id {} reuses an id (max ever {max_id_ever})",
            probe.id
        );
        max_id_ever = probe.id;
        let listed = queue.list_actions(&ActionQuery::default()).unwrap();
        assert_eq!(
            listed.total,
            stats.actions + 1,
            "listing total after reopen"
        );
        // The audit chain survived the kill whole: no event without its head
        // move, no head move without its event.
        let audit = queue.verify_audit().unwrap();
        assert_eq!(
            audit.first_bad_event_id, None,
            "{ctx}: audit chain {audit:?}"
        );
        drop(queue);
        // What the file now holds is the next round's baseline: the in-flight
        // write's effect (if any) and the probe.
        let f = open_log(&log);
        for (id, status) in diff.into_iter().chain([(probe.id, probe.status)]) {
            log_line(&f, &format!("A {id} {status}"));
        }
    }
    let final_stats = assert_invariants(&db, "final");
    eprintln!(
        "crash_consistency: {kills} kills, {held_whole} held after a create returned (found \
         whole), {inside_writes} at random inside a store write ({inside_applied} of them \
         with the write applied), {total_acks} acknowledged \
         operations, {} actions / {} events in the file, statuses {:?}, {:.1}s",
        final_stats.actions,
        final_stats.events,
        final_stats.status,
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= rounds.min(20) as usize, "fewer than 20 rounds ran");
    assert!(total_acks > 0, "the children acknowledged nothing");
    assert!(
        held_whole >= 1 && inside_writes > inside_applied,
        "both halves of whole-or-absent must be seen: {held_whole} kills after a write had \
         returned found it whole, and of {inside_writes} random kills inside a write \
         {inside_applied} had applied it (want >= 1 whole and >= 1 absent; seed {seed})"
    );
    assert!(
        inside_writes >= MIN_INSIDE_WRITES && inside_writes * 100 >= kills * MIN_INSIDE_SHARE_PCT,
        "only {inside_writes} of {kills} kills landed inside a store write (want at least \
         {MIN_INSIDE_WRITES} and {MIN_INSIDE_SHARE_PCT}%; seed {seed})"
    );
}

/// Kills children inside `SqliteStore::open` while it migrates a v1 file: the
/// kill follows the child's `O` marker by a random fraction of the time an open
/// takes (the file is large enough for the migration to be most of it), and
/// only kills after the `M` marker written inside the migration count. Every
/// kill leaves v1 untouched or v2 complete, and the next open migrates (if
/// needed) with every row intact.
#[test]
fn sigkill_inside_the_migration_leaves_v1_or_complete_v2() {
    if child_role().is_some() {
        return;
    }
    let seed = env_num("ACTIONQ_CRASH_SEED", time_seed());
    eprintln!("crash_consistency migration: ACTIONQ_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("v1.sqlite3");
    write_v1_fixture(&pristine, BULK_V1_ACTIONS);
    let db = dir.path().join("attempt.sqlite3");
    let log = dir.path().join("open.log");
    let fresh_copy = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        std::fs::copy(&pristine, &db).unwrap();
        let _ = std::fs::remove_file(&log);
    };
    let envs = [
        ("ACTIONQ_CRASH_DB", db.display().to_string()),
        ("ACTIONQ_CRASH_LOG", log.display().to_string()),
    ];
    // One open left alone: how long (seen from here) it takes.
    fresh_copy();
    let mut child = spawn_child(ENTRY, "open", &envs);
    wait_for(&log, 0, &mut child, "opening", |m| m.opening);
    let t0 = Instant::now();
    wait_for(&log, 0, &mut child, "opened", |m| m.opened);
    let open_us = t0.elapsed().as_micros() as u64;
    wait_success(child, "calibration open");
    let mut max_delay_us = open_us.max(200);

    let (mut kills, mut in_migration, mut before_commit, mut after_commit) =
        (0usize, 0usize, 0usize, 0usize);
    for attempt in 0..60 {
        if in_migration >= MIN_KILLED_IN_MIGRATION
            && before_commit >= MIN_KILLED_BEFORE_MIGRATION_COMMIT
        {
            break;
        }
        let ctx = format!("attempt {attempt} (seed {seed})");
        fresh_copy();
        let mut child = spawn_child(ENTRY, "open", &envs);
        wait_for(&log, 0, &mut child, "opening", |m| m.opening);
        std::thread::sleep(Duration::from_micros(rng.below(max_delay_us)));
        sigkill(&mut child);
        kills += 1;
        let markers = parse_markers(&read_log(&log));
        if markers.inside_migration() {
            in_migration += 1;
        } else if markers.opened {
            // Too late: aim earlier.
            max_delay_us = (max_delay_us * 2 / 3).max(50);
        }
        assert_eq!(integrity_check(&db), "ok", "{ctx}: integrity_check");
        let version = user_version(&db);
        let has_counts: bool = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'action_counts'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 1;
        match version {
            1 => {
                assert!(markers.inside_open(), "{ctx}: still v1 after open returned");
                assert!(!has_counts, "{ctx}: v1 file with a half-applied migration");
                before_commit += usize::from(markers.migrating);
            }
            v if v == actionq::SCHEMA_VERSION => {
                assert!(
                    markers.migrating,
                    "{ctx}: migrated without the migration's marker"
                );
                assert!(has_counts, "{ctx}: v2 without action_counts");
                after_commit += usize::from(!markers.opened);
            }
            v => panic!("{ctx}: user_version {v}"),
        }
        // The next open always succeeds, migrates if needed, and loses nothing.
        let reopened =
            SqliteStore::open(&db, &SqliteOptions::default()).expect("open after the kill");
        // The migration chained the v1 events in the same transaction.
        let audit = reopened.verify_audit().unwrap();
        assert_eq!(
            audit.first_bad_event_id, None,
            "{ctx}: audit chain {audit:?}"
        );
        drop(reopened);
        assert_eq!(
            user_version(&db),
            actionq::SCHEMA_VERSION,
            "{ctx}: migrated"
        );
        let stats = assert_invariants(&db, &ctx);
        assert_eq!(
            stats.actions,
            7 + BULK_V1_ACTIONS,
            "{ctx}: actions after migration"
        );
        let in_db = db_statuses(&db);
        for (id, status) in FIXTURE_ACKS {
            assert_eq!(in_db[&id], status, "{ctx}: fixture action {id}");
        }
        assert_eq!(
            stats.status.get("pending").copied(),
            Some(1 + BULK_V1_ACTIONS as i64)
        );
    }
    eprintln!(
        "crash_consistency migration: open takes ~{open_us} us here; {kills} kills, \
         {in_migration} inside the migration (after its M marker, before open returned): \
         {before_commit} before it committed (file still v1), {after_commit} after"
    );
    assert!(
        in_migration >= MIN_KILLED_IN_MIGRATION
            && before_commit >= MIN_KILLED_BEFORE_MIGRATION_COMMIT,
        "only {in_migration} of {kills} kills landed inside the migration ({before_commit} before \
         it committed; want {MIN_KILLED_IN_MIGRATION} and \
         {MIN_KILLED_BEFORE_MIGRATION_COMMIT}; seed {seed})"
    );
}

/// The invariant checker itself must catch each kind of damage it claims to.
#[test]
fn invariant_checker_detects_tampering() {
    if child_role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.sqlite3");
    {
        let queue = ActionQueue::open(&db).unwrap();
        queue.create_server("web-1", None).unwrap();
        let a = queue
            .create_action(&NewAction::new("web-1", "clear_logs"))
            .unwrap();
        let c = queue.claim_next("web-1", None, None).unwrap().unwrap();
        queue
            .report_result(c.action.id, &c.lease_token, 0, None, None)
            .unwrap();
        queue
            .create_action(&NewAction::new("web-1", "restart_service").service_name("ssh"))
            .unwrap();
        assert_eq!(a.id, 1);
    }
    assert_invariants(&db, "untouched");
    let tamper = [
        "UPDATE actions SET approved_at = NULL WHERE id = 2",
        "UPDATE actions SET exit_code = NULL WHERE id = 1",
        "UPDATE actions SET status = 'executing' WHERE id = 2",
        "INSERT INTO action_events (action_id, from_status, to_status, actor, at, kind, subject, hash_version) VALUES (99, NULL, 'approved', 'x', 0, 'action', 'web-1', 2)",
        "DELETE FROM action_events WHERE action_id = 2",
        "UPDATE action_counts SET n = n + 1 WHERE status = 'approved'",
        "UPDATE action_counts SET actions_seq = 1 WHERE server_id = '' AND status = ''",
    ];
    for sql in tamper {
        let copy = dir.path().join("copy.sqlite3");
        std::fs::copy(&db, &copy).unwrap();
        let conn = rusqlite::Connection::open(&copy).unwrap();
        conn.execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
            .unwrap();
        let (bad, _) = fault_support::check_invariants(&conn);
        assert!(!bad.is_empty(), "checker missed: {sql}");
        drop(conn);
        std::fs::remove_file(&copy).unwrap();
    }
}
