//! Account isolation: another account's resources are 404, exactly as if absent.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

pub async fn one_account_never_sees_or_touches_anothers_data(app: TestApp) {
    let (_, other) = app.other_account().await;
    // Account B has a field, a contact with an event, and a segment.
    let b = |m: Method, p: &'static str, body: Value| {
        let app = &app;
        let other = other.clone();
        async move { app.send_as(&other, m, p, Some(&body)).await }
    };
    assert_eq!(
        b(
            Method::POST,
            "/fields",
            json!({"key": "city", "type": "text"})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        b(
            Method::POST,
            "/contacts",
            json!({"contacts": [{"external_id": "shared-id", "fields": {"city": "Oslo"}}]})
        )
        .await
        .status(),
        StatusCode::OK
    );
    assert_eq!(
        b(Method::POST, "/events", json!({"events": [{"type": "visit", "id": "v1", "contact": "shared-id", "url": "https://b/", "timestamp": "2026-01-01T00:00:00Z"}]}))
            .await
            .status(),
        StatusCode::OK
    );
    let r = b(
        Method::POST,
        "/segments",
        json!({"name": "B visitors", "rule": {"op": "occurred"}}),
    )
    .await;
    let b_segment = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    // Account A sees none of it.
    assert_eq!(
        app.get("/fields").await.json::<Value>().await.unwrap()["items"],
        json!([])
    );
    assert_eq!(
        app.get("/contacts").await.json::<Value>().await.unwrap()["items"],
        json!([])
    );
    assert_eq!(
        app.get("/segments").await.json::<Value>().await.unwrap()["items"],
        json!([])
    );
    for path in [
        format!("/segments/{b_segment}"),
        format!("/segments/{b_segment}/count"),
        format!("/segments/{b_segment}/members"),
        "/contacts/shared-id".to_owned(),
    ] {
        assert_error(app.get(&path).await, StatusCode::NOT_FOUND, &[]).await;
    }
    assert_error(
        app.delete(&format!("/segments/{b_segment}")).await,
        StatusCode::NOT_FOUND,
        &[],
    )
    .await;
    assert_error(
        app.delete("/contacts/shared-id").await,
        StatusCode::NOT_FOUND,
        &[],
    )
    .await;
    assert_error(app.delete("/fields/city").await, StatusCode::NOT_FOUND, &[]).await;
    let r = app
        .put(
            &format!("/segments/{b_segment}"),
            &json!({"name": "mine", "rule": {"op": "occurred"}}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, &[]).await;
    // A can neither reference B's segment nor use B's field, nor post events for B's contact.
    let r = app
        .post(
            "/segments",
            &json!({"name": "x", "rule": {"segment": b_segment, "op": "in"}}),
        )
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &["rule.segment"]).await;
    let r = app
        .post(
            "/segments/preview",
            &json!({"rule": {"field": "city", "op": "has_value"}}),
        )
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &["rule.field"]).await;
    let r = app.post_events(json!([{"type": "visit", "contact": "shared-id", "url": "https://a/", "timestamp": "2026-01-01T00:00:00Z"}])).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &["events[0].contact"]).await;

    // The same external id and event id are independent in A.
    app.upsert(json!([{"external_id": "shared-id"}])).await;
    assert_eq!(
        app.record(json!([{"type": "visit", "id": "v1", "contact": "shared-id", "url": "https://a/", "timestamp": "2026-01-02T00:00:00Z"}])).await,
        json!({"accepted": 1, "duplicates": 0})
    );
    let a_segment = app
        .create_segment(
            "B visitors",
            json!({"visit_url": {"op": "contains", "value": "https://b/"}, "op": "occurred"}),
        )
        .await;
    assert_eq!(
        app.count(a_segment, "2026-02-01T00:00:00Z").await,
        0,
        "B's visit never counts in A"
    );

    // B's data is untouched by everything A did.
    let r = b(Method::GET, "/contacts/shared-id", Value::Null).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["fields"],
        json!({"city": "Oslo"})
    );
    let r = app
        .send_as(
            &other,
            Method::GET,
            &format!("/segments/{b_segment}/count?as_of=2026-02-01T00%3A00%3A00Z"),
            None,
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["count"], 1);
}
