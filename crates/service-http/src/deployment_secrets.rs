//! The `deployment_secrets` table both services' databases hold: secrets made at random by
//! whichever process asks first and read by all the others, so every process of a
//! deployment shares them with no configuration, and no two deployments do.

use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text};
use rand::RngCore as _;

#[derive(QueryableByName)]
struct SecretRow {
    #[diesel(sql_type = Bytea)]
    secret: Vec<u8>,
}

/// The secret called `name`, made now if this deployment has none yet. Processes starting
/// at once all get the one that was stored first.
pub fn load_or_create(conn: &mut PgConnection, name: &str) -> QueryResult<[u8; 32]> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    diesel::sql_query(
        "INSERT INTO deployment_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(name)
    .bind::<Bytea, _>(fresh.as_slice())
    .execute(conn)?;
    let row: SecretRow = diesel::sql_query("SELECT secret FROM deployment_secrets WHERE name = $1")
        .bind::<Text, _>(name)
        .get_result(conn)?;
    // The table's CHECK keeps every secret at 32 bytes.
    row.secret.try_into().map_err(|_| {
        diesel::result::Error::DeserializationError("a deployment secret is not 32 bytes".into())
    })
}

/// The key that seals this deployment's listing cursors.
pub async fn cursor_key(
    pool: &service_postgres::PgPool,
) -> Result<crate::page_cursor::CursorKey, service_postgres::database::StoreError> {
    let bytes = service_postgres::database::run(pool, |conn| load_or_create(conn, "cursor")).await?;
    Ok(crate::page_cursor::CursorKey::new(bytes))
}
