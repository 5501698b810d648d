//! The whole of issue 5 in one story: an orchestrator hands work to two agents in turn; the
//! first, supervised, calls an MCP tool and an HTTP tool once a person approves each call; the
//! second writes the answer up. The tree (executions, steps, approvals, tokens, cost) is read
//! back through the API and the streams.

use agentry_testkit::mcp::McpServer;
use agentry_testkit::mock::{MockProvider, MockUsage, Reply};
use agentry_testkit::tool_server::ToolServer;

use super::executions::{make_agent, mock_provider, poll, set_prices};
use super::mcp::{add_mcp_server, tool_calls};
use super::*;

async fn steps(app: &TestApp, u: &User, id: &str) -> Vec<Value> {
    let r = app.get(&format!("/executions/{id}/steps"), &u.token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().unwrap().clone()
}

fn usage(input: u64, output: u64) -> MockUsage {
    MockUsage {
        input,
        cached: 0,
        output,
        reasoning: 0,
    }
}

fn sum(steps: &[Value], f: impl Fn(&Value) -> i64) -> i64 {
    steps.iter().map(f).sum()
}

both_backends!(
    an_orchestrated_supervised_tree_is_visible_end_to_end,
    |app| {
        let mock = MockProvider::start().await;
        let mcp = McpServer::start().await;
        let web = ToolServer::start().await;
        let u = app.register("Alice").await;
        let pid = mock_provider(&app, &u, &mock, "openai").await;
        set_prices(
            &app,
            &u,
            &pid,
            json!({"mock-model": {"input": 1_000_000, "output": 2_000_000}}),
        )
        .await;
        let calc = add_mcp_server(
            &app,
            &u,
            json!({"name": "Calculator", "transport": "streamable_http", "url": mcp.url()}),
        )
        .await;
        let researcher = make_agent(
            &app,
            &u,
            json!({"name": "Researcher", "provider_id": pid, "autonomy": "supervised",
               "tools": [{"type": "mcp", "server_id": calc["id"], "tools": ["add"]},
                         web.tool("weather", "/weather")]}),
        )
        .await;
        let writer = make_agent(&app, &u, json!({"name": "Writer", "provider_id": pid})).await;
        let boss = make_agent(
            &app,
            &u,
            json!({"name": "Boss", "type": "orchestrator", "provider_id": pid,
               "tools": [{"type": "builtin", "name": "call_agent"}]}),
        )
        .await;
        // The model's turns, in the order they are asked for.
        mock.push(tool_calls(&[(
            "call_agent",
            json!({"agent_id": researcher["id"], "input": "Add 2 and 3, and get the weather."}),
        )]));
        mock.push(tool_calls(&[
            ("add", json!({"a": 2, "b": 3})),
            ("weather", json!({})),
        ]));
        mock.push(Reply::Text {
            text: "The sum is 5; the weather answered.".into(),
            usage: usage(200, 20),
        });
        mock.push(tool_calls(&[(
            "call_agent",
            json!({"agent_id": writer["id"], "input": "Write it up: the sum is 5."}),
        )]));
        mock.push(Reply::Text {
            text: "Report: 2 + 3 = 5.".into(),
            usage: usage(50, 30),
        });
        mock.push(Reply::Text {
            text: "Done: 2 + 3 = 5.".into(),
            usage: usage(300, 10),
        });
        let r = app
            .post(
                "/executions",
                Some(&u.token),
                json!({"agent_id": boss["id"], "input": "Research and report."}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let root = r.body["id"].as_str().unwrap().to_string();

        // The researcher's run waits for a person, once per tool call. The call names its
        // child before creating it (so a resumed call finds it again): wait for both.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let child = loop {
            let s = steps(&app, &u, &root).await;
            if let Some(c) = s
                .get(1)
                .and_then(|s| s["input"]["child_execution_id"].as_str())
                && app.get(&format!("/executions/{c}"), &u.token).await.status == 200
            {
                break c.to_string();
            }
            assert!(tokio::time::Instant::now() < deadline, "no child: {s:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let e = poll(&app, &u.token, &child, |e| {
            e["status"] == "awaiting_approval"
        })
        .await;
        assert_eq!(e["parent_execution_id"], json!(root));
        let waiting: Vec<Value> = steps(&app, &u, &child)
            .await
            .into_iter()
            .filter(|s| s["kind"] == "approval")
            .collect();
        let names: Vec<&str> = waiting
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["add", "weather"]);
        assert_eq!(
            mcp.seen()
                .iter()
                .filter(|s| s.method == "tools/call")
                .count(),
            0
        );
        assert_eq!(web.hits("/weather"), 0);
        for s in &waiting {
            let r = app
                .post(
                    &format!(
                        "/executions/{child}/approvals/{}",
                        s["id"].as_str().unwrap()
                    ),
                    Some(&u.token),
                    json!({"approve": true, "comment": "fine"}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let e = poll(&app, &u.token, &root, |e| {
            matches!(e["status"].as_str(), Some("success" | "failed"))
        })
        .await;
        assert_eq!(e["status"], "success", "{e}");
        assert_eq!(e["output"]["text"], "Done: 2 + 3 = 5.");

        // The tree through the API.
        let top = steps(&app, &u, &root).await;
        let kinds: Vec<(&str, &str)> = top
            .iter()
            .map(|s| (s["kind"].as_str().unwrap(), s["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("llm", "mock-model"),
                ("tool", "call_agent"),
                ("llm", "mock-model"),
                ("tool", "call_agent"),
                ("llm", "mock-model"),
            ]
        );
        let second = top[3]["output"]["child_execution_id"].as_str().unwrap();
        assert_eq!(top[1]["output"]["child_execution_id"], json!(child));
        let research = steps(&app, &u, &child).await;
        let kinds: Vec<(&str, &str, &str)> = research
            .iter()
            .map(|s| {
                (
                    s["kind"].as_str().unwrap(),
                    s["name"].as_str().unwrap(),
                    s["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("llm", "mock-model", "success"),
                ("approval", "add", "approved"),
                ("approval", "weather", "approved"),
                ("tool", "add", "success"),
                ("tool", "weather", "success"),
                ("llm", "mock-model", "success"),
            ]
        );
        assert_eq!(research[3]["output"]["result"], json!({"sum": 5.0}));
        assert_eq!(research[4]["output"]["result"]["body"]["n"], 1);
        assert_eq!(web.hits("/weather"), 1);
        let writing = steps(&app, &u, second).await;
        assert_eq!(writing.len(), 1);
        // Tokens and cost add up the tree: each call_agent step carries its child's totals.
        for (parent_step, id) in [(&top[1], child.as_str()), (&top[3], second)] {
            let c = app.get(&format!("/executions/{id}"), &u.token).await.body;
            assert_eq!(c["status"], "success", "{c}");
            assert_eq!(c["parent_execution_id"], json!(root));
            assert!(c["cost_micros"].as_i64().unwrap() > 0, "{c}");
            assert_eq!(parent_step["cost_micros"], c["cost_micros"]);
            assert_eq!(
                parent_step["usage"]["input_tokens"],
                c["usage"]["input_tokens"]
            );
        }
        let child_exec = app
            .get(&format!("/executions/{child}"), &u.token)
            .await
            .body;
        assert_eq!(
            child_exec["usage"]["input_tokens"].as_i64().unwrap(),
            sum(&research, |s| s["usage"]["input_tokens"]
                .as_i64()
                .unwrap_or(0))
        );
        assert_eq!(
            e["cost_micros"].as_i64().unwrap(),
            sum(&top, |s| s["cost_micros"].as_i64().unwrap_or(0))
        );
        assert_eq!(
            e["usage"]["output_tokens"].as_i64().unwrap(),
            sum(&top, |s| s["usage"]["output_tokens"].as_i64().unwrap_or(0))
        );
        // The approvals are in the audit log with who decided.
        let ev = app
            .get(&format!("/events?execution_id={child}"), &u.token)
            .await;
        assert_eq!(
            ev.text.matches("execution.approval_requested").count(),
            2,
            "{}",
            ev.text
        );
        assert!(ev.text.contains("execution.approved"), "{}", ev.text);

        // The tree through the streams: the root names its children, each child tells its own.
        let mut sse = app
            .sse(&format!("/executions/{root}/stream"), &u.token, None, &[])
            .await;
        let events = sse.rest().await;
        let results: Vec<&Value> = events
            .iter()
            .filter(|e| e.event == "tool_result")
            .map(|e| &e.data)
            .collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["output"]["child_execution_id"], json!(child));
        assert_eq!(events.last().map(|e| e.event.as_str()), Some("done"));
        let mut sse = app
            .sse(&format!("/executions/{child}/stream"), &u.token, None, &[])
            .await;
        let names: Vec<String> = sse.rest().await.into_iter().map(|e| e.event).collect();
        for want in [
            "approval_requested",
            "tool_call",
            "tool_result",
            "usage",
            "done",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert_eq!(
            names.iter().filter(|n| *n == "approval_requested").count(),
            2,
            "{names:?}"
        );
    }
);
