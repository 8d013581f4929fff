use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

pub async fn a_segment_is_created_read_listed_updated_and_deleted(app: TestApp) {
    app.create_field("city", "text").await;
    app.upsert(json!([{"external_id": "a", "fields": {"city": "Warsaw"}}, {"external_id": "b", "fields": {"city": "Gdańsk"}}]))
        .await;
    let r = app
        .post(
            "/segments",
            &json!({"name": "Warsaw", "description": "From Warsaw",
            "rule": {"field": "city", "op": "equals", "value": "WARSAW"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "Warsaw");
    assert_eq!(created["description"], "From Warsaw");
    assert_eq!(
        created["rule"],
        json!({"field": "city", "op": "equals", "value": "WARSAW"})
    );
    assert_eq!(created["count"], 1);

    let got: Value = app
        .get(&format!("/segments/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["count"], 1);

    let r = app
        .put(&format!("/segments/{id}"), &json!({"name": "Not Warsaw", "rule": {"field": "city", "op": "not_equals", "value": "warsaw"}}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(
        (
            updated["name"].clone(),
            updated["count"].clone(),
            updated["description"].clone()
        ),
        (json!("Not Warsaw"), json!(1), json!(""))
    );

    app.create_segment(
        "Everyone in Gdańsk",
        json!({"field": "city", "op": "equals", "value": "gdańsk"}),
    )
    .await;
    let list: Value = app
        .get("/segments?search=WARSAW")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Not Warsaw"]);
    let all: Value = app.get("/segments").await.json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(all["items"][1]["count"], 1);

    assert_eq!(
        app.delete(&format!("/segments/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        app.get(&format!("/segments/{id}")).await,
        StatusCode::NOT_FOUND,
        &[],
    )
    .await;
    assert_error(
        app.delete(&format!("/segments/{id}")).await,
        StatusCode::NOT_FOUND,
        &[],
    )
    .await;
}

pub async fn a_taken_name_is_a_conflict_whatever_its_case(app: TestApp) {
    let rule = json!({"op": "occurred"});
    let first = app.create_segment("VIP", rule.clone()).await;
    let second = app.create_segment("Others", rule.clone()).await;
    assert_error(
        app.post("/segments", &json!({"name": "vip", "rule": rule}))
            .await,
        StatusCode::CONFLICT,
        &["name"],
    )
    .await;
    assert_error(
        app.put(
            &format!("/segments/{second}"),
            &json!({"name": "Vip", "rule": rule}),
        )
        .await,
        StatusCode::CONFLICT,
        &["name"],
    )
    .await;
    // Renaming a segment to its own name in another case is fine.
    let r = app
        .put(
            &format!("/segments/{first}"),
            &json!({"name": "vip", "rule": rule}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

pub async fn a_bad_rule_is_rejected_with_every_path_and_nothing_is_saved(app: TestApp) {
    app.create_field("age", "number").await;
    let r = app
        .post("/segments", &json!({"name": "", "rule": {"any": [
            {"field": "age", "op": "contains", "value": "x"},
            {"all": [{"field": "nope", "op": "equals", "value": "x"}, {"field": "age", "op": "between", "value": [5, 3]}]}
        ]}}))
        .await;
    assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            "name",
            "rule.any[0].op",
            "rule.any[1].all[0].field",
            "rule.any[1].all[1].value",
        ],
    )
    .await;
    let list: Value = app.get("/segments").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
}

pub async fn segment_references_are_checked_and_a_referenced_segment_cannot_be_deleted(
    app: TestApp,
) {
    app.create_field("vip", "boolean").await;
    app.upsert(json!([{"external_id": "a", "fields": {"vip": true}}, {"external_id": "b", "fields": {"vip": false}}, {"external_id": "c"}]))
        .await;
    let vip = app
        .create_segment("VIP", json!({"field": "vip", "op": "is_true"}))
        .await;
    let not_vip = app
        .create_segment("Not VIP", json!({"segment": vip, "op": "not_in"}))
        .await;
    assert_eq!(
        app.members(not_vip, "2026-01-01T00:00:00Z").await,
        ["b", "c"]
    );

    assert_error(
        app.post(
            "/segments",
            &json!({"name": "Ghost", "rule": {"segment": 999, "op": "in"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["rule.segment"],
    )
    .await;
    // VIP → Not VIP → VIP would be a cycle.
    assert_error(
        app.put(
            &format!("/segments/{vip}"),
            &json!({"name": "VIP", "rule": {"segment": not_vip, "op": "in"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["rule.segment"],
    )
    .await;
    assert_error(
        app.delete(&format!("/segments/{vip}")).await,
        StatusCode::CONFLICT,
        &[],
    )
    .await;
    assert_eq!(
        app.delete(&format!("/segments/{not_vip}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/segments/{vip}")).await.status(),
        StatusCode::NO_CONTENT
    );
}

pub async fn count_members_and_preview_honour_as_of(app: TestApp) {
    app.upsert(json!([{"external_id": "a", "email": "a@x.io"}, {"external_id": "b", "phone": "+1 555 0100"}, {"external_id": "c"}]))
        .await;
    app.record(json!([
        {"type": "system", "contact": "a", "event": "MailOpen", "timestamp": "2026-03-01T00:00:00Z"},
        {"type": "system", "contact": "b", "event": "MailOpen", "timestamp": "2026-03-10T00:00:00Z"},
    ]))
    .await;
    let rule = json!({"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 7}});
    let id = app.create_segment("Opened this week", rule.clone()).await;
    assert_eq!(app.count(id, "2026-03-05T00:00:00Z").await, 1);
    assert_eq!(app.members(id, "2026-03-05T00:00:00Z").await, ["a"]);
    assert_eq!(app.members(id, "2026-03-12T00:00:00Z").await, ["b"]);
    assert_eq!(app.count(id, "2026-02-01T00:00:00Z").await, 0);

    let page: Value = app
        .get(&format!(
            "/segments/{id}/members?as_of=2026-03-12T00%3A00%3A00Z"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page,
        json!({"items": [{"external_id": "b", "email": null, "phone": "+1 555 0100"}], "next_cursor": null})
    );

    let preview = app
        .preview(
            json!({"system_event": "MailOpen", "op": "not_occurred"}),
            "2026-03-05T00:00:00Z",
        )
        .await;
    assert_eq!(
        (preview["count"].clone(), preview["sample"].clone()),
        (json!(2), json!(["b", "c"]))
    );

    let r = app
        .get(&format!("/segments/{id}/count?as_of=yesterday"))
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &["as_of"]).await;
    let r = app
        .post(
            "/segments/preview",
            &json!({"rule": rule, "as_of": "2026-03-05"}),
        )
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &["as_of"]).await;
    let r = app.get("/segments/12345/count").await;
    assert_error(r, StatusCode::NOT_FOUND, &[]).await;
    let r = app.get("/segments/abc/members").await;
    assert_error(r, StatusCode::NOT_FOUND, &[]).await;
}

pub async fn the_openapi_document_describes_every_call_of_the_spec(app: TestApp) {
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    let calls = [
        ("/api/v1/fields", "post"),
        ("/api/v1/fields", "get"),
        ("/api/v1/fields/{key}", "delete"),
        ("/api/v1/contacts", "post"),
        ("/api/v1/contacts", "get"),
        ("/api/v1/contacts/{external_id}", "get"),
        ("/api/v1/contacts/{external_id}", "delete"),
        ("/api/v1/events", "post"),
        ("/api/v1/segments", "post"),
        ("/api/v1/segments", "get"),
        ("/api/v1/segments/{id}", "get"),
        ("/api/v1/segments/{id}", "put"),
        ("/api/v1/segments/{id}", "delete"),
        ("/api/v1/segments/{id}/count", "get"),
        ("/api/v1/segments/{id}/members", "get"),
        ("/api/v1/segments/preview", "post"),
    ];
    for (path, method) in calls {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
}

/// Drafts are parsed against a catalog kept per account: every field and segment write
/// must drop it, so a preview right after the write sees the write.
pub async fn a_preview_right_after_a_field_or_segment_write_parses_against_it(app: TestApp) {
    let by_tier = json!({"field": "tier", "op": "equals", "value": "gold"});
    let app = &app;
    let preview = |rule: &Value| {
        let body = json!({ "rule": rule });
        async move { app.post("/segments/preview", &body).await }
    };
    assert_error(
        preview(&by_tier).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["rule.field"],
    )
    .await;

    app.create_field("tier", "text").await;
    app.upsert(json!([{"external_id": "a", "fields": {"tier": "gold"}}, {"external_id": "b"}]))
        .await;
    let r = preview(&by_tier).await;
    assert_eq!(r.status(), StatusCode::OK, "a new field is known at once");
    assert_eq!(r.json::<Value>().await.unwrap()["count"], 1);

    assert_eq!(
        app.delete("/fields/tier").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        preview(&by_tier).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["rule.field"],
    )
    .await;

    let everyone = app
        .create_segment(
            "Everyone",
            json!({"not": {"field": "email", "op": "equals", "value": "-"}}),
        )
        .await;
    let in_it = json!({"segment": everyone, "op": "in"});
    let r = preview(&in_it).await;
    assert_eq!(r.status(), StatusCode::OK, "a new segment is known at once");
    assert_eq!(r.json::<Value>().await.unwrap()["count"], 2);
    assert_eq!(
        app.delete(&format!("/segments/{everyone}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        preview(&in_it).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["rule.segment"],
    )
    .await;
}
