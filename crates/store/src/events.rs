//! The audit log: append-only, org-scoped, newest first by default.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{read, relaxed_write};
use crate::{Event, Page, PageRequest, Result, Store, StoreError};

const EVENT_COLS: &str = "id, org_id, type, category, actor_type, actor_id, agent_id, task_id, execution_id, user_id, data, ip, created_at";

/// An event to append. `org_id` is `None` for instance-level events (such as a failed login
/// for an unknown email, or an org's own deletion).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub kind: String,
    pub category: String,
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub execution_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub data: Value,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Whose events to read.
#[derive(Debug, Clone, Copy)]
pub enum EventScope {
    Org(Uuid),
    /// Every org's and the instance's own: platform admins only.
    Instance,
}

impl EventScope {
    fn org(self) -> Option<Uuid> {
        match self {
            EventScope::Org(id) => Some(id),
            EventScope::Instance => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<String>,
    /// Matches types starting with this (from `type=agent.*`).
    pub kind_prefix: Option<String>,
    pub category: Option<String>,
    pub actor_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub execution_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

fn like_prefix(prefix: &str) -> String {
    format!("{}%", crate::like_escape(prefix))
}

impl Store {
    /// Records an event. The runtime's own (actor `system`) are relaxed writes; an action of a
    /// person or a key waits for the disk.
    pub async fn append_event(&self, e: &NewEvent) -> Result<()> {
        relaxed_write!(self, when e.actor_type == "system", |c| sqlx::query(
            "INSERT INTO events (id, org_id, type, category, actor_type, actor_id, agent_id, task_id, execution_id, user_id, data, ip, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )
        .bind(e.id)
        .bind(e.org_id)
        .bind(&e.kind)
        .bind(&e.category)
        .bind(&e.actor_type)
        .bind(e.actor_id)
        .bind(e.agent_id)
        .bind(e.task_id)
        .bind(e.execution_id)
        .bind(e.user_id)
        .bind(Json(&e.data))
        .bind(e.ip.as_deref())
        .bind(e.created_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    pub async fn event(&self, scope: EventScope, id: Uuid) -> Result<Option<Event>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {EVENT_COLS} FROM events WHERE ($1 IS NULL OR org_id = $1) AND id = $2"
        ))
        .bind(scope.org())
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn list_events(
        &self,
        scope: EventScope,
        f: &EventFilter,
        page: PageRequest,
    ) -> Result<Page<Event>> {
        let (cmp, order) = page.sql();
        let prefix = f.kind_prefix.as_deref().map(like_prefix);
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {EVENT_COLS} FROM events
             WHERE ($1 IS NULL OR org_id = $1)
               AND ($2 IS NULL OR type = $2)
               AND ($3 IS NULL OR type LIKE $3 ESCAPE '\\')
               AND ($4 IS NULL OR category = $4)
               AND ($5 IS NULL OR actor_id = $5)
               AND ($6 IS NULL OR user_id = $6)
               AND ($7 IS NULL OR agent_id = $7)
               AND ($8 IS NULL OR task_id = $8)
               AND ($9 IS NULL OR execution_id = $9)
               AND ($10 IS NULL OR created_at >= $10)
               AND ($11 IS NULL OR created_at < $11)
               AND id {cmp} $12
             ORDER BY id {order} LIMIT $13"
        ))
        .bind(scope.org())
        .bind(f.kind.as_deref())
        .bind(prefix.as_deref())
        .bind(f.category.as_deref())
        .bind(f.actor_id)
        .bind(f.user_id)
        .bind(f.agent_id)
        .bind(f.task_id)
        .bind(f.execution_id)
        .bind(f.since)
        .bind(f.until)
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::like_prefix;

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("agent."), "agent.%");
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
