//! What hosts hand the queue: a new action's request, a listing's query, the
//! queue's tunables.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::actor::DASHBOARD;
use crate::error::{Error, Result};
use crate::limits;
use crate::model::ActionStatus;

/// Tunables of a queue. Defaults: the [`limits`] module's `DEFAULT_*` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// `stdout`/`stderr` are cut to this many characters
    /// ([`limits::DEFAULT_OUTPUT_CAP_CHARS`]); 0 keeps none.
    pub output_cap_chars: usize,
    /// Lease given by `claim_next`/`heartbeat` when the caller names none
    /// ([`limits::DEFAULT_LEASE`]).
    pub default_lease: Duration,
    /// Longest lease a caller may ask for ([`limits::DEFAULT_MAX_LEASE`]).
    pub max_lease: Duration,
    /// Whether every read (`get_action`, the listings, `events_since`) and
    /// `claim_next` first runs [`ActionQueue::expire_leases`](crate::ActionQueue::expire_leases), so no read shows
    /// an action `executing` after its lease ran out
    /// ([`limits::DEFAULT_EXPIRE_LEASES_ON_READ`]: on). Off, the host must call
    /// `expire_leases` itself.
    pub expire_leases_on_read: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            output_cap_chars: limits::DEFAULT_OUTPUT_CAP_CHARS,
            default_lease: limits::DEFAULT_LEASE,
            max_lease: limits::DEFAULT_MAX_LEASE,
            expire_leases_on_read: limits::DEFAULT_EXPIRE_LEASES_ON_READ,
        }
    }
}

/// A request to queue an action. Build with [`NewAction::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAction {
    /// Target server id.
    pub server_id: String,
    /// Whitelisted action type.
    pub action_type: String,
    /// Parameter values by name (`service_name` for `restart_service`).
    pub params: BTreeMap<String, String>,
    /// Originating alert (≥ 1).
    pub alert_id: Option<i64>,
    /// Requester (default `"dashboard"`).
    pub created_by: String,
}

impl NewAction {
    /// A request for `action_type` on `server_id`, no parameters, by `"dashboard"`.
    pub fn new(server_id: impl Into<String>, action_type: impl Into<String>) -> Self {
        NewAction {
            server_id: server_id.into(),
            action_type: action_type.into(),
            params: BTreeMap::new(),
            alert_id: None,
            created_by: DASHBOARD.to_owned(),
        }
    }

    /// Sets the `service_name` parameter.
    pub fn service_name(self, service_name: impl Into<String>) -> Self {
        self.param("service_name", service_name)
    }

    /// Applies the `service_name` shorthand every host offers beside the
    /// parameters (the HTTP body's field, Python's argument, the C request's
    /// key): sets that parameter, or InvalidInput when it is already set in
    /// the parameters. `None` leaves the request as it is.
    ///
    /// ```
    /// let request = actionq::NewAction::new("web-1", "restart_service").param("service_name", "a");
    /// assert!(request.service_name_shorthand(Some("b".into())).is_err());
    /// ```
    pub fn service_name_shorthand(self, service_name: Option<String>) -> Result<Self> {
        match service_name {
            None => Ok(self),
            Some(_) if self.params.contains_key("service_name") => Err(Error::InvalidInput(
                "service_name given both on its own and in params".into(),
            )),
            Some(service_name) => Ok(self.service_name(service_name)),
        }
    }

    /// Sets a parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Links the originating alert.
    pub fn alert_id(mut self, alert_id: i64) -> Self {
        self.alert_id = Some(alert_id);
        self
    }

    /// Sets the requester.
    pub fn created_by(mut self, created_by: impl Into<String>) -> Self {
        self.created_by = created_by.into();
        self
    }

    /// Reads a request in the shape of the HTTP create body:
    /// `{"server_id", "action_type", "service_name"?, "params"?, "alert_id"?,
    /// "created_by"?}`, where `service_name` is shorthand for that parameter.
    /// Unknown keys, a `service_name` given both ways, or malformed JSON are
    /// InvalidInput; what is not given keeps [`NewAction::new`]'s default.
    ///
    /// ```
    /// let request = actionq::NewAction::from_json(
    ///     r#"{"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}"#,
    /// )?;
    /// assert_eq!(request.params["service_name"], "nginx");
    /// assert_eq!(request.created_by, "dashboard");
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            server_id: String,
            action_type: String,
            service_name: Option<String>,
            #[serde(default)]
            params: BTreeMap<String, String>,
            alert_id: Option<i64>,
            created_by: Option<String>,
        }
        let body: Body = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("invalid create request: {e}")))?;
        let mut request = NewAction::new(body.server_id, body.action_type);
        request.params = body.params;
        request = request.service_name_shorthand(body.service_name)?;
        request.alert_id = body.alert_id;
        if let Some(created_by) = body.created_by {
            request.created_by = created_by;
        }
        Ok(request)
    }
}

/// Filters and page of a listing. Defaults: no filter, `limit`
/// [`limits::DEFAULT_PAGE_LIMIT`], `offset` 0, no `before_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionQuery {
    /// Only this status.
    pub status: Option<ActionStatus>,
    /// Only this server.
    pub server_id: Option<String>,
    /// Only this action type.
    pub action_type: Option<String>,
    /// Page size, 1..=[`limits::MAX_PAGE_LIMIT`].
    pub limit: i64,
    /// Matches to skip, ≥ 0.
    pub offset: i64,
    /// Keyset paging: only matches listed after the action with this id
    /// (an earlier page's `next_before_id`), ≥ 1; see
    /// `docs/contract/retention.md#keyset-paging`.
    pub before_id: Option<i64>,
}

impl Default for ActionQuery {
    fn default() -> Self {
        ActionQuery {
            status: None,
            server_id: None,
            action_type: None,
            limit: limits::DEFAULT_PAGE_LIMIT,
            offset: 0,
            before_id: None,
        }
    }
}
