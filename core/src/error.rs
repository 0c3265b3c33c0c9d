//! The one error type of actionq. Every binding maps it exactly once.

use std::fmt;

/// The kind of an [`Error`]: the table in `docs/contract/errors.md#kinds`.
/// Stable across releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed input: missing or out-of-range values.
    InvalidInput,
    /// A server or action that does not exist.
    NotFound,
    /// An action type absent from the whitelist, or a parameter value its validator refused.
    NotWhitelisted,
    /// An illegal status transition, a duplicate, or a stale lease token.
    Conflict,
    /// I/O failure, corruption, lock wait beyond the busy timeout, or a schema too new.
    Storage,
    /// An unknown, revoked or malformed credential secret.
    Unauthenticated,
    /// A principal whose role or server scope does not allow the operation.
    PermissionDenied,
}

impl ErrorKind {
    /// Every kind, in the order of `docs/contract/errors.md#kinds`.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::NotWhitelisted,
        ErrorKind::Conflict,
        ErrorKind::Storage,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
    ];

    /// The stable machine-readable code, as used in HTTP error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "VALIDATION_ERROR",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::NotWhitelisted => "FORBIDDEN",
            ErrorKind::Conflict => "CONFLICT",
            ErrorKind::Storage => "STORAGE_ERROR",
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
        }
    }

    /// The HTTP status a web host answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 422,
            ErrorKind::NotFound => 404,
            ErrorKind::NotWhitelisted => 403,
            ErrorKind::Conflict => 409,
            ErrorKind::Storage => 503,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An actionq error: a kind plus a message written for humans.
///
/// Messages are the contract's wording where it gives one
/// (`docs/contract/errors.md#messages`), e.g.
/// `Cannot approve action with status 'approved' (must be pending)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed input (`docs/contract/create-rules.md#rule-1-malformed-input`,
    /// bad limits, bad reason length, bad config).
    #[error("{0}")]
    InvalidInput(String),
    /// The named server or action does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The action type or a parameter value is not on the whitelist.
    #[error("{0}")]
    NotWhitelisted(String),
    /// The operation collides with the current state.
    #[error("{message}")]
    Conflict {
        /// Human-readable reason, naming the current status or the duplicate.
        message: String,
        /// For a duplicate create: the id of the action it collided with.
        existing_action_id: Option<i64>,
    },
    /// The store failed: I/O, corruption, schema too new.
    #[error("{0}")]
    Storage(String),
    /// Another connection held a lock past the busy timeout (kind Storage).
    /// Nothing was done, so the call may be made again.
    #[error("{0}")]
    Busy(String),
    /// The secret given is unknown, revoked or malformed. The message never
    /// contains the secret.
    #[error("{0}")]
    Unauthenticated(String),
    /// The acting principal's role or server scope forbids the operation;
    /// nothing was changed. The message names the rule.
    #[error("{0}")]
    PermissionDenied(String),
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::NotWhitelisted(_) => ErrorKind::NotWhitelisted,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Storage(_) | Error::Busy(_) => ErrorKind::Storage,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
        }
    }

    /// The stable code of this error's kind (`VALIDATION_ERROR`, `NOT_FOUND`, ...).
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }

    /// The HTTP status of this error's kind.
    pub fn http_status(&self) -> u16 {
        self.kind().http_status()
    }

    /// The human-readable message (same as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Whether another connection held a lock past the busy timeout (a
    /// Storage error after which the same call may succeed).
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy(_))
    }

    /// For a duplicate create, the id of the existing action; otherwise `None`.
    pub fn existing_action_id(&self) -> Option<i64> {
        match self {
            Error::Conflict {
                existing_action_id, ..
            } => *existing_action_id,
            _ => None,
        }
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
            existing_action_id: None,
        }
    }

    pub(crate) fn server_not_found(id: &str) -> Self {
        Error::NotFound(format!("Server '{id}' not found"))
    }

    pub(crate) fn action_not_found(id: i64) -> Self {
        Error::NotFound(format!("Action {id} not found"))
    }
}
