//! The panel's HTML pages, rendered with maud (every interpolated value is escaped by
//! construction). Interactive parts are plain JavaScript in `panel.js`, which finds its
//! page by `<body data-page=…>` and its data in `<script type="application/json">`.

use std::collections::HashMap;

use crate::panel::numbers::thousands;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use segmentd_rules::{FieldValue, SegmentId};
use segmentd_store::{Contact, EventBody, FieldDef, Segment};
use serde_json::json;

use crate::api::paging::{cursor_for, paging};
use crate::error::ApiError;
use crate::panel::api::{find_contact, names, saved_rule};
use crate::panel::session::{PageSession, SignedIn, encode};
use crate::panel::words::describe;
use crate::state::AppState;

const MEMBERS_PAGE: usize = 50;
const CONTACTS_PAGE: usize = 50;

/// Embeds JSON for the page's script; `<` is escaped so no text can close the tag.
pub(crate) fn data_json(id: &str, value: &serde_json::Value) -> Markup {
    let text = value.to_string().replace('<', "\\u003c");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · segmentd" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/panel/assets/panel.css";
            script src="/panel/assets/panel.js" defer {}
        }
    }
}

/// The frame of every signed-in page.
pub(crate) fn layout(s: &SignedIn, page: &str, title: &str, section: &str, body: Markup) -> Markup {
    let nav = [
        ("segments", "/panel/segments", "Segments"),
        ("contacts", "/panel/contacts", "Contacts"),
        ("fields", "/panel/fields", "Custom fields"),
        ("campaigns", "/panel/campaigns", "Campaigns"),
        ("keys", "/panel/keys", "API keys"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-page=(page) {
                meta name="csrf-token" content=(s.session.csrf_token);
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/panel/segments" { "segmentd" }
                    nav aria-label="Main" {
                        ul {
                            @for (key, href, label) in nav {
                                li { a href=(href) aria-current=[(key == section).then_some("page")] { (label) } }
                            }
                        }
                    }
                    div.who {
                        span.account { (s.account.name) }
                        span.user { (s.session.email) }
                        form method="post" action="/panel/sign-out" {
                            input type="hidden" name="csrf" value=(s.session.csrf_token);
                            button.link type="submit" id="sign-out" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

pub fn sign_in(next: Option<&str>, error: Option<&str>, email: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body data-page="sign-in" {
                main.narrow id="main" {
                    h1 { "Sign in to segmentd" }
                    @if let Some(e) = error { p.error role="alert" id="sign-in-error" { (e) } }
                    form method="post" action="/panel/sign-in" {
                        @if let Some(n) = next { input type="hidden" name="next" value=(n); }
                        p {
                            label for="email" { "E-mail" }
                            input id="email" name="email" type="email" autocomplete="username" required value=(email) autofocus;
                        }
                        p {
                            label for="password" { "Password" }
                            input id="password" name="password" type="password" autocomplete="current-password" required;
                        }
                        p { button.primary type="submit" id="sign-in" { "Sign in" } }
                    }
                }
            }
        }
    }
}

fn internal(e: ApiError) -> Response {
    e.into_response()
}

/// `/panel` and `/` lead to the segments list.
pub async fn home() -> Redirect {
    Redirect::to("/panel/segments")
}

pub async fn segments(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let search = q.get("search").cloned().unwrap_or_default();
    let result: Result<_, ApiError> = async {
        let all = state.store.segments(s.account.id, None).await?;
        let ids: Vec<SegmentId> = all.iter().map(|x| x.id).collect();
        let counts = state.index.counts(&s.account, &ids, None).await?;
        Ok(all.into_iter().zip(counts).collect::<Vec<_>>())
    }
    .await;
    let rows = match result {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let needle = search.to_lowercase();
    let body = html! {
        div.title-row {
            h1 { "Segments" }
            a.button.primary href="/panel/segments/new" id="new-segment" { "+ New dynamic segment" }
        }
        form.search role="search" method="get" action="/panel/segments" {
            label for="segment-search" { "Search segments by name" }
            input id="segment-search" name="search" type="search" value=(search) autocomplete="off";
            button type="submit" { "Search" }
        }
        p.muted id="segment-search-status" aria-live="polite" {}
        div.table-wrap.cards-on-phone {
            table id="segments" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Description" } th scope="col" .num { "Contacts" } th scope="col" { span.sr { "Actions" } } } }
                tbody {
                    @for (seg, count) in &rows {
                        @let hidden = !needle.is_empty() && !seg.name.to_lowercase().contains(&needle);
                        tr data-name=(seg.name.to_lowercase()) hidden[hidden] {
                            td.name { a href={"/panel/segments/" (seg.id)} { (seg.name) } }
                            td.description { (seg.description) }
                            td.num data-count=(count) { (thousands(*count)) span.unit-on-phone { " contacts" } }
                            td.actions {
                                a.button href={"/panel/segments/" (seg.id) "/members"} aria-label={"Show members of " (seg.name)} { "Show" }
                                " "
                                a.button href={"/panel/segments/" (seg.id) "/edit"} aria-label={"Edit " (seg.name)} { "Edit" }
                            }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No segments yet. Create the first one with " b { "+ New dynamic segment" } "." } }
    };
    layout(&s, "segments", "Segments", "segments", body).into_response()
}

async fn segment_or_404(
    state: &AppState,
    s: &SignedIn,
    raw: &str,
) -> Result<Option<Segment>, ApiError> {
    match raw.parse::<SegmentId>() {
        Ok(id) => Ok(state.store.segment(s.account.id, id).await?),
        Err(_) => Ok(None),
    }
}

fn not_found(s: &SignedIn, what: &str) -> Response {
    let body = html! { h1 { "Not found" } p { (what) } p { a href="/panel/segments" { "Back to the segments" } } };
    (
        axum::http::StatusCode::NOT_FOUND,
        layout(s, "not-found", "Not found", "", body),
    )
        .into_response()
}

/// How many event names, campaigns and URL prefixes the builder lists at most.
const CATALOG_LIMIT: usize = 500;

/// The builder's data: the account's fields and saved segments, and from the index the
/// custom event names with their property paths, the campaigns and the visited URL
/// prefixes.
async fn builder_catalog(
    state: &AppState,
    s: &SignedIn,
    editing: Option<SegmentId>,
) -> Result<serde_json::Value, ApiError> {
    let fields = state.store.fields(s.account.id).await?;
    // The saved segments a condition can refer to (the one being edited cannot).
    let segments: Vec<serde_json::Value> = state
        .store
        .segments(s.account.id, None)
        .await?
        .into_iter()
        .filter(|seg| Some(seg.id) != editing)
        .map(|seg| json!({"id": seg.id, "name": seg.name}))
        .collect();
    let seen = state
        .index
        .builder_catalog(&s.account, CATALOG_LIMIT)
        .await?;
    Ok(json!({
        "fields": fields.iter().map(|f| json!({"key": f.key, "label": f.label, "type": f.field_type.as_str()})).collect::<Vec<_>>(),
        "event_names": seen.events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        "events": seen.events,
        "campaigns": seen.campaigns.iter().map(|c| c.value.as_str()).collect::<Vec<_>>(),
        "url_prefixes": seen.url_prefixes.iter().map(|u| u.value.as_str()).collect::<Vec<_>>(),
        "segments": segments,
    }))
}

pub async fn new_segment(State(state): State<AppState>, PageSession(s): PageSession) -> Response {
    editor(&state, &s, None).await
}

pub async fn edit_segment(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<String>,
) -> Response {
    match segment_or_404(&state, &s, &id).await {
        Ok(Some(seg)) => editor(&state, &s, Some(seg)).await,
        Ok(None) => not_found(&s, "There is no such segment."),
        Err(e) => internal(e),
    }
}

async fn editor(state: &AppState, s: &SignedIn, seg: Option<Segment>) -> Response {
    let catalog = match builder_catalog(state, s, seg.as_ref().map(|x| x.id)).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let title = if seg.is_some() {
        "Edit segment"
    } else {
        "New dynamic segment"
    };
    let segment_json = match &seg {
        Some(x) => {
            json!({"id": x.id, "name": x.name, "description": x.description, "rule": x.rule})
        }
        None => json!(null),
    };
    let body = html! {
        h1 { (title) }
        (data_json("builder-catalog", &catalog))
        (data_json("builder-segment", &segment_json))
        form id="segment-form" novalidate {
            div.editor {
                div.editor-main {
                    p.field {
                        label for="seg-name" { "Group name " span.req { "(required)" } }
                        input id="seg-name" name="name" type="text" required maxlength="200" aria-describedby="seg-name-error" value=[seg.as_ref().map(|x| x.name.as_str())];
                        span.error id="seg-name-error" role="alert" {}
                    }
                    p.field {
                        label for="seg-description" { "Description" }
                        textarea id="seg-description" name="description" rows="2" maxlength="2000" aria-describedby="seg-description-error" { (seg.as_ref().map(|x| x.description.as_str()).unwrap_or("")) }
                        span.error id="seg-description-error" role="alert" {}
                    }
                    h2 { "Conditions" }
                    div id="builder" {}
                    p.error id="rule-error" role="alert" {}
                }
                // The live count: a sidebar that stays in view on a wide screen, a bar
                // fixed to the bottom edge on a narrow one (panel.css).
                aside.live id="live-bar" aria-labelledby="live-title" {
                    div.live-figures {
                        h2.sr id="live-title" { "Live count" }
                        p.big aria-live="polite" { span id="live-count" { "…" } " " span.unit { "contacts" } }
                        p.muted id="live-share" {}
                        ul.reach aria-label="Reach per channel" {
                            li { "E-mail " span id="reach-email" { "–" } }
                            li { "SMS " span id="reach-sms" { "–" } }
                            li { "Push " span id="reach-push" { "–" } }
                        }
                        p.muted id="live-status" {}
                    }
                    div.live-actions {
                        button.primary type="submit" id="save-segment" { @if seg.is_some() { "Save" } @else { "Create" } }
                        a.button id="cancel-segment" href=(seg.as_ref().map(|x| format!("/panel/segments/{}", x.id)).unwrap_or_else(|| "/panel/segments".into())) { "Cancel" }
                    }
                }
            }
        }
    };
    layout(s, "editor", title, "segments", body).into_response()
}

/// `?done=` on a segment's page after the builder saved it.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

pub async fn segment_page(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    // Only our own two words are shown, never the query's text.
    let toast = match done.done.as_deref() {
        Some("created") => Some("Segment created."),
        Some("saved") => Some("Changes saved."),
        _ => None,
    };
    let seg = match segment_or_404(&state, &s, &id).await {
        Ok(Some(seg)) => seg,
        Ok(None) => return not_found(&s, "There is no such segment."),
        Err(e) => return internal(e),
    };
    let result: Result<_, ApiError> = async {
        let count = state
            .index
            .counts(&s.account, &[seg.id], None)
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        let rule = saved_rule(state.store.as_ref(), &s.account, seg.id).await?;
        let names = names(state.store.as_ref(), &s.account).await?;
        let all = state.index.contact_count(&s.account).await?;
        Ok((count, all, describe(&rule, &names)))
    }
    .await;
    let (count, all, words) = match result {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let body = html! {
        @if let Some(t) = toast { p.notice.toast role="status" id="toast" { (t) } }
        header.page-head {
            div.title-row {
                h1 { (seg.name) }
                div.head-actions {
                    a.button href={"/panel/segments/" (seg.id) "/members"} id="show-members" { "Show members" }
                    a.button.primary href={"/panel/segments/" (seg.id) "/edit"} id="edit-segment" { "Edit" }
                }
            }
            @if !seg.description.is_empty() { p.description id="segment-description" { (seg.description) } }
        }
        div.cards {
            section.card {
                h2 { "Contacts" }
                p.big id="segment-count" { (thousands(count)) }
                p id="segment-share" {
                    "of " (thousands(all)) " contacts"
                    @if let Some(share) = crate::panel::numbers::percent(count, all) { " (" (share) ")" }
                }
            }
            section.card.wide {
                h2 { "Rule" }
                p id="segment-words" { (words) }
            }
        }
        section.card id="growth" data-segment=(seg.id) {
            h2 { "Growth" }
            div id="chart" role="img" aria-label="Segment size per day" {}
            p.muted id="chart-note" {}
        }
        section.card {
            h2 { "Why is this contact in or out?" }
            form id="explain-form" data-segment=(seg.id) {
                label for="explain-contact" { "External id or e-mail" }
                input id="explain-contact" type="text" required autocomplete="off";
                button type="submit" { "Explain" }
            }
            div id="explain-result" aria-live="polite" {}
        }
    };
    layout(&s, "segment", &seg.name, "segments", body).into_response()
}

fn field_text(v: &FieldValue) -> String {
    match v {
        FieldValue::Text(t) => t.clone(),
        FieldValue::Number(x) => {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", *x as i64)
            } else {
                x.to_string()
            }
        }
        FieldValue::Date(d) => d.to_string(),
        FieldValue::Boolean(b) => if *b { "yes" } else { "no" }.to_owned(),
    }
}

pub async fn members(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let seg = match segment_or_404(&state, &s, &id).await {
        Ok(Some(seg)) => seg,
        Ok(None) => return not_found(&s, "There is no such segment."),
        Err(e) => return internal(e),
    };
    let after = paging(&q).ok().and_then(|(_, a)| a);
    // A search within the segment: the index's search set ANDed with the membership.
    let query = q.get("q").map(|x| x.trim().to_owned()).unwrap_or_default();
    let result: Result<_, ApiError> = async {
        let fields = state.store.fields(s.account.id).await?;
        let count = state
            .index
            .counts(&s.account, &[seg.id], None)
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        let (found, mut page) = if query.is_empty() {
            let page = state
                .index
                .members(&s.account, seg.id, None, after.as_deref(), MEMBERS_PAGE + 1)
                .await?;
            (count, page)
        } else {
            state
                .index
                .search_members(
                    &s.account,
                    seg.id,
                    &query,
                    after.as_deref(),
                    MEMBERS_PAGE + 1,
                )
                .await?
        };
        let next = (page.len() > MEMBERS_PAGE).then(|| {
            page.truncate(MEMBERS_PAGE);
            page.last().map(|c| cursor_for(&c.external_id))
        });
        Ok((fields, count, found, page, next.flatten()))
    }
    .await;
    let (fields, count, found, page, next): (
        Vec<FieldDef>,
        u64,
        u64,
        Vec<Contact>,
        Option<String>,
    ) = match result {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    // Pages are walked by cursor; the page number rides along in the links (`p`), only
    // to say where one is: a wrong one changes nothing but the label.
    let pages = (found as usize).div_ceil(MEMBERS_PAGE).max(1) as u64;
    let page_number = match after {
        None => 1,
        Some(_) => q
            .get("p")
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|p| (2..=pages).contains(p))
            .unwrap_or(2),
    };
    let base = format!("/panel/segments/{}/members", seg.id);
    let with_query = |more: &str| match (query.is_empty(), more.is_empty()) {
        (true, true) => base.clone(),
        (true, false) => format!("{base}?{more}"),
        (false, true) => format!("{base}?q={}", encode(&query)),
        (false, false) => format!("{base}?q={}&{more}", encode(&query)),
    };
    let first_href = with_query("");
    let next_href = next.map(|n| with_query(&format!("cursor={n}&p={}", page_number + 1)));
    let body = html! {
        div.title-row {
            h1 { "Members of " (seg.name) }
            div.head-actions {
                a.button href={"/panel/segments/" (seg.id)} { "Segment page" }
                a.button id="members-csv" href={"/panel/segments/" (seg.id) "/members.csv"} download { "Download CSV" }
            }
        }
        form.search role="search" method="get" action=(base) id="members-search" {
            label for="members-q" { "Search the members by external id, e-mail or phone, from its start" }
            input id="members-q" name="q" type="search" value=(query) autocomplete="off";
            button type="submit" { "Search" }
            @if !query.is_empty() { a href=(base) id="members-clear" { "Show all members" } }
        }
        p id="members-count" {
            @if query.is_empty() {
                (thousands(count)) " contacts"
            } @else {
                span id="members-found" { (thousands(found)) } " of " (thousands(count)) " contacts match \u{201c}" (query) "\u{201d}"
            }
            @if pages > 1 { " · page " span id="page-number" { (thousands(page_number)) } " of " (thousands(pages)) }
        }
        @if page.is_empty() && !query.is_empty() { p id="no-members" { "No member of this segment matches." } }
        div.table-wrap {
            table id="members" {
                thead { tr {
                    th scope="col" { "External id" } th scope="col" { "E-mail" } th scope="col" { "Phone" }
                    @for f in &fields { th scope="col" { (f.label) } }
                } }
                tbody {
                    @for c in &page {
                        tr {
                            td { a href={"/panel/contact?id=" (encode(&c.external_id))} { (c.external_id) } }
                            td { (c.email.as_deref().unwrap_or("")) }
                            td.nowrap { (c.phone.as_deref().unwrap_or("")) }
                            @for f in &fields { td.nowrap { (c.fields.get(&f.key).map(field_text).unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if after.is_some() { a.button href=(first_href) { "First page" } " " }
            @if let Some(n) = next_href { a.button id="next-page" href=(n) { "Next page" } }
        }
    };
    layout(&s, "members", &seg.name, "segments", body).into_response()
}

pub async fn contacts(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = q.get("q").map(|x| x.trim().to_owned()).unwrap_or_default();
    let after = paging(&q).ok().and_then(|(_, a)| a);
    let found: Result<Vec<Contact>, ApiError> = async {
        let limit = CONTACTS_PAGE + 1;
        if query.is_empty() {
            return Ok(state
                .store
                .contacts_page(s.account.id, after.as_deref(), limit as u32)
                .await?);
        }
        Ok(state
            .index
            .search(&s.account, &query, after.as_deref(), limit)
            .await?)
    }
    .await;
    let mut found = match found {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let next = (found.len() > CONTACTS_PAGE).then(|| {
        found.truncate(CONTACTS_PAGE);
        found.last().map(|c| cursor_for(&c.external_id))
    });
    let next_href = next
        .flatten()
        .map(|cursor| format!("/panel/contacts?q={}&cursor={cursor}", encode(&query)));
    let body = html! {
        h1 { "Contacts" }
        p { a.button href="/panel/contacts/import" id="import-contacts" { "Import contacts from CSV" } }
        form.search role="search" method="get" action="/panel/contacts" {
            label for="contact-search" { "External id, e-mail, phone or a text field, from its start" }
            input id="contact-search" name="q" type="search" value=(query);
            button type="submit" { "Search" }
        }
        @if found.is_empty() { p id="no-contacts" { "No contact matches." } }
        @else {
            @if query.is_empty() && after.is_none() { p.muted { "The first contacts by external id:" } }
            div.table-wrap {
                table id="contacts" {
                    thead { tr { th scope="col" { "External id" } th scope="col" { "E-mail" } th scope="col" { "Phone" } } }
                    tbody {
                        @for c in &found {
                            tr {
                                td { a href={"/panel/contact?id=" (encode(&c.external_id))} { (c.external_id) } }
                                td { (c.email.as_deref().unwrap_or("")) }
                                td { (c.phone.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if after.is_some() { a.button href={"/panel/contacts?q=" (encode(&query))} { "First page" } " " }
                @if let Some(href) = next_href { a.button id="next-contacts" href=(href) { "Next page" } }
            }
        }
    };
    layout(&s, "contacts", "Contacts", "contacts", body).into_response()
}

pub async fn contact(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = q.get("id").cloned().unwrap_or_default();
    let result: Result<_, ApiError> = async {
        let Some(c) = find_contact(&state, &s.account, &key).await? else {
            return Ok(None);
        };
        let events = state.store.contact_events(s.account.id, c.id).await?;
        let fields = state.store.fields(s.account.id).await?;
        let segments = state.store.segments(s.account.id, None).await?;
        let ids: Vec<SegmentId> = segments.iter().map(|seg| seg.id).collect();
        let member = state.index.member_of(&s.account, c.id, &ids).await?;
        let member_of: Vec<(SegmentId, String)> = segments
            .into_iter()
            .filter(|seg| member.contains(&seg.id))
            .map(|seg| (seg.id, seg.name))
            .collect();
        let zone = jiff::tz::TimeZone::get(&s.account.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        Ok(Some((c, events, fields, member_of, zone)))
    }
    .await;
    let (c, mut events, fields, member_of, zone) = match result {
        Ok(Some(x)) => x,
        Ok(None) => return not_found(&s, "There is no contact with that external id or e-mail."),
        Err(e) => return internal(e),
    };
    events.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
    let shown = events.len().min(200);
    let body = html! {
        h1 { "Contact " (c.external_id) }
        div.cards {
            section.card {
                h2 { "Fields" }
                dl id="contact-fields" {
                    dt { "E-mail" } dd { (c.email.as_deref().unwrap_or("—")) " " span.muted { (c.effective_email_status().map(|x| x.as_str()).unwrap_or("")) } }
                    dt { "Phone" } dd { (c.phone.as_deref().unwrap_or("—")) " " span.muted { (c.effective_sms_status().map(|x| x.as_str()).unwrap_or("")) } }
                    dt { "Push" } dd { @if !c.push_tokens.is_empty() { (c.push_tokens.len()) " token(s)" } @else { "—" } }
                    @for f in &fields {
                        dt { (f.label) } dd { (c.fields.get(&f.key).map(field_text).unwrap_or_else(|| "—".into())) }
                    }
                }
            }
            section.card {
                h2 { "Segments" }
                @if member_of.is_empty() { p { "In no segment." } }
                ul id="contact-segments" {
                    @for (id, name) in &member_of { li { a href={"/panel/segments/" (id)} { (name) } } }
                }
            }
        }
        section.card {
            h2 { "Timeline" }
            @if events.is_empty() { p { "No events yet." } }
            @else {
                p.muted { (events.len()) " events" @if shown < events.len() { ", the latest " (shown) " shown" } }
                ol.timeline id="contact-timeline" {
                    @for e in events.iter().take(shown) {
                        li {
                            time datetime=(e.timestamp.to_string()) { (zone.to_datetime(e.timestamp).strftime("%Y-%m-%d %H:%M").to_string()) }
                            " "
                            @match &e.body {
                                EventBody::System { kind, campaign, url } => {
                                    b { (kind.as_str()) }
                                    @if let Some(c) = campaign { " · campaign " (c) }
                                    @if let Some(u) = url { " · " (u) }
                                }
                                EventBody::Custom { name, properties } => {
                                    b { (name) } " " code { (serde_json::Value::Object(properties.clone()).to_string()) }
                                }
                                EventBody::Visit { url } => { b { "Visit" } " " (url) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&s, "contact", &c.external_id, "contacts", body).into_response()
}

pub async fn fields(State(state): State<AppState>, PageSession(s): PageSession) -> Response {
    let fields = match state.store.fields(s.account.id).await {
        Ok(f) => f,
        Err(e) => return internal(e.into()),
    };
    let body = html! {
        h1 { "Custom fields" }
        div.table-wrap {
            table id="fields" {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Label" } th scope="col" { "Type" } th scope="col" { span.sr { "Actions" } } } }
                tbody {
                    @for f in &fields {
                        tr data-key=(f.key) {
                            td { code { (f.key) } } td { (f.label) } td { (f.field_type.as_str()) }
                            td { button.danger type="button" data-delete=(f.key) aria-label={"Delete field " (f.key)} { "Delete" } }
                        }
                    }
                }
            }
        }
        p.error id="fields-error" role="alert" {}
        h2 { "New field" }
        form id="field-form" novalidate {
            div.row {
                p.field {
                    label for="field-key" { "Key" }
                    input id="field-key" name="key" required pattern="[a-z][a-z0-9_]{0,63}" aria-describedby="field-key-error";
                    span.error id="field-key-error" {}
                }
                p.field {
                    label for="field-label" { "Label" }
                    input id="field-label" name="label" aria-describedby="field-label-error";
                    span.error id="field-label-error" {}
                }
                p.field {
                    label for="field-type" { "Type" }
                    select id="field-type" name="type" {
                        option value="text" { "text" } option value="number" { "number" }
                        option value="date" { "date" } option value="boolean" { "boolean" }
                    }
                    span.error id="field-type-error" {}
                }
            }
            button.primary type="submit" id="create-field" { "Create field" }
        }
    };
    layout(&s, "fields", "Custom fields", "fields", body).into_response()
}

/// The segment's members as a CSV file (all of them, streamed).
pub async fn members_csv(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<segmentd_rules::SegmentId>,
) -> Response {
    match crate::export::members_csv(&state, &s.account, id).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
