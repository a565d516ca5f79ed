//! What the fuzz targets check, for any input.
//!
//! Shared with `tests/api/fuzz_corpus.rs`, which runs the committed corpus
//! through the same checks on every `cargo test`, with or without a fuzzer.
//! A check panics when Gatehouse breaks a rule it must keep whatever it is
//! sent; otherwise it returns whether the input was accepted.
//!
//! The oracles are independent of the code under test where they can be:
//! an accepted token is re-checked by reading its JSON with `serde_json` and
//! re-signing it, and every form body is compared with `form_urlencoded`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::config::Secret;
use gatehouse::form::{Form, FormError, MAX_PARAMETERS};
use gatehouse::http::{GrantType, TokenRequest};
use gatehouse::token::{AccessClaims, KeySet, TokenVerifier};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

/// The HS256 secret of the server under test (the corpus is signed with it).
pub const SECRET: &str = "fuzz-secret-0123456789abcdef-0123456789abcdef";
/// The issuer the server under test expects.
pub const ISSUER: &str = "https://gatehouse.fuzz";
/// The audience the server under test expects.
pub const AUDIENCE: &str = "fuzz-api";
/// The time tokens are checked at (2033-05-18), fixed so the corpus never expires.
pub const NOW: i64 = 2_000_000_000;
/// A `token_verify` input starting with this is `<header JSON>\n<claims
/// JSON>`, which the target signs with [`SECRET`] before verifying.
pub const SIGN_PREFIX: &[u8] = b"sign:";

/// What became of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token verified, or the token request was decided.
    Accepted,
    /// Refused, with an answer that keeps the rules.
    Refused,
}

fn keys() -> &'static Arc<KeySet> {
    static KEYS: OnceLock<Arc<KeySet>> = OnceLock::new();
    KEYS.get_or_init(|| Arc::new(KeySet::hs256(&Secret::new(SECRET))))
}

fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| TokenVerifier::new(keys().clone(), ISSUER, AUDIENCE, Duration::ZERO))
}

fn hmac(signing_input: &str) -> String {
    jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("HMAC signing cannot fail")
}

/// Splits at the first newline; no newline leaves everything in the first part.
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The `token_verify` target.
///
/// Must hold: no panic; a refusal has a description; an accepted token is
/// three segments whose signature is exactly the one the server's key makes
/// (canonical base64url), whose header, read independently, asks for HS256
/// with the server's `kid`, `typ: at+jwt` and no `crit`, and whose claims,
/// read independently, are what the verifier reported and satisfy the
/// policy: right issuer and audience, a subject, unexpired, not in the future.
pub fn token_verify(data: &[u8]) -> Verdict {
    let token = match data.strip_prefix(SIGN_PREFIX) {
        Some(parts) => {
            let (header, claims) = split_line(parts);
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let signature = hmac(&input);
            format!("{input}.{signature}")
        }
        // A bearer token reaches the verifier as text or not at all.
        None => match std::str::from_utf8(data) {
            Ok(token) => token.to_owned(),
            Err(_) => return Verdict::Refused,
        },
    };
    match verifier().verify(&token, NOW) {
        Ok(claims) => {
            check_accepted_token(&token, &claims);
            Verdict::Accepted
        }
        Err(error) => {
            assert!(!error.to_string().is_empty(), "{error:?}");
            Verdict::Refused
        }
    }
}

fn read_json(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap_or_else(|e| panic!("accepted a segment that is not base64url ({e}): {segment:?}"));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("accepted a segment that is not JSON ({e}): {segment:?}"))
}

fn check_accepted_token(token: &str, claims: &AccessClaims) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "accepted a token of other than three segments: {token:?}"
    );
    assert_eq!(
        parts[2],
        hmac(&format!("{}.{}", parts[0], parts[1])),
        "accepted a signature the key did not make, or spelled it another way: {token:?}"
    );

    let header = read_json(parts[0]);
    assert_eq!(header["alg"], "HS256", "{token:?}");
    assert_eq!(header["kid"].as_str(), keys().signing_kid(), "{token:?}");
    assert!(header.get("crit").is_none(), "accepted crit: {token:?}");
    let typ = header["typ"]
        .as_str()
        .unwrap_or_else(|| panic!("accepted a token without typ: {token:?}"))
        .to_ascii_lowercase();
    assert!(typ == "at+jwt" || typ == "application/at+jwt", "{token:?}");

    let payload = read_json(parts[1]);
    assert_eq!(payload["iss"], ISSUER, "{token:?}");
    assert_eq!(payload["aud"], AUDIENCE, "{token:?}");
    assert_eq!(
        payload["sub"].as_str(),
        Some(claims.sub.as_str()),
        "{token:?}"
    );
    assert!(
        !claims.sub.is_empty(),
        "accepted an empty subject: {token:?}"
    );
    assert_eq!(payload["exp"].as_i64(), Some(claims.exp), "{token:?}");
    assert_eq!(payload["iat"].as_i64(), Some(claims.iat), "{token:?}");
    assert_eq!(
        payload.get("nbf").and_then(Value::as_i64),
        claims.nbf,
        "{token:?}"
    );
    assert_eq!(
        payload["jti"].as_str(),
        Some(claims.jti.as_str()),
        "{token:?}"
    );
    assert_eq!(
        payload["scope"].as_str(),
        Some(claims.scope.as_str()),
        "{token:?}"
    );
    assert!(claims.exp > NOW, "accepted an expired token: {token:?}");
    assert!(
        claims.iat <= NOW,
        "accepted a token issued in the future: {token:?}"
    );
    assert!(
        claims.nbf.is_none_or(|nbf| nbf <= NOW),
        "accepted a token not valid yet: {token:?}"
    );
}

/// The `token_request` target. The input is `<Authorization>\n<Content-Type>\n<body>`:
/// the first line holds any number of `Authorization` values separated by
/// `\r` (empty: none), the second the content type (empty: the form type).
///
/// Must hold: no panic; a refusal is 400 `invalid_request` or
/// `unsupported_grant_type`, or 401 `invalid_client`, and renders; an
/// accepted request had the form content type and exactly one or no
/// `Authorization` header, holds exactly what the body says, carries no
/// client secret, runs the grant the form names (or the password grant
/// when it names none but sends credentials), and names a printable client
/// id of at most 128 bytes. Independently of the decision, the strict form
/// parser agrees with `form_urlencoded` wherever it accepts the body.
pub fn token_request(data: &[u8]) -> Verdict {
    let (authorization, rest) = split_line(data);
    let (content_type, body) = split_line(rest);
    let mut headers = HeaderMap::new();
    if !authorization.is_empty() {
        for value in authorization.split(|b| *b == b'\r') {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(header::AUTHORIZATION, value);
            }
        }
    }
    let content_type = if content_type.is_empty() {
        &b"application/x-www-form-urlencoded"[..]
    } else {
        content_type
    };
    if let Ok(value) = HeaderValue::from_bytes(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }

    check_form(body);
    match TokenRequest::parse(&headers, body) {
        Ok(request) => {
            check_decided(&headers, body, &request);
            Verdict::Accepted
        }
        Err(error) => {
            let (status, code) = (error.status(), error.code());
            assert!(
                matches!(
                    (status.as_u16(), code),
                    (400, Some("invalid_request" | "unsupported_grant_type"))
                        | (401, Some("invalid_client"))
                ),
                "{status} {code:?} ({error:?}) for {data:?}"
            );
            assert_eq!(error.into_response().status(), status);
            Verdict::Refused
        }
    }
}

fn check_decided(headers: &HeaderMap, body: &[u8], request: &TokenRequest) {
    let content_type = headers[header::CONTENT_TYPE].to_str().unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    assert!(
        essence.eq_ignore_ascii_case("application/x-www-form-urlencoded"),
        "decided a request of type {content_type:?}"
    );
    assert!(headers.get_all(header::AUTHORIZATION).iter().count() <= 1);
    assert_eq!(Form::parse(body).as_ref(), Ok(&request.form));

    let form = &request.form;
    assert!(
        form.get("client_secret").is_none(),
        "accepted a client secret"
    );
    let expected = match form.get("grant_type") {
        Some("password") => GrantType::Password,
        Some("refresh_token") => GrantType::RefreshToken,
        Some(other) => panic!("decided the unsupported grant type {other:?}"),
        None => {
            assert!(form.get("username").is_some() || form.get("password").is_some());
            GrantType::Password
        }
    };
    assert_eq!(request.grant_type, expected);

    let id = &request.client_id;
    assert!(!id.is_empty() && id.len() <= 128, "client id {id:?}");
    assert!(
        id.chars().all(|c| (' '..='~').contains(&c)),
        "client id {id:?}"
    );
    if let Some(named) = form.get("client_id") {
        assert_eq!(id, named);
    } else if headers.get(header::AUTHORIZATION).is_none() {
        assert_eq!(id, "public");
    }
}

/// The strict parser against `form_urlencoded`, which is lenient: it keeps
/// bad escapes as they are and replaces bad UTF-8, so wherever the strict
/// parser accepts, both must read the same pairs.
fn check_form(body: &[u8]) {
    let lenient: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match Form::parse(body) {
        Ok(form) => {
            assert_eq!(form.len(), lenient.len(), "names merged in {body:?}");
            let strict: HashMap<&str, &str> = form.iter().collect();
            for (name, value) in &lenient {
                assert_eq!(strict.get(name.as_str()), Some(&value.as_str()), "{body:?}");
            }
        }
        Err(FormError::Repeated(name)) => {
            assert!(
                lenient.iter().filter(|(k, _)| *k == name).count() >= 2,
                "{body:?}"
            );
        }
        Err(FormError::TooMany) => assert!(lenient.len() > MAX_PARAMETERS, "{body:?}"),
        Err(FormError::Encoding) => {}
    }
}
