//! What can be done to a campaign from its page: pause, resume, cancel, duplicate,
//! delete, resend to the failed, send a test. Each is a POST form with the CSRF token
//! that calls `campaigns::lifecycle` (the API's functions too) and leads back to a page
//! with a confirmation; a refusal shows lifecycle's sentence on the campaign's page.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use segmentd_store::{Campaign, CampaignStatus, Channel};
use serde::Deserialize;

use super::{Flash, RecipientsQuery, forbidden, no_such_campaign, refused, render_show};
use crate::campaigns::lifecycle::{self, MAX_TEST_ADDRESSES, TestResult};
use crate::error::ApiError;
use crate::panel::session::{CsrfForm, PageSession, SignedIn};
use crate::state::AppState;

/// The statuses each action starts from, as lifecycle allows them: a button is shown
/// only where it can work.
fn can(action: Action, status: CampaignStatus) -> bool {
    use CampaignStatus::*;
    match action {
        Action::Pause => status == Sending,
        Action::Resume => status == Paused,
        Action::Cancel => status == Scheduled,
        Action::Duplicate => true,
        Action::Delete => matches!(status, Draft | Cancelled),
    }
}

fn can_resend(status: CampaignStatus) -> bool {
    matches!(
        status,
        CampaignStatus::Sending | CampaignStatus::Paused | CampaignStatus::Sent
    )
}

/// The one-button actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Pause,
    Resume,
    Cancel,
    Duplicate,
    Delete,
}

impl Action {
    fn path(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Cancel => "cancel",
            Action::Duplicate => "duplicate",
            Action::Delete => "delete",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Action::Pause => "Pause",
            Action::Resume => "Resume",
            Action::Cancel => "Cancel sending",
            Action::Duplicate => "Duplicate",
            Action::Delete => "Delete",
        }
    }
}

fn button(s: &SignedIn, c: &Campaign, action: Action) -> Markup {
    let danger = matches!(action, Action::Cancel | Action::Delete);
    html! {
        form.inline method="post" action=(format!("/panel/campaigns/{}/{}", c.id, action.path())) {
            input type="hidden" name="csrf" value=(s.session.csrf_token);
            button.danger[danger] type="submit" id=(format!("{}-campaign", action.path())) { (action.label()) }
        }
    }
}

/// The buttons the campaign's status allows, and the resend form.
pub(super) fn buttons(s: &SignedIn, c: &Campaign) -> Markup {
    html! {
        div.actions id="campaign-actions" {
            @if matches!(c.status, CampaignStatus::Draft | CampaignStatus::Scheduled) {
                a.button id="edit-campaign" href=(format!("/panel/campaigns/{}/edit", c.id)) { "Edit" }
            }
            @for action in [Action::Pause, Action::Resume, Action::Cancel, Action::Duplicate, Action::Delete] {
                @if can(action, c.status) { (button(s, c, action)) }
            }
        }
        @if can_resend(c.status) {
            form.resend method="post" action=(format!("/panel/campaigns/{}/resend", c.id)) id="resend-form" {
                input type="hidden" name="csrf" value=(s.session.csrf_token);
                label.check {
                    input type="checkbox" name="include_unknown" value="yes" id="include-unknown";
                    " also recipients whose outcome is unknown (they may receive it twice)"
                }
                " "
                button type="submit" id="resend-campaign" { "Resend to failed" }
            }
        }
    }
}

/// The test form, filled with what was last posted, and each address's result.
pub(super) fn test_form(s: &SignedIn, c: &Campaign, flash: &Flash) -> Markup {
    let (what, placeholder) = match c.channel {
        Channel::Email => ("e-mail addresses", "ann@example.com, bob@example.com"),
        Channel::Sms => ("phone numbers", "+48500000001"),
        Channel::Push => ("push tokens", ""),
    };
    html! {
        section.card id="campaign-test" {
            h2 { "Send a test" }
            form method="post" action=(format!("/panel/campaigns/{}/test", c.id)) id="test-form" {
                input type="hidden" name="csrf" value=(s.session.csrf_token);
                p {
                    label for="test-to" { "Up to " (MAX_TEST_ADDRESSES) " " (what) ", one a line or separated by commas" }
                    textarea id="test-to" name="to" rows="3" placeholder=(placeholder) required { (flash.test_to) }
                }
                p {
                    label for="test-contact" { "Personalise as contact (external id, optional)" }
                    input id="test-contact" name="contact" value=(flash.test_contact);
                }
                p.hint { "The subject is marked [Test]; nothing is recorded for the campaign." }
                p { button type="submit" id="send-test" { "Send test" } }
            }
            @if let Some(results) = &flash.tests {
                div.table-wrap {
                    table id="test-results" {
                        thead { tr { th { "Address" } th { "Result" } th { "Reason" } } }
                        tbody {
                            @for r in results {
                                tr { td { (r.to) } td.result { (r.status) } td { (r.reason.clone().unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where a done action leads, with the flag its confirmation is shown by.
fn back(id: i64, done: &str) -> Response {
    Redirect::to(&format!("/panel/campaigns/{id}?done={done}")).into_response()
}

async fn run(state: &AppState, s: &SignedIn, id: i64, action: Action, form: CsrfForm) -> Response {
    if !s.csrf_ok(&form.csrf) {
        return forbidden();
    }
    let a = &s.account;
    let done = match action {
        Action::Pause => lifecycle::pause(state, a, id)
            .await
            .map(|_| back(id, "paused")),
        Action::Resume => lifecycle::resume(state, a, id)
            .await
            .map(|_| back(id, "resumed")),
        Action::Cancel => lifecycle::cancel(state, a, id)
            .await
            .map(|_| back(id, "cancelled")),
        Action::Duplicate => lifecycle::duplicate(state, a, id)
            .await
            .map(|copy| back(copy.id, "duplicated")),
        Action::Delete => lifecycle::delete(state, a, id)
            .await
            .map(|()| Redirect::to("/panel/campaigns?done=deleted").into_response()),
    };
    match done {
        Ok(to) => to,
        Err(e) => refused(state, s, id, e).await,
    }
}

pub async fn pause(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    run(&state, &s, id, Action::Pause, form).await
}

pub async fn resume(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    run(&state, &s, id, Action::Resume, form).await
}

pub async fn cancel(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    run(&state, &s, id, Action::Cancel, form).await
}

pub async fn duplicate(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    run(&state, &s, id, Action::Duplicate, form).await
}

pub async fn delete(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    run(&state, &s, id, Action::Delete, form).await
}

#[derive(Debug, Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    csrf: String,
    /// Present (any value) when the box is ticked.
    include_unknown: Option<String>,
}

pub async fn resend(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<ResendForm>,
) -> Response {
    if !s.csrf_ok(&form.csrf) {
        return forbidden();
    }
    match lifecycle::resend(&state, &s.account, id, form.include_unknown.is_some()).await {
        Ok(n) => Redirect::to(&format!("/panel/campaigns/{id}?done=resent&n={n}")).into_response(),
        Err(e) => refused(&state, &s, id, e).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct TestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    contact: String,
}

/// The addresses typed: one a line or separated by commas (or semicolons, as mail
/// programs copy them), blanks dropped.
pub(super) fn addresses(typed: &str) -> Vec<String> {
    typed
        .split([',', ';', '\n', '\r'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sends the test and shows the page with each address's result (not a redirect: the
/// results are not kept anywhere).
pub async fn test(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<TestForm>,
) -> Response {
    if !s.csrf_ok(&form.csrf) {
        return forbidden();
    }
    let campaign = match state.store.campaign(s.account.id, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return no_such_campaign(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let to = addresses(&form.to);
    let contact = Some(form.contact.trim()).filter(|c| !c.is_empty());
    let mut flash = Flash {
        test_to: form.to.clone(),
        test_contact: form.contact.clone(),
        ..Flash::default()
    };
    let issues = lifecycle::check_test_addresses(campaign.channel, &to);
    let sent: Result<Vec<TestResult>, ApiError> = if issues.is_empty() {
        lifecycle::test_send(&state, &s.account, id, &to, contact).await
    } else {
        Err(ApiError::Validation(issues))
    };
    let status = match sent {
        Ok(results) => {
            flash.tests = Some(results);
            StatusCode::OK
        }
        Err(e) => {
            let (status, why) = super::explain(&e);
            match why {
                Some(why) => flash.error = Some(why),
                None => return e.into_response(),
            }
            status
        }
    };
    let shown = render_show(&state, &s, id, &RecipientsQuery::default(), flash).await;
    (status, shown).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_follow_the_statuses_lifecycle_allows() {
        use CampaignStatus::*;
        // (status, pause, resume, cancel, duplicate, delete, resend)
        let cases = [
            (Draft, [false, false, false, true, true, false]),
            (Scheduled, [false, false, true, true, false, false]),
            (Sending, [true, false, false, true, false, true]),
            (Paused, [false, true, false, true, false, true]),
            (Sent, [false, false, false, true, false, true]),
            (Cancelled, [false, false, false, true, true, false]),
        ];
        for (status, want) in cases {
            let got = [
                can(Action::Pause, status),
                can(Action::Resume, status),
                can(Action::Cancel, status),
                can(Action::Duplicate, status),
                can(Action::Delete, status),
                can_resend(status),
            ];
            assert_eq!(got, want, "{status:?}");
        }
    }

    #[test]
    fn test_addresses_are_split_on_lines_commas_and_semicolons() {
        let cases: [(&str, &[&str]); 5] = [
            ("ann@example.com", &["ann@example.com"]),
            ("a@x.org, b@x.org", &["a@x.org", "b@x.org"]),
            ("a@x.org\r\nb@x.org\n\n", &["a@x.org", "b@x.org"]),
            (
                " a@x.org ; b@x.org,,c@x.org ",
                &["a@x.org", "b@x.org", "c@x.org"],
            ),
            ("  \n , ", &[]),
        ];
        for (typed, want) in cases {
            assert_eq!(addresses(typed), want, "{typed:?}");
        }
    }
}
