//! `GET /api/v1/ws`: the WebSocket. One socket carries any number of topic subscriptions
//! (`execution:<id>`, `conversation:<id>`, `agent:<id>`, `org`), each a view over the event
//! log that replays from `after` and then goes live, plus chat: `send_message`, typing
//! indicators. Authentication by the `Authorization` header, `?access_token=`, or a first
//! message `{"type":"auth","token":…}`; the credential is checked again periodically, and a
//! token that expires or is revoked ends the socket.

mod conn;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use agentry_services::Principal;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{bearer, request_meta, requested_org};
use crate::state::AppState;
use crate::views::ErrorResponse;

pub use conn::client_topic;

/// WebSocket limits and timings.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Open sockets allowed per user session or API key.
    pub max_per_principal: usize,
    /// Topics one socket may follow at once.
    pub max_subscriptions: usize,
    /// Frames queued for a socket before its slowest subscription is told it lagged.
    pub buffer: usize,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// A socket that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    /// How often the credential is checked again (expiry, revocation, removal from the org).
    pub recheck: Duration,
    /// How long a socket may stay open before its `auth` message.
    pub auth_timeout: Duration,
    /// The largest message a client may send, in bytes.
    pub max_message: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_per_principal: 32,
            max_subscriptions: 64,
            buffer: 256,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            recheck: Duration::from_secs(15),
            auth_timeout: Duration::from_secs(10),
            max_message: 64 * 1024,
        }
    }
}

/// Open sockets per principal (user session or API key), for the per-principal limit.
#[derive(Default)]
pub struct Connections(Mutex<HashMap<Uuid, usize>>);

/// A counted socket; uncounted when dropped.
pub(crate) struct Slot<'a> {
    conns: &'a Connections,
    key: Uuid,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a socket for `key`, unless it already has `max`.
    pub(crate) fn take(&self, key: Uuid, max: usize) -> Option<Slot<'_>> {
        let mut map = self.lock();
        let n = map.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot { conns: self, key })
    }

    fn count(&self, key: Uuid) -> usize {
        self.lock().get(&key).copied().unwrap_or(0)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut map = self.conns.lock();
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Whose socket it is, for the per-principal limit.
fn principal_key(p: &Principal) -> Uuid {
    match p.actor {
        agentry_services::Actor::User { session_id, .. } => session_id,
        agentry_services::Actor::ApiKey { id, .. } => id,
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(websocket))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// A credential for clients that cannot set headers (browsers).
    pub access_token: Option<String>,
}

/// The WebSocket. Client messages: `auth {token, org_id?}`, `subscribe {topic, after?}`,
/// `unsubscribe {topic}`, `join_conversation {conversation_id}`, `send_message
/// {conversation_id, content, client_msg_id}`, `typing_start`/`typing_stop
/// {conversation_id}`, `ping`. Server messages: `event {topic, seq, event, data}`,
/// `subscribed`, `unsubscribed`, `message_ack`, `authenticated`, `pong`, `error {code,
/// message}` (`lagged` carries the topic and the last `seq` delivered: subscribe again with
/// `after`). Without `after`, a subscription starts live; with it, it replays first.
#[utoipa::path(get, path = "/ws", tag = "live", params(WsQuery),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
              (status = 401, body = ErrorResponse), (status = 426, description = "Not a WebSocket request", body = ErrorResponse),
              (status = 429, description = "Too many open sockets for this principal", body = ErrorResponse)),
    security((), ("bearer" = [])))]
async fn websocket(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let mut parts = parts;
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "this route speaks WebSocket: send an Upgrade request",
            )
        })?;
    let Query(q): Query<WsQuery> = Query::try_from_uri(&parts.uri)
        .map_err(|_| ApiError::field("access_token", "must be a token"))?;
    let org = requested_org(&parts.headers)?;
    let meta = request_meta(&parts, &state);
    let token = bearer(&parts.headers)
        .map(str::to_string)
        .or(q.access_token.filter(|t| !t.is_empty()));
    let cfg = state.config.ws.clone();
    let upgrade = upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(cfg.max_message)
        .max_frame_size(cfg.max_message);
    let Some(token) = token else {
        // The client authenticates with its first message.
        return Ok(upgrade.on_upgrade(move |socket| async move {
            conn::unauthenticated(state, socket, org, meta).await
        }));
    };
    let principal = state.services.authenticate(&token, org, meta).await?;
    // Refuse before upgrading when the principal already has all its sockets.
    let key = principal_key(&principal);
    if state.ws_conns.count(key) >= cfg.max_per_principal {
        return Err(too_many());
    }
    Ok(upgrade.on_upgrade(move |socket| async move {
        conn::run(state, socket, principal, token, org).await
    }))
}

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many open WebSocket connections for this credential",
    )
}
