//! Several instances on one database (PostgreSQL with `TEST_DATABASE_URL`,
//! else a shared SQLite file): two real `gatehouse serve` processes and the
//! command line acting on the same database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gatehouse::auth::Authenticator;
use reqwest::Response;
use serde_json::Value;

use crate::helpers::{AUDIENCE, TestDatabase, assert_error, assert_invalid_token};

const SECRET: &str = "multi-instance-secret-0123456789abcdef-0123";
const ISSUER: &str = "https://auth.example.test";
const PASSWORD: &str = "pw-of-carol-on-every-instance";

/// Settings every instance must share (see the README).
fn shared_settings(command: &mut Command, database_url: &str) {
    command
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("SECRET_KEY_ENV", SECRET)
        .env("GATEHOUSE_ISSUER", ISSUER)
        .env("GATEHOUSE_AUDIENCE", AUDIENCE)
        .env("GATEHOUSE_BCRYPT_COST", "4")
        .env("GATEHOUSE_AUTH_CACHE_TTL", "1s");
}

/// A change made by another process (here the command line) reaches every
/// instance within the authentication cache's bound, one second: wait it
/// out, then the very next request must see the change.
async fn after_the_cache_bound() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// A `gatehouse serve` process, killed when dropped.
struct Instance {
    child: Child,
    address: mpsc::Receiver<Result<String, String>>,
    base: Option<String>,
}

impl Instance {
    /// Starts the process on a port the system picks; [`Instance::ready`]
    /// learns which from its start-up log line.
    fn start(database_url: &str, dir: &std::path::Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(dir);
        shared_settings(&mut command, database_url);
        let mut child = command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, address) = mpsc::channel();
        // Reads the log to its end, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut log = String::new();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(address) = listening_address(&line) {
                        let _ = tx.send(Ok(address));
                        sent = true;
                    }
                }
                log.push_str(&line);
                log.push('\n');
            }
            if !sent {
                let _ = tx.send(Err(log));
            }
        });
        Self {
            child,
            address,
            base: None,
        }
    }

    /// Waits until the process listens, and returns its base URL.
    fn ready(&mut self) -> String {
        if self.base.is_none() {
            let address = match self.address.recv_timeout(Duration::from_secs(60)) {
                Ok(Ok(address)) => address,
                Ok(Err(log)) => panic!("the instance exited before listening:\n{log}"),
                Err(e) => panic!("the instance did not listen within 60s: {e}"),
            };
            self.base = Some(format!("http://{address}"));
        }
        self.base.clone().unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `…Swagger UI at http://127.0.0.1:PORT/docs…` → `127.0.0.1:PORT`.
fn listening_address(line: &str) -> Option<String> {
    let start = line.find("Swagger UI at http://")? + "Swagger UI at http://".len();
    let end = line[start..].find("/docs")? + start;
    Some(line[start..end].to_owned())
}

/// Runs `gatehouse ARGS` against the shared database.
fn cli(database_url: &str, dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.args(args).current_dir(dir);
    shared_settings(&mut command, database_url);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "gatehouse {args:?}: {output:?}");
    output
}

async fn login(client: &reqwest::Client, base: &str) -> Response {
    client
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "carol"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
}

async fn token_from(client: &reqwest::Client, base: &str) -> String {
    let response = login(client, base).await;
    assert_eq!(response.status(), 200, "login on {base}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn me(client: &reqwest::Client, base: &str, token: &str) -> Response {
    client
        .get(format!("{base}/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn assert_me(client: &reqwest::Client, base: &str, token: &str) {
    let response = me(client, base, token).await;
    assert_eq!(response.status(), 200, "on {base}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], "carol");
}

#[tokio::test]
async fn two_instances_on_one_database_share_users_tokens_and_revocations() {
    // On PostgreSQL (the multi-instance engine) both start on the empty
    // database at once: one applies the migrations, the other waits for
    // its lock and finds them applied. SQLite's migrator takes no lock, so
    // there the schema is created first; the rest is the same.
    let database = TestDatabase::new();
    let url = database.url.clone();
    let dir = tempfile::tempdir().unwrap();
    if !database.is_postgres() {
        cli(&url, dir.path(), &["migrate"], "");
    }
    let mut a = Instance::start(&url, dir.path());
    let mut b = Instance::start(&url, dir.path());
    let (a, b) = (a.ready(), b.ready());
    assert_ne!(a, b);
    let client = reqwest::Client::new();

    // A user created with the command line logs in on both.
    cli(
        &url,
        dir.path(),
        &["user", "add", "carol", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let from_a = token_from(&client, &a).await;
    let from_b = token_from(&client, &b).await;

    // A token from one is accepted by the other.
    assert_me(&client, &b, &from_a).await;
    assert_me(&client, &a, &from_b).await;

    // A resource server with the same secret, issuer and audience, and no
    // database at all, accepts them too; a different issuer does not.
    let resource = Authenticator::hs256(SECRET, ISSUER, AUDIENCE).unwrap();
    let claims = resource
        .verifier()
        .verify(&from_a, gatehouse::token::now())
        .unwrap();
    assert_eq!(claims.sub, "carol");
    let elsewhere = Authenticator::hs256(SECRET, "https://other.example.test", AUDIENCE).unwrap();
    assert!(
        elsewhere
            .verifier()
            .verify(&from_b, gatehouse::token::now())
            .is_err()
    );

    // A change to the shared database by another process takes effect on
    // every instance within the cache bound: the first request after it is
    // refused.
    cli(&url, dir.path(), &["user", "disable", "carol"], "");
    after_the_cache_bound().await;
    for (base, token) in [(&a, &from_a), (&b, &from_a), (&a, &from_b), (&b, &from_b)] {
        let body = assert_invalid_token(me(&client, base, token).await).await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("disabled"),
            "{body}"
        );
    }
    for base in [&a, &b] {
        let body = assert_error(login(&client, base).await, 400, "invalid_grant").await;
        assert_eq!(body["error_description"], "account disabled");
    }

    // Enabled again: new logins work everywhere; the old tokens stay void.
    cli(&url, dir.path(), &["user", "enable", "carol"], "");
    after_the_cache_bound().await;
    let fresh = token_from(&client, &b).await;
    assert_me(&client, &a, &fresh).await;
    assert_invalid_token(me(&client, &a, &from_a).await).await;

    // Revoking every token of the user: refused on both at once.
    cli(&url, dir.path(), &["user", "revoke", "carol"], "");
    after_the_cache_bound().await;
    for base in [&a, &b] {
        let body = assert_invalid_token(me(&client, base, &fresh).await).await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("revoked"),
            "{body}"
        );
    }
    let after = token_from(&client, &a).await;
    assert_me(&client, &b, &after).await;

    // One access token revoked on A is refused on B at once.
    let body: Value = login(&client, &a).await.json().await.unwrap();
    let (access, refresh) = (
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    );
    let revoked = client
        .post(format!("{a}/revoke"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_invalid_token(me(&client, &b, access).await).await;
    assert_me(&client, &b, &after).await;

    // A refresh token spent on A cannot be spent again on B, and that reuse
    // ends the family for both.
    let refreshed = refresh_on(&client, &a, refresh).await;
    assert_eq!(refreshed.status(), 200);
    let next: Value = refreshed.json().await.unwrap();
    let next = next["refresh_token"].as_str().unwrap();
    assert_error(refresh_on(&client, &b, refresh).await, 400, "invalid_grant").await;
    assert_error(refresh_on(&client, &a, next).await, 400, "invalid_grant").await;

    // Deleted: gone on both.
    cli(&url, dir.path(), &["user", "delete", "carol"], "");
    after_the_cache_bound().await;
    for base in [&a, &b] {
        assert_invalid_token(me(&client, base, &after).await).await;
        assert_error(login(&client, base).await, 400, "invalid_grant").await;
    }
}

async fn refresh_on(client: &reqwest::Client, base: &str, refresh_token: &str) -> Response {
    client
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap()
}

async fn wrong_login(client: &reqwest::Client, base: &str, username: &str) -> Response {
    client
        .post(format!("{base}/token"))
        .form(&[("username", username), ("password", "a wrong guess")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_logins_are_counted_across_instances() {
    let database = TestDatabase::new();
    let url = database.url.clone();
    let dir = tempfile::tempdir().unwrap();
    cli(&url, dir.path(), &["migrate"], "");
    let mut a = Instance::start(&url, dir.path());
    let mut b = Instance::start(&url, dir.path());
    let (a, b) = (a.ready(), b.ready());
    let client = reqwest::Client::new();
    // The default threshold is five failures of one account from one address.
    for attempt in 0..5 {
        let base = if attempt % 2 == 0 { &a } else { &b };
        assert_error(
            wrong_login(&client, base, "dave").await,
            400,
            "invalid_grant",
        )
        .await;
    }
    for base in [&a, &b] {
        let response = wrong_login(&client, base, "dave").await;
        assert!(response.headers().contains_key("retry-after"), "on {base}");
        assert_error(response, 429, "slow_down").await;
    }
}

#[test]
fn the_listening_address_is_read_from_the_log_line() {
    let line = "2026-11-29T05:45:28Z  INFO gatehouse::cli: gatehouse listening; Swagger UI at \
                http://127.0.0.1:43483/docs address=127.0.0.1:43483 engine=\"postgres\"";
    assert_eq!(listening_address(line).as_deref(), Some("127.0.0.1:43483"));
    assert_eq!(listening_address("INFO something else"), None);
}

#[tokio::test]
async fn serve_stops_gracefully_on_sigterm_and_sigint() {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    cli(&database.url, dir.path(), &["migrate"], "");
    for signal in ["-TERM", "-INT"] {
        let mut instance = Instance::start(&database.url, dir.path());
        let base = instance.ready();
        let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        let pid = instance.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
        let status = instance.child.wait().unwrap();
        assert!(status.success(), "{signal}: {status:?}");
        assert!(
            reqwest::get(format!("{base}/healthz")).await.is_err(),
            "no longer listening"
        );
    }
}
