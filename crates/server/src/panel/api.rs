//! `/panel/api/…`: the JSON the panel's pages call, authenticated by the session (and
//! its CSRF token for writes) instead of an API key. Writes go through the same
//! functions as `/api/v1` (`crate::writes`, `save_segment`), reads through the index.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use segmentd_engine::{Counted, ReachCounts};
use segmentd_rules::explain::ExplainNode;
use segmentd_rules::{Issue, Rule, SegmentId, parse_rule};
use segmentd_store::{Account, Contact, FieldDef, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::fields::{FieldIn, FieldList, FieldOut};
use crate::api::membership::{daily_history, existing};
use crate::api::segments::{SegmentIn, SegmentList, save_segment, segment_list};
use crate::catalog::load_catalog;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::index::ValuesOf;
use crate::panel::plain::{self, Problem};
use crate::panel::session::ApiSession;
use crate::panel::words::{Names, describe};
use crate::state::AppState;
use crate::writes;

pub async fn list_segments(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<SegmentList>, ApiError> {
    let search = query
        .get("search")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    Ok(Json(segment_list(&state, &s.account, search).await?))
}

pub async fn create_segment(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    ApiJson(body): ApiJson<SegmentIn>,
) -> Response {
    let name = body.name.clone();
    match save_segment(&state, &s.account, None, body).await {
        Ok(saved) => (StatusCode::CREATED, Json(saved)).into_response(),
        Err(e) => refused(&state, &s.account, e, &name).await,
    }
}

pub async fn update_segment(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SegmentIn>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let name = body.name.clone();
    match save_segment(&state, &s.account, Some(id), body).await {
        Ok(saved) => Json(saved).into_response(),
        Err(e) => refused(&state, &s.account, e, &name).await,
    }
}

/// The account's segment names, when a problem needs them.
async fn segment_names(
    state: &AppState,
    account: &Account,
    issues: &[Issue],
) -> HashMap<SegmentId, String> {
    if !plain::needs_names(issues) {
        return HashMap::new();
    }
    match state.store.segments(account.id, None).await {
        Ok(all) => all.into_iter().map(|s| (s.id, s.name)).collect(),
        Err(_) => HashMap::new(),
    }
}

/// A refused save in plain words: the draft's problems as sentences beside their
/// conditions, a taken name with a link to the segment that has it.
async fn refused(state: &AppState, account: &Account, e: ApiError, name: &str) -> Response {
    match e {
        ApiError::Validation(issues) => {
            let names = segment_names(state, account, &issues).await;
            plain::refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                plain::problems(&issues, &names),
            )
        }
        ApiError::Conflict {
            path: Some(path), ..
        } if path == "name" => {
            let wanted = name.trim().to_lowercase();
            let existing = state
                .store
                .segments(account.id, Some(name.trim()))
                .await
                .ok()
                .and_then(|found| {
                    found
                        .into_iter()
                        .find(|seg| seg.name.to_lowercase() == wanted)
                })
                .map(|seg| plain::SegmentLink {
                    id: seg.id,
                    name: seg.name,
                });
            plain::name_taken(existing, name.trim())
        }
        other => plain::other(other),
    }
}

pub async fn list_fields(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
) -> Result<Json<FieldList>, ApiError> {
    let items = state.store.fields(s.account.id).await?;
    Ok(Json(FieldList {
        items: items.into_iter().map(FieldOut::from).collect(),
    }))
}

pub async fn create_field(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    ApiJson(body): ApiJson<FieldIn>,
) -> Result<(StatusCode, Json<FieldOut>), ApiError> {
    let field = FieldDef::try_from(body)?;
    writes::create_field(&state, &s.account, &field).await?;
    Ok((StatusCode::CREATED, Json(field.into())))
}

pub async fn delete_field(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    writes::delete_field(&state, &s.account, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    pub rule: Value,
    /// The saved segment being edited, if any: a draft that refers back to it is a cycle.
    #[serde(default)]
    pub segment: Option<SegmentId>,
}

/// A draft's live count, with `total`, the account's live contacts (for the share). An
/// invalid draft is a normal answer while editing (200 with `valid: false` and the
/// problems by path, each in a sentence), not an error: the builder asks on every change.
#[derive(Debug, Serialize)]
pub struct PreviewOut {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable: Option<ReachCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Problem>,
}

pub async fn preview(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    ApiJson(body): ApiJson<PreviewIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let account = &s.account;
    let catalog = state.catalogs.get(state.store.as_ref(), account.id).await?;
    let rule = match parse_rule(&body.rule, "rule", &catalog, body.segment) {
        Ok(rule) => rule,
        Err(issues) => {
            let names = segment_names(&state, account, &issues).await;
            return Ok(Json(PreviewOut {
                valid: false,
                count: None,
                reachable: None,
                total: None,
                errors: plain::problems(&issues, &names),
            }));
        }
    };
    let (count, reach) = state.index.count_with_reach(account, &rule).await?;
    let total = state.index.contact_count(account).await?;
    Ok(Json(PreviewOut {
        valid: true,
        count: Some(count),
        reachable: Some(reach),
        total: Some(total),
        errors: Vec::new(),
    }))
}

#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    pub day: String,
    pub total: u64,
    pub added: u64,
    pub removed: u64,
    /// Computed from the data (a day before the segment's change log began).
    pub computed: bool,
}

fn parse_id(raw: &str) -> Result<SegmentId, ApiError> {
    raw.parse::<SegmentId>()
        .map_err(|_| ApiError::NotFound(format!("no segment with id {raw:?}")))
}

/// The segment's size per day over the last 90 days: entries, exits and the total at
/// the end of each day, from the membership change log and, before it began, computed
/// from the data (the API's daily history).
pub async fn history(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Path(id): Path<String>,
) -> Result<Json<Vec<HistoryPoint>>, ApiError> {
    let id = existing(&state, s.account.id, &id).await?;
    let history = daily_history(&state, &s.account, id, 90).await?;
    Ok(Json(
        history
            .items
            .into_iter()
            .map(|d| HistoryPoint {
                day: d.day,
                total: d.total,
                added: d.added,
                removed: d.removed,
                computed: d.computed,
            })
            .collect(),
    ))
}

/// Finds a contact by external id, else by e-mail address (any case, through the
/// index).
pub async fn find_contact(
    state: &AppState,
    account: &Account,
    key: &str,
) -> Result<Option<Contact>, ApiError> {
    let key = key.trim();
    if key.is_empty() {
        return Ok(None);
    }
    if let Some(c) = state.store.contact(account.id, key).await? {
        return Ok(Some(c));
    }
    let ids = state.index.find_by_email(account, key).await?;
    let first = ids.into_iter().min().into_iter().collect::<Vec<_>>();
    Ok(state
        .store
        .contacts_by_ids(account.id, &first)
        .await?
        .into_iter()
        .next())
}

#[derive(Debug, Serialize)]
pub struct ValuesOut {
    pub values: Vec<Counted>,
}

/// How many suggestions a value input gets.
const SUGGESTIONS: usize = 20;

/// The most frequent values of a text field (`?field=KEY`), of a custom event's property
/// (`?event=NAME&property=PATH`), or the visited URL prefixes (`?url=`), for the
/// builder's value inputs; `&prefix=` keeps those starting with what is typed (URLs:
/// containing it). From the index's dictionaries and tallies, never from the contacts.
pub async fn values(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ValuesOut>, ApiError> {
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let of = match (
        query.get("field"),
        query.get("event"),
        query.get("property"),
        query.get("url"),
    ) {
        (Some(field), None, None, None) => ValuesOf::Field(field.clone(), prefix),
        (None, Some(event), Some(path), None) => ValuesOf::Property {
            event: event.clone(),
            path: path.clone(),
            prefix,
        },
        (None, None, None, Some(text)) => ValuesOf::Url(text.clone()),
        _ => {
            return Err(ApiError::validation(
                "query",
                "expected ?field=KEY, ?event=NAME&property=PATH or ?url=TEXT",
            ));
        }
    };
    let values = state
        .index
        .suggestions(&s.account, &of, SUGGESTIONS)
        .await?;
    Ok(Json(ValuesOut { values }))
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

/// Why one contact is in or out of a segment: its rule decided for that contact alone by
/// the index, node by node, with each node in plain words.
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
    let rule = saved_rule(store, account, id).await?;
    let contact = find_contact(&state, account, key).await?.ok_or_else(|| {
        ApiError::NotFound(format!("no contact with external id or e-mail \"{key}\""))
    })?;
    let node = state
        .index
        .explain(account, &rule, contact.id, None)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no contact \"{key}\"")))?;
    let names = names(store, account).await?;
    Ok(Json(ExplainOut {
        external_id: contact.external_id,
        email: contact.email,
        matched: node.matched,
        tree: with_words(node, &rule, &names),
    }))
}

/// A saved segment's rule, parsed against the account's catalog.
pub async fn saved_rule(
    store: &dyn Store,
    account: &Account,
    id: SegmentId,
) -> Result<Rule, ApiError> {
    let (catalog, segments) = load_catalog(store, account.id).await?;
    let saved = segments
        .iter()
        .find(|seg| seg.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no segment with id {id}")))?;
    parse_rule(&saved.rule, "rule", &catalog, Some(id)).map_err(|issues| {
        ApiError::internal(format!("segment {id} has an invalid rule: {issues:?}"))
    })
}
