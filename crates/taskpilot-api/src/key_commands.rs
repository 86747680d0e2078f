//! `taskpilot-api keys create | list | revoke`: API keys managed from the command line, on
//! the database the service uses. A created key is printed once; only its hash is kept.

use anyhow::Context;
use clap::Subcommand;
use service_postgres::database::{self, DatabaseUrl};

use crate::api_keys::{ApiKeys, KeyRequest};
use crate::domain::api_key::parse_scopes;
use crate::startup::MIGRATIONS;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key and print it (it is shown this once).
    Create {
        /// The tenant whose tasks the key reaches.
        #[arg(long)]
        tenant: String,
        /// Comma-separated: tasks:read, tasks:write, admin (implies the others).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// What the key is for.
        #[arg(long, default_value = "")]
        name: String,
        /// Days until the key stops working; never when absent.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List keys (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by its id (the part after `tp_`): refused at once everywhere.
    Revoke { id: String },
}

/// Runs `command` on the database at `database_url`; what to print.
pub async fn run(database_url: &str, command: KeyCommand) -> anyhow::Result<String> {
    let db = DatabaseUrl::parse(database_url)?;
    let pool = tokio::task::spawn_blocking(move || database::bootstrap(&db, MIGRATIONS, 2))
        .await
        .context("database set-up")??;
    let keys = ApiKeys::load(pool).await.context("read the keys")?;
    match command {
        KeyCommand::Create {
            tenant,
            scopes,
            name,
            expires_in_days,
        } => {
            let names: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let scopes = parse_scopes(&names).map_err(anyhow::Error::msg)?;
            let created = keys
                .create(KeyRequest {
                    tenant,
                    scopes,
                    name,
                    expires_in_days,
                })
                .await?;
            Ok(format!("{}\n", created.text))
        }
        KeyCommand::List { tenant } => {
            let mut out = String::from("id\ttenant\tscopes\tname\tcreated\tlast used\texpires\trevoked\n");
            let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
            };
            for key in keys.list(tenant.as_deref()).await? {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    key.id,
                    key.tenant,
                    key.scopes.join(","),
                    key.name,
                    key.created_at.to_rfc3339(),
                    at(key.last_used_at),
                    at(key.expires_at),
                    at(key.revoked_at),
                ));
            }
            Ok(out)
        }
        KeyCommand::Revoke { id } => match keys.revoke(&id, None).await? {
            Some(_) => Ok(format!("revoked {id}\n")),
            None => anyhow::bail!("no key {id:?}"),
        },
    }
}
