//! Providers, agents and executions over HTTP against a mock provider on 127.0.0.1 that speaks
//! OpenAI's and Anthropic's real wire formats: every status an execution can end in, retries,
//! costs, cancel, idempotency, lists.

use std::time::Duration;

use agentry_testkit::mock::{MockProvider, MockUsage, Reply};

use super::*;

const WITHIN: Duration = Duration::from_secs(20);

/// A provider of `kind` pointing at the mock, with a key; returns its id.
pub async fn mock_provider(app: &TestApp, u: &User, mock: &MockProvider, kind: &str) -> String {
    let base = if kind == "anthropic" {
        mock.anthropic_base()
    } else {
        mock.openai_base()
    };
    let r = app
        .post(
            "/providers",
            Some(&u.token),
            json!({"name": format!("{kind}-{}", uuid::Uuid::now_v7().simple()), "kind": kind,
                   "base_url": base, "api_key": "sk-test-secret-value", "default_model": "mock-model",
                   "headers": {"X-Extra": "extra-secret-value"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

/// Sets a provider's price table (`{"<model>": {"input", "cached_input"?, "output"}}`).
pub async fn set_prices(app: &TestApp, u: &User, pid: &str, prices: Value) -> Resp {
    let r = app
        .call(
            "PATCH",
            &format!("/providers/{pid}"),
            Some(&u.token),
            Some(json!({ "prices": prices })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

pub async fn make_agent(app: &TestApp, u: &User, body: Value) -> Value {
    let r = app.post("/agents", Some(&u.token), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// Creates an execution and waits for it to finish (`?wait`).
pub async fn run(app: &TestApp, u: &User, agent: &str, input: Value) -> Value {
    let r = app
        .post(
            "/executions?wait=20",
            Some(&u.token),
            json!({"agent_id": agent, "input": input}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Polls an execution until `done` says so, or fails after a deadline.
pub async fn poll(app: &TestApp, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let r = app.get(&format!("/executions/{id}"), token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if done(&r.body) {
            return r.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "execution never got there: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

both_backends!(openai_streams_records_usage_and_exact_cost, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    // $1.00 / $0.50 / $2.00 per million tokens.
    let r = set_prices(
        &app,
        &u,
        &pid,
        json!({"mock-model": {"input": 1_000_000, "cached_input": 500_000, "output": 2_000_000}}),
    )
    .await;
    assert!(!r.text.contains("sk-test-secret") && !r.text.contains("extra-secret"));
    assert_eq!(r.body["has_api_key"], true);
    assert_eq!(r.body["header_names"], json!(["X-Extra"]));
    mock.push(Reply::Text {
        text: "The answer is 42.".into(),
        usage: MockUsage {
            input: 1000,
            cached: 400,
            output: 300,
            reasoning: 100,
        },
    });
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Solver", "provider_id": pid, "instructions": "Be brief.", "temperature": 0.2}),
    )
    .await;
    let e = run(
        &app,
        &u,
        agent["id"].as_str().unwrap(),
        json!({"message": "What is six times seven?"}),
    )
    .await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["output"]["text"], "The answer is 42.");
    assert_eq!(e["model"], "mock-model");
    assert_eq!(e["provider_id"], pid.as_str());
    assert_eq!(e["agent_version"], 1);
    assert_eq!(
        e["usage"],
        json!({"input_tokens": 1000, "cached_input_tokens": 400, "output_tokens": 300,
               "reasoning_tokens": 100, "total_tokens": 1300})
    );
    // 600 × $1 + 400 × $0.50 + 300 × $2 per million = 1,400 µUSD.
    assert_eq!(e["cost_micros"], 1400);
    assert_eq!(e["cost_usd"], "0.001400");
    assert!(e["duration_ms"].as_i64().is_some());
    // What went over the wire.
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(
        req.header("authorization"),
        Some("Bearer sk-test-secret-value")
    );
    assert_eq!(req.header("x-extra"), Some("extra-secret-value"));
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["stream_options"]["include_usage"], true);
    assert_eq!(req.body["model"], "mock-model");
    assert_eq!(
        req.body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        req.body["messages"][1]["content"],
        "What is six times seven?"
    );
    // The step journal.
    let steps = app
        .get(
            &format!("/executions/{}/steps", e["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    assert_eq!(steps.status, 200);
    let s = &steps.body["data"][0];
    assert_eq!(
        (
            s["index"].as_i64(),
            s["kind"].as_str(),
            s["status"].as_str()
        ),
        (Some(0), Some("llm"), Some("success"))
    );
    assert_eq!(s["cost_micros"], 1400);
    assert_eq!(s["attempts"].as_array().unwrap().len(), 1);
    // Logs, stats and events.
    let aid = agent["id"].as_str().unwrap();
    let logs = app.get(&format!("/agents/{aid}/logs"), &u.token).await;
    assert_eq!(logs.status, 200);
    assert!(
        logs.body["data"].as_array().unwrap().len() >= 2,
        "{}",
        logs.text
    );
    assert_eq!(logs.body["data"][0]["execution_id"], e["id"]);
    let stats = app.get(&format!("/agents/{aid}/stats"), &u.token).await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.body["total"], 1);
    assert_eq!(stats.body["by_status"]["success"], 1);
    assert_eq!(stats.body["success_rate"], 1.0);
    assert_eq!(stats.body["cost_micros"], 1400);
    assert_eq!(stats.body["usage"]["output_tokens"], 300);
    assert_eq!(stats.body["p50_duration_ms"], e["duration_ms"]);
    let events = app
        .get(
            &format!("/events?execution_id={}", e["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    let kinds: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for k in [
        "execution.created",
        "execution.started",
        "execution.completed",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
});

both_backends!(
    anthropic_without_a_known_price_records_tokens_and_no_cost,
    |app| {
        let mock = MockProvider::start().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "anthropic").await;
        mock.push(Reply::Text {
            text: "Bonjour tout le monde".into(),
            usage: MockUsage {
                input: 50,
                cached: 20,
                output: 7,
                reasoning: 0,
            },
        });
        let agent = make_agent(
            &app,
            &u,
            json!({"name": "Claude-ish", "provider_id": pid, "max_output_tokens": 64}),
        )
        .await;
        let e = run(
            &app,
            &u,
            agent["id"].as_str().unwrap(),
            json!("Say hello in French"),
        )
        .await;
        assert_eq!(e["status"], "success", "{e}");
        assert_eq!(e["output"]["text"], "Bonjour tout le monde");
        assert_eq!(e["usage"]["input_tokens"], 50);
        assert_eq!(e["usage"]["cached_input_tokens"], 20);
        assert_eq!(e["usage"]["output_tokens"], 7);
        assert_eq!(e["cost_micros"], Value::Null);
        assert_eq!(e["cost_usd"], Value::Null);
        let req = &mock.requests()[0];
        assert_eq!(req.path, "/v1/messages");
        assert_eq!(req.header("x-api-key"), Some("sk-test-secret-value"));
        assert!(req.header("anthropic-version").is_some());
        assert_eq!(req.body["max_tokens"], 64);
        assert_eq!(req.body["messages"][0]["content"], "Say hello in French");
    }
);

both_backends!(retryable_errors_are_retried_then_succeed, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    mock.push(Reply::status(500));
    mock.push(Reply::Error {
        status: 429,
        message: "slow down".into(),
        retry_after: Some(1),
    });
    mock.push(Reply::Cut {
        text: "half a reply that never ends".into(),
    });
    mock.push(Reply::text("finally"));
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Patient", "provider_id": pid, "max_retries": 3}),
    )
    .await;
    let e = run(&app, &u, agent["id"].as_str().unwrap(), json!("hi")).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["output"]["text"], "finally");
    assert_eq!(mock.calls(), 4);
    let steps = app
        .get(
            &format!("/executions/{}/steps", e["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    let attempts = steps.body["data"][0]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    assert_eq!(attempts[0]["error"]["code"], "provider_unavailable");
    assert_eq!(attempts[1]["error"]["code"], "rate_limited");
    assert_eq!(attempts[2]["error"]["code"], "stream_interrupted");
    assert_eq!(attempts[3]["error"], Value::Null);
    // Retry-After was honoured: the fourth call came at least a second after the second.
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["started_at"].as_str().unwrap()).unwrap()
    };
    assert!(
        at(2) - at(1) >= chrono::Duration::milliseconds(1000),
        "{attempts:?}"
    );
    let events = app
        .get(
            &format!(
                "/events?type=execution.retried&execution_id={}",
                e["id"].as_str().unwrap()
            ),
            &u.token,
        )
        .await;
    assert_eq!(events.body["data"].as_array().unwrap().len(), 3);
});

both_backends!(errors_that_will_not_pass_fail_at_once, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Doomed", "provider_id": pid, "max_retries": 5}),
    )
    .await;
    let aid = agent["id"].as_str().unwrap();
    for (reply, code) in [
        (Reply::status(400), "provider_bad_request"),
        (Reply::status(401), "provider_auth_failed"),
        (Reply::Garbage, "provider_invalid_response"),
    ] {
        let before = mock.calls();
        mock.push(reply);
        let e = run(&app, &u, aid, json!("hi")).await;
        assert_eq!(e["status"], "failed", "{e}");
        assert_eq!(e["error"]["code"], code, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(mock.calls(), before + 1, "no retry for {code}");
        assert_eq!(e["output"], Value::Null);
    }
    // Retryable, but the retries run out: 1 call + max_retries.
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Brief", "provider_id": pid, "max_retries": 1}),
    )
    .await;
    mock.set_default(Reply::status(503));
    let before = mock.calls();
    let e = run(&app, &u, agent["id"].as_str().unwrap(), json!("hi")).await;
    assert_eq!(e["status"], "failed");
    assert_eq!(e["error"]["code"], "provider_unavailable");
    assert_eq!(mock.calls(), before + 2);
    let logs = app
        .get(
            &format!("/agents/{}/logs?level=error", agent["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    assert!(!logs.body["data"].as_array().unwrap().is_empty());
    assert!(
        logs.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["level"] == "error")
    );
});

both_backends!(timeout_and_cancel_end_a_hanging_call, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    mock.set_default(Reply::Hang);
    let agent = make_agent(&app, &u, json!({"name": "Sleepy", "provider_id": pid})).await;
    let aid = agent["id"].as_str().unwrap();
    // The whole execution is bounded by timeout_seconds.
    let r = app
        .post(
            "/executions?wait=20",
            Some(&u.token),
            json!({"agent_id": aid, "input": "hi", "timeout_seconds": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "timeout");
    assert_eq!(r.body["error"]["code"], "timeout");
    let steps = app
        .get(
            &format!("/executions/{}/steps", r.body["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    assert_eq!(steps.body["data"][0]["status"], "failed", "{}", steps.text);
    // Cancel drops the in-flight call.
    let r = app
        .post(
            "/executions",
            Some(&u.token),
            json!({"agent_id": aid, "input": "hi"}),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/executions/{}", r.body["id"].as_str().unwrap()).as_str())
    );
    let id = r.body["id"].as_str().unwrap().to_string();
    mock.wait_calls(2, WITHIN).await;
    poll(&app, &u.token, &id, |e| e["status"] == "running").await;
    let closed_before = mock.closed();
    let c = app
        .post(
            &format!("/executions/{id}/cancel"),
            Some(&u.token),
            json!({}),
        )
        .await;
    assert_eq!(c.status, 202, "{}", c.text);
    assert_eq!(c.body["status"], "cancelled");
    assert_eq!(c.body["error"]["code"], "cancelled");
    // The provider connection is dropped within a second (polled, not slept).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while mock.closed() == closed_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again = app
        .post(
            &format!("/executions/{id}/cancel"),
            Some(&u.token),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.code(), "invalid_state");
    let e = app.get(&format!("/executions/{id}"), &u.token).await;
    assert_eq!(e.body["status"], "cancelled");
    let events = app
        .get(&format!("/events?execution_id={id}"), &u.token)
        .await;
    assert!(events.text.contains("execution.cancelled"));
    // The timed-out one was recorded too.
    let events = app.get("/events?type=execution.timeout", &u.token).await;
    assert_eq!(events.body["data"].as_array().unwrap().len(), 1);
});

both_backends!(agent_states_gate_executions, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    let agent = make_agent(&app, &u, json!({"name": "Gated", "provider_id": pid})).await;
    let aid = agent["id"].as_str().unwrap();
    let r = app
        .post(&format!("/agents/{aid}/pause"), Some(&u.token), json!({}))
        .await;
    assert_eq!(r.body["status"], "paused");
    let queued = app
        .post(
            "/executions",
            Some(&u.token),
            json!({"agent_id": aid, "input": "wait for me"}),
        )
        .await;
    assert_eq!(queued.status, 202);
    let qid = queued.body["id"].as_str().unwrap().to_string();
    let r = app
        .post(&format!("/agents/{aid}/start"), Some(&u.token), json!({}))
        .await;
    assert_eq!(r.body["status"], "active");
    let done = poll(&app, &u.token, &qid, |e| e["status"] == "success").await;
    assert_eq!(done["output"]["text"], "mock reply");
    // Stopped, errored and archived agents refuse new executions.
    for status in ["inactive", "error", "archived"] {
        let r = app
            .call(
                "PATCH",
                &format!("/agents/{aid}"),
                Some(&u.token),
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = app
            .post(
                "/executions",
                Some(&u.token),
                json!({"agent_id": aid, "input": "x"}),
            )
            .await;
        assert_eq!(r.status, 409, "{status}: {}", r.text);
        assert_eq!(r.code(), "invalid_state");
    }
    // Stop cancels what is running.
    app.post(&format!("/agents/{aid}/start"), Some(&u.token), json!({}))
        .await;
    mock.set_default(Reply::Hang);
    let r = app
        .post(
            "/executions",
            Some(&u.token),
            json!({"agent_id": aid, "input": "x"}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    poll(&app, &u.token, &id, |e| e["status"] == "running").await;
    let r = app
        .post(&format!("/agents/{aid}/stop"), Some(&u.token), json!({}))
        .await;
    assert_eq!(r.body["status"], "inactive");
    let e = app.get(&format!("/executions/{id}"), &u.token).await;
    assert_eq!(e.body["status"], "cancelled");
    // The test route runs once and answers with the finished execution.
    mock.set_default(Reply::text("tested"));
    app.post(&format!("/agents/{aid}/start"), Some(&u.token), json!({}))
        .await;
    let t = app
        .post(
            &format!("/agents/{aid}/test"),
            Some(&u.token),
            json!({"input": "try"}),
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.body["status"], "success");
    assert_eq!(t.body["output"]["text"], "tested");
    // A paused agent's run would only wait in the queue: the test is refused at once.
    app.post(&format!("/agents/{aid}/pause"), Some(&u.token), json!({}))
        .await;
    let t = app
        .post(
            &format!("/agents/{aid}/test"),
            Some(&u.token),
            json!({"input": "try"}),
        )
        .await;
    assert_eq!((t.status, t.code()), (409, "invalid_state"), "{}", t.text);
});

both_backends!(fallbacks_answer_when_the_primary_fails, |app| {
    let primary = MockProvider::start().await;
    let backup = MockProvider::start().await;
    primary.set_default(Reply::status(503));
    backup.push(Reply::text("from the backup"));
    let u = app.register("Alice").await;
    let p1 = mock_provider(&app, &u, &primary, "openai").await;
    let p2 = mock_provider(&app, &u, &backup, "anthropic").await;
    set_prices(
        &app,
        &u,
        &p2,
        json!({"backup-model": {"input": 3_000_000, "output": 15_000_000}}),
    )
    .await;
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Resilient", "provider_id": p1, "max_retries": 1,
               "fallbacks": [{"provider_id": p2, "model": "backup-model"}]}),
    )
    .await;
    let e = run(&app, &u, agent["id"].as_str().unwrap(), json!("hi")).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["output"]["text"], "from the backup");
    assert_eq!(e["provider_id"], p2.as_str());
    assert_eq!(e["model"], "backup-model");
    // The backup's price: 12 input and 5 output tokens at $3 and $15 per million.
    assert_eq!(e["cost_micros"], 12 * 3 + 5 * 15);
    assert_eq!(primary.calls(), 2);
    assert_eq!(backup.calls(), 1);
    assert_eq!(backup.requests()[0].body["model"], "backup-model");
    let steps = app
        .get(
            &format!("/executions/{}/steps", e["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    let s = &steps.body["data"][0];
    assert_eq!(s["provider_id"], p2.as_str());
    assert_eq!(s["attempts"].as_array().unwrap().len(), 3, "{s}");
});
