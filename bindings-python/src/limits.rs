//! What the core names once and Python reads from here: the limits and
//! defaults of [`actionq::limits`] (re-exported by `actionq.limits`), the
//! status and durability lists, and the `ActionStatus` enum built from
//! [`actionq::ActionStatus::ALL`].

use actionq::{limits, ActionStatus, Durability};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// `actionq.ActionStatus`, built at module init; its members by `ActionStatus::ALL` index.
static STATUS_ENUM: PyOnceLock<(Py<PyType>, Vec<Py<PyAny>>)> = PyOnceLock::new();

const STATUS_DOC: &str = "The statuses of an action, as a ``str`` enum built from the core's list.

``Action.status``, ``Event.from_status`` and ``Event.to_status`` are its members;
they compare equal to the plain names (``ActionStatus.PENDING == \"pending\"``),
and pydantic fields typed ``ActionStatus`` accept them.";

/// Builds `ActionStatus`: `enum.StrEnum` (Python ≥ 3.11), else a `str` mix-in
/// enum whose `str()` is the value, as `StrEnum`'s is.
fn build_status_enum(py: Python<'_>) -> PyResult<(Py<PyType>, Vec<Py<PyAny>>)> {
    let enum_module = py.import("enum")?;
    let names: Vec<(String, &str)> = ActionStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_uppercase(), s.as_str()))
        .collect();
    let kwargs = PyDict::new(py);
    kwargs.set_item("module", "actionq")?;
    kwargs.set_item("qualname", "ActionStatus")?;
    let class = match enum_module.getattr("StrEnum") {
        Ok(str_enum) => str_enum.call(("ActionStatus", names), Some(&kwargs))?,
        Err(_) => {
            kwargs.set_item("type", py.get_type::<pyo3::types::PyString>())?;
            let class = enum_module
                .getattr("Enum")?
                .call(("ActionStatus", names), Some(&kwargs))?;
            let str_type = py.get_type::<pyo3::types::PyString>();
            class.setattr("__str__", str_type.getattr("__str__")?)?;
            class.setattr("__format__", str_type.getattr("__format__")?)?;
            class
        }
    };
    class.setattr("__doc__", STATUS_DOC)?;
    let members = ActionStatus::ALL
        .iter()
        .map(|s| Ok(class.call1((s.as_str(),))?.unbind()))
        .collect::<PyResult<_>>()?;
    Ok((class.cast_into::<PyType>()?.unbind(), members))
}

/// The `actionq.ActionStatus` member of `status`.
pub fn status_member(py: Python<'_>, status: ActionStatus) -> PyResult<Bound<'_, PyAny>> {
    let (_, members) = STATUS_ENUM.get_or_try_init(py, || build_status_enum(py))?;
    let index = ActionStatus::ALL
        .iter()
        .position(|s| *s == status)
        .expect("ALL lists every status");
    Ok(members[index].bind(py).clone())
}

/// Adds the constants and `ActionStatus` to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let (class, _) = STATUS_ENUM.get_or_try_init(py, || build_status_enum(py))?;
    m.add("ActionStatus", class.bind(py))?;
    let statuses = ActionStatus::ALL.map(ActionStatus::as_str);
    m.add("ACTION_STATUSES", PyTuple::new(py, statuses)?)?;
    let durabilities = Durability::ALL.map(Durability::as_str);
    m.add("DURABILITIES", PyTuple::new(py, durabilities)?)?;
    m.add("DEFAULT_DURABILITY", Durability::default().as_str())?;
    m.add("DASHBOARD", actionq::DASHBOARD)?;
    m.add("DEFAULT_PAGE_LIMIT", limits::DEFAULT_PAGE_LIMIT)?;
    m.add("MAX_PAGE_LIMIT", limits::MAX_PAGE_LIMIT)?;
    m.add("DEFAULT_EVENTS_LIMIT", limits::DEFAULT_EVENTS_LIMIT)?;
    m.add("MAX_EVENTS_LIMIT", limits::MAX_EVENTS_LIMIT)?;
    m.add("MAX_SERVER_ID_CHARS", limits::MAX_SERVER_ID_CHARS)?;
    m.add("MAX_HOSTNAME_CHARS", limits::MAX_HOSTNAME_CHARS)?;
    m.add("MAX_NAME_CHARS", limits::MAX_NAME_CHARS)?;
    m.add("MAX_REASON_CHARS", limits::MAX_REASON_CHARS)?;
    m.add("DEFAULT_OUTPUT_CAP_CHARS", limits::DEFAULT_OUTPUT_CAP_CHARS)?;
    m.add("DEFAULT_LEASE_SECONDS", limits::DEFAULT_LEASE_SECONDS)?;
    m.add(
        "DEFAULT_MAX_LEASE_SECONDS",
        limits::DEFAULT_MAX_LEASE_SECONDS,
    )?;
    m.add(
        "DEFAULT_EXPIRE_LEASES_ON_READ",
        limits::DEFAULT_EXPIRE_LEASES_ON_READ,
    )?;
    m.add(
        "DEFAULT_BUSY_TIMEOUT_SECONDS",
        limits::DEFAULT_BUSY_TIMEOUT_SECONDS,
    )?;
    let roles = actionq::Role::ALL.map(actionq::Role::as_str);
    m.add("ROLES", PyTuple::new(py, roles)?)?;
    m.add("MAX_SECRET_BYTES", limits::MAX_SECRET_BYTES)?;
    m.add("MAX_WAIT_SECONDS", limits::MAX_WAIT_SECONDS)?;
    m.add("MAX_REQUEST_BODY_BYTES", limits::MAX_REQUEST_BODY_BYTES)?;
    m.add("MAX_LEASE_NAME_CHARS", limits::MAX_LEASE_NAME_CHARS)?;
    m.add("MAX_JOB_LEASE_SECONDS", limits::MAX_JOB_LEASE_SECONDS)?;
    m.add("MAX_PRUNE_AGE_SECONDS", limits::MAX_PRUNE_AGE_SECONDS)?;
    m.add("MAX_SINK_NAME_CHARS", limits::MAX_SINK_NAME_CHARS)?;
    m.add("MAX_DELIVERY_ERROR_CHARS", limits::MAX_DELIVERY_ERROR_CHARS)?;
    m.add(
        "DEFAULT_NOTIFY_MAX_AGE_SECONDS",
        limits::DEFAULT_NOTIFY_MAX_AGE_SECONDS,
    )?;
    m.add(
        "NOTIFY_RETRY_FIRST_SECONDS",
        limits::NOTIFY_RETRY_FIRST_SECONDS,
    )?;
    m.add("NOTIFY_RETRY_MAX_SECONDS", limits::NOTIFY_RETRY_MAX_SECONDS)?;
    let outcomes = actionq::DeliveryOutcome::ALL.map(actionq::DeliveryOutcome::as_str);
    m.add("DELIVERY_OUTCOMES", PyTuple::new(py, outcomes)?)?;
    Ok(())
}
