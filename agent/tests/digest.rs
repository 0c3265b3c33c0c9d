//! The agent binary against a fake server (a test double speaking the HTTP
//! contract) that hands out tampered claims: what the digest does not cover
//! is never run, and the refusal is reported as a failure with the reason.
//! Runs in plain `cargo test` (no Python needed).

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use support::{wait_for, Agent};

const TOKEN: &str = "aq_ag_fake-server-token";

/// One request the fake server received.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    token: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Fake {
    claims: Mutex<VecDeque<Value>>,
    requests: Mutex<Vec<Request>>,
}

impl Fake {
    fn results(&self) -> Vec<Request> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.path.ends_with("/result"))
            .cloned()
            .collect()
    }
}

fn serve(fake: Arc<Fake>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
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

/// Serves the requests of one keep-alive connection.
fn connection(stream: TcpStream, fake: &Fake) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
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
        fake.requests.lock().unwrap().push(Request {
            path: path.clone(),
            token: headers.get("x-agent-token").cloned(),
            body: body.clone(),
        });
        let (status, reply) = if path.ends_with("/actions/claim") {
            match fake.claims.lock().unwrap().pop_front() {
                Some(claim) => ("200 OK", Some(claim)),
                None => ("204 No Content", None),
            }
        } else if path.ends_with("/result") {
            let status = if body["exit_code"] == 0 {
                "completed"
            } else {
                "failed"
            };
            ("200 OK", Some(json!({ "status": status })))
        } else {
            ("200 OK", Some(json!({})))
        };
        let text = reply.map(|r| r.to_string()).unwrap_or_default();
        write!(
            writer,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )?;
    }
}

fn claim(id: i64, server_id: &str, argv: &[&str], digest: Option<String>) -> Value {
    json!({
        "id": id,
        "server_id": server_id,
        "action_type": "touch_file",
        "status": "executing",
        "argv": argv,
        "env": {},
        "digest": digest,
        "whitelist_version": digest.as_ref().map(|_| "wl-1"),
        "lease_token": format!("lease-{id}"),
        "lease_expires_at": "2030-01-01T00:00:00Z",
    })
}

fn digest(server_id: &str, argv: &[&str]) -> String {
    actionq::action_digest(server_id, "touch_file", argv, &BTreeMap::new(), "wl-1")
}

#[test]
fn only_what_the_digest_covers_runs() {
    let dir = support::test_dir();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let (pwned1, pwned2, pwned3, ok) = (file("pwned1"), file("pwned2"), file("pwned3"), file("ok"));
    let fake = Arc::new(Fake::default());
    fake.claims.lock().unwrap().extend([
        // argv swapped after approval: the digest is that of `touch ok`.
        claim(
            1,
            "web-1",
            &["touch", &pwned1],
            Some(digest("web-1", &["touch", &ok])),
        ),
        // no digest at all, with require_digest at its default (true)
        claim(2, "web-1", &["touch", &pwned2], None),
        // another server's action, with that server's valid digest
        claim(
            3,
            "web-2",
            &["touch", &pwned3],
            Some(digest("web-2", &["touch", &pwned3])),
        ),
        // the real thing
        claim(
            4,
            "web-1",
            &["touch", &ok],
            Some(digest("web-1", &["touch", &ok])),
        ),
    ]);
    let port = serve(Arc::clone(&fake));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server_url = \"http://127.0.0.1:{port}\"\nserver_id = \"web-1\"\ntoken_file = \"{}\"\n\
             poll_interval_seconds = 0.1\n",
            token_file.display()
        ),
    )
    .unwrap();
    let mut agent = Agent::start_with_config(&config, &dir.path().join("agent.log"));
    let results = wait_for(
        "four results",
        || agent.logs(),
        || {
            let r = fake.results();
            (r.len() == 4).then_some(r)
        },
    );
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success(), "{}", agent.logs());

    let by_id = |id: &str| {
        results
            .iter()
            .find(|r| r.path == format!("/api/v1/actions/{id}/result"))
            .unwrap_or_else(|| panic!("no result for {id}: {results:?}"))
            .body
            .clone()
    };
    for (id, why) in [
        ("1", "digest mismatch"),
        ("2", "carries no digest"),
        ("3", "the claim is for server 'web-2'"),
    ] {
        let body = by_id(id);
        assert_eq!(body["exit_code"], 125, "{body}");
        assert!(body["stderr"].as_str().unwrap().contains(why), "{body}");
        assert!(
            body["stderr"].as_str().unwrap().contains("nothing was run"),
            "{body}"
        );
        assert_eq!(body["lease_token"], format!("lease-{id}"));
    }
    for pwned in [&pwned1, &pwned2, &pwned3] {
        assert!(!std::path::Path::new(pwned).exists(), "{pwned} was run");
    }
    assert_eq!(by_id("4")["exit_code"], 0);
    assert!(std::path::Path::new(&ok).exists());
    // Every request carried the agent token in X-Agent-Token.
    let requests = fake.requests.lock().unwrap();
    assert!(
        requests.iter().all(|r| r.token.as_deref() == Some(TOKEN)),
        "{requests:?}"
    );
    let refused = agent
        .events()
        .into_iter()
        .filter(|e| e["event"] == "action" && e["refused"].is_string())
        .count();
    assert_eq!(refused, 3, "{}", agent.logs());
}
