//! Conversations: multi-turn replies with the whole history as context, each multitask
//! strategy, closed and reassigned conversations, and replies streamed on the same request.

use std::time::Duration;

use agentry_testkit::mock::{MockProvider, Reply};

use super::executions::{make_agent, mock_provider, poll};
use super::*;

async fn setup(app: &TestApp, strategy: &str) -> (MockProvider, User, String, String) {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let pid = mock_provider(app, &u, &mock, "openai").await;
    let agent = make_agent(
        app,
        &u,
        json!({"name": "Chatty", "provider_id": pid, "instructions": "Be brief."}),
    )
    .await;
    let aid = agent["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/conversations",
            Some(&u.token),
            json!({"agent_id": aid, "title": "Support", "multitask_strategy": strategy}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "open");
    assert_eq!(r.body["multitask_strategy"], strategy);
    let cid = r.body["id"].as_str().unwrap().to_string();
    (mock, u, aid, cid)
}

async fn say(app: &TestApp, u: &User, cid: &str, content: &str) -> Resp {
    app.post(
        &format!("/conversations/{cid}/messages"),
        Some(&u.token),
        json!({"content": content}),
    )
    .await
}

async fn finished(app: &TestApp, u: &User, eid: &str) -> Value {
    poll(app, &u.token, eid, |e| {
        !matches!(e["status"].as_str(), Some("pending" | "running"))
    })
    .await
}

/// `(role, content)` of each message the provider was sent in call `i`.
fn sent(mock: &MockProvider, i: usize) -> Vec<(String, String)> {
    mock.requests()[i].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn messages(app: &TestApp, u: &User, cid: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/conversations/{cid}/messages"), &u.token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().unwrap().clone()
}

both_backends!(a_multi_turn_chat_sends_the_whole_history, |app| {
    let (mock, u, _, cid) = setup(&app, "enqueue").await;
    mock.push(Reply::text("Hello Alice."));
    mock.push(Reply::text("You said your name is Alice."));
    let r = say(&app, &u, &cid, "Hi, I am Alice.").await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["message"]["role"], "user");
    // `delivered` once the reply has started, which may already be so.
    let status = r.body["message"]["status"].as_str().unwrap();
    assert!(["sent", "delivered"].contains(&status), "{status}");
    let e1 = finished(&app, &u, r.body["execution_id"].as_str().unwrap()).await;
    assert_eq!(e1["status"], "success");
    assert_eq!(e1["conversation_id"], cid.as_str());
    let r = say(&app, &u, &cid, "What is my name?").await;
    let e2 = finished(&app, &u, r.body["execution_id"].as_str().unwrap()).await;
    assert_eq!(e2["output"]["text"], "You said your name is Alice.");
    assert_eq!(
        sent(&mock, 1),
        pairs(&[
            ("system", "Be brief."),
            ("user", "Hi, I am Alice."),
            ("assistant", "Hello Alice."),
            ("user", "What is my name?"),
        ])
    );
    let list = messages(&app, &u, &cid).await;
    let got: Vec<(&str, &str, &str)> = list
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("user", "Hi, I am Alice.", "delivered"),
            ("assistant", "Hello Alice.", "delivered"),
            ("user", "What is my name?", "delivered"),
            ("assistant", "You said your name is Alice.", "delivered"),
        ]
    );
    assert_eq!(list[1]["reply_to"], list[0]["id"]);
    assert_eq!(list[1]["execution_id"], e1["id"]);
    assert!(list[1]["usage"]["output_tokens"].as_i64().unwrap() > 0);
    assert!(list[0]["usage"].is_null());
    // Paging by `after`.
    let r = app
        .get(&format!("/conversations/{cid}/messages?limit=2"), &u.token)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    let next = r.body["next_cursor"].as_str().unwrap();
    let r = app
        .get(
            &format!("/conversations/{cid}/messages?after={next}&limit=50"),
            &u.token,
        )
        .await;
    assert_eq!(r.body["data"][0]["content"], "What is my name?");
    assert!(r.body["next_cursor"].is_null());
    let r = app.get(&format!("/conversations/{cid}"), &u.token).await;
    assert!(r.body["last_message_at"].is_string());
});

both_backends!(reject_refuses_a_message_while_a_reply_runs, |app| {
    let (mock, u, _, cid) = setup(&app, "reject").await;
    mock.push(Reply::Hang);
    let r = say(&app, &u, &cid, "first").await;
    let e1 = r.body["execution_id"].as_str().unwrap().to_string();
    mock.wait_calls(1, Duration::from_secs(20)).await;
    let r = say(&app, &u, &cid, "second").await;
    assert_eq!((r.status, r.code()), (409, "conversation_busy"));
    // Nothing was stored for the refused message.
    assert_eq!(messages(&app, &u, &cid).await.len(), 1);
    let r = app
        .post(
            &format!("/executions/{e1}/cancel"),
            Some(&u.token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202);
    mock.push(Reply::text("ok now"));
    let r = say(&app, &u, &cid, "third").await;
    assert_eq!(r.status, 202, "{}", r.text);
    let e = finished(&app, &u, r.body["execution_id"].as_str().unwrap()).await;
    assert_eq!(e["status"], "success");
    let list = messages(&app, &u, &cid).await;
    assert_eq!(list[0]["status"], "failed");
});

both_backends!(enqueue_answers_in_order, |app| {
    let (mock, u, _, cid) = setup(&app, "enqueue").await;
    mock.push(Reply::Delay(
        Duration::from_millis(400),
        Box::new(Reply::text("answer one")),
    ));
    mock.push(Reply::text("answer two"));
    let r1 = say(&app, &u, &cid, "one").await;
    let r2 = say(&app, &u, &cid, "two").await;
    assert_eq!((r1.status, r2.status), (202, 202));
    let e2 = finished(&app, &u, r2.body["execution_id"].as_str().unwrap()).await;
    let e1 = finished(&app, &u, r1.body["execution_id"].as_str().unwrap()).await;
    assert_eq!(
        (e1["status"].as_str(), e2["status"].as_str()),
        (Some("success"), Some("success"))
    );
    // The second waited for the first, and saw its answer.
    assert!(e2["started_at"].as_str().unwrap() >= e1["completed_at"].as_str().unwrap());
    assert_eq!(
        sent(&mock, 1),
        pairs(&[
            ("system", "Be brief."),
            ("user", "one"),
            ("assistant", "answer one"),
            ("user", "two"),
        ])
    );
    let order: Vec<String> = messages(&app, &u, &cid)
        .await
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, ["one", "two", "answer one", "answer two"]);
});

both_backends!(interrupt_cancels_the_reply_in_progress, |app| {
    let (mock, u, _, cid) = setup(&app, "interrupt").await;
    mock.push(Reply::Hang);
    mock.push(Reply::text("fresh answer"));
    let r1 = say(&app, &u, &cid, "slow question").await;
    let e1 = r1.body["execution_id"].as_str().unwrap().to_string();
    mock.wait_calls(1, Duration::from_secs(20)).await;
    let r2 = say(&app, &u, &cid, "never mind, this instead").await;
    assert_eq!(r2.status, 202, "{}", r2.text);
    let first = app.get(&format!("/executions/{e1}"), &u.token).await;
    assert_eq!(first.body["status"], "cancelled");
    let e2 = finished(&app, &u, r2.body["execution_id"].as_str().unwrap()).await;
    assert_eq!(e2["output"]["text"], "fresh answer");
    let list = messages(&app, &u, &cid).await;
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list.len(), 3);
});

both_backends!(closed_and_reassigned_conversations, |app| {
    let (mock, u, _, cid) = setup(&app, "enqueue").await;
    let pid = mock_provider(&app, &u, &mock, "anthropic").await;
    let other = make_agent(&app, &u, json!({"name": "Other", "provider_id": pid})).await;
    let r = app
        .call(
            "PUT",
            &format!("/conversations/{cid}/assign"),
            Some(&u.token),
            Some(json!({"agent_id": other["id"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["agent_id"], other["id"]);
    mock.push(Reply::text("from the other agent"));
    let r = say(&app, &u, &cid, "hello").await;
    let e = finished(&app, &u, r.body["execution_id"].as_str().unwrap()).await;
    assert_eq!(e["agent_id"], other["id"]);
    assert!(
        mock.requests()[0].path.ends_with("/messages"),
        "sent through Anthropic"
    );
    // Another org's agent, an unknown one, a bad body.
    let eve = app.register("Eve").await;
    let eves = make_agent(&app, &eve, json!({"name": "Eve's"})).await;
    let r = app
        .call(
            "PUT",
            &format!("/conversations/{cid}/assign"),
            Some(&u.token),
            Some(json!({"agent_id": eves["id"]})),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body["error"]["details"]["fields"]["agent_id"].is_array());
    let r = app
        .call(
            "PUT",
            &format!("/conversations/{cid}/assign"),
            Some(&u.token),
            Some(json!({"agent": 1})),
        )
        .await;
    assert_eq!(r.status, 422);
    // Closed: no new messages.
    let r = app
        .call(
            "PUT",
            &format!("/conversations/{cid}/close"),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("closed")));
    let r = say(&app, &u, &cid, "anyone?").await;
    assert_eq!((r.status, r.code()), (409, "invalid_state"));
    let r = app.get("/conversations?status=closed", &u.token).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let r = app.get("/conversations?status=gone", &u.token).await;
    assert_eq!(r.status, 422);
    // Other orgs see nothing; delete removes the messages.
    assert_eq!(
        app.get(&format!("/conversations/{cid}"), &eve.token)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/conversations/{cid}/messages"), &eve.token)
            .await
            .status,
        404
    );
    assert_eq!(say(&app, &eve, &cid, "hi").await.status, 404);
    let r = app
        .call(
            "DELETE",
            &format!("/conversations/{cid}"),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        app.get(&format!("/conversations/{cid}"), &u.token)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(
            &format!("/executions/{}", e["id"].as_str().unwrap()),
            &u.token
        )
        .await
        .status,
        200
    );
});

both_backends!(a_reply_streams_back_on_the_same_request, |app| {
    let (mock, u, _, cid) = setup(&app, "enqueue").await;
    let text = "Streaming straight back to the caller, word by word.";
    mock.push(Reply::Paced {
        text: text.into(),
        gap: Duration::from_millis(5),
    });
    let events = app
        .sse(
            &format!("/conversations/{cid}/messages"),
            &u.token,
            Some(json!({"content": "stream it"})),
            &[],
        )
        .await
        .rest()
        .await;
    let streamed: String = events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| e.data["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed, text);
    let done = &events.last().unwrap().data;
    assert_eq!(done["output"]["text"], text);
    assert_eq!(done["conversation_id"], cid.as_str());
});

both_backends!(message_input_is_checked, |app| {
    let (_mock, u, aid, cid) = setup(&app, "enqueue").await;
    let path = format!("/conversations/{cid}/messages");
    for (body, field) in [
        (json!({"content": ""}), "content"),
        (json!({"content": "   "}), "content"),
        (json!({"content": "x".repeat(100_001)}), "content"),
        (
            json!({"content": "hi", "client_msg_id": ""}),
            "client_msg_id",
        ),
    ] {
        let r = app.post(&path, Some(&u.token), body).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(
            r.body["error"]["details"]["fields"][field].is_array(),
            "{}",
            r.text
        );
    }
    let r = app.post(&path, Some(&u.token), json!({"content": 5})).await;
    assert_eq!(r.status, 422);
    let r = app.post(&path, Some(&u.token), json!({"text": "hi"})).await;
    assert_eq!(r.status, 422);
    for body in [
        json!({"agent_id": "nope"}),
        json!({"agent_id": aid, "multitask_strategy": "shout"}),
        json!({"agent_id": aid, "title": "a\u{7}b"}),
        json!({"agent_id": uuid::Uuid::now_v7()}),
    ] {
        let r = app.post("/conversations", Some(&u.token), body).await;
        assert_eq!(r.status, 422, "{}", r.text);
    }
    // The same Idempotency-Key and body: one message, one reply.
    let h = [("Idempotency-Key", "msg-1")];
    let a = app
        .call_with(
            "POST",
            &path,
            Some(&u.token),
            Some(json!({"content": "once"})),
            &h,
        )
        .await;
    let b = app
        .call_with(
            "POST",
            &path,
            Some(&u.token),
            Some(json!({"content": "once"})),
            &h,
        )
        .await;
    assert_eq!((a.status, b.status), (202, 202));
    assert_eq!(a.body, b.body);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    let c = app
        .call_with(
            "POST",
            &path,
            Some(&u.token),
            Some(json!({"content": "twice"})),
            &h,
        )
        .await;
    assert_eq!((c.status, c.code()), (409, "idempotency_key_reused"));
});

both_backends!(history_is_trimmed_to_the_agents_context_budget, |app| {
    let (mock, u, aid, cid) = setup(&app, "enqueue").await;
    let r = app
        .call(
            "PATCH",
            &format!("/agents/{aid}"),
            Some(&u.token),
            Some(json!({"max_context_tokens": 300})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["max_context_tokens"].as_i64()),
        (200, Some(300))
    );
    let long = "word ".repeat(100); // about 129 tokens each
    for i in 0..3 {
        mock.push(Reply::text(&format!("reply {i}")));
        let r = say(&app, &u, &cid, &format!("{i} {long}")).await;
        finished(&app, &u, r.body["execution_id"].as_str().unwrap()).await;
    }
    let last = sent(&mock, 2);
    // The instructions stay; the oldest turns went; the newest message is there.
    assert_eq!(last[0], ("system".to_string(), "Be brief.".to_string()));
    assert!(last.len() < 6, "{last:?}");
    assert!(last.last().unwrap().1.starts_with("2 "));
    assert!(last.iter().all(|(_, c)| !c.starts_with("0 ")));
    let r = app
        .call(
            "PATCH",
            &format!("/agents/{aid}"),
            Some(&u.token),
            Some(json!({"max_context_tokens": 5})),
        )
        .await;
    assert_eq!(r.status, 422);
});
