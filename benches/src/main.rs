//! `make bench` driver: runs every actionq benchmark and its baselines in one
//! process tree, prints a table and writes `target/bench/summary.json`.
//!
//! ```text
//! actionq-bench run [--out DIR] [--repo DIR] [--python PATH] [--scale F] [--skip-python]
//!                   [--only create,memory,get,list,cycle,procs,http,notify,gil,auth,agent,fleet]
//!                   [--agent PATH]
//! ```
//!
//! Contenders are measured in interleaved rounds (RAW, Rust, Python binding,
//! status quo, ... then again, the order rotating), and the median round is
//! reported, so that load from other processes on the machine hits baselines and
//! contenders alike. Every target is a ratio between numbers of the same run.
//! The machine's facts (CPU, cores, load average at start and end, rustc,
//! package versions) go beside the figures: absolute rates are only meaningful
//! with them.
//!
//! Internal subcommands (spawned by `run`): `mem-fill`, `worker-create`.

mod fleet;
mod pg;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use actionq::{
    ActionQuery, ActionQueue, ActionStatus, Durability, ErrorKind, MemoryStore, NewAction,
};
use actionq_bench::{
    err, fresh_queue, fresh_queue_with, median, minimal_dedup_transactions, now_micros,
    peak_rss_mb, per_s, percentile, rate, seed, server_id, thread_cpu_time, BenchResult, Lcg, Raw,
};

/// Flat summary: name → number, in insertion order for the table; plus the
/// facts of the machine and software the figures came from.
#[derive(Default)]
struct Summary {
    values: Vec<(String, f64)>,
    machine: Vec<(String, serde_json::Value)>,
}

impl Summary {
    fn fact(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        let value = value.into();
        match self.machine.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.machine.push((name.to_owned(), value)),
        }
    }

    fn set(&mut self, name: &str, value: f64) {
        println!("  {name:<32} {}", fmt_num(value));
        match self.values.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name.to_owned(), value)),
        }
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    fn merge_json(&mut self, json: &serde_json::Value) {
        if let Some(map) = json.as_object() {
            for (k, v) in map {
                if let Some(x) = v.as_f64() {
                    self.set(k, x);
                }
            }
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

struct Config {
    out: PathBuf,
    db: PathBuf,
    python: Option<PathBuf>,
    scale: f64,
    repo: PathBuf,
    /// `create_rate` built against the baseline revision (`make bench-baseline`).
    baseline: Option<PathBuf>,
}

impl Config {
    fn n(&self, base: usize) -> usize {
        ((base as f64 * self.scale) as usize).max(10)
    }

    fn script(&self, name: &str) -> PathBuf {
        self.repo.join("benches/python").join(name)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("mem-fill") => mem_fill(&args[1..]),
        Some("worker-create") => worker_create(&args[1..]),
        Some("one") => one(&args[1..]),
        Some("pg-worker-create") => pg::worker_create(&args[1..]),
        Some("pg-worker-cycle") => pg::worker_cycle(&args[1..]),
        _ => Err(
            "usage: actionq-bench run [--out DIR] [--python PATH] [--scale F] [--skip-python]"
                .to_owned(),
        ),
    };
    if let Err(e) = result {
        eprintln!("actionq-bench: {e}");
        std::process::exit(1);
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn num_flag(args: &[String], name: &str, default: usize) -> BenchResult<usize> {
    flag(args, name).map_or(Ok(default), |v| v.parse().map_err(err))
}

fn run(args: &[String]) -> BenchResult<()> {
    // The repository (for benches/python): given by make, else where this was built.
    let repo = flag(args, "--repo").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("benches/ is inside the repo")
                .to_path_buf()
        },
        PathBuf::from,
    );
    let out = flag(args, "--out").map_or_else(|| repo.join("target/bench"), PathBuf::from);
    let db = out.join("db");
    std::fs::create_dir_all(&db).map_err(err)?;
    let python = if args.iter().any(|a| a == "--skip-python") {
        None
    } else {
        Some(flag(args, "--python").map_or_else(|| repo.join(".venv/bin/python"), PathBuf::from))
    };
    let scale: f64 = flag(args, "--scale").map_or(Ok(1.0), |v| v.parse().map_err(err))?;
    let baseline = flag(args, "--baseline").map(PathBuf::from);
    let cfg = Config {
        out,
        db,
        python,
        scale,
        repo,
        baseline,
    };
    let started = Instant::now();
    let mut s = Summary::default();
    machine_facts(&mut s);
    s.fact("loadavg_start", loadavg());
    let mut notes: Vec<String> = Vec::new();
    let py = python_status(&cfg, &mut s, &mut notes);

    let only: Vec<String> = flag(args, "--only")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if want("create") {
        println!("== 1. create (file db, WAL, default settings; normal server, unique services)");
        bench_create(&cfg, &py, &mut s, &mut notes)?;
    }
    if want("audit") {
        println!("== 8. verify_audit on 100,000 events (SQLite file)");
        bench_audit(&cfg, &mut s)?;
    }
    if want("procs") {
        println!("== 5. two processes creating on one file");
        bench_two_procs(&cfg, &mut s)?;
    }
    if want("get") {
        println!("== 2. get_action");
        bench_get(&cfg, &py, &mut s, &mut notes)?;
    }
    if want("cycle") {
        println!("== 4. claim_next + report_result");
        bench_cycle(&cfg, &mut s)?;
    }
    if want("http") {
        println!("== 6. HTTP POST /api/v1/actions (FastAPI backend vs status quo)");
        bench_http(&cfg, &py, &mut s, &mut notes);
    }
    if want("notify") {
        println!("== 6b. notifications: commit -> receiver latency, creates with 2 sinks vs none");
        bench_notify(&cfg, &py, &mut s, &mut notes);
    }
    if want("agent") {
        println!("== 8. executor agent: claim-run-report cycle of `true` over HTTP, idle CPU");
        bench_agent(&cfg, &py, args, &mut s, &mut notes);
    }
    if want("live") {
        println!(
            "== 8b. live output: line-to-reader latency, cost on a chatty command, agent peak RSS"
        );
        bench_live_output(&cfg, &py, args, &mut s, &mut notes);
    }
    if want("gil") {
        println!("== 7. GIL: get_action with and without a busy Python thread");
        bench_gil(&cfg, &py, &mut s, &mut notes);
    }
    if want("auth") {
        println!("== 9. authentication overhead from Python (SQLite)");
        bench_auth(&cfg, &py, &mut s, &mut notes);
    }
    if want("fleet") {
        println!("== 10. fleet: 2,000 agents waiting on claims (and polling, for comparison) against actionq-server");
        match &cfg.python {
            Some(python) if py.binding => fleet::bench(&cfg, python, &mut s, &mut notes)?,
            _ => notes.push("fleet bench skipped (needs the binding's actionq-server)".into()),
        }
    }
    if want("memory") {
        println!("== 1b. MemoryStore with 1,000,000 actions resident (child process)");
        bench_memory(&cfg, &mut s)?;
    }
    if want("list") {
        println!("== 3. list_actions on 1,000,000 actions");
        bench_list(&cfg, &mut s)?;
    }
    if want("pg") {
        println!(
            "== 8. PostgreSQL: creates by 1/2/4/8 processes, 8 agents' cycles, list on 1,000,000"
        );
        pg::bench(&cfg, &mut s, &mut notes)?;
    }

    s.set("bench_seconds", started.elapsed().as_secs_f64());
    s.fact("loadavg_end", loadavg());
    report(&cfg, &s, &notes)
}

/// Facts of the machine the figures come from: absolute rates depend on them
/// (and on the load), so they are printed and written beside the figures.
fn machine_facts(s: &mut Summary) {
    s.fact(
        "date_utc",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    s.fact(
        "nproc",
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get),
    );
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim());
    s.fact("cpu_model", model);
    let uname = |flag: &str| {
        Command::new("uname")
            .arg(flag)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    s.fact("kernel", format!("{} {}", uname("-s"), uname("-r")));
    s.fact("rustc", env!("ACTIONQ_BENCH_RUSTC_VERSION"));
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), as text.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// What of the Python side can run.
struct Python {
    exe: Option<PathBuf>,
    binding: bool,
    status_quo: bool,
}

fn python_status(cfg: &Config, s: &mut Summary, notes: &mut Vec<String>) -> Python {
    let Some(exe) = cfg.python.clone().filter(|p| p.exists()) else {
        notes.push("no Python interpreter (run `make venv`): Python parts skipped".into());
        return Python {
            exe: None,
            binding: false,
            status_quo: false,
        };
    };
    let works = |code: &str| {
        Command::new(&exe)
            .args(["-c", code])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let binding = works("import actionq; actionq.ActionQueue(None)");
    let status_quo = works("import sqlalchemy.ext.asyncio, aiosqlite, fastapi, httpx, uvicorn");
    if !binding {
        notes.push("Python binding `actionq` not importable: Python binding parts skipped".into());
    }
    if !status_quo {
        notes.push("SQLAlchemy/aiosqlite/FastAPI not installed: status quo parts skipped".into());
    }
    // The versions actually installed (what the figures were measured with).
    let versions = Command::new(&exe)
        .args(["-c", VERSIONS_PY])
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
    if let Some(serde_json::Value::Object(map)) = versions {
        for (name, version) in map {
            s.fact(&name, version);
        }
    }
    Python {
        exe: Some(exe),
        binding,
        status_quo,
    }
}

/// Prints the Python and status-quo package versions as a JSON object (a
/// package that is not installed is left out).
const VERSIONS_PY: &str = r#"
import json, platform
from importlib import metadata
v = {"python": platform.python_version()}
for name in ("sqlalchemy", "aiosqlite", "fastapi", "uvicorn", "httpx"):
    try:
        v[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps(v))
"#;

/// Runs a Python script and returns the JSON object it prints last.
fn python_json(
    cfg: &Config,
    py: &Python,
    script: &str,
    args: &[String],
) -> BenchResult<serde_json::Value> {
    let exe = py.exe.as_ref().ok_or("no python")?;
    let output = Command::new(exe)
        .arg(cfg.script(script))
        .args(args)
        .env("PYTHONPATH", cfg.script(""))
        .stderr(Stdio::inherit())
        .output()
        .map_err(err)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{script} {args:?} failed ({}): {stdout}",
            output.status
        ));
    }
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("{script} printed no JSON: {stdout}"))?;
    serde_json::from_str(last).map_err(err)
}

fn json_f64(v: &serde_json::Value, key: &str) -> BenchResult<f64> {
    v.get(key)
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| format!("missing {key} in {v}"))
}

fn restart(server: &str, service: String) -> NewAction {
    NewAction::new(server, "restart_service").service_name(service)
}

/// The `per_s` figure a Python bench script prints for `args`.
fn python_per_s(cfg: &Config, py: &Python, script: &str, args: &[String]) -> BenchResult<f64> {
    json_f64(&python_json(cfg, py, script, args)?, "per_s")
}

type Contender<'a> = Box<dyn FnMut(usize) -> BenchResult<f64> + 'a>;

/// Runs each contender (RAW, Rust, Python binding, status quo) once per round,
/// rotating their order so that none always runs first or last, and sets
/// `{op}_{name}_per_s` to the median of its rounds. A `None` contender is not
/// measured.
fn interleaved(
    s: &mut Summary,
    op: &str,
    rounds: usize,
    mut contenders: Vec<(&str, Option<Contender<'_>>)>,
) -> BenchResult<()> {
    let count = contenders.len();
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); count];
    for round in 0..rounds {
        for k in 0..count {
            let which = (round + k) % count;
            if let Some(run) = contenders[which].1.as_mut() {
                figures[which].push(run(round)?);
            }
        }
    }
    for ((name, contender), figures) in contenders.iter().zip(&figures) {
        if contender.is_some() {
            s.set(&format!("{op}_{name}_per_s"), median(figures));
        }
    }
    Ok(())
}

fn bench_create(
    cfg: &Config,
    py: &Python,
    s: &mut Summary,
    notes: &mut Vec<String>,
) -> BenchResult<()> {
    let n = cfg.n(2000);
    let path = cfg.db.join("create.db");
    let server = server_id(0);
    let raw: Contender = Box::new(|_| {
        drop(fresh_queue(&path, 1)?);
        let mut conn = Raw::open(&path)?;
        rate(n, |i| {
            conn.create_restart(&server, &format!("svc-{i}.service"))
                .map(drop)
        })
    });
    // One creator, then 4 threads sharing one queue (their creates share
    // commits: the store's group commit), `n` creates in all, at a durability.
    let creators = |threads: usize, durability: Durability| -> Contender<'_> {
        let (path, server) = (&path, &server);
        Box::new(move |_| {
            let queue = std::sync::Arc::new(fresh_queue_with(path, 1, durability)?);
            let start = Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (queue, server) = (queue.clone(), server.clone());
                    std::thread::spawn(move || -> BenchResult<()> {
                        for i in (t..n).step_by(threads) {
                            queue
                                .create_action(&restart(&server, format!("svc-{i}.service")))
                                .map_err(err)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|_| "a creating thread panicked")??;
            }
            Ok(per_s(n, start.elapsed()))
        })
    };
    let min_dedup_path = cfg.db.join("create-min-dedup.db");
    let min_dedup = |durability: Durability| -> Contender<'_> {
        let path = &min_dedup_path;
        Box::new(move |_| minimal_dedup_transactions(path, n, durability))
    };
    let python: Contender = Box::new(|_| {
        drop(fresh_queue(&path, 1)?);
        let args = [
            arg("create"),
            arg("--db"),
            arg(path.display()),
            arg("--n"),
            arg(n),
        ];
        python_per_s(cfg, py, "bench_binding.py", &args)
    });
    // The status quo is ~30x slower per create: fewer creates per round keep
    // its rounds as short as the others', on its own fresh file each round.
    let sq_n = cfg.n(400);
    let sq_path = cfg.db.join("create-sq.db");
    let status_quo: Contender = Box::new(|_| {
        actionq_bench::remove_db(&sq_path);
        let args = [
            arg("create"),
            arg("--db"),
            arg(sq_path.display()),
            arg("--n"),
            arg(sq_n),
        ];
        python_per_s(cfg, py, "status_quo.py", &args)
    });
    // The same loop against the library at BENCH_BASELINE_REV (before the
    // approval policy and the audit chain), in a child built by make.
    let baseline_path = cfg.db.join("create-baseline.db");
    let baseline_bin = cfg.baseline.clone().filter(|p| p.exists());
    let baseline: Contender = Box::new(|_| {
        let bin = baseline_bin.as_ref().ok_or("no baseline")?;
        let output = Command::new(bin)
            .args([
                "--db",
                &baseline_path.display().to_string(),
                "--n",
                &n.to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .map_err(err)?;
        if !output.status.success() {
            return Err(format!("{} failed: {}", bin.display(), output.status));
        }
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(err)?;
        json_f64(&json, "per_s")
    });
    let has_baseline = cfg.baseline.as_ref().is_some_and(|p| p.exists());
    interleaved(
        s,
        "create",
        9,
        vec![
            ("raw", Some(raw)),
            ("mindedup", Some(min_dedup(Durability::Normal))),
            ("rust", Some(creators(1, Durability::Normal))),
            ("rust4", Some(creators(4, Durability::Normal))),
            ("mindedup_full", Some(min_dedup(Durability::Full))),
            ("rust_full", Some(creators(1, Durability::Full))),
            ("rust4_full", Some(creators(4, Durability::Full))),
            ("baseline", has_baseline.then_some(baseline)),
            ("py", py.binding.then_some(python)),
            ("sq", py.status_quo.then_some(status_quo)),
        ],
    )?;
    if !py.status_quo {
        notes.push("create_sq_per_s not measured".into());
    }
    if !has_baseline {
        notes.push("create_baseline_per_s not measured (run `make bench-baseline`)".into());
        return Ok(());
    }
    // The same comparison on the in-memory store, where no disk hides the
    // CPU the digest and the hash chain add (no target: a figure to watch).
    let mem_n = cfg.n(100_000);
    let rust_mem: Contender = Box::new(|_| {
        let queue = actionq::ActionQueue::in_memory();
        queue.create_server(&server, None).map_err(err)?;
        rate(mem_n, |i| {
            queue
                .create_action(&restart(&server, format!("svc-{i}.service")))
                .map(drop)
                .map_err(err)
        })
    });
    let baseline_mem: Contender = Box::new(|_| {
        let bin = cfg.baseline.as_ref().ok_or("no baseline")?;
        let output = Command::new(bin)
            .args(["--db", ":memory:", "--n", &mem_n.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .map_err(err)?;
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(err)?;
        json_f64(&json, "per_s")
    });
    interleaved(
        s,
        "create_memstore",
        5,
        vec![("rust", Some(rust_mem)), ("baseline", Some(baseline_mem))],
    )?;
    Ok(())
}

/// `verify_audit` over a SQLite file holding 100,000 events (50,000 actions
/// created and cancelled): the median of 5 walks, in milliseconds.
fn bench_audit(cfg: &Config, s: &mut Summary) -> BenchResult<()> {
    let actions = cfg.n(50_000);
    let path = cfg.db.join("audit.db");
    let queue = fresh_queue(&path, 1)?;
    let server = server_id(0);
    for i in 0..actions {
        let action = queue
            .create_action(&restart(&server, format!("svc-{i}.service")))
            .map_err(err)?;
        queue
            .by("bench")
            .unwrap()
            .cancel_action(action.id)
            .map_err(err)?;
    }
    let mut millis = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let report = queue.verify_audit().map_err(err)?;
        millis.push(start.elapsed().as_secs_f64() * 1e3);
        if report.first_bad_event_id.is_some() || report.checked != 2 * actions as u64 {
            return Err(format!("audit chain not intact: {report:?}"));
        }
    }
    s.set("audit_events", (2 * actions) as f64);
    s.set("audit_verify_ms", median(&millis));
    Ok(())
}

fn bench_memory(cfg: &Config, s: &mut Summary) -> BenchResult<()> {
    let n = cfg.n(1_000_000);
    let extra = cfg.n(100_000);
    let exe = std::env::current_exe().map_err(err)?;
    let output = Command::new(exe)
        .args([
            "mem-fill",
            "--n",
            &n.to_string(),
            "--extra",
            &extra.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(err)?;
    if !output.status.success() {
        return Err(format!("mem-fill failed: {}", output.status));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(err)?;
    s.merge_json(&json);
    Ok(())
}

/// Child: fills a MemoryStore queue with `n` actions on 100 servers, then times
/// `extra` more creates with them resident; reports peak RSS of the process.
fn mem_fill(args: &[String]) -> BenchResult<()> {
    let n = num_flag(args, "--n", 1_000_000)?;
    let extra = num_flag(args, "--extra", 100_000)?;
    let queue = ActionQueue::new(MemoryStore::new());
    let servers: Vec<String> = (0..100).map(server_id).collect();
    for server in &servers {
        queue.create_server(server, None).map_err(err)?;
    }
    let create = |i: usize| {
        queue
            .create_action(&restart(&servers[i % 100], format!("svc-{i}.service")))
            .map(drop)
            .map_err(err)
    };
    let fill = rate(n, create)?;
    // With them resident: the median of 10 chunks, so a burst of load from
    // elsewhere on the machine does not decide the figure.
    let chunk = (extra / 10).max(1);
    let cpu = thread_cpu_time();
    let chunks = (0..10)
        .map(|c| rate(chunk, |i| create(n + c * chunk + i)))
        .collect::<BenchResult<Vec<f64>>>()?;
    let cpu = thread_cpu_time() - cpu;
    let resident = median(&chunks);
    let out = serde_json::json!({
        "create_mem_fill_per_s": fill,
        "create_mem_per_s": resident,
        // The same creates per second of this thread's CPU time: what they cost
        // when the machine's other load does not take the core away.
        "create_mem_cpu_per_s": (chunk * 10) as f64 / cpu.as_secs_f64().max(1e-9),
        "mem_1m_rss_mb": peak_rss_mb().unwrap_or(-1.0),
    });
    println!("{out}");
    // The process ends here: skip freeing a million actions one by one.
    std::mem::forget(queue);
    Ok(())
}

fn bench_get(
    cfg: &Config,
    py: &Python,
    s: &mut Summary,
    notes: &mut Vec<String>,
) -> BenchResult<()> {
    let m = 10_000;
    let n = cfg.n(20_000);
    let path = cfg.db.join("get.db");
    let queue = fresh_queue(&path, 10)?;
    for i in 0..m {
        queue
            .create_action(&restart(&server_id(i % 10), format!("svc-{i}.service")))
            .map_err(err)?;
    }
    let raw_conn = Raw::open(&path)?;
    let pick = |round: usize| {
        let mut ids = Lcg(round as u64);
        move || ids.below(m as u64) as i64 + 1
    };
    let raw: Contender = Box::new(|round| {
        let mut next_id = pick(round);
        rate(n, |_| {
            raw_conn
                .get(next_id())?
                .map(drop)
                .ok_or_else(|| "missing".to_owned())
        })
    });
    let rust: Contender = Box::new(|round| {
        let mut next_id = pick(round);
        rate(n, |_| queue.get_action(next_id()).map(drop).map_err(err))
    });
    let python: Contender = Box::new(|_| {
        let args = [
            arg("get"),
            arg("--db"),
            arg(path.display()),
            arg("--n"),
            arg(n),
            arg("--ids"),
            arg(m),
        ];
        python_per_s(cfg, py, "bench_binding.py", &args)
    });
    // The status quo reads its own file (its own schema), seeded with the same
    // 10,000 actions by its first round; each round then times `sq_n` gets.
    let sq_n = cfg.n(3000);
    let sq_path = cfg.db.join("get-sq.db");
    actionq_bench::remove_db(&sq_path);
    let status_quo: Contender = Box::new(|round| {
        let args = [
            arg("get"),
            arg("--db"),
            arg(sq_path.display()),
            arg("--n"),
            arg(sq_n),
            arg("--ids"),
            arg(m),
            arg("--rounds"),
            arg(1),
            arg("--seed"),
            arg(round),
        ];
        python_per_s(cfg, py, "status_quo.py", &args)
    });
    interleaved(
        s,
        "get",
        5,
        vec![
            ("raw", Some(raw)),
            ("rust", Some(rust)),
            ("py", py.binding.then_some(python)),
            ("sq", py.status_quo.then_some(status_quo)),
        ],
    )?;
    if !py.status_quo {
        notes.push("get_sq_per_s not measured".into());
    }
    Ok(())
}

fn bench_list(cfg: &Config, s: &mut Summary) -> BenchResult<()> {
    let n = cfg.n(1_000_000);
    let path = cfg.db.join("list.db");
    let t = Instant::now();
    seed(&path, n, 100)?;
    s.set("seed_1m_seconds", t.elapsed().as_secs_f64());
    let queue = ActionQueue::open(&path).map_err(err)?;
    let mut rng = Lcg(7);
    // Runs last: seeding writes ~0.5 GB, whose write-back would disturb others.
    // Wall time is the target; the thread's CPU time alongside shows how much of
    // a slow tail is the query itself and how much is the machine's other load.
    let time = |query: &ActionQuery, wall: &mut Vec<f64>, cpu: &mut Vec<f64>| -> BenchResult<()> {
        let (t, c) = (Instant::now(), thread_cpu_time());
        let page = queue.list_actions(query).map_err(err)?;
        cpu.push((thread_cpu_time() - c).as_secs_f64() * 1e6);
        wall.push(t.elapsed().as_secs_f64() * 1e6);
        if page.actions.len() as u64 != page.total.min(50) {
            return Err(format!(
                "unexpected page: {} of {}",
                page.actions.len(),
                page.total
            ));
        }
        Ok(())
    };
    let (mut narrow, mut broad, mut narrow_cpu, mut broad_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut warm, mut warm_cpu) = (Vec::new(), Vec::new());
    let broad_query = ActionQuery {
        status: Some(ActionStatus::Completed),
        ..ActionQuery::default()
    };
    for _ in 0..50 {
        time(&broad_query, &mut warm, &mut warm_cpu)?;
    }
    for _ in 0..3000 {
        let query = ActionQuery {
            server_id: Some(server_id(rng.below(100) as usize)),
            status: Some(ActionStatus::ALL[rng.below(7) as usize]),
            ..ActionQuery::default()
        };
        time(&query, &mut narrow, &mut narrow_cpu)?;
        time(&broad_query, &mut broad, &mut broad_cpu)?;
    }
    s.set("list_narrow_p50_us", percentile(&narrow, 50.0));
    s.set("list_narrow_p99_us", percentile(&narrow, 99.0));
    s.set("list_narrow_cpu_p99_us", percentile(&narrow_cpu, 99.0));
    s.set("list_broad_p50_us", percentile(&broad, 50.0));
    s.set("list_broad_p99_us", percentile(&broad, 99.0));
    s.set("list_broad_cpu_p99_us", percentile(&broad_cpu, 99.0));
    drop(queue);
    actionq_bench::remove_db(&path);
    Ok(())
}

fn bench_cycle(cfg: &Config, s: &mut Summary) -> BenchResult<()> {
    let n = cfg.n(2000);
    let path = cfg.db.join("cycle.db");
    let server = server_id(0);
    let mut rates = Vec::new();
    for _ in 0..3 {
        let queue = fresh_queue(&path, 1)?;
        for i in 0..n {
            queue
                .create_action(&restart(&server, format!("svc-{i}.service")))
                .map_err(err)?;
        }
        rates.push(rate(n, |_| {
            let claim = queue
                .claim_next(&server, None, None)
                .map_err(err)?
                .ok_or("nothing to claim")?;
            queue
                .report_result(claim.action.id, &claim.lease_token, 0, Some("ok"), None)
                .map(drop)
                .map_err(err)
        })?);
    }
    s.set("cycle_rust_per_s", median(&rates));
    Ok(())
}

/// Runs `procs` worker processes creating `n` actions each on one fresh file,
/// started together; returns (aggregate creates/s, busy errors, other errors).
fn run_workers(path: &Path, procs: usize, n: usize) -> BenchResult<(f64, f64, f64)> {
    drop(fresh_queue(path, 1)?);
    let exe = std::env::current_exe().map_err(err)?;
    let mut children = Vec::new();
    for k in 0..procs {
        let mut child = Command::new(&exe)
            .args(["worker-create", "--db", &path.display().to_string()])
            .args(["--n", &n.to_string(), "--tag", &k.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(err)?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = lines.next().transpose().map_err(err)?;
        if ready.as_deref() != Some("ready") {
            return Err(format!("worker {k} not ready: {ready:?}"));
        }
        children.push((child, lines));
    }
    for (child, _) in &mut children {
        writeln!(child.stdin.as_mut().expect("piped"), "go").map_err(err)?;
    }
    let (mut first, mut last, mut ok, mut busy, mut other) = (i64::MAX, 0i64, 0.0, 0.0, 0.0);
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
        busy += json_f64(&v, "busy")?;
        other += json_f64(&v, "other")?;
    }
    let secs = (last - first) as f64 / 1e6;
    Ok((ok / secs.max(1e-9), busy, other))
}

/// Diagnostics: `one --what raw|rust --db PATH --n N` runs one contender's
/// creates alone (e.g. under `strace -c` or `perf` to compare their syscalls).
fn one(args: &[String]) -> BenchResult<()> {
    let path = PathBuf::from(flag(args, "--db").ok_or("--db")?);
    let n = num_flag(args, "--n", 1000)?;
    let server = server_id(0);
    let per_s = match flag(args, "--what") {
        Some("raw") => {
            drop(fresh_queue(&path, 1)?);
            let mut conn = Raw::open(&path)?;
            rate(n, |i| {
                conn.create_restart(&server, &format!("svc-{i}.service"))
                    .map(drop)
            })?
        }
        Some("rust") => {
            let queue = fresh_queue(&path, 1)?;
            rate(n, |i| {
                queue
                    .create_action(&restart(&server, format!("svc-{i}.service")))
                    .map(drop)
                    .map_err(err)
            })?
        }
        other => return Err(format!("--what raw|rust, not {other:?}")),
    };
    println!("{per_s:.0}/s");
    Ok(())
}

/// Child: opens the queue, says `ready`, waits for a line on stdin, creates.
fn worker_create(args: &[String]) -> BenchResult<()> {
    let path = flag(args, "--db").ok_or("--db")?;
    let n = num_flag(args, "--n", 1000)?;
    let tag = flag(args, "--tag").unwrap_or("0");
    let queue = ActionQueue::open(path).map_err(err)?;
    let server = server_id(0);
    println!("ready");
    std::io::stdout().flush().map_err(err)?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).map_err(err)?;
    let (mut ok, mut busy, mut other) = (0u64, 0u64, 0u64);
    let start = now_micros();
    for i in 0..n {
        match queue.create_action(&restart(&server, format!("w{tag}-{i}.service"))) {
            Ok(_) => ok += 1,
            Err(e) if e.kind() == ErrorKind::Storage && e.to_string().contains("busy") => busy += 1,
            Err(e) => {
                other += 1;
                eprintln!("worker {tag}: {e}");
            }
        }
    }
    let end = now_micros();
    println!(
        "{}",
        serde_json::json!({"start_us": start, "end_us": end, "ok": ok, "busy": busy, "other": other})
    );
    Ok(())
}

fn bench_two_procs(cfg: &Config, s: &mut Summary) -> BenchResult<()> {
    let n = cfg.n(4000);
    let path = cfg.db.join("procs.db");
    let (mut one, mut two, mut busy, mut other) = (Vec::new(), Vec::new(), 0.0, 0.0);
    // One process (the baseline, same harness, same total creates) and two,
    // interleaved, alternating which goes first.
    for round in 0..4 {
        for procs in if round % 2 == 0 { [1, 2] } else { [2, 1] } {
            let (r, b, o) = run_workers(&path, procs, 2 * n / procs)?;
            if procs == 1 {
                one.push(r)
            } else {
                two.push(r)
            }
            busy += b;
            other += o;
        }
    }
    s.set("create_1proc_per_s", median(&one));
    s.set("create_2proc_per_s", median(&two));
    s.set(
        "ratio_create_2proc__create_1proc",
        median(&two) / median(&one).max(1e-9),
    );
    s.set("busy_errors", busy);
    s.set("other_errors_2proc", other);
    Ok(())
}

fn bench_http(cfg: &Config, py: &Python, s: &mut Summary, notes: &mut Vec<String>) {
    if !(py.binding && py.status_quo) {
        notes.push("HTTP comparison skipped (needs the binding and the status quo stack)".into());
        return;
    }
    let args = [
        arg("--dir"),
        arg(cfg.db.display()),
        arg("--n"),
        arg(cfg.n(1000)),
    ];
    match python_json(cfg, py, "bench_http.py", &args) {
        Ok(json) => s.merge_json(&json),
        Err(e) => notes.push(format!("HTTP comparison failed: {e}")),
    }
}

/// Notifications (benches/python/bench_notify.py): latency from commit to
/// receiver through `actionq-server --notify`, and create throughput with two
/// webhook sinks against none, in the same run.
fn bench_notify(cfg: &Config, py: &Python, s: &mut Summary, notes: &mut Vec<String>) {
    if !py.binding {
        notes.push("notification bench skipped (needs the binding's actionq-server)".into());
        return;
    }
    let args = [
        arg("--dir"),
        arg(cfg.db.display()),
        arg("--n"),
        arg(cfg.n(1000)),
    ];
    match python_json(cfg, py, "bench_notify.py", &args) {
        Ok(json) => s.merge_json(&json),
        Err(e) => notes.push(format!("notification bench failed: {e}")),
    }
}

/// The executor (`actionq-agent`, release build; `--agent PATH` or
/// target/release/actionq-agent) against `actionq-server`: see
/// benches/python/bench_agent.py.
fn bench_agent(
    cfg: &Config,
    py: &Python,
    args: &[String],
    s: &mut Summary,
    notes: &mut Vec<String>,
) {
    let idle = 30.0 * cfg.scale.clamp(0.2, 1.0);
    let extra = [
        arg("--n"),
        arg(cfg.n(500)),
        arg("--idle-seconds"),
        arg(idle),
    ];
    agent_script(cfg, py, args, s, notes, ("agent", "bench_agent.py"), &extra);
}

/// Live output (docs/contract/cancel-and-output.md#live-output), with the
/// agent of [`bench_agent`]: see benches/python/bench_live_output.py.
fn bench_live_output(
    cfg: &Config,
    py: &Python,
    args: &[String],
    s: &mut Summary,
    notes: &mut Vec<String>,
) {
    let extra = [arg("--lines"), arg(cfg.n(200)), arg("--runs"), arg(5)];
    agent_script(
        cfg,
        py,
        args,
        s,
        notes,
        ("live output", "bench_live_output.py"),
        &extra,
    );
}

/// Runs `script` (named `what` in notes) with the release agent and the
/// database directory, then `extra`, and merges what it prints.
fn agent_script(
    cfg: &Config,
    py: &Python,
    args: &[String],
    s: &mut Summary,
    notes: &mut Vec<String>,
    (what, script): (&str, &str),
    extra: &[String],
) {
    let agent = flag(args, "--agent").map_or_else(
        || cfg.repo.join("target/release/actionq-agent"),
        PathBuf::from,
    );
    if !py.binding || !agent.exists() {
        notes.push(format!(
            "{what} bench skipped (needs the binding's actionq-server and {}: `make agent`)",
            agent.display()
        ));
        return;
    }
    let mut bench_args = vec![
        arg("--dir"),
        arg(cfg.db.display()),
        arg("--agent"),
        arg(agent.display()),
    ];
    bench_args.extend_from_slice(extra);
    match python_json(cfg, py, script, &bench_args) {
        Ok(json) => s.merge_json(&json),
        Err(e) => notes.push(format!("{what} bench failed: {e}")),
    }
}

fn bench_gil(cfg: &Config, py: &Python, s: &mut Summary, notes: &mut Vec<String>) {
    if !py.binding {
        notes.push("GIL bench skipped (no binding)".into());
        return;
    }
    let path = cfg.db.join("gil.db");
    let args = [
        arg("gil"),
        arg("--db"),
        arg(path.display()),
        arg("--seconds"),
        arg(cfg.scale.min(1.0)),
    ];
    match python_json(cfg, py, "bench_binding.py", &args) {
        Ok(json) => s.merge_json(&json),
        Err(e) => notes.push(format!("GIL bench failed: {e}")),
    }
}

/// What authenticating a request adds from Python on SQLite
/// (`auth_overhead_us`; see `bench_binding.py auth`).
fn bench_auth(cfg: &Config, py: &Python, s: &mut Summary, notes: &mut Vec<String>) {
    if !py.binding {
        notes.push("auth bench skipped (no binding)".into());
        return;
    }
    let path = cfg.db.join("auth.db");
    let args = [
        arg("auth"),
        arg("--db"),
        arg(path.display()),
        arg("--n"),
        arg(cfg.n(20_000)),
    ];
    match python_json(cfg, py, "bench_binding.py", &args) {
        Ok(json) => s.merge_json(&json),
        Err(e) => notes.push(format!("auth bench failed: {e}")),
    }
}

/// A command-line argument.
fn arg(v: impl ToString) -> String {
    v.to_string()
}

/// A target: `value(summary) >= bound` (or `<=`), shown with what it compares.
struct Target {
    name: &'static str,
    lhs: &'static str,
    rhs: Option<&'static str>,
    factor: f64,
    at_most: bool,
}

const TARGETS: &[Target] = &[
    Target {
        name: "pg_create_4proc >= 2 x pg_create_1proc",
        lhs: "pg_create_4proc_per_s",
        rhs: Some("pg_create_1proc_per_s"),
        factor: 2.0,
        at_most: false,
    },
    Target {
        name: "pg_list_1m_p99_us <= 2000",
        lhs: "pg_list_1m_p99_us",
        rhs: None,
        factor: 2000.0,
        at_most: true,
    },
    Target {
        name: "pg_lost_actions = 0",
        lhs: "pg_lost_actions",
        rhs: None,
        factor: 0.0,
        at_most: true,
    },
    Target {
        name: "pg_double_claims = 0",
        lhs: "pg_double_claims",
        rhs: None,
        factor: 0.0,
        at_most: true,
    },
    Target {
        name: "create_rust >= 0.9 x create_baseline (before policy + audit chain)",
        lhs: "create_rust_per_s",
        rhs: Some("create_baseline_per_s"),
        factor: 0.9,
        at_most: false,
    },
    Target {
        name: "audit_verify (100k events) <= 1000 ms",
        lhs: "audit_verify_ms",
        rhs: None,
        factor: 1000.0,
        at_most: true,
    },
    // Durable = synced before answering: at `durability = full` a commit is
    // an fsync, which group commit shares among concurrent creators.
    Target {
        name:
            "create_rust_full >= 0.8 x create_mindedup_full (one synced dedup transaction per row)",
        lhs: "create_rust_full_per_s",
        rhs: Some("create_mindedup_full_per_s"),
        factor: 0.8,
        at_most: false,
    },
    Target {
        name: "create_rust4_full (4 threads) >= 1.5 x create_mindedup_full",
        lhs: "create_rust4_full_per_s",
        rhs: Some("create_mindedup_full_per_s"),
        factor: 1.5,
        at_most: false,
    },
    // At the default durability a WAL commit syncs nothing: a create is CPU,
    // and its schema's writes (the row, its indexes, the event, the count)
    // against one row and one index.
    Target {
        name: "create_rust >= 0.8 x create_mindedup (no sync per commit)",
        lhs: "create_rust_per_s",
        rhs: Some("create_mindedup_per_s"),
        factor: 0.8,
        at_most: false,
    },
    Target {
        name: "create_rust4 (4 threads) >= 1.5 x create_mindedup (no sync per commit)",
        lhs: "create_rust4_per_s",
        rhs: Some("create_mindedup_per_s"),
        factor: 1.5,
        at_most: false,
    },
    Target {
        name: "create_rust >= 0.7 x create_raw",
        lhs: "create_rust_per_s",
        rhs: Some("create_raw_per_s"),
        factor: 0.7,
        at_most: false,
    },
    Target {
        name: "create_py >= 0.6 x create_raw",
        lhs: "create_py_per_s",
        rhs: Some("create_raw_per_s"),
        factor: 0.6,
        at_most: false,
    },
    Target {
        name: "create_py >= 50 x create_sq",
        lhs: "create_py_per_s",
        rhs: Some("create_sq_per_s"),
        factor: 50.0,
        at_most: false,
    },
    Target {
        name: "get_py >= 50 x get_sq",
        lhs: "get_py_per_s",
        rhs: Some("get_sq_per_s"),
        factor: 50.0,
        at_most: false,
    },
    Target {
        name: "http_create_ratio >= 4",
        lhs: "http_create_ratio",
        rhs: None,
        factor: 4.0,
        at_most: false,
    },
    Target {
        name: "list_narrow_p99_us <= 500",
        lhs: "list_narrow_p99_us",
        rhs: None,
        factor: 500.0,
        at_most: true,
    },
    Target {
        name: "list_broad_p99_us <= 1000",
        lhs: "list_broad_p99_us",
        rhs: None,
        factor: 1000.0,
        at_most: true,
    },
    Target {
        name: "create_mem >= 400000/s",
        lhs: "create_mem_per_s",
        rhs: None,
        factor: 400_000.0,
        at_most: false,
    },
    Target {
        name: "mem_1m_rss_mb <= 1000",
        lhs: "mem_1m_rss_mb",
        rhs: None,
        factor: 1000.0,
        at_most: true,
    },
    Target {
        name: "create_2proc >= 1.2 x create_1proc",
        lhs: "create_2proc_per_s",
        rhs: Some("create_1proc_per_s"),
        factor: 1.2,
        at_most: false,
    },
    Target {
        name: "agent_cycle_ms <= 5 (median)",
        lhs: "agent_cycle_ms",
        rhs: None,
        factor: 5.0,
        at_most: true,
    },
    Target {
        name: "live_output_chatty_ratio <= 1.1 (live output on vs off)",
        lhs: "live_output_chatty_ratio",
        rhs: None,
        factor: 1.1,
        at_most: true,
    },
    Target {
        name: "live_output_agent_peak_rss_kib <= 24 MiB",
        lhs: "live_output_agent_peak_rss_kib",
        rhs: None,
        factor: 24576.0,
        at_most: true,
    },
    Target {
        name: "agent_idle_cpu_pct <= 1",
        lhs: "agent_idle_cpu_pct",
        rhs: None,
        factor: 1.0,
        at_most: true,
    },
    Target {
        name: "auth_overhead_us <= 20",
        lhs: "auth_overhead_us",
        rhs: None,
        factor: 20.0,
        at_most: true,
    },
    Target {
        name: "fleet idle server CPU % <= 5",
        lhs: "fleet_sqlite_waiting_server_cpu_pct",
        rhs: None,
        factor: 5.0,
        at_most: true,
    },
    Target {
        name: "fleet idle RSS growth MB <= 100",
        lhs: "fleet_sqlite_waiting_rss_growth_mb",
        rhs: None,
        factor: 100.0,
        at_most: true,
    },
    Target {
        name: "fleet waiting errors = 0",
        lhs: "fleet_sqlite_waiting_errors",
        rhs: None,
        factor: 0.0,
        at_most: true,
    },
    Target {
        name: "fleet approval->claim p99 ms <= 50",
        lhs: "fleet_sqlite_waiting_claim_p99_ms",
        rhs: None,
        factor: 50.0,
        at_most: true,
    },
    Target {
        name: "fleet PG replica approval->claim p99 <= 50",
        lhs: "fleet_postgres_waiting_claim_p99_ms",
        rhs: None,
        factor: 50.0,
        at_most: true,
    },
    Target {
        name: "events_stream_lag_p99_ms <= 50",
        lhs: "events_stream_lag_p99_ms",
        rhs: None,
        factor: 50.0,
        at_most: true,
    },
    Target {
        name: "busy_errors = 0",
        lhs: "busy_errors",
        rhs: None,
        factor: 0.0,
        at_most: true,
    },
];

fn report(cfg: &Config, s: &Summary, notes: &[String]) -> BenchResult<()> {
    let mut summary = s.values.clone();
    let mut lines = Vec::new();
    for t in TARGETS {
        let Some(lhs) = s.get(t.lhs) else {
            lines.push(format!("  {:<38} {:>14}  NOT MEASURED", t.name, "-"));
            continue;
        };
        let (value, bound) = match t.rhs {
            Some(rhs) => match s.get(rhs) {
                Some(r) if r > 0.0 => (lhs / r, t.factor),
                _ => {
                    lines.push(format!("  {:<38} {:>14}  NOT MEASURED", t.name, "-"));
                    continue;
                }
            },
            None => (lhs, t.factor),
        };
        if let Some(rhs) = t.rhs {
            let name = format!(
                "ratio_{}__{}",
                t.lhs.trim_end_matches("_per_s"),
                rhs.trim_end_matches("_per_s")
            );
            if !summary.iter().any(|(n, _)| *n == name) {
                summary.push((name, value));
            }
        }
        let met = if t.at_most {
            value <= bound
        } else {
            value >= bound
        };
        let shown = match t.rhs {
            Some(_) => format!("{value:.2}x"),
            None => fmt_num(value),
        };
        lines.push(format!(
            "  {:<38} {:>14}  {}",
            t.name,
            shown,
            if met { "met" } else { "NOT MET" }
        ));
    }
    println!();
    println!("== summary ({})", cfg.out.join("summary.json").display());
    for (name, value) in &summary {
        println!("  {name:<32} {:>14}", fmt_num(*value));
    }
    println!();
    println!("== machine (absolute rates depend on it and on its load)");
    for (name, value) in &s.machine {
        let shown = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        println!("  {name:<32} {shown}");
    }
    println!();
    println!("== targets (ratios within this run)");
    for line in &lines {
        println!("{line}");
    }
    for note in notes {
        println!("  note: {note}");
    }
    let mut map: BTreeMap<&str, serde_json::Value> = summary
        .iter()
        .map(|(k, v)| (k.as_str(), serde_json::json!(v)))
        .collect();
    let machine: serde_json::Map<String, serde_json::Value> = s.machine.iter().cloned().collect();
    map.insert("machine", serde_json::Value::Object(machine));
    let text = serde_json::to_string_pretty(&map).map_err(err)?;
    std::fs::write(cfg.out.join("summary.json"), text + "\n").map_err(err)?;
    Ok(())
}
