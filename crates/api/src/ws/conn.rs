//! One WebSocket connection: a single task that reads the client's messages, writes queued
//! frames, pings, and checks the credential again; plus one task per subscription that
//! forwards its topic's events into the connection's bounded queue. A subscription whose
//! frames do not fit is ended with `error lagged` (carrying the last `seq` it delivered), so a
//! slow client costs a bounded amount of memory and resumes from the event log.

use std::collections::HashMap;

use agentry_services::conversations::MessageInput;
use agentry_services::live::{Ephemeral, Item, Published, Subscription, topic};
use agentry_services::views::MessageView;
use agentry_services::{OrgCtx, Principal, RequestMeta, ServiceError};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::principal_key;
use crate::error::ApiError;
use crate::state::AppState;

/// Close codes: the credential failed, the client went quiet, too many sockets, shutdown.
const CLOSE_AUTH: u16 = 4001;
const CLOSE_IDLE: u16 = 4008;
const CLOSE_LIMIT: u16 = 4029;
const CLOSE_AWAY: u16 = 1001;

/// The topic as clients name it (`org` for the org's own).
pub fn client_topic(stored: &str) -> &str {
    if stored.starts_with("org:") {
        "org"
    } else {
        stored
    }
}

fn error_frame(code: &str, message: &str, extra: Value) -> String {
    let mut v = json!({"type": "error", "code": code, "message": message});
    if let (Some(o), Value::Object(x)) = (v.as_object_mut(), extra) {
        o.extend(x);
    }
    v.to_string()
}

fn api_error_frame(e: ServiceError, extra: Value) -> String {
    let e = ApiError::from(e);
    error_frame(e.code, &e.message, extra)
}

/// The frame for an event, rendered once for every socket that follows its topic.
fn event_frame(p: &Published) -> String {
    p.frame
        .get_or_init(|| {
            json!({
                "type": "event", "topic": client_topic(&p.event.topic), "seq": p.event.seq,
                "event": p.event.event, "data": p.event.data.0,
            })
            .to_string()
        })
        .clone()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// A socket whose client authenticates with its first message.
pub(super) async fn unauthenticated(
    state: AppState,
    mut socket: WebSocket,
    org: Option<Uuid>,
    meta: RequestMeta,
) {
    let wait = state.config.ws.auth_timeout;
    let first = match tokio::time::timeout(wait, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(_) => return,
        Err(_) => {
            let _ = send(
                &mut socket,
                error_frame(
                    "unauthorized",
                    "authenticate first: {\"type\":\"auth\",\"token\":…}",
                    json!({}),
                ),
            )
            .await;
            return close(&mut socket, CLOSE_AUTH, "authentication timed out").await;
        }
    };
    let msg: Value = serde_json::from_str(&first).unwrap_or_default();
    let (Some("auth"), Some(token)) = (msg["type"].as_str(), msg["token"].as_str()) else {
        let _ = send(
            &mut socket,
            error_frame(
                "unauthorized",
                "the first message must be {\"type\":\"auth\",\"token\":…}",
                json!({}),
            ),
        )
        .await;
        return close(&mut socket, CLOSE_AUTH, "not authenticated").await;
    };
    let org = match msg["org_id"].as_str() {
        Some(o) => match o.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                let _ = send(
                    &mut socket,
                    error_frame(
                        "validation_failed",
                        "org_id must be an organization id",
                        json!({}),
                    ),
                )
                .await;
                return close(&mut socket, CLOSE_AUTH, "not authenticated").await;
            }
        },
        None => org,
    };
    let token = token.to_string();
    let principal = match state.services.authenticate(&token, org, meta).await {
        Ok(p) => p,
        Err(e) => {
            let _ = send(&mut socket, api_error_frame(e, json!({}))).await;
            return close(&mut socket, CLOSE_AUTH, "not authenticated").await;
        }
    };
    let ack = json!({
        "type": "authenticated",
        "org_id": principal.org.map(|(o, _)| o),
    });
    if send(&mut socket, ack.to_string()).await.is_err() {
        return;
    }
    run(state, socket, principal, token, org).await
}

async fn send(socket: &mut WebSocket, frame: String) -> Result<(), axum::Error> {
    socket.send(Message::Text(frame.into())).await
}

struct Conn {
    state: AppState,
    ctx: OrgCtx,
    id: Uuid,
    out: mpsc::Sender<String>,
    subs: HashMap<String, tokio::task::AbortHandle>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for (_, h) in self.subs.drain() {
            h.abort();
        }
    }
}

/// Serves an authenticated socket until it closes, goes quiet, loses its credential, or the
/// server shuts down.
pub(super) async fn run(
    state: AppState,
    mut socket: WebSocket,
    principal: Principal,
    token: String,
    org: Option<Uuid>,
) {
    let cfg = state.config.ws.clone();
    let Some(_slot) = state
        .ws_conns
        .take(principal_key(&principal), cfg.max_per_principal)
    else {
        let _ = send(
            &mut socket,
            error_frame(
                "rate_limited",
                "too many open WebSocket connections for this credential",
                json!({}),
            ),
        )
        .await;
        return close(&mut socket, CLOSE_LIMIT, "too many connections").await;
    };
    let ctx = match principal.org_ctx() {
        Ok(c) => c,
        Err(e) => {
            let _ = send(&mut socket, api_error_frame(e, json!({}))).await;
            return close(&mut socket, CLOSE_AUTH, "no organization").await;
        }
    };
    let (out, mut rx) = mpsc::channel::<String>(cfg.buffer);
    let mut conn = Conn {
        state: state.clone(),
        ctx,
        id: agentry_core::id::new_id(),
        out,
        subs: HashMap::new(),
    };
    let mut closing = state.closing.subscribe();
    let mut heard = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    let mut recheck = tokio::time::interval_at(Instant::now() + cfg.recheck, cfg.recheck);
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { return };
                heard = Instant::now();
                match msg {
                    Message::Text(t) => {
                        if let Some(reply) = conn.handle(&t).await
                            && send(&mut socket, reply).await.is_err()
                        {
                            return;
                        }
                    }
                    Message::Binary(_) => {
                        if send(&mut socket, error_frame("invalid_json", "send JSON text messages", json!({}))).await.is_err() {
                            return;
                        }
                    }
                    Message::Close(_) => return,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            frame = rx.recv() => {
                let Some(frame) = frame else { return };
                if send(&mut socket, frame).await.is_err() {
                    return;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() >= cfg.idle_timeout {
                    return close(&mut socket, CLOSE_IDLE, "idle").await;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = recheck.tick() => {
                let meta = principal.meta.clone();
                match state.services.authenticate(&token, org, meta).await {
                    Ok(p) if p.org.map(|(o, _)| o) == Some(conn.ctx.org_id) => {
                        // A role change takes effect here.
                        if let Ok(c) = p.org_ctx() {
                            conn.ctx = c;
                        }
                    }
                    Ok(_) => {
                        let _ = send(&mut socket, error_frame("not_found", "organization not found", json!({}))).await;
                        return close(&mut socket, CLOSE_AUTH, "organization gone").await;
                    }
                    Err(ServiceError::Internal(_)) => {}
                    Err(e) => {
                        let _ = send(&mut socket, api_error_frame(e, json!({}))).await;
                        return close(&mut socket, CLOSE_AUTH, "credential no longer valid").await;
                    }
                }
            }
            _ = closing.changed() => {
                return close(&mut socket, CLOSE_AWAY, "server shutting down").await;
            }
        }
    }
}

impl Conn {
    /// Handles one client message; returns the direct reply, if any.
    async fn handle(&mut self, text: &str) -> Option<String> {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return Some(error_frame(
                "invalid_json",
                "messages are JSON objects",
                json!({}),
            ));
        };
        let kind = msg["type"].as_str().unwrap_or_default();
        let reply = match kind {
            "ping" => json!({"type": "pong"}).to_string(),
            "subscribe" => self.subscribe(&msg).await,
            "join_conversation" => {
                let id = msg["conversation_id"].as_str().unwrap_or_default();
                let m = json!({"topic": format!("conversation:{id}")});
                self.subscribe(&m).await
            }
            "unsubscribe" => {
                let topic = self.stored_topic(msg["topic"].as_str().unwrap_or_default());
                if let Some(h) = topic.and_then(|t| self.subs.remove(&t)) {
                    h.abort();
                }
                json!({"type": "unsubscribed", "topic": msg["topic"]}).to_string()
            }
            "send_message" => self.send_message(&msg).await,
            "typing_start" | "typing_stop" => {
                return self.typing(&msg, kind == "typing_start").await;
            }
            "auth" => error_frame(
                "invalid_state",
                "this socket is already authenticated",
                json!({}),
            ),
            _ => error_frame(
                "validation_failed",
                "type must be one of subscribe, unsubscribe, join_conversation, send_message, typing_start, typing_stop, ping",
                json!({"type_received": msg["type"]}),
            ),
        };
        Some(reply)
    }

    /// The stored name of a client's topic (`org` is this org's), if it is well formed.
    fn stored_topic(&self, t: &str) -> Option<String> {
        if t == "org" {
            return Some(topic::org(self.ctx.org_id));
        }
        let (kind, id) = t.split_once(':')?;
        let id: Uuid = id.parse().ok()?;
        match kind {
            "execution" => Some(topic::execution(id)),
            "conversation" => Some(topic::conversation(id)),
            "agent" => Some(topic::agent(id)),
            _ => None,
        }
    }

    /// Whether the caller's org has the topic's resource. Another org's is not found.
    async fn check_topic(&self, stored: &str) -> Result<(), ServiceError> {
        let s = &self.state.services;
        let (kind, id) = stored.split_once(':').unwrap_or_default();
        let id: Uuid = id.parse().unwrap_or_default();
        match kind {
            "org" => Ok(()),
            "execution" => s.get_execution(&self.ctx, id).await.map(|_| ()),
            "conversation" => s.get_conversation(&self.ctx, id).await.map(|_| ()),
            "agent" => s.get_agent(&self.ctx, id).await.map(|_| ()),
            _ => Err(ServiceError::NotFound("no such topic")),
        }
    }

    async fn subscribe(&mut self, msg: &Value) -> String {
        let raw = msg["topic"].as_str().unwrap_or_default();
        let extra = json!({"topic": msg["topic"]});
        let Some(stored) = self.stored_topic(raw) else {
            return error_frame(
                "not_found",
                "no such topic: use execution:<id>, conversation:<id>, agent:<id> or org",
                extra,
            );
        };
        let after = match &msg["after"] {
            Value::Null => None,
            v => match v.as_i64().filter(|n| *n >= 0) {
                Some(n) => Some(n),
                None => {
                    return error_frame(
                        "validation_failed",
                        "after must be a sequence number (an integer ≥ 0)",
                        extra,
                    );
                }
            },
        };
        if !self.subs.contains_key(&stored)
            && self.subs.len() >= self.state.config.ws.max_subscriptions
        {
            return error_frame(
                "limit_exceeded",
                "this socket follows too many topics; unsubscribe from some",
                extra,
            );
        }
        if let Err(e) = self.check_topic(&stored).await {
            return api_error_frame(e, extra);
        }
        let services = &self.state.services;
        let after = match after {
            Some(a) => a,
            None => match services.stream_head(self.ctx.org_id, &stored).await {
                Ok(h) => h,
                Err(e) => return api_error_frame(e, extra),
            },
        };
        let sub = match services
            .subscribe(self.ctx.org_id, stored.clone(), after)
            .await
        {
            Ok(s) => s,
            Err(e) => return api_error_frame(e, extra),
        };
        if let Some(old) = self.subs.remove(&stored) {
            old.abort();
        }
        let task = tokio::spawn(forward(sub, self.out.clone(), self.id));
        self.subs.insert(stored.clone(), task.abort_handle());
        json!({"type": "subscribed", "topic": client_topic(&stored), "after": after}).to_string()
    }

    async fn send_message(&mut self, msg: &Value) -> String {
        let client_msg_id = msg["client_msg_id"].clone();
        let extra = json!({"client_msg_id": client_msg_id});
        let cid = match conversation_id(msg, &extra) {
            Ok(c) => c,
            Err(frame) => return frame,
        };
        let Some(content) = msg["content"].as_str() else {
            return error_frame("validation_failed", "content must be a string", extra);
        };
        let client_msg_id = match &client_msg_id {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return error_frame("validation_failed", "client_msg_id must be a string", extra),
        };
        let input = MessageInput {
            content: content.to_string(),
            client_msg_id,
        };
        match self
            .state
            .services
            .post_message(&self.ctx, cid, input)
            .await
        {
            Ok((m, e)) => json!({
                "type": "message_ack", "client_msg_id": msg["client_msg_id"],
                "message": MessageView::from(m), "execution_id": e.id,
            })
            .to_string(),
            Err(e) => api_error_frame(e, extra),
        }
    }

    async fn typing(&mut self, msg: &Value, typing: bool) -> Option<String> {
        let extra = json!({"conversation_id": msg["conversation_id"]});
        let cid = match conversation_id(msg, &extra) {
            Ok(c) => c,
            Err(frame) => return Some(frame),
        };
        let services = &self.state.services;
        if let Err(e) = services.get_conversation(&self.ctx, cid).await {
            return Some(api_error_frame(e, extra));
        }
        let who = self.ctx.actor;
        services
            .say(
                self.ctx.org_id,
                Ephemeral {
                    topic: topic::conversation(cid),
                    event: "user_typing".into(),
                    data: json!({
                        "conversation_id": cid, "typing": typing,
                        "user_id": who.user_id(), "api_key_id": who.api_key_id(),
                    }),
                    from: Some(self.id),
                },
            )
            .await;
        None
    }
}

/// The message's `conversation_id`, or the error frame to answer with.
fn conversation_id(msg: &Value, extra: &Value) -> Result<Uuid, String> {
    msg["conversation_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            error_frame(
                "validation_failed",
                "conversation_id must be a conversation id",
                extra.clone(),
            )
        })
}

/// Forwards a subscription's events into the socket's queue until the socket closes or the
/// queue is full (then `error lagged`).
async fn forward(mut sub: Subscription, out: mpsc::Sender<String>, conn: Uuid) {
    let mut delivered = sub.last;
    loop {
        let item = match sub.next().await {
            Ok(i) => i,
            Err(e) => {
                let topic = client_topic(sub.topic()).to_string();
                let _ = out.send(api_error_frame(e, json!({"topic": topic}))).await;
                return;
            }
        };
        let (frame, seq) = match item {
            Item::Event(p) => (event_frame(&p), Some(p.event.seq)),
            Item::Ephemeral(e) if e.from == Some(conn) => continue,
            Item::Ephemeral(e) => (
                json!({"type": "event", "topic": client_topic(&e.topic), "seq": null,
                       "event": e.event, "data": e.data})
                .to_string(),
                None,
            ),
        };
        match out.try_send(frame) {
            Ok(()) => {
                if let Some(s) = seq {
                    delivered = s;
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                let topic = client_topic(sub.topic()).to_string();
                let lagged = error_frame(
                    "lagged",
                    "this socket fell behind; subscribe again with after = seq",
                    json!({"topic": topic, "seq": delivered}),
                );
                let _ = out.send(lagged).await;
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
