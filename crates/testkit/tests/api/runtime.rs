//! The runtime end to end through the services (HTTP routes for agents and executions come
//! next): an echo provider, an agent, an execution claimed, run, journaled and finished.

use std::time::Duration;

use agentry_core::Role;
use agentry_services::agents::AgentInput;
use agentry_services::executions::ExecutionInput;
use agentry_services::providers::ProviderInput;
use agentry_services::{Actor, OrgCtx, RequestMeta};

use super::*;

fn ctx(user: &User) -> OrgCtx {
    OrgCtx {
        actor: Actor::User {
            id: user.id,
            session_id: uuid::Uuid::nil(),
            platform_admin: false,
        },
        org_id: user.org_id,
        role: Role::Owner,
        meta: RequestMeta::default(),
    }
}

both_backends!(an_echo_execution_runs_to_success, |app| {
    let alice = app.register("Alice").await;
    let ctx = ctx(&alice);
    let s = &app.services;
    let provider = s
        .create_provider(
            &ctx,
            ProviderInput {
                name: Some("local".into()),
                kind: Some("echo".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let agent = s
        .create_agent(
            &ctx,
            AgentInput {
                name: Some("Echoer".into()),
                provider_id: Some(json!(provider.id.to_string())),
                model: Some(json!("echo-1")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let e = s
        .create_execution(
            &ctx,
            ExecutionInput {
                agent_id: agent.id,
                input: json!({"message": "hello agentry"}),
                task_id: None,
                timeout_seconds: None,
                conversation_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(e.status, "pending");
    let done = s
        .wait_for_execution(&ctx, e.id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.status, "success", "{done:?}");
    assert_eq!(done.output.as_ref().unwrap().0["text"], "hello agentry");
    assert_eq!(done.agent_version, 1);
    assert_eq!(done.output_tokens, 2);
    assert_eq!(done.cost_micros, Some(0));
    assert!(done.duration_ms.is_some());
    let steps = s.execution_steps(&ctx, e.id).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].status, "success");
    assert_eq!(steps[0].kind, "llm");
    // Finished is final: cancelling now is refused.
    assert!(s.cancel_execution(&ctx, e.id).await.is_err());
});

both_backends!(a_stopped_agent_refuses_and_a_paused_one_waits, |app| {
    let alice = app.register("Alice").await;
    let ctx = ctx(&alice);
    let s = &app.services;
    let provider = s
        .create_provider(
            &ctx,
            ProviderInput {
                name: Some("local".into()),
                kind: Some("echo".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let agent = s
        .create_agent(
            &ctx,
            AgentInput {
                name: Some("Echoer".into()),
                provider_id: Some(json!(provider.id.to_string())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    use agentry_services::agents::AgentAction;
    s.set_agent_state(&ctx, agent.id, AgentAction::Pause)
        .await
        .unwrap();
    let input = ExecutionInput {
        agent_id: agent.id,
        input: json!("wait for me"),
        task_id: None,
        timeout_seconds: None,
        conversation_id: None,
    };
    let e = s.create_execution(&ctx, input.clone()).await.unwrap();
    let still = s
        .wait_for_execution(&ctx, e.id, Duration::from_millis(600))
        .await
        .unwrap();
    assert_eq!(still.status, "pending", "a paused agent's execution waits");
    s.set_agent_state(&ctx, agent.id, AgentAction::Start)
        .await
        .unwrap();
    let done = s
        .wait_for_execution(&ctx, e.id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.status, "success");
    s.set_agent_state(&ctx, agent.id, AgentAction::Stop)
        .await
        .unwrap();
    let err = s.create_execution(&ctx, input).await.unwrap_err();
    assert!(err.to_string().contains("not active"), "{err}");
});

/// The queue by hand (no runtime running): task priority first, turns across orgs, the per-org
/// cap, paused agents skipped, and the reaper requeueing expired leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_orders_fairly_and_reaps_sqlite() {
    queue_orders_fairly_and_reaps(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_orders_fairly_and_reaps_postgres() {
    queue_orders_fairly_and_reaps(Backend::Postgres).await;
}

/// Two orgs, "Busy" and "Quiet", each with an agent on an `echo` provider.
async fn busy_and_quiet(app: &TestApp) -> Vec<(User, String)> {
    let mut orgs = vec![];
    for name in ["Busy", "Quiet"] {
        let u = app.register(name).await;
        let p = app
            .post(
                "/providers",
                Some(&u.token),
                json!({"name": "local", "kind": "echo"}),
            )
            .await;
        let a = app
            .post(
                "/agents",
                Some(&u.token),
                json!({"name": "A", "provider_id": p.body["id"]}),
            )
            .await;
        orgs.push((u, a.body["id"].as_str().unwrap().to_string()));
    }
    orgs
}

/// A claim first looks at the due executions that come first in priority order; when those
/// all belong to an org at its cap, it still finds another org's execution behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_looks_past_a_capped_backlog_sqlite() {
    claim_looks_past_a_capped_backlog(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_looks_past_a_capped_backlog_postgres() {
    claim_looks_past_a_capped_backlog(Backend::Postgres).await;
}

async fn claim_looks_past_a_capped_backlog(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.run_runtime = false).await else {
        return;
    };
    let agents = busy_and_quiet(&app).await;
    // More of the busy org's executions than a claim's first look covers, all older.
    let (busy, busy_agent) = &agents[0];
    for _ in 0..300 {
        let r = app
            .post(
                "/executions",
                Some(&busy.token),
                json!({"agent_id": busy_agent, "input": "x"}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    let (quiet, quiet_agent) = &agents[1];
    let r = app
        .post(
            "/executions",
            Some(&quiet.token),
            json!({"agent_id": quiet_agent, "input": "x"}),
        )
        .await;
    let quiet_id = r.body["id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now();
    let lease = now + chrono::Duration::seconds(30);
    // The busy org reaches its cap of two.
    let first = app
        .store
        .claim_executions("w1", now, lease, 2, 2)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|e| e.id.to_string() != quiet_id));
    // The next claim passes over 299 waiting, capped executions to the quiet org's.
    let next = app
        .store
        .claim_executions("w1", now, lease, 10, 2)
        .await
        .unwrap();
    let ids: Vec<String> = next.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, vec![quiet_id]);
}

async fn queue_orders_fairly_and_reaps(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.run_runtime = false).await else {
        return;
    };
    let orgs = busy_and_quiet(&app).await;
    let (busy, busy_agent) = &orgs[0];
    let (quiet, quiet_agent) = &orgs[1];
    let create = |u: &User, agent: &str, task: Option<String>| {
        let body = json!({"agent_id": agent, "input": "x", "task_id": task});
        let token = u.token.clone();
        let app = &app;
        async move {
            let r = app.post("/executions", Some(&token), body).await;
            assert_eq!(r.status, 202, "{}", r.text);
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    // Busy: four plain executions, then two for a critical task (created last).
    let mut plain = vec![];
    for _ in 0..4 {
        plain.push(create(busy, busy_agent, None).await);
    }
    let t = app
        .post(
            "/tasks",
            Some(&busy.token),
            json!({"title": "urgent", "priority": "critical"}),
        )
        .await;
    let tid = t.body["id"].as_str().unwrap().to_string();
    let critical = [
        create(busy, busy_agent, Some(tid.clone())).await,
        create(busy, busy_agent, Some(tid)).await,
    ];
    let quiet_ids = [
        create(quiet, quiet_agent, None).await,
        create(quiet, quiet_agent, None).await,
    ];

    let now = chrono::Utc::now();
    let lease = now + chrono::Duration::seconds(30);
    let ids = |v: Vec<agentry_store::Execution>| -> Vec<String> {
        v.into_iter().map(|e| e.id.to_string()).collect()
    };
    // Four slots: two per org, the busy org's critical ones first.
    let first = ids(app
        .store
        .claim_executions("w1", now, lease, 4, 10)
        .await
        .unwrap());
    assert_eq!(first.len(), 4, "{first:?}");
    for id in critical.iter().chain(&quiet_ids) {
        assert!(first.contains(id), "{id} not claimed first: {first:?}");
    }
    // A cap of three running per org leaves room for one more of the busy org.
    let second = ids(app
        .store
        .claim_executions("w1", now, lease, 10, 3)
        .await
        .unwrap());
    assert_eq!(second, vec![plain[0].clone()]);
    // A paused agent's executions wait.
    app.post(
        &format!("/agents/{busy_agent}/pause"),
        Some(&busy.token),
        json!({}),
    )
    .await;
    assert!(
        app.store
            .claim_executions("w1", now, lease, 10, 10)
            .await
            .unwrap()
            .is_empty()
    );
    app.post(
        &format!("/agents/{busy_agent}/start"),
        Some(&busy.token),
        json!({}),
    )
    .await;
    // Expired leases go back to pending with the next attempt; nothing stays running.
    let later = lease + chrono::Duration::seconds(1);
    let (requeued, failed) = app.store.reap_executions(later, 10).await.unwrap();
    assert_eq!(requeued.len(), 5);
    assert!(failed.is_empty());
    assert!(
        requeued
            .iter()
            .all(|e| e.status == "pending" && e.attempt == 2 && e.lease_owner.is_none())
    );
    // After the last attempt, the reaper fails them instead.
    let again = app
        .store
        .claim_executions("w2", later, later + chrono::Duration::seconds(1), 10, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 8);
    let (requeued, failed) = app
        .store
        .reap_executions(later + chrono::Duration::seconds(5), 2)
        .await
        .unwrap();
    assert_eq!(requeued.len(), 3);
    assert_eq!(failed.len(), 5);
    assert!(
        failed
            .iter()
            .all(|e| e.status == "failed" && e.error.as_ref().unwrap().0["code"] == "abandoned")
    );
}
