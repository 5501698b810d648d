//! `/conversations`: threads of messages with an agent. Each user message starts a reply (an
//! execution); with `Accept: text/event-stream` the reply streams back on the same request.
//! Reads: any member; writes: member+.

use agentry_services::conversations::{ConversationInput, MessageInput, STATUSES};
use agentry_services::views::{ConversationView, MessageView};
use agentry_store::ConversationFilter;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Json, JsonBytes, Query, parse_json, path_id};
use crate::list::{list_response, page_request};
use crate::routes::{created, idempotent, one_of};
use crate::state::AppState;
use crate::views::{ErrorResponse, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_conversation, list_conversations))
        .routes(routes!(get_conversation, delete_conversation))
        .routes(routes!(assign_conversation))
        .routes(routes!(close_conversation))
        .routes(routes!(post_message, list_messages))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationRequest {
    pub agent_id: Uuid,
    /// Up to 500 characters.
    pub title: Option<String>,
    /// `reject`, `enqueue` (default) or `interrupt`: what a message does while a reply is in
    /// progress.
    pub multitask_strategy: Option<String>,
}

/// Start a conversation with an agent.
#[utoipa::path(post, path = "/conversations", tag = "conversations", request_body = CreateConversationRequest,
    responses((status = 201, body = ConversationView), (status = 403, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_conversation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<CreateConversationRequest>,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    let c = state
        .services
        .create_conversation(
            &ctx,
            ConversationInput {
                agent_id: req.agent_id,
                title: req.title,
                multitask_strategy: req.multitask_strategy,
            },
        )
        .await?;
    Ok(created(
        format!("/api/v1/conversations/{}", c.id),
        ConversationView::from(c),
    ))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    pub agent_id: Option<Uuid>,
    /// `open` or `closed`.
    #[param(pattern = "^(open|closed)$")]
    pub status: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// `created_at` or `-created_at` (default, newest first).
    #[param(pattern = "^-?created_at$")]
    pub sort: Option<String>,
}

#[utoipa::path(get, path = "/conversations", tag = "conversations", params(ConversationQuery),
    responses((status = 200, body = ListResponse<ConversationView>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_conversations(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ConversationQuery>,
) -> ApiResult<axum::Json<ListResponse<ConversationView>>> {
    let ctx = p.org_ctx()?;
    let req = page_request(
        q.limit.as_deref(),
        q.cursor.as_deref(),
        q.sort.as_deref(),
        true,
    )?;
    let filter = ConversationFilter {
        agent_id: q.agent_id,
        status: one_of("status", q.status, STATUSES)?,
    };
    let page = state
        .services
        .list_conversations(&ctx, &filter, req)
        .await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |c| c.id,
        ConversationView::from,
    )))
}

#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_conversation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ConversationView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "conversation")?;
    Ok(axum::Json(
        state.services.get_conversation(&ctx, id).await?.into(),
    ))
}

/// Delete a conversation and its messages; a reply in progress is cancelled. Its executions
/// stay readable.
#[utoipa::path(delete, path = "/conversations/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_conversation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "conversation")?;
    state.services.delete_conversation(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationAssignRequest {
    pub agent_id: Uuid,
}

/// Hand the conversation to another agent of the org; later replies are that agent's.
#[utoipa::path(put, path = "/conversations/{id}/assign", tag = "conversations", params(("id" = String, Path)),
    request_body = ConversationAssignRequest,
    responses((status = 200, body = ConversationView), (status = 403, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn assign_conversation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<ConversationAssignRequest>,
) -> ApiResult<axum::Json<ConversationView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "conversation")?;
    let c = state
        .services
        .assign_conversation(&ctx, id, req.agent_id)
        .await?;
    Ok(axum::Json(c.into()))
}

/// Close the conversation: it takes no new messages (`409`). A reply in progress finishes.
#[utoipa::path(put, path = "/conversations/{id}/close", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn close_conversation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ConversationView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "conversation")?;
    Ok(axum::Json(
        state.services.close_conversation(&ctx, id).await?.into(),
    ))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// Messages after this message id (oldest first).
    pub after: Option<Uuid>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

/// The conversation's messages, oldest first. `next_cursor` is the last message's id when more
/// may follow: pass it as `after`.
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "conversations", params(("id" = String, Path), MessageQuery),
    responses((status = 200, body = ListResponse<MessageView>), (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_messages(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<MessageQuery>,
) -> ApiResult<axum::Json<ListResponse<MessageView>>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "conversation")?;
    let limit = page_request(q.limit.as_deref(), None, None, false)?.limit;
    let msgs = state
        .services
        .list_messages(&ctx, id, q.after, limit)
        .await?;
    let next_cursor = (msgs.len() == limit as usize)
        .then(|| msgs.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(axum::Json(ListResponse {
        data: msgs.into_iter().map(MessageView::from).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessageRequest {
    /// The user's message, up to 100,000 characters.
    pub content: String,
    /// An id of the client's own for the message, echoed back on it.
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PostMessageResponse {
    pub message: MessageView,
    /// The reply's execution: follow it at `/executions/{id}/stream`.
    pub execution_id: Uuid,
}

/// Send a message: it is stored and the agent's reply starts, with the conversation's history
/// as its context. `202 {message, execution_id}`; with `Accept: text/event-stream`, the reply's
/// execution stream instead (`200`). While a reply is in progress: `reject` → `409
/// conversation_busy`, `enqueue` → answered in order, `interrupt` → the reply in progress is
/// cancelled. A closed conversation is `409 invalid_state`. Takes an `Idempotency-Key`.
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "conversations", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = PostMessageRequest,
    responses((status = 202, body = PostMessageResponse),
              (status = 200, description = "With `Accept: text/event-stream`: the reply's events", content_type = "text/event-stream", body = String),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, description = "conversation_busy, invalid_state, idempotency_key_reused", body = ErrorResponse),
              (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn post_message(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "conversation")?;
    let mut execution = None;
    let res = idempotent(
        &state,
        &ctx,
        &headers,
        &format!("POST /conversations/{id}/messages"),
        &body,
        async || {
            let req: PostMessageRequest = parse_json(&body)?;
            let (m, e) = state
                .services
                .post_message(
                    &ctx,
                    id,
                    MessageInput {
                        content: req.content,
                        client_msg_id: req.client_msg_id,
                    },
                )
                .await?;
            execution = Some(e.id);
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(PostMessageResponse {
                    message: m.into(),
                    execution_id: e.id,
                }),
            )
                .into_response())
        },
    )
    .await?;
    if !crate::sse::wants_stream(&headers) {
        return Ok(res);
    }
    // A replayed request streams the first request's reply.
    let eid = match execution {
        Some(e) => e,
        None => replayed_execution(res).await?,
    };
    crate::sse::execution_stream(&state, &ctx, eid, 0).await
}

async fn replayed_execution(res: Response) -> ApiResult<Uuid> {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .map_err(|_| ApiError::internal())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::internal())?;
    v["execution_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(ApiError::internal)
}
