//! Credentials: issue, list, revoke, look up by the digest of a secret.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::rows::{credential_columns, credential_from_row, ts};
use super::{events, Context};
use crate::error::{Error, Result};
use crate::identity::{Credential, CredentialDraft};
use crate::model::Timestamp;
use crate::store::EventDraft;

/// Stores `draft` with the next id.
pub(super) fn insert(tx: &Transaction<'_>, draft: CredentialDraft) -> Result<Credential> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO credentials (name, role, server_id, prefix, secret_sha256, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (secret_sha256) DO NOTHING",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                draft.name,
                draft.role.as_str(),
                draft.server_id,
                draft.prefix,
                &draft.secret_sha256[..],
                ts(draft.created_at)
            ])
        })
        .context("issue credential")?;
    if inserted == 0 {
        return Err(Error::conflict(
            "A credential with this secret already exists",
        ));
    }
    let id = tx.last_insert_rowid();
    events::log(tx, &draft.event())?;
    Ok(draft.into_credential(id))
}

/// Every credential by id.
pub(super) fn list(conn: &Connection) -> Result<Vec<Credential>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        credential_columns!(),
        " FROM credentials ORDER BY id"
    ))
    .and_then(|mut select| {
        select
            .query_map([], credential_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .context("list credentials")
}

/// Revokes credential `id` (keeping an earlier revocation time), logging
/// the first revocation.
pub(super) fn revoke(
    tx: &Transaction<'_>,
    id: i64,
    at: Timestamp,
    by: &str,
) -> Result<Option<Credential>> {
    let changed = tx
        .prepare_cached(
            "UPDATE credentials SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        )
        .and_then(|mut update| update.execute(params![id, ts(at)]))
        .context("revoke credential")?;
    let credential = tx
        .prepare_cached(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE id = ?1"
        ))
        .and_then(|mut select| select.query_row([id], credential_from_row).optional())
        .context("revoke credential")?;
    if let (Some(credential), true) = (&credential, changed > 0) {
        events::log(
            tx,
            &EventDraft::credential(&credential.name, "revoked".to_owned(), by, at),
        )?;
    }
    Ok(credential)
}

/// The credential whose secret has digest ?1.
pub(super) const FIND_SQL: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM credentials WHERE secret_sha256 = ?1"
);

/// The credential whose secret has digest `secret_sha256` (unique index lookup).
pub(super) fn find(conn: &Connection, secret_sha256: &[u8; 32]) -> Result<Option<Credential>> {
    conn.prepare_cached(FIND_SQL)
        .and_then(|mut select| {
            select
                .query_row([&secret_sha256[..]], credential_from_row)
                .optional()
        })
        .context("authenticate")
}
