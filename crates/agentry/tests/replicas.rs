//! Two `agentry serve` processes on one PostgreSQL database: an API-only replica and one that
//! also runs the workers. A client of the API replica sees, live, what the other replica's
//! worker does (through LISTEN/NOTIFY), and typing on one replica reaches the other's sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use agentry_testkit::mock::{MockProvider, Reply};
use agentry_testkit::sse::SseReader;
use agentry_testkit::ws::WsClient;
use agentry_testkit::{Backend, TestDb};
use common::Server;
use serde_json::{Value, json};

const TEXT: &str = "Every token of this reply crossed from one replica to the other as it came.";

async fn ws(srv: &Server, token: &str, org: &str) -> WsClient {
    let bearer = format!("Bearer {token}");
    WsClient::connect(
        &format!("ws://{}/api/v1/ws", srv.addr),
        &[("Authorization", bearer.as_str()), ("X-Org-Id", org)],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_replica_sees_a_run_on_the_other() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let mock = MockProvider::start().await;
    // The API replica starts first and writes the shared secrets; the worker reads them.
    let api = Server::start_with(&db, "api").await;
    let all = Server::start_with(&db, "all").await;
    let (s, reg) = api
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "two@example.com", "password": "correct horse battery", "name": "Two"})),
        )
        .await;
    assert_eq!(s, 201, "{reg}");
    let token = reg["access_token"].as_str().unwrap().to_string();
    let org = reg["org"]["id"].as_str().unwrap().to_string();
    let t = Some(token.as_str());
    let (_, p) = api
        .call(
            "POST",
            "/providers",
            t,
            Some(
                json!({"name": "mock", "kind": "openai", "base_url": mock.openai_base(),
                         "api_key": "sk-two", "default_model": "mock-model"}),
            ),
        )
        .await;
    let (_, agent) = api
        .call(
            "POST",
            "/agents",
            t,
            Some(json!({"name": "Remote", "provider_id": p["id"]})),
        )
        .await;

    // A socket on the API replica follows the org; the execution is created there, but only
    // the other replica has workers.
    let mut socket = ws(&api, &token, &org).await;
    socket
        .send(json!({"type": "subscribe", "topic": "org"}))
        .await;
    assert_eq!(socket.next().await["type"], "subscribed");
    mock.push(Reply::Paced {
        text: TEXT.into(),
        gap: Duration::from_millis(10),
    });
    let (s, e) = api
        .call(
            "POST",
            "/executions",
            t,
            Some(json!({"agent_id": agent["id"], "input": "go"})),
        )
        .await;
    assert_eq!(s, 202, "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    // The stream, read from the API replica while the worker replica runs it.
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/executions/{id}/stream", api.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events = SseReader::new(res).rest().await;
    let streamed: String = events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| e.data["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed, TEXT);
    let done = &events.last().unwrap().data;
    assert_eq!(done["status"], "success");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.id, Some(i as i64 + 1));
    }
    // The org topic on the socket saw it go by too.
    let mut statuses = vec![];
    loop {
        let m = socket.next().await;
        if m["data"]["execution_id"] == id.as_str() && m["event"] == "status" {
            statuses.push(m["data"]["status"].as_str().unwrap().to_string());
        }
        if m["event"] == "done" && m["data"]["id"] == id.as_str() {
            break;
        }
    }
    assert!(statuses.contains(&"running".to_string()), "{statuses:?}");

    // Typing on the worker replica's socket reaches the API replica's.
    let (_, conv) = api
        .call(
            "POST",
            "/conversations",
            t,
            Some(json!({"agent_id": agent["id"]})),
        )
        .await;
    let cid = conv["id"].as_str().unwrap();
    let mut here = ws(&api, &token, &org).await;
    let mut there = ws(&all, &token, &org).await;
    for s in [&mut here, &mut there] {
        s.send(json!({"type": "join_conversation", "conversation_id": cid}))
            .await;
        assert_eq!(s.next().await["type"], "subscribed");
    }
    there
        .send(json!({"type": "typing_start", "conversation_id": cid}))
        .await;
    let typing: Value = here.next().await;
    assert_eq!(typing["event"], "user_typing");
    assert_eq!(typing["data"]["typing"], true);
    api.kill().await;
    all.kill().await;
}
