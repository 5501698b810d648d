//! The routes of `/api/v1`, one module per resource, built together with the OpenAPI document.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod events;
pub mod members;
pub mod orgs;
pub mod system;
pub mod users;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(orgs::router())
        .merge(members::router())
        .merge(api_keys::router())
        .merge(events::router())
        .merge(admin::router())
}

/// `201 Created` with the resource and its `Location`.
pub fn created<T: Serialize>(location: String, body: T) -> Response {
    let mut res = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}
