use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_limited_per_ip_with_retry_after() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.api.rate_limits.auth_per_minute = 3)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = app
            .post(
                "/auth/login",
                None,
                json!({"email": "x@example.com", "password": "whatever pw"}),
            )
            .await;
        assert_eq!(r.status, 401);
        assert!(r.header("ratelimit-remaining").is_some());
    }
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "y@example.com", "password": "whatever pw"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_limited_per_principal() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.api.rate_limits.api_per_minute = 5)
        .await
        .unwrap();
    let a = app.register("Rae").await;
    let b = app.register("Ray").await;
    let mut limited = None;
    for _ in 0..10 {
        let r = app.get("/auth/me", &a.token).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the sixth request in a minute is limited");
    assert_eq!(r.code(), "rate_limited");
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        app.get("/auth/me", &b.token).await.status,
        200,
        "another principal has its own budget"
    );
}
