//! Identity, the behavioural suite's part for credentials and permissions, run
//! against every store ([`for_each_store!`]): issuing, listing, revoking and
//! authenticating credentials, and the permission matrix — every role × every
//! operation × own/other server (or own/other action), each cell on a fresh
//! queue, where a refusal must be PermissionDenied and change nothing.

mod common;

use std::collections::BTreeMap;

use actionq::identity::{authorize, authorize_role, secret_digest, Target};
use actionq::store::{Change, ChangeKind};
use actionq::{
    ActionQuery, ActionQueue, ActionStatus, Actor, Error, ErrorKind, EventKind, NewAction,
    Operation, Principal, Role,
};
use common::Env;

fn kind<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

// ------------------------------------------------------------ credentials

fn issued_secret_has_prefix_and_32_random_bytes(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    // The names and prefixes README "Identity" promises, written out (not
    // read back from `Role`, which this checks).
    let roles = [
        (Role::Admin, "admin", "aq_ad_"),
        (Role::Operator, "operator", "aq_op_"),
        (Role::Requester, "requester", "aq_rq_"),
        (Role::Viewer, "viewer", "aq_vw_"),
        (Role::Agent, "agent", "aq_ag_"),
    ];
    assert_eq!(roles.map(|(role, _, _)| role), Role::ALL);
    for (role, name, prefix) in roles {
        assert_eq!((role.as_str(), role.to_string()), (name, name.to_owned()));
        assert_eq!(role.secret_prefix(), prefix);
        let server = (role == Role::Agent).then_some("web-1");
        let issued = q.issue_credential("someone", role, server).unwrap();
        let secret = &issued.secret;
        assert!(secret.starts_with(prefix), "{secret}");
        let random = &secret[prefix.len()..];
        // 32 bytes in URL-safe base64 without padding: 43 characters.
        assert_eq!(random.len(), 43, "{secret}");
        assert!(random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        // The shown prefix: the role's and a few random characters, enough
        // to tell credentials apart, far too few to authenticate.
        let shown = &issued.credential.prefix;
        assert!(secret.starts_with(shown.as_str()), "{shown} of {secret}");
        assert!(
            shown.len() > prefix.len() && shown.len() < secret.len() / 2,
            "{shown} of {secret}"
        );
        assert_eq!(issued.credential.role, role);
        assert_eq!(issued.credential.server_id.as_deref(), server);
        assert_eq!(issued.credential.created_at, common::start_time());
        assert_eq!(issued.credential.revoked_at, None);
        let principal = q.authenticate(secret).unwrap();
        assert_eq!(principal, issued.credential.principal());
        // Debug output (what a log line shows) never carries the secret,
        // and still shows the credential.
        let debug = format!("{issued:?}");
        assert!(!debug.contains(random), "{debug}");
        assert!(
            debug.contains(r#"secret: "<redacted>""#)
                && debug.contains(&format!("{:?}", issued.credential)),
            "{debug}"
        );
    }
    let a = q.issue_credential("a", Role::Viewer, None).unwrap();
    let b = q.issue_credential("a", Role::Viewer, None).unwrap();
    assert_ne!(a.secret, b.secret);
    assert!(b.credential.id > a.credential.id);
}

fn listing_never_shows_a_secret_or_its_digest(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let issued = [
        q.issue_credential("alice", Role::Operator, None).unwrap(),
        q.issue_credential("web-1-agent", Role::Agent, Some("web-1"))
            .unwrap(),
    ];
    let listed = q.list_credentials().unwrap();
    assert_eq!(
        listed,
        issued
            .iter()
            .map(|i| i.credential.clone())
            .collect::<Vec<_>>()
    );
    let text = serde_json::to_string(&listed).unwrap() + &format!("{listed:?}");
    for i in &issued {
        let random = &i.secret[i.credential.prefix.len()..];
        assert!(!text.contains(random), "listing leaks a secret: {text}");
        let hex: String = secret_digest(&i.secret)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!text.contains(&hex));
    }
}

fn revoked_secret_is_refused_at_once_and_revoke_is_idempotent(env: Env) {
    let q = &env.queue;
    let issued = q.issue_credential("alice", Role::Operator, None).unwrap();
    let keep = q.issue_credential("bob", Role::Viewer, None).unwrap();
    q.authenticate(&issued.secret).unwrap();
    let revoked = q.revoke_credential(issued.credential.id).unwrap();
    assert_eq!(revoked.revoked_at, Some(common::start_time()));
    let err = q.authenticate(&issued.secret).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert_eq!(err.code(), "UNAUTHENTICATED");
    assert_eq!(err.http_status(), 401);
    // The other credential is untouched.
    assert_eq!(q.authenticate(&keep.secret).unwrap().name, "bob");
    env.advance_secs(5);
    let again = q.revoke_credential(issued.credential.id).unwrap();
    assert_eq!(again.revoked_at, Some(common::start_time()));
    let listed = q.list_credentials().unwrap();
    assert_eq!(listed[0].revoked_at, Some(common::start_time()));
    assert_eq!(listed[1].revoked_at, None);
    let missing = q.revoke_credential(99).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(missing.to_string(), "Credential 99 not found");
}

fn malformed_secrets_are_unauthenticated_and_never_echoed(env: Env) {
    let q = &env.queue;
    let issued = q.issue_credential("alice", Role::Admin, None).unwrap();
    let mut one_off = issued.secret.clone().into_bytes();
    let last = one_off.len() - 1;
    one_off[last] = if one_off[last] == b'A' { b'B' } else { b'A' };
    let one_off = String::from_utf8(one_off).unwrap();
    let near_prefix = format!("{}x", &issued.secret[..issued.secret.len() - 1]);
    let cases: Vec<String> = vec![
        String::new(),
        " ".into(),
        "aq_ad_".into(),
        format!("{} ", issued.secret),
        format!(" {}", issued.secret),
        issued.secret.to_uppercase(),
        one_off,
        near_prefix,
        "x".repeat(actionq::limits::MAX_SECRET_BYTES + 1),
        "a".repeat(10 << 20),
        format!("{}é", issued.secret),
        "aq_ad_\u{0}secret".into(),
        "aq_ad_\nsecret".into(),
        "ключ".into(),
        "aq_op_notarealsecretnotarealsecretnotarealsecr".into(),
    ];
    for secret in &cases {
        let err = q.authenticate(secret).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{secret:?}");
        if secret.len() > 3 {
            assert!(!err.to_string().contains(secret.trim()), "{err}");
        }
    }
    assert!(!q.authenticate(&issued.secret).unwrap().name.is_empty());
}

fn credential_issue_is_validated(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let invalid = [
        q.issue_credential("a", Role::Agent, None),
        q.issue_credential("a", Role::Operator, Some("web-1")),
        q.issue_credential("", Role::Viewer, None),
        q.issue_credential(&"n".repeat(101), Role::Viewer, None),
        q.issue_credential("bad\nname", Role::Viewer, None),
        q.issue_credential("dashboard", Role::Admin, None),
        q.issue_credential("system", Role::Operator, None),
        q.issue_credential("auto", Role::Operator, None),
        q.issue_credential("a", Role::Agent, Some("bad id!")),
    ];
    for r in invalid {
        assert_eq!(kind(r), ErrorKind::InvalidInput);
    }
    assert_eq!(
        kind(q.issue_credential("a", Role::Agent, Some("web-9"))),
        ErrorKind::NotFound
    );
    assert!(q.list_credentials().unwrap().is_empty());
    assert_eq!(kind("root".parse::<Role>()), ErrorKind::InvalidInput);
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
    }
}

/// The trusted host acting for a name records that name wherever a
/// principal's would be recorded, checks nothing, and without a name records
/// each operation's default; a principal's view never turns trusted.
fn trusted_names_are_what_actions_record(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let ops = q.by("ops-bot").unwrap();
    assert_eq!(ops.actor(), &Actor::Trusted("ops-bot".into()));
    assert_eq!(q.actor(), &Actor::Host);
    ops.pause_server("web-1").unwrap();
    let request = NewAction::new("web-1", "clear_logs").created_by("mallory");
    assert_eq!(q.create_action(&request).unwrap().created_by, "mallory");
    let a = ops
        .create_action(&NewAction::new("web-1", "restart_service").service_name("nginx"))
        .unwrap();
    assert_eq!(a.created_by, "ops-bot");
    assert_eq!(
        ops.approve_action(a.id).unwrap().approved_by.as_deref(),
        Some("ops-bot")
    );
    let claim = ops.claim_next("web-1", None, None).unwrap().unwrap();
    let done = q
        .report_result(claim.action.id, &claim.lease_token, 0, None, None)
        .unwrap();
    let by: Vec<(Option<String>, String)> = q
        .events_since(0, 100, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.to_status.map(|s| s.to_string()), e.by))
        .collect();
    assert!(
        by.contains(&(None, "ops-bot".into())),
        "pause by ops-bot: {by:?}"
    );
    assert!(
        by.contains(&(Some("executing".into()), "ops-bot".into())),
        "{by:?}"
    );
    assert!(
        by.contains(&(Some("completed".into()), "agent".into())),
        "{by:?}"
    );
    assert_eq!(done.status, ActionStatus::Completed);

    let viewer = Principal::new("victor", Role::Viewer);
    let refused = q.as_principal(&viewer).by("ops-bot").unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput);
    assert!(refused.to_string().contains("victor"), "{refused}");
    for bad in ["", "a\nb", &"x".repeat(actionq::limits::MAX_NAME_CHARS + 1)] {
        assert_eq!(kind(q.by(bad)), ErrorKind::InvalidInput, "{bad:?}");
    }
}

fn principals_names_are_what_actions_record(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
    let alice = q
        .authenticate(
            &q.issue_credential("alice", Role::Operator, None)
                .unwrap()
                .secret,
        )
        .unwrap();
    let rita = q
        .authenticate(
            &q.issue_credential("rita", Role::Requester, None)
                .unwrap()
                .secret,
        )
        .unwrap();
    let agent_secret = q
        .issue_credential("web-1-agent", Role::Agent, Some("web-1"))
        .unwrap()
        .secret;
    let agent = q.authenticate(&agent_secret).unwrap();
    // The request's created_by is ignored when a principal acts.
    let request = NewAction::new("web-1", "clear_logs").created_by("mallory");
    let a = q.as_principal(&rita).create_action(&request).unwrap();
    assert_eq!(a.created_by, "rita");
    let b = q
        .as_principal(&rita)
        .create_action(&NewAction::new("web-1", "restart_service").service_name("nginx"))
        .unwrap();
    let c = q
        .as_principal(&alice)
        .create_action(&NewAction::new("web-1", "restart_service").service_name("cron"))
        .unwrap();
    assert_eq!(
        q.as_principal(&alice)
            .approve_action(a.id)
            .unwrap()
            .approved_by
            .as_deref(),
        Some("alice")
    );
    let rejected = q.as_principal(&alice).reject_action(c.id, "no").unwrap();
    assert_eq!(rejected.rejected_by.as_deref(), Some("alice"));
    let cancelled = q.as_principal(&rita).cancel_action(b.id).unwrap();
    assert_eq!(cancelled.cancelled_by.as_deref(), Some("rita"));
    let claim = q
        .as_principal(&agent)
        .claim_next("web-1", None, None)
        .unwrap()
        .unwrap();
    assert_eq!(claim.action.id, a.id);
    q.as_principal(&agent)
        .heartbeat(a.id, &claim.lease_token, None)
        .unwrap();
    let done = q
        .as_principal(&agent)
        .report_result(a.id, &claim.lease_token, 0, Some("ok"), None)
        .unwrap();
    assert_eq!(done.status, ActionStatus::Completed);
    let by: Vec<(EventKind, String, Option<i64>, String)> = q
        .events_since(0, 100, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.subject, e.action_id, e.by))
        .collect();
    let expect = |id: i64, who: &str| {
        (
            EventKind::Action,
            "web-1".to_owned(),
            Some(id),
            who.to_owned(),
        )
    };
    let other = |kind: EventKind, subject: &str| {
        (
            kind,
            subject.to_owned(),
            None,
            actionq::DASHBOARD.to_owned(),
        )
    };
    assert_eq!(
        by,
        [
            other(EventKind::Server, "web-1"),
            other(EventKind::Credential, "alice"),
            other(EventKind::Credential, "rita"),
            other(EventKind::Credential, "web-1-agent"),
            expect(a.id, "rita"),
            expect(b.id, "rita"),
            expect(c.id, "alice"),
            expect(a.id, "alice"),
            expect(c.id, "alice"),
            expect(b.id, "rita"),
            expect(a.id, "web-1-agent"),
            expect(a.id, "web-1-agent"),
        ]
    );
    // No secret anywhere in what the queue recorded.
    let recorded = format!(
        "{:?}{:?}",
        q.events_since(0, 100, None).unwrap(),
        q.list_actions(&ActionQuery::default()).unwrap()
    );
    assert!(!recorded.contains(&agent_secret[6..]));
}

fn requester_cancels_only_its_own_pending_actions(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
    let rita = Principal::new("rita", Role::Requester);
    let own = q
        .as_principal(&rita)
        .create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    q.approve_action(own.id).unwrap();
    // Approved since: no longer hers to withdraw.
    let err = q.as_principal(&rita).cancel_action(own.id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    // The refusal says why this action is not hers to cancel.
    assert_eq!(
        err.to_string(),
        format!(
            "Requester 'rita' can cancel only its own pending actions (action {} was created \
             by 'rita' and is approved)",
            own.id
        )
    );
    assert_eq!(q.get_action(own.id).unwrap().status, ActionStatus::Approved);
    // The same rule holds inside the store's atomic step, should an approval
    // land between the check and the change.
    let mut approved = q.get_action(own.id).unwrap();
    let mut token = None;
    let change = Change {
        kind: ChangeKind::CancelPending,
        by: "rita".into(),
        at: common::start_time(),
    };
    let conflict = change.apply(&mut approved, &mut token).unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::Conflict);
    assert_eq!(approved.status, ActionStatus::Approved);
    // Unknown ids stay NotFound for a role that may cancel.
    assert_eq!(
        kind(q.as_principal(&rita).cancel_action(999)),
        ErrorKind::NotFound
    );
    // A role that may not cancel learns nothing about the id.
    let viewer = Principal::new("victor", Role::Viewer);
    assert_eq!(
        kind(q.as_principal(&viewer).cancel_action(999)),
        ErrorKind::PermissionDenied
    );
}

fn revocation_is_seen_by_another_store_on_the_same_database(env: Env) {
    // Two queues over one database: for SQLite two stores on one file (as two
    // processes would be); the memory store has no second opener, so it
    // shares the queue, which is what one process sees.
    let q = &env.queue;
    let issued = q.issue_credential("alice", Role::Operator, None).unwrap();
    let other = match &env.dir {
        Some(dir) => {
            let path = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|x| x == "sqlite3"))
                .expect("the store's file");
            second_queue(&path)
        }
        None => q.clone(),
    };
    assert_eq!(other.authenticate(&issued.secret).unwrap().name, "alice");
    q.revoke_credential(issued.credential.id).unwrap();
    assert_eq!(
        kind(other.authenticate(&issued.secret)),
        ErrorKind::Unauthenticated
    );
}

/// Authenticating writes nothing (no `last_used_at` is kept): a connection
/// watching the SQLite file sees no commit across many authentications, and
/// the memory store's credentials are unchanged.
fn authentication_writes_nothing(env: Env) {
    let q = &env.queue;
    let issued = q.issue_credential("alice", Role::Operator, None).unwrap();
    let before = q.list_credentials().unwrap();
    #[cfg(feature = "sqlite")]
    let watcher = env.dir.as_ref().map(|dir| {
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "sqlite3"))
            .unwrap();
        rusqlite::Connection::open(path).unwrap()
    });
    #[cfg(feature = "sqlite")]
    let version = |w: &Option<rusqlite::Connection>| -> Option<i64> {
        w.as_ref().map(|c| {
            c.query_row("PRAGMA data_version", [], |r| r.get(0))
                .unwrap()
        })
    };
    #[cfg(feature = "sqlite")]
    let first = version(&watcher);
    for _ in 0..100 {
        q.authenticate(&issued.secret).unwrap();
        q.authenticate("aq_op_wrong").unwrap_err();
    }
    #[cfg(feature = "sqlite")]
    assert_eq!(
        version(&watcher),
        first,
        "an authentication committed a write"
    );
    assert_eq!(q.list_credentials().unwrap(), before);
}

#[cfg(feature = "sqlite")]
fn second_queue(path: &std::path::Path) -> ActionQueue {
    ActionQueue::new(actionq::SqliteStore::open(path, &actionq::SqliteOptions::default()).unwrap())
}

#[cfg(not(feature = "sqlite"))]
fn second_queue(_: &std::path::Path) -> ActionQueue {
    unreachable!("only SQLite stores have files")
}

// ------------------------------------------------------------ the matrix

/// One principal-taking operation of the queue, as the matrix calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateServer,
    GetServer,
    ListServers,
    PauseServer,
    UnpauseServer,
    ListServerActions,
    CreateAction,
    GetAction,
    ListActions,
    EventsSince,
    Approve,
    Reject,
    Cancel,
    Claim,
    Heartbeat,
    ReportResult,
    ExpireLeases,
    IssueCredential,
    ListCredentials,
    RevokeCredential,
    VerifyAudit,
}

const OPS: [Op; 21] = [
    Op::CreateServer,
    Op::GetServer,
    Op::ListServers,
    Op::PauseServer,
    Op::UnpauseServer,
    Op::ListServerActions,
    Op::CreateAction,
    Op::GetAction,
    Op::ListActions,
    Op::EventsSince,
    Op::Approve,
    Op::Reject,
    Op::Cancel,
    Op::Claim,
    Op::Heartbeat,
    Op::ReportResult,
    Op::ExpireLeases,
    Op::IssueCredential,
    Op::ListCredentials,
    Op::RevokeCredential,
    Op::VerifyAudit,
];

/// The permission table, written out here independently of the core's: may
/// `role` do `op`, on its own server / its own action (`own`) or another's?
fn expected(role: Role, op: Op, own: bool) -> bool {
    use Op::*;
    let read = matches!(
        op,
        GetServer | ListServers | ListServerActions | GetAction | ListActions | EventsSince
    );
    let agent_side = matches!(op, Claim | Heartbeat | ReportResult);
    let credentials = matches!(op, IssueCredential | ListCredentials | RevokeCredential);
    // Admins only, like credentials.
    let audit = op == VerifyAudit;
    match role {
        Role::Admin => true,
        Role::Operator => !agent_side && !credentials && !audit,
        Role::Requester => read || op == CreateAction || (op == Cancel && own),
        Role::Viewer => read,
        Role::Agent => agent_side && own,
    }
}

/// What one cell starts from: web-1 (the agent's own server) and web-2, each
/// with an executing action (and its lease token), an approved one to claim,
/// and, once paused, a pending one requested by the principal (own) or by
/// someone else (other).
struct Fixture {
    server: &'static str,
    pending: i64,
    executing: i64,
    token: String,
    spare_credential: i64,
}

fn fixture(q: &ActionQueue, principal: &Principal, own: bool) -> Fixture {
    let server = if own { "web-1" } else { "web-2" };
    let requester = if own { principal.name.as_str() } else { "olga" };
    let mut found = None;
    for id in ["web-1", "web-2"] {
        q.create_server(id, None).unwrap();
        let running = q
            .create_action(&NewAction::new(id, "restart_service").service_name("nginx"))
            .unwrap();
        let claim = q.claim_next(id, None, None).unwrap().unwrap();
        assert_eq!(claim.action.id, running.id);
        q.create_action(&NewAction::new(id, "restart_service").service_name("cron"))
            .unwrap();
        q.pause_server(id).unwrap();
        let pending = q
            .create_action(
                &NewAction::new(id, "restart_service")
                    .service_name("app")
                    .created_by(requester),
            )
            .unwrap();
        if id == server {
            found = Some((pending.id, running.id, claim.lease_token));
        }
    }
    let (pending, executing, token) = found.unwrap();
    let spare_credential = q
        .issue_credential("spare", Role::Viewer, None)
        .unwrap()
        .credential
        .id;
    Fixture {
        server,
        pending,
        executing,
        token,
        spare_credential,
    }
}

/// Everything a refused operation must leave as it was.
fn snapshot(q: &ActionQueue) -> String {
    let servers: Vec<_> = ["web-1", "web-2", "web-3"]
        .iter()
        .map(|id| q.get_server(id).ok())
        .collect();
    format!(
        "{servers:?}\n{:?}\n{:?}\n{:?}",
        q.list_actions(&ActionQuery {
            limit: 100,
            ..ActionQuery::default()
        })
        .unwrap(),
        q.events_since(0, 1000, None).unwrap(),
        q.list_credentials().unwrap()
    )
}

/// Runs `op` as `principal`; Ok(()) or the error.
fn run(q: &ActionQueue, principal: &Principal, op: Op, f: &Fixture) -> Result<(), Error> {
    let p = q.as_principal(principal);
    let name = principal.name.as_str();
    match op {
        Op::CreateServer => {
            p.create_server("web-3", None)?;
        }
        Op::GetServer => {
            p.get_server(f.server)?;
        }
        Op::ListServers => {
            assert_eq!(p.list_servers()?.len(), 2);
        }
        Op::PauseServer => {
            p.pause_server(f.server)?;
        }
        Op::UnpauseServer => {
            assert!(!p.unpause_server(f.server)?.is_paused);
        }
        Op::ListServerActions => {
            assert_eq!(p.list_server_actions(f.server, None, 10, 0, None)?.total, 3);
        }
        Op::CreateAction => {
            let a = p.create_action(&NewAction::new(f.server, "clear_logs"))?;
            assert_eq!(a.created_by, name);
        }
        Op::GetAction => {
            p.get_action(f.pending)?;
        }
        Op::ListActions => {
            p.list_actions(&ActionQuery::default())?;
        }
        Op::EventsSince => {
            p.events_since(0, 10, None)?;
        }
        Op::Approve => {
            assert_eq!(
                p.approve_action(f.pending)?.approved_by.as_deref(),
                Some(name)
            );
        }
        Op::Reject => {
            assert_eq!(
                p.reject_action(f.pending, "no")?.rejected_by.as_deref(),
                Some(name)
            );
        }
        Op::Cancel => {
            assert_eq!(
                p.cancel_action(f.pending)?.cancelled_by.as_deref(),
                Some(name)
            );
        }
        Op::Claim => {
            let claim = p
                .claim_next(f.server, None, None)?
                .expect("an approved action");
            assert_eq!(claim.action.server_id, f.server);
        }
        Op::Heartbeat => {
            p.heartbeat(f.executing, &f.token, None)?;
        }
        Op::ReportResult => {
            let done = p.report_result(f.executing, &f.token, 0, None, None)?;
            assert_eq!(done.status, ActionStatus::Completed);
        }
        Op::ExpireLeases => {
            p.expire_leases()?;
        }
        Op::IssueCredential => {
            p.issue_credential("new-one", Role::Viewer, None)?;
        }
        Op::ListCredentials => {
            p.list_credentials()?;
        }
        Op::VerifyAudit => {
            assert_eq!(p.verify_audit()?.first_bad_event_id, None);
        }
        Op::RevokeCredential => {
            assert!(p
                .revoke_credential(f.spare_credential)?
                .revoked_at
                .is_some());
        }
    }
    Ok(())
}

fn principal_of(role: Role) -> Principal {
    match role {
        Role::Agent => Principal::agent("web-1-agent", "web-1"),
        _ => Principal::new(format!("{role}-user"), role),
    }
}

/// Every role × every operation × own/other: allowed cells succeed (and
/// record the principal's name), refused ones are PermissionDenied naming the
/// rule and leave servers, actions, events and credentials unchanged.
fn permission_matrix(env: Env) {
    let mut cells = 0;
    let mut allowed = 0;
    for role in Role::ALL {
        let principal = principal_of(role);
        for op in OPS {
            for own in [true, false] {
                let cell = env.fresh();
                let q = &cell.queue;
                let f = fixture(q, &principal, own);
                let before = snapshot(q);
                let outcome = run(q, &principal, op, &f);
                let ctx = format!("{role} {op:?} own={own}");
                cells += 1;
                if expected(role, op, own) {
                    allowed += 1;
                    outcome.unwrap_or_else(|e| panic!("{ctx}: refused: {e}"));
                } else {
                    let err = outcome.expect_err(&ctx);
                    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{ctx}: {err}");
                    assert_eq!(err.code(), "PERMISSION_DENIED");
                    assert_eq!(err.http_status(), 403);
                    let message = err.to_string();
                    assert!(
                        message.contains(&principal.name)
                            || message.starts_with("Agent for server 'web-1'"),
                        "{ctx}: the message names no rule: {message}"
                    );
                    assert_eq!(snapshot(q), before, "{ctx}: a refusal changed something");
                }
            }
        }
    }
    assert_eq!(cells, Role::ALL.len() * OPS.len() * 2);
    assert_eq!(cells, 210);
    assert_eq!(allowed, 100);
}

/// The core's table (`Role::allows`) agrees with the one written out above,
/// and the agent's scope message is the one in
/// `docs/contract/identity.md#permission-denied`.
fn role_table_and_agent_message(_env: Env) {
    let op_of = |op: Op| match op {
        Op::GetServer
        | Op::ListServers
        | Op::ListServerActions
        | Op::GetAction
        | Op::ListActions
        | Op::EventsSince => Operation::Read,
        Op::CreateServer => Operation::CreateServer,
        Op::PauseServer | Op::UnpauseServer => Operation::PauseServer,
        Op::CreateAction => Operation::CreateAction,
        Op::Approve => Operation::ApproveAction,
        Op::Reject => Operation::RejectAction,
        Op::Cancel => Operation::CancelAction,
        Op::Claim => Operation::Claim,
        Op::Heartbeat => Operation::Heartbeat,
        Op::ReportResult => Operation::ReportResult,
        Op::ExpireLeases => Operation::ExpireLeases,
        Op::IssueCredential | Op::ListCredentials | Op::RevokeCredential => {
            Operation::ManageCredentials
        }
        Op::VerifyAudit => Operation::VerifyAudit,
    };
    let mut table = BTreeMap::new();
    for role in Role::ALL {
        for op in OPS {
            // A role allows an operation when some scope allows it.
            let any = expected(role, op, true) || expected(role, op, false);
            assert_eq!(role.allows(op_of(op)), any, "{role} {op:?}");
            table.insert((role, format!("{op:?}")), any);
        }
    }
    assert_eq!(table.len(), 105);
    let agent = Principal::agent("web-1-agent", "web-1");
    assert_eq!(
        authorize(&agent, Operation::Claim, Target::Server("web-2"))
            .unwrap_err()
            .to_string(),
        "Agent for server 'web-1' cannot claim actions of server 'web-2'"
    );
    // A role's refusal names the operation; every name written out.
    let described = [
        (Operation::Read, "read the queue"),
        (Operation::CreateServer, "create servers"),
        (Operation::PauseServer, "pause or unpause servers"),
        (Operation::CreateAction, "create actions"),
        (Operation::ApproveAction, "approve actions"),
        (Operation::RejectAction, "reject actions"),
        (Operation::CancelAction, "cancel actions"),
        (Operation::Claim, "claim actions"),
        (Operation::Heartbeat, "heartbeat actions"),
        (Operation::ReportResult, "report results"),
        (Operation::ExpireLeases, "expire leases"),
        (Operation::ManageCredentials, "manage credentials"),
        (Operation::VerifyAudit, "verify the audit log"),
        (Operation::RunJobs, "run background jobs"),
        (Operation::Retention, "prune or export history"),
    ];
    assert_eq!(described.map(|(op, _)| op), Operation::ALL);
    for (op, text) in described {
        let (role, capitalized) = match op {
            Operation::Read => (Role::Agent, "Agent"),
            _ => (Role::Viewer, "Viewer"),
        };
        let message = authorize_role(&Principal::new("someone", role), op)
            .unwrap_err()
            .to_string();
        let want = format!("{capitalized} 'someone' cannot {text}: only ");
        assert!(message.starts_with(&want), "{message}");
    }
}

for_each_store!(
    issued_secret_has_prefix_and_32_random_bytes,
    listing_never_shows_a_secret_or_its_digest,
    revoked_secret_is_refused_at_once_and_revoke_is_idempotent,
    malformed_secrets_are_unauthenticated_and_never_echoed,
    credential_issue_is_validated,
    principals_names_are_what_actions_record,
    trusted_names_are_what_actions_record,
    requester_cancels_only_its_own_pending_actions,
    revocation_is_seen_by_another_store_on_the_same_database,
    authentication_writes_nothing,
    permission_matrix,
    role_table_and_agent_message,
);

/// A store that records which credential lookups the queue makes.
struct LookupLog {
    inner: actionq::MemoryStore,
    found: std::sync::Mutex<Vec<[u8; 32]>>,
    listed: std::sync::atomic::AtomicUsize,
}

/// A secret is never compared as a string: the queue looks up the SHA-256 of
/// what it was given (one indexed lookup, whatever the secret shares with a
/// real one), so how long a refusal takes cannot tell how much matched. It
/// never lists credentials to authenticate, and refuses malformed input
/// before any lookup.
#[test]
fn authentication_looks_up_the_digest_and_never_compares_secrets() {
    let store = std::sync::Arc::new(LookupLog {
        inner: actionq::MemoryStore::new(),
        found: Default::default(),
        listed: Default::default(),
    });
    let q = ActionQueue::new(ArcStore(store.clone()));
    let issued = q.issue_credential("alice", Role::Operator, None).unwrap();
    let almost = format!("{}x", &issued.secret[..issued.secret.len() - 1]);
    q.authenticate(&issued.secret).unwrap();
    q.authenticate(&almost).unwrap_err();
    q.authenticate("nothing like it").unwrap_err();
    q.authenticate("").unwrap_err();
    q.authenticate(&"a".repeat(actionq::limits::MAX_SECRET_BYTES + 1))
        .unwrap_err();
    assert_eq!(
        *store.found.lock().unwrap(),
        [secret_digest(&issued.secret), secret_digest(&almost)]
    );
    assert_eq!(store.listed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// `Arc<LookupLog>` as a store, so the test keeps a handle on its log.
struct ArcStore(std::sync::Arc<LookupLog>);

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl actionq::Store for ArcStore {
            $(fn $name(&self, $($arg: $ty),*) -> actionq::Result<$out> {
                self.0.inner.$name($($arg),*)
            })*

            fn list_credentials(&self) -> actionq::Result<Vec<actionq::Credential>> {
                self.0.listed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.0.inner.list_credentials()
            }

            fn find_credential(
                &self,
                secret_sha256: &[u8; 32],
            ) -> actionq::Result<Option<actionq::Credential>> {
                self.0.found.lock().unwrap().push(*secret_sha256);
                self.0.inner.find_credential(secret_sha256)
            }

            fn notifier(&self) -> &std::sync::Arc<actionq::store::Notifier> {
                self.0.inner.notifier()
            }
        }
    };
}

forward! {
    insert_server(server: &actionq::Server) -> ();
    get_server(id: &str) -> Option<actionq::Server>;
    set_paused(id: &str, paused: bool, by: &str, at: actionq::Timestamp) -> Option<actionq::Server>;
    insert_action(draft: actionq::store::ActionDraft, guard: &actionq::store::ConflictGuard) -> actionq::Action;
    get_action(id: i64) -> Option<actionq::Action>;
    list_actions(filter: &actionq::ActionFilter, page: actionq::store::PageRequest) -> (Vec<actionq::Action>, u64);
    update_action(id: i64, change: &Change) -> actionq::Action;
    claim_next(server_id: &str, change: &Change) -> Option<actionq::Action>;
    expire_leases(change: &Change) -> Vec<actionq::Action>;
    expire_approvals(action_type: &str, created_until: actionq::Timestamp, change: &Change) -> Vec<actionq::Action>;
    events_since(cursor: i64, limit: u32) -> Vec<actionq::Event>;
    verify_audit() -> actionq::AuditReport;
    insert_credential(draft: actionq::store::CredentialDraft) -> actionq::Credential;
    revoke_credential(id: i64, at: actionq::Timestamp, by: &str) -> Option<actionq::Credential>;
    list_servers() -> Vec<actionq::Server>;
    count_actions() -> Vec<actionq::ActionCount>;
    take_lease(name: &str, holder: &str, now: actionq::Timestamp, expires_at: actionq::Timestamp) -> Result<actionq::JobLease, actionq::JobLease>;
    release_lease(name: &str, holder: &str) -> bool;
    register_delivery(name: &str, kind: &str) -> actionq::Delivery;
    record_delivery(name: &str, holder: &str, now: actionq::Timestamp, update: &actionq::store::DeliveryUpdate) -> actionq::Delivery;
    list_deliveries() -> Vec<actionq::Delivery>;
    append_output(id: i64, draft: &actionq::store::OutputDraft) -> bool;
    output_since(id: i64, after: i64) -> Vec<actionq::OutputChunk>;
    prune_checkpoint() -> actionq::store::PruneCheckpoint;
    prune_prefix(from: &actionq::store::PruneCheckpoint, last_event_id: i64, last_action_id: i64) -> Option<u64>;
}
