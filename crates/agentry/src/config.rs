//! Configuration: defaults, then an optional TOML file, then `AGENTRY_*` environment
//! variables (env wins).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    pub auth_per_minute: u32,
    pub api_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            auth_per_minute: 10,
            api_per_minute: 600,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; a SQLite file in the data dir when unset.
    pub database_url: Option<String>,
    pub allow_signup: bool,
    pub log_format: LogFormat,
    pub body_limit_bytes: usize,
    pub cors_origins: Vec<String>,
    pub trust_proxy: bool,
    pub smtp_url: Option<String>,
    pub db_max_connections: u32,
    pub rate_limits: RateLimits,
    /// Seconds an execution's claim lasts without a heartbeat.
    pub lease_seconds: u64,
    /// Executions in flight in this process.
    pub worker_concurrency: usize,
    /// Executions running at once in one org.
    pub org_concurrency: i64,
    /// Seconds a provider may stay silent mid-reply.
    pub provider_read_timeout_seconds: u64,
    /// Open WebSockets per user session or API key.
    pub ws_max_per_principal: usize,
    /// Tools: egress exceptions, approval expiry, call depth, stdio MCP servers (set by the
    /// environment only).
    #[serde(skip)]
    pub tools: agentry_services::ToolSettings,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Database and SMTP urls may carry passwords.
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database",
                &self.database_url.as_ref().map(|u| redact_url(u)),
            )
            .field("allow_signup", &self.allow_signup)
            .field("log_format", &self.log_format)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("cors_origins", &self.cors_origins)
            .field("smtp", &self.smtp_url.as_ref().map(|u| redact_url(u)))
            .field("rate_limits", &self.rate_limits)
            .finish()
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./agentry-data"),
            database_url: None,
            allow_signup: true,
            log_format: LogFormat::Pretty,
            body_limit_bytes: 1024 * 1024,
            cors_origins: vec![],
            trust_proxy: false,
            smtp_url: None,
            db_max_connections: 16,
            rate_limits: RateLimits::default(),
            lease_seconds: 30,
            worker_concurrency: 256,
            org_concurrency: 64,
            ws_max_per_principal: 32,
            provider_read_timeout_seconds: 120,
            tools: agentry_services::ToolSettings::default(),
        }
    }
}

fn parse_bool(name: &str, v: &str) -> anyhow::Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name} must be true or false, not {v:?}"),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> anyhow::Result<T> {
    v.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{name} must be a number, not {v:?}"))
}

impl Config {
    /// Loads the file (if given) and applies the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(v) = env("AGENTRY_LISTEN") {
            cfg.listen = v;
        }
        if let Some(v) = env("AGENTRY_DATA_DIR") {
            cfg.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("AGENTRY_DATABASE_URL").filter(|v| !v.is_empty()) {
            cfg.database_url = Some(v);
        }
        if let Some(v) = env("AGENTRY_ALLOW_SIGNUP") {
            cfg.allow_signup = parse_bool("AGENTRY_ALLOW_SIGNUP", &v)?;
        }
        if let Some(v) = env("AGENTRY_LOG_FORMAT") {
            cfg.log_format = match v.trim() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => bail!("AGENTRY_LOG_FORMAT must be pretty or json, not {other:?}"),
            };
        }
        if let Some(v) = env("AGENTRY_BODY_LIMIT") {
            cfg.body_limit_bytes = parse_num("AGENTRY_BODY_LIMIT", &v)?;
        }
        if let Some(v) = env("AGENTRY_CORS_ORIGINS") {
            cfg.cors_origins = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = env("AGENTRY_TRUST_PROXY") {
            cfg.trust_proxy = parse_bool("AGENTRY_TRUST_PROXY", &v)?;
        }
        if let Some(v) = env("AGENTRY_SMTP_URL").filter(|v| !v.is_empty()) {
            cfg.smtp_url = Some(v);
        }
        if let Some(v) = env("AGENTRY_DB_MAX_CONNECTIONS") {
            cfg.db_max_connections = parse_num("AGENTRY_DB_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = env("AGENTRY_RATE_LIMIT_AUTH") {
            cfg.rate_limits.auth_per_minute = parse_num("AGENTRY_RATE_LIMIT_AUTH", &v)?;
        }
        if let Some(v) = env("AGENTRY_RATE_LIMIT_API") {
            cfg.rate_limits.api_per_minute = parse_num("AGENTRY_RATE_LIMIT_API", &v)?;
        }
        if let Some(v) = env("AGENTRY_LEASE_SECONDS") {
            cfg.lease_seconds = parse_num("AGENTRY_LEASE_SECONDS", &v)?;
        }
        if let Some(v) = env("AGENTRY_WORKER_CONCURRENCY") {
            cfg.worker_concurrency = parse_num("AGENTRY_WORKER_CONCURRENCY", &v)?;
        }
        if let Some(v) = env("AGENTRY_ORG_CONCURRENCY") {
            cfg.org_concurrency = parse_num("AGENTRY_ORG_CONCURRENCY", &v)?;
        }
        if let Some(v) = env("AGENTRY_WS_MAX_PER_PRINCIPAL") {
            cfg.ws_max_per_principal = parse_num("AGENTRY_WS_MAX_PER_PRINCIPAL", &v)?;
        }
        if let Some(v) = env("AGENTRY_EGRESS_ALLOW") {
            cfg.tools.egress = agentry_tools::Egress::parse(&v)
                .map_err(|e| anyhow::anyhow!("AGENTRY_EGRESS_ALLOW: {e}"))?;
        }
        if let Some(v) = env("AGENTRY_APPROVAL_TTL_SECONDS") {
            let secs: i64 = parse_num("AGENTRY_APPROVAL_TTL_SECONDS", &v)?;
            if secs < 1 {
                bail!("AGENTRY_APPROVAL_TTL_SECONDS must be at least 1");
            }
            cfg.tools.approval_ttl = chrono::Duration::seconds(secs);
        }
        if let Some(v) = env("AGENTRY_MAX_CALL_DEPTH") {
            cfg.tools.max_call_depth = parse_num("AGENTRY_MAX_CALL_DEPTH", &v)?;
        }
        if let Some(v) = env("AGENTRY_MCP_STDIO") {
            cfg.tools.mcp_stdio = parse_bool("AGENTRY_MCP_STDIO", &v)?;
        }
        if let Some(v) = env("AGENTRY_PROVIDER_READ_TIMEOUT") {
            cfg.provider_read_timeout_seconds = parse_num("AGENTRY_PROVIDER_READ_TIMEOUT", &v)?;
        }
        if cfg.lease_seconds < 2 || cfg.worker_concurrency == 0 || cfg.org_concurrency < 1 {
            bail!("the lease must be at least 2 s and both concurrencies at least 1");
        }
        if cfg.body_limit_bytes < 1024 {
            bail!("the body limit must be at least 1024 bytes");
        }
        Ok(cfg)
    }

    /// The database to use: the configured URL, or a SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("agentry.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite://./agentry-data/agentry.db");
        assert!(c.allow_signup);
    }

    #[test]
    fn env_wins_over_file() {
        let dir = std::env::temp_dir().join(format!("agentry-cfg-{}", agentry_core::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agentry.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\nallow_signup = false\n[rate_limits]\napi_per_minute = 5\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("AGENTRY_LISTEN", "127.0.0.1:1"),
                ("AGENTRY_CORS_ORIGINS", "https://a, https://b"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert!(!c.allow_signup);
        assert_eq!(c.rate_limits.api_per_minute, 5);
        assert_eq!(c.cors_origins, vec!["https://a", "https://b"]);
        std::fs::write(&file, "lisen = 1\n").unwrap();
        assert!(
            Config::load(Some(&file), env(&[])).is_err(),
            "unknown keys are refused"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::load(None, env(&[("AGENTRY_ALLOW_SIGNUP", "maybe")])).is_err());
        assert!(Config::load(None, env(&[("AGENTRY_LOG_FORMAT", "xml")])).is_err());
        assert!(Config::load(None, env(&[("AGENTRY_RATE_LIMIT_API", "-1")])).is_err());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
