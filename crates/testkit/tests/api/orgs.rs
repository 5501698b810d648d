use super::*;

both_backends!(orgs_members_and_invitations, |app| {
    let owner = app.register("Olga").await;
    let r = app
        .post(
            "/orgs",
            Some(&owner.token),
            json!({"name": "Acme", "slug": "acme"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["role"], "owner");
    let org = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.post(
            "/orgs",
            Some(&owner.token),
            json!({"name": "Other", "slug": "acme"})
        )
        .await
        .code(),
        "slug_taken"
    );
    assert_eq!(
        app.post(
            "/orgs",
            Some(&owner.token),
            json!({"name": "Bad", "slug": "Not A Slug"})
        )
        .await
        .status,
        422
    );
    let list = app.get("/orgs", &owner.token).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);

    // Acting in the new org with X-Org-Id.
    let key = app
        .call_with(
            "POST",
            "/api-keys",
            Some(&owner.token),
            Some(json!({"name": "k", "role": "viewer"})),
            &[("X-Org-Id", &org)],
        )
        .await;
    assert_eq!(key.body["org_id"], org.as_str());
    let stranger = app.register("Sam").await;
    let r = app
        .call_with(
            "GET",
            "/events",
            Some(&stranger.token),
            None,
            &[("X-Org-Id", &org)],
        )
        .await;
    assert_eq!(r.status, 404, "naming an org you are not in is not found");
    let r = app
        .call_with(
            "GET",
            "/events",
            Some(&stranger.token),
            None,
            &[("X-Org-Id", "garbage")],
        )
        .await;
    assert_eq!(r.status, 422);

    // Adding an existing user, then inviting a new one.
    let bob = app.register("Bob").await;
    let r = app
        .post(
            &format!("/orgs/{org}/members"),
            Some(&owner.token),
            json!({"email": bob.email, "role": "admin"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (201, Some("added")),
        "{}",
        r.text
    );
    assert_eq!(
        app.post(
            &format!("/orgs/{org}/members"),
            Some(&owner.token),
            json!({"email": bob.email, "role": "admin"})
        )
        .await
        .code(),
        "already_member"
    );
    let r = app
        .post(
            &format!("/orgs/{org}/members"),
            Some(&bob.token),
            json!({"email": "carol@example.com", "role": "owner"}),
        )
        .await;
    assert_eq!(r.status, 403, "an admin cannot grant owner");
    let r = app
        .post(
            &format!("/orgs/{org}/members"),
            Some(&bob.token),
            json!({"email": "carol@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (201, Some("invited")),
        "{}",
        r.text
    );
    let token = r.body["invitation"]["token"].as_str().unwrap().to_string();
    let invites = app
        .get(&format!("/orgs/{org}/invitations"), &owner.token)
        .await;
    assert_eq!(invites.body["data"].as_array().unwrap().len(), 1);
    assert!(
        invites.body["data"][0].get("token").is_none(),
        "the token is shown only once"
    );

    // Only the invited email can accept.
    assert_eq!(
        app.post(
            "/invitations/accept",
            Some(&stranger.token),
            json!({"token": token})
        )
        .await
        .status,
        404
    );
    let carol = app
        .post(
            "/auth/register",
            None,
            json!({"email": "carol@example.com", "password": "carols password", "name": "Carol"}),
        )
        .await;
    let carol_token = carol.body["access_token"].as_str().unwrap();
    let r = app
        .post(
            "/invitations/accept",
            Some(carol_token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["role"], "member");
    assert_eq!(
        app.post(
            "/invitations/accept",
            Some(carol_token),
            json!({"token": token})
        )
        .await
        .status,
        404,
        "single use"
    );
    let members = app.get(&format!("/orgs/{org}/members"), &owner.token).await;
    assert_eq!(members.body["data"].as_array().unwrap().len(), 3);

    // The last owner can neither be demoted nor removed.
    let r = app
        .call(
            "PATCH",
            &format!("/orgs/{org}/members/{}", owner.id),
            Some(&owner.token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "last_owner"));
    let r = app
        .call(
            "DELETE",
            &format!("/orgs/{org}/members/{}", owner.id),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "last_owner"));
    let r = app
        .call(
            "PATCH",
            &format!("/orgs/{org}/members/{}", bob.id),
            Some(&owner.token),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .call(
            "PATCH",
            &format!("/orgs/{org}/members/{}", owner.id),
            Some(&owner.token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "with a second owner, the first may step down"
    );

    // Rename, then delete with everything in it.
    let r = app
        .call(
            "PATCH",
            &format!("/orgs/{org}"),
            Some(&bob.token),
            Some(json!({"name": "Acme Inc"})),
        )
        .await;
    assert_eq!((r.status, r.body["name"].as_str()), (200, Some("Acme Inc")));
    let r = app
        .call("DELETE", &format!("/orgs/{org}"), Some(&owner.token), None)
        .await;
    assert_eq!(r.status, 403, "admins cannot delete");
    let r = app
        .call("DELETE", &format!("/orgs/{org}"), Some(&bob.token), None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        app.get(&format!("/orgs/{org}"), &bob.token).await.status,
        404
    );
    assert_eq!(
        app.get(&format!("/orgs/{org}/members"), &bob.token)
            .await
            .status,
        404
    );
});

both_backends!(lists_paginate_with_cursors, |app| {
    let u = app.register("Pia").await;
    for i in 0..5 {
        let r = app
            .post("/orgs", Some(&u.token), json!({"name": format!("Org {i}")}))
            .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/orgs?limit=2&cursor={c}"),
            None => "/orgs?limit=2".to_string(),
        };
        let r = app.get(&path, &u.token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for o in r.body["data"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first by default");
    let r = app.get("/orgs?sort=-created_at&limit=200", &u.token).await;
    let ids: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.first().copied(), seen.last().map(String::as_str));
    for bad in [
        "/orgs?limit=0",
        "/orgs?limit=201",
        "/orgs?limit=x",
        "/orgs?sort=name",
        "/orgs?cursor=zzz",
        "/orgs?color=red",
    ] {
        let r = app.get(bad, &u.token).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "validation_failed"),
            "{bad}: {}",
            r.text
        );
    }
});
