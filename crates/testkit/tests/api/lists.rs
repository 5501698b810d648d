//! Lists of agents, tasks and executions (filters, sorts, paging), and the errors that bad
//! input to the runtime's routes gets.

use agentry_testkit::mock::{MockProvider, Reply};

use super::executions::{make_agent, mock_provider, run};
use super::*;

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
    // Search words match themselves: `%` and `_` are no wildcards.
    for q in ["%25", "_", "%5C"] {
        let r = app.get(&format!("/agents?q={q}"), &u.token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["data"], json!([]), "q={q}: {}", r.text);
    }
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
