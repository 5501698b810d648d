//! The fault drill: a provider that fails in every way a vendor does, under load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentry_testkit::mock::{MockProvider, Reply};
use serde_json::{Value, json};

use super::{free_port, get};
use crate::credentials;
use crate::executions::{Db, agent_on_mock};
use crate::server::{Server, temp_dir};

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
