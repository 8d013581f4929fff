//! The panel's API keys page: the account's keys (name, first characters, admin, created,
//! last used, revoked), a form for a new one (shown once, on the page that answers the
//! form), and a revoke button for each. Plain HTML forms with the session's CSRF token.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::issue_named_key;
use crate::error::ApiError;
use crate::panel::pages::layout;
use crate::panel::session::{CsrfForm, PageSession, SignedIn};
use crate::state::AppState;

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token; reload the page",
    )
        .into_response()
}

async fn page(
    state: &AppState,
    s: &SignedIn,
    shown: Option<(&str, &str)>,
    error: Option<&str>,
) -> Response {
    let keys = match state.store.api_keys(s.account.id).await {
        Ok(k) => k,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let body: Markup = html! {
        h1 { "API keys" }
        p { "Programs use these keys to call the API. A key is shown once, when it is created; keep it somewhere safe." }
        @if let Some((name, key)) = shown {
            div.notice role="status" id="new-key" {
                p { "Key " strong { (name) } " created. Copy it now: it will not be shown again." }
                p { code id="new-key-value" { (key) } }
            }
        }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        div.table-wrap {
            table id="keys" {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Key starts with" } th scope="col" { "Can manage keys" }
                    th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.sr { "Actions" } }
                } }
                tbody {
                    @for k in &keys {
                        tr data-id=(k.id) {
                            td { (k.name) }
                            td { code { @if k.prefix.is_empty() { "sk_…" } @else { (k.prefix) "…" } } }
                            td { @if k.admin { "yes" } @else { "no" } }
                            td { (k.created_at.strftime("%Y-%m-%d %H:%M")) }
                            td { @match k.last_used_at { Some(t) => (t.strftime("%Y-%m-%d %H:%M")), None => "never" } }
                            td {
                                @if let Some(t) = k.revoked_at {
                                    "Revoked " (t.strftime("%Y-%m-%d"))
                                } @else {
                                    form method="post" action={"/panel/keys/" (k.id) "/revoke"} {
                                        input type="hidden" name="csrf" value=(s.session.csrf_token);
                                        button.danger type="submit" aria-label={"Revoke key " (k.name)} { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New key" }
        form method="post" action="/panel/keys" id="key-form" {
            input type="hidden" name="csrf" value=(s.session.csrf_token);
            p { label for="key-name" { "Name" } input id="key-name" name="name" required maxlength="100"; }
            p { label { input type="checkbox" name="admin" value="true"; " Can manage keys" } }
            button type="submit" { "Create key" }
        }
    };
    layout(s, "keys", "API keys", "keys", body).into_response()
}

pub async fn list(State(state): State<AppState>, PageSession(s): PageSession) -> Response {
    page(&state, &s, None, None).await
}

#[derive(Debug, Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    pub admin: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Form(form): Form<NewKeyForm>,
) -> Response {
    if !s.csrf_ok(&form.csrf) {
        return forbidden();
    }
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return page(
            &state,
            &s,
            None,
            Some("Give the key a name of 1 to 100 characters."),
        )
        .await;
    }
    match issue_named_key(
        state.store.as_ref(),
        s.account.id,
        name,
        form.admin.is_some(),
    )
    .await
    {
        Ok((key, _)) => page(&state, &s, Some((name, &key)), None).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !s.csrf_ok(&form.csrf) {
        return forbidden();
    }
    match state
        .store
        .revoke_api_key(s.account.id, &id, state.clock.now())
        .await
    {
        Ok(_) => Redirect::to("/panel/keys").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
