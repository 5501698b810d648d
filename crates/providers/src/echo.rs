//! `echo`: a provider that answers locally, with no network, by repeating the last user
//! message. It lets a new user try every part of Agentry before adding a key. Its token counts
//! are words, not a real tokenizer's, and it costs nothing.

use crate::{ChatRequest, ChatResponse, Role, Usage};

pub(crate) fn chat(
    req: &ChatRequest,
    on_delta: Option<&(dyn Fn(&str) + Send + Sync)>,
) -> ChatResponse {
    let text = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
        .unwrap_or_default();
    if let Some(f) = on_delta {
        for piece in text.split_inclusive(' ') {
            f(piece);
        }
    }
    let words = |s: &str| s.split_whitespace().count() as u64;
    let input = req.system.as_deref().map_or(0, words)
        + req.messages.iter().map(|m| words(&m.content)).sum::<u64>();
    ChatResponse {
        model: if req.model.is_empty() {
            "echo".into()
        } else {
            req.model.clone()
        },
        usage: Usage {
            input_tokens: input,
            output_tokens: words(&text),
            ..Usage::default()
        },
        text,
        tool_calls: vec![],
        finish_reason: Some("stop".into()),
    }
}
