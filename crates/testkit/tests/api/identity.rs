use super::*;

both_backends!(register_creates_user_org_and_tokens, |app| {
    let email = "Ada.Lovelace@Example.com";
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": email, "password": "correct horse battery", "name": "Ada"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["user"]["email"], "ada.lovelace@example.com");
    assert_eq!(
        r.body["user"]["platform_admin"], true,
        "the first user is platform admin"
    );
    assert_eq!(r.body["org"]["role"], "owner");
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert!(r.body["user"].get("password_hash").is_none());
    assert!(r.header("location").unwrap().starts_with("/api/v1/users/"));
    let token = r.body["access_token"].as_str().unwrap();
    let me = app.get("/auth/me", token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["type"], "user");
    assert_eq!(me.body["memberships"][0]["role"], "owner");
    assert_eq!(me.body["memberships"][0]["org"]["id"], r.body["org"]["id"]);

    let again = app.post("/auth/register", None, json!({"email": "ada.lovelace@example.com", "password": "another password", "name": "Ada"})).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.code(), "email_taken");

    let second = app.register("Bob").await;
    let me = app.get("/auth/me", &second.token).await;
    assert_eq!(
        me.body["user"]["platform_admin"], false,
        "only the first user is platform admin"
    );
});

both_backends!(register_names_every_bad_field, |app| {
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short", "name": "  "}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "validation_failed");
    let fields = &r.body["error"]["details"]["fields"];
    assert!(
        fields["email"].is_array() && fields["password"].is_array() && fields["name"].is_array(),
        "{}",
        r.text
    );
    assert!(r.body["error"]["request_id"].is_string());

    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "a@b.co", "password": "long enough pw"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["error"]["details"]["fields"]["name"][0],
        "is required"
    );

    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "a@b.co", "password": 12345678, "name": "A"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body["error"]["details"]["fields"]["password"].is_array(),
        "{}",
        r.text
    );

    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "a@b.co", "password": "long enough pw", "name": "A", "admin": true}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body["error"]["details"]["fields"]["admin"].is_array(),
        "unknown fields are named: {}",
        r.text
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_can_be_disabled() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.auth.allow_signup = false)
        .await
        .unwrap();
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "a@b.co", "password": "long enough pw", "name": "A"}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "forbidden");
}

both_backends!(
    login_refuses_wrong_passwords_and_unknown_emails_alike,
    |app| {
        let u = app.register("Cleo").await;
        let ok = app
            .post(
                "/auth/login",
                None,
                json!({"email": u.email.to_uppercase(), "password": u.password}),
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.text);
        assert!(ok.body["access_token"].is_string() && ok.body["refresh_token"].is_string());
        let wrong = app
            .post(
                "/auth/login",
                None,
                json!({"email": u.email, "password": "wrong password"}),
            )
            .await;
        let unknown = app
            .post(
                "/auth/login",
                None,
                json!({"email": "nobody@example.com", "password": "wrong password"}),
            )
            .await;
        for r in [&wrong, &unknown] {
            assert_eq!(r.status, 401);
            assert_eq!(r.code(), "invalid_credentials");
            assert_eq!(r.body["error"]["message"], wrong.body["error"]["message"]);
        }
        let empty = app
            .post("/auth/login", None, json!({"email": "", "password": ""}))
            .await;
        assert_eq!(empty.status, 422);
    }
);

both_backends!(refresh_rotates_and_reuse_revokes_the_session, |app| {
    let u = app.register("Dan").await;
    let r1 = app
        .post("/auth/refresh", None, json!({"refresh_token": u.refresh}))
        .await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    let new_refresh = r1.body["refresh_token"].as_str().unwrap().to_string();
    let new_access = r1.body["access_token"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, u.refresh);
    assert_eq!(app.get("/auth/me", &new_access).await.status, 200);

    // The spent token again: refused, and the whole session goes with it.
    let reuse = app
        .post("/auth/refresh", None, json!({"refresh_token": u.refresh}))
        .await;
    assert_eq!(reuse.status, 401);
    assert_eq!(
        app.get("/auth/me", &new_access).await.status,
        401,
        "the session's access tokens stop working"
    );
    assert_eq!(app.get("/auth/me", &u.token).await.status, 401);
    let after = app
        .post("/auth/refresh", None, json!({"refresh_token": new_refresh}))
        .await;
    assert_eq!(
        after.status, 401,
        "the session's newest refresh token is revoked too"
    );

    let bogus = app
        .post("/auth/refresh", None, json!({"refresh_token": "nope"}))
        .await;
    assert_eq!(bogus.status, 401);
});

both_backends!(logout_ends_the_session, |app| {
    let u = app.register("Eve").await;
    let r = app
        .post(
            "/auth/logout",
            Some(&u.token),
            json!({"refresh_token": u.refresh}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.get("/auth/me", &u.token).await.status, 401);
    assert_eq!(
        app.post("/auth/refresh", None, json!({"refresh_token": u.refresh}))
            .await
            .status,
        401
    );
    let other = app.register("Fay").await;
    let r = app
        .post(
            "/auth/logout",
            Some(&other.token),
            json!({"refresh_token": u.refresh}),
        )
        .await;
    assert_eq!(
        r.status, 422,
        "another user's refresh token is not yours to end"
    );
});

both_backends!(profile_updates, |app| {
    let u = app.register("Gus").await;
    let r = app
        .call(
            "PATCH",
            "/users/me",
            Some(&u.token),
            Some(json!({"name": "Gustav", "settings": {"theme": "dark"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Gustav");
    assert_eq!(r.body["settings"]["theme"], "dark");
    let r = app
        .call(
            "PUT",
            "/users/me",
            Some(&u.token),
            Some(json!({"settings": {"theme": "light"}})),
        )
        .await;
    assert_eq!(
        (
            r.body["name"].as_str(),
            r.body["settings"]["theme"].as_str()
        ),
        (Some("Gustav"), Some("light"))
    );
    let r = app
        .call(
            "PATCH",
            "/users/me",
            Some(&u.token),
            Some(json!({"settings": [1, 2]})),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .call(
            "PATCH",
            "/users/me",
            Some(&u.token),
            Some(json!({"settings": {"x": "y".repeat(20_000)}})),
        )
        .await;
    assert_eq!(r.status, 422);
});

both_backends!(password_change_signs_out_other_sessions, |app| {
    let u = app.register("Hal").await;
    let other = app
        .post(
            "/auth/login",
            None,
            json!({"email": u.email, "password": u.password}),
        )
        .await;
    let other_token = other.body["access_token"].as_str().unwrap();
    let bad = app
        .post(
            "/auth/password",
            Some(&u.token),
            json!({"current_password": "wrong one!", "new_password": "a new password"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body["error"]["details"]["fields"]["current_password"].is_array());
    let r = app
        .post(
            "/auth/password",
            Some(&u.token),
            json!({"current_password": u.password, "new_password": "a new password"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.get("/auth/me", &u.token).await.status,
        200,
        "the current session stays"
    );
    assert_eq!(
        app.get("/auth/me", other_token).await.status,
        401,
        "other sessions end"
    );
    assert_eq!(
        app.post(
            "/auth/login",
            None,
            json!({"email": u.email, "password": u.password})
        )
        .await
        .status,
        401
    );
    assert_eq!(
        app.post(
            "/auth/login",
            None,
            json!({"email": u.email, "password": "a new password"})
        )
        .await
        .status,
        200
    );
});

both_backends!(sessions_can_be_listed_and_revoked, |app| {
    let u = app.register("Ivy").await;
    let second = app
        .post(
            "/auth/login",
            None,
            json!({"email": u.email, "password": u.password}),
        )
        .await;
    let second_token = second.body["access_token"].as_str().unwrap().to_string();
    let list = app.get("/auth/sessions", &u.token).await;
    assert_eq!(list.status, 200);
    let sessions = list.body["data"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stranger = app.register("Jo").await;
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/auth/sessions/{other_id}"),
            Some(&stranger.token),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/auth/sessions/{other_id}"),
            Some(&u.token),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(app.get("/auth/me", &second_token).await.status, 401);
    assert_eq!(
        app.call("DELETE", "/auth/sessions/not-an-id", Some(&u.token), None)
            .await
            .status,
        404
    );
});

/// A mock SMTP relay on 127.0.0.1 that keeps each message it is sent.
async fn mock_smtp() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 mock ESMTP\r\n").await.unwrap();
                let mut data = String::new();
                let mut in_data = false;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            tx.send(std::mem::take(&mut data)).ok();
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            data.push_str(&line);
                        }
                        continue;
                    }
                    let reply: &[u8] = match line.get(..4).unwrap_or("") {
                        "EHLO" => b"250-mock\r\n250 AUTH PLAIN\r\n",
                        "AUTH" => b"235 ok\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go on\r\n"
                        }
                        "QUIT" => break,
                        _ => b"250 ok\r\n",
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_by_mail_is_single_use() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (port, mut inbox) = mock_smtp().await;
        let Some(app) = TestApp::spawn_with(backend, |s| {
            s.mailer = agentry_services::Mailer::from_url(&format!(
                "smtp://bot:secret@127.0.0.1:{port}?from=agentry@example.com"
            ))
            .unwrap();
        })
        .await
        else {
            continue;
        };
        let u = app.register("Kim").await;
        let unknown = app
            .post(
                "/auth/password/forgot",
                None,
                json!({"email": "nobody@example.com"}),
            )
            .await;
        assert_eq!(unknown.status, 202, "no account probing");
        let r = app
            .post("/auth/password/forgot", None, json!({"email": u.email}))
            .await;
        assert_eq!(r.status, 202);
        let mail = tokio::time::timeout(std::time::Duration::from_secs(10), inbox.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(mail.contains(&format!("To: {}", u.email)), "{mail}");
        let token = mail
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
            .unwrap()
            .to_string();
        let weak = app
            .post(
                "/auth/password/reset",
                None,
                json!({"token": token, "new_password": "short"}),
            )
            .await;
        assert_eq!(weak.status, 422);
        let ok = app
            .post(
                "/auth/password/reset",
                None,
                json!({"token": token, "new_password": "brand new password"}),
            )
            .await;
        assert_eq!(ok.status, 204, "{}", ok.text);
        assert_eq!(
            app.get("/auth/me", &u.token).await.status,
            401,
            "every session ends"
        );
        let again = app
            .post(
                "/auth/password/reset",
                None,
                json!({"token": token, "new_password": "another new one"}),
            )
            .await;
        assert_eq!(again.status, 422, "single use");
        assert_eq!(
            app.post(
                "/auth/login",
                None,
                json!({"email": u.email, "password": "brand new password"})
            )
            .await
            .status,
            200
        );
    }
}

both_backends!(disabled_users_are_refused_at_once, |app| {
    let admin = app.register("Root").await;
    let u = app.register("Lou").await;
    let key = app.api_key(&u, "admin").await;
    let r = app
        .call(
            "PATCH",
            &format!("/admin/users/{}", u.id),
            Some(&u.token),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, 403, "only platform admins");
    let r = app
        .call(
            "PATCH",
            &format!("/admin/users/{}", u.id),
            Some(&admin.token),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["disabled"], true);
    let me = app.get("/auth/me", &u.token).await;
    assert_eq!(
        me.status, 401,
        "the token is refused on the very next request"
    );
    assert_eq!(
        app.post(
            "/auth/login",
            None,
            json!({"email": u.email, "password": u.password})
        )
        .await
        .status,
        401
    );
    assert_eq!(
        app.post("/auth/refresh", None, json!({"refresh_token": u.refresh}))
            .await
            .status,
        401
    );
    let _ = key;
    let r = app
        .call(
            "PATCH",
            &format!("/admin/users/{}", admin.id),
            Some(&admin.token),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, 409, "an admin cannot lock themselves out");
    let users = app.get("/admin/users", &admin.token).await;
    assert_eq!(users.body["data"].as_array().unwrap().len(), 2);
    let orgs = app.get("/admin/orgs", &admin.token).await;
    assert_eq!(orgs.body["data"].as_array().unwrap().len(), 2);
});
