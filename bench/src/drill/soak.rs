//! The soak: a long, mixed load with memory and file descriptors watched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentry_testkit::mock::{MockProvider, Reply};
use serde_json::{Value, json};

use super::free_port;
use crate::credentials;
use crate::executions::{Db, agent_on_mock};
use crate::server::{Server, temp_dir};

/// The soak: `seconds` of mixed load (executions followed on their event streams, reads,
/// lists) while the server's resident memory and open file descriptors are sampled.
/// After the warm-up (the first fifth) they must not keep growing, and the API must answer
/// no 5xx.
pub(crate) async fn soak(
    db: &Db,
    bin: &str,
    seconds: u64,
    rate: u64,
    follow: bool,
) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    mock.set_default(Reply::Paced {
        text: "a steady answer of a few words".into(),
        gap: Duration::from_millis(5),
    });
    let port = free_port()?;
    let env = db.fresh("soak", &[])?;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::spawn(bin, temp_dir("soak"), port, &env)?;
    server.wait_ready(Instant::now()).await?;
    let pid = server.child.id();
    let (token, _) = credentials(&server).await?;
    let http = reqwest::Client::new();
    let agent = agent_on_mock(&http, &server, &token, &mock, json!({"name": "Soaked"})).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let server_errors = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    // Each tick: start an execution and follow it on its stream; read a few things.
    let load = {
        let (http, base, token, agent_id, stop, errors, requests) = (
            http.clone(),
            server.url(""),
            token.clone(),
            agent["id"].clone(),
            stop.clone(),
            server_errors.clone(),
            requests.clone(),
        );
        tokio::spawn(async move {
            let gap = Duration::from_micros(1_000_000 / rate.max(1));
            let mut next = tokio::time::Instant::now();
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                next += gap;
                tokio::time::sleep_until(next).await;
                tick += 1;
                let (http, base, token, agent_id, errors, requests) = (
                    http.clone(),
                    base.clone(),
                    token.clone(),
                    agent_id.clone(),
                    errors.clone(),
                    requests.clone(),
                );
                tokio::spawn(async move {
                    let count = |r: &Result<reqwest::Response, reqwest::Error>| {
                        requests.fetch_add(1, Ordering::Relaxed);
                        if !matches!(r, Ok(r) if !r.status().is_server_error()) {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    };
                    let r = http
                        .post(format!("{base}/api/v1/executions"))
                        .bearer_auth(&token)
                        .json(&json!({"agent_id": agent_id, "input": format!("tick {tick}")}))
                        .send()
                        .await;
                    count(&r);
                    let id = match r {
                        Ok(r) => r
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_string)),
                        Err(_) => None,
                    };
                    if let Some(id) = id.filter(|_| follow) {
                        let r = http
                            .get(format!("{base}/api/v1/executions/{id}/stream"))
                            .bearer_auth(&token)
                            .send()
                            .await;
                        count(&r);
                        if let Ok(r) = r {
                            let _ = tokio::time::timeout(Duration::from_secs(30), r.bytes()).await;
                        }
                    }
                    for path in [
                        "/api/v1/auth/me",
                        "/api/v1/executions?limit=20",
                        "/api/v1/agents",
                    ] {
                        let r = http
                            .get(format!("{base}{path}"))
                            .bearer_auth(&token)
                            .send()
                            .await;
                        count(&r);
                        if let Ok(r) = r {
                            let _ = r.bytes().await;
                        }
                    }
                });
            }
        })
    };
    // Samples: (seconds since start, RSS KiB, of which anonymous KiB, open fds).
    let started = Instant::now();
    let mut samples: Vec<(f64, u64, u64, usize)> = vec![];
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (rss, _) = server.memory_kb();
        let anon = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("RssAnon:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        samples.push((started.elapsed().as_secs_f64(), rss, anon, fds));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Growth: the median of the last fifth against the median just after the warm-up.
    let n = samples.len();
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let fifth = (n / 5).max(1);
    let early = &samples[fifth.min(n)..(2 * fifth).min(n)];
    let late = &samples[n.saturating_sub(fifth)..];
    let rss_early = median(&mut early.iter().map(|s| s.1).collect());
    let rss_late = median(&mut late.iter().map(|s| s.1).collect());
    let fd_early = median(&mut early.iter().map(|s| s.3 as u64).collect());
    let fd_late = median(&mut late.iter().map(|s| s.3 as u64).collect());
    let rss_growth = rss_late as f64 / rss_early.max(1) as f64 - 1.0;
    let errors = server_errors.load(Ordering::Relaxed);
    let ok = errors == 0 && rss_growth <= 0.10 && fd_late <= fd_early + 16;
    Ok(json!({
        "drill": "soak",
        "database": db.label(),
        "passed": ok,
        "seconds": seconds,
        "requests": requests.load(Ordering::Relaxed),
        "followed_on_streams": follow,
        "api_5xx_or_unanswered": errors,
        "provider_calls": mock.calls(),
        "rss_mb": {"after_warmup": rss_early as f64 / 1024.0, "at_end": rss_late as f64 / 1024.0,
                   "growth": rss_growth},
        "open_fds": {"after_warmup": fd_early, "at_end": fd_late},
        "samples": {
            "columns": ["seconds", "rss_kb", "rss_anon_kb", "open_fds"],
            "rows": samples.iter().map(|(t, r, a, f)| json!([t, r, a, f])).collect::<Vec<_>>(),
        },
        "note": format!(
            "{rate} ticks/s; each tick starts an execution (a streamed answer, 5 ms a piece), \
             follows it on its SSE stream and reads /auth/me, a page of executions and the \
             agents; RSS and fds sampled every 5 s; growth compares the median of the last fifth \
             with the median of the second fifth (after warm-up): at most 10% RSS, 16 fds."
        ),
    }))
}
