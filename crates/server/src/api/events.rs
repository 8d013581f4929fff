//! `/api/v1/events`: system events, customer events and visits, in batches.

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use segmentd_rules::data::parse_timestamp;
use segmentd_rules::limits::MAX_EVENT_NAME_CHARS;
use segmentd_rules::{Issue, SystemEventKind};
use segmentd_store::{EventBody, NewEvent, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::contacts::MAX_BATCH;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, parse_value};
use crate::state::AppState;

const MAX_ID_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 4_000;
const MAX_CAMPAIGN_CHARS: usize = 200;
const MAX_PROPERTIES_BYTES: usize = 32 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// At most 10,000 events.
    #[schema(value_type = Vec<EventIn>)]
    pub events: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum EventIn {
    System {
        id: Option<String>,
        /// The contact's external id.
        contact: String,
        /// `MailOpen`, `MailClick`, `SmsClick` or `PushClick`.
        event: String,
        timestamp: String,
        campaign: Option<String>,
        url: Option<String>,
    },
    Custom {
        id: Option<String>,
        contact: String,
        name: String,
        timestamp: String,
        #[schema(value_type = Option<Object>)]
        properties: Option<serde_json::Map<String, serde_json::Value>>,
    },
    Visit {
        id: Option<String>,
        contact: String,
        url: String,
        timestamp: String,
    },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub accepted: u64,
    pub duplicates: u64,
}

fn check_text(value: &str, path: String, what: &str, max: usize, issues: &mut Vec<Issue>) {
    let n = value.chars().count();
    if n == 0 || n > max {
        issues.push(Issue::new(
            path,
            format!("expected {what} of 1 to {max} characters"),
        ));
    }
}

/// Timestamps are kept to the millisecond (see docs/semantics.md).
fn timestamp(value: &str, path: String, issues: &mut Vec<Issue>) -> Timestamp {
    match parse_timestamp(value).and_then(|t| Timestamp::from_millisecond(t.as_millisecond()).ok())
    {
        Some(t) => t,
        None => {
            issues.push(Issue::new(
                path,
                "expected an RFC 3339 timestamp with an offset, e.g. 2026-01-31T12:00:00Z",
            ));
            Timestamp::UNIX_EPOCH
        }
    }
}

pub fn parse_event(item: serde_json::Value, path: &str) -> Result<NewEvent, Vec<Issue>> {
    let event: EventIn = parse_value(item, path).map_err(|i| vec![i])?;
    let mut issues = Vec::new();
    let (client_id, contact, ts, body) = match event {
        EventIn::System {
            id,
            contact,
            event,
            timestamp: t,
            campaign,
            url,
        } => {
            let kind = SystemEventKind::parse(&event);
            if kind.is_none() {
                issues.push(Issue::new(
                    format!("{path}.event"),
                    "expected one of \"MailOpen\", \"MailClick\", \"SmsClick\", \"PushClick\"",
                ));
            }
            if let Some(c) = &campaign {
                check_text(
                    c,
                    format!("{path}.campaign"),
                    "a campaign id",
                    MAX_CAMPAIGN_CHARS,
                    &mut issues,
                );
            }
            if let Some(u) = &url {
                check_text(
                    u,
                    format!("{path}.url"),
                    "a URL",
                    MAX_URL_CHARS,
                    &mut issues,
                );
            }
            let body = EventBody::System {
                kind: kind.unwrap_or(SystemEventKind::MailOpen),
                campaign,
                url,
            };
            (id, contact, t, body)
        }
        EventIn::Custom {
            id,
            contact,
            name,
            timestamp: t,
            properties,
        } => {
            check_text(
                &name,
                format!("{path}.name"),
                "an event name",
                MAX_EVENT_NAME_CHARS,
                &mut issues,
            );
            let properties = properties.unwrap_or_default();
            let size = serde_json::to_vec(&properties)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > MAX_PROPERTIES_BYTES {
                issues.push(Issue::new(
                    format!("{path}.properties"),
                    format!(
                        "expected at most {MAX_PROPERTIES_BYTES} bytes of properties, got {size}"
                    ),
                ));
            }
            (id, contact, t, EventBody::Custom { name, properties })
        }
        EventIn::Visit {
            id,
            contact,
            url,
            timestamp: t,
        } => {
            check_text(
                &url,
                format!("{path}.url"),
                "a URL",
                MAX_URL_CHARS,
                &mut issues,
            );
            (id, contact, t, EventBody::Visit { url })
        }
    };
    if let Some(id) = &client_id {
        check_text(id, format!("{path}.id"), "an id", MAX_ID_CHARS, &mut issues);
    }
    check_text(
        &contact,
        format!("{path}.contact"),
        "an external id",
        200,
        &mut issues,
    );
    let timestamp = timestamp(&ts, format!("{path}.timestamp"), &mut issues);
    if issues.is_empty() {
        Ok(NewEvent {
            client_id,
            contact,
            timestamp,
            body,
        })
    } else {
        Err(issues)
    }
}

/// Records events for existing contacts. An `id` already stored is a harmless duplicate.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = EventBatch,
    responses((status = 200, body = Accepted), (status = 422, body = ErrorBody)))]
pub async fn post_events(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiJson(body): ApiJson<EventBatch>,
) -> Result<Json<Accepted>, ApiError> {
    if body.events.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "events",
            format!(
                "expected at most {MAX_BATCH} events in one batch, got {}",
                body.events.len()
            ),
        ));
    }
    let mut issues = Vec::new();
    let mut batch = Vec::with_capacity(body.events.len());
    for (i, item) in body.events.into_iter().enumerate() {
        match parse_event(item, &format!("events[{i}]")) {
            Ok(e) => batch.push(e),
            Err(mut found) => issues.append(&mut found),
        }
    }
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    match state.store.insert_events(account.id, &batch).await {
        Ok(outcome) => {
            // The index drops repeated client ids exactly as the store did (first one
            // stays), so it is given the whole batch.
            state.evaluator.events_added(&account, &batch).await?;
            Ok(Json(Accepted {
                accepted: outcome.accepted,
                duplicates: outcome.duplicates,
            }))
        }
        Err(StoreError::UnknownContacts(indexes)) => Err(ApiError::Validation(
            indexes
                .into_iter()
                .map(|i| {
                    let contact = batch.get(i).map(|e| e.contact.as_str()).unwrap_or_default();
                    Issue::new(
                        format!("events[{i}].contact"),
                        format!("unknown contact \"{contact}\""),
                    )
                })
                .collect(),
        )),
        Err(other) => Err(other.into()),
    }
}
