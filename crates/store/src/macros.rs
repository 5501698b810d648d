//! Run one query text on whichever backend is open. Each macro expands its body once per
//! backend, so the body is compiled against both drivers.

/// Runs `$body` with `$c` bound to an executor that may be used for reads: a pooled SQLite
/// reader connection or the PostgreSQL pool. The body returns a `Result<_, sqlx::Error>`.
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { read, .. } => match read.acquire().await {
                Ok(mut conn) => {
                    let $c = &mut *conn;
                    $body
                }
                Err(e) => Err(e),
            },
            $crate::Db::Postgres($c) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to an executor that may be used for writes: SQLite's one
/// writer connection or the PostgreSQL pool.
macro_rules! write {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { write, .. } => match write.acquire().await {
                Ok(mut conn) => {
                    let $c = &mut *conn;
                    $body
                }
                Err(e) => Err(e),
            },
            $crate::Db::Postgres($c) => $body,
        }
    };
}

/// Like `write!`, for a write whose loss in a crash of the database server (not of Agentry)
/// costs nothing durable: the live event log, agent log lines, the runtime's own audit events,
/// claims and steps that have only started. On PostgreSQL it commits without waiting
/// for the WAL flush (`synchronous_commit = off`): it is visible at once, survives a crash of
/// Agentry, and becomes durable with the next ordinary commit (the WAL is one sequence), so what
/// a crash of the server can take is only the last fraction of a second of such writes, never
/// an accepted execution, a finished step or a finished execution. SQLite already commits this
/// way (WAL with `synchronous = NORMAL`), so there it is `write!`.
/// With `when $cond`, relaxed only when the condition holds.
macro_rules! relaxed_write {
    ($store:expr, |$c:ident| $body:expr) => {
        $crate::macros::relaxed_write!($store, when true, |$c| $body)
    };
    ($store:expr, when $cond:expr, |$c:ident| $body:expr) => {
        match (&$store.db, &$store.relaxed) {
            ($crate::Db::Postgres(_), Some($c)) if $cond => $body,
            _ => $crate::macros::write!($store, |$c| $body),
        }
    };
}

/// Runs `$body` inside a transaction bound to `$tx` (use `&mut *$tx` as the executor). The
/// transaction commits when the body finishes and rolls back if it returns early with `?`.
macro_rules! tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { write, .. } => {
                let mut conn = write
                    .acquire()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let mut $tx = sqlx::Connection::begin(&mut *conn)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let out = $body;
                $tx.commit().await.map_err($crate::StoreError::from_sqlx)?;
                out
            }
            $crate::Db::Postgres(pool) => {
                let mut $tx = pool.begin().await.map_err($crate::StoreError::from_sqlx)?;
                let out = $body;
                $tx.commit().await.map_err($crate::StoreError::from_sqlx)?;
                out
            }
        }
    };
}

/// Inside a transaction `$tx`, moves the task of the finished execution `$e` (if any) to the
/// status that follows from the execution's, with its output.
macro_rules! follow_task {
    ($tx:ident, $e:expr) => {
        if let Some(task_id) = $e.task_id {
            sqlx::query($crate::tasks::FOLLOW_SQL)
                .bind($crate::tasks::task_status_for(&$e.status))
                .bind($e.output.as_ref())
                .bind($e.updated_at)
                .bind(true)
                .bind($e.org_id)
                .bind(task_id)
                .bind($e.id)
                .execute(&mut *$tx)
                .await
                .map_err($crate::StoreError::from_sqlx)?;
        }
    };
}

/// Binds the sort value of a [`crate::KeySort`] (a typed NULL on the first page).
macro_rules! bind_key {
    ($q:expr, $sort:expr) => {
        match (&$sort.after, $sort.kind) {
            (Some($crate::KeyValue::Int(v)), _) => $q.bind(Some(*v)),
            (Some($crate::KeyValue::Text(v)), _) => $q.bind(Some(v.clone())),
            (Some($crate::KeyValue::Time(v)), _) => $q.bind(Some(*v)),
            (None, $crate::KeyKind::Int) => $q.bind(None::<i64>),
            (None, $crate::KeyKind::Text) => $q.bind(None::<String>),
            (None, $crate::KeyKind::Time) => $q.bind(None::<chrono::DateTime<chrono::Utc>>),
        }
    };
}

pub(crate) use {bind_key, follow_task, read, relaxed_write, tx, write};
