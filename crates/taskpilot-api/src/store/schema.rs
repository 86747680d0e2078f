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

diesel::table! {
    task_executions (scheduler_task_id) {
        scheduler_task_id -> Int8,
        web_task_id -> Nullable<Int8>,
        tenant -> Nullable<Text>,
        status -> Text,
        retry_state -> Text,
        attempt_count -> Int4,
        max_attempts -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Nullable<Timestamptz>,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        synced_at -> Timestamptz,
    }
}

diesel::table! {
    execution_events (seq) {
        seq -> Int8,
        cursor -> Text,
        scheduler_task_id -> Int8,
        kind -> Text,
        status -> Text,
        retry_state -> Text,
        attempt -> Int4,
        at -> Timestamptz,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    feed_positions (feed) {
        feed -> Text,
        cursor -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(task_executions -> web_tasks (web_task_id));
diesel::allow_tables_to_appear_in_same_query!(web_tasks, task_executions, execution_events);
