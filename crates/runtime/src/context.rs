//! What a model is sent: the execution's input (with its task), or for a conversation's reply
//! the conversation's history, trimmed to the agent's context budget.

use agentry_providers::Message;
use agentry_services::run_events::replying_to;
use agentry_store::{Agent, Execution};
use serde_json::{Value, json};

use crate::Runtime;
use crate::run::Failure;

/// The context budget of an agent that does not set `max_context_tokens`.
pub(crate) const DEFAULT_CONTEXT_TOKENS: i64 = 16_000;
/// The most messages of history read for one reply.
const HISTORY_LIMIT: i64 = 1_000;

/// A rough token count (four characters a token, plus a little per message), good enough to
/// keep a request inside a budget without a tokenizer per model.
fn estimate(text: &str) -> i64 {
    (text.chars().count() as i64 + 3) / 4 + 4
}

/// The newest messages that fit in `budget` tokens, oldest first. The last (the one being
/// answered) is always kept; the history never starts with an assistant message.
pub(crate) fn trim(messages: Vec<Message>, budget: i64) -> Vec<Message> {
    let mut used = 0;
    let mut keep = 0;
    for (i, m) in messages.iter().enumerate().rev() {
        used += estimate(&m.content);
        if used > budget && i + 1 < messages.len() {
            break;
        }
        keep += 1;
    }
    let mut out: Vec<Message> = messages.into_iter().rev().take(keep).collect();
    out.reverse();
    while out.len() > 1 && out[0].role != agentry_providers::Role::User {
        out.remove(0);
    }
    out
}

impl Runtime {
    pub(crate) async fn messages(
        &self,
        e: &Execution,
        agent: &Agent,
    ) -> Result<Vec<Message>, Failure> {
        let (Some(cid), Some(mid)) = (e.conversation_id, replying_to(e)) else {
            return Ok(vec![Message::user(self.prompt(e).await)]);
        };
        let history = self
            .services
            .store
            .history(e.org_id, cid, mid, HISTORY_LIMIT)
            .await
            .map_err(Failure::internal)?;
        let messages: Vec<Message> = history
            .into_iter()
            .filter_map(|m| match m.role.as_str() {
                "user" => Some(Message::user(m.content)),
                "assistant" => Some(Message::assistant(m.content)),
                _ => None,
            })
            .collect();
        if messages.is_empty() {
            return Err(Failure::failed(
                "message_not_found",
                "the message this reply answers no longer exists",
            ));
        }
        let budget = agent
            .max_context_tokens
            .map_or(DEFAULT_CONTEXT_TOKENS, i64::from)
            - estimate(&agent.instructions);
        Ok(trim(messages, budget))
    }

    /// The user message: the input as text, with the task's title and description first.
    async fn prompt(&self, e: &Execution) -> String {
        let input = match &e.input.0 {
            Value::String(s) => s.clone(),
            v => ["message", "text", "prompt", "input"]
                .iter()
                .find_map(|k| v[k].as_str().map(str::to_string))
                .unwrap_or_else(|| v.to_string()),
        };
        let Some(tid) = e.task_id else { return input };
        match self.services.store.task(e.org_id, tid).await {
            Ok(Some(t)) => {
                let mut s = format!("Task: {}", t.title);
                if !t.description.is_empty() {
                    s.push_str(&format!("\n\n{}", t.description));
                }
                if !(t.input.0.is_null() || t.input.0 == json!({})) {
                    s.push_str(&format!("\n\nTask input: {}", t.input.0));
                }
                if !(e.input.0.is_null() || e.input.0 == json!({})) {
                    s.push_str(&format!("\n\n{input}"));
                }
                s
            }
            _ => input,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(m: &[Message]) -> Vec<&str> {
        m.iter().map(|m| m.content.as_str()).collect()
    }

    #[test]
    fn trim_keeps_the_newest_that_fit_and_starts_with_a_user() {
        let long = "x".repeat(400); // about 104 tokens
        let msgs = vec![
            Message::user(long.clone()),
            Message::assistant(long.clone()),
            Message::user(long.clone()),
            Message::assistant("short"),
            Message::user("last"),
        ];
        assert_eq!(trim(msgs.clone(), 10_000).len(), 5);
        // Room for the last two only: the assistant reply would be first, so it goes too.
        let t = trim(msgs.clone(), 100);
        assert_eq!(texts(&t), vec!["last"]);
        let t = trim(msgs.clone(), 230);
        assert_eq!(texts(&t), vec![long.as_str(), "short", "last"]);
        // The message being answered stays, whatever its size.
        assert_eq!(texts(&trim(msgs, 1)), vec!["last"]);
    }
}
