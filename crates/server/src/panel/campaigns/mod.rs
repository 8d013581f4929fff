//! The panel's campaign pages: the list with a form for a new campaign, and one
//! campaign's page with its exact recipient count and exclusions by reason before it is
//! sent, the actions its status allows, its statistics and its frozen recipients after.
//! Plain HTML forms (with the session's CSRF token): no script needed.
//!
//! - [`form`]: the campaign form (new and edit), read back as the API's campaign.
//! - [`actions`]: pause, resume, cancel, duplicate, delete, resend, test.
//! - [`stats`]: the statistics card and its chart (inline SVG).
//! - [`recipients`]: the recipient list, filtered by status and paged.

mod actions;
mod form;
mod recipients;
mod stats;

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use segmentd_store::{CampaignStatus, Channel};

pub use actions::{cancel, delete, duplicate, pause, resend, resume, test};
pub use form::{edit, save};
use recipients::RecipientsQuery;

use crate::api::campaigns::parse_campaign;
use crate::campaigns::stats::campaign_stats;
use crate::campaigns::{audience, send_now};
use crate::error::ApiError;
use crate::panel::pages::layout;
use crate::panel::session::{PageSession, SignedIn};
use crate::state::AppState;

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token; reload the page",
    )
        .into_response()
}

fn no_such_campaign() -> Response {
    (StatusCode::NOT_FOUND, "no such campaign").into_response()
}

fn page(s: &SignedIn, title: &str, body: Markup) -> Response {
    layout(s, "campaigns", title, "campaigns", body).into_response()
}

/// The account's time zone: send times are typed and shown in it.
fn zone(s: &SignedIn) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(&s.account.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// What a page shows besides the campaign: a confirmation, a refusal, the test form as
/// posted and its results.
#[derive(Debug, Default)]
pub(crate) struct Flash {
    pub notice: Option<String>,
    pub error: Option<String>,
    pub test_to: String,
    pub test_contact: String,
    pub tests: Option<Vec<crate::campaigns::lifecycle::TestResult>>,
}

impl Flash {
    fn error(message: String) -> Self {
        Flash {
            error: Some(message),
            ..Flash::default()
        }
    }
}

/// The confirmation a `?done=` flag stands for. Only these fixed sentences are shown,
/// so a link cannot put words of its own on the page.
fn notice(q: &HashMap<String, String>) -> Option<String> {
    let n = q.get("n").and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let text = match q.get("done")?.as_str() {
        "sent" => "Sending started.",
        "saved" => "Changes saved.",
        "paused" => "Paused: no new message starts; those under way finish.",
        "resumed" => "Resumed: delivery goes on.",
        "cancelled" => "Cancelled: the campaign will not be sent. It can be deleted now.",
        "duplicated" => "This is a copy of the campaign, as a draft.",
        "deleted" => "The campaign was deleted.",
        "resent" if n == 1 => "1 recipient queued again.",
        "resent" => return Some(format!("{} recipients queued again.", stats::thousands(n))),
        _ => return None,
    };
    Some(text.to_owned())
}

/// How a refused write shows on a page: its status and sentence. `None`: not the
/// person's doing (a 500, which keeps its own response).
fn explain(e: &ApiError) -> (StatusCode, Option<String>) {
    match e {
        ApiError::Conflict { message, .. } => (StatusCode::CONFLICT, Some(message.clone())),
        ApiError::Validation(issues) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(form::problems(issues)),
        ),
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, None),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

/// A refused action: the campaign's page with lifecycle's sentence, under the status
/// it answered (409, 422); an unknown campaign is a 404.
async fn refused(state: &AppState, s: &SignedIn, id: i64, e: ApiError) -> Response {
    match explain(&e) {
        (status, Some(why)) => {
            let shown =
                render_show(state, s, id, &RecipientsQuery::default(), Flash::error(why)).await;
            (status, shown).into_response()
        }
        (status, None) if status == StatusCode::NOT_FOUND => no_such_campaign(),
        _ => e.into_response(),
    }
}

fn new_form(
    s: &SignedIn,
    segments: &[segmentd_store::Segment],
    values: &form::Values,
    error: Option<&str>,
) -> Markup {
    html! {
        h2 { "New campaign" }
        @if let Some(e) = error { p.error role="alert" id="campaign-error" { (e) } }
        (form::campaign_form(s, segments, values, "new-campaign", "/panel/campaigns", ("create-campaign", "Create campaign")))
    }
}

pub async fn list(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    render_list(&state, &s, notice(&q), &form::Values::default(), None).await
}

async fn render_list(
    state: &AppState,
    s: &SignedIn,
    notice: Option<String>,
    values: &form::Values,
    error: Option<&str>,
) -> Response {
    let (campaigns, segments) = match (
        state.store.campaigns(s.account.id).await,
        state.store.segments(s.account.id, None).await,
    ) {
        (Ok(c), Ok(g)) => (c, g),
        (Err(e), _) | (_, Err(e)) => return ApiError::from(e).into_response(),
    };
    page(
        s,
        "Campaigns",
        html! {
            h1 { "Campaigns" }
            @if let Some(n) = notice { p.notice role="status" id="campaign-notice" { (n) } }
            @if campaigns.is_empty() {
                p id="no-campaigns" { "No campaigns yet." }
            } @else {
                div.table-wrap {
                    table id="campaigns" {
                        thead { tr { th { "Name" } th { "Channel" } th { "Status" } th { "Created" } } }
                        tbody {
                            @for c in &campaigns {
                                tr {
                                    td { a href=(format!("/panel/campaigns/{}", c.id)) { (c.name) } }
                                    td { (c.channel.as_str()) }
                                    td { (c.status.as_str()) }
                                    td { (c.created_at.strftime("%Y-%m-%d %H:%M")) }
                                }
                            }
                        }
                    }
                }
            }
            (new_form(s, &segments, values, error))
        },
    )
}

pub async fn create(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if !s.csrf_ok(csrf) {
        return forbidden();
    }
    let values = form::Values::from_pairs(&pairs);
    let created = async {
        let body = form::read(&values, &zone(&s))?;
        let draft = parse_campaign(&state, &s.account, body).await?;
        Ok::<_, ApiError>(
            state
                .store
                .create_campaign(s.account.id, &draft, state.clock.now())
                .await?,
        )
    }
    .await;
    match created {
        Ok(c) => Redirect::to(&format!("/panel/campaigns/{}", c.id)).into_response(),
        Err(ApiError::Validation(issues)) => {
            let shown =
                render_list(&state, &s, None, &values, Some(&form::problems(&issues))).await;
            (StatusCode::UNPROCESSABLE_ENTITY, shown).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn show(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let flash = Flash {
        notice: notice(&q),
        ..Flash::default()
    };
    render_show(&state, &s, id, &RecipientsQuery::from_query(&q), flash).await
}

/// The campaign's page. Before sending: the exact audience and the send button. Once
/// frozen: statistics and recipients. Always: the actions its status allows and the
/// test form.
async fn render_show(
    state: &AppState,
    s: &SignedIn,
    id: i64,
    rq: &RecipientsQuery,
    flash: Flash,
) -> Response {
    let campaign = match state.store.campaign(s.account.id, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return no_such_campaign(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let unsent = matches!(
        campaign.status,
        CampaignStatus::Draft | CampaignStatus::Scheduled
    );
    let frozen = campaign.frozen_at.is_some();
    let preview = if unsent {
        match audience(state, &s.account, &campaign, false).await {
            Ok(a) => Some((a.recipients, a.excluded)),
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    let after_freezing = async {
        if !frozen {
            return Ok(None);
        }
        let figures = campaign_stats(state, s.account.id, id).await?;
        let counts = state.store.recipient_counts(s.account.id, id).await?;
        let rows = state
            .store
            .campaign_recipients_page(
                s.account.id,
                id,
                rq.status,
                rq.after.as_deref(),
                (rq.limit + 1) as u32,
            )
            .await?;
        Ok::<_, ApiError>(Some((figures, counts, rows)))
    };
    let after_freezing = match after_freezing.await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let segments = state
        .store
        .segments(s.account.id, None)
        .await
        .unwrap_or_default();
    let name_of = |sid: &i64| {
        segments
            .iter()
            .find(|g| g.id == *sid)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| format!("segment {sid} (deleted)"))
    };
    let channel = match campaign.channel {
        Channel::Email => "E-mail",
        Channel::Sms => "SMS",
        Channel::Push => "Push",
    };
    let zone = zone(s);
    page(
        s,
        &campaign.name,
        html! {
            p { a href="/panel/campaigns" { "← Campaigns" } }
            h1 { (campaign.name) }
            @if let Some(n) = &flash.notice { p.notice role="status" id="campaign-notice" { (n) } }
            @if let Some(e) = &flash.error { p.error role="alert" id="campaign-error" { (e) } }
            dl {
                dt { "Channel" } dd { (channel) }
                dt { "Status" } dd id="campaign-status" { (campaign.status.as_str()) }
                @if campaign.status == CampaignStatus::Paused {
                    dt { "Paused because" } dd id="status-reason" { (campaign.status_reason.clone().unwrap_or_else(|| "no reason recorded".to_owned())) }
                }
                dt { "Sent to members of" } dd { (campaign.targets.iter().map(name_of).collect::<Vec<_>>().join(", ")) }
                @if !campaign.exclusions.is_empty() {
                    dt { "Except members of" } dd { (campaign.exclusions.iter().map(name_of).collect::<Vec<_>>().join(", ")) }
                }
                @if let Some(r) = campaign.rate_per_second { dt { "At most" } dd id="campaign-rate" { (stats::thousands(u64::from(r))) " messages a second" } }
                @if let Some(t) = campaign.scheduled_at { dt { "Scheduled for" } dd { (t.to_zoned_datetime(zone.clone()).strftime("%Y-%m-%d %H:%M:%S %Z")) } }
                @if let Some(t) = campaign.frozen_at { dt { "Recipients frozen" } dd { (t.to_string()) } }
                @if let Some(t) = campaign.sent_at { dt { "Delivery finished" } dd { (t.to_string()) } }
            }
            (actions::buttons(s, &campaign))
            h2 { "Content" }
            pre id="campaign-content" { (serde_json::to_string_pretty(&campaign.content).unwrap_or_default()) }
            @if let Some((n, ex)) = preview {
                h2 { "If sent now" }
                p { strong id="preview-recipients" { (n) } " recipients" }
                ul id="preview-excluded" {
                    li { "No address or push token: " span id="ex-no-address" { (ex.no_address) } }
                    li { "Unsubscribed: " span id="ex-unsubscribed" { (ex.unsubscribed) } }
                    li { "Bounced: " span id="ex-bounced" { (ex.bounced) } }
                    li { "In an exclusion segment: " span id="ex-segments" { (ex.exclusion_segments) } }
                }
                form method="post" action=(format!("/panel/campaigns/{id}/send")) {
                    input type="hidden" name="csrf" value=(s.session.csrf_token);
                    button.primary type="submit" id="send-campaign" { "Send now to " (n) " recipients" }
                }
            }
            @if let Some((figures, counts, rows)) = after_freezing {
                (stats::section(&figures, &zone))
                (recipients::section(id, rq, &counts, rows))
            }
            (actions::test_form(s, &campaign, &flash))
        },
    )
}

pub async fn send(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<crate::panel::session::CsrfForm>,
) -> Response {
    if !s.csrf_ok(&form.csrf) {
        return forbidden();
    }
    let campaign = match state.store.campaign(s.account.id, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return no_such_campaign(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match send_now(&state, &s.account, &campaign).await {
        Ok(true) => Redirect::to(&format!("/panel/campaigns/{id}?done=sent")).into_response(),
        Ok(false) => {
            refused(
                &state,
                &s,
                id,
                ApiError::Conflict {
                    message: format!("campaign {id} has already been sent"),
                    path: None,
                },
            )
            .await
        }
        Err(e) => refused(&state, &s, id, e).await,
    }
}
