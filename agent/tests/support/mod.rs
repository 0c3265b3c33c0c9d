//! Real processes for the agent's end-to-end tests: `actionq-server` (the
//! FastAPI backend from the repository's .venv) on a free loopback port with
//! a test whitelist and a SQLite file, and the `actionq-agent` binary.
//!
//! Waits here are readiness waits (poll until a state is reached) with a
//! generous hang guard that fails the test with the logs; nothing asserts
//! on how long anything took.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Longest wait for anything: past it the test fails (a hang, not a slow run).
pub const HANG_GUARD: Duration = Duration::from_secs(180);
/// The bootstrap key the test servers run with.
pub const BOOTSTRAP_KEY: &str = "agent-e2e-bootstrap-key";

/// `actionq-server` of this worktree's venv (or `$ACTIONQ_SERVER`).
pub fn server_script() -> PathBuf {
    let path = std::env::var_os("ACTIONQ_SERVER").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/actionq-server"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} missing: run `make python-develop` (or `make test-agent`)",
        path.display()
    );
    path
}

/// The Python of the venv `actionq-server` runs in.
pub fn venv_python() -> PathBuf {
    server_script().with_file_name("python")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `probe` until it gives a value; fails the test with `context()`
/// past the hang guard.
pub fn wait_for<T>(
    what: &str,
    context: impl Fn() -> String,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A test directory: whitelist, database, logs, marker files.
pub fn test_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("actionq-agent-e2e-")
        .tempdir()
        .unwrap()
}

/// The test whitelist. `dir` is where commands leave marker files.
pub fn whitelist(dir: &Path) -> Value {
    let d = dir.display();
    json!({"actions": {
        "run_true": {"command": "true"},
        "exit_3": {"command": "sh -c 'echo to-stdout; echo to-stderr >&2; exit 3'"},
        "print_50mb": {"command": "sh -c 'yes 0123456789abcdef | head -c 52428800'"},
        "sleep_long": {"command": "sleep 300"},
        // Ignores SIGTERM, as does the sleep it starts (ignored signals are
        // inherited across exec): only SIGKILL to the group ends it.
        "ignore_term": {"command": "sh -c \"trap '' TERM; sleep 300 & sleep 300\""},
        // Says it started, then waits for the test's go file.
        "wait_go": {"command": format!(
            "sh -c 'echo started >> \"$0\"; while [ ! -e \"$1\" ]; do sleep 0.02; done; echo done' {d}/started {d}/go"
        )},
        // Prints, waits for its go file, prints again: output seen before exit.
        "print_wait_print": {"command": format!(
            "sh -c 'echo first; while [ ! -e \"$0\" ]; do sleep 0.02; done; echo second' {d}/go-print"
        )},
        // Says it started; on SIGTERM prints and exits 7.
        "term_exits": {"command": format!(
            "sh -c 'trap \"echo got TERM; exit 7\" TERM; echo started >> \"$0\"; while :; do sleep 0.05; done' {d}/started-term"
        )},
        // Waits for its own go file, then exits 0: raced by a cancel.
        "race_exit": {
            "command": format!("sh -c 'echo waiting; while [ ! -e \"$0\" ]; do sleep 0.005; done' {d}/go-race-{{n}}"),
            "params": {"n": {"kind": "integer", "min": 1, "max": 100000}},
        },
        // Appends a line per run to its own file: a second run shows.
        "mark": {
            "command": format!("sh -c 'echo ran >> \"$0\"' {d}/ran-{{n}}"),
            "params": {"n": {"kind": "integer", "min": 1, "max": 100000}},
        },
    }})
}

/// A running `actionq-server`.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub db: PathBuf,
    pub whitelist: PathBuf,
    pub log: PathBuf,
    http: ureq::Agent,
}

impl Server {
    /// Starts a server on a free port with `whitelist` and a fresh SQLite file in `dir`.
    pub fn start(dir: &Path, whitelist: &Value) -> Server {
        let wl = dir.join("whitelist.json");
        std::fs::write(&wl, whitelist.to_string()).unwrap();
        let mut server = Server {
            child: None,
            port: free_port(),
            db: dir.join("actionq.sqlite3"),
            whitelist: wl,
            log: dir.join("server.log"),
            http: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        };
        server.restart();
        server
    }

    /// Starts the server process again (same port, database, whitelist).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(server_script())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--database")
            .arg(&self.db)
            .arg("--whitelist")
            .arg(&self.whitelist)
            .env("ACTIONQ_API_KEY", BOOTSTRAP_KEY)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("{}/docs", self.url());
        wait_for(
            "the server to accept connections",
            || self.logs(),
            || {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("server exited with {status}\n{}", self.logs());
                }
                let r = self.http.get(&url).call().ok()?;
                (r.status() == 200).then_some(())
            },
        );
        self.child = Some(child);
    }

    /// Stops the server (SIGINT, as Ctrl-C) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            wait_for(
                "the server to exit",
                || self.logs(),
                || child.try_wait().unwrap(),
            );
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The claim-signing public key the server wrote beside its database.
    pub fn claim_public_key(&self) -> PathBuf {
        self.db.with_file_name("claim-signing.pub")
    }

    pub fn logs(&self) -> String {
        format!(
            "--- server log\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// An admin request with the bootstrap key: (status, JSON body or Null).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/api/v1{}", self.url(), path);
        let result = match (method, body) {
            ("GET", _) => self
                .http
                .get(&url)
                .header("X-API-Key", BOOTSTRAP_KEY)
                .call(),
            ("POST", body) => self
                .http
                .post(&url)
                .header("X-API-Key", BOOTSTRAP_KEY)
                .send_json(body.unwrap_or(json!({}))),
            ("PUT", _) => self
                .http
                .put(&url)
                .header("X-API-Key", BOOTSTRAP_KEY)
                .send_empty(),
            _ => panic!("method {method}"),
        };
        let mut response =
            result.unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn create_server(&self, id: &str) {
        let (status, body) = self.call(
            "POST",
            "/servers",
            Some(json!({"id": id, "hostname": null})),
        );
        assert_eq!(status, 201, "{body}");
    }

    /// Creates an action (approved: the server is not paused); its id.
    pub fn create_action(
        &self,
        server_id: &str,
        action_type: &str,
        params: &[(&str, &str)],
    ) -> i64 {
        let params: BTreeMap<&str, &str> = params.iter().copied().collect();
        let (status, body) = self.call(
            "POST",
            "/actions",
            Some(json!({"server_id": server_id, "action_type": action_type, "params": params})),
        );
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["status"], "approved", "{body}");
        body["id"].as_i64().unwrap()
    }

    pub fn action(&self, id: i64) -> Value {
        let (status, body) = self.call("GET", &format!("/actions/{id}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until action `id` is completed, failed or cancelled; its record.
    pub fn wait_finished(&self, id: i64, context: impl Fn() -> String) -> Value {
        wait_for(
            &format!("action {id} to finish"),
            || format!("{}\n{}", context(), self.logs()),
            || {
                let a = self.action(id);
                matches!(
                    a["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
                .then_some(a)
            },
        )
    }

    /// The live output of action `id` so far: (seq, stdout, stderr) per chunk.
    pub fn output(&self, id: i64) -> Vec<(i64, String, String)> {
        let (status, body) = self.call("GET", &format!("/actions/{id}/output?after=0"), None);
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["seq"].as_i64().unwrap(),
                    c["stdout"].as_str().unwrap().to_owned(),
                    c["stderr"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Every event of action `id`.
    pub fn events_of(&self, id: i64) -> Vec<Value> {
        let (status, body) = self.call("GET", "/events?after=0&limit=1000", None);
        assert_eq!(status, 200);
        body.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action_id"] == id)
            .cloned()
            .collect()
    }

    /// A new agent credential `name` bound to `server_id` (POST /credentials
    /// with the bootstrap key): its secret.
    pub fn agent_token(&self, name: &str, server_id: &str) -> String {
        let (status, body) = self.call(
            "POST",
            "/credentials",
            Some(json!({"name": name, "role": "agent", "server_id": server_id})),
        );
        assert_eq!(status, 201, "POST /credentials: {body}");
        body["secret"].as_str().unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The agent's settings a test chooses; the rest is written as given.
pub struct AgentSetup<'a> {
    pub server: &'a Server,
    pub server_id: &'a str,
    pub dir: &'a Path,
    pub name: &'a str,
    /// Extra TOML lines.
    pub extra: &'a str,
    /// The token to write, or None for a new agent credential for `server_id`.
    pub token: Option<String>,
}

/// A running `actionq-agent`; its stderr (JSON lines) goes to a file.
pub struct Agent {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub config: PathBuf,
}

/// Writes the agent's config and token file (mode 0600) for `setup`.
pub fn write_agent_files(setup: &AgentSetup<'_>) -> (PathBuf, PathBuf) {
    let token = match &setup.token {
        Some(t) => t.clone(),
        None => setup.server.agent_token(
            &format!("{}-{}", setup.name, setup.server_id),
            setup.server_id,
        ),
    };
    write_agent_files_with(setup, &token, "X-Agent-Token")
}

/// Writes the agent's config and token file with this token and header.
pub fn write_agent_files_with(
    setup: &AgentSetup<'_>,
    token: &str,
    header: &str,
) -> (PathBuf, PathBuf) {
    let token_file = setup.dir.join(format!("{}.token", setup.name));
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = setup.dir.join(format!("{}.toml", setup.name));
    // The agent trusts the server's whitelist file and the public key the
    // server generated beside its database, as an operator provisions them.
    std::fs::write(
        &config,
        format!(
            "server_url = \"{}\"\nserver_id = \"{}\"\ntoken_file = \"{}\"\nauth_header = \"{header}\"\n\
             whitelist_file = \"{}\"\nclaim_public_key_file = \"{}\"\n\
             poll_interval_seconds = 0.2\n{}\n",
            setup.server.url(),
            setup.server_id,
            token_file.display(),
            setup.server.whitelist.display(),
            setup.server.claim_public_key().display(),
            setup.extra
        ),
    )
    .unwrap();
    (config, token_file)
}

impl Agent {
    pub fn start(setup: &AgentSetup<'_>) -> Agent {
        let (config, _) = write_agent_files(setup);
        Agent::start_with_config(&config, &setup.dir.join(format!("{}.log", setup.name)))
    }

    pub fn start_with_config(config: &Path, log: &Path) -> Agent {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_actionq-agent"))
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            log: log.to_owned(),
            config: config.to_owned(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), signal) };
    }

    pub fn logs(&self) -> String {
        format!(
            "--- agent log {}\n{}",
            self.log.display(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// The agent's log lines that parse as JSON.
    pub fn events(&self) -> Vec<Value> {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            f.read_to_string(&mut text).unwrap();
        }
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a log line with `event`; the first such line.
    pub fn wait_event(&self, event: &str) -> Value {
        wait_for(
            &format!("agent event {event}"),
            || self.logs(),
            || self.events().into_iter().find(|e| e["event"] == event),
        )
    }

    /// Waits for the agent to exit; its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        wait_for(
            "the agent to exit",
            || self.logs(),
            || child.try_wait().unwrap(),
        )
    }

    /// Peak resident memory of the running agent (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
