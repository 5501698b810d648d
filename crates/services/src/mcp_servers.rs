//! MCP servers: tool servers an org's agents may use, reached over Streamable HTTP or (when the
//! operator allows it) started as local processes speaking stdio. Headers and environment are
//! sealed at rest like provider keys; only their names leave the service.

use std::collections::BTreeMap;
use std::time::Duration;

use agentry_core::id::new_id_at;
use agentry_core::{FieldErrors, Role, text};
use agentry_store::{Json, McpServer, Page, PageRequest};
use agentry_tools::{McpTarget, McpTool, McpTransport};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{Audit, EventActor};
use crate::providers::conflict_or;
use crate::{OrgCtx, ServiceError, ServiceResult, Services};

const NOT_FOUND: ServiceError = ServiceError::NotFound("MCP server not found");
const NAME_TAKEN: (&str, &str) = (
    "mcp_server_name_taken",
    "an MCP server with this name exists",
);

pub const HTTP: &str = "streamable_http";
pub const STDIO: &str = "stdio";

/// What a create or update may set; left-out fields stay as they are.
#[derive(Debug, Default, Clone)]
pub struct McpServerInput {
    pub name: Option<String>,
    pub transport: Option<String>,
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub timeout_seconds: Option<i64>,
}

/// The sealed part of a server.
#[derive(Default, Serialize, Deserialize)]
struct Secret {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

impl Services {
    pub async fn create_mcp_server(
        &self,
        ctx: &OrgCtx,
        input: McpServerInput,
    ) -> ServiceResult<McpServer> {
        ctx.require(Role::Admin)?;
        let mut errors = FieldErrors::new();
        let transport = match input.transport.as_deref() {
            None => {
                errors.add("transport", "is required");
                HTTP
            }
            Some(HTTP) => HTTP,
            Some(STDIO) => STDIO,
            Some(_) => {
                errors.add("transport", "must be streamable_http or stdio");
                HTTP
            }
        };
        if input.name.is_none() {
            errors.add("name", "is required");
        }
        let (id, now) = new_id_at();
        let mut m = McpServer {
            id,
            org_id: ctx.org_id,
            name: String::new(),
            transport: transport.into(),
            url: None,
            command: None,
            args: Json(vec![]),
            secret: None,
            header_names: Json(vec![]),
            env_names: Json(vec![]),
            timeout_seconds: 30,
            created_by: ctx.actor.acting_user(),
            created_at: now,
            updated_at: now,
        };
        self.apply_mcp_input(&mut m, Secret::default(), input, errors)?;
        let m = self
            .store
            .create_mcp_server(&m)
            .await
            .map_err(|e| conflict_or(e, NAME_TAKEN.0, NAME_TAKEN.1))?;
        self.mcp_audit(ctx, "mcp_server.created", &m).await;
        Ok(m)
    }

    pub async fn update_mcp_server(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        input: McpServerInput,
    ) -> ServiceResult<McpServer> {
        ctx.require(Role::Admin)?;
        let mut m = self
            .store
            .mcp_server(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        let mut errors = FieldErrors::new();
        if input.transport.as_deref().is_some_and(|t| t != m.transport) {
            errors.add("transport", "cannot be changed; create another server");
        }
        let secret = self.open_mcp_secret(&m)?;
        m.updated_at = Utc::now();
        self.apply_mcp_input(&mut m, secret, input, errors)?;
        let m = self
            .store
            .update_mcp_server(&m)
            .await
            .map_err(|e| conflict_or(e, NAME_TAKEN.0, NAME_TAKEN.1))?
            .ok_or(NOT_FOUND)?;
        self.mcp_audit(ctx, "mcp_server.updated", &m).await;
        Ok(m)
    }

    async fn mcp_audit(&self, ctx: &OrgCtx, kind: &'static str, m: &McpServer) {
        self.record(Audit {
            org_id: Some(ctx.org_id),
            kind,
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: None,
            data: json!({"mcp_server_id": m.id, "name": m.name, "transport": m.transport}),
            meta: &ctx.meta,
        })
        .await;
    }

    /// Validates `input` into `m` (collecting every bad field) and seals the secret part.
    fn apply_mcp_input(
        &self,
        m: &mut McpServer,
        mut secret: Secret,
        input: McpServerInput,
        mut errors: FieldErrors,
    ) -> ServiceResult<()> {
        let http = m.transport == HTTP;
        if let Some(name) = &input.name
            && let Some(n) = errors.check("name", text::parse_line(name, 100))
        {
            m.name = n;
        }
        if let Some(t) = input.timeout_seconds {
            if (1..=300).contains(&t) {
                m.timeout_seconds = t as i32;
            } else {
                errors.add("timeout_seconds", "must be from 1 to 300");
            }
        }
        if http {
            for (field, given) in [
                ("command", input.command.is_some()),
                ("args", input.args.is_some()),
                ("env", input.env.is_some()),
            ] {
                if given {
                    errors.add(field, "is for stdio servers");
                }
            }
            if let Some(url) = input.url {
                match agentry_tools::Url::parse(&url) {
                    Ok(u) if url.chars().count() <= 2048 => {
                        if let Err(why) = agentry_tools::check_url(&self.tools.egress, &u) {
                            errors.add("url", why);
                        }
                        m.url = Some(url);
                    }
                    _ => errors.add("url", "must be an http:// or https:// URL"),
                }
            }
            if m.url.is_none() {
                errors.add("url", "is required");
            }
            if let Some(headers) = input.headers {
                check_pairs(&mut errors, "headers", &headers, |k| {
                    k.len() <= 100 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                secret.headers = headers;
            }
        } else {
            if !self.tools.mcp_stdio {
                errors.add(
                    "transport",
                    "stdio servers are turned off on this installation (AGENTRY_MCP_STDIO)",
                );
            }
            for (field, given) in [
                ("url", input.url.is_some()),
                ("headers", input.headers.is_some()),
            ] {
                if given {
                    errors.add(field, "is for streamable_http servers");
                }
            }
            if let Some(c) = input.command {
                if c.trim().is_empty() || c.chars().count() > 1024 || c.contains(char::is_control) {
                    errors.add(
                        "command",
                        "must be a program name or path of at most 1024 characters",
                    );
                }
                m.command = Some(c);
            }
            if m.command.is_none() {
                errors.add("command", "is required");
            }
            if let Some(args) = input.args {
                if args.len() > 64
                    || args
                        .iter()
                        .any(|a| a.chars().count() > 4096 || a.contains('\0'))
                {
                    errors.add("args", "at most 64 arguments of at most 4096 characters");
                }
                m.args = Json(args);
            }
            if let Some(env) = input.env {
                check_pairs(&mut errors, "env", &env, |k| {
                    k.len() <= 100
                        && !k.starts_with(|c: char| c.is_ascii_digit())
                        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
                secret.env = env;
            }
        }
        errors.into_result()?;
        m.header_names = Json(secret.headers.keys().cloned().collect());
        m.env_names = Json(secret.env.keys().cloned().collect());
        m.secret = self.seal_json(&secret, secret.headers.is_empty() && secret.env.is_empty())?;
        Ok(())
    }

    fn open_mcp_secret(&self, m: &McpServer) -> ServiceResult<Secret> {
        self.open_json(m.secret.as_deref())
    }

    /// How to reach a server, with its secrets in the clear (for the runtime only).
    pub fn mcp_target(&self, m: &McpServer) -> ServiceResult<McpTarget> {
        let secret = self.open_mcp_secret(m)?;
        let transport = if m.transport == STDIO {
            McpTransport::Stdio {
                command: m.command.clone().unwrap_or_default(),
                args: m.args.0.clone(),
                env: secret.env.into_iter().collect(),
            }
        } else {
            McpTransport::Http {
                url: m.url.clone().unwrap_or_default(),
                headers: secret.headers.into_iter().collect(),
            }
        };
        Ok(McpTarget {
            name: m.name.clone(),
            transport,
            timeout: Duration::from_secs(m.timeout_seconds.max(1) as u64),
        })
    }

    pub async fn get_mcp_server(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<McpServer> {
        self.store
            .mcp_server(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)
    }

    pub async fn list_mcp_servers(
        &self,
        ctx: &OrgCtx,
        page: PageRequest,
    ) -> ServiceResult<Page<McpServer>> {
        Ok(self.store.list_mcp_servers(ctx.org_id, page).await?)
    }

    /// Connects to the server and lists its tools. A server that cannot be reached answers
    /// `502 mcp_unavailable` (or `mcp_error`, `timeout`, `egress_refused`) with the reason.
    pub async fn mcp_server_tools(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Vec<McpTool>> {
        let m = self.get_mcp_server(ctx, id).await?;
        let target = self.mcp_target(&m)?;
        self.mcp
            .list_tools(&target)
            .await
            .map_err(|e| ServiceError::Upstream {
                code: match e.code.as_str() {
                    "timeout" => "timeout",
                    "egress_refused" => "egress_refused",
                    "mcp_error" => "mcp_error",
                    "stdio_disabled" => "stdio_disabled",
                    _ => "mcp_unavailable",
                },
                message: e.message,
            })
    }

    pub async fn delete_mcp_server(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<()> {
        ctx.require(Role::Admin)?;
        let m = self.get_mcp_server(ctx, id).await?;
        if self.store.mcp_server_users(ctx.org_id, id).await? > 0 {
            return Err(ServiceError::Conflict {
                code: "mcp_server_in_use",
                message: "agents use this MCP server; remove it from their tools first",
            });
        }
        if !self.store.delete_mcp_server(ctx.org_id, id).await? {
            return Err(NOT_FOUND);
        }
        self.mcp_audit(ctx, "mcp_server.deleted", &m).await;
        Ok(())
    }
}

/// Checks a map of names to one-line values (headers, environment).
fn check_pairs(
    errors: &mut FieldErrors,
    field: &str,
    pairs: &BTreeMap<String, String>,
    name_ok: impl Fn(&str) -> bool,
) {
    if pairs.len() > 50 {
        errors.add(field, "at most 50 entries");
    }
    for (k, v) in pairs {
        if k.is_empty() || !name_ok(k) {
            errors.add(field, format!("{k:?} is not a valid name"));
        }
        if v.chars().count() > 4096 || v.contains(['\r', '\n', '\0']) {
            errors.add(field, format!("the value of {k:?} must be one line"));
        }
    }
}
