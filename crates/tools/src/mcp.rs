//! The MCP client: lists and calls the tools of a Model Context Protocol server, over Streamable
//! HTTP (through a client that applies the egress policy after DNS, never follows redirects and
//! uses no proxy) or stdio (a local process the operator allowed, started with a clean
//! environment). The protocol itself is `rmcp`'s; each use is one short session (handshake,
//! request, close), bounded by the server's timeout, so a server that hangs or dies costs one
//! failed call, never a stuck execution.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest013 as reqwest;
use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, ContentBlock};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::http::{Refused, resolve_allowed};
use crate::{Egress, ToolError, check_url};

/// How to reach a server.
#[derive(Clone, Debug)]
pub enum McpTransport {
    /// Streamable HTTP at `url`, with these headers on every request.
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// A local process speaking JSON-RPC on its stdin and stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
}

/// One server, as a call needs it.
#[derive(Clone, Debug)]
pub struct McpTarget {
    /// Its name, for messages.
    pub name: String,
    pub transport: McpTransport,
    /// The most one use of it (connect, handshake, request) may take.
    pub timeout: Duration,
}

/// A tool a server offers.
#[derive(Clone, Debug, PartialEq)]
pub struct McpTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// The most text a tool result keeps (the rest is cut, and the result says so).
const MAX_RESULT_BYTES: usize = 256 * 1024;
/// The most tools taken from one server, and the most of each tool's description and schema
/// (a larger schema is replaced by `{"type": "object"}`; the server still checks arguments).
const MAX_TOOLS: usize = 256;
const MAX_DESCRIPTION: usize = 4096;
const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// The MCP client. Cheap to clone.
#[derive(Clone)]
pub struct McpClient {
    http: reqwest::Client,
    egress: Arc<Egress>,
    stdio_allowed: bool,
}

struct GuardedResolver {
    egress: Arc<Egress>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.egress.clone();
        Box::pin(async move {
            let allowed = resolve_allowed(&egress, name.as_str()).await?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An open session, and the process behind it (killed when this is dropped).
struct Session {
    service: RunningService<RoleClient, ClientConfig>,
    _child: Option<tokio::process::Child>,
}

impl McpClient {
    /// `stdio_allowed`: whether servers may be started as local processes (the operator's
    /// choice).
    pub fn new(egress: Arc<Egress>, stdio_allowed: bool) -> Result<McpClient, String> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                egress: egress.clone(),
            }))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("agentry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(McpClient {
            http,
            egress,
            stdio_allowed,
        })
    }

    /// Every tool the server offers.
    pub async fn list_tools(&self, target: &McpTarget) -> Result<Vec<McpTool>, ToolError> {
        let tools = self
            .within(target, async {
                let s = self.open(target).await?;
                let tools = s
                    .service
                    .list_all_tools()
                    .await
                    .map_err(|e| service_error(target, e))?;
                let _ = s.service.cancel().await;
                Ok(tools)
            })
            .await?;
        // What a server says goes into prompts: keep it bounded.
        Ok(tools
            .into_iter()
            .take(MAX_TOOLS)
            .map(|t| {
                let mut description = t.description.map(|d| d.into_owned()).unwrap_or_default();
                if description.len() > MAX_DESCRIPTION {
                    let mut end = MAX_DESCRIPTION;
                    while !description.is_char_boundary(end) {
                        end -= 1;
                    }
                    description.truncate(end);
                }
                let mut input_schema = Value::Object((*t.input_schema).clone());
                if input_schema.to_string().len() > MAX_SCHEMA_BYTES {
                    input_schema = json!({"type": "object"});
                }
                McpTool {
                    name: t.name.into_owned(),
                    description,
                    input_schema,
                }
            })
            .collect())
    }

    /// Calls `tool` with `arguments` (an object). The result is the tool's structured content
    /// when it gave one, else its text; a result the server marks as an error is a
    /// `tool_failed` error.
    pub async fn call_tool(
        &self,
        target: &McpTarget,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        let Value::Object(args) = arguments else {
            return Err(ToolError::invalid("the arguments must be an object"));
        };
        let result = self
            .within(target, async {
                let s = self.open(target).await?;
                let r = s
                    .service
                    .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
                    .await
                    .map_err(|e| service_error(target, e))?;
                let _ = s.service.cancel().await;
                Ok(r)
            })
            .await?;
        let mut text = String::new();
        for c in &result.content {
            if !text.is_empty() {
                text.push('\n');
            }
            match c {
                ContentBlock::Text(t) => text.push_str(&t.text),
                ContentBlock::Image(i) => text.push_str(&format!("[image: {}]", i.mime_type)),
                ContentBlock::Audio(a) => text.push_str(&format!("[audio: {}]", a.mime_type)),
                ContentBlock::Resource(_) => text.push_str("[resource]"),
                ContentBlock::ResourceLink(r) => text.push_str(&format!("[link: {}]", r.uri)),
                _ => text.push_str("[content]"),
            }
        }
        let text = cut(text);
        if result.is_error == Some(true) {
            return Err(ToolError::new("tool_failed", text));
        }
        Ok(match result.structured_content {
            Some(v) if v.to_string().len() <= MAX_RESULT_BYTES => v,
            _ => Value::String(text),
        })
    }

    async fn within<T>(
        &self,
        target: &McpTarget,
        work: impl Future<Output = Result<T, ToolError>>,
    ) -> Result<T, ToolError> {
        match tokio::time::timeout(target.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(ToolError::new(
                "timeout",
                format!(
                    "MCP server {} did not answer within {} s",
                    target.name,
                    target.timeout.as_secs()
                ),
            )),
        }
    }

    async fn open(&self, target: &McpTarget) -> Result<Session, ToolError> {
        let mut info = ClientConfig::default();
        info.client_info.name = "agentry".into();
        info.client_info.version = env!("CARGO_PKG_VERSION").into();
        info.client_info.title = None;
        info.client_info.website_url = None;
        info.client_info.description = None;
        match &target.transport {
            McpTransport::Http { url, headers } => {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| ToolError::invalid(format!("invalid URL {url}: {e}")))?;
                check_url(&self.egress, &parsed).map_err(ToolError::refused)?;
                let mut custom = HashMap::new();
                for (k, v) in headers {
                    let name = http::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| ToolError::invalid(format!("invalid header name {k}")))?;
                    let value = http::HeaderValue::from_str(v)
                        .map_err(|_| ToolError::invalid(format!("invalid value for {k}")))?;
                    custom.insert(name, value);
                }
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom);
                let transport =
                    StreamableHttpClientTransport::with_client(self.http.clone(), config);
                let service = info
                    .serve(transport)
                    .await
                    .map_err(|e| unavailable(target, &e))?;
                Ok(Session {
                    service,
                    _child: None,
                })
            }
            McpTransport::Stdio { command, args, env } => {
                if !self.stdio_allowed {
                    return Err(ToolError::new(
                        "stdio_disabled",
                        "this server does not start MCP servers as local processes",
                    ));
                }
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args)
                    .env_clear()
                    .envs(
                        ["PATH", "HOME", "LANG", "TMPDIR"]
                            .iter()
                            .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
                    )
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .kill_on_drop(true);
                let mut child = cmd.spawn().map_err(|e| {
                    ToolError::new(
                        "mcp_unavailable",
                        format!("could not start MCP server {}: {e}", target.name),
                    )
                })?;
                let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
                    return Err(ToolError::new("mcp_unavailable", "no pipes to the process"));
                };
                let service = info
                    .serve((stdout, stdin))
                    .await
                    .map_err(|e| unavailable(target, &e))?;
                Ok(Session {
                    service,
                    _child: Some(child),
                })
            }
        }
    }
}

/// Keeps at most [`MAX_RESULT_BYTES`] of `text` (on a character boundary).
fn cut(mut text: String) -> String {
    if text.len() > MAX_RESULT_BYTES {
        let mut end = MAX_RESULT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[cut]");
    }
    text
}

/// A refusal of the egress policy somewhere in `e`'s chain, or the innermost message.
fn refusal_or_message(e: &(dyn std::error::Error + 'static)) -> Result<String, ToolError> {
    let mut cur = Some(e);
    let mut msg = e.to_string();
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Err(ToolError::refused(r.0.clone()));
        }
        let here = err.to_string();
        if !here.is_empty() && !msg.contains(&here) {
            msg = format!("{msg}: {here}");
        }
        cur = err.source();
    }
    Ok(msg)
}

fn unavailable(target: &McpTarget, e: &(dyn std::error::Error + 'static)) -> ToolError {
    match refusal_or_message(e) {
        Err(refused) => refused,
        Ok(msg) => ToolError::new(
            "mcp_unavailable",
            format!("could not connect to MCP server {}: {msg}", target.name),
        ),
    }
}

fn service_error(target: &McpTarget, e: ServiceError) -> ToolError {
    match e {
        ServiceError::McpError(err) => ToolError::new(
            "mcp_error",
            format!("MCP server {} answered: {}", target.name, err.message),
        ),
        ServiceError::Timeout { .. } => ToolError::new(
            "timeout",
            format!("MCP server {} did not answer in time", target.name),
        ),
        other => unavailable(target, &other),
    }
}
