//! Anthropic's Messages API (`base_url` without `/v1`, as Anthropic's SDK takes it).

use serde_json::{Value, json};

use crate::sse::Parser;
use crate::types::parse_arguments;
use crate::{
    ChatRequest, ChatResponse, Endpoint, FINAL_ANSWER_TOOL, ProviderError, Role, ToolCall, Usage,
    post, read_json, send,
};

/// `max_tokens` is required by the API; this is used when the agent sets none.
const DEFAULT_MAX_TOKENS: u32 = 4096;
const API_VERSION: &str = "2023-06-01";

pub(crate) fn body(req: &ChatRequest, stream: bool) -> Value {
    let mut messages: Vec<Value> = vec![];
    for m in &req.messages {
        let (role, content) = match m.role {
            Role::User => ("user", json!(m.content)),
            Role::Tool => (
                "user",
                json!([{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}]),
            ),
            Role::Assistant if m.tool_calls.is_empty() => ("assistant", json!(m.content)),
            Role::Assistant => {
                let mut blocks = vec![];
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name,
                        "input": if c.arguments.is_object() { c.arguments.clone() } else { json!({}) }}));
                }
                ("assistant", Value::Array(blocks))
            }
        };
        // Consecutive tool results go back in one user turn, as the API wants.
        if let Some(last) = messages.last_mut()
            && m.role == Role::Tool
            && last["role"] == "user"
            && last["content"].is_array()
            && let Some(arr) = last["content"].as_array_mut()
            && let Some(new) = content.as_array()
        {
            arr.extend(new.iter().cloned());
            continue;
        }
        messages.push(json!({"role": role, "content": content}));
    }
    let mut b = json!({
        "model": req.model,
        "messages": messages,
        "max_tokens": req.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
    });
    if let Some(s) = &req.system {
        b["system"] = json!(s);
    }
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t);
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    if let Some(schema) = &req.response_schema {
        // The answer is the input of a tool the model must call: that one alone when it has no
        // other tools, else any (the final answer among them).
        tools.push(json!({"name": FINAL_ANSWER_TOOL, "input_schema": schema,
            "description": "Give your final answer. Call this when you are done, with the answer as its input."}));
        b["tool_choice"] = if req.tools.is_empty() {
            json!({"type": "tool", "name": FINAL_ANSWER_TOOL})
        } else {
            json!({"type": "any"})
        };
    }
    if !tools.is_empty() {
        b["tools"] = Value::Array(tools);
    }
    if stream {
        b["stream"] = json!(true);
    }
    b
}

fn usage(u: &Value, into: &mut Usage) {
    let n = |v: &Value| v.as_u64();
    // Anthropic's input_tokens excludes the cache reads and writes; ours includes them.
    if let Some(i) = n(&u["input_tokens"]) {
        let read = n(&u["cache_read_input_tokens"]).unwrap_or(0);
        let written = n(&u["cache_creation_input_tokens"]).unwrap_or(0);
        into.input_tokens = i + read + written;
        into.cached_input_tokens = read;
    }
    if let Some(o) = n(&u["output_tokens"]) {
        into.output_tokens = o;
    }
}

pub(crate) async fn chat(
    http: &reqwest::Client,
    ep: &Endpoint,
    req: &ChatRequest,
    on_delta: Option<&(dyn Fn(&str) + Send + Sync)>,
) -> Result<ChatResponse, ProviderError> {
    let mut rb = post(http, ep, "v1/messages", &body(req, on_delta.is_some()))
        .header("anthropic-version", API_VERSION);
    if let Some(k) = &ep.api_key {
        rb = rb.header("x-api-key", k);
    }
    let res = send(rb).await?;
    let mut out = match on_delta {
        None => parse_reply(&read_json(res).await?)?,
        Some(f) => crate::sse::read_stream::<StreamReader>(res, f).await?,
    };
    if req.response_schema.is_some()
        && let Some(i) = out
            .tool_calls
            .iter()
            .position(|c| c.name == FINAL_ANSWER_TOOL)
    {
        // The structured answer: its input is the reply; other calls made with it are moot.
        out.text = out.tool_calls[i].arguments.to_string();
        out.tool_calls.clear();
    }
    Ok(out)
}

pub(crate) fn parse_reply(v: &Value) -> Result<ChatResponse, ProviderError> {
    let Some(blocks) = v["content"].as_array() else {
        return Err(ProviderError::fatal(
            "invalid_response",
            "the reply has no content array",
        ));
    };
    let mut out = ChatResponse {
        model: v["model"].as_str().unwrap_or_default().to_string(),
        finish_reason: v["stop_reason"].as_str().map(str::to_string),
        ..ChatResponse::default()
    };
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => out.text.push_str(b["text"].as_str().unwrap_or_default()),
            Some("tool_use") => out.tool_calls.push(ToolCall {
                id: b["id"].as_str().unwrap_or_default().to_string(),
                name: b["name"].as_str().unwrap_or_default().to_string(),
                arguments: b["input"].clone(),
            }),
            _ => {}
        }
    }
    usage(&v["usage"], &mut out.usage);
    Ok(out)
}

enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

/// A streamed message as it arrives: feed it the body's chunks, then finish it.
#[derive(Default)]
pub(crate) struct StreamReader {
    parser: Parser,
    out: ChatResponse,
    blocks: Vec<Block>,
    stopped: bool,
}

impl crate::sse::StreamRead for StreamReader {
    /// Takes one chunk of the body; `true` once the message has ended.
    fn feed(
        &mut self,
        chunk: &[u8],
        on_delta: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<bool, ProviderError> {
        for ev in self.parser.push(chunk)? {
            let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
                ProviderError::fatal(
                    "invalid_response",
                    format!("a stream event is not JSON: {e}"),
                )
            })?;
            let kind = ev
                .name
                .as_deref()
                .or(v["type"].as_str())
                .unwrap_or_default();
            match kind {
                "message_start" => {
                    let m = &v["message"];
                    self.out.model = m["model"].as_str().unwrap_or_default().to_string();
                    usage(&m["usage"], &mut self.out.usage);
                }
                "content_block_start" => {
                    let b = &v["content_block"];
                    self.blocks.push(match b["type"].as_str() {
                        Some("text") => {
                            if let Some(t) = b["text"].as_str()
                                && !t.is_empty()
                            {
                                self.out.text.push_str(t);
                                on_delta(t);
                            }
                            Block::Text
                        }
                        Some("tool_use") => Block::Tool {
                            id: b["id"].as_str().unwrap_or_default().to_string(),
                            name: b["name"].as_str().unwrap_or_default().to_string(),
                            json: String::new(),
                        },
                        _ => Block::Other,
                    });
                }
                "content_block_delta" => {
                    let d = &v["delta"];
                    match (d["type"].as_str(), self.blocks.last_mut()) {
                        (Some("text_delta"), _) => {
                            let t = d["text"].as_str().unwrap_or_default();
                            if !t.is_empty() {
                                self.out.text.push_str(t);
                                on_delta(t);
                            }
                        }
                        (Some("input_json_delta"), Some(Block::Tool { json, .. })) => {
                            json.push_str(d["partial_json"].as_str().unwrap_or_default());
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    if let Some(r) = v["delta"]["stop_reason"].as_str() {
                        self.out.finish_reason = Some(r.to_string());
                    }
                    usage(&v["usage"], &mut self.out.usage);
                }
                "message_stop" => {
                    self.stopped = true;
                    return Ok(true);
                }
                "error" => {
                    let kind = v["error"]["type"].as_str().unwrap_or_default();
                    let msg = v["error"]["message"].as_str().unwrap_or("no message");
                    let retryable =
                        matches!(kind, "overloaded_error" | "api_error" | "rate_limit_error");
                    let e = format!("the provider reported {kind} mid-stream: {msg}");
                    return Err(if retryable {
                        ProviderError::retryable("provider_unavailable", e)
                    } else {
                        ProviderError::fatal("bad_request", e)
                    });
                }
                _ => {} // ping, content_block_stop
            }
        }
        Ok(false)
    }

    /// The message, or why the stream was not a whole one.
    fn finish(self) -> Result<ChatResponse, ProviderError> {
        let mut out = self.out;
        if !self.stopped {
            return Err(ProviderError::retryable(
                "stream_interrupted",
                "the provider's stream ended before message_stop",
            ));
        }
        out.tool_calls = self
            .blocks
            .into_iter()
            .filter_map(|b| match b {
                Block::Tool { id, name, json } => Some(ToolCall {
                    id,
                    name,
                    arguments: parse_arguments(&json),
                }),
                _ => None,
            })
            .collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn tool_results_join_one_user_turn() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "now".into(),
            arguments: json!({}),
        };
        let req = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            system: Some("sys".into()),
            messages: vec![
                Message::user("hi"),
                Message {
                    role: Role::Assistant,
                    content: String::new(),
                    tool_calls: vec![call("a"), call("b")],
                    tool_call_id: None,
                },
                Message {
                    role: Role::Tool,
                    content: "1".into(),
                    tool_calls: vec![],
                    tool_call_id: Some("a".into()),
                },
                Message {
                    role: Role::Tool,
                    content: "2".into(),
                    tool_calls: vec![],
                    tool_call_id: Some("b".into()),
                },
            ],
            ..ChatRequest::default()
        };
        let b = body(&req, false);
        assert_eq!(b["system"], "sys");
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(b["messages"].as_array().unwrap().len(), 3);
        assert_eq!(b["messages"][2]["content"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn usage_counts_cache_reads_as_input() {
        let r = parse_reply(&json!({
            "model": "claude-sonnet-4-5", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "hello"}],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 90,
                "cache_creation_input_tokens": 0, "output_tokens": 7}
        }))
        .unwrap();
        assert_eq!(r.text, "hello");
        assert_eq!(r.usage.input_tokens, 100);
        assert_eq!(r.usage.cached_input_tokens, 90);
        assert_eq!(r.usage.output_tokens, 7);
    }
}
