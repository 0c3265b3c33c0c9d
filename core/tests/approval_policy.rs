//! `docs/contract/approval-policy.md` and
//! `docs/contract/audit.md#tamper-evident-audit` on every store: the
//! defaults keep the seed's behaviour; `required`, `four_eyes`,
//! `ttl_seconds` and `auto_approve_budget` from the whitelist config; the
//! payload digest and the stale-whitelist rules; an intact audit chain
//! verifies. (Races: `policy_races.rs`; tampering with the file:
//! `audit_tamper.rs`.)

mod common;

use actionq::{
    ActionQueue, ActionStatus, ErrorKind, NewAction, Principal, QueueOptions, Role, Whitelist,
};
use common::Env;

/// A whitelist whose entries each carry one policy.
const POLICY_WHITELIST: &str = r#"{"actions": {
  "two_keys": {"command": "systemctl restart {service_name}",
               "params": {"service_name": {"kind": "systemd_unit"}},
               "approval": {"required": 2}},
  "four_eyes": {"command": "reboot", "approval": {"four_eyes": true}},
  "short_lived": {"command": "journalctl --vacuum-time=1d", "approval": {"ttl_seconds": 60}},
  "budgeted": {"command": "systemctl restart {service_name}",
               "params": {"service_name": {"kind": "systemd_unit"}},
               "approval": {"auto_approve_budget": {"max": 2, "window_seconds": 600}}}
}}"#;

fn policy_env(env: Env) -> Env {
    env.whitelist(POLICY_WHITELIST)
}

fn paused(env: &Env) {
    env.queue.create_server("web-1", None).unwrap();
    env.queue.pause_server("web-1").unwrap();
}

fn create(q: &ActionQueue, kind: &str, service: Option<&str>) -> actionq::Action {
    let mut request = NewAction::new("web-1", kind);
    if let Some(service) = service {
        request = request.service_name(service);
    }
    q.create_action(&request).unwrap()
}

fn last_event(q: &ActionQueue) -> actionq::Event {
    q.events_since(0, 1000, None).unwrap().pop().unwrap()
}

fn assert_chain_intact(q: &ActionQueue) {
    let n = q.events_since(0, 1000, None).unwrap().len() as u64;
    let report = q.verify_audit().unwrap();
    assert_eq!((report.checked, report.first_bad_event_id), (n, None));
}

/// Default policy: what the seed did, plus the approval recorded with the
/// digest it approved; the approve event's detail stays empty.
fn default_policy_keeps_the_seed_behaviour(env: Env) {
    paused(&env);
    let q = &env.queue;
    let pending = create(q, "restart_service", Some("nginx"));
    assert_eq!(pending.status, ActionStatus::Pending);
    assert!(pending.approvals.is_empty());
    assert_eq!(pending.whitelist_version, Whitelist::default().version());
    assert_eq!(pending.digest, pending.computed_digest());
    assert_eq!(
        pending.digest,
        actionq::action_digest(
            "web-1",
            "restart_service",
            &["systemctl", "restart", "nginx.service"],
            &Default::default(),
            Whitelist::default().version()
        )
    );
    env.advance_secs(5);
    let approved = q.approve_action(pending.id).unwrap();
    assert_eq!(approved.status, ActionStatus::Approved);
    assert_eq!(approved.approved_by.as_deref(), Some("dashboard"));
    assert_eq!(approved.approvals.len(), 1);
    assert_eq!(approved.approvals[0].by, "dashboard");
    assert_eq!(Some(approved.approvals[0].at), approved.approved_at);
    assert_eq!(approved.approvals[0].digest, pending.digest);
    let event = last_event(q);
    assert_eq!(
        (event.from_status, event.to_status, event.detail),
        (
            Some(ActionStatus::Pending),
            Some(ActionStatus::Approved),
            None
        )
    );
    // A second approval of an approved action is still the seed's Conflict.
    let again = q.approve_action(pending.id).unwrap_err();
    assert_eq!(
        again.to_string(),
        "Cannot approve action with status 'approved' (must be pending)"
    );
    // Auto-approved on a normal server: no human approval recorded.
    q.unpause_server("web-1").unwrap();
    let auto = create(q, "clear_logs", None);
    assert_eq!(auto.approved_by.as_deref(), Some("auto"));
    assert!(auto.approvals.is_empty());
    assert_eq!(q.get_action(auto.id).unwrap(), auto);
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(claim.action.digest, pending.digest);
    assert!(claim.action.digest_matches());
    assert_chain_intact(q);
}

/// `required: 2`: the first approval is an event "1 of 2" and leaves it
/// pending; the same approver again changes nothing; the second distinct
/// approver approves it.
fn two_distinct_approvers_are_needed(env: Env) {
    let env = policy_env(env);
    paused(&env);
    let q = &env.queue;
    let action = create(q, "two_keys", Some("nginx"));
    let events_before = q.events_since(0, 1000, None).unwrap().len();
    let first = q.by("alice").unwrap().approve_action(action.id).unwrap();
    assert_eq!(first.status, ActionStatus::Pending);
    assert_eq!(first.approved_by, None);
    assert_eq!(
        first
            .approvals
            .iter()
            .map(|a| a.by.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    let event = last_event(q);
    assert_eq!(
        (
            event.from_status,
            event.to_status,
            event.by.as_str(),
            event.detail.as_deref()
        ),
        (
            Some(ActionStatus::Pending),
            Some(ActionStatus::Pending),
            "alice",
            Some("1 of 2")
        )
    );
    env.advance_secs(1);
    let repeat = q.by("alice").unwrap().approve_action(action.id).unwrap();
    assert_eq!(repeat, first, "a repeat returns the action unchanged");
    assert_eq!(
        q.events_since(0, 1000, None).unwrap().len(),
        events_before + 1
    );
    let second = q.by("bob").unwrap().approve_action(action.id).unwrap();
    assert_eq!(second.status, ActionStatus::Approved);
    assert_eq!(second.approved_by.as_deref(), Some("bob"));
    assert_eq!(second.approvals.len(), 2);
    assert!(second.approvals.iter().all(|a| a.digest == action.digest));
    assert_eq!(last_event(q).detail.as_deref(), Some("2 of 2"));
    assert_eq!(q.get_action(action.id).unwrap(), second);
    // A reject by anyone ends one that has a first approval.
    let other = create(q, "two_keys", Some("ssh"));
    q.by("alice").unwrap().approve_action(other.id).unwrap();
    let rejected = q
        .by("carol")
        .unwrap()
        .reject_action(other.id, "no")
        .unwrap();
    assert_eq!(rejected.status, ActionStatus::Rejected);
    assert_eq!(rejected.approvals.len(), 1);
    assert_chain_intact(q);
}

/// Principals are told apart by name: two credentials of one name are one approver.
fn principals_approve_by_name(env: Env) {
    let env = policy_env(env);
    paused(&env);
    let q = &env.queue;
    let action = create(q, "two_keys", Some("nginx"));
    let alice = Principal::new("alice", Role::Operator);
    let alice_admin = Principal::new("alice", Role::Admin);
    let bob = Principal::new("bob", Role::Operator);
    q.as_principal(&alice).approve_action(action.id).unwrap();
    let still = q
        .as_principal(&alice_admin)
        .approve_action(action.id)
        .unwrap();
    assert_eq!(still.status, ActionStatus::Pending);
    let done = q.as_principal(&bob).approve_action(action.id).unwrap();
    assert_eq!(done.status, ActionStatus::Approved);
}

/// `four_eyes`: the requester may not approve its own action; anyone else may.
fn four_eyes_refuses_the_requester(env: Env) {
    let env = policy_env(env);
    paused(&env);
    let q = &env.queue;
    let alice = Principal::new("alice", Role::Operator);
    let bob = Principal::new("bob", Role::Operator);
    let action = q
        .as_principal(&alice)
        .create_action(&NewAction::new("web-1", "four_eyes"))
        .unwrap();
    let before = q.events_since(0, 1000, None).unwrap();
    let refused = q
        .as_principal(&alice)
        .approve_action(action.id)
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
    assert_eq!(
        refused.to_string(),
        format!(
            "Four-eyes policy: 'alice' requested action {} and cannot approve it",
            action.id
        )
    );
    // The trusted path applies the same policy.
    let trusted = q
        .by("alice")
        .unwrap()
        .approve_action(action.id)
        .unwrap_err();
    assert_eq!(trusted.kind(), ErrorKind::PermissionDenied);
    assert_eq!(q.get_action(action.id).unwrap(), action);
    assert_eq!(q.events_since(0, 1000, None).unwrap(), before);
    let approved = q.as_principal(&bob).approve_action(action.id).unwrap();
    assert_eq!(approved.approved_by.as_deref(), Some("bob"));
    // Without four_eyes (the default) the requester approves its own.
    let own = q
        .as_principal(&alice)
        .create_action(&NewAction::new("web-1", "two_keys").service_name("nginx"))
        .unwrap();
    q.as_principal(&alice).approve_action(own.id).unwrap();
}

/// `ttl_seconds`: no read shows a pending action after its approval ran out;
/// it is rejected by `system`, and can no longer be approved.
fn expired_approval_is_rejected_before_any_read(env: Env) {
    let env = policy_env(env);
    paused(&env);
    let q = &env.queue;
    let action = create(q, "short_lived", None);
    let lasting = create(q, "two_keys", Some("nginx"));
    env.advance_secs(59);
    assert_eq!(
        q.get_action(action.id).unwrap().status,
        ActionStatus::Pending
    );
    env.advance_secs(1);
    let seen = q.get_action(action.id).unwrap();
    assert_eq!(seen.status, ActionStatus::Rejected);
    assert_eq!(seen.rejected_by.as_deref(), Some("system"));
    assert_eq!(
        seen.rejection_reason.as_deref(),
        Some("approval expired after 60s")
    );
    assert_eq!(seen.rejected_at, Some(env.clock_now()));
    let event = last_event(q);
    assert_eq!(
        (
            event.action_id,
            event.to_status,
            event.by.as_str(),
            event.detail.as_deref()
        ),
        (
            Some(action.id),
            Some(ActionStatus::Rejected),
            "system",
            Some("approval expired after 60s")
        )
    );
    let late = q
        .by("alice")
        .unwrap()
        .approve_action(action.id)
        .unwrap_err();
    assert_eq!(late.kind(), ErrorKind::Conflict);
    // An entry without a ttl is untouched.
    assert_eq!(
        q.get_action(lasting.id).unwrap().status,
        ActionStatus::Pending
    );
    assert_chain_intact(q);
}

/// With the sweep before reads off, an approval past the ttl is still refused.
fn approval_past_its_ttl_is_refused_without_a_sweep(env: Env) {
    let env = policy_env(env).options(QueueOptions {
        expire_leases_on_read: false,
        ..QueueOptions::default()
    });
    paused(&env);
    let q = &env.queue;
    let action = create(q, "short_lived", None);
    env.advance_secs(60);
    assert_eq!(
        q.get_action(action.id).unwrap().status,
        ActionStatus::Pending
    );
    let refused = q
        .by("alice")
        .unwrap()
        .approve_action(action.id)
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert_eq!(
        refused.to_string(),
        format!("Approval of action {} expired after 60s", action.id)
    );
    let swept = q.expire_approvals().unwrap();
    assert_eq!(swept.iter().map(|a| a.id).collect::<Vec<_>>(), [action.id]);
    assert!(q.expire_approvals().unwrap().is_empty());
}

/// `auto_approve_budget`: max auto-approvals of one type with the same
/// parameters per server in the window; the next is pending, saying why.
fn auto_approve_budget_holds_the_next_for_a_human(env: Env) {
    let env = policy_env(env);
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.create_server("web-2", None).unwrap();
    for _ in 0..2 {
        let a = create(q, "budgeted", Some("nginx"));
        assert_eq!(a.status, ActionStatus::Approved);
        env.advance_secs(1);
    }
    let held = create(q, "budgeted", Some("nginx"));
    assert_eq!(held.status, ActionStatus::Pending);
    assert_eq!((held.approved_by, held.approved_at), (None, None));
    let event = last_event(q);
    assert_eq!(
        event.detail.as_deref(),
        Some("auto-approval budget exceeded: 2 in the last 600s")
    );
    assert_eq!(event.to_status, Some(ActionStatus::Pending));
    // Other parameters, another server: their own budgets.
    assert_eq!(
        create(q, "budgeted", Some("ssh")).status,
        ActionStatus::Approved
    );
    let other = q
        .create_action(&NewAction::new("web-2", "budgeted").service_name("nginx"))
        .unwrap();
    assert_eq!(other.status, ActionStatus::Approved);
    // A human approval does not count against the budget; the window slides.
    q.by("alice").unwrap().approve_action(held.id).unwrap();
    assert_eq!(
        create(q, "budgeted", Some("nginx")).status,
        ActionStatus::Pending
    );
    env.advance_secs(598); // the first auto-approval is now 600 s old: out of the window
    assert_eq!(
        create(q, "budgeted", Some("nginx")).status,
        ActionStatus::Approved
    );
    // A paused server holds everything, with no budget detail, its budget
    // spent or not.
    let second = q
        .create_action(&NewAction::new("web-2", "budgeted").service_name("nginx"))
        .unwrap();
    assert_eq!(second.status, ActionStatus::Approved);
    q.pause_server("web-2").unwrap();
    q.create_action(&NewAction::new("web-2", "budgeted").service_name("nginx"))
        .unwrap();
    assert_eq!(last_event(q).detail, None);
    assert_chain_intact(q);
}

/// A whitelist change: older pending actions can no longer be approved;
/// a claim cancels older approved ones (by `system`) and goes on to the next.
fn changed_whitelist_makes_older_actions_unapprovable_and_unclaimable(env: Env) {
    paused(&env);
    let old = env.queue.clone();
    let pending = create(&old, "clear_logs", None);
    old.unpause_server("web-1").unwrap();
    let approved = create(&old, "restart_service", Some("nginx"));
    let changed = Whitelist::from_json(
        r#"{"actions": {"clear_logs": {"command": "journalctl --vacuum-time=3d"},
            "restart_service": {"command": "systemctl restart {service_name}",
              "params": {"service_name": {"kind": "systemd_unit"}}}}}"#,
    )
    .unwrap();
    assert_ne!(changed.version(), old.whitelist().version());
    let new = env.queue.clone().with_whitelist(changed.clone());
    let refused = new
        .by("alice")
        .unwrap()
        .approve_action(pending.id)
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert_eq!(
        refused.to_string(),
        format!("Whitelist changed since action {} was created", pending.id)
    );
    env.advance_secs(1);
    let fresh = create(&new, "restart_service", Some("ssh"));
    assert_eq!(fresh.whitelist_version, changed.version());
    let claim = new.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(
        claim.action.id, fresh.id,
        "the stale one never blocks the server"
    );
    assert!(claim.action.digest_matches());
    let cancelled = new.get_action(approved.id).unwrap();
    assert_eq!(cancelled.status, ActionStatus::Cancelled);
    assert_eq!(cancelled.cancelled_by.as_deref(), Some("system"));
    let event = new
        .events_since(0, 1000, None)
        .unwrap()
        .into_iter()
        .find(|e| e.action_id == Some(approved.id) && e.to_status == Some(ActionStatus::Cancelled))
        .unwrap();
    assert_eq!(event.by, "system");
    assert_eq!(
        event.detail,
        Some(format!(
            "Whitelist changed since action {} was created",
            approved.id
        ))
    );
    // The old queue still approves what it built (same version).
    assert_eq!(
        old.by("alice")
            .unwrap()
            .approve_action(pending.id)
            .unwrap()
            .status,
        ActionStatus::Approved
    );
    assert_chain_intact(&new);
}

/// The digest covers every part of the payload, and every approval must
/// have approved it.
fn digest_matches_only_the_approved_payload(env: Env) {
    let q = &env.queue;
    paused(&env);
    let held = create(q, "apt_update", None);
    q.by("alice").unwrap().approve_action(held.id).unwrap();
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    assert!(claim.action.digest_matches());
    let mut other_approval = claim.action.clone();
    other_approval.approvals[0].digest = "0".repeat(64);
    assert!(
        !other_approval.digest_matches(),
        "an approval of another payload"
    );
    type Tamper = Box<dyn Fn(&mut actionq::Action)>;
    let tampered: Vec<Tamper> = vec![
        Box::new(|a| a.server_id = "web-2".into()),
        Box::new(|a| a.action_type = "apt_upgrade_all".into()),
        Box::new(|a| a.argv[0] = "rm".into()),
        Box::new(|a| {
            a.env.insert("LD_PRELOAD".into(), "x.so".into());
        }),
        Box::new(|a| a.whitelist_version = "other".into()),
        Box::new(|a| a.digest = "0".repeat(64)),
    ];
    for (i, tamper) in tampered.iter().enumerate() {
        let mut action = claim.action.clone();
        tamper(&mut action);
        assert!(!action.digest_matches(), "tampering {i} went unnoticed");
    }
}

/// The audit chain of a busy log verifies, and only admins may ask.
fn audit_chain_verifies_and_is_for_admins(env: Env) {
    let q = &env.queue;
    assert_eq!(q.verify_audit().unwrap().checked, 0);
    q.create_server("web-1", None).unwrap();
    for i in 0..20 {
        if i % 3 == 0 {
            q.pause_server("web-1").unwrap();
        }
        let a = create(q, "clear_logs", None);
        if a.status == ActionStatus::Pending {
            q.by("alice").unwrap().approve_action(a.id).unwrap();
            q.unpause_server("web-1").unwrap();
        }
        if let Some(claim) = q.claim_next("web-1", None, None).unwrap() {
            q.report_result(claim.action.id, &claim.lease_token, i % 2, Some("x"), None)
                .unwrap();
        }
    }
    assert_chain_intact(q);
    for role in [Role::Operator, Role::Viewer, Role::Requester] {
        let p = Principal::new("p", role);
        let refused = q.as_principal(&p).verify_audit().unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::PermissionDenied, "{role}");
    }
    let admin = Principal::new("root", Role::Admin);
    assert!(q.as_principal(&admin).verify_audit().is_ok());
}

for_each_store!(
    default_policy_keeps_the_seed_behaviour,
    two_distinct_approvers_are_needed,
    principals_approve_by_name,
    four_eyes_refuses_the_requester,
    expired_approval_is_rejected_before_any_read,
    approval_past_its_ttl_is_refused_without_a_sweep,
    auto_approve_budget_holds_the_next_for_a_human,
    changed_whitelist_makes_older_actions_unapprovable_and_unclaimable,
    digest_matches_only_the_approved_payload,
    audit_chain_verifies_and_is_for_admins,
);
