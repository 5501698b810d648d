//! Executions: one run of an agent on an input. Created here; run by the runtime.

use std::time::Duration;

use agentry_core::Role;
use agentry_core::id::new_id_at;
use agentry_store::{Execution, ExecutionFilter, Json, KeySort, Page, PageRequest, Step};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::Links;
use crate::{OrgCtx, ServiceError, ServiceResult, Services};

const NOT_FOUND: ServiceError = ServiceError::NotFound("execution not found");

/// Task priorities and their rank in the queue (higher runs first).
pub const PRIORITIES: &[(&str, i32)] = &[("low", 0), ("medium", 1), ("high", 2), ("critical", 3)];

#[derive(Debug, Clone)]
pub struct ExecutionInput {
    pub agent_id: Uuid,
    pub input: Value,
    pub task_id: Option<Uuid>,
    pub timeout_seconds: Option<i64>,
    /// Set for a conversation's reply.
    pub conversation_id: Option<Uuid>,
}

/// What an idempotency key says about a request.
pub enum Idempotency {
    /// Go ahead (the key, if any, is reserved for this request).
    Proceed,
    /// The first request's response, to return again.
    Replay { status: u16, body: Value },
}

impl Services {
    pub async fn create_execution(
        &self,
        ctx: &OrgCtx,
        input: ExecutionInput,
    ) -> ServiceResult<Execution> {
        ctx.require(Role::Member)?;
        let agent =
            self.store
                .agent(ctx.org_id, input.agent_id)
                .await?
                .ok_or(ServiceError::field(
                    "agent_id",
                    "no such agent in this organization",
                ))?;
        if !matches!(agent.status.as_str(), "active" | "paused") {
            return Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "the agent is not active; start it first",
            });
        }
        let mut priority = 1;
        if let Some(tid) = input.task_id {
            let task = self
                .store
                .task(ctx.org_id, tid)
                .await?
                .ok_or(ServiceError::field(
                    "task_id",
                    "no such task in this organization",
                ))?;
            priority = task.priority_rank;
        }
        let timeout = match input.timeout_seconds {
            Some(t) if (1..=3600).contains(&t) => t as i32,
            Some(_) => {
                return Err(ServiceError::field(
                    "timeout_seconds",
                    "must be from 1 to 3600",
                ));
            }
            None => agent.timeout_seconds,
        };
        let (id, now) = new_id_at();
        let e = Execution {
            id,
            org_id: ctx.org_id,
            agent_id: agent.id,
            agent_version: agent.version,
            task_id: input.task_id,
            conversation_id: input.conversation_id,
            parent_execution_id: None,
            status: "pending".into(),
            input: Json(input.input),
            output: None,
            error: None,
            attempt: 1,
            model: agent.model.clone(),
            provider_id: agent.provider_id,
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            cost_micros: None,
            confidence: None,
            timeout_seconds: timeout,
            priority,
            run_after: now,
            lease_owner: None,
            lease_expires_at: None,
            created_by: ctx.actor.acting_user().or(Some(ctx.actor.id())),
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            duration_ms: None,
        };
        let e = self.store.create_execution(&e).await?;
        self.emit_status(&e).await;
        self.signals.work.notify_one();
        let links = Links {
            agent_id: Some(e.agent_id),
            task_id: e.task_id,
            execution_id: Some(e.id),
        };
        self.record_by(
            ctx,
            "execution.created",
            json!({"agent_version": e.agent_version}),
            links,
        )
        .await;
        Ok(e)
    }

    pub async fn get_execution(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Execution> {
        self.store.execution(ctx.org_id, id).await?.ok_or(NOT_FOUND)
    }

    pub async fn list_executions(
        &self,
        ctx: &OrgCtx,
        filter: &ExecutionFilter,
        page: PageRequest,
        sort: &KeySort,
    ) -> ServiceResult<Page<Execution>> {
        Ok(self
            .store
            .list_executions(ctx.org_id, filter, page, sort)
            .await?)
    }

    pub async fn execution_steps(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Vec<Step>> {
        self.store
            .execution(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        Ok(self.store.steps(ctx.org_id, id).await?)
    }

    /// Cancels an unfinished execution; one that already finished is `409 invalid_state`.
    pub async fn cancel_execution(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Execution> {
        ctx.require(Role::Member)?;
        match self
            .cancel_execution_quietly(ctx, id, "cancelled by request")
            .await?
        {
            (true, e) => Ok(e),
            (false, _) => Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "the execution has already finished",
            }),
        }
    }

    /// Cancels if unfinished; `(false, e)` when it had already finished.
    pub(crate) async fn cancel_execution_quietly(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        why: &str,
    ) -> ServiceResult<(bool, Execution)> {
        self.cancel_tree(ctx.org_id, id, why, Some(ctx)).await
    }

    /// Cancels an unfinished execution and the executions it started (`call_agent`), by
    /// `by` or, without one, by the system. `(false, e)` when it had already finished.
    pub async fn cancel_tree(
        &self,
        org_id: Uuid,
        id: Uuid,
        why: &str,
        by: Option<&OrgCtx>,
    ) -> ServiceResult<(bool, Execution)> {
        let now = Utc::now();
        let error = json!({"code": "cancelled", "message": why});
        let (done, e) = self
            .store
            .cancel_execution(org_id, id, &error, now)
            .await?
            .ok_or(NOT_FOUND)?;
        if !done {
            return Ok((false, e));
        }
        // Drop the in-flight provider call if this process runs it; another replica notices
        // on its next heartbeat.
        self.signals.abort(id);
        self.store
            .close_running_steps(org_id, id, &error, now)
            .await?;
        if let Some(started) = e.started_at {
            let ms = (now - started).num_milliseconds().max(0);
            self.store.set_execution_duration(id, ms).await?;
        }
        let _ = self.signals.finished.send(id);
        let e = self.store.execution(org_id, id).await?.unwrap_or(e);
        self.execution_finished(&e).await;
        let links = Links {
            agent_id: Some(e.agent_id),
            task_id: e.task_id,
            execution_id: Some(id),
        };
        let data = json!({"reason": why});
        self.record_as(by, org_id, "execution.cancelled", data, links)
            .await;
        for child in self.store.unfinished_children(org_id, id).await? {
            Box::pin(self.cancel_tree(org_id, child, "the execution that called it stopped", by))
                .await?;
        }
        let e = self.store.execution(org_id, id).await?.unwrap_or(e);
        Ok((true, e))
    }

    /// Cancels the unfinished executions of an agent or of a task.
    pub(crate) async fn cancel_unfinished(
        &self,
        ctx: &OrgCtx,
        agent_id: Option<Uuid>,
        task_id: Option<Uuid>,
        why: &str,
    ) -> ServiceResult<()> {
        for eid in self
            .store
            .unfinished_executions(ctx.org_id, agent_id, task_id)
            .await?
        {
            self.cancel_execution_quietly(ctx, eid, why).await?;
        }
        Ok(())
    }

    /// Waits up to `max` for the execution to finish; returns it as it is then.
    pub async fn wait_for_execution(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        max: Duration,
    ) -> ServiceResult<Execution> {
        let deadline = tokio::time::Instant::now() + max;
        let mut finished = self.signals.finished.subscribe();
        loop {
            let e = self.get_execution(ctx, id).await?;
            if e.is_finished() || tokio::time::Instant::now() >= deadline {
                return Ok(e);
            }
            // Woken by this process's runtime, or poll for another replica's.
            let tick = tokio::time::sleep(Duration::from_millis(250));
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = tick => {}
                r = finished.recv() => {
                    if matches!(r, Ok(f) if f != id) {
                        continue;
                    }
                }
            }
        }
    }

    /// Looks up an idempotency key for a create. `hash` identifies the request body.
    pub async fn idempotency_begin(
        &self,
        ctx: &OrgCtx,
        key: &str,
        hash: &str,
    ) -> ServiceResult<Idempotency> {
        if key.is_empty() || key.len() > 255 || key.contains(char::is_control) {
            return Err(ServiceError::field(
                "Idempotency-Key",
                "must be 1 to 255 printable characters",
            ));
        }
        let now = Utc::now();
        let day_ago = now - chrono::Duration::hours(24);
        if self
            .store
            .reserve_idempotency_key(
                ctx.org_id,
                key,
                hash,
                now,
                day_ago,
                now - chrono::Duration::minutes(10),
            )
            .await?
        {
            return Ok(Idempotency::Proceed);
        }
        let Some(prev) = self
            .store
            .idempotent_response(ctx.org_id, key, day_ago)
            .await?
        else {
            return Err(ServiceError::Conflict {
                code: "idempotency_key_in_use",
                message: "a request with this Idempotency-Key is being processed",
            });
        };
        if prev.request_hash != hash {
            return Err(ServiceError::Conflict {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used with a different request",
            });
        }
        if prev.status == 0 {
            return Err(ServiceError::Conflict {
                code: "idempotency_key_in_use",
                message: "a request with this Idempotency-Key is being processed",
            });
        }
        Ok(Idempotency::Replay {
            status: prev.status as u16,
            body: prev.body.0,
        })
    }

    /// Stores the response of a request that reserved `key`.
    pub async fn idempotency_complete(
        &self,
        ctx: &OrgCtx,
        key: &str,
        status: u16,
        body: &Value,
    ) -> ServiceResult<()> {
        Ok(self
            .store
            .complete_idempotent_response(ctx.org_id, key, i32::from(status), body)
            .await?)
    }

    /// Releases `key` after its request failed, so it can be retried.
    pub async fn idempotency_abort(&self, ctx: &OrgCtx, key: &str) -> ServiceResult<()> {
        Ok(self.store.release_idempotency_key(ctx.org_id, key).await?)
    }
}

impl Services {
    /// Answers a supervised agent's tool call: `approve` runs it, otherwise the model is told
    /// it was refused (with the comment). The execution resumes once every call of the turn
    /// is answered.
    pub async fn decide_approval(
        &self,
        ctx: &OrgCtx,
        execution_id: Uuid,
        step_id: Uuid,
        approve: bool,
        comment: Option<String>,
    ) -> ServiceResult<(agentry_store::Step, Execution)> {
        ctx.require(Role::Member)?;
        if comment.as_ref().is_some_and(|c| c.chars().count() > 4000) {
            return Err(ServiceError::field(
                "comment",
                "must be at most 4000 characters",
            ));
        }
        let status = if approve { "approved" } else { "rejected" };
        self.decide_approval_as(
            ctx.org_id,
            execution_id,
            step_id,
            status,
            Some(ctx),
            comment,
        )
        .await
    }

    /// Records a decision (`approved`, `rejected`, `expired`) by `by` or by the system.
    pub async fn decide_approval_as(
        &self,
        org_id: Uuid,
        execution_id: Uuid,
        step_id: Uuid,
        status: &'static str,
        by: Option<&OrgCtx>,
        comment: Option<String>,
    ) -> ServiceResult<(agentry_store::Step, Execution)> {
        use agentry_store::approvals::Decided;
        let output = json!({
            "approved": status == "approved",
            "comment": comment,
            "decided_by": by.map(|c| json!({"type": c.actor.kind(), "id": c.actor.id()})),
        });
        let now = Utc::now();
        let (step, e) = match self
            .store
            .decide_approval(org_id, execution_id, step_id, status, &output, now)
            .await?
        {
            Decided::Done(s, e) => (*s, *e),
            Decided::NoExecution | Decided::NoStep => return Err(NOT_FOUND),
            Decided::AlreadyDecided(_) => {
                return Err(ServiceError::Conflict {
                    code: "invalid_state",
                    message: "this approval has already been answered or has expired",
                });
            }
        };
        self.emit_step(org_id, &step).await;
        if e.status == "pending" {
            self.emit_status(&e).await;
            self.signals.work.notify_one();
        }
        let kind = match status {
            "approved" => "execution.approved",
            "rejected" => "execution.rejected",
            _ => "execution.approval_expired",
        };
        let links = Links {
            agent_id: Some(e.agent_id),
            task_id: e.task_id,
            execution_id: Some(e.id),
        };
        let data = json!({"step_id": step.id, "tool": step.name, "comment": output["comment"]});
        self.record_as(by, org_id, kind, data, links).await;
        Ok((step, e))
    }
}
