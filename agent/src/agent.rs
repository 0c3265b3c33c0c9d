//! The agent's loop: claim, check, run, heartbeat, report; stop on request.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::backoff::Backoff;
use crate::client::{ApiError, Claim, Client};
use crate::config::{Config, Trust};
use crate::exec::{self, fmt_secs, LiveOutput, Outcome, Running, Spec, Wake};
use crate::live::{CancelWatch, OutputSender};
use crate::log::log;
use actionq::limits;

/// Exit code reported for an action the agent refused to run (a claim for
/// another server, unsigned or wrongly signed, past its lease, built under
/// another whitelist version, or not what the agent's own whitelist builds).
/// Nothing ran.
pub const REFUSED_EXIT_CODE: i32 = 125;

/// Shortest wait before a failed report is sent again; jittered delays grow
/// from it up to [`REPORT_BACKOFF_MAX`].
const REPORT_BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait between two report attempts.
const REPORT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// While the server cannot be reached, one log line per this period.
const UNREACHABLE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Why [`Agent::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (SIGTERM/SIGINT); the running action, if any, was reported.
    Stopped,
    /// The server refused the token (401/403) or the claim request itself
    /// (another 4xx: an unknown `server_id`, a lease it will not give); the
    /// message says why.
    Refused(String),
}

/// The agent: one server's executor.
#[derive(Debug)]
pub struct Agent {
    config: Config,
    trust: Trust,
    client: Arc<Client>,
    claimer: Option<Claimer>,
    stop: UnixStream,
    stopping: bool,
    /// The heartbeat of the action just run, ended once it is reported.
    heartbeat: Option<CancelWatch>,
}

/// The thread that sends claims, so that the agent's own thread can watch
/// the stop pipe while a claim waits on the server.
#[derive(Debug)]
struct Claimer {
    ask: mpsc::Sender<()>,
    answers: mpsc::Receiver<Result<Option<Claim>, ApiError>>,
    /// Readable (non-blocking) when an answer was sent.
    wake: UnixStream,
}

impl Claimer {
    fn spawn(client: Arc<Client>, lease: u64, wait: u64) -> std::io::Result<Claimer> {
        let (wake, wake_write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        let (ask, asked) = mpsc::channel::<()>();
        let (answered, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("claim".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    if answered.send(client.claim(lease, wait)).is_err() {
                        return;
                    }
                    let _ = (&wake_write).write_all(&[1]);
                }
            })?;
        Ok(Claimer { ask, answers, wake })
    }
}

/// What happened to a claimed action, for its log line.
struct Done {
    outcome: Outcome,
    refused: Option<String>,
    reported: Result<String, String>,
    run_ms: f64,
}

impl Agent {
    /// An agent with `config` and what it trusts (`trust`, from its own
    /// files), talking through `client`; `stop` is the read end
    /// (non-blocking) of the pipe the signal handlers write to.
    pub fn new(config: Config, trust: Trust, client: Client, stop: UnixStream) -> Agent {
        Agent {
            config,
            trust,
            client: Arc::new(client),
            claimer: None,
            stop,
            stopping: false,
            heartbeat: None,
        }
    }

    /// Claims and runs actions until asked to stop or refused by the server.
    pub fn run(&mut self) -> Exit {
        log(
            "info",
            "start",
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "server_urls": self.config.server_urls,
                "server_id": self.config.server_id,
                "whitelist_version": self.trust.whitelist.version(),
                "claim_wait_s": self.config.claim_wait_seconds,
                "poll_interval_s": self.config.poll_interval.as_secs_f64(),
                "lease_s": self.config.lease_seconds,
            }),
        );
        let wait = self.config.claim_wait_seconds;
        let mut backoff = Backoff::new(self.config.retry_min, self.config.retry_max);
        let mut unreachable_since: Option<(Instant, Instant)> = None;
        // Whether the server held the last empty claim for its wait: logged
        // when it changes (a server may be upgraded, or replaced by an old one).
        let mut server_waits: Option<bool> = None;
        while !self.stopping {
            let sent = Instant::now();
            let Some(answer) = self.claim_unless_stopped() else {
                break;
            };
            match answer {
                Ok(claim) => {
                    backoff.reset();
                    if let Some((since, _)) = unreachable_since.take() {
                        log(
                            "info",
                            "server_reachable",
                            json!({
                                "after_s": since.elapsed().as_secs_f64(),
                                "server_url": self.client.current_api(),
                            }),
                        );
                    }
                    match claim {
                        // Straight on to the next claim: a backlog drains at full speed.
                        Some(claim) => self.handle(claim, sent),
                        None if wait == 0 => self.idle(self.config.poll_interval),
                        None => {
                            // An empty answer well before the wait ended: a server
                            // that ignores `wait_seconds`. Poll it at the interval;
                            // every claim still asks, so an upgrade is noticed.
                            let waited = sent.elapsed() >= Duration::from_secs(wait) / 2;
                            if server_waits != Some(waited) {
                                server_waits = Some(waited);
                                log(
                                    "info",
                                    "claim_mode",
                                    json!({
                                        "long_poll": waited,
                                        "server_url": self.client.current_api(),
                                        "wait_s": wait,
                                        "poll_interval_s": self.config.poll_interval.as_secs_f64(),
                                    }),
                                );
                            }
                            if !waited {
                                self.idle(self.config.poll_interval);
                            }
                        }
                    }
                }
                Err(e) if e.is_auth() => {
                    let message = auth_message(&e, &self.config.server_id);
                    log("error", "token_refused", json!({ "message": message }));
                    return Exit::Refused(message);
                }
                Err(e) if e.is_redirect() => {
                    let message = format!("the server's claim route answered {e}");
                    log("error", "claim_refused", json!({ "message": message }));
                    return Exit::Refused(message);
                }
                Err(e) if !e.is_retryable() && !e.is_auth() && e.is_client_error() => {
                    // 404 (unknown server_id), 422 (a lease the server will not
                    // give): asking again changes nothing until the config does.
                    let message = format!(
                        "the server refused this agent's claim request ({e}): \
                         check server_id and lease_seconds in the config"
                    );
                    log("error", "claim_refused", json!({ "message": message }));
                    return Exit::Refused(message);
                }
                Err(e) => {
                    // Every URL is down (the client tried each): wait a
                    // jittered, growing delay, so agents that lost the server
                    // together do not come back together.
                    let delay = backoff.next_delay();
                    let now = Instant::now();
                    let due = match unreachable_since {
                        None => {
                            unreachable_since = Some((now, now));
                            true
                        }
                        Some((since, last)) if now - last >= UNREACHABLE_LOG_EVERY => {
                            unreachable_since = Some((since, now));
                            true
                        }
                        Some(_) => false,
                    };
                    if due {
                        log(
                            "warn",
                            "claim_failed",
                            json!({
                                "error": e.to_string(),
                                "failures": backoff.failures(),
                                "retry_in_ms": ms(delay),
                            }),
                        );
                    }
                    self.idle(delay);
                }
            }
        }
        log("info", "stop", json!({}));
        Exit::Stopped
    }

    /// One claim, sent from the claim thread while this one watches the
    /// stop pipe: a stop request during a long wait ends the agent at once
    /// (its connection closes with the process, and a server claims nothing
    /// for a client gone while waiting). `None`: stopped with no answer yet.
    fn claim_unless_stopped(&mut self) -> Option<Result<Option<Claim>, ApiError>> {
        let (lease, wait) = (self.config.lease_seconds, self.config.claim_wait_seconds);
        if self.claimer.is_none() {
            self.claimer = Claimer::spawn(Arc::clone(&self.client), lease, wait).ok();
        }
        // No socket or thread to spare: claim on this thread instead.
        let Some(claimer) = &self.claimer else {
            return Some(self.client.claim(lease, wait));
        };
        let ended = || ApiError::Transport("the claim ended without an answer".into());
        if claimer.ask.send(()).is_err() {
            self.claimer = None;
            return Some(Err(ended()));
        }
        let mut fds = [
            libc::pollfd {
                fd: claimer.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: two valid pollfds for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            let poll_error = (n < 0).then(std::io::Error::last_os_error);
            // An answer that is there is taken, stop request or not: a claim
            // in hand is run (and drained), never dropped.
            let mut buf = [0u8; 16];
            while matches!((&claimer.wake).read(&mut buf), Ok(n) if n > 0) {}
            match claimer.answers.try_recv() {
                Ok(answer) => return Some(answer),
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.claimer = None;
                    return Some(Err(ended()));
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if n > 0 && fds[1].revents != 0 {
                self.stop_requested();
                return None;
            }
            if poll_error.is_some_and(|e| e.kind() != std::io::ErrorKind::Interrupted) {
                // Cannot watch the stop pipe: wait for the answer instead.
                let answer = claimer.answers.recv().unwrap_or_else(|_| Err(ended()));
                return Some(answer);
            }
        }
    }

    /// Waits `d`, or less when a stop request comes.
    fn idle(&mut self, d: Duration) {
        let mut fds = [libc::pollfd {
            fd: self.stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = d.as_millis().min(libc::c_int::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n > 0 && fds[0].revents != 0 {
            self.stop_requested();
        }
    }

    fn stop_requested(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(std::io::Read::read(&mut self.stop, &mut buf), Ok(n) if n > 0) {}
        if !self.stopping {
            log(
                "info",
                "stopping",
                json!({ "drain_grace_s": self.config.drain_grace.as_secs_f64() }),
            );
        }
        self.stopping = true;
    }

    /// Why the agent will not run `claim`, if it will not: everything it
    /// runs is what its own whitelist builds from the claim's type and
    /// parameters, under the claim's verified signature.
    fn refusal(&self, claim: &Claim) -> Option<String> {
        self.check(claim)
            .err()
            .map(|why| format!("actionq-agent: refused: {why}; nothing was run"))
    }

    fn check(&self, claim: &Claim) -> Result<(), String> {
        if claim.server_id != self.config.server_id {
            return Err(format!(
                "the claim is for server '{}', this agent runs server '{}'",
                claim.server_id, self.config.server_id
            ));
        }
        let Some(signature) = &claim.signature else {
            return Err(
                "the claim carries no signature (a server that predates claim signing is not \
                 trusted)"
                    .into(),
            );
        };
        let (Some(digest), Some(version), Some(lease_end)) = (
            &claim.digest,
            &claim.whitelist_version,
            &claim.lease_expires_at,
        ) else {
            return Err("the claim lacks its digest, whitelist_version or lease_expires_at".into());
        };
        let lease_end = chrono::DateTime::parse_from_rfc3339(lease_end)
            .map_err(|e| format!("unreadable lease_expires_at {lease_end:?}: {e}"))?
            .with_timezone(&chrono::Utc);
        let fields = actionq::ClaimFields {
            id: claim.id,
            server_id: &claim.server_id,
            action_type: &claim.action_type,
            params: &claim.params,
            argv: &claim.argv,
            env: &claim.env,
            digest,
            whitelist_version: version,
            lease_token: &claim.lease_token,
            lease_expires_at: lease_end,
        };
        self.trust
            .claim_key
            .verify(&fields, signature)
            .map_err(|e| {
                format!(
                    "{e} (claim_public_key_file {})",
                    self.config.claim_public_key_file.display()
                )
            })?;
        if lease_end <= chrono::Utc::now() {
            return Err(format!(
                "the claim's lease ended at {} (an old claim replayed)",
                claim.lease_expires_at.as_deref().unwrap_or_default()
            ));
        }
        let local = self.trust.whitelist.version();
        if version != local {
            return Err(format!(
                "the action was built under whitelist version {version}, this agent's \
                 whitelist_file is version {local}"
            ));
        }
        let built = self
            .trust
            .whitelist
            .build(&claim.action_type, &claim.params)
            .map_err(|e| format!("this agent's whitelist does not allow it: {e}"))?;
        if built.argv != claim.argv || built.env != claim.env {
            return Err(format!(
                "the claim's command is not what this agent's whitelist builds for {} with its \
                 parameters: the claim says argv {:?} env {:?}, the whitelist gives argv {:?} env {:?}",
                claim.action_type, claim.argv, claim.env, built.argv, built.env
            ));
        }
        let computed = actionq::action_digest(
            &claim.server_id,
            &claim.action_type,
            &built.argv,
            &built.env,
            local,
        );
        if computed != *digest {
            return Err(format!(
                "digest mismatch: the claim says {digest}, the command this agent's whitelist \
                 builds gives {computed}: what would run is not what was approved"
            ));
        }
        Ok(())
    }

    /// Runs (or refuses) one claimed action and reports it; one log line.
    fn handle(&mut self, claim: Claim, claim_sent: Instant) {
        let claimed = Instant::now();
        let mut lease_end = claim_sent + self.config.lease();
        let refused = self.refusal(&claim);
        let (outcome, cancelled, lease_lost) = match &refused {
            Some(reason) => (
                Outcome {
                    exit_code: REFUSED_EXIT_CODE,
                    stdout: String::new(),
                    stderr: reason.chars().take(self.config.output_cap_chars).collect(),
                    output_bytes: (0, 0),
                    killed: None,
                    duration: Duration::ZERO,
                },
                false,
                None,
            ),
            None => self.execute(&claim, &mut lease_end),
        };
        let ran = Instant::now();
        let reported = match lease_lost {
            Some(why) => Err(why),
            None => self.report(&claim, &outcome, cancelled, lease_end),
        };
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.finish();
        }
        let done = Done {
            outcome,
            refused,
            reported,
            run_ms: ms(ran - claimed),
        };
        let end = Instant::now();
        log_action(
            &claim,
            &done,
            ms(claimed - claim_sent),
            ms(end - ran),
            ms(end - claim_sent),
        );
    }

    /// Runs the claimed command; meanwhile heartbeats (each held by the
    /// server until a cancel request, [`CancelWatch`]) and sends its output
    /// as it comes ([`OutputSender`]). Gives the outcome, whether it was
    /// stopped on a cancel request (so reported as cancelled) and, when the
    /// lease was lost on the way, why (then there is nothing to report).
    fn execute(
        &mut self,
        claim: &Claim,
        lease_end: &mut Instant,
    ) -> (Outcome, bool, Option<String>) {
        let spec = Spec {
            argv: &claim.argv,
            env: &claim.env,
            cwd: &self.config.working_directory,
            timeout: self.config.timeout_for(&claim.action_type),
            kill_grace: self.config.kill_grace,
            cap_chars: self.config.output_cap_chars,
        };
        let argv0 = claim.argv.first().map_or("", String::as_str);
        let mut running = match Running::start(&spec) {
            Ok(r) => r,
            Err(e) => return (exec::spawn_failure(argv0, &e), false, None),
        };
        let beat_every =
            (self.config.lease() / 3).min(Duration::from_secs(limits::MAX_WAIT_SECONDS));
        let watch = CancelWatch::spawn(
            self.client.clone(),
            claim.id,
            claim.lease_token.clone(),
            self.config.lease_seconds,
            beat_every,
        );
        let watch = match watch {
            Ok(w) => w,
            Err(e) => {
                running.terminate(format!("actionq-agent: cannot start the heartbeat: {e}"));
                let outcome = running
                    .finish()
                    .unwrap_or_else(|e| exec::spawn_failure(argv0, &e));
                return (outcome, false, None);
            }
        };
        let sender = if self.config.live_output {
            match OutputSender::spawn(self.client.clone(), claim.id, claim.lease_token.clone()) {
                Ok((sender, pieces)) => {
                    let limit = self.config.output_cap_chars.saturating_mul(4);
                    running.stream_to(LiveOutput::new(pieces, limit));
                    Some(sender)
                }
                // Live output is a convenience: the result carries the output anyway.
                Err(e) => {
                    log(
                        "warn",
                        "output_not_streamed",
                        json!({ "id": claim.id, "error": e.to_string() }),
                    );
                    None
                }
            }
        } else {
            None
        };
        // Asked to stop while the claim was on its way: the drain grace runs already.
        let mut drain_deadline = self
            .stopping
            .then(|| Instant::now() + self.config.drain_grace);
        let mut lease_lost: Option<String> = None;
        loop {
            let stop_fd = (!self.stopping).then(|| self.stop.as_raw_fd());
            match running.wait(drain_deadline, stop_fd, Some(watch.news.as_raw_fd())) {
                Ok(Wake::Exited) => break,
                Ok(Wake::Stop) => {
                    self.stop_requested();
                    drain_deadline = Some(Instant::now() + self.config.drain_grace);
                }
                Ok(Wake::News) => {
                    let heard = watch.heard();
                    if let Some(why) = &heard.lost {
                        running.terminate(format!("actionq-agent: {why}; process group killed"));
                        lease_lost = Some(why.clone());
                    } else if let Some(by) = &heard.cancel_by {
                        running.stop(format!(
                            "actionq-agent: cancel requested by {by}; SIGTERM sent to the command's \
                             process group (SIGKILL after {}s)",
                            fmt_secs(self.config.kill_grace)
                        ));
                    }
                }
                Ok(Wake::Deadline) => {
                    drain_deadline = None;
                    running.terminate(format!(
                        "actionq-agent: the agent was asked to stop and the action did not finish \
                         within the drain grace of {}s; process group killed",
                        fmt_secs(self.config.drain_grace)
                    ));
                }
                Err(e) => {
                    running.terminate(format!("actionq-agent: lost track of the command: {e}"));
                }
            }
        }
        let cancelled = running.was_stopped();
        running.end_stream();
        let outcome = running
            .finish()
            .unwrap_or_else(|e| exec::spawn_failure(argv0, &e));
        if let Some(sender) = sender {
            sender.finish();
        }
        if let Some(renewed) = watch.heard().renewed {
            *lease_end = (*lease_end).max(renewed + self.config.lease());
        }
        // The heartbeat thread ends with the action: after the report, its
        // held request is answered at once.
        self.heartbeat = Some(watch);
        (outcome, cancelled, lease_lost)
    }

    /// Reports `outcome`, retrying with backoff while the lease lasts.
    /// Gives the action's new status, or why it could not be reported.
    fn report(
        &mut self,
        claim: &Claim,
        outcome: &Outcome,
        cancelled: bool,
        lease_end: Instant,
    ) -> Result<String, String> {
        let mut backoff = Backoff::new(REPORT_BACKOFF_START, REPORT_BACKOFF_MAX);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let error = match self.client.report(
                claim.id,
                &claim.lease_token,
                outcome.exit_code,
                &outcome.stdout,
                &outcome.stderr,
                cancelled,
            ) {
                Ok(reported) => return Ok(reported.status),
                Err(e) => e,
            };
            let now = Instant::now();
            let delay = backoff.next_delay();
            if !error.is_retryable() || now + delay >= lease_end {
                let why = if error.is_retryable() {
                    format!("the lease ended before the server took the result ({attempts} attempts; last: {error})")
                } else {
                    format!("the server refused the result: {error}")
                };
                return Err(why);
            }
            log(
                "warn",
                "report_failed",
                json!({
                    "id": claim.id,
                    "attempt": attempts,
                    "error": error.to_string(),
                    "retry_in_ms": ms(delay),
                    "lease_left_s": (lease_end - now).as_secs_f64(),
                }),
            );
            std::thread::sleep(delay);
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn auth_message(e: &ApiError, server_id: &str) -> String {
    match e {
        ApiError::Status { status: 403, .. } => format!(
            "the server refused this agent's token for server '{server_id}' ({e}): \
             is the token file holding an agent token issued for '{server_id}'?"
        ),
        _ => format!(
            "the server did not accept this agent's token ({e}): \
             is it revoked, or from another actionq server?"
        ),
    }
}

/// The one log line of an action: id, argv, exit code, duration, outcome.
fn log_action(claim: &Claim, done: &Done, claim_ms: f64, report_ms: f64, cycle_ms: f64) {
    let o = &done.outcome;
    let (level, status, not_reported) = match &done.reported {
        Ok(status) if done.refused.is_some() => ("error", status.as_str(), None),
        Ok(status) => ("info", status.as_str(), None),
        Err(why) => ("error", "not_reported", Some(why.as_str())),
    };
    log(
        level,
        "action",
        json!({
            "id": claim.id,
            "action_type": claim.action_type,
            "argv": claim.argv,
            "exit_code": o.exit_code,
            "status": status,
            "duration_ms": ms(o.duration),
            "stdout_bytes": o.output_bytes.0,
            "stderr_bytes": o.output_bytes.1,
            "refused": done.refused,
            "killed": o.killed,
            "not_reported": not_reported,
            "verified": done.refused.is_none(),
            "claim_ms": claim_ms,
            "run_ms": done.run_ms,
            "report_ms": report_ms,
            "cycle_ms": cycle_ms,
        }),
    );
}
