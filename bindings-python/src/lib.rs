//! Python bindings for [`actionq`]: the extension module `actionq._actionq`,
//! re-exported by the pure-Python package `actionq` (see `python/actionq`).
//!
//! A thin translation layer: every rule lives in the core. Records are frozen
//! classes exposing the wire names (`docs/contract/domain.md#action-fields`);
//! every [`actionq::Error`] becomes one `actionq.ActionQueueError` subclass
//! through a single mapping function.
#![warn(missing_docs)]

mod clock;
mod error;
mod identity;
mod jobs;
mod limits;
mod queue;
mod signing;
mod types;

use pyo3::prelude::*;

/// The extension module. Import `actionq` instead of this module.
#[pymodule]
mod _actionq {
    use pyo3::prelude::*;
    use pyo3::types::{PyString, PyTuple};

    #[pymodule_export]
    use crate::clock::PyManualClock;
    #[pymodule_export]
    use crate::identity::{PyCredential, PyIssuedCredential, PyPrincipal};
    #[pymodule_export]
    use crate::jobs::{delivery_lease_name, PyDelivery, PyJobLease};
    #[pymodule_export]
    use crate::queue::{PyActionQueue, PyChangeSubscription, PyExport};
    #[pymodule_export]
    use crate::signing::{PyClaimSigningKey, PyClaimVerifyingKey};
    #[pymodule_export]
    use crate::types::{
        action_digest, PyAction, PyActionPage, PyAuditReport, PyClaim, PyEvent, PyOutputChunk,
        PyPruneReport, PyServer,
    };

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        crate::error::register(m)?;
        crate::limits::register(m)?;
        m.add("DEFAULT_WHITELIST_JSON", actionq::DEFAULT_WHITELIST_JSON)?;
        m.add("OPERATIONS", PyTuple::new(m.py(), actionq::OPERATIONS)?)?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        // Private helpers: attributes only, kept out of `__all__` (which `add` fills).
        for helper in [
            wrap_pyfunction!(crate::queue::bench_get_action, m)?,
            wrap_pyfunction!(crate::queue::calls_may_wait, m)?,
        ] {
            m.setattr(helper.getattr("__name__")?.cast_into::<PyString>()?, helper)?;
        }
        Ok(())
    }
}
