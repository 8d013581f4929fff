//! Bad input of every kind: a clear 4xx in the error format, and nothing stored.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

pub async fn a_missing_or_bad_api_key_is_unauthorized(app: TestApp) {
    let no_key = app.client.get(app.url("/segments")).send().await.unwrap();
    assert_error(no_key, StatusCode::UNAUTHORIZED, &[]).await;
    for key in ["sk_wrong", "", "Basic abc", &app.key[..app.key.len() - 1]] {
        let r = app.send_as(key, Method::GET, "/segments", None).await;
        assert_error(r, StatusCode::UNAUTHORIZED, &[]).await;
    }
    let r = app
        .client
        .get(app.url("/fields"))
        .header("authorization", format!("Basic {}", app.key))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, &[]).await;
}

pub async fn malformed_json_is_a_bad_request_on_every_write(app: TestApp) {
    for path in [
        "/fields",
        "/contacts",
        "/events",
        "/segments",
        "/segments/preview",
    ] {
        for body in ["{", "not json", "", "{\"contacts\": [}"] {
            let r = app.raw(Method::POST, path, body).await;
            assert_error(r, StatusCode::BAD_REQUEST, &[]).await;
        }
    }
}

pub async fn wrong_shapes_and_unknown_body_fields_are_unprocessable(app: TestApp) {
    let cases = [
        ("/contacts", json!([]), vec!["body"]),
        ("/contacts", json!({"contacts": {}}), vec!["contacts"]),
        (
            "/contacts",
            json!({"contacts": [], "extra": 1}),
            vec!["extra"],
        ),
        (
            "/contacts",
            json!({"contacts": [{"external_id": 5}]}),
            vec!["contacts[0].external_id"],
        ),
        (
            "/contacts",
            json!({"contacts": [{"external_id": "a", "nick": "x"}]}),
            vec!["contacts[0].nick"],
        ),
        (
            "/contacts",
            json!({"contacts": [{"external_id": "a", "channels": {"email": "maybe"}}]}),
            vec!["contacts[0].channels.email"],
        ),
        (
            "/events",
            json!({"events": [{"contact": "a"}]}),
            vec!["events[0]"],
        ),
        ("/segments", json!({"name": "x"}), vec!["body"]),
        (
            "/segments",
            json!({"name": "x", "rule": {"op": "occurred"}, "owner": "me"}),
            vec!["owner"],
        ),
        (
            "/segments/preview",
            json!({"rule": {"op": "occurred"}, "limit": 3}),
            vec!["limit"],
        ),
    ];
    for (path, body, paths) in cases {
        let r = app.post(path, &body).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &paths).await;
    }
}

pub async fn every_invalid_contact_of_a_batch_is_listed_and_nothing_is_stored(app: TestApp) {
    app.create_field("age", "number").await;
    app.create_field("born", "date").await;
    app.create_field("vip", "boolean").await;
    let r = app
        .post_contacts(json!([
            {"external_id": "ok", "fields": {"age": 30}},
            {"external_id": "bad1", "fields": {"age": "thirty", "born": "1990-13-01"}},
            {"external_id": "bad2", "fields": {"vip": "yes", "shoe_size": 43}},
            {"external_id": "", "email": "not-an-email"},
            {"external_id": "bad3", "phone": "call me"},
            {"external_id": "bad4", "fields": {"born": "1990-1-1"}},
        ]))
        .await;
    assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            "contacts[1].fields.age",
            "contacts[1].fields.born",
            "contacts[2].fields.shoe_size",
            "contacts[2].fields.vip",
            "contacts[3].email",
            "contacts[3].external_id",
            "contacts[4].phone",
            "contacts[5].fields.born",
        ],
    )
    .await;
    let page: Value = app.get("/contacts").await.json().await.unwrap();
    assert_eq!(page["items"], json!([]), "a rejected batch stores nothing");
}

pub async fn an_oversized_body_is_refused(app: TestApp) {
    let big = format!(
        "{{\"contacts\": [{{\"external_id\": \"{}\"}}]}}",
        "x".repeat(65 * 1024 * 1024)
    );
    let r = app.raw(Method::POST, "/contacts", &big).await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, &[]).await;
}

pub async fn unknown_ids_and_routes_are_not_found(app: TestApp) {
    for path in [
        "/contacts/nobody",
        "/segments/77",
        "/segments/-1/count",
        "/segments/x",
        "/nowhere",
    ] {
        assert_error(app.get(path).await, StatusCode::NOT_FOUND, &[]).await;
    }
    let r = app
        .put(
            "/segments/77",
            &json!({"name": "x", "rule": {"op": "occurred"}}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, &[]).await;
    assert_error(app.delete("/fields/nope").await, StatusCode::NOT_FOUND, &[]).await;
    let r = app.send(Method::PATCH, "/segments", None).await;
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, &[]).await;
}

pub async fn text_with_a_nul_character_is_refused_with_its_path(app: TestApp) {
    let r = app
        .post_contacts(
            json!([{"external_id": "a\u{0}b"}, {"external_id": "ok", "email": "x\u{0}@y.io"}]),
        )
        .await;
    assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["contacts[0].external_id", "contacts[1].email"],
    )
    .await;
    let page: Value = app.get("/contacts").await.json().await.unwrap();
    assert_eq!(page["items"], json!([]));
}

/// NUL and invalid UTF-8 anywhere outside JSON bodies (paths, queries, cursors, forms,
/// signed in or not) are a 4xx in the spec's error shape on both backends, never a 500;
/// and a bad `next` on sign-in is never a 500 either.
pub async fn nul_and_invalid_utf8_in_urls_and_forms_are_refused_everywhere(app: TestApp) {
    app.upsert(json!([{"external_id": "ann"}])).await;
    let segment = app
        .create_segment("All", json!({"field": "email", "op": "has_value"}))
        .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let api = |path: &str| format!("{}/api/v1{path}", app.address);
    let cases: [(Method, String); 9] = [
        (Method::GET, api("/contacts?cursor=00")),
        (Method::GET, api("/contacts/%00")),
        (Method::DELETE, api("/contacts/%00")),
        (Method::GET, api("/contacts/%ff")),
        (
            Method::GET,
            api(&format!("/segments/{segment}/explain?contact=%00")),
        ),
        (
            Method::GET,
            api(&format!("/segments/{segment}/members?cursor=%ff")),
        ),
        (Method::GET, format!("{}/panel/contacts?q=%00", app.address)),
        (Method::GET, format!("{}/panel/contact?id=%00", app.address)),
        (Method::GET, api("/campaigns/abc")),
    ];
    for (method, url) in cases {
        let r = client
            .request(method.clone(), &url)
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(status.is_client_error(), "{method} {url}: {status}");
        if url.contains("/api/") {
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(body["error"]["code"].is_string(), "{method} {url}: {body}");
        }
    }
    // A forged tracking link of an account that never sent anything is refused and
    // writes nothing (no signing key is made for it).
    let r = client
        .get(format!("{}/t/o/{}/1/1/x", app.address, app.account.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.store
            .existing_tracking_secret(app.account.id)
            .await
            .unwrap(),
        None
    );
    // The sign-in form, unauthenticated: NUL in a field, a line break in `next`.
    for form in [
        "email=%00&password=x",
        "email=a%40b.c&password=x&next=%2Fpanel%0D%0ASet-Cookie%3A%20x",
        "email=a%40b.c&password=%ff",
    ] {
        let r = client
            .post(format!("{}/panel/sign-in", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{form}: {}", r.status());
        assert!(r.headers().get("set-cookie").is_none(), "{form}");
    }
}

/// A batch's length is checked while it is read: 20,000,000 empty items (60 MB) are refused at
/// item 10,001 naming the limit (no parse of the rest); a 1 MB bad value comes back
/// quoted by a short prefix; a long id list is refused without a lookup.
pub async fn the_cost_of_a_refusal_is_bounded_by_the_limits(app: TestApp) {
    let huge = format!("{{\"contacts\":[{}{{}}]}}", "[],".repeat(20_000_000));
    let r = app
        .client
        .post(format!("{}/api/v1/contacts", app.address))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10000"),
        "{body}"
    );
    let long = "x".repeat(1_000_000);
    let r = app
        .post_contacts(json!([{"external_id": "a", "email": 5, "fields": {long.clone(): long}}]))
        .await;
    let text = r.text().await.unwrap();
    assert!(text.len() < 10_000, "{} bytes of error", text.len());
    let ids: Vec<i64> = (1..=100_000).collect();
    let r = app
        .post(
            "/campaigns",
            &json!({"name": "x", "channel": "sms", "content": {"text": "x"}, "targets": ids, "exclusions": ids}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = r.text().await.unwrap();
    assert!(text.len() < 10_000, "{} bytes of error", text.len());
    assert!(text.contains("targets"));
}

/// Keys: several per account, named, shown once; only an admin key manages them; a
/// revoked key is refused at once.
pub async fn keys_are_created_listed_and_revoked_and_a_revoked_key_is_refused_at_once(
    app: TestApp,
) {
    let as_key = |key: &str, method: Method, path: &str| {
        app.client
            .request(method, format!("{}/api/v1{path}", app.address))
            .bearer_auth(key.to_owned())
    };
    let r = app.post("/keys", &json!({"name": "shop backend"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let backend = created["key"].as_str().unwrap().to_owned();
    assert!(backend.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["admin"], false);
    // The new key works, but cannot manage keys.
    let r = as_key(&backend, Method::GET, "/contacts")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = as_key(&backend, Method::GET, "/keys").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Listed by the admin key, never with the key itself.
    let list: Value = app.get("/keys").await.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(!list.to_string().contains(&backend));
    let mine = &items[0];
    assert_eq!(
        (&mine["name"], &mine["admin"]),
        (&json!("default"), &json!(true))
    );
    assert!(app.key.starts_with(mine["prefix"].as_str().unwrap()));
    assert!(mine["last_used_at"].is_string(), "its use is noted: {mine}");
    // Revoked: refused at once; revoking again is a 404.
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/keys/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = as_key(&backend, Method::GET, "/contacts")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.delete(&format!("/keys/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let list: Value = app.get("/keys").await.json().await.unwrap();
    assert!(list["items"][1]["revoked_at"].is_string(), "{list}");
    let r = app.post("/keys", &json!({"name": " "})).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &["name"]).await;
}
