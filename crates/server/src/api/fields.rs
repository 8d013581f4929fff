//! `/api/v1/fields`: custom field definitions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use segmentd_rules::{FieldType, Issue};
use segmentd_store::FieldDef;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::writes;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldIn {
    /// `[a-z][a-z0-9_]{0,63}`; `email` and `phone` are built in.
    pub key: String,
    /// Shown in the panel; defaults to the key.
    pub label: Option<String>,
    /// `text`, `number`, `date` or `boolean`.
    #[serde(rename = "type")]
    pub field_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldOut {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldList {
    pub items: Vec<FieldOut>,
}

impl From<FieldDef> for FieldOut {
    fn from(f: FieldDef) -> Self {
        FieldOut {
            key: f.key,
            label: f.label,
            field_type: f.field_type.as_str().to_owned(),
        }
    }
}

const MAX_LABEL_CHARS: usize = 200;

pub fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some('a'..='z'))
        && key.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

impl TryFrom<FieldIn> for FieldDef {
    type Error = ApiError;

    fn try_from(body: FieldIn) -> Result<Self, ApiError> {
        let mut issues = Vec::new();
        if !is_valid_key(&body.key) {
            issues.push(Issue::new(
                "key",
                "expected a key of 1 to 64 characters: a lowercase letter, then lowercase letters, digits or _",
            ));
        } else if body.key == "email" || body.key == "phone" {
            issues.push(Issue::new(
                "key",
                format!(
                    "\"{}\" is a built-in field and cannot be declared",
                    body.key
                ),
            ));
        }
        let field_type = match body.field_type.as_str() {
            "text" => Some(FieldType::Text),
            "number" => Some(FieldType::Number),
            "date" => Some(FieldType::Date),
            "boolean" => Some(FieldType::Boolean),
            _ => {
                issues.push(Issue::new(
                    "type",
                    "expected one of \"text\", \"number\", \"date\", \"boolean\"",
                ));
                None
            }
        };
        let label = body.label.unwrap_or_else(|| body.key.clone());
        if label.chars().count() > MAX_LABEL_CHARS {
            issues.push(Issue::new(
                "label",
                format!("expected at most {MAX_LABEL_CHARS} characters"),
            ));
        }
        match field_type {
            Some(field_type) if issues.is_empty() => Ok(FieldDef {
                key: body.key,
                label,
                field_type,
            }),
            _ => Err(ApiError::Validation(issues)),
        }
    }
}

/// Declares a custom field.
#[utoipa::path(post, path = "/api/v1/fields", tag = "fields", request_body = FieldIn,
    responses((status = 201, body = FieldOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_field(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    ApiJson(body): ApiJson<FieldIn>,
) -> Result<(StatusCode, Json<FieldOut>), ApiError> {
    let field = FieldDef::try_from(body)?;
    writes::create_field(&state, &account, &field).await?;
    Ok((StatusCode::CREATED, Json(field.into())))
}

/// Lists the account's custom fields.
#[utoipa::path(get, path = "/api/v1/fields", tag = "fields", responses((status = 200, body = FieldList)))]
pub async fn list_fields(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
) -> Result<Json<FieldList>, ApiError> {
    let items = state.store.fields(account.id).await?;
    Ok(Json(FieldList {
        items: items.into_iter().map(FieldOut::from).collect(),
    }))
}

/// Deletes a custom field and every contact's value of it.
#[utoipa::path(delete, path = "/api/v1/fields/{key}", tag = "fields",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_field(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    writes::delete_field(&state, &account, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
