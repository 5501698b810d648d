//! Agents, tasks and executions as resources over HTTP: versions, idempotency keys, tasks that
//! follow their executions.

use agentry_testkit::mock::{MockProvider, Reply};

use super::executions::{make_agent, mock_provider, poll, run};
use super::*;

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
