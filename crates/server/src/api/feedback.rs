//! `/api/v1/feedback/…` and `/api/v1/sms/inbound`: bounces, complaints and SMS replies
//! coming back, in a generic shape and in the shapes of Amazon SES (through SNS),
//! SendGrid's event webhook and Twilio's inbound SMS. All take the account's API key
//! (as a Bearer token, or as the Basic-auth password for senders that only put
//! credentials in the URL).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use segmentd_rules::Issue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::campaigns::feedback::{
    Applied, EmailReport, Report, SmsReply, apply_email_reports, apply_sms_reply,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, ApiJson};
use crate::state::AppState;

/// At most this many reports a request.
const MAX_REPORTS: usize = 1_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackIn {
    /// 1 to 1,000 reports.
    pub events: Vec<FeedbackEvent>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackEvent {
    /// `bounce` (a hard bounce) or `complaint`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The address; needed unless `message_id` names a message segmentd sent.
    pub email: Option<String>,
    /// The Message-ID of the message concerned, `<c…r…@domain>`.
    pub message_id: Option<String>,
}

/// Bounces and complaints in segmentd's own shape: a bounce makes the address
/// `bounced`, a complaint unsubscribes it; both count in the message's campaign.
#[utoipa::path(post, path = "/api/v1/feedback/email", tag = "feedback", request_body = FeedbackIn,
    responses((status = 200, body = Applied), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn email_feedback(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiJson(body): ApiJson<FeedbackIn>,
) -> Result<Json<Applied>, ApiError> {
    let mut issues = Vec::new();
    if body.events.is_empty() || body.events.len() > MAX_REPORTS {
        issues.push(Issue::new(
            "events",
            format!("expected 1 to {MAX_REPORTS} events"),
        ));
    }
    let mut reports = Vec::with_capacity(body.events.len());
    for (i, e) in body.events.into_iter().enumerate() {
        let kind = match e.kind.as_str() {
            "bounce" => Report::Bounce,
            "complaint" => Report::Complaint,
            _ => {
                issues.push(Issue::new(
                    format!("events[{i}].type"),
                    "expected \"bounce\" or \"complaint\"",
                ));
                continue;
            }
        };
        if e.email.is_none() && e.message_id.is_none() {
            issues.push(Issue::new(
                format!("events[{i}]"),
                "expected `email`, `message_id` or both",
            ));
        }
        reports.push(EmailReport {
            kind,
            email: e.email,
            message_id: e.message_id,
        });
    }
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    Ok(Json(apply_email_reports(&state, &account, &reports).await?))
}

/// Amazon SES bounce and complaint notifications, as SNS POSTs them (the notification
/// is a JSON string in `Message`). Permanent bounces only; transient ones change
/// nothing. A subscription confirmation is answered 200 and logged with its URL, to be
/// visited once by the operator.
#[utoipa::path(post, path = "/api/v1/feedback/ses", tag = "feedback",
    request_body(content = Object, description = "an SNS notification (or SES's own, raw)"),
    responses((status = 200, body = Applied), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn ses_feedback(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiBytes(bytes): ApiBytes,
) -> Result<Json<Applied>, ApiError> {
    let envelope: Value = crate::extract::parse_json(&bytes)?;
    let kind = envelope.get("Type").and_then(Value::as_str).unwrap_or("");
    if kind == "SubscriptionConfirmation" {
        let url = envelope
            .get("SubscribeURL")
            .and_then(Value::as_str)
            .unwrap_or("");
        tracing::warn!(
            %url,
            "an SNS subscription waits for confirmation: visit its SubscribeURL once"
        );
        return Ok(Json(Applied::default()));
    }
    // SNS wraps the notification; SES can also POST it bare (raw message delivery).
    let notification: Value = match envelope.get("Message").and_then(Value::as_str) {
        Some(text) => serde_json::from_str(text).map_err(|_| {
            ApiError::Validation(vec![Issue::new(
                "Message",
                "expected an SES notification as JSON",
            )])
        })?,
        None => envelope,
    };
    let message_id = notification
        .pointer("/mail/headers")
        .and_then(Value::as_array)
        .and_then(|headers| {
            headers.iter().find_map(|h| {
                let name = h.get("name")?.as_str()?;
                name.eq_ignore_ascii_case("Message-ID")
                    .then(|| h.get("value")?.as_str().map(str::to_owned))?
            })
        });
    let (kind, list) = match notification
        .get("notificationType")
        .or_else(|| notification.get("eventType"))
        .and_then(Value::as_str)
    {
        Some("Bounce")
            if notification
                .pointer("/bounce/bounceType")
                .and_then(Value::as_str)
                == Some("Permanent") =>
        {
            (Report::Bounce, "/bounce/bouncedRecipients")
        }
        Some("Complaint") => (Report::Complaint, "/complaint/complainedRecipients"),
        Some("Bounce") => return Ok(Json(Applied::default())),
        _ => {
            return Err(ApiError::Validation(vec![Issue::new(
                "notificationType",
                "expected an SES \"Bounce\" or \"Complaint\" notification",
            )]));
        }
    };
    let reports: Vec<EmailReport> = notification
        .pointer(list)
        .and_then(Value::as_array)
        .map(|recipients| {
            recipients
                .iter()
                .filter_map(|r| r.get("emailAddress")?.as_str())
                .take(MAX_REPORTS)
                .map(|email| EmailReport {
                    kind,
                    email: Some(email.to_owned()),
                    message_id: message_id.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(apply_email_reports(&state, &account, &reports).await?))
}

/// SendGrid's event webhook: an array of events; `bounce` (not `blocked`, a temporary
/// refusal) and `spamreport` are applied, every other event is ignored.
#[utoipa::path(post, path = "/api/v1/feedback/sendgrid", tag = "feedback",
    request_body(content = Vec<Object>, description = "SendGrid's events"),
    responses((status = 200, body = Applied), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn sendgrid_feedback(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiBytes(bytes): ApiBytes,
) -> Result<Json<Applied>, ApiError> {
    // Counted while read: a huge array is refused before it is built.
    crate::extract::check_batch_len(&bytes, "", MAX_REPORTS)?;
    let events: Vec<Value> = crate::extract::parse_json(&bytes)?;
    let reports: Vec<EmailReport> = events
        .iter()
        .filter_map(|e| {
            let kind = match (
                e.get("event").and_then(Value::as_str),
                e.get("type").and_then(Value::as_str),
            ) {
                (Some("bounce"), Some("blocked")) => return None,
                (Some("bounce"), _) => Report::Bounce,
                (Some("spamreport"), _) => Report::Complaint,
                _ => return None,
            };
            Some(EmailReport {
                kind,
                email: e.get("email").and_then(Value::as_str).map(str::to_owned),
                message_id: e.get("smtp-id").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect();
    Ok(Json(apply_email_reports(&state, &account, &reports).await?))
}

/// An SMS received (JSON; Twilio's form with `From` and `Body` is also taken).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SmsInboundIn {
    /// The sender's number.
    pub from: String,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmsReplyOut {
    /// `opted_out`, `opted_in` or `ignored`.
    pub reply: SmsReply,
    /// Contacts with that number whose SMS status changed.
    pub contacts: u64,
}

/// An SMS received from a contact: STOP (and STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT,
/// OPTOUT, REVOKE, ARRET) opts the number out of SMS, START (UNSTOP, YES, SUBSCRIBE)
/// opts it in; the first word counts, in any case. JSON `{"from", "text"}`, or Twilio's
/// form (`From`, `Body`).
#[utoipa::path(post, path = "/api/v1/sms/inbound", tag = "feedback", request_body = SmsInboundIn,
    responses((status = 200, body = SmsReplyOut), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn sms_inbound(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    headers: HeaderMap,
    ApiBytes(bytes): ApiBytes,
) -> Result<Json<SmsReplyOut>, ApiError> {
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let (from, text) = if form {
        let mut from = None;
        let mut text = None;
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            match k.as_ref() {
                "From" => from = Some(v.into_owned()),
                "Body" => text = Some(v.into_owned()),
                _ => {}
            }
        }
        (from, text)
    } else {
        let inbound: SmsInboundIn = crate::extract::parse_json(&bytes)?;
        (Some(inbound.from), Some(inbound.text))
    };
    let (Some(from), Some(text)) = (from.filter(|f| !f.trim().is_empty()), text) else {
        return Err(ApiError::Validation(vec![Issue::new(
            "from",
            "expected the sender's number in `from` (or `From`) and the text in `text` (or `Body`)",
        )]));
    };
    let (reply, contacts) = apply_sms_reply(&state, &account, &from, &text).await?;
    Ok(Json(SmsReplyOut { reply, contacts }))
}
