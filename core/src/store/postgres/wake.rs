//! Waking the waiters of every replica: each transaction that wrote
//! something sends `NOTIFY` on [`CHANNEL`] as its last statement before
//! `COMMIT` (PostgreSQL delivers it at the commit, and never for a
//! transaction that rolls back), and each store has one connection of its
//! own, outside the pool, that `LISTEN`s on its watch thread. After the
//! server restarts, the listener connects again and wakes every waiter, who
//! check again: a notification sent while it was away is not missed.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, SimpleQueryMessage};

use super::connection::Manager;
use crate::store::wake::Watch;

/// The notification channel of actionq's stores.
pub(super) const CHANNEL: &str = "actionq_changes";

/// Ends a transaction: notifies the listeners of every store (this process's
/// too) if the transaction wrote anything (it then holds a transaction id),
/// and commits, in one round trip. Whether it notified.
pub(super) fn commit(client: &mut Client) -> Result<bool, postgres::Error> {
    let messages = client.simple_query(&format!(
        "SELECT pg_notify('{CHANNEL}', '') WHERE txid_current_if_assigned() IS NOT NULL; COMMIT"
    ))?;
    Ok(messages
        .iter()
        .any(|m| matches!(m, SimpleQueryMessage::Row(_))))
}

/// The listening connection of one store.
pub(super) struct Listener {
    manager: Manager,
    client: Option<Client>,
}

impl Listener {
    pub(super) fn new(manager: Manager) -> Self {
        Listener {
            manager,
            client: None,
        }
    }

    fn listen(&self) -> Option<Client> {
        let mut conn = self.manager.connect().ok()?;
        conn.client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .ok()?;
        Some(conn.client)
    }
}

impl Watch for Listener {
    fn changed(&mut self, at_most: Duration) -> bool {
        let Some(client) = &mut self.client else {
            let started = Instant::now();
            self.client = self.listen();
            if self.client.is_none() {
                // The server is away: try again after a pause.
                std::thread::sleep(at_most.saturating_sub(started.elapsed()));
                return false;
            }
            // Listening anew: whatever was sent meanwhile went unheard.
            return true;
        };
        let heard = {
            let mut notifications = client.notifications();
            let first = notifications.timeout_iter(at_most).next();
            match first {
                Ok(Some(_)) => {
                    // One wake for all that came together.
                    while let Ok(Some(_)) = notifications.iter().next() {}
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            }
        };
        match heard {
            Ok(heard) if !client.is_closed() => heard,
            // The connection is gone (the server restarted): listen again
            // on the next call, and wake everyone once that succeeds.
            _ => {
                self.client = None;
                false
            }
        }
    }

    fn drains(&self) -> bool {
        true
    }
}
