//! Retention benchmarks (`docs/contract/retention.md`), `make bench-retention`:
//!
//! - keyset paging: a page of 50 at depth 0.9·N of N actions by `before_id`,
//!   p50 and p99 over 1,000 calls once every pooled connection has served one (its
//!   first prepares the listing's statements), beside the same page by
//!   `offset` (the comparison row);
//! - prune: N finished actions (2 events each), pruned while a writer thread
//!   creates actions on another server for the prune's first
//!   [`WRITER_SECONDS`]: the writer's create p99 then against its p99 over as
//!   long just before the prune (same run), and the prune's rate while the
//!   writer writes (it yields to it) and after (alone, at full speed);
//! - PostgreSQL's keyset page beside a baseline run alternately with it:
//!   the same page planned anew at every call, as before the listing's
//!   capped shape let PostgreSQL keep its plan;
//! - SQLite file size after the prune and the checkpoint, then after `VACUUM`
//!   (the library does not vacuum: a user runs it, or sets
//!   `auto_vacuum = incremental` on a new file).
//!
//! SQLite, and PostgreSQL when `ACTIONQ_TEST_PG_URL` is set (mk/with-postgres.sh).
//! N is `ACTIONQ_BENCH_RETENTION_N` (default 1,000,000). The seeded chain's
//! hashes are random (the prune reads, never checks them; the tests verify
//! the chain after prunes); the rows are what the stores write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actionq::{ActionQuery, ActionQueue, NewAction, PostgresOptions, PostgresStore};
use actionq_bench::{err, percentile, BenchResult};

/// Seeded actions are this old (well past the prune's cutoff).
const AGE_MICROS: i64 = 40 * 86_400 * 1_000_000;
const CUTOFF_SECONDS: i64 = 30 * 86_400;

/// How long the writer writes, alone and then beside the prune.
const WRITER_SECONDS: u64 = 20;

fn now_micros() -> i64 {
    actionq_bench::now_micros()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("retention bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> BenchResult<()> {
    let n: i64 = std::env::var("ACTIONQ_BENCH_RETENTION_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/bench".into());
    std::fs::create_dir_all(&out).map_err(err)?;
    let mut rows = serde_json::Map::new();
    let dir = tempdir(&out)?;
    let path = dir.join("retention.sqlite3");
    seed_sqlite(&path, n)?;
    let queue = ActionQueue::open(&path).map_err(err)?;
    paging(
        &queue,
        n,
        "sqlite",
        actionq::limits::DEFAULT_READ_CONNECTIONS,
        &mut rows,
    )?;
    let size = |p: &std::path::Path| {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(p.with_extension("sqlite3-wal"))
                .map(|m| m.len())
                .unwrap_or(0)
    };
    rows.insert("sqlite_file_bytes_before".into(), size(&path).into());
    prune_under_load(&queue, n, "sqlite", &mut rows)?;
    drop(queue);
    let conn = rusqlite::Connection::open(&path).map_err(err)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(err)?;
    rows.insert("sqlite_file_bytes_after_prune".into(), size(&path).into());
    conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(err)?;
    rows.insert("sqlite_file_bytes_after_vacuum".into(), size(&path).into());
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);

    if let Ok(admin) = std::env::var("ACTIONQ_TEST_PG_URL") {
        let url = pg_schema(&admin)?;
        let queue =
            ActionQueue::new(PostgresStore::open(&url, &PostgresOptions::default()).map_err(err)?);
        seed_pg(&url, n)?;
        paging(
            &queue,
            n,
            "pg",
            actionq::limits::DEFAULT_PG_POOL_SIZE as usize,
            &mut rows,
        )?;
        // The baseline beside it: the same pages with a plan made at every
        // page, as PostgreSQL did before the listing's capped shape.
        let replanned = ActionQueue::new(
            PostgresStore::open(
                &format!("{url}%20-cplan_cache_mode%3Dforce_custom_plan"),
                &PostgresOptions::default(),
            )
            .map_err(err)?,
        );
        keyset_beside(&queue, &replanned, n, &mut rows)?;
        prune_under_load(&queue, n, "pg", &mut rows)?;
    } else {
        eprintln!("ACTIONQ_TEST_PG_URL not set: PostgreSQL part skipped");
    }
    rows.insert("n_actions".into(), n.into());
    let text = serde_json::to_string_pretty(&rows).map_err(err)?;
    println!("{text}");
    std::fs::write(format!("{out}/retention.json"), text).map_err(err)?;
    Ok(())
}

fn tempdir(out: &str) -> BenchResult<std::path::PathBuf> {
    let dir = std::path::Path::new(out).join(format!("retention-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(err)?;
    Ok(dir)
}

/// Keyset page at depth 0.9·N (p50 and p99 of 1,000, after one unmeasured page per
/// pooled connection: `connections`) and the offset page at the same depth
/// (p99 of 5: each reads 0.9·N index entries).
fn paging(
    queue: &ActionQueue,
    n: i64,
    store: &str,
    connections: usize,
    rows: &mut serde_json::Map<String, serde_json::Value>,
) -> BenchResult<()> {
    let depth = n * 9 / 10;
    // Newest first: the action at depth `depth` has id n - depth.
    let before_id = n - depth + 1;
    let page = |query: ActionQuery| -> BenchResult<f64> {
        let t = Instant::now();
        let page = queue.list_actions(&query).map_err(err)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if page.actions.first().map(|a| a.id) != Some(n - depth) {
            return Err(format!(
                "{store}: page at depth {depth} starts at {:?}",
                page.actions.first().map(|a| a.id)
            ));
        }
        Ok(ms)
    };
    let keyset = || ActionQuery {
        before_id: Some(before_id),
        ..ActionQuery::default()
    };
    // The first page on each connection prepares the listing's statements
    // (about 1 ms for SQLite's merge of one arm per status): a running host's
    // connections have them cached.
    let cold: Vec<f64> = (0..connections)
        .map(|_| page(keyset()))
        .collect::<BenchResult<_>>()?;
    let keyset: Vec<f64> = (0..1000)
        .map(|_| page(keyset()))
        .collect::<BenchResult<_>>()?;
    let offset: Vec<f64> = (0..5)
        .map(|_| {
            page(ActionQuery {
                offset: depth,
                ..ActionQuery::default()
            })
        })
        .collect::<BenchResult<_>>()?;
    rows.insert(
        format!("{store}_keyset_page_depth90_p50_ms"),
        percentile(&keyset, 50.0).into(),
    );
    rows.insert(
        format!("{store}_keyset_page_depth90_p99_ms"),
        percentile(&keyset, 99.0).into(),
    );
    rows.insert(
        format!("{store}_keyset_page_depth90_first_per_connection_max_ms"),
        percentile(&cold, 100.0).into(),
    );
    rows.insert(
        format!("{store}_offset_page_depth90_p99_ms"),
        percentile(&offset, 99.0).into(),
    );
    Ok(())
}

/// PostgreSQL's keyset page as the store runs it against the same page
/// planned anew at every call (`plan_cache_mode = force_custom_plan` on
/// `replanned`'s connections), in alternating blocks of 100 so that both
/// meet the same moments of a noisy machine: p50 and p99 of 1,000 each.
fn keyset_beside(
    queue: &ActionQueue,
    replanned: &ActionQueue,
    n: i64,
    rows: &mut serde_json::Map<String, serde_json::Value>,
) -> BenchResult<()> {
    let query = ActionQuery {
        before_id: Some(n / 10 + 1),
        ..ActionQuery::default()
    };
    let mut kept = Vec::new();
    let mut planned = Vec::new();
    for _ in 0..actionq::limits::DEFAULT_PG_POOL_SIZE {
        replanned.list_actions(&query).map_err(err)?;
    }
    for _ in 0..10 {
        for (q, into) in [(queue, &mut kept), (replanned, &mut planned)] {
            for _ in 0..100 {
                let t = Instant::now();
                q.list_actions(&query).map_err(err)?;
                into.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    for (name, v) in [("plan_kept", &kept), ("planned_each_page", &planned)] {
        for p in [50.0, 99.0] {
            rows.insert(
                format!("pg_keyset_page_depth90_{name}_p{p}_ms"),
                percentile(v, p).into(),
            );
        }
    }
    for p in [50.0, 99.0] {
        rows.insert(
            format!("ratio_pg_keyset_p{p}_planned_each_page__plan_kept"),
            (percentile(&planned, p) / percentile(&kept, p)).into(),
        );
    }
    Ok(())
}

/// The writer's create latencies (ms), one create each 2 ms or so, for
/// [`WRITER_SECONDS`] or until `stop`.
fn writer(queue: ActionQueue, stop: Arc<AtomicBool>, tag: &'static str) -> Vec<f64> {
    let mut latencies = Vec::new();
    let mut i = 0u64;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(WRITER_SECONDS) {
        i += 1;
        let request = NewAction::new("live", "restart_service").service_name(format!("{tag}-{i}"));
        let t = Instant::now();
        queue.create_action(&request).expect("create during prune");
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(2));
    }
    latencies
}

/// Finished actions left to prune (the counts are kept per status).
fn finished(queue: &ActionQueue) -> BenchResult<u64> {
    Ok(queue
        .count_actions()
        .map_err(err)?
        .iter()
        .filter(|c| c.status.is_terminal())
        .map(|c| c.count)
        .sum())
}

fn prune_under_load(
    queue: &ActionQueue,
    n: i64,
    store: &str,
    rows: &mut serde_json::Map<String, serde_json::Value>,
) -> BenchResult<()> {
    queue.create_server("live", None).map_err(err)?;
    let stop = Arc::new(AtomicBool::new(false));
    let alone = writer(queue.clone(), stop.clone(), "alone");
    let before = finished(queue)?;
    let started = Instant::now();
    // The writer, then how many the prune had deleted when it stopped.
    let beside = {
        let (q, s) = (queue.clone(), stop.clone());
        std::thread::spawn(move || {
            let latencies = writer(q.clone(), s, "during");
            (latencies, started.elapsed(), finished(&q))
        })
    };
    let report = queue.prune(CUTOFF_SECONDS).map_err(err)?;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (during, loaded, left) = beside.join().map_err(|_| "writer panicked")?;
    if report.pruned_actions != n as u64 {
        return Err(format!("{store}: pruned {} of {n}", report.pruned_actions));
    }
    let pruned_loaded = before - left?;
    let loaded = loaded.as_secs_f64();
    rows.insert(format!("{store}_prune_seconds"), secs.into());
    rows.insert(
        format!("{store}_prune_actions_per_s_beside_writer"),
        (pruned_loaded as f64 / loaded).into(),
    );
    rows.insert(
        format!("{store}_prune_actions_per_s_alone"),
        ((n as u64 - pruned_loaded) as f64 / (secs - loaded).max(1e-9)).into(),
    );
    let (p_alone, p_during) = (percentile(&alone, 99.0), percentile(&during, 99.0));
    rows.insert(
        format!("{store}_writer_create_p99_ms_alone"),
        p_alone.into(),
    );
    rows.insert(
        format!("{store}_writer_create_p99_ms_during_prune"),
        p_during.into(),
    );
    rows.insert(
        format!("{store}_writer_creates_during_prune"),
        during.len().into(),
    );
    rows.insert(
        format!("ratio_{store}_writer_p99_during_prune__alone"),
        (p_during / p_alone.max(1e-9)).into(),
    );
    let audit = queue.verify_audit().map_err(err)?;
    rows.insert(
        format!("{store}_pruned_through"),
        audit.pruned_through.into(),
    );
    Ok(())
}

/// N completed actions on 100 servers, each with a creation and a
/// completion event, created `AGE` ago; ids, counts and head as a store
/// writes them.
fn seed_sqlite(path: &std::path::Path, n: i64) -> BenchResult<()> {
    let queue = actionq_bench::fresh_queue(path, 100)?;
    drop(queue);
    let conn = rusqlite::Connection::open(path).map_err(err)?;
    let start = now_micros() - AGE_MICROS;
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -262144; BEGIN;
         WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n})
         INSERT INTO actions (id, server_id, action_type, status, command, argv, env,
                              created_at, created_by, approved_at, approved_by, executed_at,
                              completed_at, exit_code, stdout, digest)
         SELECT i, 'bench-' || (i % 100), 'restart_service', 'completed',
                'systemctl restart s' || i || '.service',
                '[\"systemctl\",\"restart\",\"s' || i || '.service\"]', '{{}}',
                {start} + i, 'dashboard', {start} + i, 'auto', {start} + i, {start} + i + 1,
                0, 'ok', ''
         FROM k;
         INSERT INTO action_events (id, action_id, from_status, to_status, actor, at,
                                    prev_hash, hash, kind, subject, hash_version)
         SELECT 2 * id - 1, id, NULL, 'approved', 'dashboard', created_at,
                randomblob(32), randomblob(32), 'action', server_id, 2 FROM actions
         UNION ALL
         SELECT 2 * id, id, 'executing', 'completed', 'agent', completed_at,
                randomblob(32), randomblob(32), 'action', server_id, 2 FROM actions
         ORDER BY 1;
         INSERT INTO action_counts (server_id, action_type, status, n)
             SELECT server_id, action_type, status, COUNT(*) FROM actions
             GROUP BY server_id, action_type, status
             ON CONFLICT (server_id, action_type, status) DO UPDATE SET n = excluded.n;
         COMMIT;"
    ))
    .map_err(err)?;
    // The head: the last event's id (8 bytes, big-endian), then its hash.
    let hash: Vec<u8> = conn
        .query_row(
            "SELECT hash FROM action_events WHERE id = ?1",
            [2 * n],
            |r| r.get(0),
        )
        .map_err(err)?;
    let mut head = (2 * n).to_be_bytes().to_vec();
    head.extend(hash);
    conn.execute(
        "UPDATE action_counts SET actions_seq = ?1, events_seq = ?2, audit_head = ?3 \
         WHERE server_id = '' AND action_type = '' AND status = ''",
        rusqlite::params![n, 2 * n, head],
    )
    .map_err(err)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(err)?;
    Ok(())
}

fn pg_schema(admin: &str) -> BenchResult<String> {
    let schema = format!("r_{}", uuid::Uuid::new_v4().simple());
    let mut client = postgres::Client::connect(admin, postgres::NoTls).map_err(err)?;
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .map_err(err)?;
    let sep = if admin.contains('?') { '&' } else { '?' };
    Ok(format!("{admin}{sep}options=-csearch_path%3D{schema}"))
}

fn seed_pg(url: &str, n: i64) -> BenchResult<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(err)?;
    let start = now_micros() - AGE_MICROS;
    client
        .batch_execute(&format!(
            "INSERT INTO servers (id, created_at) SELECT 'srv-' || i, 0 FROM generate_series(0, 99) i;
             INSERT INTO actions (id, server_id, action_type, status, command, argv, env,
                                  created_at, created_by, approved_at, approved_by, executed_at,
                                  completed_at, exit_code, stdout, digest)
             SELECT i, 'srv-' || (i % 100), 'restart_service', 'completed',
                    'systemctl restart s' || i || '.service',
                    '[\"systemctl\",\"restart\",\"s' || i || '.service\"]', '{{}}',
                    {start} + i, 'dashboard', {start} + i, 'auto', {start} + i, {start} + i + 1,
                    0, convert_to('ok', 'UTF8'), ''
             FROM generate_series(1, {n}) i;
             INSERT INTO action_events (id, action_id, from_status, to_status, actor, at,
                                        prev_hash, hash, kind, subject, hash_version)
             SELECT 2 * id - 1, id, NULL, 'approved', 'dashboard', created_at,
                    sha256(int8send(2 * id - 2)), sha256(int8send(2 * id - 1)), 'action', server_id, 2
             FROM actions
             UNION ALL
             SELECT 2 * id, id, 'executing', 'completed', 'agent', completed_at,
                    sha256(int8send(2 * id - 1)), sha256(int8send(2 * id)), 'action', server_id, 2
             FROM actions;
             INSERT INTO action_counts (server_id, action_type, status, n)
                 SELECT server_id, action_type, status, COUNT(*) FROM actions
                 GROUP BY server_id, action_type, status;
             UPDATE actionq_ids SET last_action_id = {n}, last_event_id = 2 * {n},
                 head_hash = sha256(int8send(2 * {n}::bigint));"
        ))
        .map_err(err)?;
    // Settled, as autovacuum leaves a store that has run for a while: the
    // bulk load's visibility map set and its dirty pages written, rather
    // than both happening under the measured pages.
    client.batch_execute("VACUUM (ANALYZE)").map_err(err)?;
    client.batch_execute("CHECKPOINT").map_err(err)?;
    Ok(())
}
