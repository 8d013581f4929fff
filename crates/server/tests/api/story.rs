//! A marketer's story: fields, contacts, events, one segment per condition kind, and
//! counts and members checked against answers worked out by hand.
//!
//! Evaluation time: 2026-06-15T12:00:00Z; the account's zone is Europe/Warsaw, so "today"
//! is 2026-06-15 and `last_days: 7` is (2026-06-08T12:00Z, 2026-06-15T12:00Z].

use serde_json::{Value, json};

use crate::helpers::TestApp;

const AS_OF: &str = "2026-06-15T12:00:00Z";

async fn load(app: &TestApp) {
    for (key, ty) in [
        ("city", "text"),
        ("age", "number"),
        ("born", "date"),
        ("vip", "boolean"),
    ] {
        app.create_field(key, ty).await;
    }
    app.upsert(json!([
        {"external_id": "ann", "email": "ann@shop.io", "fields": {"city": "Warsaw", "age": 34, "born": "1990-06-20", "vip": true}},
        {"external_id": "bob", "email": "bob@mail.com", "phone": "+48 600 000 001", "fields": {"city": "Kraków", "age": 17, "born": "2008-02-29", "vip": false}},
        {"external_id": "cat", "fields": {"city": "warsaw ", "age": 52, "born": "1973-06-15"}},
        {"external_id": "dan", "phone": "+48 600 000 002"},
        {"external_id": "eve", "fields": {"city": "Gdańsk", "age": 34.5, "born": "1999-12-31", "vip": true}},
    ]))
    .await;
    app.record(json!([
        {"type": "system", "contact": "ann", "event": "MailOpen", "timestamp": "2026-06-10T09:00:00Z", "campaign": "c1"},
        {"type": "system", "contact": "ann", "event": "MailOpen", "timestamp": "2026-05-01T09:00:00Z", "campaign": "c2"},
        {"type": "custom", "contact": "ann", "name": "purchase", "timestamp": "2026-06-01T10:00:00Z", "properties": {"amount": 250, "category": "shoes"}},
        {"type": "visit", "contact": "ann", "url": "https://shop.io/pricing", "timestamp": "2026-06-14T08:00:00Z"},
        {"type": "system", "contact": "bob", "event": "MailClick", "timestamp": "2026-06-14T08:00:00Z", "url": "https://shop.io/sale"},
        {"type": "custom", "contact": "bob", "name": "purchase", "timestamp": "2026-06-12T10:00:00Z", "properties": {"amount": 50}},
        {"type": "custom", "contact": "bob", "name": "purchase", "timestamp": "2026-06-13T10:00:00Z", "properties": {"amount": 300}},
        {"type": "visit", "contact": "bob", "url": "https://shop.io/blog", "timestamp": "2026-06-10T08:00:00Z"},
        {"type": "system", "contact": "cat", "event": "MailOpen", "timestamp": "2026-06-16T08:00:00Z"},
        {"type": "visit", "contact": "cat", "url": "https://shop.io/PRICING", "timestamp": "2026-04-01T08:00:00Z"},
        {"type": "system", "contact": "dan", "event": "SmsClick", "timestamp": "2026-06-15T11:00:00Z"},
        {"type": "custom", "contact": "dan", "name": "purchase", "timestamp": "2026-06-14T10:00:00Z", "properties": {"amount": "250"}},
        {"type": "system", "contact": "eve", "event": "PushClick", "timestamp": "2026-01-01T08:00:00Z"},
        {"type": "custom", "contact": "eve", "name": "purchase", "timestamp": "2026-06-14T10:00:00Z", "properties": {"amount": 400, "shipping": {"country": "DE"}}},
    ]))
    .await;
}

pub async fn segments_of_every_condition_kind_hold_the_contacts_worked_out_by_hand(
    mut app: TestApp,
) {
    app.use_new_account("Europe/Warsaw").await;
    load(&app).await;
    let warsaw = app
        .create_segment(
            "In Warsaw",
            json!({"field": "city", "op": "equals", "value": "warsaw"}),
        )
        .await;
    let cases: Vec<(&str, Value, &[&str])> = vec![
        // Whitespace counts: "warsaw " is not "warsaw".
        (
            "city contains",
            json!({"field": "city", "op": "contains", "value": "WAR"}),
            &["ann", "cat"],
        ),
        (
            "city not_equals",
            json!({"field": "city", "op": "not_equals", "value": "warsaw"}),
            &["bob", "cat", "dan", "eve"],
        ),
        (
            "age between",
            json!({"field": "age", "op": "between", "value": [17, 34]}),
            &["ann", "bob"],
        ),
        (
            "age greater_than",
            json!({"field": "age", "op": "greater_than", "value": 34}),
            &["cat", "eve"],
        ),
        (
            "birthday this week",
            json!({"field": "born", "op": "anniversary_within", "value": 7}),
            &["ann", "cat"],
        ),
        (
            "born before 2000",
            json!({"field": "born", "op": "before", "value": "2000-01-01"}),
            &["ann", "cat", "eve"],
        ),
        (
            "not vip",
            json!({"field": "vip", "op": "is_false"}),
            &["bob"],
        ),
        (
            "vip unknown",
            json!({"field": "vip", "op": "has_no_value"}),
            &["cat", "dan"],
        ),
        (
            "shop.io e-mail",
            json!({"field": "email", "op": "ends_with", "value": "@SHOP.IO"}),
            &["ann"],
        ),
        (
            "no phone",
            json!({"field": "phone", "op": "has_no_value"}),
            &["ann", "cat", "eve"],
        ),
        (
            "opened lately",
            json!({"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 30}}),
            &["ann"],
        ),
        (
            "never opened",
            json!({"system_event": "MailOpen", "op": "not_occurred"}),
            &["bob", "cat", "dan", "eve"],
        ),
        (
            "opened c2",
            json!({"system_event": "MailOpen", "op": "occurred", "campaign": "c2"}),
            &["ann"],
        ),
        (
            "texted today",
            json!({"system_event": "SmsClick", "op": "occurred", "within": {"last_days": 1}}),
            &["dan"],
        ),
        (
            "big purchase this week",
            json!({"custom_event": "purchase", "op": "occurred", "within": {"last_days": 7},
            "where": [{"property": "amount", "op": "greater_than", "value": 100}]}),
            &["bob", "eve"],
        ),
        (
            "two purchases",
            json!({"custom_event": "purchase", "op": "occurred", "min_count": 2}),
            &["bob"],
        ),
        (
            "one purchase only",
            json!({"custom_event": "purchase", "op": "occurred", "max_count": 1}),
            &["ann", "dan", "eve"],
        ),
        (
            "ships to Germany",
            json!({"custom_event": "purchase", "op": "occurred",
            "where": [{"property": "shipping.country", "op": "equals", "value": "de"}]}),
            &["eve"],
        ),
        (
            "pricing since May",
            json!({"visit_url": {"op": "contains", "value": "/pricing"}, "op": "occurred",
            "within": {"since": "2026-05-01T00:00:00+02:00"}}),
            &["ann"],
        ),
        (
            "never visited",
            json!({"op": "not_occurred"}),
            &["dan", "eve"],
        ),
        (
            "in Warsaw segment",
            json!({"segment": warsaw, "op": "in"}),
            &["ann"],
        ),
        (
            "Warsaw or mature vip",
            json!({"any": [{"segment": warsaw, "op": "in"},
            {"all": [{"field": "vip", "op": "is_true"}, {"not": {"field": "age", "op": "less_than", "value": 30}}]}]}),
            &["ann", "eve"],
        ),
    ];
    for (name, rule, want) in cases {
        let id = app.create_segment(name, rule.clone()).await;
        assert_eq!(app.members(id, AS_OF).await, want, "members of {name}");
        assert_eq!(
            app.count(id, AS_OF).await,
            want.len() as u64,
            "count of {name}"
        );
        let preview = app.preview(rule, AS_OF).await;
        assert_eq!(preview["count"], want.len(), "preview of {name}");
        assert_eq!(preview["sample"], json!(want), "preview sample of {name}");
    }
}
