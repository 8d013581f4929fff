//! Every node answers every request: this layer serves it here when this node may, and
//! otherwise sends it to the account's owner (one hop) and relays the answer.
//!
//! The account comes from the API key (`Authorization`) or the panel's session cookie.
//! Writes (any method but GET and HEAD) are served by the owner; reads by the owner or
//! the follower. A request this layer could not place (a tracking link, a webhook) runs
//! here, and a handler that finds the account is not held or not owned here answers 421
//! naming the account, which this layer then forwards. A forwarded request carries
//! [`FORWARDED`]; its receiver never forwards it again but answers 421 when the account
//! moved, and the sender reads the placements again and retries, for up to
//! [`RETRY_FOR`]: a move or a failover shows the client a slower answer, not an error.
//! A 421 or a refused connection means nothing was written; a request whose owner died
//! or moved while it was being answered is sent to the new owner, as a client would
//! retry it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use segmentd_store::AccountId;

use super::{Cluster, Role};
use crate::error::{ApiError, MISDIRECTED_ACCOUNT};
use crate::state::AppState;

/// Marks a request one node sent another.
pub const FORWARDED: &str = "segmentd-forwarded-by";

/// How long a request waits for its account to have a reachable owner.
pub const RETRY_FOR: Duration = Duration::from_secs(15);

/// The largest body this layer holds to forward (the API's own limits are lower).
const MAX_BODY: usize = 256 * 1024 * 1024;

pub async fn route(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cluster) = state.cluster.clone() else {
        return next.run(request).await;
    };
    if request.uri().path().starts_with("/cluster/") {
        return next.run(request).await;
    }
    let forwarded = request.headers().contains_key(FORWARDED);
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge { limit: MAX_BODY }.into_response(),
    };
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let headers = parts.headers.clone();
    if !forwarded && let Some(account) = account_of(&state, &cluster, &headers).await {
        let read = method == Method::GET || method == Method::HEAD;
        let here = match cluster.held(account).map(|h| h.role()) {
            Some(Role::Owner { .. }) => cluster.lease_valid(),
            Some(Role::Follower) => read,
            None => false,
        };
        if !here {
            return forward(&cluster, account, method, uri, headers, bytes).await;
        }
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if response.status() != StatusCode::MISDIRECTED_REQUEST || forwarded {
        return response;
    }
    let account = response
        .headers()
        .get(MISDIRECTED_ACCOUNT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let Some(account) = account.or(account_of(&state, &cluster, &headers).await) else {
        return response;
    };
    forward(&cluster, account, method, uri, headers, bytes).await
}

/// The account a request acts for, from its API key or panel session.
async fn account_of(state: &AppState, cluster: &Cluster, headers: &HeaderMap) -> Option<AccountId> {
    if let Some(hash) = crate::auth::key_hash_of(headers) {
        if let Some(account) = cluster.key_account(&hash) {
            return Some(account);
        }
        let (account, _) = state.store.api_key_by_hash(&hash).await.ok()??;
        cluster.remember_key(hash, account.id);
        return Some(account.id);
    }
    crate::panel::session::session_account(state, headers).await
}

/// Sends the request to the account's owner and relays its answer, retrying while the
/// owner is unreachable or says the account moved.
async fn forward(
    cluster: &Arc<Cluster>,
    account: AccountId,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut wait = Duration::from_millis(20);
    loop {
        let placed = cluster.placement(account).map(|p| p.epoch);
        if let Some(address) = cluster.owner_address(account) {
            let mut request = cluster
                .http
                .request(method.clone(), format!("{address}{path}"))
                .body(body.clone())
                .header(FORWARDED, cluster.node());
            for (name, value) in &headers {
                if !hop_by_hop(name.as_str()) {
                    request = request.header(name, value);
                }
            }
            // An owner that stopped (SIGSTOP, a stall) may hold the request without an
            // answer: once the account has moved, its write can no longer commit, and
            // the request goes to the new owner.
            let answered = tokio::select! {
                answer = request.send() => Some(answer),
                () = moved(cluster, account, placed) => None,
            };
            match answered {
                Some(Ok(answer)) if answer.status() != StatusCode::MISDIRECTED_REQUEST => {
                    return relay(answer);
                }
                Some(Ok(_)) | None => {}
                // Refused or reset: the owner died or is going. The request is sent again
                // once the account has an owner that answers (a write the dead owner had
                // committed but not answered may apply twice, as a client's own retry
                // would; events with ids are kept once).
                Some(Err(e)) => tracing::debug!(account, error = %e, "forwarding failed; retrying"),
            }
        }
        if started.elapsed() > RETRY_FOR {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(
                    axum::http::header::RETRY_AFTER,
                    HeaderValue::from_static("1"),
                )],
                axum::Json(serde_json::json!({"error": {
                    "code": "unavailable",
                    "message": "the account's node is not reachable yet; try again",
                    "details": [],
                }})),
            )
                .into_response();
        }
        cluster.refresh.notify_one();
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(250));
    }
}

/// Returns once the account's placement epoch differs from `placed`.
async fn moved(cluster: &Cluster, account: AccountId, placed: Option<i64>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if cluster.placement(account).map(|p| p.epoch) != placed {
            return;
        }
    }
}

fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "host"
            | "content-length"
            | "proxy-connection"
    )
}

/// The owner's answer, its body streamed through.
fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !hop_by_hop(name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
