//! Checks and shaping of what hosts pass in, before any store work.

use crate::error::{Error, Result};
use crate::limits;

pub(crate) fn check_len(what: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(Error::InvalidInput(format!(
            "{what} must be 1-{max} characters (got {n})"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Checks a server id: 1–100 chars of `[A-Za-z0-9._-]`, starting alphanumeric.
pub(crate) fn check_server_id(id: &str) -> Result<()> {
    let max = limits::MAX_SERVER_ID_CHARS;
    let ok = (1..=max).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "Invalid server id '{}': 1-{max} characters of [A-Za-z0-9._-], starting with a letter or digit",
            id.chars().take(max).collect::<String>().escape_debug()
        )))
    }
}

/// What the stores keep of a lease token: its SHA-256 (lower-case hex), so
/// a copy of the database does not hand out live leases. Only the claimer
/// ever holds the token itself.
pub(crate) fn lease_token_digest(token: &str) -> String {
    use sha2::Digest as _;
    crate::digest::lower_hex(&sha2::Sha256::digest(token.as_bytes()))
}

pub(crate) fn cap(text: Option<&str>, max_chars: usize) -> Option<String> {
    text.map(|t| match t.char_indices().nth(max_chars) {
        Some((cut, _)) => t[..cut].to_owned(),
        None => t.to_owned(),
    })
}
