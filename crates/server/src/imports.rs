//! CSV import of contacts: shared by `/api/v1/imports` and the panel's import page.
//!
//! 1. **Upload** ([`upload`]): the body is streamed to a file under the data directory
//!    (`imports/ID.csv`), never held in memory; its header row is read back and the
//!    import recorded in the store (`uploaded`).
//! 2. **Mapping** ([`resolve`]): each column goes to a contact attribute (`external_id`,
//!    `email`, `phone`, `email_status`, `sms_status`), to a custom field
//!    (`fields.KEY`), or nowhere. Columns not named are matched by their header
//!    (an attribute's name or a field's key: the header of the members export), so an
//!    export imports back as it is. Fields that do not exist yet are declared with a
//!    type in `new_fields`. A mapping that cannot work (no `external_id` column, a
//!    column named twice, a field without a type) is refused whole: nothing is created
//!    and nothing stored.
//! 3. **Preview** ([`preview`]): the first rows as they would be stored, each with its
//!    problems named by column.
//! 4. **Run** ([`start`]): new fields are declared, then a blocking thread reads the
//!    file a record at a time and hands batches of [`BATCH`] valid rows to the one write
//!    path (`writes::upsert_contacts`: store commit, index, change log), each batch one
//!    transaction. A row that fails validation is written to `imports/ID-rejected.csv`
//!    (its cells and a `reason` column) and the rest of its batch goes in. A batch the
//!    store refuses stops the import (`failed`); the batches before it stay. Progress
//!    (bytes read, rows stored and rejected) is written to the store after each batch.
//!
//! Semantics of a cell: an empty cell leaves the contact's value as it is (it never
//! clears); numbers are read with `.` as the decimal point; booleans are
//! `true`/`false`, `yes`/`no` or `1`/`0` (any case); dates `YYYY-MM-DD`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use axum::body::{Body, Bytes};
use segmentd_rules::{FieldType, Issue};
use segmentd_store::{
    Account, ContactUpsert, FieldDef, Import, ImportId, ImportProgress, ImportStatus, NewImport,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// Valid rows stored per transaction.
pub const BATCH: usize = 5_000;
/// The largest file taken (a million rows of a dozen columns is about 100 MB).
pub const MAX_UPLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Columns a file may have.
pub const MAX_COLUMNS: usize = 500;
/// Characters of a column name.
pub const MAX_COLUMN_CHARS: usize = 200;
/// Rows shown by a preview.
pub const PREVIEW_ROWS: usize = 20;

/// Where uploads and rejected rows are kept.
pub struct ImportFiles {
    dir: PathBuf,
    /// When no data directory was given (tests), a directory removed with the state.
    _temp: Option<tempfile::TempDir>,
}

impl ImportFiles {
    /// `dir`, created if needed; `None` → a fresh temporary directory.
    pub fn new(dir: Option<PathBuf>) -> std::io::Result<Self> {
        match dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                Ok(ImportFiles { dir, _temp: None })
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("segmentd-imports")
                    .tempdir()?;
                Ok(ImportFiles {
                    dir: temp.path().to_owned(),
                    _temp: Some(temp),
                })
            }
        }
    }

    fn upload(&self, id: ImportId) -> PathBuf {
        self.dir.join(format!("{id}.csv"))
    }

    pub fn rejected(&self, id: ImportId) -> PathBuf {
        self.dir.join(format!("{id}-rejected.csv"))
    }
}

// -------------------------------------------------------------------------------------
// Wire types

/// How the columns of a file become contacts.
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingIn {
    /// Column name → `external_id`, `email`, `phone`, `email_status`, `sms_status`,
    /// `fields.KEY`, or `null` to skip it. Columns not named here are matched by their
    /// header (an attribute's name or a field's key), else skipped.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub columns: BTreeMap<String, Option<String>>,
    /// Custom fields to declare before the import starts.
    #[serde(default)]
    pub new_fields: Vec<NewFieldIn>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFieldIn {
    pub key: String,
    pub label: Option<String>,
    /// `text`, `number`, `date` or `boolean`.
    #[serde(rename = "type")]
    pub field_type: String,
}

/// An import: where it stands and what it has done.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    pub id: ImportId,
    /// `uploaded`, `running`, `done` or `failed`.
    pub status: String,
    pub file_name: String,
    pub columns: Vec<String>,
    pub file_bytes: u64,
    pub bytes_read: u64,
    /// Share of the file read, 0 to 1.
    pub progress: f64,
    pub rows_imported: u64,
    pub rows_rejected: u64,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// Column → target, once started.
    #[schema(value_type = Option<Object>)]
    pub mapping: Option<serde_json::Value>,
}

impl From<Import> for ImportOut {
    fn from(i: Import) -> Self {
        let progress = match i.status {
            ImportStatus::Done => 1.0,
            _ if i.file_bytes == 0 => 0.0,
            _ => (i.progress.bytes_read as f64 / i.file_bytes as f64).min(1.0),
        };
        ImportOut {
            id: i.id,
            status: i.status.as_str().to_owned(),
            file_name: i.file_name,
            columns: i.columns,
            file_bytes: i.file_bytes,
            bytes_read: i.progress.bytes_read,
            progress,
            rows_imported: i.progress.rows_imported,
            rows_rejected: i.progress.rows_rejected,
            error: i.error,
            created_at: i.created_at.to_string(),
            finished_at: i.finished_at.map(|t| t.to_string()),
            mapping: i.mapping,
        }
    }
}

/// A preview: the mapping as resolved and the first rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    /// Column → target (`null`: skipped), for every column of the file.
    #[schema(value_type = Object)]
    pub mapping: BTreeMap<String, Option<String>>,
    pub rows: Vec<PreviewRow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewRow {
    /// The row's number in the file (the header is row 1).
    pub row: u64,
    pub cells: Vec<String>,
    /// Empty when the row would be stored.
    pub errors: Vec<CellError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CellError {
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub message: String,
}

// -------------------------------------------------------------------------------------
// Mapping

#[derive(Debug, Clone, PartialEq)]
enum Target {
    ExternalId,
    Email,
    Phone,
    EmailStatus,
    SmsStatus,
    Field(String, FieldType),
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::ExternalId => "external_id".into(),
            Target::Email => "email".into(),
            Target::Phone => "phone".into(),
            Target::EmailStatus => "email_status".into(),
            Target::SmsStatus => "sms_status".into(),
            Target::Field(key, _) => format!("fields.{key}"),
        }
    }

    /// The path `api::contacts::parse_contact` reports a problem of this target under.
    fn issue_path(&self) -> String {
        match self {
            Target::EmailStatus => "channels.email".into(),
            Target::SmsStatus => "channels.sms".into(),
            other => other.name(),
        }
    }
}

/// A mapping checked against the file and the account's fields.
#[derive(Debug, Clone)]
pub struct Resolved {
    header: Vec<String>,
    targets: Vec<Option<Target>>,
    new_fields: Vec<FieldDef>,
}

impl Resolved {
    /// Column → target name, for every column (the JSON stored with the import).
    pub fn describe(&self) -> BTreeMap<String, Option<String>> {
        self.header
            .iter()
            .zip(&self.targets)
            .map(|(c, t)| (c.clone(), t.as_ref().map(Target::name)))
            .collect()
    }

    fn field_types(&self) -> HashMap<String, FieldType> {
        self.targets
            .iter()
            .filter_map(|t| match t {
                Some(Target::Field(k, ty)) => Some((k.clone(), *ty)),
                _ => None,
            })
            .collect()
    }
}

fn parse_type(s: &str) -> Option<FieldType> {
    Some(match s {
        "text" => FieldType::Text,
        "number" => FieldType::Number,
        "date" => FieldType::Date,
        "boolean" => FieldType::Boolean,
        _ => return None,
    })
}

fn attribute(name: &str) -> Option<Target> {
    Some(match name {
        "external_id" => Target::ExternalId,
        "email" => Target::Email,
        "phone" => Target::Phone,
        "email_status" => Target::EmailStatus,
        "sms_status" => Target::SmsStatus,
        _ => return None,
    })
}

/// Checks `mapping` against the file's `header` and the account's `existing` fields;
/// every problem is reported with its path (`columns["Age"]`, `new_fields[0].type`).
pub fn resolve(
    header: &[String],
    existing: &[FieldDef],
    mapping: &MappingIn,
) -> Result<Resolved, ApiError> {
    let mut issues = Vec::new();
    let existing: HashMap<&str, FieldType> = existing
        .iter()
        .map(|f| (f.key.as_str(), f.field_type))
        .collect();
    let mut new_fields = Vec::new();
    let mut declared: HashMap<String, FieldType> = HashMap::new();
    for (i, f) in mapping.new_fields.iter().enumerate() {
        let path = format!("new_fields[{i}]");
        let Some(ty) = parse_type(&f.field_type) else {
            issues.push(Issue::new(
                format!("{path}.type"),
                "expected \"text\", \"number\", \"date\" or \"boolean\"",
            ));
            continue;
        };
        if !crate::api::fields::is_valid_key(&f.key) || f.key == "email" || f.key == "phone" {
            issues.push(Issue::new(
                format!("{path}.key"),
                "expected a key of 1 to 64 characters: a lowercase letter, then lowercase letters, digits or _ (not email or phone)",
            ));
            continue;
        }
        if let Some(&had) = existing.get(f.key.as_str()) {
            if had != ty {
                issues.push(Issue::new(
                    format!("{path}.type"),
                    format!("field \"{}\" already exists as a {had} field", f.key),
                ));
            }
            continue;
        }
        if declared.insert(f.key.clone(), ty).is_some() {
            issues.push(Issue::new(
                format!("{path}.key"),
                format!("field \"{}\" is declared twice", f.key),
            ));
            continue;
        }
        let label = f.label.clone().filter(|l| !l.trim().is_empty());
        new_fields.push(FieldDef {
            key: f.key.clone(),
            label: label.unwrap_or_else(|| f.key.clone()),
            field_type: ty,
        });
    }
    let field = |key: &str| {
        existing
            .get(key)
            .or_else(|| declared.get(key))
            .map(|&ty| Target::Field(key.to_owned(), ty))
    };
    for name in mapping.columns.keys() {
        if !header.contains(name) {
            issues.push(Issue::new(
                format!("columns[{name:?}]"),
                "no column of the file has this name",
            ));
        }
    }
    let mut targets = Vec::with_capacity(header.len());
    for column in header {
        let target = match mapping.columns.get(column) {
            Some(None) => None,
            Some(Some(to)) => {
                let t = match to.strip_prefix("fields.") {
                    Some(key) => field(key),
                    None => attribute(to),
                };
                if t.is_none() {
                    let problem = match to.strip_prefix("fields.") {
                        Some(key) => format!(
                            "unknown field \"{key}\": declare it in new_fields with a type"
                        ),
                        None => "expected external_id, email, phone, email_status, sms_status or fields.KEY".to_owned(),
                    };
                    issues.push(Issue::new(format!("columns[{column:?}]"), problem));
                }
                t
            }
            None => attribute(column).or_else(|| field(column)),
        };
        targets.push(target);
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (column, target) in header.iter().zip(&targets) {
        if let Some(t) = target
            && let Some(first) = seen.insert(t.name(), column)
        {
            issues.push(Issue::new(
                format!("columns[{column:?}]"),
                format!(
                    "{} is already taken by column \"{first}\": a target takes one column",
                    t.name()
                ),
            ));
        }
    }
    if issues.is_empty() && !targets.contains(&Some(Target::ExternalId)) {
        issues.push(Issue::new(
            "columns",
            "no column is mapped to external_id: every row needs the contact's id",
        ));
    }
    if issues.is_empty() {
        Ok(Resolved {
            header: header.to_vec(),
            targets,
            new_fields,
        })
    } else {
        Err(ApiError::Validation(issues))
    }
}

// -------------------------------------------------------------------------------------
// Rows

/// A cell as the JSON value of its target, or why it cannot be.
fn cell_json(target: &Target, cell: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    match target {
        Target::Field(_, FieldType::Number) => {
            let n: f64 = cell
                .trim()
                .parse()
                .map_err(|_| format!("expected a number, got \"{}\"", clip(cell)))?;
            serde_json::Number::from_f64(n)
                .map(J::Number)
                .ok_or_else(|| format!("expected a finite number, got \"{}\"", clip(cell)))
        }
        Target::Field(_, FieldType::Boolean) => match cell.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(J::Bool(true)),
            "false" | "no" | "0" => Ok(J::Bool(false)),
            _ => Err(format!(
                "expected true or false (or yes/no, 1/0), got \"{}\"",
                clip(cell)
            )),
        },
        _ => Ok(J::String(cell.to_owned())),
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

/// One record as a contact upsert, or its problems by column.
fn row_to_upsert(
    resolved: &Resolved,
    field_types: &HashMap<String, FieldType>,
    record: &csv::ByteRecord,
) -> Result<ContactUpsert, Vec<CellError>> {
    if record.len() != resolved.header.len() {
        return Err(vec![CellError {
            column: None,
            message: format!(
                "the row has {} cells, the header {}",
                record.len(),
                resolved.header.len()
            ),
        }]);
    }
    let mut errors = Vec::new();
    let mut contact = serde_json::Map::new();
    let mut fields = serde_json::Map::new();
    let mut channels = serde_json::Map::new();
    let mut by_path: HashMap<String, &str> = HashMap::new();
    for ((column, target), raw) in resolved
        .header
        .iter()
        .zip(&resolved.targets)
        .zip(record.iter())
    {
        let Some(target) = target else { continue };
        let Ok(cell) = std::str::from_utf8(raw) else {
            errors.push(CellError {
                column: Some(column.clone()),
                message: "the cell is not valid UTF-8 text".into(),
            });
            continue;
        };
        if cell.contains('\0') {
            errors.push(CellError {
                column: Some(column.clone()),
                message: "the cell holds a NUL character".into(),
            });
            continue;
        }
        // An empty cell keeps the contact's value.
        if cell.is_empty() && *target != Target::ExternalId {
            continue;
        }
        by_path.insert(format!("row.{}", target.issue_path()), column);
        let value = match cell_json(target, cell) {
            Ok(v) => v,
            Err(message) => {
                errors.push(CellError {
                    column: Some(column.clone()),
                    message,
                });
                continue;
            }
        };
        match target {
            Target::ExternalId => contact.insert("external_id".into(), value),
            Target::Email => contact.insert("email".into(), value),
            Target::Phone => contact.insert("phone".into(), value),
            Target::EmailStatus => channels.insert("email".into(), value),
            Target::SmsStatus => channels.insert("sms".into(), value),
            Target::Field(key, _) => fields.insert(key.clone(), value),
        };
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if !fields.is_empty() {
        contact.insert("fields".into(), serde_json::Value::Object(fields));
    }
    if !channels.is_empty() {
        contact.insert("channels".into(), serde_json::Value::Object(channels));
    }
    crate::api::contacts::parse_contact(serde_json::Value::Object(contact), "row", field_types)
        .map_err(|issues| {
            issues
                .into_iter()
                .map(|issue| CellError {
                    column: by_path.get(&issue.path).map(|c| (*c).to_owned()),
                    message: issue.message,
                })
                .collect()
        })
}

fn reason(row: u64, errors: &[CellError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| match &e.column {
            Some(c) => format!("column \"{c}\": {}", e.message),
            None => e.message.clone(),
        })
        .collect();
    format!("row {row}: {}", parts.join("; "))
}

fn reader(path: &Path) -> std::io::Result<csv::Reader<BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path)?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, file)))
}

// -------------------------------------------------------------------------------------
// Upload

/// Reads the header of a file: its cells, or why it cannot be imported.
fn read_header(path: &Path) -> Result<Vec<String>, ApiError> {
    let mut r = reader(path).map_err(ApiError::internal)?;
    let header = r
        .byte_headers()
        .map_err(|e| ApiError::validation("file", format!("not a CSV file: {e}")))?
        .clone();
    if header.is_empty() || (header.len() == 1 && header.get(0).is_some_and(<[u8]>::is_empty)) {
        return Err(ApiError::validation(
            "file",
            "the file is empty: its first row must name the columns",
        ));
    }
    if header.len() > MAX_COLUMNS {
        return Err(ApiError::validation(
            "file",
            format!(
                "the file has {} columns; at most {MAX_COLUMNS} are taken",
                header.len()
            ),
        ));
    }
    let mut columns = Vec::with_capacity(header.len());
    let mut seen = HashSet::new();
    for (i, raw) in header.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(raw) else {
            return Err(ApiError::validation(
                "file",
                format!("column {} of the header is not UTF-8 text", i + 1),
            ));
        };
        // A spreadsheet's byte-order mark is not part of the first name.
        let name = name.trim_start_matches('\u{feff}').trim();
        if name.is_empty() || name.contains('\0') || name.chars().count() > MAX_COLUMN_CHARS {
            return Err(ApiError::validation(
                "file",
                format!(
                    "column {} of the header needs a name of 1 to {MAX_COLUMN_CHARS} characters",
                    i + 1
                ),
            ));
        }
        if !seen.insert(name.to_owned()) {
            return Err(ApiError::validation(
                "file",
                format!("two columns of the header are named \"{name}\""),
            ));
        }
        columns.push(name.to_owned());
    }
    Ok(columns)
}

/// The next chunk of a request body.
async fn next_chunk(body: &mut axum::body::BodyDataStream) -> Option<Result<Bytes, axum::Error>> {
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *body), cx)).await
}

/// Streams `body` to a file, records the import and returns it (`uploaded`).
pub async fn upload(
    state: &AppState,
    account: &Account,
    file_name: &str,
    body: Body,
) -> Result<Import, ApiError> {
    let file_name: String = file_name
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let part = tempfile::Builder::new()
        .prefix("upload-")
        .suffix(".part")
        .tempfile_in(&state.imports.dir)
        .map_err(ApiError::internal)?;
    let (std_file, part_path) = part.into_parts();
    let mut file =
        tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(std_file));
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = next_chunk(&mut stream).await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > MAX_UPLOAD_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_UPLOAD_BYTES as usize,
            });
        }
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(ApiError::internal)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(ApiError::internal)?;
    drop(file);
    let path = part_path.to_path_buf();
    let columns = tokio::task::spawn_blocking(move || read_header(&path))
        .await
        .map_err(ApiError::internal)??;
    let import = state
        .store
        .create_import(
            account.id,
            &NewImport {
                file_name,
                columns,
                file_bytes: size,
            },
            state.clock.now(),
        )
        .await?;
    part_path
        .persist(state.imports.upload(import.id))
        .map_err(ApiError::internal)?;
    Ok(import)
}

/// The account's import, or 404.
pub async fn get(state: &AppState, account: &Account, raw_id: &str) -> Result<Import, ApiError> {
    let not_found = || ApiError::NotFound(format!("no import with id {raw_id:?}"));
    let id: ImportId = raw_id.parse().map_err(|_| not_found())?;
    state
        .store
        .import(account.id, id)
        .await?
        .ok_or_else(not_found)
}

// -------------------------------------------------------------------------------------
// Preview and run

/// The first rows of an uploaded file as `mapping` would store them.
pub async fn preview(
    state: &AppState,
    account: &Account,
    import: &Import,
    mapping: &MappingIn,
) -> Result<PreviewOut, ApiError> {
    let path = state.imports.upload(import.id);
    if import.status != ImportStatus::Uploaded || !path.exists() {
        return Err(ApiError::Conflict {
            message: format!(
                "import {} is {}: only an uploaded file can be previewed",
                import.id,
                import.status.as_str()
            ),
            path: None,
        });
    }
    let existing = state.store.fields(account.id).await?;
    let resolved = resolve(&import.columns, &existing, mapping)?;
    let mapping_out = resolved.describe();
    let rows = tokio::task::spawn_blocking(move || -> Result<Vec<PreviewRow>, ApiError> {
        let mut r = reader(&path).map_err(ApiError::internal)?;
        let field_types = resolved.field_types();
        let mut rows = Vec::new();
        let mut record = csv::ByteRecord::new();
        while rows.len() < PREVIEW_ROWS {
            match r.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let row = record.position().map_or(0, |p| p.line());
                    let errors = row_to_upsert(&resolved, &field_types, &record)
                        .err()
                        .unwrap_or_default();
                    rows.push(PreviewRow {
                        row,
                        cells: record
                            .iter()
                            .map(|c| String::from_utf8_lossy(c).into_owned())
                            .collect(),
                        errors,
                    });
                }
                Err(e) => {
                    rows.push(PreviewRow {
                        row: e.position().map_or(0, |p| p.line()),
                        cells: Vec::new(),
                        errors: vec![CellError {
                            column: None,
                            message: format!("not readable as CSV: {e}"),
                        }],
                    });
                    break;
                }
            }
        }
        Ok(rows)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(PreviewOut {
        mapping: mapping_out,
        rows,
    })
}

fn already_started(import: &Import) -> ApiError {
    ApiError::Conflict {
        message: format!(
            "import {} has already been started (it is {})",
            import.id,
            import.status.as_str()
        ),
        path: None,
    }
}

/// Checks the mapping, declares new fields and starts the import in the background.
pub async fn start(
    state: &AppState,
    account: &Account,
    import: &Import,
    mapping: &MappingIn,
) -> Result<Import, ApiError> {
    let path = state.imports.upload(import.id);
    if import.status != ImportStatus::Uploaded || !path.exists() {
        return Err(already_started(import));
    }
    let existing = state.store.fields(account.id).await?;
    let resolved = resolve(&import.columns, &existing, mapping)?;
    let described = serde_json::to_value(resolved.describe()).map_err(ApiError::internal)?;
    if !state
        .store
        .start_import(account.id, import.id, &described)
        .await?
    {
        return Err(already_started(import));
    }
    for field in &resolved.new_fields {
        if let Err(e) = crate::writes::create_field(state, account, field).await {
            let message = format!("field \"{}\" could not be declared: {e}", field.key);
            state
                .store
                .finish_import(
                    account.id,
                    import.id,
                    ImportStatus::Failed,
                    &ImportProgress::default(),
                    Some(&message),
                    state.clock.now(),
                )
                .await?;
            return Err(e.into());
        }
    }
    tokio::spawn(run(state.clone(), account.clone(), import.id, resolved));
    state
        .store
        .import(account.id, import.id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("import {} vanished", import.id)))
}

/// What the reading thread hands to the writer.
struct Batch {
    rows: Vec<ContactUpsert>,
    /// File rows of `rows` (for a failure message).
    first_row: u64,
    last_row: u64,
    progress: ImportProgress,
}

/// Reads the file, writes rejected rows, sends batches of valid ones.
fn read_batches(
    path: &Path,
    rejected_path: &Path,
    resolved: &Resolved,
    tx: tokio::sync::mpsc::Sender<Batch>,
) -> Result<ImportProgress, String> {
    let mut r = reader(path).map_err(|e| format!("the upload cannot be read: {e}"))?;
    let mut rejected = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(std::io::BufWriter::new(
            std::fs::File::create(rejected_path)
                .map_err(|e| format!("the rejected rows cannot be written: {e}"))?,
        ));
    let mut header = resolved.header.clone();
    header.push("reason".into());
    let write_err = |e: csv::Error| format!("the rejected rows cannot be written: {e}");
    rejected.write_record(&header).map_err(write_err)?;
    let field_types = resolved.field_types();
    let mut progress = ImportProgress::default();
    let mut rows = Vec::with_capacity(BATCH);
    let mut ids: HashSet<String> = HashSet::with_capacity(BATCH);
    let mut first_row = 0;
    let mut last_row = 0;
    let mut record = csv::ByteRecord::new();
    let send = |rows: &mut Vec<ContactUpsert>,
                ids: &mut HashSet<String>,
                first_row: u64,
                last_row: u64,
                progress: ImportProgress|
     -> Result<(), String> {
        let batch = Batch {
            rows: std::mem::replace(rows, Vec::with_capacity(BATCH)),
            first_row,
            last_row,
            progress,
        };
        ids.clear();
        tx.blocking_send(batch)
            .map_err(|_| "the import was stopped".to_owned())
    };
    loop {
        let more = match r.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // A broken quote or bad line: the file cannot be read past it.
                return Err(format!(
                    "the file is not readable as CSV from row {}: {e}",
                    e.position().map_or(0, |p| p.line())
                ));
            }
        };
        if !more {
            break;
        }
        let row = record.position().map_or(0, |p| p.line());
        progress.bytes_read = record.position().map_or(0, |p| p.byte());
        match row_to_upsert(resolved, &field_types, &record) {
            Ok(upsert) => {
                // A contact twice in one batch: the batch so far goes first, so the
                // later row wins as if the rows were stored one by one.
                if ids.contains(&upsert.external_id) {
                    send(&mut rows, &mut ids, first_row, last_row, progress)?;
                }
                if rows.is_empty() {
                    first_row = row;
                }
                last_row = row;
                ids.insert(upsert.external_id.clone());
                rows.push(upsert);
                if rows.len() == BATCH {
                    send(&mut rows, &mut ids, first_row, last_row, progress)?;
                }
            }
            Err(errors) => {
                progress.rows_rejected += 1;
                let mut out: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
                out.resize(resolved.header.len(), Vec::new());
                out.push(reason(row, &errors).into_bytes());
                rejected.write_record(&out).map_err(write_err)?;
            }
        }
    }
    progress.bytes_read = r.position().byte();
    rejected
        .flush()
        .map_err(|e| format!("the rejected rows cannot be written: {e}"))?;
    if !rows.is_empty() {
        send(&mut rows, &mut ids, first_row, last_row, progress)?;
    }
    let mut inner = rejected
        .into_inner()
        .map_err(|e| format!("the rejected rows cannot be written: {e}"))?;
    inner
        .flush()
        .map_err(|e| format!("the rejected rows cannot be written: {e}"))?;
    Ok(progress)
}

/// Runs an import to its end, recording how it went.
async fn run(state: AppState, account: Account, id: ImportId, resolved: Resolved) {
    let path = state.imports.upload(id);
    let rejected_path = state.imports.rejected(id);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let reading = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || read_batches(&path, &rejected_path, &resolved, tx))
    };
    let mut done = ImportProgress::default();
    let mut failure: Option<String> = None;
    while let Some(batch) = rx.recv().await {
        match crate::writes::upsert_contacts(&state, &account, &batch.rows).await {
            Ok(_) => {
                done.rows_imported += batch.rows.len() as u64;
                done.rows_rejected = batch.progress.rows_rejected;
                done.bytes_read = batch.progress.bytes_read;
                if let Err(e) = state.store.import_progress(account.id, id, &done).await {
                    tracing::warn!(error = %e, import = id, "recording import progress failed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, import = id, "an import batch was refused");
                failure = Some(format!(
                    "rows {} to {} could not be stored ({e}); the rows before them were",
                    batch.first_row, batch.last_row
                ));
                break;
            }
        }
    }
    // Dropping the receiver stops the reader at its next batch.
    drop(rx);
    let read = match reading.await {
        Ok(r) => r,
        Err(e) => Err(format!("the import stopped: {e}")),
    };
    let (status, error) = match (failure, read) {
        (Some(f), _) => (ImportStatus::Failed, Some(f)),
        (None, Err(e)) => (ImportStatus::Failed, Some(e)),
        (None, Ok(progress)) => {
            done.bytes_read = progress.bytes_read;
            done.rows_rejected = progress.rows_rejected;
            (ImportStatus::Done, None)
        }
    };
    if let Err(e) = state
        .store
        .finish_import(
            account.id,
            id,
            status,
            &done,
            error.as_deref(),
            state.clock.now(),
        )
        .await
    {
        tracing::error!(error = %e, import = id, "recording the end of an import failed");
    }
    // Contacts that were not there change what segments' past days compute to.
    state.computed_history.forget_account(account.id);
    if let Err(e) = tokio::fs::remove_file(&path).await {
        tracing::warn!(error = %e, import = id, "removing an imported file failed");
    }
    tracing::info!(
        import = id,
        status = status.as_str(),
        imported = done.rows_imported,
        rejected = done.rows_rejected,
        "import finished"
    );
}

/// The rejected rows of a finished or running import, as a CSV response.
pub async fn rejected_csv(
    state: &AppState,
    import: &Import,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let path = state.imports.rejected(import.id);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!(
                "import {} has no rejected rows yet (it is {})",
                import.id,
                import.status.as_str()
            )));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let stream = FileChunks {
        file,
        buf: vec![0; 64 * 1024],
    };
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{}-rejected.csv\"", import.id),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A file read as a stream of chunks.
struct FileChunks {
    file: tokio::fs::File,
    buf: Vec<u8>,
}

impl futures_core::Stream for FileChunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use tokio::io::AsyncRead;
        let this = self.get_mut();
        let mut buf = tokio::io::ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.file).poll_read(cx, &mut buf) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Ready(Ok(())) => {
                std::task::Poll::Ready(Some(Ok(Bytes::copy_from_slice(buf.filled()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|c| (*c).to_owned()).collect()
    }

    fn field(key: &str, ty: FieldType) -> FieldDef {
        FieldDef {
            key: key.into(),
            label: key.into(),
            field_type: ty,
        }
    }

    fn problems(r: Result<Resolved, ApiError>) -> Vec<String> {
        match r {
            Ok(_) => Vec::new(),
            Err(ApiError::Validation(issues)) => issues.iter().map(ToString::to_string).collect(),
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn mappings_are_refused_with_the_column_at_fault() {
        let existing = [field("age", FieldType::Number)];
        let cases: &[(&[&str], &str, &str)] = &[
            (&["external_id", "age"], r#"{}"#, ""),
            (
                &["id", "age"],
                r#"{}"#,
                "no column is mapped to external_id",
            ),
            (&["Id"], r#"{"columns": {"Id": "external_id"}}"#, ""),
            (
                &["Id"],
                r#"{"columns": {"Nope": "external_id"}}"#,
                "columns[\"Nope\"]",
            ),
            (
                &["external_id", "Plan"],
                r#"{"columns": {"Plan": "fields.plan"}}"#,
                "unknown field \"plan\"",
            ),
            (
                &["external_id", "Plan"],
                r#"{"columns": {"Plan": "fields.plan"}, "new_fields": [{"key": "plan", "type": "text"}]}"#,
                "",
            ),
            (
                &["external_id", "Plan"],
                r#"{"columns": {"Plan": "fields.plan"}, "new_fields": [{"key": "plan", "type": "colour"}]}"#,
                "new_fields[0].type",
            ),
            (
                &["external_id", "a"],
                r#"{"columns": {"a": "fields.age"}, "new_fields": [{"key": "age", "type": "text"}]}"#,
                "already exists as a number field",
            ),
            (
                &["external_id", "a", "b"],
                r#"{"columns": {"a": "email", "b": "email"}}"#,
                "email is already taken by column \"a\"",
            ),
            (
                &["external_id", "x"],
                r#"{"columns": {"x": "nickname"}}"#,
                "expected external_id, email",
            ),
            (&["external_id", "age"], r#"{"columns": {"age": null}}"#, ""),
        ];
        for (cols, mapping, expected) in cases {
            let mapping: MappingIn = serde_json::from_str(mapping).expect("test mapping");
            let found = problems(resolve(&header(cols), &existing, &mapping)).join(" | ");
            if expected.is_empty() {
                assert!(found.is_empty(), "{cols:?} {mapping:?}: {found}");
            } else {
                assert!(
                    found.contains(expected),
                    "{cols:?}: expected {expected:?} in {found:?}"
                );
            }
        }
    }

    #[test]
    fn rows_are_checked_cell_by_cell() {
        let existing = [
            field("age", FieldType::Number),
            field("vip", FieldType::Boolean),
            field("born", FieldType::Date),
        ];
        let cols = header(&["external_id", "email", "age", "vip", "born"]);
        let resolved = resolve(&cols, &existing, &MappingIn::default()).expect("mapping");
        let types = resolved.field_types();
        let cases: &[(&[&str], &str)] = &[
            (&["c1", "a@example.com", "42", "yes", "1990-02-03"], ""),
            (&["c1", "", "", "", ""], ""),
            (
                &["c1", "not-an-email", "", "", ""],
                "column \"email\": expected an e-mail",
            ),
            (
                &["c1", "", "forty", "", ""],
                "column \"age\": expected a number",
            ),
            (
                &["c1", "", "", "maybe", ""],
                "column \"vip\": expected true or false",
            ),
            (
                &["c1", "", "", "", "03/02/1990"],
                "column \"born\": expected a date",
            ),
            (&["", "", "", "", ""], "column \"external_id\""),
            (&["c1", "", ""], "the row has 3 cells, the header 5"),
        ];
        for (cells, expected) in cases {
            let record = csv::ByteRecord::from(cells.to_vec());
            let found = match row_to_upsert(&resolved, &types, &record) {
                Ok(_) => String::new(),
                Err(errors) => reason(2, &errors),
            };
            if expected.is_empty() {
                assert!(found.is_empty(), "{cells:?}: {found}");
            } else {
                assert!(
                    found.contains(expected),
                    "{cells:?}: expected {expected:?} in {found:?}"
                );
            }
        }
    }
}
