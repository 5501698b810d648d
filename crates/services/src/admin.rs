//! Platform administration: every user and org of the instance, and the operator's CLI.

use agentry_core::{Email, Password};
use agentry_store::events::{EventFilter, EventScope};
use agentry_store::{Event, Org, Page, PageRequest, User};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{Audit, EventActor};
use crate::{Principal, RequestMeta, ServiceError, ServiceResult, Services, passwords};

impl Services {
    pub async fn admin_list_users(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> ServiceResult<Page<User>> {
        p.require_platform_admin()?;
        Ok(self.store.list_users(page).await?)
    }

    pub async fn admin_list_orgs(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> ServiceResult<Page<Org>> {
        p.require_platform_admin()?;
        Ok(self.store.list_all_orgs(page).await?)
    }

    pub async fn admin_list_events(
        &self,
        p: &Principal,
        f: &EventFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<Event>> {
        p.require_platform_admin()?;
        Ok(self
            .store
            .list_events(EventScope::Instance, f, page)
            .await?)
    }

    /// Disables or enables a user, or grants or takes platform admin. A disabled user's
    /// tokens stop working on their next request.
    pub async fn admin_update_user(
        &self,
        p: &Principal,
        id: Uuid,
        disabled: Option<bool>,
        platform_admin: Option<bool>,
    ) -> ServiceResult<User> {
        p.require_platform_admin()?;
        if p.actor.user_id() == Some(id)
            && (disabled == Some(true) || platform_admin == Some(false))
        {
            return Err(ServiceError::Conflict {
                code: "invalid_state",
                message: "you cannot disable yourself or drop your own platform admin role",
            });
        }
        let user = self
            .store
            .admin_update_user(id, disabled, platform_admin, Utc::now())
            .await?
            .ok_or(ServiceError::NotFound("user not found"))?;
        self.record(Audit {
            org_id: None,
            kind: "user.updated",
            category: "warning",
            actor: EventActor::Actor(p.actor),
            user_id: Some(id),
            data: json!({"disabled": disabled, "platform_admin": platform_admin}),
            meta: &p.meta,
        })
        .await;
        Ok(user)
    }

    /// `agentry admin create-user`: an account made by the operator, optionally platform admin.
    pub async fn cli_create_user(
        &self,
        email: &str,
        password: &str,
        name: &str,
        platform_admin: bool,
    ) -> ServiceResult<User> {
        let meta = RequestMeta::default();
        let (user, _) = self.create_user(email, password, name, &meta).await?;
        if platform_admin && !user.platform_admin {
            return self
                .store
                .admin_update_user(user.id, None, Some(true), Utc::now())
                .await?
                .ok_or(ServiceError::NotFound("user not found"));
        }
        Ok(user)
    }

    /// `agentry admin reset-password`: sets a password and signs out every session.
    pub async fn cli_reset_password(&self, email: &str, password: &str) -> ServiceResult<User> {
        let email =
            Email::parse(email).map_err(|e| ServiceError::field("email", &e.to_string()))?;
        let password = Password::parse(password)
            .map_err(|e| ServiceError::field("password", &e.to_string()))?;
        let user = self
            .store
            .user_by_email(email.as_str())
            .await?
            .ok_or(ServiceError::NotFound("user not found"))?;
        let hash = passwords::hash(password.expose().to_string()).await?;
        let now = Utc::now();
        self.store.set_password_hash(user.id, &hash, now).await?;
        self.store.revoke_user_sessions(user.id, None, now).await?;
        self.record(Audit {
            org_id: user.default_org_id,
            kind: "user.password_reset",
            category: "warning",
            actor: EventActor::System,
            user_id: Some(user.id),
            data: json!({"by": "cli"}),
            meta: &RequestMeta::default(),
        })
        .await;
        Ok(user)
    }
}
