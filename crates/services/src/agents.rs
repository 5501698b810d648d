//! Agents: what runs (a model on a provider, instructions, tools, limits), their versions,
//! and their lifecycle (`start`, `stop`, `pause`).

use agentry_core::id::new_id_at;
use agentry_core::{FieldErrors, Role, text};
use agentry_store::{
    Agent, AgentFilter, AgentLog, AgentStats, AgentVersion, Execution, Json, KeySort, LogFilter,
    Page, PageRequest,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::Links;
use crate::executions::ExecutionInput;
use crate::{OrgCtx, ServiceError, ServiceResult, Services};

const NOT_FOUND: ServiceError = ServiceError::NotFound("agent not found");

pub const TYPES: &[&str] = &[
    "custom",
    "assistant",
    "automation",
    "analysis",
    "orchestrator",
];
pub const STATUSES: &[&str] = &["active", "inactive", "paused", "error", "archived"];
pub const AUTONOMY: &[&str] = &["autonomous", "supervised", "manual"];
/// The longest a test run (`POST /agents/{id}/test`) holds its request open.
pub const TEST_WAIT_MAX_SECS: u64 = 60;

/// What a create or update may set; left-out fields stay as they are (or take their default
/// on create). `Some(Value::Null)` clears a nullable field.
#[derive(Debug, Default, Clone)]
pub struct AgentInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub autonomy: Option<String>,
    pub framework: Option<String>,
    pub provider_id: Option<Value>,
    pub model: Option<Value>,
    pub fallbacks: Option<Value>,
    pub instructions: Option<String>,
    pub temperature: Option<Value>,
    pub max_output_tokens: Option<Value>,
    pub max_context_tokens: Option<Value>,
    pub tools: Option<Value>,
    pub config: Option<Value>,
    pub max_retries: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub max_steps: Option<i64>,
    /// A JSON Schema (type object) the answer must match; `Some(Null)` removes it.
    pub output_schema: Option<Value>,
}

impl Services {
    pub async fn create_agent(&self, ctx: &OrgCtx, input: AgentInput) -> ServiceResult<Agent> {
        ctx.require(Role::Member)?;
        let mut errors = FieldErrors::new();
        if input.name.is_none() {
            errors.add("name", "is required");
        }
        let (id, now) = new_id_at();
        let mut a = Agent {
            id,
            org_id: ctx.org_id,
            name: String::new(),
            description: String::new(),
            kind: "custom".into(),
            status: "active".into(),
            autonomy: "autonomous".into(),
            framework: "agentry".into(),
            provider_id: None,
            model: None,
            fallbacks: Json(json!([])),
            instructions: String::new(),
            temperature: None,
            max_output_tokens: None,
            max_context_tokens: None,
            tools: Json(json!([])),
            config: Json(json!({})),
            max_retries: 2,
            timeout_seconds: 300,
            max_steps: 20,
            output_schema: None,
            tool_secrets: None,
            version: 1,
            created_by: ctx.actor.acting_user(),
            created_at: now,
            updated_at: now,
        };
        self.apply_agent_input(ctx, &mut a, input, errors).await?;
        let a = self.store.create_agent(&a, &spec(&a)).await?;
        self.agent_event(ctx, "agent.created", &a, json!({"name": a.name}))
            .await;
        Ok(a)
    }

    pub async fn update_agent(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        input: AgentInput,
    ) -> ServiceResult<Agent> {
        ctx.require(Role::Member)?;
        let before = self.store.agent(ctx.org_id, id).await?.ok_or(NOT_FOUND)?;
        let mut a = before.clone();
        self.apply_agent_input(ctx, &mut a, input, FieldErrors::new())
            .await?;
        let changed = spec(&a) != spec(&before);
        if changed {
            a.version += 1;
        }
        a.updated_at = Utc::now();
        let new_spec = spec(&a);
        let a = self
            .store
            .update_agent(&a, changed.then_some(&new_spec), ctx.actor.acting_user())
            .await?
            .ok_or(NOT_FOUND)?;
        self.agent_event(ctx, "agent.updated", &a, json!({"version": a.version}))
            .await;
        Ok(a)
    }

    async fn apply_agent_input(
        &self,
        ctx: &OrgCtx,
        a: &mut Agent,
        i: AgentInput,
        mut errors: FieldErrors,
    ) -> ServiceResult<()> {
        if let Some(v) = &i.name
            && let Some(n) = errors.check("name", text::parse_line(v, 200))
        {
            a.name = n;
        }
        if let Some(v) = i.description {
            if v.chars().count() > 5000 {
                errors.add("description", "must be at most 5000 characters");
            }
            a.description = v;
        }
        let one_of =
            |errors: &mut FieldErrors, field: &str, v: Option<String>, allowed: &[&str]| {
                let v = v?;
                if allowed.contains(&v.as_str()) {
                    Some(v)
                } else {
                    errors.add(field, format!("must be one of {}", allowed.join(", ")));
                    None
                }
            };
        if let Some(v) = one_of(&mut errors, "type", i.kind, TYPES) {
            a.kind = v;
        }
        if let Some(v) = one_of(&mut errors, "status", i.status, STATUSES) {
            a.status = v;
        }
        if let Some(v) = one_of(&mut errors, "autonomy", i.autonomy, AUTONOMY) {
            a.autonomy = v;
        }
        if let Some(v) = i.framework {
            match text::parse_line(&v, 100) {
                Ok(v) => a.framework = v,
                Err(e) => errors.add("framework", e.to_string()),
            }
        }
        if let Some(v) = i.provider_id {
            match v {
                Value::Null => a.provider_id = None,
                Value::String(s) => match s.parse::<Uuid>() {
                    Ok(pid) if self.store.provider(ctx.org_id, pid).await?.is_some() => {
                        a.provider_id = Some(pid)
                    }
                    _ => errors.add("provider_id", "no such provider in this organization"),
                },
                _ => errors.add("provider_id", "must be a provider id or null"),
            }
        }
        if let Some(v) = i.model {
            match v {
                Value::Null => a.model = None,
                Value::String(s) if !s.is_empty() && s.chars().count() <= 200 => a.model = Some(s),
                _ => errors.add(
                    "model",
                    "must be a model name of 1 to 200 characters, or null",
                ),
            }
        }
        if let Some(v) = i.fallbacks {
            match self.parse_fallbacks(ctx, &v).await? {
                Ok(f) => a.fallbacks = Json(f),
                Err(m) => errors.add("fallbacks", m),
            }
        }
        if let Some(v) = i.instructions {
            if v.chars().count() > 100_000 {
                errors.add("instructions", "must be at most 100000 characters");
            }
            a.instructions = v;
        }
        if let Some(v) = i.temperature {
            match v {
                Value::Null => a.temperature = None,
                Value::Number(n) if n.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)) => {
                    a.temperature = n.as_f64()
                }
                _ => errors.add("temperature", "must be a number from 0 to 2, or null"),
            }
        }
        if let Some(v) = i.max_output_tokens {
            match v {
                Value::Null => a.max_output_tokens = None,
                Value::Number(n) if n.as_i64().is_some_and(|t| (1..=1_000_000).contains(&t)) => {
                    a.max_output_tokens = n.as_i64().map(|t| t as i32)
                }
                _ => errors.add(
                    "max_output_tokens",
                    "must be an integer from 1 to 1000000, or null",
                ),
            }
        }
        if let Some(v) = i.max_context_tokens {
            match v {
                Value::Null => a.max_context_tokens = None,
                Value::Number(n) if n.as_i64().is_some_and(|t| (256..=10_000_000).contains(&t)) => {
                    a.max_context_tokens = n.as_i64().map(|t| t as i32)
                }
                _ => errors.add(
                    "max_context_tokens",
                    "must be an integer from 256 to 10000000, or null",
                ),
            }
        }
        if let Some(v) = i.tools {
            let old = self.open_tool_secrets(a.tool_secrets.as_deref())?;
            match crate::tool_decls::prepare(&v, &old) {
                Ok((tools, secrets)) => {
                    for (n, d) in tools.as_array().into_iter().flatten().enumerate() {
                        if let Some(id) = d["server_id"].as_str().and_then(|s| s.parse().ok())
                            && self.store.mcp_server(ctx.org_id, id).await?.is_none()
                        {
                            errors.add(
                                "tools",
                                format!("tools[{n}]: no MCP server {id} in this organization"),
                            );
                        }
                    }
                    a.tools = Json(tools);
                    a.tool_secrets = self.seal_tool_secrets(&secrets)?;
                }
                Err(m) => errors.add("tools", m),
            }
        }
        match i.output_schema {
            None => {}
            Some(Value::Null) => a.output_schema = None,
            Some(s) => match agentry_core::schema::check(&s) {
                Ok(()) if s["type"] == "object" && s.to_string().len() <= 65_536 => {
                    a.output_schema = Some(Json(s))
                }
                Ok(()) => errors.add(
                    "output_schema",
                    "must be a JSON Schema of type object, at most 64 KiB",
                ),
                Err(m) => errors.add("output_schema", format!("not a valid JSON Schema: {m}")),
            },
        }
        if let Some(v) = i.config {
            if !v.is_object() {
                errors.add("config", "must be an object");
            } else if v.to_string().len() > 65_536 {
                errors.add("config", "must be at most 64 KiB");
            } else {
                a.config = Json(v);
            }
        }
        let mut range = |field: &str, v: Option<i64>, lo: i64, hi: i64, slot: &mut i32| {
            if let Some(v) = v {
                if (lo..=hi).contains(&v) {
                    *slot = v as i32;
                } else {
                    errors.add(field, format!("must be from {lo} to {hi}"));
                }
            }
        };
        range("max_retries", i.max_retries, 0, 10, &mut a.max_retries);
        range(
            "timeout_seconds",
            i.timeout_seconds,
            1,
            3600,
            &mut a.timeout_seconds,
        );
        range("max_steps", i.max_steps, 1, 100, &mut a.max_steps);
        errors.into_result()?;
        Ok(())
    }

    async fn parse_fallbacks(
        &self,
        ctx: &OrgCtx,
        v: &Value,
    ) -> ServiceResult<Result<Value, String>> {
        let Some(list) = v.as_array() else {
            return Ok(Err("must be a list of {provider_id, model}".into()));
        };
        if list.len() > 5 {
            return Ok(Err("at most 5 fallbacks".into()));
        }
        let mut out = vec![];
        for f in list {
            let pid = f["provider_id"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok());
            let model = f["model"]
                .as_str()
                .filter(|m| !m.is_empty() && m.chars().count() <= 200);
            let (Some(pid), Some(model)) = (pid, model) else {
                return Ok(Err("each fallback needs a provider_id and a model".into()));
            };
            if self.store.provider(ctx.org_id, pid).await?.is_none() {
                return Ok(Err(format!("no provider {pid} in this organization")));
            }
            out.push(json!({"provider_id": pid, "model": model}));
        }
        Ok(Ok(Value::Array(out)))
    }

    pub async fn get_agent(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Agent> {
        self.store.agent(ctx.org_id, id).await?.ok_or(NOT_FOUND)
    }

    pub async fn list_agents(
        &self,
        ctx: &OrgCtx,
        filter: &AgentFilter,
        page: PageRequest,
        sort: &KeySort,
    ) -> ServiceResult<Page<Agent>> {
        Ok(self
            .store
            .list_agents(ctx.org_id, filter, page, sort)
            .await?)
    }

    pub async fn agent_versions(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Vec<AgentVersion>> {
        self.store
            .agent_any(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        Ok(self.store.agent_versions(ctx.org_id, id).await?)
    }

    pub async fn agent_version(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        version: i32,
    ) -> ServiceResult<AgentVersion> {
        self.store
            .agent_version(ctx.org_id, id, version)
            .await?
            .ok_or(ServiceError::NotFound("agent version not found"))
    }

    /// The agent's log lines, newest first; deleted agents' logs stay readable.
    pub async fn agent_logs(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        filter: &LogFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<AgentLog>> {
        self.store
            .agent_any(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        Ok(self.store.agent_logs(ctx.org_id, id, filter, page).await?)
    }

    pub async fn agent_stats(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> ServiceResult<AgentStats> {
        self.store
            .agent_any(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        Ok(self.store.agent_stats(ctx.org_id, id, since, until).await?)
    }

    /// Runs the agent once on `input` and answers with the execution when it has finished (or
    /// as it is after its timeout with a margin, at most `TEST_WAIT_MAX_SECS`). A paused
    /// agent's run would only wait in the queue, so it is refused.
    pub async fn test_agent(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        input: Value,
    ) -> ServiceResult<Execution> {
        ctx.require(Role::Member)?;
        if self.get_agent(ctx, id).await?.status == "paused" {
            return Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "the agent is paused; resume it to test it",
            });
        }
        let e = self
            .create_execution(
                ctx,
                ExecutionInput {
                    agent_id: id,
                    input,
                    task_id: None,
                    timeout_seconds: None,
                    conversation_id: None,
                },
            )
            .await
            .map_err(|e| match e {
                // The agent is named by the path here, not by a field.
                ServiceError::Validation(_) => NOT_FOUND,
                other => other,
            })?;
        // A run held up in the queue is answered as it stands, to be followed by its id.
        let max = (e.timeout_seconds.max(1) as u64 + 5).min(TEST_WAIT_MAX_SECS);
        self.wait_for_execution(ctx, e.id, std::time::Duration::from_secs(max))
            .await
    }

    /// Hides the agent and cancels its unfinished executions.
    pub async fn delete_agent(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<()> {
        ctx.require(Role::Member)?;
        let a = self.store.agent(ctx.org_id, id).await?.ok_or(NOT_FOUND)?;
        self.cancel_unfinished(ctx, Some(id), None, "the agent was deleted")
            .await?;
        if !self.store.delete_agent(ctx.org_id, id, Utc::now()).await? {
            return Err(NOT_FOUND);
        }
        self.agent_event(ctx, "agent.deleted", &a, json!({})).await;
        Ok(())
    }

    /// `start` (active), `stop` (inactive; cancels running executions) or `pause` (queued
    /// executions wait until it starts again).
    pub async fn set_agent_state(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        action: AgentAction,
    ) -> ServiceResult<Agent> {
        ctx.require(Role::Member)?;
        let (status, kind) = match action {
            AgentAction::Start => ("active", "agent.started"),
            AgentAction::Stop => ("inactive", "agent.stopped"),
            AgentAction::Pause => ("paused", "agent.paused"),
        };
        let a = self
            .store
            .set_agent_status(ctx.org_id, id, status, Utc::now())
            .await?
            .ok_or(NOT_FOUND)?;
        if action == AgentAction::Stop {
            self.cancel_unfinished(ctx, Some(id), None, "the agent was stopped")
                .await?;
        }
        if action == AgentAction::Start {
            self.signals.work.notify_one();
        }
        self.agent_event(ctx, kind, &a, json!({})).await;
        Ok(a)
    }

    async fn agent_event(&self, ctx: &OrgCtx, kind: &'static str, a: &Agent, data: Value) {
        let mut data = data;
        data["agent_id"] = json!(a.id);
        let links = Links {
            agent_id: Some(a.id),
            ..Links::default()
        };
        self.record_by(ctx, kind, data, links).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAction {
    Start,
    Stop,
    Pause,
}

/// What the agent does: a change to any of it is a new version.
fn spec(a: &Agent) -> Value {
    json!({
        "name": a.name,
        "autonomy": a.autonomy,
        "provider_id": a.provider_id,
        "model": a.model,
        "fallbacks": a.fallbacks.0,
        "instructions": a.instructions,
        "temperature": a.temperature,
        "max_output_tokens": a.max_output_tokens,
        "max_context_tokens": a.max_context_tokens,
        "tools": a.tools.0,
        "config": a.config.0,
        "max_retries": a.max_retries,
        "timeout_seconds": a.timeout_seconds,
        "max_steps": a.max_steps,
        "output_schema": a.output_schema.as_ref().map(|s| &s.0),
    })
}
