//! SMS and push through the provider's webhook: one signed JSON POST a message, with an
//! idempotency key, its answer classified so that a lost reply is never retried blindly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use sha2::Sha256;

use super::Attempt;
use crate::settings::DeliverySettings;

/// The header carrying `t=UNIX_SECONDS,v1=HEX(HMAC-SHA256(secret, "{t}.{body}"))`.
pub const SIGNATURE_HEADER: &str = "Segmentd-Signature";
/// The header naming the message: the same for every attempt at the same message.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

pub struct Webhook {
    http: reqwest::Client,
    secret: Option<String>,
    authorization: Option<String>,
}

impl Webhook {
    pub fn new(settings: &DeliverySettings) -> Self {
        Webhook {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(settings.webhook_timeout)
                .build()
                .unwrap_or_default(),
            secret: settings.webhook_secret.clone(),
            authorization: settings.webhook_authorization.clone(),
        }
    }

    /// POSTs `body` to `url`. A refused connection is retried (nothing was sent); a 2xx
    /// is sent; 408, 429 and 5xx are retried (after `Retry-After` when given), trusting
    /// the provider to honour the idempotency key; any other answer fails; no answer
    /// at all (a timeout, a connection lost mid-request) is unknown.
    pub async fn post(&self, url: &str, key: &str, body: &serde_json::Value) -> Attempt {
        let bytes = match serde_json::to_vec(body) {
            Ok(b) => b,
            Err(e) => return Attempt::Failed(format!("cannot encode the message: {e}")),
        };
        let mut request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, key);
        if let Some(secret) = &self.secret {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            request = request.header(SIGNATURE_HEADER, signature(secret, t, &bytes));
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        match request.body(bytes).send().await {
            Err(e) if e.is_connect() => Attempt::retry(format!("provider: {e}")),
            Err(e) if e.is_builder() => Attempt::Failed(format!("provider: {e}")),
            Err(e) => Attempt::Unknown(format!("provider: no answer: {e}")),
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Attempt::Sent
                } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                    Attempt::Retry {
                        reason: format!("provider answered {status}"),
                        after: retry_after(response.headers()),
                    }
                } else {
                    Attempt::Failed(format!("provider answered {status}"))
                }
            }
        }
    }
}

/// The signature header's value for `body` sent at `t` (seconds since the epoch).
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and is ignored: the
/// usual backoff applies).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}
