//! Supervised agents: every tool call waits for a person's answer. The calls of one model
//! turn are asked about together; the execution then leaves its worker (`awaiting_approval`,
//! no lease) until the last is decided or expires, and resumes from its journal.

use agentry_providers::ToolCall;
use agentry_store::{Execution, Step};
use serde_json::json;

use crate::Runtime;
use crate::run::{Failure, Journal, Stop};

/// A person's answer to one tool call.
pub(crate) struct Decision {
    pub(crate) approved: bool,
    status: String,
    comment: Option<String>,
}

impl Decision {
    fn of(s: &Step) -> Decision {
        let out = s.output.as_ref().map(|o| o.0.clone()).unwrap_or_default();
        Decision {
            approved: s.status == "approved",
            status: s.status.clone(),
            comment: out["comment"].as_str().map(str::to_string),
        }
    }

    /// What the model is told about a call that was not made.
    pub(crate) fn refusal(&self) -> String {
        let why = if self.status == "expired" {
            "nobody approved it in time".to_string()
        } else {
            match &self.comment {
                Some(c) => format!("a reviewer rejected it: {c}"),
                None => "a reviewer rejected it".to_string(),
            }
        };
        json!({"error": {"code": format!("approval_{}", self.status),
            "message": format!("The call was not made: {why}.")}})
        .to_string()
    }
}

impl Runtime {
    /// The decisions on `calls`, whose approval steps start at `idx`. Asks for those not yet
    /// asked about; while any awaits an answer, suspends the execution.
    pub(crate) async fn approvals(
        &self,
        e: &Execution,
        idx: i32,
        calls: &[ToolCall],
        journal: &Journal,
    ) -> Result<Vec<Decision>, Stop> {
        let store = &self.services.store;
        let mut decisions = vec![];
        let mut waiting = false;
        for (i, call) in calls.iter().enumerate() {
            let at = idx + i as i32;
            match journal.get(&at).filter(|s| s.kind == "approval") {
                Some(s) if s.status == "awaiting" => waiting = true,
                Some(s) => decisions.push(Decision::of(s)),
                None => {
                    waiting = true;
                    let mut step = Step::started(
                        e.id,
                        at,
                        "approval",
                        &call.name,
                        "awaiting",
                        json!({"call_id": call.id, "tool": call.name, "arguments": call.arguments}),
                    );
                    step.expires_at = Some(step.started_at + self.services.tools.approval_ttl);
                    let step = store
                        .start_step(e.org_id, &step)
                        .await
                        .map_err(Failure::internal)?;
                    let line = format!("step {at}: tool {} awaits approval", call.name);
                    tokio::join!(
                        self.services
                            .emit_step_as(e.org_id, &step, "approval_requested", true),
                        self.log(e, "info", &line),
                        self.event(
                            e,
                            "execution.approval_requested",
                            "info",
                            json!({"step_id": step.id, "tool": call.name})
                        ),
                    );
                }
            }
        }
        if !waiting {
            return Ok(decisions);
        }
        match store.suspend_for_approval(e.id, &self.owner).await {
            Ok(true) => {
                let mut now = e.clone();
                now.status = "awaiting_approval".into();
                self.services.emit_status(&now).await;
                Err(Stop::Suspended)
            }
            // No longer held (cancelled, reaped): whoever took it records the rest.
            Ok(false) => Err(Stop::Suspended),
            Err(err) => Err(Failure::internal(err).into()),
        }
    }
}
