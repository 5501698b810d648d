//! What every handler shares.

use std::sync::Arc;

use agentry_services::Services;

use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Origins allowed by CORS; empty allows none.
    pub cors_origins: Vec<String>,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy you trust).
    pub trust_proxy: bool,
    pub rate_limits: RateLimitConfig,
    pub ws: crate::ws::WsConfig,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimitConfig {
    /// Login, register, refresh and forgot-password attempts per minute, per IP and per email.
    pub auth_per_minute: u32,
    /// Requests per minute per principal (user or API key).
    pub api_per_minute: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit: 1024 * 1024,
            cors_origins: vec![],
            trust_proxy: false,
            rate_limits: RateLimitConfig {
                auth_per_minute: 10,
                api_per_minute: 600,
            },
            ws: crate::ws::WsConfig::default(),
        }
    }
}

/// What every handler shares. One `Arc`, since axum clones the state for each extractor and
/// middleware on every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub services: Services,
    pub config: Arc<ApiConfig>,
    pub limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    pub version: &'static str,
    /// Set when the server begins to shut down: long-lived streams end so it can drain.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// Open WebSockets per principal.
    pub ws_conns: crate::ws::Connections,
}

impl AppState {
    pub fn new(services: Services, config: ApiConfig) -> AppState {
        let limits = Arc::new(RateLimits::new(config.rate_limits));
        AppState(Arc::new(Shared {
            services,
            config: Arc::new(config),
            limits,
            metrics: Arc::new(Metrics::default()),
            version: env!("CARGO_PKG_VERSION"),
            closing: tokio::sync::watch::channel(false).0,
            ws_conns: crate::ws::Connections::default(),
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
