//! The live event log: every execution, conversation, agent and org has an ordered stream of
//! events, each with a sequence number. SSE and WebSocket streams are views over it, so a
//! client that reconnects with the last number it saw misses nothing.
//!
//! A topic's next number comes from its row in `stream_heads`, taken in the same transaction
//! that stores the event; the row stays locked until commit, so a topic's events become visible
//! in sequence order and a reader that has seen `n` has seen everything before it. On
//! PostgreSQL the transaction also sends `NOTIFY agentry_stream, '<topic> <seq>'` (delivered at
//! commit) so other replicas learn of it at once.

use std::collections::{BTreeMap, HashMap};

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

/// An event to append to `topic`.
#[derive(Debug, Clone)]
pub struct NewStreamEvent {
    pub topic: String,
    pub event: &'static str,
    pub data: Value,
}

/// An event on its way to the log: its org, the event, and when it happened.
type Pending<'a> = (Uuid, &'a NewStreamEvent, DateTime<Utc>);

/// Events numbered within their topics before they are stored: how many numbers each topic
/// takes (in topic order, the order its head row is locked in, so two writers never wait on
/// each other in a cycle), and how far each event stands behind its topic's new head. The
/// head rows are moved once per topic, whatever the number of events: a batch costs two
/// statements, not two per event.
struct Numbering<'a> {
    /// Topic, its org, and how many of the events are on it.
    heads: Vec<(&'a str, Uuid, i64)>,
    /// For each event in order: its number is its topic's new head minus this.
    back: Vec<i64>,
}

impl<'a> Numbering<'a> {
    fn new(events: &[Pending<'a>]) -> Numbering<'a> {
        let mut counts: BTreeMap<&str, (Uuid, i64)> = BTreeMap::new();
        for (org_id, it, _) in events {
            counts.entry(it.topic.as_str()).or_insert((*org_id, 0)).1 += 1;
        }
        let mut seen: HashMap<&str, i64> = HashMap::new();
        let back = events
            .iter()
            .map(|(_, it, _)| {
                let k = seen.entry(it.topic.as_str()).or_insert(0);
                *k += 1;
                counts[it.topic.as_str()].1 - *k
            })
            .collect();
        Numbering {
            heads: counts.into_iter().map(|(t, (o, n))| (t, o, n)).collect(),
            back,
        }
    }

    /// The events as stored, numbered back from their topics' new `heads`.
    fn stored(
        &self,
        events: &[Pending<'_>],
        heads: &HashMap<String, i64>,
    ) -> Result<Vec<StreamEvent>> {
        events
            .iter()
            .zip(&self.back)
            .map(|((org_id, it, at), back)| {
                let head = heads.get(&it.topic).ok_or_else(|| {
                    StoreError::Database(sqlx::Error::Protocol(format!(
                        "no head returned for topic {}",
                        it.topic
                    )))
                })?;
                Ok(StreamEvent {
                    topic: it.topic.clone(),
                    seq: head - back,
                    org_id: *org_id,
                    event: it.event.to_string(),
                    data: Json(it.data.clone()),
                    created_at: *at,
                })
            })
            .collect()
    }
}

/// Rows per multi-row statement on SQLite (well under its limit of bound parameters).
const SQLITE_ROWS: usize = 500;

/// SQLite, in the transaction `c`: stores `events` in order within their topics, with one
/// statement moving the heads and one storing the events (per [`SQLITE_ROWS`] rows).
async fn store_events_sqlite(
    c: &mut sqlx::SqliteConnection,
    events: &[Pending<'_>],
) -> Result<Vec<StreamEvent>> {
    let numbering = Numbering::new(events);
    let mut heads = HashMap::with_capacity(numbering.heads.len());
    for chunk in numbering.heads.chunks(SQLITE_ROWS) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO stream_heads (topic, org_id, seq) ");
        q.push_values(chunk, |mut b, (topic, org_id, n)| {
            b.push_bind(*topic).push_bind(*org_id).push_bind(*n);
        });
        q.push(
            " ON CONFLICT (topic) DO UPDATE SET seq = stream_heads.seq + excluded.seq
              RETURNING topic, seq",
        );
        let rows: Vec<(String, i64)> = q
            .build_query_as()
            .fetch_all(&mut *c)
            .await
            .map_err(StoreError::from_sqlx)?;
        heads.extend(rows);
    }
    let stored = numbering.stored(events, &heads)?;
    for chunk in stored.chunks(SQLITE_ROWS) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO stream_events (topic, seq, org_id, event, data, created_at) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(&e.topic)
                .push_bind(e.seq)
                .push_bind(e.org_id)
                .push_bind(&e.event)
                .push_bind(&e.data)
                .push_bind(e.created_at);
        });
        q.build()
            .execute(&mut *c)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    Ok(stored)
}

/// PostgreSQL: stores `items` of `org_id` in order within their topics in one statement (so
/// one implicit transaction): the heads move, the events are stored, and each topic's last
/// number is sent with `NOTIFY` (delivered at commit).
async fn append_pg(
    pool: &sqlx::PgPool,
    org_id: Uuid,
    items: &[NewStreamEvent],
    now: DateTime<Utc>,
) -> Result<Vec<StreamEvent>> {
    let events: Vec<Pending<'_>> = items.iter().map(|it| (org_id, it, now)).collect();
    let numbering = Numbering::new(&events);
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "WITH h AS (
            INSERT INTO stream_heads (topic, org_id, seq)
            SELECT t, $2, n FROM unnest($1::text[], $3::bigint[]) AS u(t, n) ORDER BY t
            ON CONFLICT (topic) DO UPDATE SET seq = stream_heads.seq + excluded.seq
            RETURNING topic, seq),
         e AS (
            INSERT INTO stream_events (topic, seq, org_id, event, data, created_at)
            SELECT u.t, h.seq - u.back, $2, u.ev, u.d::jsonb, $7
            FROM unnest($4::text[], $5::bigint[], $6::text[], $8::text[]) AS u(t, back, ev, d)
            JOIN h ON h.topic = u.t)
         SELECT h.topic, h.seq FROM h, LATERAL (SELECT pg_notify($9, h.topic || ' ' || h.seq)) n",
    )
    .bind(numbering.heads.iter().map(|h| h.0).collect::<Vec<_>>())
    .bind(org_id)
    .bind(numbering.heads.iter().map(|h| h.2).collect::<Vec<_>>())
    .bind(items.iter().map(|it| it.topic.as_str()).collect::<Vec<_>>())
    .bind(&numbering.back)
    .bind(items.iter().map(|it| it.event).collect::<Vec<_>>())
    .bind(now)
    .bind(
        items
            .iter()
            .map(|it| it.data.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(NOTIFY_CHANNEL)
    .fetch_all(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    numbering.stored(&events, &rows.into_iter().collect())
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
    let events: Vec<Pending<'_>> = batch
        .iter()
        .flat_map(|a| a.items.iter().map(|it| (a.org_id, it, a.now)))
        .collect();
    let mut tx = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    let mut stored = store_events_sqlite(&mut tx, &events).await?.into_iter();
    tx.commit().await.map_err(StoreError::from_sqlx)?;
    Ok(batch
        .iter()
        .map(|a| stored.by_ref().take(a.items.len()).collect())
        .collect())
}

impl Store {
    /// Appends events (in order within each topic) in one transaction and returns them with
    /// their sequence numbers. On SQLite the transaction may hold other appends too (see
    /// `append_grouped`).
    pub async fn append_stream(
        &self,
        org_id: Uuid,
        items: Vec<NewStreamEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StreamEvent>> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let pool = match &self.db {
            Db::Sqlite { write, .. } => {
                return self.append_grouped(write, org_id, items, now).await;
            }
            // The log is written relaxed (see `relaxed_write!`).
            Db::Postgres(pool) => self.relaxed.as_ref().unwrap_or(pool),
        };
        append_pg(pool, org_id, &items, now).await
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
