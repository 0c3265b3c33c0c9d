//! The log the chain must protect beyond its events (README "Security"):
//! what an action *is* (argv, env, digest, requester), the digest each
//! approval approved, and the server and credential events. Shared by the
//! SQLite (`audit_tamper`) and PostgreSQL (`postgres_store`) tamper tests,
//! which apply each case's SQL in their own dialect to a fresh copy.
// Each including test reads one dialect's SQL.
#![allow(dead_code)]

use actionq::{ActionQueue, AuditReport, NewAction, Role};

/// Fills `queue` with the 7 events the cases edit:
///
/// 1. server `web-1` paused (by `dashboard`)
/// 2. action 1 (`clear_logs`, by `alerts`) created pending, its digest chained
/// 3. action 1 approved by `alice`, the approved digest chained
/// 4. server `web-1` unpaused
/// 5. action 2 (`apt_update`) created and auto-approved, its digest chained
/// 6. credential `ops` issued
/// 7. credential `ops` revoked
pub fn fill(queue: &ActionQueue) {
    queue.create_server("web-1", None).unwrap();
    queue.pause_server("web-1").unwrap();
    let held = queue
        .create_action(&NewAction::new("web-1", "clear_logs").created_by("alerts"))
        .unwrap();
    queue.by("alice").unwrap().approve_action(held.id).unwrap();
    queue.unpause_server("web-1").unwrap();
    queue
        .create_action(&NewAction::new("web-1", "apt_update"))
        .unwrap();
    let ops = queue.issue_credential("ops", Role::Operator, None).unwrap();
    queue.revoke_credential(ops.credential.id).unwrap();
    let kinds: Vec<&str> = queue
        .events_since(0, 100, None)
        .unwrap()
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "server",
            "action",
            "action",
            "server",
            "action",
            "credential",
            "credential"
        ]
    );
}

/// One edit: what it does, its SQL for SQLite and for PostgreSQL (the same
/// text when both dialects read it alike), and the report it must give.
pub struct Case {
    pub what: &'static str,
    pub sqlite: String,
    pub postgres: String,
    pub want: AuditReport,
}

fn case(what: &'static str, sql: &str, checked: u64, first_bad: Option<i64>) -> Case {
    Case {
        what,
        sqlite: sql.to_owned(),
        postgres: sql.to_owned(),
        want: AuditReport {
            checked,
            first_bad_event_id: first_bad,
            pruned_through: None,
        },
    }
}

/// Every case against the log [`fill`] leaves. `action` is action 1 as
/// stored (for an edit that recomputes its digest the way a careful
/// attacker would).
pub fn cases(action: &actionq::Action) -> Vec<Case> {
    let argv = vec!["rm".to_owned(), "-rf".to_owned(), "/".to_owned()];
    let forged_digest = actionq::action_digest(
        &action.server_id,
        &action.action_type,
        &argv,
        &action.env,
        &action.whitelist_version,
    );
    let argv_json = serde_json::to_string(&argv).unwrap();
    vec![
        case("untouched", "", 7, None),
        case(
            "argv of action 1 edited",
            &format!("UPDATE actions SET argv = '{argv_json}' WHERE id = 1"),
            1,
            Some(2),
        ),
        case(
            "argv of action 1 edited and its digest recomputed to match",
            &format!(
                "UPDATE actions SET argv = '{argv_json}', digest = '{forged_digest}' WHERE id = 1"
            ),
            1,
            Some(2),
        ),
        case(
            "digest of action 1 edited",
            &format!("UPDATE actions SET digest = '{forged_digest}' WHERE id = 1"),
            1,
            Some(2),
        ),
        case(
            "requester of action 1 edited",
            "UPDATE actions SET created_by = 'mallory' WHERE id = 1",
            1,
            Some(2),
        ),
        case(
            "env of action 2 edited",
            r#"UPDATE actions SET env = '{"LD_PRELOAD":"/tmp/x.so"}' WHERE id = 2"#,
            4,
            Some(5),
        ),
        Case {
            what: "digest of alice's approval edited",
            sqlite: "UPDATE actions SET approvals = \
                     json_set(approvals, '$[0].digest', 'feed') WHERE id = 1"
                .into(),
            postgres: "UPDATE actions SET approvals = \
                       jsonb_set(approvals::jsonb, '{0,digest}', '\"feed\"')::text WHERE id = 1"
                .into(),
            want: AuditReport {
                checked: 2,
                first_bad_event_id: Some(3),
                pruned_through: None,
            },
        },
        case(
            "the pause event deleted",
            "DELETE FROM action_events WHERE id = 1",
            0,
            Some(2),
        ),
        case(
            "the unpause event's detail edited",
            "UPDATE action_events SET detail = 'paused' WHERE id = 4",
            3,
            Some(4),
        ),
        case(
            "the issued credential's name edited",
            "UPDATE action_events SET subject = 'root' WHERE id = 6",
            5,
            Some(6),
        ),
        case(
            "the revocation's kind edited",
            "UPDATE action_events SET kind = 'server' WHERE id = 7",
            6,
            Some(7),
        ),
    ]
}
