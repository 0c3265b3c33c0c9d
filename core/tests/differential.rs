//! Model-based differential testing: random operation sequences are applied to an
//! `ActionQueue` over each store of [`backends`] (`MemoryStore`, and `SqliteStore`
//! with the `sqlite` feature), and a small reference model of the contract (`docs/contract/README.md`) written here
//! from the contract (not from the implementation). All must agree on every
//! result and every error kind; the stores must also agree on every error
//! message. A new backend is added to [`backends`] and nowhere else. Lease tokens differ per store, so claims
//! are compared modulo their token, and each system uses its own tokens.
//!
//! proptest shrinks a failure to a minimal sequence. Cases: `ACTIONQ_DIFF_CASES`
//! (default 96; `make soak` raises it), sequence length up to 80.

#[cfg(feature = "postgres")]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actionq::{
    Action, ActionPage, ActionQuery, ActionQueue, ActionStatus, ErrorKind, Event, EventKind,
    ManualClock, MemoryStore, NewAction, QueueOptions, Server, Whitelist, LEASE_EXPIRED_STDERR,
};
#[cfg(feature = "sqlite")]
use actionq::{SqliteOptions, SqliteStore};
use chrono::{TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

// ---------------------------------------------------------------- operations

const SERVER_IDS: [&str; 6] = ["web-1", "web-2", "maint", "ghost", "-bad", ""];
const TYPES: [&str; 9] = [
    "restart_service",
    "clear_logs",
    "apt_update",
    "apt_upgrade_all",
    "install_package", // custom whitelist only
    "set_mode",        // custom whitelist only
    "scale",           // custom whitelist only
    "reboot",
    "",
];
/// Parameter values tried everywhere; which kind accepts which is in [`accepts`].
const VALUES: [&str; 22] = [
    "nginx",
    "ssh.service",
    "nginx.service",
    "reboot.target",
    "postgresql@15-main.service",
    "htop",
    "libc6-dev",
    "fast",
    "safe",
    "1",
    "3",
    "10",
    "0",
    "11",
    "03",
    "Htop",
    "-nginx",
    "ng inx",
    "a;b",
    "$(reboot)",
    "ñginx",
    "", // empty: malformed (InvalidInput), not a refused value
];

/// A second whitelist, loaded from config as a host would: every parameter
/// kind and conflict policy, a three-member exclusive group, a default value.
const CUSTOM_WHITELIST: &str = r#"{
  "actions": {
    "restart_service": {
      "command": "systemctl restart {service_name}",
      "params": { "service_name": { "kind": "systemd_unit" } },
      "conflict": "pending_duplicate"
    },
    "clear_logs": { "command": "journalctl --vacuum-time=7d" },
    "apt_update": {
      "command": "DEBIAN_FRONTEND=noninteractive apt-get update -q -o APT::Sandbox::User=root",
      "conflict": { "exclusive_group": "apt" }
    },
    "apt_upgrade_all": {
      "command": "DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -q -y -o Dpkg::Options::=\"--force-confdef\" -o Dpkg::Options::=\"--force-confold\" -o APT::Sandbox::User=root",
      "conflict": { "exclusive_group": "apt" }
    },
    "install_package": {
      "command": "DEBIAN_FRONTEND=noninteractive apt-get install -y {package}",
      "params": { "package": { "kind": "debian_package" } },
      "conflict": { "exclusive_group": "apt" }
    },
    "set_mode": {
      "command": "tool --mode {mode}",
      "params": { "mode": { "kind": "one_of", "values": ["fast", "safe"] } },
      "conflict": "pending_duplicate"
    },
    "scale": {
      "command": "scale --to {n}",
      "params": { "n": { "kind": "integer", "min": 1, "max": 10, "default": "3" } },
      "conflict": "pending_duplicate"
    }
  }
}"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Unit,
    Package,
    Mode,
    Count,
}

/// The declared parameters of a type (the same in both whitelists where the
/// type exists): (name, kind, default).
fn declared(action_type: &str) -> &'static [(&'static str, Kind, Option<&'static str>)] {
    match action_type {
        "restart_service" => &[("service_name", Kind::Unit, None)],
        "install_package" => &[("package", Kind::Package, None)],
        "set_mode" => &[("mode", Kind::Mode, None)],
        "scale" => &[("n", Kind::Count, Some("3"))],
        _ => &[],
    }
}

/// The validators of `docs/contract/whitelist.md#parameter-kinds`, as a table over [`VALUES`]: systemd unit names and Debian
/// package names (at least two characters, lower case) per their own rules, a
/// canonical integer in 1..=10, one of the literals.
fn accepts(kind: Kind, value: &str) -> bool {
    let safe = !value.is_empty()
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._-".contains(c));
    match kind {
        // Services only: no other unit type, no template, no systemd-*.
        Kind::Unit => {
            safe && !value.contains('@')
                && !value.ends_with(".target")
                && !value.starts_with("systemd-")
        }
        Kind::Package => {
            safe && value.len() >= 2
                && !value.contains('@')
                && !value.contains('_')
                && value.chars().all(|c| !c.is_ascii_uppercase())
        }
        Kind::Mode => value == "fast" || value == "safe",
        Kind::Count => ["1", "3", "10"].contains(&value),
    }
}

#[derive(Debug, Clone)]
struct Params {
    /// 6: the first declared parameter left out; 7: an undeclared one added;
    /// anything else: every declared parameter.
    shape: u8,
    values: [usize; 2],
}

fn params_of(action_type: &str, p: &Params) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (i, (name, _, _)) in declared(action_type).iter().enumerate() {
        if !(p.shape == 6 && i == 0) {
            m.insert((*name).to_owned(), VALUES[p.values[i]].to_owned());
        }
    }
    if p.shape == 7 {
        m.insert("force".into(), "1".into());
    }
    m
}

const CREATORS: [&str; 3] = ["dashboard", "monitor", ""];
const OUTPUT_CAP: usize = 16;

#[derive(Debug, Clone)]
enum Op {
    CreateServer(usize),
    Pause(usize),
    Unpause(usize),
    GetServer(usize),
    Create {
        server: usize,
        kind: usize,
        params: Params,
        alert: Option<i64>,
        creator: usize,
    },
    Approve(u8),
    Reject(u8, usize),
    Cancel(u8),
    Get(u8),
    Claim(usize, Option<u64>),
    Heartbeat(u8, bool, Option<u64>),
    Report(u8, bool, i32, Option<String>),
    Advance(i64),
    Expire,
    List {
        status: Option<usize>,
        server: Option<usize>,
        kind: Option<usize>,
        limit: i64,
        offset: i64,
    },
    ListServer(usize, Option<usize>, i64, i64),
    Events(i64, i64),
}

fn lease() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(0)),
        3 => Just(Some(1)),
        3 => Just(Some(30)),
        1 => Just(Some(90_000)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let server = 0..SERVER_IDS.len();
    // The first ten values are accepted by most kinds.
    let value = prop_oneof![3 => 0..12usize, 1 => 0..VALUES.len()];
    let create = (
        prop_oneof![6 => 0..3usize, 1 => 3..SERVER_IDS.len()],
        prop_oneof![12 => 0..7usize, 1 => 7..TYPES.len()],
        (0..10u8, value.clone(), value).prop_map(|(shape, a, b)| Params {
            shape,
            values: [a, b],
        }),
        prop_oneof![6 => Just(None), 2 => (1..5i64).prop_map(Some), 1 => (-1..=0i64).prop_map(Some)],
        prop_oneof![8 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)],
    )
        .prop_map(|(server, kind, params, alert, creator)| Op::Create {
            server,
            kind,
            params,
            alert,
            creator,
        });
    let output = prop_oneof![
        Just(None),
        "[a-z\\n]{0,40}".prop_map(Some),
        "\\PC{0,20}".prop_map(Some),
        "(?s).{0,12}".prop_map(Some), // control characters and NUL too
    ];
    prop_oneof![
        1 => server.clone().prop_map(Op::CreateServer),
        1 => server.clone().prop_map(Op::Pause),
        1 => server.clone().prop_map(Op::Unpause),
        1 => server.clone().prop_map(Op::GetServer),
        10 => create,
        3 => any::<u8>().prop_map(Op::Approve),
        2 => (any::<u8>(), prop_oneof![1 => Just(0usize), 6 => Just(1usize), 1 => Just(2usize)])
            .prop_map(|(a, r)| Op::Reject(a, r)),
        2 => any::<u8>().prop_map(Op::Cancel),
        1 => any::<u8>().prop_map(Op::Get),
        5 => (prop_oneof![4 => 0..3usize, 1 => 3..SERVER_IDS.len()], lease())
            .prop_map(|(s, l)| Op::Claim(s, l)),
        2 => (any::<u8>(), prop::bool::weighted(0.8), lease())
            .prop_map(|(c, right, l)| Op::Heartbeat(c, right, l)),
        3 => (any::<u8>(), prop::bool::weighted(0.8), prop_oneof![Just(0), Just(1), Just(-9)], output)
            .prop_map(|(c, right, code, out)| Op::Report(c, right, code, out)),
        3 => prop_oneof![
            Just(0i64), Just(1), Just(1_000_000), Just(29_000_000), Just(31_000_000),
            Just(301_000_000), Just(-1_000_000)
        ].prop_map(Op::Advance),
        2 => Just(Op::Expire),
        3 => (
            prop::option::of(0..7usize),
            prop::option::of(0..SERVER_IDS.len()),
            prop::option::of(0..TYPES.len()),
            prop_oneof![1 => Just(0i64), 6 => 1..4i64, 1 => Just(100i64), 1 => Just(101i64)],
            prop_oneof![6 => 0..5i64, 1 => Just(-1i64)],
        )
            .prop_map(|(status, server, kind, limit, offset)| Op::List {
                status,
                server,
                kind,
                limit,
                offset,
            }),
        1 => (
            server,
            prop::option::of(0..7usize),
            prop_oneof![1 => Just(0i64), 4 => 1..4i64],
            prop_oneof![4 => 0..3i64, 1 => Just(-1i64)],
        )
            .prop_map(|(s, st, l, o)| Op::ListServer(s, st, l, o)),
        2 => (-1..30i64, prop_oneof![1 => Just(0i64), 5 => 1..6i64, 1 => Just(1001i64)])
            .prop_map(|(c, l)| Op::Events(c, l)),
    ]
}

// ---------------------------------------------------------------- outcomes

#[derive(Debug, Clone, PartialEq)]
enum Out {
    Server(Server),
    Action(Action),
    Page(ActionPage),
    Claimed(Option<Action>),
    Actions(Vec<Action>),
    Events(Vec<Event>),
}

#[derive(Debug, Clone, PartialEq)]
struct Fail {
    kind: ErrorKind,
    message: String,
    existing: Option<i64>,
}

type Res = Result<Out, Fail>;

fn fail(e: actionq::Error) -> Fail {
    Fail {
        kind: e.kind(),
        message: e.to_string(),
        existing: e.existing_action_id(),
    }
}

fn model_fail(kind: ErrorKind) -> Fail {
    Fail {
        kind,
        message: String::new(),
        existing: None,
    }
}

// ---------------------------------------------------------------- systems under test

/// A queue plus the lease tokens its claims returned, by claim order.
struct Real {
    queue: ActionQueue,
    claims: Vec<(i64, String)>,
}

fn reason(r: usize) -> String {
    match r {
        0 => String::new(),
        1 => "not during business hours".into(),
        _ => "r".repeat(1001),
    }
}

fn query(
    status: Option<usize>,
    server: Option<usize>,
    kind: Option<usize>,
    limit: i64,
    offset: i64,
) -> ActionQuery {
    ActionQuery {
        status: status.map(|s| ActionStatus::ALL[s]),
        server_id: server.map(|s| SERVER_IDS[s].to_owned()),
        action_type: kind.map(|k| TYPES[k].to_owned()),
        limit,
        offset,
        before_id: None,
    }
}

/// Mostly an existing id (recent ones more often), sometimes 0 or one past the end.
fn pick_id(a: u8, n_ids: i64) -> i64 {
    if a >= 240 || n_ids == 0 {
        i64::from(a) % (n_ids + 2)
    } else if a >= 120 {
        (n_ids - i64::from(a) % 3).max(1)
    } else {
        1 + i64::from(a) % n_ids
    }
}

const WRONG_TOKEN: &str = "00000000-0000-0000-0000-000000000000";

impl Real {
    /// `n_ids` is how many actions the model has created (for picking ids).
    fn apply(&mut self, op: &Op, n_ids: i64, clock: &ManualClock) -> Res {
        let q = &self.queue;
        let pick = |a: u8| pick_id(a, n_ids);
        let secs = |l: Option<u64>| l.map(Duration::from_secs);
        let r = match op {
            Op::CreateServer(s) => q
                .create_server(SERVER_IDS[*s], Some("h.lan"))
                .map(Out::Server),
            Op::Pause(s) => q.pause_server(SERVER_IDS[*s]).map(Out::Server),
            Op::Unpause(s) => q.unpause_server(SERVER_IDS[*s]).map(Out::Server),
            Op::GetServer(s) => q.get_server(SERVER_IDS[*s]).map(Out::Server),
            Op::Create {
                server,
                kind,
                params,
                alert,
                creator,
            } => {
                let mut req = NewAction::new(SERVER_IDS[*server], TYPES[*kind])
                    .created_by(CREATORS[*creator]);
                req.params = params_of(TYPES[*kind], params);
                req.alert_id = *alert;
                q.create_action(&req).map(Out::Action)
            }
            Op::Approve(a) => q.approve_action(pick(*a)).map(Out::Action),
            Op::Reject(a, r) => q.reject_action(pick(*a), &reason(*r)).map(Out::Action),
            Op::Cancel(a) => q.cancel_action(pick(*a)).map(Out::Action),
            Op::Get(a) => q.get_action(pick(*a)).map(Out::Action),
            Op::Claim(s, l) => q.claim_next(SERVER_IDS[*s], secs(*l), None).map(|c| {
                Out::Claimed(c.map(|c| {
                    assert!(uuid::Uuid::parse_str(&c.lease_token).is_ok());
                    self.claims.push((c.action.id, c.lease_token));
                    c.action
                }))
            }),
            Op::Heartbeat(c, right, l) => match self.claim(*c, *right) {
                None => return Ok(Out::Claimed(None)),
                Some((id, token)) => q.heartbeat(id, &token, secs(*l)).map(Out::Action),
            },
            Op::Report(c, right, code, out) => match self.claim(*c, *right) {
                None => return Ok(Out::Claimed(None)),
                Some((id, token)) => self
                    .queue
                    .report_result(id, &token, *code, out.as_deref(), Some("stderr"))
                    .map(Out::Action),
            },
            Op::Advance(_) => return Ok(Out::Claimed(None)),
            Op::Expire => q.expire_leases().map(Out::Actions),
            Op::List {
                status,
                server,
                kind,
                limit,
                offset,
            } => q
                .list_actions(&query(*status, *server, *kind, *limit, *offset))
                .map(Out::Page),
            Op::ListServer(s, st, l, o) => q
                .list_server_actions(
                    SERVER_IDS[*s],
                    st.map(|i| ActionStatus::ALL[i]),
                    *l,
                    *o,
                    None,
                )
                .map(Out::Page),
            Op::Events(c, l) => q.events_since(*c, *l, None).map(Out::Events),
        };
        let _ = clock;
        r.map_err(fail)
    }

    fn claim(&self, c: u8, right: bool) -> Option<(i64, String)> {
        if self.claims.is_empty() {
            return None;
        }
        let (id, token) = self.claims[usize::from(c) % self.claims.len()].clone();
        Some((id, if right { token } else { WRONG_TOKEN.into() }))
    }
}

// ---------------------------------------------------------------- reference model

/// The contract (`docs/contract/README.md`), re-stated as directly as possible.
struct Model {
    /// The custom whitelist is in force (else the default one).
    custom: bool,
    /// Its version, which every action carries and its digest covers.
    whitelist_version: String,
    servers: BTreeMap<String, Server>,
    actions: Vec<Action>,
    tokens: HashMap<i64, String>,
    events: Vec<Event>,
    claims: Vec<(i64, String)>,
}

fn valid_server_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn apt_env() -> BTreeMap<String, String> {
    [("DEBIAN_FRONTEND".to_owned(), "noninteractive".to_owned())].into()
}

/// (command, argv, env) straight from the table in
/// `docs/contract/whitelist.md#default-whitelist`.
fn spec_command(
    kind: &str,
    values: &BTreeMap<&str, String>,
) -> (String, Vec<String>, BTreeMap<String, String>) {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match kind {
        "install_package" => {
            let p = values["package"].as_str();
            (
                format!("DEBIAN_FRONTEND=noninteractive apt-get install -y {p}"),
                v(&["apt-get", "install", "-y", p]),
                apt_env(),
            )
        }
        "set_mode" => {
            let m = values["mode"].as_str();
            (format!("tool --mode {m}"), v(&["tool", "--mode", m]), BTreeMap::new())
        }
        "scale" => {
            let n = values["n"].as_str();
            (format!("scale --to {n}"), v(&["scale", "--to", n]), BTreeMap::new())
        }
        "restart_service" => {
            let s = values["service_name"].as_str();
            (format!("systemctl restart {s}"), v(&["systemctl", "restart", s]), BTreeMap::new())
        }
        "clear_logs" => (
            "journalctl --vacuum-time=7d".into(),
            v(&["journalctl", "--vacuum-time=7d"]),
            BTreeMap::new(),
        ),
        "apt_update" => (
            "DEBIAN_FRONTEND=noninteractive apt-get update -q -o APT::Sandbox::User=root".into(),
            v(&["apt-get", "update", "-q", "-o", "APT::Sandbox::User=root"]),
            apt_env(),
        ),
        "apt_upgrade_all" => (
            "DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -q -y -o Dpkg::Options::=\"--force-confdef\" -o Dpkg::Options::=\"--force-confold\" -o APT::Sandbox::User=root".into(),
            v(&[
                "apt-get", "dist-upgrade", "-q", "-y", "-o", "Dpkg::Options::=--force-confdef",
                "-o", "Dpkg::Options::=--force-confold", "-o", "APT::Sandbox::User=root",
            ]),
            apt_env(),
        ),
        _ => unreachable!(),
    }
}

impl Model {
    fn new(custom: bool) -> Self {
        let whitelist = if custom {
            Whitelist::from_json(CUSTOM_WHITELIST).expect("custom whitelist")
        } else {
            Whitelist::default()
        };
        Model {
            custom,
            whitelist_version: whitelist.version().to_owned(),
            servers: BTreeMap::new(),
            actions: Vec::new(),
            tokens: HashMap::new(),
            events: Vec::new(),
            claims: Vec::new(),
        }
    }

    fn log(
        &mut self,
        id: i64,
        from: Option<ActionStatus>,
        to: ActionStatus,
        by: &str,
        at: chrono::DateTime<Utc>,
        detail: Option<String>,
    ) {
        let subject = self.actions[id as usize - 1].server_id.clone();
        self.push_event(Event {
            id: 0,
            action_id: Some(id),
            from_status: from,
            to_status: Some(to),
            by: by.into(),
            at,
            detail,
            kind: EventKind::Action,
            subject,
        });
    }

    /// Appends `event` with the next id.
    fn push_event(&mut self, event: Event) {
        let id = self.events.len() as i64 + 1;
        self.events.push(Event { id, ..event });
    }

    fn server(&self, id: &str) -> Result<&Server, Fail> {
        self.servers.get(id).ok_or(model_fail(ErrorKind::NotFound))
    }

    fn action(&mut self, id: i64) -> Result<&mut Action, Fail> {
        if id < 1 || id as usize > self.actions.len() {
            return Err(model_fail(ErrorKind::NotFound));
        }
        Ok(&mut self.actions[id as usize - 1])
    }

    /// Moves action `id` from one of `from` to `to`, or Conflict.
    fn transition(
        &mut self,
        id: i64,
        from: &[ActionStatus],
        edit: impl FnOnce(&mut Action),
        by: &str,
        now: chrono::DateTime<Utc>,
        detail: Option<String>,
    ) -> Res {
        let a = self.action(id)?;
        if !from.contains(&a.status) {
            return Err(model_fail(ErrorKind::Conflict));
        }
        let was = a.status;
        edit(a);
        let a = a.clone();
        self.log(id, Some(was), a.status, by, now, detail);
        Ok(Out::Action(a))
    }

    fn holder(&mut self, id: i64, token: &str, now: chrono::DateTime<Utc>) -> Result<(), Fail> {
        let held = self.tokens.get(&id).cloned();
        let a = self.action(id)?;
        if a.status != ActionStatus::Executing
            || held.as_deref() != Some(token)
            || a.lease_expires_at.is_none_or(|t| t <= now)
        {
            return Err(model_fail(ErrorKind::Conflict));
        }
        Ok(())
    }

    fn lease(l: Option<u64>) -> Result<TimeDelta, Fail> {
        match l.unwrap_or(300) {
            0 => Err(model_fail(ErrorKind::InvalidInput)),
            s if s > 24 * 3600 => Err(model_fail(ErrorKind::InvalidInput)),
            s => Ok(TimeDelta::seconds(s as i64)),
        }
    }

    fn list(&self, q: &ActionQuery) -> Res {
        if !(1..=100).contains(&q.limit) || q.offset < 0 {
            return Err(model_fail(ErrorKind::InvalidInput));
        }
        let mut matching: Vec<&Action> = self
            .actions
            .iter()
            .filter(|a| {
                q.status.is_none_or(|s| a.status == s)
                    && q.server_id.as_deref().is_none_or(|s| a.server_id == s)
                    && q.action_type.as_deref().is_none_or(|t| a.action_type == t)
            })
            .collect();
        matching.sort_by_key(|a| std::cmp::Reverse((a.created_at, a.id)));
        let more = (q.offset + q.limit) < matching.len() as i64;
        Ok(Out::Page(ActionPage {
            next_before_id: more.then(|| matching[(q.offset + q.limit - 1) as usize].id),
            total: matching.len() as u64,
            actions: matching
                .iter()
                .skip(q.offset as usize)
                .take(q.limit as usize)
                .map(|a| (*a).clone())
                .collect(),
            limit: q.limit,
            offset: q.offset,
        }))
    }

    /// Fails the executing actions whose lease ran out at `now`: the core's
    /// `expire_leases`, also run first by every read and claim.
    fn expire(&mut self, now: chrono::DateTime<Utc>) -> Result<Vec<Action>, Fail> {
        use ActionStatus::*;
        let due: Vec<i64> = self
            .actions
            .iter()
            .filter(|a| a.status == Executing && a.lease_expires_at.is_some_and(|t| t <= now))
            .map(|a| a.id)
            .collect();
        let mut out = Vec::new();
        for id in due {
            self.tokens.remove(&id);
            let pending_cancel = self.action(id)?.cancel_requested_at.is_some();
            let Out::Action(a) = self.transition(
                id,
                &[Executing],
                |a| {
                    a.status = Failed;
                    a.exit_code = Some(-1);
                    a.completed_at = Some(now);
                    a.stderr = Some(if a.cancel_requested_at.is_some() {
                        actionq::LEASE_EXPIRED_WITH_CANCEL_STDERR.into()
                    } else {
                        LEASE_EXPIRED_STDERR.into()
                    });
                },
                "system",
                now,
                Some(if pending_cancel {
                    "lease expired (a cancel was pending)".into()
                } else {
                    "lease expired".into()
                }),
            )?
            else {
                unreachable!()
            };
            out.push(a);
        }
        Ok(out)
    }

    fn apply(&mut self, op: &Op, now: chrono::DateTime<Utc>) -> Res {
        use ActionStatus::*;
        let n_ids = self.actions.len() as i64;
        // QueueOptions::expire_leases_on_read (on by default): reads and claims
        // first fail what ran out, once their input is in bounds (a refused
        // read changes nothing).
        let page_bad = |limit: i64, offset: i64| !(1..=100).contains(&limit) || offset < 0;
        let input_bad = match op {
            Op::Claim(_, l) => Self::lease(*l).is_err(),
            Op::List { limit, offset, .. } => page_bad(*limit, *offset),
            Op::ListServer(_, _, l, o) => page_bad(*l, *o),
            Op::Events(c, l) => *c < 0 || !(1..=1000).contains(l),
            _ => false,
        };
        if input_bad {
            return Err(model_fail(ErrorKind::InvalidInput));
        }
        if matches!(
            op,
            Op::Get(_) | Op::Claim(..) | Op::List { .. } | Op::ListServer(..) | Op::Events(..)
        ) {
            self.expire(now)?;
        }
        let pick = |a: u8| pick_id(a, n_ids);
        match op {
            Op::CreateServer(s) => {
                let id = SERVER_IDS[*s];
                if !valid_server_id(id) {
                    return Err(model_fail(ErrorKind::InvalidInput));
                }
                if self.servers.contains_key(id) {
                    return Err(model_fail(ErrorKind::Conflict));
                }
                let server = Server {
                    id: id.into(),
                    hostname: Some("h.lan".into()),
                    is_paused: false,
                    paused_at: None,
                    created_at: now,
                };
                self.servers.insert(id.into(), server.clone());
                Ok(Out::Server(server))
            }
            Op::Pause(s) | Op::Unpause(s) => {
                let pause = matches!(op, Op::Pause(_));
                let server = self
                    .servers
                    .get_mut(SERVER_IDS[*s])
                    .ok_or(model_fail(ErrorKind::NotFound))?;
                if pause == server.is_paused {
                    return Ok(Out::Server(server.clone()));
                }
                server.is_paused = pause;
                server.paused_at = pause.then_some(now);
                let server = server.clone();
                // A change of state is an audit event by the caller.
                self.push_event(Event {
                    id: 0,
                    action_id: None,
                    from_status: None,
                    to_status: None,
                    by: actionq::DASHBOARD.into(),
                    at: now,
                    detail: Some(if pause { "paused" } else { "unpaused" }.into()),
                    kind: EventKind::Server,
                    subject: server.id.clone(),
                });
                Ok(Out::Server(server))
            }
            Op::GetServer(s) => self.server(SERVER_IDS[*s]).cloned().map(Out::Server),
            Op::Create {
                server,
                kind,
                params,
                alert,
                creator,
            } => {
                let (sid, kind, by) = (SERVER_IDS[*server], TYPES[*kind], CREATORS[*creator]);
                let given = params_of(kind, params);
                let known = if self.custom {
                    TYPES[..7].contains(&kind)
                } else {
                    TYPES[..4].contains(&kind)
                };
                // 1. malformed input: bad ids or alert, a missing or empty
                //    parameter, an undeclared one (of a whitelisted type).
                let shape_bad = known
                    && (declared(kind).iter().any(|(name, _, default)| {
                        given.get(*name).map_or(default.is_none(), |v| v.is_empty())
                    }) || given
                        .keys()
                        .any(|k| !declared(kind).iter().any(|d| d.0 == k)));
                if !valid_server_id(sid)
                    || kind.is_empty()
                    || by.is_empty()
                    || alert.is_some_and(|a| a < 1)
                    || shape_bad
                {
                    return Err(model_fail(ErrorKind::InvalidInput));
                }
                // 2. unknown server
                let paused = self.server(sid)?.is_paused;
                // 3. whitelist
                if !known {
                    return Err(model_fail(ErrorKind::NotWhitelisted));
                }
                let values: BTreeMap<&str, String> = declared(kind)
                    .iter()
                    .map(|(name, _, default)| {
                        let v = given.get(*name).cloned().or(default.map(str::to_owned));
                        (*name, v.unwrap())
                    })
                    .collect();
                // A bare unit name means `<name>.service`.
                let values: BTreeMap<&str, String> = values
                    .into_iter()
                    .map(|(name, v)| {
                        let unit = declared(kind)
                            .iter()
                            .any(|d| d.0 == name && d.1 == Kind::Unit);
                        let v = if unit && !v.ends_with(".service") && accepts(Kind::Unit, &v) {
                            format!("{v}.service")
                        } else {
                            v
                        };
                        (name, v)
                    })
                    .collect();
                if declared(kind)
                    .iter()
                    .any(|(name, k, _)| !accepts(*k, &values[name]))
                {
                    return Err(model_fail(ErrorKind::NotWhitelisted));
                }
                // 4. conflict policy
                let service_name = values.get("service_name").cloned();
                let (command, argv, env) = spec_command(kind, &values);
                let in_group =
                    |t: &str| t.starts_with("apt_") || (self.custom && t == "install_package");
                let clash = self.actions.iter().find(|a| {
                    a.server_id == sid
                        && match kind {
                            "restart_service" | "set_mode" | "scale" => {
                                a.status == Pending && a.action_type == kind && a.command == command
                            }
                            t if in_group(t) => {
                                in_group(&a.action_type)
                                    && matches!(a.status, Pending | Approved | Executing)
                            }
                            _ => false,
                        }
                });
                if let Some(existing) = clash {
                    return Err(Fail {
                        kind: ErrorKind::Conflict,
                        message: String::new(),
                        existing: Some(existing.id),
                    });
                }
                // 5. approval
                let id = n_ids + 1;
                let action = Action {
                    id,
                    server_id: sid.into(),
                    action_type: kind.into(),
                    status: if paused { Pending } else { Approved },
                    service_name,
                    command,
                    argv,
                    env,
                    alert_id: *alert,
                    created_at: now,
                    created_by: by.into(),
                    approved_at: (!paused).then_some(now),
                    approved_by: (!paused).then(|| "auto".to_owned()),
                    rejected_at: None,
                    rejected_by: None,
                    rejection_reason: None,
                    cancelled_at: None,
                    cancelled_by: None,
                    executed_at: None,
                    lease_expires_at: None,
                    completed_at: None,
                    exit_code: None,
                    stdout: None,
                    stderr: None,
                    approvals: Vec::new(),
                    digest: String::new(),
                    whitelist_version: self.whitelist_version.clone(),
                    params: values
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                    cancel_requested_at: None,
                    cancel_requested_by: None,
                };
                let action = Action {
                    digest: action.computed_digest(),
                    ..action
                };
                self.actions.push(action.clone());
                let detail = (action.status == ActionStatus::Approved)
                    .then(|| actionq::AUTO_APPROVED.to_owned());
                self.log(id, None, action.status, by, now, detail);
                Ok(Out::Action(action))
            }
            Op::Approve(a) => self.transition(
                pick(*a),
                &[Pending],
                |a| {
                    a.status = Approved;
                    a.approved_at = Some(now);
                    a.approved_by = Some("dashboard".into());
                    a.approvals.push(actionq::Approval {
                        by: "dashboard".into(),
                        at: now,
                        digest: a.digest.clone(),
                    });
                },
                "dashboard",
                now,
                None,
            ),
            Op::Reject(a, r) => {
                let reason = reason(*r);
                if !(1..=1000).contains(&reason.chars().count()) {
                    return Err(model_fail(ErrorKind::InvalidInput));
                }
                let detail = Some(reason.clone());
                self.transition(
                    pick(*a),
                    &[Pending],
                    |a| {
                        a.status = Rejected;
                        a.rejected_at = Some(now);
                        a.rejected_by = Some("dashboard".into());
                        a.rejection_reason = Some(reason);
                    },
                    "dashboard",
                    now,
                    detail,
                )
            }
            Op::Cancel(a) => {
                let id = pick(*a);
                // docs/contract/cancel-and-output.md#cancel-request: on an
                // executing action, a request (once); the status stays.
                if self.action(id)?.status == Executing {
                    // Its lease ran out: nobody is left to hear a request.
                    if self.action(id)?.lease_expires_at.is_none_or(|t| t <= now) {
                        return Err(model_fail(ErrorKind::Conflict));
                    }
                    if self.action(id)?.cancel_requested_at.is_some() {
                        return Ok(Out::Action(self.action(id)?.clone()));
                    }
                    return self.transition(
                        id,
                        &[Executing],
                        |a| {
                            a.cancel_requested_at = Some(now);
                            a.cancel_requested_by = Some("dashboard".into());
                        },
                        "dashboard",
                        now,
                        Some(actionq::CANCEL_REQUESTED.into()),
                    );
                }
                self.transition(
                    id,
                    &[Pending, Approved],
                    |a| {
                        a.status = Cancelled;
                        a.cancelled_at = Some(now);
                        a.cancelled_by = Some("dashboard".into());
                    },
                    "dashboard",
                    now,
                    None,
                )
            }
            Op::Get(a) => self.action(pick(*a)).map(|a| Out::Action(a.clone())),
            Op::Claim(s, l) => {
                let lease = Self::lease(*l)?;
                self.server(SERVER_IDS[*s])?;
                let oldest = self
                    .actions
                    .iter()
                    .filter(|a| a.server_id == SERVER_IDS[*s] && a.status == Approved)
                    .min_by_key(|a| (a.created_at, a.id))
                    .map(|a| a.id);
                let Some(id) = oldest else {
                    return Ok(Out::Claimed(None));
                };
                let token = format!("model-token-{id}");
                self.tokens.insert(id, token.clone());
                self.claims.push((id, token));
                let out = self.transition(
                    id,
                    &[Approved],
                    |a| {
                        a.status = Executing;
                        a.executed_at = Some(now);
                        a.lease_expires_at = Some(now + lease);
                    },
                    "agent",
                    now,
                    None,
                )?;
                let Out::Action(a) = out else { unreachable!() };
                Ok(Out::Claimed(Some(a)))
            }
            Op::Heartbeat(c, right, l) => {
                let Some((id, token)) = self.claim(*c, *right) else {
                    return Ok(Out::Claimed(None));
                };
                let lease = Self::lease(*l)?;
                self.holder(id, &token, now)?;
                let a = self.action(id)?;
                a.lease_expires_at = Some(now + lease);
                Ok(Out::Action(a.clone()))
            }
            Op::Report(c, right, code, out) => {
                let Some((id, token)) = self.claim(*c, *right) else {
                    return Ok(Out::Claimed(None));
                };
                self.holder(id, &token, now)?;
                self.tokens.remove(&id);
                let capped = out.as_ref().map(|s| s.chars().take(OUTPUT_CAP).collect());
                let code = *code;
                self.transition(
                    id,
                    &[Executing],
                    |a| {
                        a.status = if code == 0 { Completed } else { Failed };
                        a.exit_code = Some(code);
                        a.completed_at = Some(now);
                        a.stdout = capped;
                        a.stderr = Some("stderr".into());
                    },
                    "agent",
                    now,
                    Some(format!("exit_code={code}")),
                )
            }
            Op::Advance(_) => Ok(Out::Claimed(None)),
            Op::Expire => self.expire(now).map(Out::Actions),
            Op::List {
                status,
                server,
                kind,
                limit,
                offset,
            } => self.list(&query(*status, *server, *kind, *limit, *offset)),
            Op::ListServer(s, st, l, o) => {
                self.server(SERVER_IDS[*s])?;
                self.list(&query(*st, Some(*s), None, *l, *o))
            }
            Op::Events(c, l) => {
                if *c < 0 || !(1..=1000).contains(l) {
                    return Err(model_fail(ErrorKind::InvalidInput));
                }
                Ok(Out::Events(
                    self.events
                        .iter()
                        .filter(|e| e.id > *c)
                        .take(*l as usize)
                        .cloned()
                        .collect(),
                ))
            }
        }
    }

    fn claim(&self, c: u8, right: bool) -> Option<(i64, String)> {
        if self.claims.is_empty() {
            return None;
        }
        let (id, token) = self.claims[usize::from(c) % self.claims.len()].clone();
        Some((id, if right { token } else { WRONG_TOKEN.into() }))
    }
}

// ---------------------------------------------------------------- the property

/// Outcome counts per operation kind, printed at the end so a run shows it
/// exercised successes and every error path (not just rejections).
static TALLY: std::sync::Mutex<BTreeMap<String, BTreeMap<String, u64>>> =
    std::sync::Mutex::new(BTreeMap::new());

fn tally(op: &Op, res: &Res) {
    let name = format!("{op:?}");
    let name = name.split(['(', ' ']).next().unwrap_or("?").to_owned();
    let outcome = match res {
        Ok(Out::Claimed(None)) => "none".to_owned(),
        Ok(_) => "ok".to_owned(),
        Err(f) => f.kind.code().to_owned(),
    };
    *TALLY
        .lock()
        .unwrap()
        .entry(name)
        .or_default()
        .entry(outcome)
        .or_default() += 1;
}

/// Every store the property runs on, by name, each a fresh queue (files under
/// `dir`). The first is the one compared with the model; every other must give
/// exactly its results. Register a new backend here.
fn backends(dir: &std::path::Path) -> Result<Vec<(&'static str, ActionQueue)>, TestCaseError> {
    let _ = dir; // only file-backed stores use it
    #[allow(unused_mut)] // without the sqlite feature there is one store
    let mut stores = vec![("MemoryStore", ActionQueue::new(MemoryStore::new()))];
    #[cfg(feature = "sqlite")]
    stores.push((
        "SqliteStore",
        ActionQueue::new(
            SqliteStore::open(dir.join("diff.sqlite3"), &SqliteOptions::default())
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        ),
    ));
    #[cfg(feature = "postgres")]
    if let Some(url) = common::pg::fresh_schema_url() {
        stores.push((
            "PostgresStore",
            ActionQueue::new(
                actionq::PostgresStore::open(&url, &actionq::PostgresOptions::default())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
            ),
        ));
    }
    Ok(stores)
}

fn run(custom: bool, ops: &[Op]) -> Result<usize, TestCaseError> {
    let whitelist = if custom {
        Whitelist::from_json(CUSTOM_WHITELIST).expect("custom whitelist")
    } else {
        Whitelist::default()
    };
    let start = "2026-03-01T12:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let options = QueueOptions {
        output_cap_chars: OUTPUT_CAP,
        ..QueueOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut reals: Vec<(&str, Real)> = backends(dir.path())?
        .into_iter()
        .map(|(name, queue)| {
            let queue = queue
                .with_whitelist(whitelist.clone())
                .with_clock(clock.clone())
                .with_options(options.clone());
            let claims = Vec::new();
            (name, Real { queue, claims })
        })
        .collect();
    let mut model = Model::new(custom);
    let setup = [
        Op::CreateServer(0),
        Op::CreateServer(1),
        Op::CreateServer(2),
        Op::Pause(2),
    ];
    for (step, op) in setup.iter().chain(ops).enumerate() {
        if let Op::Advance(micros) = op {
            clock.advance(TimeDelta::microseconds(*micros));
        }
        let now = actionq::Clock::now(&*clock);
        let n_ids = model.actions.len() as i64;
        let expected = model.apply(op, now);
        tally(op, &expected);
        let got: Vec<Res> = reals
            .iter_mut()
            .map(|(_, real)| real.apply(op, n_ids, &clock))
            .collect();
        let got_first = &got[0];
        for ((name, _), got_other) in reals.iter().zip(&got).skip(1) {
            prop_assert_eq!(
                got_first,
                got_other,
                "step {}: {:?}: {} vs {}",
                step,
                op,
                reals[0].0,
                name
            );
        }
        match (&expected, got_first) {
            (Ok(want), Ok(got)) => {
                prop_assert_eq!(want, got, "step {}: {:?}: model vs queue", step, op)
            }
            (Err(want), Err(got)) => {
                prop_assert_eq!(
                    (want.kind, want.existing),
                    (got.kind, got.existing),
                    "step {}: {:?}: error kind (queue said {:?})",
                    step,
                    op,
                    got.message
                );
                prop_assert!(
                    got.kind != ErrorKind::Storage,
                    "storage error {}",
                    got.message
                );
            }
            _ => prop_assert!(
                false,
                "step {}: {:?}: model {:?} vs queue {:?}",
                step,
                op,
                expected,
                got_first
            ),
        }
    }
    // Whole-state agreement at the end.
    let all = |q: &ActionQueue| -> Vec<Action> {
        (0..)
            .map(|page| {
                q.list_actions(&ActionQuery {
                    limit: 100,
                    offset: page * 100,
                    ..ActionQuery::default()
                })
                .unwrap()
                .actions
            })
            .take_while(|p| !p.is_empty())
            .flatten()
            .collect()
    };
    let m = all(&reals[0].1.queue);
    for (name, real) in &reals[1..] {
        prop_assert_eq!(
            &m,
            &all(&real.queue),
            "final actions: {} vs {}",
            reals[0].0,
            name
        );
    }
    // The listings above swept what ran out; so does the model.
    model
        .expire(actionq::Clock::now(&*clock))
        .expect("expiry never fails");
    let mut by_model = model.actions.clone();
    by_model.sort_by_key(|a| std::cmp::Reverse((a.created_at, a.id)));
    prop_assert_eq!(&m, &by_model, "final actions: queue vs model");
    let events = reals[0].1.queue.events_since(0, 1000, None).unwrap();
    for (name, real) in &reals[1..] {
        let theirs = real.queue.events_since(0, 1000, None).unwrap();
        prop_assert_eq!(
            &events,
            &theirs,
            "final audit log: {} vs {}",
            reals[0].0,
            name
        );
    }
    prop_assert_eq!(&events, &model.events, "final audit log: queue vs model");
    for (name, real) in &reals {
        let report = real.queue.verify_audit().unwrap();
        prop_assert_eq!(
            (report.checked, report.first_bad_event_id),
            (events.len() as u64, None),
            "audit chain of {}",
            name
        );
    }
    // The running totals (count_actions) agree with the actions themselves, and
    // the server list with the model's servers, on every store.
    let mut totals: BTreeMap<(String, ActionStatus), u64> = BTreeMap::new();
    for a in &model.actions {
        *totals.entry((a.server_id.clone(), a.status)).or_default() += 1;
    }
    let want: Vec<(String, ActionStatus, u64)> =
        totals.into_iter().map(|((s, st), n)| (s, st, n)).collect();
    let servers: Vec<&Server> = model.servers.values().collect();
    for (name, real) in &reals {
        let got: Vec<(String, ActionStatus, u64)> = real
            .queue
            .count_actions()
            .unwrap()
            .into_iter()
            .map(|c| (c.server_id, c.status, c.count))
            .collect();
        prop_assert_eq!(&got, &want, "count_actions: {} vs the model", name);
        let listed = real.queue.list_servers().unwrap();
        prop_assert_eq!(
            listed.iter().collect::<Vec<_>>(),
            servers.clone(),
            "list_servers: {} vs the model",
            name
        );
    }
    Ok(model.actions.len())
}

/// Every outcome each operation can have, by the error code it fails with
/// ("ok" for success, "none" for an empty claim or a step with nothing to act
/// on): the property must reach each one, or a rule's error path went untested.
const REQUIRED_OUTCOMES: &[(&str, &[&str])] = &[
    ("Advance", &["none"]),
    ("Approve", &["CONFLICT", "NOT_FOUND", "ok"]),
    ("Cancel", &["CONFLICT", "NOT_FOUND", "ok"]),
    ("Claim", &["NOT_FOUND", "VALIDATION_ERROR", "none", "ok"]),
    (
        "Create",
        &[
            "CONFLICT",
            "FORBIDDEN",
            "NOT_FOUND",
            "VALIDATION_ERROR",
            "ok",
        ],
    ),
    ("CreateServer", &["CONFLICT", "VALIDATION_ERROR", "ok"]),
    ("Events", &["VALIDATION_ERROR", "ok"]),
    ("Expire", &["ok"]),
    ("Get", &["NOT_FOUND", "ok"]),
    ("GetServer", &["NOT_FOUND", "ok"]),
    ("Heartbeat", &["CONFLICT", "VALIDATION_ERROR", "none", "ok"]),
    ("List", &["VALIDATION_ERROR", "ok"]),
    ("ListServer", &["NOT_FOUND", "VALIDATION_ERROR", "ok"]),
    ("Pause", &["NOT_FOUND", "ok"]),
    (
        "Reject",
        &["CONFLICT", "NOT_FOUND", "VALIDATION_ERROR", "ok"],
    ),
    ("Report", &["CONFLICT", "none", "ok"]),
    ("Unpause", &["NOT_FOUND", "ok"]),
];

fn missing_outcomes() -> Vec<String> {
    let tally = TALLY.lock().unwrap();
    let unlisted = tally
        .keys()
        .filter(|op| !REQUIRED_OUTCOMES.iter().any(|(r, _)| r == op))
        .map(|op| format!("{op}: not in REQUIRED_OUTCOMES"));
    REQUIRED_OUTCOMES
        .iter()
        .flat_map(|(op, outcomes)| outcomes.iter().map(move |o| (*op, *o)))
        .filter(|(op, o)| tally.get(*op).and_then(|t| t.get(*o)).is_none())
        .map(|(op, o)| format!("{op}:{o}"))
        .chain(unlisted)
        .collect()
}

/// The property, then the proof that it exercised every outcome. Rare outcomes
/// get more batches of cases (up to a bound) rather than a flaky failure; the
/// tally is read only after this test's own runs, so no other test races it.
#[test]
fn memory_sqlite_and_model_agree() {
    let config = ProptestConfig {
        cases: std::env::var("ACTIONQ_DIFF_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(96),
        max_shrink_iters: 4096,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let strategy = (any::<bool>(), prop::collection::vec(op(), 1..80));
    for _batch in 0..8 {
        let mut runner = TestRunner::new(config.clone());
        if let Err(e) = runner.run(&strategy, |(custom, ops)| run(custom, &ops).map(|_| ())) {
            panic!("{e}");
        }
        if missing_outcomes().is_empty() {
            break;
        }
    }
    for (op, outcomes) in TALLY.lock().unwrap().iter() {
        eprintln!("differential: {op:<12} {outcomes:?}");
    }
    let missing = missing_outcomes();
    assert!(
        missing.is_empty(),
        "outcomes the property never reached: {missing:?}"
    );
}
