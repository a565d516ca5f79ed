//! The hostile-input suite: what an attacker sends on day one.
//!
//! Forged, malformed and oversized tokens on a protected route; hostile
//! credentials, bodies and headers at `/token` and `/revoke`. Every case
//! asserts the exact answer (status, error code, description, challenge),
//! never a 5xx, and wherever a request could write, that the database is
//! exactly as it was.
//!
//! Tokens are built here from literal JSON text and signed with the server's
//! own secret where a case needs a valid signature, so each case changes one
//! thing; a control token made the same way is accepted first, so that a
//! refusal is due to the hostile part and nothing else.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse::auth::Authenticator;
use gatehouse::keys::{KeyAlgorithm, KeySet, generate_key_files};
use gatehouse::password::MAX_PASSWORD_BYTES;
use gatehouse::token::{Grant, TokenIssuer};
use gatehouse::users::{MAX_USERNAME_BYTES, User};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{
    AUDIENCE, ISSUER, PASSWORD, TEST_SECRET, TestApp, assert_error, assert_invalid_token,
    spawn_app_with,
};

const FORM: &str = "application/x-www-form-urlencoded";

// What the verifier says (`gatehouse::token::TokenError`), as the client sees it.
const MALFORMED: &str = "the token is malformed";
const HEADER_MALFORMED: &str = "the Authorization header is malformed";
const TOO_LONG: &str = "the token is too long";
const UNKNOWN_KEY: &str = "the token was signed with an unknown key";
const WRONG_ALG: &str = "the token's algorithm is not accepted";
const CRITICAL: &str = "the token requires an unsupported extension";
const BAD_SIGNATURE: &str = "the token signature is invalid";
const BAD_CLAIMS: &str = "the token's claims are invalid";
const NOT_YET_VALID: &str = "the token is not valid yet";
const WRONG_ISSUER: &str = "the token was issued by another issuer";
const WRONG_AUDIENCE: &str = "the token is meant for another audience";
const BAD_CREDENTIALS: &str = "incorrect username or password";
const BAD_ENCODING: &str = "the form is not valid percent-encoded UTF-8";

/// The app under attack: alice exists and has logged in once, so there is a
/// refresh token and an access token that hostile requests must not touch.
struct Target {
    app: TestApp,
    alice: User,
    access_token: String,
    refresh_token: String,
}

/// One place to configure the server for this suite.
async fn target() -> Target {
    // Throttling has its own tests (hardening.rs); here every hostile login
    // must reach the input handling.
    let app = spawn_app_with(|config| {
        config.throttle.account_failures = 1_000_000;
        config.throttle.address_failures = 1_000_000;
    })
    .await;
    app.create_user("alice").await;
    app.create_user("mike").await;
    let body = app.login_body("alice").await;
    let alice = app
        .state
        .store
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap();
    Target {
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
        app,
        alice,
    }
}

impl Target {
    /// The tokens from before the attack still work: the access token on a
    /// protected route, the refresh token once (which spends it, so this
    /// comes last in a test).
    async fn assert_tokens_still_work(&self) {
        assert_eq!(self.app.get_me(&self.access_token).await.status(), 200);
        assert_eq!(
            self.app.refresh(&self.refresh_token, &[]).await.status(),
            200
        );
    }
}

/// Everything a request to `/token` or `/revoke` could change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Vec<User>,
    refresh_tokens: Vec<(i64, String, Option<i64>, Option<i64>)>,
    revoked_access_tokens: Vec<(String, i64)>,
}

const REFRESH_ROWS: &str =
    "SELECT id, token_hash, used_at, revoked_at FROM refresh_tokens ORDER BY id";
const REVOKED_ROWS: &str = "SELECT jti, expires_at FROM revoked_access_tokens ORDER BY jti";

/// Reads the whole database: users through the store, token rows directly
/// (the store has no reason to list them), on a connection of its own.
async fn snapshot(app: &TestApp) -> Snapshot {
    let users = app.state.store.list_users().await.unwrap();
    let url = &app.state.config.database_url;
    let (refresh_tokens, revoked_access_tokens) = if url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .read_only(true);
        let mut db = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        (
            sqlx::query_as(REFRESH_ROWS)
                .fetch_all(&mut db)
                .await
                .unwrap(),
            sqlx::query_as(REVOKED_ROWS)
                .fetch_all(&mut db)
                .await
                .unwrap(),
        )
    } else {
        let mut db = sqlx::PgConnection::connect(url).await.unwrap();
        (
            sqlx::query_as(REFRESH_ROWS)
                .fetch_all(&mut db)
                .await
                .unwrap(),
            sqlx::query_as(REVOKED_ROWS)
                .fetch_all(&mut db)
                .await
                .unwrap(),
        )
    };
    Snapshot {
        users,
        refresh_tokens,
        revoked_access_tokens,
    }
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// A compact JWS of literal header and claims text, HMAC-SHA256-signed with
/// `key`: literal, so a test can send JSON that no serializer would write.
fn hs256(header: &str, claims: &str, key: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(key),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

/// Signed with the server's own secret.
fn signed(header: &str, claims: &str) -> String {
    hs256(header, claims, TEST_SECRET.as_bytes())
}

impl Target {
    fn kid(&self) -> String {
        self.app.state.config.keys.signing_kid().unwrap().to_owned()
    }

    /// The header the server itself writes.
    fn header(&self) -> Value {
        json!({"alg": "HS256", "typ": "at+jwt", "kid": self.kid()})
    }

    /// Claims the server accepts for alice now.
    fn claims(&self) -> Value {
        let now = gatehouse::token::now();
        json!({
            "iss": ISSUER, "sub": "alice", "aud": AUDIENCE,
            "exp": now + 600, "iat": now - 1, "jti": uuid::Uuid::new_v4().to_string(),
            "scope": "me items", "client_id": "public", "ver": self.alice.token_version,
        })
    }

    /// Proves that a token built like the hostile ones, without the hostile
    /// part, is accepted.
    async fn assert_control_accepted(&self) {
        let control = signed(&self.header().to_string(), &self.claims().to_string());
        assert_eq!(self.app.get_me(&control).await.status(), 200);
    }

    /// `GET /users/me` with `token` is `401 invalid_token` with exactly this
    /// description, in the body and in the challenge.
    async fn assert_refused(&self, token: &str, description: &str) {
        let response = self.app.get_me(token).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            format!(
                r#"Bearer realm="gatehouse", error="invalid_token", error_description="{description}""#
            ),
            "{token}"
        );
        let body = assert_invalid_token(response).await;
        assert_eq!(body["error_description"], description, "{token}");
    }
}

/// Every upper/lower-case spelling of `word`.
fn casings(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    (0..1u32 << chars.len())
        .map(|mask| {
            chars
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if mask & (1 << i) == 0 {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect()
        })
        .collect()
}

fn with(mut value: Value, key: &str, new: Value) -> Value {
    value[key] = new;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

// ---------------------------------------------------------------------------
// Tokens on a protected route
// ---------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_every_casing_is_refused_with_or_without_a_signature() {
    let t = target().await;
    t.assert_control_accepted().await;
    let claims = b64(&t.claims().to_string());
    let spellings = casings("none");
    assert_eq!(spellings.len(), 16);
    for alg in spellings {
        let header = b64(&with(t.header(), "alg", json!(alg)).to_string());
        let unsigned = format!("{header}.{claims}.");
        t.assert_refused(&unsigned, WRONG_ALG).await;
        // A signature made with the real key does not rescue it either.
        let signed_none = signed(
            &with(t.header(), "alg", json!(alg)).to_string(),
            &t.claims().to_string(),
        );
        t.assert_refused(&signed_none, WRONG_ALG).await;
        // Without the trailing dot: two segments are not a JWS at all.
        t.assert_refused(&format!("{header}.{claims}"), MALFORMED)
            .await;
    }
}

#[tokio::test]
async fn an_hs256_token_signed_with_an_empty_or_another_key_is_refused() {
    let t = target().await;
    t.assert_control_accepted().await;
    let (header, claims) = (t.header().to_string(), t.claims().to_string());
    for key in [
        &b""[..],
        b"another-secret-another-secret-another",
        // The server's secret with one byte more, and one byte less.
        format!("{TEST_SECRET}x").as_bytes(),
        &TEST_SECRET.as_bytes()[..TEST_SECRET.len() - 1],
    ] {
        t.assert_refused(&hs256(&header, &claims, key), BAD_SIGNATURE)
            .await;
    }
}

#[tokio::test]
async fn a_kid_that_is_a_path_a_url_or_sql_names_no_key() {
    let t = target().await;
    t.assert_control_accepted().await;
    let claims = t.claims().to_string();
    for kid in [
        "../../../../../../etc/passwd",
        "/dev/zero",
        "file:///etc/passwd",
        "http://127.0.0.1:9/key.pem",
        "' OR '1'='1",
        "x'; DROP TABLE users; --",
        "",
        "hs256-",
    ] {
        let header = with(t.header(), "kid", json!(kid)).to_string();
        t.assert_refused(&signed(&header, &claims), UNKNOWN_KEY)
            .await;
    }
    // No kid, or a null one, names no key either.
    for header in [
        without(t.header(), "kid"),
        with(t.header(), "kid", json!(null)),
    ] {
        t.assert_refused(&signed(&header.to_string(), &claims), UNKNOWN_KEY)
            .await;
    }
    for kid in [json!(1), json!([t.kid()]), json!({"kid": t.kid()})] {
        let header = with(t.header(), "kid", kid).to_string();
        t.assert_refused(&signed(&header, &claims), MALFORMED).await;
    }
}

/// A listener standing in for an attacker's key server; it must never see a
/// connection.
struct Tripwire {
    listener: tokio::net::TcpListener,
    url: String,
}

impl Tripwire {
    async fn new() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Self { listener, url }
    }

    /// Nothing connected. A fetch would have happened while a request was
    /// being answered, so it would be waiting in the backlog by now; the
    /// short window only covers a fetch started in the background. Then a
    /// connection of our own proves the tripwire would have noticed one.
    async fn assert_untouched(self) {
        let waited = tokio::time::timeout(Duration::from_millis(200), self.listener.accept()).await;
        assert!(waited.is_err(), "the server connected to {}", self.url);
        let address = self.listener.local_addr().unwrap();
        let _probe = tokio::net::TcpStream::connect(address).await.unwrap();
        assert!(self.listener.accept().await.is_ok());
    }
}

#[tokio::test]
async fn jku_x5u_and_jwk_headers_are_ignored_and_never_fetched() {
    let t = target().await;
    let tripwire = Tripwire::new().await;
    let attacker_key = b"the-attackers-own-secret-0123456789";
    let hostile = |header: Value| {
        let mut header = with(header, "jku", json!(format!("{}/jwks.json", tripwire.url)));
        header["x5u"] = json!(format!("{}/cert.pem", tripwire.url));
        header["jwk"] =
            json!({"kty": "oct", "kid": "attacker", "k": URL_SAFE_NO_PAD.encode(attacker_key)});
        header.to_string()
    };
    let claims = t.claims().to_string();

    // The attacker's own key, named by the attacker's kid: no such key here.
    let own_kid = hostile(with(t.header(), "kid", json!("attacker")));
    t.assert_refused(&hs256(&own_kid, &claims, attacker_key), UNKNOWN_KEY)
        .await;
    // The attacker's key under the server's kid: the server's key decides.
    t.assert_refused(
        &hs256(&hostile(t.header()), &claims, attacker_key),
        BAD_SIGNATURE,
    )
    .await;
    // The same headers on a token the server did sign change nothing.
    let genuine = signed(&hostile(t.header()), &claims);
    assert_eq!(t.app.get_me(&genuine).await.status(), 200);

    tripwire.assert_untouched().await;
}

#[tokio::test]
async fn a_resource_server_fetches_only_its_configured_jwks_never_a_jku() {
    let dir = tempfile::tempdir().unwrap();
    let issuer_key = generate_key_files(KeyAlgorithm::EdDsa, dir.path())
        .unwrap()
        .0;
    let attacker_key = generate_key_files(KeyAlgorithm::EdDsa, dir.path())
        .unwrap()
        .0;
    let keys = Arc::new(KeySet::new(None, Some(&issuer_key), &[]).unwrap());
    let gatehouse = spawn_app_with(|config| config.keys = keys).await;
    let auth = Authenticator::from_jwks(&gatehouse.url("/.well-known/jwks.json"), ISSUER, AUDIENCE)
        .await
        .unwrap();

    // The attacker signs with a key of their own, publishes it at a jku and
    // embeds it as a jwk; the unknown kid makes the resource server refresh
    // its JWKS, from the issuer, and still refuse.
    let tripwire = Tripwire::new().await;
    let attacker = TokenIssuer::new(
        Arc::new(KeySet::new(None, Some(&attacker_key), &[]).unwrap()),
        ISSUER,
        AUDIENCE,
        Duration::from_secs(600),
    );
    let grant = Grant {
        subject: "alice",
        scope: "me",
        client_id: "public",
        version: 0,
    };
    let token = attacker
        .issue(&grant, gatehouse::token::now())
        .unwrap()
        .token;
    let (header, rest) = token.split_once('.').unwrap();
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["jku"] = json!(format!("{}/jwks.json", tripwire.url));
    header["x5u"] = json!(format!("{}/cert.pem", tripwire.url));
    header["jwk"] = attacker_key.jwk().clone();
    // Re-signing is not needed for the point being made: whatever the
    // signature, the key must come from the issuer's JWKS, not the header.
    let token = format!("{}.{rest}", b64(&header.to_string()));
    let refused = auth.authenticate_token(&token).await.unwrap_err();
    assert_eq!(refused.to_string(), UNKNOWN_KEY);

    tripwire.assert_untouched().await;
}

#[tokio::test]
async fn unknown_critical_headers_are_refused() {
    let t = target().await;
    t.assert_control_accepted().await;
    let claims = t.claims().to_string();
    for crit in [
        json!(["urn:example:unknown"]),
        json!(["exp"]),
        json!(["b64"]),
        json!([]),
    ] {
        let header = with(t.header(), "crit", crit).to_string();
        t.assert_refused(&signed(&header, &claims), CRITICAL).await;
    }
    for crit in [json!("b64"), json!(1), json!([1])] {
        let header = with(t.header(), "crit", crit).to_string();
        t.assert_refused(&signed(&header, &claims), MALFORMED).await;
    }
}

#[tokio::test]
async fn a_token_without_exp_sub_iss_aud_or_iat_is_refused() {
    let t = target().await;
    t.assert_control_accepted().await;
    let header = t.header().to_string();
    for claim in ["exp", "sub", "iss", "aud", "iat"] {
        let claims = without(t.claims(), claim).to_string();
        t.assert_refused(&signed(&header, &claims), BAD_CLAIMS)
            .await;
    }
    // Present but null, or of the wrong type, is no better.
    for (claim, value) in [
        ("exp", json!(null)),
        ("exp", json!("9999999999")),
        ("exp", json!(1e30)),
        ("sub", json!(null)),
        ("sub", json!(42)),
        ("iss", json!([ISSUER])),
        ("aud", json!([AUDIENCE])),
        ("iat", json!("now")),
    ] {
        let claims = with(t.claims(), claim, value).to_string();
        t.assert_refused(&signed(&header, &claims), BAD_CLAIMS)
            .await;
    }
    let claims = with(t.claims(), "sub", json!("")).to_string();
    t.assert_refused(&signed(&header, &claims), BAD_CLAIMS)
        .await;
}

#[tokio::test]
async fn nbf_or_iat_in_the_future_is_not_valid_yet() {
    let t = target().await;
    t.assert_control_accepted().await;
    let header = t.header().to_string();
    let now = gatehouse::token::now();
    for (claim, at) in [
        ("nbf", now + 60),
        ("iat", now + 60),
        ("nbf", i64::MAX),
        ("iat", i64::MAX),
    ] {
        let claims = with(t.claims(), claim, json!(at)).to_string();
        t.assert_refused(&signed(&header, &claims), NOT_YET_VALID)
            .await;
    }
}

#[tokio::test]
async fn a_wrong_iss_or_aud_is_refused_however_close() {
    let t = target().await;
    t.assert_control_accepted().await;
    let header = t.header().to_string();
    for iss in [
        "http://evil.test",
        "HTTP://GATEHOUSE.TEST",
        "http://gatehouse.test/",
        "http://gatehouse.test.evil.test",
        "",
        "http://gatehouse.test\u{0}",
    ] {
        let claims = with(t.claims(), "iss", json!(iss)).to_string();
        t.assert_refused(&signed(&header, &claims), WRONG_ISSUER)
            .await;
    }
    for aud in ["other-api", "Gatehouse", "gatehouse ", ""] {
        let claims = with(t.claims(), "aud", json!(aud)).to_string();
        t.assert_refused(&signed(&header, &claims), WRONG_AUDIENCE)
            .await;
    }
}

#[tokio::test]
async fn a_tampered_payload_or_header_with_the_original_signature_is_refused() {
    let t = target().await;
    let token = &t.access_token;
    let (header, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    for (claim, value) in [
        ("sub", json!("mike")),
        ("scope", json!("me items admin")),
        ("exp", json!(claims["exp"].as_i64().unwrap() + 86_400)),
        ("ver", json!(99)),
    ] {
        let original = claims[claim].clone();
        claims[claim] = value;
        let tampered = format!("{header}.{}.{signature}", b64(&claims.to_string()));
        t.assert_refused(&tampered, BAD_SIGNATURE).await;
        claims[claim] = original;
    }
    // The same claims, re-serialised with other whitespace: still refused,
    // because the signature covers the bytes, not the meaning.
    let spaced = serde_json::to_string_pretty(&claims).unwrap();
    t.assert_refused(
        &format!("{header}.{}.{signature}", b64(&spaced)),
        BAD_SIGNATURE,
    )
    .await;
    // A header asking for another HMAC with the HS256 signature.
    let mut h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    h["alg"] = json!("HS512");
    t.assert_refused(&format!("{}.{rest}", b64(&h.to_string())), WRONG_ALG)
        .await;
    // A typ that is not an access token.
    h["alg"] = json!("HS256");
    h["typ"] = json!("JWT");
    t.assert_refused(
        &format!("{}.{rest}", b64(&h.to_string())),
        "the token is not an access token",
    )
    .await;
    // The untouched token still works.
    assert_eq!(t.app.get_me(token).await.status(), 200);
}

#[tokio::test]
async fn every_truncation_of_a_valid_token_is_refused() {
    let t = target().await;
    let token = &t.access_token;
    let second_dot = token.rfind('.').unwrap();
    for end in 1..token.len() {
        let cut = &token[..end];
        let expected = if end <= second_dot {
            // No signature segment: not a compact JWS.
            MALFORMED
        } else if URL_SAFE_NO_PAD.decode(&token[second_dot + 1..end]).is_err() {
            // A signature of a length no base64 can have.
            MALFORMED
        } else {
            BAD_SIGNATURE
        };
        t.assert_refused(cut, expected).await;
    }
    assert_eq!(t.app.get_me(token).await.status(), 200);
}

#[tokio::test]
async fn a_100_kb_token_is_refused_before_any_decoding() {
    let t = target().await;
    // Just over the limit: the application refuses it by its length.
    let just_over = "a".repeat(gatehouse::token::MAX_TOKEN_BYTES + 1);
    t.assert_refused(&just_over, TOO_LONG).await;

    // 100 KB: within hyper's default header buffer (about 400 KB) the
    // application answers as above; a server configured with a smaller
    // header limit answers 431 before the application. Either way a 4xx,
    // never a 5xx, and the connection is answered rather than dropped.
    let huge = format!("{}.{}", t.access_token, "A".repeat(100 * 1024));
    let response = t.app.get_me(&huge).await;
    match response.status().as_u16() {
        401 => {
            let body = assert_invalid_token(response).await;
            assert_eq!(body["error_description"], TOO_LONG);
        }
        431 => {}
        other => panic!("a 100 KB token got {other}"),
    }

    // As a form parameter, it is over the body limit of /token and /revoke.
    let before = snapshot(&t.app).await;
    let response = t.app.refresh(&huge, &[]).await;
    assert_error(response, 413, "invalid_request").await;
    let response = t.app.revoke(&[("token", huge.as_str())]).await;
    assert_error(response, 413, "invalid_request").await;
    assert_eq!(snapshot(&t.app).await, before);
    t.assert_tokens_still_work().await;
}

#[tokio::test]
async fn segments_that_are_not_base64url_are_refused() {
    let t = target().await;
    let (header, rest) = t.access_token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    // token68 (so the Authorization header is well-formed) but not
    // base64url: the standard alphabet's `+` and `/`, `~`, and lengths no
    // base64 can have.
    for bad in ["ab+/", "a~b_", "a", "abcde"] {
        t.assert_refused(&format!("{bad}.{payload}.{signature}"), MALFORMED)
            .await;
        t.assert_refused(&format!("{header}.{payload}.{bad}"), MALFORMED)
            .await;
        // The signature is checked before the claims are read, so a broken
        // payload under the original signature is just a bad signature ...
        t.assert_refused(&format!("{header}.{bad}.{signature}"), BAD_SIGNATURE)
            .await;
        // ... and under a valid signature of exactly that text, unreadable.
        let signing_input = format!("{header}.{bad}");
        let valid = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        t.assert_refused(&format!("{signing_input}.{valid}"), MALFORMED)
            .await;
    }
    // Padding, which base64url in a JWS never has (token68 allows it at the end).
    t.assert_refused(&format!("{}=", t.access_token), MALFORMED)
        .await;
    t.assert_refused(&format!("{}==", t.access_token), MALFORMED)
        .await;
    // Not even token68: refused while reading the header.
    for bad in ["a!b", "a b", "a\"b", "a;b", "a,b", "é"] {
        let value = format!("Bearer {header}.{bad}.{signature}");
        let response = t.app.get_with_authorization("/users/me", &value).await;
        let body = assert_invalid_token(response).await;
        assert_eq!(body["error_description"], HEADER_MALFORMED, "{bad}");
    }
    // Four segments, five (JWE), and dots alone.
    for token in [
        format!("{}.x", t.access_token),
        format!("{header}.{header}.{payload}.{signature}.{signature}"),
        "..".to_owned(),
        "...".to_owned(),
    ] {
        t.assert_refused(&token, MALFORMED).await;
    }
}

#[tokio::test]
async fn json_that_is_not_an_object_is_refused() {
    let t = target().await;
    t.assert_control_accepted().await;
    let claims = t.claims().to_string();
    let header = t.header().to_string();
    for not_an_object in ["[]", "\"at+jwt\"", "1", "null", "true", "{", "", "{}}"] {
        // In the header: nothing can be read.
        t.assert_refused(&signed(not_an_object, &claims), MALFORMED)
            .await;
        // In the claims, validly signed: the claims are invalid.
        t.assert_refused(&signed(&header, not_an_object), BAD_CLAIMS)
            .await;
    }
}

#[tokio::test]
async fn claims_that_are_not_utf8_are_refused() {
    let t = target().await;
    // Validly signed, with a byte that is not UTF-8 in a claim the server
    // does not read (RFC 7519 §7.2: the claims are UTF-8 JSON).
    let claims = t.claims().to_string();
    let mut bytes = b"{\"junk\":\"\x91\",".to_vec();
    bytes.extend_from_slice(&claims.as_bytes()[1..]);
    let signing_input = format!(
        "{}.{}",
        b64(&t.header().to_string()),
        URL_SAFE_NO_PAD.encode(&bytes)
    );
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    t.assert_refused(&format!("{signing_input}.{signature}"), MALFORMED)
        .await;
}

#[tokio::test]
async fn duplicated_claims_or_header_fields_are_refused() {
    let t = target().await;
    t.assert_control_accepted().await;
    let header = t.header().to_string();
    let claims = t.claims().to_string();
    let body = claims.strip_prefix('{').unwrap();
    for duplicate in [
        r#""sub":"mike""#,
        r#""sub":"alice""#,
        r#""exp":9999999999"#,
        r#""aud":"other-api""#,
        r#""iss":"http://evil.test""#,
        r#""scope":"admin""#,
    ] {
        // Before and after the original: neither the first nor the last wins.
        let first = format!("{{{duplicate},{body}");
        let last = format!("{},{duplicate}}}", &claims[..claims.len() - 1]);
        for claims in [first, last] {
            t.assert_refused(&signed(&header, &claims), BAD_CLAIMS)
                .await;
        }
    }
    let header_body = header.strip_prefix('{').unwrap();
    for duplicate in [r#""alg":"none""#, r#""kid":"attacker""#, r#""typ":"JWT""#] {
        let header = format!("{{{duplicate},{header_body}");
        let refused = t.app.get_me(&signed(&header, &claims)).await;
        let body = assert_invalid_token(refused).await;
        assert!(
            [MALFORMED, WRONG_ALG].contains(&body["error_description"].as_str().unwrap()),
            "{body}"
        );
    }
}

// ---------------------------------------------------------------------------
// The Authorization header on a protected route
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_authorization_header_with_two_tokens_is_refused() {
    let t = target().await;
    let token = &t.access_token;
    for value in [
        format!("Bearer {token} {token}"),
        format!("Bearer {token},Bearer {token}"),
        format!("Bearer {token}, Bearer {token}"),
        format!("Bearer {token}, {token}"),
        format!("Bearer {token} Bearer {token}"),
    ] {
        let response = t.app.get_with_authorization("/users/me", &value).await;
        let body = assert_invalid_token(response).await;
        assert_eq!(body["error_description"], HEADER_MALFORMED, "{value}");
    }
    // Two Authorization headers, even two good ones.
    let response = t
        .app
        .client
        .get(t.app.url("/users/me"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let body = assert_invalid_token(response).await;
    assert_eq!(
        body["error_description"],
        "more than one Authorization header"
    );
}

#[tokio::test]
async fn odd_whitespace_in_the_authorization_header() {
    let t = target().await;
    let token = &t.access_token;
    // Whitespace around the field value is not part of it (RFC 9110 §5.5),
    // and several spaces after the scheme are still `1*SP`.
    for value in [
        format!("Bearer  {token}"),
        format!("Bearer {token} "),
        format!(" Bearer {token}"),
        format!("Bearer {token}\t"),
    ] {
        let response = t.app.get_with_authorization("/users/me", &value).await;
        assert_eq!(response.status(), 200, "{value:?}");
    }
    // Inside the credentials, anything but spaces after the scheme breaks them.
    for value in [
        format!("Bearer\t{token}"),
        format!("Bearer \t{token}"),
        format!("Bearer {token}\tx"),
        format!("Bearer {} {}", &token[..10], &token[10..]),
    ] {
        let response = t.app.get_with_authorization("/users/me", &value).await;
        let body = assert_invalid_token(response).await;
        assert_eq!(body["error_description"], HEADER_MALFORMED, "{value:?}");
    }
    // Bytes outside visible ASCII (obs-text) cannot be read as a token.
    let request = format!(
        "GET /users/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\u{a0}\r\n\r\n"
    );
    let response = raw(&t.app, request.as_bytes()).await;
    assert_eq!(response.status, 401);
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["error_description"], HEADER_MALFORMED);
}

/// An HTTP/1.1 exchange over a bare socket, for requests a client library
/// would refuse to send.
struct RawResponse {
    status: u16,
    body: Vec<u8>,
}

async fn raw(app: &TestApp, request: &[u8]) -> RawResponse {
    let address = app.address.strip_prefix("http://").unwrap();
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The server may answer (413, say) before the request is fully sent and
    // stop reading: send from a task of its own and read the answer meanwhile.
    let request = request.to_vec();
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut bytes = Vec::new();
    // A reset after the answer arrived is the server refusing the rest of
    // the body; what was read before it is the answer.
    let _ = reader.read_to_end(&mut bytes).await;
    drop(sending.await.unwrap());
    parse_response(&bytes)
}

fn parse_response(bytes: &[u8]) -> RawResponse {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&bytes[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    RawResponse {
        status,
        body: bytes[split + 4..].to_vec(),
    }
}

// ---------------------------------------------------------------------------
// Hostile credentials and bodies at /token
// ---------------------------------------------------------------------------

/// Usernames and passwords no one should be able to log in with.
fn hostile_strings() -> Vec<String> {
    vec![
        "alice' --".to_owned(),
        "alice'--".to_owned(),
        "' OR '1'='1".to_owned(),
        "' OR 1=1 --".to_owned(),
        "alice\"; DROP TABLE users; --".to_owned(),
        "alice'; UPDATE users SET disabled = 1; --".to_owned(),
        "%' OR username LIKE '%".to_owned(),
        "alice\0".to_owned(),
        "\0".to_owned(),
        "al\0ice".to_owned(),
        "a".repeat(10_000),
        "🦀".to_owned(),
        "alice🦀".to_owned(),
        "alice\u{301}".to_owned(),
        "a\u{301}lice".to_owned(),
        "ali\u{200b}ce".to_owned(),
        "\u{202e}ecila".to_owned(),
        "ａｌｉｃｅ".to_owned(),
        "ALICE".to_owned(),
        " alice".to_owned(),
        "alice ".to_owned(),
    ]
}

#[tokio::test]
async fn hostile_usernames_get_invalid_grant_and_change_nothing() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    for username in hostile_strings() {
        let response = t.app.login(&username, PASSWORD).await;
        // No account can have a name over 64 bytes: refused before any work.
        if username.len() > MAX_USERNAME_BYTES {
            let body = assert_error(response, 400, "invalid_request").await;
            assert_eq!(
                body["error_description"],
                "the username is longer than 64 bytes"
            );
        } else {
            let body = assert_error(response, 400, "invalid_grant").await;
            assert_eq!(body["error_description"], BAD_CREDENTIALS, "{username:?}");
        }
    }
    assert_eq!(snapshot(&t.app).await, before);
    t.assert_tokens_still_work().await;
}

#[tokio::test]
async fn hostile_passwords_get_invalid_grant_and_change_nothing() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    let mut passwords = hostile_strings();
    passwords.extend([
        format!("{PASSWORD}\0"),
        format!("{PASSWORD}\0anything"),
        format!("{PASSWORD}' OR '1'='1"),
        format!("{PASSWORD}{}", "x".repeat(10_000)),
        PASSWORD.to_uppercase(),
        PASSWORD.replace(' ', "\u{a0}"),
    ]);
    for password in passwords {
        let response = t.app.login("alice", &password).await;
        if password.len() > MAX_PASSWORD_BYTES {
            let body = assert_error(response, 400, "invalid_request").await;
            assert_eq!(
                body["error_description"],
                "the password is longer than 1024 bytes"
            );
        } else {
            let body = assert_error(response, 400, "invalid_grant").await;
            assert_eq!(body["error_description"], BAD_CREDENTIALS, "{password:?}");
        }
    }
    assert_eq!(snapshot(&t.app).await, before);
    t.assert_tokens_still_work().await;
}

#[tokio::test]
async fn invalid_utf8_in_a_form_is_an_invalid_request_and_changes_nothing() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    let password = PASSWORD.replace(' ', "+");
    for bad in [
        "%FF",
        "%C3%28",
        "%ED%A0%80",
        "%C0%AF",
        "%F4%90%80%80",
        "%E2%82",
        "%",
        "%4",
        "%G1",
        "%%41",
    ] {
        for body in [
            format!("grant_type=password&username=alice{bad}&password={password}"),
            format!("grant_type=password&username=alice&password={password}{bad}"),
            format!("grant_type=password&user{bad}name=alice&password={password}"),
        ] {
            let response = t.app.post_token_raw(body.clone(), Some(FORM)).await;
            let error = assert_error(response, 400, "invalid_request").await;
            assert_eq!(error["error_description"], BAD_ENCODING, "{body}");
        }
    }
    // Invalid UTF-8 sent raw, not percent-encoded.
    let mut body = b"grant_type=password&username=alice\xff&password=".to_vec();
    body.extend_from_slice(password.as_bytes());
    let error = assert_error(
        t.app.post_token_raw(body, Some(FORM)).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(error["error_description"], BAD_ENCODING);
    assert_eq!(snapshot(&t.app).await, before);
    t.assert_tokens_still_work().await;
}

#[tokio::test]
async fn a_body_that_is_not_a_form_is_an_invalid_request() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    let json = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    let content_type_refused = "the body must be application/x-www-form-urlencoded";
    for content_type in [
        Some("application/json"),
        Some("multipart/form-data; boundary=x"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded; charset=ISO-8859-1"),
        Some("application/x-www-form-urlencodedx"),
        Some("application/x-www-form-urlencoded, application/json"),
        Some(""),
        None,
    ] {
        let response = t.app.post_token_raw(json.clone(), content_type).await;
        let body = assert_error(response, 400, "invalid_request").await;
        assert_eq!(
            body["error_description"], content_type_refused,
            "{content_type:?}"
        );
    }
    // Two Content-Type headers, the form one first or second: which is it?
    for pair in [
        [FORM, "application/json"],
        ["application/json", FORM],
        [FORM, FORM],
    ] {
        let mut request = t.app.client.post(t.app.url("/token"));
        for content_type in pair {
            request = request.header("content-type", content_type);
        }
        let response = request
            .body(format!(
                "grant_type=password&username=alice&password={PASSWORD}"
            ))
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 400, "invalid_request").await;
        assert_eq!(
            body["error_description"], "more than one Content-Type header",
            "{pair:?}"
        );
    }
    // JSON, XML and binary sent as a form are read as forms, and what they
    // say is not a token request.
    for body in [
        json.clone().into_bytes(),
        b"<token><username>alice</username></token>".to_vec(),
        b"\x00\x01\x02\x03".to_vec(),
        Vec::new(),
        b"&&&".to_vec(),
        b"====".to_vec(),
    ] {
        let response = t.app.post_token_raw(body.clone(), Some(FORM)).await;
        let error = assert_error(response, 400, "invalid_request").await;
        assert_eq!(
            error["error_description"], "missing parameter: grant_type",
            "{body:?}"
        );
    }
    assert_eq!(snapshot(&t.app).await, before);
}

#[tokio::test]
async fn repeated_form_keys_are_invalid_requests_however_spelled() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    let password = PASSWORD.replace(' ', "+");
    for (body, name) in [
        (
            format!("username=alice&username=alice&password={password}"),
            "username",
        ),
        (
            format!("username=mike&username=alice&password={password}"),
            "username",
        ),
        (
            format!("username=alice&%75sername=mike&password={password}"),
            "username",
        ),
        (
            format!("username=alice&password=&password={password}"),
            "password",
        ),
        (
            format!(
                "grant_type=password&grant_type=refresh_token&username=alice&password={password}"
            ),
            "grant_type",
        ),
        (
            format!("username=alice&password={password}&scope=me&scope=admin"),
            "scope",
        ),
        (
            format!("username=alice&password={password}&client_id=a&client_id=b"),
            "client_id",
        ),
        (format!("username=alice&password={password}&x&x"), "x"),
    ] {
        let response = t.app.post_token_raw(body.clone(), Some(FORM)).await;
        let error = assert_error(response, 400, "invalid_request").await;
        assert_eq!(
            error["error_description"],
            format!("the parameter {name:?} is repeated"),
            "{body}"
        );
    }
    assert_eq!(snapshot(&t.app).await, before);
    t.assert_tokens_still_work().await;
}

#[tokio::test]
async fn a_1_mb_body_is_refused_as_too_large() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    let body = format!(
        "grant_type=password&username=alice&password={}",
        "a".repeat(1024 * 1024)
    );
    for path in ["/token", "/revoke"] {
        let response = t
            .app
            .client
            .post(t.app.url(path))
            .header("content-type", FORM)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_error(response, 413, "invalid_request").await;
    }
    // Without a Content-Length: the limit holds for a chunked body too.
    let chunk = "a".repeat(64 * 1024);
    let mut request = format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..16 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let response = raw(&t.app, request.as_bytes()).await;
    assert_eq!(response.status, 413);
    let error: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(error["error"], "invalid_request");
    assert_eq!(snapshot(&t.app).await, before);
    t.assert_tokens_still_work().await;
}

#[tokio::test]
async fn odd_client_credentials_at_the_token_endpoint_are_refused() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let post = |authorization: Vec<String>| {
        let mut request = t.app.client.post(t.app.url("/token")).form(&form);
        for value in authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    // Not Basic, Basic with junk, Basic twice in one header, a tab.
    for value in [
        format!("Bearer {}", t.access_token),
        "Basic".to_owned(),
        "Basic !!!".to_owned(),
        "Basic Og==, Basic Og==".to_owned(),
        "Basic Og== Og==".to_owned(),
        "Basic\tOg==".to_owned(),
        format!("Basic {}", STANDARD.encode("no-colon")),
        format!("Basic {}", STANDARD.encode(b"\xff:")),
        format!("Basic {}", STANDARD.encode("web:%ZZ")),
    ] {
        let response = post(vec![value.clone()]).await.unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Basic realm="gatehouse""#,
            "{value}"
        );
        assert_error(response, 401, "invalid_client").await;
    }
    // Two Authorization headers: which client is it? Neither.
    let second = format!("Basic {}", STANDARD.encode("web:s3cret"));
    let response = post(vec!["Basic Og==".to_owned(), second]).await.unwrap();
    let body = assert_error(response, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "more than one Authorization header"
    );
    assert_eq!(snapshot(&t.app).await, before);
}

// ---------------------------------------------------------------------------
// The same at /revoke
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hostile_tokens_at_revoke_are_answered_200_and_revoke_nothing() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    let access_claims = t.app.claims(&t.access_token);
    // alg none and a forged signature, both carrying the real token's jti.
    let claims = serde_json::to_value(&access_claims).unwrap().to_string();
    let none = format!(
        "{}.{}.",
        b64(&with(t.header(), "alg", json!("none")).to_string()),
        b64(&claims)
    );
    let forged = hs256(
        &t.header().to_string(),
        &claims,
        b"another-secret-another-secret-xx",
    );
    let (signing_input, _) = t.access_token.rsplit_once('.').unwrap();
    let refresh = &t.refresh_token;
    let mut tokens = hostile_strings();
    tokens.extend([
        none,
        forged,
        format!("{signing_input}."),
        t.access_token[..t.access_token.len() - 1].to_owned(),
        refresh[..refresh.len() - 1].to_owned(),
        format!("{refresh}A"),
        refresh.to_uppercase(),
        format!("{refresh}\0"),
        format!("{refresh}' OR '1'='1"),
        TEST_SECRET.to_owned(),
        gatehouse::token::hash_refresh_token(refresh),
    ]);
    for token in tokens {
        for hint in [
            None,
            Some("access_token"),
            Some("refresh_token"),
            Some("' OR 1=1 --"),
        ] {
            let mut form = vec![("token", token.as_str())];
            if let Some(hint) = hint {
                form.push(("token_type_hint", hint));
            }
            let response = t.app.revoke(&form).await;
            assert_eq!(response.status(), 200, "{token:?} {hint:?}");
            assert!(response.text().await.unwrap().is_empty());
        }
    }
    assert_eq!(snapshot(&t.app).await, before);
    t.assert_tokens_still_work().await;
}

#[tokio::test]
async fn hostile_forms_at_revoke_are_refused_and_change_nothing() {
    let t = target().await;
    let before = snapshot(&t.app).await;
    let refresh = &t.refresh_token;
    let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
        (
            format!("token={refresh}&token={refresh}").into_bytes(),
            Some(FORM),
            "the parameter \"token\" is repeated",
        ),
        (
            format!("token=x&%74oken={refresh}").into_bytes(),
            Some(FORM),
            "the parameter \"token\" is repeated",
        ),
        (
            format!("token={refresh}&token_type_hint=a&token_type_hint=b").into_bytes(),
            Some(FORM),
            "the parameter \"token_type_hint\" is repeated",
        ),
        (
            format!("token={refresh}%FF").into_bytes(),
            Some(FORM),
            BAD_ENCODING,
        ),
        (
            format!("token={refresh}%").into_bytes(),
            Some(FORM),
            BAD_ENCODING,
        ),
        (b"token=\xff".to_vec(), Some(FORM), BAD_ENCODING),
        (
            format!(r#"{{"token":"{refresh}"}}"#).into_bytes(),
            Some("application/json"),
            "the body must be application/x-www-form-urlencoded",
        ),
        (
            format!("token={refresh}").into_bytes(),
            None,
            "the body must be application/x-www-form-urlencoded",
        ),
        (
            format!(r#"{{"token":"{refresh}"}}"#).into_bytes(),
            Some(FORM),
            "missing parameter: token",
        ),
        (b"token=".to_vec(), Some(FORM), "missing parameter: token"),
    ];
    for (body, content_type, description) in cases {
        let mut request = t.app.client.post(t.app.url("/revoke")).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let error = assert_error(response, 400, "invalid_request").await;
        assert_eq!(error["error_description"], description, "{body:?}");
    }
    // Client credentials that are not Basic, or two of them.
    let response = t
        .app
        .client
        .post(t.app.url("/revoke"))
        .header("authorization", format!("Bearer {}", t.access_token))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_client").await;
    let response = t
        .app
        .client
        .post(t.app.url("/revoke"))
        .header("authorization", "Basic Og==")
        .header("authorization", "Basic Og==")
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    let error = assert_error(response, 400, "invalid_request").await;
    assert_eq!(
        error["error_description"],
        "more than one Authorization header"
    );
    assert_eq!(snapshot(&t.app).await, before);
    t.assert_tokens_still_work().await;
}
