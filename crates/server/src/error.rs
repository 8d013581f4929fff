//! The HTTP layer's one error type, with an explicit status for every variant.
//!
//! Internal causes (database errors, corrupt rows) are logged and never sent to clients:
//! the client sees a generic 500 message. Everything a client can cause is a 4xx in the
//! error format of `spec/api.md`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use segmentd_rules::Issue;
use segmentd_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all.
    #[error("{0}")]
    MalformedJson(String),
    /// The body is JSON but breaks the contract; every problem with its path.
    #[error("the request has {} invalid value(s)", .0.len())]
    Validation(Vec<Issue>),
    #[error("missing or invalid API key")]
    Unauthorized,
    /// Authenticated, but not allowed this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A uniqueness rule or a dependency forbids the change.
    #[error("{message}")]
    Conflict {
        message: String,
        path: Option<String>,
    },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    BadRequest(String),
    #[error("internal error")]
    Internal(String),
    /// Cluster: another node serves the account now (or this one stopped owning it
    /// mid-request; nothing was written). The forwarding layer retries at the owner.
    #[error("another node serves this account now; try again")]
    Misdirected(Option<segmentd_store::AccountId>),
}

/// The header a 421 names its account in, for the forwarding layer.
pub const MISDIRECTED_ACCOUNT: &str = "segmentd-account";

impl ApiError {
    pub fn validation(path: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![Issue::new(path, message)])
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Misdirected(_) => (StatusCode::MISDIRECTED_REQUEST, "misdirected"),
        }
    }
}

/// `{"error": {"code", "message", "details": [{"path", "message"}]}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorContent,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorContent {
    pub code: String,
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub path: String,
    pub message: String,
}

/// At most this many characters of a message go back: an error quotes a short prefix
/// of a bad value, never the whole of a 10 MB string.
const MAX_MESSAGE_CHARS: usize = 300;

/// `text` cut to [`MAX_MESSAGE_CHARS`], marked with `…` when cut.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let details = match &self {
            ApiError::Validation(issues) => issues
                .iter()
                .take(100)
                .map(|i| ErrorDetail {
                    path: clip(&i.path),
                    message: clip(&i.message),
                })
                .collect(),
            ApiError::Conflict {
                message,
                path: Some(path),
            } => vec![ErrorDetail {
                path: path.clone(),
                message: message.clone(),
            }],
            _ => Vec::new(),
        };
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "internal error; the server log has the details".to_owned()
            }
            ApiError::Validation(issues) if issues.len() == 1 => issues[0].to_string(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorContent {
                code: code.to_owned(),
                message: clip(&message),
                details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Misdirected(Some(account)) = self {
            response
                .headers_mut()
                .insert(MISDIRECTED_ACCOUNT, axum::http::HeaderValue::from(account));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict {
                message: format!("{what} is already taken"),
                path: None,
            },
            other if other.is_not_owner() => ApiError::Misdirected(None),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::index::IndexError> for ApiError {
    fn from(e: crate::index::IndexError) -> Self {
        use crate::index::IndexError;
        match e {
            IndexError::NotHere(account) | IndexError::NotOwner(account) => {
                ApiError::Misdirected(Some(account))
            }
            IndexError::Store(e) if e.is_not_owner() => ApiError::Misdirected(None),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
