//! Tasks: work handed to agents. Their status and output follow their latest execution.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{bind_key, read, write};
use crate::{KeySort, Page, PageRequest, Result, Store, StoreError};

/// `due_at` for sorting: a task with no due date sorts after every dated one.
const DUE_AT: &str = "COALESCE(due_at, '9999-12-31T00:00:00+00:00')";

/// The sort value of a task's due date, matching [`DUE_AT`].
pub fn due_at_key(t: &Task) -> DateTime<Utc> {
    t.due_at.unwrap_or_else(|| {
        DateTime::parse_from_rfc3339("9999-12-31T00:00:00+00:00")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    })
}

const COLS: &str = "id, org_id, title, description, input, output, status, priority, priority_rank, agent_id, assigned_at, started_at, completed_at, due_at, created_by, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Task {
    pub id: Uuid,
    pub org_id: Uuid,
    pub title: String,
    pub description: String,
    pub input: Json<Value>,
    pub output: Option<Json<Value>>,
    pub status: String,
    pub priority: String,
    pub priority_rank: i32,
    pub agent_id: Option<Uuid>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<String>,
    pub priority: Option<String>,
    pub agent_id: Option<Uuid>,
}

impl Store {
    pub async fn create_task(&self, t: &Task) -> Result<Task> {
        write!(self, |c| sqlx::query_as(&format!(
            "INSERT INTO tasks ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                $13, $14, $15, $16, $17) RETURNING {COLS}"
        ))
        .bind(t.id)
        .bind(t.org_id)
        .bind(&t.title)
        .bind(&t.description)
        .bind(&t.input)
        .bind(&t.output)
        .bind(&t.status)
        .bind(&t.priority)
        .bind(t.priority_rank)
        .bind(t.agent_id)
        .bind(t.assigned_at)
        .bind(t.started_at)
        .bind(t.completed_at)
        .bind(t.due_at)
        .bind(t.created_by)
        .bind(t.created_at)
        .bind(t.updated_at)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Writes every mutable field of a live task.
    pub async fn update_task(&self, t: &Task) -> Result<Option<Task>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE tasks SET title = $1, description = $2, input = $3, output = $4, status = $5,
                priority = $6, priority_rank = $7, agent_id = $8, assigned_at = $9,
                started_at = $10, completed_at = $11, due_at = $12, updated_at = $13
             WHERE org_id = $14 AND id = $15 AND deleted_at IS NULL RETURNING {COLS}"
        ))
        .bind(&t.title)
        .bind(&t.description)
        .bind(&t.input)
        .bind(&t.output)
        .bind(&t.status)
        .bind(&t.priority)
        .bind(t.priority_rank)
        .bind(t.agent_id)
        .bind(t.assigned_at)
        .bind(t.started_at)
        .bind(t.completed_at)
        .bind(t.due_at)
        .bind(t.updated_at)
        .bind(t.org_id)
        .bind(t.id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn task(&self, org_id: Uuid, id: Uuid) -> Result<Option<Task>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM tasks WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Sorts: `id`, `priority`, `due_at` (tasks with no due date last).
    pub async fn list_tasks(
        &self,
        org_id: Uuid,
        f: &TaskFilter,
        page: PageRequest,
        sort: &KeySort,
    ) -> Result<Page<Task>> {
        let expr = match sort.field {
            "priority" => "priority_rank",
            _ => DUE_AT,
        };
        let (keyset, order) = page.keyset(sort, expr, 2, 7);
        let sql = format!(
            "SELECT {COLS} FROM tasks WHERE org_id = $1 AND deleted_at IS NULL AND {keyset}
               AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR priority = $4)
               AND ($5 IS NULL OR agent_id = $5)
             ORDER BY {order} LIMIT $6"
        );
        let rows = read!(self, |c| {
            let query = sqlx::query_as(&sql)
                .bind(org_id)
                .bind(page.bound())
                .bind(&f.status)
                .bind(&f.priority)
                .bind(f.agent_id)
                .bind(page.fetch());
            bind_key!(query, sort).fetch_all(c).await
        })
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    pub async fn delete_task(&self, org_id: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let n = write!(self, |c| sqlx::query(
            "UPDATE tasks SET deleted_at = $1, updated_at = $1
             WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL"
        )
        .bind(now)
        .bind(org_id)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(n > 0)
    }

    /// Makes a task follow its execution as it starts: `in_progress`. Its end is written with
    /// the execution's own (see [`follow_task!`]), so a finished execution never shows beside
    /// a task that has not caught up.
    pub async fn task_follow_execution(
        &self,
        org_id: Uuid,
        task_id: Uuid,
        execution_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |c| sqlx::query(FOLLOW_SQL)
            .bind("in_progress")
            .bind(None::<Json<&Value>>)
            .bind(now)
            .bind(false)
            .bind(org_id)
            .bind(task_id)
            .bind(execution_id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}

/// Moves a task to `$1` (output `$2` if given) at `$3`, finished when `$4`; only the task's
/// latest execution (`$7`) moves it, and a start never undoes that execution's end.
pub(crate) const FOLLOW_SQL: &str = "UPDATE tasks SET status = $1, output = COALESCE($2, output),
        started_at = COALESCE(started_at, $3),
        completed_at = CASE WHEN $4 THEN $3 ELSE NULL END, updated_at = $3
     WHERE org_id = $5 AND id = $6 AND deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM executions x WHERE x.org_id = $5 AND x.task_id = $6
                       AND x.id > $7)
       AND ($4 OR EXISTS (SELECT 1 FROM executions y WHERE y.id = $7
                          AND y.status IN ('pending', 'running', 'awaiting_approval')))";

/// What a task becomes when its execution ends with `status`.
pub(crate) fn task_status_for(status: &str) -> &'static str {
    match status {
        "success" => "completed",
        "cancelled" => "cancelled",
        _ => "failed",
    }
}
