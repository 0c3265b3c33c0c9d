//! Immutable Python views of the core's records: `Server`, `Action`, `Claim`,
//! `ActionPage`, `Event`.
//!
//! Each wraps the Rust value and converts a field only when Python reads it, so
//! returning a record costs one allocation. Attribute names are the wire
//! names (`docs/contract/domain.md#action-fields`), which lets
//! `pydantic.BaseModel.model_validate(obj, from_attributes=True)` read them
//! directly; `to_dict()` gives the same fields as plain Python values.

use actionq::{
    Action, ActionPage, Approval, AuditReport, Claim, Event, OutputChunk, Server, Timestamp,
};
use chrono::{Datelike, Timelike};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyType};
use pyo3::{intern, IntoPyObjectExt};

/// `datetime.datetime` and `datetime.timezone.utc`, looked up once.
static DATETIME: PyOnceLock<(Py<PyType>, Py<PyAny>)> = PyOnceLock::new();

/// A timezone-aware (UTC) `datetime` for `t`.
///
/// Calls the cached `datetime` type with positional arguments: under the stable
/// ABI, pyo3's chrono conversion builds a keyword dict per value, which made a
/// timestamp attribute cost ~580 ns instead of ~150 ns.
pub(crate) fn utc_datetime<'py>(py: Python<'py>, t: Timestamp) -> PyResult<Bound<'py, PyAny>> {
    let (datetime, utc) = DATETIME.get_or_try_init(py, || -> PyResult<_> {
        let module = py.import("datetime")?;
        let datetime = module.getattr("datetime")?.cast_into::<PyType>()?.unbind();
        let utc = module.getattr("timezone")?.getattr("utc")?.unbind();
        Ok((datetime, utc))
    })?;
    let n = t.naive_utc();
    datetime.bind(py).call1((
        n.year(),
        n.month(),
        n.day(),
        n.hour(),
        n.minute(),
        n.second(),
        // nanosecond() exceeds 1e9 only inside a leap second, which the queue's
        // clock never produces; keep the value in datetime's range regardless.
        (n.nanosecond() % 1_000_000_000) / 1_000,
        utc.bind(py),
    ))
}

/// [`utc_datetime`] of an optional timestamp (`None` stays `None`).
fn opt_datetime<'py>(py: Python<'py>, t: Option<Timestamp>) -> PyResult<Bound<'py, PyAny>> {
    match t {
        Some(t) => utc_datetime(py, t),
        None => py.None().into_bound_py_any(py),
    }
}

/// `value` as compact JSON (records always serialise: their fields are strings,
/// numbers and maps with string keys).
pub(crate) fn record_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("actionq records serialize to JSON")
}

/// Python `repr()` of a string, for `__repr__` output.
fn str_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(PyString::new(py, s).repr()?.to_string())
}

/// Python `repr()` of an optional string (`None` when absent).
fn opt_repr(py: Python<'_>, s: Option<&str>) -> PyResult<String> {
    s.map_or(Ok("None".to_owned()), |s| str_repr(py, s))
}

/// A managed server (frozen). Attributes: `id`, `hostname`, `is_paused`,
/// `paused_at`, `created_at`.
#[pyclass(module = "actionq", name = "Server", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyServer {
    inner: Server,
}

impl From<Server> for PyServer {
    fn from(inner: Server) -> Self {
        PyServer { inner }
    }
}

#[pymethods]
impl PyServer {
    /// 1–100 characters of `[A-Za-z0-9._-]`, starting alphanumeric.
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    /// Optional display hostname.
    #[getter]
    fn hostname(&self) -> Option<&str> {
        self.inner.hostname.as_deref()
    }

    /// Maintenance mode: new actions start `pending` instead of `approved`.
    #[getter]
    fn is_paused(&self) -> bool {
        self.inner.is_paused
    }

    /// When maintenance mode was entered (UTC); `None` while not paused.
    #[getter]
    fn paused_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_datetime(py, self.inner.paused_at)
    }

    /// When the server was registered (UTC).
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        utc_datetime(py, self.inner.created_at)
    }

    /// The fields as a dict of plain Python values (datetimes stay datetimes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "id"), &self.inner.id)?;
        d.set_item(intern!(py, "hostname"), &self.inner.hostname)?;
        d.set_item(intern!(py, "is_paused"), self.inner.is_paused)?;
        d.set_item(
            intern!(py, "paused_at"),
            opt_datetime(py, self.inner.paused_at)?,
        )?;
        d.set_item(
            intern!(py, "created_at"),
            utc_datetime(py, self.inner.created_at)?,
        )?;
        Ok(d)
    }

    /// The record as compact JSON text: the same text the C API and the HTTP
    /// server give for it (the wire names of
    /// `docs/contract/domain.md#action-fields`; timestamps RFC 3339 in UTC,
    /// `docs/contract/domain.md#timestamps`).
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Server(id={}, hostname={}, is_paused={})",
            str_repr(py, &self.inner.id)?,
            opt_repr(py, self.inner.hostname.as_deref())?,
            if self.inner.is_paused {
                "True"
            } else {
                "False"
            },
        ))
    }
}

/// Puts every field of `action` into `d`.
fn action_into_dict(d: &Bound<'_, PyDict>, a: &Action) -> PyResult<()> {
    let py = d.py();
    d.set_item(intern!(py, "id"), a.id)?;
    d.set_item(intern!(py, "server_id"), &a.server_id)?;
    d.set_item(intern!(py, "action_type"), &a.action_type)?;
    d.set_item(intern!(py, "status"), a.status.as_str())?;
    d.set_item(intern!(py, "service_name"), &a.service_name)?;
    d.set_item(intern!(py, "command"), &a.command)?;
    d.set_item(intern!(py, "argv"), &a.argv)?;
    d.set_item(intern!(py, "env"), &a.env)?;
    d.set_item(intern!(py, "alert_id"), a.alert_id)?;
    d.set_item(intern!(py, "created_at"), utc_datetime(py, a.created_at)?)?;
    d.set_item(intern!(py, "created_by"), &a.created_by)?;
    d.set_item(intern!(py, "approved_at"), opt_datetime(py, a.approved_at)?)?;
    d.set_item(intern!(py, "approved_by"), &a.approved_by)?;
    d.set_item(intern!(py, "rejected_at"), opt_datetime(py, a.rejected_at)?)?;
    d.set_item(intern!(py, "rejected_by"), &a.rejected_by)?;
    d.set_item(intern!(py, "rejection_reason"), &a.rejection_reason)?;
    d.set_item(
        intern!(py, "cancelled_at"),
        opt_datetime(py, a.cancelled_at)?,
    )?;
    d.set_item(intern!(py, "cancelled_by"), &a.cancelled_by)?;
    d.set_item(intern!(py, "executed_at"), opt_datetime(py, a.executed_at)?)?;
    d.set_item(
        intern!(py, "lease_expires_at"),
        opt_datetime(py, a.lease_expires_at)?,
    )?;
    d.set_item(
        intern!(py, "completed_at"),
        opt_datetime(py, a.completed_at)?,
    )?;
    d.set_item(intern!(py, "exit_code"), a.exit_code)?;
    d.set_item(intern!(py, "stdout"), &a.stdout)?;
    d.set_item(intern!(py, "stderr"), &a.stderr)?;
    d.set_item(intern!(py, "approvals"), approvals_list(py, &a.approvals)?)?;
    d.set_item(intern!(py, "digest"), &a.digest)?;
    d.set_item(intern!(py, "whitelist_version"), &a.whitelist_version)?;
    d.set_item(intern!(py, "params"), &a.params)?;
    d.set_item(
        intern!(py, "cancel_requested_at"),
        opt_datetime(py, a.cancel_requested_at)?,
    )?;
    d.set_item(intern!(py, "cancel_requested_by"), &a.cancel_requested_by)?;
    Ok(())
}

/// `approvals` as a list of dicts `{"by", "at" (UTC datetime), "digest"}`.
fn approvals_list<'py>(py: Python<'py>, approvals: &[Approval]) -> PyResult<Bound<'py, PyList>> {
    let items = approvals
        .iter()
        .map(|a| {
            let d = PyDict::new(py);
            d.set_item(intern!(py, "by"), &a.by)?;
            d.set_item(intern!(py, "at"), utc_datetime(py, a.at)?)?;
            d.set_item(intern!(py, "digest"), &a.digest)?;
            Ok(d)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// The short `repr()` body shared by `Action` and `Claim`.
fn action_repr_fields(py: Python<'_>, a: &Action) -> PyResult<String> {
    Ok(format!(
        "id={}, server_id={}, action_type={}, status={}, service_name={}",
        a.id,
        str_repr(py, &a.server_id)?,
        str_repr(py, &a.action_type)?,
        str_repr(py, a.status.as_str())?,
        opt_repr(py, a.service_name.as_deref())?,
    ))
}

/// Generates the `#[pymethods]` block of a class exposing every `Action` field as
/// a read-only attribute (read through the class's `core_action()`), plus `$extra`
/// methods. One macro keeps `Action` and `Claim` attribute-for-attribute equal.
macro_rules! action_class_methods {
    ($class:ty, { $($extra:tt)* }) => {
        #[pymethods]
        impl $class {
            /// Unique, strictly increasing from 1, never reused.
            #[getter]
            fn id(&self) -> i64 {
                self.core_action().id
            }

            /// The server it runs on.
            #[getter]
            fn server_id(&self) -> &str {
                &self.core_action().server_id
            }

            /// The whitelist entry it was built from.
            #[getter]
            fn action_type(&self) -> &str {
                &self.core_action().action_type
            }

            /// Current status: an `actionq.ActionStatus` member (a `str`).
            #[getter]
            fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                crate::limits::status_member(py, self.core_action().status)
            }

            /// The systemd unit, for actions that take one.
            #[getter]
            fn service_name(&self) -> Option<&str> {
                self.core_action().service_name.as_deref()
            }

            /// Display form of the command.
            #[getter]
            fn command(&self) -> &str {
                &self.core_action().command
            }

            /// What an executor runs, without a shell (a new list on each read).
            #[getter]
            fn argv(&self) -> Vec<String> {
                self.core_action().argv.clone()
            }

            /// Environment variables for the executor (a new dict on each read).
            #[getter]
            fn env(&self) -> std::collections::BTreeMap<String, String> {
                self.core_action().env.clone()
            }

            /// The monitoring alert that prompted the action, if any.
            #[getter]
            fn alert_id(&self) -> Option<i64> {
                self.core_action().alert_id
            }

            /// When the action was requested (UTC).
            #[getter]
            fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                utc_datetime(py, self.core_action().created_at)
            }

            /// Who requested it.
            #[getter]
            fn created_by(&self) -> &str {
                &self.core_action().created_by
            }

            /// When it was approved (UTC).
            #[getter]
            fn approved_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                opt_datetime(py, self.core_action().approved_at)
            }

            /// Who approved it (`"auto"` for auto-approval).
            #[getter]
            fn approved_by(&self) -> Option<&str> {
                self.core_action().approved_by.as_deref()
            }

            /// When it was rejected (UTC).
            #[getter]
            fn rejected_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                opt_datetime(py, self.core_action().rejected_at)
            }

            /// Who rejected it.
            #[getter]
            fn rejected_by(&self) -> Option<&str> {
                self.core_action().rejected_by.as_deref()
            }

            /// Why it was rejected.
            #[getter]
            fn rejection_reason(&self) -> Option<&str> {
                self.core_action().rejection_reason.as_deref()
            }

            /// When it was cancelled (UTC).
            #[getter]
            fn cancelled_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                opt_datetime(py, self.core_action().cancelled_at)
            }

            /// Who cancelled it.
            #[getter]
            fn cancelled_by(&self) -> Option<&str> {
                self.core_action().cancelled_by.as_deref()
            }

            /// When an agent claimed it (UTC).
            #[getter]
            fn executed_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                opt_datetime(py, self.core_action().executed_at)
            }

            /// When the current lease runs out (UTC), while executing.
            #[getter]
            fn lease_expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                opt_datetime(py, self.core_action().lease_expires_at)
            }

            /// When it finished (UTC).
            #[getter]
            fn completed_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                opt_datetime(py, self.core_action().completed_at)
            }

            /// The command's exit code; -1 for a lost lease.
            #[getter]
            fn exit_code(&self) -> Option<i32> {
                self.core_action().exit_code
            }

            /// Captured standard output, capped.
            #[getter]
            fn stdout(&self) -> Option<&str> {
                self.core_action().stdout.as_deref()
            }

            /// Captured standard error, capped.
            #[getter]
            fn stderr(&self) -> Option<&str> {
                self.core_action().stderr.as_deref()
            }

            /// The human approvals so far, oldest first: a new list of dicts
            /// `{"by", "at", "digest"}` on each read (empty when auto-approved).
            #[getter]
            fn approvals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
                approvals_list(py, &self.core_action().approvals)
            }

            /// The payload digest (hex SHA-256 of server_id, action_type, argv,
            /// env and whitelist_version): what approvers approved.
            #[getter]
            fn digest(&self) -> &str {
                &self.core_action().digest
            }

            /// Version of the whitelist the action was built under.
            #[getter]
            fn whitelist_version(&self) -> &str {
                &self.core_action().whitelist_version
            }

            /// The parameter values the command was built from, normalised
            /// (a new dict on each read).
            #[getter]
            fn params(&self) -> std::collections::BTreeMap<String, String> {
                self.core_action().params.clone()
            }

            /// When someone asked to stop the command while it executed (UTC);
            /// `None` otherwise.
            #[getter]
            fn cancel_requested_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                opt_datetime(py, self.core_action().cancel_requested_at)
            }

            /// Who asked to stop it; `cancelled_by` once the agent stopped it.
            #[getter]
            fn cancel_requested_by(&self) -> Option<&str> {
                self.core_action().cancel_requested_by.as_deref()
            }

            /// Whether what would run is what was approved: the digest
            /// recomputed from this record's payload equals `digest`, and every
            /// approval approved it. An agent calls this on a claim before it
            /// runs anything.
            fn digest_matches(&self) -> bool {
                self.core_action().digest_matches()
            }

            $($extra)*
        }
    };
}

/// A remediation action and its whole history (frozen). Every field of
/// `docs/contract/domain.md#action-fields` is an attribute; timestamps are
/// timezone-aware UTC datetimes.
#[pyclass(module = "actionq", name = "Action", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyAction {
    inner: Action,
}

impl From<Action> for PyAction {
    fn from(inner: Action) -> Self {
        PyAction { inner }
    }
}

impl PyAction {
    /// The wrapped core record.
    fn core_action(&self) -> &Action {
        &self.inner
    }
}

action_class_methods!(PyAction, {
    /// The fields as a dict of plain Python values (datetimes stay datetimes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        action_into_dict(&d, &self.inner)?;
        Ok(d)
    }

    /// The record as compact JSON text: the same text the C API and the HTTP
    /// server give for it (the wire names of
    /// `docs/contract/domain.md#action-fields`; timestamps RFC 3339 in UTC,
    /// `docs/contract/domain.md#timestamps`).
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Action({})", action_repr_fields(py, &self.inner)?))
    }
});

/// An action just claimed by an agent (frozen): every `Action` attribute plus the
/// secret `lease_token` that fences its executor, and `action` (the plain `Action`).
#[pyclass(module = "actionq", name = "Claim", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyClaim {
    inner: Claim,
}

impl From<Claim> for PyClaim {
    fn from(inner: Claim) -> Self {
        PyClaim { inner }
    }
}

impl PyClaim {
    /// The core claim.
    pub(crate) fn core(&self) -> &Claim {
        &self.inner
    }

    /// The claimed action.
    fn core_action(&self) -> &Action {
        &self.inner.action
    }
}

action_class_methods!(PyClaim, {
    /// Secret lease token (a UUID) for `heartbeat` and `report_result`.
    #[getter]
    fn lease_token(&self) -> &str {
        &self.inner.lease_token
    }

    /// The claimed action, as a plain `Action`.
    #[getter]
    fn action(&self) -> PyAction {
        PyAction::from(self.inner.action.clone())
    }

    /// The action's fields plus `lease_token`, as plain Python values.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        action_into_dict(&d, &self.inner.action)?;
        d.set_item(intern!(py, "lease_token"), &self.inner.lease_token)?;
        Ok(d)
    }

    /// The record as compact JSON text: the same text the C API and the HTTP
    /// server give for it (the wire names of
    /// `docs/contract/domain.md#action-fields`; timestamps RFC 3339 in UTC,
    /// `docs/contract/domain.md#timestamps`).
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    /// Shows the action; the lease token is a secret and is left out.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Claim({}, lease_token=...)",
            action_repr_fields(py, &self.inner.action)?
        ))
    }
});

/// One page of a listing, newest first (frozen): `actions`, `total`, `limit`, `offset`.
#[pyclass(module = "actionq", name = "ActionPage", frozen)]
pub struct PyActionPage {
    actions: Vec<Py<PyAction>>,
    total: u64,
    limit: i64,
    offset: i64,
    next_before_id: Option<i64>,
}

impl PyActionPage {
    /// Wraps a core page, building its `Action` objects once.
    pub(crate) fn new(py: Python<'_>, page: ActionPage) -> PyResult<Self> {
        let actions = page
            .actions
            .into_iter()
            .map(|a| Py::new(py, PyAction::from(a)))
            .collect::<PyResult<_>>()?;
        Ok(PyActionPage {
            actions,
            total: page.total,
            limit: page.limit,
            offset: page.offset,
            next_before_id: page.next_before_id,
        })
    }
}

#[pymethods]
impl PyActionPage {
    /// The actions on this page (a new list of the same `Action` objects on each read).
    #[getter]
    fn actions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.actions.iter().map(|a| a.bind(py)))
    }

    /// How many actions match the filter in all.
    #[getter]
    fn total(&self) -> u64 {
        self.total
    }

    /// The page size asked for.
    #[getter]
    fn limit(&self) -> i64 {
        self.limit
    }

    /// How many matches were skipped.
    #[getter]
    fn offset(&self) -> i64 {
        self.offset
    }

    /// The `before_id` of the next page, or `None` on the last page.
    #[getter]
    fn next_before_id(&self) -> Option<i64> {
        self.next_before_id
    }

    /// `{"actions": [dict, ...], "total", "limit", "offset", "next_before_id"}` of plain Python values.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let actions = PyList::empty(py);
        for a in &self.actions {
            let d = PyDict::new(py);
            action_into_dict(&d, a.get().core_action())?;
            actions.append(d)?;
        }
        let d = PyDict::new(py);
        d.set_item(intern!(py, "actions"), actions)?;
        d.set_item(intern!(py, "total"), self.total)?;
        d.set_item(intern!(py, "limit"), self.limit)?;
        d.set_item(intern!(py, "offset"), self.offset)?;
        d.set_item(intern!(py, "next_before_id"), self.next_before_id)?;
        Ok(d)
    }

    /// The record as compact JSON text: the same text the C API and the HTTP
    /// server give for it (the wire names of
    /// `docs/contract/domain.md#action-fields`; timestamps RFC 3339 in UTC,
    /// `docs/contract/domain.md#timestamps`).
    fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Page<'a> {
            actions: Vec<&'a Action>,
            total: u64,
            limit: i64,
            offset: i64,
            next_before_id: Option<i64>,
        }
        record_json(&Page {
            actions: self.actions.iter().map(|a| a.get().core_action()).collect(),
            total: self.total,
            limit: self.limit,
            offset: self.offset,
            next_before_id: self.next_before_id,
        })
    }

    fn __len__(&self) -> usize {
        self.actions.len()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        let Ok(other) = other.cast::<PyActionPage>() else {
            return false;
        };
        let other = other.get();
        self.total == other.total
            && self.limit == other.limit
            && self.offset == other.offset
            && self.next_before_id == other.next_before_id
            && self.actions.len() == other.actions.len()
            && self
                .actions
                .iter()
                .zip(&other.actions)
                .all(|(a, b)| a.get() == b.get())
    }

    fn __repr__(&self) -> String {
        format!(
            "ActionPage(actions=<{} actions>, total={}, limit={}, offset={})",
            self.actions.len(),
            self.total,
            self.limit,
            self.offset
        )
    }
}

/// One entry of the append-only audit log (frozen): `id` (the cursor),
/// `action_id`, `from_status`, `to_status`, `by`, `at`, `detail`, `kind`
/// (`"action"`, `"server"`, `"credential"`) and `subject` (the server id or
/// credential name). Server and credential events have no action or statuses.
#[pyclass(module = "actionq", name = "Event", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyEvent {
    inner: Event,
}

impl From<Event> for PyEvent {
    fn from(inner: Event) -> Self {
        PyEvent { inner }
    }
}

#[pymethods]
impl PyEvent {
    /// Cursor position: strictly increasing, never reused.
    #[getter]
    fn id(&self) -> i64 {
        self.inner.id
    }

    /// The action that changed; `None` for server and credential events.
    #[getter]
    fn action_id(&self) -> Option<i64> {
        self.inner.action_id
    }

    /// Status before the change (an `actionq.ActionStatus` member); `None`
    /// when the action was created.
    #[getter]
    #[allow(clippy::wrong_self_convention)] // the wire name, not a constructor
    fn from_status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .from_status
            .map(|s| crate::limits::status_member(py, s))
            .transpose()
    }

    /// Status after the change (an `actionq.ActionStatus` member); `None`
    /// for server and credential events.
    #[getter]
    fn to_status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .to_status
            .map(|s| crate::limits::status_member(py, s))
            .transpose()
    }

    /// What the event is about: `"action"`, `"server"` or `"credential"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }

    /// The server id (action and server events) or the credential name.
    #[getter]
    fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// Who made the change (`"auto"`, `"dashboard"`, `"agent"`, `"system"`, ...).
    #[getter]
    fn by(&self) -> &str {
        &self.inner.by
    }

    /// When (UTC).
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        utc_datetime(py, self.inner.at)
    }

    /// Extra detail: rejection reason, exit code, why a lease was lost.
    #[getter]
    fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// The fields as a dict of plain Python values (datetimes stay datetimes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let e = &self.inner;
        let d = PyDict::new(py);
        d.set_item(intern!(py, "id"), e.id)?;
        d.set_item(intern!(py, "action_id"), e.action_id)?;
        d.set_item(
            intern!(py, "from_status"),
            e.from_status.map(|s| s.as_str()),
        )?;
        d.set_item(intern!(py, "to_status"), e.to_status.map(|s| s.as_str()))?;
        d.set_item(intern!(py, "by"), &e.by)?;
        d.set_item(intern!(py, "at"), utc_datetime(py, e.at)?)?;
        d.set_item(intern!(py, "detail"), &e.detail)?;
        d.set_item(intern!(py, "kind"), e.kind.as_str())?;
        d.set_item(intern!(py, "subject"), &e.subject)?;
        Ok(d)
    }

    /// The record as compact JSON text: the same text the C API and the HTTP
    /// server give for it (the wire names of
    /// `docs/contract/domain.md#action-fields`; timestamps RFC 3339 in UTC,
    /// `docs/contract/domain.md#timestamps`).
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let e = &self.inner;
        Ok(format!(
            "Event(id={}, kind={}, subject={}, action_id={}, from_status={}, to_status={}, by={})",
            e.id,
            str_repr(py, e.kind.as_str())?,
            str_repr(py, &e.subject)?,
            e.action_id.map_or("None".to_owned(), |id| id.to_string()),
            opt_repr(py, e.from_status.map(|s| s.as_str()))?,
            opt_repr(py, e.to_status.map(|s| s.as_str()))?,
            str_repr(py, &e.by)?,
        ))
    }
}

/// A piece of an executing action's live output (frozen): `seq` (the
/// agent's number, from 1), `stdout`, `stderr` and `at` (when the queue
/// stored it, UTC).
#[pyclass(module = "actionq", name = "OutputChunk", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyOutputChunk {
    inner: OutputChunk,
}

impl From<OutputChunk> for PyOutputChunk {
    fn from(inner: OutputChunk) -> Self {
        PyOutputChunk { inner }
    }
}

#[pymethods]
impl PyOutputChunk {
    /// The agent's sequence number, from 1.
    #[getter]
    fn seq(&self) -> i64 {
        self.inner.seq
    }

    /// Standard output of this piece.
    #[getter]
    fn stdout(&self) -> &str {
        &self.inner.stdout
    }

    /// Standard error of this piece.
    #[getter]
    fn stderr(&self) -> &str {
        &self.inner.stderr
    }

    /// When the queue stored it (UTC).
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        utc_datetime(py, self.inner.at)
    }

    /// The fields as a dict of plain Python values.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.inner;
        let d = PyDict::new(py);
        d.set_item(intern!(py, "seq"), c.seq)?;
        d.set_item(intern!(py, "stdout"), &c.stdout)?;
        d.set_item(intern!(py, "stderr"), &c.stderr)?;
        d.set_item(intern!(py, "at"), utc_datetime(py, c.at)?)?;
        Ok(d)
    }

    /// The record as compact JSON text, as the HTTP server gives it.
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "OutputChunk(seq={}, stdout={} chars, stderr={} chars)",
            self.inner.seq,
            self.inner.stdout.chars().count(),
            self.inner.stderr.chars().count()
        )
    }
}

/// What `verify_audit()` found (frozen): `checked`, the events verified
/// before the first bad one (all when none is), and `first_bad_event_id`
/// (`None` when the chain is intact).
#[pyclass(module = "actionq", name = "AuditReport", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyAuditReport {
    inner: AuditReport,
}

impl From<AuditReport> for PyAuditReport {
    fn from(inner: AuditReport) -> Self {
        PyAuditReport { inner }
    }
}

#[pymethods]
impl PyAuditReport {
    /// Events verified before the first bad one (all of them when none is bad).
    #[getter]
    fn checked(&self) -> u64 {
        self.inner.checked
    }

    /// The first event that does not verify, or `None` when the chain is intact.
    #[getter]
    fn first_bad_event_id(&self) -> Option<i64> {
        self.inner.first_bad_event_id
    }

    /// The last pruned event's id (the chain was verified from the
    /// checkpoint on), or `None` when nothing was pruned.
    #[getter]
    fn pruned_through(&self) -> Option<i64> {
        self.inner.pruned_through
    }

    /// `{"checked": ..., "first_bad_event_id": ..., "pruned_through": ...}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "checked"), self.inner.checked)?;
        d.set_item(
            intern!(py, "first_bad_event_id"),
            self.inner.first_bad_event_id,
        )?;
        d.set_item(intern!(py, "pruned_through"), self.inner.pruned_through)?;
        Ok(d)
    }

    /// The report as compact JSON text (the HTTP body of `/audit/verify`).
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    fn __repr__(&self) -> String {
        let opt = |id: Option<i64>| id.map_or("None".to_owned(), |id| id.to_string());
        format!(
            "AuditReport(checked={}, first_bad_event_id={}, pruned_through={})",
            self.inner.checked,
            opt(self.inner.first_bad_event_id),
            opt(self.inner.pruned_through),
        )
    }
}

/// What `prune()` did (frozen): `pruned_actions` deleted by this call, and
/// `pruned_through`, the last pruned event's id (`None` if none ever was).
#[pyclass(module = "actionq", name = "PruneReport", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyPruneReport {
    inner: actionq::PruneReport,
}

impl From<actionq::PruneReport> for PyPruneReport {
    fn from(inner: actionq::PruneReport) -> Self {
        PyPruneReport { inner }
    }
}

#[pymethods]
impl PyPruneReport {
    /// Actions deleted by this call.
    #[getter]
    fn pruned_actions(&self) -> u64 {
        self.inner.pruned_actions
    }

    /// The last pruned event's id, by this call or an earlier one.
    #[getter]
    fn pruned_through(&self) -> Option<i64> {
        self.inner.pruned_through
    }

    /// `{"pruned_actions": ..., "pruned_through": ...}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "pruned_actions"), self.inner.pruned_actions)?;
        d.set_item(intern!(py, "pruned_through"), self.inner.pruned_through)?;
        Ok(d)
    }

    /// The report as compact JSON text (the HTTP body of `/prune`).
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "PruneReport(pruned_actions={}, pruned_through={})",
            self.inner.pruned_actions,
            self.inner
                .pruned_through
                .map_or("None".to_owned(), |id| id.to_string())
        )
    }
}

/// The hex SHA-256 payload digest of an action (`docs/contract/approval-policy.md#digest`):
/// what `Action.digest` holds, for an agent that recomputes it itself.
#[pyfunction]
pub fn action_digest(
    server_id: &str,
    action_type: &str,
    argv: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    whitelist_version: &str,
) -> String {
    actionq::action_digest(server_id, action_type, &argv, &env, whitelist_version)
}
