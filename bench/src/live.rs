//! Live workloads: streaming and WebSockets, against the release binary and the testkit's mock
//! provider on 127.0.0.1.
//!
//! - `stream_overhead`: `streams` clients at once, each asking for a reply the mock streams as
//!   50 tokens 20 ms apart; the time to the first token when calling the mock directly, and
//!   through Agentry (`POST /conversations/{id}/messages` with `Accept: text/event-stream`,
//!   to the first `delta`), alternated round by round. The overhead is the difference. The
//!   clients' starts are spread evenly over one reply's length (1.1 s), so `streams` replies
//!   are in flight at any moment.
//! - `ws_memory`: the server's RSS before and after opening `connections` idle, authenticated
//!   WebSockets; the difference per connection.
//! - `ws_fanout`: `subscribers` sockets on one conversation; `events` messages posted to it;
//!   events delivered per second, from the first post to the last delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_testkit::mock::{MockProvider, Reply};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::executions::{Db, Setup, setup};
use crate::ms;
use crate::server::{quantile, summary};

/// `n` words, the reply the mock streams one word per event.
fn tokens(n: usize) -> String {
    (0..n).map(|i| format!("tok{i} ")).collect()
}

/// Reads a streamed response until `first` says an event carries the first token; returns the
/// time from `sent` to it, then drains the rest.
async fn first_token(
    res: reqwest::Response,
    sent: Instant,
    first: impl Fn(&str) -> bool,
) -> anyhow::Result<Duration> {
    let mut res = res.error_for_status()?;
    let mut buf = String::new();
    let mut at = None;
    while let Some(chunk) = res.chunk().await? {
        buf.push_str(std::str::from_utf8(&chunk)?);
        while let Some(i) = buf.find("\n\n") {
            let event: String = buf.drain(..i + 2).collect();
            if at.is_none() && first(&event) {
                at = Some(sent.elapsed());
            }
        }
    }
    at.ok_or_else(|| anyhow::anyhow!("the stream ended without a token"))
}

/// An OpenAI chunk with text in it.
fn openai_token(event: &str) -> bool {
    event.contains("\"content\":\"tok")
}

fn agentry_token(event: &str) -> bool {
    event.contains("event: delta")
}

pub async fn stream_overhead(
    db: &Db,
    bin: &str,
    streams: usize,
    per_client: usize,
    rounds: usize,
) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    mock.set_default(Reply::Paced {
        text: tokens(50),
        gap: Duration::from_millis(20),
    });
    let concurrency = (streams * 2).to_string();
    let s = setup(
        db,
        bin,
        "stream",
        18_900,
        &mock,
        &[
            ("AGENTRY_WORKER_CONCURRENCY", concurrency.as_str()),
            ("AGENTRY_ORG_CONCURRENCY", concurrency.as_str()),
        ],
    )
    .await?;
    let s = Arc::new(s);
    // One conversation per client, so no reply waits for another.
    let mut convs = vec![];
    for _ in 0..streams {
        let c: Value = s
            .http
            .post(s.server.url("/api/v1/conversations"))
            .bearer_auth(&s.token)
            .json(&json!({"agent_id": s.agent}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        convs.push(c["id"].as_str().unwrap_or_default().to_string());
    }
    let direct_url = format!("{}/chat/completions", mock.openai_base());
    let mut runs = vec![];
    // A warm-up round of each, not counted.
    for round in 0..=rounds {
        let mut by_mode = serde_json::Map::new();
        for mode in ["direct", "agentry"] {
            let mut tasks = vec![];
            for (i, conv) in convs.iter().enumerate() {
                let (s, conv, direct_url) = (s.clone(), conv.clone(), direct_url.clone());
                // Spread the clients' starts over one reply's length, so the streams overlap
                // steadily rather than all starting in the same millisecond.
                let offset = Duration::from_millis((i * 1100 / streams) as u64);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(offset).await;
                    let mut out = vec![];
                    for _ in 0..per_client {
                        let sent = Instant::now();
                        let t = if mode == "direct" {
                            let res = s
                                .http
                                .post(&direct_url)
                                .bearer_auth("sk-bench")
                                .json(&json!({"model": "mock-model", "stream": true,
                                              "messages": [{"role": "user", "content": "go"}]}))
                                .send()
                                .await?;
                            first_token(res, sent, openai_token).await?
                        } else {
                            let res = s
                                .http
                                .post(
                                    s.server
                                        .url(&format!("/api/v1/conversations/{conv}/messages")),
                                )
                                .bearer_auth(&s.token)
                                .header("accept", "text/event-stream")
                                .json(&json!({"content": "go"}))
                                .send()
                                .await?;
                            first_token(res, sent, agentry_token).await?
                        };
                        out.push(ms(t));
                    }
                    anyhow::Ok(out)
                }));
            }
            let mut all = vec![];
            for t in tasks {
                all.extend(t.await??);
            }
            let p50 = quantile(&mut all, 0.5);
            let p99 = quantile(&mut all, 0.99);
            by_mode.insert(
                mode.into(),
                json!({"p50_ms": p50, "p99_ms": p99, "samples": all.len()}),
            );
        }
        if round > 0 {
            runs.push(Value::Object(by_mode));
        }
    }
    let diff = |q: &str| -> Vec<f64> {
        runs.iter()
            .map(|r| {
                r["agentry"][q].as_f64().unwrap_or(0.0) - r["direct"][q].as_f64().unwrap_or(0.0)
            })
            .collect()
    };
    let (rss, hwm) = s.server.memory_kb();
    Ok(json!({
        "database": db.label(),
        "concurrent_streams": streams,
        "requests_per_client_per_round": per_client,
        "tokens_per_reply": 50,
        "token_gap_ms": 20,
        "rounds": runs,
        "added_first_token_p50_ms": summary(diff("p50_ms")),
        "added_first_token_p99_ms": summary(diff("p99_ms")),
        "server_rss_mb": rss as f64 / 1024.0,
        "server_peak_rss_mb": hwm as f64 / 1024.0,
        "note": "(median, min, max) over rounds of the difference agentry − direct; first token \
                 = first OpenAI content chunk (direct) or first `delta` SSE event (agentry); \
                 client, server and mock on one 2-vCPU machine",
    }))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(port: u16, key: &str) -> anyhow::Result<Socket> {
    let mut req = format!("ws://127.0.0.1:{port}/api/v1/ws").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {key}").parse()?);
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

/// Opens `n` sockets, `batch` at a time.
async fn open_many(port: u16, key: &str, n: usize, batch: usize) -> anyhow::Result<Vec<Socket>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k = batch.min(n - out.len());
        let opened = futures_util::future::join_all((0..k).map(|_| open(port, key))).await;
        for s in opened {
            out.push(s?);
        }
    }
    Ok(out)
}

async fn api_key(s: &Setup) -> anyhow::Result<String> {
    let k: Value = s
        .http
        .post(s.server.url("/api/v1/api-keys"))
        .bearer_auth(&s.token)
        .json(&json!({"name": "sockets", "role": "member"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(k["key"].as_str().unwrap_or_default().to_string())
}

pub async fn ws_memory(
    db: &Db,
    bin: &str,
    connections: usize,
    runs: usize,
) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    let mut per_conn = vec![];
    let mut rows = vec![];
    for run in 0..runs {
        let limit = (connections + 10).to_string();
        let s = setup(
            db,
            bin,
            &format!("wsmem{run}"),
            18_910 + run as u16,
            &mock,
            &[("AGENTRY_WS_MAX_PER_PRINCIPAL", limit.as_str())],
        )
        .await?;
        let key = api_key(&s).await?;
        // Warm up: a few sockets opened and closed, so pools and caches exist already.
        drop(open_many(s.server.port, &key, 50, 50).await?);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (before, _) = s.server.memory_kb();
        let started = Instant::now();
        let sockets = open_many(s.server.port, &key, connections, 200).await?;
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (after, _) = s.server.memory_kb();
        let kib = (after.saturating_sub(before)) as f64 / connections as f64;
        per_conn.push(kib);
        rows.push(
            json!({"rss_before_mb": before as f64 / 1024.0, "rss_after_mb": after as f64 / 1024.0,
                         "kib_per_connection": kib, "connect_all_s": took.as_secs_f64()}),
        );
        drop(sockets);
    }
    Ok(json!({
        "database": db.label(),
        "connections": connections,
        "runs": rows,
        "kib_per_idle_connection": summary(per_conn),
        "note": "server VmRSS after the sockets are open (idle, authenticated by API key, no \
                 subscriptions) minus before, divided by the count; (median, min, max) over runs",
    }))
}

pub async fn ws_fanout(
    db: &Db,
    bin: &str,
    subscribers: usize,
    events: usize,
    runs: usize,
) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    let mut rates = vec![];
    let mut rows = vec![];
    for run in 0..runs {
        let limit = (subscribers + 10).to_string();
        let s = setup(
            db,
            bin,
            &format!("fanout{run}"),
            18_920 + run as u16,
            &mock,
            &[("AGENTRY_WS_MAX_PER_PRINCIPAL", limit.as_str())],
        )
        .await?;
        let key = api_key(&s).await?;
        // A paused agent: messages are stored and published, no replies run.
        s.http
            .post(s.server.url(&format!("/api/v1/agents/{}/pause", s.agent)))
            .bearer_auth(&s.token)
            .send()
            .await?
            .error_for_status()?;
        let c: Value = s
            .http
            .post(s.server.url("/api/v1/conversations"))
            .bearer_auth(&s.token)
            .json(&json!({"agent_id": s.agent}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let conv = c["id"].as_str().unwrap_or_default().to_string();
        let mut sockets = open_many(s.server.port, &key, subscribers, 200).await?;
        let join = json!({"type": "join_conversation", "conversation_id": conv}).to_string();
        for ws in &mut sockets {
            futures_util::SinkExt::send(ws, join.clone().into()).await?;
            // The `subscribed` reply.
            ws.next().await;
        }
        let started = Instant::now();
        let readers: Vec<_> = sockets
            .into_iter()
            .map(|mut ws| {
                tokio::spawn(async move {
                    let mut got = 0;
                    while got < events {
                        match ws.next().await {
                            Some(Ok(m)) if m.is_text() => {
                                if m.to_text().unwrap_or_default().contains("\"new_message\"") {
                                    got += 1;
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        }
                    }
                    (got, Instant::now())
                })
            })
            .collect();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let posters: Vec<_> = (0..8)
            .map(|_| {
                let (http, url, token, next) = (
                    s.http.clone(),
                    s.server
                        .url(&format!("/api/v1/conversations/{conv}/messages")),
                    s.token.clone(),
                    next.clone(),
                );
                tokio::spawn(async move {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < events {
                        http.post(&url)
                            .bearer_auth(&token)
                            .json(&json!({"content": "fan out"}))
                            .send()
                            .await?
                            .error_for_status()?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for p in posters {
            p.await??;
        }
        let mut delivered = 0;
        let mut last = started;
        for r in readers {
            let (got, at) = r.await?;
            delivered += got;
            last = last.max(at);
        }
        let secs = (last - started).as_secs_f64();
        let rate = delivered as f64 / secs;
        rates.push(rate);
        rows.push(
            json!({"delivered": delivered, "expected": subscribers * events, "seconds": secs,
                         "events_per_s": rate}),
        );
    }
    Ok(json!({
        "database": db.label(),
        "subscribers": subscribers,
        "events": events,
        "runs": rows,
        "delivered_events_per_s": summary(rates),
        "note": "one conversation topic; each posted message is one stored `new_message` event \
                 sent to every subscriber; from the first post to the last delivery; (median, \
                 min, max) over runs",
    }))
}
