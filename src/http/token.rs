//! `POST /token`: the OAuth2 token endpoint (RFC 6749 §4.3 password grant).

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::{single_header, store_unavailable};
use crate::error::{ApiError, ErrorBody};
use crate::form::Form;
use crate::password::{HashError, MAX_PASSWORD_BYTES};
use crate::store::{NewRefreshToken, Rotation};
use crate::throttle::ThrottleKeys;
use crate::token::{Grant, hash_refresh_token, new_refresh_token};
use crate::users::{MAX_USERNAME_BYTES, User};

/// Largest accepted token request body.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 16 * 1024;

/// The client id recorded in tokens when the client names none.
pub const DEFAULT_CLIENT_ID: &str = "public";

/// The one answer to a wrong password and to an unknown user.
const BAD_CREDENTIALS: &str = "incorrect username or password";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(issue_token))
}

/// The token request form (`application/x-www-form-urlencoded`).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `password` or `refresh_token`; may be omitted when `username` and
    /// `password` are sent.
    #[schema(example = "password")]
    grant_type: Option<String>,
    /// The refresh token (with `grant_type=refresh_token`).
    refresh_token: Option<String>,
    /// The username.
    username: Option<String>,
    /// The password.
    #[schema(format = Password)]
    password: Option<String>,
    /// Space-separated scopes to request; none requests the user's defaults.
    scope: Option<String>,
    /// The public client's id (optional).
    client_id: Option<String>,
    /// A client secret (public clients send none).
    client_secret: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The signed JWT access token.
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 1800)]
    pub expires_in: u64,
    /// A single-use refresh token: `grant_type=refresh_token` exchanges it
    /// for a new access token and a new refresh token.
    pub refresh_token: String,
    /// The granted scopes.
    #[schema(example = "me items")]
    pub scope: String,
}

/// Log in with a username and password, or exchange a refresh token.
///
/// Returns an access token and a single-use refresh token. Wrong passwords
/// and unknown users get the same `invalid_grant` answer.
#[utoipa::path(
    post,
    path = "/token",
    tag = "auth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A new access token", body = TokenResponse,
         headers(("Cache-Control" = String), ("Pragma" = String))),
        (status = 400, description = "Refused: `invalid_request`, `invalid_grant`, `invalid_scope` or `unsupported_grant_type`", body = ErrorBody),
        (status = 401, description = "`invalid_client`: wrong client secret", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 429, description = "`slow_down`: too many failed logins for this account or address",
         body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until the next attempt may succeed"))),
        (status = 503, description = "Too many logins in progress, or the database is unavailable; retry later",
         body = ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub(super) async fn issue_token(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let peer = client_ip(&state, &request);
    let (headers, body) = read_form_body(request).await?;
    let TokenRequest {
        form,
        client_id,
        grant_type,
    } = TokenRequest::parse(&headers, &body)?;
    let response = match grant_type {
        GrantType::Password => password_grant(&state, &form, &client_id, peer).await?,
        GrantType::RefreshToken => refresh_grant(&state, &form, &client_id, peer).await?,
    };
    Ok(token_response(response))
}

/// The grant a token request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// `grant_type=password`, or no `grant_type` with a username or password.
    Password,
    /// `grant_type=refresh_token`.
    RefreshToken,
}

/// What a token request asks for, decided from its headers and body alone,
/// with no database and no hashing: the decision `POST /token` makes before
/// it runs a grant, public so that it can be tested and fuzzed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The strictly parsed form.
    pub form: Form,
    /// The client, named in the form or by HTTP Basic ([`DEFAULT_CLIENT_ID`] if neither).
    pub client_id: String,
    /// The grant to run.
    pub grant_type: GrantType,
}

impl TokenRequest {
    /// Decides a token request from its headers and its complete body.
    ///
    /// # Errors
    /// `invalid_request` for a wrong content type, a malformed or repeated
    /// parameter, two `Authorization` headers or no `grant_type`;
    /// `invalid_client` for a client secret or malformed client credentials;
    /// `unsupported_grant_type`.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        let (form, client_id) = client_form(headers, body)?;
        let grant_type = match form.get("grant_type") {
            Some("password") => GrantType::Password,
            Some("refresh_token") => GrantType::RefreshToken,
            Some(_) => return Err(ApiError::UnsupportedGrantType),
            // Clients written for the tutorial send no grant_type.
            None if form.get("username").is_some() || form.get("password").is_some() => {
                GrantType::Password
            }
            None => {
                return Err(ApiError::InvalidRequest(
                    "missing parameter: grant_type".into(),
                ));
            }
        };
        Ok(Self {
            form,
            client_id,
            grant_type,
        })
    }
}

/// Reads an OAuth2 form request (token or revocation): the content type,
/// the size limit, the strict form, and the client's identity.
pub(super) async fn read_client_form(request: Request) -> Result<(Form, String), ApiError> {
    let (headers, body) = read_form_body(request).await?;
    client_form(&headers, &body)
}

/// The headers and the body of a form request within the size limit. The
/// content type is checked first, so that a wrong one is refused unread.
async fn read_form_body(request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    require_form_content_type(&parts.headers)?;
    let body = axum::body::to_bytes(body, MAX_TOKEN_REQUEST_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    Ok((parts.headers, body))
}

/// The strict form and the client's identity, from a complete body. The
/// content type is checked (again) so that this stands alone.
fn client_form(headers: &HeaderMap, body: &[u8]) -> Result<(Form, String), ApiError> {
    require_form_content_type(headers)?;
    let form = Form::parse(body).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let client_id = authenticate_client(headers, &form)?;
    Ok((form, client_id))
}

/// The client's address, when the server was started with connection info.
/// The client's address: from the trusted proxy header when one is
/// configured and present (its last entry, the one the proxy added), else
/// from the connection.
pub(super) fn client_ip(state: &AppState, request: &Request) -> Option<IpAddr> {
    let from_header = state.config.client_ip_header.as_deref().and_then(|name| {
        let values = request.headers().get_all(name);
        let last = values.iter().next_back()?.to_str().ok()?;
        last.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
    });
    from_header.or_else(|| {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    })
}

async fn password_grant(
    state: &AppState,
    form: &Form,
    client_id: &str,
    peer: Option<IpAddr>,
) -> Result<TokenResponse, ApiError> {
    let username = required(form, "username")?;
    let password = required(form, "password")?;
    // Lengths no account can have are refused before any work; this tells
    // nothing about which accounts exist.
    if username.len() > MAX_USERNAME_BYTES {
        return Err(ApiError::InvalidRequest(format!(
            "the username is longer than {MAX_USERNAME_BYTES} bytes"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::InvalidRequest(format!(
            "the password is longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let requested = parse_scope(form.get("scope"))?;

    // Throttled attempts are answered before any password hashing.
    let now = crate::token::now();
    let throttle = &state.config.throttle;
    let keys = ThrottleKeys::new(username, peer);
    if let Some(retry_after) = throttle
        .locked_for(&state.store, &keys, now)
        .await
        .map_err(store_unavailable)?
    {
        tracing::warn!(target: "gatehouse::audit", event = "login", outcome = "throttled",
                       username = %username, client_ip = ?peer, retry_after, "login throttled");
        return Err(ApiError::SlowDown { retry_after });
    }

    // A name no account can have (control characters, NUL…) is not looked
    // up, but costs the same hash as an unknown user.
    let user = if crate::users::validate_username(username).is_ok() {
        state
            .store
            .user_by_name(username)
            .await
            .map_err(store_unavailable)?
    } else {
        None
    };
    // An unknown user costs the same hash as a wrong password.
    let verification = state
        .passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await
        .map_err(hash_error)?;
    let Some(user) = user.filter(|_| verification.matches) else {
        throttle
            .record_failure(&state.store, &keys, now)
            .await
            .map_err(store_unavailable)?;
        tracing::info!(target: "gatehouse::audit", event = "login", outcome = "failure",
                       username = %username, client_ip = ?peer, "login refused");
        return Err(ApiError::InvalidGrant(BAD_CREDENTIALS.into()));
    };
    // The right password: this pair is not guessing.
    throttle
        .record_success(&state.store, &keys)
        .await
        .map_err(store_unavailable)?;
    if user.disabled {
        tracing::info!(target: "gatehouse::audit", event = "login", outcome = "disabled",
                       username = %username, client_ip = ?peer, "login refused: account disabled");
        return Err(ApiError::InvalidGrant("account disabled".into()));
    }
    let scope = grant_scope(&user, requested.as_deref())?;
    if verification.needs_rehash {
        upgrade_hash_in_background(state, &user, password);
    }
    let family = Family {
        id: uuid::Uuid::new_v4().to_string(),
        scope: scope.clone(),
        expires_at: now.saturating_add(seconds(state.config.refresh_family_ttl)),
    };
    let response = issue_tokens(state, &user, &scope, client_id, &family, now).await?;
    tracing::info!(target: "gatehouse::audit", event = "login", outcome = "success",
                   username = %user.username, client_ip = ?peer, "tokens issued");
    Ok(response)
}

/// `grant_type=refresh_token` (RFC 6749 §6): spends the presented token and
/// issues its successor in the same family.
async fn refresh_grant(
    state: &AppState,
    form: &Form,
    client_id: &str,
    peer: Option<IpAddr>,
) -> Result<TokenResponse, ApiError> {
    let presented = required(form, "refresh_token")?;
    let requested = parse_scope(form.get("scope"))?;
    let invalid =
        || ApiError::InvalidGrant("the refresh token is invalid, expired or revoked".into());
    let now = crate::token::now();
    let rotation = state
        .store
        .spend_refresh_token(&hash_refresh_token(presented), now)
        .await
        .map_err(store_unavailable)?;
    let spent = match rotation {
        Rotation::Spent(spent) => spent.issued,
        Rotation::Reused { family_id, user_id } => {
            tracing::warn!(target: "gatehouse::audit", event = "refresh_reuse", outcome = "family_revoked",
                           user_id, family_id = %family_id, client_ip = ?peer,
                           "a spent refresh token was presented again; its family is revoked");
            return Err(invalid());
        }
        Rotation::Invalid => {
            tracing::info!(target: "gatehouse::audit", event = "refresh", outcome = "invalid",
                           client_ip = ?peer, "refresh refused");
            return Err(invalid());
        }
    };
    // A public client is identified by what it says; if it names itself, it
    // must be the client the token was issued to.
    if client_id != DEFAULT_CLIENT_ID && client_id != spent.client_id {
        return Err(invalid());
    }
    let user = state
        .store
        .user_by_id(spent.user_id)
        .await
        .map_err(store_unavailable)?
        .filter(|user| !user.disabled && user.token_version == spent.token_version)
        .ok_or_else(invalid)?;
    // The scope may only stay equal or shrink, and never exceed what the
    // user may have today.
    let family_scopes: Vec<&str> = spent.scope.split_ascii_whitespace().collect();
    let scope: Vec<&str> = match &requested {
        None => family_scopes.clone(),
        Some(requested) => {
            if let Some(extra) = requested
                .iter()
                .find(|s| !family_scopes.contains(&s.as_str()))
            {
                return Err(ApiError::InvalidScope(format!(
                    "the scope {extra:?} was not granted to this refresh token"
                )));
            }
            requested.iter().map(String::as_str).collect()
        }
    };
    let scope: Vec<&str> = scope
        .into_iter()
        .filter(|s| user.scopes.iter().any(|allowed| allowed == s))
        .collect();
    let scope = scope.join(" ");
    let family = Family {
        id: spent.family_id.clone(),
        scope: spent.scope.clone(),
        expires_at: spent.family_expires_at,
    };
    let response = issue_tokens(state, &user, &scope, &spent.client_id, &family, now).await?;
    tracing::info!(target: "gatehouse::audit", event = "refresh", outcome = "success",
                   username = %user.username, client_ip = ?peer, "tokens refreshed");
    Ok(response)
}

/// The login a refresh token descends from.
struct Family {
    id: String,
    /// What the family was granted; every refresh token of it carries this.
    scope: String,
    expires_at: i64,
}

/// Signs an access token and stores a fresh refresh token of `family`.
async fn issue_tokens(
    state: &AppState,
    user: &User,
    scope: &str,
    client_id: &str,
    family: &Family,
    now: i64,
) -> Result<TokenResponse, ApiError> {
    let issued = state
        .issuer
        .issue(
            &Grant {
                subject: &user.username,
                scope,
                client_id,
                version: user.token_version,
            },
            now,
        )
        .map_err(ApiError::Internal)?;
    let refresh_token = new_refresh_token();
    state
        .store
        .create_refresh_token(&NewRefreshToken {
            token_hash: hash_refresh_token(&refresh_token),
            family_id: family.id.clone(),
            user_id: user.id,
            scope: family.scope.clone(),
            client_id: client_id.to_owned(),
            token_version: user.token_version,
            created_at: now,
            expires_at: now
                .saturating_add(seconds(state.config.refresh_token_ttl))
                .min(family.expires_at),
            family_expires_at: family.expires_at,
        })
        .await
        .map_err(store_unavailable)?;
    Ok(TokenResponse {
        access_token: issued.token,
        token_type: "bearer".to_owned(),
        expires_in: issued.expires_in,
        refresh_token,
        scope: scope.to_owned(),
    })
}

fn seconds(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// The granted scope: the requested scopes if the user may have them all,
/// or all of the user's scopes when none were requested.
fn grant_scope(user: &User, requested: Option<&[String]>) -> Result<String, ApiError> {
    match requested {
        None => Ok(user.scopes.join(" ")),
        Some(requested) => {
            if let Some(denied) = requested.iter().find(|s| !user.scopes.contains(s)) {
                return Err(ApiError::InvalidScope(format!(
                    "the scope {denied:?} is not available to this user"
                )));
            }
            Ok(requested.join(" "))
        }
    }
}

/// Splits and checks a `scope` parameter; `None` when absent.
fn parse_scope(scope: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(scope) = scope else { return Ok(None) };
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        crate::users::validate_scope(s).map_err(ApiError::InvalidScope)?;
        if !scopes.iter().any(|t| t == s) {
            scopes.push(s.to_owned());
        }
    }
    Ok((!scopes.is_empty()).then_some(scopes))
}

fn upgrade_hash_in_background(state: &AppState, user: &User, password: &str) {
    let passwords = state.passwords.clone();
    let store = state.store.clone();
    let username = user.username.clone();
    let old = user.password_hash.clone();
    let password = password.to_owned();
    tokio::spawn(async move {
        let result = match passwords.hash(&password).await {
            Ok(new) => store
                .upgrade_password_hash(&username, &old, &new)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(_) => tracing::info!(username = %username, "password hash upgraded"),
            Err(error) => {
                tracing::warn!(username = %username, %error, "password hash upgrade failed")
            }
        }
    });
}

pub(super) fn required<'f>(form: &'f Form, name: &str) -> Result<&'f str, ApiError> {
    form.get(name)
        .ok_or_else(|| ApiError::InvalidRequest(format!("missing parameter: {name}")))
}

fn hash_error(error: HashError) -> ApiError {
    match error {
        HashError::Overloaded => ApiError::Unavailable {
            reason: "too many logins in progress",
            retry_after: 1,
        },
        HashError::Failed(cause) => ApiError::Internal(anyhow::anyhow!(cause)),
    }
}

fn require_form_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = single_header(headers, &header::CONTENT_TYPE, || {
        ApiError::InvalidRequest("more than one Content-Type header".into())
    })?;
    let ok = value.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let mut parts = v.split(';').map(str::trim);
        let essence = parts.next().unwrap_or_default();
        essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
            && parts.all(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    !k.trim().eq_ignore_ascii_case("charset")
                        || v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                })
            })
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ))
    }
}

/// Identifies the client (RFC 6749 §2.3). Public clients may send their id
/// in the form or as HTTP Basic with an empty secret (Swagger UI sends
/// `Basic Og==`); no confidential clients are registered, so any secret is
/// refused.
fn authenticate_client(headers: &HeaderMap, form: &Form) -> Result<String, ApiError> {
    let basic = basic_credentials(headers)?;
    let (basic_id, basic_secret) = basic.unwrap_or_default();
    if !basic_secret.is_empty() || form.get("client_secret").is_some() {
        return Err(ApiError::InvalidClient(
            "client authentication failed: unknown client or wrong secret".into(),
        ));
    }
    let form_id = form.get("client_id").unwrap_or_default();
    let id = match (basic_id.as_str(), form_id) {
        ("", "") => DEFAULT_CLIENT_ID,
        (id, "") | ("", id) => id,
        (a, b) if a == b => a,
        _ => {
            return Err(ApiError::InvalidRequest(
                "client_id in the form differs from the Authorization header".into(),
            ));
        }
    };
    if id.len() > 128 || !id.chars().all(|c| (' '..='~').contains(&c)) {
        return Err(ApiError::InvalidRequest("client_id is malformed".into()));
    }
    Ok(id.to_owned())
}

/// `Basic` credentials from `Authorization`, form-urldecoded (RFC 6749 §2.3.1);
/// `None` when the header is absent. Bearer or other schemes are refused.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = single_header(headers, &header::AUTHORIZATION, || {
        ApiError::InvalidRequest("more than one Authorization header".into())
    })?
    else {
        return Ok(None);
    };
    let malformed = || ApiError::InvalidClient("malformed client credentials".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        let form = Form::parse(format!("v={s}").as_bytes()).map_err(|_| malformed())?;
        Ok::<_, ApiError>(form.get("v").unwrap_or_default().to_owned())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

fn token_response(body: TokenResponse) -> Response {
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
