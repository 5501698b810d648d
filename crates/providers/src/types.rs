//! The request, reply and error shapes shared by every provider.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One call to a model.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    /// The system prompt (the agent's instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// A JSON Schema (an object type) the answer must follow: asked of OpenAI as a
    /// `response_format`, of Anthropic as a tool it must call ([`FINAL_ANSWER_TOOL`]), whose
    /// input comes back as the reply's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
}

/// The tool through which Anthropic gives a structured answer.
pub const FINAL_ANSWER_TOOL: &str = "final_answer";

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    /// The result of a tool call, answering `tool_call_id`.
    Tool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: String,
    /// Calls the assistant asked for (assistant messages only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: content.into(),
            tool_calls: vec![],
            tool_call_id: None,
        }
    }

    /// The result of the tool call `call_id`.
    pub fn tool(call_id: &str, content: impl Into<String>) -> Message {
        Message {
            role: Role::Tool,
            tool_call_id: Some(call_id.into()),
            ..Message::user(content)
        }
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            ..Message::user(content)
        }
    }
}

/// A tool the model may call.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema object for the arguments.
    pub input_schema: Value,
}

/// A call the model asked for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON; a string the model produced that is not JSON is kept as a string.
    pub arguments: Value,
}

/// Tokens of one call. `input_tokens` includes the cached ones; `output_tokens` includes the
/// reasoning ones (both vendors count them that way).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }
}

/// The model's whole reply.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatResponse {
    /// The model that answered, as the provider names it.
    pub model: String,
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// Why the model stopped (`stop`, `length`, `tool_calls`, `end_turn`, …), as the vendor says.
    pub finish_reason: Option<String>,
}

/// A failed call. `code` is stable and machine-readable; `message` is for people.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
#[error("{code}: {message}")]
pub struct ProviderError {
    pub code: &'static str,
    pub message: String,
    /// Trying again later could succeed (429, 5xx, timeouts, a stream cut short).
    pub retryable: bool,
    /// The HTTP status, when the provider answered with one.
    pub status: Option<u16>,
    /// How long the provider asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn fatal(code: &'static str, message: impl Into<String>) -> ProviderError {
        ProviderError {
            code,
            message: message.into(),
            retryable: false,
            status: None,
            retry_after: None,
        }
    }

    pub fn retryable(code: &'static str, message: impl Into<String>) -> ProviderError {
        ProviderError {
            retryable: true,
            ..ProviderError::fatal(code, message)
        }
    }

    /// Classifies an error status: 408, 409, 429 and 5xx may pass; the rest will not.
    pub fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Self {
        let (code, retryable) = match status {
            429 => ("rate_limited", true),
            408 => ("timeout", true),
            409 => ("conflict", true),
            500..=599 => ("provider_unavailable", true),
            401 | 403 => ("auth_failed", false),
            404 => ("not_found", false),
            _ => ("bad_request", false),
        };
        ProviderError {
            code,
            message: format!("the provider answered {status}: {message}"),
            retryable,
            status: Some(status),
            retry_after,
        }
    }

    /// Classifies a transport failure: connecting, timing out and a cut connection may pass.
    pub fn from_transport(e: reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            ProviderError::retryable("timeout", "the provider did not answer in time")
        } else if e.is_connect() {
            ProviderError::retryable(
                "connect_failed",
                format!("could not connect to the provider: {}", root_cause(&e)),
            )
        } else if e.is_builder() {
            ProviderError::fatal(
                "bad_request",
                format!("invalid request: {}", root_cause(&e)),
            )
        } else {
            ProviderError::retryable(
                "stream_interrupted",
                format!("the connection to the provider failed: {}", root_cause(&e)),
            )
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Parses tool-call arguments the model wrote as a JSON string; keeps them as a string when
/// they are not JSON, so nothing is lost.
pub(crate) fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}
