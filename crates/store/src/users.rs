//! Users and their default organizations.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{read, tx, write};
use crate::{Org, OrgWithRole, Page, PageRequest, Result, Store, StoreError, User};

/// A user to create, with the default organization made for them.
pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub org_id: Uuid,
    pub org_name: &'a str,
    pub org_slug: &'a str,
    pub now: DateTime<Utc>,
}

const USER_COLS: &str = "id, email, name, password_hash, settings, platform_admin, disabled, default_org_id, created_at, updated_at";

impl Store {
    /// Creates a user, their default org and their ownership of it, in one transaction. The
    /// first user of an instance becomes platform admin.
    pub async fn create_user_with_org(&self, u: NewUser<'_>) -> Result<(User, Org)> {
        let created = tx!(self, |tx| {
            let first: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM users)")
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            let org: Org = sqlx::query_as(
                "INSERT INTO orgs (id, name, slug, settings, created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, '{}', $4, $5, $5)
                 RETURNING id, name, slug, settings, created_by, created_at, updated_at",
            )
            .bind(u.org_id)
            .bind(u.org_name)
            .bind(u.org_slug)
            .bind(u.id)
            .bind(u.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            let user: User = sqlx::query_as(&format!(
                "INSERT INTO users (id, email, name, password_hash, settings, platform_admin, disabled, default_org_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, '{{}}', $5, FALSE, $6, $7, $7)
                 RETURNING {USER_COLS}"
            ))
            .bind(u.id)
            .bind(u.email)
            .bind(u.name)
            .bind(u.password_hash)
            .bind(first)
            .bind(u.org_id)
            .bind(u.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            sqlx::query(
                "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at)
                 VALUES ($1, $2, 'owner', $3, $3)",
            )
            .bind(u.org_id)
            .bind(u.id)
            .bind(u.now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            (user, org)
        });
        Ok(created)
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {USER_COLS} FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {USER_COLS} FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Changes the fields given; `None` leaves a field as it is.
    pub async fn update_user_profile(
        &self,
        id: Uuid,
        name: Option<&str>,
        settings: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<User>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE users SET name = COALESCE($1, name), settings = COALESCE($2, settings), updated_at = $3
             WHERE id = $4 RETURNING {USER_COLS}"
        ))
        .bind(name)
        .bind(settings.map(Json))
        .bind(now)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn set_password_hash(
        &self,
        id: Uuid,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = write!(self, |c| sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3"
        )
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(r == 1)
    }

    /// Platform-admin changes to a user.
    pub async fn admin_update_user(
        &self,
        id: Uuid,
        disabled: Option<bool>,
        platform_admin: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<Option<User>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE users SET disabled = COALESCE($1, disabled), platform_admin = COALESCE($2, platform_admin), updated_at = $3
             WHERE id = $4 RETURNING {USER_COLS}"
        ))
        .bind(disabled)
        .bind(platform_admin)
        .bind(now)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Every user of the instance, for platform admins.
    pub async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {USER_COLS} FROM users WHERE id {cmp} $1 ORDER BY id {order} LIMIT $2"
        ))
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    /// The orgs a user belongs to, with their role in each, oldest membership first.
    pub async fn memberships_of(&self, user_id: Uuid) -> Result<Vec<OrgWithRole>> {
        read!(self, |c| sqlx::query_as(
            "SELECT o.id, o.name, o.slug, o.settings, o.created_by, o.created_at, o.updated_at, m.role
             FROM memberships m JOIN orgs o ON o.id = m.org_id
             WHERE m.user_id = $1 ORDER BY o.id"
        )
        .bind(user_id)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Counts users, for `agentry admin` and metrics.
    pub async fn count_users(&self) -> Result<i64> {
        read!(self, |c| sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(c)
            .await)
        .map_err(StoreError::from_sqlx)
    }
}
