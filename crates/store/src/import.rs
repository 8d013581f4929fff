//! CSV imports of contacts: the row that tracks one (migration 0012), and the SQL both
//! backends run for it (written with `?N` placeholders; PostgreSQL's copy turns them
//! into `$N`).

use jiff::Timestamp;

use crate::common::from_ms;
use crate::{AccountId, Result, StoreError};

pub type ImportId = i64;

/// Where an import stands: `Uploaded` (file kept, waiting for its mapping) → `Running`
/// → `Done` or `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    Uploaded,
    Running,
    Done,
    Failed,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Uploaded => "uploaded",
            ImportStatus::Running => "running",
            ImportStatus::Done => "done",
            ImportStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uploaded" => ImportStatus::Uploaded,
            "running" => ImportStatus::Running,
            "done" => ImportStatus::Done,
            "failed" => ImportStatus::Failed,
            _ => return None,
        })
    }
}

/// An uploaded file, as recorded before anything of it is imported.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImport {
    pub file_name: String,
    /// The header row's cells, in order.
    pub columns: Vec<String>,
    pub file_bytes: u64,
}

/// How far an import has gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportProgress {
    pub bytes_read: u64,
    pub rows_imported: u64,
    pub rows_rejected: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub id: ImportId,
    pub account_id: AccountId,
    pub status: ImportStatus,
    pub file_name: String,
    pub columns: Vec<String>,
    /// The mapping it was started with (the server's JSON), once started.
    pub mapping: Option<serde_json::Value>,
    pub file_bytes: u64,
    pub progress: ImportProgress,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

pub(crate) const INSERT_IMPORT: &str = "INSERT INTO imports \
     (account_id, status, file_name, columns, file_bytes, created_at) \
     VALUES (?1, 'uploaded', ?2, ?3, ?4, ?5) RETURNING id";

pub(crate) const SELECT_IMPORT: &str = "SELECT id, account_id, status, file_name, columns, \
     mapping, file_bytes, bytes_read, rows_imported, rows_rejected, error, created_at, \
     finished_at FROM imports WHERE account_id = ?1 AND id = ?2";

/// Only an import still `uploaded` starts: of two starts, one wins.
pub(crate) const START_IMPORT: &str = "UPDATE imports SET status = 'running', mapping = ?1 \
     WHERE account_id = ?2 AND id = ?3 AND status = 'uploaded'";

pub(crate) const IMPORT_PROGRESS: &str = "UPDATE imports SET bytes_read = ?1, \
     rows_imported = ?2, rows_rejected = ?3 \
     WHERE account_id = ?4 AND id = ?5 AND status = 'running'";

pub(crate) const FINISH_IMPORT: &str = "UPDATE imports SET status = ?1, bytes_read = ?2, \
     rows_imported = ?3, rows_rejected = ?4, error = ?5, finished_at = ?6 \
     WHERE account_id = ?7 AND id = ?8 AND status = 'running'";

pub(crate) const INTERRUPT_IMPORTS: &str = "UPDATE imports SET status = 'failed', error = ?1, \
     finished_at = ?2 WHERE status = 'running'";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn import_from_row<R: sqlx::Row>(row: &R) -> Result<Import>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    let columns: String = row.try_get("columns")?;
    let mapping: Option<String> = row.try_get("mapping")?;
    Ok(Import {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        status: ImportStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("import status {status:?}")))?,
        file_name: row.try_get("file_name")?,
        columns: serde_json::from_str(&columns)
            .map_err(|e| StoreError::Corrupt(format!("import columns: {e}")))?,
        mapping: mapping
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("import mapping: {e}")))?,
        file_bytes: count(row.try_get("file_bytes")?),
        progress: ImportProgress {
            bytes_read: count(row.try_get("bytes_read")?),
            rows_imported: count(row.try_get("rows_imported")?),
            rows_rejected: count(row.try_get("rows_rejected")?),
        },
        error: row.try_get("error")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")?
            .map(from_ms)
            .transpose()?,
    })
}

pub(crate) fn columns_json(columns: &[String]) -> String {
    serde_json::Value::from(columns.to_vec()).to_string()
}

pub(crate) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
