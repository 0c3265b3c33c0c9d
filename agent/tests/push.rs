//! How the agent asks for work, against fake servers on loopback (test
//! doubles speaking the claim/heartbeat/result routes): it long-polls with
//! `wait_seconds` and a client timeout longer than the wait, polls at its
//! interval a server that answers at once (and notices when it starts to
//! wait), stops at once on SIGTERM in the middle of a wait, retries failures
//! after jittered delays that start over after a success, and fails over
//! between its server URLs, the report following the server that answers.
//! Runs in plain `cargo test` (no Python needed).

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actionq::{ClaimFields, ClaimSigningKey, Whitelist};
use serde_json::{json, Value};
use support::{wait_for, Agent};

const TOKEN: &str = "aq_ag_push-test-token";

/// How a fake server answers claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As the contract says: holds a claim until an action is queued or
    /// its `wait_seconds` end (then 204).
    Waits,
    /// As a server that predates the wait: answers at once.
    AnswersAtOnce,
    /// 503 to every request.
    Down,
}

/// One request a fake received.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    path: String,
    token: Option<String>,
    body: Value,
    /// The status it was answered with (None while a claim is held).
    status: Option<u16>,
}

struct State {
    mode: Mode,
    claims: VecDeque<Value>,
    /// Statuses the next claims get, before `mode` applies again.
    script: VecDeque<u16>,
    seen: Vec<Seen>,
}

struct Fake {
    state: Mutex<State>,
    changed: Condvar,
}

impl Fake {
    fn new(mode: Mode) -> Arc<Fake> {
        Arc::new(Fake {
            state: Mutex::new(State {
                mode,
                claims: VecDeque::new(),
                script: VecDeque::new(),
                seen: Vec::new(),
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
        self.changed.notify_all();
    }

    fn push_claim(&self, claim: Value) {
        self.lock().claims.push_back(claim);
        self.changed.notify_all();
    }

    fn seen(&self, suffix: &str) -> Vec<Seen> {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.path.ends_with(suffix))
            .cloned()
            .collect()
    }

    fn claims_seen(&self) -> Vec<Seen> {
        self.seen("/actions/claim")
    }

    /// The result request for action `id` this fake accepted (200).
    fn result_of(&self, id: i64) -> Option<Seen> {
        self.seen(&format!("/actions/{id}/result"))
            .into_iter()
            .find(|s| s.status == Some(200))
    }

    /// Answers a claim whose request is `seen[index]`.
    fn answer_claim(&self, index: usize) -> (u16, Value) {
        let mut state = self.lock();
        let wait = state.seen[index].body["wait_seconds"].as_u64().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(wait);
        if let Some(status) = state.script.pop_front() {
            return (status, down_body());
        }
        loop {
            if state.mode == Mode::Down {
                return (503, down_body());
            }
            if let Some(claim) = state.claims.pop_front() {
                return (200, claim);
            }
            let now = Instant::now();
            if state.mode == Mode::AnswersAtOnce || now >= deadline {
                return (204, Value::Null);
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

fn down_body() -> Value {
    json!({"detail": {"code": "UNAVAILABLE", "message": "down for the test"}})
}

/// Serves `fake` on `listener`; its port.
fn serve_on(listener: TcpListener, fake: Arc<Fake>) -> u16 {
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let fake = Arc::clone(&fake);
            std::thread::spawn(move || {
                let _ = connection(stream.unwrap(), &fake);
            });
        }
    });
    port
}

fn serve(fake: Arc<Fake>) -> u16 {
    serve_on(TcpListener::bind("127.0.0.1:0").unwrap(), fake)
}

/// A loopback port nothing listens on (yet).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves the requests of one keep-alive connection.
fn connection(stream: TcpStream, fake: &Fake) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let index = {
            let mut state = fake.lock();
            state.seen.push(Seen {
                at: Instant::now(),
                path: path.clone(),
                token: headers.get("x-agent-token").cloned(),
                body: body.clone(),
                status: None,
            });
            state.seen.len() - 1
        };
        let (status, reply) = if path.ends_with("/actions/claim") {
            fake.answer_claim(index)
        } else if fake.lock().mode == Mode::Down {
            (503, down_body())
        } else if path.ends_with("/result") {
            let status = if body["exit_code"] == 0 {
                "completed"
            } else {
                "failed"
            };
            (200, json!({ "status": status }))
        } else {
            (200, json!({}))
        };
        fake.lock().seen[index].status = Some(status);
        let text = if reply.is_null() {
            String::new()
        } else {
            reply.to_string()
        };
        let writer = reader.get_mut();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )?;
        writer.flush()?;
    }
}

/// The agent's whitelist and the claims a genuine server would sign.
struct Queue {
    dir: PathBuf,
    key: ClaimSigningKey,
    whitelist: Whitelist,
    whitelist_text: String,
}

impl Queue {
    fn new(dir: &Path) -> Queue {
        let d = dir.display();
        let text = json!({"actions": {
            "mark": {
                "command": format!("touch {d}/mark-{{n}}"),
                "params": {"n": {"kind": "integer", "min": 1, "max": 50}},
            },
            // Says it started, waits for its go file, then marks.
            "mark_after_go": {
                "command": format!(
                    "sh -c 'touch \"$0\"; while [ ! -e \"$1\" ]; do sleep 0.02; done; touch \"$2\"' \
                     {d}/started-{{n}} {d}/go-{{n}} {d}/mark-{{n}}"
                ),
                "params": {"n": {"kind": "integer", "min": 1, "max": 50}},
            },
        }})
        .to_string();
        Queue {
            dir: dir.to_owned(),
            key: ClaimSigningKey::generate().unwrap(),
            whitelist: Whitelist::from_json(&text).unwrap(),
            whitelist_text: text,
        }
    }

    /// A signed claim of `action_type` with `n` (also the action id).
    fn claim(&self, action_type: &str, n: i64) -> Value {
        let params = BTreeMap::from([("n".to_owned(), n.to_string())]);
        let built = self.whitelist.build(action_type, &params).unwrap();
        let version = self.whitelist.version();
        let digest = actionq::action_digest("web-1", action_type, &built.argv, &built.env, version);
        let lease_token = format!("lease-{n}");
        let lease_expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
        let signature = self.key.sign(&ClaimFields {
            id: n,
            server_id: "web-1",
            action_type,
            params: &params,
            argv: &built.argv,
            env: &built.env,
            digest: &digest,
            whitelist_version: version,
            lease_token: &lease_token,
            lease_expires_at,
        });
        json!({
            "id": n,
            "server_id": "web-1",
            "action_type": action_type,
            "status": "executing",
            "params": params,
            "argv": built.argv,
            "env": built.env,
            "digest": digest,
            "whitelist_version": version,
            "lease_token": lease_token,
            "lease_expires_at": lease_expires_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "signature": signature,
        })
    }

    fn marker(&self, name: &str, n: i64) -> PathBuf {
        self.dir.join(format!("{name}-{n}"))
    }

    /// Writes the agent's token, whitelist, key and config (`urls` as
    /// `server_urls`, then `extra`); starts it as `name`.
    fn start_agent(&self, name: &str, urls: &[String], extra: &str) -> Agent {
        let dir = self.dir.join(name);
        std::fs::create_dir(&dir).unwrap();
        let file = |file: &str, text: &str, mode: u32| {
            let path = dir.join(file);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let token = file("token", TOKEN, 0o600);
        let whitelist = file("whitelist.json", &self.whitelist_text, 0o644);
        let public = file("claim-signing.pub", &self.key.public_key().to_pem(), 0o644);
        let config = file(
            "agent.toml",
            &format!(
                "server_urls = {}\nserver_id = \"web-1\"\ntoken_file = \"{}\"\n\
                 whitelist_file = \"{}\"\nclaim_public_key_file = \"{}\"\n{extra}\n",
                serde_json::to_string(urls).unwrap(),
                token.display(),
                whitelist.display(),
                public.display()
            ),
            0o600,
        );
        Agent::start_with_config(&config, &dir.join("agent.log"))
    }
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The agent's log lines with `event`.
fn events(agent: &Agent, event: &str) -> Vec<Value> {
    agent
        .events()
        .into_iter()
        .filter(|e| e["event"] == event)
        .collect()
}

/// Waits for `fake` to accept the result of action `id`.
fn wait_result(fake: &Fake, id: i64, agent: &Agent) -> Seen {
    wait_for(
        &format!("the result of {id}"),
        || agent.logs(),
        || fake.result_of(id),
    )
}

#[test]
fn a_long_poll_asks_the_server_to_wait_and_outlasts_the_http_timeout() {
    let dir = support::test_dir();
    let queue = Queue::new(dir.path());
    let fake = Fake::new(Mode::Waits);
    let port = serve(Arc::clone(&fake));
    // Each claim is held 2 s, twice the timeout of any other request.
    let agent = queue.start_agent(
        "agent",
        &[url(port)],
        "claim_wait_seconds = 2\nhttp_timeout_seconds = 1\npoll_interval_seconds = 0.1",
    );
    // Two claims held for their whole wait, answered 204, and a third asked.
    wait_for(
        "three claims",
        || agent.logs(),
        || (fake.claims_seen().len() >= 3).then_some(()),
    );
    // An action queued while a claim is held is handed over at once.
    fake.push_claim(queue.claim("mark", 1));
    let result = wait_result(&fake, 1, &agent);
    assert_eq!(result.body["exit_code"], 0, "{}", agent.logs());
    assert_eq!(result.body["lease_token"], "lease-1");
    assert!(queue.marker("mark", 1).exists());

    let claims = fake.claims_seen();
    for claim in &claims {
        assert_eq!(claim.body["wait_seconds"], 2, "{claim:?}");
        assert_eq!(claim.token.as_deref(), Some(TOKEN));
    }
    // The held claims ended in the server's 204, not in a client timeout:
    // nothing failed, and no claim was sent while another was held.
    let empty: Vec<&Seen> = claims.iter().filter(|c| c.status == Some(204)).collect();
    assert!(empty.len() >= 2, "{claims:?}");
    assert!(
        events(&agent, "claim_failed").is_empty(),
        "{}",
        agent.logs()
    );
    // After an empty answer, the next claim follows it (a held claim is
    // not polled again meanwhile).
    for pair in claims.windows(2) {
        if pair[0].status == Some(204) {
            assert!(
                pair[1].at - pair[0].at >= Duration::from_secs(2),
                "a claim sent while the one before it was held: {claims:?}"
            );
        }
    }
    let modes = events(&agent, "claim_mode");
    assert_eq!(modes.len(), 1, "{}", agent.logs());
    assert_eq!(modes[0]["long_poll"], true);
}

#[test]
fn a_server_that_answers_at_once_is_polled_at_the_interval_until_it_waits() {
    let dir = support::test_dir();
    let queue = Queue::new(dir.path());
    let fake = Fake::new(Mode::AnswersAtOnce);
    let port = serve(Arc::clone(&fake));
    let agent = queue.start_agent(
        "agent",
        &[url(port)],
        "claim_wait_seconds = 4\npoll_interval_seconds = 0.25",
    );
    wait_for(
        "the agent to notice",
        || agent.logs(),
        || events(&agent, "claim_mode").first().cloned(),
    );
    // Over a window of 2 s: one claim per poll interval, not a busy loop.
    let before = fake.claims_seen().len();
    std::thread::sleep(Duration::from_secs(2));
    let polled = fake.claims_seen().len() - before;
    assert!(
        (2..=2 * 4 + 2).contains(&polled),
        "{polled} claims in 2 s at a 0.25 s interval\n{}",
        agent.logs()
    );
    // Every claim still asks for the wait: an upgrade is noticed.
    assert!(fake
        .claims_seen()
        .iter()
        .all(|c| c.body["wait_seconds"] == 4));
    fake.push_claim(queue.claim("mark", 1));
    wait_result(&fake, 1, &agent);

    // The server is upgraded: it holds claims now, and the agent long-polls.
    fake.set_mode(Mode::Waits);
    wait_for(
        "the agent to notice the upgrade",
        || agent.logs(),
        || {
            let modes = events(&agent, "claim_mode");
            (modes.len() == 2).then_some(())
        },
    );
    let modes = events(&agent, "claim_mode");
    assert_eq!(
        (&modes[0]["long_poll"], &modes[1]["long_poll"]),
        (&json!(false), &json!(true)),
        "{}",
        agent.logs()
    );
    let before = fake.claims_seen().len();
    std::thread::sleep(Duration::from_secs(2));
    let asked = fake.claims_seen().len() - before;
    assert!(
        asked <= 1,
        "{asked} claims in 2 s of a 4 s wait\n{}",
        agent.logs()
    );
    fake.push_claim(queue.claim("mark", 2));
    wait_result(&fake, 2, &agent);
}

#[test]
fn sigterm_during_a_long_wait_stops_the_agent_at_once_and_claims_nothing() {
    let dir = support::test_dir();
    let queue = Queue::new(dir.path());
    let fake = Fake::new(Mode::Waits);
    let port = serve(Arc::clone(&fake));
    let mut agent = queue.start_agent("agent", &[url(port)], "claim_wait_seconds = 60");
    wait_for(
        "a held claim",
        || agent.logs(),
        || fake.claims_seen().first().cloned(),
    );
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success(), "{}", agent.logs());
    // It did not wait for the server's answer (due in a minute): the one
    // claim it sent is still unanswered, and nothing ran.
    let claims = fake.claims_seen();
    assert_eq!(claims.len(), 1, "{claims:?}\n{}", agent.logs());
    assert_eq!(claims[0].status, None, "{claims:?}\n{}", agent.logs());
    assert!(!events(&agent, "stop").is_empty(), "{}", agent.logs());
    assert!(events(&agent, "action").is_empty(), "{}", agent.logs());
}

#[test]
fn failed_claims_are_retried_after_jittered_delays_that_start_over_after_a_success() {
    let dir = support::test_dir();
    let queue = Queue::new(dir.path());
    // Six failures, one success, two failures; then empty answers.
    let script = [503, 503, 503, 503, 503, 503, 204, 503, 503];
    let fakes: Vec<Arc<Fake>> = (0..4)
        .map(|_| {
            let fake = Fake::new(Mode::AnswersAtOnce);
            fake.lock().script.extend(script);
            fake
        })
        .collect();
    let agents: Vec<Agent> = fakes
        .iter()
        .enumerate()
        .map(|(i, fake)| {
            let port = serve(Arc::clone(fake));
            queue.start_agent(
                &format!("agent-{i}"),
                &[url(port)],
                "claim_wait_seconds = 0\npoll_interval_seconds = 0.1\n\
                 retry_min_seconds = 0.05\nretry_max_seconds = 1",
            )
        })
        .collect();
    for (fake, agent) in fakes.iter().zip(&agents) {
        wait_for(
            "the script to be played",
            || agent.logs(),
            || (fake.claims_seen().len() > script.len()).then_some(()),
        );
    }
    // The delays after the first five failures, per agent.
    let gaps: Vec<Vec<Duration>> = fakes
        .iter()
        .map(|fake| {
            let claims = fake.claims_seen();
            (0..5).map(|k| claims[k + 1].at - claims[k].at).collect()
        })
        .collect();
    for gap in gaps.iter().flatten() {
        assert!(*gap >= Duration::from_millis(49), "{gaps:?}");
    }
    // Agents that failed together do not retry together.
    let spread = |k: usize| {
        let column: Vec<Duration> = gaps.iter().map(|g| g[k]).collect();
        *column.iter().max().unwrap() - *column.iter().min().unwrap()
    };
    assert!(
        (0..5).any(|k| spread(k) > Duration::from_millis(40)),
        "the agents retried in lockstep: {gaps:?}"
    );
    for agent in &agents {
        // One line for the first failure of each outage; the second
        // outage's first delay starts from the minimum again.
        let failed = events(agent, "claim_failed");
        assert_eq!(failed.len(), 2, "{}", agent.logs());
        for line in &failed {
            assert_eq!(line["failures"], 1, "{}", agent.logs());
            let delay = line["retry_in_ms"].as_f64().unwrap();
            assert!((50.0..=150.0).contains(&delay), "{}", agent.logs());
        }
        // The answer after each outage (the last one may still be on its way).
        wait_for(
            "two recoveries",
            || agent.logs(),
            || (events(agent, "server_reachable").len() == 2).then_some(()),
        );
    }
}

#[test]
fn a_down_url_fails_over_to_the_next_and_the_report_follows_the_server_that_answers() {
    let dir = support::test_dir();
    let queue = Queue::new(dir.path());
    let first_port = closed_port();
    let second = Fake::new(Mode::Waits);
    let second_port = serve(Arc::clone(&second));
    let agent = queue.start_agent(
        "agent",
        &[url(first_port), url(second_port)],
        "claim_wait_seconds = 1\nretry_min_seconds = 0.05\nretry_max_seconds = 0.5",
    );

    // The first URL refuses connections: the work comes through the second.
    second.push_claim(queue.claim("mark", 1));
    wait_result(&second, 1, &agent);
    assert!(queue.marker("mark", 1).exists());
    let changed = events(&agent, "server_url_changed");
    assert_eq!(changed[0]["from"], format!("{}/api/v1", url(first_port)));
    assert_eq!(changed[0]["to"], format!("{}/api/v1", url(second_port)));

    // The first comes back: the agent stays with the second, which works.
    let first = Fake::new(Mode::Waits);
    serve_on(
        TcpListener::bind(("127.0.0.1", first_port)).unwrap(),
        Arc::clone(&first),
    );
    second.push_claim(queue.claim("mark", 2));
    wait_result(&second, 2, &agent);
    assert!(first.seen("").is_empty(), "{:?}", first.seen(""));

    // The second fails (5xx): on to the first.
    second.set_mode(Mode::Down);
    first.push_claim(queue.claim("mark", 3));
    wait_result(&first, 3, &agent);
    assert!(queue.marker("mark", 3).exists());

    // While an action runs, the server it came from goes down: its result,
    // with its lease token, goes to the other one.
    first.push_claim(queue.claim("mark_after_go", 4));
    wait_for(
        "action 4 to start",
        || agent.logs(),
        || queue.marker("started", 4).exists().then_some(()),
    );
    first.set_mode(Mode::Down);
    second.set_mode(Mode::Waits);
    std::fs::write(queue.marker("go", 4), "").unwrap();
    let result = wait_result(&second, 4, &agent);
    assert_eq!(result.body["lease_token"], "lease-4");
    assert_eq!(result.body["exit_code"], 0, "{}", agent.logs());
    assert!(queue.marker("mark", 4).exists());
    let tried_first = first.seen("/actions/4/result");
    assert!(
        tried_first.iter().all(|s| s.status == Some(503)) && !tried_first.is_empty(),
        "{tried_first:?}"
    );

    // Both down: the agent keeps trying both, with backoff, and lives.
    second.set_mode(Mode::Down);
    let (first_before, second_before) = (first.claims_seen().len(), second.claims_seen().len());
    wait_for(
        "retries on both",
        || agent.logs(),
        || {
            (first.claims_seen().len() >= first_before + 3
                && second.claims_seen().len() >= second_before + 3)
                .then_some(())
        },
    );
    // Failures are logged once per streak interval, and the streak may have
    // begun just above, in the moment both were down.
    assert!(
        !events(&agent, "claim_failed").is_empty(),
        "{}",
        agent.logs()
    );
    second.set_mode(Mode::Waits);
    second.push_claim(queue.claim("mark", 5));
    wait_result(&second, 5, &agent);
    assert!(queue.marker("mark", 5).exists());

    let every = [first.seen(""), second.seen("")].concat();
    assert!(every.iter().all(|s| s.token.as_deref() == Some(TOKEN)));
    // Each action ran once: one accepted result each.
    for id in 1..=5 {
        let accepted = [&first, &second]
            .iter()
            .flat_map(|f| f.seen(&format!("/actions/{id}/result")))
            .filter(|s| s.status == Some(200))
            .count();
        assert_eq!(accepted, 1, "action {id}");
    }
}
