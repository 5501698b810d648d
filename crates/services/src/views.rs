//! Views of executions and their steps: what the API returns and what the live streams carry
//! (`step` and `done` events), so both say the same thing.

use agentry_store as store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Token counts. `input_tokens` includes the cached ones; `output_tokens` includes reasoning.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_tokens: i64,
}

impl From<store::Tokens> for UsageView {
    fn from(t: store::Tokens) -> Self {
        UsageView {
            input_tokens: t.input,
            cached_input_tokens: t.cached_input,
            output_tokens: t.output,
            reasoning_tokens: t.reasoning,
            total_tokens: t.input + t.output,
        }
    }
}

/// `1234` µUSD as `"0.001234"`.
pub fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// Why an execution or a step did not succeed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunErrorView {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionView {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub agent_version: i32,
    pub task_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    /// The execution whose `call_agent` tool started this one.
    pub parent_execution_id: Option<Uuid>,
    /// `pending`, `running`, `awaiting_approval`, `success`, `failed`, `timeout` or `cancelled`.
    pub status: String,
    /// A string, or an object such as `{"message": "…"}`.
    #[schema(value_type = StringOrObject)]
    pub input: Value,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    #[schema(value_type = Option<RunErrorView>)]
    pub error: Option<Value>,
    pub attempt: i32,
    pub model: Option<String>,
    pub provider_id: Option<Uuid>,
    pub usage: UsageView,
    /// Integer µUSD; `null` when no price is known for the model.
    pub cost_micros: Option<i64>,
    /// The same cost in dollars, as a decimal string.
    pub cost_usd: Option<String>,
    pub confidence: Option<f64>,
    pub timeout_seconds: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

impl From<store::Execution> for ExecutionView {
    fn from(e: store::Execution) -> Self {
        ExecutionView {
            id: e.id,
            agent_id: e.agent_id,
            agent_version: e.agent_version,
            task_id: e.task_id,
            conversation_id: e.conversation_id,
            parent_execution_id: e.parent_execution_id,
            status: e.status,
            input: e.input.0,
            output: e.output.map(|o| o.0),
            error: e.error.map(|o| o.0),
            attempt: e.attempt,
            model: e.model,
            provider_id: e.provider_id,
            usage: store::Tokens {
                input: e.input_tokens,
                cached_input: e.cached_input_tokens,
                output: e.output_tokens,
                reasoning: e.reasoning_tokens,
            }
            .into(),
            cost_micros: e.cost_micros,
            cost_usd: e.cost_micros.map(usd),
            confidence: e.confidence,
            timeout_seconds: e.timeout_seconds,
            created_by: e.created_by,
            created_at: e.created_at,
            started_at: e.started_at,
            completed_at: e.completed_at,
            duration_ms: e.duration_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub id: Uuid,
    pub execution_id: Uuid,
    pub index: i32,
    /// `llm`, `tool` or `approval`.
    pub kind: String,
    pub name: String,
    /// `running`, `success` or `failed`; an approval is `awaiting`, `approved`, `rejected` or
    /// `expired`.
    pub status: String,
    #[schema(value_type = Object)]
    pub input: Value,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    #[schema(value_type = Option<RunErrorView>)]
    pub error: Option<Value>,
    /// Each call made for this step: `[{attempt, started_at, duration_ms, error?}]`.
    #[schema(value_type = Vec<Object>)]
    pub attempts: Value,
    pub model: Option<String>,
    pub provider_id: Option<Uuid>,
    pub usage: UsageView,
    pub cost_micros: Option<i64>,
    pub cost_usd: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// When an awaiting approval expires.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<store::Step> for StepView {
    fn from(s: store::Step) -> Self {
        StepView {
            id: s.id,
            execution_id: s.execution_id,
            index: s.idx,
            kind: s.kind,
            name: s.name,
            status: s.status,
            input: s.input.0,
            output: s.output.map(|o| o.0),
            error: s.error.map(|o| o.0),
            attempts: s.attempts.0,
            model: s.model,
            provider_id: s.provider_id,
            usage: store::Tokens {
                input: s.input_tokens,
                cached_input: s.cached_input_tokens,
                output: s.output_tokens,
                reasoning: s.reasoning_tokens,
            }
            .into(),
            cost_micros: s.cost_micros,
            cost_usd: s.cost_micros.map(usd),
            started_at: s.started_at,
            completed_at: s.completed_at,
            duration_ms: s.duration_ms,
            expires_at: s.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub channel_id: Option<Uuid>,
    pub title: String,
    /// `open` or `closed`.
    pub status: String,
    /// What a new message does while a reply is in progress: `reject`, `enqueue` or
    /// `interrupt`.
    pub multitask_strategy: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_at: Option<DateTime<Utc>>,
}

impl From<store::Conversation> for ConversationView {
    fn from(c: store::Conversation) -> Self {
        ConversationView {
            id: c.id,
            agent_id: c.agent_id,
            channel_id: c.channel_id,
            title: c.title,
            status: c.status,
            multitask_strategy: c.multitask_strategy,
            created_by: c.created_by,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_message_at: c.last_message_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// `user`, `assistant`, `tool` or `system`.
    pub role: String,
    pub content: String,
    /// `sent` (stored), `delivered` (the agent is answering it, or it is the agent's answer) or
    /// `failed` (its reply failed or was cancelled).
    pub status: String,
    /// The reply's execution (on a user message, the one answering it).
    pub execution_id: Option<Uuid>,
    /// On an assistant message: the user message it answers.
    pub reply_to: Option<Uuid>,
    /// The id the client gave the message (WebSocket `send_message`), if any.
    pub client_msg_id: Option<String>,
    /// Tokens of the reply (assistant messages); `null` on others.
    pub usage: Option<UsageView>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<store::Message> for MessageView {
    fn from(m: store::Message) -> Self {
        MessageView {
            usage: (m.role == "assistant").then_some(
                store::Tokens {
                    input: m.input_tokens,
                    cached_input: m.cached_input_tokens,
                    output: m.output_tokens,
                    reasoning: m.reasoning_tokens,
                }
                .into(),
            ),
            id: m.id,
            conversation_id: m.conversation_id,
            role: m.role,
            content: m.content,
            status: m.status,
            execution_id: m.execution_id,
            reply_to: m.reply_to,
            client_msg_id: m.client_msg_id,
            created_by: m.created_by,
            created_at: m.created_at,
        }
    }
}

/// The schema of an execution's input: a string, or an object.
pub struct StringOrObject;

impl utoipa::PartialSchema for StringOrObject {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Object]))
            .into()
    }
}

impl ToSchema for StringOrObject {}

#[cfg(test)]
mod tests {
    #[test]
    fn usd_strings() {
        assert_eq!(super::usd(0), "0.000000");
        assert_eq!(super::usd(1234), "0.001234");
        assert_eq!(super::usd(12_345_678), "12.345678");
        assert_eq!(super::usd(-5), "-0.000005");
    }
}
