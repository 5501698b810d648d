//! Errors a service reports. Each variant maps to one status and error code in the API.

use agentry_core::FieldErrors;
use agentry_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("validation failed: {0}")]
    Validation(FieldErrors),
    #[error("{0}")]
    NotFound(&'static str),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("access token has expired")]
    TokenExpired,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(&'static str),
    /// A conflict with a specific code such as `email_taken` or `last_owner`.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: &'static str,
    },
    /// A server this one called on the client's behalf (an MCP server) failed: `502`.
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn field(field: &str, message: &str) -> ServiceError {
        ServiceError::Validation(FieldErrors::single(field, message))
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => ServiceError::Conflict {
                code: "conflict",
                message: "a resource with these values already exists",
            },
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<FieldErrors> for ServiceError {
    fn from(e: FieldErrors) -> Self {
        ServiceError::Validation(e)
    }
}
