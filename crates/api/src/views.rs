//! What the API returns: the public shape of each resource. Secrets and hashes never appear
//! here, except a new key's or invitation's secret in the one response that creates it.

use agentry_core::Role;
use agentry_store as store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub platform_admin: bool,
    pub disabled: bool,
    pub default_org_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::User> for UserView {
    fn from(u: store::User) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            name: u.name,
            settings: u.settings.0,
            platform_admin: u.platform_admin,
            disabled: u.disabled,
            default_org_id: u.default_org_id,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role in this org, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

impl OrgView {
    pub fn new(o: store::Org, role: Option<Role>) -> OrgView {
        OrgView {
            id: o.id,
            name: o.name,
            slug: o.slug,
            settings: o.settings.0,
            created_by: o.created_by,
            created_at: o.created_at,
            updated_at: o.updated_at,
            role,
        }
    }
}

impl From<store::OrgWithRole> for OrgView {
    fn from(o: store::OrgWithRole) -> Self {
        OrgView::new(o.org, Some(o.role))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    pub org: OrgView,
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::Member> for MemberView {
    fn from(m: store::Member) -> Self {
        MemberView {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The invitation's secret token: present only in the response that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl InvitationView {
    pub fn new(i: store::Invitation, token: Option<String>) -> InvitationView {
        InvitationView {
            id: i.id,
            org_id: i.org_id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
            token,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

impl SessionView {
    pub fn new(s: store::Session, current: Uuid) -> SessionView {
        SessionView {
            current: s.id == current,
            id: s.id,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The secret: present only in the create and rotate responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl ApiKeyView {
    pub fn new(k: store::ApiKey, key: Option<String>) -> ApiKeyView {
        ApiKeyView {
            id: k.id,
            org_id: k.org_id,
            name: k.name,
            role: k.role,
            prefix: k.prefix,
            created_by: k.created_by,
            created_at: k.created_at,
            updated_at: k.updated_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            key,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorView {
    /// `user`, `api_key`, `system` or `anonymous`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    #[serde(rename = "type")]
    pub kind: String,
    pub category: String,
    pub actor: ActorView,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub execution_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub data: Value,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<store::Event> for EventView {
    fn from(e: store::Event) -> Self {
        EventView {
            id: e.id,
            org_id: e.org_id,
            kind: e.kind,
            category: e.category,
            actor: ActorView {
                kind: e.actor_type,
                id: e.actor_id,
            },
            agent_id: e.agent_id,
            task_id: e.task_id,
            execution_id: e.execution_id,
            user_id: e.user_id,
            data: e.data.0,
            ip: e.ip,
            created_at: e.created_at,
        }
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Every error has this shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code such as `validation_failed` or `not_found`.
    pub code: String,
    pub message: String,
    /// For `validation_failed`: `{"fields": {"<field>": ["message", …]}}`.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
    pub request_id: String,
}
