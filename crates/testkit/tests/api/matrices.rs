//! The tenant-isolation and role matrices, driven by the OpenAPI document: a route added
//! later that is missing from these tables fails the test until it is classified.

use super::*;

/// Every route of the API, as `METHOD /path` from the served OpenAPI document.
async fn routes(app: &TestApp) -> Vec<(String, String)> {
    let doc = app.call("GET", "raw:/openapi.json", None, None).await.body;
    let mut out = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

/// Who may call a write route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    Anyone,
    /// A user acting for themselves; API keys are refused.
    User,
    Role(&'static str),
    PlatformAdmin,
}

fn write_rule(method: &str, path: &str) -> Option<Needs> {
    use Needs::*;
    Some(match (method, path) {
        ("POST", "/api/v1/auth/register" | "/api/v1/auth/login" | "/api/v1/auth/refresh")
        | ("POST", "/api/v1/auth/password/forgot" | "/api/v1/auth/password/reset") => Anyone,
        (
            "POST",
            "/api/v1/auth/logout"
            | "/api/v1/auth/password"
            | "/api/v1/orgs"
            | "/api/v1/invitations/accept",
        )
        | ("DELETE", "/api/v1/auth/sessions/{id}")
        | ("PATCH" | "PUT", "/api/v1/users/me") => User,
        ("PATCH" | "PUT", "/api/v1/orgs/{id}") => Role("admin"),
        ("DELETE", "/api/v1/orgs/{id}") => Role("owner"),
        ("POST", "/api/v1/orgs/{id}/members") => Role("admin"),
        ("PATCH" | "PUT" | "DELETE", "/api/v1/orgs/{id}/members/{user_id}") => Role("admin"),
        ("DELETE", "/api/v1/orgs/{id}/invitations/{invitation_id}") => Role("admin"),
        ("POST", "/api/v1/api-keys")
        | ("DELETE", "/api/v1/api-keys/{id}")
        | ("POST", "/api/v1/api-keys/{id}/rotate") => Role("admin"),
        ("PATCH" | "PUT", "/api/v1/admin/users/{id}") => PlatformAdmin,
        ("POST", "/api/v1/providers")
        | ("PATCH" | "PUT" | "DELETE", "/api/v1/providers/{id}")
        | ("POST", "/api/v1/providers/{id}/test")
        | ("POST", "/api/v1/mcp-servers")
        | ("PATCH" | "PUT" | "DELETE", "/api/v1/mcp-servers/{id}") => Role("admin"),
        ("POST", "/api/v1/agents" | "/api/v1/tasks" | "/api/v1/executions")
        | ("PATCH" | "PUT" | "DELETE", "/api/v1/agents/{id}" | "/api/v1/tasks/{id}")
        | (
            "POST",
            "/api/v1/agents/{id}/start"
            | "/api/v1/agents/{id}/stop"
            | "/api/v1/agents/{id}/pause"
            | "/api/v1/agents/{id}/test"
            | "/api/v1/tasks/{id}/assign"
            | "/api/v1/tasks/{id}/cancel"
            | "/api/v1/executions/{id}/cancel"
            | "/api/v1/executions/{id}/approvals/{step_id}",
        )
        | ("POST", "/api/v1/conversations" | "/api/v1/conversations/{id}/messages")
        | ("DELETE", "/api/v1/conversations/{id}")
        | ("PUT", "/api/v1/conversations/{id}/assign" | "/api/v1/conversations/{id}/close") => {
            Role("member")
        }
        _ => return None,
    })
}

const ROLES: [&str; 4] = ["viewer", "member", "admin", "owner"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// A fresh org owned by `owner` with a user and an API key of each role, plus an invitation,
/// a spare member and an extra key to act on.
struct Fixture {
    org: String,
    /// A provider, agent, task and execution of the org, by the `{id}` of their routes.
    provider: String,
    mcp_server: String,
    agent: String,
    task: String,
    execution: String,
    conversation: String,
    principals: Vec<(String, String, bool)>, // (label, token, is_key), lowest role first, owner user last
    roles: Vec<&'static str>,
    spare_member: String,
    invitation: String,
    key_id: String,
}

async fn fixture(app: &TestApp, owner: &User, staff: &[User; 3]) -> Fixture {
    let r = app
        .post("/orgs", Some(&owner.token), json!({"name": "Matrix"}))
        .await;
    let org = r.body["id"].as_str().unwrap().to_string();
    let h = [("X-Org-Id", org.as_str())];
    let mut principals = vec![];
    let mut roles = vec![];
    for (i, role) in ROLES.iter().enumerate() {
        if i < 3 {
            let u = &staff[i];
            let r = app
                .post(
                    &format!("/orgs/{org}/members"),
                    Some(&owner.token),
                    json!({"email": u.email, "role": role}),
                )
                .await;
            assert_eq!(r.status, 201);
        }
    }
    // Lowest role first; within a role the key before the user, and the owner user last, so
    // that an owner deleting the org does not change what the lower roles see.
    for (i, role) in ROLES.iter().enumerate() {
        let k = app
            .call_with(
                "POST",
                "/api-keys",
                Some(&owner.token),
                Some(json!({"name": role, "role": role})),
                &h,
            )
            .await;
        principals.push((
            format!("{role} key"),
            k.body["key"].as_str().unwrap().to_string(),
            true,
        ));
        roles.push(*role);
        let token = if i < 3 {
            staff[i].token.clone()
        } else {
            owner.token.clone()
        };
        principals.push((format!("{role} user"), token, false));
        roles.push(*role);
    }
    let spare = app.register("Spare").await;
    app.post(
        &format!("/orgs/{org}/members"),
        Some(&owner.token),
        json!({"email": spare.email, "role": "member"}),
    )
    .await;
    let inv = app.post(&format!("/orgs/{org}/members"), Some(&owner.token), json!({"email": format!("{}@invited.example.com", uuid::Uuid::now_v7().simple()), "role": "viewer"})).await;
    let key = app
        .call_with(
            "POST",
            "/api-keys",
            Some(&owner.token),
            Some(json!({"name": "target", "role": "viewer"})),
            &h,
        )
        .await;
    let res = resources(app, &owner.token, &org).await;
    Fixture {
        provider: res.provider,
        mcp_server: res.mcp_server,
        agent: res.agent,
        task: res.task,
        execution: res.execution,
        conversation: res.conversation,
        org,
        principals,
        roles,
        spare_member: spare.id.to_string(),
        invitation: inv.body["invitation"]["id"].as_str().unwrap().to_string(),
        key_id: key.body["id"].as_str().unwrap().to_string(),
    }
}

/// One of each runtime resource in `org`, made by `token`.
struct Resources {
    provider: String,
    mcp_server: String,
    agent: String,
    task: String,
    execution: String,
    conversation: String,
}

async fn resources(app: &TestApp, token: &str, org: &str) -> Resources {
    let h = [("X-Org-Id", org)];
    let call = |method: &'static str, path: String, body: Value| async move {
        let r = app
            .call_with(method, &path, Some(token), Some(body), &h)
            .await;
        assert!(r.status < 300, "{method} {path}: {}", r.text);
        r.body["id"].as_str().unwrap_or_default().to_string()
    };
    let provider = call(
        "POST",
        "/providers".into(),
        json!({"name": format!("p{}", uuid::Uuid::now_v7().simple()), "kind": "echo", "default_model": "echo"}),
    )
    .await;
    let mcp_server = call(
        "POST",
        "/mcp-servers".into(),
        json!({"name": format!("m{}", uuid::Uuid::now_v7().simple()), "transport": "streamable_http",
               "url": "http://127.0.0.1:9/mcp"}),
    )
    .await;
    let agent = call(
        "POST",
        "/agents".into(),
        json!({"name": "Matrix agent", "provider_id": provider}),
    )
    .await;
    let task = call("POST", "/tasks".into(), json!({"title": "Matrix task"})).await;
    let execution = call(
        "POST",
        "/executions".into(),
        json!({"agent_id": agent, "input": "hello"}),
    )
    .await;
    let conversation = call(
        "POST",
        "/conversations".into(),
        json!({"agent_id": agent, "title": "Matrix chat"}),
    )
    .await;
    Resources {
        provider,
        mcp_server,
        agent,
        task,
        execution,
        conversation,
    }
}

fn body_for(method: &str, path: &str) -> Value {
    match (method, path) {
        (_, "/api/v1/orgs/{id}") => json!({"name": "Renamed"}),
        ("POST", "/api/v1/orgs/{id}/members") => {
            json!({"email": format!("{}@x.example.com", uuid::Uuid::now_v7().simple()), "role": "viewer"})
        }
        (_, "/api/v1/orgs/{id}/members/{user_id}") => json!({"role": "viewer"}),
        ("POST", "/api/v1/api-keys") => json!({"name": "made", "role": "viewer"}),
        ("POST", "/api/v1/auth/password") => {
            json!({"current_password": "wrong password", "new_password": "a new password"})
        }
        ("POST", "/api/v1/orgs") => json!({"name": "Made by matrix"}),
        ("POST", "/api/v1/invitations/accept") => json!({"token": "0".repeat(64)}),
        ("PATCH" | "PUT", "/api/v1/admin/users/{id}") => json!({"disabled": false}),
        ("POST", "/api/v1/providers") => {
            json!({"name": format!("p{}", uuid::Uuid::now_v7().simple()), "kind": "echo"})
        }
        (_, "/api/v1/providers/{id}") => json!({"default_model": "echo"}),
        ("POST", "/api/v1/mcp-servers") => {
            json!({"name": format!("m{}", uuid::Uuid::now_v7().simple()), "transport": "streamable_http",
                   "url": "http://127.0.0.1:9/mcp"})
        }
        (_, "/api/v1/mcp-servers/{id}") => json!({"timeout_seconds": 20}),
        ("POST", "/api/v1/agents") => json!({"name": "made"}),
        (_, "/api/v1/agents/{id}") => json!({"description": "changed"}),
        ("POST", "/api/v1/agents/{id}/test") => json!({"input": "hi"}),
        ("POST", "/api/v1/tasks") => json!({"title": "made"}),
        (_, "/api/v1/tasks/{id}") => json!({"priority": "high"}),
        ("POST", "/api/v1/tasks/{id}/assign") => json!({"agent_id": uuid::Uuid::now_v7()}),
        ("POST", "/api/v1/conversations/{id}/messages") => json!({"content": "hi"}),
        ("POST", "/api/v1/executions/{id}/approvals/{step_id}") => json!({"approve": true}),
        ("PUT", "/api/v1/conversations/{id}/assign") => json!({"agent_id": uuid::Uuid::now_v7()}),
        _ => json!({}),
    }
}

both_backends!(role_matrix_covers_every_write_route, |app| {
    let platform_admin = app.register("Platform").await;
    let owner = app.register("Owner").await;
    let staff = [
        app.register("Viewer").await,
        app.register("Member").await,
        app.register("Admin").await,
    ];
    let mut unclassified = vec![];
    for (method, path) in routes(&app).await {
        if method == "GET" {
            continue;
        }
        let Some(rule) = write_rule(&method, &path) else {
            unclassified.push(format!("{method} {path}"));
            continue;
        };
        match rule {
            Needs::Anyone => {
                // No credentials needed: an anonymous call is never a 401 or 403.
                let r = app.call(&method, &path, None, Some(json!({}))).await;
                assert!(
                    ![401, 403].contains(&r.status),
                    "{method} {path} anonymous: {}",
                    r.text
                );
            }
            Needs::User | Needs::PlatformAdmin => {
                let f = fixture(&app, &owner, &staff).await;
                let user = app.register("Self").await;
                let target = app.register("Target").await;
                let concrete = path.replace(
                    "{id}",
                    &if path.contains("sessions") {
                        uuid::Uuid::now_v7().to_string()
                    } else {
                        target.id.to_string()
                    },
                );
                for (label, token, is_key) in &f.principals {
                    if !is_key {
                        continue;
                    }
                    let r = app
                        .call_with(
                            &method,
                            &concrete,
                            Some(token),
                            Some(body_for(&method, &path)),
                            &[],
                        )
                        .await;
                    assert_eq!(
                        r.status, 403,
                        "{method} {path} as {label} must be refused: {}",
                        r.text
                    );
                }
                let r = app
                    .call(
                        &method,
                        &concrete,
                        Some(&user.token),
                        Some(body_for(&method, &path)),
                    )
                    .await;
                if rule == Needs::PlatformAdmin {
                    assert_eq!(r.status, 403, "{method} {path} as a plain user: {}", r.text);
                    let r = app
                        .call(
                            &method,
                            &concrete,
                            Some(&platform_admin.token),
                            Some(body_for(&method, &path)),
                        )
                        .await;
                    assert!(
                        ![401, 403].contains(&r.status),
                        "{method} {path} as platform admin: {}",
                        r.text
                    );
                } else {
                    assert!(
                        ![401, 403].contains(&r.status),
                        "{method} {path} as a user: {}",
                        r.text
                    );
                }
            }
            Needs::Role(min) => {
                let f = fixture(&app, &owner, &staff).await;
                let concrete = path
                    .replace("{user_id}", &f.spare_member)
                    .replace("{step_id}", &uuid::Uuid::now_v7().to_string())
                    .replace("{invitation_id}", &f.invitation)
                    .replace("/api-keys/{id}", &format!("/api-keys/{}", f.key_id))
                    .replace("/providers/{id}", &format!("/providers/{}", f.provider))
                    .replace(
                        "/mcp-servers/{id}",
                        &format!("/mcp-servers/{}", f.mcp_server),
                    )
                    .replace("/agents/{id}", &format!("/agents/{}", f.agent))
                    .replace("/tasks/{id}", &format!("/tasks/{}", f.task))
                    .replace("/executions/{id}", &format!("/executions/{}", f.execution))
                    .replace(
                        "/conversations/{id}",
                        &format!("/conversations/{}", f.conversation),
                    )
                    .replace("{id}", &f.org);
                let body = match path.as_str() {
                    "/api/v1/executions" => json!({"agent_id": f.agent, "input": "hi"}),
                    "/api/v1/conversations" => json!({"agent_id": f.agent}),
                    "/api/v1/conversations/{id}/assign" => json!({"agent_id": f.agent}),
                    _ => body_for(&method, &path),
                };
                for ((label, token, _), role) in f.principals.iter().zip(&f.roles) {
                    let r = app
                        .call_with(
                            &method,
                            &concrete,
                            Some(token),
                            Some(body.clone()),
                            &[("X-Org-Id", &f.org)],
                        )
                        .await;
                    if rank(role) < rank(min) {
                        assert_eq!(
                            r.status, 403,
                            "{method} {path} as {label} needs {min}: {}",
                            r.text
                        );
                    } else {
                        assert!(
                            ![401, 403].contains(&r.status),
                            "{method} {path} as {label} is allowed: {}",
                            r.text
                        );
                    }
                }
            }
        }
    }
    assert!(
        unclassified.is_empty(),
        "routes missing from the role matrix: {unclassified:?}"
    );
});

/// How a route names another org's resource, for the isolation matrix.
fn isolation_path(path: &str, a: &OrgA) -> Option<Option<String>> {
    // Some(None): the route names no resource (lists, own account): checked by listing.
    Some(match path {
        "/api/v1/orgs/{id}" | "/api/v1/orgs/{id}/members" | "/api/v1/orgs/{id}/invitations" => {
            Some(path.replace("{id}", &a.org))
        }
        "/api/v1/orgs/{id}/members/{user_id}" => {
            Some(path.replace("{id}", &a.org).replace("{user_id}", &a.member))
        }
        "/api/v1/orgs/{id}/invitations/{invitation_id}" => Some(
            path.replace("{id}", &a.org)
                .replace("{invitation_id}", &a.invitation),
        ),
        "/api/v1/api-keys/{id}" | "/api/v1/api-keys/{id}/rotate" => {
            Some(path.replace("{id}", &a.key))
        }
        "/api/v1/events/{id}" => Some(path.replace("{id}", &a.event)),
        p if p.starts_with("/api/v1/providers/{id}") => Some(p.replace("{id}", &a.res.provider)),
        p if p.starts_with("/api/v1/mcp-servers/{id}") => {
            Some(p.replace("{id}", &a.res.mcp_server))
        }
        p if p.starts_with("/api/v1/agents/{id}") => {
            Some(p.replace("{id}", &a.res.agent).replace("{n}", "1"))
        }
        p if p.starts_with("/api/v1/tasks/{id}") => Some(p.replace("{id}", &a.res.task)),
        p if p.starts_with("/api/v1/executions/{id}") => Some(
            p.replace("{id}", &a.res.execution)
                .replace("{step_id}", &uuid::Uuid::now_v7().to_string()),
        ),
        p if p.starts_with("/api/v1/conversations/{id}") => {
            Some(p.replace("{id}", &a.res.conversation))
        }
        "/api/v1/auth/sessions/{id}" => Some(path.replace("{id}", &a.session)),
        // Platform-level: not org-scoped, gated by the platform admin role (see the role matrix).
        "/api/v1/admin/users/{id}" => None,
        p if !p.contains('{') => None,
        _ => return None,
    })
}

struct OrgA {
    org: String,
    res: Resources,
    member: String,
    invitation: String,
    key: String,
    event: String,
    session: String,
}

both_backends!(tenant_isolation_matrix, |app| {
    let _platform = app.register("Platform").await;
    let a = app.register("Alice").await;
    let b = app.register("Mallory").await;
    let member = app.register("AliceMember").await;
    app.add_member(&a, a.org_id, &member, "member").await;
    let inv = app
        .post(
            &format!("/orgs/{}/members", a.org_id),
            Some(&a.token),
            json!({"email": "pending@example.com", "role": "viewer"}),
        )
        .await;
    let key = app
        .post(
            "/api-keys",
            Some(&a.token),
            json!({"name": "a", "role": "viewer"}),
        )
        .await;
    let events = app.get("/events", &a.token).await;
    let sessions = app.get("/auth/sessions", &a.token).await;
    let res = resources(&app, &a.token, &a.org_id.to_string()).await;
    let org_a = OrgA {
        res,
        org: a.org_id.to_string(),
        member: member.id.to_string(),
        invitation: inv.body["invitation"]["id"].as_str().unwrap().to_string(),
        key: key.body["id"].as_str().unwrap().to_string(),
        event: events.body["data"][0]["id"].as_str().unwrap().to_string(),
        session: sessions.body["data"][0]["id"].as_str().unwrap().to_string(),
    };
    let b_key = app.api_key(&b, "owner").await;
    let mut unclassified = vec![];
    for (method, path) in routes(&app).await {
        let Some(target) = isolation_path(&path, &org_a) else {
            unclassified.push(format!("{method} {path}"));
            continue;
        };
        let Some(concrete) = target else { continue };
        for (who, token) in [("Mallory", &b.token), ("Mallory's owner key", &b_key)] {
            if path.starts_with("/api/v1/auth/sessions") && token == &b_key {
                continue; // sessions belong to users: a key is refused there whatever the id
            }
            let body = if method == "GET" || method == "DELETE" {
                None
            } else {
                Some(body_for(&method, &path))
            };
            let r = app.call(&method, &concrete, Some(token), body).await;
            assert_eq!(
                r.status, 404,
                "{method} {path} as {who} must be not found: {}",
                r.text
            );
            assert_eq!(r.code(), "not_found");
            for secret in [&org_a.member, &org_a.key, &a.email] {
                assert!(
                    !r.text.contains(secret.as_str()),
                    "{method} {path} leaked {secret}"
                );
            }
        }
    }
    assert!(
        unclassified.is_empty(),
        "routes missing from the isolation matrix: {unclassified:?}"
    );
    // Lists show only the caller's org.
    for list in [
        "/events",
        "/api-keys",
        "/orgs",
        "/providers",
        "/mcp-servers",
        "/agents",
        "/tasks",
        "/executions",
        "/conversations",
    ] {
        let r = app.get(list, &b.token).await;
        assert_eq!(r.status, 200);
        for secret in [
            &org_a.org,
            &org_a.key,
            &org_a.res.provider,
            &org_a.res.mcp_server,
            &org_a.res.agent,
            &org_a.res.task,
            &org_a.res.execution,
            &org_a.res.conversation,
        ] {
            assert!(!r.text.contains(secret.as_str()), "{list} leaked org A");
        }
    }
    // Another org's ids inside a body name nothing: a 422 for the field, never a use of it.
    let b_res = resources(&app, &b.token, &b.org_id.to_string()).await;
    for (method, path, body, field) in [
        (
            "POST",
            "/executions".to_string(),
            json!({"agent_id": org_a.res.agent, "input": "x"}),
            "agent_id",
        ),
        (
            "PATCH",
            format!("/agents/{}", b_res.agent),
            json!({"tools": [{"type": "mcp", "server_id": org_a.res.mcp_server}]}),
            "tools",
        ),
        (
            "POST",
            "/executions".to_string(),
            json!({"agent_id": b_res.agent, "input": "x", "task_id": org_a.res.task}),
            "task_id",
        ),
        (
            "POST",
            format!("/tasks/{}/assign", b_res.task),
            json!({"agent_id": org_a.res.agent}),
            "agent_id",
        ),
        (
            "POST",
            "/conversations".to_string(),
            json!({"agent_id": org_a.res.agent}),
            "agent_id",
        ),
        (
            "PUT",
            format!("/conversations/{}/assign", b_res.conversation),
            json!({"agent_id": org_a.res.agent}),
            "agent_id",
        ),
        (
            "POST",
            "/tasks".to_string(),
            json!({"title": "t", "agent_id": org_a.res.agent}),
            "agent_id",
        ),
        (
            "POST",
            "/agents".to_string(),
            json!({"name": "a", "provider_id": org_a.res.provider}),
            "provider_id",
        ),
        (
            "PATCH",
            format!("/agents/{}", b_res.agent),
            json!({"fallbacks": [{"provider_id": org_a.res.provider, "model": "m"}]}),
            "fallbacks",
        ),
    ] {
        let r = app.call(method, &path, Some(&b.token), Some(body)).await;
        assert_eq!(r.status, 422, "{method} {path}: {}", r.text);
        assert!(
            r.body["error"]["details"]["fields"][field].is_array(),
            "{method} {path}: {}",
            r.text
        );
    }
    // Org A is untouched.
    assert_eq!(
        app.get(&format!("/orgs/{}/members", a.org_id), &a.token)
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.get("/api-keys", &a.token).await.body["data"][0]["revoked_at"],
        Value::Null
    );
});
