//! Campaign delivery as a sender meets it: throttles ridden out, hard bounces recorded
//! and excluded, lost replies and slow providers never sent twice, signed webhooks,
//! lifecycle transitions (and the refused ones), bounces and complaints coming back,
//! SMS STOP, statistics and recipients paged by status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use segmentd::settings::DeliverySettings;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::campaigns::{
    Rules, create_campaign, email_campaign, email_setup, recipients, serve_with, smtp_server,
    wait_sent,
};
use crate::helpers::TestApp;

fn settings(smtp_port: u16) -> DeliverySettings {
    DeliverySettings {
        smtp_host: "127.0.0.1".into(),
        smtp_port,
        retry_backoff: Duration::from_millis(100),
        retry_max_backoff: Duration::from_millis(400),
        smtp_hello_name: Some("mail.shop.example".into()),
        ..DeliverySettings::default()
    }
}

/// Waits (bounded) until the campaign has `status`.
async fn wait_status(app: &TestApp, id: i64, status: &str) -> Value {
    for _ in 0..500 {
        let c: Value = app
            .get(&format!("/campaigns/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if c["status"] == status {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("campaign {id} did not become {status} in 10 s");
}

fn statuses(list: &[Value]) -> Vec<(String, String)> {
    list.iter()
        .map(|r| {
            (
                r["external_id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub async fn a_throttle_is_ridden_out_and_a_hard_bounce_is_recorded_and_excluded_next_time(
    mut app: TestApp,
) {
    let (port, inbox) = smtp_server(Rules {
        unknown_users: vec!["bob@example.com".into()],
        throttle_until: Some(Instant::now() + Duration::from_millis(1_500)),
        ..Rules::default()
    })
    .await;
    serve_with(&mut app, settings(port)).await;
    let warsaw = email_setup(&app).await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;

    let list = recipients(&app, id).await;
    assert_eq!(
        statuses(&list),
        pairs(&[("ann", "sent"), ("bob", "bounced"), ("fay", "sent")])
    );
    // The 451s were waited out with retries, not counted as failures.
    assert!(list[0]["attempts"].as_u64().unwrap() > 1, "{}", list[0]);
    assert!(
        list[1]["reason"].as_str().unwrap().contains("550"),
        "{}",
        list[1]
    );
    let mut to: Vec<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.to[0].clone())
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["ann@example.com", "fay@example.com"],
        "each exactly once"
    );

    // The address is bounced now: the next campaign leaves it out for that reason.
    let bob: Value = app.get("/contacts/bob").await.json().await.unwrap();
    assert_eq!(bob["channels"]["email"], "bounced", "{bob}");
    let next = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    let preview: Value = app
        .post(&format!("/campaigns/{next}/preview"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["recipients"], 2, "{preview}");
    assert_eq!(
        preview["excluded"]["bounced"], 2,
        "eve and now bob: {preview}"
    );
    let stats: Value = app
        .get(&format!("/campaigns/{id}/stats"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (stats["sent"].as_u64(), stats["bounced"].as_u64()),
        (Some(2), Some(1))
    );
}

pub async fn too_many_errors_in_a_row_pause_the_campaign_until_it_is_resumed(mut app: TestApp) {
    // Everything is refused for 1.5 s: two errors in a row pause the campaign.
    let (port, inbox) = smtp_server(Rules {
        throttle_until: Some(Instant::now() + Duration::from_millis(1_500)),
        ..Rules::default()
    })
    .await;
    serve_with(
        &mut app,
        DeliverySettings {
            pause_after_errors: 2,
            ..settings(port)
        },
    )
    .await;
    let warsaw = email_setup(&app).await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    let paused = wait_status(&app, id, "paused").await;
    assert!(
        paused["status_reason"]
            .as_str()
            .unwrap()
            .contains("in a row"),
        "{paused}"
    );
    assert!(inbox.lock().unwrap().is_empty());
    // A paused campaign cannot be paused again; it can be resumed once the server is
    // back, and then every recipient gets the message once.
    let r = app
        .post(&format!("/campaigns/{id}/pause"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let r = app
        .post(&format!("/campaigns/{id}/resume"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    wait_sent(&app, id).await;
    assert_eq!(inbox.lock().unwrap().len(), 3);
    assert!(
        statuses(&recipients(&app, id).await)
            .iter()
            .all(|(_, s)| s == "sent")
    );
}

pub async fn a_lost_reply_is_unknown_and_never_sent_again_unless_asked(mut app: TestApp) {
    let (port, inbox) = smtp_server(Rules {
        lose_reply_for: vec!["ann@example.com".into()],
        ..Rules::default()
    })
    .await;
    serve_with(&mut app, settings(port)).await;
    let warsaw = email_setup(&app).await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;
    let list = recipients(&app, id).await;
    assert_eq!(
        statuses(&list),
        pairs(&[("ann", "unknown"), ("bob", "sent"), ("fay", "sent")])
    );
    let count_ann = || {
        inbox
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to[0] == "ann@example.com")
            .count()
    };
    assert_eq!(
        count_ann(),
        1,
        "the server got it once and it was not retried"
    );

    // "Resend to failed" leaves the unknown one alone…
    let r: Value = app
        .post(&format!("/campaigns/{id}/resend"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["queued"], 0);
    // …unless the sender accepts a possible duplicate.
    let r: Value = app
        .post(
            &format!("/campaigns/{id}/resend"),
            &json!({"include_unknown": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["queued"], 1);
    // The server loses that reply again: still unknown, and sent exactly twice in all.
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_sent(&app, id).await;
    assert_eq!(count_ann(), 2);
    let page: Value = app
        .get(&format!("/campaigns/{id}/recipients?status=unknown"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
}

type Posts = Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>;

/// A provider that takes `delay` to answer each POST, keeping each with its headers.
async fn slow_provider(delay: Duration) -> (String, Posts) {
    let posts: Posts = Arc::default();
    let kept = posts.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((headers, body));
                tokio::time::sleep(delay).await;
                "ok"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, posts)
}

async fn sms_setup(app: &TestApp) -> i64 {
    app.create_field("city", "text").await;
    app.upsert(json!([
        {"external_id": "ann", "phone": "+48500100200", "fields": {"city": "Warsaw"}},
        {"external_id": "bob", "phone": "+48500100300", "fields": {"city": "Warsaw"}},
    ]))
    .await;
    let warsaw = app
        .create_segment(
            "Warsaw",
            json!({"field": "city", "op": "equals", "value": "Warsaw"}),
        )
        .await;
    create_campaign(
        app,
        json!({"name": "Flash", "channel": "sms", "content": {"text": "Sale today"},
               "targets": [warsaw]}),
    )
    .await
}

pub async fn a_slow_provider_gets_each_sms_once_signed_with_an_idempotency_key(mut app: TestApp) {
    let (url, posts) = slow_provider(Duration::from_millis(1_500)).await;
    let secret = "whsec_test";
    serve_with(
        &mut app,
        DeliverySettings {
            sms_webhook_url: Some(url),
            webhook_secret: Some(secret.into()),
            webhook_authorization: Some("Bearer provider-token".into()),
            webhook_timeout: Duration::from_millis(300),
            ..settings(1)
        },
    )
    .await;
    let id = sms_setup(&app).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;
    let list = recipients(&app, id).await;
    assert_eq!(
        statuses(&list),
        pairs(&[("ann", "unknown"), ("bob", "unknown")]),
        "a timeout is not a failure to retry"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posts = posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 2, "one POST each, never again");
    for (headers, body) in &posts {
        let key = headers["idempotency-key"].to_str().unwrap();
        let sent: Value = serde_json::from_str(body).unwrap();
        assert_eq!(sent["id"], key);
        assert!(key.starts_with(&format!("c{id}.r")), "{key}");
        assert_eq!(headers["authorization"], "Bearer provider-token");
        // The signature verifies with the shared secret, and only over this body.
        let signature = headers["segmentd-signature"].to_str().unwrap();
        let t: u64 = signature
            .strip_prefix("t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            signature,
            segmentd::campaigns::webhook::signature(secret, t, body.as_bytes())
        );
        assert_ne!(
            signature,
            segmentd::campaigns::webhook::signature(secret, t, b"{}")
        );
    }
}

pub async fn campaigns_are_edited_cancelled_duplicated_deleted_and_tested_as_allowed(
    mut app: TestApp,
) {
    let (port, inbox) = smtp_server(Rules::default()).await;
    serve_with(&mut app, settings(port)).await;
    let warsaw = email_setup(&app).await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;

    // A draft is edited whole; a bad edit is refused at its path and changes nothing.
    let mut edited = email_campaign(vec![warsaw], vec![]);
    edited["name"] = json!("Summer sale");
    edited["scheduled_at"] = json!("2100-01-01T00:00:00Z");
    edited["rate_per_second"] = json!(50);
    let r = app.put(&format!("/campaigns/{id}"), &edited).await;
    assert_eq!(r.status(), StatusCode::OK);
    let c: Value = r.json().await.unwrap();
    assert_eq!(
        (&c["name"], &c["status"], &c["rate_per_second"]),
        (&json!("Summer sale"), &json!("scheduled"), &json!(50))
    );
    let mut bad = edited.clone();
    bad["rate_per_second"] = json!(0);
    let r = app.put(&format!("/campaigns/{id}"), &bad).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("rate_per_second"));

    // A test goes to the given address only, personalised as the contact asked for.
    let r = app
        .post(
            &format!("/campaigns/{id}/test"),
            &json!({"to": ["qa@shop.example"], "contact": "ann"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["results"][0]["status"], "sent", "{body}");
    {
        let inbox = inbox.lock().unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].to, ["qa@shop.example"]);
        assert!(
            inbox[0].data.contains("Subject: [Test] Hello Ann"),
            "{}",
            inbox[0].data
        );
    }
    let r = app
        .post(
            &format!("/campaigns/{id}/test"),
            &json!({"to": ["not an address"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("to[0]"));

    // Cancel a scheduled campaign once; it is then deleted, not edited or cancelled.
    let copy = app
        .post(&format!("/campaigns/{id}/duplicate"), &json!({}))
        .await;
    assert_eq!(copy.status(), StatusCode::CREATED);
    let copy: Value = copy.json().await.unwrap();
    assert_eq!(
        (&copy["name"], &copy["status"]),
        (&json!("Summer sale (copy)"), &json!("draft"))
    );
    let cases = [
        ("post", format!("/campaigns/{id}/cancel"), StatusCode::OK),
        (
            "post",
            format!("/campaigns/{id}/cancel"),
            StatusCode::CONFLICT,
        ),
        ("put", format!("/campaigns/{id}"), StatusCode::CONFLICT),
        (
            "post",
            format!("/campaigns/{id}/pause"),
            StatusCode::CONFLICT,
        ),
        (
            "post",
            format!("/campaigns/{id}/resume"),
            StatusCode::CONFLICT,
        ),
        ("delete", format!("/campaigns/{id}"), StatusCode::NO_CONTENT),
        ("delete", format!("/campaigns/{id}"), StatusCode::NOT_FOUND),
    ];
    for (method, path, expected) in cases {
        let r = match method {
            "post" => app.post(&path, &json!({})).await,
            "put" => app.put(&path, &edited).await,
            _ => app.delete(&path).await,
        };
        assert_eq!(
            r.status(),
            expected,
            "{method} {path}: {}",
            r.text().await.unwrap()
        );
    }

    // A campaign being sent or sent is not deleted or edited.
    let copy_id = copy["id"].as_i64().unwrap();
    app.post(&format!("/campaigns/{copy_id}/send"), &json!({}))
        .await;
    wait_sent(&app, copy_id).await;
    for (method, path) in [
        ("delete", format!("/campaigns/{copy_id}")),
        ("put", format!("/campaigns/{copy_id}")),
        ("post", format!("/campaigns/{copy_id}/cancel")),
    ] {
        let r = match method {
            "put" => app.put(&path, &edited).await,
            "post" => app.post(&path, &json!({})).await,
            _ => app.delete(&path).await,
        };
        assert_eq!(r.status(), StatusCode::CONFLICT, "{method} {path}");
        assert!(r.text().await.unwrap().contains("is sent"));
    }
    assert_eq!(
        inbox.lock().unwrap().len(),
        4,
        "the test and three recipients"
    );

    // Recipients page by status with the API's cursor convention.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/campaigns/{copy_id}/recipients?status=sent&limit=2&cursor={c}"),
            None => format!("/campaigns/{copy_id}/recipients?status=sent&limit=2"),
        };
        let page: Value = app.get(&path).await.json().await.unwrap();
        for r in page["items"].as_array().unwrap() {
            seen.push(r["external_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["ann", "bob", "fay"]);
    let r = app
        .get(&format!("/campaigns/{copy_id}/recipients?status=lost"))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn bounces_complaints_and_sms_stop_come_back_through_the_api(mut app: TestApp) {
    let (port, inbox) = smtp_server(Rules::default()).await;
    serve_with(&mut app, settings(port)).await;
    let warsaw = email_setup(&app).await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;
    let message_id = |to: &str| -> String {
        let inbox = inbox.lock().unwrap();
        let data = &inbox.iter().find(|m| m.to[0] == to).unwrap().data;
        let line = data
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
            .unwrap();
        line[11..].trim().to_owned()
    };

    // Our own shape, by Message-ID: ann bounced later.
    let r = app
        .post(
            "/feedback/email",
            &json!({"events": [{"type": "bounce", "message_id": message_id("ann@example.com")}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["applied"], 1);
    // Amazon SES through SNS: bob complained.
    let ses = json!({
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "bob@example.com"}]},
        "mail": {"headers": [{"name": "Message-ID", "value": message_id("bob@example.com")}]}
    });
    let r = app
        .post(
            "/feedback/ses",
            &json!({"Type": "Notification", "Message": ses.to_string()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // SendGrid: a soft block changes nothing, a bounce of an unknown address neither.
    let r = app
        .post(
            "/feedback/sendgrid",
            &json!([
                {"email": "fay@example.com", "event": "bounce", "type": "blocked"},
                {"email": "nobody@example.com", "event": "bounce", "type": "bounce"},
                {"email": "fay@example.com", "event": "open"}
            ]),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"applied": 0, "unmatched": 1})
    );
    let channel = |c: Value| c["channels"]["email"].clone();
    assert_eq!(
        channel(app.get("/contacts/ann").await.json().await.unwrap()),
        "bounced"
    );
    assert_eq!(
        channel(app.get("/contacts/bob").await.json().await.unwrap()),
        "unsubscribed"
    );
    assert_eq!(
        channel(app.get("/contacts/fay").await.json().await.unwrap()),
        "subscribed"
    );
    let stats: Value = app
        .get(&format!("/campaigns/{id}/stats"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&stats["bounced"], &stats["complaints"], &stats["sent"]),
        (&json!(1), &json!(1), &json!(2)),
        "{stats}"
    );

    // SMS: STOP in any case opts out, START in Twilio's form opts back in.
    app.upsert(json!([{"external_id": "ann", "phone": "+48500100200"}]))
        .await;
    let r: Value = app
        .post(
            "/sms/inbound",
            &json!({"from": "+48500100200", "text": "stop please"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"reply": "opted_out", "contacts": 1}));
    let sms = |c: Value| c["channels"]["sms"].clone();
    assert_eq!(
        sms(app.get("/contacts/ann").await.json().await.unwrap()),
        "unsubscribed"
    );
    let r: Value = app
        .client
        .post(format!("{}/api/v1/sms/inbound", app.address))
        .bearer_auth(&app.key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("From=%2B48500100200&Body=START")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["reply"], "opted_in");
    assert_eq!(
        sms(app.get("/contacts/ann").await.json().await.unwrap()),
        "subscribed"
    );

    // Without the key, nothing is taken; the key also works as a Basic-auth password.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/feedback/email", app.address))
        .json(&json!({"events": [{"type": "bounce", "email": "fay@example.com"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/feedback/email", app.address))
        .basic_auth("sns", Some(&app.key))
        .json(&json!({"events": [{"type": "complaint", "email": "fay@example.com"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        channel(app.get("/contacts/fay").await.json().await.unwrap()),
        "unsubscribed"
    );
}

pub async fn a_provider_429_is_retried_after_its_retry_after_with_the_same_key(mut app: TestApp) {
    // The provider refuses each message's first POST with 429 and `Retry-After: 1`.
    let posts: Posts = Arc::default();
    let kept = posts.clone();
    let provider = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let key = headers["idempotency-key"].to_str().unwrap().to_owned();
                let mut kept = kept.lock().unwrap();
                let seen = kept
                    .iter()
                    .any(|(h, _)| h["idempotency-key"].to_str().unwrap() == key);
                kept.push((headers, body));
                if seen {
                    (StatusCode::OK, [("retry-after", "0")])
                } else {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")])
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, provider).await });
    serve_with(
        &mut app,
        DeliverySettings {
            sms_webhook_url: Some(url),
            // Far longer than the test: only `Retry-After` can explain a retry in time.
            retry_backoff: Duration::from_secs(600),
            retry_max_backoff: Duration::from_secs(600),
            ..settings(1)
        },
    )
    .await;
    let id = sms_setup(&app).await;
    let started = Instant::now();
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as told"
    );
    let list = recipients(&app, id).await;
    assert_eq!(statuses(&list), pairs(&[("ann", "sent"), ("bob", "sent")]));
    assert!(list.iter().all(|r| r["attempts"] == 2), "{list:?}");
    assert_eq!(
        posts.lock().unwrap().len(),
        4,
        "two POSTs each, the same key twice"
    );
}
