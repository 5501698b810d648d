use super::*;

both_backends!(errors_have_one_shape, |app| {
    let u = app.register("Hugo").await;
    let r = app.call("GET", "/no/such/route", None, None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let rid = r.header("x-request-id").unwrap().to_string();
    assert_eq!(r.body["error"]["request_id"], rid.as_str());

    let r = app.call("DELETE", "/auth/login", None, None).await;
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));

    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let r = Resp::read(res).await;
    assert_eq!((r.status, r.code()), (400, "invalid_json"));

    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let r = Resp::read(res).await;
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));

    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let res = app
        .client
        .patch(app.url("/users/me"))
        .bearer_auth(&u.token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let r = Resp::read(res).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"));
    // The rest of that body was never read: the connection is not reused.
    assert_eq!(r.header("connection"), Some("close"));

    let r = app
        .call("POST", "/auth/login", None, Some(json!([1, 2])))
        .await;
    assert_eq!(r.status, 422);

    let r = app
        .call_with(
            "GET",
            "/auth/me",
            Some(&u.token),
            None,
            &[("X-Request-Id", "my-trace-123")],
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("my-trace-123"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(r.header("referrer-policy").is_some());
    assert!(r.header("ratelimit-limit").is_some());
});

both_backends!(health_metrics_docs_and_openapi, |app| {
    let r = app.call("GET", "/health", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["status"].as_str(), r.body["database"].as_str()),
        (Some("ok"), Some("ok"))
    );
    assert!(r.body["version"].is_string());
    assert_eq!(app.call("GET", "raw:/livez", None, None).await.status, 200);
    assert_eq!(app.call("GET", "raw:/readyz", None, None).await.status, 200);
    app.register("Mia").await;
    let m = app.call("GET", "raw:/metrics", None, None).await;
    assert!(m.text.contains(r#"agentry_http_requests_total{route="/api/v1/auth/register",method="POST",status="201"} 1"#), "{}", m.text);
    assert!(
        m.text
            .contains("agentry_http_request_duration_seconds_bucket")
    );
    let docs = app.call("GET", "raw:/docs/", None, None).await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.text.contains("swagger"),
        "Swagger UI is served by the binary"
    );
    let doc = app.call("GET", "raw:/openapi.json", None, None).await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert!(doc.body["paths"]["/api/v1/auth/register"]["post"].is_object());
});

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.api.cors_origins = vec!["https://console.example.com".into()]
    })
    .await
    .unwrap();
    let ok = app
        .call_with(
            "GET",
            "/health",
            None,
            None,
            &[("Origin", "https://console.example.com")],
        )
        .await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://console.example.com")
    );
    let other = app
        .call_with(
            "GET",
            "/health",
            None,
            None,
            &[("Origin", "https://evil.example.com")],
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}

/// The OpenAPI document is a reviewed artifact: a change to it shows up in this snapshot.
/// Regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p agentry-testkit openapi_snapshot`.
#[test]
fn openapi_snapshot() {
    let doc = agentry_api::openapi().to_pretty_json().unwrap();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{doc}\n")).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).expect("snapshot missing: run with UPDATE_SNAPSHOTS=1");
    assert_eq!(
        doc.trim_end(),
        expected.trim_end(),
        "the OpenAPI document changed; review and run with UPDATE_SNAPSHOTS=1"
    );
}

both_backends!(json_that_means_the_same_is_taken, |app| {
    let u = app.register("Iris").await;
    // A whole number written with a fraction is still that integer.
    let r = app
        .post(
            "/agents",
            Some(&u.token),
            json!({"name": "Whole", "timeout_seconds": 60.0}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["timeout_seconds"], 60);
    let r = app
        .post(
            "/agents",
            Some(&u.token),
            json!({"name": "Half", "timeout_seconds": 60.5}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // An optional body may be `null`.
    let p = app
        .post(
            "/providers",
            Some(&u.token),
            json!({"name": "local", "kind": "echo", "default_model": "echo"}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text);
    let res = app
        .client
        .post(app.url(&format!(
            "/providers/{}/test",
            p.body["id"].as_str().unwrap()
        )))
        .bearer_auth(&u.token)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    let r = Resp::read(res).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["ok"], true);
    // Nested prices take whole numbers written with a fraction too; lengths count characters,
    // not bytes.
    let path = format!("/providers/{}", p.body["id"].as_str().unwrap());
    let r = app
        .call(
            "PATCH",
            &path,
            Some(&u.token),
            Some(json!({"prices": {"m": {"input": 150.0, "output": 600}}, "default_model": "é".repeat(200)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .call(
            "PATCH",
            &path,
            Some(&u.token),
            Some(json!({"default_model": "é".repeat(201)})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // An empty query value is still checked.
    let r = app.get("/agents?limit=", &u.token).await;
    assert_eq!(r.status, 422, "{}", r.text);
});
