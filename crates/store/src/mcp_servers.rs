//! MCP servers of an org. The secret column holds the encrypted headers (Streamable HTTP) or
//! environment (stdio); this module stores and returns those bytes as they are.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{read, write};
use crate::{Page, PageRequest, Result, Store, StoreError};

const COLS: &str = "id, org_id, name, transport, url, command, args, secret, header_names, env_names, timeout_seconds, created_by, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct McpServer {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// `streamable_http` or `stdio`.
    pub transport: String,
    pub url: Option<String>,
    pub command: Option<String>,
    pub args: Json<Vec<String>>,
    pub secret: Option<Vec<u8>>,
    pub header_names: Json<Vec<String>>,
    pub env_names: Json<Vec<String>>,
    pub timeout_seconds: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub async fn create_mcp_server(&self, m: &McpServer) -> Result<McpServer> {
        write!(self, |c| sqlx::query_as(&format!(
            "INSERT INTO mcp_servers ({COLS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLS}"
        ))
        .bind(m.id)
        .bind(m.org_id)
        .bind(&m.name)
        .bind(&m.transport)
        .bind(&m.url)
        .bind(&m.command)
        .bind(&m.args)
        .bind(&m.secret)
        .bind(&m.header_names)
        .bind(&m.env_names)
        .bind(m.timeout_seconds)
        .bind(m.created_by)
        .bind(m.created_at)
        .bind(m.updated_at)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Writes every mutable field of a server the service has already merged.
    pub async fn update_mcp_server(&self, m: &McpServer) -> Result<Option<McpServer>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE mcp_servers SET name = $1, transport = $2, url = $3, command = $4, args = $5,
                secret = $6, header_names = $7, env_names = $8, timeout_seconds = $9,
                updated_at = $10
             WHERE org_id = $11 AND id = $12 RETURNING {COLS}"
        ))
        .bind(&m.name)
        .bind(&m.transport)
        .bind(&m.url)
        .bind(&m.command)
        .bind(&m.args)
        .bind(&m.secret)
        .bind(&m.header_names)
        .bind(&m.env_names)
        .bind(m.timeout_seconds)
        .bind(m.updated_at)
        .bind(m.org_id)
        .bind(m.id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn mcp_server(&self, org_id: Uuid, id: Uuid) -> Result<Option<McpServer>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM mcp_servers WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn list_mcp_servers(
        &self,
        org_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<McpServer>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM mcp_servers WHERE org_id = $1 AND id {cmp} $2
             ORDER BY id {order} LIMIT $3"
        ))
        .bind(org_id)
        .bind(page.bound())
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    /// How many live agents declare tools of the server.
    pub async fn mcp_server_users(&self, org_id: Uuid, id: Uuid) -> Result<i64> {
        let like = format!("%{id}%");
        read!(self, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM agents WHERE org_id = $1 AND deleted_at IS NULL
               AND CAST(tools AS TEXT) LIKE $2"
        )
        .bind(org_id)
        .bind(like)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn delete_mcp_server(&self, org_id: Uuid, id: Uuid) -> Result<bool> {
        let n = write!(self, |c| sqlx::query(
            "DELETE FROM mcp_servers WHERE org_id = $1 AND id = $2"
        )
        .bind(org_id)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(n > 0)
    }
}
