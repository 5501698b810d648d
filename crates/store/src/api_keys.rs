//! API keys: org-scoped credentials for programs, stored as hashes.

use agentry_core::Role;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::macros::{read, write};
use crate::{ApiKey, Page, PageRequest, Result, Store, StoreError};

const KEY_COLS: &str = "id, org_id, name, role, prefix, created_by, created_at, updated_at, expires_at, last_used_at, revoked_at";

pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: &'a str,
    pub role: Role,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub created_by: Option<Uuid>,
    pub now: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn create_api_key(&self, k: NewApiKey<'_>) -> Result<ApiKey> {
        write!(self, |c| sqlx::query_as(&format!(
            "INSERT INTO api_keys (id, org_id, name, role, prefix, key_hash, created_by, created_at, updated_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING {KEY_COLS}"
        ))
        .bind(k.id)
        .bind(k.org_id)
        .bind(k.name)
        .bind(k.role.as_str())
        .bind(k.prefix)
        .bind(k.key_hash)
        .bind(k.created_by)
        .bind(k.now)
        .bind(k.expires_at)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// The org's keys, revoked ones included (they show `revoked_at`).
    pub async fn list_api_keys(&self, org_id: Uuid, page: PageRequest) -> Result<Page<ApiKey>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE org_id = $1 AND id {cmp} $2 ORDER BY id {order} LIMIT $3"
        ))
        .bind(org_id)
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    pub async fn api_key(&self, org_id: Uuid, id: Uuid) -> Result<Option<ApiKey>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Finds a key by the hash of its secret. This is how a request's key finds its org, so it
    /// is the one lookup that cannot be org-scoped.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE key_hash = $1"
        ))
        .bind(key_hash)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Revokes a live key. `None` when there is no such key in the org or it was revoked.
    pub async fn revoke_api_key(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE api_keys SET revoked_at = $1, updated_at = $1
             WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING {KEY_COLS}"
        ))
        .bind(now)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Replaces a live key's secret; the old secret stops working at once.
    pub async fn rotate_api_key(
        &self,
        org_id: Uuid,
        id: Uuid,
        prefix: &str,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE api_keys SET prefix = $1, key_hash = $2, updated_at = $3
             WHERE org_id = $4 AND id = $5 AND revoked_at IS NULL RETURNING {KEY_COLS}"
        ))
        .bind(prefix)
        .bind(key_hash)
        .bind(now)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn touch_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        write!(self, |c| sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2"
        )
        .bind(now)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}
