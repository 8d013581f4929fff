//! Beyond `spec/api.md`: CSV import of contacts (`crate::imports` does the work).
//!
//! - `POST /imports?file_name=`: the body is the CSV file (any size up to 4 GiB, streamed
//!   to disk) → `201` with the import, `uploaded`, and its columns.
//! - `POST /imports/{id}/preview`: `{"columns"?, "new_fields"?}` → the mapping as
//!   resolved and the first 20 rows with their problems by column.
//! - `POST /imports/{id}/start`: the same body → `202`; the import runs in the
//!   background, a batch of 5,000 valid rows per transaction.
//! - `GET /imports/{id}`: status, bytes read, rows imported and rejected, progress.
//! - `GET /imports/{id}/rejected.csv`: the rejected rows, with a `reason` column.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::imports::{self, ImportOut, MappingIn, PreviewOut};
use crate::state::AppState;

/// Uploads a CSV file to import (its first row names the columns); nothing is stored
/// until the import is started.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports",
    params(("file_name" = Option<String>, Query, description = "the file's name, shown in the panel")),
    request_body(content = String, content_type = "text/csv", description = "the CSV file, header row first"),
    responses((status = 201, body = ImportOut), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Result<(StatusCode, Json<ImportOut>), ApiError> {
    let name = query.get("file_name").map_or("upload.csv", String::as_str);
    let import = imports::upload(&state, &account, name, body).await?;
    Ok((StatusCode::CREATED, Json(import.into())))
}

/// Where an import stands: status, progress, rows imported and rejected.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports",
    responses((status = 200, body = ImportOut), (status = 404, body = ErrorBody)))]
pub async fn get_import(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ImportOut>, ApiError> {
    Ok(Json(imports::get(&state, &account, &id).await?.into()))
}

/// The first rows of an uploaded file as the mapping would store them.
#[utoipa::path(post, path = "/api/v1/imports/{id}/preview", tag = "imports",
    request_body = MappingIn,
    responses((status = 200, body = PreviewOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
    ApiJson(mapping): ApiJson<MappingIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let import = imports::get(&state, &account, &id).await?;
    Ok(Json(
        imports::preview(&state, &account, &import, &mapping).await?,
    ))
}

/// Declares the new fields and starts the import in the background; a mapping that
/// cannot work is refused whole (nothing declared, nothing stored).
#[utoipa::path(post, path = "/api/v1/imports/{id}/start", tag = "imports",
    request_body = MappingIn,
    responses((status = 202, body = ImportOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
    ApiJson(mapping): ApiJson<MappingIn>,
) -> Result<(StatusCode, Json<ImportOut>), ApiError> {
    let import = imports::get(&state, &account, &id).await?;
    let started = imports::start(&state, &account, &import, &mapping).await?;
    Ok((StatusCode::ACCEPTED, Json(started.into())))
}

/// The rows an import rejected: the file's columns and a `reason` naming row and column.
#[utoipa::path(get, path = "/api/v1/imports/{id}/rejected.csv", tag = "imports",
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
pub async fn rejected(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let import = imports::get(&state, &account, &id).await?;
    imports::rejected_csv(&state, &import).await
}
