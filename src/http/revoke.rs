//! `POST /revoke`: token revocation (RFC 7009).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::token::{client_ip, read_client_form, required};
use crate::app::AppState;
use crate::auth::store_unavailable;
use crate::error::{ApiError, ErrorBody};
use crate::token::hash_refresh_token;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(revoke))
}

/// The revocation request form (`application/x-www-form-urlencoded`).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RevokeForm {
    /// The access token or refresh token to revoke.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`: where to look first.
    token_type_hint: Option<String>,
    /// The public client's id (optional).
    client_id: Option<String>,
}

/// Revoke a token (log out).
///
/// Revoking a refresh token ends its whole family (the login it came from);
/// revoking an access token makes it fail everywhere until it would have
/// expired. As RFC 7009 requires, an unknown or already invalid token also
/// gets `200`.
#[utoipa::path(
    post,
    path = "/revoke",
    tag = "auth",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token is no longer valid"),
        (status = 400, description = "`invalid_request`: no `token`, a repeated parameter, or the wrong content type", body = ErrorBody),
        (status = 401, description = "`invalid_client`: wrong client secret", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
async fn revoke(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let peer = client_ip(&state, &request);
    let (form, _client_id) = read_client_form(request).await?;
    let token = required(&form, "token")?;
    let now = crate::token::now();
    let refresh_first = form.get("token_type_hint") == Some("refresh_token");
    let kind = if refresh_first {
        match revoke_refresh(&state, token, now).await? {
            true => Some("refresh_token"),
            false => revoke_access(&state, token, now)
                .await?
                .then_some("access_token"),
        }
    } else {
        match revoke_access(&state, token, now).await? {
            true => Some("access_token"),
            false => revoke_refresh(&state, token, now)
                .await?
                .then_some("refresh_token"),
        }
    };
    tracing::info!(target: "gatehouse::audit", event = "revoke",
                   outcome = if kind.is_some() { "revoked" } else { "unknown_token" },
                   token_type = kind.unwrap_or("-"), client_ip = ?peer, "revocation request");
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Denylists a valid access token by `jti` until its expiry.
async fn revoke_access(state: &AppState, token: &str, now: i64) -> Result<bool, ApiError> {
    let Ok(claims) = state.auth.verifier().verify(token, now) else {
        return Ok(false);
    };
    state
        .store
        .revoke_access_token(&claims.jti, claims.exp, now)
        .await
        .map_err(store_unavailable)?;
    Ok(true)
}

/// Ends the family of a refresh token.
async fn revoke_refresh(state: &AppState, token: &str, now: i64) -> Result<bool, ApiError> {
    state
        .store
        .revoke_refresh_family(&hash_refresh_token(token), now)
        .await
        .map_err(store_unavailable)
}
