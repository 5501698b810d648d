//! The routes of `/api/v1`, one module per resource, built together with the OpenAPI document.

pub mod admin;
pub mod agents;
pub mod api_keys;
pub mod auth;
pub mod conversations;
pub mod events;
pub mod executions;
pub mod mcp_servers;
pub mod members;
pub mod orgs;
pub mod providers;
pub mod system;
pub mod tasks;
pub mod users;

use agentry_services::OrgCtx;
use agentry_services::executions::Idempotency;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ApiResult};
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
        .merge(providers::router())
        .merge(mcp_servers::router())
        .merge(agents::router())
        .merge(tasks::router())
        .merge(executions::router())
        .merge(conversations::router())
        .merge(crate::ws::router())
}

/// `201 Created` with the resource and its `Location`.
pub fn created<T: Serialize>(location: String, body: T) -> Response {
    let mut res = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Checks an optional filter or field against its allowed values.
pub fn one_of(
    field: &str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::field(
            field,
            &format!("must be one of {}", allowed.join(", ")),
        )),
        v => Ok(v),
    }
}

/// The largest response kept for replaying under an `Idempotency-Key`.
const MAX_REPLAY_BODY: usize = 1 << 20;

/// Runs a create under the request's `Idempotency-Key`, if it has one: the same key with the
/// same body (and route) within 24 h answers with the first response again, marked with
/// `Idempotent-Replayed: true`; with another body it is `409 idempotency_key_reused`. A
/// request that fails releases its key so that it can be retried.
pub async fn idempotent(
    state: &AppState,
    ctx: &OrgCtx,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    run: impl AsyncFnOnce() -> ApiResult<Response>,
) -> ApiResult<Response> {
    let Some(key) = headers.get("idempotency-key") else {
        return run().await;
    };
    let key = key
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be printable ASCII"))?;
    // A body that is not JSON is refused by `run` and never reserves the key.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return run().await;
    };
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    // Objects serialize with sorted keys: the same JSON in another layout hashes the same.
    hash.update(value.to_string().as_bytes());
    let hash = hex::encode(hash.finalize());
    match state.services.idempotency_begin(ctx, key, &hash).await? {
        Idempotency::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut res = (status, axum::Json(body)).into_response();
            res.headers_mut().insert(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            );
            Ok(res)
        }
        Idempotency::Proceed => {
            let res = match run().await {
                Ok(res) if res.status().is_success() => res,
                other => {
                    state.services.idempotency_abort(ctx, key).await?;
                    return other;
                }
            };
            let (parts, body) = res.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_REPLAY_BODY)
                .await
                .map_err(|_| ApiError::internal())?;
            let stored: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            state
                .services
                .idempotency_complete(ctx, key, parts.status.as_u16(), &stored)
                .await?;
            Ok(Response::from_parts(parts, axum::body::Body::from(bytes)))
        }
    }
}
