//! The panel's campaign pages: the list with a form for a new campaign, and one
//! campaign's page with its exact recipient count, exclusions by reason, the send
//! button and the frozen recipients. Plain HTML forms (with the session's CSRF token):
//! no script needed.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use segmentd_store::{CampaignStatus, Channel};
use serde_json::{Value, json};

use crate::api::campaigns::CampaignIn;
use crate::auth::Authenticated;
use crate::campaigns::{audience, send_now};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::panel::pages::layout;
use crate::panel::session::{PageSession, SignedIn};
use crate::state::AppState;

const RECIPIENTS_SHOWN: usize = 500;

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token; reload the page",
    )
        .into_response()
}

fn page(s: &SignedIn, title: &str, body: Markup) -> Response {
    layout(s, "campaigns", title, "campaigns", body).into_response()
}

fn new_form(s: &SignedIn, segments: &[segmentd_store::Segment], error: Option<&str>) -> Markup {
    html! {
        h2 { "New campaign" }
        @if let Some(e) = error { p.error role="alert" id="campaign-error" { (e) } }
        form method="post" action="/panel/campaigns" id="new-campaign" {
            input type="hidden" name="csrf" value=(s.session.csrf_token);
            p { label for="c-name" { "Name" } input id="c-name" name="name" required; }
            p {
                label for="c-channel" { "Channel" }
                select id="c-channel" name="channel" {
                    option value="email" { "E-mail" }
                    option value="sms" { "SMS" }
                    option value="push" { "Push" }
                }
            }
            p {
                label for="c-targets" { "Send to members of (any of)" }
                select id="c-targets" name="target" multiple required {
                    @for seg in segments { option value=(seg.id) { (seg.name) } }
                }
            }
            p {
                label for="c-exclusions" { "Except members of" }
                select id="c-exclusions" name="exclusion" multiple {
                    @for seg in segments { option value=(seg.id) { (seg.name) } }
                }
            }
            fieldset {
                legend { "E-mail" }
                p { label for="c-from" { "From" } input id="c-from" name="from" type="email"; }
                p { label for="c-subject" { "Subject" } input id="c-subject" name="subject"; }
                p { label for="c-html" { "HTML body" } textarea id="c-html" name="html" rows="5" {} }
                p { label for="c-text" { "Text body (also the SMS text)" } textarea id="c-text" name="text" rows="3" {} }
            }
            fieldset {
                legend { "Push" }
                p { label for="c-title" { "Title" } input id="c-title" name="title"; }
                p { label for="c-body" { "Body" } input id="c-body" name="body"; }
                p { label for="c-link" { "Link" } input id="c-link" name="link" type="url"; }
            }
            p.hint { "Use {{field}} for a contact's field, {{email}}, {{phone}}, {{external_id}}, and {{unsubscribe_url}} in e-mails." }
            p {
                label for="c-scheduled" { "Send at (optional; your account's time, empty: send by hand)" }
                input id="c-scheduled" name="scheduled_at" type="datetime-local";
            }
            p { button.primary type="submit" id="create-campaign" { "Create campaign" } }
        }
    }
}

pub async fn list(State(state): State<AppState>, PageSession(s): PageSession) -> Response {
    render_list(&state, &s, None).await
}

async fn render_list(state: &AppState, s: &SignedIn, error: Option<&str>) -> Response {
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
            @if campaigns.is_empty() {
                p id="no-campaigns" { "No campaigns yet." }
            } @else {
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
            (new_form(s, &segments, error))
        },
    )
}

/// A `datetime-local` value (`2026-12-01T09:30`, no offset) read in the account's time
/// zone, as the API's RFC 3339 `scheduled_at`. Anything else is passed on as written so
/// the API names the problem.
fn scheduled_at(local: &str, zone: &jiff::tz::TimeZone) -> String {
    local
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| zone.to_timestamp(dt).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| local.to_owned())
}

/// The form, as a campaign of the API: the fields of the chosen channel only.
fn campaign_json(pairs: &[(String, String)], zone: &jiff::tz::TimeZone) -> Value {
    let one = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let ids = |key: &str| -> Vec<Value> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.parse::<i64>().map(Value::from).unwrap_or(Value::Null))
            .collect()
    };
    let channel = one("channel").unwrap_or_default();
    let mut content = serde_json::Map::new();
    let keys: &[&str] = match channel.as_str() {
        "email" => &["from", "subject", "html", "text"],
        "sms" => &["text"],
        _ => &["title", "body", "link"],
    };
    for key in keys {
        if let Some(v) = one(key) {
            content.insert((*key).to_owned(), Value::String(v));
        }
    }
    let mut campaign = json!({
        "name": one("name").unwrap_or_default(),
        "channel": channel,
        "content": content,
        "targets": ids("target"),
        "exclusions": ids("exclusion"),
    });
    if let Some(local) = one("scheduled_at") {
        campaign["scheduled_at"] = Value::String(scheduled_at(&local, zone));
    }
    campaign
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
    let zone = jiff::tz::TimeZone::get(&s.account.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let body: CampaignIn = match serde_json::from_value(campaign_json(&pairs, &zone)) {
        Ok(b) => b,
        Err(e) => return render_list(&state, &s, Some(&e.to_string())).await,
    };
    let created = crate::api::campaigns::create_campaign(
        State(state.clone()),
        Authenticated(s.account.clone()),
        ApiJson(body),
    )
    .await;
    match created {
        Ok((_, out)) => Redirect::to(&format!("/panel/campaigns/{}", out.0.id)).into_response(),
        Err(ApiError::Validation(issues)) => {
            let text = issues
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            render_list(&state, &s, Some(&text)).await
        }
        Err(e) => e.into_response(),
    }
}

pub async fn show(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
) -> Response {
    let campaign = match state.store.campaign(s.account.id, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such campaign").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let unsent = matches!(
        campaign.status,
        CampaignStatus::Draft | CampaignStatus::Scheduled
    );
    let preview = if unsent {
        match audience(&state, &s.account, &campaign, false).await {
            Ok(a) => Some((a.recipients, a.excluded)),
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    let frozen = async {
        let counts = state.store.recipient_counts(s.account.id, id).await?;
        let shown = state
            .store
            .campaign_recipients_page(s.account.id, id, None, None, RECIPIENTS_SHOWN as u32)
            .await?;
        Ok::<_, segmentd_store::StoreError>((counts, shown))
    };
    let (counts, recipients) = match frozen.await {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
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
    page(
        &s,
        &campaign.name,
        html! {
            p { a href="/panel/campaigns" { "← Campaigns" } }
            h1 { (campaign.name) }
            dl {
                dt { "Channel" } dd { (channel) }
                dt { "Status" } dd id="campaign-status" { (campaign.status.as_str()) }
                dt { "Sent to members of" } dd { (campaign.targets.iter().map(name_of).collect::<Vec<_>>().join(", ")) }
                @if !campaign.exclusions.is_empty() {
                    dt { "Except members of" } dd { (campaign.exclusions.iter().map(name_of).collect::<Vec<_>>().join(", ")) }
                }
                @if let Some(t) = campaign.scheduled_at { dt { "Scheduled for" } dd { (t.to_string()) } }
                @if let Some(t) = campaign.frozen_at { dt { "Recipients frozen" } dd { (t.to_string()) } }
                @if let Some(t) = campaign.sent_at { dt { "Delivery finished" } dd { (t.to_string()) } }
            }
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
            } @else {
                h2 { "Recipients" }
                p id="recipient-counts" {
                    (counts.total()) " frozen: " (counts.sent) " sent, " (counts.failed) " failed, "
                    (counts.queued + counts.sending) " waiting"
                }
                table id="recipients" {
                    thead { tr { th { "Contact" } th { "Address" } th { "Status" } th { "Reason" } th { "Attempts" } } }
                    tbody {
                        @for r in &recipients {
                            tr {
                                td { a href=(format!("/panel/contact?id={}", crate::panel::session::encode(&r.external_id))) { (r.external_id) } }
                                td { (r.address) }
                                td { (r.status.as_str()) }
                                td { (r.reason.clone().unwrap_or_default()) }
                                td { (r.attempts) }
                            }
                        }
                    }
                }
                @if counts.total() > RECIPIENTS_SHOWN as u64 {
                    p { "The first " (RECIPIENTS_SHOWN) " are shown; " code { "GET /api/v1/campaigns/" (id) "/recipients" } " has them all." }
                }
            }
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
        Ok(None) => return (StatusCode::NOT_FOUND, "no such campaign").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Err(e) = send_now(&state, &s.account, &campaign).await {
        return e.into_response();
    }
    Redirect::to(&format!("/panel/campaigns/{id}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::scheduled_at;

    #[test]
    fn a_local_send_time_is_read_in_the_accounts_time_zone() {
        let warsaw = jiff::tz::TimeZone::get("Europe/Warsaw").expect("zone");
        let cases = [
            ("2026-12-01T09:30", "2026-12-01T08:30:00Z"), // winter: UTC+1
            ("2026-07-01T09:30", "2026-07-01T07:30:00Z"), // summer: UTC+2
            ("2026-07-01T09:30:15", "2026-07-01T07:30:15Z"),
            ("tomorrow", "tomorrow"), // the API will name the problem
        ];
        for (local, want) in cases {
            assert_eq!(scheduled_at(local, &warsaw), want, "{local}");
        }
    }
}
