//! The library's guard for protected routes: the [`AuthUser`] extractor and
//! the [`Authenticator`] behind it.
//!
//! An application protects a handler by taking `AuthUser` as a parameter;
//! the state only has to provide an `Authenticator` (via `FromRef`):
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use gatehouse::auth::{AuthUser, Authenticator};
//!
//! async fn hello(user: AuthUser) -> String {
//!     format!("hello, {}", user.username())
//! }
//!
//! # fn build(auth: Authenticator) -> Router {
//! Router::new().route("/hello", get(hello)).with_state(auth)
//! # }
//! ```

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::cache::AuthCache;
use crate::error::ApiError;
use crate::store::{ChangeListener, Store, StoreError};
use crate::token::{AccessClaims, MAX_TOKEN_BYTES, TokenError, TokenVerifier};
use crate::users::User;

/// Checks bearer tokens, and with a store also that their user may still
/// sign in. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    verifier: TokenVerifier,
    /// Verified tokens, and what was last read of users and revocations.
    cache: Arc<AuthCache>,
    /// The user database, when the token's user must still be allowed in.
    users: Option<Store>,
}

/// The authenticated caller of a protected route.
#[derive(Debug, Clone)]
pub struct AuthUser {
    claims: Arc<AccessClaims>,
    account: Option<Arc<User>>,
}

impl AuthUser {
    /// The username (`sub`).
    pub fn username(&self) -> &str {
        &self.claims.sub
    }

    /// The verified claims of the token.
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scopes().any(|s| s == scope)
    }

    /// The stored user, when the authenticator has a store.
    pub fn account(&self) -> Option<&User> {
        self.account.as_deref()
    }
}

impl Authenticator {
    /// Accepts any valid token of the verifier's keys, issuer and audience.
    /// Use this in a service that has no access to the user database.
    ///
    /// A token that verified is not verified again for a second (its
    /// expiry is checked every time), so a key removed from a remote key
    /// set stops working within a second of its removal being fetched.
    pub fn new(verifier: TokenVerifier) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
                cache: Arc::new(AuthCache::new(crate::cache::DEFAULT_MAX_AGE)),
                users: None,
            }),
        }
    }

    /// Accepts HS256 tokens made with `secret` by the given issuer for the
    /// given audience: what an application next to a Gatehouse server needs.
    ///
    /// # Errors
    /// A secret under 32 bytes.
    pub fn hs256(secret: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let secret = crate::config::check_secret(Some(crate::config::Secret::new(secret)))?;
        let keys = Arc::new(crate::token::KeySet::hs256(&secret));
        let verifier = TokenVerifier::new(keys, issuer, audience, std::time::Duration::ZERO);
        Ok(Self::new(verifier))
    }

    /// Accepts tokens signed by the keys an issuer publishes at `jwks_url`:
    /// what a resource server without the database or the secret needs.
    /// The key set is fetched now, cached, and refreshed when a token names
    /// an unknown `kid` (at most every 30 seconds).
    ///
    /// # Errors
    /// The JWKS cannot be fetched.
    pub async fn from_jwks(jwks_url: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let keys = Arc::new(crate::jwks::RemoteKeySet::fetch(jwks_url).await?);
        Ok(Self::new(TokenVerifier::remote(
            keys,
            issuer,
            audience,
            std::time::Duration::ZERO,
        )))
    }

    /// Also requires that the token's user exists, is enabled, and that the
    /// token is of the user's current generation (not voided by a password
    /// change, a disable, or a revoke-all) and was not revoked.
    ///
    /// What was read of a user and a token is reused for up to one second
    /// ([`crate::cache`]): a change made through `store` (or a clone of it)
    /// takes effect at once, one made by another process within a second.
    pub fn with_store(verifier: TokenVerifier, store: Store) -> Self {
        Self::with_store_and_max_age(verifier, store, crate::cache::DEFAULT_MAX_AGE)
    }

    /// [`Authenticator::with_store`], reusing what was read for at most
    /// `max_age`; zero reads the store on every request.
    pub fn with_store_and_max_age(
        verifier: TokenVerifier,
        store: Store,
        max_age: Duration,
    ) -> Self {
        let cache = Arc::new(AuthCache::new(max_age));
        let weak: Weak<AuthCache> = Arc::downgrade(&cache);
        let listener: Weak<dyn ChangeListener> = weak;
        store.subscribe(listener);
        Self {
            inner: Arc::new(Inner {
                verifier,
                cache,
                users: Some(store),
            }),
        }
    }

    /// The token verifier.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    /// Authenticates a request by its `Authorization` header.
    ///
    /// # Errors
    /// [`ApiError::MissingCredentials`] without bearer credentials,
    /// [`ApiError::InvalidToken`] for anything wrong with them, and
    /// [`ApiError::Unavailable`] when the store cannot be reached.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<AuthUser, ApiError> {
        let token = bearer_token(headers)?;
        self.authenticate_token(token).await
    }

    /// Authenticates a bare access token.
    ///
    /// # Errors
    /// As [`Authenticator::authenticate`].
    pub async fn authenticate_token(&self, token: &str) -> Result<AuthUser, ApiError> {
        self.authenticate_token_at(token, crate::token::now(), Instant::now())
            .await
    }

    /// [`Authenticator::authenticate_token`] at a given time: `now` in
    /// seconds since the epoch for the token, `clock` for the cache.
    pub(crate) async fn authenticate_token_at(
        &self,
        token: &str,
        now: i64,
        clock: Instant,
    ) -> Result<AuthUser, ApiError> {
        let claims = self.verified_claims(token, now, clock).await?;
        let account = match &self.inner.users {
            None => None,
            Some(store) => Some(
                self.inner
                    .current_account(store, &claims, now, clock)
                    .await?,
            ),
        };
        Ok(AuthUser { claims, account })
    }

    /// The claims of a valid token: remembered if it verified recently (its
    /// times checked again), else verified now.
    async fn verified_claims(
        &self,
        token: &str,
        now: i64,
        clock: Instant,
    ) -> Result<Arc<AccessClaims>, ApiError> {
        let verifier = &self.inner.verifier;
        if let Some(claims) = self.inner.cache.verified(token, clock) {
            verifier.check_times(&claims, now).map_err(invalid_token)?;
            return Ok(claims);
        }
        let claims = Arc::new(
            verifier
                .verify_fresh(token, now)
                .await
                .map_err(invalid_token)?,
        );
        self.inner.cache.keep_verified(token, claims.clone(), clock);
        Ok(claims)
    }
}

impl Inner {
    /// The user behind `claims`, if they may still use it.
    async fn current_account(
        &self,
        store: &Store,
        claims: &AccessClaims,
        now: i64,
        clock: Instant,
    ) -> Result<Arc<User>, ApiError> {
        let user = match self.cache.user(&claims.sub, claims.iat, clock) {
            Some(user) => user,
            None => {
                let ticket = self.cache.ticket();
                let user = store
                    .user_by_name(&claims.sub)
                    .await
                    .map_err(store_unavailable)?
                    .map(Arc::new);
                self.cache
                    .keep_user(&claims.sub, user.clone(), ticket, clock, now);
                user
            }
        };
        let user =
            user.ok_or_else(|| invalid_token(TokenError::Revoked("the user no longer exists")))?;
        if user.disabled {
            return Err(invalid_token(TokenError::Revoked("the user is disabled")));
        }
        if claims.ver != Some(user.token_version) || self.is_revoked(store, claims, clock).await? {
            return Err(invalid_token(TokenError::Revoked(
                "the token has been revoked",
            )));
        }
        Ok(user)
    }

    /// Whether the token was revoked by itself (`POST /revoke`).
    async fn is_revoked(
        &self,
        store: &Store,
        claims: &AccessClaims,
        clock: Instant,
    ) -> Result<bool, ApiError> {
        if let Some(revoked) = self.cache.token_revoked(&claims.jti, clock) {
            return Ok(revoked);
        }
        let revoked = store
            .is_access_token_revoked(&claims.jti)
            .await
            .map_err(store_unavailable)?;
        self.cache
            .keep_token(&claims.jti, revoked, claims.exp, clock);
        Ok(revoked)
    }
}

fn invalid_token(error: TokenError) -> ApiError {
    ApiError::InvalidToken(error.to_string())
}

/// A set of scopes a route requires; see [`Scoped`] and [`require_scopes!`](crate::require_scopes).
pub trait ScopeSet: Send + Sync + 'static {
    /// Every scope the token must grant.
    const SCOPES: &'static [&'static str];
}

/// An [`AuthUser`] whose token grants every scope of `S`; otherwise the
/// request is refused with `403 insufficient_scope` naming the scopes.
///
/// ```
/// use gatehouse::auth::Scoped;
/// gatehouse::require_scopes!(ReadItems = ["me", "items"]);
///
/// async fn items(Scoped(user, ..): Scoped<ReadItems>) -> String {
///     format!("items of {}", user.username())
/// }
/// ```
#[derive(Debug)]
pub struct Scoped<S: ScopeSet>(pub AuthUser, pub std::marker::PhantomData<S>);

/// Declares a [`ScopeSet`]: `require_scopes!(Name = ["scope", …]);`.
#[macro_export]
macro_rules! require_scopes {
    ($(#[$meta:meta])* $vis:vis $name:ident = [$($scope:literal),+ $(,)?]) => {
        $(#[$meta])*
        #[derive(Debug)]
        $vis struct $name;
        impl $crate::auth::ScopeSet for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),+];
        }
    };
}

impl<S, St> FromRequestParts<St> for Scoped<S>
where
    S: ScopeSet,
    Authenticator: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if S::SCOPES.iter().all(|scope| user.has_scope(scope)) {
            Ok(Self(user, std::marker::PhantomData))
        } else {
            Err(ApiError::InsufficientScope {
                required: S::SCOPES.join(" "),
            })
        }
    }
}

/// A store failure on a request path: 503, with the cause in the log only.
pub(crate) fn store_unavailable(error: StoreError) -> ApiError {
    tracing::error!(error = %error, "store operation failed");
    ApiError::Unavailable {
        reason: "the user database is unavailable",
        retry_after: 1,
    }
}

/// Extracts the bearer token from `Authorization` (RFC 6750 §2.1). The
/// scheme is case-insensitive; the token must be one token68 value.
///
/// # Errors
/// [`ApiError::MissingCredentials`] when there is no bearer credential at
/// all, [`ApiError::InvalidToken`] when it is malformed.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let malformed = |why: &str| ApiError::InvalidToken(why.to_owned());
    let Some(value) = single_header(headers, &header::AUTHORIZATION, || {
        malformed("more than one Authorization header")
    })?
    else {
        return Err(ApiError::MissingCredentials);
    };
    if value.len() > MAX_TOKEN_BYTES + "Bearer ".len() {
        return Err(malformed("the token is too long"));
    }
    if let Some(token) = plain_bearer(value.as_bytes()) {
        return Ok(token);
    }
    let value = value
        .to_str()
        .map_err(|_| malformed("the Authorization header is malformed"))?;
    // The scheme ends at the first space or tab: `Bearer<TAB>token` is a
    // malformed bearer credential (RFC 9110 §11.4 allows only spaces), not
    // an absent one.
    let (scheme, rest) = value.split_at(value.find([' ', '\t']).unwrap_or(value.len()));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, …) carries no bearer credentials.
        return Err(ApiError::MissingCredentials);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(malformed("the bearer token is missing"));
    }
    if !is_token68(token) {
        return Err(malformed("the Authorization header is malformed"));
    }
    Ok(token)
}

/// The value of a header that may come at most once; `None` when absent.
///
/// # Errors
/// `more_than_once` when the header came twice or more: which value the
/// sender meant cannot be known, and reading only the first would let a
/// second one ride along unchecked.
pub(crate) fn single_header<'a, E>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    more_than_once: impl FnOnce() -> E,
) -> Result<Option<&'a HeaderValue>, E> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    match values.next() {
        Some(_) => Err(more_than_once()),
        None => Ok(first),
    }
}

/// The token of the usual `Bearer <token68>` header in one pass over its
/// bytes, or `None` for anything else (which the full parse then explains).
fn plain_bearer(value: &[u8]) -> Option<&str> {
    let (scheme, token) = value.split_at_checked("Bearer ".len())?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    // token68: one or more characters of the table, then any `=` padding.
    let body_len = token.iter().rposition(|&b| b != b'=')? + 1;
    if !all_token68(&token[..body_len]) {
        return None;
    }
    std::str::from_utf8(token).ok()
}

/// `token68` of RFC 9110 §11.2.
fn is_token68(value: &str) -> bool {
    let body = value.trim_end_matches('=');
    !body.is_empty() && all_token68(body.as_bytes())
}

/// Whether every byte is a `token68` character other than the `=` padding.
/// Every request's token passes through here, so it looks at every byte
/// without branching, which the compiler turns into vector instructions.
fn all_token68(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |all, &b| {
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        let other =
            (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/');
        all & (letter | digit | other)
    })
}

impl<S> FromRequestParts<S> for AuthUser
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Authenticator::from_ref(state)
            .authenticate(&parts.headers)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER  abc.def.ghi",
        ] {
            assert_eq!(bearer_token(&headers(&[v])).unwrap(), "abc.def.ghi", "{v}");
        }
    }

    #[test]
    fn no_bearer_credentials_is_a_bare_challenge() {
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(ApiError::MissingCredentials)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Basic Og=="])),
            Err(ApiError::MissingCredentials)
        ));
    }

    #[test]
    fn token68_characters_are_exactly_those_of_rfc_9110() {
        for b in 0..=u8::MAX {
            let expected =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(all_token68(&[b]), expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn the_one_pass_parse_agrees_with_the_full_one() {
        for v in [
            "Bearer abc.def.ghi",
            "bearer abc.def-_~+/ghi==",
            "BEARER a",
            "Bearer  abc",
            "Bearer",
            "Bearer ",
            "Bearer ===",
            "Bearer a=b",
            "Bearer a b",
            "Bearer a\tb",
            "Bearer é",
            "Basic Og==",
            "Bearerx abc",
        ] {
            let map = headers(&[v]);
            let full = bearer_token(&map).ok();
            if let Some(fast) = plain_bearer(v.as_bytes()) {
                assert_eq!(Some(fast), full, "{v:?}");
            }
        }
        assert_eq!(plain_bearer(b"Bearer abc.def=="), Some("abc.def=="));
        assert_eq!(plain_bearer(b"Bearer  abc"), None, "left to the full parse");
    }

    #[test]
    fn malformed_bearer_values_are_invalid_tokens() {
        for v in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a\tb",
            "Bearer\tabc",
            "Bearer a,b",
            "Bearer ====",
        ] {
            assert!(
                matches!(bearer_token(&headers(&[v])), Err(ApiError::InvalidToken(_))),
                "{v:?}"
            );
        }
        assert!(matches!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(ApiError::InvalidToken(_))
        ));
    }
}

/// The staleness bound of the authentication cache, with the clock in the
/// test's hands: a second `Store` handle on the same database stands for
/// another process (another instance, or `gatehouse user …`), whose changes
/// this process is not told of.
#[cfg(test)]
mod cache_bound {
    use super::*;
    use crate::config::Secret;
    use crate::store::ConnectOptions;
    use crate::token::{Grant, KeySet, TokenIssuer};
    use crate::users::NewUser;

    const ISSUER: &str = "http://gatehouse.test";
    const AUDIENCE: &str = "gatehouse";
    const BOUND: Duration = Duration::from_secs(1);
    const JUST_BEFORE: Duration = Duration::from_millis(999);

    struct Setup {
        auth: Authenticator,
        /// This process's store (the authenticator's, and its clones).
        here: Store,
        /// Another process's view of the same database.
        elsewhere: Store,
        issuer: TokenIssuer,
        _dir: tempfile::TempDir,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let here = Store::connect(&url, &ConnectOptions::default())
            .await
            .unwrap();
        here.migrate().await.unwrap();
        let elsewhere = Store::connect(&url, &ConnectOptions::default())
            .await
            .unwrap();
        let keys = Arc::new(KeySet::hs256(&Secret::new(
            "0123456789abcdef0123456789abcdef",
        )));
        let issuer = TokenIssuer::new(keys.clone(), ISSUER, AUDIENCE, Duration::from_secs(1800));
        let verifier = TokenVerifier::new(keys, ISSUER, AUDIENCE, Duration::ZERO);
        let auth = Authenticator::with_store_and_max_age(verifier, here.clone(), BOUND);
        Setup {
            auth,
            here,
            elsewhere,
            issuer,
            _dir: dir,
        }
    }

    impl Setup {
        async fn create(&self, name: &str) -> User {
            self.here
                .create_user(&NewUser {
                    username: name.to_owned(),
                    email: None,
                    full_name: None,
                    password_hash: "$2b$04$unused".to_owned(),
                    disabled: false,
                    scopes: vec!["me".to_owned()],
                })
                .await
                .unwrap()
        }

        /// A token of `user`'s current generation, issued `age` seconds ago.
        fn token(&self, user: &User, age: i64) -> String {
            let grant = Grant {
                subject: &user.username,
                scope: "me",
                client_id: "public",
                version: user.token_version,
            };
            let issued = crate::token::now() - age;
            self.issuer.issue(&grant, issued).unwrap().token
        }

        async fn check(&self, token: &str, at: Instant) -> Result<AuthUser, String> {
            self.auth
                .authenticate_token_at(token, crate::token::now(), at)
                .await
                .map_err(|e| e.to_string())
        }
    }

    /// What another process can do to alice, and what her token then gets.
    #[derive(Debug, Clone, Copy)]
    enum Change {
        Disable,
        Delete,
        NewPassword,
        RevokeAll,
        RevokeToken,
    }

    const CHANGES: [Change; 5] = [
        Change::Disable,
        Change::Delete,
        Change::NewPassword,
        Change::RevokeAll,
        Change::RevokeToken,
    ];

    impl Change {
        async fn apply(self, store: &Store, token: &str, s: &Setup) {
            match self {
                Self::Disable => drop(store.set_disabled("alice", true).await.unwrap()),
                Self::Delete => store.delete_user("alice").await.unwrap(),
                Self::NewPassword => {
                    drop(
                        store
                            .set_password_hash("alice", "$2b$04$other")
                            .await
                            .unwrap(),
                    );
                }
                Self::RevokeAll => drop(store.bump_token_version("alice").await.unwrap()),
                Self::RevokeToken => {
                    let claims = s
                        .auth
                        .verifier()
                        .verify(token, crate::token::now())
                        .unwrap();
                    let now = crate::token::now();
                    store
                        .revoke_access_token(&claims.jti, claims.exp, now)
                        .await
                        .unwrap();
                }
            }
        }

        fn refusal(self) -> &'static str {
            match self {
                Self::Disable => "the user is disabled",
                Self::Delete => "the user no longer exists",
                Self::NewPassword | Self::RevokeAll | Self::RevokeToken => {
                    "the token has been revoked"
                }
            }
        }
    }

    #[tokio::test]
    async fn a_change_made_by_another_process_is_seen_once_the_bound_has_passed() {
        for change in CHANGES {
            let s = setup().await;
            let token = s.token(&s.create("alice").await, 10);
            let t0 = Instant::now();
            assert!(s.check(&token, t0).await.is_ok(), "{change:?}");
            change.apply(&s.elsewhere, &token, &s).await;
            // Within the bound the cached answer stands (the proof that the
            // database is not read on every request)...
            assert!(
                s.check(&token, t0 + JUST_BEFORE).await.is_ok(),
                "{change:?}: answered from the cache"
            );
            // ...and the first request once it has passed is refused.
            assert_eq!(
                s.check(&token, t0 + BOUND).await.unwrap_err(),
                change.refusal(),
                "{change:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_change_made_through_this_process_is_seen_at_once() {
        for change in CHANGES {
            let s = setup().await;
            let token = s.token(&s.create("alice").await, 10);
            let t0 = Instant::now();
            assert!(s.check(&token, t0).await.is_ok(), "{change:?}");
            assert!(s.check(&token, t0).await.is_ok(), "{change:?}: cached");
            // Through a clone of the store, as the server's handlers hold one.
            change.apply(&s.here.clone(), &token, &s).await;
            assert_eq!(
                s.check(&token, t0).await.unwrap_err(),
                change.refusal(),
                "{change:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_token_newer_than_what_was_read_is_checked_against_the_database() {
        let s = setup().await;
        let alice = s.create("alice").await;
        let old = s.token(&alice, 10);
        let t0 = Instant::now();
        assert!(s.check(&old, t0).await.is_ok());
        // Elsewhere: every token of alice is voided, and she logs in again.
        let alice = s.elsewhere.bump_token_version("alice").await.unwrap();
        let new = s.token(&alice, 0);
        let later = t0 + Duration::from_millis(10);
        assert!(
            s.check(&new, later).await.is_ok(),
            "not refused on old facts"
        );
        // What the new token's check read also ends the old token's grace.
        assert_eq!(
            s.check(&old, later).await.unwrap_err(),
            "the token has been revoked"
        );
    }

    #[tokio::test]
    async fn a_refused_token_is_refused_again_without_waiting_for_the_bound() {
        let s = setup().await;
        let token = s.token(&s.create("alice").await, 10);
        s.here.set_disabled("alice", true).await.unwrap();
        let t0 = Instant::now();
        for at in [t0, t0 + JUST_BEFORE, t0 + BOUND] {
            assert_eq!(
                s.check(&token, at).await.unwrap_err(),
                "the user is disabled"
            );
        }
    }

    #[tokio::test]
    async fn a_verified_token_still_expires_on_time() {
        let s = setup().await;
        let alice = s.create("alice").await;
        let grant = Grant {
            subject: "alice",
            scope: "me",
            client_id: "public",
            version: alice.token_version,
        };
        let now = crate::token::now();
        // Issued so that it expires in a moment: 1800 s ago plus a second.
        let token = s.issuer.issue(&grant, now - 1799).unwrap().token;
        let t0 = Instant::now();
        assert!(s.auth.authenticate_token_at(&token, now, t0).await.is_ok());
        let expired = s
            .auth
            .authenticate_token_at(&token, now + 1, t0 + Duration::from_millis(1))
            .await
            .unwrap_err();
        assert_eq!(expired.to_string(), "the token has expired");
    }
}
