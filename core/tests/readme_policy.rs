//! The README's "Approval policy and tamper-evident audit" example: its
//! whitelist config read from the README itself, its Rust walk-through run
//! as written (on a SQLite file and a manual clock, so the ttl step's "an
//! hour later" is checked too).
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use actionq::{
    ActionQueue, ActionStatus, ErrorKind, ManualClock, NewAction, Principal, Role, Whitelist,
};

fn readme_policy_json() -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Approval policy and tamper-evident audit")
        .nth(1)
        .expect("the README has the section");
    let json = section.split("```json\n").nth(1).unwrap();
    json.split("```").next().unwrap().to_owned()
}

#[test]
fn readme_policy_walk_through() -> Result<(), actionq::Error> {
    let policy = readme_policy_json();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new("2026-03-01T12:00:00Z".parse().unwrap()));
    let queue = ActionQueue::open(dir.path().join("actions.sqlite3"))?
        .with_whitelist(Whitelist::from_json(&policy)?)
        .with_clock(clock.clone());
    queue.create_server("web-1", None)?;
    queue.pause_server("web-1")?;

    let action =
        queue.create_action(&NewAction::new("web-1", "restart_service").service_name("nginx"))?;
    let once = queue.approve_action(action.id, "alice")?;
    assert_eq!(
        (once.status, once.approvals.len()),
        (ActionStatus::Pending, 1)
    );
    assert_eq!(queue.approve_action(action.id, "alice")?, once);
    assert_eq!(
        queue.approve_action(action.id, "bob")?.status,
        ActionStatus::Approved
    );

    let carol = Principal::new("carol", Role::Operator);
    let reboot = queue
        .as_principal(&carol)
        .create_action(&NewAction::new("web-1", "reboot"))?;
    let refused = queue
        .as_principal(&carol)
        .approve_action(reboot.id)
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::PermissionDenied);

    let upgrade = queue.create_action(&NewAction::new("web-1", "apt_upgrade_all"))?;
    clock.advance(chrono::TimeDelta::hours(1));
    assert_eq!(
        queue.get_action(upgrade.id)?.rejection_reason.as_deref(),
        Some("approval expired after 3600s")
    );

    queue.unpause_server("web-1")?;
    for _ in 0..3 {
        assert_eq!(
            queue
                .create_action(&NewAction::new("web-1", "clear_logs"))?
                .status,
            ActionStatus::Approved
        );
    }
    assert_eq!(
        queue
            .create_action(&NewAction::new("web-1", "clear_logs"))?
            .status,
        ActionStatus::Pending
    );

    let claim = queue
        .claim_next("web-1", None)?
        .expect("the approved restart");
    assert!(claim.action.digest_matches());
    let report = queue.verify_audit()?;
    assert_eq!(report.first_bad_event_id, None);
    Ok(())
}
