//! `ApiKeys`: TaskPilot's API keys, managed (create, list, revoke) and checked. Every key is
//! held in memory, so checking one costs no query. A change the database announces (another
//! process revoking a key) updates the cache at once, every (re)subscription reloads it all,
//! and last-use times are written in batches.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::Utc;
use rand::Rng as _;
use service_postgres::notifications::{Listener, Subscriber};
use service_postgres::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::api_key::{
    authenticate, check_tenant, KeyRecord, KeyText, Principal, Scope, KEY_ID_CHARS,
};
use crate::store::api_keys::{self as key_store, ApiKeyRow, NewApiKey};
use crate::store::{self, StoreError};

/// The channel the database announces key changes on (see the `api_keys` migration).
pub const KEY_CHANGES_CHANNEL: &str = "taskpilot_api_keys";
/// How often last-use times are written.
const TOUCH_EVERY: Duration = Duration::from_secs(10);
/// Longest name of a key.
pub const KEY_NAME_MAX_CHARS: usize = 100;
/// Longest life of a key, days.
pub const MAX_KEY_DAYS: u32 = 3_650;

/// Why a key cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key just made: its text is shown this once.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub text: String,
    pub row: ApiKeyRow,
}

/// What a new key is to be.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub name: String,
    pub expires_in_days: Option<u32>,
}

/// The keys and their cache. Cheap to clone.
#[derive(Clone)]
pub struct ApiKeys {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    keys: RwLock<HashMap<String, KeyRecord>>,
    used: Mutex<HashSet<String>>,
}

impl ApiKeys {
    /// Reads every key.
    pub async fn load(pool: PgPool) -> Result<Self, StoreError> {
        let keys = Self {
            inner: Arc::new(Inner {
                pool,
                keys: RwLock::default(),
                used: Mutex::default(),
            }),
        };
        keys.reload_all().await?;
        Ok(keys)
    }

    /// Who a request presenting `text` acts as, if the key is live.
    pub fn authenticate(&self, text: &str) -> Option<Principal> {
        let key = KeyText::parse(text)?;
        let principal = {
            let keys = self.inner.keys.read().unwrap_or_else(PoisonError::into_inner);
            authenticate(&key, keys.get(&key.id), Utc::now())
        };
        if principal.is_some() {
            self.inner
                .used
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.id);
        }
        principal
    }

    /// Makes a key; its text is in the answer and nowhere else.
    pub async fn create(&self, request: KeyRequest) -> Result<CreatedKey, KeyError> {
        check_tenant(&request.tenant).map_err(KeyError::Invalid)?;
        if request.name.chars().count() > KEY_NAME_MAX_CHARS || request.name.contains('\0') {
            return Err(KeyError::Invalid(format!(
                "a key's name must be at most {KEY_NAME_MAX_CHARS} characters without NUL"
            )));
        }
        if request.scopes.is_empty() {
            return Err(KeyError::Invalid("a key needs at least one scope".into()));
        }
        let expires_at = match request.expires_in_days {
            Some(days) if days == 0 || days > MAX_KEY_DAYS => {
                return Err(KeyError::Invalid(format!(
                    "expiresInDays must be between 1 and {MAX_KEY_DAYS}, got {days}"
                )))
            }
            Some(days) => Some(Utc::now() + chrono::Duration::days(i64::from(days))),
            None => None,
        };
        let text = fresh_key();
        let hash = text.secret_hash();
        let (id, tenant, name) = (text.id.clone(), request.tenant.clone(), request.name.clone());
        let scopes: Vec<&'static str> = request.scopes.iter().map(|s| s.as_str()).collect();
        let row = store::run(&self.inner.pool, move |conn| {
            key_store::insert_key(
                conn,
                &NewApiKey {
                    id: &id,
                    tenant: &tenant,
                    name: &name,
                    scopes: scopes.clone(),
                    secret_hash: &hash,
                    expires_at,
                },
            )
        })
        .await?;
        self.cache(&row);
        tracing::info!(key.id = %row.id, tenant = %row.tenant, "API key created");
        Ok(CreatedKey {
            text: text.text(),
            row,
        })
    }

    /// A tenant's keys (every tenant's with `None`), without their secrets.
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyRow>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        store::run(&self.inner.pool, move |conn| {
            key_store::list_keys(conn, tenant.as_deref())
        })
        .await
    }

    /// Revokes key `id` (of `tenant`, when given): refused at once here, and on every other
    /// process as soon as the database's announcement reaches it. `None`: no such key.
    pub async fn revoke(&self, id: &str, tenant: Option<&str>) -> Result<Option<ApiKeyRow>, StoreError> {
        let (id, tenant) = (id.to_owned(), tenant.map(str::to_owned));
        let revoked = store::run(&self.inner.pool, move |conn| {
            key_store::revoke_key(conn, &id, tenant.as_deref())
        })
        .await?;
        if let Some(row) = &revoked {
            self.cache(row);
            tracing::info!(key.id = %row.id, tenant = %row.tenant, "API key revoked");
        }
        Ok(revoked)
    }

    /// Follows the database's announcements and writes last-use times, until `shutdown`.
    pub async fn follow(self, database_url: String, shutdown: CancellationToken) {
        let listener = Listener::new(database_url, &[KEY_CHANGES_CHANNEL]);
        let touches = tokio::spawn(self.clone().write_last_uses(shutdown.clone()));
        listener.run(KeyChanges(self), shutdown).await;
        let _ = touches.await;
    }

    async fn write_last_uses(self, shutdown: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(TOUCH_EVERY) => false,
                () = shutdown.cancelled() => true,
            };
            let used: Vec<String> = self
                .inner
                .used
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
                .collect();
            if !used.is_empty() {
                if let Err(e) =
                    store::run(&self.inner.pool, move |conn| key_store::touch_keys(conn, &used)).await
                {
                    tracing::warn!(error = %e, "could not record when API keys were last used");
                }
            }
            if stopping {
                return;
            }
        }
    }

    async fn reload_all(&self) -> Result<(), StoreError> {
        let rows = store::run(&self.inner.pool, key_store::all_keys).await?;
        let keys: HashMap<String, KeyRecord> = rows
            .iter()
            .filter_map(record)
            .map(|r| (r.id.clone(), r))
            .collect();
        *self.inner.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    async fn reload(&self, id: String) -> Result<(), StoreError> {
        let lookup = id.clone();
        let row = store::run(&self.inner.pool, move |conn| key_store::find_key(conn, &lookup)).await?;
        match row {
            Some(row) => self.cache(&row),
            None => {
                self.inner
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            }
        }
        Ok(())
    }

    fn cache(&self, row: &ApiKeyRow) {
        if let Some(record) = record(row) {
            self.inner
                .keys
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(record.id.clone(), record);
        }
    }
}

/// The authenticator's view of a stored key; a row it cannot read is left out (refused).
fn record(row: &ApiKeyRow) -> Option<KeyRecord> {
    Some(KeyRecord {
        id: row.id.clone(),
        tenant: row.tenant.clone(),
        scopes: row
            .scopes
            .iter()
            .map(|s| Scope::parse(s))
            .collect::<Option<Vec<_>>>()?,
        secret_hash: row.secret_hash.as_slice().try_into().ok()?,
        expires_at: row.expires_at,
        revoked: row.revoked_at.is_some(),
    })
}

/// A random key id and secret.
fn fresh_key() -> KeyText {
    let mut rng = rand::rng();
    let id_picks: [u8; KEY_ID_CHARS] = rng.random();
    KeyText::from_random(id_picks, rng.random())
}

/// What the cache does with the database's announcements.
struct KeyChanges(ApiKeys);

impl Subscriber for KeyChanges {
    fn subscribed(&self) {
        let keys = self.0.clone();
        tokio::spawn(async move {
            if let Err(e) = keys.reload_all().await {
                tracing::warn!(error = %e, "could not reload the API keys");
            }
        });
    }

    fn notified(&self, _channel: &str, id: &str) {
        let keys = self.0.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = keys.reload(id.clone()).await {
                tracing::warn!(key.id = %id, error = %e, "could not reload an API key; reloading all");
                let _ = keys.reload_all().await;
            }
        });
    }
}
