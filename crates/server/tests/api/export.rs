//! A segment's members as CSV: every member (more than one page), quoted where needed,
//! through both routes, and 404 for a segment of another account.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

pub async fn a_segment_exports_every_member_as_csv_in_external_id_order(app: TestApp) {
    app.create_field("city", "text").await;
    app.create_field("age", "number").await;
    app.create_field("vip", "boolean").await;
    let mut contacts = vec![
        json!({"external_id": "a-quote", "email": "q@x.io", "fields": {"city": "Say \"hi\", Bob", "age": 41, "vip": true}}),
        json!({"external_id": "b-lines", "phone": "+48 500", "channels": {"sms": "unsubscribed"}, "fields": {"city": "two\nlines"}}),
    ];
    for i in 0..2_500 {
        contacts.push(json!({"external_id": format!("c{i:05}"), "fields": {"age": i}}));
    }
    for chunk in contacts.chunks(1_000) {
        app.upsert(json!(chunk)).await;
    }
    let all = app
        .create_segment("Everyone", json!({"field": "age", "op": "has_value"}))
        .await;
    let csv = |path: String, accept: Option<&str>| {
        let mut r = app
            .client
            .get(format!("{}/api/v1{path}", app.address))
            .bearer_auth(&app.key);
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        r.send()
    };
    let r = csv(format!("/segments/{all}/members.csv"), None)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = r.text().await.unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        "external_id,email,phone,email_status,sms_status,age,city,vip"
    );
    assert_eq!(
        lines.next().unwrap(),
        "a-quote,q@x.io,,subscribed,,41,\"Say \"\"hi\"\", Bob\",true"
    );
    // b-lines has no age: not a member. Then every c, in order, across pages.
    let rest: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert_eq!(rest.len(), 2_500);
    assert_eq!(rest[0], "c00000,,,,,0,,");
    assert_eq!(rest[2_499], "c02499,,,,,2499,,");
    // The same file through `Accept: text/csv`.
    let again = csv(format!("/segments/{all}/members"), Some("text/csv"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(again, text);
    // A quoted line break survives; an unknown segment is a 404 in the error shape.
    let with_city = app
        .create_segment(
            "Lines",
            json!({"field": "city", "op": "contains", "value": "lines"}),
        )
        .await;
    let text = csv(format!("/segments/{with_city}/members.csv"), None)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("b-lines,,+48 500,,unsubscribed,,\"two\nlines\",\r\n"),
        "{text}"
    );
    let r = csv("/segments/99999/members.csv".into(), None)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
