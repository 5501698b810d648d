//! LLM providers: one request and response shape, spoken to OpenAI-compatible servers, to
//! Anthropic's Messages API, and answered locally by `echo`.
//!
//! A call either returns the whole reply or, when streaming, passes each text delta to a
//! callback as it arrives and then returns the same whole reply. Errors say whether trying
//! again could help ([`ProviderError::retryable`]).

mod anthropic;
mod echo;
mod openai;
pub mod prices;
mod sse;
mod types;

use std::time::Duration;

pub use prices::{Price, cost_micros};

/// Entry points for the fuzz targets (`fuzz/`): the parsers of what providers send back. Each
/// takes arbitrary bytes and must only ever return (an error is fine, a panic is a bug).
#[doc(hidden)]
pub mod fuzz {
    /// The SSE reader, fed `data` in chunks cut at each `0xFF` byte (a byte UTF-8 never uses,
    /// so a cut can fall anywhere, even inside a character).
    pub fn sse(data: &[u8]) {
        let mut p = crate::sse::Parser::default();
        for chunk in data.split(|b| *b == 0xFF) {
            if p.push(chunk).is_err() {
                return;
            }
        }
    }

    /// A streamed OpenAI chat completion, in chunks cut at each `0xFF`.
    pub fn openai_stream(data: &[u8]) {
        crate::sse::read_bytes::<crate::openai::StreamReader>(data);
    }

    /// A streamed Anthropic message, in chunks cut at each `0xFF`.
    pub fn anthropic_stream(data: &[u8]) {
        crate::sse::read_bytes::<crate::anthropic::StreamReader>(data);
    }

    /// A whole (not streamed) OpenAI chat completion.
    pub fn openai_reply(data: &[u8]) {
        if let Ok(v) = serde_json::from_slice(data) {
            let _ = crate::openai::parse_reply(&v);
        }
    }

    /// A whole (not streamed) Anthropic message.
    pub fn anthropic_reply(data: &[u8]) {
        if let Ok(v) = serde_json::from_slice(data) {
            let _ = crate::anthropic::parse_reply(&v);
        }
    }
}
pub use types::*;

/// How to reach one provider.
#[derive(Clone)]
pub struct Endpoint {
    pub kind: Kind,
    /// OpenAI's includes `/v1`; Anthropic's does not. `None`: the vendor's public API.
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// Extra headers sent on every call (some gateways want their own).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// The three kinds of provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    OpenAi,
    Anthropic,
    Echo,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "openai" => Some(Kind::OpenAi),
            "anthropic" => Some(Kind::Anthropic),
            "echo" => Some(Kind::Echo),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
            Kind::Echo => "echo",
        }
    }

    /// The vendor's public API, used when a provider names no `base_url`.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Kind::OpenAi => Some("https://api.openai.com/v1"),
            Kind::Anthropic => Some("https://api.anthropic.com"),
            Kind::Echo => None,
        }
    }
}

/// Timeouts for provider calls.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// The longest silence between two reads of a reply (a stream may take much longer).
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// Calls providers. Cheap to clone; holds one connection pool for all of them.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("agentry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::fatal("client_error", e.to_string()))?;
        Ok(Client { http })
    }

    /// Makes one call. With `on_delta`, the reply is streamed and each piece of text is passed
    /// to it as it arrives; the whole reply is returned either way.
    pub async fn chat(
        &self,
        endpoint: &Endpoint,
        req: &ChatRequest,
        on_delta: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<ChatResponse, ProviderError> {
        match endpoint.kind {
            Kind::OpenAi => openai::chat(&self.http, endpoint, req, on_delta).await,
            Kind::Anthropic => anthropic::chat(&self.http, endpoint, req, on_delta).await,
            Kind::Echo => Ok(echo::chat(req, on_delta)),
        }
    }
}

/// Joins a base URL and a path with exactly one slash between them.
fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// A POST of `body` to `path` under the endpoint's base URL (or the vendor's), with the
/// endpoint's extra headers.
fn post(
    http: &reqwest::Client,
    ep: &Endpoint,
    path: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    let base = ep
        .base_url
        .as_deref()
        .or(ep.kind.default_base_url())
        .unwrap_or_default();
    let mut rb = http.post(join_url(base, path)).json(body);
    for (k, v) in &ep.headers {
        rb = rb.header(k, v);
    }
    rb
}

/// Sends a prepared request and turns transport failures and error statuses into
/// [`ProviderError`]s.
async fn send(rb: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    let res = rb.send().await.map_err(ProviderError::from_transport)?;
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    let body = read_capped(res, 4096).await.unwrap_or_default();
    Err(ProviderError::from_status(
        status.as_u16(),
        error_message(&body),
        retry_after,
    ))
}

/// Reads at most `cap` bytes of a body (error bodies are only for the message).
async fn read_capped(mut res: reqwest::Response, cap: usize) -> Result<String, ProviderError> {
    let mut buf = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(ProviderError::from_transport)? {
        buf.extend_from_slice(&chunk);
        if buf.len() >= cap {
            buf.truncate(cap);
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The message of an error body in OpenAI's or Anthropic's shape, else the body itself.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let msg = parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str().or(v["message"].as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| body.trim().to_string());
    let mut msg: String = msg.chars().take(500).collect();
    if msg.is_empty() {
        msg = "no error message".into();
    }
    msg
}

/// Reads a whole JSON reply, at most 16 MiB.
async fn read_json(res: reqwest::Response) -> Result<serde_json::Value, ProviderError> {
    const CAP: usize = 16 << 20;
    let mut res = res;
    let mut buf = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(ProviderError::from_transport)? {
        buf.extend_from_slice(&chunk);
        if buf.len() > CAP {
            return Err(ProviderError::fatal(
                "invalid_response",
                "the reply is larger than 16 MiB",
            ));
        }
    }
    serde_json::from_slice(&buf).map_err(|e| {
        ProviderError::fatal("invalid_response", format!("the reply is not JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(
            join_url("http://x/v1/", "/chat/completions"),
            "http://x/v1/chat/completions"
        );
        assert_eq!(join_url("http://x", "v1/messages"), "http://x/v1/messages");
    }

    #[test]
    fn error_messages_come_from_either_shape() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(
            error_message(r#"{"type":"error","error":{"type":"x","message":"overloaded"}}"#),
            "overloaded"
        );
        assert_eq!(
            error_message("<html>gateway</html>"),
            "<html>gateway</html>"
        );
        assert_eq!(error_message(""), "no error message");
    }
}
