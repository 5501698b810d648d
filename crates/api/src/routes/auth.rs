//! `/auth`: registration, login, tokens, passwords and sessions.

use agentry_services::auth::TokenPair;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::extract::{Auth, Json, Meta, path_id};
use crate::list::{ListParams, list_response};
use crate::ratelimit::Decision;
use crate::routes::created;
use crate::state::AppState;
use crate::views::{
    ApiKeyView, ErrorResponse, ListResponse, MembershipView, OrgView, SessionView, UserView,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(min_length = 3, max_length = 254, format = "email")]
    pub email: String,
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub password: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(min_length = 1)]
    pub email: String,
    #[schema(min_length = 1)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The session to end; the caller's current session when left out.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1)]
    pub current_password: String,
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    #[schema(min_length = 1)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    #[schema(min_length = 1)]
    pub token: String,
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    pub user: UserView,
    /// The default org made at registration (register only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgView>,
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl AuthResponse {
    fn new(user: agentry_store::User, org: Option<OrgView>, t: TokenPair) -> AuthResponse {
        AuthResponse {
            user: user.into(),
            org,
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// `user` or `api_key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyView>,
    pub memberships: Vec<MembershipView>,
}

/// Counts an attempt against the per-IP and per-email limits of an auth route.
fn limit_auth(
    state: &AppState,
    route: &str,
    ip: Option<&str>,
    email: Option<&str>,
) -> ApiResult<Decision> {
    let ip_key = format!("{route}:ip:{}", ip.unwrap_or(""));
    let d = state.limits.auth.check(&ip_key);
    if !d.allowed {
        return Err(ApiError::rate_limited(d));
    }
    if let Some(email) = email {
        let key = format!("{route}:email:{}", email.trim().to_ascii_lowercase());
        let e = state.limits.auth.check(&key);
        if !e.allowed {
            return Err(ApiError::rate_limited(e));
        }
        if e.remaining < d.remaining {
            return Ok(e);
        }
    }
    Ok(d)
}

fn with_limit(mut res: Response, d: &Decision) -> Response {
    crate::middleware::rate_headers(res.headers_mut(), d);
    res
}

/// Create an account and its default organization.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = AuthResponse), (status = 409, description = "email_taken", body = ErrorResponse),
              (status = 422, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
async fn register(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<Response> {
    let d = limit_auth(&state, "register", meta.ip.as_deref(), Some(&req.email))?;
    let r = state
        .services
        .register(&req.email, &req.password, &req.name, &meta)
        .await?;
    let location = format!("/api/v1/users/{}", r.user.id);
    let body = AuthResponse::new(
        r.user,
        Some(OrgView::new(r.org, Some(agentry_core::Role::Owner))),
        r.tokens,
    );
    Ok(with_limit(created(location, body), &d))
}

/// Log in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 401, description = "invalid_credentials", body = ErrorResponse),
              (status = 429, body = ErrorResponse)))]
async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let d = limit_auth(&state, "login", meta.ip.as_deref(), Some(&req.email))?;
    let r = state
        .services
        .login(&req.email, &req.password, &meta)
        .await?;
    Ok(with_limit(
        axum::Json(AuthResponse::new(r.user, None, r.tokens)).into_response(),
        &d,
    ))
}

/// Trade a refresh token for a new pair; the old one is spent.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
async fn refresh(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Response> {
    let d = limit_auth(&state, "refresh", meta.ip.as_deref(), None)?;
    let r = state.services.refresh(&req.refresh_token, &meta).await?;
    Ok(with_limit(
        axum::Json(AuthResponse::new(r.user, None, r.tokens)).into_response(),
        &d,
    ))
}

/// End a session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 204), (status = 401, body = ErrorResponse)), security(("bearer" = [])))]
async fn logout(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<LogoutRequest>,
) -> ApiResult<StatusCode> {
    state
        .services
        .logout(&p, req.refresh_token.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller (a user or an API key) and its organizations.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorResponse)), security(("bearer" = [])))]
async fn me(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<axum::Json<MeResponse>> {
    use agentry_services::users::Me;
    let body = match state.services.me(&p).await? {
        Me::User { user, memberships } => MeResponse {
            kind: "user",
            user: Some(user.into()),
            api_key: None,
            memberships: memberships
                .into_iter()
                .map(|m| MembershipView {
                    role: m.role,
                    org: OrgView::new(m.org, None),
                })
                .collect(),
        },
        Me::ApiKey { key, org } => MeResponse {
            kind: "api_key",
            user: None,
            memberships: vec![MembershipView {
                role: key.role,
                org: OrgView::new(org, None),
            }],
            api_key: Some(ApiKeyView::new(key, None)),
        },
    };
    Ok(axum::Json(body))
}

/// Change your password; your other sessions are signed out.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 422, body = ErrorResponse)), security(("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    state
        .services
        .change_password(&p, &req.current_password, &req.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password reset token. Always `202`, whether or not the account exists.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = ForgotPasswordRequest,
    responses((status = 202), (status = 422, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
async fn forgot_password(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Json(req): Json<ForgotPasswordRequest>,
) -> ApiResult<Response> {
    let d = limit_auth(&state, "forgot", meta.ip.as_deref(), Some(&req.email))?;
    state.services.forgot_password(&req.email, &meta).await?;
    Ok(with_limit(StatusCode::ACCEPTED.into_response(), &d))
}

/// Set a new password with a reset token; every session is signed out.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204), (status = 422, body = ErrorResponse)))]
async fn reset_password(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Json(req): Json<ResetPasswordRequest>,
) -> ApiResult<Response> {
    let d = limit_auth(&state, "reset", meta.ip.as_deref(), None)?;
    state
        .services
        .reset_password(&req.token, &req.new_password, &meta)
        .await?;
    Ok(with_limit(StatusCode::NO_CONTENT.into_response(), &d))
}

/// Your live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", params(ListParams),
    responses((status = 200, body = ListResponse<SessionView>)), security(("bearer" = [])))]
async fn list_sessions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<SessionView>>> {
    let req = q.page(true)?;
    let (_, current) = p.user()?;
    let page = state.services.list_sessions(&p, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |s| s.id,
        |s| SessionView::new(s, current),
    )))
}

/// Revoke one of your sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn revoke_session(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "session")?;
    state
        .services
        .revoke_own_session(&p, id, agentry_services::RevokeReason::Revoked)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
