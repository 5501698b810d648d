//! `agentry-bench report`: every workload on SQLite and (with `--postgres`) on PostgreSQL, one
//! after another, written to one directory as `report.json` (every figure as the workloads
//! printed it, with the machine and the versions), `report.md` (the figures that matter, each
//! with how it was measured) and PNG plots of latency against load for executions and streams.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_testkit::mock::MockProvider;
use serde_json::{Value, json};

use crate::executions::{self, Db, setup};
use crate::plot::{Chart, Series};
use crate::server::quantiles;
use crate::{auth_me, live, startup};

/// How much work each workload does: `full` for figures worth keeping, `quick` to check the
/// harness itself in a minute or two.
pub struct Scale {
    runs: usize,
    seconds: u64,
    executions: usize,
    latency_samples: usize,
    concurrency: usize,
    ws_connections: usize,
    fanout: (usize, usize),
    stream_points: &'static [usize],
    load_rates: &'static [f64],
    load_seconds: u64,
}

impl Scale {
    pub fn new(quick: bool) -> Self {
        if quick {
            Scale {
                runs: 1,
                seconds: 1,
                executions: 200,
                latency_samples: 20,
                concurrency: 100,
                ws_connections: 200,
                fanout: (50, 20),
                stream_points: &[1, 10],
                load_rates: &[20.0, 50.0],
                load_seconds: 2,
            }
        } else {
            Scale {
                runs: 3,
                seconds: 5,
                executions: 3_000,
                latency_samples: 200,
                concurrency: 2_000,
                ws_connections: 10_000,
                fanout: (1_000, 200),
                stream_points: &[1, 50, 100, 200],
                load_rates: &[50.0, 100.0, 200.0, 300.0, 400.0, 600.0],
                load_seconds: 5,
            }
        }
    }
}

pub async fn run(
    bin: &str,
    postgres: Option<String>,
    out: &Path,
    scale: Scale,
) -> anyhow::Result<Value> {
    std::fs::create_dir_all(out)?;
    let mut dbs = vec![Db { postgres: None }];
    if let Some(url) = postgres {
        dbs.push(Db {
            postgres: Some(url),
        });
    }
    let started = Instant::now();
    let mut by_db = serde_json::Map::new();
    for db in &dbs {
        let mut w = serde_json::Map::new();
        let step = |name: &str| {
            eprintln!(
                "[{:>5.0} s] {} {name}",
                started.elapsed().as_secs_f64(),
                db.label()
            )
        };
        if db.postgres.is_none() {
            step("startup");
            w.insert("startup".into(), startup(bin).await?);
        }
        step("auth-me");
        w.insert(
            "auth_me".into(),
            auth_me(
                db,
                bin,
                64,
                Duration::from_secs(scale.seconds),
                scale.runs,
                5000.0,
            )
            .await?,
        );
        step("agent-routes");
        w.insert(
            "agent_routes".into(),
            executions::agent_routes(db, bin, scale.seconds, scale.runs).await?,
        );
        step("exec-throughput");
        w.insert(
            "exec_throughput".into(),
            executions::throughput(db, bin, scale.executions, scale.runs).await?,
        );
        step("exec-latency");
        w.insert(
            "exec_latency".into(),
            executions::latency(db, bin, scale.latency_samples).await?,
        );
        step("exec-concurrency");
        w.insert(
            "exec_concurrency".into(),
            executions::concurrency(db, bin, scale.concurrency, 256).await?,
        );
        step("exec-load");
        w.insert(
            "exec_load".into(),
            exec_load(db, bin, scale.load_rates, scale.load_seconds).await?,
        );
        let mut points = vec![];
        for &n in scale.stream_points {
            step(&format!("stream-overhead {n}"));
            points.push(live::stream_overhead(db, bin, n, 2, scale.runs.min(2)).await?);
        }
        w.insert("stream_overhead".into(), Value::Array(points));
        step("ws-memory");
        w.insert(
            "ws_memory".into(),
            live::ws_memory(db, bin, scale.ws_connections, scale.runs).await?,
        );
        step("ws-fanout");
        w.insert(
            "ws_fanout".into(),
            live::ws_fanout(db, bin, scale.fanout.0, scale.fanout.1, scale.runs).await?,
        );
        by_db.insert(db.label().into(), Value::Object(w));
        db.drop_databases()?;
    }
    let report = json!({
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "took_s": started.elapsed().as_secs(),
        "machine": machine(),
        "versions": versions(bin),
        "results": by_db,
    });
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    render(out)?;
    Ok(json!({"written": out.display().to_string(), "took_s": started.elapsed().as_secs()}))
}

/// Writes `report.md` and the plots from the `report.json` in `out`.
pub fn render(out: &Path) -> anyhow::Result<Value> {
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json"))?)?;
    let plots = plots(&report);
    for (file, chart) in &plots {
        std::fs::write(out.join(file), chart.png()?)?;
    }
    std::fs::write(out.join("report.md"), markdown(&report, &plots))?;
    Ok(json!({"rendered": out.display().to_string()}))
}

/// Executions offered open-loop at each rate for `seconds`; for each, the time from create to
/// finished as the server recorded it (`created_at` → `completed_at`), p50 and p99, and the
/// time a create took to answer. A server per database; each rate starts once the previous
/// rate's executions have all finished.
async fn exec_load(db: &Db, bin: &str, rates: &[f64], seconds: u64) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    let s = Arc::new(setup(db, bin, "load", 18_960, &mock, &[]).await?);
    let mut points = vec![];
    let mut total = 0i64;
    for &rate in rates {
        let n = (rate * seconds as f64) as usize;
        let gap = Duration::from_secs_f64(1.0 / rate);
        let begin = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            tokio::time::sleep_until(begin + gap * i as u32).await;
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let r: Value = s
                    .http
                    .post(s.server.url("/api/v1/executions"))
                    .bearer_auth(&s.token)
                    .json(&json!({"agent_id": s.agent, "input": format!("job {i}")}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let took = sent.elapsed().as_secs_f64() * 1000.0;
                anyhow::Ok((r["id"].as_str().unwrap_or_default().to_string(), took))
            }));
        }
        let mut ids = vec![];
        let mut create_ms = vec![];
        for t in tasks {
            let (id, ms) = t.await??;
            ids.push(id);
            create_ms.push(ms);
        }
        let achieved = n as f64 / begin.elapsed().as_secs_f64();
        total += n as i64;
        s.wait_finished(total, Duration::from_secs(600)).await?;
        let mut e2e = vec![];
        let mut queued = vec![];
        for chunk in ids.chunks(32) {
            let got = futures_util::future::join_all(chunk.iter().map(|id| {
                let s = s.clone();
                async move {
                    let e: Value = s
                        .http
                        .get(s.server.url(&format!("/api/v1/executions/{id}")))
                        .bearer_auth(&s.token)
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    anyhow::Ok(e)
                }
            }))
            .await;
            for e in got {
                let e = e?;
                let at = |k: &str| {
                    e[k].as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                };
                if let (Some(c), Some(st), Some(end)) =
                    (at("created_at"), at("started_at"), at("completed_at"))
                {
                    e2e.push((end - c).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                    queued.push((st - c).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                }
            }
        }
        anyhow::ensure!(
            e2e.len() == n,
            "{} of {n} executions had all their times",
            e2e.len()
        );
        points.push(json!({
            "offered_per_s": rate,
            "sent_per_s": achieved,
            "executions": n,
            "create_to_finished_ms": quantiles(&mut e2e),
            "create_to_started_ms": quantiles(&mut queued),
            "create_answered_ms": quantiles(&mut create_ms),
        }));
    }
    Ok(json!({
        "database": db.label(),
        "seconds_per_rate": seconds,
        "points": points,
        "note": "open loop: creates sent at a fixed rate, each on its own task; times from the \
                 server's created_at, started_at and completed_at; the mock answers at once",
    }))
}

fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gb": (mem_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "note": "server, database, mock provider and load generator all on this machine",
    })
}

fn versions(bin: &str) -> Value {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let dirty = !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    json!({
        "agentry": run(bin, &["--version"]),
        "binary": bin,
        "build": if bin.contains("release") { "release" } else { "debug" },
        "commit": format!("{}{}", run("git", &["rev-parse", "--short", "HEAD"]), if dirty { "+changes" } else { "" }),
        "rustc": run("rustc", &["-V"]),
        "postgres": run("psql", &["-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version"]),
        "sqlite": "bundled with sqlx (libsqlite3-sys)",
    })
}

/// Latency against load: executions (create → finished by offered rate) and streams (time
/// added to the first token by concurrent streams).
fn plots(report: &Value) -> Vec<(String, Chart)> {
    let mut exec = vec![];
    let mut stream = vec![];
    for (db, w) in report["results"].as_object().into_iter().flatten() {
        let pts = |q: &str| -> Vec<(f64, f64)> {
            w["exec_load"]["points"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["offered_per_s"].as_f64().unwrap_or(0.0),
                        p["create_to_finished_ms"][q].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        };
        for (q, dashed) in [("p50", false), ("p99", true)] {
            exec.push(Series {
                name: format!("{db} {q}"),
                points: pts(q),
                dashed,
            });
        }
        for (q, dashed) in [("p50", false), ("p99", true)] {
            stream.push(Series {
                name: format!("{db} {q}"),
                points: w["stream_overhead"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        (
                            p["concurrent_streams"].as_f64().unwrap_or(0.0),
                            p[format!("added_first_token_{q}_ms")][0]
                                .as_f64()
                                .unwrap_or(0.0),
                        )
                    })
                    .collect(),
                dashed,
            });
        }
    }
    vec![
        (
            "exec-latency-vs-load.png".into(),
            Chart {
                title: "Execution: create to finished, by offered load".into(),
                x_label: "executions offered per second".into(),
                y_label: "latency (ms)".into(),
                series: exec,
            },
        ),
        (
            "stream-first-token-vs-streams.png".into(),
            Chart {
                title: "Streaming: time added to the first token".into(),
                x_label: "concurrent streams".into(),
                y_label: "added latency (ms)".into(),
                series: stream,
            },
        ),
    ]
}

/// One (median, min, max) triple as `median (min–max)`.
fn mmm(v: &Value, digits: usize) -> String {
    match (v[0].as_f64(), v[1].as_f64(), v[2].as_f64()) {
        (Some(m), Some(lo), Some(hi)) if lo == hi => format!("{m:.digits$}"),
        (Some(m), Some(lo), Some(hi)) => format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})"),
        _ => v.as_f64().map_or("—".into(), |x| format!("{x:.digits$}")),
    }
}

fn markdown(r: &Value, plots: &[(String, Chart)]) -> String {
    let mut dbs: Vec<&String> = r["results"]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    dbs.sort_by_key(|d| d.as_str() != "sqlite");
    let m = &r["machine"];
    let v = &r["versions"];
    let mut md = format!(
        "# Agentry benchmark report\n\nGenerated {} in {} s by `agentry-bench report`.\n\n\
         **Machine**: {} × {}, {} GB RAM, Linux {}. Server, database, mock provider and load \
         generator share it, so every figure is a lower bound of what the server alone does.\n\n\
         **Versions**: {} ({} build, commit {}), {}, PostgreSQL {}, SQLite {}.\n\n\
         Figures are the median of several runs with (min–max) beside it unless a row says \
         otherwise; every run starts a fresh server on a fresh database (PostgreSQL: a new \
         database from `createdb`). The LLM provider is the testkit's mock on 127.0.0.1 \
         speaking OpenAI's streamed chat completions, answering at once unless said. Raw \
         figures: `report.json`. How to take figures: `shared/BENCH.md`.\n\n",
        r["generated_at"].as_str().unwrap_or(""),
        r["took_s"],
        m["cpus"],
        m["cpu"].as_str().unwrap_or(""),
        m["memory_gb"],
        m["kernel"].as_str().unwrap_or(""),
        v["agentry"].as_str().unwrap_or(""),
        v["build"].as_str().unwrap_or(""),
        v["commit"].as_str().unwrap_or(""),
        v["rustc"].as_str().unwrap_or(""),
        v["postgres"].as_str().unwrap_or(""),
        v["sqlite"].as_str().unwrap_or(""),
    );
    md.push_str(&format!(
        "| Figure | How it is measured | {} |\n|---|---|{}\n",
        dbs.iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(dbs.len())
    ));
    let rows: &[(&str, &str, &str, usize)] = &[
        (
            "Startup to ready, fresh directory (ms)",
            "spawn to the first 200 from /readyz, migrations and secrets included; 5 runs",
            "/startup/startup_first_ms",
            0,
        ),
        (
            "Startup to ready, migrated (ms)",
            "the same on the directory of the run before",
            "/startup/startup_migrated_ms",
            0,
        ),
        (
            "Idle RSS (MB)",
            "VmRSS one second after ready",
            "/startup/idle_rss_mb",
            1,
        ),
        (
            "GET /auth/me, JWT (req/s)",
            "closed loop, 64 connections",
            "/auth_me/results/jwt/closed_loop/requests_per_s",
            0,
        ),
        (
            "GET /auth/me, API key (req/s)",
            "closed loop, 64 connections",
            "/auth_me/results/api_key/closed_loop/requests_per_s",
            0,
        ),
        (
            "GET /auth/me at 5,000/s, p99 (ms)",
            "open loop, JWT",
            "/auth_me/results/jwt/open_loop/p99_ms",
            2,
        ),
        (
            "GET /agents/{id} (req/s)",
            "closed loop, 64 connections",
            "/agent_routes/results/get_agent/requests_per_s",
            0,
        ),
        (
            "GET /agents?limit=20 (req/s)",
            "closed loop, 64 connections, 20 agents",
            "/agent_routes/results/list_agents/requests_per_s",
            0,
        ),
        (
            "POST /agents (req/s)",
            "closed loop, 64 connections",
            "/agent_routes/results/create_agent/requests_per_s",
            0,
        ),
        (
            "POST /agents p99 (ms)",
            "closed loop, 64 connections",
            "/agent_routes/results/create_agent/p99_ms",
            1,
        ),
        (
            "Executions/s",
            "N executions created over 64 connections; first create to last finished",
            "/exec_throughput/executions_per_s",
            0,
        ),
        (
            "Creates accepted/s",
            "the same run: N over the time to accept them all",
            "/exec_throughput/creates_accepted_per_s",
            0,
        ),
        (
            "Create → provider p50 (ms)",
            "one execution at a time, after 20 warm-up: sending the create to the mock reading the call",
            "/exec_latency/create_to_provider_ms/p50",
            1,
        ),
        (
            "Create → provider p99 (ms)",
            "the same",
            "/exec_latency/create_to_provider_ms/p99",
            1,
        ),
        (
            "Slow executions: wall time (s)",
            "N executions the mock answers after 1 s each, 256 in flight; one run",
            "/exec_concurrency/wall_s_to_all_finished",
            1,
        ),
        (
            "Slow executions: peak RSS (MB)",
            "the same run",
            "/exec_concurrency/peak_rss_mb",
            0,
        ),
        (
            "Memory per idle WebSocket (KiB)",
            "VmRSS with N authenticated idle sockets open minus before, per socket",
            "/ws_memory/kib_per_idle_connection",
            1,
        ),
        (
            "WebSocket fan-out (events/s)",
            "subscribers on one conversation, messages posted by 8 clients; first post to last delivery",
            "/ws_fanout/delivered_events_per_s",
            0,
        ),
    ];
    for (name, how, ptr, digits) in rows {
        let cells: Vec<String> = dbs
            .iter()
            .map(|d| {
                r["results"][d.as_str()]
                    .pointer(ptr)
                    .map_or("—".into(), |x| mmm(x, *digits))
            })
            .collect();
        md.push_str(&format!("| {name} | {how} | {} |\n", cells.join(" | ")));
    }
    md.push_str(
        "\n## Executions: latency against load\n\nCreates sent open-loop at each rate (each on its \
         own task, so a slow answer does not slow the sender); the time from the server's \
         `created_at` to `completed_at` of each execution, and to `started_at` (queueing). \
         Each rate starts once the previous one has drained.\n\n\
         | Database | Offered/s | Sent/s | Create → finished p50 / p99 (ms) | Create → started p50 / p99 (ms) | Create answered p50 / p99 (ms) |\n\
         |---|---|---|---|---|---|\n",
    );
    for d in &dbs {
        for p in r["results"][d.as_str()]["exec_load"]["points"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let pq = |k: &str| {
                format!(
                    "{:.1} / {:.1}",
                    p[k]["p50"].as_f64().unwrap_or(0.0),
                    p[k]["p99"].as_f64().unwrap_or(0.0)
                )
            };
            md.push_str(&format!(
                "| {d} | {} | {:.0} | {} | {} | {} |\n",
                p["offered_per_s"],
                p["sent_per_s"].as_f64().unwrap_or(0.0),
                pq("create_to_finished_ms"),
                pq("create_to_started_ms"),
                pq("create_answered_ms"),
            ));
        }
    }
    md.push_str(
        "\n## Streaming: time added to the first token\n\nN clients at once, each asking for a \
         reply the mock streams as 50 tokens 20 ms apart, their starts spread over one reply's \
         length; first directly from the mock, then through Agentry (`POST \
         /conversations/{id}/messages` with `Accept: text/event-stream`, to the first `delta`), \
         alternated round by round after a warm-up round. The figure is Agentry − direct, \
         median (min–max) over rounds.\n\n\
         | Database | Streams | Added p50 (ms) | Added p99 (ms) | Server peak RSS (MB) |\n|---|---|---|---|---|\n",
    );
    for d in &dbs {
        for p in r["results"][d.as_str()]["stream_overhead"]
            .as_array()
            .into_iter()
            .flatten()
        {
            md.push_str(&format!(
                "| {d} | {} | {} | {} | {:.0} |\n",
                p["concurrent_streams"],
                mmm(&p["added_first_token_p50_ms"], 1),
                mmm(&p["added_first_token_p99_ms"], 1),
                p["server_peak_rss_mb"].as_f64().unwrap_or(0.0),
            ));
        }
    }
    md.push_str("\n## Plots\n\n");
    for (file, chart) in plots {
        md.push_str(&format!("![{}]({file})\n\n", chart.title));
    }
    md
}
