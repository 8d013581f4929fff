//! The panel: server-rendered pages for marketers, under `/panel`, in the same binary as
//! the API. Sign-in with e-mail and password (argon2), a session cookie, CSRF tokens on
//! every write; pages in `pages.rs` (maud), their JSON in `api.rs`, their JavaScript and
//! CSS in `assets/` (our own, embedded with `include_str!`, nothing built with Node).

pub mod api;
pub mod campaigns;
pub mod imports;
pub mod keys;
pub mod numbers;
pub mod pages;
pub mod plain;
pub mod session;
pub mod words;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

const PANEL_JS: &str = include_str!("assets/panel.js");
const PANEL_CSS: &str = include_str!("assets/panel.css");

/// Only our own files run or style the pages: no inline script, no other origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PANEL_JS,
    )
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PANEL_CSS,
    )
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/assets/panel.js", get(js))
        .route("/assets/panel.css", get(css))
        .route("/segments", get(pages::segments))
        .route("/segments/new", get(pages::new_segment))
        .route("/segments/{id}", get(pages::segment_page))
        .route("/segments/{id}/edit", get(pages::edit_segment))
        .route("/segments/{id}/members", get(pages::members))
        .route("/segments/{id}/members.csv", get(pages::members_csv))
        .route("/contacts", get(pages::contacts))
        .route("/contacts/import", get(imports::page))
        .route("/assets/import.js", get(imports::js))
        .route("/imports/{id}/rejected.csv", get(imports::rejected))
        .route("/api/imports", post(imports::upload))
        .route("/api/imports/{id}", get(imports::status))
        .route("/api/imports/{id}/preview", post(imports::preview))
        .route("/api/imports/{id}/start", post(imports::start))
        .route("/contact", get(pages::contact))
        .route("/fields", get(pages::fields))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/campaigns", get(campaigns::list).post(campaigns::create))
        .route("/campaigns/{id}", get(campaigns::show))
        .route("/campaigns/{id}/send", post(campaigns::send))
        .route(
            "/campaigns/{id}/edit",
            get(campaigns::edit).post(campaigns::save),
        )
        .route("/campaigns/{id}/pause", post(campaigns::pause))
        .route("/campaigns/{id}/resume", post(campaigns::resume))
        .route("/campaigns/{id}/cancel", post(campaigns::cancel))
        .route("/campaigns/{id}/duplicate", post(campaigns::duplicate))
        .route("/campaigns/{id}/delete", post(campaigns::delete))
        .route("/campaigns/{id}/resend", post(campaigns::resend))
        .route("/campaigns/{id}/test", post(campaigns::test))
        .route(
            "/api/segments",
            get(api::list_segments).post(api::create_segment),
        )
        .route("/api/segments/{id}", put(api::update_segment))
        .route("/api/segments/{id}/history", get(api::history))
        .route("/api/segments/{id}/explain", get(api::explain_contact))
        .route("/api/preview", post(api::preview))
        .route("/api/values", get(api::values))
        .route("/api/fields", get(api::list_fields).post(api::create_field))
        .route("/api/fields/{key}", delete(api::delete_field))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}
