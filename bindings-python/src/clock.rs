//! `actionq.ManualClock`: the core's manual clock, so a Python host can test
//! leases and timestamps without waiting, as a Rust host can.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::error::to_py_err;
use crate::types::utc_datetime;

/// A clock that stands still until moved: pass it as `ActionQueue(clock=...)`.
#[pyclass(name = "ManualClock", module = "actionq", frozen)]
pub struct PyManualClock {
    pub(crate) inner: Arc<actionq::ManualClock>,
}

/// A timezone-aware `datetime` as a core timestamp.
pub(crate) fn timestamp(value: &Bound<'_, PyAny>) -> PyResult<actionq::Timestamp> {
    let datetime = value.py().import("datetime")?.getattr("datetime")?;
    if !value.is_instance(&datetime)? {
        return Err(PyTypeError::new_err(format!(
            "expected a datetime, got {}",
            value.get_type().name()?
        )));
    }
    // isoformat() is exact to the microsecond; a naive datetime has no offset
    // and is refused by the RFC 3339 parser.
    let text: String = value.call_method0("isoformat")?.extract()?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.to_utc())
        .map_err(|_| {
            PyValueError::new_err(format!("expected a timezone-aware datetime, got {text:?}"))
        })
}

#[pymethods]
impl PyManualClock {
    /// A clock stopped at `start` (a timezone-aware `datetime`).
    #[new]
    fn new(start: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyManualClock {
            inner: Arc::new(actionq::ManualClock::new(timestamp(start)?)),
        })
    }

    /// Moves the clock forward by `seconds` (back, if negative).
    fn advance(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        self.inner
            .advance_seconds(seconds)
            .map_err(|e| to_py_err(py, e))
    }

    /// Sets the clock to `now` (a timezone-aware `datetime`).
    fn set(&self, now: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(timestamp(now)?);
        Ok(())
    }

    /// The clock's time, as a UTC `datetime`.
    fn now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        use actionq::Clock;
        utc_datetime(py, self.inner.now())
    }

    fn __repr__(&self) -> String {
        use actionq::Clock;
        format!("ManualClock({})", self.inner.now().to_rfc3339())
    }
}
