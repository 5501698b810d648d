//! Running one execution: the agent loop. The model answers or asks for tools; the calls run
//! (at once when there are several) and their results go back to it, until a final answer or
//! `max_steps`. Every call to the model and every tool call is a journaled step, so a resumed
//! execution replays what finished and goes on from the first step that did not.

use std::collections::HashMap;
use std::time::Duration;

use agentry_providers::{ChatResponse, Message};
use agentry_services::audit::{Audit, EventActor, Links};
use agentry_store::{Agent, Execution, Finish, Step, Tokens};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Runtime;
use crate::tools::Toolset;

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

    pub(crate) fn internal(err: impl std::fmt::Display) -> Failure {
        Failure::failed("internal", err.to_string())
    }
}

/// How a run of the loop ended short of an answer.
pub(crate) enum Stop {
    Fail(Failure),
    /// Waiting for approvals: the execution was handed back to the queue's care.
    Suspended,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Stop {
        Stop::Fail(f)
    }
}

/// What a finished LLM step produced.
pub(crate) struct Outcome {
    pub(crate) reply: ChatResponse,
    pub(crate) model: String,
    pub(crate) provider_id: Uuid,
    pub(crate) cost_micros: Option<i64>,
    /// The structured answer, when the agent declares an `output_schema`.
    pub(crate) data: Option<Value>,
}

/// An execution's journal from earlier attempts, by index.
pub(crate) type Journal = HashMap<i32, Step>;

impl Runtime {
    pub(crate) async fn execute(&self, e: Execution) {
        let id = e.id;
        // The journal of earlier attempts (or of the run before an approval).
        // The agent is read alongside (it is needed before the first call).
        let store = &self.services.store;
        let (steps, agent) = tokio::join!(
            store.steps(e.org_id, id),
            store.agent_any(e.org_id, e.agent_id)
        );
        let journal: Journal = match steps {
            Ok(steps) => steps.into_iter().map(|s| (s.idx, s)).collect(),
            Err(err) => {
                tracing::error!(execution_id = %id, error = %err, "reading the journal failed");
                self.services.signals.unregister(id);
                return; // The lease expires and the execution is tried again.
            }
        };
        if e.attempt == 1 && journal.is_empty() {
            // Independent records of the start, written together (they are on the way to the
            // first token); all are done before the first step is announced.
            let task = async {
                if let Some(tid) = e.task_id {
                    let _ = self
                        .services
                        .store
                        .task_follow_execution(e.org_id, tid, id, Utc::now())
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
        // Time spent waiting for approvals does not count against the timeout.
        let waited: i64 = journal
            .values()
            .filter(|s| s.kind == "approval")
            .filter_map(|s| s.duration_ms)
            .sum();
        let started = e.started_at.unwrap_or_else(Utc::now);
        let deadline = started
            + chrono::Duration::seconds(i64::from(e.timeout_seconds))
            + chrono::Duration::milliseconds(waited);
        let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let result = match tokio::time::timeout(left, self.run_agent(&e, agent, &journal)).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(Stop::Fail(f))) => Err(f),
            Ok(Err(Stop::Suspended)) => {
                self.services.signals.unregister(id);
                return;
            }
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

    /// The loop: the model, then the tools it asks for, until an answer.
    async fn run_agent(
        &self,
        e: &Execution,
        agent: agentry_store::Result<Option<Agent>>,
        journal: &Journal,
    ) -> Result<Outcome, Stop> {
        let agent = agent
            .map_err(Failure::internal)?
            .ok_or_else(|| Failure::failed("agent_not_found", "the agent no longer exists"))?;
        let tools = Toolset::load(self, e, &agent).await?;
        let specs = tools.specs();
        let mut messages = self.messages(e, &agent).await?;
        let mut idx: i32 = 0;
        let mut turns = 0;
        let mut sent = 0;
        let mut repaired = false;
        loop {
            if turns >= agent.max_steps {
                return Err(Failure::failed(
                    "max_steps_exceeded",
                    format!(
                        "the agent was still calling tools after {} model calls (max_steps)",
                        agent.max_steps
                    ),
                )
                .into());
            }
            turns += 1;
            let mut outcome = match replayed_llm(journal.get(&idx)) {
                Some(o) => o,
                None => {
                    self.llm_step(e, &agent, idx, &messages, sent, &specs)
                        .await?
                }
            };
            sent = messages.len();
            idx += 1;
            let reply = outcome.reply.clone();
            if reply.tool_calls.is_empty() {
                let Some(schema) = &agent.output_schema else {
                    return Ok(outcome);
                };
                match structured(&schema.0, &reply.text) {
                    Ok(data) => {
                        outcome.data = Some(data);
                        return Ok(outcome);
                    }
                    Err(why) if !repaired => {
                        // One more try, told what was wrong.
                        repaired = true;
                        self.log(
                            e,
                            "warning",
                            &format!(
                                "the answer did not match the output schema, asking again: {why}"
                            ),
                        )
                        .await;
                        messages.push(Message::assistant(reply.text));
                        messages.push(Message::user(format!(
                            "Your answer does not match the required JSON Schema: {why}. \
                             Answer again with only a JSON value that matches the schema."
                        )));
                        continue;
                    }
                    Err(why) => {
                        return Err(Failure::failed(
                            "invalid_output",
                            format!("the answer does not match the output schema: {why}"),
                        )
                        .into());
                    }
                }
            }
            messages.push(Message {
                tool_calls: reply.tool_calls.clone(),
                ..Message::assistant(reply.text.clone())
            });
            let n = reply.tool_calls.len() as i32;
            // Supervised: an approval step for each call, decided before any runs.
            let approvals = if agent.autonomy == "supervised"
                || journal.get(&idx).is_some_and(|s| s.kind == "approval")
            {
                let d = self.approvals(e, idx, &reply.tool_calls, journal).await?;
                idx += n;
                Some(d)
            } else {
                None
            };
            let runs = reply.tool_calls.iter().enumerate().map(|(i, call)| {
                let approval = approvals.as_ref().map(|a| &a[i]);
                let at = idx + i as i32;
                self.tool_step(e, &tools, at, call, approval, journal.get(&at))
            });
            let results = futures_util::future::join_all(runs).await;
            for (call, content) in reply.tool_calls.iter().zip(results) {
                messages.push(Message::tool(&call.id, content));
            }
            idx += n;
        }
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
            // Agents this one called and left running stop with it.
            self.cancel_children(e, &fail.message).await;
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
        // Answered model calls, and tool calls that spent tokens (agents they called, whose
        // cost rolls up here even when they failed).
        let mut cost = Some(0i64);
        let mut priced = false;
        for s in steps.iter().filter(|s| {
            (s.kind == "llm" && s.status == "success")
                || (s.kind == "tool"
                    && (s.cost_micros.is_some() || s.input_tokens + s.output_tokens > 0))
        }) {
            priced = true;
            tokens.input += s.input_tokens;
            tokens.cached_input += s.cached_input_tokens;
            tokens.output += s.output_tokens;
            tokens.reasoning += s.reasoning_tokens;
            cost = match (cost, s.cost_micros) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        if !priced {
            cost = None;
        }
        let (f, kind, category, log) = match &result {
            Ok(o) => (
                Finish {
                    status: "success",
                    output: Some(match &o.data {
                        Some(d) => json!({"text": o.reply.text, "data": d,
                            "finish_reason": o.reply.finish_reason}),
                        None => {
                            json!({"text": o.reply.text, "finish_reason": o.reply.finish_reason})
                        }
                    }),
                    confidence: o
                        .data
                        .as_ref()
                        .and_then(|d| d["confidence"].as_f64())
                        .filter(|c| (0.0..=1.0).contains(c)),
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
                    confidence: None,
                    now,
                    duration_ms,
                },
                if fail.status == "timeout" {
                    "execution.timeout"
                } else {
                    "execution.failed"
                },
                "error",
                format!("execution {}: {}", fail.status, fail.message),
            ),
        };
        match self
            .services
            .store
            .finish_execution(e, &self.owner, &f)
            .await
        {
            Ok(Some(done)) => {
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

    pub(crate) async fn log(&self, e: &Execution, level: &str, message: &str) {
        if let Err(err) = self
            .services
            .store
            .add_agent_log(e.org_id, e.agent_id, Some(e.id), level, message)
            .await
        {
            tracing::error!(error = %err, "writing an agent log line failed");
        }
    }

    pub(crate) async fn event(
        &self,
        e: &Execution,
        kind: &'static str,
        category: &'static str,
        data: Value,
    ) {
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

/// The reply of an LLM step that finished in an earlier attempt.
fn replayed_llm(s: Option<&Step>) -> Option<Outcome> {
    let s = s.filter(|s| s.kind == "llm" && s.status == "success")?;
    let reply =
        serde_json::from_value::<ChatResponse>(s.output.as_ref()?.0["reply"].clone()).ok()?;
    Some(Outcome {
        reply,
        model: s.model.clone().unwrap_or_default(),
        provider_id: s.provider_id.unwrap_or_default(),
        cost_micros: s.cost_micros,
        data: None,
    })
}

/// The structured answer in `text`, checked against the agent's output schema. A model may
/// wrap JSON in a Markdown code fence; that is taken off.
fn structured(schema: &Value, text: &str) -> Result<Value, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    let v: Value = serde_json::from_str(t).map_err(|e| format!("the answer is not JSON ({e})"))?;
    agentry_core::schema::validate(schema, &v)?;
    Ok(v)
}
