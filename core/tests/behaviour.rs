//! The shared behavioural suite: every rule of the contract
//! (`docs/contract/README.md`), run against every store.

mod common;

use std::time::Duration;

use actionq::{ActionQuery, ActionStatus, Error, ErrorKind, EventKind, NewAction, QueueOptions};
use common::Env;

fn kind<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

fn message<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

fn restart(server: &str, service: &str) -> NewAction {
    NewAction::new(server, "restart_service").service_name(service)
}

fn env_with_server(env: Env, paused: bool) -> Env {
    env.queue.create_server("web-1", Some("web-1.lan")).unwrap();
    if paused {
        env.queue.pause_server("web-1").unwrap();
    }
    env
}

// ---------------------------------------------------------------- servers

fn server_create_get_and_duplicate(env: Env) {
    let q = &env.queue;
    let s = q.create_server("web-1", Some("web-1.lan")).unwrap();
    assert_eq!(s.id, "web-1");
    assert_eq!(s.hostname.as_deref(), Some("web-1.lan"));
    assert!(!s.is_paused);
    assert_eq!(s.paused_at, None);
    assert_eq!(s.created_at, common::start_time());
    assert_eq!(q.get_server("web-1").unwrap(), s);
    let dup = q.create_server("web-1", None);
    assert_eq!(message(dup), "Server 'web-1' already exists");
    let none = q.create_server("db_2.example-x", None).unwrap();
    assert_eq!(none.hostname, None);
}

fn server_ids_are_validated(env: Env) {
    let q = &env.queue;
    let long = "a".repeat(101);
    for bad in [
        "",
        "-web",
        ".web",
        "web 1",
        "web/1",
        "wéb",
        "web;1",
        long.as_str(),
    ] {
        assert_eq!(
            kind(q.create_server(bad, None)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    q.create_server(&"a".repeat(100), None).unwrap();
    q.create_server("9x", None).unwrap();
    assert_eq!(
        kind(q.create_server("h", Some(""))),
        ErrorKind::InvalidInput
    );
}

fn unknown_server_is_not_found(env: Env) {
    let q = &env.queue;
    assert_eq!(message(q.get_server("nope")), "Server 'nope' not found");
    assert_eq!(kind(q.pause_server("nope")), ErrorKind::NotFound);
    assert_eq!(kind(q.unpause_server("nope")), ErrorKind::NotFound);
    assert_eq!(
        kind(q.list_server_actions("nope", None, 50, 0, None)),
        ErrorKind::NotFound
    );
    assert_eq!(kind(q.claim_next("nope", None, None)), ErrorKind::NotFound);
}

fn pause_and_unpause_are_idempotent(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let paused = q.pause_server("web-1").unwrap();
    assert!(paused.is_paused);
    assert_eq!(paused.paused_at, Some(common::start_time()));
    env.advance_secs(60);
    let again = q.pause_server("web-1").unwrap();
    assert_eq!(again, paused, "re-pausing keeps the original paused_at");
    let unpaused = q.unpause_server("web-1").unwrap();
    assert!(!unpaused.is_paused);
    assert_eq!(unpaused.paused_at, None);
    assert_eq!(q.unpause_server("web-1").unwrap(), unpaused);
    assert_eq!(q.get_server("web-1").unwrap(), unpaused);
}

// ---------------------------------------------------------------- create

fn create_on_normal_server_is_auto_approved(env: Env) {
    let env = env_with_server(env, false);
    let a = env
        .queue
        .create_action(&restart("web-1", "nginx").alert_id(7))
        .unwrap();
    assert_eq!(a.id, 1);
    assert_eq!(a.status, ActionStatus::Approved);
    assert_eq!(a.approved_by.as_deref(), Some("auto"));
    assert_eq!(a.approved_at, Some(a.created_at));
    assert_eq!(a.created_by, "dashboard");
    assert_eq!(a.alert_id, Some(7));
    assert_eq!(a.service_name.as_deref(), Some("nginx.service"));
    assert_eq!(a.created_at, common::start_time());
    for unset in [
        a.rejected_at,
        a.cancelled_at,
        a.executed_at,
        a.lease_expires_at,
        a.completed_at,
    ] {
        assert_eq!(unset, None);
    }
    assert_eq!((a.exit_code, &a.stdout, &a.stderr), (None, &None, &None));
    assert_eq!(env.queue.get_action(1).unwrap(), a);
}

fn create_on_paused_server_is_pending(env: Env) {
    let env = env_with_server(env, true);
    let a = env
        .queue
        .create_action(&restart("web-1", "nginx").created_by("alertmanager"))
        .unwrap();
    assert_eq!(a.status, ActionStatus::Pending);
    assert_eq!((a.approved_at, a.approved_by), (None, None));
    assert_eq!(a.created_by, "alertmanager");
}

fn default_whitelist_commands_are_exact(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "nginx.service")).unwrap();
    assert_eq!(a.command, "systemctl restart nginx.service");
    assert_eq!(a.argv, ["systemctl", "restart", "nginx.service"]);
    assert!(a.env.is_empty());

    let a = q
        .create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    assert_eq!(a.command, "journalctl --vacuum-time=7d");
    assert_eq!(a.argv, ["journalctl", "--vacuum-time=7d"]);
    assert_eq!(a.service_name, None);

    let a = q
        .create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap();
    assert_eq!(
        a.command,
        "DEBIAN_FRONTEND=noninteractive apt-get update -q -o APT::Sandbox::User=root"
    );
    assert_eq!(
        a.argv,
        ["apt-get", "update", "-q", "-o", "APT::Sandbox::User=root"]
    );
    assert_eq!(a.env.len(), 1);
    assert_eq!(a.env["DEBIAN_FRONTEND"], "noninteractive");
    q.cancel_action(a.id).unwrap();

    let a = q
        .create_action(&NewAction::new("web-1", "apt_upgrade_all"))
        .unwrap();
    assert_eq!(
        a.command,
        "DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -q -y -o Dpkg::Options::=\"--force-confdef\" -o Dpkg::Options::=\"--force-confold\" -o APT::Sandbox::User=root"
    );
    assert_eq!(
        a.argv,
        [
            "apt-get",
            "dist-upgrade",
            "-q",
            "-y",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "-o",
            "APT::Sandbox::User=root"
        ]
    );
    assert_eq!(a.env["DEBIAN_FRONTEND"], "noninteractive");
}

fn create_rules_apply_in_spec_order(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    // 1 before 2: malformed input on an unknown server.
    assert_eq!(
        kind(q.create_action(&NewAction::new("ghost", "restart_service"))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(q.create_action(&restart("ghost", "nginx").alert_id(0))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(q.create_action(&restart("bad id", "nginx"))),
        ErrorKind::InvalidInput
    );
    // 2 before 3: unknown server with an unknown type or a refused value.
    assert_eq!(
        message(q.create_action(&NewAction::new("ghost", "format_disk"))),
        "Server 'ghost' not found"
    );
    assert_eq!(
        kind(q.create_action(&restart("ghost", "a;b"))),
        ErrorKind::NotFound
    );
    // 3 before 4: a refused value that would also be a duplicate.
    q.create_action(&restart("web-1", "nginx")).unwrap();
    assert_eq!(
        kind(q.create_action(&restart("web-1", "nginx "))),
        ErrorKind::NotWhitelisted
    );
    assert_eq!(
        message(q.create_action(&NewAction::new("web-1", "format_disk"))),
        "Action type 'format_disk' not in whitelist"
    );
    // 4: the duplicate itself.
    assert_eq!(
        kind(q.create_action(&restart("web-1", "nginx"))),
        ErrorKind::Conflict
    );
}

fn malformed_parameters_are_invalid_input(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let missing = q.create_action(&NewAction::new("web-1", "restart_service"));
    assert_eq!(kind(missing), ErrorKind::InvalidInput);
    assert_eq!(
        kind(q.create_action(&restart("web-1", ""))),
        ErrorKind::InvalidInput
    );
    let extra = NewAction::new("web-1", "clear_logs").service_name("nginx");
    assert_eq!(kind(q.create_action(&extra)), ErrorKind::InvalidInput);
    for alert in [0, -1, i64::MIN] {
        assert_eq!(
            kind(q.create_action(&restart("web-1", "x").alert_id(alert))),
            ErrorKind::InvalidInput
        );
    }
    assert_eq!(
        kind(q.create_action(&restart("web-1", "x").created_by(""))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(q.create_action(&restart("web-1", "x").created_by("a".repeat(101)))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        q.list_actions(&ActionQuery::default()).unwrap().total,
        0,
        "nothing was stored"
    );
}

fn injection_corpus_is_not_whitelisted(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let long = "a".repeat(256);
    let corpus = [
        "nginx; rm -rf /",
        "$(reboot)",
        "`id`",
        "a|b",
        "a&&b",
        "-H",
        "--help",
        "a b",
        "nginx\nrm",
        "nginx\0",
        "nginx\ttab",
        "ngіnx",         // Cyrillic і
        "nginx\u{200b}", // zero-width space
        "ｎｇｉｎｘ",    // full-width
        long.as_str(),
        "a>b",
        "a<b",
        "a'b",
        "a\"b",
        "a\\b",
        "~root",
        "a*",
        "a?",
        "{a}",
        "a$b",
        "a#b",
        "a!b",
        "../../etc/passwd",
        "a/b",
        ".hidden",
        "nginx.",
        "a@b@c",
        "\u{7f}",
        // Services only (README "Security"): no other unit type, no
        // template, none of systemd's own units.
        "getty@tty1.service",
        "systemd-journald",
        "reboot.target",
        &"a".repeat(248),
    ];
    for bad in corpus {
        let r = q.create_action(&restart("web-1", bad));
        assert_eq!(
            kind(r),
            ErrorKind::NotWhitelisted,
            "{bad:?} must be refused"
        );
    }
    assert_eq!(q.list_actions(&ActionQuery::default()).unwrap().total, 0);
    let valid = [
        ("nginx", "nginx.service"),
        ("php8.2-fpm.service", "php8.2-fpm.service"),
        (
            "dbus-org.freedesktop.login1.service",
            "dbus-org.freedesktop.login1.service",
        ),
        (&"a".repeat(247), &format!("{}.service", "a".repeat(247))),
    ];
    for (good, unit) in valid {
        let a = q.create_action(&restart("web-1", good)).unwrap();
        assert_eq!(a.argv, ["systemctl", "restart", unit]);
    }
}

fn refused_value_message_names_the_parameter(env: Env) {
    let env = env_with_server(env, false);
    let msg = message(env.queue.create_action(&restart("web-1", "a;b")));
    assert!(msg.starts_with("Parameter 'service_name'"), "{msg}");
    assert!(msg.contains("not in whitelist"), "{msg}");
}

// ---------------------------------------------------------------- conflicts

fn pending_duplicate_restart_conflicts(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    let first = q.create_action(&restart("web-1", "nginx")).unwrap();
    let err = q.create_action(&restart("web-1", "nginx")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        err.to_string(),
        "Pending action already exists for service 'nginx.service' on server 'web-1'"
    );
    assert_eq!(err.existing_action_id(), Some(first.id));
    // Other services, servers and types are not duplicates.
    q.create_action(&restart("web-1", "postgresql")).unwrap();
    q.create_server("web-2", None).unwrap();
    q.create_action(&restart("web-2", "nginx")).unwrap();
    // Once the first leaves pending, the same restart may be queued again.
    q.approve_action(first.id).unwrap();
    q.create_action(&restart("web-1", "nginx")).unwrap();
}

fn restart_duplicates_only_block_while_pending(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "nginx")).unwrap();
    let b = q.create_action(&restart("web-1", "nginx")).unwrap();
    assert_eq!(
        (a.status, b.status),
        (ActionStatus::Approved, ActionStatus::Approved)
    );
}

fn apt_actions_are_exclusive_per_server(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    q.create_server("web-2", None).unwrap();
    let first = q
        .create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap();
    let msg = "An APT action is already pending/in-progress for server 'web-1'";
    for t in ["apt_update", "apt_upgrade_all"] {
        let err = q.create_action(&NewAction::new("web-1", t)).unwrap_err();
        assert_eq!(
            (err.kind(), err.to_string()),
            (ErrorKind::Conflict, msg.to_owned())
        );
        assert_eq!(err.existing_action_id(), Some(first.id));
    }
    q.create_action(&NewAction::new("web-2", "apt_upgrade_all"))
        .unwrap();
    q.create_action(&NewAction::new("web-1", "clear_logs"))
        .unwrap();
    // approved and executing still block
    q.approve_action(first.id).unwrap();
    assert_eq!(
        kind(q.create_action(&NewAction::new("web-1", "apt_upgrade_all"))),
        ErrorKind::Conflict
    );
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(claim.action.id, first.id);
    assert_eq!(
        kind(q.create_action(&NewAction::new("web-1", "apt_upgrade_all"))),
        ErrorKind::Conflict
    );
    // a finished one does not
    q.report_result(first.id, &claim.lease_token, 0, None, None)
        .unwrap();
    let next = q
        .create_action(&NewAction::new("web-1", "apt_upgrade_all"))
        .unwrap();
    // neither does a cancelled or rejected one
    q.reject_action(next.id, "not now").unwrap();
    let again = q
        .create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap();
    q.cancel_action(again.id).unwrap();
    q.create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap();
}

/// After a whitelist change several group members may be active at once; a
/// collision names the oldest of them on every store.
fn group_conflict_names_the_oldest_collision(env: Env) {
    let ungrouped =
        actionq::DEFAULT_WHITELIST_JSON.replace(r#"{ "exclusive_group": "apt" }"#, r#""none""#);
    let env = env_with_server(env, false).whitelist(&ungrouped);
    let q = &env.queue;
    let upgrade = q
        .create_action(&NewAction::new("web-1", "apt_upgrade_all"))
        .unwrap();
    q.create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap();
    let env = env.whitelist(actionq::DEFAULT_WHITELIST_JSON);
    let err = env
        .queue
        .create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap_err();
    assert_eq!(err.existing_action_id(), Some(upgrade.id));
}

// ---------------------------------------------------------------- transitions

fn approve_reject_cancel_from_pending(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "a")).unwrap();
    let b = q.create_action(&restart("web-1", "b")).unwrap();
    let c = q.create_action(&restart("web-1", "c")).unwrap();
    env.advance_secs(5);
    let now = common::start_time() + chrono::TimeDelta::seconds(5);

    let a = q.by("alice").unwrap().approve_action(a.id).unwrap();
    assert_eq!(a.status, ActionStatus::Approved);
    assert_eq!(
        (a.approved_at, a.approved_by.as_deref()),
        (Some(now), Some("alice"))
    );

    let b = q
        .by("bob")
        .unwrap()
        .reject_action(b.id, "maintenance window")
        .unwrap();
    assert_eq!(b.status, ActionStatus::Rejected);
    assert_eq!(b.rejected_at, Some(now));
    assert_eq!(b.rejected_by.as_deref(), Some("bob"));
    assert_eq!(b.rejection_reason.as_deref(), Some("maintenance window"));
    assert_eq!(b.approved_at, None);

    let c = q.by("carol").unwrap().cancel_action(c.id).unwrap();
    assert_eq!(c.status, ActionStatus::Cancelled);
    assert_eq!(
        (c.cancelled_at, c.cancelled_by.as_deref()),
        (Some(now), Some("carol"))
    );
    for id in [a.id, b.id, c.id] {
        assert_eq!(
            q.get_action(id).unwrap(),
            [&a, &b, &c][id as usize - 1].clone()
        );
    }
}

fn illegal_transitions_name_the_current_status(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "nginx")).unwrap();
    assert_eq!(
        message(q.approve_action(a.id)),
        "Cannot approve action with status 'approved' (must be pending)"
    );
    assert_eq!(
        message(q.reject_action(a.id, "no")),
        "Cannot reject action with status 'approved' (must be pending)"
    );
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    q.report_result(a.id, &claim.lease_token, 0, None, None)
        .unwrap();
    for r in [
        q.by("d").unwrap().approve_action(a.id),
        q.by("d").unwrap().reject_action(a.id, "x"),
        q.by("d").unwrap().cancel_action(a.id),
    ] {
        let err = r.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.to_string().contains("with status 'completed'"), "{err}");
        assert_eq!(err.existing_action_id(), None);
    }
    assert_eq!(q.get_action(a.id).unwrap().status, ActionStatus::Completed);
}

fn cancel_from_approved(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "nginx")).unwrap();
    let c = q.cancel_action(a.id).unwrap();
    assert_eq!(c.status, ActionStatus::Cancelled);
    assert!(
        q.claim_next("web-1", None, None).unwrap().is_none(),
        "cancelled is never claimed"
    );
    assert_eq!(
        message(q.cancel_action(a.id)),
        "Cannot cancel action with status 'cancelled' (must be pending or approved or executing)"
    );
}

fn reject_reason_is_1_to_1000_chars(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "nginx")).unwrap();
    assert_eq!(kind(q.reject_action(a.id, "")), ErrorKind::InvalidInput);
    assert_eq!(
        kind(q.reject_action(a.id, &"é".repeat(1001))),
        ErrorKind::InvalidInput
    );
    assert_eq!(q.get_action(a.id).unwrap().status, ActionStatus::Pending);
    let r = q.reject_action(a.id, &"é".repeat(1000)).unwrap();
    assert_eq!(r.rejection_reason.unwrap().chars().count(), 1000);
}

fn unknown_action_is_not_found(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    assert_eq!(message(q.get_action(999)), "Action 999 not found");
    for id in [0, -1, 999, i64::MAX] {
        assert_eq!(kind(q.get_action(id)), ErrorKind::NotFound);
        assert_eq!(
            kind(q.by("d").unwrap().approve_action(id)),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(q.by("d").unwrap().reject_action(id, "r")),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(q.by("d").unwrap().cancel_action(id)),
            ErrorKind::NotFound
        );
        assert_eq!(kind(q.heartbeat(id, "t", None)), ErrorKind::NotFound);
        assert_eq!(
            kind(q.report_result(id, "t", 0, None, None)),
            ErrorKind::NotFound
        );
    }
}

// ---------------------------------------------------------------- listing

fn list_is_newest_first_with_filters_and_total(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_server("web-2", None).unwrap();
    for i in 0..7 {
        env.advance_secs(1);
        let server = if i % 2 == 0 { "web-1" } else { "web-2" };
        q.create_action(&restart(server, &format!("svc{i}")))
            .unwrap();
    }
    q.create_action(&NewAction::new("web-2", "clear_logs"))
        .unwrap();
    q.cancel_action(1).unwrap();

    let all = q.list_actions(&ActionQuery::default()).unwrap();
    assert_eq!((all.total, all.limit, all.offset), (8, 50, 0));
    let ids: Vec<i64> = all.actions.iter().map(|a| a.id).collect();
    assert_eq!(ids, [8, 7, 6, 5, 4, 3, 2, 1]);

    let page = q
        .list_actions(&ActionQuery {
            limit: 3,
            offset: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        page.actions.iter().map(|a| a.id).collect::<Vec<_>>(),
        [6, 5, 4]
    );
    assert_eq!((page.total, page.limit, page.offset), (8, 3, 2));

    let past_end = q
        .list_actions(&ActionQuery {
            offset: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(past_end.actions.is_empty());
    assert_eq!(past_end.total, 8);

    let web2 = q
        .list_actions(&ActionQuery {
            server_id: Some("web-2".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        web2.actions.iter().map(|a| a.id).collect::<Vec<_>>(),
        [8, 6, 4, 2]
    );
    assert_eq!(web2.total, 4);

    let cancelled = q
        .list_actions(&ActionQuery {
            status: Some(ActionStatus::Cancelled),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((cancelled.total, cancelled.actions[0].id), (1, 1));

    let logs = q
        .list_actions(&ActionQuery {
            action_type: Some("clear_logs".into()),
            server_id: Some("web-2".into()),
            status: Some(ActionStatus::Approved),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        (logs.total, logs.actions.len(), logs.actions[0].id),
        (1, 1, 8)
    );

    let server = q
        .list_server_actions("web-1", Some(ActionStatus::Approved), 2, 1, None)
        .unwrap();
    assert_eq!(
        server.actions.iter().map(|a| a.id).collect::<Vec<_>>(),
        [5, 3]
    );
    assert_eq!((server.total, server.limit, server.offset), (3, 2, 1));

    let nothing = q
        .list_actions(&ActionQuery {
            server_id: Some("nope".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((nothing.total, nothing.actions.len()), (0, 0));
}

fn list_orders_by_created_at_not_id(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    env.advance_secs(-3600); // a host whose clock stepped back
    q.create_action(&restart("web-1", "b")).unwrap();
    env.advance_secs(7200);
    q.create_action(&restart("web-1", "c")).unwrap();
    let ids: Vec<i64> = q
        .list_actions(&ActionQuery::default())
        .unwrap()
        .actions
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, [3, 1, 2]);
    // and the oldest approved is claimed first
    assert_eq!(
        q.claim_next("web-1", None, None)
            .unwrap()
            .unwrap()
            .action
            .id,
        2
    );
}

fn list_bounds_are_validated(env: Env) {
    let q = &env.queue;
    for limit in [0, -1, 101] {
        let r = q.list_actions(&ActionQuery {
            limit,
            ..Default::default()
        });
        assert_eq!(kind(r), ErrorKind::InvalidInput, "limit {limit}");
    }
    let r = q.list_actions(&ActionQuery {
        offset: -1,
        ..Default::default()
    });
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    q.list_actions(&ActionQuery {
        limit: 100,
        ..Default::default()
    })
    .unwrap();
    q.list_actions(&ActionQuery {
        limit: 1,
        offset: i64::MAX,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        "bogus".parse::<ActionStatus>().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    for s in ActionStatus::ALL {
        assert_eq!(s.as_str().parse::<ActionStatus>().unwrap(), s);
    }
}

// ---------------------------------------------------------------- agent side

fn claim_takes_the_oldest_approved_once(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    let pending = q.create_action(&restart("web-1", "a")).unwrap();
    assert!(
        q.claim_next("web-1", None, None).unwrap().is_none(),
        "pending is not claimable"
    );
    q.unpause_server("web-1").unwrap();
    env.advance_secs(1);
    let b = q.create_action(&restart("web-1", "b")).unwrap();
    env.advance_secs(1);
    let c = q.create_action(&restart("web-1", "c")).unwrap();
    q.approve_action(pending.id).unwrap();

    env.advance_secs(10);
    let now = env.clock_now();
    let first = q
        .claim_next("web-1", Some(Duration::from_secs(30)), None)
        .unwrap()
        .unwrap();
    assert_eq!(first.action.id, pending.id);
    assert_eq!(first.action.status, ActionStatus::Executing);
    assert_eq!(first.action.executed_at, Some(now));
    assert_eq!(
        first.action.lease_expires_at,
        Some(now + chrono::TimeDelta::seconds(30))
    );
    uuid_like(&first.lease_token);
    assert_eq!(
        q.get_action(pending.id).unwrap(),
        first.action,
        "get never shows the token"
    );

    let second = q.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(second.action.id, b.id);
    assert_eq!(
        second.action.lease_expires_at,
        Some(now + chrono::TimeDelta::seconds(300))
    );
    assert_ne!(second.lease_token, first.lease_token);
    assert_eq!(
        q.claim_next("web-1", None, None)
            .unwrap()
            .unwrap()
            .action
            .id,
        c.id
    );
    assert!(q.claim_next("web-1", None, None).unwrap().is_none());
}

fn uuid_like(token: &str) {
    assert_eq!(token.len(), 36, "{token}");
    assert_eq!(token.matches('-').count(), 4, "{token}");
}

fn claim_lease_is_validated(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    assert_eq!(
        kind(q.claim_next("web-1", Some(Duration::ZERO), None)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(q.claim_next("web-1", Some(Duration::from_secs(86_401)), None)),
        ErrorKind::InvalidInput
    );
    assert_eq!(q.get_action(1).unwrap().status, ActionStatus::Approved);
}

fn claims_are_per_server(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_server("web-2", None).unwrap();
    q.create_action(&restart("web-2", "a")).unwrap();
    assert!(q.claim_next("web-1", None, None).unwrap().is_none());
    assert_eq!(
        q.claim_next("web-2", None, None)
            .unwrap()
            .unwrap()
            .action
            .server_id,
        "web-2"
    );
}

fn report_result_completes_or_fails(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    q.create_action(&restart("web-1", "b")).unwrap();
    let ok = q.claim_next("web-1", None, None).unwrap().unwrap();
    let bad = q.claim_next("web-1", None, None).unwrap().unwrap();
    env.advance_secs(3);
    let done = q
        .report_result(
            ok.action.id,
            &ok.lease_token,
            0,
            Some("restarted"),
            Some(""),
        )
        .unwrap();
    assert_eq!(done.status, ActionStatus::Completed);
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(done.stdout.as_deref(), Some("restarted"));
    assert_eq!(done.stderr.as_deref(), Some(""));
    assert_eq!(done.completed_at, Some(env.clock_now()));
    let failed = q
        .report_result(
            bad.action.id,
            &bad.lease_token,
            3,
            None,
            Some("unit not found"),
        )
        .unwrap();
    assert_eq!(failed.status, ActionStatus::Failed);
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(failed.stdout, None);
    // a second report with the same token is refused and changes nothing
    let again = q.report_result(ok.action.id, &ok.lease_token, 1, Some("x"), None);
    assert_eq!(
        message(again),
        "Cannot report result for action with status 'completed' (must be executing)"
    );
    assert_eq!(q.get_action(ok.action.id).unwrap(), done);
}

fn wrong_or_stale_token_is_conflict_and_changes_nothing(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    let claim = q
        .claim_next("web-1", Some(Duration::from_secs(60)), None)
        .unwrap()
        .unwrap();
    let before = q.get_action(claim.action.id).unwrap();
    for wrong in ["", "not-a-token", "00000000-0000-0000-0000-000000000000"] {
        let r = q.report_result(claim.action.id, wrong, 0, Some("forged"), None);
        assert_eq!(
            message(r),
            format!(
                "Lease token does not match the current lease of action {}",
                claim.action.id
            )
        );
        assert_eq!(
            kind(q.heartbeat(claim.action.id, wrong, None)),
            ErrorKind::Conflict
        );
    }
    assert_eq!(q.get_action(claim.action.id).unwrap(), before);
    // a token of another action does not fit either
    q.create_action(&restart("web-1", "b")).unwrap();
    let other = q.claim_next("web-1", None, None).unwrap().unwrap();
    assert_eq!(
        kind(q.report_result(claim.action.id, &other.lease_token, 0, None, None)),
        ErrorKind::Conflict
    );
    assert_eq!(q.get_action(claim.action.id).unwrap(), before);
}

fn heartbeat_extends_the_lease(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    let claim = q
        .claim_next("web-1", Some(Duration::from_secs(60)), None)
        .unwrap()
        .unwrap();
    env.advance_secs(50);
    let beat = q
        .heartbeat(
            claim.action.id,
            &claim.lease_token,
            Some(Duration::from_secs(60)),
        )
        .unwrap();
    assert_eq!(beat.status, ActionStatus::Executing);
    assert_eq!(
        beat.lease_expires_at,
        Some(env.clock_now() + chrono::TimeDelta::seconds(60))
    );
    env.advance_secs(50); // past the original lease, within the extended one
    assert!(q.expire_leases().unwrap().is_empty());
    let done = q
        .report_result(claim.action.id, &claim.lease_token, 0, None, None)
        .unwrap();
    assert_eq!(done.status, ActionStatus::Completed);
    assert_eq!(
        kind(q.heartbeat(claim.action.id, &claim.lease_token, None)),
        ErrorKind::Conflict
    );
}

/// A read refused for its input fails nothing: the lease sweep that comes
/// before every read runs only once the input is in bounds.
fn a_read_refused_for_its_input_sweeps_no_lease(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    let claim = q
        .claim_next("web-1", Some(Duration::from_secs(10)), None)
        .unwrap()
        .unwrap();
    env.advance_secs(10);
    let bad_page = ActionQuery {
        limit: 0,
        ..ActionQuery::default()
    };
    let refused = [
        kind(q.events_since(0, 0, None)),
        kind(q.events_since(-1, 10, None)),
        kind(q.list_actions(&bad_page)),
        kind(q.list_server_actions("web-1", None, 10, -1, None)),
        kind(q.list_server_actions("ghost", None, 10, 0, Some(0))),
        kind(q.claim_next("web-1", Some(Duration::ZERO), None)),
    ];
    assert_eq!(refused, [ErrorKind::InvalidInput; 6]);
    // A create does not sweep: had a refused read swept, the failure would be
    // logged before this create.
    let b = q.create_action(&restart("web-1", "b")).unwrap();
    let logged: Vec<_> = q
        .events_since(0, 1000, None)
        .unwrap()
        .iter()
        .map(|e| (e.action_id.unwrap(), e.to_status.unwrap()))
        .collect();
    assert_eq!(
        logged,
        [
            (claim.action.id, ActionStatus::Approved),
            (claim.action.id, ActionStatus::Executing),
            (b.id, ActionStatus::Approved),
            (claim.action.id, ActionStatus::Failed),
        ],
        "the first accepted read sweeps"
    );
}

fn expired_lease_fails_and_is_never_requeued(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    q.create_action(&restart("web-1", "b")).unwrap();
    let lost = q
        .claim_next("web-1", Some(Duration::from_secs(10)), None)
        .unwrap()
        .unwrap();
    let alive = q
        .claim_next("web-1", Some(Duration::from_secs(100)), None)
        .unwrap()
        .unwrap();
    env.advance_secs(10);
    // The stale agent cannot report once its lease ran out, even before the sweep.
    let late = q.report_result(lost.action.id, &lost.lease_token, 0, None, None);
    assert_eq!(
        message(late),
        format!("Lease of action {} has expired", lost.action.id)
    );
    assert_eq!(
        kind(q.heartbeat(lost.action.id, &lost.lease_token, None)),
        ErrorKind::Conflict
    );

    let expired = q.expire_leases().unwrap();
    assert_eq!(expired.len(), 1);
    let failed = &expired[0];
    assert_eq!(failed.id, lost.action.id);
    assert_eq!(failed.status, ActionStatus::Failed);
    assert_eq!(failed.exit_code, Some(-1));
    assert_eq!(failed.completed_at, Some(env.clock_now()));
    assert!(failed.stderr.as_deref().unwrap().contains("lease expired"));
    assert_eq!(&q.get_action(lost.action.id).unwrap(), failed);
    assert!(
        q.claim_next("web-1", None, None).unwrap().is_none(),
        "never re-queued"
    );
    assert!(q.expire_leases().unwrap().is_empty(), "expiry is done once");
    assert_eq!(
        kind(q.report_result(lost.action.id, &lost.lease_token, 0, None, None)),
        ErrorKind::Conflict
    );
    assert_eq!(
        q.get_action(alive.action.id).unwrap().status,
        ActionStatus::Executing
    );
}

fn output_is_capped(env: Env) {
    let env = env_with_server(env, false).options(QueueOptions {
        output_cap_chars: 5,
        ..QueueOptions::default()
    });
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    let done = q
        .report_result(
            claim.action.id,
            &claim.lease_token,
            0,
            Some("ééééééé"),
            Some("abc"),
        )
        .unwrap();
    assert_eq!(done.stdout.as_deref(), Some("ééééé"));
    assert_eq!(done.stderr.as_deref(), Some("abc"));
}

/// Executor output is stored as given, whatever bytes it holds: NUL and
/// other control characters included (PostgreSQL `text` refuses NUL).
fn output_with_nul_and_control_characters_reads_back(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    let (out, err) = ("a\0b\x01\u{7f}é\n", "\0");
    let done = q
        .report_result(claim.action.id, &claim.lease_token, 1, Some(out), Some(err))
        .unwrap();
    assert_eq!(
        (done.stdout.as_deref(), done.stderr.as_deref()),
        (Some(out), Some(err))
    );
    let read = q.get_action(claim.action.id).unwrap();
    assert_eq!(
        (read.stdout.as_deref(), read.stderr.as_deref()),
        (Some(out), Some(err))
    );
}

fn default_output_cap_is_10000_chars(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    assert_eq!(q.options().output_cap_chars, 10_000);
    q.create_action(&restart("web-1", "a")).unwrap();
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    let big = "x".repeat(10 * 1024 * 1024);
    let done = q
        .report_result(
            claim.action.id,
            &claim.lease_token,
            1,
            Some(&big),
            Some(&big),
        )
        .unwrap();
    assert_eq!(done.stdout.unwrap().len(), 10_000);
    assert_eq!(
        q.get_action(claim.action.id).unwrap().stderr.unwrap().len(),
        10_000
    );
}

// ---------------------------------------------------------------- audit trail

type EventRow<'a> = (
    i64,
    Option<i64>,
    Option<ActionStatus>,
    Option<ActionStatus>,
    &'a str,
    Option<&'a str>,
);

fn every_state_change_is_an_event(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    let a = q
        .create_action(&restart("web-1", "a").created_by("alerts"))
        .unwrap();
    let b = q.create_action(&restart("web-1", "b")).unwrap();
    let c = q.create_action(&restart("web-1", "c")).unwrap();
    q.by("alice").unwrap().approve_action(a.id).unwrap();
    q.by("bob").unwrap().reject_action(b.id, "no").unwrap();
    q.by("carol").unwrap().cancel_action(c.id).unwrap();
    let claim = q
        .claim_next("web-1", Some(Duration::from_secs(60)), None)
        .unwrap()
        .unwrap();
    q.heartbeat(a.id, &claim.lease_token, None).unwrap(); // not a state change
    q.report_result(a.id, &claim.lease_token, 4, None, None)
        .unwrap();
    q.unpause_server("web-1").unwrap();
    let d = q.create_action(&restart("web-1", "d")).unwrap();
    q.claim_next("web-1", Some(Duration::from_secs(1)), None)
        .unwrap()
        .unwrap();
    env.advance_secs(2);
    q.expire_leases().unwrap();

    use ActionStatus::*;
    let events = q.events_since(0, 1000, None).unwrap();
    let got: Vec<EventRow> = events
        .iter()
        .map(|e| {
            (
                e.id,
                e.action_id,
                e.from_status,
                e.to_status,
                e.by.as_str(),
                e.detail.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, None, None, None, "dashboard", Some("paused")),
            (2, Some(a.id), None, Some(Pending), "alerts", None),
            (3, Some(b.id), None, Some(Pending), "dashboard", None),
            (4, Some(c.id), None, Some(Pending), "dashboard", None),
            (5, Some(a.id), Some(Pending), Some(Approved), "alice", None),
            (
                6,
                Some(b.id),
                Some(Pending),
                Some(Rejected),
                "bob",
                Some("no")
            ),
            (7, Some(c.id), Some(Pending), Some(Cancelled), "carol", None),
            (
                8,
                Some(a.id),
                Some(Approved),
                Some(Executing),
                "agent",
                None
            ),
            (
                9,
                Some(a.id),
                Some(Executing),
                Some(Failed),
                "agent",
                Some("exit_code=4")
            ),
            (10, None, None, None, "dashboard", Some("unpaused")),
            (
                11,
                Some(d.id),
                None,
                Some(Approved),
                "dashboard",
                Some("auto-approved")
            ),
            (
                12,
                Some(d.id),
                Some(Approved),
                Some(Executing),
                "agent",
                None
            ),
            (
                13,
                Some(d.id),
                Some(Executing),
                Some(Failed),
                "system",
                Some("lease expired")
            ),
        ]
    );
    // Server events name the server: kind and subject on every event.
    assert!(events
        .iter()
        .all(|e| e.subject == "web-1" && (e.kind == EventKind::Server) == e.action_id.is_none()));
    assert_eq!(events[12].at, env.clock_now());
    // cursor paging
    let page = q.events_since(4, 3, None).unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [5, 6, 7]);
    assert!(q.events_since(13, 10, None).unwrap().is_empty());
    assert!(q.events_since(1_000_000, 10, None).unwrap().is_empty());
    assert_eq!(kind(q.events_since(-1, 10, None)), ErrorKind::InvalidInput);
    assert_eq!(kind(q.events_since(0, 0, None)), ErrorKind::InvalidInput);
    assert_eq!(kind(q.events_since(0, 1001, None)), ErrorKind::InvalidInput);
}

fn failed_operations_log_nothing(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "a")).unwrap();
    let _ = q.create_action(&restart("web-1", "a"));
    let _ = q.create_action(&restart("web-1", "a;b"));
    let _ = q
        .by("x")
        .unwrap()
        .cancel_action(a.id)
        .and_then(|_| q.by("x").unwrap().cancel_action(a.id));
    let _ = q.by("x").unwrap().approve_action(a.id);
    // The pause, the creation and the cancellation.
    assert_eq!(q.events_since(0, 100, None).unwrap().len(), 3);
}

// ---------------------------------------------------------------- custom whitelists

const CUSTOM: &str = r#"{
  "actions": {
    "install_package": {
      "command": "DEBIAN_FRONTEND=noninteractive apt-get install -y {package}",
      "params": { "package": { "kind": "debian_package" } },
      "conflict": { "exclusive_group": "apt" }
    },
    "apt_update": {
      "command": "apt-get update",
      "conflict": { "exclusive_group": "apt" }
    },
    "vacuum_journal": {
      "command": "journalctl --vacuum-time={days}d",
      "params": { "days": { "kind": "integer", "min": 1, "max": 90, "default": "7" } }
    },
    "set_governor": {
      "command": "cpupower frequency-set -g '{governor}'",
      "params": { "governor": { "kind": "one_of", "values": ["performance", "powersave"] } },
      "conflict": "pending_duplicate"
    }
  }
}"#;

fn custom_whitelist_builds_and_validates(env: Env) {
    let env =
        env_with_server(env, true).whitelist(CUSTOM.replace("'{governor}'", "{governor}").as_str());
    let q = &env.queue;
    let a = q
        .create_action(&NewAction::new("web-1", "install_package").param("package", "libc6-dev"))
        .unwrap();
    assert_eq!(a.argv, ["apt-get", "install", "-y", "libc6-dev"]);
    assert_eq!(
        a.command,
        "DEBIAN_FRONTEND=noninteractive apt-get install -y libc6-dev"
    );
    assert_eq!(a.service_name, None);
    let err = q
        .create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "An APT action is already pending/in-progress for server 'web-1'"
    );

    let v = q
        .create_action(&NewAction::new("web-1", "vacuum_journal"))
        .unwrap();
    assert_eq!(v.argv, ["journalctl", "--vacuum-time=7d"]);
    let v = q
        .create_action(&NewAction::new("web-1", "vacuum_journal").param("days", "30"))
        .unwrap();
    assert_eq!(v.argv, ["journalctl", "--vacuum-time=30d"]);
    for bad in [
        "0",
        "91",
        "-1",
        "07",
        "1e3",
        "ten",
        "3 ",
        "99999999999999999999999",
    ] {
        let r = q.create_action(&NewAction::new("web-1", "vacuum_journal").param("days", bad));
        assert_eq!(kind(r), ErrorKind::NotWhitelisted, "{bad:?}");
    }
    for bad in ["Libc", "-x", "a", "a b", "a;b", "é"] {
        let r = q.create_action(&NewAction::new("web-1", "install_package").param("package", bad));
        assert_eq!(kind(r), ErrorKind::NotWhitelisted, "{bad:?}");
    }
    let g = q
        .create_action(&NewAction::new("web-1", "set_governor").param("governor", "powersave"))
        .unwrap();
    assert_eq!(g.argv, ["cpupower", "frequency-set", "-g", "powersave"]);
    let dup =
        q.create_action(&NewAction::new("web-1", "set_governor").param("governor", "powersave"));
    assert_eq!(
        message(dup),
        "Pending action already exists for 'set_governor' on server 'web-1'"
    );
    q.create_action(&NewAction::new("web-1", "set_governor").param("governor", "performance"))
        .unwrap();
    let r = q.create_action(&NewAction::new("web-1", "set_governor").param("governor", "turbo"));
    assert_eq!(kind(r), ErrorKind::NotWhitelisted);
    assert_eq!(
        kind(q.create_action(&restart("web-1", "nginx"))),
        ErrorKind::NotWhitelisted
    );
}

fn quoted_placeholders_keep_argv_and_display_consistent(env: Env) {
    let env =
        env_with_server(env, false).whitelist(&CUSTOM.replace("'{governor}'", r#"\"{governor}\""#));
    let g = env
        .queue
        .create_action(&NewAction::new("web-1", "set_governor").param("governor", "performance"))
        .unwrap();
    assert_eq!(g.argv, ["cpupower", "frequency-set", "-g", "performance"]);
    assert_eq!(g.command, "cpupower frequency-set -g \"performance\"");
}

// ---------------------------------------------------------------- coverage audit additions

/// Puts one action in each of the seven statuses and returns (status, id, lease token).
fn one_action_per_status(env: &Env) -> Vec<(ActionStatus, i64, Option<String>)> {
    let q = &env.queue;
    q.create_server("agent-host", None).unwrap();
    q.pause_server("agent-host").unwrap();
    let mk = |svc: &str| q.create_action(&restart("agent-host", svc)).unwrap().id;
    let pending = mk("pending");
    let rejected = mk("rejected");
    q.reject_action(rejected, "no").unwrap();
    let cancelled = mk("cancelled");
    q.cancel_action(cancelled).unwrap();
    let mut claimed = Vec::new();
    for svc in ["executing", "completed", "failed"] {
        let id = mk(svc);
        q.approve_action(id).unwrap();
        let claim = q
            .claim_next("agent-host", Some(Duration::from_secs(3600)), None)
            .unwrap()
            .unwrap();
        assert_eq!(claim.action.id, id);
        claimed.push((id, claim.lease_token));
    }
    let approved = mk("approved");
    q.approve_action(approved).unwrap();
    q.report_result(claimed[1].0, &claimed[1].1, 0, None, None)
        .unwrap();
    q.report_result(claimed[2].0, &claimed[2].1, 1, None, None)
        .unwrap();
    use ActionStatus::*;
    let all = vec![
        (Pending, pending, None),
        (Approved, approved, None),
        (Executing, claimed[0].0, Some(claimed[0].1.clone())),
        (Completed, claimed[1].0, Some(claimed[1].1.clone())),
        (Failed, claimed[2].0, Some(claimed[2].1.clone())),
        (Rejected, rejected, None),
        (Cancelled, cancelled, None),
    ];
    for (status, id, _) in &all {
        assert_eq!(q.get_action(*id).unwrap().status, *status);
    }
    all
}

/// The status machine (`docs/contract/domain.md#status-machine`), exhaustively:
/// from every status, each operation either makes exactly its transition or is a Conflict naming the
/// current status, and a refused one changes nothing and logs nothing.
fn transition_matrix_from_every_status(env: Env) {
    use ActionStatus::*;
    for (status, id, token) in one_action_per_status(&env) {
        let token = token.unwrap_or_else(|| "no-token".to_owned());
        let ops: [(&str, &[ActionStatus], ActionStatus); 5] = [
            ("approve", &[Pending], Approved),
            ("reject", &[Pending], Rejected),
            ("cancel", &[Pending, Approved, Executing], Cancelled),
            ("report result for", &[Executing], Completed),
            ("heartbeat", &[Executing], Executing),
        ];
        for (verb, allowed, to) in ops {
            // each op on a fresh copy of the state: rebuild the world per op
            let fresh = env.fresh();
            let rows = one_action_per_status(&fresh);
            let (_, id2, token2) = rows.iter().find(|r| r.0 == status).unwrap().clone();
            assert_eq!(id2, id);
            let token2 = token2.unwrap_or_else(|| token.clone());
            let q = &fresh.queue;
            let before = q.get_action(id).unwrap();
            let events_before = q.events_since(0, 1000, None).unwrap();
            let r = match verb {
                "approve" => q.approve_action(id),
                "reject" => q.reject_action(id, "why"),
                "cancel" => q.cancel_action(id),
                "report result for" => q.report_result(id, &token2, 0, None, None),
                _ => q.heartbeat(id, &token2, None),
            };
            // A cancel of an executing action is a request: logged, status kept.
            let cancel_request = verb == "cancel" && status == Executing;
            let to = if cancel_request { Executing } else { to };
            if allowed.contains(&status) {
                let after = r.unwrap_or_else(|e| panic!("{verb} from {status}: {e}"));
                assert_eq!(after.status, to, "{verb} from {status}");
                assert_eq!(q.get_action(id).unwrap(), after);
                let logged = q.events_since(0, 1000, None).unwrap().len() - events_before.len();
                assert_eq!(
                    logged,
                    usize::from(to != status || cancel_request),
                    "{verb} from {status}"
                );
            } else {
                let must: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
                let err = r.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Conflict, "{verb} from {status}");
                assert_eq!(err.code(), "CONFLICT");
                assert_eq!(err.http_status(), 409);
                assert_eq!(
                    err.to_string(),
                    format!(
                        "Cannot {verb} action with status '{status}' (must be {})",
                        must.join(" or ")
                    )
                );
                assert_eq!(err.existing_action_id(), None);
                assert_eq!(q.get_action(id).unwrap(), before, "{verb} from {status}");
                assert_eq!(q.events_since(0, 1000, None).unwrap(), events_before);
            }
        }
    }
    // terminal and pending actions are never claimed: only the approved one is
    let q = &env.queue;
    let claimed = q.claim_next("agent-host", None, None).unwrap().unwrap();
    assert_eq!(
        q.get_action(claimed.action.id)
            .unwrap()
            .service_name
            .as_deref(),
        Some("approved.service")
    );
    assert!(q.claim_next("agent-host", None, None).unwrap().is_none());
}

/// The error table (`docs/contract/errors.md#kinds`), on errors the store
/// actually returns.
fn errors_carry_spec_code_and_http_status(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "nginx")).unwrap();
    let cases = [
        (
            q.create_action(&restart("web-1", "x").alert_id(0))
                .unwrap_err(),
            "VALIDATION_ERROR",
            422,
        ),
        (q.get_action(999).unwrap_err(), "NOT_FOUND", 404),
        (q.get_server("nope").unwrap_err(), "NOT_FOUND", 404),
        (
            q.create_action(&NewAction::new("web-1", "format_disk"))
                .unwrap_err(),
            "FORBIDDEN",
            403,
        ),
        (
            q.create_action(&restart("web-1", "a;b")).unwrap_err(),
            "FORBIDDEN",
            403,
        ),
        (
            q.create_action(&restart("web-1", "nginx")).unwrap_err(),
            "CONFLICT",
            409,
        ),
        (q.create_server("web-1", None).unwrap_err(), "CONFLICT", 409),
    ];
    for (err, code, http) in cases {
        assert_eq!((err.code(), err.http_status()), (code, http), "{err}");
        assert_eq!((err.kind().code(), err.kind().http_status()), (code, http));
        assert_eq!(err.message(), err.to_string());
    }
    q.approve_action(a.id).unwrap();
    let err = q.approve_action(a.id).unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("CONFLICT", 409));
}

/// Ids start at 1 and strictly increase, whatever failed in between; the
/// audit log's ids do too.
fn ids_start_at_1_and_strictly_increase(env: Env) {
    let env = env_with_server(env, true);
    let q = &env.queue;
    q.create_server("web-2", None).unwrap();
    q.pause_server("web-2").unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        let server = if i % 3 == 0 { "web-2" } else { "web-1" };
        let a = q.create_action(&restart(server, &format!("s{i}"))).unwrap();
        ids.push(a.id);
        // failed creates in between never take or reuse an id visibly
        let _ = q.create_action(&restart(server, &format!("s{i}")));
        let _ = q.create_action(&restart(server, "a;b"));
        let _ = q.create_action(&NewAction::new("ghost", "clear_logs"));
        if i % 4 == 1 {
            q.cancel_action(a.id).unwrap();
        }
    }
    assert_eq!(ids[0], 1);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let listed: Vec<i64> = q
        .list_actions(&ActionQuery::default())
        .unwrap()
        .actions
        .iter()
        .map(|a| a.id)
        .collect();
    let mut sorted = ids.clone();
    sorted.reverse();
    assert_eq!(listed, sorted);
    let events = q.events_since(0, 1000, None).unwrap();
    assert_eq!(events[0].id, 1);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
}

/// Timestamps are UTC with microsecond precision: a sub-microsecond clock
/// reading is truncated, and every store gives back exactly what it returned.
fn timestamps_are_utc_microseconds(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let precise: actionq::Timestamp = "2026-03-01T13:14:15.987654321Z".parse().unwrap();
    let micros: actionq::Timestamp = "2026-03-01T13:14:15.987654Z".parse().unwrap();
    env.clock.set(precise);
    assert_eq!(env.clock_now(), micros);
    let a = q.create_action(&restart("web-1", "nginx")).unwrap();
    assert_eq!(a.created_at, micros);
    assert_eq!(a.approved_at, Some(micros));
    let claim = q
        .claim_next("web-1", Some(Duration::from_secs(1)), None)
        .unwrap()
        .unwrap();
    assert_eq!(claim.action.executed_at, Some(micros));
    env.clock.set(precise + chrono::TimeDelta::nanoseconds(600));
    let done = q
        .report_result(a.id, &claim.lease_token, 0, None, None)
        .unwrap();
    assert_eq!(done.completed_at, Some(micros));
    let stored = q.get_action(a.id).unwrap();
    assert_eq!(stored, done);
    for t in [
        Some(stored.created_at),
        stored.approved_at,
        stored.executed_at,
        stored.lease_expires_at,
        stored.completed_at,
    ] {
        let t = t.unwrap();
        assert_eq!(chrono::Timelike::nanosecond(&t) % 1000, 0, "{t}");
    }
    // JSON renders RFC 3339 in UTC, keeping the microseconds
    let json = serde_json::to_value(&stored).unwrap();
    let text = json["created_at"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(text).unwrap();
    assert_eq!(parsed.offset().local_minus_utc(), 0, "{text}");
    assert_eq!(parsed, micros);
    let ev = q.events_since(0, 100, None).unwrap();
    assert!(ev.iter().all(|e| e.at == micros), "{ev:?}");
    let s = q.pause_server("web-1").unwrap();
    assert_eq!(s.paused_at, Some(micros));
    assert_eq!(q.get_server("web-1").unwrap().paused_at, Some(micros));
}

fn server_id_must_start_alphanumeric(env: Env) {
    let q = &env.queue;
    for bad in ["_web", "-", ".", "_", "web\n", "\u{0}web", "web 1 "] {
        assert_eq!(
            kind(q.create_server(bad, None)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    for good in ["A", "0", "a_b-c.D9", "0_", "Z-.-_"] {
        assert_eq!(q.create_server(good, None).unwrap().id, good);
    }
    let dup = q.create_server("A", Some("other")).unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict);
    assert_eq!(
        q.get_server("A").unwrap().hostname,
        None,
        "duplicate changed nothing"
    );
    assert_eq!(
        kind(q.get_server("a")),
        ErrorKind::NotFound,
        "ids are case-sensitive"
    );
}

fn list_default_limit_is_50_and_pages_cover_everything(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    for i in 0..120 {
        q.create_action(&restart("web-1", &format!("s{i}")))
            .unwrap();
    }
    let first = q.list_actions(&ActionQuery::default()).unwrap();
    assert_eq!(
        (first.actions.len(), first.total, first.limit, first.offset),
        (50, 120, 50, 0)
    );
    let max = q
        .list_actions(&ActionQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((max.actions.len(), max.total), (100, 120));
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let page = q
            .list_actions(&ActionQuery {
                limit: 7,
                offset,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.total, 120, "total counts all matches on every page");
        if page.actions.is_empty() {
            break;
        }
        seen.extend(page.actions.iter().map(|a| a.id));
        offset += 7;
    }
    assert_eq!(seen, (1..=120).rev().collect::<Vec<i64>>());
    let server = q.list_server_actions("web-1", None, 50, 0, None).unwrap();
    assert_eq!((server.actions.len(), server.total), (50, 120));
    let tail = q
        .list_server_actions("web-1", None, 100, 100, None)
        .unwrap();
    assert_eq!(
        tail.actions.iter().map(|a| a.id).collect::<Vec<_>>(),
        (1..=20).rev().collect::<Vec<i64>>()
    );
    for (limit, offset) in [(0, 0), (101, 0), (-1, 0), (50, -1)] {
        assert_eq!(
            kind(q.list_server_actions("web-1", None, limit, offset, None)),
            ErrorKind::InvalidInput,
            "{limit} {offset}"
        );
    }
    assert_eq!(
        message(q.list_server_actions("nope", None, 50, 0, None)),
        "Server 'nope' not found"
    );
}

/// Every state change is logged with the status it left, including cancel
/// from approved, reject and expiry; the log is append-only and a cursor
/// resumes exactly where the last read stopped.
fn event_log_is_append_only_and_resumable(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let a = q.create_action(&restart("web-1", "a")).unwrap();
    q.by("carol").unwrap().cancel_action(a.id).unwrap();
    let snapshot = q.events_since(0, 1000, None).unwrap();
    assert_eq!(snapshot.len(), 2);
    assert_eq!(
        (
            snapshot[1].from_status,
            snapshot[1].to_status,
            snapshot[1].by.as_str()
        ),
        (
            Some(ActionStatus::Approved),
            Some(ActionStatus::Cancelled),
            "carol"
        )
    );
    q.pause_server("web-1").unwrap();
    let b = q.create_action(&restart("web-1", "b")).unwrap();
    q.by("bob").unwrap().reject_action(b.id, "nope").unwrap();
    q.unpause_server("web-1").unwrap();
    let c = q.create_action(&restart("web-1", "c")).unwrap();
    let claim = q
        .claim_next("web-1", Some(Duration::from_secs(5)), None)
        .unwrap()
        .unwrap();
    q.heartbeat(c.id, &claim.lease_token, None).unwrap();
    env.advance_secs(400);
    let expired = q.expire_leases().unwrap();
    assert_eq!(expired.len(), 1);
    assert!(expired[0]
        .stderr
        .as_deref()
        .unwrap()
        .contains("lease expired"));
    let all = q.events_since(0, 1000, None).unwrap();
    assert_eq!(&all[..2], &snapshot[..], "earlier events never change");
    use ActionStatus::*;
    let rows: Vec<_> = all
        .iter()
        .map(|e| (e.action_id, e.from_status, e.to_status, e.detail.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            (Some(a.id), None, Some(Approved), Some("auto-approved")),
            (Some(a.id), Some(Approved), Some(Cancelled), None),
            (None, None, None, Some("paused")),
            (Some(b.id), None, Some(Pending), None),
            (Some(b.id), Some(Pending), Some(Rejected), Some("nope")),
            (None, None, None, Some("unpaused")),
            (Some(c.id), None, Some(Approved), Some("auto-approved")),
            (Some(c.id), Some(Approved), Some(Executing), None),
            (
                Some(c.id),
                Some(Executing),
                Some(Failed),
                Some("lease expired")
            ),
        ]
    );
    // reading with a cursor one event at a time yields the same log
    let mut cursor = 0;
    let mut paged = Vec::new();
    while let Some(e) = q.events_since(cursor, 1, None).unwrap().pop() {
        cursor = e.id;
        paged.push(e);
    }
    assert_eq!(paged, all);
    // nothing new: the cursor at the end stays empty until the next change
    assert!(q.events_since(cursor, 10, None).unwrap().is_empty());
    q.create_action(&restart("web-1", "d")).unwrap();
    let next = q.events_since(cursor, 10, None).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, cursor + 1);
}

fn any_nonzero_exit_code_fails(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    for (i, exit) in [0, 1, -1, 2, 127, 255, i32::MIN, i32::MAX]
        .into_iter()
        .enumerate()
    {
        q.create_action(&restart("web-1", &format!("s{i}")))
            .unwrap();
        let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
        let done = q
            .report_result(claim.action.id, &claim.lease_token, exit, None, None)
            .unwrap();
        let want = if exit == 0 {
            ActionStatus::Completed
        } else {
            ActionStatus::Failed
        };
        assert_eq!((done.status, done.exit_code), (want, Some(exit)), "{exit}");
        assert_eq!(q.get_action(claim.action.id).unwrap(), done);
    }
}

fn alert_id_boundaries(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    for ok in [1, 2, i64::MAX] {
        let a = q
            .create_action(&restart("web-1", &format!("s{ok}")).alert_id(ok))
            .unwrap();
        assert_eq!(q.get_action(a.id).unwrap().alert_id, Some(ok));
    }
    let none = q.create_action(&restart("web-1", "plain")).unwrap();
    assert_eq!(q.get_action(none.id).unwrap().alert_id, None);
    assert_eq!(
        kind(q.create_action(&restart("ghost", "x").alert_id(0))),
        ErrorKind::InvalidInput,
        "rule 1 before rule 2"
    );
}

/// Bad lengths are rule 1, before the server and whitelist are looked at.
fn overlong_inputs_are_invalid_input(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let long_type = "a".repeat(101);
    assert_eq!(
        kind(q.create_action(&NewAction::new("ghost", long_type.as_str()))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(q.create_action(&NewAction::new("web-1", long_type.as_str()))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(q.create_action(&NewAction::new("a".repeat(101), "clear_logs"))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(q.create_server("h", Some(&"h".repeat(256)))),
        ErrorKind::InvalidInput
    );
    let a = q
        .create_action(&restart("web-1", "x").created_by("a".repeat(100)))
        .unwrap();
    assert_eq!(a.created_by.len(), 100);
    assert_eq!(q.list_actions(&ActionQuery::default()).unwrap().total, 1);
}

fn default_whitelist_env_is_exact_for_every_type(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let expected: [(&str, &[(&str, &str)]); 4] = [
        ("restart_service", &[]),
        ("clear_logs", &[]),
        ("apt_update", &[("DEBIAN_FRONTEND", "noninteractive")]),
        ("apt_upgrade_all", &[("DEBIAN_FRONTEND", "noninteractive")]),
    ];
    for (t, env_vars) in expected {
        let mut req = NewAction::new("web-1", t);
        if t == "restart_service" {
            req = req.service_name("nginx");
        }
        let a = q.create_action(&req).unwrap();
        let want: std::collections::BTreeMap<String, String> = env_vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(a.env, want, "{t}");
        assert!(!a.argv.iter().any(|w| w.contains("DEBIAN_FRONTEND")), "{t}");
        assert_eq!(a.action_type, t);
        let stored = q.get_action(a.id).unwrap();
        assert_eq!(
            (stored.argv, stored.env, stored.command),
            (a.argv, a.env, a.command)
        );
        if t == "apt_update" {
            q.cancel_action(a.id).unwrap();
        }
    }
}

fn configured_output_cap_applies_to_both_streams(env: Env) {
    let env = env_with_server(env, false).options(QueueOptions {
        output_cap_chars: 3,
        ..QueueOptions::default()
    });
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    let done = q
        .report_result(
            claim.action.id,
            &claim.lease_token,
            2,
            Some("abc"),
            Some("日本語です"),
        )
        .unwrap();
    assert_eq!(
        done.stdout.as_deref(),
        Some("abc"),
        "exactly the cap is kept"
    );
    assert_eq!(done.stderr.as_deref(), Some("日本語"));
    assert_eq!(q.get_action(claim.action.id).unwrap(), done);
}

/// Same created_at: the lower id is older; each action is claimed exactly once.
fn claim_order_ties_break_by_id_and_each_is_claimed_once(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    let ids: Vec<i64> = (0..5)
        .map(|i| {
            q.create_action(&restart("web-1", &format!("s{i}")))
                .unwrap()
                .id
        })
        .collect();
    let mut claimed = Vec::new();
    while let Some(c) = q.claim_next("web-1", None, None).unwrap() {
        assert!(!claimed.contains(&c.action.id), "claimed twice");
        claimed.push(c.action.id);
    }
    assert_eq!(claimed, ids);
}

/// The lease token is returned by the claim only: nothing get/list returns
/// carries it, in any form.
fn lease_token_is_never_returned_by_get_or_list(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    let claim = q.claim_next("web-1", None, None).unwrap().unwrap();
    let token = claim.lease_token.clone();
    assert!(uuid::Uuid::parse_str(&token).is_ok(), "{token}");
    let got = serde_json::to_string(&q.get_action(claim.action.id).unwrap()).unwrap();
    let listed = serde_json::to_string(&q.list_actions(&ActionQuery::default()).unwrap()).unwrap();
    let server =
        serde_json::to_string(&q.list_server_actions("web-1", None, 50, 0, None).unwrap()).unwrap();
    let events = serde_json::to_string(&q.events_since(0, 100, None).unwrap()).unwrap();
    let beat = serde_json::to_string(&q.heartbeat(claim.action.id, &token, None).unwrap()).unwrap();
    for (what, text) in [
        ("get", got),
        ("list", listed),
        ("server list", server),
        ("events", events),
        ("heartbeat", beat),
    ] {
        assert!(!text.contains(&token), "{what} leaks the token");
        assert!(!text.contains("lease_token"), "{what}: {text}");
    }
}

fn lease_bounds_are_inclusive(env: Env) {
    let env = env_with_server(env, false);
    let q = &env.queue;
    q.create_action(&restart("web-1", "a")).unwrap();
    let c = q
        .claim_next("web-1", Some(Duration::from_secs(86_400)), None)
        .unwrap()
        .unwrap();
    assert_eq!(
        c.action.lease_expires_at,
        Some(env.clock_now() + chrono::TimeDelta::days(1))
    );
    assert_eq!(
        kind(q.heartbeat(
            c.action.id,
            &c.lease_token,
            Some(Duration::from_secs(86_401))
        )),
        ErrorKind::InvalidInput
    );
    let b = q
        .heartbeat(c.action.id, &c.lease_token, Some(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(
        b.lease_expires_at,
        Some(env.clock_now() + chrono::TimeDelta::seconds(1))
    );
    env.advance_secs(1);
    assert_eq!(
        q.expire_leases().unwrap().len(),
        1,
        "a lease ends at its expiry instant"
    );
}

for_each_store!(
    server_create_get_and_duplicate,
    server_ids_are_validated,
    unknown_server_is_not_found,
    pause_and_unpause_are_idempotent,
    create_on_normal_server_is_auto_approved,
    create_on_paused_server_is_pending,
    default_whitelist_commands_are_exact,
    create_rules_apply_in_spec_order,
    malformed_parameters_are_invalid_input,
    injection_corpus_is_not_whitelisted,
    refused_value_message_names_the_parameter,
    pending_duplicate_restart_conflicts,
    restart_duplicates_only_block_while_pending,
    apt_actions_are_exclusive_per_server,
    group_conflict_names_the_oldest_collision,
    approve_reject_cancel_from_pending,
    illegal_transitions_name_the_current_status,
    cancel_from_approved,
    reject_reason_is_1_to_1000_chars,
    unknown_action_is_not_found,
    list_is_newest_first_with_filters_and_total,
    list_orders_by_created_at_not_id,
    list_bounds_are_validated,
    claim_takes_the_oldest_approved_once,
    claim_lease_is_validated,
    claims_are_per_server,
    report_result_completes_or_fails,
    wrong_or_stale_token_is_conflict_and_changes_nothing,
    heartbeat_extends_the_lease,
    expired_lease_fails_and_is_never_requeued,
    a_read_refused_for_its_input_sweeps_no_lease,
    output_is_capped,
    output_with_nul_and_control_characters_reads_back,
    default_output_cap_is_10000_chars,
    every_state_change_is_an_event,
    failed_operations_log_nothing,
    custom_whitelist_builds_and_validates,
    quoted_placeholders_keep_argv_and_display_consistent,
    transition_matrix_from_every_status,
    errors_carry_spec_code_and_http_status,
    ids_start_at_1_and_strictly_increase,
    timestamps_are_utc_microseconds,
    server_id_must_start_alphanumeric,
    list_default_limit_is_50_and_pages_cover_everything,
    event_log_is_append_only_and_resumable,
    any_nonzero_exit_code_fails,
    alert_id_boundaries,
    overlong_inputs_are_invalid_input,
    default_whitelist_env_is_exact_for_every_type,
    configured_output_cap_applies_to_both_streams,
    claim_order_ties_break_by_id_and_each_is_claimed_once,
    lease_token_is_never_returned_by_get_or_list,
    lease_bounds_are_inclusive,
    lease_runs_exactly_from_the_claim_time,
);

/// The error table (`docs/contract/errors.md#kinds`): every kind has its code
/// and HTTP status.
#[test]
fn error_table_matches_spec() {
    let table: Vec<(ErrorKind, &str, u16)> = ErrorKind::ALL
        .iter()
        .map(|k| (*k, k.code(), k.http_status()))
        .collect();
    assert_eq!(
        table,
        [
            (ErrorKind::InvalidInput, "VALIDATION_ERROR", 422),
            (ErrorKind::NotFound, "NOT_FOUND", 404),
            (ErrorKind::NotWhitelisted, "FORBIDDEN", 403),
            (ErrorKind::Conflict, "CONFLICT", 409),
            (ErrorKind::Storage, "STORAGE_ERROR", 503),
            (ErrorKind::Unauthenticated, "UNAUTHENTICATED", 401),
            (ErrorKind::PermissionDenied, "PERMISSION_DENIED", 403),
        ]
    );
    for k in ErrorKind::ALL {
        assert_eq!(k.to_string(), k.code());
    }
}

/// With a moving (system) clock, the lease is measured from the claim's own
/// `executed_at`, not from an earlier reading.
fn lease_runs_exactly_from_the_claim_time(env: Env) {
    let q = env
        .queue
        .clone()
        .with_clock(std::sync::Arc::new(actionq::SystemClock));
    q.create_server("web-1", None).unwrap();
    for i in 0..50 {
        q.create_action(&restart("web-1", &format!("s{i}")))
            .unwrap();
        let lease = Duration::from_secs(300);
        let claim = q.claim_next("web-1", Some(lease), None).unwrap().unwrap();
        let a = &claim.action;
        let granted = a.lease_expires_at.unwrap() - a.executed_at.unwrap();
        assert_eq!(granted, chrono::TimeDelta::seconds(300));
        let beat = q.heartbeat(a.id, &claim.lease_token, Some(lease)).unwrap();
        assert!(beat.lease_expires_at.unwrap() >= a.lease_expires_at.unwrap());
    }
}

/// A queue reports the whitelist and options it was built with.
#[test]
fn queue_exposes_what_it_was_built_with() {
    let whitelist =
        actionq::Whitelist::from_json(r#"{"actions": {"uptime": {"command": "uptime"}}}"#).unwrap();
    let options = QueueOptions {
        output_cap_chars: 7,
        ..QueueOptions::default()
    };
    let q = actionq::ActionQueue::in_memory()
        .with_whitelist(whitelist.clone())
        .with_options(options.clone());
    assert_eq!(q.whitelist(), &whitelist);
    assert_eq!(q.options(), &options);
    let debug = format!("{q:?}");
    assert!(
        debug.starts_with("ActionQueue") && debug.contains("uptime") && debug.contains("7"),
        "{debug}"
    );
}
