//! The panel's contact import over HTTP: the page, the upload (CSRF required), preview,
//! start, progress until done and the rejected rows, for the signed-in account only.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::http::{App, Session, spawn_with};

async fn call(
    app: &App,
    s: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = app
        .req(method, path, Some(s))
        .header("x-csrf-token", &s.csrf);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_csv_is_uploaded_previewed_imported_and_its_rejected_rows_downloaded() {
    let app = spawn_with(segmentd::settings::DeliverySettings::default()).await;
    app.account_with_user("Acme", "ann@example.com").await;
    app.account_with_user("Other", "bob@example.com").await;
    let s = app.session("ann@example.com").await;
    let page = app
        .req(Method::GET, "/panel/contacts/import", Some(&s))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"import-file\""), "{html}");
    assert!(html.contains("/panel/assets/import.js"));
    let csv = "id,E-mail,Score\nc1,c1@example.com,5\nc2,broken,6\nc3,,x\n";
    let upload = |csrf: &str| {
        app.req(Method::POST, "/panel/api/imports?file_name=a.csv", Some(&s))
            .header("x-csrf-token", csrf.to_owned())
            .body(csv)
            .send()
    };
    assert_eq!(
        upload("wrong").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let r = upload(&s.csrf).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let mapping = json!({"columns": {"id": "external_id", "E-mail": "email", "Score": "fields.score"},
                         "new_fields": [{"key": "score", "label": "Score", "type": "number"}]});
    let (status, preview) = call(
        &app,
        &s,
        Method::POST,
        &format!("/panel/api/imports/{id}/preview"),
        Some(mapping.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let problems: Vec<usize> = preview["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["errors"].as_array().unwrap().len())
        .collect();
    assert_eq!(problems, [0, 1, 1]);
    // Bob's session does not reach Ann's import.
    let bob = app.session("bob@example.com").await;
    let (status, _) = call(
        &app,
        &bob,
        Method::GET,
        &format!("/panel/api/imports/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, started) = call(
        &app,
        &s,
        Method::POST,
        &format!("/panel/api/imports/{id}/start"),
        Some(mapping),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let mut now = started;
    for _ in 0..200 {
        if now["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        now = call(
            &app,
            &s,
            Method::GET,
            &format!("/panel/api/imports/{id}"),
            None,
        )
        .await
        .1;
    }
    assert_eq!(
        (
            now["status"].clone(),
            now["rows_imported"].clone(),
            now["rows_rejected"].clone()
        ),
        (json!("done"), json!(1), json!(2)),
        "{now}"
    );
    let r = app
        .req(
            Method::GET,
            &format!("/panel/imports/{id}/rejected.csv"),
            Some(&s),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,E-mail,Score,reason");
    assert!(
        lines[1].starts_with("c2,broken,6,\"row 3: column \"\"E-mail\"\""),
        "{text}"
    );
    assert!(
        lines[2].starts_with("c3,,x,\"row 4: column \"\"Score\"\""),
        "{text}"
    );
}
