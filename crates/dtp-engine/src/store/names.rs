//! Name columns (`retry_state`, ...) read as their enums at the store's edge: a name the
//! column's CHECK constraint should have refused fails the read, loudly, instead of turning
//! into some default further in.

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Text;
use dtp_contract::RetryState;

/// A name read from a text column and parsed: a field's type (`Option<Named<T>>` for a
/// nullable column), or its `deserialize_as = Named<T>`.
#[derive(Debug, Clone, Copy)]
pub struct Named<T>(T);

impl<T: Copy> Named<T> {
    /// The variant read.
    pub fn get(&self) -> T {
        self.0
    }
}

impl<T> FromSql<Text, Pg> for Named<T>
where
    T: TryFrom<String>,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let name = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        Ok(Named(T::try_from(name)?))
    }
}

impl From<Named<RetryState>> for RetryState {
    fn from(named: Named<RetryState>) -> Self {
        named.0
    }
}
