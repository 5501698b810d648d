use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn sign(header: &str, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

both_backends!(bad_tokens_are_refused, |app| {
    let u = app.register("Tess").await;
    let claims = claims_of(&u.token);
    let secret = agentry_testkit::TEST_JWT_SECRET;
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;

    let mut expired = claims.clone();
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 10);
    let r = app.get("/auth/me", &sign(header, &expired, secret)).await;
    assert_eq!((r.status, r.code()), (401, "token_expired"));

    let r = app
        .get(
            "/auth/me",
            &sign(header, &claims, b"some other secret that is long enough"),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));

    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims.to_string())
    );
    assert_eq!(app.get("/auth/me", &none).await.status, 401);

    let parts: Vec<&str> = u.token.split('.').collect();
    let mut tampered = claims.clone();
    tampered["sub"] = json!(uuid::Uuid::now_v7());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(tampered.to_string()),
        parts[2]
    );
    assert_eq!(app.get("/auth/me", &forged).await.status, 401);

    // Correctly signed, but for a session that does not exist.
    let mut ghost = claims.clone();
    ghost["sid"] = json!(uuid::Uuid::now_v7());
    assert_eq!(
        app.get("/auth/me", &sign(header, &ghost, secret))
            .await
            .status,
        401
    );

    for garbage in ["", "x", "a.b.c", "Bearer"] {
        assert_eq!(
            app.get("/auth/me", garbage).await.status,
            401,
            "{garbage:?}"
        );
    }
    let r = app.call("GET", "/auth/me", None, None).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let r = app
        .call_with(
            "GET",
            "/auth/me",
            None,
            None,
            &[("Authorization", "Basic abc")],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        app.get("/auth/me", &u.token).await.status,
        200,
        "the real token still works"
    );
});
