//! The campaign form, shared by "new campaign" and "edit": its fields, the values a
//! campaign (or a refused post) fills it with, and the posted form read back as the
//! API's `CampaignIn`, so that the panel and the API validate through the one
//! `parse_campaign`. The edit page and its save live here too.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use segmentd_rules::Issue;
use segmentd_store::{Campaign, CampaignStatus, Segment};
use serde_json::Value;

use super::{
    Flash, RecipientsQuery, forbidden, no_such_campaign, page, refused, render_show, zone,
};
use crate::api::campaigns::{CampaignIn, parse_campaign};
use crate::campaigns::lifecycle;
use crate::error::ApiError;
use crate::panel::session::{PageSession, SignedIn};
use crate::state::AppState;

/// Content keys per channel, as `parse_campaign` reads them. Only the chosen channel's
/// are sent, so the other fieldsets can be left filled in.
fn content_keys(channel: &str) -> &'static [&'static str] {
    match channel {
        "email" => &[
            "from",
            "reply_to",
            "unsubscribe_mailto",
            "subject",
            "html",
            "text",
        ],
        "sms" => &["text"],
        _ => &["title", "body", "link"],
    }
}

/// What the form shows: one value per single field, and the chosen segments.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Values {
    one: HashMap<String, String>,
    targets: Vec<String>,
    exclusions: Vec<String>,
}

impl Values {
    /// The form as posted (kept when it is refused, so nothing typed is lost).
    pub(super) fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut v = Values::default();
        for (k, val) in pairs {
            match k.as_str() {
                "target" => v.targets.push(val.clone()),
                "exclusion" => v.exclusions.push(val.clone()),
                "csrf" => {}
                _ => {
                    v.one.insert(k.clone(), val.clone());
                }
            }
        }
        v
    }

    /// A campaign as the form shows it: its send time in the account's zone.
    pub(super) fn of_campaign(c: &Campaign, zone: &jiff::tz::TimeZone) -> Self {
        let mut one = HashMap::new();
        one.insert("name".to_owned(), c.name.clone());
        one.insert("channel".to_owned(), c.channel.as_str().to_owned());
        if let Some(content) = c.content.as_object() {
            for (k, val) in content {
                if let Some(s) = val.as_str() {
                    one.insert(k.clone(), s.to_owned());
                }
            }
        }
        if let Some(t) = c.scheduled_at {
            one.insert("scheduled_at".to_owned(), local_input(t, zone));
        }
        if let Some(r) = c.rate_per_second {
            one.insert("rate_per_second".to_owned(), r.to_string());
        }
        Values {
            one,
            targets: c.targets.iter().map(|id| id.to_string()).collect(),
            exclusions: c.exclusions.iter().map(|id| id.to_string()).collect(),
        }
    }

    fn get(&self, key: &str) -> &str {
        self.one.get(key).map(String::as_str).unwrap_or("")
    }

    /// A trimmed value, `None` when empty.
    fn filled(&self, key: &str) -> Option<String> {
        Some(self.get(key).trim().to_owned()).filter(|v| !v.is_empty())
    }
}

/// A `datetime-local` value (`2026-12-01T09:30`, no offset) read in the account's time
/// zone, as the API's RFC 3339 `scheduled_at`. Anything else is passed on as written so
/// the API names the problem.
pub(super) fn scheduled_at(local: &str, zone: &jiff::tz::TimeZone) -> String {
    local
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| zone.to_timestamp(dt).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| local.to_owned())
}

/// The inverse of [`scheduled_at`]: an instant as a `datetime-local` value in the zone,
/// with seconds only when it has some.
pub(super) fn local_input(t: jiff::Timestamp, zone: &jiff::tz::TimeZone) -> String {
    let z = t.to_zoned_datetime(zone.clone());
    if z.second() == 0 {
        z.strftime("%Y-%m-%dT%H:%M").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

/// The form as the API's campaign: the chosen channel's content only. What only the
/// form can get wrong (a segment id or a rate that is not a number) is reported here;
/// the rest by `parse_campaign`.
pub(super) fn read(v: &Values, zone: &jiff::tz::TimeZone) -> Result<CampaignIn, ApiError> {
    let mut issues = Vec::new();
    let mut ids = |list: &str, raw: &[String]| -> Vec<i64> {
        let mut out = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            match s.trim().parse::<i64>() {
                Ok(id) => out.push(id),
                Err(_) => issues.push(Issue::new(format!("{list}[{i}]"), "expected a segment")),
            }
        }
        out
    };
    let targets = ids("targets", &v.targets);
    let exclusions = ids("exclusions", &v.exclusions);
    let rate_per_second = match v.filled("rate_per_second") {
        None => None,
        Some(r) => match r.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                issues.push(Issue::new(
                    "rate_per_second",
                    "expected a whole number of messages a second",
                ));
                None
            }
        },
    };
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    let channel = v.filled("channel").unwrap_or_default();
    let mut content = serde_json::Map::new();
    for key in content_keys(&channel) {
        if let Some(val) = v.filled(key) {
            content.insert((*key).to_owned(), Value::String(val));
        }
    }
    Ok(CampaignIn {
        name: v.filled("name").unwrap_or_default(),
        channel,
        content: Value::Object(content),
        targets,
        exclusions,
        scheduled_at: v.filled("scheduled_at").map(|l| scheduled_at(&l, zone)),
        rate_per_second,
    })
}

/// A refused form's problems, one sentence.
pub(super) fn problems(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn segment_options(segments: &[Segment], chosen: &[String]) -> Markup {
    html! {
        @for seg in segments {
            @let id = seg.id.to_string();
            option value=(id) selected[chosen.contains(&id)] { (seg.name) }
        }
    }
}

/// The fields of a campaign, filled with `v`, inside a form that posts to `action`.
pub(super) fn campaign_form(
    s: &SignedIn,
    segments: &[Segment],
    v: &Values,
    form_id: &str,
    action: &str,
    (submit_id, submit): (&str, &str),
) -> Markup {
    let channel = v.get("channel");
    html! {
        form method="post" action=(action) id=(form_id) {
            input type="hidden" name="csrf" value=(s.session.csrf_token);
            p { label for="c-name" { "Name" } input id="c-name" name="name" required value=(v.get("name")); }
            p {
                label for="c-channel" { "Channel" }
                select id="c-channel" name="channel" {
                    option value="email" selected[channel == "email"] { "E-mail" }
                    option value="sms" selected[channel == "sms"] { "SMS" }
                    option value="push" selected[channel == "push"] { "Push" }
                }
            }
            p {
                label for="c-targets" { "Send to members of (any of)" }
                select id="c-targets" name="target" multiple required { (segment_options(segments, &v.targets)) }
            }
            p {
                label for="c-exclusions" { "Except members of" }
                select id="c-exclusions" name="exclusion" multiple { (segment_options(segments, &v.exclusions)) }
            }
            fieldset {
                legend { "E-mail" }
                // Text, not type=email: "Shop <shop@example.com>" names the sender.
                p { label for="c-from" { "From" } input id="c-from" name="from" value=(v.get("from")) placeholder="Shop <shop@example.com>"; }
                p { label for="c-reply-to" { "Reply to (optional)" } input id="c-reply-to" name="reply_to" value=(v.get("reply_to")); }
                p { label for="c-unsubscribe-mailto" { "Unsubscribe address (optional)" } input id="c-unsubscribe-mailto" name="unsubscribe_mailto" type="email" value=(v.get("unsubscribe_mailto")); }
                p { label for="c-subject" { "Subject" } input id="c-subject" name="subject" value=(v.get("subject")); }
                p { label for="c-html" { "HTML body" } textarea id="c-html" name="html" rows="5" { (v.get("html")) } }
                p { label for="c-text" { "Text body (also the SMS text)" } textarea id="c-text" name="text" rows="3" { (v.get("text")) } }
            }
            fieldset {
                legend { "Push" }
                p { label for="c-title" { "Title" } input id="c-title" name="title" value=(v.get("title")); }
                p { label for="c-body" { "Body" } input id="c-body" name="body" value=(v.get("body")); }
                p { label for="c-link" { "Link" } input id="c-link" name="link" type="url" value=(v.get("link")); }
            }
            p.hint { "Use {{field}} for a contact's field, {{email}}, {{phone}}, {{external_id}}, and {{unsubscribe_url}} in e-mails." }
            p {
                label for="c-scheduled" { "Send at (optional; your account's time, empty: send by hand)" }
                input id="c-scheduled" name="scheduled_at" type="datetime-local" step="1" value=(v.get("scheduled_at"));
            }
            p {
                label for="c-rate" { "At most this many messages a second (optional)" }
                input id="c-rate" name="rate_per_second" type="number" min="1" max="100000" value=(v.get("rate_per_second"));
            }
            p { button.primary type="submit" id=(submit_id) { (submit) } }
        }
    }
}

fn editable(status: CampaignStatus) -> bool {
    matches!(status, CampaignStatus::Draft | CampaignStatus::Scheduled)
}

async fn edit_page(
    state: &AppState,
    s: &SignedIn,
    c: &Campaign,
    v: &Values,
    error: Option<&str>,
) -> Response {
    let segments = match state.store.segments(s.account.id, None).await {
        Ok(g) => g,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let action = format!("/panel/campaigns/{}/edit", c.id);
    page(
        s,
        &format!("Edit {}", c.name),
        html! {
            p { a href=(format!("/panel/campaigns/{}", c.id)) { "← " (c.name) } }
            h1 { "Edit campaign" }
            @if let Some(e) = error { p.error role="alert" id="campaign-error" { (e) } }
            (campaign_form(s, &segments, v, "edit-campaign", &action, ("save-campaign", "Save changes")))
        },
    )
}

/// `GET /panel/campaigns/{id}/edit`: the form filled with the campaign; once it is
/// being sent, its page with the reason it cannot be edited.
pub async fn edit(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
) -> Response {
    let c = match state.store.campaign(s.account.id, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return no_such_campaign(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !editable(c.status) {
        let why = format!(
            "campaign {id} is {}; only a draft or a scheduled campaign can be edited",
            c.status.as_str()
        );
        let shown = render_show(
            &state,
            &s,
            id,
            &RecipientsQuery::default(),
            Flash::error(why),
        )
        .await;
        return (StatusCode::CONFLICT, shown).into_response();
    }
    edit_page(&state, &s, &c, &Values::of_campaign(&c, &zone(&s)), None).await
}

/// `POST /panel/campaigns/{id}/edit`: saved through `lifecycle::edit`; problems shown
/// above the form as posted.
pub async fn save(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if !s.csrf_ok(csrf) {
        return forbidden();
    }
    let c = match state.store.campaign(s.account.id, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return no_such_campaign(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let v = Values::from_pairs(&pairs);
    let saved = async {
        let body = read(&v, &zone(&s))?;
        let draft = parse_campaign(&state, &s.account, body).await?;
        lifecycle::edit(&state, &s.account, id, &draft).await
    }
    .await;
    match saved {
        Ok(_) => Redirect::to(&format!("/panel/campaigns/{id}?done=saved")).into_response(),
        Err(ApiError::Validation(issues)) => {
            let shown = edit_page(&state, &s, &c, &v, Some(&problems(&issues))).await;
            (StatusCode::UNPROCESSABLE_ENTITY, shown).into_response()
        }
        Err(e) => refused(&state, &s, id, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_send_time_is_read_in_the_accounts_time_zone_and_shown_back_the_same() {
        let warsaw = jiff::tz::TimeZone::get("Europe/Warsaw").expect("zone");
        let cases = [
            ("2026-12-01T09:30", "2026-12-01T08:30:00Z"), // winter: UTC+1
            ("2026-07-01T09:30", "2026-07-01T07:30:00Z"), // summer: UTC+2
            ("2026-07-01T09:30:15", "2026-07-01T07:30:15Z"),
        ];
        for (local, want) in cases {
            assert_eq!(scheduled_at(local, &warsaw), want, "{local}");
            let t: jiff::Timestamp = want.parse().expect("timestamp");
            assert_eq!(local_input(t, &warsaw), local, "{want} shown back");
        }
        // The API will name the problem.
        assert_eq!(scheduled_at("tomorrow", &warsaw), "tomorrow");
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_form_becomes_the_apis_campaign_with_the_chosen_channels_content_only() {
        let utc = jiff::tz::TimeZone::UTC;
        let common = [
            ("csrf", "t"),
            ("name", " Spring "),
            ("target", "3"),
            ("target", "4"),
            ("exclusion", "5"),
            ("from", "Shop <shop@example.com>"),
            ("subject", "Hi"),
            ("text", "Hello"),
            ("title", "T"),
            ("reply_to", ""),
        ];
        /// The channel, pairs beside the common ones, and the content, rate and send
        /// time wanted.
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            Value,
            Option<u32>,
            Option<&'a str>,
        );
        let cases: [Case; 3] = [
            (
                "email",
                &[("rate_per_second", "20")],
                serde_json::json!({"from": "Shop <shop@example.com>", "subject": "Hi", "text": "Hello"}),
                Some(20),
                None,
            ),
            (
                "sms",
                &[("scheduled_at", "2099-01-02T03:04")],
                serde_json::json!({"text": "Hello"}),
                None,
                Some("2099-01-02T03:04:00Z"),
            ),
            (
                "push",
                &[("rate_per_second", " ")],
                serde_json::json!({"title": "T"}),
                None,
                None,
            ),
        ];
        for (channel, extra, content, rate, when) in cases {
            let mut all = pairs(&common);
            all.push(("channel".into(), channel.into()));
            all.extend(pairs(extra));
            let c = read(&Values::from_pairs(&all), &utc).expect(channel);
            assert_eq!(c.name, "Spring", "{channel}");
            assert_eq!(c.channel, channel);
            assert_eq!(c.content, content, "{channel}");
            assert_eq!((c.targets, c.exclusions), (vec![3, 4], vec![5]));
            assert_eq!(c.rate_per_second, rate, "{channel}");
            assert_eq!(c.scheduled_at.as_deref(), when, "{channel}");
        }
    }

    #[test]
    fn what_only_the_form_can_get_wrong_is_named_by_path() {
        let utc = jiff::tz::TimeZone::UTC;
        let cases: [(&[(&str, &str)], &str); 3] = [
            (&[("target", "x")], "targets[0]: expected a segment"),
            (
                &[("target", "1"), ("exclusion", "1"), ("exclusion", "")],
                "exclusions[1]: expected a segment",
            ),
            (
                &[("target", "1"), ("rate_per_second", "fast")],
                "rate_per_second: expected a whole number of messages a second",
            ),
        ];
        for (form, want) in cases {
            match read(&Values::from_pairs(&pairs(form)), &utc) {
                Err(ApiError::Validation(issues)) => assert_eq!(problems(&issues), want),
                other => panic!("{form:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_campaign_fills_the_form_it_was_made_from() {
        let utc = jiff::tz::TimeZone::UTC;
        let form = pairs(&[
            ("name", "Spring"),
            ("channel", "email"),
            ("target", "3"),
            ("exclusion", "5"),
            ("from", "shop@example.com"),
            ("subject", "Hi"),
            ("html", "<p>Hi</p>"),
            ("scheduled_at", "2099-01-02T03:04"),
            ("rate_per_second", "7"),
        ]);
        let v = Values::from_pairs(&form);
        let c = read(&v, &utc).expect("valid");
        let campaign = Campaign {
            id: 1,
            account_id: 1,
            name: c.name,
            channel: segmentd_store::Channel::Email,
            content: c.content,
            targets: c.targets,
            exclusions: c.exclusions,
            status: CampaignStatus::Scheduled,
            scheduled_at: c.scheduled_at.and_then(|t| t.parse().ok()),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            frozen_at: None,
            sent_at: None,
            excluded: None,
            status_reason: None,
            rate_per_second: c.rate_per_second,
        };
        assert_eq!(Values::of_campaign(&campaign, &utc), v);
    }
}
