//! Execution workloads against the release binary and a mock provider on 127.0.0.1 (the
//! testkit's, speaking OpenAI's SSE):
//!
//! - `throughput`: N executions created over 64 connections against a provider that answers at
//!   once; executions/s from the first create to the last one finished.
//! - `latency`: executions created one at a time; the time from sending the create to the
//!   provider receiving the call, p50 and p99.
//! - `concurrency`: N executions against a provider that takes 1 s each; wall time until all
//!   finished and the server's peak RSS.
//! - agent routes: `GET /agents/{id}`, `GET /agents` and `POST /agents` at 64 connections,
//!   closed loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_testkit::mock::{MockProvider, Reply};
use serde_json::{Value, json};

use crate::load::{self, Target};
use crate::server::{Server, quantiles, summary, temp_dir};
use crate::{credentials, ms, report};

/// Where the server keeps its data: SQLite in its data directory, or a PostgreSQL URL.
#[derive(Clone)]
pub struct Db {
    pub postgres: Option<String>,
}

impl Db {
    pub(crate) fn label(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// A server on a fresh database (PostgreSQL: a new database made with `createdb`).
    pub(crate) fn server(
        &self,
        bin: &str,
        tag: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let env = self.fresh(tag, env)?;
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::spawn(bin, temp_dir(tag), port, &env)
    }

    /// The environment for a server on a fresh database (PostgreSQL: a new database made with
    /// `createdb`), with `env` added; start the server (again) with it.
    pub(crate) fn fresh(
        &self,
        tag: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("AGENTRY_RATE_LIMIT_API".into(), "4000000000".into()));
        if let Some(admin) = &self.postgres {
            static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("agentry_bench_{}_{n}_{tag}", std::process::id());
            let status = std::process::Command::new("createdb")
                .args(["-h", "127.0.0.1", "-U", "postgres", &name])
                .status()?;
            anyhow::ensure!(status.success(), "createdb {name} failed");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            env.push(("AGENTRY_DATABASE_URL".into(), format!("{base}/{name}")));
        }
        Ok(env)
    }

    /// Drops the PostgreSQL databases this process made (their servers must have stopped).
    pub(crate) fn drop_databases(&self) -> anyhow::Result<()> {
        if self.postgres.is_none() {
            return Ok(());
        }
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-Atc"])
            .arg(format!(
                "SELECT datname FROM pg_database WHERE datname LIKE 'agentry\\_bench\\_{}\\_%'",
                std::process::id()
            ))
            .output()?;
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            std::process::Command::new("dropdb")
                .args(["-h", "127.0.0.1", "-U", "postgres", "--force", name])
                .status()?;
        }
        Ok(())
    }
}

pub(crate) struct Setup {
    pub(crate) server: Server,
    pub(crate) token: String,
    pub(crate) agent: String,
    pub(crate) http: reqwest::Client,
}

/// Adds an `openai` provider at `mock` and an agent on it (`agent` plus its `provider_id`);
/// returns the agent.
pub(crate) async fn agent_on_mock(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    mock: &MockProvider,
    mut agent: Value,
) -> anyhow::Result<Value> {
    let p: Value = http
        .post(server.url("/api/v1/providers"))
        .bearer_auth(token)
        .json(
            &json!({"name": "mock", "kind": "openai", "base_url": mock.openai_base(),
                      "api_key": "sk-bench", "default_model": "mock-model"}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    agent["provider_id"] = p["id"].clone();
    Ok(http
        .post(server.url("/api/v1/agents"))
        .bearer_auth(token)
        .json(&agent)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// A ready server with a user, an `openai` provider at the mock and an agent on it.
pub(crate) async fn setup(
    db: &Db,
    bin: &str,
    tag: &str,
    port: u16,
    mock: &MockProvider,
    env: &[(&str, &str)],
) -> anyhow::Result<Setup> {
    let server = db.server(bin, tag, port, env)?;
    server.wait_ready(Instant::now()).await?;
    let (token, _) = credentials(&server).await?;
    let http = reqwest::Client::new();
    let a = agent_on_mock(
        &http,
        &server,
        &token,
        mock,
        json!({"name": "Bench agent", "max_retries": 0}),
    )
    .await?;
    Ok(Setup {
        server,
        token,
        agent: a["id"].as_str().unwrap_or_default().to_string(),
        http,
    })
}

impl Setup {
    /// Creates `n` executions over `connections` concurrent clients; returns when all are
    /// accepted.
    async fn create(&self, n: usize, connections: usize) -> anyhow::Result<()> {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..connections {
            let (http, url, token, agent, next) = (
                self.http.clone(),
                self.server.url("/api/v1/executions"),
                self.token.clone(),
                self.agent.clone(),
                next.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return anyhow::Ok(());
                    }
                    http.post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"agent_id": agent, "input": format!("job {i}")}))
                        .send()
                        .await?
                        .error_for_status()?;
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }

    /// Waits until `n` executions of the agent have finished; returns how many succeeded.
    pub(crate) async fn wait_finished(&self, n: i64, within: Duration) -> anyhow::Result<i64> {
        let deadline = Instant::now() + within;
        loop {
            let s: Value = self
                .http
                .get(
                    self.server
                        .url(&format!("/api/v1/agents/{}/stats", self.agent)),
                )
                .bearer_auth(&self.token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let by = &s["by_status"];
            let done: i64 = ["success", "failed", "timeout", "cancelled"]
                .iter()
                .map(|k| by[k].as_i64().unwrap_or(0))
                .sum();
            if done >= n {
                return Ok(by["success"].as_i64().unwrap_or(0));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {done} of {n} finished: {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Executions per second, first create to last finish; `runs` runs on fresh databases.
pub async fn throughput(db: &Db, bin: &str, n: usize, runs: usize) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    let mut rates = vec![];
    let mut accept = vec![];
    for run in 0..runs {
        let s = setup(
            db,
            bin,
            &format!("tput{run}"),
            18_800 + run as u16,
            &mock,
            &[],
        )
        .await?;
        let started = Instant::now();
        s.create(n, 64).await?;
        accept.push(n as f64 / started.elapsed().as_secs_f64());
        let ok = s.wait_finished(n as i64, Duration::from_secs(600)).await?;
        anyhow::ensure!(ok == n as i64, "{ok} of {n} succeeded");
        rates.push(n as f64 / started.elapsed().as_secs_f64());
    }
    Ok(json!({
        "database": db.label(),
        "executions": n,
        "executions_per_s": summary(rates),
        "creates_accepted_per_s": summary(accept),
        "note": "(median, min, max) of runs on fresh databases; 64 client connections; mock answers at once over SSE; release build; server, mock and client on one 2-vCPU machine",
    }))
}

/// Create-to-provider latency: executions sent one at a time; the time from sending the
/// create until the provider received the call.
pub async fn latency(db: &Db, bin: &str, n: usize) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    let s = setup(db, bin, "latency", 18_900, &mock, &[]).await?;
    let mut lat = vec![];
    for i in 0..n + 20 {
        let before = mock.calls();
        let sent = Instant::now();
        s.http
            .post(s.server.url("/api/v1/executions"))
            .bearer_auth(&s.token)
            .json(&json!({"agent_id": s.agent, "input": format!("job {i}")}))
            .send()
            .await?
            .error_for_status()?;
        // Wait for the call to reach the provider.
        let deadline = Instant::now() + Duration::from_secs(10);
        while mock.calls() == before {
            anyhow::ensure!(Instant::now() < deadline, "the call never came");
            tokio::task::yield_now().await;
        }
        let at = mock
            .requests()
            .last()
            .map(|r| r.at)
            .unwrap_or_else(Instant::now);
        if i >= 20 {
            lat.push(ms(at.saturating_duration_since(sent)));
        }
    }
    Ok(json!({
        "database": db.label(),
        "samples": n,
        "create_to_provider_ms": quantiles(&mut lat),
        "note": "one execution at a time after 20 warm-up; from sending POST /executions to the mock having read the provider request",
    }))
}

/// `n` executions against a provider that takes 1 s; wall time to all finished and peak RSS.
pub async fn concurrency(
    db: &Db,
    bin: &str,
    n: usize,
    worker_concurrency: usize,
) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    mock.set_default(Reply::Delay(
        Duration::from_secs(1),
        Box::new(Reply::text("slow answer")),
    ));
    let wc = worker_concurrency.to_string();
    let s = setup(
        db,
        bin,
        "concurrency",
        18_950,
        &mock,
        &[
            ("AGENTRY_WORKER_CONCURRENCY", &wc),
            ("AGENTRY_ORG_CONCURRENCY", &wc),
        ],
    )
    .await?;
    let (rss_before, _) = s.server.memory_kb();
    let started = Instant::now();
    s.create(n, 64).await?;
    let accepted = started.elapsed();
    let ok = s.wait_finished(n as i64, Duration::from_secs(600)).await?;
    let wall = started.elapsed();
    let (rss_after, hwm) = s.server.memory_kb();
    Ok(json!({
        "database": db.label(),
        "executions": n,
        "succeeded": ok,
        "worker_concurrency": worker_concurrency,
        "all_accepted_s": accepted.as_secs_f64(),
        "wall_s_to_all_finished": wall.as_secs_f64(),
        "ideal_wall_s": (n as f64 / worker_concurrency as f64).ceil(),
        "rss_mb_before": rss_before as f64 / 1024.0,
        "rss_mb_after": rss_after as f64 / 1024.0,
        "peak_rss_mb": hwm as f64 / 1024.0,
        "note": "mock provider answers each call after 1 s; one run",
    }))
}

/// `GET /agents/{id}`, `GET /agents` (20 agents) and `POST /agents`, closed loop at 64
/// connections.
pub async fn agent_routes(db: &Db, bin: &str, seconds: u64, runs: usize) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    let s = setup(db, bin, "agents", 18_990, &mock, &[]).await?;
    for i in 0..19 {
        s.http
            .post(s.server.url("/api/v1/agents"))
            .bearer_auth(&s.token)
            .json(&json!({"name": format!("Agent {i}"), "instructions": "Be helpful."}))
            .send()
            .await?
            .error_for_status()?;
    }
    let addr = format!("127.0.0.1:{}", s.server.port).parse()?;
    let targets = [
        (
            "get_agent",
            Target::get_with_bearer(addr, &format!("/api/v1/agents/{}", s.agent), &s.token),
        ),
        (
            "list_agents",
            Target::get_with_bearer(addr, "/api/v1/agents?limit=20", &s.token),
        ),
        (
            "create_agent",
            Target::post_json_with_bearer(
                addr,
                "/api/v1/agents",
                &s.token,
                r#"{"name":"Load agent","instructions":"Be helpful.","temperature":0.3}"#,
            ),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, t) in &targets {
        load::run(t, 64, Duration::from_secs(2), None).await?;
        let mut rs = vec![];
        for _ in 0..runs {
            rs.push(load::run(t, 64, Duration::from_secs(seconds), None).await?);
        }
        out.insert(name.to_string(), report(rs));
    }
    Ok(json!({
        "database": db.label(),
        "connections": 64,
        "results": out,
        "note": "(median, min, max) over runs; closed loop; JWT auth",
    }))
}
