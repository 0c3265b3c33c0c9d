//! One connection: the pool's [`Manager`] makes them, [`Conn`] keeps each
//! one's prepared statements.

use std::collections::HashMap;

use postgres::{Client, NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::wake::Touched;

/// A pooled connection and its prepared statements.
pub(super) struct Conn {
    pub(super) client: Client,
    statements: HashMap<String, Statement>,
    pub(super) broken: bool,
    /// What the open transaction logged (its `NOTIFY` payload, see `wake`):
    /// every statement that inserts events notes them here.
    pub(super) logged: Touched,
}

impl Conn {
    /// `sql` prepared on this connection, once.
    pub(super) fn prepared(
        &mut self,
        sql: &str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs `sql` (prepared once per connection), returning its rows.
    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query(&statement, params)
    }

    /// Runs `sql` (prepared once per connection), returning the rows affected.
    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> std::result::Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.execute(&statement, params)
    }
}

/// Makes the pool's connections (and the listener's).
#[derive(Clone)]
pub(super) struct Manager {
    pub(super) config: postgres::Config,
    pub(super) tls: Option<MakeRustlsConnect>,
}

impl Manager {
    /// A new connection, with no statements prepared yet.
    pub(super) fn connect(&self) -> std::result::Result<Conn, postgres::Error> {
        let client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        };
        Ok(Conn {
            client,
            statements: HashMap::new(),
            broken: false,
            logged: Touched::default(),
        })
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Conn, postgres::Error> {
        Manager::connect(self)
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || conn.client.is_closed()
    }
}
