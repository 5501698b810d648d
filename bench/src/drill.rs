//! The crash drill: a steady load of executions that each make two tool calls, while the
//! release binary is killed with SIGKILL at random moments and started again on the same
//! database. At the end every accepted execution must have finished, once, and the provider and
//! the tools must not have been asked again for what the journal had already recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentry_testkit::mock::{MockProvider, Reply};
use agentry_testkit::tool_server::ToolServer;
use serde_json::{Value, json};

use crate::credentials;
use crate::executions::{Db, agent_on_mock};
use crate::server::{Server, temp_dir};

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

pub(crate) async fn crash(db: &Db, bin: &str, kills: usize, rate: u64) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    // Each answer takes a moment, so kills land in the middle of calls as well as between.
    mock.set_default(Reply::Delay(
        Duration::from_millis(50),
        Box::new(Reply::ByToolResults(vec![
            Reply::Tools(vec![("first".into(), json!({"job": "$input"}))]),
            Reply::Tools(vec![("second".into(), json!({"job": "$input"}))]),
            Reply::text("done"),
        ])),
    ));
    let tools = ToolServer::start().await;
    let port = free_port()?;
    let dir = temp_dir("crash-drill");
    let env = db.fresh(
        "crash_drill",
        &[
            ("AGENTRY_LEASE_SECONDS", "2"),
            ("AGENTRY_EGRESS_ALLOW", "127.0.0.1"),
        ],
    )?;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let start = || -> anyhow::Result<Server> {
        Ok(Server::spawn(bin, dir.clone(), port, &env)?.keep_dir())
    };
    let mut server = start()?;
    server.wait_ready(Instant::now()).await?;
    let (token, _) = credentials(&server).await?;
    let http = reqwest::Client::new();
    let tool = |name: &str| {
        json!({"type": "http", "name": name, "description": "A step of the job.", "method": "GET",
               "url": tools.url(&format!("/{name}")),
               "input_schema": {"type": "object", "properties": {"job": {"type": "string"}}}})
    };
    let agent = agent_on_mock(
        &http,
        &server,
        &token,
        &mock,
        json!({"name": "Drilled",
                      "tools": [tool("first"), tool("second")]}),
    )
    .await?;

    // The load: `rate` executions a second, each with its own job name.
    let accepted: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (http, url, token, agent_id) = (
            http.clone(),
            server.url("/api/v1/executions"),
            token.clone(),
            agent["id"].clone(),
        );
        let (accepted, refused, stop) = (accepted.clone(), refused.clone(), stop.clone());
        tokio::spawn(async move {
            let gap = Duration::from_micros(1_000_000 / rate.max(1));
            let mut next = tokio::time::Instant::now();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                next += gap;
                tokio::time::sleep_until(next).await;
                let job = format!("job-{i}");
                i += 1;
                let (http, url, token, agent_id, accepted, refused) = (
                    http.clone(),
                    url.clone(),
                    token.clone(),
                    agent_id.clone(),
                    accepted.clone(),
                    refused.clone(),
                );
                tokio::spawn(async move {
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"agent_id": agent_id, "input": job}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().as_u16() == 202 => {
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            if let Some(id) = v["id"].as_str() {
                                accepted
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .push((job, id.to_string()));
                            }
                        }
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        })
    };

    let mut dice = Dice::new();
    let started = Instant::now();
    let mut restarts = vec![];
    for _ in 0..kills {
        tokio::time::sleep(dice.between(Duration::from_millis(500), Duration::from_secs(3))).await;
        drop(server); // SIGKILL
        let t = Instant::now();
        server = start()?;
        server.wait_ready(t).await?;
        restarts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted = accepted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();

    // Wait for every accepted execution to finish.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut unfinished = accepted.len();
    while Instant::now() < deadline {
        let mut open = 0;
        for status in ["pending", "running", "awaiting_approval"] {
            let v = get(
                &http,
                &server,
                &token,
                &format!("/api/v1/executions?status={status}&limit=200"),
            )
            .await;
            open += v["data"].as_array().map_or(0, Vec::len);
        }
        unfinished = open;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What each accepted execution became.
    let mut statuses: HashMap<String, usize> = HashMap::new();
    let mut resumed = 0;
    let mut resumptions = 0;
    let mut missing = 0;
    for (_, id) in &accepted {
        let e = get(&http, &server, &token, &format!("/api/v1/executions/{id}")).await;
        match e["status"].as_str() {
            Some(s) => *statuses.entry(s.to_string()).or_default() += 1,
            None => missing += 1,
        }
        let attempt = e["attempt"].as_i64().unwrap_or(1);
        if attempt > 1 {
            resumed += 1;
            resumptions += attempt as usize - 1;
        }
    }
    // The audit log: one completion (or failure) per execution.
    let mut ends: HashMap<String, usize> = HashMap::new();
    for kind in [
        "execution.completed",
        "execution.failed",
        "execution.timeout",
    ] {
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/events?type={kind}&limit=200");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = get(&http, &server, &token, &path).await;
            for ev in page["data"].as_array().into_iter().flatten() {
                if let Some(id) = ev["execution_id"].as_str() {
                    *ends.entry(id.to_string()).or_default() += 1;
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
    }
    let ended_twice = ends.values().filter(|n| **n > 1).count();
    let no_end_event = accepted
        .iter()
        .filter(|(_, id)| !ends.contains_key(id))
        .count();
    // Calls made again: the same turn of the same job sent to the model twice, or the same
    // tool called twice for a job. A kill in the middle of a call (or between its answer and
    // its journal entry) makes one legitimately; anything else would be a finished step
    // replayed against the outside world.
    let mut turns: HashMap<(String, usize), usize> = HashMap::new();
    for r in mock.requests() {
        let msgs = r.body["messages"].as_array().cloned().unwrap_or_default();
        let job = msgs
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        let k = msgs.iter().filter(|m| m["role"] == "tool").count();
        *turns.entry((job, k)).or_default() += 1;
    }
    let llm_repeated: usize = turns.values().map(|n| n.saturating_sub(1)).sum();
    let mut tool_repeated = 0;
    for (job, _) in &accepted {
        for name in ["first", "second"] {
            tool_repeated += tools.hits(&format!("/{name}?job={job}")).saturating_sub(1);
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    // Each resumption can repeat at most the one call that was in flight when it died.
    let ok = llm_repeated + tool_repeated <= resumptions
        && unfinished == 0
        && missing == 0
        && ended_twice == 0
        && no_end_event == 0
        && statuses.get("success").copied().unwrap_or(0) == accepted.len();
    Ok(json!({
        "drill": "crash",
        "database": db.label(),
        "passed": ok,
        "kills_survived": kills,
        "seconds": started.elapsed().as_secs(),
        "executions_accepted": accepted.len(),
        "requests_refused_while_down": refused.load(Ordering::Relaxed),
        "statuses": statuses,
        "unfinished": unfinished,
        "lost": missing,
        "finished_twice": ended_twice,
        "without_end_event": no_end_event,
        "resumed_after_a_kill": resumed,
        "resumptions": resumptions,
        "llm_calls_repeated": llm_repeated,
        "tool_calls_repeated": tool_repeated,
        "restart_to_ready_ms": restarts,
        "note": format!(
            "{rate} executions/s, each 3 model calls (50 ms each) and 2 HTTP tool calls; SIGKILL \
             every 0.5-3 s, restart on the same database; lease 2 s. A repeated call is one in \
             flight (or answered but not yet journaled) when the process died, so repeats may not \
             exceed resumptions."
        ),
    }))
}

/// The fault drill: for `seconds` under a steady load the provider answers with 429s, 500s,
/// silence (a read timeout), cut streams and garbage, mixed with good answers; then it heals.
/// Every execution must end, successes with the answer and failures with a clear error, while
/// `/health` stays quick and the API answers no 5xx.
pub(crate) async fn fault(db: &Db, bin: &str, seconds: u64, rate: u64) -> anyhow::Result<Value> {
    let mock = MockProvider::start().await;
    let faults = [
        Reply::Error {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(1),
        },
        Reply::status(500),
        Reply::Hang,
        Reply::Cut {
            text: "half an answer".into(),
        },
        Reply::Garbage,
        Reply::status(503),
        Reply::text("ok"),
    ];
    let total = (seconds * rate) as usize * 2;
    for i in 0..total {
        mock.push(faults[i % faults.len()].clone());
    }
    mock.set_default(Reply::text("ok"));
    let port = free_port()?;
    let env = db.fresh("fault_drill", &[("AGENTRY_PROVIDER_READ_TIMEOUT", "2")])?;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::spawn(bin, temp_dir("fault-drill"), port, &env)?;
    server.wait_ready(Instant::now()).await?;
    let (token, _) = credentials(&server).await?;
    let http = reqwest::Client::new();
    let agent = agent_on_mock(
        &http,
        &server,
        &token,
        &mock,
        json!({"name": "Weathered", "max_retries": 3}),
    )
    .await?;
    let server_errors = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // /health, every 10 ms, the whole time.
    let health = {
        let (http, url, stop, errors) = (
            http.clone(),
            server.url("/health"),
            stop.clone(),
            server_errors.clone(),
        );
        tokio::spawn(async move {
            let mut took = vec![];
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_server_error() => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => took.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            took
        })
    };
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let gap = Duration::from_micros(1_000_000 / rate.max(1));
    let mut next = tokio::time::Instant::now();
    let started = Instant::now();
    let mut posts = vec![];
    while started.elapsed() < Duration::from_secs(seconds) {
        next += gap;
        tokio::time::sleep_until(next).await;
        let (http, url, token, agent_id, ids, errors) = (
            http.clone(),
            server.url("/api/v1/executions"),
            token.clone(),
            agent["id"].clone(),
            ids.clone(),
            server_errors.clone(),
        );
        posts.push(tokio::spawn(async move {
            match http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"agent_id": agent_id, "input": "weather?"}))
                .send()
                .await
            {
                Ok(r) if r.status().as_u16() == 202 => {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    if let Some(id) = v["id"].as_str() {
                        ids.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(id.to_string());
                    }
                }
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for p in posts {
        let _ = p.await;
    }
    let ids = ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    // Every execution ends (retries back off, hangs time out).
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut statuses: HashMap<String, usize> = HashMap::new();
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut unclear = 0;
    let mut wrong_answer = 0;
    let mut unfinished = 0;
    for id in &ids {
        let e = loop {
            let e = get(&http, &server, &token, &format!("/api/v1/executions/{id}")).await;
            let s = e["status"].as_str().unwrap_or("");
            if ["success", "failed", "timeout", "cancelled"].contains(&s)
                || Instant::now() > deadline
            {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let s = e["status"].as_str().unwrap_or("").to_string();
        match s.as_str() {
            "success" => {
                if e["output"]["text"] != "ok" {
                    wrong_answer += 1;
                }
            }
            "failed" | "timeout" => {
                let code = e["error"]["code"].as_str().unwrap_or("");
                let message = e["error"]["message"].as_str().unwrap_or("");
                if code.is_empty() || message.is_empty() {
                    unclear += 1;
                }
                *codes.entry(code.to_string()).or_default() += 1;
            }
            _ => unfinished += 1,
        }
        *statuses.entry(s).or_default() += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut took = health.await.unwrap_or_default();
    took.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        took.get(((took.len() as f64 * p) as usize).min(took.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let errors = server_errors.load(Ordering::Relaxed);
    let ok = unfinished == 0 && unclear == 0 && wrong_answer == 0 && errors == 0;
    Ok(json!({
        "drill": "fault",
        "database": db.label(),
        "passed": ok,
        "executions": ids.len(),
        "statuses": statuses,
        "error_codes": codes,
        "unfinished": unfinished,
        "failed_without_clear_error": unclear,
        "wrong_answers": wrong_answer,
        "api_5xx_or_unanswered": errors,
        "provider_calls": mock.calls(),
        "health_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": took.last().copied().unwrap_or(0.0),
                      "samples": took.len()},
        "note": format!(
            "{rate} executions/s for {seconds} s; the provider's answers cycle through 429 \
             (Retry-After 1), 500, silence (2 s read timeout), a cut stream, garbage, 503 and one \
             good answer, then heal; max_retries 3; /health every 10 ms throughout."
        ),
    }))
}

/// The soak: `seconds` of mixed load (executions, reads, lists, event streams, a WebSocket
/// subscription) while the server's resident memory and open file descriptors are sampled.
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
