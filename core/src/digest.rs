//! The payload digest of an action: what an approver approved and what an
//! executor must check before it runs anything.
//!
//! [`action_digest`] is the hex SHA-256 of one canonical byte encoding of
//! `(server_id, action_type, argv, env, whitelist_version)`. Every binding and
//! every executor must compute the same bytes, so the encoding is spelled out
//! here exactly (version 1):
//!
//! ```text
//! digest   = lowercase hex of SHA-256(encoding)
//! encoding = str("actionq-action-digest-v1")
//!            str(server_id)
//!            str(action_type)
//!            u64(len(argv))  str(argv[0]) ... str(argv[n-1])
//!            u64(len(env))   str(key_1) str(value_1) ... str(key_m) str(value_m)
//!            str(whitelist_version)
//! u64(n)   = n as 8 bytes, big-endian
//! str(s)   = u64(number of UTF-8 bytes of s) followed by those bytes
//! ```
//!
//! `env` pairs come in ascending byte order of their keys (keys are unique).
//! Every string carries its length and every list its count, so no two
//! different inputs share an encoding (`["ab"]` vs `["a", "b"]`, a key moved
//! into its value, an argv word moved into the env: all differ); the leading
//! tag keeps the hash apart from any other SHA-256 the project computes.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The tag that starts every encoding; a new encoding gets a new tag.
pub const ACTION_DIGEST_TAG: &str = "actionq-action-digest-v1";

/// The hex SHA-256 of the canonical encoding (see the [module docs](self))
/// of an action's payload: what runs (`argv`, `env`), where (`server_id`),
/// as which whitelisted type, under which whitelist (`whitelist_version`).
///
/// ```
/// use std::collections::BTreeMap;
/// use actionq::action_digest;
///
/// let env = BTreeMap::from([("DEBIAN_FRONTEND".to_owned(), "noninteractive".to_owned())]);
/// let digest = action_digest("web-1", "apt_update", &["apt-get", "update", "-q"], &env, "v1");
/// assert_eq!(digest.len(), 64);
/// assert_ne!(digest, action_digest("web-2", "apt_update", &["apt-get", "update", "-q"], &env, "v1"));
/// ```
pub fn action_digest<S: AsRef<str>>(
    server_id: &str,
    action_type: &str,
    argv: &[S],
    env: &BTreeMap<String, String>,
    whitelist_version: &str,
) -> String {
    // The encoding is built whole and hashed once: one `update` per field
    // costs more than the copy (this runs on every create).
    let mut bytes = Encoding::with_capacity(256);
    bytes.str(ACTION_DIGEST_TAG);
    bytes.str(server_id);
    bytes.str(action_type);
    bytes.list(argv);
    bytes.map(env);
    bytes.str(whitelist_version);
    let bytes = bytes.0;
    let hash = Sha256::digest(&bytes);
    lower_hex(&hash)
}

/// The length-prefixed encoding both [`action_digest`] and the claim
/// signature ([`crate::signing`]) use: `u64` big-endian counts, strings as
/// their byte length then their UTF-8 bytes.
pub(crate) struct Encoding(pub(crate) Vec<u8>);

impl Encoding {
    pub(crate) fn with_capacity(n: usize) -> Encoding {
        Encoding(Vec::with_capacity(n))
    }

    pub(crate) fn u64(&mut self, n: usize) {
        self.0.extend_from_slice(&(n as u64).to_be_bytes());
    }

    pub(crate) fn i64(&mut self, n: i64) {
        self.0.extend_from_slice(&n.to_be_bytes());
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.u64(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn list<S: AsRef<str>>(&mut self, words: &[S]) {
        self.u64(words.len());
        for word in words {
            self.str(word.as_ref());
        }
    }

    /// Pairs in ascending byte order of their keys (a `BTreeMap<String, _>`'s order).
    pub(crate) fn map(&mut self, pairs: &BTreeMap<String, String>) {
        self.u64(pairs.len());
        for (key, value) in pairs {
            self.str(key);
            self.str(value);
        }
    }
}

/// Lowercase hex of `bytes`, without a formatter per byte (this runs on
/// every create).
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A fixed vector, computed independently from the spelled-out encoding
    /// (Python: hashlib.sha256 over struct.pack(">Q", len) + bytes per field),
    /// so every other implementation can check itself against it.
    #[test]
    fn known_vector() {
        let digest = action_digest(
            "web-1",
            "restart_service",
            &["systemctl", "restart", "nginx"],
            &env(&[("B", "2"), ("A", "1")]),
            "wl",
        );
        assert_eq!(
            digest,
            "8ac221ca74abad4088749c28944750ce6410c9829971c38f129dfb3288c19e12"
        );
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = || {
            (
                "web-1",
                "restart_service",
                vec!["systemctl", "restart", "nginx"],
                env(&[("A", "1")]),
                "v1",
            )
        };
        let (s, t, a, e, w) = base();
        let original = action_digest(s, t, &a, &e, w);
        let variants = [
            action_digest("web-2", t, &a, &e, w),
            action_digest(s, "restart_servicf", &a, &e, w),
            action_digest(s, t, &["systemctl", "restart", "nginy"], &e, w),
            action_digest(s, t, &["systemctl", "restart"], &e, w),
            action_digest(s, t, &["systemctl", "restart", "nginx", ""], &e, w),
            action_digest(s, t, &a, &env(&[("A", "2")]), w),
            action_digest(s, t, &a, &env(&[("B", "1")]), w),
            action_digest(s, t, &a, &env(&[]), w),
            action_digest(s, t, &a, &env(&[("A", "1"), ("B", "")]), w),
            action_digest(s, t, &a, &e, "v2"),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(*v, original, "variant {i} left the digest unchanged");
        }
        // Same input, same digest; env order of insertion does not matter.
        assert_eq!(action_digest(s, t, &a, &e, w), original);
        assert_eq!(
            action_digest(s, t, &a, &env(&[("B", "2"), ("A", "1")]), w),
            action_digest(s, t, &a, &env(&[("A", "1"), ("B", "2")]), w)
        );
    }

    /// Inputs that a plain concatenation would confuse all differ.
    #[test]
    fn no_concatenation_ambiguity() {
        let none = env(&[]);
        let pairs = [
            // argv word boundaries
            (
                action_digest("s", "t", &["ab"], &none, "v"),
                action_digest("s", "t", &["a", "b"], &none, "v"),
            ),
            (
                action_digest("s", "t", &["a", ""], &none, "v"),
                action_digest("s", "t", &["", "a"], &none, "v"),
            ),
            // field boundaries
            (
                action_digest("ab", "c", &["x"], &none, "v"),
                action_digest("a", "bc", &["x"], &none, "v"),
            ),
            (
                action_digest("s", "t", &["x"], &none, "v"),
                action_digest("s", "", &["t", "x"], &none, "v"),
            ),
            // key/value boundary
            (
                action_digest("s", "t", &["x"], &env(&[("AB", "c")]), "v"),
                action_digest("s", "t", &["x"], &env(&[("A", "Bc")]), "v"),
            ),
            // an argv word moved into the env, and the last word into the version
            (
                action_digest("s", "t", &["x", "A", "1"], &none, "v"),
                action_digest("s", "t", &["x"], &env(&[("A", "1")]), "v"),
            ),
            (
                action_digest("s", "t", &["x", "v"], &none, ""),
                action_digest("s", "t", &["x"], &none, "v"),
            ),
        ];
        for (i, (a, b)) in pairs.iter().enumerate() {
            assert_ne!(a, b, "pair {i} collides");
        }
    }

    #[test]
    fn lowercase_hex_sha256() {
        let d = action_digest("s", "t", &[""; 0], &env(&[]), "");
        assert_eq!(d.len(), 64);
        assert!(d
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}
