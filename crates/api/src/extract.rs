//! Extractors that turn every client mistake into the API's error shape: JSON bodies, query
//! strings, ids in paths, and the caller's credentials.

use std::net::SocketAddr;

use agentry_services::{Principal, RequestMeta};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body: `415` without a JSON content type, `413` over the limit, `400` for bad JSON,
/// `422` naming the field for a value of the wrong type, a missing field or an unknown one.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// The raw bytes of a JSON body, checked as [`Json`] checks them (media type, size) but not yet
/// parsed: for routes that also hash the body, such as those taking an `Idempotency-Key`.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        Bytes::from_request(req, state)
            .await
            .map(JsonBytes)
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_json",
                        "could not read the request body",
                    )
                }
            })
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`; anything else is read
/// as [`Json`] reads it.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
            || (req.headers().get(header::CONTENT_TYPE).is_none()
                && req.headers().get(header::TRANSFER_ENCODING).is_none()
                && req.headers().get(header::CONTENT_LENGTH).is_none());
        if empty {
            return Ok(OptionalJson(T::default()));
        }
        // A body of `null` is no body too.
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        if bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// For a field where `null` means something (clear it) and leaving it out means "unchanged":
/// `#[serde(default, deserialize_with = "present")]` on an `Option<Value>` gives `None` when
/// the field is absent and `Some(Value::Null)` when it is `null`.
pub fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    use serde::Deserialize;
    serde_json::Value::deserialize(d).map(Some)
}

/// Like [`present`] for a field of type `T`: absent is `None`, `null` is `Some(None)`.
pub fn nullable<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    use serde::Deserialize;
    Option::<T>::deserialize(d).map(Some)
}

/// Parses a JSON body into `T`, reporting syntax errors as 400 and shape errors as 422.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the request body must be a JSON object",
        )
        .with_details(serde_json::json!({"fields": {"body": ["must be a JSON object"]}})));
    }
    // A whole number written as `605.0` is still the integer JSON Schema calls it; the
    // request's own fields take it (nested values, which may be the caller's data, stay as
    // they were sent).
    let mut value = value;
    if let Some(fields) = value.as_object_mut() {
        for v in fields.values_mut() {
            if let Some(f) = v.as_f64()
                && !v.is_i64()
                && !v.is_u64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *v = serde_json::Value::from(f as i64);
            }
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let (field, message) = describe(&path, &inner);
        ApiError::field(&field, &message)
    })
}

/// Names the field a serde error is about, and says what is wrong with it in plain words.
fn describe(path: &str, message: &str) -> (String, String) {
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
    if let Some(rest) = message.strip_prefix("missing field ") {
        return (
            quoted(rest).unwrap_or_else(|| path.to_string()),
            "is required".into(),
        );
    }
    if message.starts_with("unknown field ") {
        // The path already ends at the unknown field.
        let field = if path == "." || path.is_empty() {
            quoted(message).unwrap_or_default()
        } else {
            path.to_string()
        };
        return (field, "is not a known field".into());
    }
    let field = if path == "." || path.is_empty() {
        "body".to_string()
    } else {
        path.to_string()
    };
    let message = match message.split_once(", expected") {
        Some((got, expected)) => format!(
            "has the wrong type: {got}; expected{}",
            expected.split(" at line").next().unwrap_or("")
        ),
        None => message
            .split(" at line")
            .next()
            .unwrap_or(message)
            .to_string(),
    };
    (field, message)
}

/// A query string: `422` naming the parameter for a bad or unknown one.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                let (field, message) = describe(&path, &inner);
                ApiError::field(&field, &message)
            })
    }
}

/// Parses an id from a path. A malformed id names nothing that exists: `404`.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(&format!("{what} not found")))
}

/// The client's address, from the connection or (when configured) the proxy's header.
pub fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    trust_proxy: bool,
) -> Option<String> {
    if trust_proxy {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s.len() <= 64);
        if forwarded.is_some() {
            return forwarded;
        }
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// Where the request came from.
pub struct Meta(pub RequestMeta);

impl FromRequestParts<AppState> for Meta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Meta(request_meta(parts, state)))
    }
}

pub(crate) fn request_meta(parts: &Parts, state: &AppState) -> RequestMeta {
    RequestMeta {
        ip: client_ip(&parts.headers, &parts.extensions, state.config.trust_proxy),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}

/// The bearer credential of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The org named by `X-Org-Id` (or `X-Workspace-Id`), if any.
pub fn requested_org(headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    let Some(v) = headers
        .get("x-org-id")
        .or_else(|| headers.get("x-workspace-id"))
    else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| Uuid::parse_str(s.trim()).ok())
        .map(Some)
        .ok_or_else(|| ApiError::field("X-Org-Id", "must be an organization id"))
}

/// An authenticated caller. A missing, invalid, expired or revoked credential is `401`;
/// it is never read as anonymous.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("send a bearer token: Authorization: Bearer <token>")
        })?;
        let requested_org = requested_org(&parts.headers)?;
        let meta = request_meta(parts, state);
        let principal = state
            .services
            .authenticate(token, requested_org, meta)
            .await?;
        Ok(Auth(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_serde_errors() {
        assert_eq!(
            describe(".", "missing field `email`"),
            ("email".into(), "is required".into())
        );
        assert_eq!(
            describe(
                ".",
                "unknown field `emial`, expected one of `email`, `password`"
            )
            .0,
            "emial".to_string()
        );
        let (f, m) = describe(
            "name",
            "invalid type: integer `5`, expected a string at line 1 column 10",
        );
        assert_eq!(f, "name");
        assert!(m.contains("wrong type") && !m.contains("line 1"), "{m}");
    }
}
