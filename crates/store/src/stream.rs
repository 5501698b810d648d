//! The live event log: every execution, conversation, agent and org has an ordered stream of
//! events, each with a sequence number. SSE and WebSocket streams are views over it, so a
//! client that reconnects with the last number it saw misses nothing.
//!
//! A topic's next number comes from its row in `stream_heads`, taken in the same transaction
//! that stores the event; the row stays locked until commit, so a topic's events become visible
//! in sequence order and a reader that has seen `n` has seen everything before it. On
//! PostgreSQL the transaction also sends `NOTIFY agentry_stream, '<topic> <seq>'` (delivered at
//! commit) so other replicas learn of it at once.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::read;
use crate::{Db, Result, Store, StoreError};

/// The PostgreSQL channel that carries `<topic> <seq>` for each appended batch.
pub const NOTIFY_CHANNEL: &str = "agentry_stream";
/// The PostgreSQL channel for things said but not kept (typing indicators).
pub const EPHEMERAL_CHANNEL: &str = "agentry_ephemeral";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StreamEvent {
    pub topic: String,
    pub seq: i64,
    pub org_id: Uuid,
    pub event: String,
    pub data: Json<Value>,
    pub created_at: DateTime<Utc>,
}

/// Takes a topic's next number (`$1` topic, `$2` org).
const NEXT_SEQ: &str = "INSERT INTO stream_heads (topic, org_id, seq) VALUES ($1, $2, 1)
     ON CONFLICT (topic) DO UPDATE SET seq = stream_heads.seq + 1 RETURNING seq";
/// Stores an event under the number taken.
const INSERT_EVENT: &str = "INSERT INTO stream_events (topic, seq, org_id, event, data, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)";

/// An event to append to `topic`.
#[derive(Debug, Clone)]
pub struct NewStreamEvent {
    pub topic: String,
    pub event: &'static str,
    pub data: Value,
}

/// On the connection or transaction `$c`: for each event of `$items` in order, takes the next
/// number of its topic and stores it under that number; evaluates to the stored events.
macro_rules! store_events {
    ($c:ident, $org_id:expr, $items:expr, $now:expr) => {{
        let mut out = Vec::with_capacity($items.len());
        for it in $items {
            let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                .bind(&it.topic)
                .bind($org_id)
                .fetch_one(&mut *$c)
                .await
                .map_err(StoreError::from_sqlx)?;
            sqlx::query(INSERT_EVENT)
                .bind(&it.topic)
                .bind(seq)
                .bind($org_id)
                .bind(it.event)
                .bind(Json(&it.data))
                .bind($now)
                .execute(&mut *$c)
                .await
                .map_err(StoreError::from_sqlx)?;
            out.push(StreamEvent {
                topic: it.topic.clone(),
                seq,
                org_id: $org_id,
                event: it.event.to_string(),
                data: Json(it.data.clone()),
                created_at: $now,
            });
        }
        out
    }};
}

/// A request waiting for the SQLite group commit.
pub(crate) struct Append {
    ticket: u64,
    org_id: Uuid,
    items: Vec<NewStreamEvent>,
    now: DateTime<Utc>,
    done: tokio::sync::oneshot::Sender<Result<Vec<StreamEvent>>>,
}

/// The queue of the SQLite group commit (see [`Store::append_stream`]).
#[derive(Default)]
pub(crate) struct Appends {
    next_ticket: u64,
    waiting: Vec<Append>,
}

impl std::fmt::Debug for Appends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appends")
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// Stores every request of `batch` in one transaction on the writer connection `conn`; the
/// events of each request, in order.
async fn store_batch(
    conn: &mut sqlx::SqliteConnection,
    batch: &[Append],
) -> Result<Vec<Vec<StreamEvent>>> {
    let mut tx = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    let mut out = Vec::with_capacity(batch.len());
    for a in batch {
        out.push(store_events!(tx, a.org_id, &a.items, a.now));
    }
    tx.commit().await.map_err(StoreError::from_sqlx)?;
    Ok(out)
}

/// PostgreSQL: one event in one statement (the common case: a token delta): the number from
/// the topic's head row (locked until the statement commits), the event, and the notice.
async fn append_one(
    pool: &sqlx::PgPool,
    org_id: Uuid,
    it: NewStreamEvent,
    now: DateTime<Utc>,
) -> Result<StreamEvent> {
    let seq: i64 = sqlx::query_scalar(
        "WITH h AS (
            INSERT INTO stream_heads (topic, org_id, seq) VALUES ($1, $2, 1)
            ON CONFLICT (topic) DO UPDATE SET seq = stream_heads.seq + 1 RETURNING seq),
         e AS (
            INSERT INTO stream_events (topic, seq, org_id, event, data, created_at)
            SELECT $1, h.seq, $2, $3, $4, $5 FROM h RETURNING seq)
         SELECT e.seq FROM e, LATERAL (SELECT pg_notify($6, $1 || ' ' || e.seq)) n",
    )
    .bind(&it.topic)
    .bind(org_id)
    .bind(it.event)
    .bind(Json(&it.data))
    .bind(now)
    .bind(NOTIFY_CHANNEL)
    .fetch_one(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(StreamEvent {
        topic: it.topic,
        seq,
        org_id,
        event: it.event.to_string(),
        data: Json(it.data),
        created_at: now,
    })
}

impl Store {
    /// Appends events (in order within each topic) in one transaction and returns them with
    /// their sequence numbers. On SQLite the transaction may hold other appends too (see
    /// `append_grouped`).
    pub async fn append_stream(
        &self,
        org_id: Uuid,
        mut items: Vec<NewStreamEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StreamEvent>> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let pool = match &self.db {
            Db::Sqlite { write, .. } => {
                return self.append_grouped(write, org_id, items, now).await;
            }
            Db::Postgres(pool) => pool,
        };
        if items.len() == 1 {
            return append_one(pool, org_id, items.remove(0), now)
                .await
                .map(|e| vec![e]);
        }
        // Heads are locked in topic order, so two batches never wait on each other in a cycle.
        items.sort_by(|a, b| a.topic.cmp(&b.topic));
        let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
        let out = store_events!(tx, org_id, &items, now);
        for (i, e) in out.iter().enumerate() {
            // One notice per topic (delivered at commit): its last number.
            if out.get(i + 1).is_some_and(|n| n.topic == e.topic) {
                continue;
            }
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(format!("{} {}", e.topic, e.seq))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(out)
    }

    /// SQLite: appends through a group commit. The request joins a queue; whoever gets the one
    /// writer connection next stores every queued request in one transaction and answers each.
    /// Under load many executions' events share one commit (SQLite's cost is mostly the commit:
    /// the WAL frames of every page touched), and alone a request is its own batch of one. A
    /// batch that fails is retried one request at a time, so one bad request fails only itself.
    async fn append_grouped(
        &self,
        write: &crate::sqlite_pool::SqlitePool,
        org_id: Uuid,
        items: Vec<NewStreamEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StreamEvent>> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let ticket = {
            let mut q = self.appends.lock().unwrap_or_else(|p| p.into_inner());
            q.next_ticket += 1;
            let ticket = q.next_ticket;
            q.waiting.push(Append {
                ticket,
                org_id,
                items,
                now,
                done,
            });
            ticket
        };
        match write.acquire().await {
            Ok(mut conn) => {
                let batch = std::mem::take(
                    &mut self
                        .appends
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .waiting,
                );
                Self::write_batch(&mut conn, batch).await;
            }
            Err(e) => {
                // Not written: withdraw the request unless another writer has taken it (then
                // its answer comes from that writer). Others' requests stay queued.
                let mut q = self.appends.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(i) = q.waiting.iter().position(|a| a.ticket == ticket) {
                    q.waiting.remove(i);
                    return Err(StoreError::Database(sqlx::Error::Protocol(format!(
                        "no writer connection: {e}"
                    ))));
                }
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Database(sqlx::Error::Protocol(
                "the batch holding this append was dropped".into(),
            )))
        })
    }

    /// Stores `batch` in one transaction and answers each request; if that fails, one
    /// transaction per request, so one bad request fails only itself.
    async fn write_batch(conn: &mut sqlx::SqliteConnection, batch: Vec<Append>) {
        // Empty when another writer took this request with the rest.
        if batch.is_empty() {
            return;
        }
        match store_batch(&mut *conn, &batch).await {
            Ok(out) => {
                for (a, events) in batch.into_iter().zip(out) {
                    let _ = a.done.send(Ok(events));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(a) = batch.into_iter().next() {
                    let _ = a.done.send(Err(e));
                }
            }
            Err(_) => {
                for a in batch {
                    let out = store_batch(&mut *conn, std::slice::from_ref(&a))
                        .await
                        .map(|mut v| v.pop().unwrap_or_default());
                    let _ = a.done.send(out);
                }
            }
        }
    }

    /// Up to `limit` events of `topic` after `after`, oldest first.
    pub async fn stream_after(
        &self,
        org_id: Uuid,
        topic: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StreamEvent>> {
        read!(self, |c| sqlx::query_as(
            "SELECT topic, seq, org_id, event, data, created_at FROM stream_events
             WHERE topic = $1 AND org_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
        )
        .bind(topic)
        .bind(org_id)
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// The last sequence number of `topic` (0 when it has none).
    pub async fn stream_head(&self, org_id: Uuid, topic: &str) -> Result<i64> {
        let seq: Option<i64> = read!(self, |c| sqlx::query_scalar(
            "SELECT seq FROM stream_heads WHERE topic = $1 AND org_id = $2"
        )
        .bind(topic)
        .bind(org_id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(seq.unwrap_or(0))
    }

    /// Listens for other processes' appends (PostgreSQL only; `None` on SQLite, where one
    /// process owns the file).
    pub async fn listen(&self) -> Result<Option<Listener>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut l = sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        l.listen_all([NOTIFY_CHANNEL, EPHEMERAL_CHANNEL])
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(Some(Listener(l)))
    }

    /// Tells other processes something not kept (PostgreSQL only; nothing to do on SQLite).
    /// The payload must stay under PostgreSQL's 8000 bytes.
    pub async fn notify_ephemeral(&self, payload: &str) -> Result<()> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(EPHEMERAL_CHANNEL)
                .bind(payload)
                .execute(pool)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        Ok(())
    }
}

/// Notices of appends made by any process on the same PostgreSQL database.
pub struct Listener(sqlx::postgres::PgListener);

/// What a [`Listener`] heard.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    /// `topic` has events up to `seq`.
    Appended { topic: String, seq: i64 },
    /// A payload sent with [`Store::notify_ephemeral`].
    Ephemeral(String),
    /// The connection dropped and was made again: notices may have been missed meanwhile.
    Reconnected,
}

impl Listener {
    pub async fn recv(&mut self) -> Result<Notice> {
        loop {
            match self.0.try_recv().await.map_err(StoreError::from_sqlx)? {
                None => return Ok(Notice::Reconnected),
                Some(n) if n.channel() == EPHEMERAL_CHANNEL => {
                    return Ok(Notice::Ephemeral(n.payload().to_string()));
                }
                Some(n) => {
                    if let Some((topic, seq)) = n.payload().rsplit_once(' ')
                        && let Ok(seq) = seq.parse()
                    {
                        return Ok(Notice::Appended {
                            topic: topic.to_string(),
                            seq,
                        });
                    }
                }
            }
        }
    }
}
