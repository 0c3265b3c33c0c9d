//! No accepted parameter value can smuggle anything into a command: whatever the
//! input, a value the whitelist accepts becomes exactly one argv word that does not
//! start with `-` and holds no shell metacharacter, whitespace, control or non-ASCII
//! character — for `service_name` through the queue and for every parameter kind.

use std::collections::BTreeMap;

use actionq::{ActionQueue, ErrorKind, NewAction, ParamKind, Whitelist};
use proptest::prelude::*;

const SHELL_META: &str = "|&;<>()$`\\\"' \t\n\r*?[]#~{}!^";

fn assert_safe(value: &str) -> Result<(), TestCaseError> {
    prop_assert!(!value.is_empty());
    prop_assert!(!value.starts_with('-'), "leading '-': {:?}", value);
    prop_assert!(
        value.chars().all(|c| c.is_ascii_graphic()),
        "non-ASCII, control or space: {:?}",
        value
    );
    prop_assert!(
        !value.chars().any(|c| SHELL_META.contains(c)),
        "shell metacharacter: {:?}",
        value
    );
    Ok(())
}

/// Strings biased towards what an attacker would try.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9:_.@+-]{0,12}",
        "[-]{0,2}[a-z0-9]{1,8}[ ;|&$`()<>*?~!#'\"\\\\{}\\[\\]=%,/^]{0,2}[a-z0-9.@-]{0,8}",
        "\\PC{0,16}",
        any::<String>(),
        Just("x".repeat(300)),
    ]
}

/// Well-formed names (a `.service` suffix or not), so the accept path runs
/// besides the refusals.
fn plausible_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}(\\.service)?"
}

/// How many values each property saw accepted, by kind (`systemd_unit`,
/// `debian_package`, `integer`, `one_of`, then `service_name` through the
/// queue): the tests below require every one to be > 0.
static ACCEPTED: [std::sync::atomic::AtomicU64; 5] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 5];
const KINDS: [&str; 5] = [
    "systemd_unit",
    "debian_package",
    "integer",
    "one_of",
    "service_name",
];

fn count_accepted(kind: usize) {
    ACCEPTED[kind].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn accepted(kind: usize) -> u64 {
    ACCEPTED[kind].load(std::sync::atomic::Ordering::Relaxed)
}

fn whitelist_with(kind: &serde_json::Value) -> Whitelist {
    Whitelist::from_json(
        &serde_json::json!({
            "actions": { "run": {
                "command": "TERM=dumb tool --flag {value} {value} \"pre-{value}\"",
                "params": { "value": kind },
            } }
        })
        .to_string(),
    )
    .expect("valid config")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("ACTIONQ_ARGV_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    // Not a #[test] itself: the test below runs it, then checks what it generated.
    fn service_name_property(service in prop_oneof![hostile(), plausible_name()]) {
        let queue = ActionQueue::in_memory();
        queue.create_server("web-1", None).unwrap();
        match queue.create_action(&NewAction::new("web-1", "restart_service").service_name(&service)) {
            Ok(action) => {
                // Only services, named in full: a bare name gains `.service`.
                let unit = if service.ends_with(".service") {
                    service.clone()
                } else {
                    format!("{service}.service")
                };
                prop_assert_eq!(&action.argv, &["systemctl", "restart", unit.as_str()]);
                prop_assert!(action.env.is_empty());
                prop_assert_eq!(&action.command, &format!("systemctl restart {unit}"));
                prop_assert_eq!(action.service_name.as_deref(), Some(unit.as_str()));
                assert_safe(&service)?;
                assert_safe(&unit)?;
                count_accepted(4);
            }
            Err(e) => prop_assert!(
                matches!(e.kind(), ErrorKind::NotWhitelisted | ErrorKind::InvalidInput),
                "{}", e
            ),
        }
    }

    // Not a #[test] itself: the test below runs it, then checks what it generated.
    fn every_param_kind_property(
        value in hostile(),
        which in 0..4usize,
        min in 0u64..1000,
        span in 0u64..100_000,
        literals in prop::collection::vec(prop_oneof![hostile(), "[a-z][a-z0-9_.@+-]{0,10}"], 1..4),
        pick in any::<Option<prop::sample::Index>>(),
        name in plausible_name(),
    ) {
        // Half the cases offer a value of the kind's shape (one of the
        // literals, an integer in range, a plausible name), so the accept
        // path runs besides the hostile values.
        let value = match (pick, which) {
            (Some(i), 3) => literals[i.index(literals.len())].clone(),
            (Some(i), 2) => (min + i.index(span as usize + 1) as u64).to_string(),
            (Some(_), _) => name.clone(),
            (None, _) => value,
        };
        let kind = match which {
            0 => serde_json::json!({ "kind": "systemd_unit" }),
            1 => serde_json::json!({ "kind": "debian_package" }),
            2 => serde_json::json!({ "kind": "integer", "min": min, "max": min + span }),
            _ => serde_json::json!({ "kind": "one_of", "values": literals }),
        };
        // A one_of whose literals are unsafe must be refused at load time.
        let whitelist = match Whitelist::from_json(&serde_json::json!({
            "actions": { "run": {
                "command": "TERM=dumb tool --flag {value} {value} \"pre-{value}\"",
                "params": { "value": kind.clone() },
            } }
        }).to_string()) {
            Ok(w) => w,
            Err(e) => {
                prop_assert_eq!(which, 3, "only one_of configs can be refused: {}", e);
                for literal in &literals {
                    if literal.is_empty() || literal.starts_with('-') {
                        return Ok(());
                    }
                }
                prop_assert!(
                    literals.iter().any(|l| assert_safe(l).is_err() || l.len() > 255),
                    "a one_of of safe literals was refused: {:?}: {}", literals, e
                );
                return Ok(());
            }
        };
        let _ = whitelist_with(&kind);
        let params: BTreeMap<String, String> = [("value".to_owned(), value.clone())].into();
        match whitelist.build("run", &params) {
            Ok(built) => {
                assert_safe(&value)?;
                // What the command holds is the value normalised: a bare
                // systemd unit name gains `.service`, nothing else changes.
                let used = built.params["value"].clone();
                assert_safe(&used)?;
                if which == 0 {
                    prop_assert!(used.ends_with(".service"), "{}", used);
                    let suffixed = format!("{value}.service");
                    prop_assert!(used == value || used == suffixed);
                } else {
                    prop_assert_eq!(&used, &value);
                }
                let pre = format!("pre-{used}");
                prop_assert_eq!(
                    built.argv,
                    vec!["tool", "--flag", used.as_str(), used.as_str(), pre.as_str()]
                );
                prop_assert_eq!(built.env.get("TERM").map(String::as_str), Some("dumb"));
                prop_assert_eq!(built.env.len(), 1);
                if which == 3 {
                    prop_assert!(literals.contains(&value));
                }
                count_accepted(which);
                if let serde_json::Value::String(k) = &kind["kind"] {
                    if k == "integer" {
                        let n: u64 = value.parse().unwrap();
                        prop_assert!(n >= min && n <= min + span);
                        prop_assert_eq!(&n.to_string(), &value);
                    }
                }
            }
            Err(e) => prop_assert!(
                matches!(e.kind(), ErrorKind::NotWhitelisted | ErrorKind::InvalidInput),
                "{}", e
            ),
        }
        // The validator agrees with build when called directly.
        if which < 3 {
            let kind: ParamKind = serde_json::from_value(kind).unwrap();
            if let Ok(normalised) = kind.validate(&value) {
                assert_safe(&value)?;
                assert_safe(&normalised)?;
            }
        }
    }
}

/// Every parameter kind accepts only safe words, each built into exactly the
/// argv expected; and the run reached the accept path of every kind (counted
/// after the property, in the same test), not only refusals.
#[test]
fn every_param_kind_accepts_only_safe_words() {
    every_param_kind_property();
    for (kind, name) in KINDS.iter().enumerate().take(4) {
        let n = accepted(kind);
        assert!(n > 0, "no {name} value was ever accepted");
        eprintln!("argv_safety: {n} {name} values accepted");
    }
}

/// `service_name` through the queue: an accepted name is exactly the third
/// argv word; and accepted names were generated, not only refusals.
#[test]
fn accepted_service_names_are_one_safe_word() {
    service_name_property();
    let n = accepted(4);
    assert!(n > 0, "no service_name was ever accepted");
    eprintln!("argv_safety: {n} service names accepted");
}

/// `docs/contract/whitelist.md#argv-and-env`: argv/env are exactly what a POSIX shell would make of the display
/// string. A parameter in the program position could change what runs, and one
/// whose value looks like an assignment (`A=b tool`) would make a shell run a
/// different program than argv does. The rule: such a config is refused at load
/// time, whatever its values.
#[test]
fn parameter_in_program_position_is_refused_at_load() {
    for values in [r#"["A=b","tool"]"#, r#"["tool"]"#] {
        let config = format!(
            r#"{{"actions":{{"run":{{"command":"{{prog}} --version",
                "params":{{"prog":{{"kind":"one_of","values":{values}}}}}}}}}}}"#
        );
        let err = Whitelist::from_json(&config).expect_err("program-position parameter accepted");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("program must be literal"), "{err}");
    }
}
