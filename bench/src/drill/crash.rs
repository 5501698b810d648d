//! The crash drill: a steady load of executions that each make two tool calls, while the
//! binary is killed with SIGKILL at random moments and started again on the same database. At
//! the end every accepted execution must have finished, once, and the provider and the tools
//! must not have been asked again for what the journal had already recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentry_testkit::mock::{MockProvider, Reply};
use agentry_testkit::tool_server::ToolServer;
use serde_json::{Value, json};

use super::{Dice, free_port, get};
use crate::credentials;
use crate::executions::{Db, agent_on_mock};
use crate::server::{Server, temp_dir};

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
