//! Shared pieces of the actionq benchmarks: the RAW SQL baseline, fast seeding
//! of large databases, and small measurement helpers. Used by the `make bench`
//! driver (`src/main.rs`) and the criterion micro-benchmarks (`benches/micro.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use actionq::{Action, ActionQueue, ActionStatus, Durability, SqliteOptions, SqliteStore};
use chrono::DateTime;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

/// Result type of the bench helpers: anything that went wrong, as text.
pub type BenchResult<T> = std::result::Result<T, String>;

/// Turns any displayable error into the bench's error text.
pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Opens a fresh actionq SQLite database at `path` (removing any old one and its
/// WAL), with `servers` registered as `bench-0`, `bench-1`, ... (not paused).
pub fn fresh_queue(path: &Path, servers: usize) -> BenchResult<ActionQueue> {
    fresh_queue_with(path, servers, Durability::default())
}

/// [`fresh_queue`] at the given durability.
pub fn fresh_queue_with(
    path: &Path,
    servers: usize,
    durability: Durability,
) -> BenchResult<ActionQueue> {
    remove_db(path);
    let options = SqliteOptions {
        durability,
        ..SqliteOptions::default()
    };
    let queue = ActionQueue::new(SqliteStore::open(path, &options).map_err(err)?);
    for i in 0..servers {
        queue.create_server(&server_id(i), None).map_err(err)?;
    }
    Ok(queue)
}

/// The floor of a durable create: on a fresh file with the store's settings
/// at `durability` (WAL, `synchronous=NORMAL` or `FULL`), one `BEGIN IMMEDIATE`
/// transaction per row inserting into a table with a unique key (the dedup
/// check) and committing. Creates per second over `n` rows.
pub fn minimal_dedup_transactions(
    path: &Path,
    n: usize,
    durability: Durability,
) -> BenchResult<f64> {
    remove_db(path);
    let mut conn = Connection::open(path).map_err(err)?;
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
         CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v TEXT NOT NULL);"
    ))
    .map_err(err)?;
    rate(n, |i| {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.prepare_cached("INSERT INTO t (k, v) VALUES (?1, ?2)")
            .and_then(|mut insert| insert.execute(params![format!("svc-{i}.service"), "x"]))
            .map_err(err)?;
        tx.commit().map_err(err)
    })
}

/// Deletes a database file and its WAL/shm companions.
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// Name of the `i`-th bench server.
pub fn server_id(i: usize) -> String {
    format!("bench-{i}")
}

/// Microseconds since the epoch, now.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The RAW baseline: the minimum SQL an implementation with actionq's durability
/// must run, on actionq's own schema, through plain rusqlite.
///
/// The connection gets exactly the settings `SqliteStore` gives its connections:
/// `journal_mode=WAL` (persistent in the file), `synchronous=NORMAL` (the default
/// durability), `foreign_keys=ON`, the query planner stability guarantee, a 10 s
/// busy timeout (SQLite's own handler). The schema is whatever
/// `SqliteStore::open` created: open one on the file first.
pub struct Raw {
    conn: Connection,
}

/// Columns read back by [`Raw::get`], in `Action` field order (+ nothing secret).
const RAW_ACTION_COLUMNS: &str = "id, server_id, action_type, status, service_name, command, \
    argv, env, alert_id, created_at, created_by, approved_at, approved_by, rejected_at, \
    rejected_by, rejection_reason, cancelled_at, cancelled_by, executed_at, lease_expires_at, \
    completed_at, exit_code, stdout, stderr, approvals, digest, whitelist_version, params, \
    cancel_requested_at, cancel_requested_by";

fn ts(v: Option<i64>) -> rusqlite::Result<Option<actionq::Timestamp>> {
    v.map(|v| {
        DateTime::from_timestamp_micros(v).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, v))
    })
    .transpose()
}

fn bad(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

/// Maps a row of [`RAW_ACTION_COLUMNS`] to an [`Action`], as any implementation must.
fn raw_action(r: &Row<'_>) -> rusqlite::Result<Action> {
    let argv: String = r.get(6)?;
    let env: String = r.get(7)?;
    let status: String = r.get(3)?;
    Ok(Action {
        id: r.get(0)?,
        server_id: r.get(1)?,
        action_type: r.get(2)?,
        status: status.parse::<ActionStatus>().map_err(bad)?,
        service_name: r.get(4)?,
        command: r.get(5)?,
        argv: serde_json::from_str(&argv).map_err(bad)?,
        env: serde_json::from_str(&env).map_err(bad)?,
        alert_id: r.get(8)?,
        created_at: ts(Some(r.get(9)?))?.expect("some"),
        created_by: r.get(10)?,
        approved_at: ts(r.get(11)?)?,
        approved_by: r.get(12)?,
        rejected_at: ts(r.get(13)?)?,
        rejected_by: r.get(14)?,
        rejection_reason: r.get(15)?,
        cancelled_at: ts(r.get(16)?)?,
        cancelled_by: r.get(17)?,
        executed_at: ts(r.get(18)?)?,
        lease_expires_at: ts(r.get(19)?)?,
        completed_at: ts(r.get(20)?)?,
        exit_code: r.get(21)?,
        stdout: r.get(22)?,
        stderr: r.get(23)?,
        approvals: serde_json::from_str(&r.get::<_, String>(24)?).map_err(bad)?,
        digest: r.get(25)?,
        whitelist_version: r.get(26)?,
        params: serde_json::from_str(&r.get::<_, String>(27)?).map_err(bad)?,
        cancel_requested_at: ts(r.get(28)?)?,
        cancel_requested_by: r.get(29)?,
    })
}

impl Raw {
    /// A raw connection to an existing actionq database.
    pub fn open(path: &Path) -> BenchResult<Self> {
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        assert_eq!(mode, "wal", "actionq databases are in WAL mode");
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(err)?;
        // Also as SqliteStore: plans never depend on bound values (no re-prepare).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(err)?;
        Ok(Raw { conn })
    }

    /// Creates `restart_service` for `service` on the (not paused) server `server_id`:
    ///
    /// ```sql
    /// BEGIN IMMEDIATE;
    /// SELECT id FROM actions WHERE server_id=? AND status='pending' AND action_type=? AND command=? LIMIT 1;
    /// INSERT INTO actions (...) VALUES (...);          -- status approved, approved_by auto
    /// INSERT INTO action_events (...) VALUES (...);    -- the audit event
    /// INSERT INTO action_counts ... ON CONFLICT DO UPDATE SET n = n + 1;  -- schema v2 has it
    /// COMMIT;
    /// ```
    ///
    /// Not included, though a real implementation needs it: reading the server row
    /// (existence and `is_paused` decide NotFound and pending/approved). RAW is
    /// therefore slightly optimistic, i.e. a harder bar.
    pub fn create_restart(&mut self, server_id: &str, service: &str) -> BenchResult<i64> {
        let command = format!("systemctl restart {service}");
        let argv = serde_json::to_string(&["systemctl", "restart", service]).map_err(err)?;
        let now = now_micros();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let existing: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM actions WHERE server_id = ?1 AND status = 'pending' \
                 AND action_type = ?2 AND command = ?3 LIMIT 1",
            )
            .map_err(err)?
            .query_row(params![server_id, "restart_service", command], |r| r.get(0))
            .optional()
            .map_err(err)?;
        if let Some(id) = existing {
            return Err(format!("conflict with action {id}"));
        }
        tx.prepare_cached(
            "INSERT INTO actions (server_id, action_type, status, service_name, command, argv, \
             env, alert_id, created_at, created_by, approved_at, approved_by) \
             VALUES (?1, 'restart_service', 'approved', ?2, ?3, ?4, '{}', NULL, ?5, 'dashboard', ?5, 'auto')",
        )
        .map_err(err)?
        .execute(params![server_id, service, command, argv, now])
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.prepare_cached(
            "INSERT INTO action_events (action_id, from_status, to_status, actor, at, detail, \
             kind, subject, hash_version) \
             VALUES (?1, NULL, 'approved', 'dashboard', ?2, NULL, 'action', ?3, 2)",
        )
        .map_err(err)?
        .execute(params![id, now, server_id])
        .map_err(err)?;
        tx.prepare_cached(
            "INSERT INTO action_counts (server_id, action_type, status, n) \
             VALUES (?1, 'restart_service', 'approved', 1) \
             ON CONFLICT (server_id, action_type, status) DO UPDATE SET n = n + 1",
        )
        .map_err(err)?
        .execute(params![server_id])
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// `SELECT <every Action column> FROM actions WHERE id = ?`, mapped to an [`Action`].
    pub fn get(&self, id: i64) -> BenchResult<Option<Action>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {RAW_ACTION_COLUMNS} FROM actions WHERE id = ?1"
            ))
            .map_err(err)?
            .query_row([id], raw_action)
            .optional()
            .map_err(err)
    }
}

/// Fills a fresh actionq database at `path` with `n` actions on `servers` servers
/// in one transaction of bulk inserts, keeping `action_counts` consistent (rebuilt
/// from the rows at the end, exactly as the v2 migration does).
///
/// Statuses: a third `completed` (the "broad" listing filter), the rest spread over
/// the other six. Every action is `restart_service` with its own unit name, so no
/// conflict rule is broken. No audit events are written (listings never read
/// them). The indexes are dropped during the load and recreated from their own
/// stored SQL afterwards, so the schema ends up exactly as actionq made it.
pub fn seed(path: &Path, n: usize, servers: usize) -> BenchResult<()> {
    drop(fresh_queue(path, servers)?);
    let mut conn = Connection::open(path).map_err(err)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA cache_size = -262144;")
        .map_err(err)?;
    let tx = conn.transaction().map_err(err)?;
    let indexes: Vec<(String, String)> = tx
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'actions' \
             AND sql IS NOT NULL",
        )
        .map_err(err)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(err)?;
    for (name, _) in &indexes {
        tx.execute_batch(&format!("DROP INDEX {name}"))
            .map_err(err)?;
    }
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO actions (id, server_id, action_type, status, service_name, command, \
                 argv, env, created_at, created_by, approved_at, approved_by, rejected_at, \
                 rejected_by, rejection_reason, cancelled_at, cancelled_by, executed_at, \
                 lease_expires_at, lease_token, completed_at, exit_code, stdout, stderr) \
                 VALUES (?1, ?2, 'restart_service', ?3, ?4, ?5, ?6, '{}', ?7, 'dashboard', ?8, \
                 ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
            )
            .map_err(err)?;
        let start = now_micros() - n as i64 * 1000;
        let far = now_micros() + 3_600_000_000 * 24 * 365;
        let servers: Vec<String> = (0..servers).map(server_id).collect();
        for i in 0..n {
            let id = i as i64 + 1;
            let created = start + i as i64 * 1000;
            let later = created + 500;
            // Every third is completed; the rest cycle through the other statuses.
            let status = if i % 3 == 0 {
                ActionStatus::Completed
            } else {
                [
                    ActionStatus::Pending,
                    ActionStatus::Approved,
                    ActionStatus::Rejected,
                    ActionStatus::Cancelled,
                    ActionStatus::Executing,
                    ActionStatus::Failed,
                ][(i / 3 * 2 + i % 3 - 1) % 6]
            };
            use ActionStatus::*;
            let service = format!("seed-{id}.service");
            let command = format!("systemctl restart {service}");
            let argv = format!(r#"["systemctl","restart","{service}"]"#);
            let approved = !matches!(status, Pending | Rejected);
            let done = matches!(status, Completed | Failed);
            insert
                .execute(params![
                    id,
                    servers[i % servers.len()],
                    status.as_str(),
                    service,
                    command,
                    argv,
                    created,
                    approved.then_some(created),
                    approved.then_some("auto"),
                    (status == Rejected).then_some(later),
                    (status == Rejected).then_some("dashboard"),
                    (status == Rejected).then_some("not now"),
                    (status == Cancelled).then_some(later),
                    (status == Cancelled).then_some("dashboard"),
                    matches!(status, Executing | Completed | Failed).then_some(later),
                    (status == Executing).then_some(far),
                    (status == Executing).then(|| format!("token-{id}")),
                    done.then_some(later + 100),
                    done.then_some(if status == Completed { 0 } else { 1 }),
                    done.then_some("ok"),
                    (status == Failed).then_some("boom"),
                ])
                .map_err(err)?;
        }
    }
    for (_, sql) in &indexes {
        tx.execute_batch(sql).map_err(err)?;
    }
    tx.execute_batch(
        "DELETE FROM action_counts; \
         INSERT INTO action_counts (server_id, action_type, status, n) \
         SELECT server_id, action_type, status, COUNT(*) FROM actions \
         GROUP BY server_id, action_type, status;",
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(err)?;
    Ok(())
}

/// Operations per second.
pub fn per_s(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Runs `f` `n` times and returns the rate per second.
pub fn rate(n: usize, mut f: impl FnMut(usize) -> BenchResult<()>) -> BenchResult<f64> {
    let start = Instant::now();
    for i in 0..n {
        f(i)?;
    }
    Ok(per_s(n, start.elapsed()))
}

/// The median of `values` (0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// CPU time consumed by the calling thread so far (excludes time spent
/// preempted or waiting): separates an operation's own cost from scheduling
/// noise on a shared machine.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A deterministic pseudo-random sequence (64-bit LCG), for picking ids.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// Next value in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}
