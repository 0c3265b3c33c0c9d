//! The agent's side of the HTTP contract (docs/contract/http.md#routes): claim,
//! heartbeat, result, with the agent token in `X-Agent-Token` (see [`crate::config::Config::auth_header`]). Blocking (ureq over rustls).
//!
//! Several server URLs (replicas of one queue) fail over: a request goes to
//! the URL that answered last; when that one is down (no answer, or a 5xx)
//! the next is tried at once, in the configured order, and the one that
//! answers is kept. Heartbeats and results follow, with the same lease
//! token: the queue behind every URL is the same.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::config::Token;
use crate::log::log;

/// A claimed action: what the agent needs of the claim response.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Claim {
    /// The action's id.
    pub id: i64,
    /// The server it belongs to.
    pub server_id: String,
    /// Its whitelisted type.
    pub action_type: String,
    /// Its normalised parameter values: what the agent rebuilds the command
    /// from with its own whitelist.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// What to run.
    pub argv: Vec<String>,
    /// Its environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The payload digest the approval covered (absent from servers that
    /// predate digests).
    #[serde(default)]
    pub digest: Option<String>,
    /// The whitelist version the action was built under.
    #[serde(default)]
    pub whitelist_version: Option<String>,
    /// The fencing token of this claim.
    pub lease_token: String,
    /// When the lease ends unless extended (RFC 3339, the server's clock).
    #[serde(default)]
    pub lease_expires_at: Option<String>,
    /// The server's Ed25519 signature of the claim (base64), absent from a
    /// server that predates claim signing.
    #[serde(default)]
    pub signature: Option<String>,
}

/// A request that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No HTTP answer (connection refused, reset, timed out): worth retrying.
    Transport(String),
    /// The server answered with an error status.
    Status {
        /// HTTP status.
        status: u16,
        /// `detail.code` of the error body, when there is one.
        code: Option<String>,
        /// `detail.message`, or the body.
        message: String,
    },
}

impl ApiError {
    /// Whether trying again later may succeed (transport errors and 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        }
    }

    /// Whether the server looks down (no answer, or a 5xx): another of the
    /// configured URLs may answer.
    pub fn is_server_down(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Status { status, .. } => *status >= 500,
        }
    }

    /// Whether the server refused the request as such (4xx other than a
    /// timeout or rate limit): sending it again gives the same answer.
    pub fn is_client_error(&self) -> bool {
        matches!(self, ApiError::Status { status, .. }
            if (400..500).contains(status) && !matches!(status, 408 | 429))
    }

    /// Whether the server answered with a redirect, which the agent never
    /// follows (it would carry the token to wherever the redirect points).
    pub fn is_redirect(&self) -> bool {
        matches!(self, ApiError::Status { status, .. } if (300..400).contains(status))
    }

    /// Whether the server refused the token (401, or 403 for a token of
    /// another server or role).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ApiError::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Transport(e) => write!(f, "no answer from the server: {e}"),
            ApiError::Status {
                status,
                code,
                message,
            } => match code {
                Some(code) => write!(f, "HTTP {status} {code}: {message}"),
                None => write!(f, "HTTP {status}: {message}"),
            },
        }
    }
}

/// The server's answer to a result report.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Reported {
    /// The action's status after the report (`completed` or `failed`).
    pub status: String,
}

/// An HTTP client for one queue (behind one or more URLs) and one agent token.
pub struct Client {
    http: ureq::Agent,
    apis: Vec<String>,
    /// Index in `apis` of the URL requests go to first: the last that answered.
    current: AtomicUsize,
    timeout: Duration,
    server_id: String,
    token: Token,
    auth_header: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("apis", &self.apis)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `server_urls` (each without `/api/v1`, tried in this
    /// order; at least one), claiming for `server_id`, sending `token` in
    /// `auth_header`; `timeout` bounds a request (a claim's wait is added
    /// to it). `ca_pem` (the certificates of a `ca_file`) replaces the
    /// public roots for https. Redirects are never followed: a 3xx is an
    /// error ([`ApiError::is_redirect`]), so the token goes nowhere but the
    /// configured URLs.
    pub fn new(
        server_urls: &[String],
        server_id: &str,
        token: Token,
        auth_header: &str,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Client, String> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = ca_pem {
            let certs = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("not a PEM certificate file: {e}"))?;
            if certs.is_empty() {
                return Err("no PEM certificate in it".into());
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let http: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Error statuses carry the server's reason: read them, not lose them.
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls.build())
            .user_agent(concat!("actionq-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        if server_urls.is_empty() {
            return Err("no server URL".into());
        }
        Ok(Client {
            http,
            apis: server_urls
                .iter()
                .map(|url| format!("{}/api/v1", url.trim_end_matches('/')))
                .collect(),
            current: AtomicUsize::new(0),
            timeout,
            server_id: server_id.to_owned(),
            token,
            auth_header: auth_header.to_owned(),
        })
    }

    /// The base URL (with `/api/v1`) requests go to first now.
    pub fn current_api(&self) -> &str {
        &self.apis[self.current.load(Ordering::Relaxed)]
    }

    /// The timeout of a claim that asks the server to wait `wait_seconds`:
    /// the wait plus the timeout of any request, so a wait that runs its
    /// full length ends in the server's 204, not in a client timeout.
    pub fn claim_timeout(&self, wait_seconds: u64) -> Duration {
        self.timeout + Duration::from_secs(wait_seconds)
    }

    /// Sends to the current URL, then to the next ones while they are down;
    /// the first URL that answers becomes the current one. All down: the
    /// last error.
    fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<(u16, String), ApiError> {
        let first = self.current.load(Ordering::Relaxed);
        let mut down: Option<ApiError> = None;
        for k in 0..self.apis.len() {
            let i = (first + k) % self.apis.len();
            match self.post_to(&self.apis[i], path, body, timeout) {
                Err(e) if e.is_server_down() => down = Some(e),
                answer => {
                    if i != first {
                        self.current.store(i, Ordering::Relaxed);
                        log(
                            "warn",
                            "server_url_changed",
                            json!({
                                "from": self.apis[first],
                                "to": self.apis[i],
                                "error": down.as_ref().map(ToString::to_string),
                            }),
                        );
                    }
                    return answer;
                }
            }
        }
        Err(down.expect("at least one URL"))
    }

    fn post_to(
        &self,
        api: &str,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<(u16, String), ApiError> {
        let url = format!("{api}{path}");
        let mut response = self
            .http
            .post(&url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header(&self.auth_header, self.token.secret())
            .send_json(body)
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        if (200..300).contains(&status) {
            return Ok((status, text));
        }
        if (300..400).contains(&status) {
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere");
            return Err(ApiError::Status {
                status,
                code: None,
                message: format!(
                    "a redirect to {location:?}, not followed (it would carry the agent token \
                     elsewhere): set server_url(s) to the server's own address"
                ),
            });
        }
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").cloned());
        let (code, message) = match detail {
            Some(serde_json::Value::Object(d)) => (
                d.get("code").and_then(|c| c.as_str()).map(str::to_owned),
                d.get("message")
                    .and_then(|m| m.as_str())
                    .map_or_else(|| text.clone(), str::to_owned),
            ),
            Some(other) => (None, other.to_string()),
            None => (None, text),
        };
        Err(ApiError::Status {
            status,
            code,
            message,
        })
    }

    /// Claims the server's oldest approved action, with a lease of
    /// `lease_seconds`; asks the server to wait up to `wait_seconds` for one
    /// (0: answer at once; a server that predates the wait answers at once
    /// anyway). `None`: nothing to claim.
    pub fn claim(&self, lease_seconds: u64, wait_seconds: u64) -> Result<Option<Claim>, ApiError> {
        let path = format!("/servers/{}/actions/claim", self.server_id);
        let mut body = json!({ "lease_seconds": lease_seconds });
        if wait_seconds > 0 {
            body["wait_seconds"] = json!(wait_seconds);
        }
        let (status, text) = self.post(&path, &body, self.claim_timeout(wait_seconds))?;
        if status == 204 {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ApiError::Status {
                status,
                code: None,
                message: format!("unreadable claim response: {e}"),
            })
    }

    /// Extends the lease of action `id`.
    pub fn heartbeat(
        &self,
        id: i64,
        lease_token: &str,
        lease_seconds: u64,
    ) -> Result<(), ApiError> {
        self.post(
            &format!("/actions/{id}/heartbeat"),
            &json!({ "lease_token": lease_token, "lease_seconds": lease_seconds }),
            self.timeout,
        )
        .map(|_| ())
    }

    /// Extends the lease of action `id`, then lets the server hold the
    /// answer up to `wait` for a cancel request
    /// (`docs/contract/cancel-and-output.md#cancel-request`). Who asked to
    /// cancel, if anyone has: all the agent reads of the answer.
    pub fn await_cancel(
        &self,
        id: i64,
        lease_token: &str,
        lease_seconds: u64,
        wait: Duration,
    ) -> Result<Option<String>, ApiError> {
        let (status, text) = self.post(
            &format!("/actions/{id}/heartbeat"),
            &json!({
                "lease_token": lease_token,
                "lease_seconds": lease_seconds,
                "wait_seconds": wait.as_secs_f64(),
            }),
            self.timeout + wait,
        )?;
        #[derive(Deserialize)]
        struct Heard {
            #[serde(default)]
            cancel_requested_by: Option<String>,
            #[serde(default)]
            cancel_requested_at: Option<String>,
        }
        let heard: Heard = serde_json::from_str(&text).map_err(|e| ApiError::Status {
            status,
            code: None,
            message: format!("unreadable heartbeat response: {e}"),
        })?;
        Ok(heard
            .cancel_requested_at
            .map(|_| heard.cancel_requested_by.unwrap_or_default()))
    }

    /// Sends chunk `seq` of action `id`'s live output. The answer's body is
    /// not read: only whether the server took it.
    pub fn append_output(
        &self,
        id: i64,
        lease_token: &str,
        seq: i64,
        stdout: &str,
        stderr: &str,
    ) -> Result<(), ApiError> {
        self.post(
            &format!("/actions/{id}/output"),
            &json!({ "lease_token": lease_token, "seq": seq, "stdout": stdout, "stderr": stderr }),
            self.timeout,
        )
        .map(|_| ())
    }

    /// Reports the result of action `id`; `cancelled` when the agent stopped
    /// the command on a cancel request.
    pub fn report(
        &self,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: &str,
        stderr: &str,
        cancelled: bool,
    ) -> Result<Reported, ApiError> {
        let mut body = json!({
            "lease_token": lease_token,
            "exit_code": exit_code,
            "stdout": stdout,
            "stderr": stderr,
        });
        if cancelled {
            body["cancelled"] = json!(true);
        }
        let (status, text) = self.post(&format!("/actions/{id}/result"), &body, self.timeout)?;
        serde_json::from_str(&text).map_err(|e| ApiError::Status {
            status,
            code: None,
            message: format!("unreadable result response: {e}"),
        })
    }
}
