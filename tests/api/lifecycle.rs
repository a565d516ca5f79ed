//! Refresh tokens (rotation, reuse detection, expiry), revocation, and
//! scopes, through the running server.

use gatehouse::store::NewRefreshToken;
use gatehouse::token::{hash_refresh_token, new_refresh_token, now};
use gatehouse::users::AccountDetails;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, assert_error, assert_invalid_token, spawn_app};

async fn refreshed(app: &TestApp, refresh_token: &str) -> Value {
    let response = app.refresh(refresh_token, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// The refresh token that replaces `refresh_token`.
async fn rotated(app: &TestApp, refresh_token: &str) -> String {
    refreshed(app, refresh_token).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_login_returns_an_opaque_refresh_token() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let body = app.login_body("alice").await;
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh.len(), 43, "256 bits of base64url");
    assert!(!refresh.contains('.'), "opaque, not a JWT");
}

#[tokio::test]
async fn a_refresh_chain_rotates_every_time() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let mut body = app.login_body("alice").await;
    let mut seen = vec![body["refresh_token"].as_str().unwrap().to_owned()];
    for _ in 0..4 {
        body = refreshed(&app, seen.last().unwrap()).await;
        let next = body["refresh_token"].as_str().unwrap().to_owned();
        assert!(!seen.contains(&next), "a new refresh token every time");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["scope"], "me items");
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(app.get_me(access).await.status(), 200);
        seen.push(next);
    }
    // Every earlier token is spent.
    let body = assert_error(app.refresh(&seen[2], &[]).await, 400, "invalid_grant").await;
    assert_eq!(
        body["error_description"],
        "the refresh token is invalid, expired or revoked"
    );
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let first = app.refresh_token_for("alice").await;
    let second = rotated(&app, &first).await;
    let third = rotated(&app, &second).await;
    // An attacker replays the first token.
    assert_error(app.refresh(&first, &[]).await, 400, "invalid_grant").await;
    // The newest token of the family now fails too.
    assert_error(app.refresh(&third, &[]).await, 400, "invalid_grant").await;
    // Another login (another family) is unaffected.
    let other = app.refresh_token_for("alice").await;
    assert_eq!(app.refresh(&other, &[]).await.status(), 200);
}

#[tokio::test]
async fn concurrent_uses_of_one_refresh_token_let_exactly_one_succeed() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.refresh_token_for("alice").await;
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, token) = (app.client.clone(), app.url("/token"), token.clone());
            tokio::spawn(async move {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                ];
                client
                    .post(url)
                    .form(&form)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

/// Stores a refresh token for `user` with the given expiries and returns it.
async fn stored_refresh_token(
    app: &TestApp,
    username: &str,
    expires_at: i64,
    family_expires_at: i64,
) -> String {
    let user = app
        .state
        .store
        .user_by_name(username)
        .await
        .unwrap()
        .unwrap();
    let token = new_refresh_token();
    app.state
        .store
        .create_refresh_token(&NewRefreshToken {
            token_hash: hash_refresh_token(&token),
            family_id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id,
            scope: "me items".into(),
            client_id: "public".into(),
            token_version: user.token_version,
            created_at: now() - 100,
            expires_at,
            family_expires_at,
        })
        .await
        .unwrap();
    token
}

#[tokio::test]
async fn expired_refresh_tokens_and_expired_families_are_refused() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let live = stored_refresh_token(&app, "alice", now() + 60, now() + 600).await;
    let expired = stored_refresh_token(&app, "alice", now() - 1, now() + 600).await;
    let family_over = stored_refresh_token(&app, "alice", now() + 60, now() - 1).await;
    assert_eq!(app.refresh(&live, &[]).await.status(), 200);
    assert_error(app.refresh(&expired, &[]).await, 400, "invalid_grant").await;
    assert_error(app.refresh(&family_over, &[]).await, 400, "invalid_grant").await;
    assert_error(app.refresh("not-a-token", &[]).await, 400, "invalid_grant").await;
    // Pruning removes the dead family's rows.
    assert!(app.state.store.prune_expired(now()).await.unwrap() >= 1);
}

#[tokio::test]
async fn a_refreshed_token_never_outlives_its_family() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let family_end = now() + 120;
    let token = stored_refresh_token(&app, "alice", now() + 60, family_end).await;
    let next = rotated(&app, &token).await;
    // The successor expires with the family (14 days would be far later):
    // spend it at the family's end and it is refused.
    let spent = app
        .state
        .store
        .spend_refresh_token(&hash_refresh_token(&next), family_end)
        .await
        .unwrap();
    assert_eq!(spent, gatehouse::store::Rotation::Invalid);
}

#[tokio::test]
async fn a_refresh_request_without_a_token_is_invalid() {
    let app = spawn_app().await;
    let response = app.post_token(&[("grant_type", "refresh_token")]).await;
    let body = assert_error(response, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "missing parameter: refresh_token"
    );
}

#[tokio::test]
async fn refresh_fails_for_a_disabled_deleted_or_re_passworded_user() {
    let app = spawn_app().await;
    for (name, change) in [("dis", 0), ("del", 1), ("pwd", 2)] {
        app.create_user(name).await;
        let token = app.refresh_token_for(name).await;
        match change {
            0 => drop(app.state.store.set_disabled(name, true).await.unwrap()),
            1 => app.state.store.delete_user(name).await.unwrap(),
            _ => drop(
                app.state
                    .accounts
                    .set_password(name, "another password")
                    .await
                    .unwrap(),
            ),
        }
        assert_error(app.refresh(&token, &[]).await, 400, "invalid_grant").await;
    }
}

#[tokio::test]
async fn a_refreshed_scope_can_only_stay_equal_or_shrink() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.refresh_token_for("alice").await;
    let narrow = app.refresh(&token, &[("scope", "me")]).await;
    assert_eq!(narrow.status(), 200);
    let narrow: Value = narrow.json().await.unwrap();
    assert_eq!(narrow["scope"], "me");
    assert_eq!(
        app.claims(narrow["access_token"].as_str().unwrap()).scope,
        "me"
    );
    // Omitting the scope gives the family's original grant back (RFC 6749 §6).
    let next = narrow["refresh_token"].as_str().unwrap();
    let again = refreshed(&app, next).await;
    assert_eq!(again["scope"], "me items");
    let wider = app
        .refresh(
            again["refresh_token"].as_str().unwrap(),
            &[("scope", "me admin")],
        )
        .await;
    let body = assert_error(wider, 400, "invalid_scope").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
}

#[tokio::test]
async fn a_client_that_names_itself_must_be_the_one_the_token_was_issued_to() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let response = app
        .post_token(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", "web"),
        ])
        .await;
    let token = response.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_error(
        app.refresh(&token, &[("client_id", "other")]).await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let first = app.refresh_token_for("alice").await;
    let second = rotated(&app, &first).await;
    let response = app
        .revoke(&[("token", &second), ("token_type_hint", "refresh_token")])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_error(app.refresh(&second, &[]).await, 400, "invalid_grant").await;
    // Without a hint it is found too.
    let other = app.refresh_token_for("alice").await;
    assert_eq!(app.revoke(&[("token", &other)]).await.status(), 200);
    assert_error(app.refresh(&other, &[]).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_revoked_access_token_fails_on_every_protected_route() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let revoked = app.token_for("alice").await;
    let kept = app.token_for("alice").await;
    let response = app
        .revoke(&[("token", &revoked), ("token_type_hint", "access_token")])
        .await;
    assert_eq!(response.status(), 200);
    for path in ["/users/me", "/users/me/items"] {
        let body = assert_invalid_token(app.get(path, Some(&revoked)).await).await;
        assert_eq!(body["error_description"], "the token has been revoked");
        assert_eq!(
            app.get(path, Some(&kept)).await.status(),
            200,
            "other tokens still work"
        );
    }
    let jti = app.claims(&kept).jti;
    assert!(!app.state.store.is_access_token_revoked(&jti).await.unwrap());
}

#[tokio::test]
async fn revocation_answers_200_for_unknown_tokens_and_400_without_one() {
    let app = spawn_app().await;
    for token in ["unknown", "a.b.c"] {
        let response = app.revoke(&[("token", token)]).await;
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().is_empty());
    }
    let body = assert_error(app.revoke(&[]).await, 400, "invalid_request").await;
    assert_eq!(body["error_description"], "missing parameter: token");
    let response = app
        .client
        .post(app.url("/revoke"))
        .json(&serde_json::json!({"token": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn revoking_every_token_of_a_user_from_the_command_line_takes_effect() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let body = app.login_body("alice").await;
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["user", "revoke", "alice"])
        .env_clear()
        .env("DATABASE_URL", &app.state.config.database_url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_invalid_token(app.get_me(access).await).await;
    assert_error(app.refresh(refresh, &[]).await, 400, "invalid_grant").await;
    assert_eq!(
        app.get_me(&app.token_for("alice").await).await.status(),
        200
    );
}

#[tokio::test]
async fn a_token_without_the_routes_scope_is_forbidden() {
    let app = spawn_app().await;
    app.create_user_with(
        AccountDetails {
            username: "reader".into(),
            scopes: Some(vec!["me".into()]),
            ..AccountDetails::default()
        },
        PASSWORD,
    )
    .await;
    let token = app.token_for("reader").await;
    assert_eq!(app.get_me(&token).await.status(), 200);
    let response = app.get("/users/me/items", Some(&token)).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="gatehouse", error="insufficient_scope", error_description="the token lacks the scope this route requires", scope="me items""#
    );
    assert_error(response, 403, "insufficient_scope").await;

    // A token asked for with only `items` cannot read /users/me.
    app.create_user("alice").await;
    let response = app
        .post_token(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("scope", "items"),
        ])
        .await;
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app.get_me(&token).await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with(r#"scope="me""#)
    );
    assert_error(response, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn a_scope_the_user_may_not_have_is_refused_at_login() {
    let app = spawn_app().await;
    app.create_user_with(
        AccountDetails {
            username: "reader".into(),
            scopes: Some(vec!["me".into()]),
            ..AccountDetails::default()
        },
        PASSWORD,
    )
    .await;
    let response = app
        .post_token(&[
            ("username", "reader"),
            ("password", PASSWORD),
            ("scope", "me items"),
        ])
        .await;
    assert_error(response, 400, "invalid_scope").await;
    let body = app.login_body("reader").await;
    assert_eq!(body["scope"], "me", "no scope requested: the user's own");
}
