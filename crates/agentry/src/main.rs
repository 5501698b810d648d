//! `agentry`: the control plane for AI agents, in one binary.

mod config;
mod secrets;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use agentry_api::{ApiConfig, AppState, RateLimitConfig};
use agentry_services::{AuthSettings, Mailer, Services};
use agentry_store::{Store, StoreOptions};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, LogFormat, redact_url};
use crate::secrets::InstanceSecrets;

// A request allocates many small short-lived buffers; mimalloc handles that pattern with far
// less contention than glibc's malloc (measured in bench/results).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "agentry", version, about = "The control plane for AI agents")]
struct Cli {
    /// A TOML configuration file; AGENTRY_* environment variables override it.
    #[arg(long, global = true, env = "AGENTRY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API, and (later) scheduler and workers.
    Serve {
        /// Which parts to run in this process.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Role {
    All,
    Api,
    Worker,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user (with their own org).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// The password; read from standard input when left out.
        #[arg(long, env = "AGENTRY_ADMIN_PASSWORD")]
        password: Option<String>,
        /// Make the user a platform admin.
        #[arg(long)]
        platform_admin: bool,
    },
    /// Set a user's password and sign out all of their sessions.
    ResetPassword {
        #[arg(long)]
        email: String,
        /// The new password; read from standard input when left out.
        #[arg(long, env = "AGENTRY_ADMIN_PASSWORD")]
        password: Option<String>,
    },
    /// List every organization.
    ListOrgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "agentry: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "agentry failed");
            let _ = writeln!(std::io::stderr(), "agentry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        let doc = agentry_api::openapi()
            .to_pretty_json()
            .context("rendering the OpenAPI document")?;
        writeln!(std::io::stdout(), "{doc}")?;
        return Ok(());
    }
    let cfg = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    init_tracing(cfg.log_format, matches!(cli.command, Command::Serve { .. }));
    match cli.command {
        Command::Serve { role } => serve(cfg, role).await,
        Command::Migrate => {
            let store = open_store(&cfg).await?;
            let applied = store.migrate().await?;
            writeln!(
                std::io::stdout(),
                "applied {applied} migration(s); schema is at version {}",
                Store::latest_migration()
            )?;
            store.close().await;
            Ok(())
        }
        Command::Admin { command } => admin(cfg, command).await,
        Command::Openapi => Ok(()),
    }
}

fn init_tracing(format: LogFormat, is_server: bool) {
    let default = if is_server { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},sqlx=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.init(),
    }
}

async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let url = cfg.database_url();
    let opts = StoreOptions {
        max_connections: cfg.db_max_connections,
        ..StoreOptions::default()
    };
    Store::connect(&url, &opts)
        .await
        .with_context(|| format!("opening database {}", redact_url(&url)))
}

async fn services(cfg: &Config, store: Store) -> anyhow::Result<Services> {
    let secrets = InstanceSecrets::load_or_create(&cfg.data_dir)?;
    // The master key encrypts provider credentials at rest.
    let master_key = match std::env::var("AGENTRY_MASTER_KEY") {
        Ok(hex_key) => match hex::decode(hex_key.trim()) {
            Ok(k) if k.len() == 32 => k,
            _ => bail!("AGENTRY_MASTER_KEY must be 64 hex characters (32 bytes)"),
        },
        Err(_) => secrets.master_key,
    };
    let jwt_secret = match std::env::var("AGENTRY_JWT_SECRET") {
        Ok(s) if s.len() >= 32 => s.into_bytes(),
        Ok(_) => bail!("AGENTRY_JWT_SECRET must be at least 32 characters"),
        Err(_) => secrets.jwt_secret,
    };
    let mut auth = AuthSettings::new(jwt_secret);
    auth.allow_signup = cfg.allow_signup;
    let mailer = match &cfg.smtp_url {
        Some(url) => Mailer::from_url(url).map_err(|e| anyhow::anyhow!("AGENTRY_SMTP_URL: {e}"))?,
        None => Mailer::Log,
    };
    let llm = agentry_providers::Client::new(agentry_providers::ClientOptions {
        read_timeout: Duration::from_secs(cfg.provider_read_timeout_seconds),
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("provider client: {e}"))?;
    Services::new(store, auth, mailer, &master_key, llm)
        .and_then(|s| s.with_tools(cfg.tools.clone()))
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn serve(cfg: Config, role: Role) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let applied = store.migrate().await.context("migrating the database")?;
    let services = services(&cfg, store.clone()).await?;
    let api = ApiConfig {
        body_limit: cfg.body_limit_bytes,
        cors_origins: cfg.cors_origins.clone(),
        trust_proxy: cfg.trust_proxy,
        rate_limits: RateLimitConfig {
            auth_per_minute: cfg.rate_limits.auth_per_minute,
            api_per_minute: cfg.rate_limits.api_per_minute,
        },
        ws: agentry_api::ws::WsConfig {
            max_per_principal: cfg.ws_max_per_principal,
            ..Default::default()
        },
    };
    // The runtime runs in `all` and `worker`; it stops when the API has drained.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let runtime = (role != Role::Api).then(|| {
        let rt = agentry_runtime::Runtime::new(
            services.clone(),
            agentry_runtime::RuntimeOptions {
                lease: Duration::from_secs(cfg.lease_seconds),
                concurrency: cfg.worker_concurrency,
                org_concurrency: cfg.org_concurrency,
                ..Default::default()
            },
        );
        tokio::spawn(rt.run(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }))
    });
    if role == Role::Worker {
        tracing::info!(
            database = store.backend().as_str(),
            "agentry worker running"
        );
        shutdown_signal().await;
        let _ = stop_tx.send(true);
        if let Some(rt) = runtime {
            let _ = rt.await;
        }
        store.close().await;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        listen = %addr,
        database = store.backend().as_str(),
        migrations_applied = applied,
        signup = cfg.allow_signup,
        version = env!("CARGO_PKG_VERSION"),
        "agentry is serving on http://{addr} (docs at http://{addr}/docs)"
    );
    // Other replicas' events reach this one's subscribers through LISTEN/NOTIFY.
    let live = tokio::spawn(services.clone().listen_forever());
    agentry_api::serve(listener, AppState::new(services, api), shutdown_signal()).await?;
    live.abort();
    let _ = stop_tx.send(true);
    if let Some(rt) = runtime {
        let _ = rt.await;
    }
    tracing::info!("draining done; closing the database");
    tokio::time::timeout(Duration::from_secs(10), store.close())
        .await
        .ok();
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}

fn read_password(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        bail!("no password given: pass --password or write it to standard input");
    }
    Ok(p)
}

async fn admin(cfg: Config, command: AdminCommand) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    store.migrate().await?;
    let svc = services(&cfg, store.clone()).await?;
    let mut out = std::io::stdout();
    let result = match command {
        AdminCommand::CreateUser {
            email,
            name,
            password,
            platform_admin,
        } => {
            let password = read_password(password)?;
            let user = svc
                .cli_create_user(&email, &password, &name, platform_admin)
                .await
                .map_err(describe)?;
            writeln!(
                out,
                "created user {} <{}>{}",
                user.id,
                user.email,
                if user.platform_admin {
                    " (platform admin)"
                } else {
                    ""
                }
            )?;
            Ok(())
        }
        AdminCommand::ResetPassword { email, password } => {
            let password = read_password(password)?;
            let user = svc
                .cli_reset_password(&email, &password)
                .await
                .map_err(describe)?;
            writeln!(
                out,
                "password reset for {} <{}>; all sessions signed out",
                user.id, user.email
            )?;
            Ok(())
        }
        AdminCommand::ListOrgs => {
            let mut page = agentry_store::PageRequest::first(200);
            writeln!(
                out,
                "{:<36}  {:<40}  {:<24}  name",
                "id", "slug", "created_at"
            )?;
            loop {
                let p = store.list_all_orgs(page).await?;
                for o in &p.items {
                    writeln!(
                        out,
                        "{:<36}  {:<40}  {:<24}  {}",
                        o.id,
                        o.slug,
                        o.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                        o.name
                    )?;
                }
                match (p.has_more, p.items.last()) {
                    (true, Some(last)) => page.after = Some(last.id),
                    _ => break,
                }
            }
            Ok(())
        }
    };
    store.close().await;
    result
}

fn describe(e: agentry_services::ServiceError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
