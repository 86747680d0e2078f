//! The bench's own databases on the Postgres server under measurement: every measurement
//! gets a fresh name, and the database is dropped (its connections ended) with the value
//! that named it, also when the measurement fails.

use anyhow::Context;
use diesel::prelude::*;
use service_postgres::database::{self, DatabaseUrl};

/// A database name of this run, `bench_{label}_{pid}_{random}`; the database of that name,
/// whoever created it, is dropped with the value.
pub struct ScratchName {
    server: DatabaseUrl,
    pub name: String,
}

impl ScratchName {
    pub fn new(server: &DatabaseUrl, label: &str) -> Self {
        Self {
            server: server.clone(),
            name: format!(
                "bench_{label}_{}_{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
        }
    }

    pub fn url(&self) -> String {
        self.server.with_database(&self.name)
    }
}

impl Drop for ScratchName {
    fn drop(&mut self) {
        if let Err(e) = database::drop_database(&self.server, &self.name) {
            eprintln!("dtp-bench: could not drop database {}: {e}", self.name);
        }
    }
}

/// A fresh, empty database created now, with a connection for the bench's own statements.
pub struct ScratchDatabase {
    // Declared first, so that it is closed before the database is dropped.
    conn: PgConnection,
    url: String,
    name: ScratchName,
}

impl ScratchDatabase {
    pub fn create(server: &DatabaseUrl, label: &str) -> anyhow::Result<Self> {
        let name = ScratchName::new(server, label);
        let url = name.url();
        database::ensure_database(&DatabaseUrl::parse(&url)?)?;
        let conn = PgConnection::establish(&url).with_context(|| format!("connect to {}", name.name))?;
        Ok(Self { conn, url, name })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name.name
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Writes every dirty buffer out (server-wide) before a measurement starts, so that a
    /// checkpoint owed to the seeding or to an earlier scenario's writes does not land
    /// inside this one's figures. The scenario's own writes still trigger theirs.
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        diesel::sql_query("CHECKPOINT")
            .execute(&mut self.conn)
            .context("checkpoint")?;
        Ok(())
    }
}
