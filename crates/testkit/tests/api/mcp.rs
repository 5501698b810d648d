//! MCP servers: managed over the API with their secrets sealed, asked for their tools, and
//! called by agents, over Streamable HTTP (a server this test starts) and stdio (the testkit's
//! `mock-mcp` binary); a server that is down is a clear tool error.

use agentry_testkit::mcp::McpServer;
use agentry_testkit::mock::{MockProvider, Reply};

use super::executions::{make_agent, mock_provider, poll};
use super::*;

pub(crate) fn tool_calls(calls: &[(&str, Value)]) -> Reply {
    Reply::Tools(
        calls
            .iter()
            .map(|(n, a)| (n.to_string(), a.clone()))
            .collect(),
    )
}

pub(crate) async fn add_mcp_server(app: &TestApp, u: &User, body: Value) -> Value {
    let r = app.post("/mcp-servers", Some(&u.token), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

pub(crate) async fn run_to_end(app: &TestApp, u: &User, agent: &Value, input: Value) -> Value {
    let r = app
        .post(
            "/executions",
            Some(&u.token),
            json!({"agent_id": agent["id"], "input": input}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    poll(app, &u.token, &id, |e| {
        matches!(
            e["status"].as_str(),
            Some("success" | "failed" | "timeout" | "cancelled")
        )
    })
    .await
}

pub(crate) async fn tool_steps(app: &TestApp, u: &User, id: &str) -> Vec<Value> {
    let r = app.get(&format!("/executions/{id}/steps"), &u.token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "tool")
        .cloned()
        .collect()
}

both_backends!(mcp_servers_are_managed_and_secrets_kept, |app| {
    let server = McpServer::start().await;
    let u = app.register("Alice").await;
    let m = add_mcp_server(
        &app,
        &u,
        json!({"name": "Calculator", "transport": "streamable_http", "url": server.url(),
               "headers": {"Authorization": "Bearer mcp-secret-9"}}),
    )
    .await;
    assert!(!m.to_string().contains("mcp-secret-9"), "{m}");
    assert_eq!(m["header_names"], json!(["Authorization"]));
    assert_eq!(m["timeout_seconds"], 30);
    let id = m["id"].as_str().unwrap();
    let r = app.get("/mcp-servers", &u.token).await;
    assert_eq!(
        r.body["data"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    let r = app
        .call(
            "PATCH",
            &format!("/mcp-servers/{id}"),
            Some(&u.token),
            Some(json!({"name": "Calc", "timeout_seconds": 10})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Calc");
    assert_eq!(r.body["header_names"], json!(["Authorization"]));
    // Its tools, asked of it now, with the secret header sent along.
    let r = app.get(&format!("/mcp-servers/{id}/tools"), &u.token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["add", "shout", "fail", "env"]);
    assert_eq!(
        r.body["data"][0]["input_schema"]["required"],
        json!(["a", "b"])
    );
    let seen = server.seen();
    assert_eq!(seen[0].method, "initialize");
    assert!(seen.iter().any(|s| s.method == "tools/list"));
    assert!(seen.iter().filter(|s| s.method != "DELETE").all(|s| {
        s.headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer mcp-secret-9")
    }));
    // Bad input.
    for (body, field) in [
        (json!({"name": "X", "transport": "streamable_http"}), "url"),
        (
            json!({"name": "X", "transport": "carrier-pigeon", "url": server.url()}),
            "transport",
        ),
        (
            json!({"name": "X", "transport": "streamable_http", "url": "ftp://example.com"}),
            "url",
        ),
        (
            json!({"name": "X", "transport": "streamable_http", "url": "http://169.254.169.254/mcp"}),
            "url",
        ),
        (
            json!({"name": "X", "transport": "stdio", "command": "mock-mcp"}),
            "transport",
        ),
        (
            json!({"name": "X", "transport": "streamable_http", "url": server.url(), "command": "ls"}),
            "command",
        ),
        (
            json!({"name": "X", "transport": "streamable_http", "url": server.url(), "timeout_seconds": 0}),
            "timeout_seconds",
        ),
        (
            json!({"name": "X", "transport": "streamable_http", "url": server.url(), "headers": {"Bad Name": "v"}}),
            "headers",
        ),
    ] {
        let r = app.post("/mcp-servers", Some(&u.token), body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert!(
            r.body["error"]["details"]["fields"][field].is_array(),
            "{body}: {}",
            r.text
        );
    }
    let r = app
        .post(
            "/mcp-servers",
            Some(&u.token),
            json!({"name": "Calc", "transport": "streamable_http", "url": server.url()}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "mcp_server_name_taken");
    // A server that is not there answers 502 with the reason.
    let gone = add_mcp_server(
        &app,
        &u,
        json!({"name": "Gone", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp"}),
    )
    .await;
    let r = app
        .get(
            &format!("/mcp-servers/{}/tools", gone["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "mcp_unavailable");
    // Agents may name only this org's servers; a server in use stays.
    let r = app
        .post(
            "/agents",
            Some(&u.token),
            json!({"name": "A", "tools": [{"type": "mcp", "server_id": uuid::Uuid::now_v7()}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let bob = app.register("Bob").await;
    let r = app.get(&format!("/mcp-servers/{id}"), &bob.token).await;
    assert_eq!(r.status, 404);
    let r = app
        .post(
            "/agents",
            Some(&bob.token),
            json!({"name": "A", "tools": [{"type": "mcp", "server_id": id}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    make_agent(
        &app,
        &u,
        json!({"name": "A", "tools": [{"type": "mcp", "server_id": id}]}),
    )
    .await;
    let r = app
        .call(
            "DELETE",
            &format!("/mcp-servers/{id}"),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "mcp_server_in_use");
    let r = app
        .call(
            "DELETE",
            &format!("/mcp-servers/{}", gone["id"].as_str().unwrap()),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
});

both_backends!(agents_call_mcp_tools_over_streamable_http, |app| {
    let server = McpServer::start().await;
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    let m = add_mcp_server(
        &app,
        &u,
        json!({"name": "Calculator", "transport": "streamable_http", "url": server.url()}),
    )
    .await;
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Mathematician", "provider_id": pid,
               "tools": [{"type": "mcp", "server_id": m["id"], "tools": ["add", "fail"]}]}),
    )
    .await;
    mock.push(tool_calls(&[
        ("add", json!({"a": 2, "b": 3})),
        ("fail", json!({})),
        ("shout", json!({"text": "hi"})),
    ]));
    mock.push(Reply::text("2 + 3 = 5."));
    let e = run_to_end(&app, &u, &agent, json!("What is 2 + 3?")).await;
    assert_eq!(e["status"], "success", "{e}");
    let s = tool_steps(&app, &u, e["id"].as_str().unwrap()).await;
    assert_eq!(s.len(), 3);
    assert_eq!(s[0]["name"], "add");
    assert_eq!(s[0]["status"], "success");
    assert_eq!(s[0]["output"]["result"], json!({"sum": 5.0}));
    assert_eq!(s[1]["status"], "failed");
    assert_eq!(s[1]["error"]["code"], "tool_failed");
    assert_eq!(s[1]["error"]["message"], "the tool broke");
    // Only the chosen tools were offered; `shout` is unknown to this agent.
    assert_eq!(s[2]["error"]["code"], "unknown_tool");
    let reqs = mock.requests();
    let offered: Vec<&str> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, vec!["add", "fail"]);
    assert_eq!(
        reqs[0].body["tools"][0]["function"]["parameters"]["required"],
        json!(["a", "b"])
    );
    let results: Vec<&Value> = reqs[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(results[0]["content"], "{\"sum\":5.0}");
    assert!(server.seen().iter().any(|s| s.method == "tools/call"));
    // Arguments are checked against the server's schema before the call.
    mock.push(tool_calls(&[("add", json!({"a": "two"}))]));
    mock.push(Reply::text("Sorry."));
    let e = run_to_end(&app, &u, &agent, json!("Add two.")).await;
    let s = tool_steps(&app, &u, e["id"].as_str().unwrap()).await;
    assert_eq!(s[0]["error"]["code"], "invalid_arguments", "{}", s[0]);
});

both_backends!(a_server_that_is_down_is_a_clear_tool_error, |app| {
    let server = McpServer::start().await;
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    let m = add_mcp_server(
        &app,
        &u,
        json!({"name": "Flaky", "transport": "streamable_http", "url": server.url(), "timeout_seconds": 5}),
    )
    .await;
    let agent = make_agent(
        &app,
        &u,
        json!({"name": "Hopeful", "provider_id": pid,
               "tools": [{"type": "mcp", "server_id": m["id"], "tools": ["add"]}]}),
    )
    .await;
    drop(server);
    mock.push(tool_calls(&[("add", json!({"a": 1, "b": 1}))]));
    mock.push(Reply::text("The calculator is down."));
    let e = run_to_end(&app, &u, &agent, json!("1 + 1?")).await;
    assert_eq!(e["status"], "success", "{e}");
    let s = tool_steps(&app, &u, e["id"].as_str().unwrap()).await;
    assert_eq!(s[0]["status"], "failed");
    assert_eq!(s[0]["error"]["code"], "mcp_unavailable", "{}", s[0]);
    assert!(
        s[0]["error"]["message"].as_str().unwrap().contains("Flaky"),
        "{}",
        s[0]
    );
    let logs = app
        .get(
            &format!("/agents/{}/logs", agent["id"].as_str().unwrap()),
            &u.token,
        )
        .await;
    assert!(
        logs.text.contains("listing the tools of MCP server Flaky"),
        "{}",
        logs.text
    );
});

fn stdio_on(s: &mut agentry_testkit::Setup) {
    s.tools.mcp_stdio = true;
}

both_backends!(
    stdio_servers_run_with_only_their_own_environment,
    setup = stdio_on,
    |app| {
        let mock = MockProvider::start().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "openai").await;
        let m = add_mcp_server(
            &app,
            &u,
            json!({"name": "Local", "transport": "stdio", "command": env!("CARGO_BIN_EXE_mock-mcp"),
               "args": ["--quiet"], "env": {"MOCK_TOKEN": "stdio-secret-7"}}),
        )
        .await;
        assert!(!m.to_string().contains("stdio-secret-7"), "{m}");
        assert_eq!(m["env_names"], json!(["MOCK_TOKEN"]));
        let r = app
            .get(
                &format!("/mcp-servers/{}/tools", m["id"].as_str().unwrap()),
                &u.token,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["data"].as_array().map(Vec::len), Some(4));
        let agent = make_agent(
        &app,
        &u,
        json!({"name": "Local", "provider_id": pid, "tools": [{"type": "mcp", "server_id": m["id"]}]}),
    )
    .await;
        mock.push(tool_calls(&[
            ("shout", json!({"text": "quiet"})),
            ("env", json!({"name": "MOCK_TOKEN"})),
            ("env", json!({"name": "CARGO_MANIFEST_DIR"})),
        ]));
        mock.push(Reply::text("QUIET."));
        let e = run_to_end(&app, &u, &agent, json!("Shout quiet.")).await;
        assert_eq!(e["status"], "success", "{e}");
        let s = tool_steps(&app, &u, e["id"].as_str().unwrap()).await;
        assert_eq!(s[0]["output"]["result"], "QUIET", "{}", s[0]);
        assert_eq!(s[1]["output"]["result"], "stdio-secret-7");
        // The server's own environment does not leak into the process.
        assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
        assert_eq!(s[2]["output"]["result"], "");
        // A command that is not there is a clear error.
        let bad = add_mcp_server(
            &app,
            &u,
            json!({"name": "Missing", "transport": "stdio", "command": "/nonexistent/mcp-server"}),
        )
        .await;
        let r = app
            .get(
                &format!("/mcp-servers/{}/tools", bad["id"].as_str().unwrap()),
                &u.token,
            )
            .await;
        assert_eq!(r.status, 502, "{}", r.text);
        assert_eq!(r.body["error"]["code"], "mcp_unavailable");
    }
);
