//! Queries on `api_keys`. Keys are created, listed and revoked by their tenant's admins (or
//! the `keys` command); the authenticator reads them all at start-up, and one by one as the
//! database announces changes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};

use super::schema::api_keys;

/// One row of `api_keys`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub secret_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    pub name: &'a str,
    pub scopes: Vec<&'a str>,
    pub secret_hash: &'a [u8],
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts a key.
pub fn insert_key(conn: &mut PgConnection, key: &NewApiKey<'_>) -> QueryResult<ApiKeyRow> {
    diesel::insert_into(api_keys::table)
        .values(key)
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
}

/// Every key (the authenticator's cache), revoked ones included.
pub fn all_keys(conn: &mut PgConnection) -> QueryResult<Vec<ApiKeyRow>> {
    api_keys::table.select(ApiKeyRow::as_select()).load(conn)
}

/// One key by id.
pub fn find_key(conn: &mut PgConnection, id: &str) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}

/// A tenant's keys (every tenant's with `None`), oldest first.
pub fn list_keys(conn: &mut PgConnection, tenant: Option<&str>) -> QueryResult<Vec<ApiKeyRow>> {
    let mut query = api_keys::table
        .select(ApiKeyRow::as_select())
        .order((api_keys::created_at.asc(), api_keys::id.asc()))
        .into_boxed();
    if let Some(tenant) = tenant {
        query = query.filter(api_keys::tenant.eq(tenant.to_owned()));
    }
    query.load(conn)
}

/// Revokes key `id` (of `tenant`, when given) if it is not revoked yet; the key as it is
/// now, or `None` when there is no such key.
pub fn revoke_key(conn: &mut PgConnection, id: &str, tenant: Option<&str>) -> QueryResult<Option<ApiKeyRow>> {
    let owned = |row: &ApiKeyRow| tenant.is_none_or(|t| row.tenant == t);
    let Some(row) = find_key(conn, id)?.filter(owned) else {
        return Ok(None);
    };
    if row.revoked_at.is_some() {
        return Ok(Some(row));
    }
    diesel::update(api_keys::table.find(id).filter(api_keys::revoked_at.is_null()))
        .set(api_keys::revoked_at.eq(diesel::dsl::now))
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
        .optional()
        .map(|revoked| revoked.or(Some(row)))
}

/// Records that keys `ids` were used (now).
pub fn touch_keys(conn: &mut PgConnection, ids: &[String]) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query("UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1)")
        .bind::<Array<Text>, _>(ids)
        .execute(conn)
}
