//! The Rust host's driver for the cross-host scenarios (`tests/scenarios/*.json`,
//! format in `tests/README.md`): runs every step of one scenario through the
//! `actionq` crate's API, as a Rust host would call it, and prints the
//! transcript (a JSON array, one outcome per step) on stdout.
//!
//! Usage: `actionq-scenario-driver SCENARIO.json STORE`, STORE being `memory`
//! or the path of a SQLite file. A malformed scenario exits with status 2.
//!
//! Value objects (`$repeat`, `$concat`, `$null`) are expanded before a step
//! runs; `$null` is `None` where the API takes an `Option`. What a Rust caller
//! cannot write (bytes that are not UTF-8 in a `&str`, no value for a required
//! argument, a negative `Duration`) is a bad scenario unless the step's `skip`
//! names `rust`, in which case the outcome is `{"skipped": true}`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actionq::{
    ActionQuery, ActionQueue, ActionStatus, ManualClock, NewAction, Principal, Role, Whitelist,
};
use serde_json::{json, Value};

/// This host's name in a step's `skip` and per-host expectations.
const HOST: &str = "rust";

/// A scenario that cannot be run as written (a bug in the scenario file).
struct BadScenario(String);

type Outcome = Result<Option<Value>, actionq::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, scenario, store] = args.as_slice() else {
        eprintln!("usage: actionq-scenario-driver SCENARIO.json STORE");
        return ExitCode::from(2);
    };
    match run(scenario, store) {
        Ok(transcript) => {
            println!("{}", Value::Array(transcript));
            ExitCode::SUCCESS
        }
        Err(BadScenario(why)) => {
            eprintln!("{scenario}: {why}");
            ExitCode::from(2)
        }
    }
}

fn run(path: &str, store: &str) -> Result<Vec<Value>, BadScenario> {
    let text = std::fs::read_to_string(path).map_err(|e| BadScenario(e.to_string()))?;
    let scenario: Value = serde_json::from_str(&text).map_err(|e| BadScenario(e.to_string()))?;
    let start = scenario["clock"]
        .as_str()
        .ok_or_else(|| BadScenario("no \"clock\" start time".into()))?;
    let start = chrono::DateTime::parse_from_rfc3339(start)
        .map_err(|e| BadScenario(format!("clock: {e}")))?
        .to_utc();
    let clock = Arc::new(ManualClock::new(start));
    let queue = match store {
        "memory" => ActionQueue::in_memory(),
        // A SQLite file or a postgresql:// URL, as every host opens it.
        path => ActionQueue::open_location(path, &actionq::SqliteOptions::default())
            .map_err(|e| BadScenario(format!("open {path}: {e}")))?,
    };
    let mut queue = queue.with_clock(clock.clone());
    if let Some(config) = scenario.get("whitelist") {
        let whitelist = Whitelist::from_json(&config.to_string())
            .map_err(|e| BadScenario(format!("whitelist: {e}")))?;
        queue = queue.with_whitelist(whitelist);
    }
    let steps = scenario["steps"]
        .as_array()
        .ok_or_else(|| BadScenario("no \"steps\" list".into()))?;
    let mut host = Host {
        queue,
        clock,
        tokens: HashMap::new(),
        secrets: HashMap::new(),
    };
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let at = |BadScenario(why)| BadScenario(format!("step {i}: {why}"));
            if skipped(step).map_err(at)? {
                return Ok(json!({ "skipped": true }));
            }
            let step = expand(step).map_err(at)?;
            let step = Step(&step);
            let outcome = host.call(&step).map_err(at)?;
            Ok(match outcome {
                Ok(Some(value)) => json!({ "ok": value }),
                Ok(None) => json!({ "none": true }),
                Err(e) => json!({ "error": {
                    "code": e.code(),
                    "message": e.to_string(),
                    "existing_action_id": e.existing_action_id(),
                }}),
            })
        })
        .collect()
}

/// Whether the step's `skip` (host name → why) names this host.
fn skipped(step: &Value) -> Result<bool, BadScenario> {
    match step.get("skip") {
        None => Ok(false),
        Some(Value::Object(skip))
            if skip
                .values()
                .all(|w| w.as_str().is_some_and(|w| !w.is_empty())) =>
        {
            Ok(skip.contains_key(HOST))
        }
        Some(other) => Err(BadScenario(format!(
            "skip must map hosts to a why, got {other}"
        ))),
    }
}

/// A step's value with its value objects replaced (see tests/README.md).
fn expand(value: &Value) -> Result<Value, BadScenario> {
    match value {
        Value::Array(items) => items.iter().map(expand).collect(),
        Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => literal(value),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), expand(v)?)))
            .collect::<Result<serde_json::Map<_, _>, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// A value object as the string (or null) it stands for.
fn literal(value: &Value) -> Result<Value, BadScenario> {
    let bad = || BadScenario(format!("value object {value}: not expressible in Rust"));
    if let Some(unit) = value.get("$repeat") {
        let unit = unit.as_str().ok_or_else(bad)?;
        let times = value["times"].as_u64().ok_or_else(bad)?;
        return Ok(Value::String(unit.repeat(times as usize)));
    }
    if let Some(parts) = value.get("$concat").and_then(Value::as_array) {
        let mut text = String::new();
        for part in parts {
            match literal(part)? {
                Value::String(s) => text.push_str(&s),
                _ => return Err(bad()),
            }
        }
        return Ok(Value::String(text));
    }
    if value.get("$null") == Some(&Value::Bool(true)) {
        return Ok(Value::Null);
    }
    match value {
        Value::String(_) => Ok(value.clone()),
        // `$bytes_hex`: a `&str` is UTF-8, always.
        _ => Err(bad()),
    }
}

/// One step's object: the call's name and its arguments.
struct Step<'a>(&'a Value);

impl Step<'_> {
    fn name(&self) -> Result<&str, BadScenario> {
        self.0["call"]
            .as_str()
            .ok_or_else(|| BadScenario("step without \"call\"".into()))
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>, BadScenario> {
        match &self.0[key] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(BadScenario(format!(
                "{key}: expected a string, got {other}"
            ))),
        }
    }

    fn str(&self, key: &str) -> Result<&str, BadScenario> {
        self.opt_str(key)?
            .ok_or_else(|| BadScenario(format!("missing argument {key:?}")))
    }

    fn opt_int(&self, key: &str) -> Result<Option<i64>, BadScenario> {
        match &self.0[key] {
            Value::Null => Ok(None),
            v => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| BadScenario(format!("{key}: expected an integer, got {v}"))),
        }
    }

    fn int(&self, key: &str) -> Result<i64, BadScenario> {
        self.opt_int(key)?
            .ok_or_else(|| BadScenario(format!("missing argument {key:?}")))
    }

    fn lease(&self) -> Result<Option<Duration>, BadScenario> {
        self.opt_int("lease_seconds")?
            .map(|s| {
                u64::try_from(s)
                    .map(Duration::from_secs)
                    .map_err(|_| BadScenario("lease_seconds: negative".into()))
            })
            .transpose()
    }
}

struct Host {
    queue: ActionQueue,
    clock: Arc<ManualClock>,
    /// Lease tokens saved by `claim_next` steps, by the name in `save_token`.
    tokens: HashMap<String, String>,
    /// Credential secrets saved by `issue_credential` steps, by the name in `save_secret`.
    secrets: HashMap<String, String>,
}

/// The create request of a `create_action` step (Err: the core refused its shape).
fn new_action(step: &Step<'_>) -> Result<Result<NewAction, actionq::Error>, BadScenario> {
    let mut request = NewAction::new(step.str("server_id")?, step.str("action_type")?);
    if let Some(params) = step.0.get("params").and_then(Value::as_object) {
        for (name, v) in params {
            let v = v
                .as_str()
                .ok_or_else(|| BadScenario(format!("params.{name}: not a string")))?;
            request = request.param(name, v);
        }
    }
    // `service_name` beside the parameters, as every host offers it.
    let mut request =
        match request.service_name_shorthand(step.opt_str("service_name")?.map(Into::into)) {
            Ok(request) => request,
            Err(e) => return Ok(Err(e)),
        };
    if let Some(alert) = step.opt_int("alert_id")? {
        request = request.alert_id(alert);
    }
    if let Some(by) = step.opt_str("created_by")? {
        request = request.created_by(by);
    }
    Ok(Ok(request))
}

fn value(record: impl serde::Serialize) -> Outcome {
    Ok(Some(
        serde_json::to_value(record).expect("records serialise"),
    ))
}

fn status(name: Option<&str>) -> Result<Option<ActionStatus>, actionq::Error> {
    name.map(str::parse).transpose()
}

impl Host {
    /// A `$name` token argument is a saved token; anything else is literal.
    fn token(&self, step: &Step<'_>) -> Result<String, BadScenario> {
        let given = step.str("lease_token")?;
        match given.strip_prefix('$') {
            Some(name) => self
                .tokens
                .get(name)
                .cloned()
                .ok_or_else(|| BadScenario(format!("no saved token {name:?}"))),
            None => Ok(given.to_owned()),
        }
    }

    /// A `$name` secret argument is a saved secret; anything else is literal.
    fn secret(&self, given: &str) -> Result<String, BadScenario> {
        match given.strip_prefix('$') {
            Some(name) => self
                .secrets
                .get(name)
                .cloned()
                .ok_or_else(|| BadScenario(format!("no saved secret {name:?}"))),
            None => Ok(given.to_owned()),
        }
    }

    /// The principal a step acts as (`"as": "$name"`, a saved secret), if any.
    fn acting(&self, step: &Step<'_>) -> Result<Option<Principal>, BadScenario> {
        match step.0.get("as").and_then(Value::as_str) {
            Some(given) => self
                .queue
                .authenticate(&self.secret(given)?)
                .map(Some)
                .map_err(|e| BadScenario(format!("as {given}: {e}"))),
            None => Ok(None),
        }
    }

    /// The queue acting as the step says: `"as"` a saved principal, `"by"`
    /// a trusted name (refused beside `"as"`), else the trusted host.
    fn actor_queue(
        &self,
        step: &Step<'_>,
    ) -> Result<Result<ActionQueue, actionq::Error>, BadScenario> {
        let queue = match self.acting(step)? {
            Some(principal) => self.queue.as_principal(&principal),
            None => self.queue.clone(),
        };
        Ok(match step.opt_str("by")? {
            Some(by) => queue.by(by),
            None => Ok(queue),
        })
    }

    fn call(&mut self, step: &Step<'_>) -> Result<Outcome, BadScenario> {
        let acting = match self.actor_queue(step)? {
            Ok(acting) => acting,
            Err(e) => return Ok(Err(e)),
        };
        let q = &acting;
        Ok(match step.name()? {
            "create_server" => q
                .create_server(step.str("id")?, step.opt_str("hostname")?)
                .and_then(value),
            "get_server" => q.get_server(step.str("id")?).and_then(value),
            "pause_server" => q.pause_server(step.str("id")?).and_then(value),
            "unpause_server" => q.unpause_server(step.str("id")?).and_then(value),
            "create_action" => match new_action(step)? {
                Ok(request) => q.create_action(&request).and_then(value),
                Err(e) => Err(e),
            },
            "get_action" => q.get_action(step.int("id")?).and_then(value),
            "list_actions" => {
                let defaults = ActionQuery::default();
                let server_id = step.opt_str("server_id")?.map(Into::into);
                let action_type = step.opt_str("action_type")?.map(Into::into);
                let limit = step.opt_int("limit")?.unwrap_or(defaults.limit);
                let offset = step.opt_int("offset")?.unwrap_or(defaults.offset);
                status(step.opt_str("status")?)
                    .and_then(|status| {
                        q.list_actions(&ActionQuery {
                            status,
                            server_id,
                            action_type,
                            limit,
                            offset,
                            before_id: None,
                        })
                    })
                    .and_then(value)
            }
            "list_server_actions" => {
                let defaults = ActionQuery::default();
                let server = step.str("server_id")?;
                let limit = step.opt_int("limit")?.unwrap_or(defaults.limit);
                let offset = step.opt_int("offset")?.unwrap_or(defaults.offset);
                status(step.opt_str("status")?)
                    .and_then(|s| q.list_server_actions(server, s, limit, offset, None))
                    .and_then(value)
            }
            "approve_action" => q.approve_action(step.int("id")?).and_then(value),
            "digest_matches" => q
                .get_action(step.int("id")?)
                .map(|a| Some(json!(a.digest_matches()))),
            "list_servers" => q.list_servers().and_then(value),
            "count_actions" => q.count_actions().and_then(value),
            "verify_audit" => q.verify_audit().and_then(value),
            "prune" => q.prune(step.int("older_than_seconds")?).and_then(value),
            "export" => match step.str("before")?.parse::<actionq::Timestamp>() {
                Ok(before) => q
                    .export(before)
                    .and_then(|lines| lines.collect::<actionq::Result<Vec<_>>>())
                    .and_then(value),
                Err(e) => Err(actionq::Error::InvalidInput(e.to_string())),
            },
            "issue_credential" => match step.str("role")?.parse::<Role>() {
                Ok(role) => q
                    .issue_credential(step.str("name")?, role, step.opt_str("server_id")?)
                    .inspect(|issued| {
                        if let Some(name) = step.0.get("save_secret").and_then(Value::as_str) {
                            self.secrets.insert(name.into(), issued.secret.clone());
                        }
                    })
                    .and_then(value),
                Err(e) => Err(e),
            },
            "list_credentials" => q.list_credentials().and_then(value),
            "revoke_credential" => q.revoke_credential(step.int("id")?).and_then(value),
            "authenticate" => q
                .authenticate(&self.secret(step.str("secret")?)?)
                .and_then(value),
            "reject_action" => q
                .reject_action(step.int("id")?, step.str("reason")?)
                .and_then(value),
            "cancel_action" => q.cancel_action(step.int("id")?).and_then(value),
            "claim_next" => match q.claim_next(step.str("server_id")?, step.lease()?, None) {
                Ok(Some(claim)) => {
                    if let Some(name) = step.opt_str("save_token")? {
                        self.tokens.insert(name.into(), claim.lease_token.clone());
                    }
                    let mut record = serde_json::to_value(&claim).expect("records serialise");
                    record["lease_token"] = json!("<token>");
                    Ok(Some(record))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
            "heartbeat" => q
                .heartbeat(step.int("id")?, &self.token(step)?, step.lease()?)
                .and_then(value),
            "await_cancel" => q
                .await_cancel(
                    step.int("id")?,
                    &self.token(step)?,
                    step.lease()?,
                    step.opt_int("wait_seconds")?
                        .map(|s| Duration::from_secs(s.unsigned_abs())),
                )
                .and_then(value),
            "report_cancelled" => q
                .report_cancelled(
                    step.int("id")?,
                    &self.token(step)?,
                    step.int("exit_code")?
                        .try_into()
                        .map_err(|_| BadScenario("exit_code: out of range".into()))?,
                    step.opt_str("stdout")?,
                    step.opt_str("stderr")?,
                )
                .and_then(value),
            "append_output" => q
                .append_output(
                    step.int("id")?,
                    &self.token(step)?,
                    step.int("seq")?,
                    step.opt_str("stdout")?,
                    step.opt_str("stderr")?,
                )
                .and_then(value),
            "output_since" => q
                .output_since(step.int("id")?, step.int("after")?, None)
                .and_then(value),
            "report_result" => q
                .report_result(
                    step.int("id")?,
                    &self.token(step)?,
                    step.int("exit_code")?
                        .try_into()
                        .map_err(|_| BadScenario("exit_code: out of range".into()))?,
                    step.opt_str("stdout")?,
                    step.opt_str("stderr")?,
                )
                .and_then(value),
            "expire_leases" => q.expire_leases().and_then(value),
            "expire_approvals" => q.expire_approvals().and_then(value),
            "lease_expiries" => value(q.lease_expiries()),
            "take_lease" => q
                .take_lease(
                    step.str("name")?,
                    step.str("holder")?,
                    Duration::from_secs(
                        u64::try_from(step.int("ttl_seconds")?)
                            .map_err(|_| BadScenario("ttl_seconds: negative".into()))?,
                    ),
                )
                .and_then(value),
            "release_lease" => q
                .release_lease(step.str("name")?, step.str("holder")?)
                .and_then(value),
            "register_delivery" => q
                .register_delivery(step.str("name")?, step.str("kind")?)
                .and_then(value),
            "record_delivery" => match step.str("outcome")?.parse::<actionq::DeliveryOutcome>() {
                Ok(outcome) => q
                    .record_delivery(
                        step.str("name")?,
                        step.str("holder")?,
                        step.int("event_id")?,
                        outcome,
                        step.opt_str("error")?,
                    )
                    .and_then(value),
                Err(e) => Err(e),
            },
            "record_sent" => q
                .record_sent(
                    step.str("name")?,
                    step.str("holder")?,
                    step.int("through_event_id")?,
                    step.int("sent")?,
                )
                .and_then(value),
            "list_deliveries" => q.list_deliveries().and_then(value),
            "events_since" => {
                let limit = step
                    .opt_int("limit")?
                    .unwrap_or(actionq::DEFAULT_EVENTS_LIMIT);
                q.events_since(step.int("cursor")?, limit, None)
                    .and_then(value)
            }
            "advance_clock" => {
                let seconds = step.int("seconds")?;
                self.clock.advance(chrono::TimeDelta::seconds(seconds));
                Ok(None)
            }
            other => return Err(BadScenario(format!("unknown call {other:?}"))),
        })
    }
}
