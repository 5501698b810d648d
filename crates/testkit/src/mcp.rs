//! A mock MCP server that speaks the protocol's real wire format (JSON-RPC 2.0): over
//! Streamable HTTP ([`McpServer`], an HTTP server on 127.0.0.1 answering `tools/list` with JSON
//! and `tools/call` with an SSE stream, as servers may) or over stdio (the `mock-mcp` binary of
//! this crate, one message a line).
//!
//! Its tools: `add {a, b}` (text and structured content `{"sum"}`), `shout {text}`
//! (upper-cases), `fail {}` (a result marked as an error), `env {name}` (an environment
//! variable of the server's process).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

const SESSION: &str = "mock-session-1";

fn tool_list() -> Value {
    json!([
        {"name": "add", "description": "Adds two numbers.",
         "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                         "required": ["a", "b"]}},
        {"name": "shout", "description": "Upper-cases a text.",
         "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
        {"name": "fail", "description": "Always fails.", "inputSchema": {"type": "object"}},
        {"name": "env", "description": "Reads an environment variable of the server.",
         "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
    ])
}

fn text(t: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": t.into()}], "isError": false})
}

/// The answer to one message, `None` for a notification (or a response).
pub fn handle(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let method = msg["method"].as_str()?;
    let p = &msg["params"];
    let result = match method {
        "initialize" => {
            let asked = p["protocolVersion"].as_str().unwrap_or_default();
            let known = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
            let version = if known.contains(&asked) {
                asked
            } else {
                "2025-06-18"
            };
            Ok(json!({"protocolVersion": version,
                      "capabilities": {"tools": {"listChanged": false}},
                      "serverInfo": {"name": "mock-mcp", "version": "1.0.0"}}))
        }
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tool_list()})),
        "tools/call" => {
            let a = &p["arguments"];
            match p["name"].as_str().unwrap_or_default() {
                "add" => {
                    let sum = a["a"].as_f64().unwrap_or(0.0) + a["b"].as_f64().unwrap_or(0.0);
                    let mut r = text(sum.to_string());
                    r["structuredContent"] = json!({"sum": sum});
                    Ok(r)
                }
                "shout" => Ok(text(a["text"].as_str().unwrap_or_default().to_uppercase())),
                "fail" => Ok(
                    json!({"content": [{"type": "text", "text": "the tool broke"}], "isError": true}),
                ),
                "env" => Ok(text(
                    std::env::var(a["name"].as_str().unwrap_or_default()).unwrap_or_default(),
                )),
                other => Err((-32602, format!("Unknown tool: {other}"))),
            }
        }
        other => Err((-32601, format!("Method not found: {other}"))),
    };
    Some(match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err((code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    })
}

/// One request the HTTP server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The JSON-RPC method (or `DELETE`, `GET`).
    pub method: String,
    pub headers: HeaderMap,
}

/// The Streamable HTTP server. Stops when dropped.
pub struct McpServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn endpoint(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let method = msg["method"].as_str().unwrap_or("(response)").to_string();
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        headers: headers.clone(),
    });
    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    if method != "initialize" && session != Some(SESSION) {
        return (StatusCode::BAD_REQUEST, "missing or unknown Mcp-Session-Id").into_response();
    }
    let Some(answer) = handle(&msg) else {
        return StatusCode::ACCEPTED.into_response();
    };
    let mut res = if method == "tools/call" {
        let body = format!("event: message\ndata: {answer}\n\n");
        ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
            .into_response()
    };
    if method == "initialize" {
        res.headers_mut()
            .insert("mcp-session-id", SESSION.parse().unwrap());
    }
    res
}

async fn other(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> StatusCode {
    seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        headers,
    });
    if method == axum::http::Method::DELETE {
        StatusCode::OK
    } else {
        // No server-initiated stream.
        StatusCode::METHOD_NOT_ALLOWED
    }
}

impl McpServer {
    pub async fn start() -> McpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(vec![]));
        let app = Router::new()
            .route("/mcp", post(endpoint).get(other).delete(other))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        McpServer { addr, seen, task }
    }

    /// The server's MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
