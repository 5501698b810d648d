//! What the mock provider sends: OpenAI's and Anthropic's reply bodies and stream events, and
//! the turn a [`Reply::ByToolResults`] picks for a request.

use serde_json::{Value, json};

use super::{MockUsage, Reply};

/// `s` in two pieces, split at a character boundary near the middle.
fn halves(s: &str) -> [&str; 2] {
    let mid = (0..=s.len() / 2)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    let (a, b) = s.split_at(mid);
    [a, b]
}

fn words(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    for ch in text.chars() {
        cur.push(ch);
        if ch == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn openai_usage(u: MockUsage) -> Value {
    json!({
        "prompt_tokens": u.input, "completion_tokens": u.output, "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

pub(super) fn openai_json(
    model: &str,
    text: &str,
    calls: &[(String, Value)],
    u: MockUsage,
) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| {
            json!({"id": format!("call_{i}"), "type": "function",
                   "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": if calls.is_empty() { json!(text) } else { Value::Null }});
    if !calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
    }
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" }}],
        "usage": openai_usage(u),
    })
}

pub(super) fn openai_events(
    model: &str,
    text: &str,
    calls: &[(String, Value)],
    u: MockUsage,
) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
                   "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for w in words(text) {
        out.push(chunk(json!({"content": w}), Value::Null));
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        out.push(chunk(
            json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function",
                                    "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        let a = args.to_string();
        for part in halves(&a) {
            out.push(chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
    }
    out.push(chunk(
        json!({}),
        json!(if calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }),
    ));
    out.push(format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": model, "choices": [], "usage": openai_usage(u)})
    ));
    out.push("data: [DONE]\n\n".into());
    out
}

pub(super) fn anthropic_json(
    model: &str,
    text: &str,
    calls: &[(String, Value)],
    u: MockUsage,
) -> Value {
    let mut content = vec![];
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        content.push(
            json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": args}),
        );
    }
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" }, "stop_sequence": null,
        "usage": {"input_tokens": u.input - u.cached, "cache_read_input_tokens": u.cached,
                  "cache_creation_input_tokens": 0, "output_tokens": u.output},
    })
}

pub(super) fn anthropic_events(
    model: &str,
    text: &str,
    calls: &[(String, Value)],
    u: MockUsage,
) -> Vec<String> {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut out = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
               "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": u.input - u.cached, "cache_read_input_tokens": u.cached,
                         "cache_creation_input_tokens": 0, "output_tokens": 1}}}),
    )];
    let mut index = 0;
    if !text.is_empty() {
        out.push(ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
        for w in words(text) {
            out.push(ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
            ));
        }
        out.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        index = 1;
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        let idx = index + i;
        out.push(ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": idx,
                   "content_block": {"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": {}}}),
        ));
        let a = args.to_string();
        for part in halves(&a) {
            out.push(ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": idx,
                       "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        out.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": idx}),
        ));
    }
    out.push(ev("ping", json!({"type": "ping"})));
    out.push(ev(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" }, "stop_sequence": null},
               "usage": {"output_tokens": u.output}}),
    ));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

/// Picks the turn of a [`Reply::ByToolResults`] for this request body.
pub(super) fn by_tool_results(turns: &[Reply], body: &Value) -> Reply {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let results = messages
        .iter()
        .map(|m| {
            if m["role"] == "tool" {
                1
            } else {
                m["content"].as_array().map_or(0, |c| {
                    c.iter().filter(|b| b["type"] == "tool_result").count()
                })
            }
        })
        .sum::<usize>();
    let input = messages
        .iter()
        .find(|m| m["role"] == "user")
        .map(|m| match &m["content"] {
            Value::String(t) => t.clone(),
            c => c.to_string(),
        })
        .unwrap_or_default();
    let Some(turn) = turns.get(results.min(turns.len().saturating_sub(1))) else {
        return Reply::text("mock reply");
    };
    match turn {
        Reply::Tools(calls) => Reply::Tools(
            calls
                .iter()
                .map(|(name, args)| {
                    let mut args = args.clone();
                    if let Some(o) = args.as_object_mut() {
                        for v in o.values_mut() {
                            if v == "$input" {
                                *v = Value::String(input.clone());
                            }
                        }
                    }
                    (name.clone(), args)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
