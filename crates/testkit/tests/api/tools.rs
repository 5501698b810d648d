//! The agent loop with tools, driven by the mock provider's tool-call replies: built-in and
//! declared HTTP tools against a local HTTP server, the egress guard, agents calling agents,
//! supervised approvals, fallbacks and structured output.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_testkit::mock::{MockProvider, MockUsage, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::executions::{make_agent, mock_provider, poll, set_prices};
use super::*;

/// A tiny HTTP server on 127.0.0.1 that answers every request with JSON describing it, and
/// keeps each raw request head.
struct Echo {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn echo_server() -> Echo {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(vec![]));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let mut n = 0;
                while !String::from_utf8_lossy(&buf[..n]).contains("\r\n\r\n") {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                log.lock().expect("lock").push(head);
                let body = json!({"request": line, "temperature": 21}).to_string();
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(res.as_bytes()).await;
            });
        }
    });
    Echo { url, seen }
}

fn tools(calls: &[(&str, Value)]) -> Reply {
    Reply::Tools(
        calls
            .iter()
            .map(|(n, a)| (n.to_string(), a.clone()))
            .collect(),
    )
}

async fn steps(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let r = app.get(&format!("/executions/{id}/steps"), token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

async fn start(app: &TestApp, token: &str, agent: &Value, input: Value) -> String {
    let r = app
        .post(
            "/executions",
            Some(token),
            json!({"agent_id": agent["id"], "input": input}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.body["id"].as_str().unwrap_or_default().to_string()
}

async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    poll(app, token, id, |e| {
        matches!(
            e["status"].as_str(),
            Some("success" | "failed" | "timeout" | "cancelled")
        )
    })
    .await
}

both_backends!(
    parallel_tool_calls_are_journaled_streamed_and_fed_back,
    |app| {
        let mock = MockProvider::start().await;
        let echo = echo_server().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "openai").await;
        let agent = make_agent(&app, &u, json!({"name": "Weather", "provider_id": pid, "tools": [
        {"type": "builtin", "name": "current_time"},
        {"type": "http", "name": "weather", "description": "Weather in a city",
         "url": format!("{}/weather/{{city}}", echo.url), "method": "GET",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
         "headers": {"Authorization": {"secret": "Bearer tool-secret-123"}, "Accept": "application/json"}}]})).await;
        // The secret is stored, never shown.
        assert!(!agent.to_string().contains("tool-secret-123"), "{agent}");
        assert_eq!(
            agent["tools"][1]["headers"]["Authorization"],
            json!({"secret": true})
        );
        mock.push(tools(&[
            ("current_time", json!({})),
            ("weather", json!({"city": "Oslo", "units": "metric"})),
        ]));
        mock.push(Reply::text("It is 21 degrees in Oslo."));
        let id = start(&app, &u.token, &agent, json!("Weather in Oslo?")).await;
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "success", "{e}");
        assert_eq!(e["output"]["text"], "It is 21 degrees in Oslo.");
        let s = steps(&app, &u.token, &id).await;
        let kinds: Vec<(&str, &str, &str)> = s
            .iter()
            .map(|s| {
                (
                    s["kind"].as_str().unwrap_or(""),
                    s["name"].as_str().unwrap_or(""),
                    s["status"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("llm", "mock-model", "success"),
                ("tool", "current_time", "success"),
                ("tool", "weather", "success"),
                ("llm", "mock-model", "success")
            ]
        );
        assert_eq!(s[2]["input"]["arguments"]["city"], "Oslo");
        assert_eq!(s[2]["output"]["result"]["status"], 200);
        assert!(s[1]["output"]["result"]["utc"].is_string());
        // The declared tool filled its URL and query and sent the secret header.
        let heads = echo.seen.lock().expect("lock").clone();
        assert_eq!(heads.len(), 1);
        assert!(
            heads[0].starts_with("GET /weather/Oslo?units=metric "),
            "{}",
            heads[0]
        );
        assert!(
            heads[0]
                .to_lowercase()
                .contains("authorization: bearer tool-secret-123")
        );
        // The second model call saw both results, answering each call by its id.
        let reqs = mock.requests();
        assert_eq!(reqs.len(), 2);
        let msgs = reqs[1].body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let tool_msgs: Vec<&Value> = msgs.iter().filter(|m| m["role"] == "tool").collect();
        assert_eq!(tool_msgs.len(), 2);
        assert_eq!(tool_msgs[0]["tool_call_id"], "call_0");
        assert!(
            tool_msgs[1]["content"]
                .as_str()
                .unwrap_or("")
                .contains("\"temperature\":21")
        );
        assert_eq!(reqs[0].body["tools"].as_array().map(Vec::len), Some(2));
        // The stream tells the same story.
        let mut sse = app
            .sse(&format!("/executions/{id}/stream"), &u.token, None, &[])
            .await;
        let names: Vec<String> = sse.rest().await.into_iter().map(|e| e.event).collect();
        assert_eq!(
            names.iter().filter(|n| *n == "tool_call").count(),
            2,
            "{names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| *n == "tool_result").count(),
            2,
            "{names:?}"
        );
        assert_eq!(names.last().map(String::as_str), Some("done"));
        let logs = app
            .get(
                &format!("/agents/{}/logs", agent["id"].as_str().unwrap_or("")),
                &u.token,
            )
            .await;
        assert!(logs.text.contains("tool weather: success"), "{}", logs.text);
    }
);

both_backends!(
    bad_calls_go_back_to_the_model_and_max_steps_stops_a_loop,
    |app| {
        let mock = MockProvider::start().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "anthropic").await;
        let agent = make_agent(&app, &u, json!({"name": "Loopy", "provider_id": pid, "max_steps": 3,
        "tools": [{"type": "builtin", "name": "http_request"}, {"type": "builtin", "name": "current_time"}]})).await;
        mock.push(tools(&[
            ("no_such_tool", json!({})),
            ("http_request", json!({"method": "GET", "url": 5})),
            (
                "http_request",
                json!({"method": "GET", "url": "http://10.1.2.3/admin"}),
            ),
            (
                "http_request",
                json!({"method": "GET", "url": "http://169.254.169.254/latest/meta-data"}),
            ),
        ]));
        mock.push(Reply::text("I could not do it."));
        let id = start(&app, &u.token, &agent, json!("go")).await;
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "success", "{e}");
        let s = steps(&app, &u.token, &id).await;
        let codes: Vec<&str> = s[1..5]
            .iter()
            .map(|s| s["error"]["code"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            codes,
            vec![
                "unknown_tool",
                "invalid_arguments",
                "egress_refused",
                "egress_refused"
            ]
        );
        assert!(
            s[4]["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("metadata")
        );
        // The model was told each error (Anthropic: tool results in one user turn).
        let reqs = mock.requests();
        let last = reqs[1].body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let results = last
            .last()
            .map(|m| m["content"].clone())
            .unwrap_or_default();
        assert_eq!(results.as_array().map(Vec::len), Some(4), "{results}");
        assert!(results.to_string().contains("unknown_tool"));
        // A model that never stops calling tools ends at max_steps.
        mock.set_default(tools(&[("current_time", json!({}))]));
        let id = start(&app, &u.token, &agent, json!("loop")).await;
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "failed", "{e}");
        assert_eq!(e["error"]["code"], "max_steps_exceeded");
        assert_eq!(steps(&app, &u.token, &id).await.len(), 6);
    }
);

both_backends!(
    agents_call_agents_with_cost_rolled_up_and_cycles_refused,
    |app| {
        let mock = MockProvider::start().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "openai").await;
        set_prices(
            &app,
            &u,
            &pid,
            json!({"mock-model": {"input": 1_000_000, "output": 2_000_000}}),
        )
        .await;
        let helper = make_agent(
            &app,
            &u,
            json!({"name": "Helper", "provider_id": pid,
        "tools": [{"type": "builtin", "name": "call_agent"}]}),
        )
        .await;
        let boss = make_agent(
            &app,
            &u,
            json!({"name": "Boss", "provider_id": pid, "type": "orchestrator",
        "tools": [{"type": "builtin", "name": "call_agent"}]}),
        )
        .await;
        let usage = MockUsage {
            input: 100,
            cached: 0,
            output: 10,
            reasoning: 0,
        };
        mock.push(tools(&[(
            "call_agent",
            json!({"agent_id": helper["id"], "input": "sum 2 and 2"}),
        )]));
        // The helper tries to call the boss back: refused, then answers.
        mock.push(tools(&[(
            "call_agent",
            json!({"agent_id": boss["id"], "input": "help"}),
        )]));
        mock.push(Reply::Text {
            text: "4".into(),
            usage,
        });
        mock.push(Reply::Text {
            text: "The helper says 4.".into(),
            usage,
        });
        let id = start(&app, &u.token, &boss, json!("what is 2+2?")).await;
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "success", "{e}");
        let s = steps(&app, &u.token, &id).await;
        assert_eq!(s[1]["name"], "call_agent");
        assert_eq!(s[1]["output"]["result"], "4");
        let child_id = s[1]["output"]["child_execution_id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let child = app
            .get(&format!("/executions/{child_id}"), &u.token)
            .await
            .body;
        assert_eq!(child["parent_execution_id"], json!(id));
        assert_eq!(child["agent_id"], helper["id"]);
        let cs = steps(&app, &u.token, &child_id).await;
        assert_eq!(cs[1]["error"]["code"], "cycle_refused", "{cs:?}");
        // Each answered call: 100 input µ$·… = 100 + 20 = 120 µUSD; the child made two calls
        // (the first reply of the mock's default usage), the boss two.
        let child_cost = child["cost_micros"].as_i64().unwrap_or(-1);
        assert!(child_cost > 0, "{child}");
        assert_eq!(s[1]["cost_micros"].as_i64(), Some(child_cost));
        let own: i64 = [0usize, 2]
            .iter()
            .map(|i| s[*i]["cost_micros"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(e["cost_micros"].as_i64(), Some(own + child_cost), "{e}");
        assert_eq!(
            e["usage"]["input_tokens"].as_i64(),
            Some(
                s.iter()
                    .map(|s| s["usage"]["input_tokens"].as_i64().unwrap_or(0))
                    .sum::<i64>()
            )
        );
    }
);

both_backends!(
    supervised_calls_wait_for_approval_and_rejections_reach_the_model,
    |app| {
        let mock = MockProvider::start().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "openai").await;
        let agent = make_agent(
            &app,
            &u,
            json!({"name": "Careful", "provider_id": pid, "autonomy": "supervised",
        "tools": [{"type": "builtin", "name": "current_time"}]}),
        )
        .await;
        mock.push(tools(&[("current_time", json!({}))]));
        mock.push(Reply::text("Approved and done."));
        let id = start(&app, &u.token, &agent, json!("time?")).await;
        let e = poll(&app, &u.token, &id, |e| e["status"] == "awaiting_approval").await;
        assert!(e["lease_owner"].is_null());
        let s = steps(&app, &u.token, &id).await;
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[1]["kind"].as_str(), s[1]["status"].as_str()),
            (Some("approval"), Some("awaiting"))
        );
        assert!(s[1]["expires_at"].is_string());
        let step_id = s[1]["id"].as_str().unwrap_or("").to_string();
        let path = format!("/executions/{id}/approvals/{step_id}");
        // Bad bodies and unknown steps are clear errors; a viewer may not answer.
        let r = app
            .post(&path, Some(&u.token), json!({"approve": "yes"}))
            .await;
        assert_eq!(r.status, 422, "{}", r.text);
        let r = app
            .post(
                &format!("/executions/{id}/approvals/{}", uuid::Uuid::now_v7()),
                Some(&u.token),
                json!({"approve": true}),
            )
            .await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = app
            .post(&path, Some(&u.token), json!({"approve": true}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["step"]["status"], "approved");
        let r = app
            .post(&path, Some(&u.token), json!({"approve": true}))
            .await;
        assert_eq!(r.status, 409, "{}", r.text);
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "success", "{e}");
        let s = steps(&app, &u.token, &id).await;
        let kinds: Vec<&str> = s.iter().map(|s| s["kind"].as_str().unwrap_or("")).collect();
        assert_eq!(kinds, vec!["llm", "approval", "tool", "llm"]);
        let mut sse = app
            .sse(&format!("/executions/{id}/stream"), &u.token, None, &[])
            .await;
        let events = sse.rest().await;
        assert!(
            events
                .iter()
                .any(|e| e.event == "approval_requested" && e.data["name"] == "current_time")
        );
        assert!(
            events
                .iter()
                .any(|e| e.event == "status" && e.data["status"] == "awaiting_approval")
        );
        // Rejected: the tool does not run, and the model hears why.
        mock.push(tools(&[("current_time", json!({}))]));
        mock.push(Reply::text("Understood."));
        let id = start(&app, &u.token, &agent, json!("time again?")).await;
        poll(&app, &u.token, &id, |e| e["status"] == "awaiting_approval").await;
        let step_id = steps(&app, &u.token, &id).await[1]["id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let r = app
            .post(
                &format!("/executions/{id}/approvals/{step_id}"),
                Some(&u.token),
                json!({"approve": false, "comment": "not during the freeze"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "success", "{e}");
        let kinds: Vec<String> = steps(&app, &u.token, &id)
            .await
            .iter()
            .map(|s| s["kind"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(kinds, vec!["llm", "approval", "llm"]);
        let last = mock
            .requests()
            .last()
            .map(|r| r.body.to_string())
            .unwrap_or_default();
        assert!(last.contains("not during the freeze"), "{last}");
        let events = app
            .get(&format!("/events?execution_id={id}"), &u.token)
            .await;
        assert!(
            events.text.contains("execution.rejected"),
            "{}",
            events.text
        );
    }
);

fn short_approvals(s: &mut agentry_testkit::Setup) {
    s.tools.approval_ttl = chrono::Duration::seconds(1);
}

both_backends!(
    unanswered_approvals_expire,
    setup = short_approvals,
    |app| {
        let mock = MockProvider::start().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "openai").await;
        let agent = make_agent(
            &app,
            &u,
            json!({"name": "Careful", "provider_id": pid, "autonomy": "supervised",
        "tools": [{"type": "builtin", "name": "current_time"}]}),
        )
        .await;
        mock.push(tools(&[("current_time", json!({}))]));
        mock.push(Reply::text("Nobody answered."));
        let id = start(&app, &u.token, &agent, json!("time?")).await;
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "success", "{e}");
        let s = steps(&app, &u.token, &id).await;
        assert_eq!(s[1]["status"], "expired");
        let last = mock
            .requests()
            .last()
            .map(|r| r.body.to_string())
            .unwrap_or_default();
        assert!(last.contains("approval_expired"), "{last}");
    }
);

both_backends!(a_failing_model_falls_back_to_the_next, |app| {
    let bad = MockProvider::start().await;
    let good = MockProvider::start().await;
    let u = app.register("Alice").await;
    let p1 = mock_provider(&app, &u, &bad, "openai").await;
    let p2 = mock_provider(&app, &u, &good, "anthropic").await;
    bad.set_default(Reply::status(503));
    good.push(Reply::text("From the backup."));
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Resilient", "provider_id": p1, "max_retries": 1,
        "fallbacks": [{"provider_id": p2, "model": "backup-model"}]}),
    )
    .await;
    let id = start(&app, &u.token, &agent, json!("hi")).await;
    let e = finished(&app, &u.token, &id).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["provider_id"], json!(p2));
    assert_eq!(bad.calls(), 2);
    let s = steps(&app, &u.token, &id).await;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["provider_id"], json!(p2));
    assert_eq!(s[0]["attempts"].as_array().map(Vec::len), Some(3));
});

both_backends!(
    structured_output_is_checked_repaired_once_then_refused,
    |app| {
        let mock = MockProvider::start().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "openai").await;
        let schema = json!({"type": "object", "properties": {
        "answer": {"type": "integer"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
        "required": ["answer", "confidence"]});
        let r = app
            .post(
                "/agents",
                Some(&u.token),
                json!({"name": "Bad", "output_schema": {"type": "nope"}}),
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text);
        let agent = make_agent(
            &app,
            &u,
            json!({"name": "Typed", "provider_id": pid, "output_schema": schema}),
        )
        .await;
        assert_eq!(agent["output_schema"], schema);
        // Valid at once.
        mock.push(Reply::text(r#"{"answer": 4, "confidence": 0.9}"#));
        let id = start(&app, &u.token, &agent, json!("2+2")).await;
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "success", "{e}");
        assert_eq!(e["output"]["data"]["answer"], 4);
        assert_eq!(e["confidence"], 0.9);
        let req = &mock.requests()[0].body;
        assert_eq!(req["response_format"]["json_schema"]["schema"], schema);
        // Repaired on the second try, told what was wrong.
        mock.push(Reply::text("four"));
        mock.push(Reply::text(
            r#"```json
{"answer": 4, "confidence": 0.5}
```"#,
        ));
        let id = start(&app, &u.token, &agent, json!("2+2")).await;
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "success", "{e}");
        assert_eq!(e["output"]["data"]["confidence"], 0.5);
        let last = mock
            .requests()
            .last()
            .map(|r| r.body.to_string())
            .unwrap_or_default();
        assert!(
            last.contains("does not match the required JSON Schema"),
            "{last}"
        );
        // Wrong twice: invalid_output.
        mock.push(Reply::text(r#"{"answer": "four"}"#));
        mock.push(Reply::text(r#"{"answer": 4}"#));
        let id = start(&app, &u.token, &agent, json!("2+2")).await;
        let e = finished(&app, &u.token, &id).await;
        assert_eq!(e["status"], "failed", "{e}");
        assert_eq!(e["error"]["code"], "invalid_output");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("/confidence: is required"),
            "{e}"
        );
    }
);

both_backends!(anthropic_gives_structured_answers_through_a_tool, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "anthropic").await;
    let agent = make_agent(&app, &u, json!({"name": "Typed", "provider_id": pid,
        "output_schema": {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}})).await;
    mock.push(tools(&[("final_answer", json!({"answer": 4}))]));
    let id = start(&app, &u.token, &agent, json!("2+2")).await;
    let e = finished(&app, &u.token, &id).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["output"]["data"], json!({"answer": 4}));
    let req = &mock.requests()[0].body;
    assert_eq!(
        req["tool_choice"],
        json!({"type": "tool", "name": "final_answer"})
    );
});

#[tokio::test]
async fn tool_declarations_are_validated() {
    let Some(app) = TestApp::spawn(agentry_testkit::Backend::Sqlite).await else {
        return;
    };
    let u = app.register("Alice").await;
    for bad in [
        json!([{"type": "builtin", "name": "shell"}]),
        json!([{"type": "http", "name": "x y", "url": "https://example.com"}]),
        json!([{"type": "http", "name": "t", "url": "https://example.com", "headers": {"A": {"secret": true}}}]),
        json!("nope"),
    ] {
        let r = app
            .post(
                "/agents",
                Some(&u.token),
                json!({"name": "A", "tools": bad}),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert!(
            r.body["error"]["details"]["fields"]["tools"].is_array(),
            "{}",
            r.text
        );
    }
    let _ = Duration::ZERO;
}
