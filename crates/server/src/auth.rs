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

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let key = api_key_of(header).ok_or(ApiError::Unauthorized)?;
        let key = key.as_str();
        let account = state
            .store
            .account_by_api_key(&hash_api_key(key))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Authenticated(account))
    }
}
