//! A small HTTP/1.1 load generator: keep-alive connections, one request in flight on each.
//!
//! Closed loop (`rate = None`): every connection sends its next request as soon as the last
//! answer is read; this measures maximum throughput, and its latencies hide queueing.
//! Open loop (`rate = Some(r)`): request `k` of the whole run is due at `start + k / r`, spread
//! round-robin over the connections, and its latency is measured from that due time, so a
//! server that falls behind shows it in the percentiles instead of slowing the generator down.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to send: a complete HTTP/1.1 request, sent as is on every turn.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub request: Vec<u8>,
}

impl Target {
    /// A `GET path` with an `Authorization: Bearer` header.
    pub fn get_with_bearer(addr: SocketAddr, path: &str, token: &str) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Accept: application/json\r\n\r\n"
        )
        .into_bytes();
        Target { addr, request }
    }

    /// A `POST path` with a JSON body and an `Authorization: Bearer` header.
    pub fn post_json_with_bearer(addr: SocketAddr, path: &str, token: &str, body: &str) -> Self {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Target { addr, request }
    }
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: u64,
    pub non_2xx: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of every successful request, microseconds.
    pub latencies_us: Vec<u32>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0..=1) of the latencies, in milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Runs `connections` connections against `target` for `duration`.
pub async fn run(
    target: &Target,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
) -> anyhow::Result<Outcome> {
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let target = target.clone();
        let schedule = rate.map(|r| Schedule {
            start,
            interval: Duration::from_secs_f64(connections as f64 / r),
            offset: Duration::from_secs_f64(i as f64 / r),
        });
        tasks.push(tokio::spawn(async move {
            connection(&target, start, end, schedule).await
        }));
    }
    let mut total = Outcome::default();
    for t in tasks {
        let o = t.await??;
        total.ok += o.ok;
        total.non_2xx += o.non_2xx;
        total.errors += o.errors;
        total.latencies_us.extend(o.latencies_us);
    }
    total.elapsed = duration;
    Ok(total)
}

#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    interval: Duration,
    offset: Duration,
}

async fn connection(
    target: &Target,
    start: Instant,
    end: Instant,
    schedule: Option<Schedule>,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let mut stream = connect(target.addr).await?;
    let mut buf = Vec::with_capacity(4096);
    tokio::time::sleep_until(start.into()).await;
    let mut k: u32 = 0;
    loop {
        let due = match schedule {
            Some(s) => {
                let due = s.start + s.offset + s.interval * k;
                k += 1;
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        match exchange(&mut stream, &target.request, &mut buf).await {
            Ok(status) if (200..300).contains(&status) => {
                // Answers that arrive after the end are not counted in the throughput.
                let done = Instant::now();
                if done <= end {
                    out.ok += 1;
                    let us = done.duration_since(due).as_micros();
                    out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Ok(_) => out.non_2xx += 1,
            Err(_) => {
                out.errors += 1;
                stream = connect(target.addr).await?;
                buf.clear();
            }
        }
    }
    Ok(out)
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Writes one request and reads one whole response; returns its status code.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    stream.write_all(request).await?;
    buf.clear();
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        read_more(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| anyhow::anyhow!("response without content-length"))?;
    while buf.len() < head_end + length {
        read_more(stream, buf).await?;
    }
    anyhow::ensure!(
        buf.len() == head_end + length,
        "unexpected bytes after the response"
    );
    Ok(status)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    anyhow::ensure!(n > 0, "connection closed");
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
