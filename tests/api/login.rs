//! `POST /token`: the password grant and every way it refuses.

use base64::Engine as _;
use gatehouse::users::AccountDetails;
use serde_json::Value;

use crate::helpers::{AUDIENCE, ISSUER, PASSWORD, assert_error, spawn_app};

#[tokio::test]
async fn login_works_for_both_demo_users() {
    let app = spawn_app().await;
    for name in ["alice", "mike"] {
        app.create_user(name).await;
        let token = app.token_for(name).await;
        // `cargo test -- --nocapture` shows the tokens, to paste into a JWT decoder.
        println!("{name}: {token}");
        let me: Value = app.get_me(&token).await.json().await.unwrap();
        assert_eq!(me["username"], name);
    }
}

#[tokio::test]
async fn a_token_response_is_bearer_json_that_must_not_be_cached() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["scope"], "me items");

    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = app.claims(token);
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, AUDIENCE);
    assert_eq!(claims.exp - claims.iat, 1800);
    assert_eq!(claims.scope, "me items");
    assert_eq!(claims.client_id, "public");
    assert_eq!(claims.jti.len(), 36);
}

#[tokio::test]
async fn a_login_without_grant_type_is_a_password_login() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let response = app
        .post_token(&[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn every_access_token_has_a_fresh_id() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let first = app.claims(&app.token_for("alice").await);
    let second = app.claims(&app.token_for("alice").await);
    assert_ne!(first.jti, second.jti);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let wrong = app.login("alice", "not the password").await;
    let headers = wrong.headers().clone();
    let wrong_body = assert_error(wrong, 400, "invalid_grant").await;
    let unknown = app.login("nobody", "not the password").await;
    let unknown_headers = unknown.headers().clone();
    let unknown_body = assert_error(unknown, 400, "invalid_grant").await;
    assert_eq!(wrong_body, unknown_body);
    assert_eq!(
        wrong_body["error_description"],
        "incorrect username or password"
    );
    assert_eq!(
        headers.get("content-length"),
        unknown_headers.get("content-length")
    );
    assert!(headers.get("www-authenticate").is_none());
}

#[tokio::test]
async fn usernames_are_case_sensitive() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    assert_error(app.login("Alice", PASSWORD).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn missing_or_empty_credentials_are_invalid_requests() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let cases: [&[(&str, &str)]; 5] = [
        &[("grant_type", "password"), ("password", PASSWORD)],
        &[("grant_type", "password"), ("username", "alice")],
        &[
            ("grant_type", "password"),
            ("username", ""),
            ("password", PASSWORD),
        ],
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", ""),
        ],
        &[],
    ];
    for form in cases {
        let body = assert_error(app.post_token(form).await, 400, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("missing parameter"),
            "{form:?}: {body}"
        );
    }
}

#[tokio::test]
async fn a_repeated_parameter_is_an_invalid_request() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let body = format!("username=alice&password={PASSWORD}&password=other");
    let response = app
        .post_token_raw(body, Some("application/x-www-form-urlencoded"))
        .await;
    let body = assert_error(response, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "the parameter \"password\" is repeated"
    );
}

#[tokio::test]
async fn a_json_body_or_another_content_type_is_an_invalid_request() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let json = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let response = app.post_token_raw(json.clone(), content_type).await;
        let body = assert_error(response, 400, "invalid_request").await;
        assert_eq!(
            body["error_description"],
            "the body must be application/x-www-form-urlencoded"
        );
    }
    // The right content type with a charset parameter is fine.
    let form = format!("username=alice&password={}", PASSWORD.replace(' ', "+"));
    let response = app
        .post_token_raw(
            form,
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn another_grant_type_is_unsupported() {
    let app = spawn_app().await;
    for grant in [
        "client_credentials",
        "authorization_code",
        "PASSWORD",
        "implicit",
    ] {
        let response = app
            .post_token(&[("grant_type", grant), ("username", "a"), ("password", "b")])
            .await;
        assert_error(response, 400, "unsupported_grant_type").await;
    }
}

#[tokio::test]
async fn a_disabled_account_with_the_right_password_is_told_so() {
    let app = spawn_app().await;
    app.create_user_with(
        AccountDetails {
            username: "frozen".into(),
            disabled: true,
            ..AccountDetails::default()
        },
        PASSWORD,
    )
    .await;
    let body = assert_error(app.login("frozen", PASSWORD).await, 400, "invalid_grant").await;
    assert_eq!(body["error_description"], "account disabled");
    // With a wrong password the account's state is not revealed.
    let body = assert_error(app.login("frozen", "wrong").await, 400, "invalid_grant").await;
    assert_eq!(body["error_description"], "incorrect username or password");
}

#[tokio::test]
async fn a_password_never_matches_through_bcrypt_truncation() {
    let app = spawn_app().await;
    let exactly_72 = "p".repeat(72);
    app.create_user_with(
        AccountDetails {
            username: "long".into(),
            ..AccountDetails::default()
        },
        &exactly_72,
    )
    .await;
    assert_eq!(app.login("long", &exactly_72).await.status(), 200);
    let longer = format!("{exactly_72}-and-more");
    assert_error(app.login("long", &longer).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn setting_a_password_longer_than_72_bytes_is_refused() {
    let app = spawn_app().await;
    let error = app
        .state
        .accounts
        .create(
            AccountDetails {
                username: "long".into(),
                ..AccountDetails::default()
            },
            &"p".repeat(73),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("at most 72"), "{error}");
    assert!(
        app.state
            .store
            .user_by_name("long")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn swagger_ui_and_oauth_clients_log_in_with_basic_client_authentication() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let basic = |id: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:"))
        )
    };
    // Swagger UI sends `Basic Og==` (an empty id and secret).
    for (authorization, client_id) in [
        ("Basic Og==".to_owned(), "public"),
        (basic("my-cli"), "my-cli"),
    ] {
        let response = app
            .client
            .post(app.url("/token"))
            .header("authorization", authorization)
            .form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let claims = app.claims(body["access_token"].as_str().unwrap());
        assert_eq!(claims.client_id, client_id);
    }
}

#[tokio::test]
async fn a_client_id_in_the_form_is_recorded_in_the_token() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let response = app
        .post_token(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", "web"),
        ])
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        app.claims(body["access_token"].as_str().unwrap()).client_id,
        "web"
    );
}

#[tokio::test]
async fn a_client_secret_is_refused_as_invalid_client() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let secret = base64::engine::general_purpose::STANDARD.encode("web:s3cret");
    let response = app
        .client
        .post(app.url("/token"))
        .header("authorization", format!("Basic {secret}"))
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"gatehouse\""
    );
    assert_error(response, 401, "invalid_client").await;
}

#[tokio::test]
async fn requested_scopes_are_granted_only_if_allowed() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let response = app
        .post_token(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("scope", "me"),
        ])
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "me");
    assert_eq!(
        app.claims(body["access_token"].as_str().unwrap()).scope,
        "me"
    );

    let response = app
        .post_token(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("scope", "me admin"),
        ])
        .await;
    let body = assert_error(response, 400, "invalid_scope").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
}

#[tokio::test]
async fn an_oversized_token_request_is_refused() {
    let app = spawn_app().await;
    let body = format!("username=alice&password={}", "a".repeat(20 * 1024));
    let response = app
        .post_token_raw(body, Some("application/x-www-form-urlencoded"))
        .await;
    assert_error(response, 413, "invalid_request").await;
}
