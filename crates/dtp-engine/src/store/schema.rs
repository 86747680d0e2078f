//! Diesel's view of the `dtp` database (see `migrations/dtp`).

diesel::table! {
    tasks (id) {
        id -> Int8,
        task_type -> Text,
        payload -> Jsonb,
        status -> Text,
        retry_state -> Text,
        attempt_count -> Int4,
        max_attempts -> Int4,
        last_error -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        created_at -> Timestamptz,
        scheduled_for -> Timestamptz,
        processing_started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        lease_token -> Nullable<Int8>,
        lease_expires_at -> Nullable<Timestamptz>,
        worker_id -> Nullable<Text>,
        timeout_ms -> Int4,
        result -> Nullable<Jsonb>,
        type_queue -> Bool,
        idempotency_scope -> Text,
        requested_run_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    task_attempts (task_id, lease_token) {
        lease_token -> Int8,
        task_id -> Int8,
        attempt -> Int4,
        worker_id -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
        error -> Nullable<Text>,
        due_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(task_attempts -> tasks (task_id));
diesel::allow_tables_to_appear_in_same_query!(tasks, task_attempts);
