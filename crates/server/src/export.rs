//! A segment's members as CSV, streamed: the index names them a page at a time (in
//! external-id order), the store reads that page's contacts, and the rows go out before
//! the next page is read. Memory stays one page whatever the segment's size.
//!
//! Columns: `external_id`, `email`, `phone`, `email_status`, `sms_status`, then each
//! custom field by key (sorted). A value is written as text: numbers and dates as the
//! API writes them (whole numbers without `.0`), booleans `true`/`false`, no value empty. Cells are quoted (RFC 4180)
//! when they hold a comma, a quote or a line break; nothing else is changed, so that an
//! export imports back as it was.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use segmentd_rules::{FieldValue, SegmentId};
use segmentd_store::{Account, Contact};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::state::AppState;

/// Members read (and written) at a time.
const PAGE: usize = 1_000;

/// `value` as one CSV cell.
fn cell(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn field_text(value: Option<&FieldValue>) -> String {
    match value {
        None => String::new(),
        Some(FieldValue::Text(t)) => t.clone(),
        // Whole numbers without a trailing `.0`, as a person would type them.
        Some(FieldValue::Number(n)) if n.fract() == 0.0 && n.abs() < 1e15 => {
            format!("{}", *n as i64)
        }
        Some(other) => match other.to_json() {
            serde_json::Value::String(s) => s,
            v => v.to_string(),
        },
    }
}

fn row(contact: &Contact, keys: &[String]) -> String {
    let mut cells = vec![
        cell(&contact.external_id),
        cell(contact.email.as_deref().unwrap_or("")),
        cell(contact.phone.as_deref().unwrap_or("")),
        contact
            .effective_email_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        contact
            .effective_sms_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
    ];
    cells.extend(
        keys.iter()
            .map(|k| cell(&field_text(contact.fields.get(k)))),
    );
    let mut line = cells.join(",");
    line.push_str("\r\n");
    line
}

/// The body's chunks as they are produced.
struct Chunks(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The response: the segment's current members as a CSV file named after it. 404 for a
/// segment the account does not have.
pub async fn members_csv(
    state: &AppState,
    account: &Account,
    segment: SegmentId,
) -> Result<Response, ApiError> {
    let Some(saved) = state.store.segment(account.id, segment).await? else {
        return Err(ApiError::NotFound(format!("no segment {segment}")));
    };
    let mut keys: Vec<String> = state
        .store
        .fields(account.id)
        .await?
        .into_iter()
        .map(|f| f.key)
        .collect();
    keys.sort();
    let (tx, rx) = mpsc::channel(4);
    let (state, account) = (state.clone(), account.clone());
    tokio::spawn(async move {
        let mut header_row = [
            "external_id",
            "email",
            "phone",
            "email_status",
            "sms_status",
        ]
        .map(str::to_owned)
        .to_vec();
        header_row.extend(keys.iter().map(|k| cell(k)));
        let first = format!("{}\r\n", header_row.join(","));
        if tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        let mut after: Option<String> = None;
        loop {
            let page = match state
                .index
                .members(&account, segment, None, after.as_deref(), PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    // The client sees a cut-off file; the log says why.
                    tracing::error!(error = %e, segment, "CSV export stopped");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            after = Some(last.external_id.clone());
            let mut chunk = String::with_capacity(page.len() * 64);
            for contact in &page {
                chunk.push_str(&row(contact, &keys));
            }
            // The client went away: stop reading.
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() || page.len() < PAGE {
                return;
            }
        }
    });
    let filename: String = saved
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"segment-{segment}-{filename}.csv\""),
            ),
        ],
        Body::from_stream(Chunks(rx)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_only_when_they_must_be() {
        let cases = [
            ("ann", "ann"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("=1+1", "=1+1"),
            ("", ""),
        ];
        for (value, expected) in cases {
            assert_eq!(cell(value), expected, "{value:?}");
        }
    }
}
