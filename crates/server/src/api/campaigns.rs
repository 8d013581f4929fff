//! `/api/v1/campaigns`: campaigns to segments, their recipient preview, sending and the
//! frozen recipient list with each recipient's delivery status.

use axum::Json;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use segmentd_rules::{Issue, SegmentId};
use segmentd_store::{Account, Campaign, CampaignDraft, CampaignId, Channel, RecipientStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::paging::{Page, into_page, paging};
use crate::auth::Authenticated;
use crate::campaigns::lifecycle::{self, TestResult};
use crate::campaigns::stats::{CampaignStats, campaign_stats};
use crate::campaigns::{Excluded, audience, send_now};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, ApiJson, parse_json, parse_value};
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 200;
const MAX_SEGMENTS: usize = 50;
const MAX_CONTENT_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignIn {
    pub name: String,
    /// `email`, `sms` or `push`.
    pub channel: String,
    /// e-mail: `from`, `subject`, `html` and/or `text`; SMS: `text`; push: `title`,
    /// `body`, `link`. Text may use `{{field}}` (a field key, `email`, `phone`,
    /// `external_id`, `unsubscribe_url`).
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    /// Saved segments whose members (united) are the audience.
    pub targets: Vec<SegmentId>,
    /// Saved segments whose members are left out.
    #[serde(default)]
    pub exclusions: Vec<SegmentId>,
    /// RFC 3339; when given, the campaign is sent then by itself.
    pub scheduled_at: Option<String>,
    /// At most this many messages a second for this campaign (1 to 100,000), besides
    /// the server's own limits.
    pub rate_per_second: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailContent {
    /// An address, with a sender name if wanted: `Shop <shop@example.com>`.
    from: String,
    reply_to: Option<String>,
    /// An address that unsubscribes whoever writes to it, offered in
    /// `List-Unsubscribe` beside the link.
    unsubscribe_mailto: Option<String>,
    subject: String,
    html: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsContent {
    #[allow(dead_code)]
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushContent {
    #[allow(dead_code)]
    title: String,
    #[allow(dead_code)]
    body: String,
    link: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignOut {
    pub id: CampaignId,
    pub name: String,
    pub channel: String,
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    pub targets: Vec<SegmentId>,
    pub exclusions: Vec<SegmentId>,
    /// `draft`, `scheduled`, `sending`, `paused`, `sent` or `cancelled`.
    pub status: String,
    /// Why it is paused, when it is.
    pub status_reason: Option<String>,
    pub rate_per_second: Option<u32>,
    pub scheduled_at: Option<String>,
    pub created_at: String,
    /// When the recipients were frozen.
    pub frozen_at: Option<String>,
    pub sent_at: Option<String>,
    /// Counted when the recipients were frozen.
    #[schema(value_type = Option<Object>)]
    pub excluded: Option<serde_json::Value>,
}

impl From<Campaign> for CampaignOut {
    fn from(c: Campaign) -> Self {
        CampaignOut {
            id: c.id,
            name: c.name,
            channel: c.channel.as_str().to_owned(),
            content: c.content,
            targets: c.targets,
            exclusions: c.exclusions,
            status: c.status.as_str().to_owned(),
            status_reason: c.status_reason,
            rate_per_second: c.rate_per_second,
            scheduled_at: c.scheduled_at.map(|t| t.to_string()),
            created_at: c.created_at.to_string(),
            frozen_at: c.frozen_at.map(|t| t.to_string()),
            sent_at: c.sent_at.map(|t| t.to_string()),
            excluded: c.excluded,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    pub items: Vec<CampaignOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    /// Exactly how many contacts would be sent the campaign now.
    pub recipients: u64,
    pub excluded: Excluded,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientOut {
    pub external_id: String,
    pub address: String,
    /// `queued`, `sending`, `sent`, `failed`, `bounced` or `unknown`.
    pub status: String,
    pub reason: Option<String>,
    pub attempts: u32,
    /// When a queued recipient is tried again, after a temporary failure.
    pub next_attempt_at: Option<String>,
}

pub(crate) async fn parse_campaign(
    state: &AppState,
    account: &Account,
    body: CampaignIn,
) -> Result<CampaignDraft, ApiError> {
    let mut issues = Vec::new();
    let n = body.name.trim().chars().count();
    if n == 0 || body.name.chars().count() > MAX_NAME_CHARS {
        issues.push(Issue::new(
            "name",
            format!("expected a name of 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    let channel = Channel::parse(&body.channel);
    if channel.is_none() {
        issues.push(Issue::new(
            "channel",
            "expected one of \"email\", \"sms\", \"push\"",
        ));
    }
    let size = serde_json::to_vec(&body.content)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_CONTENT_BYTES {
        issues.push(Issue::new(
            "content",
            format!("expected at most {MAX_CONTENT_BYTES} bytes of content"),
        ));
    } else {
        match channel {
            Some(Channel::Email) => {
                match parse_value::<EmailContent>(body.content.clone(), "content") {
                    Ok(c) => {
                        if c.html.is_none() && c.text.is_none() {
                            issues.push(Issue::new("content", "expected `html`, `text` or both"));
                        }
                        if c.from.parse::<lettre::message::Mailbox>().is_err() {
                            issues.push(Issue::new("content.from", "expected an e-mail address"));
                        }
                        if c.reply_to
                            .as_deref()
                            .is_some_and(|r| r.parse::<lettre::message::Mailbox>().is_err())
                        {
                            issues
                                .push(Issue::new("content.reply_to", "expected an e-mail address"));
                        }
                        if c.unsubscribe_mailto
                            .as_deref()
                            .is_some_and(|r| r.parse::<lettre::Address>().is_err())
                        {
                            issues.push(Issue::new(
                                "content.unsubscribe_mailto",
                                "expected an e-mail address",
                            ));
                        }
                        let _ = c.subject;
                    }
                    Err(i) => issues.push(i),
                }
            }
            Some(Channel::Sms) => {
                if let Err(i) = parse_value::<SmsContent>(body.content.clone(), "content") {
                    issues.push(i);
                }
            }
            Some(Channel::Push) => {
                match parse_value::<PushContent>(body.content.clone(), "content") {
                    Ok(p) => {
                        if let Some(l) = p.link
                            && !(l.starts_with("http://") || l.starts_with("https://"))
                        {
                            issues.push(Issue::new("content.link", "expected an http(s) URL"));
                        }
                    }
                    Err(i) => issues.push(i),
                }
            }
            None => {}
        }
    }
    if body.targets.is_empty() || body.targets.len() > MAX_SEGMENTS {
        issues.push(Issue::new(
            "targets",
            format!("expected 1 to {MAX_SEGMENTS} segment ids"),
        ));
    }
    if body.exclusions.len() > MAX_SEGMENTS {
        issues.push(Issue::new(
            "exclusions",
            format!("expected at most {MAX_SEGMENTS} segment ids"),
        ));
    }
    for (list, ids) in [("targets", &body.targets), ("exclusions", &body.exclusions)] {
        // Too long a list is refused above without a lookup: a request's cost never
        // grows with a value in it.
        if ids.len() > MAX_SEGMENTS {
            continue;
        }
        for (i, id) in ids.iter().enumerate() {
            // The index knows every saved segment: no store query per id.
            if !state.index.has_segment(account, *id).await? {
                issues.push(Issue::new(
                    format!("{list}[{i}]"),
                    format!("unknown segment {id}"),
                ));
            }
        }
    }
    if body
        .rate_per_second
        .is_some_and(|r| !(1..=100_000).contains(&r))
    {
        issues.push(Issue::new(
            "rate_per_second",
            "expected 1 to 100,000 messages a second",
        ));
    }
    let scheduled_at = match &body.scheduled_at {
        None => None,
        Some(s) => match segmentd_rules::data::parse_timestamp(s) {
            Some(t) => Some(t),
            None => {
                issues.push(Issue::new(
                    "scheduled_at",
                    "expected an RFC 3339 timestamp with an offset",
                ));
                None
            }
        },
    };
    match channel {
        Some(channel) if issues.is_empty() => Ok(CampaignDraft {
            name: body.name,
            channel,
            content: body.content,
            targets: body.targets,
            exclusions: body.exclusions,
            scheduled_at,
            rate_per_second: body.rate_per_second,
        }),
        _ => Err(ApiError::Validation(issues)),
    }
}

async fn find(state: &AppState, account: &Account, id: CampaignId) -> Result<Campaign, ApiError> {
    state
        .store
        .campaign(account.id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no campaign {id}")))
}

/// Creates a campaign: a draft, or scheduled when `scheduled_at` is given.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = CampaignIn,
    responses((status = 201, body = CampaignOut), (status = 422, body = ErrorBody)))]
pub async fn create_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiJson(body): ApiJson<CampaignIn>,
) -> Result<(StatusCode, Json<CampaignOut>), ApiError> {
    let draft = parse_campaign(&state, &account, body).await?;
    let campaign = state
        .store
        .create_campaign(account.id, &draft, state.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(campaign.into())))
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns",
    responses((status = 200, body = CampaignList)))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
) -> Result<Json<CampaignList>, ApiError> {
    let items = state.store.campaigns(account.id).await?;
    Ok(Json(CampaignList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody)))]
pub async fn get_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<Json<CampaignOut>, ApiError> {
    Ok(Json(find(&state, &account, id).await?.into()))
}

/// The exact number of recipients if the campaign were sent now, and the contacts left
/// out by reason.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/preview", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 200, body = PreviewOut), (status = 404, body = ErrorBody)))]
pub async fn preview_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<Json<PreviewOut>, ApiError> {
    let campaign = find(&state, &account, id).await?;
    let audience = audience(&state, &account, &campaign, false).await?;
    Ok(Json(PreviewOut {
        recipients: audience.recipients,
        excluded: audience.excluded,
    }))
}

/// Computes the recipients now, freezes them with the campaign and starts delivering
/// (202). 409 if the campaign was already sent.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/send", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 202, body = CampaignOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn send_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<(StatusCode, Json<CampaignOut>), ApiError> {
    let campaign = find(&state, &account, id).await?;
    if !send_now(&state, &account, &campaign).await? {
        let now = find(&state, &account, id).await?;
        return Err(ApiError::Conflict {
            message: format!(
                "campaign {id} is {}; only a draft or a scheduled campaign can be sent",
                now.status.as_str()
            ),
            path: None,
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(find(&state, &account, id).await?.into()),
    ))
}

/// The frozen recipients with their delivery status, sorted by external id, a page at a
/// time.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/recipients", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id"), ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "1 to 10,000; default 100"),
           ("cursor" = Option<String>, Query, pattern = "^[0-9a-f]*$", max_length = 1600, description = "next_cursor of the previous page"),
           ("status" = Option<String>, Query, description = "only recipients in this delivery status")),
    responses((status = 200, body = Page<RecipientOut>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn campaign_recipients(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Page<RecipientOut>>, ApiError> {
    let (limit, after) = paging(&query)?;
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(RecipientStatus::parse(s).ok_or_else(|| {
            ApiError::Validation(vec![Issue::new(
                "status",
                "expected one of \"queued\", \"sending\", \"sent\", \"failed\", \"bounced\", \"unknown\"",
            )])
        })?),
    };
    find(&state, &account, id).await?;
    let rows = state
        .store
        .campaign_recipients_page(account.id, id, status, after.as_deref(), (limit + 1) as u32)
        .await?;
    let page = into_page(rows, limit, |r| &r.external_id);
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|r| RecipientOut {
                external_id: r.external_id,
                address: r.address,
                status: r.status.as_str().to_owned(),
                reason: r.reason,
                attempts: r.attempts,
                next_attempt_at: r.next_attempt_at.map(|t| t.to_string()),
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Replaces a draft's or a scheduled campaign's settings and content (the whole
/// campaign, as when creating it). 409 once it is being sent.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")), request_body = CampaignIn,
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
    ApiJson(body): ApiJson<CampaignIn>,
) -> Result<Json<CampaignOut>, ApiError> {
    find(&state, &account, id).await?;
    let draft = parse_campaign(&state, &account, body).await?;
    Ok(Json(
        lifecycle::edit(&state, &account, id, &draft).await?.into(),
    ))
}

/// Deletes a draft or a cancelled campaign (204). 409 for any other.
#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<StatusCode, ApiError> {
    lifecycle::delete(&state, &account, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels a scheduled campaign: it is not sent.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/cancel", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn cancel_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<Json<CampaignOut>, ApiError> {
    Ok(Json(lifecycle::cancel(&state, &account, id).await?.into()))
}

/// Pauses a sending campaign: messages in flight finish, the rest wait.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn pause_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<Json<CampaignOut>, ApiError> {
    Ok(Json(lifecycle::pause(&state, &account, id).await?.into()))
}

/// Resumes a paused campaign.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn resume_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<Json<CampaignOut>, ApiError> {
    Ok(Json(lifecycle::resume(&state, &account, id).await?.into()))
}

/// A new draft with the same settings and content.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/duplicate", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 201, body = CampaignOut), (status = 404, body = ErrorBody)))]
pub async fn duplicate_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<(StatusCode, Json<CampaignOut>), ApiError> {
    let copy = lifecycle::duplicate(&state, &account, id).await?;
    Ok((StatusCode::CREATED, Json(copy.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    /// 1 to 10 e-mail addresses, phone numbers or push tokens, by the channel.
    pub to: Vec<String>,
    /// Personalise as this contact (an external id); empty values otherwise.
    pub contact: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    pub results: Vec<TestResult>,
}

/// Sends the message as it would go out now to the given addresses, subject marked
/// `[Test]`; nothing is recorded.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/test", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")), request_body = TestIn,
    responses((status = 200, body = TestOut), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn test_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
    ApiJson(body): ApiJson<TestIn>,
) -> Result<Json<TestOut>, ApiError> {
    let campaign = find(&state, &account, id).await?;
    let issues = lifecycle::check_test_addresses(campaign.channel, &body.to);
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    let results =
        lifecycle::test_send(&state, &account, id, &body.to, body.contact.as_deref()).await?;
    Ok(Json(TestOut { results }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendIn {
    /// Also those whose outcome is unknown (they may get the message twice).
    #[serde(default)]
    pub include_unknown: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResendOut {
    /// Recipients queued again.
    pub queued: u64,
}

/// Sends again to the recipients that failed (and, if asked, those whose outcome is
/// unknown), when their contact can still be reached.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resend", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")), request_body = ResendIn,
    responses((status = 202, body = ResendOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn resend_campaign(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
    ApiBytes(bytes): ApiBytes,
) -> Result<(StatusCode, Json<ResendOut>), ApiError> {
    // The body is optional: none means the failed ones only.
    let body: ResendIn = if bytes.iter().all(u8::is_ascii_whitespace) {
        ResendIn::default()
    } else {
        parse_json(&bytes)?
    };
    let queued = lifecycle::resend(&state, &account, id, body.include_unknown).await?;
    Ok((StatusCode::ACCEPTED, Json(ResendOut { queued })))
}

/// Recipients by delivery status, unique opens and clicks, unsubscribes, complaints,
/// and the same per hour.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/stats", tag = "campaigns",
    params(("id" = i64, Path, description = "the campaign's id")),
    responses((status = 200, body = CampaignStats), (status = 404, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<CampaignId>,
) -> Result<Json<CampaignStats>, ApiError> {
    find(&state, &account, id).await?;
    Ok(Json(campaign_stats(&state, account.id, id).await?))
}
