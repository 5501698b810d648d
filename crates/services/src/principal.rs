//! Who is calling, and in which org.

use agentry_core::Role;
use uuid::Uuid;

use crate::{ServiceError, ServiceResult};

/// Where a request came from, for the audit log and sessions.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User {
        id: Uuid,
        session_id: Uuid,
        platform_admin: bool,
    },
    ApiKey {
        id: Uuid,
        created_by: Option<Uuid>,
    },
}

impl Actor {
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::ApiKey { .. } => None,
        }
    }

    pub fn api_key_id(&self) -> Option<Uuid> {
        match self {
            Actor::User { .. } => None,
            Actor::ApiKey { id, .. } => Some(*id),
        }
    }

    /// The person behind the action: the user, or the user who created the API key.
    pub fn acting_user(&self) -> Option<Uuid> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::ApiKey { created_by, .. } => *created_by,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::ApiKey { .. } => "api_key",
        }
    }

    pub fn id(&self) -> Uuid {
        match self {
            Actor::User { id, .. } | Actor::ApiKey { id, .. } => *id,
        }
    }

    pub fn is_platform_admin(&self) -> bool {
        matches!(
            self,
            Actor::User {
                platform_admin: true,
                ..
            }
        )
    }
}

/// An authenticated caller and the org the request acts in, if any.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    /// The org and the caller's role in it. For users, the org named by `X-Org-Id` or else
    /// their default org; for API keys, the key's own org.
    pub org: Option<(Uuid, Role)>,
    pub meta: RequestMeta,
}

impl Principal {
    /// The user behind a user token; API keys are refused.
    pub fn user(&self) -> ServiceResult<(Uuid, Uuid)> {
        match self.actor {
            Actor::User { id, session_id, .. } => Ok((id, session_id)),
            Actor::ApiKey { .. } => Err(ServiceError::Forbidden(
                "this route needs a user token, not an API key",
            )),
        }
    }

    /// The org context, or 404 when the caller has none.
    pub fn org_ctx(&self) -> ServiceResult<OrgCtx> {
        let (org_id, role) = self
            .org
            .ok_or(ServiceError::NotFound("organization not found"))?;
        Ok(OrgCtx {
            actor: self.actor,
            org_id,
            role,
            meta: self.meta.clone(),
        })
    }

    pub fn require_platform_admin(&self) -> ServiceResult<()> {
        if self.actor.is_platform_admin() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden("platform admin only"))
        }
    }
}

/// A caller acting in one org with a role.
#[derive(Debug, Clone)]
pub struct OrgCtx {
    pub actor: Actor,
    pub org_id: Uuid,
    pub role: Role,
    pub meta: RequestMeta,
}

impl OrgCtx {
    pub fn require(&self, needed: Role) -> ServiceResult<()> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(match needed {
                Role::Viewer => "viewer role required",
                Role::Member => "member role or higher required",
                Role::Admin => "admin role or higher required",
                Role::Owner => "owner role required",
            }))
        }
    }
}
