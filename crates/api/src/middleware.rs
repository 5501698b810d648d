//! Middleware around every request: request ids, the error shape, security headers, logs and
//! metrics (outermost), and per-principal rate limits on the API.

use std::time::Instant;

use agentry_services::tokens;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::extract::{bearer, client_ip};
use crate::ratelimit::Decision;
use crate::state::AppState;

/// The request's id, echoed from the client when it sent a sane one.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| agentry_core::new_id().to_string())
}

/// Outermost: assigns the request id, gives every error the one JSON shape, adds security
/// headers, and records the request in the log and the metrics.
pub async fn finalize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());

    let mut res = next.run(req).await;

    let status = res.status();
    if let Some(err) = res.extensions_mut().remove::<ApiError>() {
        res = error_response(&err, &id, res.headers());
    } else if status.is_client_error() || status.is_server_error() {
        let is_json = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            res = error_response(&ApiError::from_status(status), &id, res.headers());
        }
    }
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if path.starts_with("/api/") {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // A body refused for its size was not read to the end: the connection cannot carry another
    // request, so say so rather than let the client reuse it and fail.
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }

    let elapsed = started.elapsed();
    let route_label = route.as_deref().unwrap_or("unmatched");
    state
        .metrics
        .observe(route_label, &method, res.status().as_u16(), elapsed);
    let status = res.status().as_u16();
    let micros = elapsed.as_micros() as u64;
    if status >= 500 {
        tracing::error!(http.method = %method, http.route = route_label, http.path = %path, http.status = status, duration_us = micros, request_id = %id, "request failed");
    } else {
        tracing::info!(http.method = %method, http.route = route_label, http.path = %path, http.status = status, duration_us = micros, request_id = %id, "request");
    }
    res
}

/// Builds the error body, keeping headers the inner layers set (`Allow`, `Retry-After`, …).
fn error_response(err: &ApiError, id: &str, headers: &HeaderMap) -> Response {
    let mut res = (err.status, axum::Json(err.body(id))).into_response();
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            res.headers_mut().insert(name.clone(), value.clone());
        }
    }
    res
}

/// The principal a request counts against: a user (from a validly signed token), an API key,
/// or else the client address.
fn principal_key(state: &AppState, req: &Request) -> String {
    let ip = || {
        format!(
            "ip:{}",
            client_ip(req.headers(), req.extensions(), state.config.trust_proxy)
                .unwrap_or_default()
        )
    };
    match bearer(req.headers()) {
        Some(t) if t.starts_with(tokens::API_KEY_PREFIX) => {
            format!("key:{}", &hex::encode(Sha256::digest(t.as_bytes()))[..32])
        }
        Some(t) => {
            let now = chrono::Utc::now().timestamp();
            match tokens::verify_access_token(&state.services.settings.jwt_secret, t, now) {
                Ok(claims) => format!("user:{}", claims.sub),
                Err(_) => ip(),
            }
        }
        None => ip(),
    }
}

/// Adds the `RateLimit-*` headers of a decision to a response.
pub fn rate_headers(h: &mut HeaderMap, d: &Decision) {
    h.insert("ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(d.reset_secs));
    if !d.allowed {
        h.insert(header::RETRY_AFTER, HeaderValue::from(d.reset_secs));
    }
}

/// Per-principal limit on every `/api/v1` route.
pub async fn api_rate_limit(
    State(state): State<AppState>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let key = principal_key(&state, &req);
    let d = state.limits.api.check(&key);
    if !d.allowed {
        return ApiError::rate_limited(d).into_response();
    }
    let mut res = next.run(req).await;
    if !res.headers().contains_key("ratelimit-limit") {
        rate_headers(res.headers_mut(), &d);
    }
    res
}
