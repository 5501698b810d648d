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
