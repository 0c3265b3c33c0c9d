//! Whitelist config parsing: malformed configs are refused with InvalidInput,
//! and nothing a config says can make a command spliced from free text.

use std::collections::BTreeMap;

use actionq::{
    ApprovalPolicy, AutoApproveBudget, ErrorKind, ParamKind, Whitelist, DEFAULT_WHITELIST_JSON,
};

fn entry(command: &str, params: &str) -> String {
    format!(r#"{{"actions": {{"t": {{"command": {command:?}, "params": {params}}}}}}}"#)
}

#[test]
fn malformed_configs_are_invalid_input() {
    let cases = [
        ("not json".to_owned(), "invalid whitelist config"),
        (r#"{"actions": {}}"#.to_owned(), "no actions"),
        (
            r#"{"actions": {"t": {"command": "ls"}}, "extra": 1}"#.to_owned(),
            "unknown field",
        ),
        (
            r#"{"actions": {"t": {"command": "ls", "typo": 1}}}"#.to_owned(),
            "unknown field",
        ),
        (
            r#"{"actions": {"Bad-Name": {"command": "ls"}}}"#.to_owned(),
            "action type names",
        ),
        // Each rule of a type name alone: length, first character, the rest.
        (
            format!(
                r#"{{"actions": {{"{}": {{"command": "ls"}}}}}}"#,
                "a".repeat(65)
            ),
            "action type names",
        ),
        (
            r#"{"actions": {"1abc": {"command": "ls"}}}"#.to_owned(),
            "action type names",
        ),
        (
            r#"{"actions": {"ab-c": {"command": "ls"}}}"#.to_owned(),
            "action type names",
        ),
        (entry("ls; rm -rf /", "{}"), "not allowed"),
        (entry("ls | sh", "{}"), "not allowed"),
        (entry("echo $HOME", "{}"), "not allowed"),
        (entry("echo `id`", "{}"), "not allowed"),
        (entry("ls > /etc/passwd", "{}"), "not allowed"),
        (entry("ls *", "{}"), "not allowed"),
        (entry("echo \"$(id)\"", "{}"), "inside double quotes"),
        (entry("echo 'unterminated", "{}"), "unterminated"),
        (
            entry("echo '{x}'", r#"{"x": {"kind": "systemd_unit"}}"#),
            "inside single quotes",
        ),
        (entry("X=1", "{}"), "no program"),
        (entry("echo '}'", "{}"), "inside single quotes"),
        (
            r#"{"actions": {"t": {"command": "echo '\u0001'"}}}"#.to_owned(),
            "inside single quotes",
        ),
        (
            entry(
                "{prog} --version",
                r#"{"prog": {"kind": "one_of", "values": ["ls"]}}"#,
            ),
            "program must be literal",
        ),
        (
            entry(
                "X=1 /usr/bin/{p}",
                r#"{"p": {"kind": "one_of", "values": ["ls"]}}"#,
            ),
            "program must be literal",
        ),
        (entry("", "{}"), "no program"),
        (
            entry("systemctl restart {unit}", "{}"),
            "undeclared parameter 'unit'",
        ),
        (
            entry("ls", r#"{"unit": {"kind": "systemd_unit"}}"#),
            "not used",
        ),
        (
            entry(
                "ls {n}",
                r#"{"n": {"kind": "integer", "min": 5, "max": 1}}"#,
            ),
            "greater than max",
        ),
        (
            entry("ls {n}", r#"{"n": {"kind": "one_of", "values": []}}"#),
            "at least one",
        ),
        (
            entry("ls {n}", r#"{"n": {"kind": "one_of", "values": ["a;b"]}}"#),
            "not a safe token",
        ),
        (
            entry(
                "ls {n}",
                r#"{"n": {"kind": "one_of", "values": ["--all"]}}"#,
            ),
            "not a safe token",
        ),
        (
            entry("ls {n}", r#"{"n": {"kind": "free_text"}}"#),
            "unknown variant",
        ),
        (
            entry(
                "ls {n}",
                r#"{"n": {"kind": "systemd_unit", "default": "-x"}}"#,
            ),
            "default",
        ),
        (
            entry("ls {N}", r#"{"N": {"kind": "systemd_unit"}}"#),
            "must be 1-64",
        ),
    ];
    for (config, expected) in cases {
        let err = Whitelist::from_json(&config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{config}");
        assert!(err.to_string().contains(expected), "{config}: {err}");
    }
}

#[test]
fn default_whitelist_round_trips_through_its_config_text() {
    let default = Whitelist::default();
    assert_eq!(
        Whitelist::from_json(DEFAULT_WHITELIST_JSON).unwrap(),
        default
    );
    assert_eq!(Whitelist::from_json(&default.to_json()).unwrap(), default);
    let names: Vec<&str> = default.entries().map(|e| e.name()).collect();
    assert_eq!(
        names,
        [
            "apt_update",
            "apt_upgrade_all",
            "clear_logs",
            "restart_service"
        ]
    );
    assert_eq!(
        default.group_members("apt"),
        ["apt_update", "apt_upgrade_all"]
    );
}

#[test]
fn validators_accept_and_refuse() {
    let unit = ParamKind::SystemdUnit {
        allow_templates: false,
    };
    for (given, normalised) in [
        ("a", "a.service"),
        ("nginx", "nginx.service"),
        ("nginx.service", "nginx.service"),
        ("php8.2-fpm", "php8.2-fpm.service"),
        ("x:y_z-1", "x:y_z-1.service"),
    ] {
        assert_eq!(unit.validate(given).as_deref(), Ok(normalised), "{given}");
    }
    // Attacks that once worked (`docs/contract/whitelist.md#systemd-units`):
    // what restart must never reach.
    for bad in [
        "poweroff.target",
        "reboot.target",
        "emergency.target",
        "rescue.target",
        "systemd-reboot.service",
        "systemd-reboot",
        "Systemd-halt",
        "x:y_z-1.mount",
        "-.mount",
        "dbus.socket",
        "tmp.mount",
        "fstrim.timer",
        "user.slice",
        "getty@tty1.service",
        "user@1000",
        "",
        "-a",
        ".a",
        "a b",
        "a/b",
        "a.",
        "a\\x2d",
        "ä",
    ] {
        assert!(unit.validate(bad).is_err(), "{bad:?}");
    }
    // Templates only where the entry opts in, and only as name@instance.
    let templates = ParamKind::SystemdUnit {
        allow_templates: true,
    };
    for (given, normalised) in [
        ("getty@tty1.service", "getty@tty1.service"),
        ("user@1000", "user@1000.service"),
    ] {
        assert_eq!(
            templates.validate(given).as_deref(),
            Ok(normalised),
            "{given}"
        );
    }
    for bad in [
        "a@b@c",
        "getty@",
        "@tty1",
        "getty@.service",
        "systemd-fsck@sda1",
    ] {
        assert!(templates.validate(bad).is_err(), "{bad:?}");
    }
    // The longest accepted name still fits once `.service` is added.
    assert!(unit.validate(&"a".repeat(247)).is_ok());
    assert!(unit.validate(&"a".repeat(248)).is_err());
    let pkg = ParamKind::DebianPackage;
    for ok in ["htop", "libc6-dev", "python3.11", "0ad", "libstdc++6"] {
        assert_eq!(pkg.validate(ok).as_deref(), Ok(ok), "{ok}");
    }
    for bad in [
        "",
        "a",
        "Htop",
        "-x",
        "+x",
        "a_b",
        "a:amd64",
        &"a".repeat(129),
        // apt's removal, install and pattern syntax
        "openssh-server-",
        "g++",
        "ssh+",
        "openssh.+",
        "lib.*",
        "a?",
    ] {
        assert!(pkg.validate(bad).is_err(), "{bad:?}");
    }
    let int = ParamKind::Integer { min: 0, max: 10 };
    for ok in ["0", "1", "10"] {
        assert!(int.validate(ok).is_ok(), "{ok}");
    }
    for bad in ["", "-0", "-1", "11", "01", "+1", "1.0", " 1", "٣"] {
        assert!(int.validate(bad).is_err(), "{bad:?}");
    }
    let one = ParamKind::OneOf {
        values: vec!["a".into(), "b".into()],
    };
    assert!(one.validate("a").is_ok());
    for bad in ["", "A", "ab", "a "] {
        assert!(one.validate(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn unknown_action_type_is_not_whitelisted() {
    let wl = Whitelist::default();
    let err = wl.build("rm_rf", &Default::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotWhitelisted);
    assert_eq!(err.to_string(), "Action type 'rm_rf' not in whitelist");
}

#[test]
fn create_request_json_reads_the_http_body_shape() {
    use actionq::NewAction;
    let r = NewAction::from_json(
        r#"{"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx",
            "alert_id": 7, "created_by": "alerts", "params": {}}"#,
    )
    .unwrap();
    assert_eq!(
        r,
        NewAction::new("web-1", "restart_service")
            .service_name("nginx")
            .alert_id(7)
            .created_by("alerts")
    );
    let minimal =
        NewAction::from_json(r#"{"server_id": "a", "action_type": "clear_logs"}"#).unwrap();
    assert_eq!(minimal, NewAction::new("a", "clear_logs"));
    for bad in [
        r#"{"server_id": "a", "action_type": "t", "service_name": "x", "params": {"service_name": "y"}}"#,
        r#"{"server_id": "a", "action_type": "t", "command": "rm -rf /"}"#,
        r#"{"server_id": "a"}"#,
        r#"{"server_id": "a", "action_type": "t", "params": {"n": 1}}"#,
        "not json",
    ] {
        let err = NewAction::from_json(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
    }
}

#[test]
fn entry_accessors_show_the_config() {
    let default = Whitelist::default();
    let restart = default.get("restart_service").unwrap();
    assert_eq!(
        restart.command_template(),
        "systemctl restart {service_name}"
    );
    let params: Vec<&String> = restart.params().keys().collect();
    assert_eq!(params, ["service_name"]);
    assert_eq!(
        restart.params()["service_name"].kind,
        ParamKind::SystemdUnit {
            allow_templates: false
        }
    );
}

#[test]
fn integer_range_of_one_value_is_accepted() {
    let w = Whitelist::from_json(&entry(
        "ls {n}",
        r#"{"n": {"kind": "integer", "min": 3, "max": 3}}"#,
    ))
    .unwrap();
    let params = BTreeMap::from([("n".to_owned(), "3".to_owned())]);
    assert_eq!(w.build("t", &params).unwrap().argv, ["ls", "3"]);
}

#[test]
fn only_words_before_the_program_are_environment_assignments() {
    let built = |command: &str| {
        Whitelist::from_json(&entry(command, "{}"))
            .unwrap()
            .build("t", &BTreeMap::new())
            .unwrap()
    };
    let cmd = built("_X=1 systemctl set-environment FOO=bar");
    assert_eq!(cmd.env, BTreeMap::from([("_X".to_owned(), "1".to_owned())]));
    assert_eq!(cmd.argv, ["systemctl", "set-environment", "FOO=bar"]);
    // Not a variable name, so the program itself.
    let cmd = built("9X=1 ls");
    assert!(cmd.env.is_empty());
    assert_eq!(cmd.argv, ["9X=1", "ls"]);
}

#[test]
fn validator_reasons_name_the_offending_character() {
    for kind in [
        ParamKind::SystemdUnit {
            allow_templates: false,
        },
        ParamKind::DebianPackage,
    ] {
        for (value, c) in [("ab\u{1}c", "'\\u{1}'"), ("abä", "'ä'")] {
            let why = kind.validate(value).unwrap_err();
            assert!(
                why.contains(&format!("contains the character {c}")),
                "{kind:?} {value:?}: {why}"
            );
        }
    }
}

#[test]
fn approval_policy_is_read_per_entry_with_the_seed_behaviour_as_default() {
    let wl = Whitelist::default();
    for entry in wl.entries() {
        assert_eq!(
            *entry.approval(),
            ApprovalPolicy::default(),
            "{}",
            entry.name()
        );
    }
    assert_eq!(ApprovalPolicy::default().required, 1);
    assert!(!ApprovalPolicy::default().four_eyes);

    let wl = Whitelist::from_json(
        r#"{"actions": {"clear_logs": {"command": "journalctl --vacuum-time=7d",
            "approval": {"required": 2, "four_eyes": true, "ttl_seconds": 86400,
                         "auto_approve_budget": {"max": 3, "window_seconds": 3600}}}}}"#,
    )
    .unwrap();
    let policy = *wl.get("clear_logs").unwrap().approval();
    assert_eq!(
        policy,
        ApprovalPolicy {
            required: 2,
            four_eyes: true,
            ttl_seconds: Some(86400),
            auto_approve_budget: Some(AutoApproveBudget {
                max: 3,
                window_seconds: 3600
            }),
        }
    );
    // Written back with the config, and read again the same.
    let again = Whitelist::from_json(&wl.to_json()).unwrap();
    assert_eq!(*again.get("clear_logs").unwrap().approval(), policy);
    // Every key is optional.
    let wl = Whitelist::from_json(
        r#"{"actions": {"clear_logs": {"command": "journalctl", "approval": {"four_eyes": true}}}}"#,
    )
    .unwrap();
    assert_eq!(wl.get("clear_logs").unwrap().approval().required, 1);
}

#[test]
fn malformed_approval_policies_are_invalid_input() {
    let cases = [
        (
            r#"{"required": 0}"#,
            "approval.required must be from 1 to 10",
        ),
        (
            r#"{"required": 11}"#,
            "approval.required must be from 1 to 10",
        ),
        (r#"{"required": -1}"#, "invalid whitelist config"),
        (
            r#"{"ttl_seconds": 0}"#,
            "approval.ttl_seconds must be from 1 to 31622400",
        ),
        (
            r#"{"ttl_seconds": 31622401}"#,
            "approval.ttl_seconds must be from 1 to 31622400",
        ),
        (
            r#"{"auto_approve_budget": {"max": 0, "window_seconds": 60}}"#,
            "approval.auto_approve_budget.max must be at least 1",
        ),
        (
            r#"{"auto_approve_budget": {"max": 1, "window_seconds": 0}}"#,
            "approval.auto_approve_budget.window_seconds must be from 1 to 31622400",
        ),
        (
            r#"{"auto_approve_budget": {"max": 1}}"#,
            "missing field `window_seconds`",
        ),
        (r#"{"four_eyes": "yes"}"#, "invalid whitelist config"),
        (r#"{"quorum": 2}"#, "unknown field `quorum`"),
    ];
    for (policy, expected) in cases {
        let text = format!(
            r#"{{"actions": {{"clear_logs": {{"command": "journalctl", "approval": {policy}}}}}}}"#
        );
        let err = Whitelist::from_json(&text).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{policy}");
        assert!(
            err.to_string().contains(expected),
            "{policy}: {err} should contain {expected:?}"
        );
    }
}

#[test]
fn whitelist_version_is_a_property_of_the_config_not_of_its_text() {
    let a = Whitelist::from_json(
        r#"{"actions": {"restart_service": {"command": "systemctl restart {service_name}",
            "params": {"service_name": {"kind": "systemd_unit"}}, "conflict": "pending_duplicate"},
            "clear_logs": {"command": "journalctl --vacuum-time=7d"}}}"#,
    )
    .unwrap();
    // Other key order, other whitespace, defaults written out.
    let b = Whitelist::from_json(
        r#"{"actions":{"clear_logs":{"conflict":"none","params":{},"approval":{"required":1,"four_eyes":false},
            "command":"journalctl --vacuum-time=7d"},"restart_service":{"conflict":"pending_duplicate",
            "params":{"service_name":{"kind":"systemd_unit"}},"command":"systemctl restart {service_name}"}}}"#,
    )
    .unwrap();
    assert_eq!(a.version(), b.version());
    assert_eq!(a.version().len(), 64);
    assert!(a
        .version()
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    // Round trip through the config text keeps it.
    assert_eq!(
        Whitelist::from_json(&a.to_json()).unwrap().version(),
        a.version()
    );
    // Pinned: versions are stored with actions, so the canonical form is a
    // contract across releases and hosts. Python's json.dumps(config,
    // sort_keys=True, separators=(",", ":")) with "params" and "conflict"
    // written out gives the same SHA-256.
    assert_eq!(
        Whitelist::default().version(),
        "63657d88e0746ce45ca7790f61c46acf857a701a6994bb96f16605d27b227a78",
        "the default whitelist's version changed"
    );
    // Any change to what runs or how it is approved is a new version.
    let changed = [
        r#"{"actions": {"clear_logs": {"command": "journalctl --vacuum-time=8d"}}}"#,
        r#"{"actions": {"clear_logz": {"command": "journalctl --vacuum-time=7d"}}}"#,
        r#"{"actions": {"clear_logs": {"command": "journalctl --vacuum-time=7d", "conflict": "pending_duplicate"}}}"#,
        r#"{"actions": {"clear_logs": {"command": "journalctl --vacuum-time=7d", "approval": {"required": 2}}}}"#,
        r#"{"actions": {"clear_logs": {"command": "journalctl --vacuum-time=7d", "approval": {"ttl_seconds": 60}}}}"#,
    ];
    let base = Whitelist::from_json(
        r#"{"actions": {"clear_logs": {"command": "journalctl --vacuum-time=7d"}}}"#,
    )
    .unwrap();
    let mut seen = vec![base.version().to_owned()];
    for text in changed {
        let v = Whitelist::from_json(text).unwrap().version().to_owned();
        assert!(!seen.contains(&v), "{text} has an earlier version");
        seen.push(v);
    }
}
