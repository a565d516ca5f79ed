//! Limits every request meets before any handler: total header size, a
//! declared body size, and a deadline. Each refusal is our JSON error.

use std::time::Duration;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Largest total of header names and values accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Largest body any route accepts (the token endpoints accept less).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// How long a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses oversized headers (431) and declared bodies (413), and answers
/// `503` when a request takes longer than [`REQUEST_TIMEOUT`].
pub(super) async fn enforce(request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge.into_response();
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return ApiError::PayloadTooLarge.into_response();
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable {
            reason: "the request took too long",
            retry_after: 1,
        }
        .into_response(),
    }
}
