//! `/providers`: an org's LLM connections (writes: admin+). Credentials go in and never come
//! back out.

use std::collections::BTreeMap;

use agentry_providers::Price;
use agentry_services::providers::ProviderInput;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{Auth, Json, OptionalJson, Query, nullable, path_id};
use crate::list::{ListParams, list_response};
use crate::routes::created;
use crate::run_views::{ProviderTestView, ProviderView};
use crate::state::AppState;
use crate::views::{ErrorResponse, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_provider, list_providers))
        .routes(routes!(get_provider, update_provider, delete_provider))
        .routes(routes!(test_provider))
}

/// A provider to create, or the fields to change. `null` (or `""`) clears `base_url`,
/// `api_key` and `default_model`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderRequest {
    pub name: Option<String>,
    /// `openai`, `anthropic` or `echo`; fixed once created.
    pub kind: Option<String>,
    /// The API root as the vendor's SDK takes it: `https://api.openai.com/v1` (any
    /// OpenAI-compatible server: Ollama, vLLM, llama.cpp, OpenRouter…) or
    /// `https://api.anthropic.com`. Left out: the vendor's own.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub base_url: Option<Option<String>>,
    /// Stored encrypted; never returned.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub default_model: Option<Option<String>>,
    /// Extra headers sent with each call (stored encrypted; only their names are returned).
    pub headers: Option<BTreeMap<String, String>>,
    /// `{"<model>": {"input": µUSD per 1M tokens, "cached_input": …, "output": …}}`.
    #[schema(value_type = Option<Object>)]
    pub prices: Option<BTreeMap<String, Price>>,
}

impl From<ProviderRequest> for ProviderInput {
    fn from(r: ProviderRequest) -> Self {
        let clearable = |v: Option<Option<String>>| v.map(Option::unwrap_or_default);
        ProviderInput {
            name: r.name,
            kind: r.kind,
            base_url: clearable(r.base_url),
            api_key: clearable(r.api_key),
            default_model: clearable(r.default_model),
            headers: r.headers,
            prices: r.prices,
        }
    }
}

/// Add a provider.
#[utoipa::path(post, path = "/providers", tag = "providers", request_body = ProviderRequest,
    responses((status = 201, body = ProviderView), (status = 403, body = ErrorResponse),
              (status = 409, description = "provider_name_taken", body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_provider(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<ProviderRequest>,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    let prov = state.services.create_provider(&ctx, req.into()).await?;
    Ok(created(
        format!("/api/v1/providers/{}", prov.id),
        ProviderView::from(prov),
    ))
}

/// The org's providers.
#[utoipa::path(get, path = "/providers", tag = "providers", params(ListParams),
    responses((status = 200, body = ListResponse<ProviderView>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_providers(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<ProviderView>>> {
    let ctx = p.org_ctx()?;
    let req = q.page(false)?;
    let page = state.services.list_providers(&ctx, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |p| p.id,
        ProviderView::from,
    )))
}

#[utoipa::path(get, path = "/providers/{id}", tag = "providers", params(("id" = String, Path)),
    responses((status = 200, body = ProviderView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_provider(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ProviderView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "provider")?;
    Ok(axum::Json(
        state.services.get_provider(&ctx, id).await?.into(),
    ))
}

/// Change a provider; fields left out stay as they are.
#[utoipa::path(method(patch, put), path = "/providers/{id}", tag = "providers", params(("id" = String, Path)),
    request_body = ProviderRequest,
    responses((status = 200, body = ProviderView), (status = 404, body = ErrorResponse),
              (status = 409, description = "provider_name_taken", body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_provider(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<ProviderRequest>,
) -> ApiResult<axum::Json<ProviderView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "provider")?;
    Ok(axum::Json(
        state
            .services
            .update_provider(&ctx, id, req.into())
            .await?
            .into(),
    ))
}

/// Remove a provider. Refused with `409 provider_in_use` while agents use it.
#[utoipa::path(delete, path = "/providers/{id}", tag = "providers", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_provider(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "provider")?;
    state.services.delete_provider(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderTestRequest {
    /// The model to try; the provider's `default_model` when left out.
    pub model: Option<String>,
}

/// Make one tiny real call (a few output tokens) and report whether it worked.
#[utoipa::path(post, path = "/providers/{id}/test", tag = "providers", params(("id" = String, Path)),
    request_body(content = Option<ProviderTestRequest>),
    responses((status = 200, body = ProviderTestView), (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn test_provider(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<ProviderTestRequest>,
) -> ApiResult<axum::Json<ProviderTestView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "provider")?;
    let t = state.services.test_provider(&ctx, id, req.model).await?;
    Ok(axum::Json(ProviderTestView {
        ok: t.ok,
        latency_ms: t.latency_ms,
        model: t.model,
        error: t.error,
    }))
}
