//! `/api/v1/segments`: saved segments, their counts and members, and previews.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use segmentd_rules::{Issue, Rule, SegmentId, parse_rule};
use segmentd_store::{Account, Segment, SegmentDraft};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::paging::{Page, as_of, into_page, paging};
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::writes;

const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const PREVIEW_SAMPLE: usize = 20;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentIn {
    /// Unique in the account, compared case-insensitively.
    pub name: String,
    pub description: Option<String>,
    /// A rule of `spec/rules.md`.
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentOut {
    pub id: SegmentId,
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    pub count: u64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentList {
    pub items: Vec<SegmentOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountOut {
    pub count: u64,
    pub as_of: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    pub external_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    /// RFC 3339; defaults to now.
    pub as_of: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    pub count: u64,
    pub sample: Vec<String>,
    pub as_of: String,
}

fn segment_out(s: Segment, count: u64) -> SegmentOut {
    SegmentOut {
        id: s.id,
        name: s.name,
        description: s.description,
        rule: s.rule,
        count,
        created_at: s.created_at.to_string(),
        updated_at: s.updated_at.to_string(),
    }
}

fn parse_id(raw: &str) -> Result<SegmentId, ApiError> {
    raw.parse::<SegmentId>()
        .map_err(|_| ApiError::NotFound(format!("no segment with id {raw:?}")))
}

fn not_found(id: SegmentId) -> ApiError {
    ApiError::NotFound(format!("no segment with id {id}"))
}

/// Checks a create/update body against the account and turns it into a draft (the API
/// and the panel both save through this).
pub async fn parse_segment(
    state: &AppState,
    account: &Account,
    body: SegmentIn,
    this: Option<SegmentId>,
) -> Result<(SegmentDraft, Rule), ApiError> {
    let catalog = state.catalogs.get(state.store.as_ref(), account.id).await?;
    let mut issues = Vec::new();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        issues.push(Issue::new(
            "name",
            format!("expected a name of 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    let description = body.description.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        issues.push(Issue::new(
            "description",
            format!("expected at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    let rule = match parse_rule(&body.rule, "rule", &catalog, this) {
        Ok(rule) => Some(rule),
        Err(mut found) => {
            issues.append(&mut found);
            None
        }
    };
    match rule {
        Some(rule) if issues.is_empty() => Ok((
            SegmentDraft {
                name,
                description,
                rule: rule.to_json(),
            },
            rule,
        )),
        _ => Err(ApiError::Validation(issues)),
    }
}

async fn count_one(state: &AppState, account: &Account, id: SegmentId) -> Result<u64, ApiError> {
    let counts = state.index.counts(account, &[id], None).await?;
    Ok(counts.first().copied().unwrap_or(0))
}

/// Creates (`id` `None`) or replaces a segment from a request body: the one save that
/// the API and the panel both call.
pub async fn save_segment(
    state: &AppState,
    account: &Account,
    id: Option<SegmentId>,
    body: SegmentIn,
) -> Result<SegmentOut, ApiError> {
    if let Some(id) = id
        && state.store.segment(account.id, id).await?.is_none()
    {
        return Err(not_found(id));
    }
    let (draft, _) = parse_segment(state, account, body, id).await?;
    let segment = match id {
        None => writes::create_segment(state, account, &draft).await?,
        Some(id) => writes::update_segment(state, account, id, &draft).await?,
    };
    let count = count_one(state, account, segment.id).await?;
    Ok(segment_out(segment, count))
}

/// The account's segments with their counts; `search` keeps names containing it.
pub async fn segment_list(
    state: &AppState,
    account: &Account,
    search: Option<&str>,
) -> Result<SegmentList, ApiError> {
    let segments = state.store.segments(account.id, search).await?;
    let ids: Vec<SegmentId> = segments.iter().map(|s| s.id).collect();
    let counts = state.index.counts(account, &ids, None).await?;
    Ok(SegmentList {
        items: segments
            .into_iter()
            .zip(counts)
            .map(|(s, n)| segment_out(s, n))
            .collect(),
    })
}

/// Saves a new segment.
#[utoipa::path(post, path = "/api/v1/segments", tag = "segments", request_body = SegmentIn,
    responses((status = 201, body = SegmentOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_segment(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiJson(body): ApiJson<SegmentIn>,
) -> Result<(StatusCode, Json<SegmentOut>), ApiError> {
    let saved = save_segment(&state, &account, None, body).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Replaces a segment's name, description and rule.
#[utoipa::path(put, path = "/api/v1/segments/{id}", tag = "segments", request_body = SegmentIn,
    responses((status = 200, body = SegmentOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_segment(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SegmentIn>,
) -> Result<Json<SegmentOut>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(save_segment(&state, &account, Some(id), body).await?))
}

/// Lists segments with their counts; `search` keeps names containing it (any case).
#[utoipa::path(get, path = "/api/v1/segments", tag = "segments",
    params(("search" = Option<String>, Query, description = "case-insensitive substring of the name")),
    responses((status = 200, body = SegmentList)))]
pub async fn list_segments(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<SegmentList>, ApiError> {
    let search = query
        .get("search")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    Ok(Json(segment_list(&state, &account, search).await?))
}

/// One segment with its rule and count.
#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments",
    responses((status = 200, body = SegmentOut), (status = 404, body = ErrorBody)))]
pub async fn get_segment(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<SegmentOut>, ApiError> {
    let id = parse_id(&id)?;
    let segment = state
        .store
        .segment(account.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let count = count_one(&state, &account, id).await?;
    Ok(Json(segment_out(segment, count)))
}

/// Deletes a segment that no other segment refers to.
#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_segment(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    writes::delete_segment(&state, &account, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The number of members, now or at `as_of`.
#[utoipa::path(get, path = "/api/v1/segments/{id}/count", tag = "segments",
    params(("as_of" = Option<String>, Query, format = DateTime, description = "RFC 3339 evaluation time")),
    responses((status = 200, body = CountOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn count_segment(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<CountOut>, ApiError> {
    let id = parse_id(&id)?;
    let as_of = as_of(&query)?;
    // The index holds every saved segment of the account (each segment write applies to
    // it before answering), so it also answers whether the segment exists.
    let saved = state
        .index
        .saved_count(&account, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let Some(at) = as_of else {
        // The maintained membership that member pages and the change feed read; its
        // `as_of` is the instant it is exact as of (the last write or refresh).
        return Ok(Json(CountOut {
            count: saved.count,
            as_of: saved.as_of.to_string(),
        }));
    };
    let counts = state.index.counts(&account, &[id], Some(at)).await?;
    Ok(Json(CountOut {
        count: counts.first().copied().unwrap_or(0),
        as_of: at.to_string(),
    }))
}

/// The members, sorted by external id, a page at a time.
#[utoipa::path(get, path = "/api/v1/segments/{id}/members", tag = "segments",
    params(("as_of" = Option<String>, Query, format = DateTime, description = "RFC 3339 evaluation time"),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "1 to 10,000; default 100"),
           ("cursor" = Option<String>, Query, pattern = "^[0-9a-f]*$", max_length = 1600, description = "next_cursor of the previous page")),
    responses((status = 200, body = Page<MemberOut>), (status = 404, body = ErrorBody)))]
pub async fn segment_members(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    let id = parse_id(&id)?;
    let wants_csv = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        return crate::export::members_csv(&state, &account, id).await;
    }
    let as_of = as_of(&query)?;
    let (limit, after) = paging(&query)?;
    if !state.index.has_segment(&account, id).await? {
        return Err(not_found(id));
    }
    let members = state
        .index
        .members(&account, id, as_of, after.as_deref(), limit + 1)
        .await?;
    let page = into_page(members, limit, |c| &c.external_id);
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|c| MemberOut {
                external_id: c.external_id,
                email: c.email,
                phone: c.phone,
            })
            .collect(),
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// The segment's current members as a CSV file, streamed whatever its size: external
/// id, e-mail, phone, channel statuses and every custom field (also `GET …/members`
/// with `Accept: text/csv`).
#[utoipa::path(get, path = "/api/v1/segments/{id}/members.csv", tag = "segments",
    params(("id" = i64, Path, description = "the segment's id")),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
pub async fn segment_members_csv(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let id = parse_id(&id)?;
    crate::export::members_csv(&state, &account, id).await
}

/// Evaluates a rule that is not saved: its count and a sample of members.
#[utoipa::path(post, path = "/api/v1/segments/preview", tag = "segments", request_body = PreviewIn,
    responses((status = 200, body = PreviewOut), (status = 422, body = ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiJson(body): ApiJson<PreviewIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let catalog = state.catalogs.get(state.store.as_ref(), account.id).await?;
    let mut issues = Vec::new();
    let at = match body.as_of.as_deref() {
        None => Some(state.clock.now()),
        Some(s) => segmentd_rules::data::parse_timestamp(s).or_else(|| {
            issues.push(Issue::new(
                "as_of",
                "expected an RFC 3339 timestamp with an offset, e.g. 2026-01-31T12:00:00Z",
            ));
            None
        }),
    };
    let rule: Option<Rule> = parse_rule(&body.rule, "rule", &catalog, None)
        .map_err(|mut found| issues.append(&mut found))
        .ok();
    let (Some(rule), Some(at), true) = (rule, at, issues.is_empty()) else {
        return Err(ApiError::Validation(issues));
    };
    let preview = state
        .index
        .preview(&account, &rule, Some(at), PREVIEW_SAMPLE)
        .await?;
    Ok(Json(PreviewOut {
        count: preview.count,
        sample: preview.sample,
        as_of: at.to_string(),
    }))
}
