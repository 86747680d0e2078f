//! Diesel's view of the `webdb` database (see `migrations/webdb`).

diesel::table! {
    web_tasks (id) {
        id -> Int8,
        task_type -> Text,
        payload -> Jsonb,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        scheduler_task_id -> Nullable<Int8>,
        scheduler_type -> Nullable<Text>,
        bound_at -> Nullable<Timestamptz>,
        tenant -> Text,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        tenant -> Text,
        name -> Text,
        scopes -> Array<Text>,
        secret_hash -> Bytea,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}
