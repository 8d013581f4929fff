//! API keys: generated here, stored only as SHA-256 hashes, looked up by hash.
//!
//! A lookup by the hash of a high-entropy secret leaks nothing useful through timing
//! (an attacker would need a preimage), so an indexed lookup stands in for a
//! constant-time comparison.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use segmentd_store::{Account, AccountId, ApiKey, NewApiKey, Store};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

const KEY_PREFIX: &str = "sk_";

/// A new random API key: `sk_` and 64 hex digits (256 bits).
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// How many characters of a key are kept to recognise it (`sk_` and 7 hex digits).
pub const SHOWN_PREFIX_CHARS: usize = 10;

/// Creates the account's admin key named "default" and returns it; only its hash is
/// stored.
pub async fn issue_api_key(
    store: &dyn Store,
    account: AccountId,
) -> Result<String, segmentd_store::StoreError> {
    issue_named_key(store, account, "default", true)
        .await
        .map(|(key, _)| key)
}

/// Creates a named key for `account`: the key (shown once) and what is kept of it.
pub async fn issue_named_key(
    store: &dyn Store,
    account: AccountId,
    name: &str,
    admin: bool,
) -> Result<(String, ApiKey), segmentd_store::StoreError> {
    let key = generate_api_key();
    let new = NewApiKey {
        name: name.to_owned(),
        prefix: key.chars().take(SHOWN_PREFIX_CHARS).collect(),
        key_hash: hash_api_key(&key),
        admin,
    };
    let stored = store
        .create_api_key(account, &new, jiff::Timestamp::now())
        .await?;
    Ok((key, stored))
}

/// The account whose API key came with the request (`Authorization: Bearer <key>`).
pub struct Authenticated(pub Account);

/// The API key an `Authorization` header carries: `Bearer KEY`, or HTTP Basic with the
/// key as the password (the user name is ignored), for senders of webhooks that can
/// only put credentials in the URL (`https://any:KEY@host/…`: Amazon SNS, SendGrid).
fn api_key_of(header: &str) -> Option<String> {
    use base64::Engine;
    let key = if let Some(bearer) = header.strip_prefix("Bearer ") {
        bearer.trim().to_owned()
    } else {
        let encoded = header.strip_prefix("Basic ")?.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let pair = String::from_utf8(decoded).ok()?;
        pair.split_once(':')?.1.to_owned()
    };
    key.starts_with(KEY_PREFIX).then_some(key)
}

/// The hash of the API key a request carries, if it carries one (for routing in a
/// cluster; the key is checked by the handler).
pub fn key_hash_of(headers: &axum::http::HeaderMap) -> Option<String> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    api_key_of(header).map(|key| hash_api_key(&key))
}

/// The key's last use is written at most this often (not once a request).
const LAST_USED_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_mins(1);

/// The key a request came with, not revoked, and its account; its last use noted.
async fn key_of(parts: &Parts, state: &AppState) -> Result<(Account, ApiKey), ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let key = api_key_of(header).ok_or(ApiError::Unauthorized)?;
    let hash = hash_api_key(&key);
    let (account, found) = state
        .store
        .api_key_by_hash(&hash)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let now = state.clock.now();
    let stale = found
        .last_used_at
        .is_none_or(|t| now.duration_since(t) > LAST_USED_EVERY);
    if stale {
        state.store.touch_api_key(&hash, now).await?;
    }
    Ok((account, found))
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        key_of(parts, state)
            .await
            .map(|(account, _)| Authenticated(account))
    }
}

/// A request made with one of the account's admin keys (which manage its keys): 403
/// with another key.
pub struct AdminKey(pub Account);

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (account, key) = key_of(parts, state).await?;
        if !key.admin {
            return Err(ApiError::Forbidden(
                "only an admin key manages the account's keys".into(),
            ));
        }
        Ok(AdminKey(account))
    }
}
