//! `/orgs/{id}/members` and invitations.

use agentry_services::members::Added;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{Auth, Json, Query, path_id};
use crate::list::{ListParams, list_response};
use crate::routes::created;
use crate::state::AppState;
use crate::views::{ErrorResponse, InvitationView, ListResponse, MemberView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(list_invitations))
        .routes(routes!(delete_invitation))
        .routes(routes!(accept_invitation))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    pub email: String,
    /// `viewer`, `member`, `admin` or `owner`.
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberRequest {
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    pub token: String,
}

/// Adding by email either adds an existing user or invites a new one.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddMemberResponse {
    /// `added` or `invited`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation: Option<InvitationView>,
}

#[utoipa::path(get, path = "/orgs/{id}/members", tag = "members", params(("id" = String, Path), ListParams),
    responses((status = 200, body = ListResponse<MemberView>), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn list_members(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<MemberView>>> {
    let org = path_id(&id, "organization")?;
    let req = q.page(false)?;
    let page = state.services.list_members(&p, org, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |m| m.user_id,
        MemberView::from,
    )))
}

/// Add a user by email, or invite them if they have no account (admin+).
#[utoipa::path(post, path = "/orgs/{id}/members", tag = "members", params(("id" = String, Path)), request_body = AddMemberRequest,
    responses((status = 201, body = AddMemberResponse), (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn add_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<AddMemberRequest>,
) -> ApiResult<Response> {
    let org = path_id(&id, "organization")?;
    Ok(
        match state
            .services
            .add_member(&p, org, &req.email, &req.role)
            .await?
        {
            Added::Member(m) => created(
                format!("/api/v1/orgs/{org}/members/{}", m.user_id),
                AddMemberResponse {
                    status: "added",
                    member: Some(m.into()),
                    invitation: None,
                },
            ),
            Added::Invited { invitation, token } => created(
                format!("/api/v1/orgs/{org}/invitations/{}", invitation.id),
                AddMemberResponse {
                    status: "invited",
                    member: None,
                    invitation: Some(InvitationView::new(invitation, Some(token))),
                },
            ),
        },
    )
}

/// Change a member's role (admin+; owners only by owners). The last owner cannot be demoted.
#[utoipa::path(method(patch, put), path = "/orgs/{id}/members/{user_id}", tag = "members",
    params(("id" = String, Path), ("user_id" = String, Path)), request_body = UpdateMemberRequest,
    responses((status = 200, body = MemberView), (status = 409, description = "last_owner", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, user_id)): Path<(String, String)>,
    Json(req): Json<UpdateMemberRequest>,
) -> ApiResult<axum::Json<MemberView>> {
    let org = path_id(&id, "organization")?;
    let user_id = path_id(&user_id, "member")?;
    Ok(axum::Json(
        state
            .services
            .update_member(&p, org, user_id, &req.role)
            .await?
            .into(),
    ))
}

/// Remove a member (admin+), or leave. The last owner cannot be removed.
#[utoipa::path(delete, path = "/orgs/{id}/members/{user_id}", tag = "members",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 409, description = "last_owner", body = ErrorResponse)), security(("bearer" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = path_id(&id, "organization")?;
    let user_id = path_id(&user_id, "member")?;
    state.services.remove_member(&p, org, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pending invitations (admin+).
#[utoipa::path(get, path = "/orgs/{id}/invitations", tag = "members", params(("id" = String, Path), ListParams),
    responses((status = 200, body = ListResponse<InvitationView>)), security(("bearer" = [])))]
async fn list_invitations(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<InvitationView>>> {
    let org = path_id(&id, "organization")?;
    let req = q.page(false)?;
    let page = state.services.list_invitations(&p, org, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |i| i.id,
        |i| InvitationView::new(i, None),
    )))
}

/// Withdraw an invitation (admin+).
#[utoipa::path(delete, path = "/orgs/{id}/invitations/{invitation_id}", tag = "members",
    params(("id" = String, Path), ("invitation_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn delete_invitation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, invitation_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = path_id(&id, "organization")?;
    let inv = path_id(&invitation_id, "invitation")?;
    state.services.delete_invitation(&p, org, inv).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Join the organization of an invitation made out to your email.
#[utoipa::path(post, path = "/invitations/accept", tag = "members", request_body = AcceptInvitationRequest,
    responses((status = 200, body = MemberView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn accept_invitation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<AcceptInvitationRequest>,
) -> ApiResult<axum::Json<MemberView>> {
    Ok(axum::Json(
        state
            .services
            .accept_invitation(&p, &req.token)
            .await?
            .into(),
    ))
}
