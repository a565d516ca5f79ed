//! Asymmetric signing, key rotation, the JWKS and metadata, and a resource
//! server that verifies through the JWKS alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::{Json, Router, routing::get};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::auth::{AuthUser, Authenticator};
use gatehouse::config::Secret;
use gatehouse::jwks::RemoteKeySet;
use gatehouse::keys::{AsymmetricKey, Jwks, KeyAlgorithm, KeySet, generate_key_files};
use gatehouse::token::{Grant, TokenIssuer, TokenVerifier};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::helpers::{
    AUDIENCE, ISSUER, TEST_SECRET, TestApp, assert_invalid_token, spawn_app, spawn_app_with,
};

fn new_key(alg: KeyAlgorithm, dir: &tempfile::TempDir) -> AsymmetricKey {
    generate_key_files(alg, dir.path()).unwrap().0
}

fn keys(signing: &AsymmetricKey, verifying: &[&AsymmetricKey]) -> Arc<KeySet> {
    Arc::new(KeySet::new(Some(&Secret::new(TEST_SECRET)), Some(signing), verifying).unwrap())
}

async fn app_with_keys(keys: Arc<KeySet>, database_url: Option<String>) -> TestApp {
    spawn_app_with(move |config| {
        config.keys = keys;
        if let Some(url) = database_url {
            config.database_url = url;
        }
    })
    .await
}

#[tokio::test]
async fn eddsa_and_es256_tokens_are_issued_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    for (alg, name) in [
        (KeyAlgorithm::EdDsa, jsonwebtoken::Algorithm::EdDSA),
        (KeyAlgorithm::Es256, jsonwebtoken::Algorithm::ES256),
    ] {
        let key = new_key(alg, &dir);
        let app = app_with_keys(keys(&key, &[]), None).await;
        app.create_user("alice").await;
        let token = app.token_for("alice").await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, name);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(app.get_me(&token).await.status(), 200);
    }
}

#[tokio::test]
async fn a_rotated_key_keeps_verifying_while_configured_and_fails_after_removal() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        new_key(KeyAlgorithm::EdDsa, &dir),
        new_key(KeyAlgorithm::Es256, &dir),
    );
    let before = app_with_keys(keys(&old, &[]), None).await;
    before.create_user("alice").await;
    let old_token = before.token_for("alice").await;
    let url = before.state.config.database_url.clone();

    // The new key signs; the old one only verifies.
    let during = app_with_keys(keys(&new, &[&old]), Some(url.clone())).await;
    assert_eq!(during.get_me(&old_token).await.status(), 200);
    let new_token = during.token_for("alice").await;
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .as_deref(),
        Some(new.kid())
    );
    assert_eq!(during.get_me(&new_token).await.status(), 200);
    let published: Vec<Value> = during
        .get("/.well-known/jwks.json", None)
        .await
        .json::<Jwks>()
        .await
        .unwrap()
        .keys;
    assert_eq!(published.len(), 2);

    // Once the old key is removed, its tokens fail.
    let after = app_with_keys(keys(&new, &[]), Some(url)).await;
    let body = assert_invalid_token(after.get_me(&old_token).await).await;
    assert_eq!(
        body["error_description"],
        "the token was signed with an unknown key"
    );
    assert_eq!(after.get_me(&new_token).await.status(), 200);
}

#[tokio::test]
async fn an_hs256_token_made_with_the_public_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(KeyAlgorithm::EdDsa, &dir);
    let public_pem = std::fs::read(dir.path().join(format!("{}.public.pem", key.kid()))).unwrap();
    let app = app_with_keys(keys(&key, &[]), None).await;
    app.create_user("alice").await;
    let claims = serde_json::to_value(app.claims(&app.token_for("alice").await)).unwrap();
    let x = key.jwk()["x"].as_str().unwrap().to_owned();
    let raw_x = URL_SAFE_NO_PAD.decode(&x).unwrap();
    for secret in [public_pem.clone(), x.into_bytes(), raw_x] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid().to_owned());
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        let body = assert_invalid_token(app.get_me(&forged).await).await;
        assert_eq!(
            body["error_description"],
            "the token's algorithm is not accepted"
        );
    }
}

#[tokio::test]
async fn the_jwks_publishes_public_keys_only() {
    let hs_only = spawn_app().await;
    let body: Value = hs_only
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"keys": []}));

    let dir = tempfile::tempdir().unwrap();
    let key = new_key(KeyAlgorithm::Es256, &dir);
    let app = app_with_keys(keys(&key, &[]), None).await;
    let response = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(TEST_SECRET));
    let body: Value = serde_json::from_str(&text).unwrap();
    let jwk = &body["keys"][0];
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], key.kid());
    assert!(jwk.get("d").is_none(), "no private part");
}

#[tokio::test]
async fn the_metadata_is_true_to_the_configuration() {
    let app = spawn_app().await;
    let body: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["issuer"], ISSUER);
    assert_eq!(body["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(body["revocation_endpoint"], format!("{ISSUER}/revoke"));
    assert_eq!(body["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(
        body["grant_types_supported"],
        json!(["password", "refresh_token"])
    );
    assert_eq!(body["scopes_supported"], json!(["me", "items"]));
    assert_eq!(
        body["access_token_signing_alg_values_supported"],
        json!(["HS256"])
    );

    let dir = tempfile::tempdir().unwrap();
    let key = new_key(KeyAlgorithm::EdDsa, &dir);
    let app = app_with_keys(keys(&key, &[]), None).await;
    let body: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["access_token_signing_alg_values_supported"],
        json!(["EdDSA", "HS256"])
    );
}

async fn hello(user: AuthUser) -> String {
    format!("hello, {}", user.username())
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

#[tokio::test]
async fn a_resource_server_verifies_through_the_jwks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(KeyAlgorithm::EdDsa, &dir);
    let gatehouse = app_with_keys(keys(&key, &[]), None).await;
    gatehouse.create_user("alice").await;
    let token = gatehouse.token_for("alice").await;

    let jwks_url = gatehouse.url("/.well-known/jwks.json");
    let auth = Authenticator::from_jwks(&jwks_url, ISSUER, AUDIENCE)
        .await
        .unwrap();
    let api = serve(Router::new().route("/hello", get(hello)).with_state(auth)).await;
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{api}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "hello, alice");

    // It trusts no HMAC key: an HS256 token from the same server fails.
    let hs_app = spawn_app().await;
    hs_app.create_user("alice").await;
    let hs_token = hs_app.token_for("alice").await;
    let refused = client
        .get(format!("{api}/hello"))
        .bearer_auth(&hs_token)
        .send()
        .await
        .unwrap();
    assert_invalid_token(refused).await;

    // And it checks the audience.
    let other_audience = Authenticator::from_jwks(&jwks_url, ISSUER, "another-api")
        .await
        .unwrap();
    let other = serve(
        Router::new()
            .route("/hello", get(hello))
            .with_state(other_audience),
    )
    .await;
    let refused = client
        .get(format!("{other}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body = assert_invalid_token(refused).await;
    assert_eq!(
        body["error_description"],
        "the token is meant for another audience"
    );
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_jwks_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, third) = (
        new_key(KeyAlgorithm::EdDsa, &dir),
        new_key(KeyAlgorithm::Es256, &dir),
        new_key(KeyAlgorithm::EdDsa, &dir),
    );
    // A JWKS endpoint whose content the test controls, counting fetches.
    let published = Arc::new(RwLock::new(vec![first.jwk().clone()]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (p, f) = (published.clone(), fetches.clone());
    let jwks_server = serve(Router::new().route(
        "/jwks",
        get(move || {
            let (p, f) = (p.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                Json(json!({"keys": *p.read().await}))
            }
        }),
    ))
    .await;
    let remote = RemoteKeySet::fetch_with(
        &format!("{jwks_server}/jwks"),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let verifier = TokenVerifier::remote(Arc::new(remote), ISSUER, AUDIENCE, Duration::ZERO);
    let auth = Authenticator::new(verifier);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    let sign = |key: &AsymmetricKey| {
        let set = Arc::new(KeySet::new(None, Some(key), &[]).unwrap());
        let issuer = TokenIssuer::new(set, ISSUER, AUDIENCE, Duration::from_secs(600));
        let grant = Grant {
            subject: "alice",
            scope: "me",
            client_id: "c",
            version: 0,
        };
        issuer.issue(&grant, gatehouse::token::now()).unwrap().token
    };
    assert!(auth.authenticate_token(&sign(&first)).await.is_ok());
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "a known kid needs no fetch"
    );

    // The issuer rotates to a new key: the first unknown kid triggers one refresh.
    published.write().await.push(second.jwk().clone());
    assert!(auth.authenticate_token(&sign(&second)).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // Another unknown kid within the interval does not fetch again.
    published.write().await.push(third.jwk().clone());
    assert!(auth.authenticate_token(&sign(&third)).await.is_err());
    assert!(auth.authenticate_token(&sign(&third)).await.is_err());
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "refreshes are rate-limited"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_clear_error() {
    let error = Authenticator::from_jwks("http://127.0.0.1:9/jwks", ISSUER, AUDIENCE)
        .await
        .unwrap_err();
    assert!(error.contains("could not fetch the JWKS"), "{error}");
}
