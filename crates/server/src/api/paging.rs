//! Cursor paging of `spec/api.md`: `?limit=` (default 100, max 10,000) and `?cursor=`.

use std::collections::HashMap;

use jiff::Timestamp;
use segmentd_rules::data::parse_timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Reads `limit` and `cursor`. The cursor is the hex of the last external id returned:
/// opaque to clients and safe in a URL.
pub fn paging(query: &HashMap<String, String>) -> Result<(usize, Option<String>), ApiError> {
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(
                    "limit",
                    format!("expected a whole number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let after = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                // External ids never hold NUL: a cursor that decodes to one is not ours.
                .filter(|s| !s.contains('\0'))
                .ok_or_else(|| ApiError::validation("cursor", "not a cursor this API returned"))?,
        ),
    };
    Ok((limit, after))
}

pub fn cursor_for(external_id: &str) -> String {
    hex::encode(external_id.as_bytes())
}

/// Reads `as_of` (RFC 3339 with an offset), if given.
pub fn as_of(query: &HashMap<String, String>) -> Result<Option<Timestamp>, ApiError> {
    match query.get("as_of").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_timestamp(s).map(Some).ok_or_else(|| {
            ApiError::validation(
                "as_of",
                "expected an RFC 3339 timestamp with an offset, e.g. 2026-01-31T12:00:00Z",
            )
        }),
    }
}

/// Turns `limit + 1` fetched items into a page and its next cursor.
pub fn into_page<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> &str) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| cursor_for(key(i)))
    } else {
        None
    };
    Page { items, next_cursor }
}
