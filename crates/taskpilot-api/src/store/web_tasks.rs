//! Queries on `web_tasks`. The binding is written once, guarded by "still unbound", so
//! concurrent binds of one web task cannot both win.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use service_runtime::prepared::Prepared;

use super::schema::web_tasks;
use super::StoreError;
use crate::domain::binding::Binding;
use crate::domain::{NewWebTask, WebTaskStatus};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = web_tasks)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WebTaskRow {
    pub id: i64,
    pub task_type: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub scheduler_task_id: Option<i64>,
    pub scheduler_type: Option<String>,
    pub bound_at: Option<DateTime<Utc>>,
}

impl WebTaskRow {
    pub fn status(&self) -> Result<WebTaskStatus, StoreError> {
        WebTaskStatus::parse(&self.status).ok_or_else(|| {
            StoreError::CorruptRow(format!("web task {} has status {:?}", self.id, self.status))
        })
    }

    pub fn binding(&self) -> Option<Binding> {
        Some(Binding {
            scheduler_task_id: self.scheduler_task_id?,
            scheduler_type: self.scheduler_type.clone()?,
        })
    }
}

/// Inserts a new, unbound web task.
pub fn insert_web_task(conn: &mut PgConnection, task: &NewWebTask) -> QueryResult<WebTaskRow> {
    Prepared(
        diesel::insert_into(web_tasks::table)
            .values((
                web_tasks::task_type.eq(&task.task_type),
                web_tasks::payload.eq(&task.payload),
                web_tasks::status.eq(WebTaskStatus::Pending.as_str()),
            ))
            .returning(WebTaskRow::as_returning()),
    )
    .get_result(conn)
}

/// Reads one web task.
pub fn find_web_task(conn: &mut PgConnection, id: i64) -> QueryResult<Option<WebTaskRow>> {
    web_tasks::table
        .find(id)
        .select(WebTaskRow::as_select())
        .first(conn)
        .optional()
}

/// Which web tasks a listing returns: all filters are optional and combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebTaskFilter {
    pub status: Option<WebTaskStatus>,
    pub task_type: Option<String>,
    /// Bound to a scheduler task or not. A web task is bound exactly when it is SUBMITTED
    /// (CHECK `web_tasks_binding_complete`), so this is a status condition on its index.
    pub bound: Option<bool>,
    /// Only web tasks with a smaller id (the last id of the previous page).
    pub before_id: Option<i64>,
}

/// Up to `limit` web tasks matching `filter`, newest (highest id) first.
pub fn list_web_tasks(
    conn: &mut PgConnection,
    filter: &WebTaskFilter,
    limit: i64,
) -> QueryResult<Vec<WebTaskRow>> {
    let mut query = web_tasks::table
        .select(WebTaskRow::as_select())
        .order(web_tasks::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(web_tasks::status.eq(status.as_str()));
    }
    if let Some(bound) = filter.bound {
        let status = if bound {
            WebTaskStatus::Submitted
        } else {
            WebTaskStatus::Pending
        };
        query = query.filter(web_tasks::status.eq(status.as_str()));
    }
    if let Some(task_type) = &filter.task_type {
        query = query.filter(web_tasks::task_type.eq(task_type.clone()));
    }
    if let Some(before) = filter.before_id {
        query = query.filter(web_tasks::id.lt(before));
    }
    query.load(conn)
}

/// Records the binding if the web task is still unbound; `None` when another bind won.
pub fn bind_if_unbound(
    conn: &mut PgConnection,
    id: i64,
    binding: &Binding,
) -> QueryResult<Option<WebTaskRow>> {
    Prepared(
        diesel::update(web_tasks::table)
            .filter(web_tasks::id.eq(id))
            .filter(web_tasks::scheduler_task_id.is_null())
            .set((
                web_tasks::scheduler_task_id.eq(binding.scheduler_task_id),
                web_tasks::scheduler_type.eq(&binding.scheduler_type),
                web_tasks::status.eq(WebTaskStatus::Submitted.as_str()),
                web_tasks::bound_at.eq(diesel::dsl::now),
                web_tasks::updated_at.eq(diesel::dsl::now),
            ))
            .returning(WebTaskRow::as_returning()),
    )
    .get_result(conn)
    .optional()
}
