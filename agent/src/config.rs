//! The agent's configuration file (TOML) and its token file.
//!
//! ```toml
//! server_url = "https://actionq.lan"      # where actionq.server serves /api/v1
//! # or several, tried in order (the same queue behind each):
//! # server_urls = ["https://actionq-1.lan", "https://actionq-2.lan"]
//! server_id = "web-1"                     # the server this agent runs actions for
//! token_file = "/etc/actionq-agent/token" # its agent token, mode 0600 (0400)
//! # What the agent trusts (see "What the agent trusts" in the README): both
//! # root-owned (or the agent user's), not writable by group or others.
//! whitelist_file = "/etc/actionq-agent/whitelist.json"          # the server's whitelist config
//! claim_public_key_file = "/etc/actionq-agent/claim-signing.pub" # the server's claim-signing key
//! # ca_file = "/etc/actionq-agent/ca.pem" # PEM: trust only this CA for https (a private CA)
//!
//! # Everything below is optional; the values shown are the defaults.
//! claim_wait_seconds = 30      # long-poll: the server holds a claim this long, 0..=60
//! poll_interval_seconds = 1.0   # wait between empty claims from a server without the wait, 0 < x <= 2
//! retry_min_seconds = 0.5       # after a failed claim: jittered delays from this...
//! retry_max_seconds = 30        # ...up to this
//! lease_seconds = 300           # lease asked for by claims and heartbeats
//! output_cap_chars = 10000      # the queue's stdout/stderr cap
//! default_timeout_seconds = 3600
//! kill_grace_seconds = 5        # SIGTERM to the process group, then SIGKILL
//! drain_grace_seconds = 60      # on SIGTERM: time the running action gets
//! http_timeout_seconds = 10    # per request; a claim gets its wait on top
//! live_output = true            # send output to the server while the command runs
//! working_directory = "/"
//! auth_header = "X-Agent-Token" # "X-API-Key" only for a server that predates agent tokens
//!
//! [timeouts]                    # per action type, seconds
//! apt_upgrade_all = 3600
//! restart_service = 120
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actionq::limits;
use serde::Deserialize;

/// Claim wait when the config names none.
pub const DEFAULT_CLAIM_WAIT_SECONDS: u64 = 30;
/// Shortest delay before a claim is tried again after a failure.
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest delay before a claim is tried again after failures.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(30);
/// Longest poll interval the contract allows between empty claims
/// (docs/contract/agent.md#claiming).
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Poll interval when the config names none.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Per-action timeout when neither `[timeouts]` nor `default_timeout_seconds` names one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Time between the SIGTERM and the SIGKILL sent to a process group.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Time a running action gets to finish after the agent is asked to stop.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(60);
/// Timeout of one HTTP request.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A config or token file the agent cannot start with: the message says what
/// to fix (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The file as written; [`Config::from_toml`] checks it and fills in defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server_url: Option<String>,
    server_urls: Option<Vec<String>>,
    server_id: String,
    token_file: PathBuf,
    whitelist_file: PathBuf,
    claim_public_key_file: PathBuf,
    ca_file: Option<PathBuf>,
    claim_wait_seconds: Option<u64>,
    poll_interval_seconds: Option<f64>,
    retry_min_seconds: Option<f64>,
    retry_max_seconds: Option<f64>,
    lease_seconds: Option<u64>,
    output_cap_chars: Option<usize>,
    default_timeout_seconds: Option<f64>,
    kill_grace_seconds: Option<f64>,
    drain_grace_seconds: Option<f64>,
    http_timeout_seconds: Option<f64>,
    live_output: Option<bool>,
    require_digest: Option<bool>,
    working_directory: Option<PathBuf>,
    auth_header: Option<String>,
    #[serde(default)]
    timeouts: BTreeMap<String, f64>,
}

/// The agent's checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Base URLs of the server, without `/api/v1` (a trailing `/` is
    /// dropped), in the order they are tried: replicas in front of the same
    /// queue. At least one; `server_url` in the file is a list of one.
    pub server_urls: Vec<String>,
    /// The server whose actions this agent claims.
    pub server_id: String,
    /// Path of the file holding the agent token.
    pub token_file: PathBuf,
    /// The whitelist config (JSON) the agent rebuilds every claim's command
    /// from: the same text the server runs with.
    pub whitelist_file: PathBuf,
    /// The server's claim-signing public key (PEM `PUBLIC KEY`).
    pub claim_public_key_file: PathBuf,
    /// PEM certificates of the CA(s) to trust for `https://` instead of the
    /// public (Mozilla) roots: a private CA.
    pub ca_file: Option<PathBuf>,
    /// How long each claim asks the server to wait for an action
    /// (`wait_seconds`, 0..=[`limits::MAX_WAIT_SECONDS`]); 0 polls.
    pub claim_wait_seconds: u64,
    /// Wait between claims that found nothing at once: with
    /// `claim_wait_seconds = 0`, or from a server that predates the wait
    /// (≤ [`MAX_POLL_INTERVAL`]).
    pub poll_interval: Duration,
    /// Shortest delay before a failed claim is tried again.
    pub retry_min: Duration,
    /// Longest delay before a failed claim is tried again.
    pub retry_max: Duration,
    /// Lease asked for by each claim and heartbeat, in seconds.
    pub lease_seconds: u64,
    /// The queue's output cap, in characters: what is kept of stdout and stderr.
    pub output_cap_chars: usize,
    /// Timeout of an action type without an entry in `timeouts`.
    pub default_timeout: Duration,
    /// Per-action-type timeouts.
    pub timeouts: BTreeMap<String, Duration>,
    /// SIGTERM → SIGKILL delay when a process group is killed.
    pub kill_grace: Duration,
    /// Time the running action gets after the agent receives SIGTERM.
    pub drain_grace: Duration,
    /// Timeout of one HTTP request.
    pub http_timeout: Duration,
    /// Whether output is sent to the server while the command runs
    /// (`docs/contract/cancel-and-output.md#live-output`), up to the cap.
    pub live_output: bool,
    /// Working directory of the commands.
    pub working_directory: PathBuf,
    /// The header that carries the token: `X-Agent-Token` (agent
    /// credentials); `X-API-Key` only for a server that predates them.
    pub auth_header: String,
}

/// The headers a token may travel in.
pub const AUTH_HEADERS: [&str; 2] = ["X-Agent-Token", "X-API-Key"];

fn seconds(name: &str, value: Option<f64>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match limits::setting_seconds(name, v) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(ConfigError(format!("{name} must be greater than 0"))),
            Err(e) => Err(ConfigError(e.to_string())),
        },
    }
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        Config::from_toml(&text)
            .map_err(|e| ConfigError(format!("config {}: {}", path.display(), e.0)))
    }

    /// Parses and checks a config text (see the [module docs](self)).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        let server_urls = match (file.server_url, file.server_urls) {
            (Some(url), None) => vec![url],
            (None, Some(urls)) if !urls.is_empty() => urls,
            (None, Some(_)) => {
                return Err(ConfigError("server_urls must name at least one URL".into()))
            }
            (None, None) => {
                return Err(ConfigError(
                    "missing field `server_url` (or `server_urls`, a list)".into(),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "give server_url or server_urls, not both".into(),
                ))
            }
        };
        let server_urls: Vec<String> = server_urls
            .iter()
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect();
        for (i, url) in server_urls.iter().enumerate() {
            check_server_url(url)?;
            if server_urls[..i].contains(url) {
                return Err(ConfigError(format!("server_urls names {url:?} twice")));
            }
        }
        if file.require_digest.is_some() {
            return Err(ConfigError(
                "require_digest was removed: every claim must carry a digest and the server's \
                 signature (a server that predates claim signing is not trusted); delete the line"
                    .into(),
            ));
        }
        if file.server_id.is_empty()
            || file.server_id.len() > limits::MAX_SERVER_ID_CHARS
            || !file
                .server_id
                .starts_with(|c: char| c.is_ascii_alphanumeric())
            || !file
                .server_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ConfigError(format!(
                "server_id must be 1-{} characters of [A-Za-z0-9._-], starting alphanumeric (got {:?})",
                limits::MAX_SERVER_ID_CHARS,
                file.server_id
            )));
        }
        let poll_interval = seconds(
            "poll_interval_seconds",
            file.poll_interval_seconds,
            DEFAULT_POLL_INTERVAL,
        )?;
        if poll_interval > MAX_POLL_INTERVAL {
            return Err(ConfigError(format!(
                "poll_interval_seconds must be at most {} (an approved action waits at most that long)",
                MAX_POLL_INTERVAL.as_secs()
            )));
        }
        let claim_wait_seconds = file
            .claim_wait_seconds
            .unwrap_or(DEFAULT_CLAIM_WAIT_SECONDS);
        if claim_wait_seconds > limits::MAX_WAIT_SECONDS {
            return Err(ConfigError(format!(
                "claim_wait_seconds must be 0..={} (the server's limit; \
                 0 polls every poll_interval_seconds)",
                limits::MAX_WAIT_SECONDS
            )));
        }
        let retry_min = seconds(
            "retry_min_seconds",
            file.retry_min_seconds,
            DEFAULT_RETRY_MIN,
        )?;
        let retry_max = seconds(
            "retry_max_seconds",
            file.retry_max_seconds,
            DEFAULT_RETRY_MAX,
        )?;
        if retry_max < retry_min {
            return Err(ConfigError(
                "retry_max_seconds must be at least retry_min_seconds".into(),
            ));
        }
        let lease_seconds = file.lease_seconds.unwrap_or(limits::DEFAULT_LEASE_SECONDS);
        if lease_seconds < 3 {
            // Heartbeats come every third of the lease, in whole seconds' worth of slack.
            return Err(ConfigError("lease_seconds must be at least 3".into()));
        }
        let default_timeout = seconds(
            "default_timeout_seconds",
            file.default_timeout_seconds,
            DEFAULT_TIMEOUT,
        )?;
        let mut timeouts = BTreeMap::new();
        for (action_type, secs) in file.timeouts {
            let name = format!("timeouts.{action_type}");
            timeouts.insert(action_type, seconds(&name, Some(secs), DEFAULT_TIMEOUT)?);
        }
        let working_directory = file.working_directory.unwrap_or_else(|| PathBuf::from("/"));
        if !working_directory.is_absolute() {
            return Err(ConfigError(
                "working_directory must be an absolute path".into(),
            ));
        }
        let auth_header = file
            .auth_header
            .unwrap_or_else(|| AUTH_HEADERS[0].to_owned());
        if !AUTH_HEADERS.contains(&auth_header.as_str()) {
            return Err(ConfigError(format!(
                "auth_header must be one of {AUTH_HEADERS:?} (got {auth_header:?})"
            )));
        }
        Ok(Config {
            auth_header,
            server_urls,
            server_id: file.server_id,
            token_file: file.token_file,
            whitelist_file: file.whitelist_file,
            claim_public_key_file: file.claim_public_key_file,
            ca_file: file.ca_file,
            claim_wait_seconds,
            poll_interval,
            retry_min,
            retry_max,
            lease_seconds,
            output_cap_chars: file
                .output_cap_chars
                .unwrap_or(limits::DEFAULT_OUTPUT_CAP_CHARS),
            default_timeout,
            timeouts,
            kill_grace: seconds(
                "kill_grace_seconds",
                file.kill_grace_seconds,
                DEFAULT_KILL_GRACE,
            )?,
            drain_grace: seconds(
                "drain_grace_seconds",
                file.drain_grace_seconds,
                DEFAULT_DRAIN_GRACE,
            )?,
            http_timeout: seconds(
                "http_timeout_seconds",
                file.http_timeout_seconds,
                DEFAULT_HTTP_TIMEOUT,
            )?,
            live_output: file.live_output.unwrap_or(true),
            working_directory,
        })
    }

    /// The timeout of `action_type`.
    pub fn timeout_for(&self, action_type: &str) -> Duration {
        self.timeouts
            .get(action_type)
            .copied()
            .unwrap_or(self.default_timeout)
    }

    /// The lease as a `Duration`.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }
}

/// `https://` anywhere; `http://` only to a loopback host (127.0.0.0/8,
/// `::1`, `localhost`), where nothing on the network can read or change
/// the traffic.
fn check_server_url(url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError(format!("server_url {url:?}: {why}"));
    let uri: ureq::http::Uri = url.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    let host = uri
        .host()
        .ok_or_else(|| bad("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(bad(
                    "plain http:// is refused except to a loopback address (127.0.0.0/8, ::1, \
                     localhost): anyone on the path could read the token and change the claims; \
                     use https:// (ca_file for a private CA)",
                ))
            }
        }
        _ => Err(bad(
            "must start with https:// (or http:// to a loopback address)",
        )),
    }
}

/// What the agent trusts, read from its own files (never from the server).
#[derive(Debug, Clone)]
pub struct Trust {
    /// The whitelist every claim's command is rebuilt from.
    pub whitelist: actionq::Whitelist,
    /// The key every claim must be signed with.
    pub claim_key: actionq::ClaimVerifyingKey,
}

/// Refuses a file the agent takes its policy from when someone other than
/// root or the agent's own user could have written it: writable by group or
/// others, or owned by another user.
pub fn check_trusted_file(path: &Path, what: &str) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError(format!("cannot read {what} {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(ConfigError(format!(
            "{what} {} is writable by group or others (mode {mode:04o}); \
             run `chmod go-w {}` (refusing to start: whoever can write it decides what runs)",
            path.display(),
            path.display()
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(ConfigError(format!(
            "{what} {} is owned by user {}, neither root nor this agent's user ({me}); \
             run `chown root {}` (refusing to start: its owner decides what runs)",
            path.display(),
            meta.uid(),
            path.display()
        )));
    }
    Ok(())
}

/// Reads the whitelist and the claim public key named by `config`, each
/// checked with [`check_trusted_file`].
pub fn read_trust(config: &Config) -> Result<Trust, ConfigError> {
    let wl = &config.whitelist_file;
    check_trusted_file(wl, "whitelist_file")?;
    let text = std::fs::read_to_string(wl)
        .map_err(|e| ConfigError(format!("cannot read whitelist_file {}: {e}", wl.display())))?;
    let whitelist = actionq::Whitelist::from_json(&text)
        .map_err(|e| ConfigError(format!("whitelist_file {}: {e}", wl.display())))?;
    let key = &config.claim_public_key_file;
    check_trusted_file(key, "claim_public_key_file")?;
    let claim_key = actionq::ClaimVerifyingKey::load(key)
        .map_err(|e| ConfigError(format!("claim_public_key_file: {e}")))?;
    Ok(Trust {
        whitelist,
        claim_key,
    })
}

/// The agent token: its text is never printed (`Debug` hides it).
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// The secret, for the request header only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

/// Reads the token file, refusing one that group or others may access (the
/// token lets whoever holds it run this server's approved actions' results).
pub fn read_token(path: &Path) -> Result<Token, ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError(format!("cannot read token file {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError(format!(
            "token file {} is accessible by group or others (mode {mode:04o}); \
             run `chmod 600 {}` (refusing to start)",
            path.display(),
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read token file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ConfigError(format!(
            "token file {} holds more than one token-like word (whitespace or control characters)",
            path.display()
        )));
    }
    Ok(Token(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        server_url = "http://127.0.0.1:8080/"
        server_id = "web-1"
        token_file = "/etc/actionq-agent/token"
        whitelist_file = "/etc/actionq-agent/whitelist.json"
        claim_public_key_file = "/etc/actionq-agent/claim-signing.pub"
    "#;

    #[test]
    fn defaults() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.server_urls, ["http://127.0.0.1:8080"]);
        assert_eq!(c.claim_wait_seconds, DEFAULT_CLAIM_WAIT_SECONDS);
        assert_eq!(c.poll_interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(
            (c.retry_min, c.retry_max),
            (DEFAULT_RETRY_MIN, DEFAULT_RETRY_MAX)
        );
        assert_eq!(c.lease_seconds, limits::DEFAULT_LEASE_SECONDS);
        assert_eq!(c.output_cap_chars, limits::DEFAULT_OUTPUT_CAP_CHARS);
        assert_eq!(c.ca_file, None);
        assert_eq!(c.timeout_for("anything"), DEFAULT_TIMEOUT);
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let c = Config::from_toml(include_str!("../config.example.toml")).unwrap();
        assert_eq!(c.server_id, "web-1");
        assert_eq!(c.timeout_for("restart_service"), Duration::from_secs(120));
        assert_eq!(c.auth_header, "X-Agent-Token");
    }

    #[test]
    fn per_type_timeouts() {
        let c = Config::from_toml(&format!(
            "{MINIMAL}\ndefault_timeout_seconds = 7\n[timeouts]\nslow = 0.5\n"
        ))
        .unwrap();
        assert_eq!(c.timeout_for("slow"), Duration::from_millis(500));
        assert_eq!(c.timeout_for("other"), Duration::from_secs(7));
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let cases = [
            ("poll_interval_seconds = 3", "at most 2"),
            ("poll_interval_seconds = 0", "greater than 0"),
            ("poll_interval_seconds = -1", "finite number"),
            ("lease_seconds = 1", "at least 3"),
            ("unknown_key = 1", "unknown field"),
            ("working_directory = \"tmp\"", "absolute"),
            ("[timeouts]\nx = -2", "timeouts.x"),
            ("auth_header = \"Authorization\"", "auth_header"),
            ("require_digest = false", "require_digest was removed"),
            ("claim_wait_seconds = 61", "0..=60"),
            ("claim_wait_seconds = -1", "claim_wait_seconds"),
            ("retry_min_seconds = 0", "greater than 0"),
            (
                "retry_min_seconds = 5\nretry_max_seconds = 1",
                "at least retry_min",
            ),
            ("server_urls = [\"http://127.0.0.1:1\"]", "not both"),
        ];
        for (extra, expected) in cases {
            let err = Config::from_toml(&format!("{MINIMAL}\n{extra}")).unwrap_err();
            assert!(err.0.contains(expected), "{extra}: {err}");
        }
        let err = Config::from_toml(&MINIMAL.replace("web-1", "web 1")).unwrap_err();
        assert!(err.0.contains("server_id"), "{err}");
        let err = Config::from_toml(&MINIMAL.replace("http://", "ftp://")).unwrap_err();
        assert!(err.0.contains("server_url"), "{err}");
        for field in ["whitelist_file", "claim_public_key_file"] {
            let without: String = MINIMAL
                .lines()
                .filter(|l| !l.contains(field))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = Config::from_toml(&without).unwrap_err();
            assert!(err.0.contains(field), "{err}");
        }
    }

    #[test]
    fn several_server_urls_in_order_each_checked() {
        let without_url: String = MINIMAL
            .lines()
            .filter(|l| !l.contains("server_url"))
            .map(|l| format!("{l}\n"))
            .collect();
        let with = |line: &str| Config::from_toml(&format!("{without_url}{line}\n"));
        let c = with("server_urls = [\"https://b.lan/\", \"http://127.0.0.1:9\"]").unwrap();
        assert_eq!(c.server_urls, ["https://b.lan", "http://127.0.0.1:9"]);
        for (line, expected) in [
            ("server_urls = []", "at least one"),
            ("", "missing field `server_url`"),
            (
                "server_urls = [\"https://b.lan\", \"http://10.0.0.5\"]",
                "plain http:// is refused",
            ),
            (
                "server_urls = [\"https://b.lan\", \"https://b.lan/\"]",
                "twice",
            ),
        ] {
            let err = with(line).unwrap_err();
            assert!(err.0.contains(expected), "{line}: {err}");
        }
        let c = with("server_urls = [\"https://a.lan\"]\nclaim_wait_seconds = 0").unwrap();
        assert_eq!(c.claim_wait_seconds, 0);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let with_url = |url: &str| {
            Config::from_toml(&MINIMAL.replace("http://127.0.0.1:8080/", url))
                .map(|c| c.server_urls.join(" "))
        };
        for url in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://[::1]:8080",
            "https://actionq.lan",
            "https://10.0.0.5:8443",
        ] {
            assert_eq!(with_url(url).as_deref(), Ok(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:8080",
            "http://actionq.lan",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://[::2]",
            "http://0.0.0.0:8080",
        ] {
            let err = with_url(url).unwrap_err();
            assert!(err.0.contains("loopback"), "{url}: {err}");
        }
    }

    #[test]
    fn trusted_files_must_not_be_writable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whitelist.json");
        std::fs::write(&path, "{}").unwrap();
        for mode in [0o664, 0o646, 0o666, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = check_trusted_file(&path, "whitelist_file").unwrap_err();
            assert!(
                err.0.contains("writable by group or others"),
                "{mode:o}: {err}"
            );
        }
        for mode in [0o644, 0o600, 0o444] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            check_trusted_file(&path, "whitelist_file").unwrap();
        }
        // Owned by another non-root user: refused (needs root to arrange).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            let err = check_trusted_file(&path, "whitelist_file").unwrap_err();
            assert!(err.0.contains("owned by user 4242"), "{err}");
        }
    }

    #[test]
    fn token_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "aq_ag_secret\n").unwrap();
        for mode in [0o640, 0o604, 0o620, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_token(&path).unwrap_err();
            assert!(err.0.contains("group or others"), "{mode:o}: {err}");
            assert!(!err.0.contains("aq_ag_secret"));
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_token(&path).unwrap().secret(), "aq_ag_secret");
        }
        assert_eq!(
            format!("{:?}", read_token(&path).unwrap()),
            "Token(<hidden>)"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, " \n").unwrap();
        assert!(read_token(&path).unwrap_err().0.contains("empty"));
    }
}
