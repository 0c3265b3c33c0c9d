//! Live output (`docs/contract/cancel-and-output.md#live-output`): which
//! chunk an agent may add and how much of it is kept.

use super::change::check_lease;
use crate::error::Result;
use crate::model::{Action, OutputChunk, Timestamp};

/// A chunk of live output as the agent sent it, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDraft {
    /// The SHA-256 (hex) of the sender's lease token.
    pub lease_token: String,
    /// The agent's sequence number (from 1).
    pub seq: i64,
    /// Standard output of the piece.
    pub stdout: String,
    /// Standard error of the piece.
    pub stderr: String,
    /// When the queue received it.
    pub at: Timestamp,
    /// The queue's output cap: the most characters kept per stream per action.
    pub cap_chars: usize,
}

/// What the action's chunks stored so far add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputSoFar {
    /// The highest `seq` stored (0 for none).
    pub last_seq: i64,
    /// Characters of standard output kept.
    pub stdout_chars: usize,
    /// Characters of standard error kept.
    pub stderr_chars: usize,
}

impl OutputDraft {
    /// The chunk to store, given the action (with its stored token) and its
    /// output so far: Conflict unless the sender holds the action's running
    /// lease; `None` when there is nothing to store: a repeated (or older)
    /// `seq`, or nothing left under the cap. Each stream keeps its first
    /// `cap_chars` characters.
    pub fn to_store(
        &self,
        action: &Action,
        stored_token: Option<&str>,
        so_far: OutputSoFar,
    ) -> Result<Option<OutputChunk>> {
        check_lease(action, stored_token, &self.lease_token, self.at)?;
        if self.seq <= so_far.last_seq {
            return Ok(None);
        }
        let keep = |text: &str, kept: usize| -> String {
            text.chars()
                .take(self.cap_chars.saturating_sub(kept))
                .collect()
        };
        let chunk = OutputChunk {
            seq: self.seq,
            stdout: keep(&self.stdout, so_far.stdout_chars),
            stderr: keep(&self.stderr, so_far.stderr_chars),
            at: self.at,
        };
        Ok((!chunk.stdout.is_empty() || !chunk.stderr.is_empty()).then_some(chunk))
    }
}
