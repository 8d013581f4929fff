//! The HTTP API of `spec/api.md`, under `/api/v1`, with its OpenAPI document.

pub mod campaigns;
pub mod contacts;
pub mod events;
pub mod feedback;
pub mod fields;
pub mod imports;
pub mod keys;
pub mod membership;
pub mod paging;
pub mod segments;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::error::{ApiError, ErrorBody, ErrorContent, ErrorDetail};
use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "segmentd", description = "Dynamic segments of contacts, kept up to date."),
    paths(
        fields::create_field, fields::list_fields, fields::delete_field,
        contacts::upsert_contacts, contacts::get_contact, contacts::delete_contact, contacts::list_contacts,
        events::post_events,
        segments::create_segment, segments::list_segments, segments::get_segment, segments::update_segment,
        segments::delete_segment, segments::count_segment, segments::segment_members, segments::preview,
        segments::segment_members_csv,
        membership::changes, membership::history, membership::explain,
        campaigns::create_campaign, campaigns::list_campaigns, campaigns::get_campaign,
        campaigns::preview_campaign, campaigns::send_campaign, campaigns::campaign_recipients,
        campaigns::edit_campaign, campaigns::delete_campaign, campaigns::cancel_campaign,
        campaigns::pause_campaign, campaigns::resume_campaign, campaigns::duplicate_campaign,
        campaigns::test_campaign, campaigns::resend_campaign, campaigns::stats,
        feedback::email_feedback, feedback::ses_feedback, feedback::sendgrid_feedback,
        feedback::sms_inbound,
        keys::list_keys, keys::create_key, keys::revoke_key,
        imports::upload, imports::get_import, imports::preview, imports::start, imports::rejected,
    ),
    components(schemas(ErrorBody, ErrorContent, ErrorDetail)),
    modifiers(&BearerAuth, &CommonErrors),
    security(("api_key" = [])),
)]
pub struct ApiDoc;

/// Declares on every operation the refusals any of them can answer, so that the document
/// lists every status a client may see: 400 (a malformed request: bad JSON, a URL with
/// NUL or invalid UTF-8), 401 (no valid key), 413 and 422 where a body is taken, 404
/// where a path names something, 422 where the query is read, and 503 (the request ran
/// past its time).
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let named = path.contains('{');
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let body = op.request_body.is_some();
                let query = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query)
                    })
                });
                let mut wanted = vec![
                    ("400", "The request is malformed"),
                    ("401", "Missing, invalid or revoked API key"),
                    ("503", "The request took too long"),
                ];
                if body {
                    wanted.push(("413", "The body is too large"));
                    wanted.push(("422", "A value breaks the contract; each is named by path"));
                }
                if query {
                    wanted.push(("422", "A query parameter is out of bounds"));
                }
                if named {
                    wanted.push(("404", "Not found in this account"));
                }
                for (status, description) in wanted {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn no_such_route() -> ApiError {
    ApiError::NotFound("no such API route".into())
}

async fn method_not_allowed() -> (axum::http::StatusCode, Json<ErrorBody>) {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody {
            error: ErrorContent {
                code: "method_not_allowed".into(),
                message: "this route does not take that method".into(),
                details: Vec::new(),
            },
        }),
    )
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/fields",
            post(fields::create_field).get(fields::list_fields),
        )
        .route("/fields/{key}", delete(fields::delete_field))
        .route(
            "/contacts",
            post(contacts::upsert_contacts).get(contacts::list_contacts),
        )
        .route(
            "/contacts/{external_id}",
            get(contacts::get_contact).delete(contacts::delete_contact),
        )
        .route("/events", post(events::post_events))
        .route(
            "/segments",
            post(segments::create_segment).get(segments::list_segments),
        )
        .route("/segments/preview", post(segments::preview))
        .route(
            "/segments/{id}",
            get(segments::get_segment)
                .put(segments::update_segment)
                .delete(segments::delete_segment),
        )
        .route("/segments/{id}/count", get(segments::count_segment))
        .route("/segments/{id}/members", get(segments::segment_members))
        .route(
            "/segments/{id}/members.csv",
            get(segments::segment_members_csv),
        )
        .route("/segments/{id}/changes", get(membership::changes))
        .route("/segments/{id}/history", get(membership::history))
        .route("/segments/{id}/explain", get(membership::explain))
        .route(
            "/campaigns",
            post(campaigns::create_campaign).get(campaigns::list_campaigns),
        )
        .route(
            "/campaigns/{id}",
            get(campaigns::get_campaign)
                .put(campaigns::edit_campaign)
                .delete(campaigns::delete_campaign),
        )
        .route("/campaigns/{id}/cancel", post(campaigns::cancel_campaign))
        .route("/campaigns/{id}/pause", post(campaigns::pause_campaign))
        .route("/campaigns/{id}/resume", post(campaigns::resume_campaign))
        .route(
            "/campaigns/{id}/duplicate",
            post(campaigns::duplicate_campaign),
        )
        .route("/campaigns/{id}/test", post(campaigns::test_campaign))
        .route("/campaigns/{id}/resend", post(campaigns::resend_campaign))
        .route("/campaigns/{id}/stats", get(campaigns::stats))
        .route("/feedback/email", post(feedback::email_feedback))
        .route("/feedback/ses", post(feedback::ses_feedback))
        .route("/feedback/sendgrid", post(feedback::sendgrid_feedback))
        .route("/sms/inbound", post(feedback::sms_inbound))
        .route("/keys", get(keys::list_keys).post(keys::create_key))
        .route("/keys/{id}", delete(keys::revoke_key))
        .route("/campaigns/{id}/preview", post(campaigns::preview_campaign))
        .route("/campaigns/{id}/send", post(campaigns::send_campaign))
        .route(
            "/campaigns/{id}/recipients",
            get(campaigns::campaign_recipients),
        )
        .route("/imports", post(imports::upload))
        .route("/imports/{id}", get(imports::get_import))
        .route("/imports/{id}/preview", post(imports::preview))
        .route("/imports/{id}/start", post(imports::start))
        .route("/imports/{id}/rejected.csv", get(imports::rejected))
        .route("/openapi.json", get(openapi_json))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}
