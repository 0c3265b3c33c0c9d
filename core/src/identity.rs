//! Identity: credentials, roles, principals, and the permission table.
//!
//! A credential is issued once with a random secret (32 bytes from the OS,
//! URL-safe text behind a readable role prefix such as `aq_op_`); the store
//! keeps only the secret's SHA-256, so a leaked database or listing gives no
//! usable secret. [`ActionQueue::authenticate`](crate::ActionQueue::authenticate)
//! turns a secret into a [`Principal`] by looking up its digest — the secret is
//! never compared as a string, so timing says nothing about how much of a wrong
//! secret matched.
//!
//! What a principal may do is decided here and nowhere else: [`authorize`],
//! driven by [`Role::allows`]. The queue calls it on every principal-taking
//! entry point ([`ActionQueue::as_principal`](crate::ActionQueue::as_principal)),
//! before anything changes, so every host enforces the same rules.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{wire_time, Action, ActionStatus, Timestamp};
use crate::store::EventDraft;

/// What a principal is allowed to do. See [`Role::allows`] for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including credentials and the agent side of any server.
    Admin,
    /// Create servers and actions, approve, reject, cancel, pause/unpause, read.
    Operator,
    /// Create actions, cancel its own pending actions, read.
    Requester,
    /// Read only.
    Viewer,
    /// Bound to one server: claim, heartbeat and report results for that
    /// server's actions only.
    Agent,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Requester,
        Role::Viewer,
        Role::Agent,
    ];

    /// The wire name, e.g. `"operator"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Requester => "requester",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
        }
    }

    /// The readable start of this role's secrets, e.g. `"aq_op_"`.
    pub fn secret_prefix(self) -> &'static str {
        match self {
            Role::Admin => "aq_ad_",
            Role::Operator => "aq_op_",
            Role::Requester => "aq_rq_",
            Role::Viewer => "aq_vw_",
            Role::Agent => "aq_ag_",
        }
    }

    /// The permission table: whether this role may perform `op` at all. Scope
    /// (an agent's server, a requester's own pending actions) is checked on
    /// top of this by [`authorize`].
    ///
    /// | operation | admin | operator | requester | viewer | agent |
    /// |---|---|---|---|---|---|
    /// | read (servers, actions, events, `me`) | yes | yes | yes | yes | no |
    /// | create server, pause, unpause | yes | yes | no | no | no |
    /// | create action | yes | yes | yes | no | no |
    /// | approve, reject | yes | yes | no | no | no |
    /// | cancel | yes | yes | own pending | no | no |
    /// | claim, heartbeat, report result | yes | no | no | no | own server |
    /// | expire leases | yes | yes | no | no | no |
    /// | credentials (issue, list, revoke) | yes | no | no | no | no |
    /// | verify the audit chain | yes | no | no | no | no |
    pub fn allows(self, op: Operation) -> bool {
        use Operation::*;
        match self {
            Role::Admin => true,
            Role::Operator => !matches!(
                op,
                Claim
                    | Heartbeat
                    | ReportResult
                    | ManageCredentials
                    | VerifyAudit
                    | RunJobs
                    | Retention
            ),
            Role::Requester => matches!(op, Read | CreateAction | CancelAction),
            Role::Viewer => matches!(op, Read),
            Role::Agent => matches!(op, Claim | Heartbeat | ReportResult),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                Error::InvalidInput(format!(
                    "Invalid role '{}' (must be one of: {})",
                    s.escape_debug(),
                    names.join(", ")
                ))
            })
    }
}

/// Everything a principal can ask the queue to do, as the permission table
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read servers, actions, listings, events.
    Read,
    /// Register a server.
    CreateServer,
    /// Enter or leave maintenance mode.
    PauseServer,
    /// Queue an action.
    CreateAction,
    /// Approve a pending action.
    ApproveAction,
    /// Reject a pending action.
    RejectAction,
    /// Cancel a pending or approved action.
    CancelAction,
    /// Claim the next approved action of a server.
    Claim,
    /// Extend a lease.
    Heartbeat,
    /// Finish an executing action.
    ReportResult,
    /// Fail the actions whose lease ran out.
    ExpireLeases,
    /// Issue, list and revoke credentials.
    ManageCredentials,
    /// Walk the tamper-evident audit chain.
    VerifyAudit,
    /// Run background jobs: job leases and notification delivery cursors.
    RunJobs,
    /// Prune and export finished history (`docs/contract/retention.md`).
    Retention,
}

impl Operation {
    /// Every operation, in the order of the permission table.
    pub const ALL: [Operation; 15] = [
        Operation::Read,
        Operation::CreateServer,
        Operation::PauseServer,
        Operation::CreateAction,
        Operation::ApproveAction,
        Operation::RejectAction,
        Operation::CancelAction,
        Operation::Claim,
        Operation::Heartbeat,
        Operation::ReportResult,
        Operation::ExpireLeases,
        Operation::ManageCredentials,
        Operation::VerifyAudit,
        Operation::RunJobs,
        Operation::Retention,
    ];

    /// What the operation does, for messages: "approve actions".
    pub fn describe(self) -> &'static str {
        match self {
            Operation::Read => "read the queue",
            Operation::CreateServer => "create servers",
            Operation::PauseServer => "pause or unpause servers",
            Operation::CreateAction => "create actions",
            Operation::ApproveAction => "approve actions",
            Operation::RejectAction => "reject actions",
            Operation::CancelAction => "cancel actions",
            Operation::Claim => "claim actions",
            Operation::Heartbeat => "heartbeat actions",
            Operation::ReportResult => "report results",
            Operation::ExpireLeases => "expire leases",
            Operation::ManageCredentials => "manage credentials",
            Operation::VerifyAudit => "verify the audit log",
            Operation::RunJobs => "run background jobs",
            Operation::Retention => "prune or export history",
        }
    }
}

/// Who is acting: what actions record as `created_by`, `approved_by`, ... and
/// what [`authorize`] judges. Built by
/// [`ActionQueue::authenticate`](crate::ActionQueue::authenticate), or by a
/// host that authenticates people itself (it is then trusted, like a `by`
/// string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// The credential's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The server an agent is bound to; `None` for every other role.
    pub server_id: Option<String>,
}

impl Principal {
    /// A principal named `name` with `role` and no server.
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Principal {
            name: name.into(),
            role,
            server_id: None,
        }
    }

    /// The agent of `server_id`, named `name`.
    pub fn agent(name: impl Into<String>, server_id: impl Into<String>) -> Self {
        Principal {
            name: name.into(),
            role: Role::Agent,
            server_id: Some(server_id.into()),
        }
    }
}

/// What an operation acts on, for the scope checks of [`authorize`].
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Nothing in particular (listings, credentials, creating a server).
    None,
    /// A server (claims, pause, create action).
    Server(&'a str),
    /// An existing action (approve, cancel, heartbeat, report).
    Action(&'a Action),
}

impl Target<'_> {
    fn server_id(&self) -> Option<&str> {
        match self {
            Target::None => None,
            Target::Server(id) => Some(id),
            Target::Action(action) => Some(&action.server_id),
        }
    }
}

fn capitalized(role: Role) -> String {
    let name = role.as_str();
    name[..1].to_uppercase() + &name[1..]
}

/// The role half of [`authorize`]: PermissionDenied unless the principal's
/// role may perform `op` at all ([`Role::allows`]). Hosts and the queue call it
/// before loading a target, so a refused role learns nothing about it.
pub fn authorize_role(principal: &Principal, op: Operation) -> Result<()> {
    if principal.role.allows(op) {
        return Ok(());
    }
    let allowed: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| r.allows(op))
        .map(Role::as_str)
        .collect();
    Err(Error::PermissionDenied(format!(
        "{} '{}' cannot {}: only {} may",
        capitalized(principal.role),
        principal.name,
        op.describe(),
        allowed.join(", ")
    )))
}

/// The one place permissions are decided: Ok when `principal` may perform `op`
/// on `target`, else PermissionDenied naming the rule, e.g.
/// `Agent for server 'web-1' cannot claim actions of server 'web-2'`.
///
/// Role rules come from [`Role::allows`]; on top of them an agent acts only on
/// its own server, and a requester cancels only its own pending actions.
///
/// ```
/// use actionq::identity::{authorize, Operation, Principal, Role, Target};
///
/// let agent = Principal::agent("web-1-agent", "web-1");
/// assert!(authorize(&agent, Operation::Claim, Target::Server("web-1")).is_ok());
/// let refused = authorize(&agent, Operation::Claim, Target::Server("web-2")).unwrap_err();
/// assert_eq!(refused.to_string(), "Agent for server 'web-1' cannot claim actions of server 'web-2'");
/// assert!(authorize(&Principal::new("v", Role::Viewer), Operation::ApproveAction, Target::None).is_err());
/// ```
pub fn authorize(principal: &Principal, op: Operation, target: Target<'_>) -> Result<()> {
    authorize_role(principal, op)?;
    match principal.role {
        Role::Agent => {
            let own = principal.server_id.as_deref().unwrap_or_default();
            match target.server_id() {
                Some(server) if server == own => Ok(()),
                Some(server) => Err(Error::PermissionDenied(format!(
                    "Agent for server '{own}' cannot {} of server '{server}'",
                    match op {
                        Operation::Claim => "claim actions",
                        Operation::Heartbeat => "heartbeat actions",
                        _ => "report results for actions",
                    }
                ))),
                None => Err(Error::PermissionDenied(format!(
                    "Agent for server '{own}' acts only on its own server's actions"
                ))),
            }
        }
        Role::Requester if op == Operation::CancelAction => match target {
            Target::Action(action)
                if action.created_by == principal.name
                    && action.status == ActionStatus::Pending =>
            {
                Ok(())
            }
            Target::Action(action) => Err(Error::PermissionDenied(format!(
                "Requester '{}' can cancel only its own pending actions (action {} was created by '{}' and is {})",
                principal.name, action.id, action.created_by, action.status
            ))),
            _ => Err(Error::PermissionDenied(format!(
                "Requester '{}' can cancel only its own pending actions",
                principal.name
            ))),
        },
        _ => Ok(()),
    }
}

/// A stored credential, as listed: never the secret, nor its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Store-assigned id, from 1, never reused.
    pub id: i64,
    /// Who it belongs to: what actions record when it acts.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The server of an agent credential.
    pub server_id: Option<String>,
    /// The readable start of the secret (role prefix and a few characters),
    /// enough to tell credentials apart, useless to authenticate.
    pub prefix: String,
    /// When it was issued.
    #[serde(serialize_with = "wire_time::serialize")]
    pub created_at: Timestamp,
    /// When it was revoked; a revoked credential never authenticates.
    #[serde(serialize_with = "wire_time::serialize_opt")]
    pub revoked_at: Option<Timestamp>,
}

impl Credential {
    /// The principal this credential authenticates as.
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            role: self.role,
            server_id: self.server_id.clone(),
        }
    }
}

/// A credential just issued, with its secret: the only time the secret exists
/// outside its holder.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCredential {
    /// The stored credential.
    #[serde(flatten)]
    pub credential: Credential,
    /// The secret, shown this once.
    pub secret: String,
}

impl fmt::Debug for IssuedCredential {
    // A secret must not reach a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredential")
            .field("credential", &self.credential)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A credential not yet stored (the store assigns the id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDraft {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Server of an agent.
    pub server_id: Option<String>,
    /// Readable start of the secret.
    pub prefix: String,
    /// SHA-256 of the secret: the only form of it that is stored.
    pub secret_sha256: [u8; 32],
    /// Issue time.
    pub created_at: Timestamp,
    /// Who issued it: the issue event's `by`.
    pub issued_by: String,
}

impl CredentialDraft {
    /// The audit event of the issue (`detail` `"issued <role>"`, plus
    /// `" for server <id>"` for an agent), logged with the insert.
    pub fn event(&self) -> EventDraft {
        let detail = match &self.server_id {
            Some(server) => format!("issued {} for server {server}", self.role),
            None => format!("issued {}", self.role),
        };
        EventDraft::credential(&self.name, detail, &self.issued_by, self.created_at)
    }

    /// The stored credential with id `id`.
    pub fn into_credential(self, id: i64) -> Credential {
        Credential {
            id,
            name: self.name,
            role: self.role,
            server_id: self.server_id,
            prefix: self.prefix,
            created_at: self.created_at,
            revoked_at: None,
        }
    }
}

pub use crate::actor::RESERVED_CREDENTIAL_NAMES;

/// Whether `c` is invisible or changes how text around it is shown: Unicode
/// control (Cc) and format (Cf) characters — zero-width and bidi controls
/// among them — line and paragraph separators (Zl, Zp), spaces other than
/// U+0020, and the blank fillers that render as nothing. A name holding one
/// could look like another in a UI or a log.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{0600}'..='\u{0605}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Checks a new credential's name: not one of
/// [`RESERVED_CREDENTIAL_NAMES`] (in any case), no invisible or format
/// characters, no leading or trailing space. InvalidInput otherwise.
///
/// ```
/// assert!(actionq::check_credential_name("alice").is_ok());
/// assert!(actionq::check_credential_name("Agent").is_err());
/// assert!(actionq::check_credential_name("ali\u{200B}ce").is_err());
/// ```
pub fn check_credential_name(name: &str) -> Result<()> {
    if RESERVED_CREDENTIAL_NAMES
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
    {
        return Err(Error::InvalidInput(format!(
            "name '{name}' is reserved (the queue records it on its own)"
        )));
    }
    if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        return Err(Error::InvalidInput(format!(
            "name must not contain invisible or format characters (found U+{:04X})",
            c as u32
        )));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(Error::InvalidInput(
            "name must not start or end with a space".into(),
        ));
    }
    Ok(())
}

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Characters of the random part shown in [`Credential::prefix`].
const PREFIX_RANDOM_CHARS: usize = 8;

/// A fresh secret for `role`: its prefix, then 32 bytes from the OS's random
/// source as URL-safe base64 (43 characters).
pub(crate) fn new_secret(role: Role) -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Storage(format!("no random bytes from the OS: {e}")))?;
    Ok(format!(
        "{}{}",
        role.secret_prefix(),
        URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The readable prefix of `secret` that listings show.
pub(crate) fn shown_prefix(secret: &str, role: Role) -> String {
    secret
        .chars()
        .take(role.secret_prefix().len() + PREFIX_RANDOM_CHARS)
        .collect()
}

/// The SHA-256 of a secret, as stored and looked up.
pub fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The refusal of any secret that does not authenticate. One message for
/// unknown, revoked and malformed secrets, and never the secret itself.
pub(crate) fn unauthenticated() -> Error {
    Error::Unauthenticated("Invalid or revoked credential".into())
}
