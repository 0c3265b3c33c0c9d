//! Fleet: N simulated agents against one `actionq-server` process (SQLite) or
//! two replicas (PostgreSQL, approvals made on the other replica), driven by a
//! load generator in this one process (tokio, one thread, plain HTTP/1.1 on
//! keep-alive connections: a request costs it a few microseconds).
//!
//! Each agent owns a server `fleet-<i>` and either waits on its claim
//! (`{"wait_seconds": 60}`, again as soon as it answers; the first wait
//! shorter, so the fleet's renewals spread over the minute) or polls it once a
//! second (`{}`, today's behaviour, the comparison row). Per row:
//! - **idle**: with nothing to claim, the server's CPU (% of one core, from
//!   `/proc/<pid>/stat`), requests/s, RSS and its growth since before the
//!   agents connected, and the generator's own CPU;
//! - **approvals**: actions created and approved at random times for random
//!   agents; approval → claim latency (from sending the approve to the agent
//!   holding the claim) p50/p99, and for the waiting row the events stream's
//!   lag (approve sent → its SSE message on a stream of the agents' replica).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actionq_bench::{err, percentile, BenchResult, Lcg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{arg, Config, Summary};

const KEY: &str = "fleet-bench-key";
const WAIT_BODY: &str = r#"{"wait_seconds":60}"#;

/// One keep-alive HTTP/1.1 connection.
struct Http {
    stream: TcpStream,
    port: u16,
    buf: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Http {
    async fn connect(port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            port,
            buf: Vec::with_capacity(1024),
        })
    }

    fn head(&self, method: &str, path: &str, body: &str, extra: &str) -> String {
        format!(
            "{method} /api/v1{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-API-Key: {KEY}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )
    }

    /// Sends a request and reads its whole answer (status, body).
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let request = self.head(method, path, body, "");
        self.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| std::io::Error::other("bad status line"))?;
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + length {
                    self.fill().await?;
                }
                let body = self.buf[end + 4..end + 4 + length].to_vec();
                self.buf.drain(..end + 4 + length);
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// What the agents and the approver share.
#[derive(Default)]
struct Shared {
    requests: AtomicU64,
    errors: AtomicU64,
    claims: AtomicU64,
    /// action id → when its approve was sent.
    approved_at: Mutex<HashMap<i64, Instant>>,
    claim_ms: Mutex<Vec<f64>>,
    stream_ms: Mutex<Vec<f64>>,
}

fn json_field<'a>(body: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    body.get(name)
}

/// One agent: claims (waiting, or polling after `start_delay`), reports
/// each claim done. A waiting agent's first wait lasts `first_wait` (the
/// fleet's renewals spread over the minute, as agents started at different
/// times renew), every later one 60 s.
async fn agent(
    port: u16,
    index: usize,
    waiting: bool,
    shared: Arc<Shared>,
    start_delay: Duration,
    first_wait: Duration,
) {
    tokio::time::sleep(start_delay).await;
    let path = format!("/servers/fleet-{index}/actions/claim");
    let mut conn: Option<Http> = None;
    let mut first = Some(format!(
        r#"{{"wait_seconds":{:.3}}}"#,
        first_wait.as_secs_f64()
    ));
    loop {
        if conn.is_none() {
            match Http::connect(port).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let http = conn.as_mut().expect("connected above");
        let body = match (waiting, first.take()) {
            (false, _) => "{}".to_owned(),
            (true, Some(body)) => body,
            (true, None) => WAIT_BODY.to_owned(),
        };
        let answer = http.call("POST", &path, &body).await;
        shared.requests.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok((200, body)) => {
                let got = Instant::now();
                let claim: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let id = json_field(&claim, "id")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(-1);
                let token = json_field(&claim, "lease_token")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned();
                if let Some(sent) = shared.approved_at.lock().expect("lock").get(&id) {
                    shared
                        .claim_ms
                        .lock()
                        .expect("lock")
                        .push((got - *sent).as_secs_f64() * 1e3);
                }
                shared.claims.fetch_add(1, Ordering::Relaxed);
                let report = format!(r#"{{"lease_token":"{token}","exit_code":0}}"#);
                let done = http
                    .call("POST", &format!("/actions/{id}/result"), &report)
                    .await;
                shared.requests.fetch_add(1, Ordering::Relaxed);
                if !matches!(done, Ok((200, _))) {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok((204, _)) => {}
            Ok(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
        if !waiting {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Follows `/events/stream` and records each approval's lag.
async fn stream(port: u16, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut http = Http::connect(port).await?;
    let request = format!(
        "GET /api/v1/events/stream?after=0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {KEY}\r\n\r\n"
    );
    http.stream.write_all(request.as_bytes()).await?;
    let mut pending = Vec::new();
    loop {
        http.fill().await?;
        let now = Instant::now();
        pending.extend_from_slice(&http.buf);
        http.buf.clear();
        while let Some(end) = find(&pending, b"\n") {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Some(data) = line.strip_prefix(b"data: ") else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
            if event.get("to_status").and_then(|v| v.as_str()) == Some("approved") {
                let id = event
                    .get("action_id")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(-1);
                if let Some(sent) = shared.approved_at.lock().expect("lock").get(&id) {
                    shared
                        .stream_ms
                        .lock()
                        .expect("lock")
                        .push((now - *sent).as_secs_f64() * 1e3);
                }
            }
        }
    }
}

/// A running `actionq-server`.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of a child this process spawned and still owns.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn free_port() -> BenchResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    Ok(listener.local_addr().map_err(err)?.port())
}

fn start_server(script: &Path, database: &str) -> BenchResult<Server> {
    let port = free_port()?;
    let child = Command::new(script)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &arg(port),
            "--database",
            database,
        ])
        .env("ACTIONQ_API_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("actionq-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 14th field.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / clock_ticks()
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit we own; the
    // servers spawned afterwards inherit the raised limit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Figures of one row.
struct Row {
    store: &'static str,
    mode: &'static str,
    agents: usize,
    server_cpu_pct: f64,
    req_per_s: f64,
    rss_mb: f64,
    rss_growth_mb: f64,
    claim_p50_ms: f64,
    claim_p99_ms: f64,
    stream_p99_ms: f64,
    generator_cpu_pct: f64,
    errors: u64,
    claimed: u64,
    approvals: usize,
}

async fn setup_servers(port: u16, agents: usize) -> BenchResult<()> {
    let mut tasks = Vec::new();
    for part in 0..16 {
        tasks.push(tokio::spawn(async move {
            let mut http = Http::connect(port).await.map_err(err)?;
            for i in (part..agents).step_by(16) {
                let body = format!(r#"{{"id":"fleet-{i}","hostname":null}}"#);
                let (status, text) = http.call("POST", "/servers", &body).await.map_err(err)?;
                if status != 201 && status != 409 {
                    return Err(format!(
                        "create server: {status} {}",
                        String::from_utf8_lossy(&text)
                    ));
                }
                // In maintenance: its actions wait for the approver.
                let (status, text) = http
                    .call("PUT", &format!("/servers/fleet-{i}/pause"), "")
                    .await
                    .map_err(err)?;
                if status != 200 {
                    return Err(format!(
                        "pause server: {status} {}",
                        String::from_utf8_lossy(&text)
                    ));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(err)??;
    }
    Ok(())
}

async fn waiters(port: u16) -> f64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return -1.0;
    };
    let req =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return -1.0;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text).await;
    text.lines()
        .find_map(|l| l.strip_prefix("actionq_waiters "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1.0)
}

#[allow(clippy::too_many_arguments)]
async fn run_row(
    store: &'static str,
    mode: &'static str,
    agents: usize,
    idle: Duration,
    approvals: usize,
    agent_server: &Server,
    approve_port: u16,
    seed: u64,
) -> BenchResult<Row> {
    let waiting = mode == "waiting";
    let port = agent_server.port;
    let pid = agent_server.child.id();
    setup_servers(approve_port, agents).await?;
    let rss0 = rss_mb(pid);
    let shared = Arc::new(Shared::default());
    // The stream first, before thousands of agents fill the listen backlog.
    let mut handles = vec![tokio::spawn({
        let shared = shared.clone();
        async move {
            while stream(port, shared.clone()).await.is_err() {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    })];
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..agents {
        // Polling agents spread over the second; waiting ones connect at once.
        let delay = if waiting {
            Duration::ZERO
        } else {
            Duration::from_micros((i as u64 * 1_000_000) / agents as u64)
        };
        // Renewals spread evenly over the minute (steady state of a fleet).
        let first_wait = Duration::from_secs_f64(60.0 * (i + 1) as f64 / agents as f64);
        handles.push(tokio::spawn(agent(
            port,
            i,
            waiting,
            shared.clone(),
            delay,
            first_wait,
        )));
    }
    // Settle: every waiting agent's wait is open (readiness), or a polling
    // fleet has gone round twice.
    let deadline = Instant::now() + Duration::from_secs(60);
    if waiting {
        while waiters(port).await < agents as f64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (cpu0, gen0, req0, t0) = (
        cpu_seconds(pid),
        cpu_seconds(std::process::id()),
        shared.requests.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(idle).await;
    let seconds = t0.elapsed().as_secs_f64();
    let server_cpu_pct = (cpu_seconds(pid) - cpu0) / seconds * 100.0;
    let generator_cpu_pct = (cpu_seconds(std::process::id()) - gen0) / seconds * 100.0;
    let req_per_s = (shared.requests.load(Ordering::Relaxed) - req0) as f64 / seconds;
    let rss1 = rss_mb(pid);

    // Approvals at random times (0-200 ms apart) for random agents.
    let mut rng = Lcg(seed);
    let mut approver = Http::connect(approve_port).await.map_err(err)?;
    for _ in 0..approvals {
        tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
        let target = rng.below(agents as u64);
        let body = format!(
            r#"{{"server_id":"fleet-{target}","action_type":"restart_service","service_name":"nginx"}}"#
        );
        let (status, created) = approver
            .call("POST", "/actions", &body)
            .await
            .map_err(err)?;
        if status != 201 {
            return Err(format!(
                "create: {status} {}",
                String::from_utf8_lossy(&created)
            ));
        }
        let created: serde_json::Value = serde_json::from_slice(&created).map_err(err)?;
        let id = created["id"].as_i64().unwrap_or(-1);
        shared
            .approved_at
            .lock()
            .expect("lock")
            .insert(id, Instant::now());
        let (status, text) = approver
            .call("POST", &format!("/actions/{id}/approve"), "")
            .await
            .map_err(err)?;
        if status != 200 {
            return Err(format!(
                "approve: {status} {}",
                String::from_utf8_lossy(&text)
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while (shared.claims.load(Ordering::Relaxed) as usize) < approvals && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for h in handles {
        h.abort();
    }
    let claim_ms = shared.claim_ms.lock().expect("lock").clone();
    let stream_ms = shared.stream_ms.lock().expect("lock").clone();
    Ok(Row {
        store,
        mode,
        agents,
        server_cpu_pct,
        req_per_s,
        rss_mb: rss1,
        rss_growth_mb: rss1 - rss0,
        claim_p50_ms: percentile(&claim_ms, 50.0),
        claim_p99_ms: if claim_ms.len() < approvals {
            f64::INFINITY
        } else {
            percentile(&claim_ms, 99.0)
        },
        stream_p99_ms: if stream_ms.len() < approvals {
            f64::INFINITY
        } else {
            percentile(&stream_ms, 99.0)
        },
        generator_cpu_pct,
        errors: shared.errors.load(Ordering::Relaxed),
        claimed: shared.claims.load(Ordering::Relaxed),
        approvals,
    })
}

/// The fleet rows: `agents` waiting and polling, on SQLite and (with
/// `ACTIONQ_TEST_PG_URL`) PostgreSQL with two replicas.
pub(super) fn bench(
    cfg: &Config,
    python: &Path,
    s: &mut Summary,
    notes: &mut Vec<String>,
) -> BenchResult<()> {
    let script: PathBuf = python.with_file_name("actionq-server");
    if !script.exists() {
        notes.push(format!(
            "fleet bench skipped: {} missing (make python-develop)",
            script.display()
        ));
        return Ok(());
    }
    let agents = cfg.n(2000);
    raise_fd_limit(4 * agents as u64 + 1024);
    let polling_idle = Duration::from_secs_f64(15.0 * cfg.scale.clamp(0.3, 1.0));
    // Waiting agents renew their 60-second waits once a minute, spread over
    // the minute: the window spans one renewal of each.
    let waiting_idle = Duration::from_secs_f64(61.0 * cfg.scale.clamp(0.1, 1.0)).max(polling_idle);
    let idle = |mode: &str| {
        if mode == "waiting" {
            waiting_idle
        } else {
            polling_idle
        }
    };
    let approvals = 100;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    let mut rows = Vec::new();
    for (k, mode) in ["waiting", "polling"].into_iter().enumerate() {
        let db = cfg.db.join(format!("fleet-{mode}.sqlite3"));
        actionq_bench::remove_db(&db);
        let server = start_server(&script, &db.display().to_string())?;
        let row = runtime.block_on(run_row(
            "sqlite",
            mode,
            agents,
            idle(mode),
            approvals,
            &server,
            server.port,
            7 + k as u64,
        ))?;
        rows.push(row);
    }
    match std::env::var("ACTIONQ_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        None => notes.push("fleet: ACTIONQ_TEST_PG_URL not set, PostgreSQL rows skipped".into()),
        Some(admin) => {
            for (k, mode) in ["waiting", "polling"].into_iter().enumerate() {
                let url = super::pg::fresh_schema(&admin)?;
                let a = start_server(&script, &url)?;
                let b = start_server(&script, &url)?;
                let row = runtime.block_on(run_row(
                    "postgres",
                    mode,
                    agents,
                    idle(mode),
                    approvals,
                    &a,
                    b.port,
                    17 + k as u64,
                ))?;
                rows.push(row);
            }
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    let mut table = vec![format!(
        "  {:<8} {:<8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>8} {:>6} {:>8}",
        "store",
        "mode",
        "agents",
        "srv CPU%",
        "req/s",
        "RSS MB",
        "RSS +MB",
        "p50 ms",
        "p99 ms",
        "SSE p99",
        "gen CPU%",
        "errors",
        "claimed"
    )];
    for r in &rows {
        table.push(format!(
            "  {:<8} {:<8} {:>6} {:>9.1} {:>8.0} {:>8.0} {:>8.1} {:>9.1} {:>9.1} {:>10.1} {:>8.1} {:>6} {:>4}/{:<3}",
            r.store, r.mode, r.agents, r.server_cpu_pct, r.req_per_s, r.rss_mb, r.rss_growth_mb, r.claim_p50_ms,
            r.claim_p99_ms, r.stream_p99_ms, r.generator_cpu_pct, r.errors, r.claimed, r.approvals
        ));
        let name = |what: &str| format!("fleet_{}_{}_{what}", r.store, r.mode);
        s.set(&name("server_cpu_pct"), r.server_cpu_pct);
        s.set(&name("req_per_s"), r.req_per_s);
        s.set(&name("rss_mb"), r.rss_mb);
        s.set(&name("rss_growth_mb"), r.rss_growth_mb);
        s.set(&name("claim_p50_ms"), r.claim_p50_ms);
        s.set(&name("claim_p99_ms"), r.claim_p99_ms);
        s.set(&name("generator_cpu_pct"), r.generator_cpu_pct);
        s.set(&name("errors"), r.errors as f64);
        if r.mode == "waiting" && r.store == "sqlite" {
            s.set("events_stream_lag_p99_ms", r.stream_p99_ms);
        }
    }
    println!("  fleet (server CPU and req/s while idle; latency from sending the approve):");
    for line in table {
        println!("{line}");
    }
    Ok(())
}
