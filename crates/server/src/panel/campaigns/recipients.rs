//! A campaign's frozen recipients on its page: filtered by delivery status and paged by
//! external id (the store's keyset page), so a million recipients cost one page.

use std::collections::HashMap;

use maud::{Markup, html};
use segmentd_store::{CampaignId, Recipient, RecipientCounts, RecipientStatus};

use super::stats::thousands;
use crate::api::paging::{cursor_for, paging};
use crate::panel::session::encode;

/// Rows a page shows unless `?limit=` asks otherwise (1 to [`MAX_PAGE`]).
pub(super) const PAGE: usize = 50;
const MAX_PAGE: usize = 500;

const STATUSES: [RecipientStatus; 6] = [
    RecipientStatus::Queued,
    RecipientStatus::Sending,
    RecipientStatus::Sent,
    RecipientStatus::Failed,
    RecipientStatus::Bounced,
    RecipientStatus::Unknown,
];

/// What the page's query asks of the list: `status`, `cursor` (as the API's), `limit`.
/// Anything unreadable falls back to the first page of everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RecipientsQuery {
    pub status: Option<RecipientStatus>,
    pub after: Option<String>,
    pub limit: usize,
}

impl Default for RecipientsQuery {
    fn default() -> Self {
        RecipientsQuery {
            status: None,
            after: None,
            limit: PAGE,
        }
    }
}

impl RecipientsQuery {
    pub(super) fn from_query(q: &HashMap<String, String>) -> Self {
        let limit = q
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .unwrap_or(PAGE);
        let mut cursor_only = q.clone();
        cursor_only.remove("limit");
        RecipientsQuery {
            status: q
                .get("status")
                .and_then(|s| RecipientStatus::parse(s.as_str())),
            after: paging(&cursor_only).ok().and_then(|(_, a)| a),
            limit,
        }
    }

    /// The page's link for `status` from its first page, keeping a non-default limit.
    fn link(
        &self,
        id: CampaignId,
        status: Option<RecipientStatus>,
        cursor: Option<&str>,
    ) -> String {
        let mut params = Vec::new();
        if let Some(s) = status {
            params.push(format!("status={}", s.as_str()));
        }
        if let Some(c) = cursor {
            params.push(format!("cursor={c}"));
        }
        if self.limit != PAGE {
            params.push(format!("limit={}", self.limit));
        }
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        format!("/panel/campaigns/{id}{query}#recipients")
    }
}

fn count_of(counts: &RecipientCounts, status: RecipientStatus) -> u64 {
    match status {
        RecipientStatus::Queued => counts.queued,
        RecipientStatus::Sending => counts.sending,
        RecipientStatus::Sent => counts.sent,
        RecipientStatus::Failed => counts.failed,
        RecipientStatus::Bounced => counts.bounced,
        RecipientStatus::Unknown => counts.unknown,
    }
}

/// The list: status filter links with their counts, one page (`rows` holds up to
/// `limit + 1`, the extra one only telling that a next page exists), the pager.
pub(super) fn section(
    id: CampaignId,
    q: &RecipientsQuery,
    counts: &RecipientCounts,
    mut rows: Vec<Recipient>,
) -> Markup {
    let next = if rows.len() > q.limit {
        rows.truncate(q.limit);
        rows.last().map(|r| cursor_for(&r.external_id))
    } else {
        None
    };
    html! {
        section id="recipients" {
            h2 { "Recipients" }
            p id="recipient-counts" {
                (thousands(counts.total())) " frozen: " (thousands(counts.sent)) " sent, "
                (thousands(counts.failed)) " failed, " (thousands(counts.queued + counts.sending)) " waiting"
            }
            nav.filters id="recipient-filter" aria-label="Recipients by status" {
                a href=(q.link(id, None, None)) aria-current=[q.status.is_none().then_some("page")] {
                    "All (" (thousands(counts.total())) ")"
                }
                @for status in STATUSES {
                    " "
                    a href=(q.link(id, Some(status), None)) data-status=(status.as_str())
                        aria-current=[(q.status == Some(status)).then_some("page")] {
                        (status.as_str()) " (" (thousands(count_of(counts, status))) ")"
                    }
                }
            }
            div.table-wrap {
                table id="recipients-table" {
                    thead { tr { th { "Contact" } th { "Address" } th { "Status" } th { "Reason" } th.num { "Attempts" } } }
                    tbody {
                        @for r in &rows {
                            tr data-id=(r.external_id) {
                                td { a href=(format!("/panel/contact?id={}", encode(&r.external_id))) { (r.external_id) } }
                                td { (r.address) }
                                td { (r.status.as_str()) }
                                td { (r.reason.clone().unwrap_or_default()) }
                                td.num { (r.attempts) }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "No recipient in this status." } }
            nav.pager aria-label="Pages" {
                @if q.after.is_some() { a.button href=(q.link(id, q.status, None)) { "First page" } " " }
                @if let Some(c) = next { a.button id="next-page" href=(q.link(id, q.status, Some(&c))) { "Next page" } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_with_fallbacks_and_links_keep_what_they_should() {
        let q = |pairs: &[(&str, &str)]| {
            let map = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            RecipientsQuery::from_query(&map)
        };
        let cursor = cursor_for("bob");
        let cases = [
            (q(&[]), None, None, PAGE),
            (
                q(&[("status", "bounced")]),
                Some(RecipientStatus::Bounced),
                None,
                PAGE,
            ),
            (q(&[("status", "nope"), ("limit", "0")]), None, None, PAGE),
            (q(&[("limit", "100000")]), None, None, PAGE),
            (
                q(&[("cursor", cursor.as_str()), ("limit", "2")]),
                None,
                Some("bob".to_owned()),
                2,
            ),
            (q(&[("cursor", "zz")]), None, None, PAGE),
        ];
        for (got, status, after, limit) in cases {
            assert_eq!((got.status, got.after, got.limit), (status, after, limit));
        }
        let paged = q(&[("status", "sent"), ("limit", "2")]);
        assert_eq!(
            paged.link(7, paged.status, Some("626f62")),
            "/panel/campaigns/7?status=sent&cursor=626f62&limit=2#recipients"
        );
        assert_eq!(q(&[]).link(7, None, None), "/panel/campaigns/7#recipients");
    }
}
