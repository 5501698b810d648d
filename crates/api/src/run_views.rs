//! What the API returns for providers, agents, tasks and executions. Provider credentials
//! never appear: only whether a key is set and the names of extra headers.

use agentry_store as store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub id: Uuid,
    pub name: String,
    /// `openai`, `anthropic` or `echo`.
    pub kind: String,
    /// As set; `null` means the vendor's own endpoint.
    pub base_url: Option<String>,
    /// The endpoint calls go to (`null` for `echo`, which makes no network calls).
    pub effective_base_url: Option<String>,
    pub has_api_key: bool,
    /// Names of the extra headers sent with each call; their values are never shown.
    pub header_names: Vec<String>,
    pub default_model: Option<String>,
    /// Per-model prices in µUSD per million tokens, overriding the built-in table.
    #[schema(value_type = Object)]
    pub prices: Value,
    /// True for `echo`: it answers on this server with the text it was given, at no cost.
    pub local: bool,
    /// What this provider is, in a few words.
    pub label: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::Provider> for ProviderView {
    fn from(p: store::Provider) -> Self {
        let kind = agentry_providers::Kind::parse(&p.kind);
        let local = kind == Some(agentry_providers::Kind::Echo);
        let label = match kind {
            Some(agentry_providers::Kind::OpenAi) => "OpenAI-compatible chat completions",
            Some(agentry_providers::Kind::Anthropic) => "Anthropic Messages",
            _ => "Local echo: replies with the text it was given; no network, no cost",
        };
        ProviderView {
            effective_base_url: p
                .base_url
                .clone()
                .or_else(|| kind.and_then(|k| k.default_base_url().map(str::to_string))),
            id: p.id,
            name: p.name,
            kind: p.kind,
            base_url: p.base_url,
            has_api_key: p.has_api_key,
            header_names: p.header_names.0,
            default_model: p.default_model,
            prices: p.prices.0,
            local,
            label: label.into(),
            created_by: p.created_by,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderTestView {
    pub ok: bool,
    pub latency_ms: u64,
    pub model: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `custom`, `assistant`, `automation`, `analysis` or `orchestrator`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `active`, `inactive`, `paused`, `error` or `archived`.
    pub status: String,
    /// `autonomous`, `supervised` or `manual`.
    pub autonomy: String,
    pub framework: String,
    pub provider_id: Option<Uuid>,
    pub model: Option<String>,
    /// `[{provider_id, model}]`, tried in order when the primary fails.
    #[schema(value_type = Vec<Object>)]
    pub fallbacks: Value,
    pub instructions: String,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<i32>,
    #[schema(value_type = Vec<Object>)]
    pub tools: Value,
    #[schema(value_type = Object)]
    pub config: Value,
    pub max_retries: i32,
    pub timeout_seconds: i32,
    pub max_steps: i32,
    pub version: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::Agent> for AgentView {
    fn from(a: store::Agent) -> Self {
        AgentView {
            id: a.id,
            name: a.name,
            description: a.description,
            kind: a.kind,
            status: a.status,
            autonomy: a.autonomy,
            framework: a.framework,
            provider_id: a.provider_id,
            model: a.model,
            fallbacks: a.fallbacks.0,
            instructions: a.instructions,
            temperature: a.temperature,
            max_output_tokens: a.max_output_tokens,
            tools: a.tools.0,
            config: a.config.0,
            max_retries: a.max_retries,
            timeout_seconds: a.timeout_seconds,
            max_steps: a.max_steps,
            version: a.version,
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentVersionView {
    pub agent_id: Uuid,
    pub version: i32,
    /// What the agent did at this version.
    #[schema(value_type = Object)]
    pub spec: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<store::AgentVersion> for AgentVersionView {
    fn from(v: store::AgentVersion) -> Self {
        AgentVersionView {
            agent_id: v.agent_id,
            version: v.version,
            spec: v.spec.0,
            created_by: v.created_by,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentLogView {
    pub id: Uuid,
    /// `debug`, `info`, `warning` or `error`.
    pub level: String,
    pub message: String,
    pub execution_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<store::AgentLog> for AgentLogView {
    fn from(l: store::AgentLog) -> Self {
        AgentLogView {
            id: l.id,
            level: l.level,
            message: l.message,
            execution_id: l.execution_id,
            created_at: l.created_at,
        }
    }
}

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

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentStatsView {
    pub agent_id: Uuid,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Executions created in the window.
    pub total: i64,
    /// Executions by status.
    #[schema(value_type = Object)]
    pub by_status: Value,
    /// Successes over finished executions, 0 to 1; `null` when none finished.
    pub success_rate: Option<f64>,
    pub p50_duration_ms: Option<i64>,
    pub p95_duration_ms: Option<i64>,
    pub usage: UsageView,
    /// Summed over executions whose cost is known.
    pub cost_micros: i64,
    pub cost_usd: String,
    /// How many executions had no known price (their tokens are counted; no cost).
    pub uncosted_executions: i64,
}

impl AgentStatsView {
    pub fn new(
        agent_id: Uuid,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        s: store::AgentStats,
    ) -> AgentStatsView {
        let count = |st: &str| {
            s.by_status
                .iter()
                .find(|(k, _)| k == st)
                .map_or(0, |(_, n)| *n)
        };
        let total: i64 = s.by_status.iter().map(|(_, n)| n).sum();
        let finished: i64 = ["success", "failed", "timeout", "cancelled"]
            .iter()
            .map(|st| count(st))
            .sum();
        let mut by_status = serde_json::Map::new();
        for st in [
            "pending",
            "running",
            "awaiting_approval",
            "success",
            "failed",
            "timeout",
            "cancelled",
        ] {
            by_status.insert(st.into(), count(st).into());
        }
        AgentStatsView {
            agent_id,
            since,
            until,
            total,
            by_status: Value::Object(by_status),
            success_rate: (finished > 0).then(|| count("success") as f64 / finished as f64),
            p50_duration_ms: s.p50_duration_ms,
            p95_duration_ms: s.p95_duration_ms,
            usage: s.tokens.into(),
            cost_micros: s.cost_micros,
            cost_usd: usd(s.cost_micros),
            uncosted_executions: total - s.costed,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub input: Value,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// `backlog`, `in_progress`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// `low`, `medium`, `high` or `critical`.
    pub priority: String,
    pub agent_id: Option<Uuid>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::Task> for TaskView {
    fn from(t: store::Task) -> Self {
        TaskView {
            id: t.id,
            title: t.title,
            description: t.description,
            input: t.input.0,
            output: t.output.map(|o| o.0),
            status: t.status,
            priority: t.priority,
            agent_id: t.agent_id,
            assigned_at: t.assigned_at,
            started_at: t.started_at,
            completed_at: t.completed_at,
            due_at: t.due_at,
            created_by: t.created_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
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
    /// `pending`, `running`, `awaiting_approval`, `success`, `failed`, `timeout` or `cancelled`.
    pub status: String,
    #[schema(value_type = Object)]
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
    /// `running`, `success` or `failed`.
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
        }
    }
}

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
