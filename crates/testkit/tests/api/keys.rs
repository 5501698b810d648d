use super::*;

both_backends!(api_keys_act_in_their_org_and_stop_at_once, |app| {
    let u = app.register("Kai").await;
    let r = app
        .post(
            "/api-keys",
            Some(&u.token),
            json!({"name": "ci", "role": "member"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("agk_"));
    assert!(key.starts_with(r.body["prefix"].as_str().unwrap()));
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/api-keys/{id}").as_str())
    );

    let me = app.get("/auth/me", &key).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["type"], "api_key");
    assert_eq!(me.body["memberships"][0]["org"]["id"], u.org_id.to_string());
    assert_eq!(me.body["memberships"][0]["role"], "member");
    assert!(me.body["api_key"].get("key").is_none());

    let list = app.get("/api-keys", &u.token).await;
    assert_eq!(list.body["data"][0]["id"], id.as_str());
    assert!(
        list.body["data"][0]["last_used_at"].is_string(),
        "use is recorded"
    );
    assert!(list.body["data"][0].get("key").is_none());
    assert!(!list.text.contains(&key), "the secret is never listed");

    // A member key cannot manage keys; keys cannot exceed their creator.
    assert_eq!(app.get("/api-keys", &key).await.status, 403);
    let viewer = app.register("Vic").await;
    app.add_member(&u, u.org_id, &viewer, "admin").await;
    let r = app
        .call_with(
            "POST",
            "/api-keys",
            Some(&viewer.token),
            Some(json!({"name": "x", "role": "owner"})),
            &[("X-Org-Id", &u.org_id.to_string())],
        )
        .await;
    assert_eq!(r.status, 403);

    // Rotation: the old secret stops, the new one works.
    let r = app
        .post(&format!("/api-keys/{id}/rotate"), Some(&u.token), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated = r.body["key"].as_str().unwrap().to_string();
    assert_eq!(app.get("/auth/me", &key).await.status, 401);
    assert_eq!(app.get("/auth/me", &rotated).await.status, 200);

    // Revocation: refused at once.
    assert_eq!(
        app.call("DELETE", &format!("/api-keys/{id}"), Some(&u.token), None)
            .await
            .status,
        204
    );
    let r = app.get("/auth/me", &rotated).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    assert_eq!(
        app.post(&format!("/api-keys/{id}/rotate"), Some(&u.token), json!({}))
            .await
            .code(),
        "invalid_state"
    );

    // Expiry: in the past is refused; an expired key is refused.
    let r = app
        .post(
            "/api-keys",
            Some(&u.token),
            json!({"name": "old", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .post(
            "/api-keys",
            Some(&u.token),
            json!({"name": "soon", "role": "viewer", "expires_at": "not a time"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .post(
            "/api-keys",
            Some(&u.token),
            json!({"name": "later", "role": "viewer", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        app.get("/auth/me", r.body["key"].as_str().unwrap())
            .await
            .status,
        200
    );

    // A key naming another org is not found; an unknown key is unauthorized.
    let other = app.register("Oz").await;
    let r = app
        .call_with(
            "GET",
            "/auth/me",
            Some(&rotated),
            None,
            &[("X-Org-Id", &other.org_id.to_string())],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        app.get("/auth/me", &format!("agk_{}", "0".repeat(64)))
            .await
            .status,
        401
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_api_keys_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let u = app.register("Exp").await;
    let r = app.post("/api-keys", Some(&u.token), json!({"name": "brief", "role": "viewer", "expires_at": (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339()})).await;
    assert_eq!(r.status, 201);
    let key = r.body["key"].as_str().unwrap().to_string();
    assert_eq!(app.get("/auth/me", &key).await.status, 200);
    // Wait for the expiry by polling, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = app.get("/auth/me", &key).await.status;
        if s == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "key never expired");
        tokio::task::yield_now().await;
    }
}
