use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

pub async fn an_upsert_creates_then_patches_only_the_given_attributes(app: TestApp) {
    app.create_field("city", "text").await;
    app.create_field("age", "number").await;
    app.create_field("born", "date").await;
    app.create_field("vip", "boolean").await;
    let r = app
        .post_contacts(
            json!([{"external_id": "a", "email": "a@example.com", "phone": "+48 600 100 200",
            "fields": {"city": "Kraków", "age": 41, "born": "1985-02-28", "vip": true}}]),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"upserted": 1}));
    let got: Value = app.get("/contacts/a").await.json().await.unwrap();
    assert_eq!(
        got,
        json!({"external_id": "a", "email": "a@example.com", "phone": "+48 600 100 200",
               "fields": {"age": 41.0, "born": "1985-02-28", "city": "Kraków", "vip": true},
               "channels": {"email": "subscribed", "sms": "subscribed", "push_tokens": []}})
    );

    // Given fields are set, null and "" clear, others are kept.
    app.upsert(json!([{"external_id": "a", "phone": null,
        "fields": {"city": "", "age": null, "vip": false},
        "channels": {"email": "unsubscribed", "push_tokens": ["tok"]}}]))
        .await;
    let got: Value = app.get("/contacts/a").await.json().await.unwrap();
    assert_eq!(
        got,
        json!({"external_id": "a", "email": "a@example.com", "phone": null,
               "fields": {"born": "1985-02-28", "vip": false},
               "channels": {"email": "unsubscribed", "sms": null, "push_tokens": ["tok"]}})
    );
}

pub async fn a_batch_of_ten_thousand_contacts_is_accepted_in_one_request(app: TestApp) {
    app.create_field("n", "number").await;
    let batch: Vec<Value> = (0..10_000)
        .map(|i| json!({"external_id": format!("c{i:05}"), "email": format!("c{i}@example.com"), "fields": {"n": i}}))
        .collect();
    let r = app.post_contacts(Value::Array(batch)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["upserted"], 10_000);
    let page: Value = app.get("/contacts?limit=10000").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 10_000);
    assert_eq!(page["next_cursor"], Value::Null);
}

pub async fn more_than_ten_thousand_contacts_are_refused_and_nothing_is_stored(app: TestApp) {
    let batch: Vec<Value> = (0..10_001)
        .map(|i| json!({"external_id": format!("c{i}")}))
        .collect();
    assert_error(
        app.post_contacts(Value::Array(batch)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["contacts"],
    )
    .await;
    let page: Value = app.get("/contacts").await.json().await.unwrap();
    assert_eq!(page["items"], json!([]));
}

pub async fn contacts_are_listed_in_pages_by_external_id(app: TestApp) {
    app.upsert(json!([{"external_id": "c"}, {"external_id": "a"}, {"external_id": "b"}, {"external_id": "d"}, {"external_id": "e"}]))
        .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page: Value = app
            .get(&format!("/contacts?limit=2&cursor={cursor}"))
            .await
            .json()
            .await
            .unwrap();
        pages += 1;
        for c in page["items"].as_array().unwrap() {
            seen.push(c["external_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);
    assert_error(
        app.get("/contacts?limit=0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["limit"],
    )
    .await;
    assert_error(
        app.get("/contacts?limit=10001").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["limit"],
    )
    .await;
    assert_error(
        app.get("/contacts?cursor=zz").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["cursor"],
    )
    .await;
}

pub async fn a_deleted_contact_is_gone_with_its_events(app: TestApp) {
    app.upsert(json!([{"external_id": "a"}, {"external_id": "b"}]))
        .await;
    app.record(json!([{"type": "visit", "id": "v1", "contact": "a", "url": "https://x/", "timestamp": "2026-01-01T00:00:00Z"}]))
        .await;
    assert_eq!(
        app.delete("/contacts/a").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(app.get("/contacts/a").await, StatusCode::NOT_FOUND, &[]).await;
    assert_error(app.delete("/contacts/a").await, StatusCode::NOT_FOUND, &[]).await;
    let id = app
        .create_segment("Visitors", json!({"op": "occurred"}))
        .await;
    assert_eq!(app.count(id, "2026-02-01T00:00:00Z").await, 0);
}
