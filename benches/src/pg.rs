//! The PostgreSQL part of `make bench` (run beside a throwaway server started
//! by mk/with-postgres.sh, `ACTIONQ_TEST_PG_URL`): creates with 1, 2, 4 and 8
//! client processes on distinct servers, claim + report cycles with 8 agent
//! processes (checking nothing is lost or claimed twice), and list with total
//! on 1,000,000 rows. Each measurement runs in a fresh schema.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use actionq::{ActionQuery, ActionQueue, ActionStatus, PostgresOptions, PostgresStore};
use actionq_bench::{err, median, now_micros, percentile, BenchResult};

use super::{flag, json_f64, num_flag, restart, Config, Summary};

/// The server's URL, or `None` when no server was started (bench-rust alone).
fn admin_url() -> Option<String> {
    std::env::var("ACTIONQ_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A PostgreSQL error with the server's message (its `Display` says only "db error").
fn pg_err(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// A new schema's URL.
pub(super) fn fresh_schema(admin: &str) -> BenchResult<String> {
    let schema = format!("b_{}", uuid::Uuid::new_v4().simple());
    let mut client = postgres::Client::connect(admin, postgres::NoTls).map_err(err)?;
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .map_err(err)?;
    let sep = if admin.contains('?') { '&' } else { '?' };
    Ok(format!("{admin}{sep}options=-csearch_path%3D{schema}"))
}

fn open(url: &str) -> BenchResult<ActionQueue> {
    PostgresStore::open(url, &PostgresOptions::default())
        .map(ActionQueue::new)
        .map_err(err)
}

/// Runs `procs` children of `role` on `url`, each on server `srv-<k>`, started
/// together; returns (operations/s over the whole run, the children's JSON).
fn run_children(
    url: &str,
    role: &str,
    procs: usize,
    n: usize,
) -> BenchResult<(f64, Vec<serde_json::Value>)> {
    let exe = std::env::current_exe().map_err(err)?;
    let mut children = Vec::new();
    for k in 0..procs {
        let mut child = Command::new(&exe)
            .args([role, "--url", url, "--n", &n.to_string(), "--tag"])
            .arg(k.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(err)?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = lines.next().transpose().map_err(err)?;
        if ready.as_deref() != Some("ready") {
            return Err(format!("{role} {k} not ready: {ready:?}"));
        }
        children.push((child, lines));
    }
    for (child, _) in &mut children {
        writeln!(child.stdin.as_mut().expect("piped"), "go").map_err(err)?;
    }
    let (mut first, mut last, mut ok) = (i64::MAX, 0i64, 0.0);
    let mut outs = Vec::new();
    for (mut child, mut lines) in children {
        let line = lines
            .next()
            .transpose()
            .map_err(err)?
            .ok_or("worker died")?;
        child.wait().map_err(err)?;
        let v: serde_json::Value = serde_json::from_str(&line).map_err(err)?;
        first = first.min(json_f64(&v, "start_us")? as i64);
        last = last.max(json_f64(&v, "end_us")? as i64);
        ok += json_f64(&v, "ok")?;
        outs.push(v);
    }
    let secs = (last - first) as f64 / 1e6;
    Ok((ok / secs.max(1e-9), outs))
}

/// Child: says `ready`, waits for `go`, runs `work` `n` times on server `srv-<tag>`.
fn child(
    args: &[String],
    mut work: impl FnMut(&ActionQueue, &str, usize) -> BenchResult<bool>,
) -> BenchResult<()> {
    let url = flag(args, "--url").ok_or("--url")?;
    let n = num_flag(args, "--n", 1000)?;
    let tag = flag(args, "--tag").unwrap_or("0");
    let queue = open(url)?;
    let server = format!("srv-{tag}");
    println!("ready");
    std::io::stdout().flush().map_err(err)?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).map_err(err)?;
    let start = now_micros();
    let mut ok = 0u64;
    for i in 0..n {
        if !work(&queue, &server, i)? {
            break;
        }
        ok += 1;
    }
    let end = now_micros();
    println!(
        "{}",
        serde_json::json!({"start_us": start, "end_us": end, "ok": ok})
    );
    Ok(())
}

/// `pg-worker-create`: `n` creates on the process's own server.
pub(super) fn worker_create(args: &[String]) -> BenchResult<()> {
    child(args, |queue, server, i| {
        queue
            .create_action(&restart(server, format!("svc-{i}.service")))
            .map_err(err)?;
        Ok(true)
    })
}

/// `pg-worker-cycle`: claims and reports on the process's server until none is left.
pub(super) fn worker_cycle(args: &[String]) -> BenchResult<()> {
    child(args, |queue, server, _| {
        let Some(claim) = queue.claim_next(server, None, None).map_err(err)? else {
            return Ok(false);
        };
        queue
            .report_result(claim.action.id, &claim.lease_token, 0, Some("ok"), None)
            .map_err(err)?;
        Ok(true)
    })
}

/// A fresh schema with servers `srv-0` .. `srv-<servers-1>`.
fn fresh_with_servers(admin: &str, servers: usize) -> BenchResult<(String, ActionQueue)> {
    let url = fresh_schema(admin)?;
    let queue = open(&url)?;
    for k in 0..servers {
        queue
            .create_server(&format!("srv-{k}"), None)
            .map_err(err)?;
    }
    Ok((url, queue))
}

pub(super) fn bench(cfg: &Config, s: &mut Summary, notes: &mut Vec<String>) -> BenchResult<()> {
    let Some(admin) = admin_url() else {
        notes.push(
            "ACTIONQ_TEST_PG_URL not set: PostgreSQL part skipped (make bench sets it)".into(),
        );
        return Ok(());
    };
    // Creates: the same total per run, split over 1, 2, 4, 8 processes, each on
    // its own server; rounds interleave the process counts.
    let total = cfg.n(4000);
    let counts = [1usize, 2, 4, 8];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); counts.len()];
    for round in 0..3 {
        for j in 0..counts.len() {
            let j = if round % 2 == 0 {
                j
            } else {
                counts.len() - 1 - j
            };
            let procs = counts[j];
            let (url, queue) = fresh_with_servers(&admin, procs)?;
            let per = total / procs;
            let (rate, _) = run_children(&url, "pg-worker-create", procs, per)?;
            let stored = queue
                .list_actions(&ActionQuery::default())
                .map_err(err)?
                .total;
            if stored != (per * procs) as u64 {
                return Err(format!("pg create: {stored} stored of {}", per * procs));
            }
            rates[j].push(rate);
        }
    }
    for (j, procs) in counts.iter().enumerate() {
        s.set(&format!("pg_create_{procs}proc_per_s"), median(&rates[j]));
    }
    s.set(
        "ratio_pg_create_4proc__pg_create_1proc",
        median(&rates[2]) / median(&rates[0]).max(1e-9),
    );

    // Cycles: 8 agents, each on its own server with the same share of actions.
    let per = cfg.n(4000) / 8;
    let mut cycle_rates = Vec::new();
    let (mut lost, mut double) = (0.0, 0.0);
    for _ in 0..3 {
        let (url, queue) = fresh_with_servers(&admin, 8)?;
        for k in 0..8 {
            for i in 0..per {
                queue
                    .create_action(&restart(&format!("srv-{k}"), format!("svc-{i}.service")))
                    .map_err(err)?;
            }
        }
        // n above the share: each agent stops when its server has nothing left.
        let (rate, outs) = run_children(&url, "pg-worker-cycle", 8, per + 1)?;
        let claimed: f64 = outs.iter().map(|v| json_f64(v, "ok").unwrap_or(0.0)).sum();
        let completed = queue
            .list_actions(&ActionQuery {
                status: Some(ActionStatus::Completed),
                ..ActionQuery::default()
            })
            .map_err(err)?
            .total as f64;
        let expected = (8 * per) as f64;
        lost += expected - completed;
        double += (claimed - completed).max(0.0);
        cycle_rates.push(rate);
    }
    s.set("pg_cycle_8proc_per_s", median(&cycle_rates));
    s.set("pg_lost_actions", lost);
    s.set("pg_double_claims", double);

    bench_list(cfg, s, &admin)
}

/// List with total on 1,000,000 actions (100 servers), seeded with SQL in the
/// store's schema and counts, then read through the store.
fn bench_list(cfg: &Config, s: &mut Summary, admin: &str) -> BenchResult<()> {
    let n = cfg.n(1_000_000) as i64;
    let (url, queue) = fresh_with_servers(admin, 0)?;
    let schema = url
        .rsplit("search_path%3D")
        .next()
        .unwrap_or_default()
        .to_owned();
    let t = Instant::now();
    let mut client = postgres::Client::connect(admin, postgres::NoTls).map_err(err)?;
    let statuses =
        "ARRAY['pending','approved','executing','completed','failed','rejected','cancelled']";
    client
        .batch_execute(&format!(
            "SET search_path = {schema};
             INSERT INTO servers (id, created_at) SELECT 'srv-' || k, 0 FROM generate_series(0, 99) k;
             INSERT INTO actions (id, server_id, action_type, status, command, argv, env, created_at, created_by)
               SELECT i, 'srv-' || (i % 100), 'restart_service', ({statuses})[1 + (i * 7919) % 7],
                      'systemctl restart x', '[]', '{{}}', 1700000000000000 + i * 1000, 'bench'
               FROM generate_series(1::bigint, {n}) i;
             INSERT INTO action_counts (server_id, action_type, status, n)
               SELECT server_id, action_type, status, count(*) FROM actions GROUP BY 1, 2, 3;
             UPDATE actionq_ids SET last_action_id = {n};"
        ))
        .map_err(pg_err)?;
    // Not in the batch above: VACUUM cannot run inside its implicit transaction.
    client
        .batch_execute(&format!("VACUUM ANALYZE {schema}.actions"))
        .map_err(pg_err)?;
    s.set("pg_seed_1m_seconds", t.elapsed().as_secs_f64());
    let mut times = Vec::new();
    let mut k = 0usize;
    for i in 0..3050 {
        let query = ActionQuery {
            server_id: Some(format!("srv-{}", k % 100)),
            status: Some(ActionStatus::ALL[k % 7]),
            ..ActionQuery::default()
        };
        k = k.wrapping_mul(31).wrapping_add(17);
        let broad = ActionQuery {
            status: Some(ActionStatus::Completed),
            ..ActionQuery::default()
        };
        let t = Instant::now();
        let a = queue.list_actions(&query).map_err(err)?;
        let b = queue.list_actions(&broad).map_err(err)?;
        if i >= 50 {
            times.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
        }
        if a.actions.len() as u64 != a.total.min(50) || b.total == 0 {
            return Err("pg list: unexpected page".into());
        }
    }
    s.set("pg_list_1m_p50_us", percentile(&times, 50.0));
    s.set("pg_list_1m_p99_us", percentile(&times, 99.0));
    Ok(())
}
