//! Credentials: issue, list, revoke, look up by the digest of a secret. Each
//! is one statement (its own snapshot and commit).

use super::rows::{credential_columns, credential_from_row, ts};
use super::{Conn, Db, Out};
use crate::error::Error;
use crate::identity::{Credential, CredentialDraft};
use crate::model::Timestamp;
use crate::store::EventDraft;

/// Stores `draft` with the next id; Conflict if its digest is taken.
pub(super) fn insert(conn: &mut Conn, draft: &CredentialDraft) -> Out<Credential> {
    let rows = conn
        .query(
            "INSERT INTO credentials (name, role, server_id, prefix, secret_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (secret_sha256) DO NOTHING RETURNING id",
            &[
                &draft.name,
                &draft.role.as_str(),
                &draft.server_id,
                &draft.prefix,
                &&draft.secret_sha256[..],
                &ts(draft.created_at),
            ],
        )
        .db("issue credential")?;
    let Some(row) = rows.first() else {
        return Err(Error::conflict("A credential with this secret already exists").into());
    };
    let id: i64 = row.try_get(0).db("issue credential")?;
    super::events::log(conn, &[draft.event()])?;
    Ok(draft.clone().into_credential(id))
}

/// Every credential by id.
pub(super) fn list(conn: &mut Conn) -> Out<Vec<Credential>> {
    let rows = conn
        .query(
            concat!(
                "SELECT ",
                credential_columns!(),
                " FROM credentials ORDER BY id"
            ),
            &[],
        )
        .db("list credentials")?;
    Ok(rows
        .iter()
        .map(credential_from_row)
        .collect::<Result<_, _>>()?)
}

/// Revokes credential `id`, keeping an earlier revocation time, and logs
/// the first revocation (in the caller's transaction).
pub(super) fn revoke(conn: &mut Conn, id: i64, at: Timestamp, by: &str) -> Out<Option<Credential>> {
    let rows = conn
        .query(
            concat!(
                "UPDATE credentials SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
                 RETURNING ",
                credential_columns!()
            ),
            &[&id, &ts(at)],
        )
        .db("revoke credential")?;
    if let Some(row) = rows.first() {
        let credential = credential_from_row(row)?;
        let event = EventDraft::credential(&credential.name, "revoked".to_owned(), by, at);
        super::events::log(conn, &[event])?;
        return Ok(Some(credential));
    }
    let rows = conn
        .query(
            concat!(
                "SELECT ",
                credential_columns!(),
                " FROM credentials WHERE id = $1"
            ),
            &[&id],
        )
        .db("revoke credential")?;
    Ok(rows.first().map(credential_from_row).transpose()?)
}

/// The credential whose secret has digest $1.
pub(super) const FIND_SQL: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM credentials WHERE secret_sha256 = $1"
);

/// The credential whose secret has digest `secret_sha256` (unique index lookup).
pub(super) fn find(conn: &mut Conn, secret_sha256: &[u8; 32]) -> Out<Option<Credential>> {
    let rows = conn
        .query(FIND_SQL, &[&&secret_sha256[..]])
        .db("authenticate")?;
    Ok(rows.first().map(credential_from_row).transpose()?)
}
