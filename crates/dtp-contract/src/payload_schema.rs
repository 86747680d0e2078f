//! The OpenAPI schema of payloads: any JSON that `jsonb` keeps and gives back (what
//! `check_storable` accepts), so that clients and fuzzers built from the description
//! send only payloads the services take.

use std::borrow::Cow;

use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};

use crate::MAX_STORABLE_MAGNITUDE;

/// Any JSON value without U+0000 in its strings and keys, and without numbers of
/// magnitude 1e308 or more.
pub struct StorableJson;

const SCHEMA_NAME: &str = "StorableJson";

impl utoipa::PartialSchema for StorableJson {
    fn schema() -> RefOr<Schema> {
        let itself = || Ref::from_schema_name(SCHEMA_NAME);
        let number = ObjectBuilder::new()
            .schema_type(Type::Number)
            .exclusive_minimum(Some(-MAX_STORABLE_MAGNITUDE))
            .exclusive_maximum(Some(MAX_STORABLE_MAGNITUDE));
        AnyOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(number)
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ArrayBuilder::new().items(itself()))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(itself())),
            )
            .description(Some(
                "Any JSON, without U+0000 in strings or keys and without numbers of magnitude 1e308 or more \
                 (Postgres jsonb could not keep or give them back).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for StorableJson {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(SCHEMA_NAME)
    }
}
