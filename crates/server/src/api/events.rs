//! `/api/v1/events`: system events, customer events and visits, in batches.

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use segmentd_rules::data::parse_timestamp;
use segmentd_rules::limits::MAX_EVENT_NAME_CHARS;
use segmentd_rules::{Issue, SystemEventKind};
use segmentd_store::{EventBody, NewEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::contacts::MAX_BATCH;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, check_batch_len, parse_json_fast, parse_value};
use crate::state::AppState;
use crate::writes;

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

/// The same batch, typed all the way down, for the fast path (see `parse_json_fast`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypedEventBatch {
    events: Vec<EventIn>,
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

/// Where an item's key is, as `(item path, key)`: formatted only for an issue.
type At<'a> = (&'a str, &'a str);

fn at((item, key): At) -> String {
    format!("{item}.{key}")
}

fn check_text(value: &str, path: At, what: &str, max: usize, issues: &mut Vec<Issue>) {
    let n = value.chars().count();
    if n == 0 || n > max {
        issues.push(Issue::new(
            at(path),
            format!("expected {what} of 1 to {max} characters"),
        ));
    }
}

/// Timestamps are kept to the millisecond (see docs/semantics.md).
fn timestamp(value: &str, path: At, issues: &mut Vec<Issue>) -> Timestamp {
    match parse_timestamp(value).and_then(|t| Timestamp::from_millisecond(t.as_millisecond()).ok())
    {
        Some(t) => t,
        None => {
            issues.push(Issue::new(
                at(path),
                "expected an RFC 3339 timestamp with an offset, e.g. 2026-01-31T12:00:00Z",
            ));
            Timestamp::UNIX_EPOCH
        }
    }
}

/// Counts bytes written, to measure serialized JSON without keeping it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn parse_event(item: serde_json::Value, path: &str) -> Result<NewEvent, Vec<Issue>> {
    let event: EventIn = parse_value(item, path).map_err(|i| vec![i])?;
    check_event(event, path)
}

/// The checks serde's types cannot express: lengths, the system event's name, the
/// timestamp's syntax.
fn check_event(event: EventIn, path: &str) -> Result<NewEvent, Vec<Issue>> {
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
                    at((path, "event")),
                    "expected one of \"MailOpen\", \"MailClick\", \"SmsClick\", \"PushClick\"",
                ));
            }
            if let Some(c) = &campaign {
                check_text(
                    c,
                    (path, "campaign"),
                    "a campaign id",
                    MAX_CAMPAIGN_CHARS,
                    &mut issues,
                );
            }
            if let Some(u) = &url {
                check_text(u, (path, "url"), "a URL", MAX_URL_CHARS, &mut issues);
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
                (path, "name"),
                "an event name",
                MAX_EVENT_NAME_CHARS,
                &mut issues,
            );
            let properties = properties.unwrap_or_default();
            let mut size = ByteCount(0);
            let size = serde_json::to_writer(&mut size, &properties)
                .map(|()| size.0)
                .unwrap_or(usize::MAX);
            if size > MAX_PROPERTIES_BYTES {
                issues.push(Issue::new(
                    at((path, "properties")),
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
            check_text(&url, (path, "url"), "a URL", MAX_URL_CHARS, &mut issues);
            (id, contact, t, EventBody::Visit { url })
        }
    };
    if let Some(id) = &client_id {
        check_text(id, (path, "id"), "an id", MAX_ID_CHARS, &mut issues);
    }
    check_text(
        &contact,
        (path, "contact"),
        "an external id",
        200,
        &mut issues,
    );
    let timestamp = timestamp(&ts, (path, "timestamp"), &mut issues);
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

/// Parses a batch with every problem named by its path. Paths are only formatted for an
/// item with a problem: on the happy path nothing is allocated per item but the event.
fn parse_batch(body: &[u8]) -> Result<Vec<NewEvent>, ApiError> {
    check_batch_len(body, "events", MAX_BATCH)?;
    let parsed = parse_json_fast::<TypedEventBatch, EventBatch>(body)?;
    let len = match &parsed {
        Ok(typed) => typed.events.len(),
        Err(loose) => loose.events.len(),
    };
    if len > MAX_BATCH {
        return Err(ApiError::validation(
            "events",
            format!("expected at most {MAX_BATCH} events in one batch, got {len}"),
        ));
    }
    let mut issues = Vec::new();
    let mut batch = Vec::with_capacity(len);
    let mut keep = |i: usize, checked: Result<NewEvent, Vec<Issue>>| match checked {
        Ok(e) => batch.push(e),
        Err(mut found) => {
            // The cheap path is redone with the item's real path only when it failed.
            for issue in &mut found {
                issue.path = issue.path.replacen(ITEM, &format!("events[{i}]"), 1);
            }
            issues.append(&mut found)
        }
    };
    match parsed {
        Ok(typed) => {
            for (i, event) in typed.events.into_iter().enumerate() {
                keep(i, check_event(event, ITEM));
            }
        }
        Err(loose) => {
            for (i, item) in loose.events.into_iter().enumerate() {
                keep(i, parse_event(item, ITEM));
            }
        }
    }
    if issues.is_empty() {
        Ok(batch)
    } else {
        Err(ApiError::Validation(issues))
    }
}

/// Stands for `events[i]` in issue paths until the index is filled in.
const ITEM: &str = "events[#]";

/// Records events for existing contacts. An `id` already stored is a harmless duplicate.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = EventBatch,
    responses((status = 200, body = Accepted), (status = 422, body = ErrorBody)))]
pub async fn post_events(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Accepted>, ApiError> {
    let batch = parse_batch(&body)?;
    let outcome = writes::add_events(&state, &account, batch).await?;
    Ok(Json(Accepted {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
    }))
}
