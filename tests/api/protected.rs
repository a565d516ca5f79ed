//! The protected demo API: what a valid token gets, and every way a token
//! is refused.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::config::Secret;
use gatehouse::token::{Grant, KeySet, TokenIssuer};
use serde_json::{Value, json};

use crate::helpers::{
    AUDIENCE, ISSUER, TEST_SECRET, assert_error, assert_invalid_token, spawn_app,
};

fn issuer(secret: &str, iss: &str, aud: &str) -> TokenIssuer {
    let keys = Arc::new(KeySet::hs256(&Secret::new(secret)));
    TokenIssuer::new(keys, iss, aud, Duration::from_secs(1800))
}

fn grant(subject: &str) -> Grant<'_> {
    Grant {
        subject,
        scope: "me items",
        client_id: "test",
        version: 0,
    }
}

#[tokio::test]
async fn users_me_returns_the_current_user() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    let response = app.get_me(&token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"username":"alice","email":"alice@example.com","full_name":"alice Example","disabled":false})
    );
}

#[tokio::test]
async fn own_items_belong_to_the_current_user() {
    let app = spawn_app().await;
    app.create_user("mike").await;
    let token = app.token_for("mike").await;
    let response = app.get("/users/me/items", Some(&token)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!([{"item_id":"Foo","owner":"mike"}]));
}

#[tokio::test]
async fn a_trailing_slash_answers_the_same_without_a_redirect() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    for (plain, slashed) in [
        ("/users/me", "/users/me/"),
        ("/users/me/items", "/users/me/items/"),
    ] {
        let a = app.get(plain, Some(&token)).await;
        let b = app.get(slashed, Some(&token)).await;
        assert_eq!(b.status(), 200, "{slashed}");
        assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
        let unauthenticated = app.get(slashed, None).await;
        assert_eq!(unauthenticated.status(), 401);
    }
}

#[tokio::test]
async fn no_credentials_get_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    for path in ["/users/me", "/users/me/items"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="gatehouse""#
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body.get("error").is_none(),
            "no error code without credentials: {body}"
        );
    }
    // Another scheme carries no bearer credentials either.
    let response = app.get_with_authorization("/users/me", "Basic Og==").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = app
            .get_with_authorization("/users/me", &format!("{scheme} {token}"))
            .await;
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn malformed_headers_and_garbage_are_invalid_tokens() {
    let app = spawn_app().await;
    for value in [
        "Bearer",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer two tokens",
        "Bearer ,,,",
    ] {
        let response = app.get_with_authorization("/users/me", value).await;
        assert_invalid_token(response).await;
    }
}

#[tokio::test]
async fn a_token_with_a_bad_signature_is_refused() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 1;
    let forged = format!("{rest}.{}", URL_SAFE_NO_PAD.encode(bytes));
    let body = assert_invalid_token(app.get_me(&forged).await).await;
    assert_eq!(body["error_description"], "the token signature is invalid");

    // Same kid, another secret.
    let keys = KeySet::hs256(&Secret::new(TEST_SECRET));
    let kid = keys.signing_kid().unwrap().to_owned();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid);
    let claims = app.claims(&token);
    let other = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .unwrap();
    assert_invalid_token(app.get_me(&other).await).await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let mut grant = grant("alice");
    grant.version = user.token_version;
    let two_hours_ago = gatehouse::token::now() - 7200;
    let token = app.state.issuer.issue(&grant, two_hours_ago).unwrap().token;
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the token has expired");
}

#[tokio::test]
async fn a_token_for_another_issuer_or_audience_is_refused() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let now = gatehouse::token::now();
    let wrong_iss = issuer(TEST_SECRET, "http://evil.test", AUDIENCE).issue(&grant("alice"), now);
    let body = assert_invalid_token(app.get_me(&wrong_iss.unwrap().token).await).await;
    assert_eq!(
        body["error_description"],
        "the token was issued by another issuer"
    );
    let wrong_aud = issuer(TEST_SECRET, ISSUER, "other-api").issue(&grant("alice"), now);
    let body = assert_invalid_token(app.get_me(&wrong_aud.unwrap().token).await).await;
    assert_eq!(
        body["error_description"],
        "the token is meant for another audience"
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let claims = serde_json::to_value(app.claims(&app.token_for("alice").await)).unwrap();
    let kid = KeySet::hs256(&Secret::new(TEST_SECRET))
        .signing_kid()
        .unwrap()
        .to_owned();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let body = assert_invalid_token(app.get_me(&token).await).await;
        assert_eq!(
            body["error_description"],
            "the token's algorithm is not accepted"
        );
    }
}

#[tokio::test]
async fn a_token_of_a_deleted_user_is_refused() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    app.state.store.delete_user("alice").await.unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the user no longer exists");
}

#[tokio::test]
async fn tokens_of_a_deleted_user_do_not_pass_for_a_new_user_of_the_same_name() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let old = app.login_body("alice").await;
    let old_access = old["access_token"].as_str().unwrap();
    app.state.store.delete_user("alice").await.unwrap();
    app.create_user("alice").await;

    let body = assert_invalid_token(app.get_me(old_access).await).await;
    assert_eq!(body["error_description"], "the token has been revoked");
    let refresh = app
        .refresh(old["refresh_token"].as_str().unwrap(), &[])
        .await;
    assert_error(refresh, 400, "invalid_grant").await;
    // The new account's own tokens work.
    let new_access = app.token_for("alice").await;
    assert_eq!(app.get_me(&new_access).await.status(), 200);
    assert_ne!(app.claims(&new_access).ver, app.claims(old_access).ver);
}

#[tokio::test]
async fn a_token_of_a_disabled_user_is_refused_and_stays_void_after_enabling() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    app.state.store.set_disabled("alice", true).await.unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the user is disabled");
    app.state.store.set_disabled("alice", false).await.unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the token has been revoked");
    assert_eq!(
        app.get_me(&app.token_for("alice").await).await.status(),
        200
    );
}

#[tokio::test]
async fn a_password_change_voids_earlier_tokens() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    app.state
        .accounts
        .set_password("alice", "a brand new password")
        .await
        .unwrap();
    let body = assert_invalid_token(app.get_me(&token).await).await;
    assert_eq!(body["error_description"], "the token has been revoked");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    assert_error(app.get("/nope", None).await, 404, "not_found").await;
    let response = app
        .client
        .delete(app.url("/users/me"))
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "method_not_allowed").await;
    let response = app.get("/token", None).await;
    assert_error(response, 405, "method_not_allowed").await;
}
