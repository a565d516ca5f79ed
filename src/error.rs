//! The one error type of the HTTP surface, and the only place that decides
//! which status, OAuth2 error code and `WWW-Authenticate` challenge a failure
//! gets (RFC 6749 §5.2, RFC 6750 §3).

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The protection space named in every Bearer challenge.
pub const REALM: &str = "gatehouse";

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code from RFC 6749 §5.2 or RFC 6750 §3.1.
    #[schema(example = "invalid_grant")]
    pub error: String,
    /// A human-readable explanation.
    #[schema(example = "incorrect username or password")]
    pub error_description: String,
}

/// The JSON body of a `401` from a route that requires a bearer token:
/// `error` is `invalid_token`, or absent when the request carried no
/// credentials at all (RFC 6750 §3.1 gives that challenge no error code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BearerErrorBody {
    /// `invalid_token`; absent when no credentials were sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "invalid_token")]
    pub error: Option<String>,
    /// A human-readable explanation.
    #[schema(example = "the token has expired")]
    pub error_description: String,
}

/// Everything a request can fail with.
///
/// Handlers return `Result<_, ApiError>` and use `?`; the mapping to HTTP
/// lives in [`IntoResponse`] below and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is missing a parameter, repeats one, or is otherwise malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The credentials or refresh token were not accepted.
    #[error("{0}")]
    InvalidGrant(String),
    /// A `grant_type` this server does not implement.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// A requested scope the user may not have, or one that is malformed.
    #[error("{0}")]
    InvalidScope(String),
    /// Client authentication failed (a wrong or unknown client secret).
    #[error("{0}")]
    InvalidClient(String),
    /// Too many failed attempts; retry after the given number of seconds.
    #[error("too many failed attempts")]
    SlowDown {
        /// Seconds until the next attempt may succeed.
        retry_after: u64,
    },
    /// A protected route was called without any credentials (RFC 6750 §3.1:
    /// no error code in this case).
    #[error("authentication required")]
    MissingCredentials,
    /// The access token is malformed, forged, expired, revoked, or belongs to
    /// a user who can no longer sign in.
    #[error("{0}")]
    InvalidToken(String),
    /// The token is valid but lacks a scope the route needs.
    #[error("the token lacks the scope this route requires")]
    InsufficientScope {
        /// The space-separated scopes the route requires.
        required: String,
    },
    /// The request body is larger than the route accepts.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request headers are larger than the server accepts.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The server is shedding load (the password-hashing queue is full, or
    /// the database is unreachable); retry after the given number of seconds.
    #[error("{reason}")]
    Unavailable {
        /// Why, in words safe to show a client.
        reason: &'static str,
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// Anything unexpected. The cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_)
            | Self::InvalidGrant(_)
            | Self::UnsupportedGrantType
            | Self::InvalidScope(_) => StatusCode::BAD_REQUEST,
            Self::InvalidClient(_) | Self::MissingCredentials | Self::InvalidToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::SlowDown { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OAuth2 error code (`None` only for a bare authentication challenge).
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            Self::InvalidRequest(_) | Self::PayloadTooLarge | Self::HeadersTooLarge => {
                "invalid_request"
            }
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidClient(_) => "invalid_client",
            Self::SlowDown { .. } => "slow_down",
            Self::MissingCredentials => return None,
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable { .. } => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        })
    }

    fn description(&self) -> String {
        match self {
            // Never echo an internal cause to the client.
            Self::Internal(_) => "the server could not complete the request".to_owned(),
            other => other.to_string(),
        }
    }

    fn challenge(&self) -> Option<String> {
        match self {
            Self::MissingCredentials => Some(format!("Bearer realm=\"{REALM}\"")),
            Self::InvalidToken(description) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                quote_safe(description)
            )),
            Self::InsufficientScope { required } => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"{}\"",
                quote_safe(&self.to_string()),
                quote_safe(required)
            )),
            Self::InvalidClient(_) => Some(format!("Basic realm=\"{REALM}\"")),
            _ => None,
        }
    }
}

/// Keeps a value legal inside a quoted-string of a challenge (RFC 9110 §5.6.4):
/// printable ASCII only, no quote or backslash.
fn quote_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %format!("{cause:#}"), "request failed");
        }
        let mut headers = HeaderMap::new();
        if let Some(value) = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Self::SlowDown { retry_after } | Self::Unavailable { retry_after, .. } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        let Some(code) = self.code() else {
            // RFC 6750 §3.1: a request without credentials gets a challenge
            // with no error code; the body says what is needed in words.
            let body = BearerErrorBody {
                error: None,
                error_description: self.description(),
            };
            return (status, headers, Json(body)).into_response();
        };
        let body = ErrorBody {
            error: code.to_owned(),
            error_description: self.description(),
        };
        (status, headers, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, String) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn an_internal_error_never_shows_its_cause() {
        let cause = anyhow::anyhow!("connection to db.internal:5432 failed: password for app");
        let (status, body) = body_of(ApiError::Internal(cause)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            r#"{"error":"server_error","error_description":"the server could not complete the request"}"#
        );
    }

    #[test]
    fn challenge_values_stay_legal_quoted_strings() {
        assert_eq!(quote_safe("a \"quoted\" \\ value\n"), "a 'quoted' ' value?");
    }
}
