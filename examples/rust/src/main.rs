//! The whole actionq flow on a SQLite file: register a server, queue actions on
//! it in normal and maintenance mode, approve, claim as the agent, report, audit.
//!
//! Run: `cargo run -p actionq-example -- [path/to/db.sqlite3]`

use std::time::Duration;

use actionq::{ActionQuery, ActionQueue, NewAction};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "data/example.sqlite3".to_owned());
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let queue = ActionQueue::open(&path)?;
    println!("actionq example on {path}");

    // Register the server once; a rerun finds it already there.
    let server_id = "web-1";
    match queue.create_server(server_id, Some("web-1.lan")) {
        Ok(server) => println!("registered server {}", server.id),
        Err(e) if e.kind() == actionq::ErrorKind::Conflict => println!("server {server_id} exists"),
        Err(e) => return Err(e.into()),
    }

    // A normal server: whitelisted actions are approved automatically.
    let logs = queue.create_action(&NewAction::new(server_id, "clear_logs"))?;
    println!(
        "#{} {} -> {} (by {:?})",
        logs.id, logs.command, logs.status, logs.approved_by
    );

    // Callers cannot smuggle a command in through a parameter.
    let attack = NewAction::new(server_id, "restart_service").service_name("nginx; rm -rf /");
    let refused = queue.create_action(&attack).unwrap_err();
    println!("refused: [{}] {}", refused.code(), refused);

    // Maintenance mode: new actions wait for a human.
    queue.pause_server(server_id)?;
    let restart = queue.create_action(
        &NewAction::new(server_id, "restart_service")
            .service_name("nginx.service")
            .alert_id(42),
    );
    let restart = match restart {
        Ok(action) => action,
        // A rerun may find the same restart still pending from last time.
        Err(e) if e.existing_action_id().is_some() => {
            queue.get_action(e.existing_action_id().unwrap())?
        }
        Err(e) => return Err(e.into()),
    };
    println!("#{} {} -> {}", restart.id, restart.command, restart.status);
    if restart.status == actionq::ActionStatus::Pending {
        queue.by("alice")?.approve_action(restart.id)?;
    }
    queue.unpause_server(server_id)?;

    // The agent: claim, run (here: pretend), report under the lease token.
    while let Some(claim) = queue.claim_next(server_id, Some(Duration::from_secs(60)), None)? {
        let action = &claim.action;
        println!(
            "agent runs #{}: argv={:?} env={:?}",
            action.id, action.argv, action.env
        );
        let done = queue.report_result(action.id, &claim.lease_token, 0, Some("ok"), None)?;
        println!(
            "#{} -> {} (exit {:?})",
            done.id, done.status, done.exit_code
        );
    }

    let page = queue.list_actions(&ActionQuery {
        limit: 5,
        ..Default::default()
    })?;
    println!(
        "{} actions in total; newest {}:",
        page.total,
        page.actions.len()
    );
    for a in &page.actions {
        println!(
            "  #{:<4} {:<16} {:<10} {}",
            a.id, a.action_type, a.status, a.command
        );
    }

    let events = queue.events_since(0, 1000, None)?;
    println!("audit log: {} events; last ones:", events.len());
    for e in events.iter().rev().take(4).rev() {
        match (e.action_id, e.to_status) {
            (Some(action_id), Some(to)) => {
                let from = e.from_status.map_or("-".to_owned(), |s| s.to_string());
                println!(
                    "  [{}] action #{action_id} {from} -> {to} by {}",
                    e.id, e.by
                );
            }
            _ => println!(
                "  [{}] {} {}: {} by {}",
                e.id,
                e.kind.as_str(),
                e.subject,
                e.detail.as_deref().unwrap_or(""),
                e.by
            ),
        }
    }
    Ok(())
}
