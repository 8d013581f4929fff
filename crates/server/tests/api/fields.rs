use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

pub async fn a_declared_field_is_listed_with_its_type(app: TestApp) {
    let r = app
        .post(
            "/fields",
            &json!({"key": "city", "label": "City", "type": "text"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"key": "city", "label": "City", "type": "text"})
    );
    app.create_field("age", "number").await;
    let list: Value = app.get("/fields").await.json().await.unwrap();
    assert_eq!(
        list["items"],
        json!([{"key": "age", "label": "age", "type": "number"}, {"key": "city", "label": "City", "type": "text"}])
    );
}

pub async fn a_taken_key_is_a_conflict(app: TestApp) {
    app.create_field("city", "text").await;
    let r = app
        .post(
            "/fields",
            &json!({"key": "city", "label": "Town", "type": "number"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, &["key"]).await;
}

pub async fn bad_field_definitions_are_rejected_with_their_paths(app: TestApp) {
    let cases = [
        (json!({"key": "City", "type": "text"}), vec!["key"]),
        (json!({"key": "9lives", "type": "text"}), vec!["key"]),
        (json!({"key": "a".repeat(65), "type": "text"}), vec!["key"]),
        (json!({"key": "email", "type": "text"}), vec!["key"]),
        (json!({"key": "phone", "type": "text"}), vec!["key"]),
        (json!({"key": "ok", "type": "integer"}), vec!["type"]),
        (
            json!({"key": "Bad", "type": "integer"}),
            vec!["key", "type"],
        ),
        (
            json!({"key": "ok", "type": "text", "colour": "red"}),
            vec!["colour"],
        ),
        (json!({"type": "text"}), vec!["body"]),
        (json!({"key": 5, "type": "text"}), vec!["key"]),
    ];
    for (body, paths) in cases {
        let r = app.post("/fields", &body).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &paths).await;
    }
    let list: Value = app.get("/fields").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "nothing was stored");
}

pub async fn deleting_a_field_removes_its_values_and_a_used_field_cannot_be_deleted(app: TestApp) {
    app.create_field("city", "text").await;
    app.create_field("age", "number").await;
    app.upsert(json!([{"external_id": "a", "fields": {"city": "Warsaw", "age": 30}}]))
        .await;
    let id = app
        .create_segment(
            "Adults",
            json!({"field": "age", "op": "greater_or_equal", "value": 18}),
        )
        .await;

    assert_error(app.delete("/fields/age").await, StatusCode::CONFLICT, &[]).await;
    assert_error(app.delete("/fields/nope").await, StatusCode::NOT_FOUND, &[]).await;
    assert_eq!(
        app.delete("/fields/city").await.status(),
        StatusCode::NO_CONTENT
    );
    let contact: Value = app.get("/contacts/a").await.json().await.unwrap();
    assert_eq!(contact["fields"], json!({"age": 30.0}));

    // Re-declaring the key with another type starts from no values.
    app.create_field("city", "number").await;
    let contact: Value = app.get("/contacts/a").await.json().await.unwrap();
    assert_eq!(contact["fields"], json!({"age": 30.0}));

    assert_eq!(
        app.delete(&format!("/segments/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/fields/age").await.status(),
        StatusCode::NO_CONTENT
    );
}
