//! Restarts from an index snapshot: the writes after it are replayed, and the service
//! ends exactly where a rebuild from the store ends — the same members and the same
//! change log, with nothing logged twice. A damaged snapshot is refused and rebuilt.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use segmentd::rebuild::Source;
use segmentd_store::{ContactUpsert, Patch};
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn days_ago(d: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * d)).to_string()
}

/// Every segment's members and change feed, as the API gives them.
async fn everything(app: &TestApp, segments: &[i64]) -> BTreeMap<i64, (Vec<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for &id in segments {
        let now = jiff::Timestamp::now().to_string();
        let members = app.members(id, &now).await;
        let r = app
            .get(&format!("/segments/{id}/members?limit=10000"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let maintained: Vec<String> = r.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["external_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            maintained, members,
            "segment {id}: maintained == evaluated now"
        );
        let r = app
            .get(&format!("/segments/{id}/changes?limit=10000"))
            .await;
        let feed: Vec<String> = r.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["change"].as_str().unwrap(),
                    c["external_id"].as_str().unwrap()
                )
            })
            .collect();
        // The feed replays to the members: entries and exits alternate per contact.
        let mut replayed = std::collections::BTreeSet::new();
        for entry in &feed {
            let (change, ext) = entry.split_once(' ').unwrap();
            if change == "entered" {
                assert!(
                    replayed.insert(ext.to_owned()),
                    "segment {id}: {ext} entered twice"
                );
            } else {
                assert!(
                    replayed.remove(ext),
                    "segment {id}: {ext} exited without entering"
                );
            }
        }
        let mut sorted = members.clone();
        sorted.sort();
        assert_eq!(
            replayed.into_iter().collect::<Vec<_>>(),
            sorted,
            "segment {id}: feed == members"
        );
        out.insert(id, (members, feed));
    }
    out
}

/// Data and segments before the snapshot.
async fn before_the_snapshot(app: &TestApp) -> Vec<i64> {
    app.create_field("city", "text").await;
    app.create_field("plan", "text").await;
    let contacts: Vec<Value> = (0..12)
        .map(|i| {
            json!({"external_id": format!("c{i:02}"), "email": format!("c{i}@example.com"),
                        "fields": {"city": if i % 2 == 0 { "Warsaw" } else { "Kraków" }}})
        })
        .collect();
    app.upsert(json!(contacts)).await;
    let events: Vec<Value> = (0..6)
        .map(|i| {
            json!({"type": "custom", "contact": format!("c{i:02}"), "name": "purchase",
                        "timestamp": days_ago(3), "properties": {"amount": 10 * i}})
        })
        .collect();
    app.record(json!(events)).await;
    let s1 = app
        .create_segment(
            "Warsaw",
            json!({"field": "city", "op": "equals", "value": "warsaw"}),
        )
        .await;
    let s2 = app
        .create_segment(
            "Bought this week",
            json!({"custom_event": "purchase", "op": "occurred", "within": {"last_days": 7}}),
        )
        .await;
    let s3 = app
        .create_segment(
            "Warsaw, not buying",
            json!({"all": [{"segment": s1, "op": "in"}, {"segment": s2, "op": "not_in"}]}),
        )
        .await;
    vec![s1, s2, s3]
}

/// Every kind of write after the snapshot: upserts, a deletion, events, a changed rule,
/// a new segment, a deleted field, and a write the store took but whose changes were
/// never logged (as when the process dies between the two).
async fn after_the_snapshot(app: &TestApp, segments: &mut Vec<i64>) {
    app.upsert(json!([{"external_id": "c00", "fields": {"city": "Kraków"}},
                      {"external_id": "c20", "fields": {"city": "Warsaw"}}]))
        .await;
    assert_eq!(
        app.delete("/contacts/c01").await.status(),
        StatusCode::NO_CONTENT
    );
    app.record(json!([{"type": "custom", "contact": "c06", "name": "purchase", "timestamp": days_ago(1)},
                      {"type": "custom", "contact": "c07", "name": "purchase", "timestamp": days_ago(10)}]))
        .await;
    let r = app
        .put(
            &format!("/segments/{}", segments[1]),
            &json!({"name": "Bought this month", "rule": {"custom_event": "purchase", "op": "occurred", "within": {"last_days": 30}}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    segments.push(
        app.create_segment(
            "Pro",
            json!({"field": "plan", "op": "equals", "value": "pro"}),
        )
        .await,
    );
    app.upsert(json!([{"external_id": "c03", "fields": {"plan": "pro"}}]))
        .await;
    app.create_field("tmp", "text").await;
    app.upsert(json!([{"external_id": "c04", "fields": {"tmp": "x"}}]))
        .await;
    assert_eq!(
        app.delete("/fields/tmp").await.status(),
        StatusCode::NO_CONTENT
    );
    // Stored, never applied to the index nor logged.
    app.store
        .upsert_contacts(
            app.account.id,
            &[ContactUpsert {
                external_id: "c08".to_owned(),
                fields: [(
                    "city".to_owned(),
                    Some(segmentd_rules::FieldValue::Text("Gdańsk".into())),
                )]
                .into(),
                email: Patch::Keep,
                ..ContactUpsert::default()
            }],
        )
        .await
        .unwrap();
}

pub async fn a_restart_from_a_snapshot_replays_what_came_after_it_as_a_rebuild_would(
    mut app: TestApp,
) {
    let mut segments = before_the_snapshot(&app).await;
    app.save_snapshots().await;
    after_the_snapshot(&app, &mut segments).await;

    app.restart().await;
    assert_eq!(
        app.state.index.built_from(app.account.id),
        Some(Source::Snapshot)
    );
    let replayed = everything(&app, &segments).await;
    // c08 left Warsaw while nothing was logged: the replay logged its exit.
    assert!(!replayed[&segments[0]].0.contains(&"c08".to_owned()));
    assert_eq!(
        replayed[&segments[0]].1.last().map(String::as_str),
        Some("exited c08")
    );

    // A rebuild from the store finds the same members and nothing left to log.
    app.restart_from_the_store().await;
    assert_eq!(
        app.state.index.built_from(app.account.id),
        Some(Source::Store)
    );
    assert_eq!(everything(&app, &segments).await, replayed);

    // Restarting from the same snapshot again replays the same and logs nothing twice.
    app.restart().await;
    assert_eq!(everything(&app, &segments).await, replayed);
}

pub async fn a_damaged_snapshot_is_refused_and_the_index_rebuilt_from_the_store(mut app: TestApp) {
    let mut segments = before_the_snapshot(&app).await;
    app.save_snapshots().await;
    after_the_snapshot(&app, &mut segments).await;
    let path = segmentd::snapshot::path(app.snapshots.path(), app.account.id);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    app.restart().await;
    assert_eq!(
        app.state.index.built_from(app.account.id),
        Some(Source::Store)
    );
    let rebuilt = everything(&app, &segments).await;
    assert!(!rebuilt[&segments[0]].0.contains(&"c08".to_owned()));

    // A snapshot saved now is whole again, and a restart from it changes nothing.
    app.save_snapshots().await;
    app.restart().await;
    assert_eq!(
        app.state.index.built_from(app.account.id),
        Some(Source::Snapshot)
    );
    assert_eq!(everything(&app, &segments).await, rebuilt);
}
