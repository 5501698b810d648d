//! Idempotency keys: the first response to a create, kept for 24 hours.
//!
//! A request reserves its key before it creates anything, so two concurrent requests with one
//! key cannot both create; the second sees the reservation.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{read, write};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdempotentResponse {
    pub request_hash: String,
    pub status: i32,
    pub body: Json<Value>,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// The response stored for `key` since `since`.
    pub async fn idempotent_response(
        &self,
        org_id: Uuid,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<IdempotentResponse>> {
        read!(self, |c| sqlx::query_as(
            "SELECT request_hash, status, body, created_at FROM idempotency_keys
             WHERE org_id = $1 AND key = $2 AND created_at >= $3"
        )
        .bind(org_id)
        .bind(key)
        .bind(since)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Reserves `key` for a request (status 0 until [`Store::complete_idempotent_response`]),
    /// taking over a key older than `expired_before`, or a reservation older than
    /// `stale_before` (its request died without finishing). False when another request holds
    /// it.
    pub async fn reserve_idempotency_key(
        &self,
        org_id: Uuid,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<bool> {
        let n = write!(self, |c| sqlx::query(
            "INSERT INTO idempotency_keys (org_id, key, request_hash, status, body, created_at)
             VALUES ($1, $2, $3, 0, $4, $5)
             ON CONFLICT (org_id, key) DO UPDATE SET request_hash = $3, status = 0, body = $4,
                created_at = $5
             WHERE idempotency_keys.created_at < $6
                OR (idempotency_keys.status = 0 AND idempotency_keys.created_at < $7)"
        )
        .bind(org_id)
        .bind(key)
        .bind(request_hash)
        .bind(Json(Value::Null))
        .bind(now)
        .bind(expired_before)
        .bind(stale_before)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(n > 0)
    }
}

impl Store {
    /// Fills in the response of a key reserved with status 0.
    pub async fn complete_idempotent_response(
        &self,
        org_id: Uuid,
        key: &str,
        status: i32,
        body: &Value,
    ) -> Result<()> {
        write!(self, |c| sqlx::query(
            "UPDATE idempotency_keys SET status = $1, body = $2 WHERE org_id = $3 AND key = $4"
        )
        .bind(status)
        .bind(Json(body))
        .bind(org_id)
        .bind(key)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Forgets a reservation whose request failed, so the client may try again.
    pub async fn release_idempotency_key(&self, org_id: Uuid, key: &str) -> Result<()> {
        write!(self, |c| sqlx::query(
            "DELETE FROM idempotency_keys WHERE org_id = $1 AND key = $2 AND status = 0"
        )
        .bind(org_id)
        .bind(key)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}
