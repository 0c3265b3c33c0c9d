//! The exception hierarchy and the one mapping from [`actionq::Error`].

use actionq::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyType;

create_exception!(
    actionq,
    ActionQueueError,
    PyException,
    "Base class of every actionq error. Attributes: `code`, `http_status`, `message`, `existing_action_id`."
);
create_exception!(
    actionq,
    InvalidInputError,
    ActionQueueError,
    "Malformed input: missing or out-of-range values (`VALIDATION_ERROR`, HTTP 422)."
);
create_exception!(
    actionq,
    NotFoundError,
    ActionQueueError,
    "A server or action that does not exist (`NOT_FOUND`, HTTP 404)."
);
create_exception!(
    actionq,
    NotWhitelistedError,
    ActionQueueError,
    "An action type or parameter value not on the whitelist (`FORBIDDEN`, HTTP 403)."
);
create_exception!(
    actionq,
    ConflictError,
    ActionQueueError,
    "An illegal transition, a duplicate or a stale lease token (`CONFLICT`, HTTP 409)."
);
create_exception!(
    actionq,
    StorageError,
    ActionQueueError,
    "I/O failure, corruption, busy beyond the timeout, schema too new (`STORAGE_ERROR`, HTTP 503)."
);

create_exception!(
    actionq,
    UnauthenticatedError,
    ActionQueueError,
    "An unknown, revoked or malformed credential secret (`UNAUTHENTICATED`, HTTP 401)."
);
create_exception!(
    actionq,
    PermissionDeniedError,
    ActionQueueError,
    "A role or server scope that does not allow the operation; nothing changed (`PERMISSION_DENIED`, HTTP 403)."
);

/// The exception class of `kind`.
fn class_of(py: Python<'_>, kind: ErrorKind) -> Bound<'_, PyType> {
    match kind {
        ErrorKind::InvalidInput => py.get_type::<InvalidInputError>(),
        ErrorKind::NotFound => py.get_type::<NotFoundError>(),
        ErrorKind::NotWhitelisted => py.get_type::<NotWhitelistedError>(),
        ErrorKind::Conflict => py.get_type::<ConflictError>(),
        ErrorKind::Storage => py.get_type::<StorageError>(),
        ErrorKind::Unauthenticated => py.get_type::<UnauthenticatedError>(),
        ErrorKind::PermissionDenied => py.get_type::<PermissionDeniedError>(),
        // `ErrorKind` is non-exhaustive: a future kind still raises the base class.
        _ => py.get_type::<ActionQueueError>(),
    }
}

/// Translates a core error into its Python exception: the subclass of its kind,
/// carrying `code`, `http_status`, `existing_action_id` and the message (its only
/// argument, read back by the `message` property).
///
/// The only place where `actionq::Error` becomes a Python exception.
pub(crate) fn to_py_err(py: Python<'_>, error: Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = class_of(py, error.kind()).call1((error.to_string(),))?;
        exc.setattr("code", error.code())?;
        exc.setattr("http_status", error.http_status())?;
        exc.setattr("existing_action_id", error.existing_action_id())?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|failure| failure)
}

/// Registers the exception classes on the module, with class-level `code` and
/// `http_status` on each kind's subclass (so `except NotFoundError` handlers can
/// read them from the class too) and the `message` property on the base.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = py.get_type::<ActionQueueError>();
    base.setattr("code", "ACTIONQ_ERROR")?;
    base.setattr("http_status", 500)?;
    // `message` is `str(error)`, so exceptions raised from Python code have one too.
    let message = py.eval(
        c"property(lambda self: str(self), doc='The human-readable message (same as str(error)).')",
        None,
        None,
    )?;
    base.setattr("message", message)?;
    base.setattr("existing_action_id", py.None())?;
    m.add("ActionQueueError", base)?;
    for kind in ErrorKind::ALL {
        let class = class_of(py, kind);
        class.setattr("code", kind.code())?;
        class.setattr("http_status", kind.http_status())?;
        m.add(class.name()?, class)?;
    }
    Ok(())
}
