//! Organizations, their members and pending invitations.

use agentry_core::Role;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{read, tx, write};
use crate::{Invitation, Member, Org, OrgWithRole, Page, PageRequest, Result, Store, StoreError};

const ORG_COLS: &str = "id, name, slug, settings, created_by, created_at, updated_at";
const MEMBER_COLS: &str = "m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at";
const INVITE_COLS: &str = "id, org_id, email, role, invited_by, created_at, expires_at";

/// How many owners the org has, inside a transaction.
macro_rules! owner_count {
    ($exec:expr, $org:expr) => {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner'",
        )
        .bind($org)
        .fetch_one($exec)
        .await
        .map_err(StoreError::from_sqlx)?
    };
}

/// Why a membership change was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum MemberChange<T> {
    Done(T),
    NotFound,
    /// It would leave the org without an owner.
    LastOwner,
}

impl Store {
    /// Creates an org with `owner` as its owner.
    pub async fn create_org(
        &self,
        id: Uuid,
        name: &str,
        slug: &str,
        owner: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Org> {
        let org = tx!(self, |tx| {
            let org: Org = sqlx::query_as(&format!(
                "INSERT INTO orgs (id, name, slug, settings, created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, '{{}}', $4, $5, $5) RETURNING {ORG_COLS}"
            ))
            .bind(id)
            .bind(name)
            .bind(slug)
            .bind(owner)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            sqlx::query(
                "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) VALUES ($1, $2, 'owner', $3, $3)",
            )
            .bind(id)
            .bind(owner)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            org
        });
        Ok(org)
    }

    pub async fn org(&self, id: Uuid) -> Result<Option<Org>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {ORG_COLS} FROM orgs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// The user's role in the org, or `None` when they are not a member.
    pub async fn role_in_org(&self, org_id: Uuid, user_id: Uuid) -> Result<Option<Role>> {
        let role: Option<String> = read!(self, |c| sqlx::query_scalar(
            "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2"
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(role.and_then(|r| Role::parse(&r).ok()))
    }

    /// Orgs the user belongs to, with their role, in id order.
    pub async fn list_orgs_of_user(
        &self,
        user_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<OrgWithRole>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT o.id, o.name, o.slug, o.settings, o.created_by, o.created_at, o.updated_at, m.role
             FROM memberships m JOIN orgs o ON o.id = m.org_id
             WHERE m.user_id = $1 AND o.id {cmp} $2 ORDER BY o.id {order} LIMIT $3"
        ))
        .bind(user_id)
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    /// Every org of the instance, for platform admins.
    pub async fn list_all_orgs(&self, page: PageRequest) -> Result<Page<Org>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {ORG_COLS} FROM orgs WHERE id {cmp} $1 ORDER BY id {order} LIMIT $2"
        ))
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    pub async fn update_org(
        &self,
        id: Uuid,
        name: Option<&str>,
        slug: Option<&str>,
        settings: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Org>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE orgs SET name = COALESCE($1, name), slug = COALESCE($2, slug),
                settings = COALESCE($3, settings), updated_at = $4
             WHERE id = $5 RETURNING {ORG_COLS}"
        ))
        .bind(name)
        .bind(slug)
        .bind(settings.map(Json))
        .bind(now)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Deletes the org and, by cascade, everything that belongs to it.
    pub async fn delete_org(&self, id: Uuid) -> Result<bool> {
        let r = write!(self, |c| sqlx::query("DELETE FROM orgs WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(r == 1)
    }

    pub async fn list_members(&self, org_id: Uuid, page: PageRequest) -> Result<Page<Member>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {MEMBER_COLS} FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.org_id = $1 AND m.user_id {cmp} $2 ORDER BY m.user_id {order} LIMIT $3"
        ))
        .bind(org_id)
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    pub async fn member(&self, org_id: Uuid, user_id: Uuid) -> Result<Option<Member>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {MEMBER_COLS} FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.org_id = $1 AND m.user_id = $2"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Adds a member; a user who already belongs is a conflict.
    pub async fn add_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Member> {
        write!(self, |c| sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)"
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        self.member(org_id, user_id)
            .await?
            .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Changes a member's role, refusing to demote the last owner.
    pub async fn set_member_role(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<MemberChange<()>> {
        let outcome = tx!(self, |tx| {
            // Touching the org row first serializes concurrent membership changes on PostgreSQL.
            sqlx::query("UPDATE orgs SET updated_at = updated_at WHERE id = $1")
                .bind(org_id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            let current: Option<String> = sqlx::query_scalar(
                "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
            )
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            match current.as_deref() {
                None => MemberChange::NotFound,
                Some("owner") if role != Role::Owner && owner_count!(&mut *tx, org_id) <= 1 => {
                    MemberChange::LastOwner
                }
                Some(_) => {
                    sqlx::query("UPDATE memberships SET role = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4")
                        .bind(role.as_str())
                        .bind(now)
                        .bind(org_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                    MemberChange::Done(())
                }
            }
        });
        Ok(outcome)
    }

    /// Removes a member, refusing to remove the last owner. A user whose default org this
    /// was gets none.
    pub async fn remove_member(&self, org_id: Uuid, user_id: Uuid) -> Result<MemberChange<()>> {
        let outcome = tx!(self, |tx| {
            sqlx::query("UPDATE orgs SET updated_at = updated_at WHERE id = $1")
                .bind(org_id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            let current: Option<String> = sqlx::query_scalar(
                "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
            )
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            match current.as_deref() {
                None => MemberChange::NotFound,
                Some("owner") if owner_count!(&mut *tx, org_id) <= 1 => MemberChange::LastOwner,
                Some(_) => {
                    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                    sqlx::query("UPDATE users SET default_org_id = NULL WHERE id = $1 AND default_org_id = $2")
                        .bind(user_id)
                        .bind(org_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                    MemberChange::Done(())
                }
            }
        });
        Ok(outcome)
    }

    /// Creates a pending invitation, replacing any earlier one for the same email.
    #[allow(clippy::too_many_arguments)] // one value per column of the invitation
    pub async fn create_invitation(
        &self,
        id: Uuid,
        org_id: Uuid,
        email: &str,
        role: Role,
        token_hash: &str,
        invited_by: Option<Uuid>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Invitation> {
        let inv = tx!(self, |tx| {
            sqlx::query("DELETE FROM invitations WHERE org_id = $1 AND email = $2")
                .bind(org_id)
                .bind(email)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            let inv: Invitation = sqlx::query_as(&format!(
                "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {INVITE_COLS}"
            ))
            .bind(id)
            .bind(org_id)
            .bind(email)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(invited_by)
            .bind(now)
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            inv
        });
        Ok(inv)
    }

    pub async fn list_invitations(
        &self,
        org_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<Invitation>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {INVITE_COLS} FROM invitations WHERE org_id = $1 AND id {cmp} $2 ORDER BY id {order} LIMIT $3"
        ))
        .bind(org_id)
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    pub async fn delete_invitation(&self, org_id: Uuid, id: Uuid) -> Result<Option<Invitation>> {
        write!(self, |c| sqlx::query_as(&format!(
            "DELETE FROM invitations WHERE org_id = $1 AND id = $2 RETURNING {INVITE_COLS}"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn invitation_by_token(&self, token_hash: &str) -> Result<Option<Invitation>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {INVITE_COLS} FROM invitations WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Spends the invitation and adds the user to its org. Returns `false` when the
    /// invitation was already spent or the user already belongs.
    pub async fn accept_invitation(
        &self,
        invitation_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let accepted = tx!(self, |tx| {
            let inv: Option<Invitation> = sqlx::query_as(&format!(
                "DELETE FROM invitations WHERE id = $1 RETURNING {INVITE_COLS}"
            ))
            .bind(invitation_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            match inv {
                None => false,
                Some(inv) => {
                    let r = sqlx::query(
                        "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
                         ON CONFLICT (org_id, user_id) DO NOTHING",
                    )
                    .bind(inv.org_id)
                    .bind(user_id)
                    .bind(inv.role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                    r.rows_affected() == 1
                }
            }
        });
        Ok(accepted)
    }
}
