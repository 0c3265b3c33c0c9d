//! The C API and the core's operations do not drift apart: every name of
//! `actionq::OPERATIONS` is one function of the committed header, which takes
//! `const aq_actor *actor` right after the queue, and every other
//! function of the header is on the short list of what is not an operation.

use std::collections::BTreeSet;
use std::path::Path;

/// Each operation of the core and the C function that offers it.
const C_FUNCTIONS: [(&str, &str); 37] = [
    ("create_server", "aq_server_create"),
    ("get_server", "aq_server_get"),
    ("list_servers", "aq_server_list"),
    ("pause_server", "aq_server_pause"),
    ("unpause_server", "aq_server_unpause"),
    ("create_action", "aq_action_create"),
    ("get_action", "aq_action_get"),
    ("list_actions", "aq_action_list"),
    ("list_server_actions", "aq_server_list_actions"),
    ("count_actions", "aq_action_count"),
    ("events_since", "aq_event_list"),
    ("approve_action", "aq_action_approve"),
    ("reject_action", "aq_action_reject"),
    ("cancel_action", "aq_action_cancel"),
    ("claim_next", "aq_action_claim_next"),
    ("heartbeat", "aq_action_heartbeat"),
    ("await_cancel", "aq_action_await_cancel"),
    ("report_cancelled", "aq_action_report_cancelled"),
    ("append_output", "aq_action_append_output"),
    ("output_since", "aq_action_output_since"),
    ("report_result", "aq_action_report_result"),
    ("expire_leases", "aq_action_expire_leases"),
    ("expire_approvals", "aq_action_expire_approvals"),
    ("lease_expiries", "aq_queue_lease_expiries"),
    ("verify_audit", "aq_audit_verify"),
    ("issue_credential", "aq_credential_issue"),
    ("list_credentials", "aq_credential_list"),
    ("revoke_credential", "aq_credential_revoke"),
    ("authenticate", "aq_queue_authenticate"),
    ("take_lease", "aq_lease_take"),
    ("release_lease", "aq_lease_release"),
    ("register_delivery", "aq_delivery_register"),
    ("record_delivery", "aq_delivery_record"),
    ("record_sent", "aq_delivery_record_sent"),
    ("list_deliveries", "aq_delivery_list"),
    ("prune", "aq_queue_prune"),
    ("export", "aq_queue_export"),
];

/// The operations that can wait (`docs/contract/push.md`) and the C
/// function of each waiting form: operations too, so they take the actor.
const WAITING_FORMS: [(&str, &str); 2] = [
    ("claim_next", "aq_action_claim_next_wait"),
    ("events_since", "aq_event_list_wait"),
];

/// The operation that takes no actor: it is how a host gets a principal's.
const WITHOUT_ACTOR: [&str; 1] = ["aq_queue_authenticate"];

/// The header's functions that are not operations of a queue, and why.
const NOT_OPERATIONS: [(&str, &[&str]); 8] = [
    (
        "the library itself: its version, the status names, freeing what it returned",
        &["aq_version", "aq_status_code", "aq_string_free"],
    ),
    (
        "the calling thread's last error",
        &["aq_last_error_message", "aq_last_error_existing_action_id"],
    ),
    (
        "a handle's life and its settings, not an operation on its store",
        &[
            "aq_queue_open",
            "aq_queue_open_in_memory",
            "aq_queue_free",
            "aq_queue_whitelist_json",
            "aq_whitelist_default_json",
        ],
    ),
    (
        "options for opening a queue",
        &[
            "aq_options_new",
            "aq_options_free",
            "aq_options_set_busy_timeout_seconds",
            "aq_options_set_clock",
            "aq_options_set_durability",
            "aq_options_set_expire_leases_on_read",
            "aq_options_set_leases",
            "aq_options_set_output_cap",
            "aq_options_set_whitelist",
        ],
    ),
    (
        "reading and freeing what aq_queue_export started",
        &["aq_export_next", "aq_export_free"],
    ),
    (
        "the manual clock a host passes in the options",
        &[
            "aq_clock_new_manual",
            "aq_clock_advance",
            "aq_clock_now",
            "aq_clock_free",
        ],
    ),
    (
        "the actor values every operation takes (besides aq_queue_authenticate's)",
        &[
            "aq_actor_host",
            "aq_actor_trusted",
            "aq_actor_by",
            "aq_actor_principal",
            "aq_actor_json",
            "aq_actor_free",
        ],
    ),
    (
        "an agent's checks of a claim it received, with no queue",
        &["aq_claim_verify", "aq_action_digest_matches"],
    ),
];

/// The committed header without its comments, whose prose names functions
/// too.
fn header_code() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/actionq.h");
    let text = std::fs::read_to_string(path).expect("bindings-c/include/actionq.h is committed");
    let mut code = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("comments are closed");
        rest = &rest[start + end + 2..];
    }
    code.push_str(rest);
    code.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every function the header declares, with its parameters as written
/// (whitespace collapsed).
fn declared_functions() -> Vec<(String, Vec<String>)> {
    let code = header_code();
    let mut functions = Vec::new();
    let mut rest = code.as_str();
    while let Some(open) = rest.find('(') {
        let name_start = rest[..open]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &rest[name_start..open];
        let close = open + rest[open..].find(')').expect("parentheses are closed");
        let declaration = rest[close + 1..].trim_start().starts_with(';');
        if name.starts_with("aq_") && declaration {
            let params = rest[open + 1..close]
                .split(',')
                .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            functions.push((name.to_owned(), params));
        }
        rest = &rest[close + 1..];
    }
    assert!(
        functions.len() > 40,
        "the header parse found only {} functions",
        functions.len()
    );
    functions
}

#[test]
fn every_core_operation_has_its_c_function() {
    let listed: BTreeSet<&str> = C_FUNCTIONS.iter().map(|(op, _)| *op).collect();
    let core: BTreeSet<&str> = actionq::OPERATIONS.into_iter().collect();
    assert_eq!(
        core.difference(&listed).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "operations of the core with no C function in this test's table"
    );
    assert_eq!(
        listed.difference(&core).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "names in this test's table that are no operation of the core"
    );
    let declared: BTreeSet<String> = declared_functions().into_iter().map(|(n, _)| n).collect();
    for (op, function) in C_FUNCTIONS {
        assert!(
            declared.contains(function),
            "operation {op}: {function} is not in bindings-c/include/actionq.h"
        );
    }
}

#[test]
fn every_header_function_is_an_operation_or_listed_as_none() {
    let operations: BTreeSet<&str> = C_FUNCTIONS
        .iter()
        .chain(&WAITING_FORMS)
        .map(|(_, f)| *f)
        .collect();
    let others: BTreeSet<&str> = NOT_OPERATIONS
        .iter()
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    let declared: BTreeSet<String> = declared_functions().into_iter().map(|(n, _)| n).collect();
    for name in &declared {
        assert!(
            operations.contains(name.as_str()) || others.contains(name.as_str()),
            "{name} is in the header but is neither an operation (C_FUNCTIONS) \
             nor listed in NOT_OPERATIONS with why"
        );
    }
    for name in others {
        assert!(
            declared.contains(name),
            "{name} is listed in NOT_OPERATIONS but the header has no such function"
        );
    }
}

const QUEUE: &str = "const struct aq_queue *queue";
const ACTOR: &str = "const struct aq_actor *actor";

#[test]
fn every_operation_takes_the_actor_after_the_queue() {
    let functions = declared_functions();
    for (op, function) in C_FUNCTIONS.iter().chain(&WAITING_FORMS) {
        assert!(actionq::OPERATIONS.contains(op), "{op}");
        let (_, params) = functions
            .iter()
            .find(|(name, _)| name == function)
            .unwrap_or_else(|| panic!("{function} is not in the header"));
        let takes_actor = params.get(1).map(String::as_str) == Some(ACTOR);
        assert_eq!(params[0], QUEUE, "{function}'s first parameter");
        assert_eq!(
            takes_actor,
            !WITHOUT_ACTOR.contains(function),
            "{function}'s second parameter: {:?}",
            params.get(1)
        );
    }
}
