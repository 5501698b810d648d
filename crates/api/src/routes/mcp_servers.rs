//! `/mcp-servers`: an org's MCP tool servers (writes: admin+). Header and environment values go
//! in and never come back out; `GET /mcp-servers/{id}/tools` asks the server what it offers.

use std::collections::BTreeMap;

use agentry_services::mcp_servers::McpServerInput;
use agentry_store::McpServer;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, Json, Query, path_id};
use crate::list::{ListParams, list_response};
use crate::routes::created;
use crate::state::AppState;
use crate::views::{ErrorResponse, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_mcp_server, list_mcp_servers))
        .routes(routes!(
            get_mcp_server,
            update_mcp_server,
            delete_mcp_server
        ))
        .routes(routes!(mcp_server_tools))
}

/// An MCP server to add, or the fields to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerRequest {
    pub name: Option<String>,
    /// `streamable_http` or `stdio` (only when the operator set `AGENTRY_MCP_STDIO`); fixed
    /// once created.
    pub transport: Option<String>,
    /// `streamable_http`: the server's MCP endpoint, e.g. `https://tools.example.com/mcp`.
    pub url: Option<String>,
    /// `streamable_http`: headers sent with each request (stored encrypted; only their names
    /// are returned). Replaces the stored set.
    pub headers: Option<BTreeMap<String, String>>,
    /// `stdio`: the program to start.
    pub command: Option<String>,
    /// `stdio`: its arguments.
    pub args: Option<Vec<String>>,
    /// `stdio`: environment for the process (stored encrypted; only the names are returned).
    /// The process gets these and `PATH`, `HOME`, `LANG`, `TMPDIR`, nothing else. Replaces the
    /// stored set.
    pub env: Option<BTreeMap<String, String>>,
    /// How long one use of the server (connect, handshake, call) may take: 1–300, default 30.
    pub timeout_seconds: Option<i64>,
}

impl From<McpServerRequest> for McpServerInput {
    fn from(r: McpServerRequest) -> Self {
        McpServerInput {
            name: r.name,
            transport: r.transport,
            url: r.url,
            headers: r.headers,
            command: r.command,
            args: r.args,
            env: r.env,
            timeout_seconds: r.timeout_seconds,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct McpServerView {
    pub id: Uuid,
    pub name: String,
    /// `streamable_http` or `stdio`.
    pub transport: String,
    pub url: Option<String>,
    /// Names of the headers sent; their values are never shown.
    pub header_names: Vec<String>,
    pub command: Option<String>,
    pub args: Vec<String>,
    /// Names of the environment variables set; their values are never shown.
    pub env_names: Vec<String>,
    pub timeout_seconds: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<McpServer> for McpServerView {
    fn from(m: McpServer) -> Self {
        McpServerView {
            id: m.id,
            name: m.name,
            transport: m.transport,
            url: m.url,
            header_names: m.header_names.0,
            command: m.command,
            args: m.args.0,
            env_names: m.env_names.0,
            timeout_seconds: m.timeout_seconds,
            created_by: m.created_by,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A tool an MCP server offers.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpToolView {
    pub name: String,
    pub description: String,
    /// The JSON Schema of its arguments.
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct McpToolsView {
    pub data: Vec<McpToolView>,
}

/// Add an MCP server.
#[utoipa::path(post, path = "/mcp-servers", tag = "mcp-servers", request_body = McpServerRequest,
    responses((status = 201, body = McpServerView), (status = 403, body = ErrorResponse),
              (status = 409, description = "mcp_server_name_taken", body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_mcp_server(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<McpServerRequest>,
) -> ApiResult<Response> {
    let ctx = p.org_ctx()?;
    let m = state.services.create_mcp_server(&ctx, req.into()).await?;
    Ok(created(
        format!("/api/v1/mcp-servers/{}", m.id),
        McpServerView::from(m),
    ))
}

/// The org's MCP servers.
#[utoipa::path(get, path = "/mcp-servers", tag = "mcp-servers", params(ListParams),
    responses((status = 200, body = ListResponse<McpServerView>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_mcp_servers(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<McpServerView>>> {
    let ctx = p.org_ctx()?;
    let req = q.page(false)?;
    let page = state.services.list_mcp_servers(&ctx, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |m| m.id,
        McpServerView::from,
    )))
}

#[utoipa::path(get, path = "/mcp-servers/{id}", tag = "mcp-servers", params(("id" = String, Path)),
    responses((status = 200, body = McpServerView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_mcp_server(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<McpServerView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "MCP server")?;
    Ok(axum::Json(
        state.services.get_mcp_server(&ctx, id).await?.into(),
    ))
}

/// Change an MCP server; fields left out stay as they are.
#[utoipa::path(method(patch, put), path = "/mcp-servers/{id}", tag = "mcp-servers", params(("id" = String, Path)),
    request_body = McpServerRequest,
    responses((status = 200, body = McpServerView), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_mcp_server(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<McpServerRequest>,
) -> ApiResult<axum::Json<McpServerView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "MCP server")?;
    Ok(axum::Json(
        state
            .services
            .update_mcp_server(&ctx, id, req.into())
            .await?
            .into(),
    ))
}

/// Remove an MCP server. Refused with `409 mcp_server_in_use` while agents use it.
#[utoipa::path(delete, path = "/mcp-servers/{id}", tag = "mcp-servers", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_mcp_server(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "MCP server")?;
    state.services.delete_mcp_server(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tools the server offers, asked of it now. `502` (`mcp_unavailable`, `mcp_error`,
/// `timeout`, `egress_refused`) when it cannot be reached or refuses.
#[utoipa::path(get, path = "/mcp-servers/{id}/tools", tag = "mcp-servers", params(("id" = String, Path)),
    responses((status = 200, body = McpToolsView), (status = 404, body = ErrorResponse),
              (status = 502, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn mcp_server_tools(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<McpToolsView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "MCP server")?;
    let tools = state.services.mcp_server_tools(&ctx, id).await?;
    Ok(axum::Json(McpToolsView {
        data: tools
            .into_iter()
            .map(|t| McpToolView {
                name: t.name,
                description: t.description,
                input_schema: t.input_schema,
            })
            .collect(),
    }))
}
