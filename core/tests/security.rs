//! The promises of README "Security", run against every store: actions keep
//! the parameters they were built from, the validators refuse what could
//! power a host off or remove a package, the approval policy holds on every
//! server, and the audit chain covers what an action is.

mod common;

use std::collections::BTreeMap;

use actionq::{ActionQuery, ActionStatus, NewAction, Whitelist};
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
    let claim = q.claim_next("web-1", None).unwrap().unwrap();
    assert_eq!(claim.action.id, restart.id);
    assert_eq!(claim.action.params, restart.params);
    assert_eq!(claim.action.status, ActionStatus::Executing);
}

for_each_store!(actions_keep_the_params_they_were_built_from,);
