//! The promises of README "Security", run against every store: actions keep
//! the parameters they were built from, the validators refuse what could
//! power a host off or remove a package, the approval policy holds on every
//! server, and the audit chain covers what an action is.

mod common;

use std::collections::BTreeMap;

use actionq::{ActionQuery, ActionStatus, ErrorKind, NewAction, Role, Whitelist};
use common::Env;

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- params

/// An action records the parameter values its command was built from,
/// defaults applied, and every read (get, list, claim) gives them back.
fn actions_keep_the_params_they_were_built_from(env: Env) {
    let whitelist = Whitelist::from_json(
        r#"{"actions": {
            "restart_service": {
                "command": "systemctl restart {service_name}",
                "params": {"service_name": {"kind": "systemd_unit"}}
            },
            "vacuum": {
                "command": "journalctl --vacuum-size={size}M --vacuum-time={days}d",
                "params": {
                    "size": {"kind": "integer", "min": 1, "max": 999, "default": "50"},
                    "days": {"kind": "one_of", "values": ["1", "7"]}
                }
            },
            "clear_logs": {"command": "journalctl --vacuum-time=7d"}
        }}"#,
    )
    .unwrap();
    let q = env.queue.clone().with_whitelist(whitelist);
    q.create_server("web-1", None).unwrap();
    let restart = q
        .create_action(&NewAction::new("web-1", "restart_service").service_name("nginx.service"))
        .unwrap();
    assert_eq!(restart.params, params(&[("service_name", "nginx.service")]));
    let vacuum = q
        .create_action(&NewAction::new("web-1", "vacuum").param("days", "7"))
        .unwrap();
    assert_eq!(vacuum.params, params(&[("days", "7"), ("size", "50")]));
    assert_eq!(
        vacuum.argv,
        ["journalctl", "--vacuum-size=50M", "--vacuum-time=7d"]
    );
    let plain = q
        .create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    assert!(plain.params.is_empty());

    for created in [&restart, &vacuum, &plain] {
        assert_eq!(&q.get_action(created.id).unwrap().params, &created.params);
    }
    let listed = q.list_actions(&ActionQuery::default()).unwrap().actions;
    assert_eq!(
        listed.iter().map(|a| &a.params).collect::<Vec<_>>(),
        [&plain.params, &vacuum.params, &restart.params]
    );
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(claim.action.id, restart.id);
    assert_eq!(claim.action.params, restart.params);
    assert_eq!(claim.action.status, ActionStatus::Executing);
}

// ---------------------------------------------------------------- validators

/// An attack that once worked (`docs/contract/whitelist.md#systemd-units`): a
/// requester on a normal server asked `restart_service`
/// for units that power the host off or stop it; each was auto-approved.
/// Now each is NotWhitelisted and nothing is stored.
fn restart_service_cannot_power_off(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    let issued = q.issue_credential("alerts", Role::Requester, None).unwrap();
    let requester = q.authenticate(&issued.secret).unwrap();
    let acting = q.as_principal(&requester);
    let events_before = q.events_since(0, 100, None).unwrap();
    for unit in [
        "poweroff.target",
        "reboot.target",
        "systemd-reboot.service",
        "emergency.target",
        "systemd-poweroff",
        "halt.target",
        "kexec.target",
        "rescue.target",
        "getty@tty1.service",
        "-.mount",
    ] {
        let err = acting
            .create_action(&NewAction::new("web-1", "restart_service").service_name(unit))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotWhitelisted, "{unit}: {err}");
        assert!(err.to_string().contains("service_name"), "{err}");
    }
    assert_eq!(q.list_actions(&ActionQuery::default()).unwrap().total, 0);
    assert_eq!(q.events_since(0, 100, None).unwrap(), events_before);
}

/// A bare name is `<name>.service` before the digest, the duplicate guard
/// and the budget see it: `nginx` then `nginx.service` is one action.
fn bare_and_suffixed_unit_names_are_one_action(env: Env) {
    let q = &env.queue;
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
    let bare = q
        .create_action(&NewAction::new("web-1", "restart_service").service_name("nginx"))
        .unwrap();
    assert_eq!(bare.service_name.as_deref(), Some("nginx.service"));
    assert_eq!(bare.command, "systemctl restart nginx.service");
    assert_eq!(bare.argv, ["systemctl", "restart", "nginx.service"]);
    assert_eq!(bare.params, params(&[("service_name", "nginx.service")]));
    let dup = q
        .create_action(&NewAction::new("web-1", "restart_service").service_name("nginx.service"))
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict, "{dup}");
    assert_eq!(dup.existing_action_id(), Some(bare.id));
    assert_eq!(
        dup.to_string(),
        "Pending action already exists for service 'nginx.service' on server 'web-1'"
    );

    // The budget counts them as the same action too.
    let budget = Whitelist::from_json(
        r#"{"actions": {"restart_service": {
            "command": "systemctl restart {service_name}",
            "params": {"service_name": {"kind": "systemd_unit"}},
            "approval": {"auto_approve_budget": {"max": 1, "window_seconds": 3600}}
        }}}"#,
    )
    .unwrap();
    let q = env.queue.clone().with_whitelist(budget);
    q.create_server("web-2", None).unwrap();
    let first = q
        .create_action(&NewAction::new("web-2", "restart_service").service_name("nginx.service"))
        .unwrap();
    assert_eq!(first.status, ActionStatus::Approved);
    let second = q
        .create_action(&NewAction::new("web-2", "restart_service").service_name("nginx"))
        .unwrap();
    assert_eq!(second.status, ActionStatus::Pending);
    assert_eq!(second.digest, {
        let mut same = first.clone();
        same.id = second.id;
        same.computed_digest()
    });
    let created = q.events_since(0, 100, None).unwrap();
    let detail = created
        .iter()
        .rfind(|e| e.action_id == Some(second.id))
        .and_then(|e| e.detail.clone());
    assert_eq!(
        detail.as_deref(),
        Some("auto-approval budget exceeded: 1 in the last 3600s")
    );
}

/// apt's removal and pattern syntax never reaches `apt-get install`.
fn debian_package_refuses_apt_removal_and_patterns(env: Env) {
    let whitelist = Whitelist::from_json(
        r#"{"actions": {"install_package": {
            "command": "DEBIAN_FRONTEND=noninteractive apt-get install -y {package}",
            "params": {"package": {"kind": "debian_package"}}
        }}}"#,
    )
    .unwrap();
    let q = env.queue.clone().with_whitelist(whitelist);
    q.create_server("web-1", None).unwrap();
    for package in [
        "openssh-server-",
        "openssh-server+",
        "openssh.*",
        "linux-image.+",
    ] {
        let err = q
            .create_action(&NewAction::new("web-1", "install_package").param("package", package))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotWhitelisted, "{package}: {err}");
    }
    let htop = q
        .create_action(&NewAction::new("web-1", "install_package").param("package", "htop"))
        .unwrap();
    assert_eq!(htop.argv, ["apt-get", "install", "-y", "htop"]);
}

// ---------------------------------------------------------------- policy

/// An attack that once worked (`docs/contract/whitelist.md#held-entries`):
/// `required: 2` and `four_eyes` held only on a paused
/// server, so unpausing it (any operator may) let a requester's action be
/// auto-approved. Now such an entry is never auto-approved.
fn policy_that_needs_people_holds_on_every_server(env: Env) {
    let whitelist = Whitelist::from_json(
        r#"{"actions": {
            "two_keys": {"command": "reboot", "approval": {"required": 2}},
            "four_eyes": {"command": "apt-get autoremove -y", "approval": {"four_eyes": true}},
            "plain": {"command": "uptime"}
        }}"#,
    )
    .unwrap();
    let q = env.queue.clone().with_whitelist(whitelist);
    q.create_server("web-1", None).unwrap();
    q.pause_server("web-1").unwrap();
    q.unpause_server("web-1").unwrap();
    let two = q
        .create_action(&NewAction::new("web-1", "two_keys").created_by("alerts"))
        .unwrap();
    let eyes = q
        .create_action(&NewAction::new("web-1", "four_eyes").created_by("alerts"))
        .unwrap();
    let plain = q
        .create_action(&NewAction::new("web-1", "plain").created_by("alerts"))
        .unwrap();
    assert_eq!(
        [two.status, eyes.status, plain.status],
        [
            ActionStatus::Pending,
            ActionStatus::Pending,
            ActionStatus::Approved
        ]
    );
    assert_eq!(
        (two.approved_by.as_deref(), eyes.approved_by.as_deref()),
        (None, None)
    );
    let detail = |id: i64| {
        q.events_since(0, 100, None)
            .unwrap()
            .into_iter()
            .find(|e| e.action_id == Some(id))
            .and_then(|e| e.detail)
    };
    assert_eq!(
        detail(two.id).as_deref(),
        Some("held for approval: 2 approvals required")
    );
    assert_eq!(
        detail(eyes.id).as_deref(),
        Some("held for approval: four-eyes policy")
    );
    // Nothing is claimable until people approved.
    assert!(
        q.claim_next("web-1", None, None)
            .unwrap()
            .unwrap()
            .action
            .id
            == plain.id
    );
    assert!(q.claim_next("web-1", None, None).unwrap().is_none());
    // The policy itself still applies: the requester cannot approve its own,
    // and two distinct approvers are needed.
    let own = q.by("alerts").unwrap().approve_action(eyes.id).unwrap_err();
    assert_eq!(own.kind(), ErrorKind::PermissionDenied);
    assert_eq!(
        q.by("bob").unwrap().approve_action(eyes.id).unwrap().status,
        ActionStatus::Approved
    );
    assert_eq!(
        q.by("bob").unwrap().approve_action(two.id).unwrap().status,
        ActionStatus::Pending
    );
    assert_eq!(
        q.by("carol")
            .unwrap()
            .approve_action(two.id)
            .unwrap()
            .status,
        ActionStatus::Approved
    );
}

// ---------------------------------------------------------------- identity

/// A credential named like the queue's own actors (`agent`, `auto`,
/// `system`, `dashboard`) could pass for them in `approved_by` or an event's
/// `by`; one with invisible or format characters could look like another
/// name. Both are InvalidInput, and nothing is issued.
fn credential_names_cannot_pass_for_others(env: Env) {
    let q = &env.queue;
    for name in [
        "agent",
        "auto",
        "system",
        "dashboard",
        "Agent",
        "DASHBOARD",
        "ali\u{200B}ce", // zero-width space
        "ali\u{200D}ce", // zero-width joiner
        "alice\u{202E}", // right-to-left override
        "\u{2066}alice", // left-to-right isolate
        "ali\u{00AD}ce", // soft hyphen (Cf)
        "ali\u{FEFF}ce", // zero-width no-break space
        "alice\u{2028}", // line separator (Zl)
        "alice\u{2029}", // paragraph separator (Zp)
        "ali\u{7}ce",    // bell (Cc)
        "ali\nce",       // newline (Cc)
        "ali\u{00A0}ce", // no-break space
        "\u{3164}",      // Hangul filler: renders as nothing
        " alice",
        "alice ",
    ] {
        let err = q.issue_credential(name, Role::Operator, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name:?}: {err}");
    }
    assert!(q.list_credentials().unwrap().is_empty());
    for name in ["alice", "Zoë Müller", "web-1 agent", "運用"] {
        q.issue_credential(name, Role::Operator, None).unwrap();
    }
    assert_eq!(q.list_credentials().unwrap().len(), 4);
}

for_each_store!(
    credential_names_cannot_pass_for_others,
    policy_that_needs_people_holds_on_every_server,
    actions_keep_the_params_they_were_built_from,
    restart_service_cannot_power_off,
    bare_and_suffixed_unit_names_are_one_action,
    debian_package_refuses_apt_removal_and_patterns,
);
