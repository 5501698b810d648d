//! The tools an agent may call, and one tool call as a journaled step: its arguments checked
//! against the tool's schema, run, and its result (or error) returned to the model.

use agentry_core::id::new_id;
use agentry_providers::{ToolCall, ToolSpec};
use agentry_services::tool_decls::ToolSecrets;
use agentry_store::{Agent, Execution, Json, Step, Tokens};
use agentry_tools::{HttpCall, McpTarget, ToolError};
use chrono::Utc;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

use crate::Runtime;
use crate::approvals::Decision;
use crate::run::Failure;

enum Kind {
    CurrentTime,
    HttpRequest,
    CallAgent,
    /// A declared HTTP tool: method, URL template, headers (secrets opened).
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
    },
    /// A tool of an MCP server, by its name there.
    Mcp {
        server: Arc<McpTarget>,
        tool: String,
    },
}

struct Tool {
    spec: ToolSpec,
    kind: Kind,
    /// Whether arguments are checked against the schema here (an MCP server's schema may use
    /// what this checker does not know; the server checks those itself).
    check_args: bool,
}

/// The agent's tools, ready to call.
pub(crate) struct Toolset {
    tools: Vec<Tool>,
}

/// What a tool call produced, with the tokens and cost it spent (an agent it called).
pub(crate) struct ToolRun {
    pub(crate) result: Result<Value, ToolError>,
    pub(crate) tokens: Tokens,
    pub(crate) cost_micros: Option<i64>,
    /// The execution a `call_agent` started.
    pub(crate) child: Option<Uuid>,
}

impl ToolRun {
    fn plain(result: Result<Value, ToolError>) -> ToolRun {
        ToolRun {
            result,
            tokens: Tokens::default(),
            cost_micros: None,
            child: None,
        }
    }
}

fn builtin(name: &str, agents: &str) -> Option<Tool> {
    let (kind, description, schema) = match name {
        "current_time" => (
            Kind::CurrentTime,
            "The current date and time (UTC).".to_string(),
            json!({"type": "object", "properties": {}}),
        ),
        "http_request" => (
            Kind::HttpRequest,
            "Makes an HTTP request and returns its status, content type and body (cut at 256 KiB)."
                .to_string(),
            json!({"type": "object", "properties": {
                "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
                "url": {"type": "string", "description": "An http or https URL."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"description": "Text, or JSON (sent as application/json)."}},
                "required": ["method", "url"], "additionalProperties": false}),
        ),
        "call_agent" => (
            Kind::CallAgent,
            format!(
                "Hands a piece of work to another agent of this organization and returns its \
                 answer. Agents you may call:\n{agents}"
            ),
            json!({"type": "object", "properties": {
                "agent_id": {"type": "string", "description": "The id of the agent to call."},
                "input": {"description": "What to ask it: text, or an object."}},
                "required": ["agent_id", "input"], "additionalProperties": false}),
        ),
        _ => return None,
    };
    Some(Tool {
        spec: ToolSpec {
            name: name.into(),
            description,
            input_schema: schema,
        },
        kind,
        check_args: true,
    })
}

impl Toolset {
    pub(crate) async fn load(
        rt: &Runtime,
        e: &Execution,
        agent: &Agent,
    ) -> Result<Toolset, Failure> {
        let decls = agent.tools.0.as_array().cloned().unwrap_or_default();
        let mut tools = vec![];
        let mut secrets: Option<ToolSecrets> = None;
        for d in &decls {
            match d["type"].as_str() {
                Some("builtin") => {
                    let name = d["name"].as_str().unwrap_or_default();
                    let agents = if name == "call_agent" {
                        rt.callable_agents(e).await
                    } else {
                        String::new()
                    };
                    tools.extend(builtin(name, &agents));
                }
                Some("http") => {
                    if secrets.is_none() {
                        secrets = Some(
                            rt.services
                                .open_tool_secrets(agent.tool_secrets.as_deref())
                                .map_err(Failure::internal)?,
                        );
                    }
                    let name = d["name"].as_str().unwrap_or_default().to_string();
                    let mut headers = vec![];
                    for (k, v) in d["headers"].as_object().into_iter().flatten() {
                        let value = match v.as_str() {
                            Some(s) => Some(s.to_string()),
                            None => secrets
                                .as_ref()
                                .and_then(|s| s.get(&name))
                                .and_then(|m| m.get(k))
                                .cloned(),
                        };
                        if let Some(value) = value {
                            headers.push((k.clone(), value));
                        }
                    }
                    tools.push(Tool {
                        spec: ToolSpec {
                            name,
                            description: d["description"].as_str().unwrap_or_default().into(),
                            input_schema: d["input_schema"].clone(),
                        },
                        kind: Kind::Http {
                            method: d["method"].as_str().unwrap_or("GET").into(),
                            url: d["url"].as_str().unwrap_or_default().into(),
                            headers,
                        },
                        check_args: true,
                    });
                }
                Some("mcp") => rt.mcp_tools(e, d, &mut tools).await?,
                _ => {}
            }
        }
        Ok(Toolset { tools })
    }

    pub(crate) fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec.clone()).collect()
    }

    fn find(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.spec.name == name)
    }

    fn names(&self) -> String {
        let n: Vec<&str> = self.tools.iter().map(|t| t.spec.name.as_str()).collect();
        if n.is_empty() {
            "none".into()
        } else {
            n.join(", ")
        }
    }
}

impl Runtime {
    /// The tools of one `{"type": "mcp"}` declaration, asked of the server now. A server that
    /// is gone or cannot be reached is logged; its chosen tools (if any were named) stay in the
    /// list, so the model's calls to them come back as clear errors rather than unknown tools.
    async fn mcp_tools(
        &self,
        e: &Execution,
        d: &Value,
        tools: &mut Vec<Tool>,
    ) -> Result<(), Failure> {
        let Some(id) = d["server_id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) else {
            return Ok(());
        };
        let chosen: Option<Vec<&str>> = d["tools"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        let Some(m) = self
            .services
            .store
            .mcp_server(e.org_id, id)
            .await
            .map_err(Failure::internal)?
        else {
            self.log(
                e,
                "warning",
                &format!("MCP server {id} no longer exists; its tools are left out"),
            )
            .await;
            return Ok(());
        };
        let server = Arc::new(self.services.mcp_target(&m).map_err(Failure::internal)?);
        let offered = match self.services.mcp.list_tools(&server).await {
            Ok(list) => list,
            Err(err) => {
                self.log(
                    e,
                    "warning",
                    &format!("listing the tools of MCP server {}: {err}", m.name),
                )
                .await;
                for name in chosen.into_iter().flatten() {
                    tools.push(Tool {
                        spec: ToolSpec {
                            name: name.into(),
                            description: format!("A tool of MCP server {}.", m.name),
                            input_schema: json!({"type": "object"}),
                        },
                        kind: Kind::Mcp {
                            server: server.clone(),
                            tool: name.into(),
                        },
                        check_args: false,
                    });
                }
                return Ok(());
            }
        };
        for t in offered {
            if chosen
                .as_ref()
                .is_some_and(|c| !c.contains(&t.name.as_str()))
            {
                continue;
            }
            if !agentry_services::tool_decls::valid_tool_name(&t.name)
                || tools.iter().any(|x| x.spec.name == t.name)
            {
                self.log(
                    e,
                    "warning",
                    &format!("MCP server {}: tool {:?} left out (its name is not usable or already taken)", m.name, t.name),
                )
                .await;
                continue;
            }
            let check_args = agentry_core::schema::check(&t.input_schema).is_ok();
            tools.push(Tool {
                spec: ToolSpec {
                    name: t.name.clone(),
                    description: t.description,
                    input_schema: t.input_schema,
                },
                kind: Kind::Mcp {
                    server: server.clone(),
                    tool: t.name,
                },
                check_args,
            });
        }
        Ok(())
    }
}

/// What the model is told a finished tool step returned.
fn content_of(s: &Step) -> String {
    if s.status == "success" {
        match s.output.as_ref().map(|o| &o.0["result"]) {
            Some(Value::String(t)) => t.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    } else {
        json!({"error": s.error.as_ref().map(|e| e.0.clone())}).to_string()
    }
}

impl Runtime {
    /// One tool call at journal index `idx`. A call that finished in an earlier attempt is not
    /// made again; a call refused by a reviewer is not made at all. Returns what the model is
    /// told.
    pub(crate) async fn tool_step(
        &self,
        e: &Execution,
        tools: &Toolset,
        idx: i32,
        call: &ToolCall,
        approval: Option<&Decision>,
        prior: Option<&Step>,
    ) -> String {
        if let Some(s) = prior.filter(|s| s.kind == "tool" && s.status != "running") {
            return content_of(s);
        }
        if let Some(d) = approval
            && !d.approved
        {
            return d.refusal();
        }
        let store = &self.services.store;
        // A call_agent's child is named before it exists, so a resumed call finds it again.
        let child = (call.name == "call_agent").then(|| {
            prior
                .and_then(|s| s.input.0["child_execution_id"].as_str())
                .and_then(|s| s.parse::<Uuid>().ok())
                .unwrap_or_else(new_id)
        });
        let mut input = json!({"call_id": call.id, "arguments": call.arguments});
        if let Some(c) = child {
            input["child_execution_id"] = json!(c);
        }
        let mut step = Step::started(e.id, idx, "tool", &call.name, "running", input);
        match store.start_step(e.org_id, &step).await {
            Ok(s) => step = s,
            Err(err) => {
                return json!({"error": {"code": "internal", "message": err.to_string()}})
                    .to_string();
            }
        }
        self.services
            .emit_step_as(e.org_id, &step, "tool_call", true)
            .await;
        let run = self.run_tool(e, tools, call, child).await;
        let done = Utc::now();
        step.completed_at = Some(done);
        step.duration_ms = Some((done - step.started_at).num_milliseconds().max(0));
        step.input_tokens = run.tokens.input;
        step.cached_input_tokens = run.tokens.cached_input;
        step.output_tokens = run.tokens.output;
        step.reasoning_tokens = run.tokens.reasoning;
        step.cost_micros = run.cost_micros;
        let line = match &run.result {
            Ok(v) => {
                step.status = "success".into();
                let mut out = json!({"result": v});
                if let Some(c) = run.child {
                    out["child_execution_id"] = json!(c);
                }
                step.output = Some(Json(out));
                format!(
                    "step {idx} tool {}: success in {} ms",
                    call.name,
                    step.duration_ms.unwrap_or(0)
                )
            }
            Err(err) => {
                step.status = "failed".into();
                step.error = Some(Json(json!({"code": err.code, "message": err.message})));
                if let Some(c) = run.child {
                    step.output = Some(Json(json!({"child_execution_id": c})));
                }
                format!("step {idx} tool {} failed: {err}", call.name)
            }
        };
        if let Err(err) = store.finish_step(&step).await {
            tracing::error!(execution_id = %e.id, error = %err, "recording a tool step failed");
        }
        let level = if run.result.is_ok() {
            "info"
        } else {
            "warning"
        };
        tokio::join!(
            self.services
                .emit_step_as(e.org_id, &step, "tool_result", false),
            self.log(e, level, &line)
        );
        content_of(&step)
    }

    async fn run_tool(
        &self,
        e: &Execution,
        tools: &Toolset,
        call: &ToolCall,
        child: Option<Uuid>,
    ) -> ToolRun {
        let Some(tool) = tools.find(&call.name) else {
            return ToolRun::plain(Err(ToolError::new(
                "unknown_tool",
                format!(
                    "there is no tool named {:?}; the tools are: {}",
                    call.name,
                    tools.names()
                ),
            )));
        };
        if !call.arguments.is_object() {
            return ToolRun::plain(Err(ToolError::invalid(
                "the arguments are not a JSON object",
            )));
        }
        if tool.check_args
            && let Err(why) =
                agentry_core::schema::validate(&tool.spec.input_schema, &call.arguments)
        {
            return ToolRun::plain(Err(ToolError::invalid(format!(
                "the arguments do not match the tool's schema: {why}"
            ))));
        }
        let args = &call.arguments;
        match &tool.kind {
            Kind::CurrentTime => {
                let now = Utc::now();
                ToolRun::plain(Ok(json!({
                    "utc": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "unix": now.timestamp(),
                    "weekday": now.format("%A").to_string(),
                })))
            }
            Kind::HttpRequest => {
                let mut headers: Vec<(String, String)> = args["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect();
                let body = match &args["body"] {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    v => {
                        if !headers
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                        {
                            headers.push(("content-type".into(), "application/json".into()));
                        }
                        Some(v.to_string())
                    }
                };
                let req = HttpCall {
                    method: args["method"].as_str().unwrap_or("GET").into(),
                    url: args["url"].as_str().unwrap_or_default().into(),
                    headers,
                    body,
                };
                ToolRun::plain(self.services.http.send(&req).await)
            }
            Kind::Http {
                method,
                url,
                headers,
            } => {
                let (url, rest) = fill_template(url, args);
                let mut headers = headers.clone();
                let mut body = None;
                let url = if matches!(method.as_str(), "GET" | "HEAD" | "DELETE") {
                    with_query(&url, &rest)
                } else {
                    headers.push(("content-type".into(), "application/json".into()));
                    body = Some(Value::Object(rest).to_string());
                    url
                };
                let req = HttpCall {
                    method: method.clone(),
                    url,
                    headers,
                    body,
                };
                ToolRun::plain(self.services.http.send(&req).await)
            }
            Kind::Mcp { server, tool } => ToolRun::plain(
                self.services
                    .mcp
                    .call_tool(server, tool, args.clone())
                    .await,
            ),
            Kind::CallAgent => match child {
                Some(c) => self.call_agent(e, args, c).await,
                None => ToolRun::plain(Err(ToolError::new("internal", "no child id"))),
            },
        }
    }
}

/// Fills `{name}` placeholders from the arguments (percent-encoded); returns the URL and the
/// arguments not used by it.
fn fill_template(template: &str, args: &Value) -> (String, serde_json::Map<String, Value>) {
    let mut rest = args.as_object().cloned().unwrap_or_default();
    let mut out = String::new();
    let mut s = template;
    while let Some(open) = s.find('{') {
        out.push_str(&s[..open]);
        let Some(len) = s[open..].find('}') else {
            out.push_str(&s[open..]);
            s = "";
            break;
        };
        let key = &s[open + 1..open + len];
        let value = match rest.remove(key) {
            Some(Value::String(v)) => v,
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        out.push_str(&encode(&value));
        s = &s[open + len + 1..];
    }
    out.push_str(s);
    (out, rest)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_query(url: &str, args: &serde_json::Map<String, Value>) -> String {
    if args.is_empty() {
        return url.to_string();
    }
    let pairs: Vec<String> = args
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            format!("{}={}", encode(k), encode(&v))
        })
        .collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_leave_the_rest() {
        let (url, rest) = fill_template(
            "https://x/cities/{city}/days/{n}",
            &json!({"city": "São Paulo/1", "n": 3, "units": "metric"}),
        );
        assert_eq!(url, "https://x/cities/S%C3%A3o%20Paulo%2F1/days/3");
        assert_eq!(Value::Object(rest.clone()), json!({"units": "metric"}));
        assert_eq!(with_query(&url, &rest), format!("{url}?units=metric"));
    }
}
