//! One call to the model: the agent's provider and model, then its fallbacks, each with
//! retries, journaled as one step.

use agentry_providers::{ChatRequest, Message, ProviderError, ToolSpec, Usage};
use agentry_store::{Agent, Execution, Json, Step};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::deltas::Deltas;
use crate::run::{Failure, Outcome};
use crate::{Runtime, backoff};

impl Runtime {
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

    /// One call to the model at journal index `idx`, with `messages` (of which the first
    /// `earlier` were sent by earlier steps and are left out of this step's recorded input).
    pub(crate) async fn llm_step(
        &self,
        e: &Execution,
        agent: &Agent,
        idx: i32,
        messages: &[Message],
        earlier: usize,
        tools: &[ToolSpec],
    ) -> Result<Outcome, Failure> {
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
                Err(err) => return Err(Failure::internal(err)),
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
                .map_err(Failure::internal)?;
            let req = ChatRequest {
                model: model.clone(),
                system: (!agent.instructions.is_empty()).then(|| agent.instructions.clone()),
                messages: messages.to_vec(),
                temperature: agent.temperature,
                max_output_tokens: agent.max_output_tokens.map(|n| n as u32),
                tools: tools.to_vec(),
                response_schema: agent.output_schema.as_ref().map(|s| s.0.clone()),
            };
            let mut recorded = req.clone();
            recorded.messages = messages[earlier.min(messages.len())..].to_vec();
            let mut step = Step::started(
                e.id,
                idx,
                "llm",
                &model,
                "running",
                json!({"request": recorded, "earlier_messages": earlier}),
            );
            step.attempts = Json(json!(attempts));
            step.model = Some(model.clone());
            step.provider_id = Some(pid);
            step = store
                .start_step(e.org_id, &step)
                .await
                .map_err(Failure::internal)?;
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
                    store.finish_step(&step).await.map_err(Failure::internal)?;
                    self.services.emit_step_with_usage(e.org_id, &step).await;
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
                        data: None,
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
                    // Only a failure that could pass moves on to the fallbacks: a refused
                    // request would be refused by the next model too.
                    if !err.retryable {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

fn set_usage(step: &mut Step, u: &Usage) {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    step.input_tokens = n(u.input_tokens);
    step.cached_input_tokens = n(u.cached_input_tokens);
    step.output_tokens = n(u.output_tokens);
    step.reasoning_tokens = n(u.reasoning_tokens);
}

/// The execution's error for a provider's: its code under `provider_` (once: some codes carry
/// it already, such as `provider_unavailable`).
fn failure_of(err: &ProviderError) -> Failure {
    let code = if err.code.starts_with("provider_") {
        err.code.to_string()
    } else {
        format!("provider_{}", err.code)
    };
    Failure::failed(code, err.message.clone())
}
