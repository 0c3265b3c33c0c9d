//! The agent binary against fake servers (test doubles speaking the HTTP
//! contract): it runs only what its own whitelist builds, under a signature
//! of the key it pins, and talks only to the server it was configured with.
//! Every refused command would leave a marker file; none exists afterwards.
//! Runs in plain `cargo test` (no Python needed).

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actionq::{ClaimFields, ClaimSigningKey, Whitelist};
use serde_json::{json, Value};
use support::{wait_for, Agent};

const TOKEN: &str = "aq_ag_fake-server-token";

/// One request a fake server received.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    token: Option<String>,
    body: Value,
}

/// What a fake server answers: claims from a queue, or a redirect for
/// every request.
#[derive(Default)]
struct Fake {
    claims: Mutex<VecDeque<Value>>,
    requests: Mutex<Vec<Request>>,
    redirect_to: Option<String>,
    /// The answer to a heartbeat once an output chunk came (else `{}`).
    heartbeat_after_output: Option<Value>,
    /// The answer to an output chunk (else `{}`).
    output_reply: Option<Value>,
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

/// Serves `fake` on a loopback port; `tls` wraps each connection.
fn serve(fake: Arc<Fake>, tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let fake = Arc::clone(&fake);
            let tls = tls.clone();
            std::thread::spawn(move || {
                let stream = stream.unwrap();
                let _ = match tls {
                    None => connection(stream, &fake),
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config).unwrap();
                        connection(rustls::StreamOwned::new(conn, stream), &fake)
                    }
                };
            });
        }
    });
    port
}

/// Serves the requests of one keep-alive connection.
fn connection<S: Read + Write>(stream: S, fake: &Fake) -> std::io::Result<()> {
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
        fake.requests.lock().unwrap().push(Request {
            path: path.clone(),
            token: headers.get("x-agent-token").cloned(),
            body: body.clone(),
        });
        let writer = reader.get_mut();
        if let Some(target) = &fake.redirect_to {
            write!(
                writer,
                "HTTP/1.1 302 Found\r\nlocation: {target}{path}\r\ncontent-length: 0\r\n\r\n"
            )?;
            writer.flush()?;
            continue;
        }
        let (status, reply) = if path.ends_with("/actions/claim") {
            match fake.claims.lock().unwrap().pop_front() {
                Some(claim) => ("200 OK", Some(claim)),
                None => ("204 No Content", None),
            }
        } else if path.ends_with("/heartbeat") {
            let output_came = fake
                .requests
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.path.ends_with("/output"));
            match (&fake.heartbeat_after_output, output_came) {
                (Some(reply), true) => ("200 OK", Some(reply.clone())),
                _ => ("200 OK", Some(json!({}))),
            }
        } else if path.ends_with("/output") {
            (
                "200 OK",
                Some(fake.output_reply.clone().unwrap_or(json!({}))),
            )
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
        writer.flush()?;
    }
}

/// The agent's whitelist: `mark` touches `mark-{n}` in the test directory.
fn whitelist_json(dir: &Path, template: &str) -> String {
    json!({"actions": {"mark": {
        "command": format!("touch {}/{template}", dir.display()),
        "params": {"n": {"kind": "integer", "min": 1, "max": 50}},
    }}})
    .to_string()
}

/// A claim as a server would send it, signed by `key` (None: unsigned).
struct ClaimSpec<'a> {
    id: i64,
    server_id: &'a str,
    n: String,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    whitelist_version: String,
    lease_expires_at: chrono::DateTime<chrono::Utc>,
}

fn signed(spec: &ClaimSpec<'_>, digest: &str, key: Option<&ClaimSigningKey>) -> Value {
    let params = BTreeMap::from([("n".to_owned(), spec.n.clone())]);
    let lease_token = format!("lease-{}", spec.id);
    let fields = ClaimFields {
        id: spec.id,
        server_id: spec.server_id,
        action_type: "mark",
        params: &params,
        argv: &spec.argv,
        env: &spec.env,
        digest,
        whitelist_version: &spec.whitelist_version,
        lease_token: &lease_token,
        lease_expires_at: spec.lease_expires_at,
    };
    json!({
        "id": spec.id,
        "server_id": spec.server_id,
        "action_type": "mark",
        "status": "executing",
        "params": params,
        "argv": spec.argv,
        "env": spec.env,
        "digest": digest,
        "whitelist_version": spec.whitelist_version,
        "lease_token": lease_token,
        "lease_expires_at": spec.lease_expires_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "signature": key.map(|k| k.sign(&fields)),
    })
}

/// The digest a server computes: over the claim's own argv/env.
fn self_consistent(spec: &ClaimSpec<'_>) -> String {
    actionq::action_digest(
        spec.server_id,
        "mark",
        &spec.argv,
        &spec.env,
        &spec.whitelist_version,
    )
}

fn private_file(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes the agent's token, whitelist, public key and config; the config's path.
fn agent_files(dir: &Path, url: &str, key: &ClaimSigningKey, extra: &str) -> PathBuf {
    let token_file = dir.join("token");
    private_file(&token_file, TOKEN, 0o600);
    let whitelist = dir.join("whitelist.json");
    private_file(&whitelist, &whitelist_json(dir, "mark-{n}"), 0o644);
    let public = dir.join("claim-signing.pub");
    private_file(&public, &key.public_key().to_pem(), 0o644);
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server_url = \"{url}\"\nserver_id = \"web-1\"\ntoken_file = \"{}\"\n\
             whitelist_file = \"{}\"\nclaim_public_key_file = \"{}\"\n\
             poll_interval_seconds = 0.1\n{extra}\n",
            token_file.display(),
            whitelist.display(),
            public.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn only_what_the_agents_own_whitelist_builds_under_the_pinned_signature_runs() {
    let dir = support::test_dir();
    let d = dir.path();
    let key = ClaimSigningKey::generate().unwrap();
    let local = Whitelist::from_json(&whitelist_json(d, "mark-{n}")).unwrap();
    let marker = |n: u32| d.join(format!("mark-{n}"));
    let touch = |path: &Path| vec!["touch".to_owned(), path.display().to_string()];
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let spec = |id: i64, n: &str, argv: Vec<String>| ClaimSpec {
        id,
        server_id: "web-1",
        n: n.to_owned(),
        argv,
        env: BTreeMap::new(),
        whitelist_version: local.version().to_owned(),
        lease_expires_at: in_an_hour,
    };
    let genuine = |id: i64, n: u32| {
        let s = spec(id, &n.to_string(), touch(&marker(n)));
        signed(&s, &self_consistent(&s), Some(&key))
    };
    let wrong_key = ClaimSigningKey::generate().unwrap();
    let mut cases: Vec<(Value, &str, PathBuf)> = Vec::new();
    // (a) a foreign argv with a digest computed over it, genuinely signed
    // (an edited database row on a server that signs what it stores).
    let s = spec(
        1,
        "1",
        vec![
            "sh".into(),
            "-c".into(),
            format!("touch {}", marker(1).display()),
        ],
    );
    cases.push((
        signed(&s, &self_consistent(&s), Some(&key)),
        "is not what this agent's whitelist builds",
        marker(1),
    ));
    // (b) a whitelisted type with a value its validator refuses (max 50).
    let s = spec(2, "99", touch(&marker(99)));
    cases.push((
        signed(&s, &self_consistent(&s), Some(&key)),
        "whitelist does not allow it",
        marker(99),
    ));
    // (c) built under an older whitelist, whose template made `old-{n}`.
    let old = Whitelist::from_json(&whitelist_json(d, "old-{n}")).unwrap();
    let s = ClaimSpec {
        whitelist_version: old.version().to_owned(),
        ..spec(3, "3", touch(&d.join("old-3")))
    };
    cases.push((
        signed(&s, &self_consistent(&s), Some(&key)),
        "built under whitelist version",
        d.join("old-3"),
    ));
    // (d) exactly what the whitelist builds, but unsigned, or signed by
    // another key, or signed and then its parameter changed.
    let s = spec(4, "4", touch(&marker(4)));
    cases.push((
        signed(&s, &self_consistent(&s), None),
        "carries no signature",
        marker(4),
    ));
    let s = spec(5, "5", touch(&marker(5)));
    cases.push((
        signed(&s, &self_consistent(&s), Some(&wrong_key)),
        "signature refused",
        marker(5),
    ));
    let mut moved = genuine(6, 6);
    moved["params"]["n"] = json!("7");
    moved["argv"] = json!(touch(&marker(7)));
    cases.push((moved, "signature refused", marker(7)));
    // A genuine claim replayed after its lease ended.
    let s = ClaimSpec {
        lease_expires_at: chrono::Utc::now() - chrono::Duration::seconds(1),
        ..spec(8, "8", touch(&marker(8)))
    };
    cases.push((
        signed(&s, &self_consistent(&s), Some(&key)),
        "lease ended",
        marker(8),
    ));
    // What the whitelist builds, signed, but a digest of something else.
    let s = spec(9, "9", touch(&marker(9)));
    cases.push((
        signed(
            &s,
            &actionq::action_digest(
                "web-1",
                "mark",
                &["true"],
                &BTreeMap::new(),
                local.version(),
            ),
            Some(&key),
        ),
        "digest mismatch",
        marker(9),
    ));
    // Another server's action, genuinely signed.
    let s = ClaimSpec {
        server_id: "web-2",
        ..spec(10, "10", touch(&marker(10)))
    };
    cases.push((
        signed(&s, &self_consistent(&s), Some(&key)),
        "the claim is for server 'web-2'",
        marker(10),
    ));

    let fake = Arc::new(Fake::default());
    {
        let mut claims = fake.claims.lock().unwrap();
        claims.extend(cases.iter().map(|(c, _, _)| c.clone()));
        // The real thing comes last: the agent got through every refusal.
        claims.push_back(genuine(11, 11));
    }
    let port = serve(Arc::clone(&fake), None);
    let config = agent_files(d, &format!("http://127.0.0.1:{port}"), &key, "");
    let mut agent = Agent::start_with_config(&config, &d.join("agent.log"));
    let results = wait_for(
        "every result",
        || agent.logs(),
        || {
            let r = fake.results();
            (r.len() == cases.len() + 1).then_some(r)
        },
    );
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success(), "{}", agent.logs());

    let by_id = |id: i64| {
        results
            .iter()
            .find(|r| r.path == format!("/api/v1/actions/{id}/result"))
            .unwrap_or_else(|| panic!("no result for {id}: {results:?}"))
            .body
            .clone()
    };
    for (claim, why, would_create) in &cases {
        let id = claim["id"].as_i64().unwrap();
        let body = by_id(id);
        assert_eq!(body["exit_code"], 125, "claim {id}: {body}");
        let stderr = body["stderr"].as_str().unwrap();
        assert!(stderr.contains(why), "claim {id}: expected {why:?}: {body}");
        assert!(stderr.contains("nothing was run"), "claim {id}: {body}");
        assert_eq!(body["lease_token"], format!("lease-{id}"));
        assert!(
            !would_create.exists(),
            "claim {id} ran: {}",
            would_create.display()
        );
    }
    assert_eq!(by_id(11)["exit_code"], 0, "{}", agent.logs());
    assert!(marker(11).exists());
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
    assert_eq!(refused, cases.len(), "{}", agent.logs());
}

fn check(config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_actionq-agent"))
        .arg("--config")
        .arg(config)
        .arg("--check")
        .output()
        .unwrap()
}

#[test]
fn check_refuses_plain_http_off_loopback_and_writable_trust_files() {
    let dir = support::test_dir();
    let d = dir.path();
    let key = ClaimSigningKey::generate().unwrap();
    let config = agent_files(d, "http://127.0.0.1:9", &key, "");
    let out = check(&config);
    assert!(out.status.success(), "{out:?}");

    agent_files(d, "http://192.0.2.10:8080", &key, "");
    let out = check(&config);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plain http:// is refused"), "{stderr}");

    agent_files(d, "https://192.0.2.10:8443", &key, "");
    assert!(check(&config).status.success());
    for file in ["whitelist.json", "claim-signing.pub"] {
        std::fs::set_permissions(d.join(file), std::fs::Permissions::from_mode(0o664)).unwrap();
        let out = check(&config);
        assert_eq!(out.status.code(), Some(78), "{file}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("writable by group or others"), "{stderr}");
        std::fs::set_permissions(d.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

#[test]
fn a_redirect_is_not_followed_and_the_token_goes_nowhere_else() {
    let dir = support::test_dir();
    let d = dir.path();
    // The redirect's target: records every connection it gets.
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere_port = elsewhere.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::<u8>::new()));
    let connections = Arc::new(Mutex::new(0u32));
    {
        let (received, connections) = (Arc::clone(&received), Arc::clone(&connections));
        std::thread::spawn(move || {
            for stream in elsewhere.incoming() {
                *connections.lock().unwrap() += 1;
                let mut buf = [0u8; 4096];
                let mut stream: TcpStream = stream.unwrap();
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(1)))
                    .unwrap();
                if let Ok(n) = stream.read(&mut buf) {
                    received.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
    }
    let fake = Arc::new(Fake {
        redirect_to: Some(format!("http://127.0.0.1:{elsewhere_port}")),
        ..Fake::default()
    });
    let port = serve(Arc::clone(&fake), None);
    let key = ClaimSigningKey::generate().unwrap();
    let config = agent_files(d, &format!("http://127.0.0.1:{port}"), &key, "");
    let mut agent = Agent::start_with_config(&config, &d.join("agent.log"));
    // Until the agent exits, or (the failure) the redirect's target is reached.
    // The child stays in `agent` (killed on drop, even when this fails).
    let log_path = agent.log.clone();
    let status = wait_for(
        "the agent to exit",
        || std::fs::read_to_string(&log_path).unwrap_or_default(),
        || {
            let reached = *connections.lock().unwrap() > 0;
            let exited = agent.child.as_mut().unwrap().try_wait().unwrap();
            (reached || exited.is_some()).then_some(exited)
        },
    );
    assert_eq!(
        *connections.lock().unwrap(),
        0,
        "the redirect was followed\n{}",
        agent.logs()
    );
    assert_eq!(status.and_then(|s| s.code()), Some(78), "{}", agent.logs());
    let refused = agent
        .events()
        .into_iter()
        .find(|e| e["event"] == "claim_refused")
        .unwrap_or_else(|| panic!("no claim_refused line\n{}", agent.logs()));
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("HTTP 302"), "{message}");
    assert!(message.contains("not followed"), "{message}");
    // The configured server got the claim with the token, once...
    let requests = fake.requests.lock().unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].token.as_deref(), Some(TOKEN));
    // ...and the redirect's target nothing at all.
    assert!(received.lock().unwrap().is_empty());
}

/// A CA, and a certificate it issued for `localhost` and 127.0.0.1.
fn private_ca() -> (
    rcgen::Certificate,
    rcgen::KeyPair,
    rcgen::Certificate,
    rcgen::KeyPair,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "actionq test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca, ca_key, cert, key)
}

fn tls_config(cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap(),
    )
}

/// Starts an agent on `https://localhost:{port}` with `extra` config lines
/// and waits until it either claimed through the fake (true) or logged a
/// failed claim (false).
fn claims_over_tls(d: &Path, fake: &Arc<Fake>, port: u16, extra: &str) -> (bool, String) {
    let key = ClaimSigningKey::generate().unwrap();
    let config = agent_files(d, &format!("https://localhost:{port}"), &key, extra);
    let mut agent = Agent::start_with_config(&config, &d.join("agent.log"));
    let claimed = wait_for(
        "a claim or a failed claim",
        || agent.logs(),
        || {
            if !fake.requests.lock().unwrap().is_empty() {
                return Some(true);
            }
            agent
                .events()
                .iter()
                .any(|e| e["event"] == "claim_failed")
                .then_some(false)
        },
    );
    agent.signal(libc::SIGTERM);
    agent.wait_exit();
    (claimed, agent.logs())
}

#[test]
fn https_trusts_the_ca_file_and_nothing_self_signed() {
    let (ca, _, cert, key) = private_ca();
    let fake = Arc::new(Fake::default());
    let port = serve(Arc::clone(&fake), Some(tls_config(&cert, &key)));

    // With the CA in ca_file: the handshake verifies, the claim arrives.
    let dir = support::test_dir();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let extra = format!("ca_file = \"{}\"", dir.path().join("ca.pem").display());
    let (claimed, logs) = claims_over_tls(dir.path(), &fake, port, &extra);
    assert!(claimed, "{logs}");
    assert_eq!(
        fake.requests.lock().unwrap()[0].token.as_deref(),
        Some(TOKEN)
    );

    // Without it (the public roots): refused before any request is sent.
    fake.requests.lock().unwrap().clear();
    let dir = support::test_dir();
    let (claimed, logs) = claims_over_tls(dir.path(), &fake, port, "");
    assert!(!claimed, "{logs}");
    assert!(fake.requests.lock().unwrap().is_empty());

    // A self-signed server certificate, with another CA in ca_file: refused.
    let self_signed_key = rcgen::KeyPair::generate().unwrap();
    let self_signed = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&self_signed_key)
        .unwrap();
    let fake2 = Arc::new(Fake::default());
    let port2 = serve(
        Arc::clone(&fake2),
        Some(tls_config(&self_signed, &self_signed_key)),
    );
    let dir = support::test_dir();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let extra = format!("ca_file = \"{}\"", dir.path().join("ca.pem").display());
    let (claimed, logs) = claims_over_tls(dir.path(), &fake2, port2, &extra);
    assert!(!claimed, "{logs}");
    assert!(
        logs.contains("certificate") || logs.contains("Certificate"),
        "{logs}"
    );
    assert!(fake2.requests.lock().unwrap().is_empty());
}

/// A server that answers an output chunk with another (validly signed)
/// claim and a heartbeat with a cancel request naming someone else's
/// process: the agent runs nothing new and stops only its own command's
/// process group.
#[test]
fn a_forged_answer_runs_nothing_and_a_cancel_stops_only_the_agents_own_group() {
    let dir = support::test_dir();
    let d = dir.path();
    let key = ClaimSigningKey::generate().unwrap();
    // Someone else's process, in a group of its own: what a hostile server
    // would like the agent to kill.
    let mut victim = std::process::Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    let victim_pid = victim.id();
    let template = format!(
        "sh -c 'touch \"$0\"; echo hello; exec sleep 30' {}/mark-{{n}}",
        d.display()
    );
    let wl_text = json!({"actions": {"mark": {
        "command": template,
        "params": {"n": {"kind": "integer", "min": 1, "max": 50}},
    }}})
    .to_string();
    let local = Whitelist::from_json(&wl_text).unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let claim_for = |id: i64, n: u32| {
        let built = local
            .build("mark", &BTreeMap::from([("n".to_owned(), n.to_string())]))
            .unwrap();
        let s = ClaimSpec {
            id,
            server_id: "web-1",
            n: n.to_string(),
            argv: built.argv,
            env: built.env,
            whitelist_version: local.version().to_owned(),
            lease_expires_at: in_an_hour,
        };
        signed(&s, &self_consistent(&s), Some(&key))
    };
    let fake = Arc::new(Fake {
        heartbeat_after_output: Some(json!({
            "id": 1,
            "status": "executing",
            "cancel_requested_at": "2026-01-01T00:00:00Z",
            "cancel_requested_by": "mallory",
            "pid": victim_pid,
            "pgid": victim_pid,
            "argv": ["kill", "-9", victim_pid.to_string()],
        })),
        // Another action, validly signed: an answer to a chunk is no claim.
        output_reply: Some(claim_for(2, 2)),
        ..Fake::default()
    });
    fake.claims.lock().unwrap().push_back(claim_for(1, 1));
    let port = serve(Arc::clone(&fake), None);
    let config = agent_files(
        d,
        &format!("http://127.0.0.1:{port}"),
        &key,
        "kill_grace_seconds = 1\n",
    );
    private_file(&d.join("whitelist.json"), &wl_text, 0o644);
    let mut agent = Agent::start_with_config(&config, &d.join("agent.log"));
    let result = wait_for(
        "the result",
        || agent.logs(),
        || fake.results().into_iter().next(),
    );
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit().success(), "{}", agent.logs());
    assert_eq!(result.body["cancelled"], true, "{}", result.body);
    assert_eq!(result.body["exit_code"], 143, "{}", result.body);
    assert_eq!(result.body["stdout"], "hello\n");
    assert!(
        result.body["stderr"]
            .as_str()
            .unwrap()
            .contains("cancel requested by mallory"),
        "{}",
        result.body
    );
    assert!(d.join("mark-1").exists());
    assert!(!d.join("mark-2").exists(), "the forged answer ran");
    assert_eq!(fake.results().len(), 1, "one action, reported once");
    assert_eq!(
        victim.try_wait().unwrap(),
        None,
        "the agent signalled a process outside its command's group"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}
