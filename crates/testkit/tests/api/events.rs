use super::*;

both_backends!(audit_log_records_who_did_what, |app| {
    let u = app.register("Ava").await;
    app.post(
        "/auth/login",
        None,
        json!({"email": u.email, "password": "wrong password"}),
    )
    .await;
    app.post(
        "/auth/login",
        None,
        json!({"email": u.email, "password": u.password}),
    )
    .await;
    let key = app
        .post(
            "/api-keys",
            Some(&u.token),
            json!({"name": "k", "role": "viewer"}),
        )
        .await;
    let key_id = key.body["id"].as_str().unwrap().to_string();
    app.call(
        "DELETE",
        &format!("/api-keys/{key_id}"),
        Some(&u.token),
        None,
    )
    .await;
    let bob = app.register("Ben").await;
    app.add_member(&u, u.org_id, &bob, "member").await;

    let r = app.get("/events?limit=200", &u.token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let types: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for t in [
        "user.registered",
        "org.created",
        "user.login_failed",
        "user.login",
        "api_key.created",
        "api_key.revoked",
        "member.added",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let first = &r.body["data"][0];
    assert_eq!(first["type"], "member.added", "newest first");
    assert_eq!(first["actor"]["type"], "user");
    assert_eq!(first["actor"]["id"], u.id.to_string());
    assert_eq!(first["ip"], "127.0.0.1");

    let r = app.get("/events?type=api_key.*", &u.token).await;
    let types: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["api_key.revoked", "api_key.created"]);
    let r = app.get("/events?category=warning", &u.token).await;
    assert!(
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["category"] == "warning")
    );
    assert!(!r.body["data"].as_array().unwrap().is_empty());
    let id = r.body["data"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/events/{id}"), &u.token).await.status,
        200
    );
    let r = app
        .get(&format!("/events?user_id={}", bob.id), &u.token)
        .await;
    assert!(
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_id"] == bob.id.to_string())
    );
    for bad in [
        "/events?category=loud",
        "/events?user_id=nope",
        "/events?since=yesterday",
        "/events?sort=type",
    ] {
        assert_eq!(app.get(bad, &u.token).await.status, 422, "{bad}");
    }
    // The member sees the org's events; no update or delete exists.
    let r = app
        .call_with(
            "GET",
            "/events",
            Some(&bob.token),
            None,
            &[("X-Org-Id", &u.org_id.to_string())],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        app.call("DELETE", &format!("/events/{id}"), Some(&u.token), None)
            .await
            .status,
        405
    );
    // Platform admins see instance-level events too.
    let r = app
        .get("/admin/events?type=user.login_failed", &u.token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get("/admin/events", &bob.token).await.status, 403);
});
