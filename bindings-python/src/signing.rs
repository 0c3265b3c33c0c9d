//! Claim signatures (`actionq.ClaimSigningKey`, `actionq.ClaimVerifyingKey`):
//! thin wrappers of [`actionq::signing`]; the server signs each claim it
//! returns, a Python agent checks one.

use std::path::PathBuf;

use actionq::{ClaimSigningKey, ClaimVerifyingKey};
use pyo3::prelude::*;

use crate::error::to_py_err;
use crate::types::PyClaim;

/// A server's Ed25519 claim-signing key (frozen; its repr never shows it).
#[pyclass(module = "actionq", name = "ClaimSigningKey", frozen)]
pub struct PyClaimSigningKey {
    inner: ClaimSigningKey,
}

#[pymethods]
impl PyClaimSigningKey {
    /// A new key from the operating system's random source.
    #[staticmethod]
    fn generate(py: Python<'_>) -> PyResult<Self> {
        ClaimSigningKey::generate()
            .map(|inner| PyClaimSigningKey { inner })
            .map_err(|e| to_py_err(py, e))
    }

    /// Parses a PEM `PRIVATE KEY` (PKCS#8 Ed25519) text.
    #[staticmethod]
    fn from_pem(py: Python<'_>, text: &str) -> PyResult<Self> {
        ClaimSigningKey::from_pem(text)
            .map(|inner| PyClaimSigningKey { inner })
            .map_err(|e| to_py_err(py, e))
    }

    /// Reads a key file (PEM PKCS#8), refusing one group or others may access.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        ClaimSigningKey::load(&path)
            .map(|inner| PyClaimSigningKey { inner })
            .map_err(|e| to_py_err(py, e))
    }

    /// The key at `path`, or a new one written there (0600); its public key
    /// is written to `public_path` if missing. Returns (key, generated).
    #[staticmethod]
    fn load_or_generate(
        py: Python<'_>,
        path: PathBuf,
        public_path: PathBuf,
    ) -> PyResult<(Self, bool)> {
        ClaimSigningKey::load_or_generate(&path, &public_path)
            .map(|(inner, generated)| (PyClaimSigningKey { inner }, generated))
            .map_err(|e| to_py_err(py, e))
    }

    /// The key as a PEM `PRIVATE KEY` text (a secret).
    fn to_pem(&self) -> String {
        self.inner.to_pem()
    }

    /// The public key agents pin.
    fn public_key(&self) -> PyClaimVerifyingKey {
        PyClaimVerifyingKey {
            inner: self.inner.public_key(),
        }
    }

    /// The signature (base64) of `claim`: what the claim response's
    /// `signature` field holds.
    fn sign(&self, claim: &PyClaim) -> String {
        self.inner.sign_claim(claim.core())
    }

    fn __repr__(&self) -> String {
        format!(
            "ClaimSigningKey(public_key={:?})",
            self.inner.public_key().to_pem()
        )
    }
}

/// The public half of a claim-signing key (frozen), as an agent pins it.
#[pyclass(module = "actionq", name = "ClaimVerifyingKey", frozen, eq)]
#[derive(PartialEq)]
pub struct PyClaimVerifyingKey {
    inner: ClaimVerifyingKey,
}

#[pymethods]
impl PyClaimVerifyingKey {
    /// Parses a PEM `PUBLIC KEY` (Ed25519 SubjectPublicKeyInfo) text.
    #[staticmethod]
    fn from_pem(py: Python<'_>, text: &str) -> PyResult<Self> {
        ClaimVerifyingKey::from_pem(text)
            .map(|inner| PyClaimVerifyingKey { inner })
            .map_err(|e| to_py_err(py, e))
    }

    /// Reads a public key file (PEM).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        ClaimVerifyingKey::load(&path)
            .map(|inner| PyClaimVerifyingKey { inner })
            .map_err(|e| to_py_err(py, e))
    }

    /// The key as a PEM `PUBLIC KEY` text.
    fn to_pem(&self) -> String {
        self.inner.to_pem()
    }

    /// Checks `signature` over `claim`; `Unauthenticated` unless this key's
    /// private half signed exactly this claim.
    fn verify(&self, py: Python<'_>, claim: &PyClaim, signature: &str) -> PyResult<()> {
        self.inner
            .verify_claim(claim.core(), signature)
            .map_err(|e| to_py_err(py, e))
    }

    /// Checks a claim response as a server sent it (JSON text with its
    /// `signature`) and returns the claim; `Unauthenticated` when the
    /// signature is missing or refused, `ValidationError` for JSON that is
    /// no claim.
    fn verify_json(&self, py: Python<'_>, text: &str) -> PyResult<PyClaim> {
        self.inner
            .verify_claim_json(text)
            .map(PyClaim::from)
            .map_err(|e| to_py_err(py, e))
    }

    fn __repr__(&self) -> String {
        format!("ClaimVerifyingKey({:?})", self.inner.to_pem())
    }
}
