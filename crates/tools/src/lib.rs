//! What Agentry's tools reach out with: an HTTP client that refuses internal addresses after
//! DNS ([`HttpClient`], [`Egress`]), and an MCP client ([`McpClient`]) that goes out the same way.

mod egress;
mod http;
mod mcp;

pub use egress::Egress;
pub use http::{HttpCall, HttpClient, HttpLimits, check_url};
pub use mcp::{McpClient, McpTarget, McpTool, McpTransport};
pub use reqwest::Url;

/// A tool call that did not work. It goes back to the model as the call's result; the
/// execution goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{code}: {message}")]
pub struct ToolError {
    pub code: String,
    pub message: String,
}

impl ToolError {
    pub fn new(code: &str, message: impl Into<String>) -> ToolError {
        ToolError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The egress policy refused the address.
    pub fn refused(message: impl Into<String>) -> ToolError {
        ToolError::new("egress_refused", message)
    }

    /// The call itself is malformed (bad URL, method, arguments).
    pub fn invalid(message: impl Into<String>) -> ToolError {
        ToolError::new("invalid_arguments", message)
    }
}
