//! `/executions`: runs of agents. Created `pending`, run by the runtime. Writes: member+.

use std::time::Duration;

use agentry_core::cursor::{KeyKind, KeyValue};
use agentry_services::executions::ExecutionInput;
use agentry_store::ExecutionFilter;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, JsonBytes, Query, parse_json, path_id};
use crate::list::{CREATED_AT, SortField, sorted_list_response, sorted_page};
use crate::routes::{idempotent, one_of};
use crate::run_views::{ExecutionView, StepView};
use crate::state::AppState;
use crate::views::{ErrorResponse, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_execution, list_executions))
        .routes(routes!(get_execution))
        .routes(routes!(cancel_execution))
        .routes(routes!(execution_steps))
        .routes(routes!(execution_stream))
        .routes(routes!(decide_approval))
}

/// An answer to a supervised agent's tool call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// `true` runs the call; `false` tells the model it was refused.
    pub approve: bool,
    /// Why (told to the model on a refusal); at most 4000 characters.
    pub comment: Option<String>,
}

/// The approval step as decided, and the execution (back to `pending` once every call of the
/// turn is answered).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ApprovalResponse {
    pub step: StepView,
    pub execution: ExecutionView,
}

#[utoipa::path(post, path = "/executions/{id}/approvals/{step_id}", tag = "executions",
    params(("id" = String, Path), ("step_id" = String, Path)), request_body = ApprovalRequest,
    responses((status = 200, body = ApprovalResponse), (status = 404, body = ErrorResponse),
              (status = 409, description = "invalid_state: already answered or expired", body = ErrorResponse),
              (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn decide_approval(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, step_id)): Path<(String, String)>,
    JsonBytes(body): JsonBytes,
) -> ApiResult<axum::Json<ApprovalResponse>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "execution")?;
    let step_id = path_id(&step_id, "approval")?;
    let r: ApprovalRequest = parse_json(&body)?;
    let (step, e) = state
        .services
        .decide_approval(&ctx, id, step_id, r.approve, r.comment)
        .await?;
    Ok(axum::Json(ApprovalResponse {
        step: step.into(),
        execution: e.into(),
    }))
}

pub const STATUSES: &[&str] = &[
    "pending",
    "running",
    "awaiting_approval",
    "success",
    "failed",
    "timeout",
    "cancelled",
];

/// The longest `?wait=` accepted, in seconds.
const MAX_WAIT: u64 = 300;

/// The largest input an execution takes.
const MAX_INPUT: usize = 256 * 1024;

/// Refuses an input that is not a string or an object, or that is too large.
pub fn check_input(input: &Value) -> Result<(), ApiError> {
    if !(input.is_string() || input.is_object()) {
        return Err(ApiError::field("input", "must be a string or an object"));
    }
    if input.to_string().len() > MAX_INPUT {
        return Err(ApiError::field("input", "must be at most 256 KiB"));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExecutionRequest {
    pub agent_id: Uuid,
    /// A string, or an object such as `{"message": "…"}`.
    #[schema(value_type = agentry_services::views::StringOrObject)]
    pub input: Value,
    /// The task this execution works on: the task follows its status and output.
    pub task_id: Option<Uuid>,
    /// 1 to 3600; the agent's `timeout_seconds` when left out.
    pub timeout_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// Wait up to this many seconds (0 to 300) for the execution to finish.
    #[param(minimum = 0, maximum = 300)]
    pub wait: Option<u64>,
}

/// Queue an execution. `202` with the pending execution; with `?wait=N`, `200` with the
/// finished one if it finished within N seconds. Takes an `Idempotency-Key` header.
#[utoipa::path(post, path = "/executions", tag = "executions", request_body = CreateExecutionRequest,
    params(CreateQuery, ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 202, body = ExecutionView), (status = 200, description = "Finished within `wait`", body = ExecutionView),
              (status = 403, body = ErrorResponse),
              (status = 409, description = "invalid_state (agent not active), idempotency_key_reused", body = ErrorResponse),
              (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_execution(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    let wait = match q.wait {
        Some(w) if w > MAX_WAIT => {
            return Err(ApiError::field("wait", "must be from 0 to 300 seconds"));
        }
        w => w.unwrap_or(0),
    };
    idempotent(
        &state,
        &ctx,
        &headers,
        "POST /executions",
        &body,
        async || {
            let req: CreateExecutionRequest = parse_json(&body)?;
            check_input(&req.input)?;
            let mut e = state
                .services
                .create_execution(
                    &ctx,
                    ExecutionInput {
                        agent_id: req.agent_id,
                        input: req.input,
                        task_id: req.task_id,
                        timeout_seconds: req.timeout_seconds,
                        conversation_id: None,
                    },
                )
                .await?;
            if wait > 0 {
                e = state
                    .services
                    .wait_for_execution(&ctx, e.id, Duration::from_secs(wait))
                    .await?;
            }
            let status = if e.is_finished() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            let location = format!("/api/v1/executions/{}", e.id);
            let mut res = (status, axum::Json(ExecutionView::from(e))).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            Ok(res)
        },
    )
    .await
}

const EXECUTION_SORTS: &[SortField] = &[
    CREATED_AT,
    ("duration_ms", Some(KeyKind::Int)),
    ("cost_micros", Some(KeyKind::Int)),
];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExecutionQuery {
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    /// `pending`, `running`, `awaiting_approval`, `success`, `failed`, `timeout` or `cancelled`.
    #[param(pattern = "^(pending|running|awaiting_approval|success|failed|timeout|cancelled)$")]
    pub status: Option<String>,
    /// Created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Created before this time.
    pub until: Option<DateTime<Utc>>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// `created_at`, `duration_ms` or `cost_micros` (unknown values first); `-` in front for
    /// descending. Default `-created_at` (newest first).
    #[param(pattern = "^-?(created_at|duration_ms|cost_micros)$")]
    pub sort: Option<String>,
}

#[utoipa::path(get, path = "/executions", tag = "executions", params(ExecutionQuery),
    responses((status = 200, body = ListResponse<ExecutionView>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_executions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ExecutionQuery>,
) -> ApiResult<axum::Json<ListResponse<ExecutionView>>> {
    let ctx = p.org_ctx()?;
    let req = sorted_page(
        q.limit.as_deref(),
        q.cursor.as_deref(),
        q.sort.as_deref(),
        true,
        EXECUTION_SORTS,
    )?;
    let filter = ExecutionFilter {
        agent_id: q.agent_id,
        task_id: q.task_id,
        status: one_of("status", q.status, STATUSES)?,
        since: q.since,
        until: q.until,
    };
    let page = state
        .services
        .list_executions(&ctx, &filter, req.page, &req.sort)
        .await?;
    let field = req.sort.field;
    Ok(axum::Json(sorted_list_response(
        page,
        &req,
        |e| {
            let v = match field {
                "duration_ms" => e.duration_ms,
                _ => e.cost_micros,
            };
            (e.id, Some(KeyValue::Int(v.unwrap_or(-1))))
        },
        ExecutionView::from,
    )))
}

#[utoipa::path(get, path = "/executions/{id}", tag = "executions", params(("id" = String, Path)),
    responses((status = 200, body = ExecutionView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_execution(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ExecutionView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "execution")?;
    Ok(axum::Json(
        state.services.get_execution(&ctx, id).await?.into(),
    ))
}

/// Cancel an unfinished execution; a provider call in flight is dropped. `202`; one that has
/// already finished is `409 invalid_state`.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions", params(("id" = String, Path)),
    responses((status = 202, body = ExecutionView), (status = 404, body = ErrorResponse),
              (status = 409, description = "invalid_state: already finished", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn cancel_execution(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<ExecutionView>)> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "execution")?;
    let e = state.services.cancel_execution(&ctx, id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(e.into())))
}

/// The execution's step journal, in order: each LLM call (with every attempt), tool call and
/// approval.
#[utoipa::path(get, path = "/executions/{id}/steps", tag = "executions", params(("id" = String, Path)),
    responses((status = 200, body = ListResponse<StepView>), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn execution_steps(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ListResponse<StepView>>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "execution")?;
    let steps = state.services.execution_steps(&ctx, id).await?;
    Ok(axum::Json(ListResponse {
        data: steps.into_iter().map(StepView::from).collect(),
        next_cursor: None,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this sequence number (`Last-Event-ID` wins when both are given).
    #[param(value_type = Option<u64>)]
    pub after: Option<String>,
}

/// The execution's live events as server-sent events. Each has an `id` (its sequence number)
/// and a name: `status`, `step`, `delta` (`{text, step_index}`), `tool_call`, `tool_result`,
/// `approval_requested`, `usage`, `done` (the final execution). Replays what came after
/// `Last-Event-ID` or `?after=` (from the start without either), then goes live; ends after
/// `done`. A comment every 15 s keeps the connection open. A `step` event with status
/// `retrying` voids the text streamed so far by that step's call.
#[utoipa::path(get, path = "/executions/{id}/stream", tag = "executions",
    params(("id" = String, Path), StreamQuery,
           ("Last-Event-ID" = Option<u64>, Header, description = "The last sequence number received")),
    responses((status = 200, description = "`text/event-stream`", content_type = "text/event-stream", body = String),
              (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn execution_stream(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "execution")?;
    let after = crate::sse::resume_point(&headers, q.after.as_deref())?;
    crate::sse::execution_stream(&state, &ctx, id, after).await
}
