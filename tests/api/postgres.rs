//! PostgreSQL only (skipped without `TEST_DATABASE_URL`): start-up
//! migrations from several processes at once, the statement timeout, and a
//! database that goes away while serving and comes back.

use std::time::Duration;

use gatehouse::store::{ConnectOptions, Store, StoreError};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{
    PASSWORD, TestApp, TestDatabase, assert_error, postgres_admin_url, serve_app, test_config,
};

/// A fresh PostgreSQL database, or `None` (and a note) when there is no
/// server to test against.
fn postgres_database() -> Option<TestDatabase> {
    match postgres_admin_url() {
        Some(admin) => Some(TestDatabase::postgres(&admin)),
        None => {
            eprintln!("skipped: set TEST_DATABASE_URL to run the PostgreSQL tests");
            None
        }
    }
}

#[test]
fn both_engines_have_the_same_migrations() {
    fn versions(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }
    // A migration added for one engine needs its twin, of the same version
    // and name, so both schemas move in step.
    assert_eq!(
        versions("migrations/sqlite"),
        versions("migrations/postgres")
    );
}

#[tokio::test]
async fn instances_starting_together_apply_each_migration_once() {
    let Some(database) = postgres_database() else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            Store::connect(&database.url, &ConnectOptions::default())
                .await
                .unwrap(),
        );
    }
    // Each migrator waits for the others' advisory lock, then finds the
    // work done; without the lock they would race on CREATE TABLE.
    let mut migrations = tokio::task::JoinSet::new();
    for store in &stores {
        let store = store.clone();
        migrations.spawn(async move { store.migrate().await });
    }
    for result in migrations.join_all().await {
        result.unwrap();
    }

    let mut connection = PgConnection::connect(&database.url).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files, "{applied:?}");
    assert!(applied.iter().all(|(_, success)| *success), "{applied:?}");
    for store in &stores {
        assert!(store.list_users().await.unwrap().is_empty());
    }
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_statement_over_the_timeout_is_cancelled_and_answered_with_503() {
    let Some(database) = postgres_database() else {
        return;
    };
    let options = ConnectOptions {
        max_connections: 4,
        connect_timeout: Duration::from_secs(30),
        statement_timeout: Duration::from_secs(1),
    };
    let store = Store::connect(&database.url, &options).await.unwrap();
    store.migrate().await.unwrap();
    let app = serve_app(test_config(database.url.clone()), store, database).await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;

    // Another session holds the table, so every query on it waits.
    let mut blocker = PgConnection::connect(&app.database.url).await.unwrap();
    blocker.execute("BEGIN").await.unwrap();
    blocker
        .execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    // The server cancels the statement (not the client-side deadline, which
    // is far longer here).
    let error = app.state.store.user_by_name("alice").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Unavailable(m) if m.contains("statement timeout")),
        "{error:?}"
    );
    let response = app.get_me(&token).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "temporarily_unavailable").await;

    blocker.execute("COMMIT").await.unwrap();
    assert_eq!(app.get_me(&token).await.status(), 200);
    blocker.close().await.unwrap();
}

/// What the proxy between the app and PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Forwards both ways.
    Up,
    /// Keeps connections open but forwards nothing: a network partition.
    Stalled,
    /// Closes every connection and every new one at once: a stopped server.
    Down,
}

/// A TCP proxy in front of PostgreSQL whose link the test can cut, so the
/// database "goes away" for one app without disturbing the shared server.
struct Proxy {
    port: u16,
    link: watch::Sender<Link>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, _) = watch::channel(Link::Up);
        let watcher = link.subscribe();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watcher.borrow() == Link::Down {
                    continue; // Dropped: closed at once.
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, watcher.clone()));
                tokio::spawn(pump(server_read, client_write, watcher.clone()));
            }
        });
        Self { port, link }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// Copies one direction while the link is up, holds the data while it is
/// stalled, and closes when it goes down.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut link: watch::Receiver<Link>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = link.wait_for(|l| *l == Link::Down) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match link.wait_for(|l| *l != Link::Stalled).await.map(|l| *l) {
            Ok(Link::Up) => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// `url` with its host and port replaced by `authority`.
fn with_authority(url: &str, authority: &str) -> String {
    let start = url.find("://").unwrap() + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let userinfo = url[start..end]
        .rfind('@')
        .map(|at| &url[start..=start + at]);
    format!(
        "{}{}{authority}{}",
        &url[..start],
        userinfo.unwrap_or(""),
        &url[end..]
    )
}

/// Polls readiness until the app answers 200 again: the pool must recover
/// by itself once the database is back.
async fn await_ready(app: &TestApp) {
    for _ in 0..400 {
        if app.get("/readyz", None).await.status() == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the app did not become ready again within 20s");
}

async fn assert_unavailable(app: &TestApp, token: &str) {
    let me = app.get_me(token).await;
    assert_eq!(me.headers()["retry-after"].to_str().unwrap(), "1", "{me:?}");
    assert_error(me, 503, "temporarily_unavailable").await;
    assert_error(
        app.get("/readyz", None).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    assert_error(
        app.login("alice", PASSWORD).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    // Liveness needs no database.
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn a_database_that_goes_away_yields_503_and_service_resumes_when_it_returns() {
    let Some(database) = postgres_database() else {
        return;
    };
    let upstream = {
        let options: sqlx::postgres::PgConnectOptions = database.url.parse().unwrap();
        format!("{}:{}", options.get_host(), options.get_port())
    };
    let proxy = Proxy::start(upstream).await;
    let url = with_authority(&database.url, &format!("127.0.0.1:{}", proxy.port));
    let options = ConnectOptions {
        max_connections: 4,
        // Short enough for a quick test, long enough for a loaded machine.
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(2),
    };
    let store = Store::connect(&url, &options).await.unwrap();
    store.migrate().await.unwrap();
    // Without the authentication cache, so that every /users/me asks the
    // database (a snapshot younger than a second would answer for it).
    let mut config = test_config(url);
    config.auth_cache_ttl = Duration::ZERO;
    let app = serve_app(config, store, database).await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    assert_eq!(app.get_me(&token).await.status(), 200);

    // The server stops: connections close, new ones are turned away.
    proxy.set(Link::Down);
    assert_unavailable(&app, &token).await;
    proxy.set(Link::Up);
    await_ready(&app).await;
    assert_eq!(app.get_me(&token).await.status(), 200);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);

    // The network drops everything silently: the deadline answers, not a hang.
    proxy.set(Link::Stalled);
    assert_unavailable(&app, &token).await;
    proxy.set(Link::Up);
    await_ready(&app).await;
    assert_eq!(app.get_me(&token).await.status(), 200);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
}

/// `url` with `parameter` added to its query.
fn with_parameter(url: &str, parameter: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameter}")
}

/// Whether every connection to `database` uses TLS, and how many there are.
async fn tls_of_connections(admin_url: &str, database: &str) -> (bool, i64) {
    let mut admin = PgConnection::connect(admin_url).await.unwrap();
    sqlx::query_as(
        "SELECT coalesce(bool_and(s.ssl), false), count(*) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_url_that_requires_tls_gets_it_and_an_unverifiable_server_is_refused() {
    let Some(admin_url) = postgres_admin_url() else {
        eprintln!("skipped: set TEST_DATABASE_URL to run the PostgreSQL tests");
        return;
    };
    let database = TestDatabase::postgres(&admin_url);
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    let (tls, certificate): (String, String) =
        sqlx::query_as("SELECT current_setting('ssl'), current_setting('ssl_cert_file')")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    let required = with_parameter(&database.url, "sslmode=require");

    if tls != "on" {
        // A server without TLS: asking for it must fail, not fall back.
        let refused = Store::connect(&required, &ConnectOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
        return;
    }

    // Every connection the store opens is encrypted.
    let store = Store::connect(&required, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.user_by_name("alice").await.unwrap(), None);
    let (all_tls, connections) = tls_of_connections(&admin_url, &name).await;
    assert!(connections > 0, "the store holds no connection");
    assert!(all_tls, "a connection of an sslmode=require store is plain");

    // verify-full checks the certificate: the server's own certificate is
    // trusted by no public root, so it is refused unless named as the root.
    let verified = with_parameter(&database.url, "sslmode=verify-full");
    let refused = Store::connect(&verified, &ConnectOptions::default())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("certificate"),
        "not a certificate error: {refused}"
    );
    // Named as the root (`sslrootcert`), it verifies: the chain is trusted,
    // and the name is checked. The machine's server certificate names
    // `localhost`; were it issued to another name, the refusal must be about
    // the name, no longer about the issuer.
    assert!(
        std::path::Path::new(&certificate).is_file(),
        "the server's certificate {certificate} is not readable here"
    );
    let trusted = with_parameter(
        &with_authority(&verified, &format!("localhost:{}", port_of(&database.url))),
        &format!("sslrootcert={certificate}"),
    );
    match Store::connect(&trusted, &ConnectOptions::default()).await {
        Ok(store) => store.ping().await.unwrap(),
        Err(error) => assert!(error.to_string().contains("not valid for name"), "{error}"),
    }
}

fn port_of(url: &str) -> u16 {
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    options.get_port()
}

#[test]
fn authorities_are_replaced_keeping_user_and_database() {
    assert_eq!(
        with_authority("postgres://u:p@db:5432/x?sslmode=disable", "127.0.0.1:9"),
        "postgres://u:p@127.0.0.1:9/x?sslmode=disable"
    );
    assert_eq!(
        with_authority("postgres://db/x", "127.0.0.1:9"),
        "postgres://127.0.0.1:9/x"
    );
    assert_eq!(
        crate::helpers::with_database("postgres://u@h:1/test?a=b", "gh"),
        "postgres://u@h:1/gh?a=b"
    );
}
