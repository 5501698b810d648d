//! Organizations: the tenants. Each route that names an org by id resolves the caller's role
//! in it first; an org the caller cannot see is not found.

use agentry_core::id::new_id_at;
use agentry_core::{FieldErrors, Role, Slug, text};
use agentry_store::{Org, OrgWithRole, Page, PageRequest, StoreError};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{Audit, EventActor};
use crate::users::check_settings;
use crate::{Actor, OrgCtx, Principal, ServiceError, ServiceResult, Services, tokens};

pub const ORG_NAME_MAX: usize = 100;
const SLUG_TAKEN: ServiceError = ServiceError::Conflict {
    code: "slug_taken",
    message: "an organization with this slug already exists",
};

impl Services {
    /// The caller's role in `org_id`: as a member, as the org's own API key, or as a platform
    /// admin (who may read any org). Anything else is not found.
    pub async fn org_ctx(&self, p: &Principal, org_id: Uuid) -> ServiceResult<OrgCtx> {
        let role = match p.actor {
            Actor::User {
                id, platform_admin, ..
            } => match self.store.role_in_org(org_id, id).await? {
                Some(role) => Some(role),
                None if platform_admin && self.store.org(org_id).await?.is_some() => {
                    Some(Role::Viewer)
                }
                None => None,
            },
            Actor::ApiKey { .. } => p.org.filter(|(o, _)| *o == org_id).map(|(_, r)| r),
        };
        let role = role.ok_or(ServiceError::NotFound("organization not found"))?;
        Ok(OrgCtx {
            actor: p.actor,
            org_id,
            role,
            meta: p.meta.clone(),
        })
    }

    pub async fn create_org(
        &self,
        p: &Principal,
        name: &str,
        slug: Option<&str>,
    ) -> ServiceResult<OrgWithRole> {
        let (user_id, _) = p.user()?;
        let mut errors = FieldErrors::new();
        let name = errors.check("name", text::parse_line(name, ORG_NAME_MAX));
        let slug = match slug {
            Some(s) => errors.check("slug", Slug::parse(s)),
            None => None,
        };
        errors.into_result()?;
        let Some(name) = name else {
            return Err(ServiceError::Internal("validated field missing".into()));
        };
        let slug = match slug {
            Some(s) => s,
            None => {
                let suffix = hex::encode(tokens::random_bytes::<3>()?);
                Slug::from_name(&name)
                    .and_then(|s| s.with_suffix(&suffix))
                    .or_else(|| Slug::parse(&format!("org-{suffix}")).ok())
                    .ok_or_else(|| ServiceError::Internal("could not derive a slug".into()))?
            }
        };
        let (id, now) = new_id_at();
        let org = match self
            .store
            .create_org(id, &name, slug.as_str(), user_id, now)
            .await
        {
            Err(StoreError::Conflict(_)) => return Err(SLUG_TAKEN),
            other => other?,
        };
        self.record(Audit {
            org_id: Some(org.id),
            kind: "org.created",
            category: "info",
            actor: EventActor::Actor(p.actor),
            user_id: Some(user_id),
            data: json!({"name": org.name, "slug": org.slug}),
            meta: &p.meta,
        })
        .await;
        Ok(OrgWithRole {
            org,
            role: Role::Owner,
        })
    }

    pub async fn list_orgs(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> ServiceResult<Page<OrgWithRole>> {
        match p.actor {
            Actor::User { id, .. } => Ok(self.store.list_orgs_of_user(id, page).await?),
            Actor::ApiKey { .. } => {
                let ctx = p.org_ctx()?;
                let org = self
                    .store
                    .org(ctx.org_id)
                    .await?
                    .ok_or(ServiceError::NotFound("organization not found"))?;
                let items = if page.after.is_some() {
                    vec![]
                } else {
                    vec![OrgWithRole {
                        org,
                        role: ctx.role,
                    }]
                };
                Ok(Page {
                    items,
                    has_more: false,
                })
            }
        }
    }

    pub async fn get_org(&self, p: &Principal, org_id: Uuid) -> ServiceResult<OrgWithRole> {
        let ctx = self.org_ctx(p, org_id).await?;
        let org = self
            .store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization not found"))?;
        Ok(OrgWithRole {
            org,
            role: ctx.role,
        })
    }

    pub async fn update_org(
        &self,
        p: &Principal,
        org_id: Uuid,
        name: Option<&str>,
        slug: Option<&str>,
        settings: Option<&Value>,
    ) -> ServiceResult<OrgWithRole> {
        let ctx = self.org_ctx(p, org_id).await?;
        ctx.require(Role::Admin)?;
        let mut errors = FieldErrors::new();
        let name = name.and_then(|n| errors.check("name", text::parse_line(n, ORG_NAME_MAX)));
        let slug = slug.and_then(|s| errors.check("slug", Slug::parse(s)));
        if let Some(s) = settings {
            check_settings(&mut errors, "settings", s);
        }
        errors.into_result()?;
        let updated = self
            .store
            .update_org(
                org_id,
                name.as_deref(),
                slug.as_ref().map(Slug::as_str),
                settings,
                Utc::now(),
            )
            .await;
        let org = match updated {
            Err(StoreError::Conflict(_)) => return Err(SLUG_TAKEN),
            other => other?.ok_or(ServiceError::NotFound("organization not found"))?,
        };
        let mut changed = vec![];
        if name.is_some() {
            changed.push("name");
        }
        if slug.is_some() {
            changed.push("slug");
        }
        if settings.is_some() {
            changed.push("settings");
        }
        self.record(Audit {
            org_id: Some(org_id),
            kind: "org.updated",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: ctx.actor.user_id(),
            data: json!({"changed": changed}),
            meta: &ctx.meta,
        })
        .await;
        Ok(OrgWithRole {
            org,
            role: ctx.role,
        })
    }

    /// Deletes the org and all of its data. The event is kept at instance level, since the
    /// org's own log goes with it.
    pub async fn delete_org(&self, p: &Principal, org_id: Uuid) -> ServiceResult<Org> {
        let ctx = self.org_ctx(p, org_id).await?;
        ctx.require(Role::Owner)?;
        let org = self
            .store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization not found"))?;
        if !self.store.delete_org(org_id).await? {
            return Err(ServiceError::NotFound("organization not found"));
        }
        self.record(Audit {
            org_id: None,
            kind: "org.deleted",
            category: "warning",
            actor: EventActor::Actor(ctx.actor),
            user_id: ctx.actor.user_id(),
            data: json!({"org_id": org.id, "name": org.name, "slug": org.slug}),
            meta: &ctx.meta,
        })
        .await;
        Ok(org)
    }
}
