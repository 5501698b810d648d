//! Server-sent events: an execution's stream as `text/event-stream`. Each event carries its
//! sequence number as its `id`; a client resumes with `Last-Event-ID` (or `?after=`) and gets
//! what it missed from the event log, then what comes live. A comment every 15 s keeps proxies
//! from closing an idle stream. The stream ends after `done`, or when the server shuts down.

use std::convert::Infallible;
use std::time::Duration;

use agentry_services::OrgCtx;
use agentry_services::live::{Item, Subscription, topic};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The number to resume after: `Last-Event-ID`, else `?after=`, else 0 (from the start).
pub fn resume_point(headers: &HeaderMap, after: Option<&str>) -> ApiResult<i64> {
    let parse = |v: &str, field: &str| {
        v.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::field(field, "must be a sequence number (an integer ≥ 0)"))
    };
    // `after` must be valid even when the header wins.
    let after = after.map(|a| parse(a, "after")).transpose()?;
    if let Some(v) = headers.get("last-event-id") {
        let v = v
            .to_str()
            .map_err(|_| ApiError::field("Last-Event-ID", "must be a sequence number"))?;
        return parse(v, "Last-Event-ID");
    }
    Ok(after.unwrap_or(0))
}

/// One event as SSE: `id`, `event` and one line of JSON `data`.
fn frame(seq: i64, event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("id: {seq}\nevent: {event}\ndata: {data}\n\n"))
}

struct Reader {
    sub: Subscription,
    closing: tokio::sync::watch::Receiver<bool>,
    ended: bool,
}

/// Streams execution `id` of the caller's org (checked here) from after `after`.
pub async fn execution_stream(
    state: &AppState,
    ctx: &OrgCtx,
    id: Uuid,
    after: i64,
) -> ApiResult<Response> {
    state.services.get_execution(ctx, id).await?;
    let sub = state
        .services
        .subscribe(ctx.org_id, topic::execution(id), after)
        .await?;
    let reader = Reader {
        sub,
        closing: state.closing.subscribe(),
        ended: false,
    };
    // A first comment tells the client the stream is open before any event.
    let opening =
        futures_util::stream::once(async { Ok::<Bytes, Infallible>(Bytes::from(": open\n\n")) });
    let events = futures_util::stream::unfold(reader, |mut r| async move {
        if r.ended || *r.closing.borrow() {
            return None;
        }
        loop {
            tokio::select! {
                item = r.sub.next() => match item {
                    Ok(Item::Event(p)) => {
                        let e = &p.event;
                        r.ended = e.event == "done";
                        return Some((Ok::<Bytes, Infallible>(frame(e.seq, &e.event, &e.data.0)), r));
                    }
                    Ok(Item::Ephemeral(_)) => continue,
                    Err(err) => {
                        tracing::error!(error = %err, "reading an event stream failed");
                        return None;
                    }
                },
                _ = tokio::time::sleep(KEEP_ALIVE) => {
                    // Also the moment to catch anything a lost notice did not announce.
                    if r.sub.fill().await.is_err() {
                        return None;
                    }
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), r));
                }
                _ = r.closing.changed() => return None,
            }
        }
    });
    let mut res =
        Body::from_stream(futures_util::StreamExt::chain(opening, events)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// Whether the client asked for an event stream.
pub fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}
