//! `/api-keys`: credentials for programs, in the caller's org (admin+).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{Auth, Json, Query, path_id};
use crate::list::{ListParams, list_response};
use crate::routes::created;
use crate::state::AppState;
use crate::views::{ApiKeyView, ErrorResponse, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(get_key, revoke_key))
        .routes(routes!(rotate_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// `viewer`, `member`, `admin` or `owner`; no higher than your own.
    pub role: String,
    /// When the key stops working; never when left out.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Create a key. The secret `key` is in this response only.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    responses((status = 201, body = ApiKeyView), (status = 403, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_key(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<CreateApiKeyRequest>,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    let (key, secret) = state
        .services
        .create_api_key(&ctx, &req.name, &req.role, req.expires_at)
        .await?;
    Ok(created(
        format!("/api/v1/api-keys/{}", key.id),
        ApiKeyView::new(key, Some(secret)),
    ))
}

/// The org's keys, revoked ones included.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", params(ListParams),
    responses((status = 200, body = ListResponse<ApiKeyView>)), security(("bearer" = [])))]
async fn list_keys(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<ApiKeyView>>> {
    let ctx = p.org_ctx()?;
    let req = q.page(false)?;
    let page = state.services.list_api_keys(&ctx, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |k| k.id,
        |k| ApiKeyView::new(k, None),
    )))
}

#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_key(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ApiKeyView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "API key")?;
    Ok(axum::Json(ApiKeyView::new(
        state.services.get_api_key(&ctx, id).await?,
        None,
    )))
}

/// Revoke a key; it is refused from its next request.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn revoke_key(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "API key")?;
    state.services.revoke_api_key(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a key a new secret; the old secret stops working at once.
#[utoipa::path(post, path = "/api-keys/{id}/rotate", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn rotate_key(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ApiKeyView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "API key")?;
    let (key, secret) = state.services.rotate_api_key(&ctx, id).await?;
    Ok(axum::Json(ApiKeyView::new(key, Some(secret))))
}
