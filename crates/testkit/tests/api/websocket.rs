//! The WebSocket with a real client: the three ways to authenticate, subscribe and replay,
//! chat with typing indicators, tenancy on topics, a slow client lagged, idle and expired
//! sockets closed, and the per-principal limit.

use std::time::Duration;

use agentry_testkit::Setup;
use agentry_testkit::mock::{MockProvider, Reply};
use agentry_testkit::ws::{Closed, WsClient};

use super::executions::{make_agent, mock_provider, run};
use super::*;

async fn connect(app: &TestApp, token: &str) -> WsClient {
    let bearer = format!("Bearer {token}");
    app.ws("", &[("Authorization", bearer.as_str())])
        .await
        .expect("the socket opens")
}

async fn subscribe(ws: &mut WsClient, topic: &str, after: Option<i64>) -> Value {
    let mut m = json!({"type": "subscribe", "topic": topic});
    if let Some(a) = after {
        m["after"] = json!(a);
    }
    ws.send(m).await;
    ws.next_where(|v| v["type"] != "event").await
}

async fn echo_agent(app: &TestApp, u: &User) -> String {
    let r = app
        .post(
            "/providers",
            Some(&u.token),
            json!({"name": format!("echo-{}", uuid::Uuid::now_v7().simple()), "kind": "echo"}),
        )
        .await;
    let agent = make_agent(app, u, json!({"name": "Echo", "provider_id": r.body["id"]})).await;
    agent["id"].as_str().unwrap().to_string()
}

both_backends!(three_ways_to_authenticate, |app| {
    let u = app.register("Alice").await;
    // Header.
    let mut ws = connect(&app, &u.token).await;
    assert_eq!(subscribe(&mut ws, "org", None).await["type"], "subscribed");
    // Query parameter.
    let mut ws = app
        .ws(&format!("?access_token={}", u.token), &[])
        .await
        .unwrap();
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await, json!({"type": "pong"}));
    // First message, with an API key.
    let key = app.api_key(&u, "member").await;
    let mut ws = app.ws("", &[]).await.unwrap();
    ws.send(json!({"type": "auth", "token": key})).await;
    let ack = ws.next().await;
    assert_eq!(ack["type"], "authenticated");
    assert_eq!(ack["org_id"], u.org_id.to_string());
    assert_eq!(subscribe(&mut ws, "org", None).await["type"], "subscribed");
    // Bad credentials: refused over HTTP, or closed after a bad auth message.
    assert_eq!(
        app.ws("", &[("Authorization", "Bearer nonsense")])
            .await
            .err(),
        Some(401)
    );
    assert_eq!(app.ws("?access_token=agk_nope", &[]).await.err(), Some(401));
    let mut ws = app.ws("", &[]).await.unwrap();
    ws.send(json!({"type": "auth", "token": "agk_nope"})).await;
    let (got, closed) = ws.until_closed().await;
    assert_eq!(got[0]["code"], "unauthorized");
    assert_eq!(closed, Closed(Some(4001)));
    let mut ws = app.ws("", &[]).await.unwrap();
    ws.send(json!({"type": "subscribe", "topic": "org"})).await;
    let (got, closed) = ws.until_closed().await;
    assert_eq!(got[0]["code"], "unauthorized");
    assert_eq!(closed, Closed(Some(4001)));
    // A plain GET is told to upgrade.
    let r = app.get("/ws", &u.token).await;
    assert_eq!((r.status, r.code()), (426, "upgrade_required"));
});

both_backends!(subscribe_replays_then_goes_live, |app| {
    let u = app.register("Alice").await;
    let agent = echo_agent(&app, &u).await;
    let done = run(&app, &u, &agent, json!("hello socket")).await;
    let id = done["id"].as_str().unwrap();
    let mut ws = connect(&app, &u.token).await;
    // Replay a finished execution from the start: the same events as the SSE stream.
    let sub = subscribe(&mut ws, &format!("execution:{id}"), Some(0)).await;
    assert_eq!(sub["type"], "subscribed");
    let mut events = vec![];
    loop {
        let e = ws.next().await;
        assert_eq!(e["type"], "event");
        assert_eq!(e["topic"], format!("execution:{id}"));
        events.push(e.clone());
        if e["event"] == "done" {
            break;
        }
    }
    let sse = app
        .sse(&format!("/executions/{id}/stream"), &u.token, None, &[])
        .await
        .rest()
        .await;
    assert_eq!(events.len(), sse.len());
    for (w, s) in events.iter().zip(&sse) {
        assert_eq!(w["seq"].as_i64(), s.id);
        assert_eq!(w["event"], s.event.as_str());
        assert_eq!(w["data"], s.data);
    }
    // Live: the org topic from now on sees the next execution, and the agent topic too.
    subscribe(&mut ws, "org", None).await;
    subscribe(&mut ws, &format!("agent:{agent}"), None).await;
    let next = run(&app, &u, &agent, json!("again")).await;
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        let e = ws.next().await;
        if e["event"] == "done" {
            assert_eq!(e["data"]["id"], next["id"]);
            seen.insert(e["topic"].as_str().unwrap().to_string());
        }
    }
    assert!(seen.contains("org") && seen.contains(&format!("agent:{agent}")));
    // Resubscribing from a point replays from there.
    let sub = subscribe(&mut ws, &format!("execution:{id}"), Some(3)).await;
    assert_eq!(sub["after"], 3);
    assert_eq!(ws.next().await["seq"], 4);
});

both_backends!(other_orgs_topics_are_not_found, |app| {
    let u = app.register("Alice").await;
    let agent = echo_agent(&app, &u).await;
    let done = run(&app, &u, &agent, json!("secret")).await;
    let r = app
        .post("/conversations", Some(&u.token), json!({"agent_id": agent}))
        .await;
    let conv = r.body["id"].as_str().unwrap().to_string();
    let eve = app.register("Eve").await;
    let mut ws = connect(&app, &eve.token).await;
    for topic in [
        format!("execution:{}", done["id"].as_str().unwrap()),
        format!("agent:{agent}"),
        format!("conversation:{conv}"),
        "execution:not-an-id".into(),
        "everything".into(),
        format!("org:{}", u.org_id),
    ] {
        let r = subscribe(&mut ws, &topic, Some(0)).await;
        assert_eq!(
            (r["type"].as_str(), r["code"].as_str()),
            (Some("error"), Some("not_found")),
            "{topic}"
        );
    }
    for m in [
        json!({"type": "join_conversation", "conversation_id": conv}),
        json!({"type": "send_message", "conversation_id": conv, "content": "hi", "client_msg_id": "e1"}),
        json!({"type": "typing_start", "conversation_id": conv}),
    ] {
        ws.send(m).await;
        assert_eq!(ws.next().await["code"], "not_found");
    }
    // Bad messages get clear errors and the socket stays up.
    ws.send(json!({"type": "dance"})).await;
    assert_eq!(ws.next().await["code"], "validation_failed");
    ws.send(json!({"type": "subscribe", "topic": "org", "after": -2}))
        .await;
    assert_eq!(ws.next().await["code"], "validation_failed");
    ws.send(json!({"type": "send_message", "conversation_id": conv}))
        .await;
    assert_eq!(ws.next().await["code"], "validation_failed");
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");
});

both_backends!(a_chat_over_the_socket_with_typing, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let bob = app.register("Bob").await;
    app.add_member(&u, u.org_id, &bob, "member").await;
    let pid = mock_provider(&app, &u, &mock, "openai").await;
    let agent = make_agent(&app, &u, json!({"name": "Chat", "provider_id": pid})).await;
    let r = app
        .post(
            "/conversations",
            Some(&u.token),
            json!({"agent_id": agent["id"]}),
        )
        .await;
    let conv = r.body["id"].as_str().unwrap().to_string();
    let org = u.org_id.to_string();
    let mut alice = connect(&app, &u.token).await;
    let bearer = format!("Bearer {}", bob.token);
    let mut bob_ws = app
        .ws(
            "",
            &[
                ("Authorization", bearer.as_str()),
                ("X-Org-Id", org.as_str()),
            ],
        )
        .await
        .unwrap();
    for ws in [&mut alice, &mut bob_ws] {
        ws.send(json!({"type": "join_conversation", "conversation_id": conv}))
            .await;
        let r = ws.next().await;
        assert_eq!(
            (r["type"].as_str(), r["topic"].as_str()),
            (
                Some("subscribed"),
                Some(format!("conversation:{conv}").as_str())
            )
        );
    }
    // Typing reaches the others, not the typist.
    alice
        .send(json!({"type": "typing_start", "conversation_id": conv}))
        .await;
    let t = bob_ws.next().await;
    assert_eq!(t["event"], "user_typing");
    assert_eq!(t["data"]["typing"], true);
    assert_eq!(t["data"]["user_id"], u.id.to_string());
    alice
        .send(json!({"type": "typing_stop", "conversation_id": conv}))
        .await;
    assert_eq!(bob_ws.next().await["data"]["typing"], false);
    alice.send(json!({"type": "ping"})).await;
    assert_eq!(
        alice.next().await["type"],
        "pong",
        "no echo of one's own typing"
    );
    // Send a message: acknowledged with the stored message; everyone sees it and the reply.
    mock.push(Reply::Paced {
        text: "Hi Alice and Bob, nice to meet you.".into(),
        gap: Duration::from_millis(5),
    });
    alice
        .send(json!({"type": "send_message", "conversation_id": conv, "content": "Hello!", "client_msg_id": "c-1"}))
        .await;
    let ack = alice.next_where(|v| v["type"] == "message_ack").await;
    assert_eq!(ack["client_msg_id"], "c-1");
    assert_eq!(ack["message"]["content"], "Hello!");
    assert_eq!(ack["message"]["client_msg_id"], "c-1");
    let mid = ack["message"]["id"].clone();
    let mut streamed = String::new();
    let mut statuses = vec![];
    let mut user_msg = false;
    let reply = loop {
        let e = bob_ws.next().await;
        match e["event"].as_str().unwrap_or_else(|| panic!("{e}")) {
            "new_message" if e["data"]["role"] == "user" => {
                assert_eq!(e["data"]["id"], mid);
                user_msg = true;
            }
            "message_status" => statuses.push(e["data"]["status"].as_str().unwrap().to_string()),
            "agent_response" if e["data"]["done"] == false => {
                streamed.push_str(e["data"]["delta"].as_str().unwrap())
            }
            "agent_response" => break e["data"]["message"].clone(),
            _ => {}
        }
    };
    assert!(user_msg);
    assert_eq!(statuses, ["delivered"]);
    assert_eq!(streamed, "Hi Alice and Bob, nice to meet you.");
    assert_eq!(reply["content"], streamed.as_str());
    assert_eq!(reply["reply_to"], mid);
    // The same over REST.
    let r = app
        .get(&format!("/conversations/{conv}/messages"), &u.token)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    // A viewer may watch but not write.
    let viewer = app.register("Vic").await;
    app.add_member(&u, u.org_id, &viewer, "viewer").await;
    let bearer = format!("Bearer {}", viewer.token);
    let mut vic = app
        .ws(
            "",
            &[
                ("Authorization", bearer.as_str()),
                ("X-Org-Id", org.as_str()),
            ],
        )
        .await
        .unwrap();
    vic.send(json!({"type": "send_message", "conversation_id": conv, "content": "hey", "client_msg_id": "v"})).await;
    let e = vic.next().await;
    assert_eq!(
        (e["code"].as_str(), e["client_msg_id"].as_str()),
        (Some("forbidden"), Some("v"))
    );
});

fn small_buffers(s: &mut Setup) {
    s.api.ws.buffer = 4;
}

both_backends!(
    a_slow_client_is_lagged_and_resumes,
    setup = small_buffers,
    |app| {
        let u = app.register("Alice").await;
        let agent = echo_agent(&app, &u).await;
        // Paused: messages queue without replies, so the topic holds only the messages.
        let r = app
            .post(&format!("/agents/{agent}/pause"), Some(&u.token), json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = app
            .post("/conversations", Some(&u.token), json!({"agent_id": agent}))
            .await;
        let conv = r.body["id"].as_str().unwrap().to_string();
        let mut ws = connect(&app, &u.token).await;
        subscribe(&mut ws, &format!("conversation:{conv}"), None).await;
        // Far more than the socket's queue and the kernel's buffers hold, while nobody reads.
        let big = "z".repeat(90_000);
        let n = 160;
        for _ in 0..n {
            let r = app
                .post(
                    &format!("/conversations/{conv}/messages"),
                    Some(&u.token),
                    json!({"content": big}),
                )
                .await;
            assert_eq!(r.status, 202, "{}", r.text);
        }
        let mut seqs = vec![];
        let lagged = loop {
            let e = ws.next().await;
            if e["type"] == "error" {
                break e;
            }
            seqs.push(e["seq"].as_i64().unwrap());
        };
        assert_eq!(lagged["code"], "lagged");
        assert_eq!(lagged["topic"], format!("conversation:{conv}"));
        let last = lagged["seq"].as_i64().unwrap();
        assert_eq!(seqs.last().copied().unwrap_or(0), last);
        assert!(last < n, "lagged before the end");
        // Resubscribe from the last seen (again after each lag while the replay outruns the
        // reader): the rest, none lost or repeated.
        let mut from = last;
        for _ in 0..n {
            subscribe(&mut ws, &format!("conversation:{conv}"), Some(from)).await;
            while seqs.len() < n as usize {
                let e = ws.next().await;
                if e["code"] == "lagged" {
                    from = e["seq"].as_i64().unwrap();
                    break;
                }
                assert_eq!(e["type"], "event", "{e}");
                seqs.push(e["seq"].as_i64().unwrap());
            }
            if seqs.len() == n as usize {
                break;
            }
        }
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    }
);

fn short_lived(s: &mut Setup) {
    s.auth.access_ttl = chrono::Duration::seconds(2);
    s.api.ws.recheck = Duration::from_millis(100);
    s.api.ws.max_per_principal = 2;
}

both_backends!(
    expired_and_revoked_credentials_end_the_socket,
    setup = short_lived,
    |app| {
        let u = app.register("Alice").await;
        let mut ws = connect(&app, &u.token).await;
        subscribe(&mut ws, "org", None).await;
        let (_, closed) = ws.until_closed().await;
        assert_eq!(closed, Closed(Some(4001)));
        // An API key revoked while its socket is open.
        let login = app
            .post(
                "/auth/login",
                None,
                json!({"email": u.email, "password": u.password}),
            )
            .await;
        let token = login.body["access_token"].as_str().unwrap().to_string();
        let r = app
            .post(
                "/api-keys",
                Some(&token),
                json!({"name": "socket", "role": "member"}),
            )
            .await;
        let (key, key_id) = (
            r.body["key"].as_str().unwrap(),
            r.body["id"].as_str().unwrap(),
        );
        let mut ws = connect(&app, key).await;
        subscribe(&mut ws, "org", None).await;
        // At most two sockets per credential.
        let _second = connect(&app, key).await;
        let bearer = format!("Bearer {key}");
        assert_eq!(
            app.ws("", &[("Authorization", bearer.as_str())])
                .await
                .err(),
            Some(429)
        );
        let r = app
            .call("DELETE", &format!("/api-keys/{key_id}"), Some(&token), None)
            .await;
        assert_eq!(r.status, 204);
        let (got, closed) = ws.until_closed().await;
        assert_eq!(got.last().unwrap()["code"], "unauthorized");
        assert_eq!(closed, Closed(Some(4001)));
    }
);

/// Opens a socket over raw TCP that never reads, so never answers a ping; returns the close
/// code the server sends before it hangs up.
async fn silent_socket(app: &TestApp, token: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let req = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        app.addr
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    // Everything until the server hangs up: the 101, pings, then the close frame.
    let mut all = vec![];
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut all))
        .await
        .expect("the server never closed the silent socket")
        .ok()?;
    let head = all.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    assert!(all.starts_with(b"HTTP/1.1 101"));
    let mut frames = &all[head..];
    while frames.len() >= 2 {
        let (op, len) = (frames[0] & 0x0f, (frames[1] & 0x7f) as usize);
        let body = &frames[2..2 + len];
        if op == 0x8 {
            return Some(u16::from_be_bytes([body[0], body[1]]));
        }
        frames = &frames[2 + len..];
    }
    None
}

fn quick_pings(s: &mut Setup) {
    s.api.ws.ping_interval = Duration::from_millis(100);
    s.api.ws.idle_timeout = Duration::from_millis(300);
    s.api.ws.auth_timeout = Duration::from_millis(300);
}

both_backends!(silent_sockets_are_closed, setup = quick_pings, |app| {
    let u = app.register("Alice").await;
    assert_eq!(silent_socket(&app, &u.token).await, Some(4008));
    // No auth message in time.
    let mut ws = app.ws("", &[]).await.unwrap();
    let (got, closed) = ws.until_closed().await;
    assert_eq!(got[0]["code"], "unauthorized");
    assert_eq!(closed, Closed(Some(4001)));
});
