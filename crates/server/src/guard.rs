//! Guards in front of every route: input no handler may see, and errors in the spec's
//! shape whatever produced them.
//!
//! - A URL (path or query) or a form body that decodes to a NUL character or to
//!   invalid UTF-8 is refused with 400 before any handler runs. PostgreSQL's text type
//!   cannot hold NUL, so such a value would reach the store as an error (a 500) on one
//!   backend and be kept on the other.
//! - A refusal produced outside our handlers under `/api/` (axum's own path, query and
//!   body rejections, which are plain text) is rewritten into the spec's error body.
//! - Panel responses are never cached (`Cache-Control: no-store`), assets aside.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorBody, ErrorContent, clip};
use crate::extract::MAX_BODY_BYTES;

/// `bytes` with `%XX` escapes (and, in forms, `+`) decoded.
fn percent_decode(bytes: &[u8], plus_is_space: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Whether encoded text decodes to something a handler may take: valid UTF-8, no NUL.
pub fn decodes_cleanly(encoded: &[u8], plus_is_space: bool) -> bool {
    let decoded = percent_decode(encoded, plus_is_space);
    !decoded.contains(&0) && std::str::from_utf8(&decoded).is_ok()
}

fn refused(what: &str) -> Response {
    ApiError::BadRequest(format!(
        "the {what} must be valid UTF-8 without the NUL character (U+0000)"
    ))
    .into_response()
}

/// Refuses a request whose URL or form body decodes to NUL or invalid UTF-8.
pub async fn refuse_bad_text(request: Request, next: Next) -> Response {
    let uri = request.uri();
    if !decodes_cleanly(uri.path().as_bytes(), false) {
        return refused("URL path");
    }
    if let Some(query) = uri.query()
        && !decodes_cleanly(query.as_bytes(), true)
    {
        return refused("URL query");
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            }
            .into_response();
        }
    };
    if !decodes_cleanly(&bytes, true) {
        return refused("form");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Rewrites a plain-text refusal under `/api/` into the spec's error body.
pub async fn spec_shaped_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let body = ErrorBody {
        error: ErrorContent {
            code: code.to_owned(),
            message: clip(if message.is_empty() {
                status.canonical_reason().unwrap_or("error")
            } else {
                &message
            }),
            details: Vec::new(),
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// Signed-in pages and the panel's JSON are never kept by a browser's or a proxy's
/// cache (a shared computer's back button, a caching proxy): `Cache-Control: no-store`
/// on every panel response but its static assets.
pub async fn panel_no_store(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let panel = path.starts_with("/panel") && !path.starts_with("/panel/assets/");
    let mut response = next.run(request).await;
    if panel {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_that_decodes_to_utf8_without_nul_passes() {
        let cases: [(&str, bool, bool); 9] = [
            ("/api/v1/contacts/ann", false, true),
            ("/api/v1/contacts/%00", false, false),
            ("/api/v1/contacts/%ff", false, false),
            ("/api/v1/contacts/%C5%82%C3%B3d%C5%BA", false, true),
            ("cursor=00", true, true),
            ("q=%00", true, false),
            ("email=a%40b.c&next=%2Fpanel%0A", true, true),
            ("100%", true, true),
            ("a=%e2%82", true, false),
        ];
        for (text, plus, ok) in cases {
            assert_eq!(decodes_cleanly(text.as_bytes(), plus), ok, "{text}");
        }
    }
}
