//! Schema migrations, embedded in the binary: one history per backend, kept in step.
//!
//! Each migration runs in its own transaction and is recorded in `agentry_migrations`. On
//! PostgreSQL an advisory lock makes replicas that start together take turns.

use chrono::Utc;

use crate::{Db, Result, Store, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "identity",
        sqlite: include_str!("../migrations/sqlite/0001_identity.sql"),
        postgres: include_str!("../migrations/postgres/0001_identity.sql"),
    },
    Migration {
        version: 2,
        name: "runtime",
        sqlite: include_str!("../migrations/sqlite/0002_runtime.sql"),
        postgres: include_str!("../migrations/postgres/0002_runtime.sql"),
    },
    Migration {
        version: 3,
        name: "live",
        sqlite: include_str!("../migrations/sqlite/0003_live.sql"),
        postgres: include_str!("../migrations/postgres/0003_live.sql"),
    },
    Migration {
        version: 4,
        name: "tools",
        sqlite: include_str!("../migrations/sqlite/0004_tools.sql"),
        postgres: include_str!("../migrations/postgres/0004_tools.sql"),
    },
];

/// An arbitrary constant naming Agentry's migration lock.
const PG_LOCK_KEY: i64 = 0x0061_6765_6e74_7279;

impl Store {
    /// Applies every migration not yet applied. Returns how many were applied.
    pub async fn migrate(&self) -> Result<usize> {
        let err = |e: sqlx::Error| StoreError::Migration(e.to_string());
        match &self.db {
            Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await.map_err(err)?;
                sqlx::raw_sql(
                    "CREATE TABLE IF NOT EXISTS agentry_migrations (
                        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
                )
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM agentry_migrations")
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(err)?;
                let mut applied = 0;
                for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
                    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(err)?;
                    sqlx::raw_sql(m.sqlite)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    sqlx::query("INSERT INTO agentry_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                        .bind(m.version)
                        .bind(m.name)
                        .bind(Utc::now())
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    applied += 1;
                }
                Ok(applied)
            }
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await.map_err(err)?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(PG_LOCK_KEY)
                    .execute(&mut *conn)
                    .await
                    .map_err(err)?;
                let result = async {
                    sqlx::raw_sql(
                        "CREATE TABLE IF NOT EXISTS agentry_migrations (
                            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
                    )
                    .execute(&mut *conn)
                    .await?;
                    let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM agentry_migrations")
                        .fetch_all(&mut *conn)
                        .await?;
                    let mut applied = 0;
                    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
                        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                        sqlx::raw_sql(m.postgres).execute(&mut *tx).await?;
                        sqlx::query(
                            "INSERT INTO agentry_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                        )
                        .bind(m.version)
                        .bind(m.name)
                        .bind(Utc::now())
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        applied += 1;
                    }
                    Ok::<usize, sqlx::Error>(applied)
                }
                .await;
                let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(PG_LOCK_KEY)
                    .execute(&mut *conn)
                    .await;
                let applied = result.map_err(err)?;
                unlock.map_err(err)?;
                Ok(applied)
            }
        }
    }

    /// The highest migration version this binary knows.
    pub fn latest_migration() -> i64 {
        MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
    }
}
