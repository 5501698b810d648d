//! The drills: a server under load that is killed ([`crash`]), whose provider fails
//! ([`fault`]), or that runs for a long while ([`soak`]). Each prints `"passed"` and its figures.

mod crash;
mod fault;
mod soak;

pub(crate) use crash::crash;
pub(crate) use fault::fault;
pub(crate) use soak::soak;

use std::time::Duration;

use serde_json::Value;

use crate::server::Server;

/// A small pseudo-random source (xorshift), seeded from the clock: the kill moments.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Dice(seed)
    }

    /// A duration between `lo` and `hi`.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = (hi - lo).as_millis() as u64;
        lo + Duration::from_millis(self.0 % span.max(1))
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn get(http: &reqwest::Client, server: &Server, token: &str, path: &str) -> Value {
    match http.get(server.url(path)).bearer_auth(token).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}
