//! The caller's own profile.

use agentry_store::{ApiKey, Org, OrgWithRole, User};
use chrono::Utc;
use serde_json::Value;

use crate::auth::NAME_MAX;
use crate::{Actor, Principal, ServiceError, ServiceResult, Services};
use agentry_core::{FieldErrors, text};

/// Free-form settings are kept small.
pub const SETTINGS_MAX_BYTES: usize = 16 * 1024;

/// Who the caller is: a user with their orgs, or an API key with its org.
#[derive(Debug)]
pub enum Me {
    User {
        user: User,
        memberships: Vec<OrgWithRole>,
    },
    ApiKey {
        key: ApiKey,
        org: Org,
    },
}

/// Checks a free-form settings value: an object of bounded size.
pub fn check_settings(errors: &mut FieldErrors, field: &str, v: &Value) {
    if !v.is_object() {
        errors.add(field, "must be a JSON object");
    } else if serde_json::to_vec(v).map_or(0, |b| b.len()) > SETTINGS_MAX_BYTES {
        errors.add(field, "must be at most 16 KiB");
    }
}

impl Services {
    pub async fn me(&self, p: &Principal) -> ServiceResult<Me> {
        match p.actor {
            Actor::User { id, .. } => {
                let user = self
                    .store
                    .user(id)
                    .await?
                    .ok_or(ServiceError::Unauthorized("unknown user"))?;
                let memberships = self.store.memberships_of(id).await?;
                Ok(Me::User { user, memberships })
            }
            Actor::ApiKey { id, .. } => {
                let ctx = p.org_ctx()?;
                let key = self
                    .store
                    .api_key(ctx.org_id, id)
                    .await?
                    .ok_or(ServiceError::Unauthorized("unknown key"))?;
                let org = self
                    .store
                    .org(ctx.org_id)
                    .await?
                    .ok_or(ServiceError::NotFound("organization not found"))?;
                Ok(Me::ApiKey { key, org })
            }
        }
    }

    pub async fn update_profile(
        &self,
        p: &Principal,
        name: Option<&str>,
        settings: Option<&Value>,
    ) -> ServiceResult<User> {
        let (user_id, _) = p.user()?;
        let mut errors = FieldErrors::new();
        let name = name.and_then(|n| errors.check("name", text::parse_line(n, NAME_MAX)));
        if let Some(s) = settings {
            check_settings(&mut errors, "settings", s);
        }
        errors.into_result()?;
        self.store
            .update_user_profile(user_id, name.as_deref(), settings, Utc::now())
            .await?
            .ok_or(ServiceError::Unauthorized("unknown user"))
    }
}
