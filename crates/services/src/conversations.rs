//! Conversations: a thread of messages with an agent. Each user message starts a reply, which
//! is an execution with the conversation's history as its context; `multitask_strategy` says
//! what a message does while a reply is in progress.

use agentry_core::id::new_id_at;
use agentry_core::{FieldErrors, Role, text};
use agentry_store::{
    Conversation, ConversationFilter, Execution, Message, NewStreamEvent, Page, PageRequest,
};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::audit::Links;
use crate::executions::ExecutionInput;
use crate::live::topic;
use crate::views::{ConversationView, MessageView};
use crate::{OrgCtx, ServiceError, ServiceResult, Services};

const NOT_FOUND: ServiceError = ServiceError::NotFound("conversation not found");
pub const STRATEGIES: &[&str] = &["reject", "enqueue", "interrupt"];
pub const STATUSES: &[&str] = &["open", "closed"];
/// The longest message accepted, in characters.
pub const MAX_MESSAGE_CHARS: usize = 100_000;

#[derive(Debug, Clone, Default)]
pub struct ConversationInput {
    pub agent_id: Uuid,
    pub title: Option<String>,
    pub multitask_strategy: Option<String>,
}

/// A message to post.
#[derive(Debug, Clone, Default)]
pub struct MessageInput {
    pub content: String,
    pub client_msg_id: Option<String>,
}

impl Services {
    pub async fn create_conversation(
        &self,
        ctx: &OrgCtx,
        input: ConversationInput,
    ) -> ServiceResult<Conversation> {
        ctx.require(Role::Member)?;
        let mut errors = FieldErrors::new();
        if self
            .store
            .agent(ctx.org_id, input.agent_id)
            .await?
            .is_none()
        {
            errors.add("agent_id", "no such agent in this organization");
        }
        let title = match &input.title {
            Some(t) if t.trim().is_empty() => String::new(),
            Some(t) => errors
                .check("title", text::parse_line(t, 500))
                .unwrap_or_default(),
            None => String::new(),
        };
        let strategy = input.multitask_strategy.unwrap_or_else(|| "enqueue".into());
        if !STRATEGIES.contains(&strategy.as_str()) {
            errors.add(
                "multitask_strategy",
                "must be one of reject, enqueue, interrupt",
            );
        }
        errors.into_result()?;
        let (id, now) = new_id_at();
        let c = self
            .store
            .create_conversation(&Conversation {
                id,
                org_id: ctx.org_id,
                agent_id: input.agent_id,
                channel_id: None,
                title,
                status: "open".into(),
                multitask_strategy: strategy,
                created_by: ctx.actor.acting_user(),
                created_at: now,
                updated_at: now,
                last_message_at: None,
            })
            .await?;
        self.conversation_event(ctx, "conversation.created", &c)
            .await;
        Ok(c)
    }

    pub async fn get_conversation(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Conversation> {
        self.store
            .conversation(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)
    }

    pub async fn list_conversations(
        &self,
        ctx: &OrgCtx,
        f: &ConversationFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<Conversation>> {
        Ok(self.store.list_conversations(ctx.org_id, f, page).await?)
    }

    /// Deletes a conversation and its messages, cancelling a reply in progress.
    pub async fn delete_conversation(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<()> {
        ctx.require(Role::Member)?;
        let c = self.get_conversation(ctx, id).await?;
        self.cancel_replies(ctx, id, "the conversation was deleted")
            .await?;
        self.store.delete_conversation(ctx.org_id, id).await?;
        self.conversation_event(ctx, "conversation.deleted", &c)
            .await;
        Ok(())
    }

    /// Hands the conversation to another agent; replies from now on are that agent's.
    pub async fn assign_conversation(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        agent_id: Uuid,
    ) -> ServiceResult<Conversation> {
        ctx.require(Role::Member)?;
        self.get_conversation(ctx, id).await?;
        let agent = self
            .store
            .agent(ctx.org_id, agent_id)
            .await?
            .ok_or(ServiceError::field(
                "agent_id",
                "no such agent in this organization",
            ))?;
        let c = self
            .store
            .update_conversation(ctx.org_id, id, Some(agent.id), None, Utc::now())
            .await?
            .ok_or(NOT_FOUND)?;
        self.conversation_event(ctx, "conversation.assigned", &c)
            .await;
        self.conversation_update(&c).await;
        Ok(c)
    }

    /// Closes the conversation: it takes no new messages. A reply in progress finishes.
    pub async fn close_conversation(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Conversation> {
        ctx.require(Role::Member)?;
        self.get_conversation(ctx, id).await?;
        let c = self
            .store
            .update_conversation(ctx.org_id, id, None, Some("closed"), Utc::now())
            .await?
            .ok_or(NOT_FOUND)?;
        self.conversation_event(ctx, "conversation.closed", &c)
            .await;
        self.conversation_update(&c).await;
        Ok(c)
    }

    pub async fn list_messages(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> ServiceResult<Vec<Message>> {
        self.get_conversation(ctx, id).await?;
        Ok(self
            .store
            .messages(ctx.org_id, id, after, i64::from(limit))
            .await?)
    }

    /// Stores a user message and starts the agent's reply. While a reply is in progress the
    /// conversation's strategy decides: `reject` refuses (`409 conversation_busy`), `enqueue`
    /// answers in order, `interrupt` cancels the reply in progress.
    pub async fn post_message(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        input: MessageInput,
    ) -> ServiceResult<(Message, Execution)> {
        ctx.require(Role::Member)?;
        let mut errors = FieldErrors::new();
        if input.content.trim().is_empty() {
            errors.add("content", "must not be empty");
        } else if input.content.chars().count() > MAX_MESSAGE_CHARS {
            errors.add(
                "content",
                format!("must be at most {MAX_MESSAGE_CHARS} characters"),
            );
        }
        if let Some(c) = &input.client_msg_id
            && (c.is_empty() || c.chars().count() > 200)
        {
            errors.add("client_msg_id", "must be 1 to 200 characters");
        }
        errors.into_result()?;
        let c = self.get_conversation(ctx, id).await?;
        if c.status != "open" {
            return Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "the conversation is closed",
            });
        }
        let agent = self.store.agent(ctx.org_id, c.agent_id).await?;
        if !agent.is_some_and(|a| matches!(a.status.as_str(), "active" | "paused")) {
            return Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "the conversation's agent is not active; start it or assign another",
            });
        }
        let busy = !self
            .store
            .conversation_unfinished(ctx.org_id, id)
            .await?
            .is_empty();
        match c.multitask_strategy.as_str() {
            "reject" if busy => {
                return Err(ServiceError::Conflict {
                    code: "conversation_busy",
                    message: "a reply is in progress; wait for it or cancel it",
                });
            }
            "interrupt" if busy => {
                self.cancel_replies(ctx, id, "interrupted by a new message")
                    .await?;
            }
            _ => {}
        }
        let (mid, now) = new_id_at();
        let m = self
            .store
            .add_message(&Message {
                id: mid,
                org_id: ctx.org_id,
                conversation_id: id,
                role: "user".into(),
                content: input.content.clone(),
                status: "sent".into(),
                execution_id: None,
                reply_to: None,
                client_msg_id: input.client_msg_id,
                input_tokens: 0,
                cached_input_tokens: 0,
                output_tokens: 0,
                reasoning_tokens: 0,
                created_by: ctx.actor.acting_user().or(Some(ctx.actor.id())),
                created_at: now,
            })
            .await?;
        let exec = self
            .create_execution(
                ctx,
                ExecutionInput {
                    agent_id: c.agent_id,
                    input: json!({"message_id": m.id, "content": input.content}),
                    task_id: None,
                    timeout_seconds: None,
                    conversation_id: Some(id),
                },
            )
            .await;
        let exec = match exec {
            Ok(e) => e,
            Err(err) => {
                let _ = self
                    .store
                    .set_message_status(ctx.org_id, m.id, Some("failed"), None)
                    .await;
                return Err(err);
            }
        };
        // Only the link: the reply may already have started and marked it delivered.
        let m = self
            .store
            .set_message_status(ctx.org_id, m.id, None, Some(exec.id))
            .await?
            .unwrap_or(m);
        let view = serde_json::to_value(MessageView::from(m.clone())).unwrap_or_default();
        self.emit(
            ctx.org_id,
            vec![NewStreamEvent {
                topic: topic::conversation(id),
                event: "new_message",
                data: view,
            }],
        )
        .await;
        Ok((m, exec))
    }

    async fn cancel_replies(&self, ctx: &OrgCtx, id: Uuid, why: &str) -> ServiceResult<()> {
        for eid in self.store.conversation_unfinished(ctx.org_id, id).await? {
            self.cancel_execution_quietly(ctx, eid, why).await?;
        }
        Ok(())
    }

    /// `conversation_update` on the conversation's, its agent's and the org's topics.
    async fn conversation_update(&self, c: &Conversation) {
        let data = serde_json::to_value(ConversationView::from(c.clone())).unwrap_or_default();
        let ev = |topic| NewStreamEvent {
            topic,
            event: "conversation_update",
            data: data.clone(),
        };
        self.emit(
            c.org_id,
            vec![
                ev(topic::conversation(c.id)),
                ev(topic::agent(c.agent_id)),
                ev(topic::org(c.org_id)),
            ],
        )
        .await;
    }

    async fn conversation_event(&self, ctx: &OrgCtx, kind: &'static str, c: &Conversation) {
        let links = Links {
            agent_id: Some(c.agent_id),
            task_id: None,
            execution_id: None,
        };
        self.record_by(
            ctx,
            kind,
            json!({"conversation_id": c.id, "title": c.title}),
            links,
        )
        .await;
    }
}
