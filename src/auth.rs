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

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::error::ApiError;
use crate::store::{Store, StoreError};
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
    users: Option<Store>,
}

/// The authenticated caller of a protected route.
#[derive(Debug, Clone)]
pub struct AuthUser {
    claims: AccessClaims,
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
    pub fn new(verifier: TokenVerifier) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
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
    /// change, a disable, or a revoke-all).
    pub fn with_store(verifier: TokenVerifier, store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
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
        let claims = self
            .inner
            .verifier
            .verify_fresh(token, crate::token::now())
            .await
            .map_err(invalid_token)?;
        let account = match &self.inner.users {
            None => None,
            Some(store) => Some(Arc::new(current_account(store, &claims).await?)),
        };
        Ok(AuthUser { claims, account })
    }
}

/// The user behind `claims`, if they may still use it.
async fn current_account(store: &Store, claims: &AccessClaims) -> Result<User, ApiError> {
    let user = store
        .user_by_name(&claims.sub)
        .await
        .map_err(store_unavailable)?
        .ok_or(invalid_token(TokenError::Revoked(
            "the user no longer exists",
        )))?;
    if user.disabled {
        return Err(invalid_token(TokenError::Revoked("the user is disabled")));
    }
    let revoked = claims.ver != Some(user.token_version)
        || store
            .is_access_token_revoked(&claims.jti)
            .await
            .map_err(store_unavailable)?;
    if revoked {
        return Err(invalid_token(TokenError::Revoked(
            "the token has been revoked",
        )));
    }
    Ok(user)
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
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::MissingCredentials);
    };
    if values.next().is_some() {
        return Err(malformed("more than one Authorization header"));
    }
    if value.len() > MAX_TOKEN_BYTES + "Bearer ".len() {
        return Err(malformed("the token is too long"));
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

/// `token68` of RFC 9110 §11.2.
fn is_token68(value: &str) -> bool {
    let body = value.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
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
