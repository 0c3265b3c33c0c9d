//! `JobLease` and `Delivery`: the Python records of the core's job leases
//! and notification delivery cursors ([`actionq::jobs`]).

use actionq::{Delivery, JobLease};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::types::{record_json, utc_datetime};

/// The name of the job lease that guards sink `sink`'s delivery cursor
/// (`take_lease` it before `record_delivery`).
#[pyfunction]
pub fn delivery_lease_name(sink: &str) -> String {
    actionq::jobs::delivery_lease_name(sink)
}

/// A named lease on a background job (frozen): `name`, `holder`, `expires_at`.
#[pyclass(module = "actionq", name = "JobLease", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyJobLease {
    inner: JobLease,
}

impl From<JobLease> for PyJobLease {
    fn from(inner: JobLease) -> Self {
        PyJobLease { inner }
    }
}

#[pymethods]
impl PyJobLease {
    /// The job's name (`delivery:<sink>` for a notification sink).
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Who holds it.
    #[getter]
    fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// When it lapses unless renewed (UTC `datetime`).
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        utc_datetime(py, self.inner.expires_at)
    }

    /// `{"name", "holder", "expires_at"}` (a `datetime`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("name", &self.inner.name)?;
        d.set_item("holder", &self.inner.holder)?;
        d.set_item("expires_at", self.expires_at(py)?)?;
        Ok(d)
    }

    /// The lease as compact JSON text.
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "JobLease(name={:?}, holder={:?}, expires_at='{}')",
            self.inner.name, self.inner.holder, self.inner.expires_at
        )
    }
}

/// The delivery cursor of one notification sink (frozen), with its lag.
#[pyclass(module = "actionq", name = "Delivery", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyDelivery {
    inner: Delivery,
}

impl From<Delivery> for PyDelivery {
    fn from(inner: Delivery) -> Self {
        PyDelivery { inner }
    }
}

#[pymethods]
impl PyDelivery {
    /// The sink's name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its kind, as registered (`webhook`, `apprise`).
    #[getter]
    fn kind(&self) -> &str {
        &self.inner.kind
    }

    /// The id of the last event delivered, skipped or dead-lettered.
    #[getter]
    fn cursor(&self) -> i64 {
        self.inner.cursor
    }

    /// Events logged after the cursor.
    #[getter]
    fn lag_events(&self) -> u64 {
        self.inner.lag_events
    }

    /// When the oldest event after the cursor was logged, or `None`.
    #[getter]
    fn oldest_pending_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .oldest_pending_at
            .map(|t| utc_datetime(py, t))
            .transpose()
    }

    /// Messages delivered.
    #[getter]
    fn sent(&self) -> u64 {
        self.inner.sent
    }

    /// Tries that failed (every retry counts).
    #[getter]
    fn failed(&self) -> u64 {
        self.inner.failed
    }

    /// Messages given up on.
    #[getter]
    fn dead(&self) -> u64 {
        self.inner.dead
    }

    /// Why the last try failed, until a message is delivered again.
    #[getter]
    fn last_error(&self) -> Option<&str> {
        self.inner.last_error.as_deref()
    }

    /// When a message was last delivered, or `None`.
    #[getter]
    fn last_success_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .last_success_at
            .map(|t| utc_datetime(py, t))
            .transpose()
    }

    /// Every field by name (times as `datetime`s).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("name", &self.inner.name)?;
        d.set_item("kind", &self.inner.kind)?;
        d.set_item("cursor", self.inner.cursor)?;
        d.set_item("lag_events", self.inner.lag_events)?;
        d.set_item("oldest_pending_at", self.oldest_pending_at(py)?)?;
        d.set_item("sent", self.inner.sent)?;
        d.set_item("failed", self.inner.failed)?;
        d.set_item("dead", self.inner.dead)?;
        d.set_item("last_error", &self.inner.last_error)?;
        d.set_item("last_success_at", self.last_success_at(py)?)?;
        Ok(d)
    }

    /// The cursor as compact JSON text.
    fn to_json(&self) -> String {
        record_json(&self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "Delivery(name={:?}, cursor={}, lag_events={})",
            self.inner.name, self.inner.cursor, self.inner.lag_events
        )
    }
}
