//! `/admin`: the instance's users, orgs and events, for platform admins.

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{Auth, Json, Query, path_id};
use crate::list::{ListParams, list_response};
use crate::routes::events::EventQuery;
use crate::state::AppState;
use crate::views::{ErrorResponse, EventView, ListResponse, OrgView, UserView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(update_user))
        .routes(routes!(list_orgs))
        .routes(routes!(list_events))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUpdateUserRequest {
    /// A disabled user's tokens stop working at once.
    pub disabled: Option<bool>,
    pub platform_admin: Option<bool>,
}

#[utoipa::path(get, path = "/admin/users", tag = "admin", params(ListParams),
    responses((status = 200, body = ListResponse<UserView>), (status = 403, body = ErrorResponse)), security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<UserView>>> {
    let req = q.page(false)?;
    let page = state.services.admin_list_users(&p, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |u| u.id,
        UserView::from,
    )))
}

#[utoipa::path(method(patch, put), path = "/admin/users/{id}", tag = "admin", params(("id" = String, Path)),
    request_body = AdminUpdateUserRequest,
    responses((status = 200, body = UserView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, description = "invalid_state: you cannot disable yourself or drop your own platform admin role", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_user(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<AdminUpdateUserRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let id = path_id(&id, "user")?;
    Ok(axum::Json(
        state
            .services
            .admin_update_user(&p, id, req.disabled, req.platform_admin)
            .await?
            .into(),
    ))
}

#[utoipa::path(get, path = "/admin/orgs", tag = "admin", params(ListParams),
    responses((status = 200, body = ListResponse<OrgView>), (status = 403, body = ErrorResponse)), security(("bearer" = [])))]
async fn list_orgs(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<OrgView>>> {
    let req = q.page(false)?;
    let page = state.services.admin_list_orgs(&p, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |o| o.id,
        |o| OrgView::new(o, None),
    )))
}

/// Every event of the instance, including those of no org (failed logins for unknown
/// emails, deleted orgs).
#[utoipa::path(get, path = "/admin/events", tag = "admin", params(EventQuery),
    responses((status = 200, body = ListResponse<EventView>), (status = 403, body = ErrorResponse)), security(("bearer" = [])))]
async fn list_events(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<EventQuery>,
) -> ApiResult<axum::Json<ListResponse<EventView>>> {
    let req = q.page()?;
    let page = state
        .services
        .admin_list_events(&p, &q.filter()?, req)
        .await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |e| e.id,
        EventView::from,
    )))
}
