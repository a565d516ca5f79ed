//! The authentication cache seen from outside: whatever this server changes
//! takes effect on the very next request, even for a token whose checks are
//! cached. (The bound for changes made by other processes is tested with a
//! controlled clock beside the cache, in `src/auth.rs`.)

use gatehouse::token::{Grant, now};

use crate::helpers::{TestApp, assert_invalid_token, spawn_app};

/// A token of `name`'s current generation, issued a while ago: what was read
/// for it is reused by the next requests (a token issued this very second is
/// always checked against the database).
async fn seasoned_token(app: &TestApp, name: &str) -> String {
    let user = app.state.store.user_by_name(name).await.unwrap().unwrap();
    let grant = Grant {
        subject: name,
        scope: "me items",
        client_id: "public",
        version: user.token_version,
    };
    app.state.issuer.issue(&grant, now() - 10).unwrap().token
}

/// Creates alice, and a token of hers whose checks are cached.
async fn alice_with_a_cached_token() -> (TestApp, String) {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = seasoned_token(&app, "alice").await;
    for _ in 0..3 {
        assert_eq!(app.get_me(&token).await.status(), 200);
    }
    (app, token)
}

#[tokio::test]
async fn disabling_a_user_refuses_their_cached_token_on_the_next_request() {
    let (app, token) = alice_with_a_cached_token().await;
    app.state.store.set_disabled("alice", true).await.unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the user is disabled");
}

#[tokio::test]
async fn deleting_a_user_refuses_their_cached_token_on_the_next_request() {
    let (app, token) = alice_with_a_cached_token().await;
    app.state.store.delete_user("alice").await.unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the user no longer exists");
}

#[tokio::test]
async fn a_password_change_refuses_a_cached_token_on_the_next_request() {
    let (app, token) = alice_with_a_cached_token().await;
    app.state
        .accounts
        .set_password("alice", "a brand new password")
        .await
        .unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the token has been revoked");
}

#[tokio::test]
async fn revoking_every_token_refuses_a_cached_token_on_the_next_request() {
    let (app, token) = alice_with_a_cached_token().await;
    app.state.store.bump_token_version("alice").await.unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the token has been revoked");
}

#[tokio::test]
async fn revoking_a_cached_access_token_refuses_it_on_the_next_request() {
    let (app, token) = alice_with_a_cached_token().await;
    let kept = seasoned_token(&app, "alice").await;
    assert_eq!(app.get_me(&kept).await.status(), 200);
    let response = app
        .revoke(&[("token", &token), ("token_type_hint", "access_token")])
        .await;
    assert_eq!(response.status(), 200);
    for path in ["/users/me", "/users/me/items"] {
        let body = assert_invalid_token(app.get(path, Some(&token)).await).await;
        assert_eq!(body["error_description"], "the token has been revoked");
        assert_eq!(app.get(path, Some(&kept)).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn enabling_a_user_again_does_not_revive_a_cached_token() {
    let (app, token) = alice_with_a_cached_token().await;
    app.state.store.set_disabled("alice", true).await.unwrap();
    assert_invalid_token(app.get_me(&token).await).await;
    app.state.store.set_disabled("alice", false).await.unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the token has been revoked");
    let fresh = seasoned_token(&app, "alice").await;
    assert_eq!(app.get_me(&fresh).await.status(), 200);
}
