//! Crash recovery with the real binary: executions in flight when `agentry serve` is killed
//! with SIGKILL are resumed after their lease expires on the next start; a step the journal
//! shows finished is not sent to the provider again, nor a finished tool call made again;
//! nothing stays `running`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use agentry_store::{Json, Store, StoreOptions};
use agentry_testkit::mock::{MockProvider, Reply};
use agentry_testkit::tool_server::ToolServer;
use agentry_testkit::{Backend, TestDb};
use common::Server;
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(30);

/// Registers a user and adds a provider pointing at `mock`: (token, org id, provider id).
async fn account(srv: &Server, mock: &MockProvider, email: &str) -> (String, uuid::Uuid, String) {
    let (s, reg) = srv
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": email, "password": "correct horse battery", "name": "Crash"})),
        )
        .await;
    assert_eq!(s, 201, "{reg}");
    let token = reg["access_token"].as_str().unwrap().to_string();
    let (s, p) = srv
        .call(
            "POST",
            "/providers",
            Some(&token),
            Some(
                json!({"name": "mock", "kind": "openai", "base_url": mock.openai_base(),
                        "api_key": "sk-crash", "default_model": "mock-model"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let org = reg["org"]["id"].as_str().unwrap().parse().unwrap();
    (token, org, p["id"].as_str().unwrap().to_string())
}

/// Polls the execution until it has left `pending` and `running`.
async fn finished(srv: &Server, t: Option<&str>, id: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (s, e) = srv.call("GET", &format!("/executions/{id}"), t, None).await;
        assert_eq!(s, 200);
        if !["pending", "running"].contains(&e["status"].as_str().unwrap()) {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still unfinished: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn crash_and_resume(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mock = MockProvider::start().await;
    mock.set_default(Reply::Hang);
    let srv = Server::start(&db).await;
    let (token, org, pid) = account(&srv, &mock, "crash@example.com").await;
    let t = Some(token.as_str());
    let (s, agent) = srv
        .call(
            "POST",
            "/agents",
            t,
            Some(json!({"name": "Survivor", "provider_id": pid})),
        )
        .await;
    assert_eq!(s, 201, "{agent}");
    let mut ids = vec![];
    for i in 0..5 {
        let (s, e) = srv
            .call(
                "POST",
                "/executions",
                t,
                Some(json!({"agent_id": agent["id"], "input": format!("job {i}")})),
            )
            .await;
        assert_eq!(s, 202, "{e}");
        ids.push(e["id"].as_str().unwrap().to_string());
    }
    // Every call is in flight at the provider, then the process dies.
    mock.wait_calls(5, WITHIN).await;
    srv.kill().await;

    // As if the process had died just after journaling the first execution's answer: its
    // step is finished, the execution is still running under the dead process's lease.
    let store = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let first: uuid::Uuid = ids[0].parse().unwrap();
    let mut step = store.steps(org, first).await.unwrap().remove(0);
    assert_eq!(step.status, "running");
    let reply = agentry_providers::ChatResponse {
        model: "mock-model".into(),
        text: "journaled answer".into(),
        usage: agentry_providers::Usage {
            input_tokens: 3,
            output_tokens: 2,
            ..Default::default()
        },
        finish_reason: Some("stop".into()),
        ..Default::default()
    };
    step.status = "success".into();
    step.output = Some(Json(json!({"text": reply.text, "reply": reply})));
    step.input_tokens = 3;
    step.output_tokens = 2;
    step.completed_at = Some(chrono::Utc::now());
    store.finish_step(&step).await.unwrap();
    drop(store);

    mock.set_default(Reply::text("recovered"));
    let before = mock.calls();
    let srv = Server::start(&db).await;
    for (i, id) in ids.iter().enumerate() {
        let e = finished(&srv, t, id).await;
        assert_eq!(e["status"], "success", "{e}");
        assert_eq!(e["attempt"], 2, "{e}");
        let want = if i == 0 {
            "journaled answer"
        } else {
            "recovered"
        };
        assert_eq!(e["output"]["text"], want);
        // The audit event is written just after the execution's row: poll for it.
        let deadline = tokio::time::Instant::now() + WITHIN;
        let events = loop {
            let (_, events) = srv
                .call(
                    "GET",
                    &format!("/events?execution_id={id}&type=execution.completed"),
                    t,
                    None,
                )
                .await;
            if !events["data"].as_array().unwrap().is_empty() {
                break events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no completion event"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            events["data"].as_array().unwrap().len(),
            1,
            "finished once: {events}"
        );
    }
    // The journaled step was not sent again: only the four others called the provider.
    assert_eq!(mock.calls() - before, 4);
    let (_, running) = srv.call("GET", "/executions?status=running", t, None).await;
    assert_eq!(running["data"], json!([]));
    srv.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_call_resumes_on_sqlite() {
    crash_and_resume(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_call_resumes_on_postgres() {
    crash_and_resume(Backend::Postgres).await;
}

/// Killed while the second of two tool calls hangs: on the next start the first tool's
/// journaled result is used as it is (its server sees one request), the second runs again,
/// and the model is asked only for what comes after.
async fn crash_between_tool_steps(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mock = MockProvider::start().await;
    let tools = ToolServer::start().await;
    tools.hang("/second", true);
    let srv = Server::start(&db).await;
    let (token, org, pid) = account(&srv, &mock, "tools@example.com").await;
    let t = Some(token.as_str());
    let (s, agent) = srv
        .call(
            "POST",
            "/agents",
            t,
            Some(json!({"name": "Two steps", "provider_id": pid,
                        "tools": [tools.tool("first", "/first"), tools.tool("second", "/second")]})),
        )
        .await;
    assert_eq!(s, 201, "{agent}");
    mock.push(Reply::Tools(vec![("first".into(), json!({}))]));
    mock.push(Reply::Tools(vec![("second".into(), json!({}))]));
    mock.set_default(Reply::text("both done"));
    let (s, e) = srv
        .call(
            "POST",
            "/executions",
            t,
            Some(json!({"agent_id": agent["id"], "input": "go"})),
        )
        .await;
    assert_eq!(s, 202, "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    // The second tool call is in flight, then the process dies.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while tools.hits("/second") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second call never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.kill().await;
    assert_eq!(mock.calls(), 2);
    tools.hang("/second", false);

    let srv = Server::start(&db).await;
    let e = finished(&srv, t, &id).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["output"]["text"], "both done");
    assert_eq!(e["attempt"], 2, "{e}");
    assert_eq!(tools.hits("/first"), 1, "the finished tool step ran again");
    assert_eq!(tools.hits("/second"), 2);
    assert_eq!(
        mock.calls(),
        3,
        "only the answer after the second tool was asked for"
    );
    // The last model call saw both results, the first one as journaled.
    let last = &mock.requests()[2].body["messages"];
    let results: Vec<&serde_json::Value> = last
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(results.len(), 2, "{last}");
    assert!(results[0]["content"].as_str().unwrap().contains("\"n\":1"));
    // One step each, all finished.
    let store = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let steps = store.steps(org, id.parse().unwrap()).await.unwrap();
    let kinds: Vec<(&str, &str, &str)> = steps
        .iter()
        .map(|s| (s.kind.as_str(), s.name.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("llm", "mock-model", "success"),
            ("tool", "first", "success"),
            ("llm", "mock-model", "success"),
            ("tool", "second", "success"),
            ("llm", "mock-model", "success"),
        ]
    );
    srv.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_tool_steps_resumes_on_sqlite() {
    crash_between_tool_steps(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_tool_steps_resumes_on_postgres() {
    crash_between_tool_steps(Backend::Postgres).await;
}
