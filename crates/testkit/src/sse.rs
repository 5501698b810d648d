//! A server-sent-events client for tests: reads a `text/event-stream` response event by event
//! as the bytes arrive.

use std::time::Duration;

use serde_json::Value;

/// One event of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

pub struct SseReader {
    res: reqwest::Response,
    buf: String,
    /// Comments seen (`: keep-alive`…).
    pub comments: usize,
}

/// How long a test waits for the next event before failing.
const PATIENCE: Duration = Duration::from_secs(20);

impl SseReader {
    pub fn new(res: reqwest::Response) -> SseReader {
        SseReader {
            res,
            buf: String::new(),
            comments: 0,
        }
    }

    /// The next event; `None` when the server ends the stream. Fails the test after 20 s of
    /// silence.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut ev = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = v.parse().ok();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = v.to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                        any = true;
                    }
                }
                if !any {
                    continue;
                }
                ev.data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(ev);
            }
            let chunk = tokio::time::timeout(PATIENCE, self.res.chunk())
                .await
                .expect("the stream went silent")
                .expect("reading the stream");
            match chunk {
                Some(b) => self.buf.push_str(std::str::from_utf8(&b).expect("utf-8")),
                None => return None,
            }
        }
    }

    /// Every event up to the end of the stream.
    pub async fn rest(&mut self) -> Vec<SseEvent> {
        let mut out = vec![];
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}
