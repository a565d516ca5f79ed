//! The test harness: the real server on `127.0.0.1:0` with its own database,
//! and one helper per endpoint.

use std::time::Duration;

use gatehouse::app::AppState;
use gatehouse::config::{PasswordArgs, PasswordScheme, Secret, ServerConfig};
use gatehouse::store::{ConnectOptions, Store};
use gatehouse::token::{AccessClaims, KeySet};
use gatehouse::users::{AccountDetails, User};
use reqwest::Response;
use serde_json::Value;
use tokio::sync::oneshot;

pub const TEST_SECRET: &str = "test-secret-0123456789abcdef-0123456789abcdef";
pub const ISSUER: &str = "http://gatehouse.test";
pub const AUDIENCE: &str = "gatehouse";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn test_config(database_url: String) -> ServerConfig {
    ServerConfig {
        keys: std::sync::Arc::new(KeySet::hs256(&Secret::new(TEST_SECRET))),
        bind: "127.0.0.1:0".parse().unwrap(),
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        access_token_ttl: Duration::from_secs(1800),
        refresh_token_ttl: Duration::from_secs(14 * 86400),
        refresh_family_ttl: Duration::from_secs(90 * 86400),
        leeway: Duration::ZERO,
        passwords: PasswordArgs {
            bcrypt_cost: 4,
            password_scheme: PasswordScheme::Bcrypt,
        },
        hash_workers: 2,
        hash_queue: 64,
        auth_cache_ttl: Duration::from_secs(1),
        database_url,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    let mut config = test_config(url);
    adjust(&mut config);
    let store = Store::connect(&config.database_url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let state = AppState::new(config, store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let router = gatehouse::http::router(state.clone());
    tokio::spawn(async move {
        gatehouse::http::serve(listener, router, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        address,
        client,
        state,
        shutdown: Some(tx),
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Creates an enabled user with the default scopes and the password [`PASSWORD`].
    pub async fn create_user(&self, name: &str) -> User {
        self.create_user_with(
            AccountDetails {
                username: name.to_owned(),
                email: Some(format!("{name}@example.com")),
                full_name: Some(format!("{name} Example")),
                ..AccountDetails::default()
            },
            PASSWORD,
        )
        .await
    }

    pub async fn create_user_with(&self, details: AccountDetails, password: &str) -> User {
        self.state.accounts.create(details, password).await.unwrap()
    }

    /// `POST /token` with a form.
    pub async fn post_token(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `POST /token` with a raw body and content type.
    pub async fn post_token_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> Response {
        let mut request = self.client.post(self.url("/token")).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.send().await.unwrap()
    }

    /// A password login.
    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_token(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .await
    }

    /// A successful login's access token.
    pub async fn token_for(&self, username: &str) -> String {
        let response = self.login(username, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A successful password login's JSON body.
    pub async fn login_body(&self, username: &str) -> Value {
        let response = self.login(username, PASSWORD).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// `grant_type=refresh_token` with optional extra parameters.
    pub async fn refresh(&self, refresh_token: &str, extra: &[(&str, &str)]) -> Response {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        form.extend_from_slice(extra);
        self.post_token(&form).await
    }

    /// `POST /revoke` with a form.
    pub async fn revoke(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/revoke"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `GET` a path with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `GET` a path with a literal `Authorization` header.
    pub async fn get_with_authorization(&self, path: &str, authorization: &str) -> Response {
        self.client
            .get(self.url(path))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap()
    }

    /// `GET /users/me`.
    pub async fn get_me(&self, token: &str) -> Response {
        self.get("/users/me", Some(token)).await
    }

    /// The claims of a token this app issued, verified.
    pub fn claims(&self, token: &str) -> AccessClaims {
        self.state
            .auth
            .verifier()
            .verify(token, gatehouse::token::now())
            .unwrap()
    }
}

/// Asserts an OAuth2 JSON error and returns the body.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "body: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "body: {body}"
    );
    body
}

/// Asserts `401 invalid_token` with the RFC 6750 challenge.
pub async fn assert_invalid_token(response: Response) -> Value {
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge
            .starts_with(r#"Bearer realm="gatehouse", error="invalid_token", error_description=""#),
        "{challenge}"
    );
    assert_error(response, 401, "invalid_token").await
}
