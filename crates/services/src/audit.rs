//! Recording audit events: who did what, to what, from where.

use agentry_core::id::new_id_at;
use agentry_store::events::NewEvent;
use serde_json::Value;
use uuid::Uuid;

use crate::{Actor, OrgCtx, RequestMeta, Services};

/// The kind of actor an event names.
#[derive(Debug, Clone, Copy)]
pub enum EventActor {
    Actor(Actor),
    /// A user acting without a session yet (registration, login, password reset).
    User(Uuid),
    /// Someone unknown (such as a failed login for an unknown email).
    Anonymous,
    System,
}

impl EventActor {
    fn parts(self) -> (&'static str, Option<Uuid>) {
        match self {
            EventActor::Actor(a) => (a.kind(), Some(a.id())),
            EventActor::User(id) => ("user", Some(id)),
            EventActor::Anonymous => ("anonymous", None),
            EventActor::System => ("system", None),
        }
    }
}

/// One event to record.
pub struct Audit<'a> {
    pub org_id: Option<Uuid>,
    pub kind: &'static str,
    pub category: &'static str,
    pub actor: EventActor,
    pub user_id: Option<Uuid>,
    pub data: Value,
    pub meta: &'a RequestMeta,
}

/// What an event is about, beyond its org.
#[derive(Debug, Clone, Copy, Default)]
pub struct Links {
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub execution_id: Option<Uuid>,
}

impl Services {
    /// Appends an event. The action it records has already happened, so a failure to record
    /// is logged rather than turned into an error for the caller.
    pub async fn record(&self, a: Audit<'_>) {
        self.record_linked(a, Links::default()).await
    }

    /// Appends an event linked to an agent, task or execution.
    pub async fn record_linked(&self, a: Audit<'_>, links: Links) {
        let (id, created_at) = new_id_at();
        let (actor_type, actor_id) = a.actor.parts();
        let event = NewEvent {
            id,
            org_id: a.org_id,
            kind: a.kind.to_string(),
            category: a.category.to_string(),
            actor_type: actor_type.to_string(),
            actor_id,
            agent_id: links.agent_id,
            task_id: links.task_id,
            execution_id: links.execution_id,
            user_id: a.user_id,
            data: a.data,
            ip: a.meta.ip.clone(),
            created_at,
        };
        if let Err(e) = self.store.append_event(&event).await {
            tracing::error!(event.kind = a.kind, error = %e, "failed to record audit event");
        }
    }

    /// Records an `info` event of the caller's org, by the caller, linked to what it is about.
    /// Records an event by `by`, or by the system (category `warning`) when there is none.
    pub async fn record_as(
        &self,
        by: Option<&OrgCtx>,
        org_id: Uuid,
        kind: &'static str,
        data: Value,
        links: Links,
    ) {
        match by {
            Some(ctx) => self.record_by(ctx, kind, data, links).await,
            None => {
                self.record_linked(
                    Audit {
                        org_id: Some(org_id),
                        kind,
                        category: "warning",
                        actor: EventActor::System,
                        user_id: None,
                        data,
                        meta: &Default::default(),
                    },
                    links,
                )
                .await
            }
        }
    }

    pub async fn record_by(&self, ctx: &OrgCtx, kind: &'static str, data: Value, links: Links) {
        self.record_linked(
            Audit {
                org_id: Some(ctx.org_id),
                kind,
                category: "info",
                actor: EventActor::Actor(ctx.actor),
                user_id: None,
                data,
                meta: &ctx.meta,
            },
            links,
        )
        .await
    }
}
