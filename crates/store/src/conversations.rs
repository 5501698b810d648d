//! Conversations with an agent and their messages. A reply is an execution whose
//! `conversation_id` names the conversation; its assistant message points back at it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::macros::{read, write};
use crate::{Page, PageRequest, Result, Store, StoreError};

const COLS: &str = "id, org_id, agent_id, channel_id, title, status, multitask_strategy, created_by, created_at, updated_at, last_message_at";
const MSG_COLS: &str = "id, org_id, conversation_id, role, content, status, execution_id, reply_to, client_msg_id, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, created_by, created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Conversation {
    pub id: Uuid,
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub channel_id: Option<Uuid>,
    pub title: String,
    pub status: String,
    pub multitask_strategy: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: Uuid,
    pub org_id: Uuid,
    pub conversation_id: Uuid,
    pub role: String,
    pub content: String,
    pub status: String,
    pub execution_id: Option<Uuid>,
    pub reply_to: Option<Uuid>,
    pub client_msg_id: Option<String>,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub agent_id: Option<Uuid>,
    pub status: Option<String>,
}

impl Store {
    pub async fn create_conversation(&self, c: &Conversation) -> Result<Conversation> {
        write!(self, |x| sqlx::query_as(&format!(
            "INSERT INTO conversations ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             RETURNING {COLS}"
        ))
        .bind(c.id)
        .bind(c.org_id)
        .bind(c.agent_id)
        .bind(c.channel_id)
        .bind(&c.title)
        .bind(&c.status)
        .bind(&c.multitask_strategy)
        .bind(c.created_by)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.last_message_at)
        .fetch_one(x)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn conversation(&self, org_id: Uuid, id: Uuid) -> Result<Option<Conversation>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM conversations WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn list_conversations(
        &self,
        org_id: Uuid,
        f: &ConversationFilter,
        page: PageRequest,
    ) -> Result<Page<Conversation>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM conversations WHERE org_id = $1
               AND ($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR status = $3)
               AND id {cmp} $4 ORDER BY id {order} LIMIT $5"
        ))
        .bind(org_id)
        .bind(f.agent_id)
        .bind(f.status.as_deref())
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    /// Sets the agent, the status, or both; `None` when there is no such conversation.
    pub async fn update_conversation(
        &self,
        org_id: Uuid,
        id: Uuid,
        agent_id: Option<Uuid>,
        status: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Conversation>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE conversations SET agent_id = COALESCE($1, agent_id),
                status = COALESCE($2, status), updated_at = $3
             WHERE org_id = $4 AND id = $5 RETURNING {COLS}"
        ))
        .bind(agent_id)
        .bind(status)
        .bind(now)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Deletes a conversation and its messages; its executions stay, still naming it.
    pub async fn delete_conversation(&self, org_id: Uuid, id: Uuid) -> Result<bool> {
        let n = write!(self, |c| sqlx::query(
            "DELETE FROM conversations WHERE org_id = $1 AND id = $2"
        )
        .bind(org_id)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(n > 0)
    }

    /// Stores a message and moves the conversation's `last_message_at`.
    pub async fn add_message(&self, m: &Message) -> Result<Message> {
        let msg: Message = write!(self, |c| sqlx::query_as(&format!(
            "INSERT INTO messages ({MSG_COLS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             RETURNING {MSG_COLS}"
        ))
        .bind(m.id)
        .bind(m.org_id)
        .bind(m.conversation_id)
        .bind(&m.role)
        .bind(&m.content)
        .bind(&m.status)
        .bind(m.execution_id)
        .bind(m.reply_to)
        .bind(m.client_msg_id.as_deref())
        .bind(m.input_tokens)
        .bind(m.cached_input_tokens)
        .bind(m.output_tokens)
        .bind(m.reasoning_tokens)
        .bind(m.created_by)
        .bind(m.created_at)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        write!(self, |c| sqlx::query(
            "UPDATE conversations SET last_message_at = $1, updated_at = $1
             WHERE org_id = $2 AND id = $3"
        )
        .bind(m.created_at)
        .bind(m.org_id)
        .bind(m.conversation_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(msg)
    }

    /// Sets a message's status and the execution answering it, each when given.
    pub async fn set_message_status(
        &self,
        org_id: Uuid,
        id: Uuid,
        status: Option<&str>,
        execution_id: Option<Uuid>,
    ) -> Result<Option<Message>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE messages SET status = COALESCE($1, status), execution_id = COALESCE($2, execution_id)
             WHERE org_id = $3 AND id = $4 RETURNING {MSG_COLS}"
        ))
        .bind(status)
        .bind(execution_id)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn message(&self, org_id: Uuid, id: Uuid) -> Result<Option<Message>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {MSG_COLS} FROM messages WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Up to `limit` messages after the message `after` (oldest first).
    pub async fn messages(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Message>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {MSG_COLS} FROM messages WHERE org_id = $1 AND conversation_id = $2
               AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(org_id)
        .bind(conversation_id)
        .bind(after.unwrap_or(Uuid::nil()))
        .bind(limit)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// The newest `limit` messages a reply to `upto` may use, oldest first: the messages up
    /// to it and the replies to them (a reply that came after `upto`, while it waited its turn,
    /// answers an earlier message and belongs before it).
    pub async fn history(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        upto: Uuid,
        limit: i64,
    ) -> Result<Vec<Message>> {
        let mut rows: Vec<Message> = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {MSG_COLS} FROM messages WHERE org_id = $1 AND conversation_id = $2
               AND (id <= $3 OR reply_to < $3)
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(org_id)
        .bind(conversation_id)
        .bind(upto)
        .bind(limit)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        rows.sort_by_key(|m| (m.reply_to.unwrap_or(m.id), m.reply_to.is_some(), m.id));
        Ok(rows)
    }

    /// Ids of a conversation's replies that have not finished, oldest first.
    pub async fn conversation_unfinished(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
    ) -> Result<Vec<Uuid>> {
        read!(self, |c| sqlx::query_scalar(
            "SELECT id FROM executions WHERE org_id = $1 AND conversation_id = $2
               AND status IN ('pending', 'running', 'awaiting_approval') ORDER BY id"
        )
        .bind(org_id)
        .bind(conversation_id)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }
}
