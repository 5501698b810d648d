//! The Store: every read and write of Agentry's data, on SQLite or PostgreSQL.
//!
//! The backend is chosen once, from the database URL. Each query is written once with `$n`
//! placeholders (in order of first use, which both backends accept) and run on whichever pool
//! is open: the `read!`, `write!` and `tx!` macros expand a query for both backends so each is
//! type-checked against its own driver. Every function that touches tenant data takes the org.
//!
//! SQLite runs in WAL mode with one writer connection (writes queue in-process rather than
//! fighting over the file lock) and a pool of readers.

mod macros;
mod sqlite_pool;
use macros::read;
use sqlite_pool::SqlitePool;

pub mod agents;
pub mod api_keys;
pub mod approvals;
pub mod conversations;
pub mod events;
pub mod executions;
pub mod idempotency;
pub mod mcp_servers;
pub mod migrate;
pub mod models;
pub mod orgs;
pub mod providers;
pub mod sessions;
pub mod stream;
pub mod tasks;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

pub use agents::{Agent, AgentFilter, AgentLog, AgentStats, AgentVersion, LogFilter};
pub use conversations::{Conversation, ConversationFilter, Message};
pub use executions::{Claim, Execution, ExecutionFilter, Finish, Step, Tokens};
pub use idempotency::IdempotentResponse;
pub use mcp_servers::McpServer;
pub use models::*;
pub use providers::Provider;
pub use sqlx::types::Json;
pub use stream::{NewStreamEvent, StreamEvent};
pub use tasks::{Task, TaskFilter, due_at_key};

/// Escapes `%`, `_` and `\\` for a `LIKE … ESCAPE '\\'` pattern, so user text matches only itself.
pub(crate) fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What can go wrong in the store. A unique violation is reported separately so services can
/// answer `409` for it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migration(String),
    #[error("invalid database url: {0}")]
    Url(String),
}

impl StoreError {
    pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
        if let Some(db) = e.as_database_error()
            && db.is_unique_violation()
        {
            return StoreError::Conflict(db.message().to_string());
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// The handle to the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
    /// PostgreSQL: connections that commit without waiting for the WAL to reach the disk
    /// (`synchronous_commit = off`), for writes whose loss in a crash of the database server
    /// itself costs nothing durable (see `relaxed_write!`). `None` on SQLite.
    pub(crate) relaxed: Option<PgPool>,
    /// SQLite: the queue of the stream's group commit.
    pub(crate) appends: std::sync::Arc<std::sync::Mutex<stream::Appends>>,
}

/// Pool sizes and timeouts.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

impl Store {
    /// Opens the database named by `url` (`sqlite://path` or `postgres://…`). It does not
    /// migrate; call [`Store::migrate`].
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::Url(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(connect.clone())
                .await?;
            // Opened on first use: a process that only reads never holds one.
            let relaxed = PgPoolOptions::new()
                .max_connections((opts.max_connections / 2).max(2))
                .acquire_timeout(opts.acquire_timeout)
                .connect_lazy_with(connect.options([("synchronous_commit", "off")]));
            Ok(Store {
                db: Db::Postgres(pool),
                relaxed: Some(relaxed),
                appends: Default::default(),
            })
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Url(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .pragma("temp_store", "memory");
            let write = SqlitePool::connect(connect.clone(), 1, opts.acquire_timeout).await?;
            let read = SqlitePool::connect(
                connect.read_only(true),
                opts.max_connections.clamp(1, 64),
                opts.acquire_timeout,
            )
            .await?;
            Ok(Store {
                db: Db::Sqlite { read, write },
                relaxed: None,
                appends: Default::default(),
            })
        } else {
            Err(StoreError::Url(
                "expected a sqlite:// or postgres:// url".into(),
            ))
        }
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        read!(self, |c| sqlx::query("SELECT 1")
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p) => {
                if let Some(r) = &self.relaxed {
                    r.close().await;
                }
                p.close().await
            }
        }
    }
}
