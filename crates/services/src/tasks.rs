//! Tasks: work handed to agents. A task's status and output follow its latest execution.

use agentry_core::id::new_id_at;
use agentry_core::{FieldErrors, Role, text};
use agentry_store::{Execution, Json, KeySort, Page, PageRequest, Task, TaskFilter};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::Links;
use crate::executions::{ExecutionInput, PRIORITIES};
use crate::{OrgCtx, ServiceError, ServiceResult, Services};

const NOT_FOUND: ServiceError = ServiceError::NotFound("task not found");

pub const STATUSES: &[&str] = &["backlog", "in_progress", "completed", "failed", "cancelled"];

/// What a create or update may set; left-out fields stay as they are. `Some(Value::Null)`
/// clears `agent_id` or `due_at`.
#[derive(Debug, Default, Clone)]
pub struct TaskInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub input: Option<Value>,
    pub status: Option<String>,
    pub priority: Option<String>,
    pub agent_id: Option<Value>,
    pub due_at: Option<Value>,
}

impl Services {
    pub async fn create_task(&self, ctx: &OrgCtx, input: TaskInput) -> ServiceResult<Task> {
        ctx.require(Role::Member)?;
        let mut errors = FieldErrors::new();
        if input.title.is_none() {
            errors.add("title", "is required");
        }
        let (id, now) = new_id_at();
        let mut t = Task {
            id,
            org_id: ctx.org_id,
            title: String::new(),
            description: String::new(),
            input: Json(json!({})),
            output: None,
            status: "backlog".into(),
            priority: "medium".into(),
            priority_rank: 1,
            agent_id: None,
            assigned_at: None,
            started_at: None,
            completed_at: None,
            due_at: None,
            created_by: ctx.actor.acting_user(),
            created_at: now,
            updated_at: now,
        };
        self.apply_task_input(ctx, &mut t, input, errors).await?;
        let t = self.store.create_task(&t).await?;
        self.task_event(ctx, "task.created", &t, json!({"title": t.title}))
            .await;
        Ok(t)
    }

    pub async fn update_task(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        input: TaskInput,
    ) -> ServiceResult<Task> {
        ctx.require(Role::Member)?;
        let mut t = self.get_task(ctx, id).await?;
        self.apply_task_input(ctx, &mut t, input, FieldErrors::new())
            .await?;
        t.updated_at = Utc::now();
        let t = self.store.update_task(&t).await?.ok_or(NOT_FOUND)?;
        self.task_event(ctx, "task.updated", &t, json!({})).await;
        Ok(t)
    }

    async fn apply_task_input(
        &self,
        ctx: &OrgCtx,
        t: &mut Task,
        i: TaskInput,
        mut errors: FieldErrors,
    ) -> ServiceResult<()> {
        if let Some(v) = &i.title
            && let Some(v) = errors.check("title", text::parse_line(v, 500))
        {
            t.title = v;
        }
        if let Some(v) = i.description {
            if v.chars().count() > 20_000 {
                errors.add("description", "must be at most 20000 characters");
            }
            t.description = v;
        }
        if let Some(v) = i.input {
            if !v.is_object() {
                errors.add("input", "must be an object");
            } else if v.to_string().len() > 262_144 {
                errors.add("input", "must be at most 256 KiB");
            } else {
                t.input = Json(v);
            }
        }
        if let Some(v) = i.status {
            if STATUSES.contains(&v.as_str()) {
                t.status = v;
            } else {
                errors.add("status", format!("must be one of {}", STATUSES.join(", ")));
            }
        }
        if let Some(v) = i.priority {
            match PRIORITIES.iter().find(|(p, _)| *p == v) {
                Some((p, rank)) => {
                    t.priority = (*p).into();
                    t.priority_rank = *rank;
                }
                None => errors.add("priority", "must be one of low, medium, high, critical"),
            }
        }
        if let Some(v) = i.agent_id {
            match v {
                Value::Null => t.agent_id = None,
                Value::String(s) => match s.parse::<Uuid>() {
                    Ok(aid) if self.store.agent(ctx.org_id, aid).await?.is_some() => {
                        if t.agent_id != Some(aid) {
                            t.assigned_at = Some(Utc::now());
                        }
                        t.agent_id = Some(aid);
                    }
                    _ => errors.add("agent_id", "no such agent in this organization"),
                },
                _ => errors.add("agent_id", "must be an agent id or null"),
            }
        }
        if let Some(v) = i.due_at {
            match v {
                Value::Null => t.due_at = None,
                Value::String(s) => match DateTime::parse_from_rfc3339(&s) {
                    Ok(d) => t.due_at = Some(d.with_timezone(&Utc)),
                    Err(_) => errors.add("due_at", "must be an RFC 3339 time"),
                },
                _ => errors.add("due_at", "must be an RFC 3339 time or null"),
            }
        }
        errors.into_result()?;
        Ok(())
    }

    pub async fn get_task(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Task> {
        self.store.task(ctx.org_id, id).await?.ok_or(NOT_FOUND)
    }

    pub async fn list_tasks(
        &self,
        ctx: &OrgCtx,
        filter: &TaskFilter,
        page: PageRequest,
        sort: &KeySort,
    ) -> ServiceResult<Page<Task>> {
        Ok(self
            .store
            .list_tasks(ctx.org_id, filter, page, sort)
            .await?)
    }

    /// Hides the task and cancels its unfinished executions.
    pub async fn delete_task(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<()> {
        ctx.require(Role::Member)?;
        let t = self.get_task(ctx, id).await?;
        self.cancel_unfinished(ctx, None, Some(id), "the task was deleted")
            .await?;
        if !self.store.delete_task(ctx.org_id, id, Utc::now()).await? {
            return Err(NOT_FOUND);
        }
        self.task_event(ctx, "task.deleted", &t, json!({})).await;
        Ok(())
    }

    /// Assigns the task to an agent and, when `run` and the agent is not `manual`, starts an
    /// execution of it.
    pub async fn assign_task(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        agent_id: Uuid,
        run: bool,
    ) -> ServiceResult<(Task, Option<Execution>)> {
        ctx.require(Role::Member)?;
        let mut t = self.get_task(ctx, id).await?;
        let agent = self
            .store
            .agent(ctx.org_id, agent_id)
            .await?
            .ok_or(ServiceError::field(
                "agent_id",
                "no such agent in this organization",
            ))?;
        let run = run && agent.autonomy != "manual";
        if run && !matches!(agent.status.as_str(), "active" | "paused") {
            return Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "the agent is not active; start it first",
            });
        }
        let now = Utc::now();
        t.agent_id = Some(agent.id);
        t.assigned_at = Some(now);
        t.updated_at = now;
        let mut t = self.store.update_task(&t).await?.ok_or(NOT_FOUND)?;
        self.task_event(
            ctx,
            "task.assigned",
            &t,
            json!({"agent_id": agent.id, "run": run}),
        )
        .await;
        if !run {
            return Ok((t, None));
        }
        let e = self
            .create_execution(
                ctx,
                ExecutionInput {
                    agent_id: agent.id,
                    input: t.input.0.clone(),
                    task_id: Some(t.id),
                    timeout_seconds: None,
                    conversation_id: None,
                },
            )
            .await?;
        self.store
            .task_follow_execution(ctx.org_id, t.id, e.id, now)
            .await?;
        t = self.get_task(ctx, id).await?;
        Ok((t, Some(e)))
    }

    /// Cancels the task and its unfinished executions.
    pub async fn cancel_task(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Task> {
        ctx.require(Role::Member)?;
        let mut t = self.get_task(ctx, id).await?;
        if matches!(t.status.as_str(), "completed" | "failed" | "cancelled") {
            return Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "the task has already finished",
            });
        }
        self.cancel_unfinished(ctx, None, Some(id), "the task was cancelled")
            .await?;
        let now = Utc::now();
        t = self.get_task(ctx, id).await?;
        t.status = "cancelled".into();
        t.completed_at = Some(now);
        t.updated_at = now;
        let t = self.store.update_task(&t).await?.ok_or(NOT_FOUND)?;
        self.task_event(ctx, "task.cancelled", &t, json!({})).await;
        Ok(t)
    }

    async fn task_event(&self, ctx: &OrgCtx, kind: &'static str, t: &Task, data: Value) {
        let mut data = data;
        data["task_id"] = json!(t.id);
        let links = Links {
            agent_id: t.agent_id,
            task_id: Some(t.id),
            execution_id: None,
        };
        self.record_by(ctx, kind, data, links).await;
    }
}
