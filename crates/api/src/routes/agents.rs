//! `/agents`: what runs. Writes: member+.

use agentry_core::cursor::{KeyKind, KeyValue};
use agentry_services::agents::{AgentAction, AgentInput, STATUSES, TYPES};
use agentry_store::{AgentFilter, LogFilter};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Json, Query, path_id, present};
use crate::list::{
    CREATED_AT, SortField, list_response, page_request, sorted_list_response, sorted_page,
};
use crate::routes::{created, one_of};
use crate::run_views::{AgentLogView, AgentStatsView, AgentVersionView, AgentView, ExecutionView};
use crate::state::AppState;
use crate::views::{ErrorResponse, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_agent, list_agents))
        .routes(routes!(get_agent, update_agent, delete_agent))
        .routes(routes!(start_agent))
        .routes(routes!(stop_agent))
        .routes(routes!(pause_agent))
        .routes(routes!(agent_versions))
        .routes(routes!(agent_version))
        .routes(routes!(test_agent))
        .routes(routes!(agent_logs))
        .routes(routes!(agent_stats))
}

/// An agent to create, or the fields to change (left out: unchanged; `null` clears a nullable
/// field).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `custom` (default), `assistant`, `automation`, `analysis` or `orchestrator`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `active` (default), `inactive`, `paused`, `error` or `archived`.
    pub status: Option<String>,
    /// `autonomous` (default), `supervised` or `manual`.
    pub autonomy: Option<String>,
    pub framework: Option<String>,
    /// A provider of this org, needed to run (an `echo` provider answers locally).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub provider_id: Option<Value>,
    /// The model; the provider's `default_model` when `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Value>,
    /// `[{provider_id, model}]`, tried in order when the primary fails after its retries.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub fallbacks: Option<Value>,
    /// The system instructions.
    pub instructions: Option<String>,
    /// 0 to 2.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub temperature: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_output_tokens: Option<Value>,
    /// How many tokens of conversation history a reply may send (estimated at four characters
    /// a token); the oldest messages are left out first, the instructions always kept.
    /// Default 16000.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_context_tokens: Option<Value>,
    /// Tool declarations: `{"type":"builtin","name":…}`, `{"type":"http",…}`, `{"type":"mcp",…}`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// 0 to 10, default 2.
    pub max_retries: Option<i64>,
    /// 1 to 3600, default 300.
    pub timeout_seconds: Option<i64>,
    /// 1 to 100, default 20: calls to the model in one execution.
    pub max_steps: Option<i64>,
    /// A JSON Schema (type object) the answer must match (structured output); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
}

impl From<AgentRequest> for AgentInput {
    fn from(r: AgentRequest) -> Self {
        AgentInput {
            name: r.name,
            description: r.description,
            kind: r.kind,
            status: r.status,
            autonomy: r.autonomy,
            framework: r.framework,
            provider_id: r.provider_id,
            model: r.model,
            fallbacks: r.fallbacks,
            instructions: r.instructions,
            temperature: r.temperature,
            max_output_tokens: r.max_output_tokens,
            max_context_tokens: r.max_context_tokens,
            tools: r.tools,
            config: r.config,
            max_retries: r.max_retries,
            timeout_seconds: r.timeout_seconds,
            max_steps: r.max_steps,
            output_schema: r.output_schema,
        }
    }
}

/// Create an agent (version 1).
#[utoipa::path(post, path = "/agents", tag = "agents", request_body = AgentRequest,
    responses((status = 201, body = AgentView), (status = 403, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<AgentRequest>,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    let a = state.services.create_agent(&ctx, req.into()).await?;
    Ok(created(
        format!("/api/v1/agents/{}", a.id),
        AgentView::from(a),
    ))
}

const AGENT_SORTS: &[SortField] = &[
    CREATED_AT,
    ("name", Some(KeyKind::Text)),
    ("updated_at", Some(KeyKind::Time)),
];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgentQuery {
    /// `active`, `inactive`, `paused`, `error` or `archived`.
    #[param(pattern = "^(active|inactive|paused|error|archived)$")]
    pub status: Option<String>,
    /// `custom`, `assistant`, `automation`, `analysis` or `orchestrator`.
    #[serde(rename = "type")]
    #[param(
        rename = "type",
        pattern = "^(custom|assistant|automation|analysis|orchestrator)$"
    )]
    pub kind: Option<String>,
    /// Words in the name or description (case-insensitive).
    pub q: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// `created_at` (default), `name` or `updated_at`; `-` in front for descending.
    #[param(pattern = "^-?(created_at|name|updated_at)$")]
    pub sort: Option<String>,
}

/// The org's agents (deleted ones are hidden).
#[utoipa::path(get, path = "/agents", tag = "agents", params(AgentQuery),
    responses((status = 200, body = ListResponse<AgentView>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_agents(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<AgentQuery>,
) -> ApiResult<axum::Json<ListResponse<AgentView>>> {
    let ctx = p.org_ctx()?;
    let req = sorted_page(
        q.limit.as_deref(),
        q.cursor.as_deref(),
        q.sort.as_deref(),
        false,
        AGENT_SORTS,
    )?;
    if q.q.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::field("q", "must be at most 200 characters"));
    }
    let filter = AgentFilter {
        status: one_of("status", q.status, STATUSES)?,
        kind: one_of("type", q.kind, TYPES)?,
        q: q.q.filter(|s| !s.trim().is_empty()),
    };
    let page = state
        .services
        .list_agents(&ctx, &filter, req.page, &req.sort)
        .await?;
    let field = req.sort.field;
    Ok(axum::Json(sorted_list_response(
        page,
        &req,
        |a| {
            let key = match field {
                "name" => KeyValue::Text(a.name.clone()),
                _ => KeyValue::Time(a.updated_at),
            };
            (a.id, Some(key))
        },
        AgentView::from,
    )))
}

#[utoipa::path(get, path = "/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AgentView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "agent")?;
    Ok(axum::Json(state.services.get_agent(&ctx, id).await?.into()))
}

/// Change an agent; fields left out stay as they are. A change to what it does bumps `version`.
#[utoipa::path(method(patch, put), path = "/agents/{id}", tag = "agents", params(("id" = String, Path)),
    request_body = AgentRequest,
    responses((status = 200, body = AgentView), (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<AgentRequest>,
) -> ApiResult<axum::Json<AgentView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "agent")?;
    Ok(axum::Json(
        state
            .services
            .update_agent(&ctx, id, req.into())
            .await?
            .into(),
    ))
}

/// Hide an agent and cancel its unfinished executions; its executions, logs and events stay
/// readable.
#[utoipa::path(delete, path = "/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn delete_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "agent")?;
    state.services.delete_agent(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_state(
    state: &AppState,
    p: agentry_services::Principal,
    id: &str,
    action: AgentAction,
) -> ApiResult<axum::Json<AgentView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(id, "agent")?;
    Ok(axum::Json(
        state
            .services
            .set_agent_state(&ctx, id, action)
            .await?
            .into(),
    ))
}

/// Make the agent `active`: it runs executions, including ones queued while it was paused.
#[utoipa::path(post, path = "/agents/{id}/start", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn start_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AgentView>> {
    set_state(&state, p, &id, AgentAction::Start).await
}

/// Make the agent `inactive` and cancel its unfinished executions.
#[utoipa::path(post, path = "/agents/{id}/stop", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn stop_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AgentView>> {
    set_state(&state, p, &id, AgentAction::Stop).await
}

/// Make the agent `paused`: new and queued executions wait until it starts again.
#[utoipa::path(post, path = "/agents/{id}/pause", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn pause_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AgentView>> {
    set_state(&state, p, &id, AgentAction::Pause).await
}

/// Every version of the agent, newest first.
#[utoipa::path(get, path = "/agents/{id}/versions", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = ListResponse<AgentVersionView>), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn agent_versions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ListResponse<AgentVersionView>>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "agent")?;
    let versions = state.services.agent_versions(&ctx, id).await?;
    Ok(axum::Json(ListResponse {
        data: versions.into_iter().map(AgentVersionView::from).collect(),
        next_cursor: None,
    }))
}

/// What the agent was at version `n`.
#[utoipa::path(get, path = "/agents/{id}/versions/{n}", tag = "agents",
    params(("id" = String, Path), ("n" = i32, Path)),
    responses((status = 200, body = AgentVersionView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn agent_version(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, n)): Path<(String, String)>,
) -> ApiResult<axum::Json<AgentVersionView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "agent")?;
    let n: i32 = n
        .parse()
        .map_err(|_| ApiError::not_found("agent version not found"))?;
    Ok(axum::Json(
        state.services.agent_version(&ctx, id, n).await?.into(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestAgentRequest {
    /// What to run the agent on: a string, or an object such as `{"message": "…"}`.
    #[schema(value_type = agentry_services::views::StringOrObject)]
    pub input: Value,
}

/// Run the agent once and answer with the finished execution, or with the execution as it
/// stands after 60 seconds; follow it by its id. A paused or stopped agent is `409`.
#[utoipa::path(post, path = "/agents/{id}/test", tag = "agents", params(("id" = String, Path)),
    request_body = TestAgentRequest,
    responses((status = 200, body = ExecutionView), (status = 404, body = ErrorResponse),
              (status = 409, description = "invalid_state: the agent is paused or not active", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn test_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<TestAgentRequest>,
) -> ApiResult<axum::Json<ExecutionView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "agent")?;
    crate::routes::executions::check_input(&req.input)?;
    Ok(axum::Json(
        state.services.test_agent(&ctx, id, req.input).await?.into(),
    ))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// `debug`, `info`, `warning` or `error`.
    #[param(pattern = "^(debug|info|warning|error)$")]
    pub level: Option<String>,
    /// Lines at or after this time.
    pub since: Option<DateTime<Utc>>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// `created_at` or `-created_at` (the default: newest first).
    #[param(pattern = "^-?created_at$")]
    pub sort: Option<String>,
}

/// The agent's log lines: one per step and per error.
#[utoipa::path(get, path = "/agents/{id}/logs", tag = "agents", params(("id" = String, Path), LogQuery),
    responses((status = 200, body = ListResponse<AgentLogView>), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn agent_logs(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<axum::Json<ListResponse<AgentLogView>>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "agent")?;
    let req = page_request(
        q.limit.as_deref(),
        q.cursor.as_deref(),
        q.sort.as_deref(),
        true,
    )?;
    let filter = LogFilter {
        level: one_of("level", q.level, &["debug", "info", "warning", "error"])?,
        since: q.since,
    };
    let page = state.services.agent_logs(&ctx, id, &filter, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |l| l.id,
        AgentLogView::from,
    )))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Executions created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Executions created before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Executions by status, success rate, p50 and p95 duration, tokens and cost.
#[utoipa::path(get, path = "/agents/{id}/stats", tag = "agents", params(("id" = String, Path), StatsQuery),
    responses((status = 200, body = AgentStatsView), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn agent_stats(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<axum::Json<AgentStatsView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "agent")?;
    let s = state
        .services
        .agent_stats(&ctx, id, q.since, q.until)
        .await?;
    Ok(axum::Json(AgentStatsView::new(id, q.since, q.until, s)))
}
