//! Registration, login, token refresh and logout, password changes and resets, sessions, and
//! the authentication of every request.

use agentry_core::id::new_id_at;
use agentry_core::{Email, FieldErrors, Password, Slug, new_id, text};
use agentry_store::sessions::{NewSession, Rotation};
use agentry_store::users::NewUser;
use agentry_store::{Org, Page, PageRequest, Session, User};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{Audit, EventActor};
use crate::tokens::{self, TokenError};
use crate::{Actor, Principal, RequestMeta, ServiceError, ServiceResult, Services, passwords};

pub const NAME_MAX: usize = 100;

/// A fresh access and refresh token.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub session_id: Uuid,
}

#[derive(Debug)]
pub struct Registered {
    pub user: User,
    pub org: Org,
    pub tokens: TokenPair,
}

#[derive(Debug)]
pub struct LoggedIn {
    pub user: User,
    pub tokens: TokenPair,
}

fn parse_email(errors: &mut FieldErrors, field: &str, raw: &str) -> Option<Email> {
    errors.check(field, Email::parse(raw))
}

impl Services {
    /// Creates an account and its default org, and logs it in.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<Registered> {
        if !self.settings.allow_signup {
            return Err(ServiceError::Forbidden(
                "sign-up is disabled on this instance",
            ));
        }
        let (user, org) = self.create_user(email, password, name, meta).await?;
        let tokens = self.start_session(&user, meta).await?;
        Ok(Registered { user, org, tokens })
    }

    /// Creates a user with a default org, without logging in. Used by registration and by
    /// `agentry admin create-user`.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<(User, Org)> {
        let mut errors = FieldErrors::new();
        let email = parse_email(&mut errors, "email", email);
        let password = errors.check("password", Password::parse(password));
        let name = errors.check("name", text::parse_line(name, NAME_MAX));
        errors.into_result()?;
        let (Some(email), Some(password), Some(name)) = (email, password, name) else {
            return Err(ServiceError::Internal("validated fields missing".into()));
        };
        let hash = passwords::hash(password.expose().to_string()).await?;
        let suffix = hex_suffix()?;
        let org_name = format!("{name}'s workspace");
        let slug = Slug::from_name(&name)
            .and_then(|s| s.with_suffix(&suffix))
            .or_else(|| Slug::parse(&format!("org-{suffix}")).ok())
            .ok_or_else(|| ServiceError::Internal("could not derive a slug".into()))?;
        let (id, now) = new_id_at();
        let created = self
            .store
            .create_user_with_org(NewUser {
                id,
                email: email.as_str(),
                name: &name,
                password_hash: &hash,
                org_id: new_id(),
                org_name: &org_name,
                org_slug: slug.as_str(),
                now,
            })
            .await;
        let (user, org) = match created {
            Err(agentry_store::StoreError::Conflict(_)) => {
                return Err(ServiceError::Conflict {
                    code: "email_taken",
                    message: "an account with this email already exists",
                });
            }
            other => other?,
        };
        self.record(Audit {
            org_id: Some(org.id),
            kind: "user.registered",
            category: "info",
            actor: EventActor::User(user.id),
            user_id: Some(user.id),
            data: json!({"email": user.email, "platform_admin": user.platform_admin}),
            meta,
        })
        .await;
        self.record(Audit {
            org_id: Some(org.id),
            kind: "org.created",
            category: "info",
            actor: EventActor::User(user.id),
            user_id: Some(user.id),
            data: json!({"name": org.name, "slug": org.slug}),
            meta,
        })
        .await;
        Ok((user, org))
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<LoggedIn> {
        let mut errors = FieldErrors::new();
        if email.trim().is_empty() {
            errors.add("email", "must not be empty");
        }
        if password.is_empty() {
            errors.add("password", "must not be empty");
        }
        errors.into_result()?;
        let user = match Email::parse(email) {
            Ok(e) => self.store.user_by_email(e.as_str()).await?,
            Err(_) => None,
        };
        let Some(user) = user else {
            passwords::dummy_verify(password.to_string()).await;
            self.login_failed(None, email, "unknown_email", meta).await;
            return Err(ServiceError::InvalidCredentials);
        };
        if !passwords::verify(password.to_string(), user.password_hash.clone()).await? {
            self.login_failed(Some(&user), email, "wrong_password", meta)
                .await;
            return Err(ServiceError::InvalidCredentials);
        }
        if user.disabled {
            self.login_failed(Some(&user), email, "disabled", meta)
                .await;
            return Err(ServiceError::Unauthorized("this account is disabled"));
        }
        let tokens = self.start_session(&user, meta).await?;
        self.record(Audit {
            org_id: user.default_org_id,
            kind: "user.login",
            category: "info",
            actor: EventActor::User(user.id),
            user_id: Some(user.id),
            data: json!({"session_id": tokens.session_id}),
            meta,
        })
        .await;
        Ok(LoggedIn { user, tokens })
    }

    async fn login_failed(
        &self,
        user: Option<&User>,
        email: &str,
        reason: &str,
        meta: &RequestMeta,
    ) {
        let email: String = email.trim().chars().take(254).collect();
        self.record(Audit {
            org_id: user.and_then(|u| u.default_org_id),
            kind: "user.login_failed",
            category: "warning",
            actor: user.map_or(EventActor::Anonymous, |u| EventActor::User(u.id)),
            user_id: user.map(|u| u.id),
            data: json!({"email": email, "reason": reason}),
            meta,
        })
        .await;
    }

    async fn start_session(&self, user: &User, meta: &RequestMeta) -> ServiceResult<TokenPair> {
        let (session_id, now) = new_id_at();
        let refresh = tokens::opaque_token()?;
        let refresh_hash = tokens::hash_secret(&refresh);
        let user_agent: Option<String> = meta
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(512).collect());
        self.store
            .create_session(NewSession {
                id: session_id,
                user_id: user.id,
                ip: meta.ip.as_deref(),
                user_agent: user_agent.as_deref(),
                now,
                expires_at: now + self.settings.refresh_ttl,
                refresh_id: new_id(),
                refresh_hash: &refresh_hash,
            })
            .await?;
        self.access_pair(user.id, session_id, refresh, now)
    }

    fn access_pair(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        refresh: String,
        now: DateTime<Utc>,
    ) -> ServiceResult<TokenPair> {
        let ttl = self.settings.access_ttl.num_seconds();
        let access = tokens::sign_access_token(
            &self.settings.jwt_secret,
            user_id,
            session_id,
            now.timestamp(),
            now.timestamp() + ttl,
        )?;
        Ok(TokenPair {
            access_token: access,
            refresh_token: refresh,
            expires_in: ttl,
            session_id,
        })
    }

    /// Trades a refresh token for a new pair. A token that was already spent revokes its
    /// whole session: it has leaked, or been replayed.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<LoggedIn> {
        const INVALID: ServiceError =
            ServiceError::Unauthorized("invalid or expired refresh token");
        if refresh_token.is_empty() {
            return Err(ServiceError::field("refresh_token", "must not be empty"));
        }
        let now = Utc::now();
        let Some(state) = self
            .store
            .refresh_token(&tokens::hash_secret(refresh_token))
            .await?
        else {
            return Err(INVALID);
        };
        if state.session_revoked_at.is_some() || state.session_expires_at <= now {
            return Err(INVALID);
        }
        if state.spent_at.is_some() {
            self.revoke_for_reuse(state.user_id, state.session_id, meta)
                .await?;
            return Err(ServiceError::Unauthorized(
                "refresh token was already used; the session is revoked",
            ));
        }
        let user = self.store.user(state.user_id).await?.ok_or(INVALID)?;
        if user.disabled {
            return Err(ServiceError::Unauthorized("this account is disabled"));
        }
        let refresh = tokens::opaque_token()?;
        match self
            .store
            .rotate_refresh_token(
                state.id,
                state.session_id,
                new_id(),
                &tokens::hash_secret(&refresh),
                now,
            )
            .await?
        {
            Rotation::Rotated => {}
            Rotation::AlreadySpent => {
                self.revoke_for_reuse(state.user_id, state.session_id, meta)
                    .await?;
                return Err(ServiceError::Unauthorized(
                    "refresh token was already used; the session is revoked",
                ));
            }
        }
        let tokens = self.access_pair(user.id, state.session_id, refresh, now)?;
        Ok(LoggedIn { user, tokens })
    }

    async fn revoke_for_reuse(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        if self
            .store
            .revoke_session(user_id, session_id, Utc::now())
            .await?
        {
            let org = self
                .store
                .user(user_id)
                .await?
                .and_then(|u| u.default_org_id);
            self.record(Audit {
                org_id: org,
                kind: "session.revoked",
                category: "warning",
                actor: EventActor::System,
                user_id: Some(user_id),
                data: json!({"session_id": session_id, "reason": "refresh_token_reuse"}),
                meta,
            })
            .await;
        }
        Ok(())
    }

    /// Ends a session: the one the refresh token belongs to, or else the caller's own.
    pub async fn logout(&self, p: &Principal, refresh_token: Option<&str>) -> ServiceResult<()> {
        let (user_id, current) = p.user()?;
        let session_id = match refresh_token {
            Some(t) => {
                let state = self.store.refresh_token(&tokens::hash_secret(t)).await?;
                match state {
                    Some(s) if s.user_id == user_id => s.session_id,
                    _ => {
                        return Err(ServiceError::field(
                            "refresh_token",
                            "is not a refresh token of yours",
                        ));
                    }
                }
            }
            None => current,
        };
        self.revoke_own_session(p, session_id, RevokeReason::Logout)
            .await?;
        Ok(())
    }

    pub async fn list_sessions(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> ServiceResult<Page<Session>> {
        let (user_id, _) = p.user()?;
        Ok(self.store.list_sessions(user_id, Utc::now(), page).await?)
    }

    /// Revokes one of the caller's sessions; another user's session is not found.
    pub async fn revoke_own_session(
        &self,
        p: &Principal,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> ServiceResult<()> {
        let (user_id, _) = p.user()?;
        if self.store.session(user_id, session_id).await?.is_none() {
            return Err(ServiceError::NotFound("session not found"));
        }
        if !self
            .store
            .revoke_session(user_id, session_id, Utc::now())
            .await?
        {
            return Ok(()); // already revoked
        }
        self.record(Audit {
            org_id: self.default_org_of(user_id).await?,
            kind: "session.revoked",
            category: "info",
            actor: EventActor::Actor(p.actor),
            user_id: Some(user_id),
            data: json!({"session_id": session_id, "reason": reason.as_str()}),
            meta: &p.meta,
        })
        .await;
        Ok(())
    }

    async fn default_org_of(&self, user_id: Uuid) -> ServiceResult<Option<Uuid>> {
        Ok(self
            .store
            .user(user_id)
            .await?
            .and_then(|u| u.default_org_id))
    }

    /// Changes the caller's password and signs out their other sessions.
    pub async fn change_password(
        &self,
        p: &Principal,
        current: &str,
        new: &str,
    ) -> ServiceResult<()> {
        let (user_id, session_id) = p.user()?;
        let mut errors = FieldErrors::new();
        if current.is_empty() {
            errors.add("current_password", "must not be empty");
        }
        let new = errors.check("new_password", Password::parse(new));
        errors.into_result()?;
        let Some(new) = new else {
            return Err(ServiceError::Internal("validated field missing".into()));
        };
        let user = self
            .store
            .user(user_id)
            .await?
            .ok_or(ServiceError::Unauthorized("unknown user"))?;
        if !passwords::verify(current.to_string(), user.password_hash.clone()).await? {
            return Err(ServiceError::field("current_password", "is incorrect"));
        }
        let hash = passwords::hash(new.expose().to_string()).await?;
        let now = Utc::now();
        self.store.set_password_hash(user_id, &hash, now).await?;
        let revoked = self
            .store
            .revoke_user_sessions(user_id, Some(session_id), now)
            .await?;
        self.record(Audit {
            org_id: user.default_org_id,
            kind: "user.password_changed",
            category: "info",
            actor: EventActor::Actor(p.actor),
            user_id: Some(user_id),
            data: json!({"other_sessions_revoked": revoked}),
            meta: &p.meta,
        })
        .await;
        Ok(())
    }

    /// Starts a password reset. Says nothing about whether the account exists.
    pub async fn forgot_password(&self, email: &str, meta: &RequestMeta) -> ServiceResult<()> {
        let email =
            Email::parse(email).map_err(|e| ServiceError::field("email", &e.to_string()))?;
        let Some(user) = self.store.user_by_email(email.as_str()).await? else {
            return Ok(());
        };
        if user.disabled {
            return Ok(());
        }
        let token = tokens::opaque_token()?;
        let (id, now) = new_id_at();
        self.store
            .create_password_reset(
                id,
                user.id,
                &tokens::hash_secret(&token),
                now,
                now + self.settings.reset_ttl,
            )
            .await?;
        self.record(Audit {
            org_id: user.default_org_id,
            kind: "user.password_reset_requested",
            category: "info",
            actor: EventActor::Anonymous,
            user_id: Some(user.id),
            data: json!({}),
            meta,
        })
        .await;
        let minutes = self.settings.reset_ttl.num_minutes();
        let body = format!(
            "Someone asked to reset the password of your Agentry account.\r\n\r\n\
             Your reset token is:\r\n\r\n{token}\r\n\r\n\
             It works once, within {minutes} minutes. If you did not ask for this, ignore this message.\r\n"
        );
        self.mailer
            .send(
                user.email.as_str(),
                "Reset your Agentry password",
                &body,
                &token,
            )
            .await;
        Ok(())
    }

    /// Sets a new password with a reset token, and signs out every session.
    pub async fn reset_password(
        &self,
        token: &str,
        new: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let mut errors = FieldErrors::new();
        if token.is_empty() {
            errors.add("token", "must not be empty");
        }
        let new = errors.check("new_password", Password::parse(new));
        errors.into_result()?;
        let Some(new) = new else {
            return Err(ServiceError::Internal("validated field missing".into()));
        };
        let hash = passwords::hash(new.expose().to_string()).await?;
        let now = Utc::now();
        let Some(user_id) = self
            .store
            .consume_password_reset(&tokens::hash_secret(token), now)
            .await?
        else {
            return Err(ServiceError::field("token", "is invalid, used or expired"));
        };
        self.store.set_password_hash(user_id, &hash, now).await?;
        let revoked = self.store.revoke_user_sessions(user_id, None, now).await?;
        self.record(Audit {
            org_id: self.default_org_of(user_id).await?,
            kind: "user.password_reset",
            category: "info",
            actor: EventActor::User(user_id),
            user_id: Some(user_id),
            data: json!({"sessions_revoked": revoked}),
            meta,
        })
        .await;
        Ok(())
    }

    /// Authenticates a bearer credential (access JWT or API key) and resolves the org the
    /// request acts in. `requested_org` comes from `X-Org-Id`.
    pub async fn authenticate(
        &self,
        bearer: &str,
        requested_org: Option<Uuid>,
        meta: RequestMeta,
    ) -> ServiceResult<Principal> {
        if bearer.starts_with(tokens::API_KEY_PREFIX) {
            return self.authenticate_api_key(bearer, requested_org, meta).await;
        }
        let now = Utc::now();
        let claims =
            tokens::verify_access_token(&self.settings.jwt_secret, bearer, now.timestamp())
                .map_err(|e| match e {
                    TokenError::Expired => ServiceError::TokenExpired,
                    _ => ServiceError::Unauthorized("invalid access token"),
                })?;
        let auth = self
            .store
            .session_auth(claims.sid, requested_org)
            .await?
            .filter(|a| a.user_id == claims.sub)
            .ok_or(ServiceError::Unauthorized("invalid access token"))?;
        if auth.revoked || auth.expires_at <= now {
            return Err(ServiceError::Unauthorized("this session has been revoked"));
        }
        if auth.disabled {
            return Err(ServiceError::Unauthorized("this account is disabled"));
        }
        let org = match (auth.org_id, auth.role) {
            (Some(org), Some(role)) => Some((org, role)),
            // Platform admins may read any org they are not a member of.
            (Some(org), None) if auth.platform_admin => Some((org, agentry_core::Role::Viewer)),
            _ if requested_org.is_some() => {
                return Err(ServiceError::NotFound("organization not found"));
            }
            _ => None,
        };
        Ok(Principal {
            actor: Actor::User {
                id: auth.user_id,
                session_id: auth.session_id,
                platform_admin: auth.platform_admin,
            },
            org,
            meta,
        })
    }

    async fn authenticate_api_key(
        &self,
        key: &str,
        requested_org: Option<Uuid>,
        meta: RequestMeta,
    ) -> ServiceResult<Principal> {
        const INVALID: ServiceError =
            ServiceError::Unauthorized("invalid, revoked or expired API key");
        let now = Utc::now();
        let k = self
            .store
            .api_key_by_hash(&tokens::hash_secret(key))
            .await?
            .ok_or(INVALID)?;
        if k.revoked_at.is_some() || k.expires_at.is_some_and(|e| e <= now) {
            return Err(INVALID);
        }
        if requested_org.is_some_and(|o| o != k.org_id) {
            return Err(ServiceError::NotFound("organization not found"));
        }
        // Record use at most once a minute per key, so busy keys do not write on every request.
        if k.last_used_at
            .is_none_or(|t| now - t > chrono::Duration::seconds(60))
        {
            self.store.touch_api_key(k.id, now).await?;
        }
        Ok(Principal {
            actor: Actor::ApiKey {
                id: k.id,
                created_by: k.created_by,
            },
            org: Some((k.org_id, k.role)),
            meta,
        })
    }
}

/// Why a user's own session ended, as recorded in its `session.revoked` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeReason {
    /// `POST /auth/logout`.
    Logout,
    /// `DELETE /auth/sessions/{id}`.
    Revoked,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::Revoked => "revoked",
        }
    }
}

/// Six hex characters to make a derived slug unique.
fn hex_suffix() -> ServiceResult<String> {
    Ok(hex::encode(tokens::random_bytes::<3>()?))
}
