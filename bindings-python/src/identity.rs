//! Identity for Python: `Principal`, `Credential`, `IssuedCredential`, and
//! `ActingQueue` — the queue as one principal sees it
//! (`queue.as_principal(p)`), every call checked by the core's permission
//! table ([`actionq::identity::authorize`]) and recorded under the principal's
//! name. Nothing is decided here: each method translates its arguments and
//! calls [`actionq::Acting`].

use std::str::FromStr;

use actionq::{ActionQuery, Credential, IssuedCredential, Principal, Role};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::{intern, IntoPyObjectExt};

use crate::error::to_py_err;
use crate::queue::{lease, new_action, status_filter, PyActionQueue};
use crate::types::{utc_datetime, PyAction, PyActionPage, PyClaim, PyEvent, PyServer};

fn str_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(PyString::new(py, s).repr()?.to_string())
}

/// A role from its wire name; `InvalidInputError` for anything else.
fn role(py: Python<'_>, name: &str) -> PyResult<Role> {
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

/// The queue as one principal sees it: `queue.as_principal(principal)`.
/// The same methods as `ActionQueue` without `by`/`created_by` (the
/// principal's name is recorded); each is checked by the core's permission
/// table first, and a refusal raises `PermissionDeniedError` and changes
/// nothing. Cheap to make (one per request is fine).
#[pyclass(module = "actionq", name = "ActingQueue", frozen)]
pub struct PyActingQueue {
    queue: Py<PyActionQueue>,
    principal: Principal,
}

impl PyActingQueue {
    pub(crate) fn new(queue: Py<PyActionQueue>, principal: Principal) -> Self {
        PyActingQueue { queue, principal }
    }
}

#[pymethods]
impl PyActingQueue {
    /// Who is acting.
    #[getter]
    fn principal(&self) -> PyPrincipal {
        PyPrincipal {
            inner: self.principal.clone(),
        }
    }

    /// Registers a server (admin, operator).
    #[pyo3(signature = (id, hostname = None))]
    fn create_server(
        &self,
        py: Python<'_>,
        id: &str,
        hostname: Option<&str>,
    ) -> PyResult<PyServer> {
        let p = &self.principal;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).create_server(id, hostname))
            .map(PyServer::from)
    }

    /// The server `id` (every role but agent).
    fn get_server(&self, py: Python<'_>, id: &str) -> PyResult<PyServer> {
        let p = &self.principal;
        self.queue
            .get()
            .run_read(py, |q| q.as_principal(p).get_server(id))
            .map(PyServer::from)
    }

    /// Walks the audit chain (admin): what `ActionQueue.verify_audit` finds.
    fn verify_audit(&self, py: Python<'_>) -> PyResult<crate::types::PyAuditReport> {
        let p = &self.principal;
        self.queue
            .get()
            .run_read(py, |q| q.as_principal(p).verify_audit())
            .map(crate::types::PyAuditReport::from)
    }

    /// Every registered server, ordered by id (every role but agent).
    fn list_servers(&self, py: Python<'_>) -> PyResult<Vec<PyServer>> {
        let p = &self.principal;
        self.queue
            .get()
            .run_read(py, |q| q.as_principal(p).list_servers())
            .map(|servers| servers.into_iter().map(PyServer::from).collect())
    }

    /// Maintenance mode on (admin, operator).
    fn pause_server(&self, py: Python<'_>, id: &str) -> PyResult<PyServer> {
        let p = &self.principal;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).pause_server(id))
            .map(PyServer::from)
    }

    /// Maintenance mode off (admin, operator).
    fn unpause_server(&self, py: Python<'_>, id: &str) -> PyResult<PyServer> {
        let p = &self.principal;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).unpause_server(id))
            .map(PyServer::from)
    }

    /// Queues an action requested by the principal (admin, operator, requester).
    #[pyo3(signature = (server_id, action_type, service_name = None, *, params = None, alert_id = None))]
    fn create_action(
        &self,
        py: Python<'_>,
        server_id: &str,
        action_type: &str,
        service_name: Option<String>,
        params: Option<&Bound<'_, PyDict>>,
        alert_id: Option<i64>,
    ) -> PyResult<PyAction> {
        let p = &self.principal;
        let request = new_action(
            py,
            server_id,
            action_type,
            service_name,
            params,
            alert_id,
            &p.name,
        )?;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).create_action(&request))
            .map(PyAction::from)
    }

    /// As `ActionQueue.create_action_json`; a `created_by` in the request is
    /// replaced by the principal's name.
    fn create_action_json(&self, py: Python<'_>, request: &str) -> PyResult<PyAction> {
        let p = &self.principal;
        let request = actionq::NewAction::from_json(request).map_err(|e| to_py_err(py, e))?;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).create_action(&request))
            .map(PyAction::from)
    }

    /// The action `id` (every role but agent).
    fn get_action(&self, py: Python<'_>, id: i64) -> PyResult<PyAction> {
        let p = &self.principal;
        self.queue
            .get()
            .run_read(py, |q| q.as_principal(p).get_action(id))
            .map(PyAction::from)
    }

    /// A page of actions (every role but agent).
    #[pyo3(signature = (
        status = None,
        server_id = None,
        action_type = None,
        limit = ActionQuery::default().limit,
        offset = 0,
    ))]
    fn list_actions(
        &self,
        py: Python<'_>,
        status: Option<&str>,
        server_id: Option<&str>,
        action_type: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> PyResult<PyActionPage> {
        let p = &self.principal;
        let page = self.queue.get().run_read(py, |q| {
            q.as_principal(p).list_actions(&ActionQuery {
                status: status_filter(status)?,
                server_id: server_id.map(str::to_owned),
                action_type: action_type.map(str::to_owned),
                limit,
                offset,
            })
        })?;
        PyActionPage::new(py, page)
    }

    /// A page of one server's actions (every role but agent).
    #[pyo3(signature = (server_id, status = None, limit = ActionQuery::default().limit, offset = 0))]
    fn list_server_actions(
        &self,
        py: Python<'_>,
        server_id: &str,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> PyResult<PyActionPage> {
        let p = &self.principal;
        let page = self.queue.get().run_read(py, |q| {
            q.as_principal(p)
                .list_server_actions(server_id, status_filter(status)?, limit, offset)
        })?;
        PyActionPage::new(py, page)
    }

    /// pending → approved by the principal (admin, operator).
    fn approve_action(&self, py: Python<'_>, id: i64) -> PyResult<PyAction> {
        let p = &self.principal;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).approve_action(id))
            .map(PyAction::from)
    }

    /// pending → rejected by the principal (admin, operator).
    fn reject_action(&self, py: Python<'_>, id: i64, reason: &str) -> PyResult<PyAction> {
        let p = &self.principal;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).reject_action(id, reason))
            .map(PyAction::from)
    }

    /// Cancels by the principal (admin, operator; a requester its own pending ones).
    fn cancel_action(&self, py: Python<'_>, id: i64) -> PyResult<PyAction> {
        let p = &self.principal;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).cancel_action(id))
            .map(PyAction::from)
    }

    /// Claims the next approved action of `server_id` (its agent, or an admin).
    #[pyo3(signature = (server_id, lease_seconds = None))]
    fn claim_next(
        &self,
        py: Python<'_>,
        server_id: &str,
        lease_seconds: Option<f64>,
    ) -> PyResult<Option<PyClaim>> {
        let p = &self.principal;
        let lease = lease(lease_seconds);
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).claim_next(server_id, lease))
            .map(|claim| claim.map(PyClaim::from))
    }

    /// Extends the lease (the action's server's agent, or an admin).
    #[pyo3(signature = (id, lease_token, lease_seconds = None))]
    fn heartbeat(
        &self,
        py: Python<'_>,
        id: i64,
        lease_token: &str,
        lease_seconds: Option<f64>,
    ) -> PyResult<PyAction> {
        let p = &self.principal;
        let lease = lease(lease_seconds);
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).heartbeat(id, lease_token, lease))
            .map(PyAction::from)
    }

    /// Finishes the action (the action's server's agent, or an admin).
    #[pyo3(signature = (id, lease_token, exit_code, stdout = None, stderr = None))]
    fn report_result(
        &self,
        py: Python<'_>,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: Option<&str>,
        stderr: Option<&str>,
    ) -> PyResult<PyAction> {
        let p = &self.principal;
        self.queue
            .get()
            .run(py, |q| {
                q.as_principal(p)
                    .report_result(id, lease_token, exit_code, stdout, stderr)
            })
            .map(PyAction::from)
    }

    /// Fails the actions whose lease ran out (admin, operator).
    fn expire_leases(&self, py: Python<'_>) -> PyResult<Vec<PyAction>> {
        let p = &self.principal;
        self.queue
            .get()
            .run_read(py, |q| q.as_principal(p).expire_leases())
            .map(|actions| actions.into_iter().map(PyAction::from).collect())
    }

    /// Expires the approvals whose policy ttl ran out (admin, operator).
    fn expire_approvals(&self, py: Python<'_>) -> PyResult<Vec<PyAction>> {
        let p = &self.principal;
        self.queue
            .get()
            .run_read(py, |q| q.as_principal(p).expire_approvals())
            .map(|actions| actions.into_iter().map(PyAction::from).collect())
    }

    /// How many actions each server has in each status, as
    /// `ActionQueue.count_actions` (every role but agent).
    fn count_actions<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(String, Bound<'py, PyAny>, u64)>> {
        let p = &self.principal;
        let counts = self
            .queue
            .get()
            .run_read(py, |q| q.as_principal(p).count_actions())?;
        crate::queue::count_tuples(py, counts)
    }

    /// Audit events after `cursor` (every role but agent).
    #[pyo3(signature = (cursor = 0, limit = actionq::DEFAULT_EVENTS_LIMIT))]
    fn events_since(&self, py: Python<'_>, cursor: i64, limit: i64) -> PyResult<Vec<PyEvent>> {
        let p = &self.principal;
        self.queue
            .get()
            .run_read(py, |q| q.as_principal(p).events_since(cursor, limit))
            .map(|events| events.into_iter().map(PyEvent::from).collect())
    }

    /// Issues a credential (admin).
    #[pyo3(signature = (name, role, server_id = None))]
    fn issue_credential(
        &self,
        py: Python<'_>,
        name: &str,
        role: &str,
        server_id: Option<&str>,
    ) -> PyResult<PyIssuedCredential> {
        let p = &self.principal;
        let role = self::role(py, role)?;
        self.queue
            .get()
            .run(py, |q| {
                q.as_principal(p).issue_credential(name, role, server_id)
            })
            .map(|inner| PyIssuedCredential { inner })
    }

    /// Every credential, never a secret (admin).
    fn list_credentials(&self, py: Python<'_>) -> PyResult<Vec<PyCredential>> {
        let p = &self.principal;
        self.queue
            .get()
            .run_read(py, |q| q.as_principal(p).list_credentials())
            .map(|list| list.into_iter().map(PyCredential::from).collect())
    }

    /// Revokes credential `id` at once (admin).
    fn revoke_credential(&self, py: Python<'_>, id: i64) -> PyResult<PyCredential> {
        let p = &self.principal;
        self.queue
            .get()
            .run(py, |q| q.as_principal(p).revoke_credential(id))
            .map(PyCredential::from)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "ActingQueue(principal={})",
            self.principal().__repr__(py)?
        ))
    }
}

/// The `ActionQueue` methods of identity, called from its `#[pymethods]`.
pub(crate) mod on_queue {
    use super::*;

    pub(crate) fn issue(
        queue: &PyActionQueue,
        py: Python<'_>,
        name: &str,
        role: &str,
        server_id: Option<&str>,
    ) -> PyResult<PyIssuedCredential> {
        let role = super::role(py, role)?;
        queue
            .run(py, |q| q.issue_credential(name, role, server_id))
            .map(|inner| PyIssuedCredential { inner })
    }

    pub(crate) fn list(queue: &PyActionQueue, py: Python<'_>) -> PyResult<Vec<PyCredential>> {
        queue
            .run_read(py, |q| q.list_credentials())
            .map(|list| list.into_iter().map(PyCredential::from).collect())
    }

    pub(crate) fn revoke(queue: &PyActionQueue, py: Python<'_>, id: i64) -> PyResult<PyCredential> {
        queue
            .run(py, |q| q.revoke_credential(id))
            .map(PyCredential::from)
    }

    pub(crate) fn authenticate(
        queue: &PyActionQueue,
        py: Python<'_>,
        secret: &str,
    ) -> PyResult<PyPrincipal> {
        queue
            .run_read(py, |q| q.authenticate(secret))
            .map(|inner| PyPrincipal { inner })
    }
}
