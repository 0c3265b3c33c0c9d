//! Waking the waiters of every replica that a commit concerns: each
//! transaction that logged events sends `NOTIFY` on [`CHANNEL`] as its last
//! statement before `COMMIT` (PostgreSQL delivers it at the commit, and never
//! for a transaction that rolls back), its payload naming the servers the
//! events were about ([`payload`]); each store has one connection of its own,
//! outside the pool, that `LISTEN`s on its watch thread and wakes only those
//! servers' waiters (and every events reader). A payload it cannot read, or
//! one that would pass PostgreSQL's 8000-byte limit (then sent empty), wakes
//! everyone. After the server restarts, the listener connects again and wakes
//! every waiter, who check again: a notification sent while it was away is
//! not missed.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::connection::Manager;
use crate::model::EventKind;
use crate::store::wake::{Touched, Watch};

/// The notification channel of actionq's stores.
pub(super) const CHANNEL: &str = "actionq_changes";

/// How a payload naming servers starts; any other payload (the empty one
/// included) means "anything may have changed".
const SERVERS: &str = "servers:";

/// Longest payload sent: PostgreSQL refuses 8000 bytes and more.
const MOST_PAYLOAD_BYTES: usize = 7999;

/// The `NOTIFY` payload of `touched`: `servers:` and the server ids, space
/// separated (ids are `[A-Za-z0-9._-]`), or empty (everything) when that is
/// too long, when it touched everything, or for an id that is not plain.
pub(super) fn payload(touched: &Touched) -> String {
    if touched.is_everything() {
        return String::new();
    }
    let mut payload = String::from(SERVERS);
    for (i, id) in touched.servers().enumerate() {
        let plain = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !plain || payload.len() + 1 + id.len() > MOST_PAYLOAD_BYTES {
            return String::new();
        }
        if i > 0 {
            payload.push(' ');
        }
        payload.push_str(id);
    }
    payload
}

/// What a payload says was touched ([`payload`]'s inverse; anything else is
/// everything).
pub(super) fn touched(payload: &str) -> Touched {
    let Some(ids) = payload.strip_prefix(SERVERS) else {
        return Touched::everything();
    };
    let mut touched = Touched::default();
    // A credential's change names no server, yet wakes the events readers.
    touched.record(EventKind::Credential, "");
    for id in ids.split(' ').filter(|id| !id.is_empty()) {
        touched.record(EventKind::Server, id);
    }
    touched
}

/// Ends a transaction: notifies the listeners of every store (this process's
/// too) of what it logged, if anything, and commits, in one round trip.
pub(super) fn commit(client: &mut Client, logged: &Touched) -> Result<(), postgres::Error> {
    if logged.is_empty() {
        return client.batch_execute("COMMIT");
    }
    // The payload is plain (`payload`): no quoting needed.
    client.batch_execute(&format!(
        "SELECT pg_notify('{CHANNEL}', '{}'); COMMIT",
        payload(logged)
    ))
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
    fn changed(&mut self, at_most: Duration) -> Touched {
        let Some(client) = &mut self.client else {
            let started = Instant::now();
            self.client = self.listen();
            if self.client.is_none() {
                // The server is away: try again after a pause.
                std::thread::sleep(at_most.saturating_sub(started.elapsed()));
                return Touched::default();
            }
            // Listening anew: whatever was sent meanwhile went unheard.
            return Touched::everything();
        };
        let heard = {
            let mut notifications = client.notifications();
            let first = notifications.timeout_iter(at_most).next();
            match first {
                Ok(Some(first)) => {
                    // One wake for all that came together.
                    let mut heard = touched(first.payload());
                    while let Ok(Some(next)) = notifications.iter().next() {
                        heard.merge(touched(next.payload()));
                    }
                    Ok(heard)
                }
                Ok(None) => Ok(Touched::default()),
                Err(e) => Err(e),
            }
        };
        match heard {
            Ok(heard) if !client.is_closed() => heard,
            // The connection is gone (the server restarted): listen again
            // on the next call, and wake everyone once that succeeds.
            _ => {
                self.client = None;
                Touched::default()
            }
        }
    }

    fn drains(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_the_servers_and_reads_back() {
        let sent = Touched::of_servers(&["web-1", "db.lan"]);
        assert_eq!(payload(&sent), "servers:db.lan web-1");
        let heard = touched(&payload(&sent));
        assert_eq!(heard.servers().collect::<Vec<_>>(), ["db.lan", "web-1"]);
        assert!(!heard.is_everything());
        let mut credential = Touched::default();
        credential.record(EventKind::Credential, "ops");
        let heard = touched(&payload(&credential));
        assert!(!heard.is_empty() && !heard.is_everything());
        assert_eq!(heard.servers().count(), 0);
    }

    #[test]
    fn a_payload_too_long_or_unreadable_means_everything() {
        let ids: Vec<String> = (0..100).map(|i| format!("{i:0>99}")).collect();
        let many = Touched::of_servers(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(payload(&many), "");
        assert!(touched("").is_everything());
        assert!(touched("from a newer version").is_everything());
        assert_eq!(payload(&Touched::of_servers(&["it's"])), "");
        assert_eq!(payload(&Touched::everything()), "");
    }
}
