//! OpenAI chat completions, and every server that speaks them (`base_url` includes `/v1`).

use serde_json::{Value, json};

use crate::sse::Parser;
use crate::types::parse_arguments;
use crate::{
    ChatRequest, ChatResponse, Endpoint, ProviderError, Role, ToolCall, Usage, post, read_json,
    send,
};

pub(crate) fn body(req: &ChatRequest, stream: bool) -> Value {
    let mut messages = vec![];
    if let Some(s) = &req.system {
        messages.push(json!({"role": "system", "content": s}));
    }
    for m in &req.messages {
        messages.push(match m.role {
            Role::User => json!({"role": "user", "content": m.content}),
            Role::Tool => json!({
                "role": "tool",
                "tool_call_id": m.tool_call_id,
                "content": m.content,
            }),
            Role::Assistant if m.tool_calls.is_empty() => {
                json!({"role": "assistant", "content": m.content})
            }
            Role::Assistant => json!({
                "role": "assistant",
                "content": if m.content.is_empty() { Value::Null } else { json!(m.content) },
                "tool_calls": m.tool_calls.iter().map(|c| json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": arguments_string(&c.arguments)},
                })).collect::<Vec<_>>(),
            }),
        });
    }
    let mut b = json!({"model": req.model, "messages": messages});
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t);
    }
    if let Some(n) = req.max_output_tokens {
        // OpenAI's reasoning models refuse `max_tokens`; most compatible servers only know it.
        let field = if is_reasoning_model(&req.model) {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        b[field] = json!(n);
    }
    if !req.tools.is_empty() {
        b["tools"] = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema,
                }})
            })
            .collect();
    }
    if let Some(schema) = &req.response_schema {
        b["response_format"] = json!({"type": "json_schema", "json_schema": {
            "name": "output", "schema": schema, "strict": false,
        }});
    }
    if stream {
        b["stream"] = json!(true);
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

fn is_reasoning_model(model: &str) -> bool {
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| model == *p || model.starts_with(&format!("{p}-")))
}

fn arguments_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn usage(u: &Value) -> Usage {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Usage {
        input_tokens: n(&u["prompt_tokens"]),
        cached_input_tokens: n(&u["prompt_tokens_details"]["cached_tokens"]),
        output_tokens: n(&u["completion_tokens"]),
        reasoning_tokens: n(&u["completion_tokens_details"]["reasoning_tokens"]),
    }
}

pub(crate) async fn chat(
    http: &reqwest::Client,
    ep: &Endpoint,
    req: &ChatRequest,
    on_delta: Option<&(dyn Fn(&str) + Send + Sync)>,
) -> Result<ChatResponse, ProviderError> {
    let mut rb = post(http, ep, "chat/completions", &body(req, on_delta.is_some()));
    if let Some(k) = &ep.api_key {
        rb = rb.bearer_auth(k);
    }
    let res = send(rb).await?;
    match on_delta {
        None => parse_reply(&read_json(res).await?),
        Some(f) => crate::sse::read_stream::<StreamReader>(res, f).await,
    }
}

pub(crate) fn parse_reply(v: &Value) -> Result<ChatResponse, ProviderError> {
    let choice = &v["choices"][0];
    let msg = &choice["message"];
    if !msg.is_object() {
        return Err(ProviderError::fatal(
            "invalid_response",
            "the reply has no choices[0].message",
        ));
    }
    let tool_calls = msg["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_string(),
                    name: c["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    arguments: parse_arguments(
                        c["function"]["arguments"].as_str().unwrap_or_default(),
                    ),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ChatResponse {
        model: v["model"].as_str().unwrap_or_default().to_string(),
        text: msg["content"].as_str().unwrap_or_default().to_string(),
        tool_calls,
        usage: usage(&v["usage"]),
        finish_reason: choice["finish_reason"].as_str().map(str::to_string),
    })
}

/// A tool call being assembled from stream deltas.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// A streamed completion as it arrives: feed it the body's chunks, then finish it.
#[derive(Default)]
pub(crate) struct StreamReader {
    parser: Parser,
    out: ChatResponse,
    calls: Vec<PartialCall>,
    done: bool,
}

impl crate::sse::StreamRead for StreamReader {
    /// Takes one chunk of the body; `true` once the stream has said `[DONE]`.
    fn feed(
        &mut self,
        chunk: &[u8],
        on_delta: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<bool, ProviderError> {
        for ev in self.parser.push(chunk)? {
            if ev.data.trim() == "[DONE]" {
                self.done = true;
                return Ok(true);
            }
            let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
                ProviderError::fatal(
                    "invalid_response",
                    format!("a stream event is not JSON: {e}"),
                )
            })?;
            if v["error"].is_object() {
                return Err(ProviderError::retryable(
                    "provider_unavailable",
                    format!(
                        "the provider reported an error mid-stream: {}",
                        v["error"]["message"].as_str().unwrap_or("no message")
                    ),
                ));
            }
            if let Some(m) = v["model"].as_str() {
                self.out.model = m.to_string();
            }
            if v["usage"].is_object() {
                self.out.usage = usage(&v["usage"]);
            }
            let choice = &v["choices"][0];
            if let Some(r) = choice["finish_reason"].as_str() {
                self.out.finish_reason = Some(r.to_string());
            }
            let delta = &choice["delta"];
            if let Some(t) = delta["content"].as_str()
                && !t.is_empty()
            {
                self.out.text.push_str(t);
                on_delta(t);
            }
            for c in delta["tool_calls"].as_array().into_iter().flatten() {
                let i = c["index"].as_u64().unwrap_or(self.calls.len() as u64) as usize;
                if i > 1024 {
                    return Err(ProviderError::fatal("invalid_response", "tool call index"));
                }
                if self.calls.len() <= i {
                    self.calls.resize_with(i + 1, PartialCall::default);
                }
                let p = &mut self.calls[i];
                if let Some(id) = c["id"].as_str() {
                    p.id = id.to_string();
                }
                if let Some(n) = c["function"]["name"].as_str() {
                    p.name.push_str(n);
                }
                if let Some(a) = c["function"]["arguments"].as_str() {
                    p.arguments.push_str(a);
                }
            }
        }
        Ok(false)
    }

    /// The completion, or why the stream was not a whole one.
    fn finish(self) -> Result<ChatResponse, ProviderError> {
        let mut out = self.out;
        if !self.done {
            return Err(ProviderError::retryable(
                "stream_interrupted",
                "the provider's stream ended before [DONE]",
            ));
        }
        out.tool_calls = self
            .calls
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .map(|c| ToolCall {
                id: c.id,
                name: c.name,
                arguments: parse_arguments(&c.arguments),
            })
            .collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, ToolSpec};

    #[test]
    fn request_body_has_the_wire_shape() {
        let req = ChatRequest {
            model: "gpt-4o-mini".into(),
            system: Some("be brief".into()),
            messages: vec![Message::user("hi")],
            temperature: Some(0.2),
            max_output_tokens: Some(100),
            tools: vec![ToolSpec {
                name: "now".into(),
                description: "the time".into(),
                input_schema: json!({"type": "object"}),
            }],
            response_schema: Some(json!({"type": "object"})),
        };
        let b = body(&req, true);
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(b["messages"][1], json!({"role": "user", "content": "hi"}));
        assert_eq!(b["max_tokens"], 100);
        assert_eq!(
            b["response_format"]["json_schema"]["schema"],
            json!({"type": "object"})
        );
        assert_eq!(
            b["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        assert_eq!(b["stream_options"]["include_usage"], true);
        let o = body(
            &ChatRequest {
                model: "o3-mini".into(),
                max_output_tokens: Some(5),
                ..req
            },
            false,
        );
        assert_eq!(o["max_completion_tokens"], 5);
        assert!(o.get("stream").is_none());
    }

    #[test]
    fn replies_parse_with_usage_and_tool_calls() {
        let r = parse_reply(&json!({
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"message": {"content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "now", "arguments": "{\"tz\":\"UTC\"}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 2}}
        }))
        .unwrap();
        assert_eq!(r.tool_calls[0].arguments, json!({"tz": "UTC"}));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 10,
                cached_input_tokens: 4,
                output_tokens: 5,
                reasoning_tokens: 2
            }
        );
        assert!(parse_reply(&json!({"choices": []})).is_err());
    }
}
