//! A WebSocket client for tests, over a real connection.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How the socket ends: the close code, or `None` when the connection just dropped.
#[derive(Debug, PartialEq)]
pub struct Closed(pub Option<u16>);

const PATIENCE: Duration = Duration::from_secs(20);

impl WsClient {
    /// Connects to `url` (`ws://…`) with these headers; `Err(status)` when the server answers
    /// with an HTTP status instead of switching protocols.
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<WsClient, u16> {
        let mut req = url.into_client_request().expect("request");
        for (k, v) in headers {
            req.headers_mut()
                .insert(http_name(k), v.parse().expect("header value"));
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(WsClient { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("connecting the WebSocket: {e}"),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("sending");
    }

    /// The next JSON message (pings are answered by the library); panics on close or after
    /// 20 s of silence.
    pub async fn next(&mut self) -> Value {
        match self.next_or_close().await {
            Ok(v) => v,
            Err(c) => panic!("the socket closed: {c:?}"),
        }
    }

    /// The next JSON message, or how the socket closed.
    pub async fn next_or_close(&mut self) -> Result<Value, Closed> {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the socket went silent");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Ok(serde_json::from_str(&t).expect("a JSON message"));
                }
                Some(Ok(Message::Close(f))) => return Err(Closed(f.map(|f| u16::from(f.code)))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Closed(None)),
            }
        }
    }

    /// Skips messages until one of `type` (and, for events, of `event`) comes.
    pub async fn next_where(&mut self, f: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next().await;
            if f(&v) {
                return v;
            }
        }
    }

    /// Reads until the socket closes, returning what came and how it closed.
    pub async fn until_closed(&mut self) -> (Vec<Value>, Closed) {
        let mut got = vec![];
        loop {
            match self.next_or_close().await {
                Ok(v) => got.push(v),
                Err(c) => return (got, c),
            }
        }
    }
}

fn http_name(k: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name")
}
