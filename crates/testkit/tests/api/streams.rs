//! `GET /executions/{id}/stream`: replay from the event log, then live; resume with
//! `Last-Event-ID` or `?after=` without losing or repeating an event.

use std::time::Duration;

use agentry_testkit::mock::{MockProvider, Reply};
use agentry_testkit::sse::SseEvent;

use super::executions::{make_agent, mock_provider};
use super::*;

const REPLY: &str = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun while the farmer counts his sheep twice over.";

fn paced() -> Reply {
    Reply::Paced {
        text: REPLY.into(),
        gap: Duration::from_millis(15),
    }
}

fn deltas(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| e.data["text"].as_str().unwrap().to_string())
        .collect()
}

/// Ids run 1, 2, 3… with no gap and no repeat.
fn assert_contiguous(events: &[SseEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.id, Some(i as i64 + 1), "event {i} of {events:?}");
    }
}

async fn start(app: &TestApp, u: &User, kind: &str, mock: &MockProvider) -> String {
    let pid = mock_provider(app, u, mock, kind).await;
    let agent = make_agent(app, u, json!({"name": "Streamer", "provider_id": pid})).await;
    let r = app
        .post(
            "/executions",
            Some(&u.token),
            json!({"agent_id": agent["id"], "input": "tell me a story"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

both_backends!(a_stream_from_start_to_done_has_every_token, |app| {
    for kind in ["openai", "anthropic"] {
        let mock = MockProvider::start().await;
        mock.push(paced());
        let u = app.register("Alice").await;
        let id = start(&app, &u, kind, &mock).await;
        let events = app
            .sse(&format!("/executions/{id}/stream"), &u.token, None, &[])
            .await
            .rest()
            .await;
        assert_contiguous(&events);
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            &names[..4],
            ["status", "status", "step", "delta"],
            "{names:?}"
        );
        assert_eq!(events[0].data["status"], "pending");
        assert_eq!(events[1].data["status"], "running");
        assert_eq!(events[2].data["status"], "running");
        assert_eq!(*names.last().unwrap(), "done");
        assert!(names.contains(&"usage"));
        let done = &events.last().unwrap().data;
        assert_eq!(done["id"], id.as_str());
        assert_eq!(done["status"], "success");
        assert_eq!(done["output"]["text"], REPLY);
        // The tokens as they came, concatenated, are exactly the output.
        assert_eq!(deltas(&events), REPLY, "{kind}");
        // Coalesced, but not buffered into one piece.
        let pieces = names.iter().filter(|n| **n == "delta").count();
        assert!(pieces > 1, "{kind}: {pieces} delta events");
        // Read again after the end: the same events, from the log.
        let again = app
            .sse(&format!("/executions/{id}/stream"), &u.token, None, &[])
            .await
            .rest()
            .await;
        assert_eq!(again, events);
    }
});

both_backends!(a_dropped_stream_resumes_without_loss_or_repeat, |app| {
    let mock = MockProvider::start().await;
    mock.push(paced());
    mock.push(paced());
    let u = app.register("Alice").await;
    let id = start(&app, &u, "openai", &mock).await;
    let path = format!("/executions/{id}/stream");
    // Read until a few pieces of text have come, then hang up mid-reply.
    let mut first = vec![];
    {
        let mut s = app.sse(&path, &u.token, None, &[]).await;
        while first
            .iter()
            .filter(|e: &&SseEvent| e.event == "delta")
            .count()
            < 3
        {
            first.push(s.next().await.expect("the stream ended early"));
        }
    }
    let last = first.last().unwrap().id.unwrap().to_string();
    let rest = app
        .sse(&path, &u.token, None, &[("Last-Event-ID", last.as_str())])
        .await
        .rest()
        .await;
    assert_eq!(rest.first().unwrap().id, Some(first.len() as i64 + 1));
    let all: Vec<SseEvent> = first.into_iter().chain(rest).collect();
    assert_contiguous(&all);
    assert_eq!(all.last().unwrap().event, "done");
    assert_eq!(deltas(&all), REPLY);

    // `?after=` does the same, here from the middle of a finished execution's log.
    let tail = app
        .sse(&format!("{path}?after=4"), &u.token, None, &[])
        .await
        .rest()
        .await;
    assert_eq!(tail[..], all[4..]);
});

both_backends!(stream_requests_are_checked, |app| {
    let mock = MockProvider::start().await;
    let u = app.register("Alice").await;
    let id = start(&app, &u, "openai", &mock).await;
    let path = format!("/executions/{id}/stream");
    let eve = app.register("Eve").await;
    let r = app.get(&path, &eve.token).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = app
        .get(
            &format!("/executions/{}/stream", uuid::Uuid::now_v7()),
            &u.token,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = app.get(&format!("{path}?after=-1"), &u.token).await;
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    let r = app.get(&format!("{path}?after=x"), &u.token).await;
    assert_eq!(r.status, 422);
    let r = app
        .call_with(
            "GET",
            &path,
            Some(&u.token),
            None,
            &[("Last-Event-ID", "soon")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body["error"]["details"]["fields"]["Last-Event-ID"].is_array(),
        "{}",
        r.text
    );
    // A bad `after` is refused even when the header is the one that counts.
    let r = app
        .call_with(
            "GET",
            &format!("{path}?after=9223372036854775808"),
            Some(&u.token),
            None,
            &[("Last-Event-ID", "0")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.body["error"]["details"]["fields"]["after"].is_array());
    let r = app.call("GET", &path, None, None).await;
    assert_eq!(r.status, 401);
});

both_backends!(a_retried_call_says_its_text_is_void, |app| {
    let mock = MockProvider::start().await;
    mock.push(Reply::Cut {
        text: "this will be cut off halfway through".into(),
    });
    mock.push(Reply::text("second time lucky"));
    let u = app.register("Alice").await;
    let id = start(&app, &u, "openai", &mock).await;
    let events = app
        .sse(&format!("/executions/{id}/stream"), &u.token, None, &[])
        .await
        .rest()
        .await;
    assert_contiguous(&events);
    let retry = events
        .iter()
        .position(|e| e.event == "step" && e.data["status"] == "retrying")
        .expect("a retrying step event");
    assert_eq!(deltas(&events[retry..]), "second time lucky");
    assert_eq!(
        events.last().unwrap().data["output"]["text"],
        "second time lucky"
    );
});

/// Many writers appending at once (SQLite commits them in groups): every event is stored once,
/// each topic is numbered 1, 2, 3… with no gap, and each writer got back the numbers stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_number_each_topic_without_gaps_sqlite() {
    concurrent_appends_number_each_topic_without_gaps(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_number_each_topic_without_gaps_postgres() {
    concurrent_appends_number_each_topic_without_gaps(Backend::Postgres).await;
}

async fn concurrent_appends_number_each_topic_without_gaps(backend: Backend) {
    use agentry_store::NewStreamEvent;
    let Some(app) = TestApp::spawn_with(backend, |s| s.run_runtime = false).await else {
        return;
    };
    let u = app.register("Appender").await;
    let org = u.org_id;
    let mut writers = vec![];
    for w in 0..40 {
        let store = app.store.clone();
        writers.push(tokio::spawn(async move {
            let mut got = vec![];
            for i in 0..10 {
                // A shared topic, and one of four others, in one request.
                let items = vec![
                    NewStreamEvent {
                        topic: "test:shared".into(),
                        event: "tick",
                        data: json!({"w": w, "i": i}),
                    },
                    NewStreamEvent {
                        topic: format!("test:part{}", w % 4),
                        event: "tick",
                        data: json!({"w": w, "i": i}),
                    },
                    // The shared topic again: it takes the number after the first.
                    NewStreamEvent {
                        topic: "test:shared".into(),
                        event: "tock",
                        data: json!({"w": w, "i": i}),
                    },
                ];
                let items = if i % 2 == 0 {
                    items
                } else {
                    items[..1].to_vec()
                };
                got.extend(
                    store
                        .append_stream(org, items, chrono::Utc::now())
                        .await
                        .unwrap(),
                );
            }
            got
        }));
    }
    let mut returned = vec![];
    for w in writers {
        returned.extend(w.await.unwrap());
    }
    assert_eq!(returned.len(), 40 * 10 + 40 * 5 * 2);
    for r in returned.iter().filter(|r| r.event == "tock") {
        let tick = returned
            .iter()
            .find(|t| t.topic == r.topic && t.event == "tick" && t.data.0 == r.data.0)
            .expect("the tick of the same request");
        assert_eq!(
            r.seq,
            tick.seq + 1,
            "one request's events on a topic are consecutive"
        );
    }
    for (topic, n) in [
        ("test:shared", 600),
        ("test:part0", 50),
        ("test:part1", 50),
        ("test:part2", 50),
        ("test:part3", 50),
    ] {
        let stored = app.store.stream_after(org, topic, 0, 1000).await.unwrap();
        let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<i64>>(), "{topic}");
        for e in &stored {
            let mine = returned
                .iter()
                .find(|r| r.topic == topic && r.seq == e.seq)
                .unwrap_or_else(|| panic!("{topic} {} not returned to its writer", e.seq));
            assert_eq!(mine.data.0, e.data.0);
        }
    }
}
