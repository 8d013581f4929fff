//! `/api/v1/contacts`: batch upsert, read, list, delete.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use segmentd_rules::{FieldValue, Issue};
use segmentd_store::{Contact, ContactUpsert, EmailStatus, Patch, SmsStatus};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::api::paging::{Page, into_page, paging};
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, check_batch_len, parse_json, parse_value};
use crate::state::AppState;
use crate::writes;

pub const MAX_BATCH: usize = 10_000;
const MAX_EXTERNAL_ID_CHARS: usize = 200;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_PHONE_CHARS: usize = 32;
const MAX_PUSH_TOKENS: usize = 100;
const MAX_PUSH_TOKEN_CHARS: usize = 4_096;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBatch {
    /// At most 10,000 contacts.
    #[schema(value_type = Vec<ContactIn>)]
    pub contacts: Vec<serde_json::Value>,
}

/// `Some(None)` for an explicit `null`, `None` when the key is absent.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    pub external_id: String,
    /// `null` or `""` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// Field key → value of the field's type; `null` or `""` clears it. Others are kept.
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    pub channels: Option<ChannelsIn>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelsIn {
    /// `subscribed`, `unsubscribed` or `bounced`.
    pub email: Option<String>,
    /// `subscribed` or `unsubscribed`.
    pub sms: Option<String>,
    pub push_tokens: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Upserted {
    pub upserted: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactOut {
    pub external_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub channels: ChannelsOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelsOut {
    /// The effective status: `null` without an address.
    pub email: Option<String>,
    pub sms: Option<String>,
    pub push_tokens: Vec<String>,
}

impl From<Contact> for ContactOut {
    fn from(c: Contact) -> Self {
        ContactOut {
            channels: ChannelsOut {
                email: c.effective_email_status().map(|s| s.as_str().to_owned()),
                sms: c.effective_sms_status().map(|s| s.as_str().to_owned()),
                push_tokens: c.push_tokens.clone(),
            },
            fields: c
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
            external_id: c.external_id,
            email: c.email,
            phone: c.phone,
        }
    }
}

fn is_plausible_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(local), Some(domain), None)
        if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'))
        && !s.chars().any(char::is_whitespace)
}

fn is_plausible_phone(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        && s.chars().filter(char::is_ascii_digit).count() >= 3
}

/// A text attribute: absent keeps it, `null` or `""` clears it.
fn text_patch(
    value: Option<Option<String>>,
    path: String,
    issues: &mut Vec<Issue>,
    check: impl Fn(&str) -> Option<String>,
) -> Patch<String> {
    match value {
        None => Patch::Keep,
        Some(None) => Patch::Clear,
        Some(Some(s)) if s.is_empty() => Patch::Clear,
        Some(Some(s)) => match check(&s) {
            Some(problem) => {
                issues.push(Issue::new(path, problem));
                Patch::Keep
            }
            None => Patch::Set(s),
        },
    }
}

/// Turns one wire item into a store upsert, or lists everything wrong with it.
pub fn parse_contact(
    item: serde_json::Value,
    path: &str,
    field_types: &HashMap<String, segmentd_rules::FieldType>,
) -> Result<ContactUpsert, Vec<Issue>> {
    let c: ContactIn = parse_value(item, path).map_err(|i| vec![i])?;
    let mut issues = Vec::new();
    let id_chars = c.external_id.chars().count();
    if id_chars == 0 || id_chars > MAX_EXTERNAL_ID_CHARS || c.external_id.trim() != c.external_id {
        issues.push(Issue::new(
            format!("{path}.external_id"),
            format!("expected 1 to {MAX_EXTERNAL_ID_CHARS} characters, without leading or trailing spaces"),
        ));
    }
    let email = text_patch(c.email, format!("{path}.email"), &mut issues, |s| {
        (s.chars().count() > MAX_EMAIL_CHARS || !is_plausible_email(s))
            .then(|| format!("expected an e-mail address like name@example.com (at most {MAX_EMAIL_CHARS} characters)"))
    });
    let phone = text_patch(c.phone, format!("{path}.phone"), &mut issues, |s| {
        (s.chars().count() > MAX_PHONE_CHARS || !is_plausible_phone(s)).then(|| {
            format!("expected a phone number: digits, spaces and + - ( ) . (at most {MAX_PHONE_CHARS} characters)")
        })
    });
    let mut fields = BTreeMap::new();
    for (key, value) in c.fields.unwrap_or_default() {
        let fpath = format!("{path}.fields.{key}");
        match field_types.get(&key) {
            None => issues.push(Issue::new(
                fpath,
                format!("unknown field \"{key}\"; declare it with POST /api/v1/fields first"),
            )),
            Some(ty) => match FieldValue::from_json(*ty, &value) {
                Ok(v) => {
                    fields.insert(key, v);
                }
                Err(problem) => {
                    issues.push(Issue::new(fpath, format!("{problem} for this {ty} field")))
                }
            },
        }
    }
    let mut upsert = ContactUpsert {
        external_id: c.external_id,
        email,
        phone,
        fields,
        ..ContactUpsert::default()
    };
    if let Some(ch) = c.channels {
        if let Some(s) = ch.email {
            match EmailStatus::parse(&s) {
                Some(st) => upsert.email_status = Patch::Set(st),
                None => issues.push(Issue::new(
                    format!("{path}.channels.email"),
                    "expected \"subscribed\", \"unsubscribed\" or \"bounced\"",
                )),
            }
        }
        if let Some(s) = ch.sms {
            match SmsStatus::parse(&s) {
                Some(st) => upsert.sms_status = Patch::Set(st),
                None => issues.push(Issue::new(
                    format!("{path}.channels.sms"),
                    "expected \"subscribed\" or \"unsubscribed\"",
                )),
            }
        }
        if let Some(tokens) = ch.push_tokens {
            if tokens.len() > MAX_PUSH_TOKENS
                || tokens
                    .iter()
                    .any(|t| t.is_empty() || t.chars().count() > MAX_PUSH_TOKEN_CHARS)
            {
                issues.push(Issue::new(
                    format!("{path}.channels.push_tokens"),
                    format!("expected at most {MAX_PUSH_TOKENS} non-empty tokens of at most {MAX_PUSH_TOKEN_CHARS} characters"),
                ));
            } else {
                upsert.push_tokens = Patch::Set(tokens);
            }
        }
    }
    if issues.is_empty() {
        Ok(upsert)
    } else {
        Err(issues)
    }
}

/// Creates or updates contacts by external id; the batch is stored whole or not at all.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = ContactBatch,
    responses((status = 200, body = Upserted), (status = 422, body = ErrorBody)))]
pub async fn upsert_contacts(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiBytes(bytes): ApiBytes,
) -> Result<Json<Upserted>, ApiError> {
    check_batch_len(&bytes, "contacts", MAX_BATCH)?;
    let body: ContactBatch = parse_json(&bytes)?;
    if body.contacts.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "contacts",
            format!(
                "expected at most {MAX_BATCH} contacts in one batch, got {}",
                body.contacts.len()
            ),
        ));
    }
    let field_types: HashMap<_, _> = state
        .store
        .fields(account.id)
        .await?
        .into_iter()
        .map(|f| (f.key, f.field_type))
        .collect();
    let mut issues = Vec::new();
    let mut batch = Vec::with_capacity(body.contacts.len());
    for (i, item) in body.contacts.into_iter().enumerate() {
        match parse_contact(item, &format!("contacts[{i}]"), &field_types) {
            Ok(u) => batch.push(u),
            Err(mut found) => issues.append(&mut found),
        }
    }
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    let upserted = writes::upsert_contacts(&state, &account, &batch).await?;
    Ok(Json(Upserted { upserted }))
}

/// One contact with its fields and channel status.
#[utoipa::path(get, path = "/api/v1/contacts/{external_id}", tag = "contacts",
    responses((status = 200, body = ContactOut), (status = 404, body = ErrorBody)))]
pub async fn get_contact(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(external_id): Path<String>,
) -> Result<Json<ContactOut>, ApiError> {
    state
        .store
        .contact(account.id, &external_id)
        .await?
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::NotFound(format!("no contact with external_id \"{external_id}\"")))
}

/// Deletes a contact with its events and visits.
#[utoipa::path(delete, path = "/api/v1/contacts/{external_id}", tag = "contacts",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_contact(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(external_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if writes::delete_contact(&state, &account, &external_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no contact with external_id \"{external_id}\""
        )))
    }
}

/// Contacts sorted by external id, a page at a time.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "1 to 10,000; default 100"),
           ("cursor" = Option<String>, Query, pattern = "^[0-9a-f]*$", max_length = 1600, description = "next_cursor of the previous page")),
    responses((status = 200, body = Page<ContactOut>)))]
pub async fn list_contacts(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Page<ContactOut>>, ApiError> {
    let (limit, after) = paging(&query)?;
    let contacts = state
        .store
        .contacts_page(account.id, after.as_deref(), (limit + 1) as u32)
        .await?;
    let page = into_page(contacts, limit, |c| &c.external_id);
    Ok(Json(Page {
        items: page.items.into_iter().map(ContactOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
