//! CSV import of contacts: upload, mapping (with new fields and their types), preview,
//! a background run in batches with per-row rejections, its progress, and the round trip
//! from the members export into a new account.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

/// Uploads `csv`; the import's JSON (201).
async fn upload(app: &TestApp, csv: &str) -> Value {
    let r = app
        .client
        .post(app.url("/imports?file_name=people.csv"))
        .bearer_auth(&app.key)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Starts import `id` with `mapping` and waits until it is no longer running.
async fn import_with(app: &TestApp, id: i64, mapping: Value) -> Value {
    let r = app.post(&format!("/imports/{id}/start"), &mapping).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_done(app, id).await
}

async fn wait_done(app: &TestApp, id: i64) -> Value {
    for _ in 0..600 {
        let now: Value = app
            .get(&format!("/imports/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if now["status"] != "running" {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("import {id} still running after 30 s");
}

async fn rejected_csv(app: &TestApp, id: i64) -> String {
    let r = app.get(&format!("/imports/{id}/rejected.csv")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

async fn contact(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/contacts/{id}")).await;
    assert_eq!(r.status(), StatusCode::OK, "contact {id}");
    r.json().await.unwrap()
}

async fn contact_ids(app: &TestApp) -> Vec<String> {
    let page: Value = app.get("/contacts?limit=10000").await.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn field_types(app: &TestApp) -> Vec<(String, String)> {
    let list: Value = app.get("/fields").await.json().await.unwrap();
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_owned(),
                f["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

pub async fn columns_are_mapped_to_attributes_and_fields_and_new_fields_get_their_type(
    app: TestApp,
) {
    app.create_field("city", "text").await;
    let csv = "Customer,E-mail,Age,Signed up,VIP,city,Notes\r\n\
               c1,ann@example.com,41,2024-05-01,yes,Kraków,skip me\r\n\
               c2,,7.5,,no,\"Warsaw, PL\",\r\n";
    let up = upload(&app, csv).await;
    assert_eq!(up["status"], "uploaded");
    assert_eq!(
        up["columns"],
        json!([
            "Customer",
            "E-mail",
            "Age",
            "Signed up",
            "VIP",
            "city",
            "Notes"
        ])
    );
    let id = up["id"].as_i64().unwrap();
    let done = import_with(
        &app,
        id,
        json!({
            "columns": {"Customer": "external_id", "E-mail": "email", "Age": "fields.age",
                        "Signed up": "fields.signed_up", "VIP": "fields.vip", "Notes": null},
            "new_fields": [{"key": "age", "type": "number", "label": "Age"},
                           {"key": "signed_up", "type": "date"},
                           {"key": "vip", "type": "boolean"}]
        }),
    )
    .await;
    assert_eq!(
        (
            done["status"].clone(),
            done["rows_imported"].clone(),
            done["rows_rejected"].clone(),
            done["progress"].clone()
        ),
        (json!("done"), json!(2), json!(0), json!(1.0)),
        "{done}"
    );
    // `city` was matched by its header; `Notes` skipped.
    assert_eq!(done["mapping"]["city"], "fields.city");
    assert_eq!(done["mapping"]["Notes"], Value::Null);
    assert_eq!(
        field_types(&app).await,
        [
            ("age", "number"),
            ("city", "text"),
            ("signed_up", "date"),
            ("vip", "boolean")
        ]
        .map(|(k, t)| (k.to_owned(), t.to_owned()))
    );
    let c1 = contact(&app, "c1").await;
    assert_eq!(c1["email"], "ann@example.com");
    assert_eq!(
        c1["fields"],
        json!({"age": 41.0, "signed_up": "2024-05-01", "vip": true, "city": "Kraków"})
    );
    let c2 = contact(&app, "c2").await;
    assert_eq!(c2["email"], Value::Null);
    assert_eq!(
        c2["fields"],
        json!({"age": 7.5, "vip": false, "city": "Warsaw, PL"})
    );
}

pub async fn bad_rows_are_rejected_with_their_reason_and_the_rest_is_stored(app: TestApp) {
    app.create_field("age", "number").await;
    app.create_field("vip", "boolean").await;
    // (row, reason expected in the rejected file, or "" when the row is stored)
    let rows = [
        ("ok1,ok1@example.com,30,true", ""),
        (
            "bad-email,not-an-address,30,true",
            "row 3: column \"email\": expected an e-mail address",
        ),
        (
            "bad-age,,thirty,",
            "row 4: column \"age\": expected a number, got \"thirty\"",
        ),
        (
            "bad-vip,,,maybe",
            "row 5: column \"vip\": expected true or false",
        ),
        (
            ",,1,",
            "row 6: column \"external_id\": expected 1 to 200 characters",
        ),
        ("short,1", "row 7: the row has 2 cells, the header 4"),
        ("ok2,,,", ""),
    ];
    let mut csv = String::from("external_id,email,age,vip\n");
    for (row, _) in &rows {
        csv.push_str(row);
        csv.push('\n');
    }
    let id = upload(&app, &csv).await["id"].as_i64().unwrap();
    let done = import_with(&app, id, json!({})).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["rows_imported"], 2);
    assert_eq!(done["rows_rejected"], 5);
    assert_eq!(contact_ids(&app).await, ["ok1", "ok2"]);
    let rejected = rejected_csv(&app, id).await;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(rejected.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["external_id", "email", "age", "vip", "reason"]
    );
    let got: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let wanted: Vec<&(&str, &str)> = rows.iter().filter(|(_, r)| !r.is_empty()).collect();
    assert_eq!(got.len(), wanted.len(), "{rejected}");
    for (record, (row, reason)) in got.iter().zip(wanted) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(&record.iter().take(cells.len()).collect::<Vec<_>>(), &cells);
        let said = record.get(4).unwrap();
        assert!(said.starts_with(reason), "{said:?}: expected {reason:?}");
    }
}

pub async fn a_mapping_that_cannot_work_is_refused_whole_and_nothing_is_stored(app: TestApp) {
    app.create_field("age", "number").await;
    let csv = "id,mail,age,plan\nc1,a@example.com,3,gold\n";
    let id = upload(&app, csv).await["id"].as_i64().unwrap();
    let cases = [
        (json!({}), vec!["columns"]),
        (
            json!({"columns": {"id": "external_id", "plan": "fields.plan"}}),
            vec!["columns[\"plan\"]"],
        ),
        (
            json!({"columns": {"id": "external_id", "nope": "email"}}),
            vec!["columns[\"nope\"]"],
        ),
        (
            json!({"columns": {"id": "external_id", "plan": "fields.plan"}, "new_fields": [{"key": "plan", "type": "colour"}]}),
            vec!["columns[\"plan\"]", "new_fields[0].type"],
        ),
        (
            json!({"columns": {"id": "external_id", "plan": "fields.age"}}),
            vec!["columns[\"plan\"]"],
        ),
        (
            json!({"columns": {"id": "external_id", "mail": "email", "plan": "email"}}),
            vec!["columns[\"plan\"]"],
        ),
        (
            json!({"columns": {"id": "external_id"}, "new_fields": [{"key": "Plan!", "type": "text"}]}),
            vec!["new_fields[0].key"],
        ),
    ];
    for (mapping, paths) in cases {
        for step in ["preview", "start"] {
            assert_error(
                app.post(&format!("/imports/{id}/{step}"), &mapping).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                &paths,
            )
            .await;
        }
    }
    // Nothing was declared or stored, and the import can still start.
    assert_eq!(
        field_types(&app).await,
        [("age".to_owned(), "number".to_owned())]
    );
    assert!(contact_ids(&app).await.is_empty());
    let now: Value = app
        .get(&format!("/imports/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["status"], "uploaded");
    // Unknown body fields and malformed JSON are refused as everywhere.
    assert_error(
        app.post(&format!("/imports/{id}/start"), &json!({"colums": {}}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["colums"],
    )
    .await;
    let done = import_with(
        &app,
        id,
        json!({"columns": {"id": "external_id", "mail": "email", "plan": null}}),
    )
    .await;
    assert_eq!(done["rows_imported"], 1);
    // A second start is a conflict; unknown ids and another account's are 404.
    assert_error(
        app.post(&format!("/imports/{id}/start"), &json!({})).await,
        StatusCode::CONFLICT,
        &[],
    )
    .await;
    for path in [
        "/imports/999999",
        "/imports/x",
        "/imports/999999/rejected.csv",
    ] {
        assert_error(app.get(path).await, StatusCode::NOT_FOUND, &[]).await;
    }
    let (_, other_key) = app.other_account().await;
    let r = app
        .send_as(
            &other_key,
            reqwest::Method::GET,
            &format!("/imports/{id}"),
            None,
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, &[]).await;
}

pub async fn files_that_are_not_importable_are_refused_at_upload(app: TestApp) {
    let cases = [
        ("", "the file is empty"),
        ("a,a\n1,2\n", "two columns of the header are named \"a\""),
        ("a,,c\n", "column 2 of the header needs a name"),
    ];
    for (csv, message) in cases {
        let r = app
            .client
            .post(app.url("/imports"))
            .bearer_auth(&app.key)
            .body(csv)
            .send()
            .await
            .unwrap();
        let body = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, &["file"]).await;
        assert!(
            body["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{csv:?}: {body}"
        );
    }
}

pub async fn a_preview_shows_the_first_rows_with_their_problems_by_column(app: TestApp) {
    let mut csv = String::from("external_id,email,score\n");
    csv.push_str("a,a@example.com,1\nb,nope,2\nc,,x\n");
    for i in 0..30 {
        csv.push_str(&format!("n{i},,{i}\n"));
    }
    let id = upload(&app, &csv).await["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/imports/{id}/preview"),
            &json!({"new_fields": [{"key": "score", "type": "number"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let preview: Value = r.json().await.unwrap();
    assert_eq!(
        preview["mapping"],
        json!({"external_id": "external_id", "email": "email", "score": "fields.score"})
    );
    let rows = preview["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    assert_eq!(rows[0]["row"], 2);
    assert_eq!(rows[0]["cells"], json!(["a", "a@example.com", "1"]));
    assert_eq!(rows[0]["errors"], json!([]));
    assert_eq!(rows[1]["errors"][0]["column"], "email");
    assert_eq!(rows[2]["errors"][0]["column"], "score");
    // A preview declares nothing.
    assert!(field_types(&app).await.is_empty());
}

pub async fn a_large_file_is_imported_in_batches_and_its_progress_reaches_done(app: TestApp) {
    let rows = 12_345;
    let mut csv = String::from("external_id,email,n\n");
    for i in 0..rows {
        csv.push_str(&format!("c{i:06},c{i}@example.com,{i}\n"));
    }
    // The same contact twice: the later row wins.
    csv.push_str("c000001,again@example.com,-1\n");
    let id = upload(&app, &csv).await["id"].as_i64().unwrap();
    let big = app
        .create_segment(
            "Big n",
            json!({"field": "email", "op": "ends_with", "value": "example.com"}),
        )
        .await;
    let done = import_with(
        &app,
        id,
        json!({"new_fields": [{"key": "n", "type": "number"}]}),
    )
    .await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["rows_imported"], rows + 1);
    assert_eq!(done["bytes_read"], done["file_bytes"]);
    assert_eq!(done["progress"], 1.0);
    assert_eq!(app.count(big, "").await, rows as u64);
    assert_eq!(contact(&app, "c000001").await["email"], "again@example.com");
    // No row was rejected: the file holds the header only.
    assert_eq!(
        rejected_csv(&app, id).await,
        "external_id,email,n,reason\r\n"
    );
}

/// Every contact of the account, as the members export writes them.
async fn export_everyone(app: &TestApp) -> String {
    let everyone = app
        .create_segment(
            "Everyone",
            json!({"any": [{"field": "email", "op": "has_value"}, {"field": "email", "op": "has_no_value"}]}),
        )
        .await;
    let r = app.get(&format!("/segments/{everyone}/members.csv")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

pub async fn an_export_imports_into_a_new_account_with_the_same_count_for_every_segment(
    mut app: TestApp,
) {
    let fields = [
        ("city", "text"),
        ("age", "number"),
        ("vip", "boolean"),
        ("born", "date"),
    ];
    for (key, ty) in fields {
        app.create_field(key, ty).await;
    }
    let cities = ["Kraków", "Warsaw, PL", "Say \"hi\"", "two\nlines", "Łódź"];
    let contacts: Vec<Value> = (0..1_500)
        .map(|i| {
            let mut c = json!({"external_id": format!("c{i}"), "fields": {
                "city": cities[i % cities.len()], "age": (i % 90) as f64 + 0.5 * (i % 2) as f64,
                "vip": i % 3 == 0,
            }});
            if i % 4 != 0 {
                c["email"] = json!(format!("p{i}@example.com"));
            }
            if i % 5 == 0 {
                c["phone"] = json!(format!("+48 600 {i:03}"));
                c["channels"] =
                    json!({"sms": if i % 10 == 0 { "unsubscribed" } else { "subscribed" }});
            }
            if i % 7 == 0 {
                c["fields"]["born"] = json!(format!("19{:02}-0{}-1{}", i % 100, 1 + i % 9, i % 10));
                c["channels"] = json!({"email": "unsubscribed"});
            }
            c
        })
        .collect();
    for chunk in contacts.chunks(1_000) {
        app.upsert(json!(chunk)).await;
    }
    let rules = [
        (
            "Old",
            json!({"field": "age", "op": "greater_or_equal", "value": 60}),
        ),
        (
            "Half",
            json!({"field": "age", "op": "between", "value": [10.5, 20.5]}),
        ),
        ("VIP", json!({"field": "vip", "op": "is_true"})),
        (
            "Comma city",
            json!({"field": "city", "op": "contains", "value": ","}),
        ),
        (
            "Lines",
            json!({"field": "city", "op": "contains", "value": "\n"}),
        ),
        (
            "Born early",
            json!({"field": "born", "op": "before", "value": "1950-01-01"}),
        ),
        ("No e-mail", json!({"field": "email", "op": "has_no_value"})),
        ("Phones", json!({"field": "phone", "op": "has_value"})),
    ];
    let mut before = Vec::new();
    for (name, rule) in &rules {
        let id = app.create_segment(name, rule.clone()).await;
        before.push(app.count(id, "").await);
    }
    let csv = export_everyone(&app).await;
    // A new account gets the same fields through the API, then the file as it is.
    app.use_new_account("UTC").await;
    for (key, ty) in fields {
        app.create_field(key, ty).await;
    }
    let id = upload(&app, &csv).await["id"].as_i64().unwrap();
    let done = import_with(&app, id, json!({})).await;
    assert_eq!(
        (done["rows_imported"].clone(), done["rows_rejected"].clone()),
        (json!(1_500), json!(0)),
        "{done}"
    );
    let mut after = Vec::new();
    for (name, rule) in &rules {
        let id = app.create_segment(name, rule.clone()).await;
        after.push(app.count(id, "").await);
    }
    assert_eq!(after, before);
    assert!(before.iter().all(|&n| n > 0), "{before:?}");
    // And the export of the new account is the same file.
    assert_eq!(export_everyone(&app).await, csv);
}
