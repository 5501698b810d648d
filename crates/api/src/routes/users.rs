//! `/users/me`: the caller's profile.

use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{Auth, Json};
use crate::state::AppState;
use crate::views::{ErrorResponse, UserView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(update_me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    pub name: Option<String>,
    /// Free-form JSON object, up to 16 KiB.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

/// Update your name or settings; fields left out stay as they are.
#[utoipa::path(method(patch, put), path = "/users/me", tag = "users", request_body = UpdateMeRequest,
    responses((status = 200, body = UserView), (status = 422, body = ErrorResponse)), security(("bearer" = [])))]
async fn update_me(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<UpdateMeRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let user = state
        .services
        .update_profile(&p, req.name.as_deref(), req.settings.as_ref())
        .await?;
    Ok(axum::Json(user.into()))
}
