//! Panel users and sessions: argon2 password hashes, the session cookie, CSRF tokens,
//! sign-in and sign-out.
//!
//! The cookie holds a random 256-bit token; the store keeps only its SHA-256 (as for API
//! keys), with the session's CSRF token and expiry. Every state-changing request of a
//! session must carry the CSRF token (`X-CSRF-Token` header on `/panel/api`, a `csrf`
//! form field on forms), compared in constant time.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use segmentd_store::{Account, AccountId, NewSession, Session, Store, StoreError, User};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ErrorBody, ErrorContent};
use crate::state::AppState;

pub const COOKIE: &str = "segmentd_session";
/// The cookie's name when it is `Secure`: the `__Host-` prefix makes browsers refuse it
/// unless it is secure, for the whole host and set by it (no subdomain can plant one).
pub const SECURE_COOKIE: &str = "__Host-segmentd_session";
/// A session ends this long after sign-in, used or not.
pub const SESSION_LIFETIME: SignedDuration = SignedDuration::from_hours(12);
/// …and this long after its last use.
pub const SESSION_IDLE: SignedDuration = SignedDuration::from_mins(30);

/// Whether the panel's cookie is `Secure` (and `__Host-` prefixed): when asked, or when
/// the public URL is https.
pub fn secure_cookies(state: &AppState) -> bool {
    let s = &state.campaigns.settings;
    s.secure_cookies
        || s.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
}

/// The session cookie's name and attributes (without its value and age).
fn cookie_parts(state: &AppState) -> (&'static str, &'static str) {
    if secure_cookies(state) {
        (SECURE_COOKIE, "Path=/; HttpOnly; SameSite=Lax; Secure")
    } else {
        (COOKIE, "Path=/; HttpOnly; SameSite=Lax")
    }
}
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const CSRF_HEADER: &str = "x-csrf-token";

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewUserError {
    #[error("expected an e-mail address like name@example.com")]
    BadEmail,
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("a user with e-mail {0} already exists")]
    Taken(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn plausible_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None)
        if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !s.chars().any(char::is_whitespace)
        && s.chars().count() <= 254
}

/// Checks the address and password, hashes the password (argon2id) and stores the user.
pub async fn create_user(
    store: &dyn Store,
    account: AccountId,
    email: &str,
    password: &str,
    now: Timestamp,
) -> Result<User, NewUserError> {
    let email = email.trim();
    if !plausible_email(email) {
        return Err(NewUserError::BadEmail);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(NewUserError::ShortPassword);
    }
    let owned = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(anyhow::Error::from)??;
    store
        .create_user(account, email, &hash, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => NewUserError::Taken(email.to_owned()),
            other => NewUserError::Other(other.into()),
        })
}

/// The session cookie's token, if the request has one.
fn cookie_token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// The signed-in user's session and account.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: Session,
    pub account: Account,
    token_hash: String,
}

impl SignedIn {
    pub fn csrf_ok(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.session.csrf_token.as_bytes()))
    }
}

/// The account of the panel session a request's cookie names, for routing in a cluster
/// (the handler checks the session itself).
pub async fn session_account(state: &AppState, headers: &HeaderMap) -> Option<AccountId> {
    let token = cookie_token(headers, cookie_parts(state).0)?;
    let session = state
        .store
        .session(&token_hash(&token), state.clock.now())
        .await
        .ok()??;
    Some(session.account_id)
}

async fn signed_in(parts: &Parts, state: &AppState) -> Result<Option<SignedIn>, StoreError> {
    let Some(token) = cookie_token(&parts.headers, cookie_parts(state).0) else {
        return Ok(None);
    };
    let hash = token_hash(&token);
    let now = state.clock.now();
    let Some(session) = state.store.session(&hash, now).await? else {
        return Ok(None);
    };
    // The idle end moves with use, written at most once a minute per session.
    let fresh = now.checked_add(SESSION_IDLE).unwrap_or(now);
    let stale = session
        .idle_until
        .is_none_or(|t| fresh.duration_since(t) > SignedDuration::from_mins(1));
    if stale {
        state.store.touch_session(&hash, fresh).await?;
    }
    let Some(account) = state.store.account(session.account_id).await? else {
        return Ok(None);
    };
    Ok(Some(SignedIn {
        session,
        account,
        token_hash: hash,
    }))
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: ErrorContent {
                code: code.to_owned(),
                message: message.to_owned(),
                details: Vec::new(),
            },
        }),
    )
        .into_response()
}

fn internal(e: StoreError) -> Response {
    tracing::error!(cause = %e, "panel session lookup failed");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the server log has the details",
    )
}

/// A panel page's session: without one, a redirect to the sign-in page.
pub struct PageSession(pub SignedIn);

impl FromRequestParts<AppState> for PageSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match signed_in(parts, state).await {
            Ok(Some(s)) => Ok(PageSession(s)),
            Ok(None) => {
                // Inside the nested router the URI has lost its `/panel` prefix.
                let uri = parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map(|o| o.0.clone())
                    .unwrap_or_else(|| parts.uri.clone());
                let next = uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/panel".to_owned());
                Err(Redirect::to(&format!("/panel/sign-in?next={}", encode(&next))).into_response())
            }
            Err(e) => Err(internal(e)),
        }
    }
}

/// A `/panel/api` call's session: 401 without one; 403 when a state-changing request
/// lacks the session's CSRF token in `X-CSRF-Token`.
pub struct ApiSession(pub SignedIn);

impl FromRequestParts<AppState> for ApiSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let s = match signed_in(parts, state).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(json_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "sign in to the panel first",
                ));
            }
            Err(e) => return Err(internal(e)),
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !s.csrf_ok(given) {
                return Err(json_error(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong CSRF token; reload the page",
                ));
            }
        }
        Ok(ApiSession(s))
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Only panel paths are followed after sign-in (no open redirect), and only those that
/// can be a `Location` header as they are (visible ASCII: no line break, no NUL);
/// anything else goes to the panel's first page.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/panel")
                && !n.starts_with("/panel/sign-")
                && n.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            n.to_owned()
        }
        _ => "/panel/segments".to_owned(),
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

pub async fn sign_in_page(Query(q): Query<NextQuery>) -> Response {
    super::pages::sign_in(q.next.as_deref(), None, "").into_response()
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    pub email: String,
    pub password: String,
    pub next: Option<String>,
}

/// A sign-in form posted from another site is refused: a browser sends `Origin` with
/// every POST, and it must name this host (login CSRF).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

/// A hash to verify against when the address is unknown, so that a wrong address takes
/// as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// Failed sign-ins allowed per e-mail address, and per client address, in a window
/// that starts at the first failure. The address limit stops guessing one password;
/// the client limit stops one machine trying many addresses.
pub const FAILURES_PER_EMAIL: u32 = 5;
pub const FAILURES_PER_CLIENT: u32 = 30;
pub const FAILURE_WINDOW: SignedDuration = SignedDuration::from_mins(15);

/// The client's address, when the server knows it (it always does when serving).
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<crate::listener::PeerAddr>>()
                .map(|c| c.0.0.ip()),
        ))
    }
}

/// The keys a sign-in's failures are counted under, each with its limit.
fn failure_keys(email: &str, client: Option<std::net::IpAddr>) -> Vec<(String, u32)> {
    let mut keys = vec![(
        format!("email:{}", email.trim().to_lowercase()),
        FAILURES_PER_EMAIL,
    )];
    if let Some(ip) = client {
        keys.push((format!("ip:{ip}"), FAILURES_PER_CLIENT));
    }
    keys
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
    Form(form): Form<SignInForm>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site sign-in refused").into_response();
    }
    let now = state.clock.now();
    let since = now.checked_sub(FAILURE_WINDOW).unwrap_or(now);
    let keys = failure_keys(&form.email, client);
    // Refused before any hashing: a locked-out guesser costs a lookup, not a core.
    for (key, limit) in &keys {
        let (failures, started) = match state.store.sign_in_failures(key, since).await {
            Ok(f) => f,
            Err(e) => return internal(e),
        };
        if failures >= *limit {
            let wait = started
                .checked_add(FAILURE_WINDOW)
                .map(|end| end.duration_since(now).as_secs().max(1))
                .unwrap_or(60);
            let minutes = (wait + 59) / 60;
            let message = format!(
                "Too many failed sign-ins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            let page = super::pages::sign_in(form.next.as_deref(), Some(&message), &form.email);
            let mut response = (StatusCode::TOO_MANY_REQUESTS, page).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return response;
        }
    }
    let user = match state.store.user_by_email(form.email.trim()).await {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_owned());
    let password = form.password.clone();
    let ok = match state.hashing.clone().acquire_owned().await {
        Ok(permit) => tokio::task::spawn_blocking(move || {
            let ok = verify_password(&password, &hash);
            drop(permit);
            ok
        })
        .await
        .unwrap_or(false),
        Err(_) => false,
    };
    if ok {
        let _ = state.store.clear_sign_in_failures(&keys[0].0).await;
    } else {
        for (key, _) in &keys {
            if let Err(e) = state.store.record_sign_in_failure(key, now, since).await {
                return internal(e);
            }
        }
    }
    let Some(user) = user.filter(|_| ok) else {
        let page = super::pages::sign_in(
            form.next.as_deref(),
            Some("Wrong e-mail or password."),
            &form.email,
        );
        return (StatusCode::UNAUTHORIZED, page).into_response();
    };
    let _ = state.store.delete_expired_sessions(now).await;
    let token = random_hex();
    let session = NewSession {
        token_hash: token_hash(&token),
        user_id: user.id,
        account_id: user.account_id,
        csrf_token: random_hex(),
        expires_at: now.checked_add(SESSION_LIFETIME).unwrap_or(now),
        idle_until: Some(now.checked_add(SESSION_IDLE).unwrap_or(now)),
    };
    match state.store.create_session(&session).await {
        Ok(true) => {}
        Ok(false) => {
            return json_error(StatusCode::UNAUTHORIZED, "unauthorized", "no such user");
        }
        Err(e) => return internal(e),
    }
    let (name, attributes) = cookie_parts(&state);
    let cookie = format!(
        "{name}={token}; {attributes}; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    );
    let mut response = Redirect::to(&safe_next(form.next.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !s.csrf_ok(&form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token; reload the page",
        )
            .into_response();
    }
    if let Err(e) = state.store.delete_session(&s.token_hash).await {
        return internal(e);
    }
    let mut response = Redirect::to("/panel/sign-in?signed_out=1").into_response();
    let (name, attributes) = cookie_parts(&state);
    if let Ok(v) = HeaderValue::from_str(&format!("{name}=; {attributes}; Max-Age=0")) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// The account named by its id or, failing that, by its exact name.
pub async fn find_account(store: &dyn Store, id_or_name: &str) -> anyhow::Result<Account> {
    let accounts = store.accounts().await?;
    let by_id = id_or_name
        .parse::<AccountId>()
        .ok()
        .and_then(|id| accounts.iter().find(|a| a.id == id));
    let found = match by_id {
        Some(a) => Some(a),
        None => {
            let named: Vec<&Account> = accounts.iter().filter(|a| a.name == id_or_name).collect();
            if named.len() > 1 {
                anyhow::bail!(
                    "{} accounts are named {id_or_name:?}: give the id",
                    named.len()
                );
            }
            named.first().copied()
        }
    };
    found
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no account with id or name {id_or_name:?}"))
}

pub const DEMO_EMAIL: &str = "demo@segmentd.local";
/// The demo user's password, documented in the README; the demo is for a local try-out.
pub const DEMO_PASSWORD: &str = "segmentd-demo";

pub struct DemoLogin {
    pub email: String,
    pub password: String,
}

/// Creates the demo user once (in the demo account) and returns how to sign in.
pub async fn ensure_demo_user(
    store: &dyn Store,
    account: AccountId,
    now: Timestamp,
) -> anyhow::Result<DemoLogin> {
    if store.user_by_email(DEMO_EMAIL).await?.is_none() {
        create_user(store, account, DEMO_EMAIL, DEMO_PASSWORD, now)
            .await
            .map_err(anyhow::Error::from)?;
    }
    Ok(DemoLogin {
        email: DEMO_EMAIL.to_owned(),
        password: DEMO_PASSWORD.to_owned(),
    })
}

#[cfg(test)]
mod next_tests {
    use super::safe_next;

    #[test]
    fn only_plain_panel_paths_are_followed_after_sign_in() {
        let cases = [
            (Some("/panel/segments/3"), "/panel/segments/3"),
            (Some("/panel/contacts?q=ann"), "/panel/contacts?q=ann"),
            (Some("https://evil.example/panel"), "/panel/segments"),
            (Some("/panel/sign-out"), "/panel/segments"),
            (Some("/panel\r\nSet-Cookie: x=1"), "/panel/segments"),
            (Some("/panel/\0"), "/panel/segments"),
            (Some("/panel/ünï"), "/panel/segments"),
            (None, "/panel/segments"),
        ];
        for (next, expected) in cases {
            assert_eq!(safe_next(next), expected, "{next:?}");
        }
    }
}
