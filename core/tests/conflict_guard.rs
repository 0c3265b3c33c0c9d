//! `ConflictGuard::collides` is the definition of a conflict that every backend
//! applies (`docs/contract/whitelist.md#conflict-policy`). The stores only ever ask it about
//! candidates their indexes already narrowed down, so their suites cannot tell
//! a wrong definition from a right one; this checks it directly, over every
//! status and every way an existing action can differ from the new one.

use std::collections::BTreeMap;

use actionq::store::{ActionDraft, ConflictGuard};
use actionq::{Action, ActionStatus, Server};

fn draft(server_id: &str, action_type: &str, command: &str) -> ActionDraft {
    ActionDraft {
        server_id: server_id.into(),
        action_type: action_type.into(),
        service_name: None,
        command: command.into(),
        argv: vec![command.into()],
        env: BTreeMap::new(),
        params: BTreeMap::new(),
        alert_id: None,
        created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        created_by: "test".into(),
        digest: String::new(),
        whitelist_version: String::new(),
        auto_approve_budget: None,
        needs_people: None,
    }
}

fn existing(d: &ActionDraft, status: ActionStatus) -> Action {
    let server = Server {
        id: d.server_id.clone(),
        hostname: None,
        is_paused: true,
        paused_at: None,
        created_at: d.created_at,
    };
    let mut action = d.clone().into_action(1, &server, 0).0;
    action.status = status;
    action
}

/// The new action every existing one is compared with.
fn new_restart() -> ActionDraft {
    draft("web-1", "restart_service", "systemctl restart nginx")
}

/// Existing actions differing from [`new_restart`] in nothing or in one field.
fn variants() -> Vec<(&'static str, ActionDraft)> {
    vec![
        ("same", new_restart()),
        (
            "other server",
            draft("web-2", "restart_service", "systemctl restart nginx"),
        ),
        (
            "other type",
            draft("web-1", "clear_logs", "systemctl restart nginx"),
        ),
        (
            "other command",
            draft("web-1", "restart_service", "systemctl restart sshd"),
        ),
    ]
}

#[test]
fn none_never_collides() {
    for status in ActionStatus::ALL {
        for (what, other) in variants() {
            assert!(
                !ConflictGuard::None.collides(&new_restart(), &existing(&other, status)),
                "{what} {status:?}"
            );
        }
    }
}

#[test]
fn pending_duplicate_is_a_pending_action_of_the_same_server_type_and_command() {
    let guard = ConflictGuard::PendingDuplicate {
        message: "dup".into(),
    };
    let mut collisions = 0;
    for status in ActionStatus::ALL {
        for (what, other) in variants() {
            let expected = what == "same" && status == ActionStatus::Pending;
            let got = guard.collides(&new_restart(), &existing(&other, status));
            assert_eq!(got, expected, "{what} {status:?}");
            collisions += usize::from(got);
        }
    }
    assert_eq!(collisions, 1);
}

#[test]
fn active_in_group_is_an_active_member_type_on_the_same_server() {
    let guard = ConflictGuard::ActiveInGroup {
        action_types: vec!["apt_update".into(), "apt_upgrade_all".into()],
        message: "apt".into(),
    };
    let new = draft("web-1", "apt_update", "apt-get update");
    let cases = [
        (
            "same type",
            draft("web-1", "apt_update", "apt-get update"),
            true,
        ),
        (
            "other member, other command",
            draft("web-1", "apt_upgrade_all", "apt-get dist-upgrade"),
            true,
        ),
        (
            "other server",
            draft("web-2", "apt_update", "apt-get update"),
            false,
        ),
        (
            "not a member",
            draft("web-1", "clear_logs", "apt-get update"),
            false,
        ),
    ];
    let active = [
        ActionStatus::Pending,
        ActionStatus::Approved,
        ActionStatus::Executing,
    ];
    for status in ActionStatus::ALL {
        for (what, other, member_on_server) in &cases {
            let expected = *member_on_server && active.contains(&status);
            assert_eq!(
                guard.collides(&new, &existing(other, status)),
                expected,
                "{what} {status:?}"
            );
        }
    }
}
