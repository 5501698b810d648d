//! `call_agent`: another agent of the same org runs as a child execution, linked by
//! `parent_execution_id`, in this worker's hands (so a busy queue cannot starve a parent that
//! waits for it). Its tokens and cost roll up into the calling step. Depth is capped and a
//! call back into an agent already in the chain is refused.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use agentry_store::{Execution, Tokens};
use agentry_tools::ToolError;
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Runtime;
use crate::tools::ToolRun;

impl Runtime {
    /// The agents `call_agent` offers the model, one per line (at most 20).
    pub(crate) async fn callable_agents(&self, e: &Execution) -> String {
        let filter = agentry_store::AgentFilter {
            status: Some("active".into()),
            ..Default::default()
        };
        let page = agentry_store::PageRequest::first(20);
        let sort = agentry_store::KeySort::ID;
        match self
            .services
            .store
            .list_agents(e.org_id, &filter, page, &sort)
            .await
        {
            Ok(p) => p
                .items
                .iter()
                .filter(|a| a.id != e.agent_id && a.autonomy != "manual")
                .map(|a| {
                    let d: String = a.description.chars().take(200).collect();
                    format!("- {} ({}): {d}", a.id, a.name)
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(_) => String::new(),
        }
    }

    /// Boxed as `Send`: an execution runs executions, and the compiler needs the cycle cut to
    /// see that the whole is `Send`.
    pub(crate) fn call_agent<'a>(
        &'a self,
        e: &'a Execution,
        args: &'a Value,
        child_id: Uuid,
    ) -> Pin<Box<dyn Future<Output = ToolRun> + Send + 'a>> {
        Box::pin(self.start_child(e, args, child_id))
    }

    async fn start_child(&self, e: &Execution, args: &Value, child_id: Uuid) -> ToolRun {
        let fail = |code: &str, msg: String| ToolRun {
            result: Err(ToolError::new(code, msg)),
            tokens: Tokens::default(),
            cost_micros: None,
            child: None,
        };
        let store = &self.services.store;
        // Resumed: the child exists already; wait for it rather than start another.
        match store.execution(e.org_id, child_id).await {
            Ok(Some(_)) => return self.await_child(e, child_id).await,
            Ok(None) => {}
            Err(err) => return fail("internal", err.to_string()),
        }
        let Some(target) = args["agent_id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
        else {
            return fail("invalid_arguments", "agent_id must be an agent's id".into());
        };
        let agent = match store.agent(e.org_id, target).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return fail(
                    "agent_not_found",
                    format!("there is no agent {target} in this organization"),
                );
            }
            Err(err) => return fail("internal", err.to_string()),
        };
        if !matches!(agent.status.as_str(), "active" | "paused") {
            return fail(
                "agent_inactive",
                format!("the agent {} is not active", agent.name),
            );
        }
        if agent.autonomy == "manual" {
            return fail(
                "agent_manual",
                format!("the agent {} runs only when a person starts it", agent.name),
            );
        }
        // The chain of callers: this execution's agent and its ancestors'.
        let mut chain = vec![e.agent_id];
        let mut up = e.parent_execution_id;
        while let Some(pid) = up {
            match store.execution(e.org_id, pid).await {
                Ok(Some(p)) => {
                    chain.push(p.agent_id);
                    up = p.parent_execution_id;
                }
                _ => break,
            }
            if chain.len() > 64 {
                break;
            }
        }
        if chain.contains(&target) {
            return fail(
                "cycle_refused",
                format!("the agent {} is already in this chain of calls", agent.name),
            );
        }
        let max = self.services.tools.max_call_depth as usize;
        if chain.len() > max {
            return fail(
                "depth_exceeded",
                format!("agents may call agents at most {max} deep"),
            );
        }
        let input = match &args["input"] {
            Value::String(s) => json!({"text": s}),
            v => v.clone(),
        };
        let now = Utc::now();
        let child = Execution {
            id: child_id,
            org_id: e.org_id,
            agent_id: agent.id,
            agent_version: agent.version,
            task_id: None,
            conversation_id: None,
            parent_execution_id: Some(e.id),
            status: "running".into(),
            input: agentry_store::Json(input),
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
            timeout_seconds: agent.timeout_seconds,
            priority: e.priority,
            run_after: now,
            lease_owner: Some(self.owner.clone()),
            lease_expires_at: Some(self.lease_until()),
            created_by: e.created_by,
            created_at: now,
            updated_at: now,
            started_at: Some(now),
            completed_at: None,
            duration_ms: None,
        };
        let child = match store.create_execution(&child).await {
            Ok(c) => c,
            Err(err) => return fail("internal", err.to_string()),
        };
        self.event(
            &child,
            "execution.created",
            "info",
            json!({"agent_version": child.agent_version, "parent_execution_id": e.id}),
        )
        .await;
        match self.me.upgrade() {
            Some(rt) => {
                let _ = rt.spawn_execution(child).await;
            }
            None => return fail("internal", "the runtime is shutting down".into()),
        }
        self.await_child(e, child_id).await
    }

    /// Waits for a child execution to finish and turns its end into the call's result.
    async fn await_child(&self, e: &Execution, child_id: Uuid) -> ToolRun {
        let store = &self.services.store;
        let child = loop {
            match store.execution(e.org_id, child_id).await {
                Ok(Some(c)) if c.is_finished() => break c,
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok(None) => {
                    return ToolRun {
                        result: Err(ToolError::new("internal", "the called execution vanished")),
                        tokens: Tokens::default(),
                        cost_micros: None,
                        child: Some(child_id),
                    };
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let tokens = Tokens {
            input: child.input_tokens,
            cached_input: child.cached_input_tokens,
            output: child.output_tokens,
            reasoning: child.reasoning_tokens,
        };
        let result = if child.status == "success" {
            let out = child.output.map(|o| o.0).unwrap_or_default();
            Ok(match out.get("data") {
                Some(d) => d.clone(),
                None => out["text"].clone(),
            })
        } else {
            let msg = child
                .error
                .as_ref()
                .and_then(|er| er.0["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            Err(ToolError::new(
                "agent_failed",
                format!("the called agent's execution ended {}: {msg}", child.status),
            ))
        };
        ToolRun {
            result,
            tokens,
            cost_micros: child.cost_micros,
            child: Some(child_id),
        }
    }

    /// Stops the executions this one started and left unfinished.
    pub(crate) async fn cancel_children(&self, e: &Execution, why: &str) {
        let Ok(children) = self
            .services
            .store
            .unfinished_children(e.org_id, e.id)
            .await
        else {
            return;
        };
        for c in children {
            let why = format!("the execution that called it stopped: {why}");
            if let Err(err) = self.services.cancel_tree(e.org_id, c, &why, None).await {
                tracing::error!(execution_id = %c, error = %err, "cancelling a child failed");
            }
        }
    }
}
