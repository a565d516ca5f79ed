//! Hardening: brute-force throttling, overload control, input limits,
//! response hygiene, equal timing, and the audit log.

use std::time::{Duration, Instant};

use gatehouse::throttle::ThrottleKeys;
use serde_json::Value;

use crate::helpers::{
    PASSWORD, TestApp, assert_error, captured_logs, cpu_heavy, spawn_app, spawn_app_with,
};

async fn throttled_app(account_failures: i64, address_failures: i64) -> TestApp {
    spawn_app_with(|config| {
        config.throttle.account_failures = account_failures;
        config.throttle.address_failures = address_failures;
        config.client_ip_header = Some("x-forwarded-for".to_owned());
    })
    .await
}

/// Ends the lock of a pair as if its time had passed.
async fn let_lock_pass(app: &TestApp, username: &str, address: &str) {
    let keys = ThrottleKeys::new(username, Some(address.parse().unwrap()));
    app.state.store.lock_login(keys.pair(), 0).await.unwrap();
}

async fn retry_after(response: reqwest::Response) -> u64 {
    let seconds = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = assert_error(response, 429, "slow_down").await;
    assert_eq!(body["error_description"], "too many failed attempts");
    seconds
}

const ATTACKER: &str = "203.0.113.9";
const USER_HOME: &str = "198.51.100.4";

#[tokio::test]
async fn throttling_engages_after_the_threshold_with_a_growing_backoff() {
    let app = throttled_app(3, 100).await;
    app.create_user("alice").await;
    for _ in 0..3 {
        assert_error(
            app.login_from(ATTACKER, "alice", "guess").await,
            400,
            "invalid_grant",
        )
        .await;
    }
    // Locked: even the right password gets 429 from this address.
    let first = retry_after(app.login_from(ATTACKER, "alice", PASSWORD).await).await;
    assert!((1..=2).contains(&first), "{first}");
    // Each further failure doubles the lock.
    let mut previous = first;
    for expected in [2, 4] {
        let_lock_pass(&app, "alice", ATTACKER).await;
        assert_error(
            app.login_from(ATTACKER, "alice", "guess").await,
            400,
            "invalid_grant",
        )
        .await;
        let next = retry_after(app.login_from(ATTACKER, "alice", "guess").await).await;
        assert!(
            (expected..=expected + 1).contains(&next),
            "{next} after {previous}"
        );
        previous = next;
    }
}

#[tokio::test]
async fn an_honoured_retry_after_lets_the_next_attempt_through_and_success_resets() {
    let app = throttled_app(3, 100).await;
    app.create_user("alice").await;
    for _ in 0..3 {
        app.login_from(ATTACKER, "alice", "guess").await;
    }
    retry_after(app.login_from(ATTACKER, "alice", PASSWORD).await).await;
    let_lock_pass(&app, "alice", ATTACKER).await;
    assert_eq!(
        app.login_from(ATTACKER, "alice", PASSWORD).await.status(),
        200
    );
    // The success cleared the pair: two failures are not yet throttled.
    for _ in 0..2 {
        assert_error(
            app.login_from(ATTACKER, "alice", "guess").await,
            400,
            "invalid_grant",
        )
        .await;
    }
    assert_eq!(
        app.login_from(ATTACKER, "alice", PASSWORD).await.status(),
        200
    );
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_user_out_from_another_address() {
    let app = throttled_app(3, 100).await;
    app.create_user("alice").await;
    for _ in 0..5 {
        app.login_from(ATTACKER, "alice", "guess").await;
    }
    retry_after(app.login_from(ATTACKER, "alice", PASSWORD).await).await;
    assert_eq!(
        app.login_from(USER_HOME, "alice", PASSWORD).await.status(),
        200
    );
}

#[tokio::test]
async fn guessing_across_accounts_from_one_address_is_limited() {
    let app = throttled_app(100, 4).await;
    for i in 0..4 {
        let response = app.login_from(ATTACKER, &format!("user{i}"), "guess").await;
        assert_error(response, 400, "invalid_grant").await;
    }
    retry_after(app.login_from(ATTACKER, "another-user", "guess").await).await;
    let elsewhere = app.login_from(USER_HOME, "another-user", "guess").await;
    assert_error(elsewhere, 400, "invalid_grant").await;
}

#[tokio::test]
async fn without_a_configured_proxy_header_the_connection_address_counts() {
    let app = spawn_app_with(|config| config.throttle.account_failures = 2).await;
    app.create_user("alice").await;
    // Spoofed headers change nothing: every request is from 127.0.0.1.
    for spoofed in ["192.0.2.1", "192.0.2.2"] {
        assert_error(
            app.login_from(spoofed, "alice", "guess").await,
            400,
            "invalid_grant",
        )
        .await;
    }
    retry_after(app.login_from("192.0.2.3", "alice", PASSWORD).await).await;
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_at_once_while_protected_routes_answer() {
    let _heavy = cpu_heavy().await;
    let app = spawn_app_with(|config| {
        config.passwords.bcrypt_cost = 12;
        config.hash_workers = 1;
        config.hash_queue = 1;
    })
    .await;
    app.create_user("alice").await;
    let token = app.token_for("alice").await;
    let logins: Vec<_> = (0..10)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/token"));
            tokio::spawn(async move {
                let form = [("username", "alice"), ("password", PASSWORD)];
                client.post(url).form(&form).send().await.unwrap()
            })
        })
        .collect();
    // While the logins queue, the protected API answers normally.
    for _ in 0..5 {
        assert_eq!(app.get_me(&token).await.status(), 200);
    }
    let (mut ok, mut shed) = (0, 0);
    for login in logins {
        let response = login.await.unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body = assert_error(response, 503, "temporarily_unavailable").await;
                assert_eq!(body["error_description"], "too many logins in progress");
                shed += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1, "some logins complete: {ok} ok, {shed} shed");
    assert!(shed >= 5, "the excess is shed: {ok} ok, {shed} shed");
}

#[tokio::test]
async fn over_long_credentials_are_refused_before_any_work() {
    let app = spawn_app().await;
    let long_name = "a".repeat(65);
    let body = assert_error(
        app.login(&long_name, PASSWORD).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "the username is longer than 64 bytes"
    );
    let long_password = "p".repeat(1025);
    let body = assert_error(
        app.login("alice", &long_password).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "the password is longer than 1024 bytes"
    );
}

#[tokio::test]
async fn oversized_headers_bodies_and_tokens_are_refused_with_json() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/users/me"))
        .header("x-padding", "a".repeat(17 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_error(response, 431, "invalid_request").await;

    let response = app
        .client
        .post(app.url("/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "invalid_request").await;

    let token = "a".repeat(9 * 1024);
    let response = app.get_me(&token).await;
    let body = crate::helpers::assert_invalid_token(response).await;
    assert_eq!(body["error_description"], "the token is too long");
}

#[tokio::test]
async fn responses_carry_nosniff_and_no_server_banner() {
    let app = spawn_app().await;
    for path in ["/healthz", "/users/me", "/nope", "/openapi.json", "/docs/"] {
        let response = app.get(path, None).await;
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert!(response.headers().get("server").is_none(), "{path}");
        assert!(response.headers().get("x-powered-by").is_none(), "{path}");
    }
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_take_the_same_time() {
    let _heavy = cpu_heavy().await;
    let app = spawn_app_with(|config| {
        // A cost where hashing dominates the request, as in production.
        config.passwords.bcrypt_cost = 9;
        config.throttle.account_failures = 10_000;
        config.throttle.address_failures = 10_000;
    })
    .await;
    app.create_user("alice").await;
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    let mut paired = Vec::new();
    // Each round times one login of each kind back to back, in alternating
    // order, so the load of the moment falls on both; rounds are compared
    // pairwise and the median taken, which slow swings of a shared machine
    // do not move. The first rounds warm up.
    for round in 0..44 {
        let names = if round % 2 == 0 {
            ["nobody", "alice"]
        } else {
            ["alice", "nobody"]
        };
        let mut times = [Duration::ZERO; 2];
        for name in names {
            let start = Instant::now();
            assert_eq!(app.login(name, "guess").await.status(), 400);
            times[usize::from(name == "alice")] = start.elapsed();
        }
        if round >= 4 {
            unknown.push(times[0]);
            wrong.push(times[1]);
            paired.push(times[0].as_secs_f64() / times[1].as_secs_f64());
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (unknown, wrong) = (median(&mut unknown), median(&mut wrong));
    paired.sort_by(f64::total_cmp);
    let ratio = paired[paired.len() / 2];
    println!(
        "median unknown user {unknown:.4}s, wrong password {wrong:.4}s, median paired ratio {ratio:.3}"
    );
    assert!((0.9..=1.1).contains(&ratio), "ratio {ratio:.3}");
}

#[tokio::test]
async fn audit_events_are_logged_and_no_secret_ever_is() {
    captured_logs();
    let app = spawn_app_with(|config| config.throttle.account_failures = 2).await;
    let password = "audit-password-Zq81";
    app.create_user_with(
        gatehouse::users::AccountDetails {
            username: "audited".into(),
            ..Default::default()
        },
        password,
    )
    .await;
    let login = app.login("audited", password).await;
    assert_eq!(login.status(), 200);
    let body: Value = login.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let wrong = "wrong-guess-Kp02";
    app.login("audited", wrong).await;
    app.login("audited", wrong).await;
    assert_eq!(app.login("audited", wrong).await.status(), 429);
    let next: Value = app.refresh(&refresh, &[]).await.json().await.unwrap();
    let next = next["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.refresh(&refresh, &[]).await.status(), 400, "reuse");
    assert_eq!(app.revoke(&[("token", &access)]).await.status(), 200);
    assert_eq!(app.get_me(&access).await.status(), 401);
    let hash = app
        .state
        .store
        .user_by_name("audited")
        .await
        .unwrap()
        .unwrap()
        .password_hash;

    let logs = captured_logs();
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "gatehouse::audit")
        .collect();
    let has = |event: &str, outcome: &str, user: Option<&str>| {
        audit.iter().any(|line| {
            let fields = &line["fields"];
            fields["event"] == event
                && fields["outcome"] == outcome
                && user.is_none_or(|u| fields["username"] == u)
        })
    };
    assert!(has("login", "success", Some("audited")), "{audit:?}");
    assert!(has("login", "failure", Some("audited")));
    assert!(has("login", "throttled", Some("audited")));
    assert!(has("refresh", "success", Some("audited")));
    assert!(has("refresh_reuse", "family_revoked", None));
    assert!(has("revoke", "revoked", None));
    for line in audit
        .iter()
        .filter(|l| l["fields"]["username"] == "audited")
    {
        assert!(
            line["fields"]["client_ip"]
                .as_str()
                .is_some_and(|ip| ip.contains("127.0.0.1")),
            "{line}"
        );
    }
    for secret in [
        password, wrong, &access, &refresh, &next, &hash, "$2b$", "$argon2",
    ] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
    assert!(!logs.contains(&access[..40]), "not even part of a token");
}
