//! The panel's contact import: a page (`/panel/contacts/import`) whose script
//! (`assets/import.js`) uploads the file, maps its columns, previews the first rows and
//! starts the import, then polls its progress; the JSON calls under
//! `/panel/api/imports` do what `/api/v1/imports` does (`crate::imports`).

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::imports::{self, ImportOut, MappingIn, PreviewOut};
use crate::panel::pages::{data_json, layout};
use crate::panel::session::{ApiSession, PageSession};
use crate::state::AppState;

pub const IMPORT_JS: &str = include_str!("assets/import.js");

pub async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        IMPORT_JS,
    )
}

/// The import page: four steps, each shown when the one before is done.
pub async fn page(State(state): State<AppState>, PageSession(s): PageSession) -> Response {
    let fields = match state.store.fields(s.account.id).await {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let fields = json!(
        fields
            .iter()
            .map(|f| json!({"key": f.key, "label": f.label, "type": f.field_type.as_str()}))
            .collect::<Vec<_>>()
    );
    let body = html! {
        script src="/panel/assets/import.js" defer {}
        (data_json("import-fields", &fields))
        h1 { "Import contacts" }
        p.muted {
            "A CSV file whose first row names the columns, one contact a row. A contact already "
            "here (same external id) is updated; an empty cell leaves its value as it is."
        }
        section.card id="import-upload" {
            h2 { "1. Choose a file" }
            form id="import-file-form" {
                label for="import-file" { "CSV file" }
                input id="import-file" type="file" accept=".csv,text/csv" required;
                button.primary type="submit" id="import-upload-button" { "Upload" }
            }
            p id="import-upload-status" role="status" {}
        }
        section.card id="import-mapping" hidden {
            h2 { "2. Match columns to fields" }
            p.muted { "One column must hold the external id. Choose “New field” to create a field with a type." }
            div.table-wrap {
                table id="import-columns" {
                    thead { tr { th scope="col" { "Column" } th scope="col" { "Goes to" } th scope="col" { "New field" } } }
                    tbody {}
                }
            }
            div.error id="import-mapping-errors" role="alert" {}
            button type="button" id="import-preview-button" { "Preview" }
        }
        section.card id="import-preview" hidden {
            h2 { "3. Check the first rows" }
            p id="import-preview-summary" {}
            div.table-wrap { table id="import-rows" {} }
            button.primary type="button" id="import-start" { "Start import" }
        }
        section.card id="import-run" hidden {
            h2 { "4. Import" }
            progress id="import-progress" max="1" value="0" {}
            p id="import-progress-text" role="status" aria-live="polite" {}
            p { a id="import-rejected" hidden href="#" download { "Download the rejected rows (CSV)" } }
        }
    };
    layout(&s, "import", "Import contacts", "contacts", body).into_response()
}

pub async fn upload(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Result<(StatusCode, Json<ImportOut>), ApiError> {
    let name = query.get("file_name").map_or("upload.csv", String::as_str);
    let import = imports::upload(&state, &s.account, name, body).await?;
    Ok((StatusCode::CREATED, Json(import.into())))
}

pub async fn status(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Path(id): Path<String>,
) -> Result<Json<ImportOut>, ApiError> {
    Ok(Json(imports::get(&state, &s.account, &id).await?.into()))
}

pub async fn preview(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Path(id): Path<String>,
    ApiJson(mapping): ApiJson<MappingIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let import = imports::get(&state, &s.account, &id).await?;
    Ok(Json(
        imports::preview(&state, &s.account, &import, &mapping).await?,
    ))
}

pub async fn start(
    State(state): State<AppState>,
    ApiSession(s): ApiSession,
    Path(id): Path<String>,
    ApiJson(mapping): ApiJson<MappingIn>,
) -> Result<(StatusCode, Json<ImportOut>), ApiError> {
    let import = imports::get(&state, &s.account, &id).await?;
    let started = imports::start(&state, &s.account, &import, &mapping).await?;
    Ok((StatusCode::ACCEPTED, Json(started.into())))
}

/// The rejected rows, downloaded from the page (a link: the page session, no CSRF).
pub async fn rejected(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let import = imports::get(&state, &s.account, &id).await?;
        imports::rejected_csv(&state, &import).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
