//! Running one execution: its agent's model on its provider, with retries, a deadline, and a
//! journal entry for each call.

use std::time::Duration;

use agentry_core::id::new_id_at;
use agentry_providers::{ChatRequest, ChatResponse, ProviderError, Usage};
use agentry_services::audit::{Audit, EventActor, Links};
use agentry_store::{Agent, Execution, Finish, Json, Step, Tokens};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::deltas::Deltas;
use crate::{Runtime, backoff};

/// Why an execution did not succeed.
pub(crate) struct Failure {
    pub(crate) status: &'static str,
    pub(crate) code: String,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn failed(code: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            status: "failed",
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What a finished LLM step produced.
struct Outcome {
    reply: ChatResponse,
    model: String,
    provider_id: Uuid,
    cost_micros: Option<i64>,
}

impl Runtime {
    pub(crate) async fn execute(&self, e: Execution) {
        let id = e.id;
        if e.attempt == 1 {
            // Independent records of the start, written together (they are on the way to the
            // first token); all are done before the first step is announced.
            let task = async {
                if let Some(tid) = e.task_id {
                    let _ = self
                        .services
                        .store
                        .task_follow_execution(e.org_id, tid, id, "in_progress", None, Utc::now())
                        .await;
                }
            };
            tokio::join!(
                self.services.emit_status(&e),
                self.services.reply_started(&e),
                self.event(
                    &e,
                    "execution.started",
                    "info",
                    json!({"attempt": e.attempt})
                ),
                task,
            );
        } else {
            let line = format!("execution resumed (attempt {})", e.attempt);
            tokio::join!(self.services.emit_status(&e), self.log(&e, "info", &line));
        }
        let started = e.started_at.unwrap_or_else(Utc::now);
        let deadline = started + chrono::Duration::seconds(i64::from(e.timeout_seconds));
        let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let result = match tokio::time::timeout(left, self.run_agent(&e)).await {
            Ok(r) => r,
            Err(_) => Err(Failure {
                status: "timeout",
                code: "timeout".into(),
                message: format!("the execution ran past its {} s timeout", e.timeout_seconds),
            }),
        };
        // The model's work is done: from here the task only records the end, which must not
        // be cut short (the heartbeat drops registered executions it no longer holds, and this
        // one stops being held the moment it is finished).
        self.services.signals.unregister(id);
        self.finish(&e, result).await;
        // A slot is free here (and in the org's cap): look for more work at once.
        self.services.signals.work.notify_one();
    }

    async fn run_agent(&self, e: &Execution) -> Result<Outcome, Failure> {
        let store = &self.services.store;
        let agent = store
            .agent_any(e.org_id, e.agent_id)
            .await
            .map_err(|err| Failure::failed("internal", err.to_string()))?
            .ok_or_else(|| Failure::failed("agent_not_found", "the agent no longer exists"))?;
        // A step finished before a crash is not sent to the provider again. A first attempt
        // has no journal to read.
        let steps = if e.attempt == 1 {
            vec![]
        } else {
            store
                .steps(e.org_id, e.id)
                .await
                .map_err(|err| Failure::failed("internal", err.to_string()))?
        };
        if let Some(done) = steps.iter().find(|s| s.idx == 0 && s.status == "success")
            && let Some(out) = &done.output
            && let Ok(reply) = serde_json::from_value::<ChatResponse>(out.0["reply"].clone())
        {
            return Ok(Outcome {
                reply,
                model: done.model.clone().unwrap_or_default(),
                provider_id: done.provider_id.unwrap_or_default(),
                cost_micros: done.cost_micros,
            });
        }
        self.llm_step(e, &agent).await
    }

    /// The targets to try in order: the agent's provider and model, then its fallbacks.
    fn targets(agent: &Agent) -> Vec<(Option<Uuid>, Option<String>)> {
        let mut t = vec![(agent.provider_id, agent.model.clone())];
        for f in agent.fallbacks.0.as_array().into_iter().flatten() {
            t.push((
                f["provider_id"].as_str().and_then(|s| s.parse().ok()),
                f["model"].as_str().map(str::to_string),
            ));
        }
        t
    }

    async fn llm_step(&self, e: &Execution, agent: &Agent) -> Result<Outcome, Failure> {
        let store = &self.services.store;
        let mut last = Failure::failed("no_provider", "the agent has no provider");
        let mut attempts: Vec<Value> = vec![];
        for (provider_id, model) in Self::targets(agent) {
            let Some(pid) = provider_id else { continue };
            let provider = match store.provider(e.org_id, pid).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    last = Failure::failed(
                        "provider_not_found",
                        "the agent's provider no longer exists",
                    );
                    continue;
                }
                Err(err) => return Err(Failure::failed("internal", err.to_string())),
            };
            let echo = (provider.kind == "echo").then(|| "echo".to_string());
            let Some(model) = model.or(provider.default_model.clone()).or(echo) else {
                last = Failure::failed(
                    "no_model",
                    "neither the agent nor its provider names a model",
                );
                continue;
            };
            let endpoint = self
                .services
                .endpoint(&provider)
                .map_err(|err| Failure::failed("internal", err.to_string()))?;
            let req = ChatRequest {
                model: model.clone(),
                system: (!agent.instructions.is_empty()).then(|| agent.instructions.clone()),
                messages: self.messages(e, agent).await?,
                temperature: agent.temperature,
                max_output_tokens: agent.max_output_tokens.map(|n| n as u32),
                tools: vec![],
            };
            let (sid, now) = new_id_at();
            let mut step = Step {
                id: sid,
                execution_id: e.id,
                idx: 0,
                kind: "llm".into(),
                name: model.clone(),
                status: "running".into(),
                input: Json(json!({"request": req})),
                output: None,
                error: None,
                attempts: Json(json!(attempts)),
                model: Some(model.clone()),
                provider_id: Some(pid),
                input_tokens: 0,
                cached_input_tokens: 0,
                output_tokens: 0,
                reasoning_tokens: 0,
                cost_micros: None,
                started_at: now,
                completed_at: None,
                duration_ms: None,
            };
            step = store
                .start_step(e.org_id, &step)
                .await
                .map_err(|err| Failure::failed("internal", err.to_string()))?;
            self.services.emit_step(e.org_id, &step).await;
            let mut tries: u32 = 0;
            let result = loop {
                let call_started = Utc::now();
                let deltas = Deltas::start(self.services.clone(), e.clone(), step.idx);
                let r = self
                    .services
                    .llm
                    .chat(&endpoint, &req, Some(&|t: &str| deltas.push(t)))
                    .await;
                deltas.finish().await;
                let took = (Utc::now() - call_started).num_milliseconds().max(0);
                match r {
                    Ok(reply) => {
                        attempts.push(json!({
                            "provider_id": pid, "model": model, "started_at": call_started,
                            "duration_ms": took, "error": null,
                        }));
                        break Ok(reply);
                    }
                    Err(err) => {
                        attempts.push(json!({
                            "provider_id": pid, "model": model, "started_at": call_started,
                            "duration_ms": took,
                            "error": {"code": err.code, "message": err.message, "status": err.status},
                        }));
                        let _ = store.set_step_attempts(step.id, &json!(attempts)).await;
                        if err.retryable && tries < agent.max_retries as u32 {
                            // Text streamed by the failed call is void: say so before the next.
                            step.attempts = Json(json!(attempts));
                            step.status = "retrying".into();
                            self.services.emit_step(e.org_id, &step).await;
                            step.status = "running".into();
                            let wait = err
                                .retry_after
                                .map_or(backoff(tries), |ra| ra.max(backoff(tries)));
                            self.log(
                                e,
                                "warning",
                                &format!(
                                    "provider call failed ({}), retrying in {} ms: {}",
                                    err.code,
                                    wait.as_millis(),
                                    err.message
                                ),
                            )
                            .await;
                            self.event(e, "execution.retried", "warning", json!({
                                "reason": err.code, "retry": tries + 1, "wait_ms": wait.as_millis() as u64,
                            })).await;
                            tries += 1;
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        break Err(err);
                    }
                }
            };
            let done = Utc::now();
            step.completed_at = Some(done);
            step.duration_ms = Some((done - step.started_at).num_milliseconds().max(0));
            step.attempts = Json(json!(attempts));
            match result {
                Ok(reply) => {
                    let cost = self
                        .services
                        .price(&provider, &model)
                        .map(|p| agentry_providers::cost_micros(&reply.usage, &p) as i64);
                    set_usage(&mut step, &reply.usage);
                    step.cost_micros = cost;
                    step.status = "success".into();
                    step.output = Some(Json(json!({"text": reply.text, "reply": reply})));
                    store
                        .finish_step(&step)
                        .await
                        .map_err(|err| Failure::failed("internal", err.to_string()))?;
                    self.services.emit_step(e.org_id, &step).await;
                    self.services.emit_usage(e.org_id, &step).await;
                    self.log(
                        e,
                        "info",
                        &format!(
                            "step {} llm {model}: {} input and {} output tokens in {} ms",
                            step.idx,
                            step.input_tokens,
                            step.output_tokens,
                            step.duration_ms.unwrap_or(0)
                        ),
                    )
                    .await;
                    return Ok(Outcome {
                        reply,
                        model,
                        provider_id: pid,
                        cost_micros: cost,
                    });
                }
                Err(err) => {
                    step.status = "failed".into();
                    step.error = Some(Json(json!({"code": err.code, "message": err.message})));
                    let _ = store.finish_step(&step).await;
                    self.services.emit_step(e.org_id, &step).await;
                    self.log(e, "error", &format!("provider call failed: {err}"))
                        .await;
                    last = failure_of(&err);
                }
            }
        }
        Err(last)
    }

    async fn finish(&self, e: &Execution, result: Result<Outcome, Failure>) {
        let now = Utc::now();
        let started = e.started_at.unwrap_or(now);
        let duration_ms = Some((now - started).num_milliseconds().max(0));
        let steps = self
            .services
            .store
            .steps(e.org_id, e.id)
            .await
            .unwrap_or_default();
        // The execution's usage is the sum of its steps (every attempt that was answered).
        let mut tokens = Tokens::default();
        if let Err(fail) = &result {
            let error = json!({"code": fail.code, "message": fail.message});
            if let Err(err) = self
                .services
                .store
                .close_running_steps(e.org_id, e.id, &error, now)
                .await
            {
                tracing::error!(execution_id = %e.id, error = %err, "closing running steps failed");
            }
        }
        let mut cost = Some(0i64);
        for s in steps.iter().filter(|s| s.status == "success") {
            tokens.input += s.input_tokens;
            tokens.cached_input += s.cached_input_tokens;
            tokens.output += s.output_tokens;
            tokens.reasoning += s.reasoning_tokens;
            cost = match (cost, s.cost_micros) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        if steps.iter().all(|s| s.status != "success") {
            cost = None;
        }
        let (f, kind, category, task_status, log) = match &result {
            Ok(o) => (
                Finish {
                    status: "success",
                    output: Some(
                        json!({"text": o.reply.text, "finish_reason": o.reply.finish_reason}),
                    ),
                    error: None,
                    model: Some(if o.reply.model.is_empty() {
                        o.model.clone()
                    } else {
                        o.reply.model.clone()
                    }),
                    provider_id: Some(o.provider_id),
                    tokens,
                    cost_micros: cost.or(o.cost_micros),
                    now,
                    duration_ms,
                },
                "execution.completed",
                "info",
                "completed",
                "execution succeeded".to_string(),
            ),
            Err(fail) => (
                Finish {
                    status: fail.status,
                    output: None,
                    error: Some(json!({"code": fail.code, "message": fail.message})),
                    model: None,
                    provider_id: None,
                    tokens,
                    cost_micros: cost,
                    now,
                    duration_ms,
                },
                if fail.status == "timeout" {
                    "execution.timeout"
                } else {
                    "execution.failed"
                },
                "error",
                "failed",
                format!("execution {}: {}", fail.status, fail.message),
            ),
        };
        match self
            .services
            .store
            .finish_execution(e.id, &self.owner, &f)
            .await
        {
            Ok(Some(done)) => {
                if let Some(tid) = e.task_id {
                    let _ = self
                        .services
                        .store
                        .task_follow_execution(
                            e.org_id,
                            tid,
                            e.id,
                            task_status,
                            f.output.as_ref(),
                            now,
                        )
                        .await;
                }
                self.event(
                    e,
                    kind,
                    category,
                    json!({
                        "status": done.status, "cost_micros": done.cost_micros,
                        "duration_ms": done.duration_ms, "error": f.error,
                    }),
                )
                .await;
                self.services.execution_finished(&done).await;
                self.log(e, if result.is_ok() { "info" } else { "error" }, &log)
                    .await;
                let _ = self.services.signals.finished.send(e.id);
            }
            // Cancelled or reaped meanwhile: whoever did that has recorded it.
            Ok(None) => {}
            Err(err) => {
                tracing::error!(execution_id = %e.id, error = %err, "finishing an execution failed")
            }
        }
    }

    async fn log(&self, e: &Execution, level: &str, message: &str) {
        if let Err(err) = self
            .services
            .store
            .add_agent_log(e.org_id, e.agent_id, Some(e.id), level, message)
            .await
        {
            tracing::error!(error = %err, "writing an agent log line failed");
        }
    }

    async fn event(&self, e: &Execution, kind: &'static str, category: &'static str, data: Value) {
        self.services
            .record_linked(
                Audit {
                    org_id: Some(e.org_id),
                    kind,
                    category,
                    actor: EventActor::System,
                    user_id: None,
                    data,
                    meta: &Default::default(),
                },
                Links {
                    agent_id: Some(e.agent_id),
                    task_id: e.task_id,
                    execution_id: Some(e.id),
                },
            )
            .await;
    }
}

fn set_usage(step: &mut Step, u: &Usage) {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    step.input_tokens = n(u.input_tokens);
    step.cached_input_tokens = n(u.cached_input_tokens);
    step.output_tokens = n(u.output_tokens);
    step.reasoning_tokens = n(u.reasoning_tokens);
}

fn failure_of(err: &ProviderError) -> Failure {
    Failure::failed(format!("provider_{}", err.code), err.message.clone())
}
