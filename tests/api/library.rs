//! The library used by another application, as `examples/protected_app.rs` does.

use axum::{Router, routing::get};
use gatehouse::auth::{AuthUser, Authenticator};
use serde_json::Value;

use crate::helpers::{AUDIENCE, ISSUER, TEST_SECRET, assert_invalid_token, spawn_app};

async fn hello(user: AuthUser) -> String {
    format!("hello, {}", user.username())
}

/// Starts a separate app protected by the library and returns its address.
async fn spawn_protected_app(secret: &str) -> String {
    let auth = Authenticator::hs256(secret, ISSUER, AUDIENCE).unwrap();
    let app = Router::new().route("/hello", get(hello)).with_state(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn another_app_accepts_gatehouse_tokens_through_the_extractor() {
    let gatehouse = spawn_app().await;
    gatehouse.create_user("alice").await;
    let token = gatehouse.token_for("alice").await;
    let app = spawn_protected_app(TEST_SECRET).await;
    let client = reqwest::Client::new();

    let ok = client
        .get(format!("{app}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "hello, alice");

    let missing = client.get(format!("{app}/hello")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );
    let body: Value = missing.json().await.unwrap();
    assert!(body.get("error").is_none());

    let forged = client
        .get(format!("{app}/hello"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_invalid_token(forged).await;
}

#[tokio::test]
async fn another_app_with_a_different_secret_refuses_the_token() {
    let gatehouse = spawn_app().await;
    gatehouse.create_user("alice").await;
    let token = gatehouse.token_for("alice").await;
    let app = spawn_protected_app("a-completely-different-secret-of-40-bytes").await;
    let response = reqwest::Client::new()
        .get(format!("{app}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_invalid_token(response).await;
}

#[test]
fn a_short_secret_is_refused_by_the_library_too() {
    let error = Authenticator::hs256("short", ISSUER, AUDIENCE).unwrap_err();
    assert!(error.contains("at least 32"), "{error}");
}
