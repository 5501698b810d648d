//! A small pool of SQLite connections.
//!
//! sqlx's general pool pings every connection on its way back (a round trip to the
//! connection's worker thread) and spawns a task to do it, which for an embedded database
//! costs more than the query itself. An embedded connection cannot be dropped by a server, and
//! sqlx's SQLite connection runs its commands in order (a rollback queued by a dropped
//! transaction runs before the next user's first statement), so a returned connection goes
//! straight back on the idle list.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub(crate) struct SqlitePool {
    inner: Arc<Inner>,
}

struct Inner {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Arc<Semaphore>,
    size: u32,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for SqlitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePool")
            .field("size", &self.inner.size)
            .finish_non_exhaustive()
    }
}

/// A connection on loan from the pool; it goes back when dropped.
pub(crate) struct PooledConnection {
    conn: Option<SqliteConnection>,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl SqlitePool {
    /// Opens one connection now (so a bad path fails at startup) and up to `size` on demand.
    pub(crate) async fn connect(
        options: SqliteConnectOptions,
        size: u32,
        acquire_timeout: Duration,
    ) -> sqlx::Result<SqlitePool> {
        let size = size.max(1);
        let first = options.connect().await?;
        Ok(SqlitePool {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(vec![first]),
                permits: Arc::new(Semaphore::new(size as usize)),
                size,
                acquire_timeout,
            }),
        })
    }

    pub(crate) async fn acquire(&self) -> sqlx::Result<PooledConnection> {
        let permit = tokio::time::timeout(
            self.inner.acquire_timeout,
            self.inner.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(c) => c,
            None => self.inner.options.connect().await?,
        };
        Ok(PooledConnection {
            conn: Some(conn),
            pool: self.inner.clone(),
            _permit: permit,
        })
    }

    /// Refuses new loans, waits for the connections on loan to come back, and closes them all.
    pub(crate) async fn close(&self) {
        let permits = self.inner.permits.acquire_many(self.inner.size).await;
        self.inner.permits.close();
        drop(permits);
        let conns = std::mem::take(
            &mut *self
                .inner
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for c in conns {
            let _ = c.close().await;
        }
    }
}

impl std::ops::Deref for PooledConnection {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        // Present from creation until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(c);
        }
    }
}
