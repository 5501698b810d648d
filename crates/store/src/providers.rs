//! LLM providers of an org. The secret column holds the encrypted API key and headers; this
//! module stores and returns those bytes as they are and never sees them in the clear.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{read, tx, write};
use crate::{Page, PageRequest, Result, Store, StoreError};

const COLS: &str = "id, org_id, name, kind, base_url, secret, has_api_key, header_names, default_model, prices, created_by, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Provider {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub kind: String,
    pub base_url: Option<String>,
    pub secret: Option<Vec<u8>>,
    pub has_api_key: bool,
    pub header_names: Json<Vec<String>>,
    pub default_model: Option<String>,
    pub prices: Json<Value>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub async fn create_provider(&self, p: &Provider) -> Result<Provider> {
        write!(self, |c| sqlx::query_as(&format!(
            "INSERT INTO providers ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             RETURNING {COLS}"
        ))
        .bind(p.id)
        .bind(p.org_id)
        .bind(&p.name)
        .bind(&p.kind)
        .bind(&p.base_url)
        .bind(&p.secret)
        .bind(p.has_api_key)
        .bind(&p.header_names)
        .bind(&p.default_model)
        .bind(&p.prices)
        .bind(p.created_by)
        .bind(p.created_at)
        .bind(p.updated_at)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Writes every mutable field of a provider the service has already merged.
    pub async fn update_provider(&self, p: &Provider) -> Result<Option<Provider>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE providers SET name = $1, base_url = $2, secret = $3, has_api_key = $4,
                header_names = $5, default_model = $6, prices = $7, updated_at = $8
             WHERE org_id = $9 AND id = $10 RETURNING {COLS}"
        ))
        .bind(&p.name)
        .bind(&p.base_url)
        .bind(&p.secret)
        .bind(p.has_api_key)
        .bind(&p.header_names)
        .bind(&p.default_model)
        .bind(&p.prices)
        .bind(p.updated_at)
        .bind(p.org_id)
        .bind(p.id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn provider(&self, org_id: Uuid, id: Uuid) -> Result<Option<Provider>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM providers WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn list_providers(&self, org_id: Uuid, page: PageRequest) -> Result<Page<Provider>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM providers WHERE org_id = $1 AND id {cmp} $2 ORDER BY id {order} LIMIT $3"
        ))
        .bind(org_id)
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    /// How many live agents use the provider (as their own or as a fallback).
    pub async fn provider_users(&self, org_id: Uuid, id: Uuid) -> Result<i64> {
        let like = format!("%{id}%");
        read!(self, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM agents WHERE org_id = $1 AND deleted_at IS NULL
               AND (provider_id = $2 OR CAST(fallbacks AS TEXT) LIKE $3)"
        )
        .bind(org_id)
        .bind(id)
        .bind(like)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Deletes a provider no live agent uses (the service checks); deleted agents that named
    /// it forget it.
    pub async fn delete_provider(&self, org_id: Uuid, id: Uuid) -> Result<bool> {
        let n = tx!(self, |tx| {
            sqlx::query(
                "UPDATE agents SET provider_id = NULL
                 WHERE org_id = $1 AND provider_id = $2 AND deleted_at IS NOT NULL",
            )
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            sqlx::query("DELETE FROM providers WHERE org_id = $1 AND id = $2")
                .bind(org_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
