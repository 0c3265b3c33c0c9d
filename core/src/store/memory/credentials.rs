//! Credentials: issued with their event, found by the digest of their secret.

use super::{position, Inner};
use crate::error::{Error, Result};
use crate::identity::{Credential, CredentialDraft};
use crate::model::Timestamp;
use crate::store::EventDraft;

impl Inner {
    /// Stores `draft` with the next id and logs its issue.
    pub(super) fn insert_credential(&mut self, draft: CredentialDraft) -> Result<Credential> {
        if self.credential_by_digest.contains_key(&draft.secret_sha256) {
            return Err(Error::conflict(
                "A credential with this secret already exists",
            ));
        }
        let index = self.credentials.len();
        let digest = draft.secret_sha256;
        self.log(draft.event());
        let credential = draft.into_credential(index as i64 + 1);
        self.credentials.push(credential.clone());
        self.credential_by_digest.insert(digest, index);
        Ok(credential)
    }

    /// Revokes credential `id` (once: a second revocation changes nothing).
    pub(super) fn revoke_credential(
        &mut self,
        id: i64,
        at: Timestamp,
        by: &str,
    ) -> Option<Credential> {
        let credential = self.credentials.get_mut(position(id, 1)?)?;
        if credential.revoked_at.is_some() {
            return Some(credential.clone());
        }
        credential.revoked_at = Some(at);
        let credential = credential.clone();
        self.log(EventDraft::credential(
            &credential.name,
            "revoked".to_owned(),
            by,
            at,
        ));
        Some(credential)
    }

    /// The credential whose secret has SHA-256 `secret_sha256`.
    pub(super) fn find_credential(&self, secret_sha256: &[u8; 32]) -> Option<Credential> {
        self.credential_by_digest
            .get(secret_sha256)
            .map(|&i| self.credentials[i].clone())
    }
}
