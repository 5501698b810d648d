//! The one error shape of the API:
//! `{"error": {"code", "message", "details", "request_id"}}`.
//!
//! Handlers return [`ApiError`]; it travels as a response extension and the outermost
//! middleware writes the body, adding the request id. Errors produced outside handlers (an
//! unknown route, a wrong method) reach that middleware as bare statuses and get the same shape.

use agentry_services::ServiceError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// For `429`: the limit that was hit, sent back as `RateLimit-*` and `Retry-After`.
    pub rate: Option<crate::ratelimit::Decision>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            rate: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn not_found(message: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// `429 rate_limited` for a limit that was hit.
    pub fn rate_limited(d: crate::ratelimit::Decision) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry later",
        )
        .with_details(json!({"retry_after_seconds": d.reset_secs}));
        e.rate = Some(d);
        e
    }

    /// A 422 naming each bad field.
    pub fn fields(fields: Value) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the request has invalid fields",
        )
        .with_details(json!({ "fields": fields }))
    }

    pub fn field(field: &str, message: &str) -> ApiError {
        ApiError::fields(json!({ field: [message] }))
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        )
    }

    /// The default error for a bare status produced outside any handler.
    pub fn from_status(status: StatusCode) -> ApiError {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => ("invalid_json", "the request body is not valid JSON"),
            StatusCode::UNAUTHORIZED => ("unauthorized", "authentication required"),
            StatusCode::FORBIDDEN => ("forbidden", "not allowed"),
            StatusCode::NOT_FOUND => ("not_found", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => {
                ("method_not_allowed", "this route does not take that method")
            }
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY => {
                ("validation_failed", "the request has invalid fields")
            }
            StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests"),
            StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "the service is unavailable"),
            s if s.is_client_error() => ("bad_request", "the request was not accepted"),
            _ => ("internal", "an internal error occurred"),
        };
        ApiError::new(status, code, message)
    }

    /// The JSON body, with the request id.
    pub fn body(&self, request_id: &str) -> Value {
        let mut e = json!({"code": self.code, "message": self.message, "request_id": request_id});
        if let Some(d) = &self.details {
            e["details"] = d.clone();
        }
        json!({ "error": e })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(d) = &self.rate {
            crate::middleware::rate_headers(res.headers_mut(), d);
        }
        res.extensions_mut().insert(self);
        res
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Validation(f) => {
                ApiError::fields(serde_json::to_value(f.fields()).unwrap_or_default())
            }
            ServiceError::NotFound(m) => ApiError::not_found(m),
            ServiceError::Unauthorized(m) => ApiError::unauthorized(m),
            ServiceError::TokenExpired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "the access token has expired",
            ),
            ServiceError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid email or password",
            ),
            ServiceError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::Upstream { code, message } => {
                ApiError::new(StatusCode::BAD_GATEWAY, code, message)
            }
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                ApiError::internal()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
