//! `/orgs`: the organizations the caller belongs to.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{Auth, Json, Query, path_id};
use crate::list::{ListParams, list_response};
use crate::routes::created;
use crate::state::AppState;
use crate::views::{ErrorResponse, ListResponse, OrgView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org, list_orgs))
        .routes(routes!(get_org, update_org, delete_org))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    pub name: String,
    /// Lowercase letters, digits and hyphens; derived from the name when left out.
    pub slug: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    pub name: Option<String>,
    pub slug: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

/// Create an organization; you become its owner.
#[utoipa::path(post, path = "/orgs", tag = "orgs", request_body = CreateOrgRequest,
    responses((status = 201, body = OrgView), (status = 409, description = "slug_taken", body = ErrorResponse),
              (status = 422, body = ErrorResponse)), security(("bearer" = [])))]
async fn create_org(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<CreateOrgRequest>,
) -> ApiResult<Response> {
    let org = state
        .services
        .create_org(&p, &req.name, req.slug.as_deref())
        .await?;
    Ok(created(
        format!("/api/v1/orgs/{}", org.org.id),
        OrgView::from(org),
    ))
}

/// The organizations you belong to (for an API key, its own).
#[utoipa::path(get, path = "/orgs", tag = "orgs", params(ListParams),
    responses((status = 200, body = ListResponse<OrgView>)), security(("bearer" = [])))]
async fn list_orgs(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<OrgView>>> {
    let req = q.page(false)?;
    let page = state.services.list_orgs(&p, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |o| o.org.id,
        OrgView::from,
    )))
}

#[utoipa::path(get, path = "/orgs/{id}", tag = "orgs", params(("id" = String, Path)),
    responses((status = 200, body = OrgView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_org(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrgView>> {
    let id = path_id(&id, "organization")?;
    Ok(axum::Json(state.services.get_org(&p, id).await?.into()))
}

/// Rename the organization or change its slug or settings (admin+).
#[utoipa::path(method(patch, put), path = "/orgs/{id}", tag = "orgs", params(("id" = String, Path)), request_body = UpdateOrgRequest,
    responses((status = 200, body = OrgView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, description = "slug_taken", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_org(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<UpdateOrgRequest>,
) -> ApiResult<axum::Json<OrgView>> {
    let id = path_id(&id, "organization")?;
    let org = state
        .services
        .update_org(
            &p,
            id,
            req.name.as_deref(),
            req.slug.as_deref(),
            req.settings.as_ref(),
        )
        .await?;
    Ok(axum::Json(org.into()))
}

/// Delete the organization and all of its data (owner).
#[utoipa::path(delete, path = "/orgs/{id}", tag = "orgs", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn delete_org(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "organization")?;
    state.services.delete_org(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
