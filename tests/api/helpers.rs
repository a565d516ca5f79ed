//! The test harness: the real server on `127.0.0.1:0` with its own database,
//! and one helper per endpoint.
//!
//! Every test gets a fresh database: a SQLite file in a temporary directory,
//! or, when `TEST_DATABASE_URL` names a PostgreSQL server, a new database on
//! it (`CREATE DATABASE gh_test_<pid>_<random>`), dropped when the test ends.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse::app::AppState;
use gatehouse::config::{PasswordArgs, PasswordScheme, Secret, ServerConfig};
use gatehouse::store::{ConnectOptions, Store};
use gatehouse::throttle::ThrottlePolicy;
use gatehouse::token::{AccessClaims, KeySet};
use gatehouse::users::{AccountDetails, User};
use reqwest::Response;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::oneshot;

pub const TEST_SECRET: &str = "test-secret-0123456789abcdef-0123456789abcdef";
pub const ISSUER: &str = "http://gatehouse.test";
pub const AUDIENCE: &str = "gatehouse";
pub const PASSWORD: &str = "correct horse battery staple";

/// The PostgreSQL server to test against, if any: an admin URL whose
/// database (e.g. `test`) is used only to create and drop test databases.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// A database of its own for one test, removed when dropped.
pub struct TestDatabase {
    /// What `DATABASE_URL` should be to use it.
    pub url: String,
    engine: TestEngine,
}

enum TestEngine {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

/// Test databases are named `gh_test_<pid>_<random>`, so a run can tell
/// its own from those of a run that was killed before it could drop them.
const TEST_DATABASE_PREFIX: &str = "gh_test_";

impl TestDatabase {
    /// A fresh database on the engine under test.
    pub fn new() -> Self {
        match postgres_admin_url() {
            Some(admin_url) => Self::postgres(&admin_url),
            None => Self::sqlite(),
        }
    }

    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        Self {
            url,
            engine: TestEngine::Sqlite { dir },
        }
    }

    /// A fresh PostgreSQL database on the server of `admin_url`.
    pub fn postgres(admin_url: &str) -> Self {
        static CLEANED: std::sync::Once = std::sync::Once::new();
        CLEANED.call_once(|| drop_stale_databases(admin_url));
        let name = format!(
            "{TEST_DATABASE_PREFIX}{}_{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        // The name is ours (digits and hex), and DDL takes no bind parameters.
        let create = format!("CREATE DATABASE {name}");
        let admin = admin_url.to_owned();
        on_own_runtime(async move {
            let mut connection = PgConnection::connect(&admin).await?;
            connection.execute(create.as_str()).await?;
            connection.close().await
        })
        .unwrap();
        Self {
            url: with_database(admin_url, &name),
            engine: TestEngine::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        }
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self.engine, TestEngine::Postgres { .. })
    }

    /// The SQLite file, if this is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.engine {
            TestEngine::Sqlite { dir } => Some(dir.path().join("gatehouse.db")),
            TestEngine::Postgres { .. } => None,
        }
    }

    /// Connects a store to it, migrated.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, &ConnectOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestEngine::Postgres { admin_url, name } = &self.engine {
            // FORCE ends the connections the test's pools still hold.
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let admin = admin_url.clone();
            let dropped = on_own_runtime(async move {
                let mut connection = PgConnection::connect(&admin).await?;
                connection.execute(drop.as_str()).await?;
                connection.close().await
            });
            if let Err(error) = dropped {
                eprintln!("could not drop the test database {name}: {error}");
            }
        }
    }
}

/// Drops the test databases of earlier runs that died before dropping
/// them: those whose process is gone and that nobody is connected to. (A
/// database of a live run, here or in another checkout, is left alone.)
fn drop_stale_databases(admin_url: &str) {
    if !Path::new("/proc/self").exists() {
        return; // No way to tell which runs are alive.
    }
    let admin = admin_url.to_owned();
    let cleaned = on_own_runtime(async move {
        let mut connection = PgConnection::connect(&admin).await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT d.datname::text FROM pg_database d WHERE starts_with(d.datname, $1) \
             AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        )
        .bind(TEST_DATABASE_PREFIX)
        .fetch_all(&mut connection)
        .await?;
        for name in names {
            let pid = name[TEST_DATABASE_PREFIX.len()..]
                .split('_')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok());
            let alive = pid.is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists());
            let is_name = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !alive && is_name {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                connection.execute(drop.as_str()).await?;
            }
        }
        connection.close().await
    });
    if let Err(error) = cleaned {
        eprintln!("could not drop stale test databases: {error}");
    }
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..path])
}

/// Runs `future` to completion on a runtime of its own, on another thread,
/// so it works from synchronous code and from `Drop` inside a test runtime.
pub fn on_own_runtime<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    })
    .join()
    .unwrap()
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    /// Dropped after the server is told to stop (fields drop after `drop`).
    pub database: TestDatabase,
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
        throttle: ThrottlePolicy::default(),
        client_ip_header: None,
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
    let database = TestDatabase::new();
    let mut config = test_config(database.url.clone());
    adjust(&mut config);
    let store = Store::connect(&config.database_url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    serve_app(config, store, database).await
}

/// Serves the app over `store` (connected and migrated), which lives in
/// `database`, on a port of its own.
pub async fn serve_app(config: ServerConfig, store: Store, database: TestDatabase) -> TestApp {
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
        database,
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

    /// A password login as if from `address` (needs `client_ip_header` set
    /// to `x-forwarded-for`).
    pub async fn login_from(&self, address: &str, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/token"))
            .header("x-forwarded-for", address)
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap()
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

    /// A successful password login's refresh token.
    pub async fn refresh_token_for(&self, username: &str) -> String {
        self.login_body(username).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned()
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

/// Everything Gatehouse and tower-http log in this test process, as JSON
/// lines. The capture starts at the first call.
pub fn captured_logs() -> String {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    struct Capture(&'static Mutex<Vec<u8>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("gatehouse=trace,tower_http=trace")
            .with_writer(move || Capture(buffer))
            .try_init()
            .expect("no other subscriber is installed in the test binary");
        buffer
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

/// Serialises the tests that load the CPU on purpose (long password hashes),
/// so one does not skew another's measurements.
pub async fn cpu_heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}
