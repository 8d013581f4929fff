//! Signed tracking links under `/t`: the open pixel, click redirects and unsubscribe.
//!
//! A link is `/t/{kind}/{account}/{campaign}/{contact}/{signature}` (clicks add
//! `?u=TARGET`). The signature is HMAC-SHA256, keyed by the account's secret (made once
//! and kept in the store), over the kind, the ids and the target, cut to 128 bits. A link
//! whose signature does not match gets a 404 and records nothing, so links can be
//! neither forged nor enumerated. Opens and clicks are recorded as system events with the
//! campaign id through the same write path as `POST /api/v1/events`
//! (`crate::writes`), so segments see them at once.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use segmentd_rules::SystemEventKind;
use segmentd_store::{
    AccountId, CampaignId, Channel, ContactUpsert, EmailStatus, Engagement, EventBody, NewEvent,
    Patch, Store,
};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::state::AppState;
use crate::writes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Open,
    Click,
    Unsubscribe,
    /// The visitor token a click hands to the website tracking script.
    Visit,
}

impl LinkKind {
    fn as_str(self) -> &'static str {
        match self {
            LinkKind::Open => "o",
            LinkKind::Click => "c",
            LinkKind::Unsubscribe => "u",
            LinkKind::Visit => "v",
        }
    }
}

/// Signs and checks one account's links.
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub async fn for_account(
        store: &dyn Store,
        account: AccountId,
    ) -> Result<Self, segmentd_store::StoreError> {
        let candidate = hex::encode(rand::random::<[u8; 32]>());
        let secret = store.tracking_secret(account, &candidate).await?;
        Ok(Signer {
            key: secret.into_bytes(),
        })
    }

    fn signature(
        &self,
        kind: LinkKind,
        account: AccountId,
        campaign: CampaignId,
        contact: i64,
        target: Option<&str>,
    ) -> String {
        // The key is any length, so `new_from_slice` cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(
            format!(
                "{}/{account}/{campaign}/{contact}\n{}",
                kind.as_str(),
                target.unwrap_or("")
            )
            .as_bytes(),
        );
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    pub fn url(
        &self,
        base: &str,
        kind: LinkKind,
        account: AccountId,
        campaign: CampaignId,
        contact: i64,
        target: Option<&str>,
    ) -> String {
        let sig = self.signature(kind, account, campaign, contact, target);
        let mut url = format!(
            "{}/t/{}/{account}/{campaign}/{contact}/{sig}",
            base.trim_end_matches('/'),
            kind.as_str()
        );
        if let Some(t) = target {
            url.push_str("?u=");
            url.push_str(&percent_encode(t));
        }
        url
    }

    /// `ACCOUNT.CONTACT.SIGNATURE`: names a contact to the tracking script's visits.
    pub fn visitor_token(&self, account: AccountId, contact: i64) -> String {
        let sig = self.signature(LinkKind::Visit, account, 0, contact, None);
        format!("{account}.{contact}.{sig}")
    }

    fn verify(&self, link: &LinkPath, kind: LinkKind, target: Option<&str>) -> bool {
        let want = self.signature(kind, link.0, link.1, link.2, target);
        !want.is_empty() && bool::from(want.as_bytes().ct_eq(link.3.as_bytes()))
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

type LinkPath = (AccountId, CampaignId, i64, String);

#[derive(Debug, Deserialize)]
struct Target {
    u: Option<String>,
}

const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/s.js", get(script))
        .route("/v", axum::routing::post(visit))
        .route("/o/{account}/{campaign}/{contact}/{sig}", get(open))
        .route("/c/{account}/{campaign}/{contact}/{sig}", get(click))
        .route(
            "/u/{account}/{campaign}/{contact}/{sig}",
            get(confirm_unsubscribe).post(unsubscribe),
        )
}

/// What a verified link names: the contact's external id and the campaign's channel.
/// `None` (answered 404) for a bad signature or unknown ids.
async fn verified(
    state: &AppState,
    link: &LinkPath,
    kind: LinkKind,
    target: Option<&str>,
) -> Option<(segmentd_store::Account, String, Channel)> {
    let account = state.store.account(link.0).await.ok()??;
    // Read-only: a link to an account that never signed one is refused without making
    // its key (an unauthenticated request that is refused writes nothing).
    let signer = Signer {
        key: state
            .store
            .existing_tracking_secret(account.id)
            .await
            .ok()??
            .into_bytes(),
    };
    if !signer.verify(link, kind, target) {
        return None;
    }
    let campaign = state.store.campaign(account.id, link.1).await.ok()??;
    let contact = state
        .store
        .contacts_by_ids(account.id, &[link.2])
        .await
        .ok()?
        .pop()?;
    Some((account, contact.external_id, campaign.channel))
}

async fn record(
    state: &AppState,
    account: &segmentd_store::Account,
    contact: String,
    kind: SystemEventKind,
    campaign: CampaignId,
    url: Option<String>,
) {
    let batch = [NewEvent {
        client_id: None,
        contact,
        timestamp: state.clock.now(),
        body: EventBody::System {
            kind,
            campaign: Some(campaign.to_string()),
            url,
        },
    }];
    if let Err(e) = writes::add_events(state, account, batch.into()).await {
        tracing::warn!(error = %e, "recording a tracking event failed");
    }
}

/// Whether an open was made by a machine rather than a person: a request with no
/// user agent, Apple Mail Privacy Protection's prefetcher (whose user agent is exactly
/// `Mozilla/5.0`), or a link scanner, crawler or HTTP library that names itself.
/// Gmail's and Yahoo's image proxies fetch when a person opens the message: human.
pub fn machine_open(user_agent: Option<&str>) -> bool {
    const MACHINES: [&str; 14] = [
        "bot",
        "crawler",
        "spider",
        "barracuda",
        "mimecast",
        "proofpoint",
        "safelinks",
        "scanner",
        "curl/",
        "wget/",
        "python-",
        "go-http-client",
        "java/",
        "okhttp",
    ];
    let Some(ua) = user_agent.map(str::trim).filter(|ua| !ua.is_empty()) else {
        return true;
    };
    if ua == "Mozilla/5.0" {
        return true;
    }
    let ua = ua.to_ascii_lowercase();
    MACHINES.iter().any(|m| ua.contains(m))
}

/// Counts what a recipient did into the campaign's statistics.
async fn engage(
    state: &AppState,
    account: &segmentd_store::Account,
    link: &LinkPath,
    what: Engagement,
) {
    if let Err(e) = state
        .store
        .record_engagement(account.id, link.1, link.2, what, state.clock.now())
        .await
    {
        tracing::warn!(error = %e, "recording a campaign's engagement failed");
    }
}

/// A human open becomes a `MailOpen` event (segments see it) and counts once per
/// recipient; a machine open (see [`machine_open`]) is only counted, apart, so that
/// segments on opens see people.
async fn open(
    State(state): State<AppState>,
    Path(link): Path<LinkPath>,
    headers: HeaderMap,
) -> Response {
    let Some((account, contact, _)) = verified(&state, &link, LinkKind::Open, None).await else {
        return not_found();
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    if machine_open(user_agent) {
        engage(&state, &account, &link, Engagement::MachineOpen).await;
    } else {
        engage(&state, &account, &link, Engagement::Open).await;
        record(
            &state,
            &account,
            contact,
            SystemEventKind::MailOpen,
            link.1,
            None,
        )
        .await;
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL,
    )
        .into_response()
}

async fn click(
    State(state): State<AppState>,
    Path(link): Path<LinkPath>,
    Query(target): Query<Target>,
) -> Response {
    let Some(url) = target.u else {
        return not_found();
    };
    let Some((account, contact, channel)) =
        verified(&state, &link, LinkKind::Click, Some(&url)).await
    else {
        return not_found();
    };
    let kind = match channel {
        Channel::Email => SystemEventKind::MailClick,
        Channel::Sms => SystemEventKind::SmsClick,
        Channel::Push => SystemEventKind::PushClick,
    };
    engage(&state, &account, &link, Engagement::Click).await;
    record(&state, &account, contact, kind, link.1, Some(url.clone())).await;
    // The destination gets the visitor token, which the tracking script keeps.
    let destination = match Signer::for_account(state.store.as_ref(), account.id).await {
        Ok(signer) => with_token(&url, &signer.visitor_token(account.id, link.2)),
        Err(_) => url,
    };
    Redirect::to(&destination).into_response()
}

/// The name of the query parameter carrying the visitor token.
pub const TOKEN_PARAM: &str = "sd";

/// `url` with `sd=TOKEN` added to its query (before any fragment).
fn with_token(url: &str, token: &str) -> String {
    let (head, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let sep = if head.contains('?') { '&' } else { '?' };
    format!("{head}{sep}{TOKEN_PARAM}={token}{fragment}")
}

/// The website tracking script: keeps the visitor token a campaign click brought (in the
/// site's own `localStorage`) and reports each page view of an identified visitor.
/// Unidentified visitors send nothing.
const SCRIPT: &str = r#"(function () {
  var s = document.currentScript;
  if (!s) return;
  var base = new URL(s.src).origin, key = "segmentd_token", token = null;
  var here = new URL(location.href);
  try {
    token = here.searchParams.get("sd");
    if (token) localStorage.setItem(key, token); else token = localStorage.getItem(key);
  } catch (e) {}
  if (!token) return;
  here.searchParams.delete("sd");
  var body = JSON.stringify({ token: token, url: here.toString() });
  if (navigator.sendBeacon && navigator.sendBeacon(base + "/t/v", body)) return;
  fetch(base + "/t/v", { method: "POST", body: body, mode: "no-cors", keepalive: true });
})();
"#;

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        SCRIPT,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitIn {
    token: String,
    url: String,
}

const MAX_VISIT_URL_CHARS: usize = 4_000;

/// A page view from the tracking script (any content type: `sendBeacon` posts text).
/// A bad token or URL is a 404/400 and records nothing.
async fn visit(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<VisitIn>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected {\"token\", \"url\"}").into_response();
    };
    let n = v.url.chars().count();
    if n == 0 || n > MAX_VISIT_URL_CHARS || v.url.contains('\0') {
        return (StatusCode::BAD_REQUEST, "bad url").into_response();
    }
    let mut parts = v.token.splitn(3, '.');
    let (Some(Ok(account)), Some(Ok(contact)), Some(sig)) = (
        parts.next().map(str::parse::<AccountId>),
        parts.next().map(str::parse::<i64>),
        parts.next(),
    ) else {
        return not_found();
    };
    let link: LinkPath = (account, 0, contact, sig.to_owned());
    let Ok(Some(account)) = state.store.account(account).await else {
        return not_found();
    };
    let Ok(signer) = Signer::for_account(state.store.as_ref(), account.id).await else {
        return not_found();
    };
    if !signer.verify(&link, LinkKind::Visit, None) {
        return not_found();
    }
    let Some(contact) = state
        .store
        .contacts_by_ids(account.id, &[contact])
        .await
        .ok()
        .and_then(|mut c| c.pop())
    else {
        return not_found();
    };
    let batch = [NewEvent {
        client_id: None,
        contact: contact.external_id,
        timestamp: state.clock.now(),
        body: EventBody::Visit { url: v.url },
    }];
    if let Err(e) = writes::add_events(&state, &account, batch.into()).await {
        tracing::warn!(error = %e, "recording a visit failed");
        return (StatusCode::INTERNAL_SERVER_ERROR, "try again later").into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The link's page: it asks, and only its POST unsubscribes. Link scanners (Safe Links
/// and the like) fetch every link of a message with GET; they must not unsubscribe
/// anyone.
async fn confirm_unsubscribe(
    State(state): State<AppState>,
    Path(link): Path<LinkPath>,
) -> Response {
    if verified(&state, &link, LinkKind::Unsubscribe, None)
        .await
        .is_none()
    {
        return not_found();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "<!doctype html><meta charset=\"utf-8\"><title>Unsubscribe</title>\
         <p>Do you want to stop receiving our e-mails?</p>\
         <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
    )
        .into_response()
}

/// Unsubscribes: the confirmation page's form, or a mail client's one-click POST
/// (RFC 8058, body `List-Unsubscribe=One-Click`), which needs no page.
async fn unsubscribe(State(state): State<AppState>, Path(link): Path<LinkPath>) -> Response {
    let Some((account, contact, _)) = verified(&state, &link, LinkKind::Unsubscribe, None).await
    else {
        return not_found();
    };
    let upsert = ContactUpsert {
        external_id: contact.clone(),
        email_status: Patch::Set(EmailStatus::Unsubscribed),
        ..ContactUpsert::default()
    };
    if let Err(e) = writes::upsert_contacts(&state, &account, &[upsert]).await {
        tracing::error!(error = %e, "unsubscribing failed");
        return (StatusCode::INTERNAL_SERVER_ERROR, "please try again later").into_response();
    }
    engage(&state, &account, &link, Engagement::Unsubscribe).await;
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Unsubscribed</title><p>You will receive no more e-mails from us.</p>",
    )
        .into_response()
}
