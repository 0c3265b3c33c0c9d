//! Claim signatures: the server signs every claim it hands out, the executor
//! checks the signature with the public key it was provisioned with, so a
//! claim from anything but the real server (a fake server, a
//! man-in-the-middle, a redirect) is refused before anything runs.
//!
//! The signature is Ed25519 over one canonical, domain-separated,
//! length-prefixed encoding of the claim (version 1), in the same notation as
//! the payload digest's (see [`crate::digest`]):
//!
//! ```text
//! encoding = str("actionq-claim-signature-v1")
//!            i64(id)
//!            str(server_id)
//!            str(action_type)
//!            u64(len(params)) str(name_1) str(value_1) ... (ascending names)
//!            u64(len(argv))   str(argv[0]) ... str(argv[n-1])
//!            u64(len(env))    str(key_1) str(value_1) ...   (ascending keys)
//!            str(digest)
//!            str(whitelist_version)
//!            str(lease_token)
//!            i64(lease_expires_at as microseconds since the Unix epoch, UTC)
//! i64(n)   = n as 8 bytes, big-endian, two's complement
//! ```
//!
//! The lease's end is signed, so a genuine claim replayed after its lease
//! ended is refused by an executor that compares it with its clock; the lease
//! token is signed, so a signature belongs to one claim of one action.
//! On the wire the signature is the standard base64 (with padding) of its 64
//! bytes, in the claim's `signature` field.
//!
//! Key files are PEM, the forms OpenSSL reads and writes:
//!
//! - the private key: `-----BEGIN PRIVATE KEY-----`, PKCS#8 (RFC 8410), as
//!   made by `openssl genpkey -algorithm ed25519` or [`ClaimSigningKey::generate`];
//! - the public key: `-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo, as
//!   made by `openssl pkey -in KEY -pubout` or [`ClaimVerifyingKey::to_pem`].

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use crate::digest::Encoding;
use crate::{Claim, Error, Result, Timestamp};

/// The tag that starts every claim encoding; a new encoding gets a new tag.
pub const CLAIM_SIGNATURE_TAG: &str = "actionq-claim-signature-v1";

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32
/// key bytes follow it.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// What a claim signature covers: the fields of a claim an executor acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimFields<'a> {
    /// The action's id.
    pub id: i64,
    /// The server it runs on.
    pub server_id: &'a str,
    /// Its whitelisted type.
    pub action_type: &'a str,
    /// Its normalised parameter values.
    pub params: &'a BTreeMap<String, String>,
    /// What runs.
    pub argv: &'a [String],
    /// Its environment.
    pub env: &'a BTreeMap<String, String>,
    /// The payload digest the approval covered.
    pub digest: &'a str,
    /// The whitelist version the action was built under.
    pub whitelist_version: &'a str,
    /// The claim's lease token.
    pub lease_token: &'a str,
    /// When the claim's lease ends.
    pub lease_expires_at: Timestamp,
}

impl ClaimFields<'_> {
    /// The canonical encoding (see the [module docs](self)): the bytes signed.
    pub fn encoding(&self) -> Vec<u8> {
        let mut e = Encoding::with_capacity(512);
        e.str(CLAIM_SIGNATURE_TAG);
        e.i64(self.id);
        e.str(self.server_id);
        e.str(self.action_type);
        e.map(self.params);
        e.list(self.argv);
        e.map(self.env);
        e.str(self.digest);
        e.str(self.whitelist_version);
        e.str(self.lease_token);
        e.i64(self.lease_expires_at.timestamp_micros());
        e.0
    }
}

impl Claim {
    /// The fields of this claim a signature covers. A claim without a lease
    /// end (none comes from a queue) signs the Unix epoch, which every
    /// executor refuses as past.
    pub fn signed_fields(&self) -> ClaimFields<'_> {
        let a = &self.action;
        ClaimFields {
            id: a.id,
            server_id: &a.server_id,
            action_type: &a.action_type,
            params: &a.params,
            argv: &a.argv,
            env: &a.env,
            digest: &a.digest,
            whitelist_version: &a.whitelist_version,
            lease_token: &self.lease_token,
            lease_expires_at: a.lease_expires_at.unwrap_or_default(),
        }
    }
}

fn pem_decode(text: &str, label: &str, what: &str) -> Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| {
            Error::InvalidInput(format!("{what}: no PEM block '{begin}' ... '{end}'"))
        })?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(b64)
        .map_err(|e| Error::InvalidInput(format!("{what}: the PEM block is not base64: {e}")))
}

fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn read_key_file(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Storage(format!("cannot read {what} {}: {e}", path.display())))
}

/// The server's claim-signing key (Ed25519). `Debug` never shows it.
pub struct ClaimSigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for ClaimSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimSigningKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl ClaimSigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<ClaimSigningKey> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| Error::Storage("cannot generate a claim-signing key".into()))?;
        ClaimSigningKey::from_pkcs8(pkcs8.as_ref())
    }

    fn from_pkcs8(der: &[u8]) -> Result<ClaimSigningKey> {
        // "maybe unchecked": OpenSSL writes PKCS#8 v1, without the public key.
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| {
            Error::InvalidInput(format!(
                "claim-signing key: not an Ed25519 PKCS#8 private key ({e})"
            ))
        })?;
        Ok(ClaimSigningKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// Parses a PEM `PRIVATE KEY` (PKCS#8 Ed25519) text.
    pub fn from_pem(text: &str) -> Result<ClaimSigningKey> {
        ClaimSigningKey::from_pkcs8(&pem_decode(text, "PRIVATE KEY", "claim-signing key")?)
    }

    /// The key as a PEM `PRIVATE KEY` (PKCS#8) text: a secret.
    pub fn to_pem(&self) -> String {
        pem_encode(&self.pkcs8, "PRIVATE KEY")
    }

    /// Reads the key file at `path` (PEM PKCS#8), refusing one that group or
    /// others may access: whoever reads it can sign claims every agent runs.
    pub fn load(path: &Path) -> Result<ClaimSigningKey> {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::Storage(format!(
                "cannot read claim-signing key {}: {e}",
                path.display()
            ))
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::InvalidInput(format!(
                "claim-signing key {} is accessible by group or others (mode {mode:04o}); \
                 run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        ClaimSigningKey::from_pem(&read_key_file(path, "claim-signing key")?)
            .map_err(|e| Error::InvalidInput(format!("{} ({})", e.message(), path.display())))
    }

    /// The key at `path`, or a new one written there (mode 0600, created
    /// exclusively) when there is no file yet; in both cases its public key is
    /// written to `public_path` (0644) if that file is missing. The flag says
    /// whether the key was generated.
    pub fn load_or_generate(path: &Path, public_path: &Path) -> Result<(ClaimSigningKey, bool)> {
        let io = |e: std::io::Error, p: &Path| {
            Error::Storage(format!("cannot write {}: {e}", p.display()))
        };
        let (key, generated) = if path.exists() {
            (ClaimSigningKey::load(path)?, false)
        } else {
            let key = ClaimSigningKey::generate()?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| io(e, path))?;
            file.write_all(key.to_pem().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io(e, path))?;
            (key, true)
        };
        if !public_path.exists() {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(public_path)
                .map_err(|e| io(e, public_path))?;
            file.write_all(key.public_key().to_pem().as_bytes())
                .map_err(|e| io(e, public_path))?;
        }
        Ok((key, generated))
    }

    /// The public key executors pin.
    pub fn public_key(&self) -> ClaimVerifyingKey {
        let bytes: [u8; 32] = self
            .pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("an Ed25519 public key has 32 bytes");
        ClaimVerifyingKey(bytes)
    }

    /// The signature of `fields`: standard base64 of its 64 bytes.
    pub fn sign(&self, fields: &ClaimFields<'_>) -> String {
        STANDARD.encode(self.pair.sign(&fields.encoding()).as_ref())
    }

    /// The signature of `claim` ([`Claim::signed_fields`]).
    pub fn sign_claim(&self, claim: &Claim) -> String {
        self.sign(&claim.signed_fields())
    }
}

/// The public key an executor checks claim signatures with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClaimVerifyingKey([u8; 32]);

impl std::fmt::Debug for ClaimVerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClaimVerifyingKey({})", STANDARD.encode(self.0))
    }
}

impl ClaimVerifyingKey {
    /// Parses a PEM `PUBLIC KEY` (Ed25519 SubjectPublicKeyInfo) text.
    pub fn from_pem(text: &str) -> Result<ClaimVerifyingKey> {
        let der = pem_decode(text, "PUBLIC KEY", "claim public key")?;
        der.strip_prefix(&SPKI_PREFIX[..])
            .and_then(|key| <[u8; 32]>::try_from(key).ok())
            .map(ClaimVerifyingKey)
            .ok_or_else(|| {
                Error::InvalidInput("claim public key: not an Ed25519 public key".into())
            })
    }

    /// The key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) text.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem_encode(&der, "PUBLIC KEY")
    }

    /// Reads a public key file (PEM).
    pub fn load(path: &Path) -> Result<ClaimVerifyingKey> {
        ClaimVerifyingKey::from_pem(&read_key_file(path, "claim public key")?)
            .map_err(|e| Error::InvalidInput(format!("{} ({})", e.message(), path.display())))
    }

    /// Checks `signature` (base64, as in a claim's `signature` field) over
    /// `fields`: [`Error::Unauthenticated`] unless this key's private half
    /// signed exactly these fields.
    pub fn verify(&self, fields: &ClaimFields<'_>, signature: &str) -> Result<()> {
        let refused = |why: &str| {
            Error::Unauthenticated(format!("claim {} signature refused: {why}", fields.id))
        };
        let bytes = STANDARD
            .decode(signature)
            .map_err(|_| refused("not base64"))?;
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&fields.encoding(), &bytes)
            .map_err(|_| refused("it was not made by the pinned key over this claim's fields"))
    }

    /// Checks `signature` over `claim` ([`Claim::signed_fields`]).
    pub fn verify_claim(&self, claim: &Claim, signature: &str) -> Result<()> {
        self.verify(&claim.signed_fields(), signature)
    }

    /// Checks a claim response as a server sends it (the claim's JSON with
    /// its `signature` field) and gives the claim. JSON that is no claim is
    /// [`Error::InvalidInput`]; a missing or refused signature
    /// [`Error::Unauthenticated`].
    pub fn verify_claim_json(&self, text: &str) -> Result<Claim> {
        let mut value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("the claim is not JSON: {e}")))?;
        let signature = match value.as_object_mut().and_then(|o| o.remove("signature")) {
            Some(serde_json::Value::String(s)) => s,
            _ => {
                return Err(Error::Unauthenticated(
                    "the claim carries no signature".into(),
                ))
            }
        };
        let claim: Claim = serde_json::from_value(value)
            .map_err(|e| Error::InvalidInput(format!("the JSON is not a claim: {e}")))?;
        self.verify_claim(&claim, &signature)?;
        Ok(claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    struct Owned {
        params: BTreeMap<String, String>,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
    }

    fn owned() -> Owned {
        Owned {
            params: map(&[("service_name", "nginx.service")]),
            argv: vec!["systemctl".into(), "restart".into(), "nginx.service".into()],
            env: map(&[("A", "1")]),
        }
    }

    fn fields(o: &Owned) -> ClaimFields<'_> {
        ClaimFields {
            id: 7,
            server_id: "web-1",
            action_type: "restart_service",
            params: &o.params,
            argv: &o.argv,
            env: &o.env,
            digest: "d",
            whitelist_version: "v",
            lease_token: "t",
            lease_expires_at: chrono::DateTime::from_timestamp_micros(1_800_000_000_123_456)
                .unwrap(),
        }
    }

    #[test]
    fn a_signature_verifies_only_with_its_key_over_its_fields() {
        let key = ClaimSigningKey::generate().unwrap();
        let public = key.public_key();
        let o = owned();
        let f = fields(&o);
        let sig = key.sign(&f);
        assert_eq!(STANDARD.decode(&sig).unwrap().len(), 64);
        public.verify(&f, &sig).unwrap();

        let other = ClaimSigningKey::generate().unwrap().public_key();
        assert_eq!(
            other.verify(&f, &sig).unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );
        assert_eq!(
            public.verify(&f, "not base64!").unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );
        assert_eq!(
            public.verify(&f, "").unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );

        // Every field is covered.
        let foreign_argv = vec!["sh".to_owned(), "-c".to_owned(), "id".to_owned()];
        let other_params = map(&[("service_name", "sshd.service")]);
        let other_env = map(&[("A", "2")]);
        let later = f.lease_expires_at + chrono::Duration::microseconds(1);
        let variants = [
            ClaimFields { id: 8, ..f },
            ClaimFields {
                server_id: "web-2",
                ..f
            },
            ClaimFields {
                action_type: "clear_logs",
                ..f
            },
            ClaimFields {
                params: &other_params,
                ..f
            },
            ClaimFields {
                argv: &foreign_argv,
                ..f
            },
            ClaimFields {
                env: &other_env,
                ..f
            },
            ClaimFields { digest: "e", ..f },
            ClaimFields {
                whitelist_version: "w",
                ..f
            },
            ClaimFields {
                lease_token: "u",
                ..f
            },
            ClaimFields {
                lease_expires_at: later,
                ..f
            },
        ];
        for (i, v) in variants.iter().enumerate() {
            assert!(public.verify(v, &sig).is_err(), "variant {i} verified");
        }
    }

    #[test]
    fn a_claim_response_verifies_as_json() {
        let queue = crate::ActionQueue::in_memory();
        queue.create_server("web-1", None).unwrap();
        let new = crate::NewAction::new("web-1", "restart_service").service_name("nginx");
        queue.create_action(&new).unwrap();
        let claim = queue.claim_next("web-1", None, None).unwrap().unwrap();
        let key = ClaimSigningKey::generate().unwrap();
        let mut response = serde_json::to_value(&claim).unwrap();
        response["signature"] = key.sign_claim(&claim).into();
        let public = key.public_key();
        assert_eq!(
            public.verify_claim_json(&response.to_string()).unwrap(),
            claim
        );

        let mut edited = response.clone();
        edited["argv"] = serde_json::json!(["sh", "-c", "id"]);
        let e = public.verify_claim_json(&edited.to_string()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        let mut unsigned = response.clone();
        unsigned.as_object_mut().unwrap().remove("signature");
        let e = public.verify_claim_json(&unsigned.to_string()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        for text in ["not json", "{\"signature\": \"x\"}"] {
            let e = public.verify_claim_json(text).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{text}: {e}");
        }
    }

    #[test]
    fn the_encoding_is_length_prefixed_and_tagged() {
        let o = owned();
        let e = fields(&o).encoding();
        let tag = CLAIM_SIGNATURE_TAG.as_bytes();
        assert_eq!(&e[..8], &(tag.len() as u64).to_be_bytes());
        assert_eq!(&e[8..8 + tag.len()], tag);
        assert_eq!(&e[8 + tag.len()..16 + tag.len()], &7i64.to_be_bytes());
        assert_eq!(
            &e[e.len() - 8..],
            &1_800_000_000_123_456i64.to_be_bytes(),
            "the lease end, in microseconds, comes last"
        );
        // A word moved across a boundary changes the bytes.
        let split = Owned {
            argv: vec![
                "systemctl".into(),
                "restart".into(),
                "nginx".into(),
                ".service".into(),
            ],
            ..owned()
        };
        assert_ne!(fields(&split).encoding(), e);
    }

    #[test]
    fn keys_round_trip_through_pem_and_openssl_forms_load() {
        let key = ClaimSigningKey::generate().unwrap();
        let again = ClaimSigningKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = ClaimVerifyingKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(public, key.public_key());
        // `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`
        // output for the RFC 8032 test key 1 (PKCS#8 v1, no public key inside).
        let openssl_private = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
            -----END PRIVATE KEY-----\n";
        let openssl_public = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
            -----END PUBLIC KEY-----\n";
        let key = ClaimSigningKey::from_pem(openssl_private).unwrap();
        assert_eq!(
            key.public_key(),
            ClaimVerifyingKey::from_pem(openssl_public).unwrap()
        );
        assert_eq!(key.public_key().to_pem(), openssl_public);
    }

    #[test]
    fn bad_key_texts_are_invalid_input_without_the_key() {
        for text in [
            "",
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let e = ClaimSigningKey::from_pem(text).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        let private = ClaimSigningKey::generate().unwrap().to_pem();
        // A private key where a public one belongs: refused, not echoed.
        let e = ClaimVerifyingKey::from_pem(&private).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let body = private.lines().nth(1).unwrap();
        assert!(!e.message().contains(body), "{e}");
    }

    #[test]
    fn load_or_generate_writes_a_private_0600_key_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, public) = (dir.path().join("k"), dir.path().join("k.pub"));
        let (key, generated) = ClaimSigningKey::load_or_generate(&path, &public).unwrap();
        assert!(generated);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ClaimVerifyingKey::load(&public).unwrap(), key.public_key());
        let (again, generated) = ClaimSigningKey::load_or_generate(&path, &public).unwrap();
        assert!(!generated);
        assert_eq!(again.public_key(), key.public_key());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = ClaimSigningKey::load(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("chmod 600"), "{e}");
    }
}
