//! Campaigns end to end: a real (tiny) SMTP server and a local webhook receiver take the
//! messages; tracking links come back as events that segments use.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use segmentd::settings::DeliverySettings;
use segmentd::startup::Application;
use segmentd_store::{NewRecipient, RecipientStatus};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::TestApp;

pub(crate) use crate::smtp::{Rules, link, smtp_server, smtp_sink};

pub(crate) type Hooks = Arc<Mutex<Vec<Value>>>;

/// A local SMS/push provider: every JSON POST is kept and answered 200.
pub(crate) async fn webhook_receiver() -> (String, Hooks) {
    let hooks: Hooks = Arc::default();
    let kept = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hooks)
}

/// Serves the test's store from a new app that delivers to the sink and the receiver.
pub(crate) async fn deliver_to(app: &mut TestApp, smtp_port: u16, webhook: Option<&str>) {
    let delivery = DeliverySettings {
        smtp_host: "127.0.0.1".into(),
        smtp_port,
        sms_webhook_url: webhook.map(str::to_owned),
        push_webhook_url: webhook.map(str::to_owned),
        retry_backoff: Duration::from_millis(10),
        smtp_hello_name: Some("mail.shop.example".into()),
        ..DeliverySettings::default()
    };
    serve_with(app, delivery).await;
}

/// Serves the test's store from a new app with these delivery settings.
pub(crate) async fn serve_with(app: &mut TestApp, delivery: DeliverySettings) {
    let server = Application::with_store_and_delivery(
        app.store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        delivery,
    )
    .await
    .unwrap();
    app.address = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped());
}

pub(crate) async fn create_campaign(app: &TestApp, body: Value) -> i64 {
    let r = app.post("/campaigns", &body).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// Waits (bounded) until the campaign's delivery has finished.
pub(crate) async fn wait_sent(app: &TestApp, id: i64) -> Value {
    for _ in 0..500 {
        let c: Value = app
            .get(&format!("/campaigns/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if c["status"] == "sent" {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("campaign {id} was not sent in 10 s");
}

pub(crate) async fn recipients(app: &TestApp, id: i64) -> Vec<Value> {
    let r = app.get(&format!("/campaigns/{id}/recipients")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// A saved segment's maintained members, without `as_of`.
pub(crate) async fn maintained_members(app: &TestApp, id: i64) -> Vec<String> {
    let page: Value = app
        .get(&format!("/segments/{id}/members?limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["external_id"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn email_setup(app: &TestApp) -> i64 {
    app.create_field("first_name", "text").await;
    app.create_field("city", "text").await;
    app.upsert(json!([
        {"external_id": "ann", "email": "ann@example.com", "fields": {"first_name": "Ann", "city": "Warsaw"}},
        {"external_id": "bob", "email": "bob@example.com", "fields": {"first_name": "Bob", "city": "Warsaw"}},
        {"external_id": "cid", "fields": {"city": "Warsaw"}},
        {"external_id": "dan", "email": "dan@example.com", "channels": {"email": "unsubscribed"}, "fields": {"city": "Warsaw"}},
        {"external_id": "eve", "email": "eve@example.com", "channels": {"email": "bounced"}, "fields": {"city": "Warsaw"}},
        {"external_id": "fay", "email": "fay@example.com", "fields": {"first_name": "Fay", "city": "Warsaw"}},
        {"external_id": "gus", "email": "gus@example.com", "fields": {"city": "Krakow"}},
    ]))
    .await;
    app.create_segment(
        "Warsaw",
        json!({"field": "city", "op": "equals", "value": "Warsaw"}),
    )
    .await
}

pub(crate) fn email_campaign(targets: Vec<i64>, exclusions: Vec<i64>) -> Value {
    json!({
        "name": "Spring sale",
        "channel": "email",
        "content": {
            "from": "Shop <shop@example.com>",
            "reply_to": "help@example.com",
            "subject": "Hello {{first_name}}",
            "html": "<html><body><p>Hi {{ first_name }} ({{email}})</p><a href=\"https://shop.example/sale\">Sale</a> <a href=\"{{unsubscribe_url}}\">Unsubscribe</a></body></html>",
            "text": "Hi {{first_name}}, see https://shop.example/sale"
        },
        "targets": targets,
        "exclusions": exclusions,
    })
}

pub async fn an_email_campaign_reaches_exactly_its_frozen_recipients_personalised(
    mut app: TestApp,
) {
    let (port, inbox) = smtp_sink().await;
    deliver_to(&mut app, port, None).await;
    let warsaw = email_setup(&app).await;
    let fay_only = app
        .create_segment(
            "Fay",
            json!({"field": "first_name", "op": "equals", "value": "Fay"}),
        )
        .await;
    let id = create_campaign(&app, email_campaign(vec![warsaw, fay_only], vec![fay_only])).await;

    let r = app
        .post(&format!("/campaigns/{id}/preview"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let preview: Value = r.json().await.unwrap();
    assert_eq!(
        preview,
        json!({"recipients": 2, "excluded": {"no_address": 1, "unsubscribed": 1, "bounced": 1, "exclusion_segments": 1}})
    );

    let r = app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().await.unwrap()
    );
    // Joins the segment after the send: not a recipient.
    app.upsert(json!([{"external_id": "gus", "fields": {"city": "Warsaw"}}]))
        .await;
    let sent = wait_sent(&app, id).await;
    assert_eq!(sent["excluded"]["unsubscribed"], 1);

    let mails = inbox.lock().unwrap().clone();
    let mut to: Vec<&str> = mails.iter().map(|m| m.to[0].as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, ["ann@example.com", "bob@example.com"]);
    let ann = mails.iter().find(|m| m.to[0] == "ann@example.com").unwrap();
    assert!(ann.data.contains("Subject: Hello Ann"), "{}", ann.data);
    for header in [
        format!("Message-ID: <c{id}.r"),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n".to_owned(),
        "List-Unsubscribe: <http://".to_owned(),
        "Date: ".to_owned(),
    ] {
        assert!(ann.data.contains(&header), "{header} in {}", ann.data);
    }
    let message_id = ann
        .data
        .lines()
        .find(|l| l.starts_with("Message-ID: "))
        .unwrap();
    assert!(
        message_id.ends_with("@example.com>"),
        "on the sender's domain: {message_id}"
    );
    assert!(
        ann.data.contains("Hi Ann (ann@example.com)"),
        "{}",
        ann.data
    );
    assert!(ann.data.contains("Hi Ann, see http"), "{}", ann.data);
    assert!(
        !ann.data.contains("see https://shop.example/sale"),
        "the text part's link is tracked too: {}",
        ann.data
    );
    assert_eq!(
        ann.hello, "mail.shop.example",
        "EHLO with the configured name"
    );
    for header in [
        "From: Shop <shop@example.com>",
        "Reply-To: help@example.com",
    ] {
        assert!(
            ann.data.lines().any(|l| l == header),
            "{header} in {}",
            ann.data
        );
    }
    assert!(!ann.data.contains("{{"), "{}", ann.data);
    let list = recipients(&app, id).await;
    let got: Vec<(&str, &str)> = list
        .iter()
        .map(|r| {
            (
                r["external_id"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("ann", "sent"), ("bob", "sent")]);
    assert_eq!(list[0]["address"], "ann@example.com");

    // A second send is refused and changes nothing.
    let r = app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(recipients(&app, id).await.len(), 2);
    assert_eq!(inbox.lock().unwrap().len(), 2);
}

pub async fn opening_the_pixel_moves_the_contact_into_mail_open_occurred_and_links_work(
    mut app: TestApp,
) {
    let (port, inbox) = smtp_sink().await;
    deliver_to(&mut app, port, None).await;
    let warsaw = email_setup(&app).await;
    let opened = app
        .create_segment(
            "Opened",
            json!({"system_event": "MailOpen", "op": "occurred"}),
        )
        .await;
    let not_opened = app
        .create_segment(
            "Not opened",
            json!({"system_event": "MailOpen", "op": "not_occurred"}),
        )
        .await;
    let clicked = app
        .create_segment(
            "Clicked",
            json!({"system_event": "MailClick", "op": "occurred"}),
        )
        .await;
    let now = "2100-01-01T00:00:00Z";
    assert!(
        app.members(not_opened, now)
            .await
            .contains(&"ann".to_owned())
    );
    assert!(
        maintained_members(&app, not_opened)
            .await
            .contains(&"ann".to_owned())
    );
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;
    let ann = inbox
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.to[0] == "ann@example.com")
        .unwrap()
        .clone();

    let pixel = link(&ann.data, "o");
    // Apple Mail Privacy Protection fetches every image with a bare `Mozilla/5.0`: a
    // machine open, counted apart and not an event segments see.
    let r = app
        .client
        .get(&pixel)
        .header("user-agent", "Mozilla/5.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(maintained_members(&app, opened).await.is_empty());
    let r = app
        .client
        .get(&pixel)
        .header(
            "user-agent",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/gif");
    // Maintained membership (no `as_of`) moved at once.
    assert_eq!(maintained_members(&app, opened).await, ["ann"]);
    assert!(
        !maintained_members(&app, not_opened)
            .await
            .contains(&"ann".to_owned())
    );
    let later = "2100-01-01T00:00:00Z";
    assert_eq!(app.members(opened, later).await, ["ann"]);
    assert!(
        !app.members(not_opened, later)
            .await
            .contains(&"ann".to_owned())
    );
    assert!(
        app.members(not_opened, later)
            .await
            .contains(&"bob".to_owned())
    );

    let click = link(&ann.data, "c");
    let r = no_redirects().get(&click).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://shop.example/sale?sd="),
        "{location}"
    );
    assert_eq!(app.members(clicked, later).await, ["ann"]);
    // A second human open and click count once each in the campaign's statistics.
    app.client
        .get(&pixel)
        .header(
            "user-agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)",
        )
        .send()
        .await
        .unwrap();
    no_redirects().get(&click).send().await.unwrap();
    let stats: Value = app
        .get(&format!("/campaigns/{id}/stats"))
        .await
        .json()
        .await
        .unwrap();
    for (key, expected) in [
        ("sent", 3),
        ("unique_opens", 1),
        ("machine_opens", 1),
        ("unique_clicks", 1),
        ("unsubscribes", 0),
    ] {
        assert_eq!(stats[key], expected, "{key}: {stats}");
    }
    let hourly = stats["hourly"].as_array().unwrap();
    assert_eq!(
        hourly
            .iter()
            .map(|h| h["sent"].as_u64().unwrap())
            .sum::<u64>(),
        3
    );
    let ann_id = app
        .store
        .contact(app.account.id, "ann")
        .await
        .unwrap()
        .unwrap()
        .id;
    let events = app
        .store
        .contact_events(app.account.id, ann_id)
        .await
        .unwrap();
    let recorded: Vec<(String, Option<String>, Option<String>)> = events
        .iter()
        .filter_map(|e| match &e.body {
            segmentd_store::EventBody::System {
                kind,
                campaign,
                url,
            } => Some((format!("{kind:?}"), campaign.clone(), url.clone())),
            _ => None,
        })
        .collect();
    // Every human open and click is an event (the machine open is not); the
    // statistics count each recipient once.
    let open = ("MailOpen".to_owned(), Some(id.to_string()), None);
    let click = (
        "MailClick".to_owned(),
        Some(id.to_string()),
        Some("https://shop.example/sale".to_owned()),
    );
    assert_eq!(recorded, [open.clone(), click.clone(), open, click]);

    // The header's link (RFC 8058): a GET, as a link scanner sends, only asks; the
    // one-click POST a mail client sends unsubscribes.
    let header = ann
        .data
        .lines()
        .find(|l| l.starts_with("List-Unsubscribe: <"))
        .unwrap_or_else(|| panic!("no List-Unsubscribe in {}", ann.data));
    let unsubscribe = link(header, "u");
    assert_eq!(
        unsubscribe,
        link(&ann.data[ann.data.find("\n\n").unwrap()..], "u")
    );
    let email_status = || async {
        let contact: Value = app.get("/contacts/ann").await.json().await.unwrap();
        contact["channels"]["email"].as_str().unwrap().to_owned()
    };
    let r = app.client.get(&unsubscribe).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("<form method=\"post\">"));
    assert_eq!(email_status().await, "subscribed", "a GET changes nothing");
    let r = app
        .client
        .post(&unsubscribe)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(email_status().await, "unsubscribed");
}

pub async fn forged_or_altered_links_are_not_found_and_record_nothing(mut app: TestApp) {
    let (port, inbox) = smtp_sink().await;
    deliver_to(&mut app, port, None).await;
    let warsaw = email_setup(&app).await;
    let opened = app
        .create_segment(
            "Opened",
            json!({"system_event": "MailOpen", "op": "occurred"}),
        )
        .await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;
    let data = inbox.lock().unwrap()[0].data.clone();
    let pixel = link(&data, "o");
    let click = link(&data, "c");
    let (head, sig) = pixel.rsplit_once('/').unwrap();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    let forged = [
        format!("{head}/{flipped}{}", &sig[1..]),
        format!("{head}/"),
        // Another contact, same signature.
        {
            let parts: Vec<&str> = head.rsplitn(2, '/').collect();
            format!("{}/999999/{sig}", parts[1])
        },
        click.replace("shop.example", "evil.example"),
        click.replace("/t/c/", "/t/o/"),
        pixel.replace("/t/o/", "/t/u/"),
    ];
    for url in forged {
        let r = no_redirects().get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{url}");
    }
    assert_eq!(app.count(opened, "2100-01-01T00:00:00Z").await, 0);
    let contact: Value = app.get("/contacts/ann").await.json().await.unwrap();
    assert_eq!(contact["channels"]["email"], "subscribed", "{contact}");
}

pub async fn sms_and_push_go_to_the_provider_as_json_and_their_links_record_clicks(
    mut app: TestApp,
) {
    let (url, hooks) = webhook_receiver().await;
    deliver_to(&mut app, 1, Some(&url)).await;
    app.create_field("first_name", "text").await;
    app.upsert(json!([
        {"external_id": "ann", "phone": "+48500100200", "channels": {"push_tokens": ["tok-1"]}, "fields": {"first_name": "Ann"}},
        {"external_id": "bob", "fields": {"first_name": "Bob"}},
    ]))
    .await;
    let all = app
        .create_segment("Named", json!({"field": "first_name", "op": "has_value"}))
        .await;
    let sms_clicked = app
        .create_segment(
            "SMS clicked",
            json!({"system_event": "SmsClick", "op": "occurred"}),
        )
        .await;
    let push_clicked = app
        .create_segment(
            "Push clicked",
            json!({"system_event": "PushClick", "op": "occurred"}),
        )
        .await;
    let sms = create_campaign(
        &app,
        json!({"name": "Text", "channel": "sms", "targets": [all],
               "content": {"text": "Hi {{first_name}}: https://shop.example/s"}}),
    )
    .await;
    let push = create_campaign(
        &app,
        json!({"name": "Push", "channel": "push", "targets": [all],
               "content": {"title": "Hi {{first_name}}", "body": "New", "link": "https://shop.example/p"}}),
    )
    .await;
    let preview: Value = app
        .post(&format!("/campaigns/{sms}/preview"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["recipients"], 1);
    assert_eq!(preview["excluded"]["no_address"], 1);
    for id in [sms, push] {
        let r = app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        wait_sent(&app, id).await;
    }
    let got = hooks.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let text = got.iter().find(|h| h.get("text").is_some()).unwrap();
    assert_eq!(text["to"], "+48500100200");
    assert_eq!(text["contact"], "ann");
    let body = text["text"].as_str().unwrap();
    assert!(body.starts_with("Hi Ann: http"), "{body}");
    let r = no_redirects().get(link(body, "c")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://shop.example/s?sd="),
        "{location}"
    );
    let note = got.iter().find(|h| h.get("tokens").is_some()).unwrap();
    assert_eq!(note["tokens"], json!(["tok-1"]));
    assert_eq!(note["title"], "Hi Ann");
    let r = no_redirects()
        .get(note["link"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let later = "2100-01-01T00:00:00Z";
    assert_eq!(app.members(sms_clicked, later).await, ["ann"]);
    assert_eq!(app.members(push_clicked, later).await, ["ann"]);
}

pub async fn a_restart_mid_send_resumes_without_sending_anyone_twice(mut app: TestApp) {
    let warsaw = email_setup(&app).await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    // A crash mid-send, as the store would have it: recipients frozen, ann delivered,
    // bob in flight, fay still queued.
    let store = app.store.clone();
    let account = app.account.id;
    let contacts = store
        .contacts_by_external_ids(account, &["ann".into(), "bob".into(), "fay".into()])
        .await
        .unwrap();
    let frozen: Vec<NewRecipient> = contacts
        .iter()
        .map(|c| NewRecipient {
            contact_id: c.id,
            external_id: c.external_id.clone(),
            address: c.email.clone().unwrap(),
        })
        .collect();
    let now = jiff::Timestamp::now();
    assert!(
        store
            .freeze_campaign(account, id, &frozen, &json!({}), now)
            .await
            .unwrap()
    );
    store
        .update_recipient(
            account,
            id,
            contacts[0].id,
            RecipientStatus::Sent,
            None,
            1,
            now,
        )
        .await
        .unwrap();
    store
        .update_recipient(
            account,
            id,
            contacts[1].id,
            RecipientStatus::Sending,
            None,
            1,
            now,
        )
        .await
        .unwrap();

    let (port, inbox) = smtp_sink().await;
    deliver_to(&mut app, port, None).await;
    wait_sent(&app, id).await;
    let to: Vec<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.to[0].clone())
        .collect();
    assert_eq!(to, ["fay@example.com"]);
    let list = recipients(&app, id).await;
    let got: Vec<(&str, &str)> = list
        .iter()
        .map(|r| {
            (
                r["external_id"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("ann", "sent"), ("bob", "unknown"), ("fay", "sent")]);
    assert!(list[1]["reason"].as_str().unwrap().contains("interrupted"));

    // Another restart sends nothing more.
    deliver_to(&mut app, port, None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inbox.lock().unwrap().len(), 1);
}

pub async fn bad_campaigns_are_refused_with_their_paths(app: TestApp) {
    let r = app
        .post(
            "/campaigns",
            &json!({"name": "", "channel": "fax", "content": {}, "targets": [], "extra": 1}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post(
            "/campaigns",
            &json!({"name": "", "channel": "fax", "content": {}, "targets": [12345]}),
        )
        .await;
    crate::helpers::assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["name", "channel", "targets[0]"],
    )
    .await;
    let seg = app
        .create_segment("All", json!({"field": "email", "op": "has_value"}))
        .await;
    let r = app
        .post(
            "/campaigns",
            &json!({"name": "E", "channel": "email", "content": {"from": "nope", "reply_to": "no one", "subject": "s"}, "targets": [seg]}),
        )
        .await;
    crate::helpers::assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["content", "content.from", "content.reply_to"],
    )
    .await;
    assert_eq!(
        app.get("/campaigns/999").await.status(),
        StatusCode::NOT_FOUND
    );
    let list: Value = app.get("/campaigns").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
    // Another account's campaign is not found.
    let id = create_campaign(
        &app,
        json!({"name": "S", "channel": "sms", "content": {"text": "hi"}, "targets": [seg]}),
    )
    .await;
    let (_, other) = app.other_account().await;
    let r = app
        .send_as(
            &other,
            reqwest::Method::GET,
            &format!("/campaigns/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .send_as(
            &other,
            reqwest::Method::POST,
            &format!("/campaigns/{id}/send"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

pub async fn a_scheduled_campaign_is_sent_by_itself_when_due(mut app: TestApp) {
    let (url, hooks) = webhook_receiver().await;
    deliver_to(&mut app, 1, Some(&url)).await;
    app.upsert(json!([{"external_id": "ann", "phone": "+48500100200"}]))
        .await;
    let all = app
        .create_segment("Phones", json!({"field": "phone", "op": "has_value"}))
        .await;
    let due = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(1500);
    let id = create_campaign(
        &app,
        json!({"name": "Later", "channel": "sms", "targets": [all],
               "content": {"text": "Hi"}, "scheduled_at": due.to_string()}),
    )
    .await;
    let c: Value = app
        .get(&format!("/campaigns/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["status"], "scheduled");
    assert!(hooks.lock().unwrap().is_empty());
    let sent = wait_sent(&app, id).await;
    let frozen: jiff::Timestamp = sent["frozen_at"].as_str().unwrap().parse().unwrap();
    assert!(frozen >= due, "{frozen} is before {due}");
    assert_eq!(hooks.lock().unwrap().len(), 1);
}

pub async fn a_click_hands_the_site_a_token_whose_page_views_become_visits(mut app: TestApp) {
    let (port, inbox) = smtp_sink().await;
    deliver_to(&mut app, port, None).await;
    let warsaw = email_setup(&app).await;
    let pricing = app
        .create_segment(
            "Saw pricing",
            json!({"visit_url": {"op": "contains", "value": "/pricing"}, "op": "occurred"}),
        )
        .await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;
    let data = inbox
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.to[0] == "ann@example.com")
        .unwrap()
        .data
        .clone();
    let r = no_redirects().get(link(&data, "c")).send().await.unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let token = location.split("sd=").nth(1).unwrap().to_owned();

    let r = app
        .client
        .get(format!("{}/t/s.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(r.text().await.unwrap().contains("localStorage"));

    let beacon = |token: String, url: &str| {
        app.client
            .post(format!("{}/t/v", app.address))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(json!({"token": token, "url": url}).to_string())
            .send()
    };
    // Forged tokens record nothing.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    for bad in [
        format!("{head}.{flipped}{}", &sig[1..]),
        "1.1".to_owned(),
        "nonsense".to_owned(),
    ] {
        let r = beacon(bad, "https://shop.example/pricing").await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert!(maintained_members(&app, pricing).await.is_empty());

    let r = beacon(token, "https://shop.example/pricing?plan=pro")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(maintained_members(&app, pricing).await, ["ann"]);
}

pub async fn required_starttls_refuses_a_server_without_it_and_each_failure_is_kept(
    mut app: TestApp,
) {
    let (port, inbox) = smtp_sink().await;
    let delivery = DeliverySettings {
        smtp_host: "localhost".into(),
        smtp_port: port,
        smtp_tls: segmentd::settings::SmtpTls::Starttls,
        retry_backoff: Duration::from_millis(10),
        smtp_hello_name: Some("mail.shop.example".into()),
        ..DeliverySettings::default()
    };
    let server = Application::with_store_and_delivery(
        app.store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        delivery,
    )
    .await
    .unwrap();
    app.address = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped());
    let warsaw = email_setup(&app).await;
    let id = create_campaign(&app, email_campaign(vec![warsaw], vec![])).await;
    app.post(&format!("/campaigns/{id}/send"), &json!({})).await;
    wait_sent(&app, id).await;
    assert!(inbox.lock().unwrap().is_empty());
    for r in recipients(&app, id).await {
        assert_eq!(r["status"], "failed", "{r}");
        assert!(r["reason"].as_str().unwrap().starts_with("smtp"), "{r}");
        assert!(r["attempts"].as_u64().unwrap() >= 1, "{r}");
    }
}
