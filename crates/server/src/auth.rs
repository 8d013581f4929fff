//! API keys: generated here, stored only as SHA-256 hashes, looked up by hash.
//!
//! A lookup by the hash of a high-entropy secret leaks nothing useful through timing
//! (an attacker would need a preimage), so an indexed lookup stands in for a
//! constant-time comparison.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use segmentd_store::{Account, AccountId, Store};
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

/// Creates a key for `account` and returns it; only its hash is stored.
pub async fn issue_api_key(
    store: &dyn Store,
    account: AccountId,
) -> Result<String, segmentd_store::StoreError> {
    let key = generate_api_key();
    store.add_api_key(account, &hash_api_key(&key)).await?;
    Ok(key)
}

/// The account whose API key came with the request (`Authorization: Bearer <key>`).
pub struct Authenticated(pub Account);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let key = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|k| k.starts_with(KEY_PREFIX))
            .ok_or(ApiError::Unauthorized)?;
        let account = state
            .store
            .account_by_api_key(&hash_api_key(key))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Authenticated(account))
    }
}
