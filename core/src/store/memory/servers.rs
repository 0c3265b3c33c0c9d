//! Servers: registration and maintenance mode.

use super::Inner;
use crate::error::{Error, Result};
use crate::model::{Server, Timestamp};
use crate::store::EventDraft;

impl Inner {
    /// Registers `server`; Conflict if its id is taken.
    pub(super) fn insert_server(&mut self, server: &Server) -> Result<()> {
        if self.servers.contains_key(&server.id) {
            return Err(Error::conflict(format!(
                "Server '{}' already exists",
                server.id
            )));
        }
        self.servers.insert(server.id.clone(), server.clone());
        Ok(())
    }

    /// Pauses or unpauses server `id`, logging the change if there is one.
    pub(super) fn set_paused(
        &mut self,
        id: &str,
        paused: bool,
        by: &str,
        at: Timestamp,
    ) -> Option<Server> {
        let server = self.servers.get(id)?.clone();
        if server.is_paused == paused {
            return Some(server);
        }
        let changed = Server {
            is_paused: paused,
            paused_at: paused.then_some(at),
            ..server
        };
        self.servers.insert(id.to_owned(), changed.clone());
        self.log(EventDraft::server_paused(id, paused, by, at));
        Some(changed)
    }

    /// Every server, by id.
    pub(super) fn list_servers(&self) -> Vec<Server> {
        let mut servers: Vec<Server> = self.servers.values().cloned().collect();
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        servers
    }
}
