//! `/tasks`: work handed to agents. Writes: member+.

use agentry_core::cursor::{KeyKind, KeyValue};
use agentry_services::tasks::{STATUSES, TaskInput};
use agentry_store::TaskFilter;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, Json, JsonBytes, Query, parse_json, path_id, present};
use crate::list::{CREATED_AT, SortField, sorted_list_response, sorted_page};
use crate::routes::{created, idempotent, one_of};
use crate::run_views::{ExecutionView, TaskView};
use crate::state::AppState;
use crate::views::{ErrorResponse, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_task, list_tasks))
        .routes(routes!(get_task, update_task, delete_task))
        .routes(routes!(assign_task))
        .routes(routes!(cancel_task))
}

/// A task to create, or the fields to change (left out: unchanged).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    pub title: Option<String>,
    pub description: Option<String>,
    /// An object handed to the agent with the title and description.
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// `backlog` (default), `in_progress`, `completed`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// `low`, `medium` (default), `high` or `critical`: the queue runs higher first.
    pub priority: Option<String>,
    /// An agent of this org, or `null` to unassign.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub agent_id: Option<Value>,
    /// RFC 3339, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub due_at: Option<Value>,
}

impl From<TaskRequest> for TaskInput {
    fn from(r: TaskRequest) -> Self {
        TaskInput {
            title: r.title,
            description: r.description,
            input: r.input,
            status: r.status,
            priority: r.priority,
            agent_id: r.agent_id,
            due_at: r.due_at,
        }
    }
}

/// Create a task. Takes an `Idempotency-Key` header.
#[utoipa::path(post, path = "/tasks", tag = "tasks", request_body = TaskRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 201, body = TaskView), (status = 403, body = ErrorResponse),
              (status = 409, description = "idempotency_key_reused", body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: axum::http::HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    idempotent(&state, &ctx, &headers, "POST /tasks", &body, async || {
        let req: TaskRequest = parse_json(&body)?;
        let t = state.services.create_task(&ctx, req.into()).await?;
        Ok(created(
            format!("/api/v1/tasks/{}", t.id),
            TaskView::from(t),
        ))
    })
    .await
}

const TASK_SORTS: &[SortField] = &[
    CREATED_AT,
    ("priority", Some(KeyKind::Int)),
    ("due_at", Some(KeyKind::Time)),
];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// `backlog`, `in_progress`, `completed`, `failed` or `cancelled`.
    #[param(pattern = "^(backlog|in_progress|completed|failed|cancelled)$")]
    pub status: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    #[param(pattern = "^(low|medium|high|critical)$")]
    pub priority: Option<String>,
    pub agent_id: Option<Uuid>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// `created_at` (default), `priority` (low first) or `due_at` (soonest first, undated
    /// last); `-` in front for descending.
    #[param(pattern = "^-?(created_at|priority|due_at)$")]
    pub sort: Option<String>,
}

#[utoipa::path(get, path = "/tasks", tag = "tasks", params(TaskQuery),
    responses((status = 200, body = ListResponse<TaskView>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_tasks(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<TaskQuery>,
) -> ApiResult<axum::Json<ListResponse<TaskView>>> {
    let ctx = p.org_ctx()?;
    let req = sorted_page(
        q.limit.as_deref(),
        q.cursor.as_deref(),
        q.sort.as_deref(),
        false,
        TASK_SORTS,
    )?;
    let filter = TaskFilter {
        status: one_of("status", q.status, STATUSES)?,
        priority: one_of(
            "priority",
            q.priority,
            &["low", "medium", "high", "critical"],
        )?,
        agent_id: q.agent_id,
    };
    let page = state
        .services
        .list_tasks(&ctx, &filter, req.page, &req.sort)
        .await?;
    let field = req.sort.field;
    Ok(axum::Json(sorted_list_response(
        page,
        &req,
        |t| {
            let key = match field {
                "priority" => KeyValue::Int(i64::from(t.priority_rank)),
                _ => KeyValue::Time(agentry_store::due_at_key(t)),
            };
            (t.id, Some(key))
        },
        TaskView::from,
    )))
}

#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TaskView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "task")?;
    Ok(axum::Json(state.services.get_task(&ctx, id).await?.into()))
}

/// Change a task; fields left out stay as they are.
#[utoipa::path(method(patch, put), path = "/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    request_body = TaskRequest,
    responses((status = 200, body = TaskView), (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<TaskRequest>,
) -> ApiResult<axum::Json<TaskView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "task")?;
    Ok(axum::Json(
        state
            .services
            .update_task(&ctx, id, req.into())
            .await?
            .into(),
    ))
}

/// Delete a task and cancel its unfinished executions; the executions stay readable.
#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn delete_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "task")?;
    state.services.delete_task(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskAssignRequest {
    pub agent_id: Uuid,
    /// Start an execution now (unless the agent is `manual`). Default `false`.
    #[serde(default)]
    pub run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignResponse {
    pub task: TaskView,
    /// The execution started, when `run` was asked for and the agent is not `manual`.
    pub execution: Option<ExecutionView>,
}

/// Assign the task to an agent; with `run`, start an execution of it.
#[utoipa::path(post, path = "/tasks/{id}/assign", tag = "tasks", params(("id" = String, Path)),
    request_body = TaskAssignRequest,
    responses((status = 200, body = AssignResponse), (status = 404, body = ErrorResponse),
              (status = 409, description = "invalid_state: the agent is not active", body = ErrorResponse),
              (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn assign_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<TaskAssignRequest>,
) -> ApiResult<axum::Json<AssignResponse>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "task")?;
    let (task, execution) = state
        .services
        .assign_task(&ctx, id, req.agent_id, req.run)
        .await?;
    Ok(axum::Json(AssignResponse {
        task: task.into(),
        execution: execution.map(Into::into),
    }))
}

/// Cancel the task and its running execution.
#[utoipa::path(post, path = "/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorResponse),
              (status = 409, description = "invalid_state: already finished", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn cancel_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TaskView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "task")?;
    Ok(axum::Json(
        state.services.cancel_task(&ctx, id).await?.into(),
    ))
}
