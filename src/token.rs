//! Access tokens: JWTs per RFC 9068 (`typ: at+jwt`), made and checked here.
//!
//! Verification is an allow-list (RFC 8725): the key is chosen by `kid`, each
//! key has exactly one algorithm, and the header's `alg` must equal it, so a
//! header can never pick the key type. `exp`, `iat`, `sub`, `iss`, `aud` are
//! required and time is checked against a `now` the caller passes in, with a
//! leeway of zero unless configured.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use jsonwebtoken::errors::ErrorKind;
use serde::{Deserialize, Serialize};

use crate::jwks::RemoteKeySet;
pub use crate::keys::KeySet;

/// The `typ` header of every access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Longer bearer values are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of a Gatehouse access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the username.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id (used to revoke a single token).
    pub jti: String,
    /// Space-separated granted scopes.
    pub scope: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The user's token generation when issued; tokens of an older generation
    /// are void (bumped when a user is disabled or changes password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
}

impl AccessClaims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }
}

/// What a new access token is for.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// Username.
    pub subject: &'a str,
    /// Space-separated scopes.
    pub scope: &'a str,
    /// Client id.
    pub client_id: &'a str,
    /// The user's current token generation.
    pub version: i64,
}

/// A freshly signed token and what the token response reports of it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Its claims.
    pub claims: AccessClaims,
}

/// Why a token was refused; the text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is too long")]
    TooLong,
    /// Not a compact JWS with a readable header and claims.
    #[error("the token is malformed")]
    Malformed,
    /// `typ` is not `at+jwt`.
    #[error("the token is not an access token")]
    WrongType,
    /// No configured key has this `kid`.
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// `alg` differs from the key's one algorithm (including `none`).
    #[error("the token's algorithm is not accepted")]
    WrongAlgorithm,
    /// The header lists `crit` extensions, none of which Gatehouse understands.
    #[error("the token requires an unsupported extension")]
    UnsupportedCritical,
    /// The signature does not match.
    #[error("the token signature is invalid")]
    BadSignature,
    /// A required claim is missing or has the wrong type.
    #[error("the token's claims are invalid")]
    BadClaims,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` lies in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not this server.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` is not this audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// Revoked, or the user may no longer sign in.
    #[error("{0}")]
    Revoked(&'static str),
}

/// Signs access tokens.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    keys: Arc<KeySet>,
    issuer: String,
    audience: String,
    ttl_seconds: u64,
}

impl TokenIssuer {
    /// An issuer signing with the key set's signing key.
    pub fn new(keys: Arc<KeySet>, issuer: &str, audience: &str, ttl: std::time::Duration) -> Self {
        Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_seconds: ttl.as_secs(),
        }
    }

    /// Lifetime of issued tokens, in seconds.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// Makes and signs an access token valid from `now`.
    ///
    /// # Errors
    /// Signing failed (not expected with a loaded key).
    pub fn issue(&self, grant: &Grant<'_>, now: i64) -> Result<IssuedToken, anyhow::Error> {
        let ttl = i64::try_from(self.ttl_seconds).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.subject.to_owned(),
            aud: self.audience.clone(),
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: grant.scope.to_owned(),
            client_id: grant.client_id.to_owned(),
            ver: Some(grant.version),
        };
        let signing = self
            .keys
            .signing
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this key set cannot sign"))?;
        let mut header = Header::new(signing.alg);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(signing.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &signing.key)?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl_seconds,
            claims,
        })
    }
}

/// Where a verifier's keys come from.
#[derive(Debug, Clone)]
enum KeySource {
    /// Keys known at start-up (the server's own).
    Fixed(Arc<KeySet>),
    /// A JWKS fetched from the issuer and refreshed on an unknown `kid`.
    Remote(Arc<RemoteKeySet>),
}

/// Checks access tokens against a key set, an issuer and an audience.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    keys: KeySource,
    issuer: String,
    audience: String,
    leeway: i64,
}

impl TokenVerifier {
    /// A verifier trusting the keys of `keys`.
    pub fn new(
        keys: Arc<KeySet>,
        issuer: &str,
        audience: &str,
        leeway: std::time::Duration,
    ) -> Self {
        Self::with_source(KeySource::Fixed(keys), issuer, audience, leeway)
    }

    /// A verifier trusting the keys an issuer publishes as a JWKS.
    pub fn remote(
        keys: Arc<RemoteKeySet>,
        issuer: &str,
        audience: &str,
        leeway: std::time::Duration,
    ) -> Self {
        Self::with_source(KeySource::Remote(keys), issuer, audience, leeway)
    }

    fn with_source(
        keys: KeySource,
        issuer: &str,
        audience: &str,
        leeway: std::time::Duration,
    ) -> Self {
        Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: i64::try_from(leeway.as_secs()).unwrap_or(0),
        }
    }

    /// Verifies a token, and when its `kid` is unknown to a remote key set,
    /// refreshes the set (rate-limited) and tries once more.
    ///
    /// # Errors
    /// As [`TokenVerifier::verify`].
    pub async fn verify_fresh(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if let KeySource::Remote(remote) = &self.keys {
            if remote.is_stale() {
                // Keys removed at the issuer stop working within the maximum age.
                let remote = remote.clone();
                tokio::spawn(async move { remote.refresh_for_unknown_kid().await });
            }
        }
        match (self.verify(token, now), &self.keys) {
            (Err(TokenError::UnknownKey), KeySource::Remote(remote)) => {
                if remote.refresh_for_unknown_kid().await {
                    self.verify(token, now)
                } else {
                    Err(TokenError::UnknownKey)
                }
            }
            (result, _) => result,
        }
    }

    /// Verifies a compact JWT at time `now` (seconds since the epoch).
    ///
    /// # Errors
    /// Every reason a token can be refused, as a [`TokenError`].
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        match &self.keys {
            KeySource::Fixed(keys) => self.verify_with(keys, token, now),
            KeySource::Remote(remote) => self.verify_with(&remote.current(), token, now),
        }
    }

    fn verify_with(
        &self,
        keys: &KeySet,
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Json(_) if header_names_alg_none(token) => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        })?;
        if !header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        }) {
            return Err(TokenError::WrongType);
        }
        if header.crit.is_some() {
            return Err(TokenError::UnsupportedCritical);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.verifying.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        if header.alg != key.alg {
            return Err(TokenError::WrongAlgorithm);
        }
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &key.validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => TokenError::BadClaims,
                _ => TokenError::Malformed,
            },
        )?;
        if !header_and_claims_are_utf8(token) {
            return Err(TokenError::Malformed);
        }
        let claims = data.claims;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != self.audience {
            return Err(TokenError::WrongAudience);
        }
        if claims.sub.is_empty() {
            return Err(TokenError::BadClaims);
        }
        self.check_times(&claims, now)?;
        Ok(claims)
    }

    /// Checks the times of verified claims at `now`: what can change
    /// between two uses of the same token.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::NotYetValid`].
    pub fn check_times(&self, claims: &AccessClaims, now: i64) -> Result<(), TokenError> {
        if now >= claims.exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        let future = |t: i64| t > now.saturating_add(self.leeway);
        if future(claims.iat) || claims.nbf.is_some_and(future) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// Whether the header and the claims of a decoded token are UTF-8, as RFC
/// 7519 §7.2 requires. serde_json checks the strings it keeps, but skips the
/// bytes of members it ignores unread, so an unknown claim could carry bytes
/// that are not text at all (found by the `token_verify` fuzz target). The
/// header is checked too, at no cost.
fn header_and_claims_are_utf8(token: &str) -> bool {
    token.split('.').take(2).all(|segment| {
        URL_SAFE_NO_PAD
            .decode(segment)
            .is_ok_and(|bytes| std::str::from_utf8(&bytes).is_ok())
    })
}

/// Whether the (undecodable) header of `token` asks for `alg: none`, in any
/// casing, so the refusal can say so precisely.
fn header_names_alg_none(token: &str) -> bool {
    let Some(first) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(first) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("alg").and_then(|a| a.as_str()).map(str::to_owned))
        .is_some_and(|alg| alg.eq_ignore_ascii_case("none"))
}

/// A new opaque refresh token: 256 random bits, base64url without padding.
pub fn new_refresh_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a refresh token: its SHA-256, in hex. The token is
/// random, so neither a salt nor a slow hash adds anything.
pub fn hash_refresh_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The current time in seconds since the epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use std::time::Duration;

    const NOW: i64 = 1_800_000_000;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef")
    }

    fn pair(ttl: u64, leeway: u64) -> (TokenIssuer, TokenVerifier) {
        let keys = Arc::new(KeySet::hs256(&secret()));
        (
            TokenIssuer::new(
                keys.clone(),
                "https://issuer",
                "api",
                Duration::from_secs(ttl),
            ),
            TokenVerifier::new(keys, "https://issuer", "api", Duration::from_secs(leeway)),
        )
    }

    fn grant() -> Grant<'static> {
        Grant {
            subject: "alice",
            scope: "me items",
            client_id: "cli",
            version: 3,
        }
    }

    fn sign_raw(header: &Header, claims: &serde_json::Value, key: &[u8]) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn good_header(issuer: &TokenIssuer) -> Header {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = issuer.keys.signing_kid().map(str::to_owned);
        header
    }

    fn good_claims() -> serde_json::Value {
        serde_json::json!({"iss":"https://issuer","sub":"alice","aud":"api","exp":NOW+60,
            "iat":NOW,"jti":"j","scope":"me","client_id":"c"})
    }

    #[test]
    fn an_issued_token_round_trips_with_every_claim() {
        let (issuer, verifier) = pair(1800, 0);
        let issued = issuer.issue(&grant(), NOW).unwrap();
        assert_eq!(issued.expires_in, 1800);
        let claims = verifier.verify(&issued.token, NOW).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.exp, NOW + 1800);
        assert_eq!(claims.ver, Some(3));
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["me", "items"]);
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.alg, Algorithm::HS256);
        assert!(header.kid.unwrap().starts_with("hs256-"));
    }

    #[test]
    fn expiry_is_exact_with_zero_leeway_and_honours_a_configured_leeway() {
        let (issuer, verifier) = pair(60, 0);
        let token = issuer.issue(&grant(), NOW).unwrap().token;
        assert!(verifier.verify(&token, NOW + 59).is_ok());
        assert_eq!(verifier.verify(&token, NOW + 60), Err(TokenError::Expired));
        let (_, lenient) = pair(60, 5);
        assert!(lenient.verify(&token, NOW + 64).is_ok());
        assert_eq!(lenient.verify(&token, NOW + 65), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_issued_in_the_future_is_not_valid_yet() {
        let (issuer, verifier) = pair(60, 0);
        let token = issuer.issue(&grant(), NOW + 10).unwrap().token;
        assert_eq!(verifier.verify(&token, NOW), Err(TokenError::NotYetValid));
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let (issuer, verifier) = pair(60, 0);
        let token = issuer.issue(&grant(), NOW).unwrap().token;
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let Ok(changed) = String::from_utf8(bytes) else {
                continue;
            };
            if changed == token {
                continue;
            }
            assert!(
                verifier.verify(&changed, NOW).is_err(),
                "byte {i} changed and still accepted"
            );
        }
    }

    #[test]
    fn another_issuer_audience_or_key_is_refused() {
        let keys = Arc::new(KeySet::hs256(&secret()));
        let other_keys = Arc::new(KeySet::hs256(&Secret::new("x".repeat(32))));
        let ttl = Duration::from_secs(60);
        let verifier = TokenVerifier::new(keys.clone(), "https://issuer", "api", Duration::ZERO);
        let wrong_iss = TokenIssuer::new(keys.clone(), "https://evil", "api", ttl);
        let wrong_aud = TokenIssuer::new(keys, "https://issuer", "other", ttl);
        let wrong_key = TokenIssuer::new(other_keys, "https://issuer", "api", ttl);
        let check = |issuer: &TokenIssuer| {
            verifier.verify(&issuer.issue(&grant(), NOW).unwrap().token, NOW)
        };
        assert_eq!(check(&wrong_iss), Err(TokenError::WrongIssuer));
        assert_eq!(check(&wrong_aud), Err(TokenError::WrongAudience));
        assert_eq!(check(&wrong_key), Err(TokenError::UnknownKey));
    }

    #[test]
    fn alg_none_in_any_casing_is_refused() {
        let (issuer, verifier) = pair(60, 0);
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": issuer.keys.signing_kid().unwrap()});
            let h = URL_SAFE_NO_PAD.encode(header.to_string());
            let c = URL_SAFE_NO_PAD.encode(good_claims().to_string());
            let token = format!("{h}.{c}.");
            assert_eq!(
                verifier.verify(&token, NOW),
                Err(TokenError::WrongAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn hand_signed_tokens_pass_only_when_everything_is_right() {
        let (issuer, verifier) = pair(60, 0);
        let key = secret();
        let key = key.expose().as_bytes();
        let ok = sign_raw(&good_header(&issuer), &good_claims(), key);
        assert!(verifier.verify(&ok, NOW).is_ok());

        for missing in ["exp", "sub", "iss", "aud", "iat"] {
            let mut claims = good_claims();
            claims.as_object_mut().unwrap().remove(missing);
            let token = sign_raw(&good_header(&issuer), &claims, key);
            assert_eq!(
                verifier.verify(&token, NOW),
                Err(TokenError::BadClaims),
                "{missing}"
            );
        }

        let mut header = good_header(&issuer);
        header.typ = Some("JWT".to_owned());
        let token = sign_raw(&header, &good_claims(), key);
        assert_eq!(verifier.verify(&token, NOW), Err(TokenError::WrongType));

        let mut header = good_header(&issuer);
        header.crit = Some(vec!["exp".to_owned()]);
        let token = sign_raw(&header, &good_claims(), key);
        assert_eq!(
            verifier.verify(&token, NOW),
            Err(TokenError::UnsupportedCritical)
        );

        let mut header = good_header(&issuer);
        header.alg = Algorithm::HS384;
        let token = sign_raw(&header, &good_claims(), key);
        assert_eq!(
            verifier.verify(&token, NOW),
            Err(TokenError::WrongAlgorithm)
        );

        let mut claims = good_claims();
        claims["nbf"] = (NOW + 5).into();
        let token = sign_raw(&good_header(&issuer), &claims, key);
        assert_eq!(verifier.verify(&token, NOW), Err(TokenError::NotYetValid));

        let empty = sign_raw(&good_header(&issuer), &good_claims(), b"");
        assert_eq!(verifier.verify(&empty, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_header_or_claims_that_are_not_utf8_are_refused() {
        let (issuer, verifier) = pair(60, 0);
        let key = secret();
        let header = serde_json::to_vec(&good_header(&issuer)).unwrap();
        let claims = serde_json::to_vec(&good_claims()).unwrap();
        // An unknown member whose string holds a byte that is not UTF-8.
        let with_junk = |json: &[u8]| {
            let mut bytes = b"{\"junk\":\"\x91\",".to_vec();
            bytes.extend_from_slice(&json[1..]);
            bytes
        };
        let sign = |header: &[u8], claims: &[u8]| {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let signature = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(key.expose().as_bytes()),
                Algorithm::HS256,
            )
            .unwrap();
            format!("{input}.{signature}")
        };
        assert!(verifier.verify(&sign(&header, &claims), NOW).is_ok());
        assert_eq!(
            verifier.verify(&sign(&header, &with_junk(&claims)), NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verifier.verify(&sign(&with_junk(&header), &claims), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn an_over_long_token_is_refused_before_decoding() {
        let (_, verifier) = pair(60, 0);
        let token = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(verifier.verify(&token, NOW), Err(TokenError::TooLong));
    }
}
