//! API keys: credentials for programs, each acting in one org with one role.

use agentry_core::id::new_id_at;
use agentry_core::{FieldErrors, Role, text};
use agentry_store::api_keys::NewApiKey;
use agentry_store::{ApiKey, Page, PageRequest};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{Audit, EventActor};
use crate::{OrgCtx, ServiceError, ServiceResult, Services, tokens};

pub const KEY_NAME_MAX: usize = 100;
const NOT_FOUND: ServiceError = ServiceError::NotFound("API key not found");

impl Services {
    /// Creates a key; the secret is returned here and never again.
    pub async fn create_api_key(
        &self,
        ctx: &OrgCtx,
        name: &str,
        role: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> ServiceResult<(ApiKey, String)> {
        ctx.require(Role::Admin)?;
        let mut errors = FieldErrors::new();
        let name = errors.check("name", text::parse_line(name, KEY_NAME_MAX));
        let role = errors.check("role", Role::parse(role));
        let now = Utc::now();
        if expires_at.is_some_and(|e| e <= now) {
            errors.add("expires_at", "must be in the future");
        }
        errors.into_result()?;
        let (Some(name), Some(role)) = (name, role) else {
            return Err(ServiceError::Internal("validated fields missing".into()));
        };
        if !ctx.role.allows(role) {
            return Err(ServiceError::Forbidden(
                "a key's role cannot exceed your own",
            ));
        }
        let secret = tokens::new_api_key()?;
        let (id, now) = new_id_at();
        let created_by = ctx.actor.acting_user();
        let key = self
            .store
            .create_api_key(NewApiKey {
                id,
                org_id: ctx.org_id,
                name: &name,
                role,
                prefix: &tokens::api_key_prefix(&secret),
                key_hash: &tokens::hash_secret(&secret),
                created_by,
                now,
                expires_at,
            })
            .await?;
        self.record(Audit {
            org_id: Some(ctx.org_id),
            kind: "api_key.created",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: ctx.actor.user_id(),
            data: json!({"api_key_id": key.id, "name": key.name, "role": key.role, "prefix": key.prefix}),
            meta: &ctx.meta,
        })
        .await;
        Ok((key, secret))
    }

    pub async fn list_api_keys(
        &self,
        ctx: &OrgCtx,
        page: PageRequest,
    ) -> ServiceResult<Page<ApiKey>> {
        ctx.require(Role::Admin)?;
        Ok(self.store.list_api_keys(ctx.org_id, page).await?)
    }

    pub async fn get_api_key(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<ApiKey> {
        ctx.require(Role::Admin)?;
        self.store.api_key(ctx.org_id, id).await?.ok_or(NOT_FOUND)
    }

    /// Revokes a key; it is refused from its very next request.
    pub async fn revoke_api_key(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<()> {
        ctx.require(Role::Admin)?;
        let key = match self
            .store
            .revoke_api_key(ctx.org_id, id, Utc::now())
            .await?
        {
            Some(k) => k,
            // Revoking a revoked key is done already; an unknown key is not found.
            None => {
                self.store.api_key(ctx.org_id, id).await?.ok_or(NOT_FOUND)?;
                return Ok(());
            }
        };
        self.record(Audit {
            org_id: Some(ctx.org_id),
            kind: "api_key.revoked",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: ctx.actor.user_id(),
            data: json!({"api_key_id": key.id, "name": key.name, "prefix": key.prefix}),
            meta: &ctx.meta,
        })
        .await;
        Ok(())
    }

    /// Gives a live key a new secret; the old one stops working at once.
    pub async fn rotate_api_key(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<(ApiKey, String)> {
        ctx.require(Role::Admin)?;
        let existing = self.store.api_key(ctx.org_id, id).await?.ok_or(NOT_FOUND)?;
        if existing.revoked_at.is_some() {
            return Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "a revoked key cannot be rotated",
            });
        }
        if !ctx.role.allows(existing.role) {
            return Err(ServiceError::Forbidden(
                "a key's role cannot exceed your own",
            ));
        }
        let secret = tokens::new_api_key()?;
        let key = self
            .store
            .rotate_api_key(
                ctx.org_id,
                id,
                &tokens::api_key_prefix(&secret),
                &tokens::hash_secret(&secret),
                Utc::now(),
            )
            .await?
            .ok_or(NOT_FOUND)?;
        self.record(Audit {
            org_id: Some(ctx.org_id),
            kind: "api_key.rotated",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: ctx.actor.user_id(),
            data: json!({"api_key_id": key.id, "name": key.name, "prefix": key.prefix}),
            meta: &ctx.meta,
        })
        .await;
        Ok((key, secret))
    }
}
