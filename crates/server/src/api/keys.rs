//! `/api/v1/keys`: the account's API keys, managed with an admin key. A key is shown
//! once, when created; afterwards only its name and first characters.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use segmentd_rules::Issue;
use segmentd_store::ApiKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AdminKey, issue_named_key};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// Names the key in `DELETE /keys/{id}`.
    pub id: String,
    pub name: String,
    /// The key's first characters, to recognise it (empty for keys made before names).
    pub prefix: String,
    pub admin: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for KeyOut {
    fn from(k: ApiKey) -> Self {
        KeyOut {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            admin: k.admin,
            created_at: k.created_at.to_string(),
            last_used_at: k.last_used_at.map(|t| t.to_string()),
            revoked_at: k.revoked_at.map(|t| t.to_string()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// 1 to 100 characters, to tell keys apart ("shop backend", "SES webhook").
    pub name: String,
    /// Whether the key may manage the account's keys (default false).
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyOut {
    /// The key itself, shown this once: only its hash is kept.
    pub key: String,
    #[serde(flatten)]
    pub about: KeyOut,
}

/// The account's keys, revoked ones included, oldest first.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    AdminKey(account): AdminKey,
) -> Result<Json<KeyList>, ApiError> {
    let items = state.store.api_keys(account.id).await?;
    Ok(Json(KeyList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a key and shows it once.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = KeyIn,
    responses((status = 201, body = NewKeyOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    AdminKey(account): AdminKey,
    ApiJson(body): ApiJson<KeyIn>,
) -> Result<(StatusCode, Json<NewKeyOut>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::Validation(vec![Issue::new(
            "name",
            format!("expected a name of 1 to {MAX_NAME_CHARS} characters"),
        )]));
    }
    let (key, about) = issue_named_key(state.store.as_ref(), account.id, name, body.admin).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKeyOut {
            key,
            about: about.into(),
        }),
    ))
}

/// Revokes a key at once: requests with it are 401 from now on (204; 404 for an
/// unknown or already revoked key).
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    AdminKey(account): AdminKey,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .revoke_api_key(account.id, &id, state.clock.now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no key {id} to revoke")))
    }
}
