//! The rules of Agentry: who may do what, and what happens when they do.
//!
//! Services take raw input, parse it into domain types (collecting every bad field), check the
//! caller's role, call the store and record audit events. They know nothing of HTTP; the API
//! maps [`ServiceError`] to statuses.

pub mod admin;
pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod conversations;
pub mod error;
pub mod events;
pub mod executions;
pub mod live;
pub mod mail;
pub mod mcp_servers;
pub mod members;
pub mod orgs;
pub mod passwords;
pub mod principal;
pub mod providers;
pub mod run_events;
pub mod sealer;
pub mod signals;
pub mod tasks;
pub mod tokens;
pub mod tool_decls;
pub mod users;
pub mod views;

use std::sync::Arc;

use agentry_store::Store;
use chrono::Duration;

pub use auth::RevokeReason;
pub use error::{ServiceError, ServiceResult};
pub use mail::Mailer;
pub use principal::{Actor, OrgCtx, Principal, RequestMeta};

/// Settings the services need.
#[derive(Clone)]
pub struct AuthSettings {
    /// Secret for signing access tokens (HS256); at least 32 bytes.
    pub jwt_secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub reset_ttl: Duration,
    pub invitation_ttl: Duration,
    pub allow_signup: bool,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &"<redacted>")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("allow_signup", &self.allow_signup)
            .finish()
    }
}

impl AuthSettings {
    pub fn new(jwt_secret: Vec<u8>) -> AuthSettings {
        AuthSettings {
            jwt_secret,
            access_ttl: Duration::minutes(15),
            refresh_ttl: Duration::days(30),
            reset_ttl: Duration::hours(1),
            invitation_ttl: Duration::days(7),
            allow_signup: true,
        }
    }
}

/// How tools behave (the operator's settings).
#[derive(Clone, Debug)]
pub struct ToolSettings {
    /// Internal addresses tools may reach (`AGENTRY_EGRESS_ALLOW`).
    pub egress: agentry_tools::Egress,
    /// How long a supervised agent's tool call waits for an answer (`AGENTRY_APPROVAL_TTL_SECONDS`).
    pub approval_ttl: Duration,
    /// How deep `call_agent` may nest (`AGENTRY_MAX_CALL_DEPTH`).
    pub max_call_depth: u32,
    /// Whether MCP servers may be started as local processes (`AGENTRY_MCP_STDIO`).
    pub mcp_stdio: bool,
    /// Limits of one HTTP request a tool makes.
    pub http: agentry_tools::HttpLimits,
}

impl Default for ToolSettings {
    fn default() -> Self {
        ToolSettings {
            egress: agentry_tools::Egress::default(),
            approval_ttl: Duration::hours(1),
            max_call_depth: 3,
            mcp_stdio: false,
            http: agentry_tools::HttpLimits::default(),
        }
    }
}

/// Every service, sharing one store. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub settings: Arc<AuthSettings>,
    pub mailer: Arc<Mailer>,
    /// Seals provider credentials under the master key.
    pub sealer: Arc<sealer::Sealer>,
    /// Calls LLM providers.
    pub llm: agentry_providers::Client,
    /// In-process signals between the API and the runtime.
    pub signals: Arc<signals::Signals>,
    /// This process's live subscribers, by topic.
    pub bus: Arc<live::Bus>,
    /// Tells this process's own notices from other replicas'.
    pub instance: uuid::Uuid,
    pub tools: Arc<ToolSettings>,
    /// Outbound HTTP for tools, behind the egress policy.
    pub http: agentry_tools::HttpClient,
    /// The MCP client, behind the same policy.
    pub mcp: agentry_tools::McpClient,
}

impl Services {
    pub fn new(
        store: Store,
        settings: AuthSettings,
        mailer: Mailer,
        master_key: &[u8],
        llm: agentry_providers::Client,
    ) -> ServiceResult<Services> {
        Ok(Services {
            store,
            settings: Arc::new(settings),
            mailer: Arc::new(mailer),
            sealer: Arc::new(sealer::Sealer::new(master_key)?),
            llm,
            signals: Arc::new(signals::Signals::default()),
            bus: Arc::new(live::Bus::default()),
            instance: agentry_core::id::new_id(),
            tools: Arc::new(ToolSettings::default()),
            http: Self::tool_client(&ToolSettings::default())?,
            mcp: Self::mcp_client(&ToolSettings::default())?,
        })
    }

    /// Applies the operator's tool settings.
    pub fn with_tools(mut self, t: ToolSettings) -> ServiceResult<Services> {
        self.http = Self::tool_client(&t)?;
        self.mcp = Self::mcp_client(&t)?;
        self.tools = Arc::new(t);
        Ok(self)
    }

    fn tool_client(t: &ToolSettings) -> ServiceResult<agentry_tools::HttpClient> {
        agentry_tools::HttpClient::new(Arc::new(t.egress.clone()), t.http)
            .map_err(ServiceError::Internal)
    }

    /// Seals `value` as JSON; `None` when it is `empty`.
    pub(crate) fn seal_json<T: serde::Serialize>(
        &self,
        value: &T,
        empty: bool,
    ) -> ServiceResult<Option<Vec<u8>>> {
        if empty {
            return Ok(None);
        }
        let plain = serde_json::to_vec(value).map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Some(self.sealer.seal(&plain)?))
    }

    /// Opens what [`Services::seal_json`] sealed; the default when nothing was.
    pub(crate) fn open_json<T: serde::de::DeserializeOwned + Default>(
        &self,
        sealed: Option<&[u8]>,
    ) -> ServiceResult<T> {
        match sealed {
            None => Ok(T::default()),
            Some(b) => serde_json::from_slice(&self.sealer.open(b)?)
                .map_err(|e| ServiceError::Internal(format!("stored secret: {e}"))),
        }
    }

    fn mcp_client(t: &ToolSettings) -> ServiceResult<agentry_tools::McpClient> {
        agentry_tools::McpClient::new(Arc::new(t.egress.clone()), t.mcp_stdio)
            .map_err(ServiceError::Internal)
    }
}
