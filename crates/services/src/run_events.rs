//! What an execution says on the live streams: `status`, `step`, `delta`, `usage` and `done`
//! on its own topic (status and done also on its agent's and org's), and for a conversation's
//! reply, `agent_response`, `new_message` and `message_status` on the conversation's topic.

use agentry_store::{Execution, Message, NewStreamEvent, Step, Tokens};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Services;
use crate::live::topic;
use crate::views::{ExecutionView, MessageView, StepView, UsageView, usd};

fn ev(topic: String, event: &'static str, data: Value) -> NewStreamEvent {
    NewStreamEvent { topic, event, data }
}

/// The user message a conversation's reply answers (from the execution's input).
pub fn replying_to(e: &Execution) -> Option<Uuid> {
    e.conversation_id?;
    e.input.0["message_id"].as_str()?.parse().ok()
}

/// A step as `/steps` shows it, under `name` on the execution's topic, with its input (the
/// call's arguments) when `with_input` and it is not large.
fn step_event(s: &Step, name: &'static str, with_input: bool) -> NewStreamEvent {
    /// Arguments larger than this are left out of the stream (they stay in `/steps`).
    const MAX_INPUT: usize = 16 * 1024;
    let mut data = serde_json::to_value(StepView::from(s.clone())).unwrap_or_default();
    if let Some(o) = data.as_object_mut() {
        let keep = with_input && s.input.0.to_string().len() <= MAX_INPUT;
        if !keep {
            o.remove("input");
        }
    }
    ev(topic::execution(s.execution_id), name, data)
}

/// `event` on the execution's, its agent's and its org's topics.
fn on_run_topics(e: &Execution, event: &'static str, data: Value) -> [NewStreamEvent; 3] {
    [
        ev(topic::execution(e.id), event, data.clone()),
        ev(topic::agent(e.agent_id), event, data.clone()),
        ev(topic::org(e.org_id), event, data),
    ]
}

/// The `status` event of an execution as it is now.
fn status_events(e: &Execution) -> [NewStreamEvent; 3] {
    let data = json!({
        "execution_id": e.id, "agent_id": e.agent_id, "status": e.status, "attempt": e.attempt,
    });
    on_run_topics(e, "status", data)
}

impl Services {
    /// `status` on the execution's, its agent's and its org's topics.
    pub async fn emit_status(&self, e: &Execution) {
        self.emit(e.org_id, status_events(e).into()).await;
    }

    /// `step` on the execution's topic: the step as `/steps` shows it, without its input.
    pub async fn emit_step(&self, org_id: Uuid, s: &Step) {
        self.emit_step_as(org_id, s, "step", false).await;
    }

    /// A step under another event name (`tool_call`, `tool_result`, `approval_requested`),
    /// with its input (the call's arguments) when `with_input` and it is not large.
    pub async fn emit_step_as(&self, org_id: Uuid, s: &Step, name: &'static str, with_input: bool) {
        self.emit(org_id, vec![step_event(s, name, with_input)])
            .await;
    }

    /// A finished LLM step: `step`, then `usage`, on the execution's topic (one append).
    pub async fn emit_step_with_usage(&self, org_id: Uuid, s: &Step) {
        let data = json!({
            "step_index": s.idx,
            "usage": UsageView::from(Tokens {
                input: s.input_tokens,
                cached_input: s.cached_input_tokens,
                output: s.output_tokens,
                reasoning: s.reasoning_tokens,
            }),
            "cost_micros": s.cost_micros,
            "cost_usd": s.cost_micros.map(usd),
        });
        let usage = ev(topic::execution(s.execution_id), "usage", data);
        self.emit(org_id, vec![step_event(s, "step", false), usage])
            .await;
    }

    /// A piece of a reply's text as it streams: `delta` on the execution's topic, and
    /// `agent_response` on its conversation's.
    pub async fn emit_delta(&self, e: &Execution, step_index: i32, text: String) {
        let mut items = vec![ev(
            topic::execution(e.id),
            "delta",
            json!({"text": text, "step_index": step_index}),
        )];
        if let Some(cid) = e.conversation_id {
            items.push(ev(
                topic::conversation(cid),
                "agent_response",
                json!({"execution_id": e.id, "delta": text, "done": false}),
            ));
        }
        self.emit(e.org_id, items).await;
    }

    /// A conversation's reply has started: its user message is delivered.
    pub async fn reply_started(&self, e: &Execution) {
        let (Some(cid), Some(mid)) = (e.conversation_id, replying_to(e)) else {
            return;
        };
        self.set_message_status(e.org_id, cid, mid, "delivered", e.id)
            .await;
    }

    async fn set_message_status(
        &self,
        org_id: Uuid,
        cid: Uuid,
        mid: Uuid,
        status: &str,
        execution_id: Uuid,
    ) {
        match self
            .store
            .set_message_status(org_id, mid, Some(status), Some(execution_id))
            .await
        {
            Ok(Some(m)) => {
                let data =
                    json!({"message_id": m.id, "status": m.status, "execution_id": execution_id});
                self.emit(
                    org_id,
                    vec![ev(topic::conversation(cid), "message_status", data)],
                )
                .await;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "setting a message's status failed"),
        }
    }

    /// An execution has ended (whoever ended it): `status` and `done` on its topics; for a
    /// conversation's reply, the assistant message (or the user message marked failed).
    pub async fn execution_finished(&self, e: &Execution) {
        if let Some(cid) = e.conversation_id {
            self.reply_finished(e, cid).await;
        }
        let view = serde_json::to_value(ExecutionView::from(e.clone())).unwrap_or_default();
        // Within each topic `status` comes before `done` (the log keeps a batch's order).
        let items = status_events(e)
            .into_iter()
            .chain(on_run_topics(e, "done", view))
            .collect();
        self.emit(e.org_id, items).await;
    }

    async fn reply_finished(&self, e: &Execution, cid: Uuid) {
        let Some(mid) = replying_to(e) else { return };
        if e.status != "success" {
            self.set_message_status(e.org_id, cid, mid, "failed", e.id)
                .await;
            self.emit(
                e.org_id,
                vec![ev(
                    topic::conversation(cid),
                    "agent_response",
                    json!({"execution_id": e.id, "done": true, "status": e.status,
                           "error": e.error.as_ref().map(|j| &j.0), "message": null}),
                )],
            )
            .await;
            return;
        }
        let text = e
            .output
            .as_ref()
            .and_then(|o| o.0["text"].as_str())
            .unwrap_or_default()
            .to_string();
        let (id, now) = agentry_core::id::new_id_at();
        let m = Message {
            id,
            org_id: e.org_id,
            conversation_id: cid,
            role: "assistant".into(),
            content: text,
            status: "delivered".into(),
            execution_id: Some(e.id),
            reply_to: Some(mid),
            client_msg_id: None,
            input_tokens: e.input_tokens,
            cached_input_tokens: e.cached_input_tokens,
            output_tokens: e.output_tokens,
            reasoning_tokens: e.reasoning_tokens,
            created_by: None,
            created_at: now,
        };
        let m = match self.store.add_message(&m).await {
            Ok(m) => m,
            // The conversation was deleted meanwhile.
            Err(err) => {
                tracing::warn!(execution_id = %e.id, error = %err, "storing a reply failed");
                return;
            }
        };
        let view = serde_json::to_value(MessageView::from(m)).unwrap_or_default();
        self.emit(
            e.org_id,
            vec![
                ev(topic::conversation(cid), "new_message", view.clone()),
                ev(
                    topic::conversation(cid),
                    "agent_response",
                    json!({"execution_id": e.id, "done": true, "status": e.status, "error": null,
                           "message": view}),
                ),
            ],
        )
        .await;
    }
}
