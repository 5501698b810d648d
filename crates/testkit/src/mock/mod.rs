//! A mock LLM provider on 127.0.0.1: a small HTTP/1.1 server written on a TCP socket so a test
//! controls every byte — replies in OpenAI's and Anthropic's real wire formats (JSON and SSE,
//! text and tool calls, usage), errors with `Retry-After`, slow and hanging answers, streams
//! cut off mid-way, and bodies that are not the format. It records every request.
//!
//! OpenAI's chat completions answer at `POST /v1/chat/completions` (base URL
//! [`MockProvider::openai_base`]); Anthropic's Messages at `POST /v1/messages`
//! ([`MockProvider::anthropic_base`]). Each request takes the next scripted [`Reply`], or the
//! default one when the script is empty.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

mod wire;
use wire::{anthropic_events, anthropic_json, by_tool_results, openai_events, openai_json};

/// Token counts a reply reports. `input` includes `cached`; `output` includes `reasoning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockUsage {
    pub input: u64,
    pub cached: u64,
    pub output: u64,
    pub reasoning: u64,
}

impl Default for MockUsage {
    fn default() -> Self {
        MockUsage {
            input: 12,
            cached: 0,
            output: 5,
            reasoning: 0,
        }
    }
}

/// What the mock answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A normal answer with this text (streamed word by word when the request streams).
    Text { text: String, usage: MockUsage },
    /// The model asks for these tool calls `(name, arguments)`.
    Tools(Vec<(String, Value)>),
    /// An error status with the vendor's error body, and a `Retry-After` header when given.
    Error {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// `200` with a body that is not the format.
    Garbage,
    /// Starts streaming `text`, then drops the connection before the end of the stream.
    Cut { text: String },
    /// Like `Text`, with a pause before each streamed piece (a model that types slowly).
    Paced { text: String, gap: Duration },
    /// Waits, then answers as the inner reply.
    Delay(Duration, Box<Reply>),
    /// Never answers (until the caller gives up).
    Hang,
    /// The reply for where the conversation is: the `k`-th when the request already carries
    /// `k` tool results (the last one past the end). A string argument `"$input"` in a tool
    /// call becomes the text of the first user message. Stateless, so one default serves many
    /// executions at once.
    ByToolResults(Vec<Reply>),
}

impl Reply {
    pub fn text(t: &str) -> Reply {
        Reply::Text {
            text: t.into(),
            usage: MockUsage::default(),
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply::Error {
            status,
            message: format!("mock error {status}"),
            retry_after: None,
        }
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When the request had been read whole.
    pub at: std::time::Instant,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    arrived: Notify,
    closed: Mutex<usize>,
}

pub struct MockProvider {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockProvider {
    pub async fn start() -> MockProvider {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, &s).await;
                    *s.closed.lock().unwrap() += 1;
                });
            }
        });
        MockProvider { addr, state, task }
    }

    /// The `base_url` of an `openai` provider pointing here.
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The `base_url` of an `anthropic` provider pointing here.
    pub fn anthropic_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a reply for a coming request.
    pub fn push(&self, r: Reply) {
        self.state.script.lock().unwrap().push_back(r);
    }

    /// The reply when nothing is queued (default: `Reply::text("mock reply")`).
    pub fn set_default(&self, r: Reply) {
        *self.state.default.lock().unwrap() = Some(r);
    }

    pub fn calls(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// How many connections have ended (answered, or dropped by the client).
    pub fn closed(&self) -> usize {
        *self.state.closed.lock().unwrap()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests have arrived; panics after `within`.
    pub async fn wait_calls(&self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            if self.calls() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("the mock provider saw {} calls, expected {n}", self.calls());
            }
        }
    }
}

async fn serve(mut sock: TcpStream, state: &State) -> std::io::Result<()> {
    // Read the head, then the body by Content-Length.
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Value = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
    let reply = {
        let queued = state.script.lock().unwrap().pop_front();
        queued.unwrap_or_else(|| {
            state
                .default
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| Reply::text("mock reply"))
        })
    };
    state.requests.lock().unwrap().push(Recorded {
        at: std::time::Instant::now(),
        path: path.clone(),
        headers,
        body: body.clone(),
    });
    state.arrived.notify_waiters();
    let anthropic = path.ends_with("/messages");
    if !anthropic && !path.ends_with("/chat/completions") {
        return respond(
            &mut sock,
            404,
            &[],
            b"{\"error\":{\"message\":\"no such route\"}}",
        )
        .await;
    }
    answer(&mut sock, reply, &body, anthropic).await
}

async fn answer(
    sock: &mut TcpStream,
    reply: Reply,
    req: &Value,
    anthropic: bool,
) -> std::io::Result<()> {
    let model = req["model"].as_str().unwrap_or("mock-model").to_string();
    let stream = req["stream"].as_bool().unwrap_or(false);
    match reply {
        Reply::Delay(d, inner) => {
            tokio::time::sleep(d).await;
            Box::pin(answer(sock, *inner, req, anthropic)).await
        }
        Reply::ByToolResults(turns) => {
            let turn = by_tool_results(&turns, req);
            Box::pin(answer(sock, turn, req, anthropic)).await
        }
        Reply::Hang => {
            // Hold the connection open until the client goes away.
            let mut b = [0u8; 1];
            let _ = sock.read(&mut b).await;
            Ok(())
        }
        Reply::Garbage => {
            let ct = if stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            let body: &[u8] = if stream {
                b"data: this is not json\n\n"
            } else {
                b"<html>this is not json</html>"
            };
            respond(sock, 200, &[("content-type", ct)], body).await
        }
        Reply::Error {
            status,
            message,
            retry_after,
        } => {
            let body = if anthropic {
                json!({"type": "error", "error": {"type": "api_error", "message": message}})
            } else {
                json!({"error": {"message": message, "type": "server_error", "code": null}})
            };
            let ra = retry_after.map(|s| s.to_string());
            let mut h = vec![("content-type", "application/json")];
            if let Some(ra) = &ra {
                h.push(("retry-after", ra.as_str()));
            }
            respond(sock, status, &h, body.to_string().as_bytes()).await
        }
        Reply::Text { text, usage } => {
            let calls = vec![];
            if stream {
                let events = if anthropic {
                    anthropic_events(&model, &text, &calls, usage)
                } else {
                    openai_events(&model, &text, &calls, usage)
                };
                stream_events(sock, &events, events.len(), true, None).await
            } else {
                let body = if anthropic {
                    anthropic_json(&model, &text, &calls, usage)
                } else {
                    openai_json(&model, &text, &calls, usage)
                };
                respond(
                    sock,
                    200,
                    &[("content-type", "application/json")],
                    body.to_string().as_bytes(),
                )
                .await
            }
        }
        Reply::Tools(calls) => {
            let usage = MockUsage::default();
            if stream {
                let events = if anthropic {
                    anthropic_events(&model, "", &calls, usage)
                } else {
                    openai_events(&model, "", &calls, usage)
                };
                stream_events(sock, &events, events.len(), true, None).await
            } else {
                let body = if anthropic {
                    anthropic_json(&model, "", &calls, usage)
                } else {
                    openai_json(&model, "", &calls, usage)
                };
                respond(
                    sock,
                    200,
                    &[("content-type", "application/json")],
                    body.to_string().as_bytes(),
                )
                .await
            }
        }
        Reply::Paced { text, gap } if stream => {
            let usage = MockUsage::default();
            let events = if anthropic {
                anthropic_events(&model, &text, &[], usage)
            } else {
                openai_events(&model, &text, &[], usage)
            };
            stream_events(sock, &events, events.len(), true, Some(gap)).await
        }
        Reply::Paced { text, .. } => {
            Box::pin(answer(sock, Reply::text(&text), req, anthropic)).await
        }
        Reply::Cut { text } => {
            let usage = MockUsage::default();
            let events = if anthropic {
                anthropic_events(&model, &text, &[], usage)
            } else {
                openai_events(&model, &text, &[], usage)
            };
            // Send the opening and about half the text, then drop the connection.
            let keep = (events.len() / 2).max(1);
            stream_events(sock, &events, keep, false, None).await
        }
    }
}

async fn respond(
    sock: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Mock\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body).await?;
    sock.flush().await
}

/// Writes SSE `events` as HTTP chunks, one per event; with `complete`, ends the chunked body
/// properly, otherwise stops after `count` events and drops the connection mid-body.
async fn stream_events(
    sock: &mut TcpStream,
    events: &[String],
    count: usize,
    complete: bool,
    gap: Option<Duration>,
) -> std::io::Result<()> {
    sock.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    )
    .await?;
    for ev in events.iter().take(count) {
        if let Some(g) = gap {
            tokio::time::sleep(g).await;
        }
        sock.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes())
            .await?;
        sock.flush().await?;
    }
    if complete {
        sock.write_all(b"0\r\n\r\n").await?;
    }
    sock.flush().await?;
    let _ = sock.shutdown().await;
    Ok(())
}
