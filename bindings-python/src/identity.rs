//! Identity records for Python: `Principal`, `Credential` and
//! `IssuedCredential`. The queue acting as a principal is an `ActionQueue`
//! too (`queue.as_principal(p)`, in `queue.rs`).

use std::str::FromStr;

use actionq::{Credential, IssuedCredential, Principal, Role};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::{intern, IntoPyObjectExt};

use crate::error::to_py_err;
use crate::types::utc_datetime;

fn str_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(PyString::new(py, s).repr()?.to_string())
}

/// A role from its wire name; `InvalidInputError` for anything else.
pub(crate) fn role(py: Python<'_>, name: &str) -> PyResult<Role> {
    Role::from_str(name).map_err(|e| to_py_err(py, e))
}

/// Who is acting (frozen): `name` (what actions record), `role` (`"admin"`,
/// `"operator"`, `"requester"`, `"viewer"` or `"agent"`), `server_id` (an
/// agent's server, else `None`). From `ActionQueue.authenticate(secret)`, or
/// built directly by a host that authenticates people itself.
#[pyclass(module = "actionq", name = "Principal", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PyPrincipal {
    pub(crate) inner: Principal,
}

impl From<Principal> for PyPrincipal {
    fn from(inner: Principal) -> Self {
        PyPrincipal { inner }
    }
}

#[pymethods]
impl PyPrincipal {
    /// A principal named `name` with `role`; an agent's `server_id` is its server.
    #[new]
    #[pyo3(signature = (name, role, server_id = None))]
    fn new(py: Python<'_>, name: String, role: &str, server_id: Option<String>) -> PyResult<Self> {
        Ok(PyPrincipal {
            inner: Principal {
                name,
                role: self::role(py, role)?,
                server_id,
            },
        })
    }

    /// The credential's name: what actions record as `created_by`, `approved_by`, ...
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// The role's wire name.
    #[getter]
    fn role(&self) -> &'static str {
        self.inner.role.as_str()
    }

    /// An agent's server; `None` for other roles.
    #[getter]
    fn server_id(&self) -> Option<&str> {
        self.inner.server_id.as_deref()
    }

    /// `{"name", "role", "server_id"}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "name"), &self.inner.name)?;
        d.set_item(intern!(py, "role"), self.inner.role.as_str())?;
        d.set_item(intern!(py, "server_id"), &self.inner.server_id)?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Principal(name={}, role={}, server_id={})",
            str_repr(py, &self.inner.name)?,
            str_repr(py, self.inner.role.as_str())?,
            match &self.inner.server_id {
                Some(s) => str_repr(py, s)?,
                None => "None".to_owned(),
            }
        ))
    }
}

fn credential_into_dict(py: Python<'_>, d: &Bound<'_, PyDict>, c: &Credential) -> PyResult<()> {
    d.set_item(intern!(py, "id"), c.id)?;
    d.set_item(intern!(py, "name"), &c.name)?;
    d.set_item(intern!(py, "role"), c.role.as_str())?;
    d.set_item(intern!(py, "server_id"), &c.server_id)?;
    d.set_item(intern!(py, "prefix"), &c.prefix)?;
    d.set_item(intern!(py, "created_at"), utc_datetime(py, c.created_at)?)?;
    let revoked = match c.revoked_at {
        Some(t) => utc_datetime(py, t)?,
        None => py.None().into_bound_py_any(py)?,
    };
    d.set_item(intern!(py, "revoked_at"), revoked)?;
    Ok(())
}

/// Generates the getters of a class exposing every `Credential` field.
macro_rules! credential_getters {
    ($class:ident, [$($path:tt)+], { $($extra:tt)* }) => {
        #[pymethods]
        impl $class {
            $($extra)*

            /// Store-assigned id.
            #[getter]
            fn id(&self) -> i64 {
                self.$($path)+.id
            }

            /// Who it belongs to: what actions record when it acts.
            #[getter]
            fn name(&self) -> &str {
                &self.$($path)+.name
            }

            /// The role's wire name.
            #[getter]
            fn role(&self) -> &'static str {
                self.$($path)+.role.as_str()
            }

            /// An agent credential's server.
            #[getter]
            fn server_id(&self) -> Option<&str> {
                self.$($path)+.server_id.as_deref()
            }

            /// The readable start of the secret (useless to authenticate).
            #[getter]
            fn prefix(&self) -> &str {
                &self.$($path)+.prefix
            }

            /// When it was issued (UTC).
            #[getter]
            fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                utc_datetime(py, self.$($path)+.created_at)
            }

            /// When it was revoked (UTC), or `None`.
            #[getter]
            fn revoked_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                match self.$($path)+.revoked_at {
                    Some(t) => utc_datetime(py, t),
                    None => py.None().into_bound_py_any(py),
                }
            }
        }
    };
}

/// A stored credential (frozen), as listed: never the secret.
#[pyclass(module = "actionq", name = "Credential", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyCredential {
    inner: Credential,
}

impl From<Credential> for PyCredential {
    fn from(inner: Credential) -> Self {
        PyCredential { inner }
    }
}

credential_getters!(PyCredential, [inner], {
    /// The fields as a dict (datetimes stay datetimes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        credential_into_dict(py, &d, &self.inner)?;
        Ok(d)
    }

    /// The record as compact JSON text (the HTTP listing's items).
    fn to_json(&self) -> String {
        serde_json::to_string(&self.inner).expect("credentials serialize")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Credential(id={}, name={}, role={}, prefix={})",
            self.inner.id,
            str_repr(py, &self.inner.name)?,
            str_repr(py, self.inner.role.as_str())?,
            str_repr(py, &self.inner.prefix)?,
        ))
    }
});

/// A credential just issued (frozen): its fields plus `secret`, which exists
/// nowhere else (only its SHA-256 is stored). `repr()` never shows it.
#[pyclass(module = "actionq", name = "IssuedCredential", frozen)]
pub struct PyIssuedCredential {
    inner: IssuedCredential,
}

impl From<IssuedCredential> for PyIssuedCredential {
    fn from(inner: IssuedCredential) -> Self {
        PyIssuedCredential { inner }
    }
}

credential_getters!(PyIssuedCredential, [inner.credential], {
    /// The secret, shown this once.
    #[getter]
    fn secret(&self) -> &str {
        &self.inner.secret
    }

    /// The stored credential, without the secret.
    #[getter]
    fn credential(&self) -> PyCredential {
        self.inner.credential.clone().into()
    }

    /// The fields and `secret` as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        credential_into_dict(py, &d, &self.inner.credential)?;
        d.set_item(intern!(py, "secret"), &self.inner.secret)?;
        Ok(d)
    }

    /// The fields and `secret` as compact JSON (the HTTP 201 body).
    fn to_json(&self) -> String {
        serde_json::to_string(&self.inner).expect("credentials serialize")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "IssuedCredential(id={}, name={}, role={}, prefix={}, secret=<hidden>)",
            self.inner.credential.id,
            str_repr(py, &self.inner.credential.name)?,
            str_repr(py, self.inner.credential.role.as_str())?,
            str_repr(py, &self.inner.credential.prefix)?,
        ))
    }
});
