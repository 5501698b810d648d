//! Live fan-out of the event log. Every event is stored first ([`Services::emit`]) and then
//! handed to this process's subscribers through an in-process bus; other processes hear of it
//! through PostgreSQL `LISTEN/NOTIFY` ([`Services::listen_forever`]) and read it from the
//! database. A [`Subscription`] tracks the last number it delivered and fills any gap from the
//! database, so a slow reader, a missed notice or a reconnect never loses an event.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use agentry_store::stream::{NewStreamEvent, Notice, StreamEvent};
use chrono::Utc;
use serde_json::Value;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::{ServiceResult, Services};

/// Topic names, as stored.
pub mod topic {
    use uuid::Uuid;

    pub fn execution(id: Uuid) -> String {
        format!("execution:{id}")
    }
    pub fn conversation(id: Uuid) -> String {
        format!("conversation:{id}")
    }
    pub fn agent(id: Uuid) -> String {
        format!("agent:{id}")
    }
    pub fn org(id: Uuid) -> String {
        format!("org:{id}")
    }
}

/// An event as this process's subscribers receive it.
#[derive(Debug)]
pub struct Published {
    pub event: StreamEvent,
    /// The event rendered once for every WebSocket subscriber (filled by the first).
    pub frame: OnceLock<String>,
}

/// Something said on a topic that is not kept (typing indicators).
#[derive(Debug, Clone)]
pub struct Ephemeral {
    pub topic: String,
    pub event: String,
    pub data: Value,
    /// Who said it, so a sender's own indicator is not echoed back to them.
    pub from: Option<Uuid>,
}

#[derive(Debug, Clone)]
enum Live {
    Event(Arc<Published>),
    /// The topic has events up to this number (appended by another process).
    Hint(i64),
    Ephemeral(Arc<Ephemeral>),
}

/// Per-topic broadcast channels of this process. A channel exists while someone listens.
pub struct Bus {
    topics: Mutex<HashMap<String, broadcast::Sender<Live>>>,
}

/// How many events a topic's channel holds for a slow subscriber before it must catch up
/// from the database.
const CHANNEL_CAPACITY: usize = 256;
/// How many events a subscription reads from the database at once.
const FILL: i64 = 500;

impl Default for Bus {
    fn default() -> Self {
        Bus {
            topics: Mutex::new(HashMap::new()),
        }
    }
}

impl Bus {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Live>>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Live> {
        let mut map = self.lock();
        match map.get(topic) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(CHANNEL_CAPACITY);
                map.insert(topic.to_string(), tx);
                rx
            }
        }
    }

    fn send(&self, topic: &str, msg: Live) {
        let mut map = self.lock();
        if let Some(tx) = map.get(topic)
            && tx.send(msg).is_err()
        {
            map.remove(topic);
        }
    }

    /// Called by a subscription as it goes, while its own receiver still exists: forgets the
    /// topic when that receiver is the last one. (Waiting for a count of zero never saw it:
    /// the receiver is dropped only after this runs, so every topic ever followed stayed, with
    /// its channel's buffer, for the life of the process.)
    fn release(&self, topic: &str) {
        let mut map = self.lock();
        if map.get(topic).is_some_and(|tx| tx.receiver_count() <= 1) {
            map.remove(topic);
        }
    }

    fn hint_all(&self) {
        let map = self.lock();
        for tx in map.values() {
            let _ = tx.send(Live::Hint(i64::MAX));
        }
    }
}

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum Item {
    Event(Arc<Published>),
    Ephemeral(Arc<Ephemeral>),
}

/// One reader of one topic: replays from the database after a given number, then goes live.
pub struct Subscription {
    services: Services,
    org_id: Uuid,
    topic: String,
    /// The last number delivered.
    pub last: i64,
    /// The last number read into `queue`.
    fetched: i64,
    queue: VecDeque<Arc<Published>>,
    /// The last fill was full: the database may hold more.
    more: bool,
    rx: broadcast::Receiver<Live>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.services.bus.release(&self.topic);
    }
}

impl Subscription {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next event (or ephemeral message) of the topic, waiting for it.
    pub async fn next(&mut self) -> ServiceResult<Item> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                self.last = e.event.seq;
                return Ok(Item::Event(e));
            }
            if self.more {
                self.fill().await?;
                continue;
            }
            match self.rx.recv().await {
                Ok(Live::Event(e)) => {
                    if e.event.seq == self.fetched + 1 {
                        self.fetched = e.event.seq;
                        self.queue.push_back(e);
                    } else if e.event.seq > self.fetched {
                        // Something came between: read it in order from the database.
                        self.fill().await?;
                    }
                }
                Ok(Live::Hint(seq)) => {
                    if seq > self.fetched {
                        self.fill().await?;
                    }
                }
                Ok(Live::Ephemeral(e)) => return Ok(Item::Ephemeral(e)),
                Err(broadcast::error::RecvError::Lagged(_)) => self.fill().await?,
                Err(broadcast::error::RecvError::Closed) => {
                    self.rx = self.services.bus.subscribe(&self.topic);
                    self.fill().await?;
                }
            }
        }
    }

    /// Reads from the database whatever came after the last event read (a safety net for a
    /// notice lost while the database connection was down).
    pub async fn fill(&mut self) -> ServiceResult<()> {
        let rows = self
            .services
            .store
            .stream_after(self.org_id, &self.topic, self.fetched, FILL)
            .await?;
        self.more = rows.len() as i64 == FILL;
        for event in rows {
            self.fetched = event.seq;
            self.queue.push_back(Arc::new(Published {
                event,
                frame: OnceLock::new(),
            }));
        }
        Ok(())
    }
}

impl Services {
    /// Stores events and hands them to this process's subscribers. A failure is logged: the
    /// run it describes goes on.
    pub async fn emit(&self, org_id: Uuid, items: Vec<NewStreamEvent>) {
        match self.store.append_stream(org_id, items, Utc::now()).await {
            Ok(done) => {
                for event in done {
                    let topic = event.topic.clone();
                    let p = Arc::new(Published {
                        event,
                        frame: OnceLock::new(),
                    });
                    self.bus.send(&topic, Live::Event(p));
                }
            }
            Err(err) => tracing::error!(error = %err, "appending to the event log failed"),
        }
    }

    /// Says something on a topic without keeping it (typing indicators), here and on other
    /// replicas.
    pub async fn say(&self, org_id: Uuid, e: Ephemeral) {
        let payload = serde_json::json!({
            "origin": self.instance, "org_id": org_id, "topic": e.topic, "event": e.event,
            "data": e.data, "from": e.from,
        });
        if let Err(err) = self.store.notify_ephemeral(&payload.to_string()).await {
            tracing::warn!(error = %err, "sending an ephemeral event to other replicas failed");
        }
        let topic = e.topic.clone();
        self.bus.send(&topic, Live::Ephemeral(Arc::new(e)));
    }

    /// Passes on another replica's ephemeral message.
    fn heard(&self, payload: &str) {
        let Ok(v) = serde_json::from_str::<Value>(payload) else {
            return;
        };
        if v["origin"].as_str() == Some(&self.instance.to_string()) {
            return;
        }
        let (Some(topic), Some(event)) = (v["topic"].as_str(), v["event"].as_str()) else {
            return;
        };
        let e = Ephemeral {
            topic: topic.to_string(),
            event: event.to_string(),
            data: v["data"].clone(),
            from: v["from"].as_str().and_then(|s| s.parse().ok()),
        };
        self.bus.send(topic, Live::Ephemeral(Arc::new(e)));
    }

    /// Subscribes to `topic` of `org_id` (the caller has checked access), replaying what came
    /// after `after`.
    pub async fn subscribe(
        &self,
        org_id: Uuid,
        topic: String,
        after: i64,
    ) -> ServiceResult<Subscription> {
        // Listen first, then read: nothing can fall between the two.
        let rx = self.bus.subscribe(&topic);
        let mut s = Subscription {
            services: self.clone(),
            org_id,
            topic,
            last: after,
            fetched: after,
            queue: VecDeque::new(),
            more: false,
            rx,
        };
        s.fill().await?;
        Ok(s)
    }

    /// The last number of a topic (to subscribe from now on).
    pub async fn stream_head(&self, org_id: Uuid, topic: &str) -> ServiceResult<i64> {
        Ok(self.store.stream_head(org_id, topic).await?)
    }

    /// Hears other processes' events until the process ends (PostgreSQL; returns at once on
    /// SQLite). Reconnects after a lost connection, and then has every subscriber catch up.
    pub async fn listen_forever(self) {
        loop {
            let mut listener = match self.store.listen().await {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "listening for other replicas' events failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.bus.hint_all();
            loop {
                match listener.recv().await {
                    Ok(Notice::Appended { topic, seq }) => self.bus.send(&topic, Live::Hint(seq)),
                    Ok(Notice::Ephemeral(payload)) => self.heard(&payload),
                    Ok(Notice::Reconnected) => self.bus.hint_all(),
                    Err(err) => {
                        tracing::warn!(error = %err, "the event listener failed; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_goes_with_its_last_subscriber() {
        let bus = Bus::default();
        let first = bus.subscribe("execution:1");
        let second = bus.subscribe("execution:1");
        // As a subscription's drop does: release while its own receiver is alive.
        bus.release("execution:1");
        drop(first);
        assert_eq!(bus.lock().len(), 1, "another subscriber still listens");
        bus.release("execution:1");
        drop(second);
        assert!(bus.lock().is_empty());
    }
}
