//! `ActionQueue`: the Python face of [`actionq::ActionQueue`].
//!
//! A thin translation: Python arguments become core arguments, core results
//! become the frozen record classes, core errors go through [`to_py_err`]. No
//! rule of the queue lives here; out-of-range values reach the core, which
//! refuses them with `InvalidInputError`. Like the core's, a queue acts as one
//! [`actionq::Actor`] (`as_principal`, `by`), and every operation is defined
//! once, for every actor.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use actionq::{
    limits, ActionQuery, ActionQueue, ActionStatus, Actor, Durability, NewAction, QueueOptions,
    SqliteOptions, SqliteStore, Whitelist,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyString};

use crate::clock::PyManualClock;
use crate::error::to_py_err;
use crate::identity::{self, PyCredential, PyIssuedCredential, PyPrincipal};
use crate::jobs::{PyDelivery, PyJobLease};
use crate::types::{
    PyAction, PyActionPage, PyAuditReport, PyClaim, PyEvent, PyOutputChunk, PyPruneReport, PyServer,
};

/// The remediation action queue, on a SQLite file, a PostgreSQL database or
/// in memory, acting as the trusted host or, for the views `as_principal` and
/// `by` make, as a principal or a trusted name.
///
/// Safe to share between threads. The GIL policy: a call that may wait — a
/// SQLite write (the disk, another process's lock) — runs with the GIL
/// released; a call that cannot keeps it, since releasing and re-taking the GIL
/// costs more than the call (next to a busy Python thread, up to the 5 ms switch
/// interval each time). In-memory calls cannot wait. SQLite reads first try on
/// a second store of the same file whose busy timeout is zero, holding the GIL:
/// a read that meets a lock fails at once instead of waiting, and is run again,
/// GIL released, on the main store with the real busy timeout (see [`Self::run_read`]).
#[pyclass(module = "actionq", name = "ActionQueue", frozen)]
pub struct PyActionQueue {
    /// Taken out only by `Drop`, which closes it without the GIL.
    queue: ManuallyDrop<ActionQueue>,
    /// SQLite only: the same file, busy timeout zero, one read connection; used
    /// only with the GIL held (so never by two threads at once), for reads.
    /// `None` in memory, or if it could not be opened at once (reads then
    /// release the GIL like writes). Taken out only by `Drop`.
    fast: ManuallyDrop<Option<ActionQueue>>,
    /// The SQLite file; `None` for an in-memory or PostgreSQL queue.
    path: Option<PathBuf>,
    /// On a PostgreSQL database (whose URL is not kept: it may hold a password).
    postgres: bool,
    /// For a view (`as_principal`, `by`): the queue it was made from, kept
    /// alive by the view, so that the view never holds the stores' last
    /// reference and the store is closed by the opened queue's `Drop` alone.
    /// `None` for the queue the constructor opened.
    opened: Option<Py<PyActionQueue>>,
}

/// A setting in seconds (`None`: the core's default), read by the core's
/// [`limits::setting_seconds`].
fn setting_duration(name: &str, seconds: Option<f64>) -> actionq::Result<Option<Duration>> {
    seconds
        .map(|seconds| limits::setting_seconds(name, seconds))
        .transpose()
}

/// A lease in seconds for `claim_next`/`heartbeat` (`None`: the queue's
/// default), read by the core's [`limits::lease_seconds`].
fn lease(seconds: Option<f64>) -> Option<Duration> {
    seconds.map(limits::lease_seconds)
}

/// A wait given in seconds, checked by the core (`InvalidInputError` outside
/// 0..=`MAX_WAIT_SECONDS`); `None` for no wait or a zero one.
fn wait(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(seconds) => {
            let wait = limits::wait_seconds(seconds).map_err(|e| to_py_err(py, e))?;
            Ok((!wait.is_zero()).then_some(wait))
        }
    }
}

/// The iterator `ActionQueue.export()` returns: one JSON line (`str`) per
/// finished action. Each step reads the store with the GIL released.
#[pyclass(module = "actionq", name = "Export")]
pub struct PyExport {
    inner: std::sync::Mutex<actionq::Export>,
}

#[pymethods]
impl PyExport {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let next = py.detach(|| self.inner.lock().unwrap_or_else(|e| e.into_inner()).next());
        match next {
            None => Ok(None),
            Some(Ok(line)) => Ok(Some(
                serde_json::to_string(&line).expect("actionq records serialize to JSON"),
            )),
            Some(Err(e)) => Err(to_py_err(py, e)),
        }
    }
}

/// A callback registered with `ActionQueue.on_change`: `cancel()` (or
/// dropping it) unregisters it if it has not been called.
#[pyclass(name = "ChangeSubscription", module = "actionq", frozen)]
pub struct PyChangeSubscription {
    subscription: std::sync::Mutex<Option<actionq::store::Subscription>>,
}

#[pymethods]
impl PyChangeSubscription {
    /// Unregisters the callback; harmless after it was called or cancelled.
    fn cancel(&self) {
        let taken = self
            .subscription
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(taken);
    }
}

/// A whitelist given as JSON text or as a dict (serialised with `json.dumps`).
fn whitelist_text(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_cow()?.into_owned());
    }
    if value.is_instance_of::<PyDict>() {
        let json = value.py().import("json")?;
        return json.call_method1("dumps", (value,))?.extract();
    }
    Err(PyTypeError::new_err(format!(
        "whitelist must be a str (JSON) or a dict, not {}",
        value.get_type().name()?
    )))
}

/// Parameter values: `str`, or `int` (written in decimal; the whitelist's
/// validator decides whether it is acceptable).
fn param_value(name: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_cow()?.into_owned());
    }
    if value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>() {
        return Ok(value.str()?.to_cow()?.into_owned());
    }
    Err(PyTypeError::new_err(format!(
        "params[{name:?}] must be a str or an int, not {}",
        value.get_type().name()?
    )))
}

/// The core's request for `create_action`'s arguments.
fn new_action(
    py: Python<'_>,
    server_id: &str,
    action_type: &str,
    service_name: Option<String>,
    params: Option<&Bound<'_, PyDict>>,
    alert_id: Option<i64>,
    created_by: &str,
) -> PyResult<NewAction> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    if let Some(params) = params {
        for (key, value) in params.iter() {
            let name: String = key
                .extract()
                .map_err(|_| PyTypeError::new_err("params keys must be str (parameter names)"))?;
            let value = param_value(&name, &value)?;
            values.insert(name, value);
        }
    }
    NewAction {
        server_id: server_id.to_owned(),
        action_type: action_type.to_owned(),
        params: values,
        alert_id,
        created_by: created_by.to_owned(),
    }
    .service_name_shorthand(service_name)
    .map_err(|e| to_py_err(py, e))
}

fn status_filter(status: Option<&str>) -> actionq::Result<Option<ActionStatus>> {
    status.map(ActionStatus::from_str).transpose()
}

/// `count_actions`' rows as `(server_id, status, count)` tuples, the status an
/// `actionq.ActionStatus` member.
fn count_tuples(
    py: Python<'_>,
    counts: Vec<actionq::ActionCount>,
) -> PyResult<Vec<(String, Bound<'_, PyAny>, u64)>> {
    counts
        .into_iter()
        .map(|c| {
            Ok((
                c.server_id,
                crate::limits::status_member(py, c.status)?,
                c.count,
            ))
        })
        .collect()
}

/// `queue` acting for the trusted name `by` when one is given (the core's
/// [`ActionQueue::by`], which refuses a bad name and a principal's queue),
/// else `queue` itself.
fn acting_for<'q>(
    queue: &'q ActionQueue,
    by: Option<&str>,
) -> actionq::Result<Cow<'q, ActionQueue>> {
    Ok(match by {
        Some(name) => Cow::Owned(queue.by(name)?),
        None => Cow::Borrowed(queue),
    })
}

/// Whether `error` is the store refusing to wait for a lock: a zero busy
/// timeout ran out before anything was done (a refused `BEGIN IMMEDIATE` or
/// read lock changes nothing), so the call may be run again.
fn met_a_lock(error: &actionq::Error) -> bool {
    error.is_busy()
}

impl PyActionQueue {
    /// Whether store calls release the GIL: SQLite and PostgreSQL stores can block.
    fn detaches(&self) -> bool {
        self.path.is_some() || self.postgres
    }

    /// This queue acting as `act` makes it act (on the main and the fast
    /// store alike), sharing the stores.
    fn view(
        slf: &Bound<'_, Self>,
        act: impl Fn(&ActionQueue) -> actionq::Result<ActionQueue>,
    ) -> actionq::Result<Self> {
        let this = slf.get();
        Ok(PyActionQueue {
            queue: ManuallyDrop::new(act(&this.queue)?),
            fast: ManuallyDrop::new(this.fast.as_ref().map(&act).transpose()?),
            path: this.path.clone(),
            postgres: this.postgres,
            opened: Some(match &this.opened {
                Some(opened) => opened.clone_ref(slf.py()),
                None => slf.clone().unbind(),
            }),
        })
    }

    /// Runs `f` on the queue, with the GIL released for the SQLite backend, and
    /// maps a core error to its Python exception. For calls that may write.
    fn run<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        F: FnOnce(&ActionQueue) -> actionq::Result<T> + Send,
        T: Send,
    {
        let result = if self.detaches() {
            py.detach(|| f(&self.queue))
        } else {
            f(&self.queue)
        };
        result.map_err(|e| to_py_err(py, e))
    }

    /// Runs `f`, a call given a `wait`: as [`PyActionQueue::run`] without one,
    /// else always with the GIL released (an in-memory queue too: its wait
    /// sleeps).
    fn run_waiting<T, F>(&self, py: Python<'_>, wait: Option<Duration>, f: F) -> PyResult<T>
    where
        F: FnOnce(&ActionQueue) -> actionq::Result<T> + Send,
        T: Send,
    {
        if wait.is_none() {
            return self.run(py, f);
        }
        py.detach(|| f(&self.queue)).map_err(|e| to_py_err(py, e))
    }

    /// Runs `f`, a call that only reads (or, as `expire_leases`, almost always
    /// does), without a GIL hand-off when it can: on the fast store, GIL held,
    /// where a lock makes it fail at once instead of waiting; then, only if it
    /// met one, again on the main store with the GIL released, where it waits
    /// up to the busy timeout. The wait itself never holds the GIL.
    fn run_read<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        F: Fn(&ActionQueue) -> actionq::Result<T> + Send + Sync,
        T: Send,
    {
        if let Some(fast) = self.fast.as_ref() {
            match f(fast) {
                Err(e) if met_a_lock(&e) => {}
                done => return done.map_err(|e| to_py_err(py, e)),
            }
        }
        self.run(py, f)
    }
}

impl Drop for PyActionQueue {
    /// Closing a SQLite store checkpoints its write-ahead log (disk I/O, tens of
    /// milliseconds after many writes), so it runs with the GIL released, like
    /// every other blocking store operation. A view closes nothing (the queue
    /// it was made from outlives it), so it keeps the GIL: a GIL hand-off per
    /// view would cost a server one per request.
    fn drop(&mut self) {
        // SAFETY: `self.queue` is taken exactly once, here, and never used again.
        let queue = unsafe { ManuallyDrop::take(&mut self.queue) };
        // SAFETY: as above, for `self.fast`.
        let fast = unsafe { ManuallyDrop::take(&mut self.fast) };
        if self.opened.is_none() && self.detaches() {
            Python::attach(|py| py.detach(move || drop((fast, queue))));
        } else {
            drop((fast, queue));
        }
    }
}

#[pymethods]
impl PyActionQueue {
    /// Opens the queue: on the SQLite file at `path` (created if missing, migrated
    /// forward if older), on the PostgreSQL database of a `postgresql://` URL
    /// (whose query holds PostgreSQL's own settings, `lock_timeout` and more,
    /// see the README; the SQLite-only `durability` and
    /// `busy_timeout_seconds` are `InvalidInputError` for it), or, with
    /// `path=None`, in memory. Every setting left
    /// `None` takes the core's default (`actionq.limits`): output cap 10,000
    /// characters, durability `"normal"`, busy timeout 10 s, default lease
    /// 300 s, longest lease 24 h, lost leases expired before every read.
    /// `clock` (a `ManualClock`) replaces the system clock, e.g. in tests.
    #[new]
    #[pyo3(signature = (
        path = None,
        *,
        whitelist = None,
        output_cap_chars = None,
        durability = None,
        busy_timeout_seconds = None,
        default_lease_seconds = None,
        max_lease_seconds = None,
        expire_leases_on_read = None,
        clock = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        whitelist: Option<&Bound<'_, PyAny>>,
        output_cap_chars: Option<usize>,
        durability: Option<&str>,
        busy_timeout_seconds: Option<f64>,
        default_lease_seconds: Option<f64>,
        max_lease_seconds: Option<f64>,
        expire_leases_on_read: Option<bool>,
        clock: Option<PyRef<'_, PyManualClock>>,
    ) -> PyResult<Self> {
        let settings = || -> actionq::Result<(SqliteOptions, QueueOptions)> {
            let sqlite_defaults = SqliteOptions::default();
            let sqlite_options = SqliteOptions {
                durability: durability
                    .map(Durability::from_str)
                    .transpose()?
                    .unwrap_or(sqlite_defaults.durability),
                busy_timeout: setting_duration("busy_timeout_seconds", busy_timeout_seconds)?
                    .unwrap_or(sqlite_defaults.busy_timeout),
                ..sqlite_defaults
            };
            let defaults = QueueOptions::default();
            let options = QueueOptions {
                output_cap_chars: output_cap_chars.unwrap_or(defaults.output_cap_chars),
                default_lease: setting_duration("default_lease_seconds", default_lease_seconds)?
                    .unwrap_or(defaults.default_lease),
                max_lease: setting_duration("max_lease_seconds", max_lease_seconds)?
                    .unwrap_or(defaults.max_lease),
                expire_leases_on_read: expire_leases_on_read
                    .unwrap_or(defaults.expire_leases_on_read),
            };
            Ok((sqlite_options, options))
        };
        let (sqlite_options, options) = settings().map_err(|e| to_py_err(py, e))?;
        let whitelist = match whitelist {
            None => Whitelist::default(),
            Some(value) => {
                let text = whitelist_text(value)?;
                Whitelist::from_json(&text).map_err(|e| to_py_err(py, e))?
            }
        };
        let clock = clock.map(|c| c.inner.clone());
        // The main queue and the fast one answer alike: same rules, same time.
        let configure = |queue: ActionQueue| {
            let queue = queue
                .with_whitelist(whitelist.clone())
                .with_options(options.clone());
            match &clock {
                Some(clock) => queue.with_clock(clock.clone()),
                None => queue,
            }
        };
        let url = path
            .as_deref()
            .and_then(|p| p.to_str())
            .filter(|p| actionq::is_postgres_url(p))
            .map(str::to_owned);
        let postgres = url.is_some();
        let (queue, fast) = match (&path, url) {
            (None, _) => (ActionQueue::in_memory(), None),
            (Some(_), Some(url)) => {
                let queue = py
                    .detach(|| ActionQueue::open_location(&url, &sqlite_options))
                    .map_err(|e| to_py_err(py, e))?;
                (queue, None)
            }
            (Some(path), None) => {
                let (store, fast) = py
                    .detach(|| {
                        let store = SqliteStore::open(path, &sqlite_options)?;
                        // After the main store: the file is migrated and in WAL, so
                        // this open writes nothing. If a lock stops it (another
                        // process switching the journal at this very moment), reads
                        // go without a fast path.
                        let fast_options = SqliteOptions {
                            busy_timeout: Duration::ZERO,
                            read_connections: 1,
                            ..sqlite_options.clone()
                        };
                        actionq::Result::Ok((store, SqliteStore::open(path, &fast_options).ok()))
                    })
                    .map_err(|e| to_py_err(py, e))?;
                (ActionQueue::new(store), fast.map(ActionQueue::new))
            }
        };
        Ok(PyActionQueue {
            queue: ManuallyDrop::new(configure(queue)),
            fast: ManuallyDrop::new(fast.map(configure)),
            path: if postgres { None } else { path },
            postgres,
            opened: None,
        })
    }

    /// The SQLite file, or `None` for an in-memory queue.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    /// The whitelist in force, as JSON config text (loadable with `whitelist=`).
    #[getter]
    fn whitelist_json(&self) -> String {
        self.queue.whitelist().to_json()
    }

    /// The whitelisted action types, sorted.
    #[getter]
    fn action_types(&self) -> Vec<String> {
        self.queue
            .whitelist()
            .entries()
            .map(|e| e.name().to_owned())
            .collect()
    }

    /// Maximum characters kept of `stdout`/`stderr`.
    #[getter]
    fn output_cap_chars(&self) -> usize {
        self.queue.options().output_cap_chars
    }

    /// The lease a claim or heartbeat gets when it names none, in seconds.
    #[getter]
    fn default_lease_seconds(&self) -> f64 {
        self.queue.options().default_lease.as_secs_f64()
    }

    /// Whether reads first fail the actions whose lease ran out.
    #[getter]
    fn expire_leases_on_read(&self) -> bool {
        self.queue.options().expire_leases_on_read
    }

    /// Registers a server (not paused). `ConflictError` if the id is taken.
    #[pyo3(signature = (id, hostname = None))]
    fn create_server(
        &self,
        py: Python<'_>,
        id: &str,
        hostname: Option<&str>,
    ) -> PyResult<PyServer> {
        self.run(py, |q| q.create_server(id, hostname))
            .map(PyServer::from)
    }

    /// The server `id`; `NotFoundError` if unknown.
    fn get_server(&self, py: Python<'_>, id: &str) -> PyResult<PyServer> {
        self.run_read(py, |q| q.get_server(id)).map(PyServer::from)
    }

    /// Puts the server in maintenance mode (idempotent): new actions start `pending`.
    fn pause_server(&self, py: Python<'_>, id: &str) -> PyResult<PyServer> {
        self.run(py, |q| q.pause_server(id)).map(PyServer::from)
    }

    /// Takes the server out of maintenance mode (idempotent).
    fn unpause_server(&self, py: Python<'_>, id: &str) -> PyResult<PyServer> {
        self.run(py, |q| q.unpause_server(id)).map(PyServer::from)
    }

    /// Queues a whitelisted action. `service_name` is shorthand for
    /// `params={"service_name": ...}`. Auto-approved unless the server is paused.
    /// `created_by` defaults to `"dashboard"`.
    #[pyo3(signature = (
        server_id,
        action_type,
        service_name = None,
        *,
        params = None,
        alert_id = None,
        created_by = actionq::DASHBOARD,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_action(
        &self,
        py: Python<'_>,
        server_id: &str,
        action_type: &str,
        service_name: Option<String>,
        params: Option<&Bound<'_, PyDict>>,
        alert_id: Option<i64>,
        created_by: &str,
    ) -> PyResult<PyAction> {
        let request = new_action(
            py,
            server_id,
            action_type,
            service_name,
            params,
            alert_id,
            created_by,
        )?;
        self.run(py, |q| q.create_action(&request))
            .map(PyAction::from)
    }

    /// Queues an action from a create request in JSON, read by the core's
    /// `NewAction::from_json`: `{"server_id", "action_type", "service_name"?,
    /// "params"?, "alert_id"?, "created_by"?}` with string parameter values.
    /// Malformed JSON, unknown keys or a `service_name` given both as a field
    /// and in `params` are `InvalidInputError`; then as `create_action`.
    fn create_action_json(&self, py: Python<'_>, request: &str) -> PyResult<PyAction> {
        let request = NewAction::from_json(request).map_err(|e| to_py_err(py, e))?;
        self.run(py, |q| q.create_action(&request))
            .map(PyAction::from)
    }

    /// The action `id`; `NotFoundError` if unknown.
    fn get_action(&self, py: Python<'_>, id: i64) -> PyResult<PyAction> {
        self.run_read(py, |q| q.get_action(id)).map(PyAction::from)
    }

    /// A page of actions, newest first, with the total number of matches.
    /// `limit` must be 1..=`actionq.limits.MAX_PAGE_LIMIT` (default
    /// `DEFAULT_PAGE_LIMIT`) and `offset` >= 0; `before_id` (an earlier
    /// page's `next_before_id`) pages by keyset, at the same cost at any depth.
    #[pyo3(signature = (
        status = None,
        server_id = None,
        action_type = None,
        limit = ActionQuery::default().limit,
        offset = 0,
        before_id = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn list_actions(
        &self,
        py: Python<'_>,
        status: Option<&str>,
        server_id: Option<&str>,
        action_type: Option<&str>,
        limit: i64,
        offset: i64,
        before_id: Option<i64>,
    ) -> PyResult<PyActionPage> {
        let page = self.run_read(py, |q| {
            q.list_actions(&ActionQuery {
                status: status_filter(status)?,
                server_id: server_id.map(str::to_owned),
                action_type: action_type.map(str::to_owned),
                limit,
                offset,
                before_id,
            })
        })?;
        PyActionPage::new(py, page)
    }

    /// A page of one server's actions; `NotFoundError` for an unknown server.
    #[pyo3(signature = (
        server_id,
        status = None,
        limit = ActionQuery::default().limit,
        offset = 0,
        before_id = None,
    ))]
    fn list_server_actions(
        &self,
        py: Python<'_>,
        server_id: &str,
        status: Option<&str>,
        limit: i64,
        offset: i64,
        before_id: Option<i64>,
    ) -> PyResult<PyActionPage> {
        let page = self.run_read(py, |q| {
            q.list_server_actions(server_id, status_filter(status)?, limit, offset, before_id)
        })?;
        PyActionPage::new(py, page)
    }

    /// pending → approved. `by` names who approves (the core's `by`); `None`
    /// records the queue's actor (`"dashboard"` for the host).
    #[pyo3(signature = (id, by = None))]
    fn approve_action(&self, py: Python<'_>, id: i64, by: Option<&str>) -> PyResult<PyAction> {
        self.run(py, |q| acting_for(q, by)?.approve_action(id))
            .map(PyAction::from)
    }

    /// pending → rejected, with a reason of 1–1000 characters; `by` as for
    /// `approve_action`.
    #[pyo3(signature = (id, reason, by = None))]
    fn reject_action(
        &self,
        py: Python<'_>,
        id: i64,
        reason: &str,
        by: Option<&str>,
    ) -> PyResult<PyAction> {
        self.run(py, |q| acting_for(q, by)?.reject_action(id, reason))
            .map(PyAction::from)
    }

    /// pending | approved → cancelled; on an executing action a cancel
    /// request (`cancel_requested_at`/`_by` set, still executing) that the
    /// agent answers with `report_cancelled`. `by` as for `approve_action`.
    #[pyo3(signature = (id, by = None))]
    fn cancel_action(&self, py: Python<'_>, id: i64, by: Option<&str>) -> PyResult<PyAction> {
        self.run(py, |q| acting_for(q, by)?.cancel_action(id))
            .map(PyAction::from)
    }

    /// Claims the oldest approved action of `server_id`: it becomes `executing`
    /// and the returned `Claim` carries the lease token. `None` when nothing is
    /// approved — at once, or with `wait_seconds` (0..=`MAX_WAIT_SECONDS`)
    /// when that wait ends with nothing approved; the claim is made as soon as
    /// an action of the server is approved, here, in another process on the
    /// same SQLite file or on another PostgreSQL replica. The wait runs with
    /// the GIL released. `lease_seconds` `None` gives the queue's default
    /// lease; 0 (or less) is `InvalidInputError`, as in every host. Runs
    /// `expire_leases` first unless the queue was opened with
    /// `expire_leases_on_read=False`.
    #[pyo3(signature = (server_id, lease_seconds = None, wait_seconds = None))]
    fn claim_next(
        &self,
        py: Python<'_>,
        server_id: &str,
        lease_seconds: Option<f64>,
        wait_seconds: Option<f64>,
    ) -> PyResult<Option<PyClaim>> {
        let lease = lease(lease_seconds);
        let wait = wait(py, wait_seconds)?;
        self.run_waiting(py, wait, |q| q.claim_next(server_id, lease, wait))
            .map(|claim| claim.map(PyClaim::from))
    }

    /// Whether `claim_next` with a wait would start asleep, reading nothing:
    /// nothing about the server changed since a claim there found nothing.
    /// Raises what that claim would raise first. Reads no store (GIL held):
    /// what `AsyncActionQueue.claim_next` asks before it takes a thread for
    /// its first look.
    #[pyo3(signature = (server_id, lease_seconds = None))]
    fn _claim_would_wait(
        &self,
        py: Python<'_>,
        server_id: &str,
        lease_seconds: Option<f64>,
    ) -> PyResult<bool> {
        self.queue
            .claim_would_wait(server_id, lease(lease_seconds))
            .map_err(|e| to_py_err(py, e))
    }

    /// Extends the lease held with `lease_token`; `ConflictError` for a wrong or
    /// expired token.
    #[pyo3(signature = (id, lease_token, lease_seconds = None))]
    fn heartbeat(
        &self,
        py: Python<'_>,
        id: i64,
        lease_token: &str,
        lease_seconds: Option<f64>,
    ) -> PyResult<PyAction> {
        let lease = lease(lease_seconds);
        self.run(py, |q| q.heartbeat(id, lease_token, lease))
            .map(PyAction::from)
    }

    /// A heartbeat that waits: extends the lease like `heartbeat`, then waits
    /// (GIL released) up to `wait_seconds` (0..=`MAX_WAIT_SECONDS`) for a
    /// cancel request on the action, and returns it as it is then
    /// (`cancel_requested_at` set when someone asked to stop it).
    #[pyo3(signature = (id, lease_token, lease_seconds = None, wait_seconds = None))]
    fn await_cancel(
        &self,
        py: Python<'_>,
        id: i64,
        lease_token: &str,
        lease_seconds: Option<f64>,
        wait_seconds: Option<f64>,
    ) -> PyResult<PyAction> {
        let lease = lease(lease_seconds);
        let wait = wait(py, wait_seconds)?;
        self.run_waiting(py, wait, |q| q.await_cancel(id, lease_token, lease, wait))
            .map(PyAction::from)
    }

    /// One look, without writing, at whether a cancel was requested for
    /// executing action `id` (the action) or it no longer executes (the
    /// action), else None: what `AsyncActionQueue.await_cancel` looks at on
    /// each change after renewing once.
    fn _cancel_request(&self, py: Python<'_>, id: i64) -> PyResult<Option<PyAction>> {
        self.run_read(py, |q| q.cancel_request(id))
            .map(|action| action.map(PyAction::from))
    }

    /// Finishes the action held with `lease_token` whose command the agent
    /// stopped on a cancel request: it ends `cancelled`, `cancelled_by` who
    /// asked. `ConflictError` when no cancel was requested.
    #[pyo3(signature = (id, lease_token, exit_code, stdout = None, stderr = None))]
    fn report_cancelled(
        &self,
        py: Python<'_>,
        id: i64,
        lease_token: &str,
        exit_code: i32,
        stdout: Option<&str>,
        stderr: Option<&str>,
    ) -> PyResult<PyAction> {
        self.run(py, |q| {
            q.report_cancelled(id, lease_token, exit_code, stdout, stderr)
        })
        .map(PyAction::from)
    }

    /// Adds a chunk of live output to the executing action held with
    /// `lease_token`: `seq` from 1, a repeated one ignored (returns False);
    /// what is kept stays within `output_cap_chars` per stream.
    #[pyo3(signature = (id, lease_token, seq, stdout = None, stderr = None))]
    fn append_output(
        &self,
        py: Python<'_>,
        id: i64,
        lease_token: &str,
        seq: i64,
        stdout: Option<&str>,
        stderr: Option<&str>,
    ) -> PyResult<bool> {
        self.run(py, |q| {
            q.append_output(id, lease_token, seq, stdout, stderr)
        })
    }

    /// The live output chunks of action `id` after `after`, by seq. With
    /// `wait_seconds`, an empty answer waits (GIL released) for a chunk or
    /// for the action to finish.
    #[pyo3(signature = (id, after = 0, wait_seconds = None))]
    fn output_since(
        &self,
        py: Python<'_>,
        id: i64,
        after: i64,
        wait_seconds: Option<f64>,
    ) -> PyResult<Vec<PyOutputChunk>> {
        let chunks = match wait(py, wait_seconds)? {
            None => self.run_read(py, |q| q.output_since(id, after, None))?,
            wait => self.run_waiting(py, wait, |q| q.output_since(id, after, wait))?,
        };
        Ok(chunks.into_iter().map(PyOutputChunk::from).collect())
    }

    /// Finishes the action held with `lease_token`: exit code 0 → `completed`,
    /// anything else → `failed`. Output is capped at `output_cap_chars`.
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
        self.run(py, |q| {
            q.report_result(id, lease_token, exit_code, stdout, stderr)
        })
        .map(PyAction::from)
    }

    /// Fails every executing action whose lease ran out (exit code -1, never
    /// retried) and returns them. Reads do this first on their own unless the
    /// queue was opened with `expire_leases_on_read=False`.
    fn expire_leases(&self, py: Python<'_>) -> PyResult<Vec<PyAction>> {
        self.run_read(py, |q| q.expire_leases())
            .map(|actions| actions.into_iter().map(PyAction::from).collect())
    }

    /// Rejects (by `system`) every pending action whose whitelist entry's
    /// `approval.ttl_seconds` ran out, and returns them. Reads do this first
    /// unless `expire_leases_on_read=False`.
    fn expire_approvals(&self, py: Python<'_>) -> PyResult<Vec<PyAction>> {
        self.run_read(py, |q| q.expire_approvals())
            .map(|actions| actions.into_iter().map(PyAction::from).collect())
    }

    /// Walks the tamper-evident audit chain and the head kept apart from it:
    /// an `AuditReport` with `checked` and `first_bad_event_id`.
    fn verify_audit(&self, py: Python<'_>) -> PyResult<PyAuditReport> {
        self.run_read(py, |q| q.verify_audit())
            .map(PyAuditReport::from)
    }

    /// Deletes the finished actions whose last change is more than
    /// `older_than_seconds` old, with their events, in batches, behind an
    /// audit checkpoint (`docs/contract/retention.md`). Admins only.
    fn prune(&self, py: Python<'_>, older_than_seconds: i64) -> PyResult<PyPruneReport> {
        self.run(py, |q| q.prune(older_than_seconds))
            .map(PyPruneReport::from)
    }

    /// The finished actions whose last change is before `before` (a
    /// timezone-aware `datetime`), oldest first, as an iterator of JSON
    /// Lines (one `{"action": ..., "events": [...]}` per action, no newline),
    /// read from the store page by page as it is consumed. Admins only.
    fn export(&self, py: Python<'_>, before: &Bound<'_, PyAny>) -> PyResult<PyExport> {
        let before = crate::clock::timestamp(before)
            .map_err(|e| to_py_err(py, actionq::Error::InvalidInput(format!("before: {e}"))))?;
        let export = self.queue.export(before).map_err(|e| to_py_err(py, e))?;
        Ok(PyExport {
            inner: std::sync::Mutex::new(export),
        })
    }

    /// Up to `limit` (1..=`actionq.limits.MAX_EVENTS_LIMIT`, default
    /// `DEFAULT_EVENTS_LIMIT`) audit events after `cursor`, oldest first. Pass
    /// the last event's `id` as the next cursor. With `wait_seconds`
    /// (0..=`MAX_WAIT_SECONDS`), an empty answer waits (GIL released) for the
    /// next event past the cursor, committed anywhere, or for the wait's end.
    #[pyo3(signature = (cursor = 0, limit = actionq::DEFAULT_EVENTS_LIMIT, wait_seconds = None))]
    fn events_since(
        &self,
        py: Python<'_>,
        cursor: i64,
        limit: i64,
        wait_seconds: Option<f64>,
    ) -> PyResult<Vec<PyEvent>> {
        let events = match wait(py, wait_seconds)? {
            None => self.run_read(py, |q| q.events_since(cursor, limit, None))?,
            wait => self.run_waiting(py, wait, |q| q.events_since(cursor, limit, wait))?,
        };
        Ok(events.into_iter().map(PyEvent::from).collect())
    }

    /// Calls `callback()` once, on the thread that commits (or the store's
    /// watch thread), at the queue's next change concerning `server_id` (any
    /// logged event when `None`; with `output`, new live output of that
    /// server's actions), unless the returned `ChangeSubscription` is
    /// cancelled first. `AsyncActionQueue` waits with it, holding no thread:
    /// subscribe, try, await the callback. The callback should only hand the
    /// news on (`loop.call_soon_threadsafe`); an exception it raises is
    /// reported as unraisable.
    #[pyo3(signature = (callback, server_id = None, *, output = false))]
    fn on_change(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        server_id: Option<&str>,
        output: bool,
    ) -> PyResult<PyChangeSubscription> {
        let topic = match (server_id, output) {
            (Some(id), false) => actionq::store::Topic::Server(id),
            (Some(id), true) => actionq::store::Topic::Output(id),
            (None, false) => actionq::store::Topic::Events,
            (None, true) => {
                let why = "output: the live output of which server? (server_id)";
                return Err(to_py_err(py, actionq::Error::InvalidInput(why.into())));
            }
        };
        let subscription = self.queue.on_change(topic, move || {
            Python::attach(|py| {
                if let Err(e) = callback.call0(py) {
                    e.write_unraisable(py, None);
                }
            })
        });
        Ok(PyChangeSubscription {
            subscription: std::sync::Mutex::new(Some(subscription)),
        })
    }

    /// Waits registered on this queue now (blocking waits in progress plus
    /// `on_change` callbacks not yet called or cancelled): 0 once every wait
    /// has ended, however it ended.
    fn waiters(&self) -> usize {
        self.queue.waiters()
    }

    /// Every registered server, ordered by id.
    fn list_servers(&self, py: Python<'_>) -> PyResult<Vec<PyServer>> {
        self.run_read(py, |q| q.list_servers())
            .map(|servers| servers.into_iter().map(PyServer::from).collect())
    }

    /// How many actions each server has in each status: `(server_id, status,
    /// count)` tuples (status an `actionq.ActionStatus` member), one per pair
    /// with at least one action, ordered by server id, then status in
    /// `ActionStatus` order. Read from the totals the store keeps (no scan of
    /// the actions), after expiring lost leases as every read does.
    fn count_actions<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(String, Bound<'py, PyAny>, u64)>> {
        let counts = self.run_read(py, |q| q.count_actions())?;
        count_tuples(py, counts)
    }

    /// How many actions this queue object has failed for a lost lease since
    /// it was opened, whichever call expired them (a read, a claim or
    /// `expire_leases()`); a process-local counter, as metrics want.
    #[getter]
    fn lease_expiries(&self) -> u64 {
        // Reads may run on the fast store, which counts its own expiries.
        let fast = self.fast.as_ref().map_or(0, ActionQueue::lease_expiries);
        self.queue.lease_expiries() + fast
    }

    /// Issues a credential for `name` with `role` (`"admin"`, `"operator"`,
    /// `"requester"`, `"viewer"`, or `"agent"` with its `server_id`): the
    /// returned `IssuedCredential` carries the secret, shown this once (only
    /// its SHA-256 is stored). On the host's queue a trusted call: offer it to
    /// admins only, or call it on `as_principal(p)`, which checks.
    #[pyo3(signature = (name, role, server_id = None))]
    fn issue_credential(
        &self,
        py: Python<'_>,
        name: &str,
        role: &str,
        server_id: Option<&str>,
    ) -> PyResult<PyIssuedCredential> {
        let role = identity::role(py, role)?;
        self.run(py, |q| q.issue_credential(name, role, server_id))
            .map(PyIssuedCredential::from)
    }

    /// Every credential, revoked ones included, by id; never a secret.
    fn list_credentials(&self, py: Python<'_>) -> PyResult<Vec<PyCredential>> {
        self.run_read(py, |q| q.list_credentials())
            .map(|list| list.into_iter().map(PyCredential::from).collect())
    }

    /// Revokes credential `id` at once, for every process on the same store;
    /// `NotFoundError` if unknown.
    fn revoke_credential(&self, py: Python<'_>, id: i64) -> PyResult<PyCredential> {
        self.run(py, |q| q.revoke_credential(id))
            .map(PyCredential::from)
    }

    /// The `Principal` a secret belongs to; `UnauthenticatedError` for an
    /// unknown, revoked or malformed one (the message never contains it).
    /// Reads only: no write per call.
    fn authenticate(&self, py: Python<'_>, secret: &str) -> PyResult<PyPrincipal> {
        self.run_read(py, |q| q.authenticate(secret))
            .map(PyPrincipal::from)
    }

    /// Takes the job lease `name` for `holder` for `ttl_seconds` (0 <
    /// ttl <= `limits.MAX_JOB_LEASE_SECONDS`), or renews it when `holder`
    /// has it; `ConflictError` while another holder's lease runs. One
    /// replica among several runs a job this way.
    fn take_lease(
        &self,
        py: Python<'_>,
        name: &str,
        holder: &str,
        ttl_seconds: f64,
    ) -> PyResult<PyJobLease> {
        let ttl =
            limits::setting_seconds("ttl_seconds", ttl_seconds).map_err(|e| to_py_err(py, e))?;
        self.run(py, |q| q.take_lease(name, holder, ttl))
            .map(PyJobLease::from)
    }

    /// Gives up the job lease `name` if `holder` has it; whether it did.
    fn release_lease(&self, py: Python<'_>, name: &str, holder: &str) -> PyResult<bool> {
        self.run(py, |q| q.release_lease(name, holder))
    }

    /// The `Delivery` cursor of notification sink `name`, created at the end
    /// of the log when new; an existing one keeps its cursor, takes `kind`.
    fn register_delivery(&self, py: Python<'_>, name: &str, kind: &str) -> PyResult<PyDelivery> {
        self.run(py, |q| q.register_delivery(name, kind))
            .map(PyDelivery::from)
    }

    /// Records what became of event `event_id` for sink `name`: `outcome`
    /// `"sent"`, `"skipped"` or `"dead"` (the cursor moves to it) or
    /// `"failed"` (one try; it stays), with `error` for a failure. `holder`
    /// must hold the lease `"delivery:<name>"` (else `ConflictError`).
    #[pyo3(signature = (name, holder, event_id, outcome, error = None))]
    fn record_delivery(
        &self,
        py: Python<'_>,
        name: &str,
        holder: &str,
        event_id: i64,
        outcome: &str,
        error: Option<&str>,
    ) -> PyResult<PyDelivery> {
        let outcome = actionq::DeliveryOutcome::from_str(outcome).map_err(|e| to_py_err(py, e))?;
        self.run(py, |q| {
            q.record_delivery(name, holder, event_id, outcome, error)
        })
        .map(PyDelivery::from)
    }

    /// Records a batch in one write: every event after sink `name`'s cursor
    /// through `through_event_id` was delivered or skipped, `sent` of them
    /// delivered (the cursor moves there; with `sent` > 0 as one `"sent"`
    /// does, else as a skip). Same checks as `record_delivery`.
    fn record_sent(
        &self,
        py: Python<'_>,
        name: &str,
        holder: &str,
        through_event_id: i64,
        sent: i64,
    ) -> PyResult<PyDelivery> {
        self.run(py, |q| q.record_sent(name, holder, through_event_id, sent))
            .map(PyDelivery::from)
    }

    /// Every sink's `Delivery` cursor, by name, with its lag.
    fn list_deliveries(&self, py: Python<'_>) -> PyResult<Vec<PyDelivery>> {
        self.run_read(py, |q| q.list_deliveries())
            .map(|list| list.into_iter().map(PyDelivery::from).collect())
    }

    /// The principal this queue acts as (`as_principal`), else `None`.
    #[getter]
    fn principal(&self) -> Option<PyPrincipal> {
        self.queue
            .actor()
            .principal()
            .cloned()
            .map(PyPrincipal::from)
    }

    /// This queue as `principal` sees it (same store, no I/O; one per request
    /// is fine): every call is checked by the permission table first (a
    /// refusal is `PermissionDeniedError` and changes nothing) and records the
    /// principal's name.
    fn as_principal(slf: &Bound<'_, Self>, principal: PyRef<'_, PyPrincipal>) -> PyResult<Self> {
        Self::view(slf, |q| Ok(q.as_principal(&principal.inner)))
            .map_err(|e| to_py_err(slf.py(), e))
    }

    /// This queue acting as the trusted host for `name`, which every call
    /// records (`created_by`, `approved_by`, event `by`, ...); nothing is
    /// checked. `InvalidInputError` for a malformed name and on a principal's
    /// queue.
    fn by(slf: &Bound<'_, Self>, name: &str) -> PyResult<Self> {
        Self::view(slf, |q| q.by(name)).map_err(|e| to_py_err(slf.py(), e))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let location = match &self.path {
            Some(path) => PyString::new(py, &path.to_string_lossy())
                .repr()?
                .to_string(),
            None if self.postgres => "'postgresql://...'".to_owned(),
            None => "None".to_owned(),
        };
        let actor = match self.queue.actor() {
            Actor::Host => String::new(),
            Actor::Trusted(name) => format!(", by={}", PyString::new(py, name).repr()?),
            Actor::Principal(principal) => format!(
                ", principal={}",
                Bound::new(py, PyPrincipal::from(principal.clone()))?.repr()?
            ),
        };
        Ok(format!("ActionQueue({location}{actor})"))
    }
}

/// Benchmark helper, not part of the API (see
/// `bindings-python/bench/bench_get_action.py`): runs `queue.get_action(id)`
/// `iterations` times from Rust, as a Rust program would (no Python in the
/// loop; the GIL released around the whole loop), and returns the mean
/// nanoseconds per call.
#[pyfunction(name = "_bench_get_action")]
pub(crate) fn bench_get_action(
    py: Python<'_>,
    queue: PyRef<'_, PyActionQueue>,
    id: i64,
    iterations: u32,
) -> PyResult<f64> {
    let queue = &queue.queue;
    let elapsed = py.detach(|| -> actionq::Result<Duration> {
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(queue.get_action(std::hint::black_box(id))?);
        }
        Ok(start.elapsed())
    });
    let elapsed = elapsed.map_err(|e| to_py_err(py, e))?;
    Ok(elapsed.as_nanos() as f64 / f64::from(iterations.max(1)))
}

/// Whether calls on `queue` may wait (SQLite and PostgreSQL stores; an
/// in-memory queue never waits): `AsyncActionQueue` runs those on its
/// thread pool, the others in the coroutine. Not part of the API.
#[pyfunction(name = "_calls_may_wait")]
pub(crate) fn calls_may_wait(queue: PyRef<'_, PyActionQueue>) -> bool {
    queue.detaches()
}
