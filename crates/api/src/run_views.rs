//! What the API returns for providers, agents, tasks and executions. Provider credentials
//! never appear: only whether a key is set and the names of extra headers.

pub use agentry_services::views::{ExecutionView, RunErrorView, StepView, UsageView, usd};
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
    pub max_context_tokens: Option<i32>,
    #[schema(value_type = Vec<Object>)]
    pub tools: Value,
    #[schema(value_type = Object)]
    pub config: Value,
    pub max_retries: i32,
    pub timeout_seconds: i32,
    pub max_steps: i32,
    /// The JSON Schema the answer must match, if any.
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
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
            max_context_tokens: a.max_context_tokens,
            tools: a.tools.0,
            config: a.config.0,
            max_retries: a.max_retries,
            timeout_seconds: a.timeout_seconds,
            max_steps: a.max_steps,
            output_schema: a.output_schema.map(|s| s.0),
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
