//! The book's "Approval policy and tamper-evident audit" chapter
//! (docs/guide/policy-and-audit.md): its whitelist config read from the page
//! itself, and its Rust walk-through run as written (on a SQLite file and a
//! manual clock, so the ttl step's "an hour later" is checked too).
//! `readme_walk_through_is_the_one_tested` compares the page's Rust block (marked
//! `ignore` for rustdoc: it is run here) with the body of `walk_through` below,
//! so an edit to either fails until both agree.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use actionq::{
    ActionQueue, ActionStatus, ErrorKind, ManualClock, NewAction, Principal, Role, Whitelist,
};

const README: &str = include_str!("../../docs/guide/policy-and-audit.md");
const THIS_FILE: &str = include_str!("readme_policy.rs");

/// The text of the page's first fenced block of `language` (info string
/// `language` or `language <flags>`).
fn readme_block(language: &str) -> &'static str {
    let fence = format!("```{language}");
    let block = README
        .split(fence.as_str())
        .nth(1)
        .unwrap_or_else(|| panic!("the section has a {language} block"));
    let block = block.split_once('\n').expect("a fence line ends").1;
    block.split("```").next().unwrap()
}

/// Where the test's walk-through differs from the README's, and why: README
/// text, then the test's text in its place.
const ADAPTATIONS: &[(&str, &str)] = &[
    // The imports are at the top of this file.
    (
        "use actionq::{ActionQueue, ActionStatus, ErrorKind, NewAction, Principal, Role, Whitelist};",
        "",
    ),
    // A temporary file, the config read from the README, and the manual clock
    // the ttl step needs.
    (
        r#"let queue = ActionQueue::open("data/actions.sqlite3")?.with_whitelist(Whitelist::from_json(POLICY)?);"#,
        r#"let queue = ActionQueue::open(dir.join("actions.sqlite3"))?.with_whitelist(Whitelist::from_json(policy)?).with_clock(clock.clone());"#,
    ),
    // The README says what an hour later shows; the test moves the clock and checks it.
    (
        r#"// ... an hour later:
// queue.get_action(upgrade.id)?.rejection_reason == Some("approval expired after 3600s")"#,
        r#"// ... an hour later:
clock.advance(chrono::TimeDelta::hours(1));
assert_eq!(queue.get_action(upgrade.id)?.rejection_reason.as_deref(), Some("approval expired after 3600s"));"#,
    ),
];

/// `text` without whitespace: formatting is not what the comparison is about.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The README's walk-through, statement for statement (see [`ADAPTATIONS`]);
/// returns the queue and the restart's id for the checks after it.
#[rustfmt::skip]
fn walk_through(dir: &std::path::Path, policy: &str, clock: &Arc<ManualClock>) -> Result<(ActionQueue, i64), actionq::Error> {
    // README walk-through: begin
let queue = ActionQueue::open(dir.join("actions.sqlite3"))?.with_whitelist(Whitelist::from_json(policy)?).with_clock(clock.clone());
queue.create_server("web-1", None)?;
queue.pause_server("web-1")?;

// required: 2 — the first approval is recorded, the second approves.
let action = queue.create_action(&NewAction::new("web-1", "restart_service").service_name("nginx"))?;
let once = queue.by("alice")?.approve_action(action.id)?;
assert_eq!((once.status, once.approvals.len()), (ActionStatus::Pending, 1));
assert_eq!(queue.by("alice")?.approve_action(action.id)?, once); // counted once
assert_eq!(queue.by("bob")?.approve_action(action.id)?.status, ActionStatus::Approved);

// four_eyes — the requester cannot approve its own action.
let carol = Principal::new("carol", Role::Operator);
let reboot = queue.as_principal(&carol).create_action(&NewAction::new("web-1", "reboot"))?;
let refused = queue.as_principal(&carol).approve_action(reboot.id).unwrap_err();
assert_eq!(refused.kind(), ErrorKind::PermissionDenied);

// ttl_seconds — after an hour nobody sees it pending: rejected by "system".
let upgrade = queue.create_action(&NewAction::new("web-1", "apt_upgrade_all"))?;
// ... an hour later:
clock.advance(chrono::TimeDelta::hours(1));
assert_eq!(queue.get_action(upgrade.id)?.rejection_reason.as_deref(), Some("approval expired after 3600s"));

// auto_approve_budget — the 4th vacuum within the hour waits for a human.
queue.unpause_server("web-1")?;
for _ in 0..3 {
    assert_eq!(queue.create_action(&NewAction::new("web-1", "clear_logs"))?.status, ActionStatus::Approved);
}
assert_eq!(queue.create_action(&NewAction::new("web-1", "clear_logs"))?.status, ActionStatus::Pending);

// The agent: run only what was approved.
if let Some(claim) = queue.claim_next("web-1", None, None)? {
    assert!(claim.action.digest_matches());
}
// The audit chain.
let report = queue.verify_audit()?;
assert_eq!(report.first_bad_event_id, None);
    // README walk-through: end
    Ok((queue, action.id))
}

#[test]
fn readme_policy_walk_through() -> Result<(), actionq::Error> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new("2026-03-01T12:00:00Z".parse().unwrap()));
    let (queue, restart) = walk_through(dir.path(), readme_block("json"), &clock)?;
    // The claim the README's `if let` checks did happen: the approved restart.
    assert_eq!(queue.get_action(restart)?.status, ActionStatus::Executing);
    Ok(())
}

#[test]
fn readme_walk_through_is_the_one_tested() {
    let mut readme = squeeze(readme_block("rust"));
    for (from, to) in ADAPTATIONS {
        let from = squeeze(from);
        assert_eq!(
            readme.matches(&from).count(),
            1,
            "docs/guide/policy-and-audit.md's Rust walk-through no longer has, once: {from}"
        );
        readme = readme.replacen(&from, &squeeze(to), 1);
    }
    let tested = THIS_FILE
        .split("// README walk-through: begin\n")
        .nth(1)
        .and_then(|rest| rest.split("    // README walk-through: end").next())
        .expect("the markers around walk_through's body");
    assert!(
        readme == squeeze(tested),
        "docs/guide/policy-and-audit.md's Rust walk-through \
         and walk_through() in core/tests/readme_policy.rs differ (whitespace aside, after \
         ADAPTATIONS); edit both.\nREADME, adapted:\n{readme}\ntested:\n{}",
        squeeze(tested)
    );
}
