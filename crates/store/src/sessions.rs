//! Login sessions, their rotating refresh tokens, and password reset tokens.
//!
//! Tokens are stored only as hashes. A refresh token is spent when used; a spent token shown
//! again means it leaked, and the service revokes the session.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::macros::{read, tx, write};
use crate::{
    Page, PageRequest, RefreshTokenState, Result, Session, SessionAuth, Store, StoreError,
};

const SESSION_COLS: &str =
    "id, user_id, ip, user_agent, created_at, last_used_at, expires_at, revoked_at";

pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub refresh_id: Uuid,
    pub refresh_hash: &'a str,
}

/// What became of a refresh attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// The token had already been spent (possibly by a concurrent request).
    AlreadySpent,
}

impl Store {
    pub async fn create_session(&self, s: NewSession<'_>) -> Result<Session> {
        let session = tx!(self, |tx| {
            let session: Session = sqlx::query_as(&format!(
                "INSERT INTO sessions (id, user_id, ip, user_agent, created_at, last_used_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING {SESSION_COLS}"
            ))
            .bind(s.id)
            .bind(s.user_id)
            .bind(s.ip)
            .bind(s.user_agent)
            .bind(s.now)
            .bind(s.expires_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            sqlx::query("INSERT INTO refresh_tokens (id, session_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(s.refresh_id)
                .bind(s.id)
                .bind(s.refresh_hash)
                .bind(s.now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            session
        });
        Ok(session)
    }

    /// The session and user state an access token depends on, and the user's role in the org
    /// the request acts in (`org`, else the user's default org), in one read.
    pub async fn session_auth(
        &self,
        session_id: Uuid,
        org: Option<Uuid>,
    ) -> Result<Option<SessionAuth>> {
        read!(self, |c| sqlx::query_as(
            "SELECT s.id AS session_id, s.user_id, (s.revoked_at IS NOT NULL) AS revoked, s.expires_at,
                    u.disabled, u.platform_admin, o.id AS org_id, m.role AS role
             FROM sessions s JOIN users u ON u.id = s.user_id
             LEFT JOIN orgs o ON o.id = COALESCE($2, u.default_org_id)
             LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = s.user_id
             WHERE s.id = $1"
        )
        .bind(session_id)
        .bind(org)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenState>> {
        read!(self, |c| sqlx::query_as(
            "SELECT r.id, r.session_id, s.user_id, r.spent_at, s.expires_at AS session_expires_at,
                    s.revoked_at AS session_revoked_at
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1"
        )
        .bind(token_hash)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Spends refresh token `old_id` and issues `new_hash` in its place, atomically: of two
    /// concurrent uses of one token, exactly one rotates.
    pub async fn rotate_refresh_token(
        &self,
        old_id: Uuid,
        session_id: Uuid,
        new_id: Uuid,
        new_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation> {
        let outcome = tx!(self, |tx| {
            let spent = sqlx::query(
                "UPDATE refresh_tokens SET spent_at = $1 WHERE id = $2 AND spent_at IS NULL",
            )
            .bind(now)
            .bind(old_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            if spent.rows_affected() == 0 {
                Rotation::AlreadySpent
            } else {
                sqlx::query("INSERT INTO refresh_tokens (id, session_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(new_id)
                    .bind(session_id)
                    .bind(new_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Rotation::Rotated
            }
        });
        Ok(outcome)
    }

    /// One of the user's sessions, live or not.
    pub async fn session(&self, user_id: Uuid, session_id: Uuid) -> Result<Option<Session>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE id = $1 AND user_id = $2"
        ))
        .bind(session_id)
        .bind(user_id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Revokes one of the user's sessions. `false` when it is not theirs or already revoked.
    pub async fn revoke_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = write!(self, |c| sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL"
        )
        .bind(now)
        .bind(session_id)
        .bind(user_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(r == 1)
    }

    /// Revokes every live session of the user but `keep`. Returns how many were revoked.
    pub async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let keep = keep.unwrap_or(Uuid::nil());
        let r = write!(self, |c| sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL"
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(r)
    }

    /// The user's live sessions (not revoked, not expired).
    pub async fn list_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Session>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {SESSION_COLS} FROM sessions
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND id {cmp} $3
             ORDER BY id {order} LIMIT $4"
        ))
        .bind(user_id)
        .bind(now)
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    pub async fn create_password_reset(
        &self,
        id: Uuid,
        user_id: Uuid,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        write!(self, |c| sqlx::query(
            "INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(id)
        .bind(user_id)
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Spends a reset token that is unused and unexpired, returning its user.
    pub async fn consume_password_reset(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>> {
        write!(self, |c| sqlx::query_scalar(
            "UPDATE password_resets SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id"
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }
}
