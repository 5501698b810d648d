//! A Server-Sent Events reader over a streamed HTTP body.

use bytes::BytesMut;

use crate::{ChatResponse, ProviderError};

/// A provider's stream format: fed the body's chunks until it says the reply has ended, then
/// asked for the reply.
pub(crate) trait StreamRead: Default {
    /// Takes one chunk of the body; `true` once the reply has ended.
    fn feed(
        &mut self,
        chunk: &[u8],
        on_delta: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<bool, ProviderError>;

    /// The reply, or why the stream was not a whole one.
    fn finish(self) -> Result<ChatResponse, ProviderError>;
}

/// Reads a streamed reply in format `R` from a response body.
pub(crate) async fn read_stream<R: StreamRead>(
    mut res: reqwest::Response,
    on_delta: &(dyn Fn(&str) + Send + Sync),
) -> Result<ChatResponse, ProviderError> {
    let mut reader = R::default();
    while let Some(chunk) = res.chunk().await.map_err(ProviderError::from_transport)? {
        if reader.feed(&chunk, on_delta)? {
            break;
        }
    }
    reader.finish()
}

/// Feeds `data` to a reader of format `R` in chunks cut at each `0xFF` (for the fuzzers).
pub(crate) fn read_bytes<R: StreamRead>(data: &[u8]) {
    let mut r = R::default();
    for chunk in data.split(|b| *b == 0xFF) {
        match r.feed(chunk, &|_| {}) {
            Ok(false) => {}
            Ok(true) | Err(_) => break,
        }
    }
    let _ = r.finish();
}

/// One event: its `event:` name (if any) and its `data:` lines joined with newlines.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

/// Splits a byte stream into events. Feed it chunks; take events as they complete.
#[derive(Default)]
pub struct Parser {
    buf: BytesMut,
    name: Option<String>,
    data: Vec<String>,
}

/// The longest line accepted; a provider sending more without a newline is broken.
const MAX_LINE: usize = 8 << 20;

impl Parser {
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ProviderError> {
        self.buf.extend_from_slice(chunk);
        let mut out = vec![];
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line = self.buf.split_to(pos + 1);
            let line = std::str::from_utf8(&line)
                .map_err(|_| ProviderError::fatal("invalid_response", "the stream is not UTF-8"))?
                .trim_end_matches(['\n', '\r']);
            if let Some(ev) = self.line(line) {
                out.push(ev);
            }
        }
        if self.buf.len() > MAX_LINE {
            return Err(ProviderError::fatal(
                "invalid_response",
                "a stream line is longer than 8 MiB",
            ));
        }
        Ok(out)
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.name = None;
                return None;
            }
            return Some(Event {
                name: self.name.take(),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {} // id, retry and unknown fields do not matter here
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = Parser::default();
        let mut got = p.push(b"event: a\ndata: {\"x\"").unwrap();
        assert!(got.is_empty());
        got.extend(
            p.push(b":1}\n\n: ping\n\ndata: two\r\ndata: lines\r\n\r\n")
                .unwrap(),
        );
        assert_eq!(
            got,
            vec![
                Event {
                    name: Some("a".into()),
                    data: "{\"x\":1}".into()
                },
                Event {
                    name: None,
                    data: "two\nlines".into()
                }
            ]
        );
    }
}
