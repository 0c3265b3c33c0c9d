//! Live output chunks, per action.

use super::Inner;
use crate::error::{Error, Result};
use crate::model::OutputChunk;
use crate::store::{OutputDraft, OutputSoFar};

impl Inner {
    /// The server of the action when a chunk was stored, `None` for a repeat.
    pub(super) fn append_output(&mut self, id: i64, draft: &OutputDraft) -> Result<Option<String>> {
        let stored = self.stored(id).ok_or_else(|| Error::action_not_found(id))?;
        let (action, token) = self.action(id, stored);
        let chunks = self.output.entry(id).or_default();
        let so_far = OutputSoFar {
            last_seq: chunks.last().map_or(0, |c| c.seq),
            stdout_chars: chunks.iter().map(|c| c.stdout.chars().count()).sum(),
            stderr_chars: chunks.iter().map(|c| c.stderr.chars().count()).sum(),
        };
        let Some(chunk) = draft.to_store(&action, token.as_deref(), so_far)? else {
            return Ok(None);
        };
        chunks.push(chunk);
        Ok(Some(action.server_id))
    }

    pub(super) fn output_since(&self, id: i64, after: i64) -> Vec<OutputChunk> {
        self.output.get(&id).map_or_else(Vec::new, |chunks| {
            chunks.iter().filter(|c| c.seq > after).cloned().collect()
        })
    }
}
