//! Agentry's benchmark harness. Each figure starts the release binary on a fresh SQLite data
//! directory and prints JSON: medians with min and max (see `../shared/BENCH.md`).
//!
//! ```text
//! cargo build --release --workspace
//! target/release/agentry-bench startup  [--bin target/release/agentry]
//! target/release/agentry-bench auth-me  [--bin ...] [--connections 64] [--seconds 10]
//!                                       [--runs 3] [--rate 5000] [--postgres URL]
//! target/release/agentry-bench load     --addr 127.0.0.1:8080 --token T [--path ...]
//!                                       [--connections 64] [--seconds 10] [--rate R]
//! target/release/agentry-bench report           [--postgres URL] [--out bench/results/report] [--quick true]
//! target/release/agentry-bench render           [--out bench/results/report]   (report.md and plots again from report.json)
//! target/release/agentry-bench crash-drill      [--kills 10] [--rate 20] [--postgres URL]
//! target/release/agentry-bench fault-drill      [--seconds 20] [--rate 20] [--postgres URL]
//! target/release/agentry-bench soak             [--seconds 600] [--rate 20] [--follow true] [--postgres URL]
//! target/release/agentry-bench exec-throughput  [--executions 10000] [--runs 3] [--postgres URL]
//! target/release/agentry-bench exec-latency     [--executions 200] [--postgres URL]
//! target/release/agentry-bench exec-concurrency [--executions 2000] [--workers 256] [--postgres URL]
//! target/release/agentry-bench agent-routes     [--seconds 10] [--runs 3] [--postgres URL]
//! target/release/agentry-bench stream-overhead  [--streams 200] [--per-client 3] [--rounds 3] [--postgres URL]
//! target/release/agentry-bench ws-memory        [--connections 10000] [--runs 3] [--postgres URL]
//! target/release/agentry-bench ws-fanout        [--subscribers 1000] [--events 200] [--runs 3] [--postgres URL]
//! ```
//!
//! `--postgres` takes the admin URL of a PostgreSQL server; each run makes a fresh database on
//! it with `createdb`.

mod drill;
mod executions;
mod live;
mod load;
mod plot;
mod report;
mod server;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::load::{Outcome, Target};
use crate::server::{Server, summary, temp_dir};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let mut opts = HashMap::new();
    while let Some(k) = args.next() {
        let k = k
            .strip_prefix("--")
            .ok_or_else(|| anyhow::anyhow!("expected --option value, got {k:?}"))?
            .to_string();
        let v = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("--{k} needs a value"))?;
        opts.insert(k, v);
    }
    let opt = |k: &str, default: &str| opts.get(k).cloned().unwrap_or_else(|| default.into());
    let bin = opt("bin", "target/release/agentry");
    let db = executions::Db {
        postgres: opts.get("postgres").cloned(),
    };
    let out = match command.as_str() {
        "startup" => startup(&bin).await?,
        "auth-me" => {
            auth_me(
                &db,
                &bin,
                opt("connections", "64").parse()?,
                Duration::from_secs(opt("seconds", "10").parse()?),
                opt("runs", "3").parse()?,
                opt("rate", "5000").parse()?,
            )
            .await?
        }
        // Load against a server that is already running (for profiling it).
        "load" => {
            let target = Target::get_with_bearer(
                opt("addr", "127.0.0.1:8080").parse()?,
                &opt("path", "/api/v1/auth/me"),
                &opt("token", ""),
            );
            let rate = opts.get("rate").map(|r| r.parse()).transpose()?;
            let seconds = Duration::from_secs(opt("seconds", "10").parse()?);
            let connections = opt("connections", "64").parse()?;
            report(vec![load::run(&target, connections, seconds, rate).await?])
        }
        "report" => {
            report::run(
                &bin,
                db.postgres.clone(),
                std::path::Path::new(&opt("out", "bench/results/report")),
                report::Scale::new(opt("quick", "false").parse()?),
            )
            .await?
        }
        "render" => report::render(std::path::Path::new(&opt("out", "bench/results/report")))?,
        "crash-drill" => {
            drill::crash(
                &db,
                &bin,
                opt("kills", "10").parse()?,
                opt("rate", "20").parse()?,
            )
            .await?
        }
        "fault-drill" => {
            drill::fault(
                &db,
                &bin,
                opt("seconds", "20").parse()?,
                opt("rate", "20").parse()?,
            )
            .await?
        }
        "soak" => {
            drill::soak(
                &db,
                &bin,
                opt("seconds", "600").parse()?,
                opt("rate", "20").parse()?,
                opt("follow", "true").parse()?,
            )
            .await?
        }
        "exec-throughput" => {
            executions::throughput(
                &db,
                &bin,
                opt("executions", "10000").parse()?,
                opt("runs", "3").parse()?,
            )
            .await?
        }
        "exec-latency" => executions::latency(&db, &bin, opt("executions", "200").parse()?).await?,
        "exec-concurrency" => {
            executions::concurrency(
                &db,
                &bin,
                opt("executions", "2000").parse()?,
                opt("workers", "256").parse()?,
            )
            .await?
        }
        "agent-routes" => {
            executions::agent_routes(
                &db,
                &bin,
                opt("seconds", "10").parse()?,
                opt("runs", "3").parse()?,
            )
            .await?
        }
        "stream-overhead" => {
            live::stream_overhead(
                &db,
                &bin,
                opt("streams", "200").parse()?,
                opt("per-client", "3").parse()?,
                opt("rounds", "3").parse()?,
            )
            .await?
        }
        "ws-memory" => {
            live::ws_memory(
                &db,
                &bin,
                opt("connections", "10000").parse()?,
                opt("runs", "3").parse()?,
            )
            .await?
        }
        "ws-fanout" => {
            live::ws_fanout(
                &db,
                &bin,
                opt("subscribers", "1000").parse()?,
                opt("events", "200").parse()?,
                opt("runs", "3").parse()?,
            )
            .await?
        }
        other => anyhow::bail!(
            "unknown benchmark {other:?}; use report, render, startup, auth-me, load, exec-throughput, \
             exec-latency, exec-concurrency, agent-routes, stream-overhead, ws-memory or ws-fanout"
        ),
    };
    std::io::Write::write_all(
        &mut std::io::stdout(),
        format!("{}\n", serde_json::to_string_pretty(&out)?).as_bytes(),
    )?;
    Ok(())
}

/// Spawn to the first 200 from `/readyz`, on a fresh directory (secrets and migrations) and
/// again on the migrated one, and the idle RSS one second after ready. Five runs.
pub(crate) async fn startup(bin: &str) -> anyhow::Result<Value> {
    let mut first = vec![];
    let mut warm = vec![];
    let mut rss = vec![];
    for i in 0..5u16 {
        let dir = temp_dir(&format!("startup-{i}"));
        let started = Instant::now();
        let s = Server::spawn(bin, dir.clone(), 18_500 + i, &[])?.keep_dir();
        first.push(ms(s.wait_ready(started).await?));
        drop(s);
        let started = Instant::now();
        let s = Server::spawn(bin, dir, 18_600 + i, &[])?;
        warm.push(ms(s.wait_ready(started).await?));
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.push(s.memory_kb().0 as f64 / 1024.0);
    }
    Ok(json!({
        "startup_first_ms": summary(first),
        "startup_migrated_ms": summary(warm),
        "idle_rss_mb": summary(rss),
        "note": "(median, min, max) of 5 runs; SQLite; release build",
    }))
}

/// `GET /api/v1/auth/me` with a JWT and with an API key: closed-loop maximum throughput at
/// `connections`, then open-loop latency at a fixed `rate`; the two credentials alternate.
pub(crate) async fn auth_me(
    db: &executions::Db,
    bin: &str,
    connections: usize,
    duration: Duration,
    runs: usize,
    rate: f64,
) -> anyhow::Result<Value> {
    let s = db.server(bin, "auth-me", 18_700, &[])?;
    s.wait_ready(Instant::now()).await?;
    let (jwt, key) = credentials(&s).await?;
    let addr = format!("127.0.0.1:{}", s.port).parse()?;
    let targets = [
        (
            "jwt",
            Target::get_with_bearer(addr, "/api/v1/auth/me", &jwt),
        ),
        (
            "api_key",
            Target::get_with_bearer(addr, "/api/v1/auth/me", &key),
        ),
    ];
    // Warm up: connections, caches, the database pool.
    for (_, t) in &targets {
        load::run(t, connections, Duration::from_secs(2), None).await?;
    }
    let mut result = serde_json::Map::new();
    let mut closed: HashMap<&str, Vec<Outcome>> = HashMap::new();
    let mut open: HashMap<&str, Vec<Outcome>> = HashMap::new();
    for _ in 0..runs {
        for (name, t) in &targets {
            closed
                .entry(name)
                .or_default()
                .push(load::run(t, connections, duration, None).await?);
        }
    }
    for _ in 0..runs {
        for (name, t) in &targets {
            open.entry(name)
                .or_default()
                .push(load::run(t, connections, duration, Some(rate)).await?);
        }
    }
    for (name, _) in &targets {
        result.insert(
            name.to_string(),
            json!({
                "closed_loop": report(closed.remove(name).unwrap_or_default()),
                "open_loop": report(open.remove(name).unwrap_or_default()),
            }),
        );
    }
    let (rss, hwm) = s.memory_kb();
    Ok(json!({
        "connections": connections,
        "seconds_per_run": duration.as_secs(),
        "runs": runs,
        "open_loop_rate_rps": rate,
        "results": result,
        "server_rss_mb_after": rss as f64 / 1024.0,
        "server_peak_rss_mb": hwm as f64 / 1024.0,
        "database": db.label(),
        "note": "(median, min, max) over runs; generator on the same machine",
    }))
}

/// Registers a user (whose JWT is one credential) and creates a member API key (the other).
pub(crate) async fn credentials(s: &Server) -> anyhow::Result<(String, String)> {
    let client = reqwest::Client::new();
    let r: Value = client
        .post(s.url("/api/v1/auth/register"))
        .json(
            &json!({"email": "bench@example.com", "password": "correct horse battery",
                      "name": "Bench"}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let jwt = r["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no access token in {r}"))?
        .to_string();
    let k: Value = client
        .post(s.url("/api/v1/api-keys"))
        .bearer_auth(&jwt)
        .json(&json!({"name": "bench", "role": "member"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let key = k["key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no key in {k}"))?
        .to_string();
    Ok((jwt, key))
}

/// Summarises runs: requests/s, p50, p99, p99.9 as (median, min, max), and failures.
pub(crate) fn report(mut runs: Vec<Outcome>) -> Value {
    let rps = runs.iter().map(Outcome::rps).collect();
    let p50 = runs.iter_mut().map(|o| o.quantile_ms(0.50)).collect();
    let p99 = runs.iter_mut().map(|o| o.quantile_ms(0.99)).collect();
    let p999 = runs.iter_mut().map(|o| o.quantile_ms(0.999)).collect();
    json!({
        "requests_per_s": summary(rps),
        "p50_ms": summary(p50),
        "p99_ms": summary(p99),
        "p99_9_ms": summary(p999),
        "non_2xx": runs.iter().map(|o| o.non_2xx).sum::<u64>(),
        "errors": runs.iter().map(|o| o.errors).sum::<u64>(),
    })
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
