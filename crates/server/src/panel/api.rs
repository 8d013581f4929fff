//! `/panel/api/…`: the JSON the panel's pages call, authenticated by the session (and
//! its CSRF token for writes) instead of an API key. Writes go through the very
//! handlers of `/api/v1`, reads through the same `Evaluator`, `parse_rule` and store.

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::tz::TimeZone;
use segmentd_rules::explain::{ExplainNode, explain};
use segmentd_rules::{Clock as RuleClock, Issue, Rule, SegmentId, parse_rule};
use segmentd_store::{Account, Contact, EmailStatus, SmsStatus, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::fields::{FieldIn, FieldList, FieldOut};
use crate::api::segments::{SegmentIn, SegmentList, SegmentOut};
use crate::auth::Authenticated;
use crate::catalog::{load_catalog, parse_saved_rules};
use crate::error::ApiError;
use crate::evaluation::{contact_data, push_event};
use crate::extract::ApiJson;
use crate::panel::session::ApiSession;
use crate::panel::words::{Names, describe};
use crate::state::AppState;

fn as_api(s: &ApiSession) -> Authenticated {
    Authenticated(s.0.account.clone())
}

pub async fn list_segments(
    State(state): State<AppState>,
    session: ApiSession,
    query: Query<HashMap<String, String>>,
) -> Result<Json<SegmentList>, ApiError> {
    crate::api::segments::list_segments(State(state), as_api(&session), query).await
}

pub async fn create_segment(
    State(state): State<AppState>,
    session: ApiSession,
    body: ApiJson<SegmentIn>,
) -> Result<(StatusCode, Json<SegmentOut>), ApiError> {
    crate::api::segments::create_segment(State(state), as_api(&session), body).await
}

pub async fn update_segment(
    State(state): State<AppState>,
    session: ApiSession,
    id: Path<String>,
    body: ApiJson<SegmentIn>,
) -> Result<Json<SegmentOut>, ApiError> {
    crate::api::segments::update_segment(State(state), as_api(&session), id, body).await
}

pub async fn list_fields(
    State(state): State<AppState>,
    session: ApiSession,
) -> Result<Json<FieldList>, ApiError> {
    crate::api::fields::list_fields(State(state), as_api(&session)).await
}

pub async fn create_field(
    State(state): State<AppState>,
    session: ApiSession,
    body: ApiJson<FieldIn>,
) -> Result<(StatusCode, Json<FieldOut>), ApiError> {
    crate::api::fields::create_field(State(state), as_api(&session), body).await
}

pub async fn delete_field(
    State(state): State<AppState>,
    session: ApiSession,
    key: Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::api::fields::delete_field(State(state), as_api(&session), key).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    pub rule: Value,
}

#[derive(Debug, Default, Serialize)]
pub struct Reachable {
    pub email: u64,
    pub sms: u64,
    pub push: u64,
}

/// A draft's live count. An invalid draft is a normal answer while editing (200 with
/// `valid: false` and the problems by path), not an error: the builder asks on every
/// change.
#[derive(Debug, Serialize)]
pub struct PreviewOut {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable: Option<Reachable>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Issue>,
}

/// Who can be sent to: a subscribed e-mail address, a subscribed phone, a push token.
pub fn reachable<'a>(contacts: impl Iterator<Item = &'a Contact>) -> Reachable {
    let mut r = Reachable::default();
    for c in contacts {
        if c.effective_email_status() == Some(EmailStatus::Subscribed) {
            r.email += 1;
        }
        if c.effective_sms_status() == Some(SmsStatus::Subscribed) {
            r.sms += 1;
        }
        if !c.push_tokens.is_empty() {
            r.push += 1;
        }
    }
    r
}

pub async fn preview(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    ApiJson(body): ApiJson<PreviewIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let account = &s.account;
    let (catalog, _) = load_catalog(state.store.as_ref(), account.id).await?;
    let rule = match parse_rule(&body.rule, "rule", &catalog, None) {
        Ok(rule) => rule,
        Err(errors) => {
            return Ok(Json(PreviewOut {
                valid: false,
                count: None,
                reachable: None,
                errors,
            }));
        }
    };
    let now = state.clock.now();
    // Every member's external id, then their channels from the store.
    let preview = state
        .evaluator
        .preview(account, &rule, Some(now), usize::MAX)
        .await?;
    let members: BTreeSet<&str> = preview.sample.iter().map(String::as_str).collect();
    let contacts = state.store.all_contacts(account.id).await?;
    let reach = reachable(
        contacts
            .iter()
            .filter(|c| members.contains(c.external_id.as_str())),
    );
    Ok(Json(PreviewOut {
        valid: true,
        count: Some(preview.count),
        reachable: Some(reach),
        errors: Vec::new(),
    }))
}

#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    pub day: String,
    pub total: u64,
    pub added: u64,
    pub removed: u64,
}

fn parse_id(raw: &str) -> Result<SegmentId, ApiError> {
    raw.parse::<SegmentId>()
        .map_err(|_| ApiError::NotFound(format!("no segment with id {raw:?}")))
}

fn zone_of(account: &Account) -> TimeZone {
    TimeZone::get(&account.time_zone).unwrap_or(TimeZone::UTC)
}

/// The segment's size per day over the last 90 days: entries, exits and the total at
/// the end of each day, from the membership change log (the API's daily history).
pub async fn history(
    State(state): State<AppState>,
    session: ApiSession,
    Path(id): Path<String>,
) -> Result<Json<Vec<HistoryPoint>>, ApiError> {
    let query = HashMap::from([("days".to_owned(), "90".to_owned())]);
    let Json(history) =
        crate::api::membership::history(State(state), as_api(&session), Path(id), Query(query))
            .await?;
    Ok(Json(
        history
            .items
            .into_iter()
            .map(|d| HistoryPoint {
                day: d.day,
                total: d.total,
                added: d.added,
                removed: d.removed,
            })
            .collect(),
    ))
}

/// Finds a contact by external id, else by e-mail address (any case).
pub async fn find_contact(
    store: &dyn Store,
    account: &Account,
    key: &str,
) -> Result<Option<Contact>, ApiError> {
    let key = key.trim();
    if key.is_empty() {
        return Ok(None);
    }
    if let Some(c) = store.contact(account.id, key).await? {
        return Ok(Some(c));
    }
    let lower = key.to_lowercase();
    Ok(store.all_contacts(account.id).await?.into_iter().find(|c| {
        c.email
            .as_deref()
            .is_some_and(|e| e.to_lowercase() == lower)
    }))
}

/// One contact with its events, as the reference evaluator reads it.
pub async fn contact_with_events(
    store: &dyn Store,
    account: &Account,
    contact: &Contact,
) -> Result<segmentd_rules::ContactData, ApiError> {
    let mut data = contact_data(contact);
    for e in store.contact_events(account.id, contact.id).await? {
        push_event(&mut data, e.client_id, e.timestamp, e.body);
    }
    Ok(data)
}

/// An explanation node with the node's plain words.
#[derive(Debug, Serialize)]
pub struct WordsNode {
    #[serde(flatten)]
    pub node: ExplainNodeOut,
    pub text: String,
    pub children: Vec<WordsNode>,
}

#[derive(Debug, Serialize)]
pub struct ExplainNodeOut {
    pub kind: &'static str,
    pub matched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching_events: Option<u64>,
}

fn with_words(node: ExplainNode, rule: &Rule, names: &Names) -> WordsNode {
    let children: Vec<&Rule> = match rule {
        Rule::All(cs) | Rule::Any(cs) => cs.iter().collect(),
        Rule::Not(c) => vec![c.as_ref()],
        _ => Vec::new(),
    };
    let text = match rule {
        Rule::All(_) => "all of:".to_owned(),
        Rule::Any(_) => "any of:".to_owned(),
        Rule::Not(_) => "not:".to_owned(),
        leaf => describe(leaf, names),
    };
    WordsNode {
        text,
        children: node
            .children
            .into_iter()
            .zip(children)
            .map(|(n, r)| with_words(n, r, names))
            .collect(),
        node: ExplainNodeOut {
            kind: node.kind,
            matched: node.matched,
            matching_events: node.matching_events,
        },
    }
}

#[derive(Debug, Serialize)]
pub struct ExplainOut {
    pub external_id: String,
    pub email: Option<String>,
    pub matched: bool,
    pub tree: WordsNode,
}

pub async fn names(store: &dyn Store, account: &Account) -> Result<Names, ApiError> {
    Ok(Names {
        fields: store
            .fields(account.id)
            .await?
            .into_iter()
            .map(|f| (f.key, f.label))
            .collect(),
        segments: store
            .segments(account.id, None)
            .await?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect(),
    })
}

/// Why one contact is in or out of a segment: its rule evaluated for that contact alone
/// with the reference evaluator, node by node.
pub async fn explain_contact(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ExplainOut>, ApiError> {
    let id = parse_id(&id)?;
    let account = &s.account;
    let key = query.get("contact").map(String::as_str).unwrap_or("");
    let store = state.store.as_ref();
    let (catalog, segments) = load_catalog(store, account.id).await?;
    let rules = parse_saved_rules(&catalog, &segments)?;
    let Some(rule) = rules.get(&id) else {
        return Err(ApiError::NotFound(format!("no segment with id {id}")));
    };
    let contact = find_contact(store, account, key).await?.ok_or_else(|| {
        ApiError::NotFound(format!("no contact with external id or e-mail \"{key}\""))
    })?;
    let data = contact_with_events(store, account, &contact).await?;
    let clock = RuleClock::new(state.clock.now(), &zone_of(account));
    let node = explain(rule, &data, &clock, &rules);
    let names = names(store, account).await?;
    Ok(Json(ExplainOut {
        external_id: contact.external_id,
        email: contact.email,
        matched: node.matched,
        tree: with_words(node, rule, &names),
    }))
}
