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
    let r = app
        .call(
            "PATCH",
            &format!("/providers/{pid}"),
            Some(&u.token),
            Some(json!({"prices": {"mock-model": {"input": 1_000_000, "cached_input": 500_000, "output": 2_000_000}}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
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
    assert_eq!(e["error"]["code"], "provider_provider_unavailable");
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
});

both_backends!(versions_track_changes_and_executions_record_them, |app| {
    let u = app.register("Alice").await;
    let p = app
        .post(
            "/providers",
            Some(&u.token),
            json!({"name": "local", "kind": "echo"}),
        )
        .await;
    assert_eq!(p.status, 201);
    assert_eq!(p.body["local"], true);
    assert_eq!(p.body["effective_base_url"], Value::Null);
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Versioned", "provider_id": p.body["id"]}),
    )
    .await;
    let aid = agent["id"].as_str().unwrap();
    assert_eq!(agent["version"], 1);
    // A description is not what the agent does; instructions are.
    let r = app
        .call(
            "PATCH",
            &format!("/agents/{aid}"),
            Some(&u.token),
            Some(json!({"description": "notes"})),
        )
        .await;
    assert_eq!(r.body["version"], 1);
    let r = app
        .call(
            "PUT",
            &format!("/agents/{aid}"),
            Some(&u.token),
            Some(json!({"instructions": "Be kind."})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["description"], "notes");
    let e = run(&app, &u, aid, json!("hello there")).await;
    assert_eq!(e["agent_version"], 2);
    assert_eq!(e["output"]["text"], "hello there");
    let v = app.get(&format!("/agents/{aid}/versions"), &u.token).await;
    assert_eq!(v.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(v.body["data"][0]["version"], 2);
    let v1 = app
        .get(&format!("/agents/{aid}/versions/1"), &u.token)
        .await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.body["spec"]["instructions"], "");
    assert_eq!(
        app.get(&format!("/agents/{aid}/versions/9"), &u.token)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/agents/{aid}/versions/x"), &u.token)
            .await
            .status,
        404
    );
    // Deleting hides the agent; its executions stay readable.
    let d = app
        .call("DELETE", &format!("/agents/{aid}"), Some(&u.token), None)
        .await;
    assert_eq!(d.status, 204);
    assert_eq!(
        app.get(&format!("/agents/{aid}"), &u.token).await.status,
        404
    );
    let e2 = app
        .get(
            &format!("/executions/{}", e["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    assert_eq!(e2.status, 200);
    assert_eq!(
        app.get(&format!("/agents/{aid}/versions"), &u.token)
            .await
            .status,
        200
    );
});

both_backends!(idempotency_keys_replay_the_first_response, |app| {
    let u = app.register("Alice").await;
    let p = app
        .post(
            "/providers",
            Some(&u.token),
            json!({"name": "local", "kind": "echo"}),
        )
        .await;
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Once", "provider_id": p.body["id"]}),
    )
    .await;
    let body = json!({"agent_id": agent["id"], "input": {"message": "only once"}});
    let h = [("Idempotency-Key", "order-123")];
    let first = app
        .call_with(
            "POST",
            "/executions",
            Some(&u.token),
            Some(body.clone()),
            &h,
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    // The same JSON with its keys in another order is the same request.
    let reordered = json!({"input": {"message": "only once"}, "agent_id": agent["id"]});
    let second = app
        .call_with("POST", "/executions", Some(&u.token), Some(reordered), &h)
        .await;
    assert_eq!(second.status, 202);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    let other = app
        .call_with(
            "POST",
            "/executions",
            Some(&u.token),
            Some(json!({"agent_id": agent["id"], "input": "else"})),
            &h,
        )
        .await;
    assert_eq!(other.status, 409);
    assert_eq!(other.code(), "idempotency_key_reused");
    let list = app
        .get(
            &format!("/executions?agent_id={}", agent["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    // A failed request does not use up its key.
    let bad = json!({"agent_id": uuid::Uuid::now_v7(), "input": "x"});
    let h2 = [("Idempotency-Key", "order-124")];
    let r = app
        .call_with("POST", "/executions", Some(&u.token), Some(bad), &h2)
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .call_with(
            "POST",
            "/executions",
            Some(&u.token),
            Some(body.clone()),
            &h2,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Keys belong to an org: another org's same key is its own.
    let m = app.register("Mallory").await;
    let r = app
        .call_with("POST", "/executions", Some(&m.token), Some(body), &h)
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // Tasks take keys too.
    let t1 = app
        .call_with(
            "POST",
            "/tasks",
            Some(&u.token),
            Some(json!({"title": "T"})),
            &[("Idempotency-Key", "t-1")],
        )
        .await;
    let t2 = app
        .call_with(
            "POST",
            "/tasks",
            Some(&u.token),
            Some(json!({"title": "T"})),
            &[("Idempotency-Key", "t-1")],
        )
        .await;
    assert_eq!((t1.status, t2.status), (201, 201));
    assert_eq!(t1.body["id"], t2.body["id"]);
    let long = "k".repeat(300);
    let r = app
        .call_with(
            "POST",
            "/tasks",
            Some(&u.token),
            Some(json!({"title": "T"})),
            &[("Idempotency-Key", long.as_str())],
        )
        .await;
    assert_eq!(r.status, 422);
});

both_backends!(tasks_follow_their_executions, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    let agent = make_agent(&app, &u, json!({"name": "Worker", "provider_id": pid})).await;
    let aid = agent["id"].as_str().unwrap();
    let t = app
        .post("/tasks", Some(&u.token), json!({"title": "Summarize the report", "description": "Two lines.",
               "input": {"report": "Sales rose."}, "priority": "high", "due_at": "2026-12-01T10:00:00Z"}))
        .await;
    assert_eq!(t.status, 201, "{}", t.text);
    assert_eq!(
        t.header("location"),
        Some(format!("/api/v1/tasks/{}", t.body["id"].as_str().unwrap()).as_str())
    );
    assert_eq!(t.body["status"], "backlog");
    let tid = t.body["id"].as_str().unwrap();
    mock.push(Reply::text("Sales rose."));
    let a = app
        .post(
            &format!("/tasks/{tid}/assign"),
            Some(&u.token),
            json!({"agent_id": aid, "run": true}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["task"]["agent_id"], aid);
    assert!(a.body["task"]["assigned_at"].is_string());
    let eid = a.body["execution"]["id"].as_str().unwrap();
    assert_eq!(a.body["execution"]["task_id"], tid);
    poll(&app, &u.token, eid, |e| e["status"] == "success").await;
    let t = app.get(&format!("/tasks/{tid}"), &u.token).await;
    assert_eq!(t.body["status"], "completed", "{}", t.text);
    assert_eq!(t.body["output"]["text"], "Sales rose.");
    assert!(t.body["completed_at"].is_string());
    // The prompt carried the task.
    let prompt = mock.requests()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        prompt.contains("Summarize the report")
            && prompt.contains("Two lines.")
            && prompt.contains("Sales rose."),
        "{prompt}"
    );
    // A failure fails the task.
    mock.push(Reply::status(400));
    let a = app
        .post(
            &format!("/tasks/{tid}/assign"),
            Some(&u.token),
            json!({"agent_id": aid, "run": true}),
        )
        .await;
    poll(
        &app,
        &u.token,
        a.body["execution"]["id"].as_str().unwrap(),
        |e| e["status"] == "failed",
    )
    .await;
    assert_eq!(
        app.get(&format!("/tasks/{tid}"), &u.token).await.body["status"],
        "failed"
    );
    // A manual agent never starts one by itself.
    let manual = make_agent(
        &app,
        &u,
        json!({"name": "Hands-on", "provider_id": pid, "autonomy": "manual"}),
    )
    .await;
    let t2 = app
        .post("/tasks", Some(&u.token), json!({"title": "By hand"}))
        .await;
    let t2id = t2.body["id"].as_str().unwrap();
    let a = app
        .post(
            &format!("/tasks/{t2id}/assign"),
            Some(&u.token),
            json!({"agent_id": manual["id"], "run": true}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["execution"], Value::Null);
    assert_eq!(a.body["task"]["agent_id"], manual["id"]);
    // Cancel cancels the running execution too.
    mock.set_default(Reply::Hang);
    let a = app
        .post(
            &format!("/tasks/{t2id}/assign"),
            Some(&u.token),
            json!({"agent_id": aid, "run": true}),
        )
        .await;
    let eid = a.body["execution"]["id"].as_str().unwrap().to_string();
    let c = app
        .post(&format!("/tasks/{t2id}/cancel"), Some(&u.token), json!({}))
        .await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "cancelled");
    assert_eq!(
        app.get(&format!("/executions/{eid}"), &u.token).await.body["status"],
        "cancelled"
    );
    let c = app
        .post(&format!("/tasks/{t2id}/cancel"), Some(&u.token), json!({}))
        .await;
    assert_eq!(c.status, 409);
    let events = app.get(&format!("/events?task_id={t2id}"), &u.token).await;
    for k in ["task.created", "task.assigned", "task.cancelled"] {
        assert!(events.text.contains(k), "{k}: {}", events.text);
    }
    // Assigning to another org's agent or an unknown one names the field.
    let r = app
        .post(
            &format!("/tasks/{t2id}/assign"),
            Some(&u.token),
            json!({"agent_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(r.status, 422);
});

both_backends!(lists_filter_sort_and_page, |app| {
    let u = app.register("Alice").await;
    let p = app
        .post(
            "/providers",
            Some(&u.token),
            json!({"name": "local", "kind": "echo"}),
        )
        .await;
    let pid = p.body["id"].as_str().unwrap();
    let mut agents = vec![];
    for name in ["Charlie", "alpha", "Bravo"] {
        agents.push(
            make_agent(
                &app,
                &u,
                json!({"name": name, "provider_id": pid, "type": "assistant"}),
            )
            .await,
        );
    }
    make_agent(
        &app,
        &u,
        json!({"name": "Other", "provider_id": pid, "type": "analysis"}),
    )
    .await;
    // Sorted by name, one per page, the cursor carrying the sort.
    let mut names = vec![];
    let mut url = "/agents?type=assistant&sort=name&limit=1".to_string();
    loop {
        let r = app.get(&url, &u.token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        names.extend(
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_string()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => url = format!("/agents?type=assistant&sort=name&limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(names, ["Bravo", "Charlie", "alpha"]);
    let r = app.get("/agents?q=RAV", &u.token).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    // A cursor from one sort is refused under another; unknown sorts and filters are 422.
    let c = app.get("/agents?sort=name&limit=1", &u.token).await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    for bad in [
        format!("/agents?sort=-name&cursor={c}"),
        "/agents?sort=colour".into(),
        "/agents?status=happy".into(),
        "/agents?type=robot".into(),
        "/agents?sort=name&cursor=garbage".into(),
        "/executions?status=done".into(),
        "/executions?sort=tokens".into(),
        "/tasks?priority=urgent".into(),
        "/executions?since=yesterday".into(),
        "/agents?colour=blue".into(),
    ] {
        let r = app.get(&bad, &u.token).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    // Executions by duration and cost, paged; filters by agent and status and time.
    let mut ids = vec![];
    for a in &agents {
        ids.push(run(&app, &u, a["id"].as_str().unwrap(), json!("one two three")).await);
    }
    let mut seen = vec![];
    let mut url = "/executions?sort=-duration_ms&limit=2".to_string();
    loop {
        let r = app.get(&url, &u.token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["duration_ms"].as_i64().unwrap()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => url = format!("/executions?sort=-duration_ms&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    assert!(seen.windows(2).all(|w| w[0] >= w[1]), "{seen:?}");
    let r = app
        .get(
            &format!(
                "/executions?agent_id={}&status=success",
                agents[0]["id"].as_str().unwrap()
            ),
            &u.token,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/executions?status=failed", &u.token).await.body["data"],
        json!([])
    );
    assert_eq!(
        app.get("/executions?since=2999-01-01T00:00:00Z", &u.token)
            .await
            .body["data"],
        json!([])
    );
    assert_eq!(
        app.get(
            "/executions?until=2999-01-01T00:00:00Z&sort=cost_micros",
            &u.token
        )
        .await
        .body["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Tasks by priority and due date (undated last), paged one at a time.
    for (title, prio, due) in [
        ("a", "low", json!("2026-12-03T00:00:00Z")),
        ("b", "critical", Value::Null),
        ("c", "medium", json!("2026-12-01T00:00:00Z")),
    ] {
        let r = app
            .post(
                "/tasks",
                Some(&u.token),
                json!({"title": title, "priority": prio, "due_at": due}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    for (sort, want) in [
        ("-priority", ["b", "c", "a"]),
        ("due_at", ["c", "a", "b"]),
        ("-due_at", ["b", "a", "c"]),
    ] {
        let mut got = vec![];
        let mut url = format!("/tasks?sort={sort}&limit=1");
        loop {
            let r = app.get(&url, &u.token).await;
            assert_eq!(r.status, 200, "{}", r.text);
            got.extend(
                r.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["title"].as_str().unwrap().to_string()),
            );
            match r.body["next_cursor"].as_str() {
                Some(c) => url = format!("/tasks?sort={sort}&limit=1&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(got, want, "sort {sort}");
    }
    assert_eq!(
        app.get("/tasks?priority=critical", &u.token).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
});

both_backends!(bad_input_gets_clear_errors, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    let agent = make_agent(&app, &u, json!({"name": "Strict", "provider_id": pid})).await;
    let aid = agent["id"].as_str().unwrap();
    for (method, path, body, field) in [
        (
            "POST",
            "/providers",
            json!({"name": "x", "kind": "palm"}),
            "kind",
        ),
        (
            "POST",
            "/providers",
            json!({"name": "x", "kind": "openai", "base_url": "ftp://x"}),
            "base_url",
        ),
        (
            "POST",
            "/providers",
            json!({"name": "x", "kind": "echo", "prices": {"m": {"input": "free"}}}),
            "prices.m.input",
        ),
        ("POST", "/providers", json!({"kind": "echo"}), "name"),
        (
            "POST",
            "/agents",
            json!({"name": "x", "temperature": 3}),
            "temperature",
        ),
        (
            "POST",
            "/agents",
            json!({"name": "x", "max_retries": 11}),
            "max_retries",
        ),
        (
            "POST",
            "/agents",
            json!({"name": "x", "timeout_seconds": 0}),
            "timeout_seconds",
        ),
        (
            "POST",
            "/agents",
            json!({"name": "x", "type": "robot"}),
            "type",
        ),
        (
            "POST",
            "/agents",
            json!({"name": "x", "tools": [{"type": "builtin", "name": "rm_rf"}]}),
            "tools",
        ),
        ("POST", "/agents", json!({"name": 5}), "name"),
        (
            "POST",
            "/agents",
            json!({"name": "x", "colour": "blue"}),
            "colour",
        ),
        (
            "POST",
            "/executions",
            json!({"agent_id": "not-a-uuid", "input": "x"}),
            "agent_id",
        ),
        ("POST", "/executions", json!({"agent_id": aid}), "input"),
        (
            "POST",
            "/executions",
            json!({"agent_id": aid, "input": 5}),
            "input",
        ),
        (
            "POST",
            "/executions",
            json!({"agent_id": aid, "input": "x", "timeout_seconds": 99999}),
            "timeout_seconds",
        ),
        (
            "POST",
            "/executions?wait=999",
            json!({"agent_id": aid, "input": "x"}),
            "wait",
        ),
        ("POST", "/tasks", json!({"title": ""}), "title"),
        (
            "POST",
            "/tasks",
            json!({"title": "x", "due_at": "tomorrow"}),
            "due_at",
        ),
        (
            "POST",
            "/tasks",
            json!({"title": "x", "input": [1]}),
            "input",
        ),
        (
            "POST",
            "/tasks",
            json!({"title": "x", "priority": "urgent"}),
            "priority",
        ),
    ] {
        let r = app
            .call(method, path, Some(&u.token), Some(body.clone()))
            .await;
        assert_eq!(r.status, 422, "{method} {path} {body}: {}", r.text);
        assert!(
            r.body["error"]["details"]["fields"][field].is_array(),
            "{path} {body}: {}",
            r.text
        );
    }
    // A huge input.
    let huge = "x".repeat(300 * 1024);
    let r = app
        .post(
            "/executions",
            Some(&u.token),
            json!({"agent_id": aid, "input": huge}),
        )
        .await;
    assert!([413, 422].contains(&r.status), "{}", r.text);
    // Malformed JSON and the wrong media type.
    let res = app
        .client
        .post(app.url("/executions"))
        .bearer_auth(&u.token)
        .header("content-type", "application/json")
        .body("{\"agent_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .post(app.url("/tasks"))
        .bearer_auth(&u.token)
        .body("title=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // Unknown ids are 404s.
    for path in [
        "/agents/nope",
        "/executions/nope/steps",
        "/tasks/00000000-0000-0000-0000-000000000000",
    ] {
        assert_eq!(app.get(path, &u.token).await.status, 404, "{path}");
    }
    // A provider in use cannot be deleted; the test route reports failures plainly.
    let r = app
        .call("DELETE", &format!("/providers/{pid}"), Some(&u.token), None)
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "provider_in_use");
    mock.push(Reply::text("ok"));
    let t = app
        .call(
            "POST",
            &format!("/providers/{pid}/test"),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.body["ok"], true);
    assert_eq!(mock.requests().last().unwrap().body["stream"], Value::Null);
    mock.push(Reply::status(401));
    let t = app
        .post(
            &format!("/providers/{pid}/test"),
            Some(&u.token),
            json!({"model": "other"}),
        )
        .await;
    assert_eq!(t.body["ok"], false);
    assert!(
        t.body["error"].as_str().unwrap().contains("401"),
        "{}",
        t.text
    );
    assert_eq!(mock.requests().last().unwrap().body["model"], "other");
    // Provider names are unique within an org.
    let r = app
        .post(
            "/providers",
            Some(&u.token),
            json!({"name": "dup", "kind": "echo"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post(
            "/providers",
            Some(&u.token),
            json!({"name": "dup", "kind": "echo"}),
        )
        .await;
    assert_eq!(r.status, 409);
    // Secrets never come back, in any view.
    let all = app.get("/providers", &u.token).await;
    assert!(!all.text.contains("sk-test-secret") && !all.text.contains("extra-secret"));
});

both_backends!(fallbacks_answer_when_the_primary_fails, |app| {
    let primary = MockProvider::start().await;
    let backup = MockProvider::start().await;
    primary.set_default(Reply::status(503));
    backup.push(Reply::text("from the backup"));
    let u = app.register("Alice").await;
    let p1 = mock_provider(&app, &u, &primary, "openai").await;
    let p2 = mock_provider(&app, &u, &backup, "anthropic").await;
    let r = app
        .call(
            "PATCH",
            &format!("/providers/{p2}"),
            Some(&u.token),
            Some(json!({"prices": {"backup-model": {"input": 3_000_000, "output": 15_000_000}}})),
        )
        .await;
    assert_eq!(r.status, 200);
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
