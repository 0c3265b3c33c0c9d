//! End to end: `actionq-server` on loopback, the `actionq-agent` binary, real
//! commands. Run by `make test-agent` (it builds the server into .venv first);
//! `cargo test --workspace` leaves this target out (`test = false`), since it
//! needs that venv.
//!
//! Agents authenticate with agent credentials (`X-Agent-Token`) issued by
//! the test through POST /credentials, and trust what an operator would
//! provision: the server's whitelist file and the claim-signing public key
//! the server generated beside its database. Every claim is signed, and the
//! agent rebuilds its command from its own whitelist before running it
//! (claims from a fake server are tested in `trust.rs`).

mod support;

use std::path::Path;

use serde_json::Value;
use support::{wait_for, Agent, AgentSetup, Server};

fn agent<'a>(server: &'a Server, dir: &'a Path, name: &'a str, extra: &'a str) -> AgentSetup<'a> {
    AgentSetup {
        server,
        server_id: "web-1",
        dir,
        name,
        extra,
        token: None,
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The agent's `action` log line for `id`. The agent writes it after the
/// server took the result, so a test that saw the result waits for it.
fn action_line(agent: &Agent, id: i64) -> Value {
    wait_for(
        &format!("the action line of {id}"),
        || agent.logs(),
        || {
            agent
                .events()
                .into_iter()
                .find(|e| e["event"] == "action" && e["id"] == id)
        },
    )
}

#[test]
fn each_command_ends_in_the_right_status_with_capped_output() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let ok = server.create_action("web-1", "run_true", &[]);
    let exit3 = server.create_action("web-1", "exit_3", &[]);
    let big = server.create_action("web-1", "print_50mb", &[]);
    let slow = server.create_action("web-1", "sleep_long", &[]);
    let stubborn = server.create_action("web-1", "ignore_term", &[]);
    let extra = "kill_grace_seconds = 1\n[timeouts]\nsleep_long = 1\nignore_term = 1\n";
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", extra));
    let ctx = || agent.logs();

    let a = server.wait_finished(ok, ctx);
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("completed"), Some(0)),
        "{a}"
    );

    let a = server.wait_finished(exit3, ctx);
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{a}"
    );
    assert_eq!(a["stdout"], "to-stdout\n");
    assert_eq!(a["stderr"], "to-stderr\n");

    let a = server.wait_finished(big, ctx);
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("completed"), Some(0)),
        "{a}"
    );
    let stdout = a["stdout"].as_str().unwrap();
    assert!(stdout.chars().count() <= actionq::limits::DEFAULT_OUTPUT_CAP_CHARS);
    assert!(
        stdout.starts_with("0123456789abcdef\n0123456789abcdef\n"),
        "{stdout:.100}"
    );
    assert!(
        stdout.ends_with("[actionq-agent: output truncated; the stream had 52428800 bytes]"),
        "{}",
        &stdout[stdout.len() - 100..]
    );
    assert_eq!(action_line(&agent, big)["stdout_bytes"], 52_428_800);
    // The agent read all 50 MB through a bounded buffer: its peak resident
    // memory stays far below the output's size.
    let peak_kib = agent.peak_rss_kib();
    eprintln!("agent peak RSS after the 50 MB command: {peak_kib} KiB");
    assert!(peak_kib < 24 * 1024, "agent peak RSS {peak_kib} KiB");

    for id in [slow, stubborn] {
        let a = server.wait_finished(id, ctx);
        assert_eq!(
            (a["status"].as_str(), a["exit_code"].as_i64()),
            (Some("failed"), Some(124)),
            "{a}"
        );
        assert!(
            a["stderr"]
                .as_str()
                .unwrap()
                .contains("timed out after 1s; process group killed"),
            "{a}"
        );
    }
    assert!(action_line(&agent, stubborn)["killed"].is_string());

    // Every line names the action, its argv, exit code and duration, and
    // no line carries the token.
    let line = action_line(&agent, exit3);
    assert_eq!(line["argv"][0], "sh");
    assert_eq!(line["exit_code"], 3);
    assert!(line["duration_ms"].is_number());
    let log = std::fs::read_to_string(&agent.log).unwrap();
    let token = std::fs::read_to_string(dir.path().join("agent.token")).unwrap();
    assert!(!log.contains(token.trim()));
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success());
}

#[test]
fn a_killed_agent_leaves_its_action_to_lease_expiry_and_never_reruns_it() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let id = server.create_action("web-1", "wait_go", &[]);
    let extra = "lease_seconds = 3\n".to_owned();
    let mut first = Agent::start(&agent(&server, dir.path(), "first", &extra));
    let started = dir.path().join("started");
    wait_for(
        "the command to start",
        || first.logs(),
        || (!lines(&started).is_empty()).then_some(()),
    );
    first.signal(libc::SIGKILL);
    first.wait_exit();

    let a = server.wait_finished(id, || first.logs());
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("failed"), Some(-1)),
        "{a}"
    );
    assert_eq!(a["stderr"], actionq::LEASE_EXPIRED_STDERR);

    // A restarted agent works (it runs a new action) and leaves the old one alone.
    let mut second = Agent::start(&agent(&server, dir.path(), "second", &extra));
    let next = server.create_action("web-1", "run_true", &[]);
    assert_eq!(
        server.wait_finished(next, || second.logs())["status"],
        "completed"
    );
    std::fs::write(dir.path().join("go"), "").unwrap(); // lets the orphaned command end
    assert_eq!(
        lines(&started),
        ["started"],
        "the action ran more than once"
    );
    assert_eq!(server.action(id)["exit_code"], -1);
    let executing = server
        .events_of(id)
        .iter()
        .filter(|e| e["to_status"] == "executing")
        .count();
    assert_eq!(executing, 1);
    assert!(
        second.events().iter().all(|e| e["id"] != id),
        "{}",
        second.logs()
    );
    second.signal(libc::SIGTERM);
    assert!(second.wait_exit().success());
}

#[test]
fn heartbeats_keep_an_action_longer_than_its_lease_alive() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let id = server.create_action("web-1", "wait_go", &[]);
    let extra = "lease_seconds = 3\n".to_owned();
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", &extra));
    let lease_of = |a: &Value| -> chrono::DateTime<chrono::Utc> {
        a["lease_expires_at"].as_str().unwrap().parse().unwrap()
    };
    // The first lease deadline: the claim's time plus the 3 s asked for.
    let first_deadline = wait_for(
        "the claim",
        || agent.logs(),
        || {
            let claim = server
                .events_of(id)
                .into_iter()
                .find(|e| e["to_status"] == "executing")?;
            let at: chrono::DateTime<chrono::Utc> = claim["at"].as_str()?.parse().unwrap();
            Some(at + chrono::TimeDelta::seconds(3))
        },
    );
    // Watch the lease move forward three times (each read also expires a
    // lapsed lease first, so a missed heartbeat would show as `failed`), and
    // until a read made after the first deadline still finds it executing.
    let mut seen = vec![first_deadline];
    let outlived = wait_for(
        "three lease extensions and a read past the first deadline",
        || agent.logs(),
        || {
            let read_at = chrono::Utc::now();
            let a = server.action(id);
            assert_eq!(a["status"], "executing", "the lease lapsed: {a}");
            let lease = lease_of(&a);
            if seen.last() != Some(&lease) {
                seen.push(lease);
            }
            (seen.len() > 3 && read_at > first_deadline).then_some((read_at, lease))
        },
    );
    eprintln!(
        "executing at {} past its first lease deadline {first_deadline}, lease now to {}",
        outlived.0, outlived.1
    );
    assert!(outlived.1 > outlived.0, "the current lease covers the read");
    std::fs::write(dir.path().join("go"), "").unwrap();
    let a = server.wait_finished(id, || agent.logs());
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("completed"), Some(0)),
        "{a}"
    );
    // One run: claimed once, never lost and claimed again.
    let executing = server
        .events_of(id)
        .iter()
        .filter(|e| e["to_status"] == "executing")
        .count();
    assert_eq!(executing, 1);
    assert_eq!(lines(&dir.path().join("started")), ["started"]);
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success());
}

#[test]
fn a_result_is_reported_after_the_server_comes_back() {
    let dir = support::test_dir();
    let mut server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let id = server.create_action("web-1", "wait_go", &[]);
    let extra = "lease_seconds = 60\n".to_owned();
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", &extra));
    let started = dir.path().join("started");
    wait_for(
        "the command to start",
        || agent.logs(),
        || (!lines(&started).is_empty()).then_some(()),
    );
    server.stop();
    std::fs::write(dir.path().join("go"), "").unwrap();
    // The command ended while the server was down: the agent retries
    // (rather than giving up, which would log the action line instead).
    let first = wait_for(
        "the agent's report attempt",
        || agent.logs(),
        || {
            agent
                .events()
                .into_iter()
                .find(|e| e["event"] == "report_failed" || e["event"] == "action")
        },
    );
    assert_eq!(first["event"], "report_failed", "{}", agent.logs());
    server.restart();
    let a = server.wait_finished(id, || agent.logs());
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("completed"), Some(0)),
        "{a}"
    );
    assert_eq!(a["stdout"], "done\n");
    assert_eq!(lines(&started), ["started"]);
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success());
}

#[test]
fn the_agent_fails_over_between_two_servers_of_one_queue() {
    let dir = support::test_dir();
    let d = dir.path();
    // Two server processes on one SQLite file (and so one signing key):
    // replicas of one queue, as `server_urls` expects.
    let whitelist = support::whitelist(d);
    let mut a = Server::start(d, &whitelist);
    let mut b = Server::start(d, &whitelist);
    a.create_server("web-1");
    let extra = "retry_min_seconds = 0.05\nretry_max_seconds = 0.5\n";
    let (config, _) = support::write_agent_files(&agent(&a, d, "agent", extra));
    let single = format!("server_url = \"{}\"", a.url());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&single), "{text}");
    let both = format!("server_urls = [\"{}\", \"{}\"]", a.url(), b.url());
    std::fs::write(&config, text.replace(&single, &both)).unwrap();
    let mut agent = Agent::start_with_config(&config, &d.join("agent.log"));
    let completed = |server: &Server, id: i64, agent: &Agent| {
        let action = server.wait_finished(id, || agent.logs());
        assert_eq!(action["status"], "completed", "{action}\n{}", agent.logs());
    };

    let one = a.create_action("web-1", "mark", &[("n", "1")]);
    completed(&a, one, &agent);
    // The first goes away: the second serves the agent.
    a.stop();
    let two = b.create_action("web-1", "mark", &[("n", "2")]);
    completed(&b, two, &agent);
    let changed = agent.wait_event("server_url_changed");
    assert_eq!(changed["to"], format!("{}/api/v1", b.url()), "{changed}");

    // An action claimed through the second, whose server goes away while
    // it runs: its result reaches the queue through the first, back again.
    a.restart();
    let three = b.create_action("web-1", "wait_go", &[]);
    wait_for(
        "the command to start",
        || agent.logs(),
        || (!lines(&d.join("started")).is_empty()).then_some(()),
    );
    b.stop();
    std::fs::write(d.join("go"), "").unwrap();
    completed(&a, three, &agent);
    assert_eq!(a.action(three)["stdout"], "done\n");

    // Each ran once.
    for n in [1, 2] {
        assert_eq!(lines(&d.join(format!("ran-{n}"))), ["ran"], "mark {n}");
    }
    assert_eq!(lines(&d.join("started")), ["started"]);
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success(), "{}", agent.logs());
}

#[test]
fn two_agents_run_each_action_exactly_once() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    // Two actions that wait for the test's go file come first (claims go
    // oldest first): an agent runs one action at a time, so each agent holds
    // one of them at once before any other action runs.
    let holds = [
        server.create_action("web-1", "wait_go", &[]),
        server.create_action("web-1", "wait_go", &[]),
    ];
    let n = 60;
    let marks: Vec<i64> = (1..=n)
        .map(|i| server.create_action("web-1", "mark", &[("n", &i.to_string())]))
        .collect();
    let mut agents = [
        Agent::start(&agent(&server, dir.path(), "a", "")),
        Agent::start(&agent(&server, dir.path(), "b", "")),
    ];
    let ctx = || {
        agents
            .iter()
            .map(Agent::logs)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let holders = wait_for("both agents to hold an action at once", ctx, || {
        let by: Vec<String> = holds
            .iter()
            .filter_map(|&id| {
                let claim = server
                    .events_of(id)
                    .into_iter()
                    .find(|e| e["to_status"] == "executing")?;
                Some(claim["by"].as_str().unwrap().to_owned())
            })
            .collect();
        (by.len() == 2).then_some(by)
    });
    assert_ne!(holders[0], holders[1], "one agent held both");
    for &id in &holds {
        assert_eq!(server.action(id)["status"], "executing", "held until go");
    }
    std::fs::write(dir.path().join("go"), "").unwrap();
    let ids: Vec<i64> = holds.iter().chain(&marks).copied().collect();
    for &id in &ids {
        let a = server.wait_finished(id, ctx);
        assert_eq!(a["status"], "completed", "{a}");
    }
    for i in 1..=n {
        assert_eq!(
            lines(&dir.path().join(format!("ran-{i}"))),
            ["ran"],
            "action {i}"
        );
    }
    // An agent logs an action's line after the server took its result: stop
    // both (a drain finishes the log) before reading who ran what.
    for agent in &mut agents {
        agent.signal(libc::SIGTERM);
        assert!(agent.wait_exit().success(), "{}", agent.logs());
    }
    let ran_by = |agent: &Agent| -> Vec<i64> {
        agent
            .events()
            .iter()
            .filter(|e| e["event"] == "action")
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let (a, b) = (ran_by(&agents[0]), ran_by(&agents[1]));
    eprintln!("agent a ran {} actions, agent b {}", a.len(), b.len());
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both agents ran actions: a {a:?}, b {b:?}"
    );
    assert_eq!(
        holds.iter().filter(|id| a.contains(id)).count(),
        1,
        "each agent ran one of the held actions: a {a:?}, b {b:?}"
    );
    let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, ids, "each action once, by one agent");
}

#[test]
fn sigterm_lets_the_running_action_finish_and_claims_nothing_more() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let running = server.create_action("web-1", "wait_go", &[]);
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", ""));
    let started = dir.path().join("started");
    wait_for(
        "the command to start",
        || agent.logs(),
        || (!lines(&started).is_empty()).then_some(()),
    );
    let queued = server.create_action("web-1", "run_true", &[]);
    agent.signal(libc::SIGTERM);
    agent.wait_event("stopping");
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(agent.wait_exit().success(), "{}", agent.logs());
    let a = server.action(running);
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("completed"), Some(0)),
        "{a}"
    );
    assert_eq!(server.action(queued)["status"], "approved");
}

#[test]
fn sigterm_kills_an_action_that_outlasts_the_drain_grace() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let id = server.create_action("web-1", "ignore_term", &[]);
    let extra = "drain_grace_seconds = 0.5\nkill_grace_seconds = 0.5\n".to_owned();
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", &extra));
    wait_for(
        "the claim",
        || agent.logs(),
        || (server.action(id)["status"] == "executing").then_some(()),
    );
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success(), "{}", agent.logs());
    let a = server.action(id);
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("failed"), Some(124)),
        "{a}"
    );
    assert!(
        a["stderr"]
            .as_str()
            .unwrap()
            .contains("drain grace of 0.5s"),
        "{a}"
    );
}

#[test]
fn a_token_for_another_server_gets_403_and_the_agent_says_so() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    server.create_server("web-2");
    let other = server.agent_token("agent-web-2", "web-2");
    let setup = AgentSetup {
        token: Some(other),
        ..agent(&server, dir.path(), "agent", "")
    };
    let mut agent = Agent::start(&setup);
    let status = agent.wait_exit();
    assert_eq!(status.code(), Some(78), "{}", agent.logs());
    let refused = agent.wait_event("token_refused");
    let message = refused["message"].as_str().unwrap();
    // The server's reason, and the agent's own word on what to check.
    assert!(message.contains("HTTP 403 PERMISSION_DENIED"), "{message}");
    assert!(
        message.contains("an agent token issued for 'web-1'"),
        "{message}"
    );
    eprintln!("the agent says: {message}");
}

#[test]
fn an_unknown_server_id_stops_the_agent_with_the_servers_reason() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let setup = AgentSetup {
        server_id: "web-9",
        // No agent credential can be issued for an unknown server: the
        // bootstrap key (an admin, in X-API-Key) reaches the claim route.
        token: None,
        ..agent(&server, dir.path(), "agent", "")
    };
    let (config, _) = support::write_agent_files_with(&setup, support::BOOTSTRAP_KEY, "X-API-Key");
    let mut agent = Agent::start_with_config(&config, &dir.path().join("agent.log"));
    assert_eq!(agent.wait_exit().code(), Some(78), "{}", agent.logs());
    let line = agent.wait_event("claim_refused");
    let message = line["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 404") && message.contains("Server 'web-9' not found"),
        "{message}"
    );
}

#[test]
fn a_token_file_readable_by_others_stops_the_agent_at_start() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    let setup = agent(&server, dir.path(), "agent", "");
    let (config, token) = support::write_agent_files(&AgentSetup {
        token: Some("aq_ag_not-a-real-token".into()),
        ..setup
    });
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut agent = Agent::start_with_config(&config, &dir.path().join("agent.log"));
    assert_eq!(agent.wait_exit().code(), Some(78));
    let line = agent.wait_event("config");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("accessible by group or others"),
        "{line}"
    );
    assert!(!agent.logs().contains("aq_ag_not-a-real-token"));
}

#[test]
fn a_database_row_edited_after_approval_is_refused_by_the_agent() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let id = server.create_action("web-1", "mark", &[("n", "1")]);
    let approved = server.action(id);
    let (status, clean) = server.call("GET", "/audit/verify", None);
    assert_eq!(
        (status, &clean["first_bad_event_id"]),
        (200, &Value::Null),
        "{clean}"
    );
    // Whoever can write the database swaps the approved command for a shell,
    // with a digest that matches the new command.
    let pwned = dir.path().join("pwned");
    let argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("touch {}", pwned.display()),
    ];
    let digest = actionq::action_digest(
        "web-1",
        "mark",
        &argv,
        &Default::default(),
        approved["whitelist_version"].as_str().unwrap(),
    );
    let edit = std::process::Command::new(support::venv_python())
        .args([
            "-c",
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); \
             db.execute('UPDATE actions SET argv = ?, digest = ? WHERE id = ?', \
             (sys.argv[2], sys.argv[3], int(sys.argv[4]))); db.commit()",
        ])
        .arg(&server.db)
        .arg(serde_json::to_string(&argv).unwrap())
        .arg(&digest)
        .arg(id.to_string())
        .output()
        .unwrap();
    assert!(edit.status.success(), "{edit:?}");
    assert_eq!(server.action(id)["argv"], serde_json::json!(argv));
    // The audit chain vouches for the digest the action was created with:
    // its creation event is the first bad one now.
    let created = server.events_of(id)[0]["id"].clone();
    let (status, report) = server.call("GET", "/audit/verify", None);
    assert_eq!(
        (status, &report["first_bad_event_id"]),
        (200, &created),
        "{report}"
    );

    let agent = Agent::start(&agent(&server, dir.path(), "agent", ""));
    let a = server.wait_finished(id, || agent.logs());
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("failed"), Some(125)),
        "{a}"
    );
    let stderr = a["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("is not what this agent's whitelist builds"),
        "{stderr}"
    );
    assert!(!pwned.exists(), "the edited command ran");
    assert!(lines(&dir.path().join("ran-1")).is_empty());
}

/// The stdout of every chunk, joined.
fn streamed(server: &Server, id: i64) -> String {
    server.output(id).into_iter().map(|c| c.1).collect()
}

#[test]
fn output_is_seen_while_the_command_runs() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let id = server.create_action("web-1", "print_wait_print", &[]);
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", ""));
    wait_for(
        "the first line, live",
        || agent.logs(),
        || (streamed(&server, id) == "first\n").then_some(()),
    );
    assert_eq!(server.action(id)["status"], "executing");
    std::fs::write(dir.path().join("go-print"), "").unwrap();
    let a = server.wait_finished(id, || agent.logs());
    assert_eq!(
        (a["status"].as_str(), a["stdout"].as_str()),
        (Some("completed"), Some("first\nsecond\n"))
    );
    let chunks = server.output(id);
    assert_eq!(streamed(&server, id), "first\nsecond\n", "{chunks:?}");
    let seqs: Vec<i64> = chunks.iter().map(|c| c.0).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success());
}

#[test]
fn a_cancel_stops_the_command_and_ends_the_action_cancelled() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let polite = server.create_action("web-1", "term_exits", &[]);
    let stubborn = server.create_action("web-1", "ignore_term", &[]);
    let extra = "kill_grace_seconds = 1\n";
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", extra));
    let ctx = || agent.logs();
    let started = dir.path().join("started-term");
    wait_for("the command to start", ctx, || {
        started.exists().then_some(())
    });
    let asked = std::time::Instant::now();
    let (status, body) = server.call("POST", &format!("/actions/{polite}/cancel"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "executing");
    let by = body["cancel_requested_by"].as_str().unwrap().to_owned();
    let a = server.wait_finished(polite, ctx);
    let latency = asked.elapsed();
    eprintln!("cancel to cancelled: {latency:?}");
    assert!(latency < std::time::Duration::from_secs(2), "{latency:?}");
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("cancelled"), Some(7)),
        "{a}"
    );
    assert_eq!(a["cancelled_by"].as_str(), Some(by.as_str()));
    assert_eq!(a["stdout"], "got TERM\n");
    assert!(
        a["stderr"]
            .as_str()
            .unwrap()
            .contains(&format!("cancel requested by {by}")),
        "{a}"
    );
    let details: Vec<Value> = server
        .events_of(polite)
        .iter()
        .map(|e| e["detail"].clone())
        .collect();
    assert!(
        details.contains(&Value::from("cancel requested")),
        "{details:?}"
    );
    assert_eq!(details.last().unwrap(), "cancelled, exit_code=7");

    // A command that ignores SIGTERM is killed after the grace.
    wait_for("the stubborn one to run", ctx, || {
        (server.action(stubborn)["status"] == "executing").then_some(())
    });
    let asked = std::time::Instant::now();
    server.call("POST", &format!("/actions/{stubborn}/cancel"), None);
    let a = server.wait_finished(stubborn, ctx);
    assert!(asked.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("cancelled"), Some(137)),
        "{a}"
    );
    // Finished: another cancel is a Conflict.
    let (status, _) = server.call("POST", &format!("/actions/{stubborn}/cancel"), None);
    assert_eq!(status, 409);
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success());
}

#[test]
fn a_cancel_racing_the_commands_exit_has_one_outcome() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", ""));
    let mut outcomes = std::collections::BTreeMap::new();
    // Until both outcomes came (about half each here), so the race is shown
    // to go both ways (30 one-sided rounds at even odds: about 2 in 10^9).
    for n in 1..=30 {
        if n > 8 && outcomes.len() == 2 {
            break;
        }
        let id = server.create_action("web-1", "race_exit", &[("n", &n.to_string())]);
        wait_for(
            "the command to run",
            || agent.logs(),
            || (streamed(&server, id) == "waiting\n").then_some(()),
        );
        let go = dir.path().join(format!("go-race-{n}"));
        // The exit and the cancel, as close together as two threads make them.
        let racer = std::thread::spawn(move || std::fs::write(go, "").unwrap());
        let (status, _) = server.call("POST", &format!("/actions/{id}/cancel"), None);
        racer.join().unwrap();
        let a = server.wait_finished(id, || agent.logs());
        let outcome = a["status"].as_str().unwrap().to_owned();
        // A cancel either landed while executing (200) or after the end (409).
        assert!(status == 200 || status == 409, "{status}");
        match outcome.as_str() {
            "completed" => assert_eq!(a["exit_code"], 0, "{a}"),
            "cancelled" => assert_eq!(status, 200, "{a}"),
            other => panic!("action {id} ended {other}: {a}"),
        }
        let ends: Vec<Value> = server
            .events_of(id)
            .into_iter()
            .filter(|e| e["to_status"] != "executing" && e["to_status"] != "approved")
            .collect();
        assert_eq!(ends.len(), 1, "exactly one end: {ends:?}");
        assert_eq!(ends[0]["to_status"], outcome.as_str());
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    eprintln!("cancel racing exit: {outcomes:?}");
    assert_eq!(
        outcomes.len(),
        2,
        "the cancel won some races and the exit others: {outcomes:?}"
    );
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success());
}

#[test]
fn an_agent_killed_mid_stream_leaves_the_action_to_lease_expiry() {
    let dir = support::test_dir();
    let server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let id = server.create_action("web-1", "print_wait_print", &[]);
    let mut first = Agent::start(&agent(&server, dir.path(), "first", "lease_seconds = 3\n"));
    wait_for(
        "the first line",
        || first.logs(),
        || (streamed(&server, id) == "first\n").then_some(()),
    );
    first.signal(libc::SIGKILL);
    first.wait_exit();
    let mut second = Agent::start(&agent(&server, dir.path(), "second", "lease_seconds = 3\n"));
    let a = server.wait_finished(id, || second.logs());
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("failed"), Some(-1)),
        "{a}"
    );
    assert_eq!(streamed(&server, id), "first\n", "never run again");
    second.signal(libc::SIGTERM);
    assert!(second.wait_exit().success());
}

#[test]
fn output_sent_while_the_server_restarts_is_retried_and_never_doubled() {
    let dir = support::test_dir();
    let mut server = Server::start(dir.path(), &support::whitelist(dir.path()));
    server.create_server("web-1");
    let id = server.create_action("web-1", "print_wait_print", &[]);
    let mut agent = Agent::start(&agent(&server, dir.path(), "agent", ""));
    wait_for(
        "the first line",
        || agent.logs(),
        || (streamed(&server, id) == "first\n").then_some(()),
    );
    server.stop();
    std::fs::write(dir.path().join("go-print"), "").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    server.restart();
    let a = server.wait_finished(id, || agent.logs());
    assert_eq!(a["status"], "completed", "{a}");
    let chunks = server.output(id);
    assert_eq!(streamed(&server, id), "first\nsecond\n", "{chunks:?}");
    let seqs: Vec<i64> = chunks.iter().map(|c| c.0).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success());
}
