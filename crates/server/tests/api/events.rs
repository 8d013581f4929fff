use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

pub async fn events_of_every_type_are_accepted_and_reposting_an_id_changes_nothing(app: TestApp) {
    app.upsert(json!([{"external_id": "a"}, {"external_id": "b"}]))
        .await;
    let batch = json!([
        {"type": "system", "id": "s1", "contact": "a", "event": "MailOpen", "timestamp": "2026-01-01T10:00:00Z", "campaign": "c1"},
        {"type": "system", "contact": "a", "event": "MailClick", "timestamp": "2026-01-01T10:00:00+02:00", "url": "https://x/y"},
        {"type": "custom", "id": "p1", "contact": "b", "name": "purchase", "timestamp": "2026-01-02T00:00:00Z",
         "properties": {"amount": 120, "shipping": {"country": "PL"}}},
        {"type": "visit", "id": "v1", "contact": "b", "url": "https://shop/pricing", "timestamp": "2026-01-03T00:00:00Z"},
        {"type": "visit", "id": "v1", "contact": "a", "url": "https://shop/other", "timestamp": "2026-01-03T00:00:00Z"},
    ]);
    assert_eq!(
        app.record(batch.clone()).await,
        json!({"accepted": 4, "duplicates": 1})
    );
    assert_eq!(
        app.record(batch).await,
        json!({"accepted": 1, "duplicates": 4}),
        "only the event without an id is new again"
    );

    // The first "v1" stayed: b visited /pricing, a never visited /other.
    let other = app
        .create_segment(
            "Other page",
            json!({"visit_url": {"op": "contains", "value": "/other"}, "op": "occurred"}),
        )
        .await;
    assert_eq!(app.count(other, "2026-02-01T00:00:00Z").await, 0);
    let pricing = app
        .create_segment(
            "Pricing",
            json!({"visit_url": {"op": "ends_with", "value": "PRICING"}, "op": "occurred"}),
        )
        .await;
    assert_eq!(app.members(pricing, "2026-02-01T00:00:00Z").await, ["b"]);
}

pub async fn an_event_for_an_unknown_contact_rejects_the_whole_batch(app: TestApp) {
    app.upsert(json!([{"external_id": "a"}])).await;
    let r = app
        .post_events(json!([
            {"type": "system", "id": "s1", "contact": "a", "event": "MailOpen", "timestamp": "2026-01-01T10:00:00Z"},
            {"type": "system", "contact": "ghost", "event": "MailOpen", "timestamp": "2026-01-01T10:00:00Z"},
            {"type": "visit", "contact": "nobody", "url": "https://x", "timestamp": "2026-01-01T10:00:00Z"},
        ]))
        .await;
    let body = assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["events[1].contact", "events[2].contact"],
    )
    .await;
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ghost")
    );
    // Nothing was stored: s1 is new when posted again.
    assert_eq!(
        app.record(json!([{"type": "system", "id": "s1", "contact": "a", "event": "MailOpen", "timestamp": "2026-01-01T10:00:00Z"}])).await,
        json!({"accepted": 1, "duplicates": 0})
    );
}

pub async fn invalid_events_are_each_reported_with_their_paths_and_nothing_is_stored(app: TestApp) {
    app.upsert(json!([{"external_id": "a"}])).await;
    let r = app
        .post_events(json!([
            {"type": "system", "id": "ok", "contact": "a", "event": "MailOpen", "timestamp": "2026-01-01T10:00:00Z"},
            {"type": "system", "contact": "a", "event": "MailRead", "timestamp": "2026-01-01T10:00:00Z"},
            {"type": "custom", "contact": "a", "name": "", "timestamp": "2026-01-01T10:00:00Z"},
            {"type": "custom", "contact": "a", "name": "x".repeat(201), "timestamp": "2026-01-01T10:00:00Z"},
            {"type": "visit", "contact": "a", "url": "https://x", "timestamp": "2026-01-01 10:00"},
            {"type": "visit", "contact": "a", "url": "https://x", "timestamp": "2026-01-01T10:00:00"},
            {"type": "click", "contact": "a"},
            {"type": "visit", "contact": "a", "url": "https://x", "timestamp": "2026-01-01T10:00:00Z", "extra": 1},
            {"type": "custom", "contact": "a", "name": "n", "timestamp": "2026-01-01T10:00:00Z", "properties": [1]},
            {"type": "system", "id": "", "contact": "a", "event": "MailOpen", "timestamp": "2026-01-01T10:00:00Z"},
        ]))
        .await;
    assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            "events[1].event",
            "events[2].name",
            "events[3].name",
            "events[4].timestamp",
            "events[5].timestamp",
            "events[6].type",
            "events[7]",
            "events[8]",
            "events[9].id",
        ],
    )
    .await;
    assert_eq!(
        app.record(json!([{"type": "system", "id": "ok", "contact": "a", "event": "MailOpen", "timestamp": "2026-01-01T10:00:00Z"}])).await,
        json!({"accepted": 1, "duplicates": 0})
    );
}

/// Items of the right shapes take the typed fast path; their values are still checked
/// one by one and reported under each item's own index.
pub async fn well_shaped_events_with_bad_values_are_reported_by_index(app: TestApp) {
    app.upsert(json!([{"external_id": "a"}])).await;
    let ok = json!({"type": "visit", "id": "v-ok", "contact": "a", "url": "https://x", "timestamp": "2026-01-01T10:00:00Z"});
    let bad_event = json!({"type": "system", "contact": "a", "event": "MailRead", "timestamp": "2026-01-01T10:00:00Z"});
    let bad_time =
        json!({"type": "visit", "contact": "a", "url": "https://x", "timestamp": "yesterday"});
    let cases = [
        (json!([ok, bad_event, ok]), vec!["events[1].event"]),
        (json!([ok, bad_time]), vec!["events[1].timestamp"]),
        (
            json!([{"type": "visit", "id": "", "contact": "a", "url": "https://x", "timestamp": "2026-01-01T10:00:00Z"}]),
            vec!["events[0].id"],
        ),
        (
            json!([ok, {"type": "custom", "contact": "", "name": "n", "timestamp": "2026-01-01T10:00:00Z"}]),
            vec!["events[1].contact"],
        ),
        (
            json!([ok, ok, bad_time, ok, bad_event]),
            vec!["events[2].timestamp", "events[4].event"],
        ),
        // A NUL anywhere sends the batch down the slow path, which names it.
        (
            json!([ok, {"type": "custom", "contact": "a", "name": "n", "timestamp": "2026-01-01T10:00:00Z", "properties": {"k": "a\u{0}b"}}]),
            vec!["events[1].properties.k"],
        ),
    ];
    for (batch, paths) in cases {
        let r = app.post_events(batch).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &paths).await;
    }
    // Nothing of any refused batch was stored: the good item is new now.
    assert_eq!(
        app.record(json!([ok])).await,
        json!({"accepted": 1, "duplicates": 0})
    );
}

pub async fn a_batch_of_ten_thousand_events_is_accepted_in_one_request(app: TestApp) {
    app.upsert(json!([{"external_id": "a"}])).await;
    let batch: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"type": "custom", "id": format!("e{i}"), "contact": "a", "name": "purchase",
            "timestamp": "2026-01-01T10:00:00Z", "properties": {"amount": i, "sku": "SKU-123456"}})
        })
        .collect();
    assert_eq!(
        app.record(Value::Array(batch)).await,
        json!({"accepted": 10_000, "duplicates": 0})
    );
}
