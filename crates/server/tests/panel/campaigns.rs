//! The campaign pages over HTTP with a signed-in session: lifecycle actions offered by
//! status and refused with lifecycle's sentence, the edit page, statistics and the
//! recipient list after a real send to an SMTP sink in the test, and test sends.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use segmentd::settings::DeliverySettings;
use segmentd_store::{Account, CampaignDraft, CampaignStatus, Channel};
use serde_json::{Value, json};

use crate::http::{App, Session, location, spawn_with};
use crate::smtp::{Inbox, Rules, link, smtp_server};

/// A signed-in panel over a server that delivers e-mail to the sink (where
/// `bob@example.com` bounces), with contacts ann, bob, fay and a segment of all three.
struct Panel {
    app: App,
    s: Session,
    account: Account,
    key: String,
    segment: i64,
    inbox: Inbox,
}

async fn panel() -> Panel {
    let (port, inbox) = smtp_server(Rules {
        unknown_users: vec!["bob@example.com".into()],
        ..Rules::default()
    })
    .await;
    let app = spawn_with(DeliverySettings {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        retry_backoff: Duration::from_millis(10),
        // Only what the test starts is delivered: a campaign put in a status by hand
        // stays in it.
        worker: false,
        ..DeliverySettings::default()
    })
    .await;
    let account = app.account_with_user("Acme", "ann@acme.test").await;
    let key = segmentd::auth::issue_api_key(app.store.as_ref(), account.id)
        .await
        .unwrap();
    let s = app.session("ann@acme.test").await;
    let mut p = Panel {
        app,
        s,
        account,
        key,
        segment: 0,
        inbox,
    };
    // Through the API, so the index knows them.
    let r = p
        .api(
            Method::POST,
            "/contacts",
            json!({"contacts": [
                {"external_id": "ann", "email": "ann@example.com"},
                {"external_id": "bob", "email": "bob@example.com"},
                {"external_id": "fay", "email": "fay@example.com"},
            ]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = p
        .api(
            Method::POST,
            "/segments",
            json!({"name": "Everyone", "rule": {"field": "email", "op": "has_value"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    p.segment = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    p
}

impl Panel {
    async fn api(&self, method: Method, path: &str, body: Value) -> Response {
        self.app
            .http
            .request(method, format!("{}/api/v1{path}", self.app.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A page's status and HTML.
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .app
            .req(Method::GET, path, Some(&self.s))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let mut all = vec![("csrf", self.s.csrf.as_str())];
        all.extend_from_slice(form);
        self.app
            .req(Method::POST, path, Some(&self.s))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// An e-mail campaign to everyone, made through the API; scheduled far ahead when
    /// `scheduled`.
    async fn campaign(&self, scheduled: bool) -> i64 {
        let mut body = json!({
            "name": "Spring sale",
            "channel": "email",
            "content": {
                "from": "Shop <shop@example.com>",
                "subject": "Hello {{external_id}}",
                "html": "<p>Hi</p><a href=\"https://shop.example/sale\">Sale</a>",
                "text": "Hi, see https://shop.example/sale"
            },
            "targets": [self.segment],
        });
        if scheduled {
            body["scheduled_at"] = json!("2099-01-01T00:00:00Z");
        }
        let r = self.api(Method::POST, "/campaigns", body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    /// The campaign's status in the store; `None` once deleted.
    async fn status(&self, id: i64) -> Option<String> {
        self.app
            .store
            .campaign(self.account.id, id)
            .await
            .unwrap()
            .map(|c| c.status.as_str().to_owned())
    }

    /// A campaign in `status`: made through the API (draft, scheduled), cancelled from
    /// the panel, or put in a delivery status by hand (nothing delivers it here).
    async fn campaign_in(&self, status: &str) -> i64 {
        let id = self
            .campaign(status == "scheduled" || status == "cancelled")
            .await;
        let by_hand = match status {
            "sending" => Some((CampaignStatus::Sending, None)),
            "paused" => Some((CampaignStatus::Paused, Some("5 errors in a row"))),
            "cancelled" => {
                let r = self
                    .post(&format!("/panel/campaigns/{id}/cancel"), &[])
                    .await;
                assert_eq!(r.status(), StatusCode::SEE_OTHER);
                None
            }
            _ => None,
        };
        if let Some((to, reason)) = by_hand {
            self.app
                .store
                .set_campaign_status(self.account.id, id, &[CampaignStatus::Draft], to, reason)
                .await
                .unwrap();
        }
        assert_eq!(self.status(id).await.as_deref(), Some(status));
        id
    }

    /// Waits (bounded) until the campaign's delivery has finished.
    async fn wait_sent(&self, id: i64) {
        for _ in 0..500 {
            if self.status(id).await.as_deref() == Some("sent") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("campaign {id} was not sent in 10 s");
    }
}

/// Where a redirect leads, and that page's HTML.
async fn follow(p: &Panel, r: Response) -> (String, String) {
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    let (status, html) = p.get(&to).await;
    assert_eq!(status, StatusCode::OK, "{to}");
    (to, html)
}

#[tokio::test]
async fn lifecycle_actions_are_offered_by_status_and_refusals_show_lifecycles_sentence() {
    let p = panel().await;
    struct Case {
        start: &'static str,
        action: &'static str,
        /// `Ok(notice)` when done, `Err(why)` when refused (409): the sentence after
        /// "campaign N is STATUS; ".
        outcome: Result<&'static str, &'static str>,
        /// The statuses the campaign may be in afterwards; none: deleted.
        after: &'static [&'static str],
        /// Buttons on the page shown afterwards, and buttons that must not be there.
        shown: &'static [&'static str],
        hidden: &'static [&'static str],
    }
    let refused = |start: &'static str, action: &'static str, why: &'static str| Case {
        start,
        action,
        outcome: Err(why),
        after: match start {
            "draft" => &["draft"],
            _ => &["scheduled"],
        },
        shown: &["duplicate-campaign"],
        hidden: &["pause-campaign", "resume-campaign", "resend-campaign"],
    };
    let cases = [
        refused("draft", "pause", "only a sending campaign can be paused"),
        refused("draft", "resume", "only a paused campaign can be resumed"),
        refused(
            "draft",
            "cancel",
            "only a scheduled campaign can be cancelled",
        ),
        refused(
            "draft",
            "resend",
            "only a campaign that was sent can be sent again to its failed recipients",
        ),
        refused(
            "scheduled",
            "delete",
            "only a draft or a cancelled campaign can be deleted",
        ),
        Case {
            start: "sending",
            action: "pause",
            outcome: Ok("Paused: no new message starts; those under way finish."),
            after: &["paused"],
            shown: &["resume-campaign", "resend-campaign", "duplicate-campaign"],
            hidden: &["pause-campaign", "edit-campaign", "delete-campaign"],
        },
        Case {
            start: "paused",
            action: "resume",
            outcome: Ok("Resumed: delivery goes on."),
            // With no recipients left, delivery may already be over.
            after: &["sending", "sent"],
            shown: &["resend-campaign", "duplicate-campaign"],
            hidden: &["resume-campaign", "edit-campaign", "delete-campaign"],
        },
        Case {
            start: "scheduled",
            action: "cancel",
            outcome: Ok("Cancelled: the campaign will not be sent. It can be deleted now."),
            after: &["cancelled"],
            shown: &["delete-campaign", "duplicate-campaign"],
            hidden: &["cancel-campaign", "edit-campaign", "pause-campaign"],
        },
        Case {
            start: "cancelled",
            action: "delete",
            outcome: Ok("The campaign was deleted."),
            after: &[],
            shown: &[],
            hidden: &[],
        },
        Case {
            start: "draft",
            action: "delete",
            outcome: Ok("The campaign was deleted."),
            after: &[],
            shown: &[],
            hidden: &[],
        },
        Case {
            start: "draft",
            action: "duplicate",
            outcome: Ok("This is a copy of the campaign, as a draft."),
            after: &["draft"],
            shown: &["edit-campaign", "delete-campaign", "send-campaign"],
            hidden: &["cancel-campaign", "resend-campaign"],
        },
    ];
    for c in cases {
        let what = format!("{} {}", c.action, c.start);
        let id = p.campaign_in(c.start).await;
        let r = p
            .post(&format!("/panel/campaigns/{id}/{}", c.action), &[])
            .await;
        let html = match c.outcome {
            Err(why) => {
                assert_eq!(r.status(), StatusCode::CONFLICT, "{what}");
                let html = r.text().await.unwrap();
                let sentence = format!("campaign {id} is {}; {why}", c.start);
                assert!(
                    html.contains(&format!(r#"id="campaign-error">{sentence}</p>"#)),
                    "{what}: {html}"
                );
                html
            }
            Ok(notice) => {
                let (to, html) = follow(&p, r).await;
                assert!(
                    html.contains(&format!(r#"id="campaign-notice">{notice}</p>"#)),
                    "{what}: {html}"
                );
                if c.after.is_empty() {
                    assert_eq!(to, "/panel/campaigns?done=deleted", "{what}");
                    assert!(
                        !html.contains(&format!("/panel/campaigns/{id}\"")),
                        "{what}: still listed"
                    );
                } else if c.action == "duplicate" {
                    let copy: i64 = to
                        .trim_start_matches("/panel/campaigns/")
                        .trim_end_matches("?done=duplicated")
                        .parse()
                        .unwrap();
                    assert_ne!(copy, id);
                    assert!(html.contains("<h1>Spring sale (copy)</h1>"), "{html}");
                    assert_eq!(p.status(copy).await.as_deref(), Some("draft"));
                } else {
                    assert!(
                        to.starts_with(&format!("/panel/campaigns/{id}?done=")),
                        "{what}: {to}"
                    );
                }
                html
            }
        };
        let now = p.status(id).await;
        match now.as_deref() {
            None => assert!(c.after.is_empty(), "{what}: deleted"),
            Some(s) => assert!(c.after.contains(&s), "{what}: now {s}"),
        }
        for b in c.shown {
            assert!(html.contains(&format!(r#"id="{b}""#)), "{what}: {b} shown");
        }
        for b in c.hidden {
            assert!(
                !html.contains(&format!(r#"id="{b}""#)),
                "{what}: {b} hidden"
            );
        }
    }

    // A paused campaign's page says why.
    let id = p.campaign_in("paused").await;
    let (_, html) = p.get(&format!("/panel/campaigns/{id}")).await;
    assert!(
        html.contains(r#"id="status-reason">5 errors in a row<"#),
        "{html}"
    );

    // Without the session's token nothing happens; another account's campaign is not
    // found.
    let r = p
        .app
        .req(
            Method::POST,
            &format!("/panel/campaigns/{id}/resume"),
            Some(&p.s),
        )
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(p.status(id).await.as_deref(), Some("paused"));
    let other = p.app.store.create_account("Other", "UTC").await.unwrap();
    let theirs = p
        .app
        .store
        .create_campaign(
            other.id,
            &CampaignDraft {
                name: "Theirs".into(),
                channel: Channel::Email,
                content: json!({"from": "a@x.org", "subject": "s", "text": "t"}),
                targets: vec![],
                exclusions: vec![],
                scheduled_at: None,
                rate_per_second: None,
            },
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    for action in ["delete", "duplicate", "edit", "test"] {
        let r = p
            .post(
                &format!("/panel/campaigns/{}/{action}", theirs.id),
                &[("name", "Mine"), ("to", "x@example.com")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
    }
    let (status, _) = p.get(&format!("/panel/campaigns/{}/edit", theirs.id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let still = p.app.store.campaign(other.id, theirs.id).await.unwrap();
    assert_eq!(still.map(|c| c.name).as_deref(), Some("Theirs"));
    assert_eq!(p.app.store.campaigns(other.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_draft_is_edited_on_its_edit_page_and_problems_show_as_on_create() {
    let p = panel().await;
    let segment = p.segment.to_string();
    let form = |name: &'static str, rate: &'static str| {
        vec![
            ("name", name),
            ("channel", "email"),
            ("target", segment.as_str()),
            ("from", "Shop <shop@example.com>"),
            ("subject", "Hello"),
            ("text", "Hi there"),
            ("rate_per_second", rate),
        ]
    };
    // Made from the panel's form.
    let r = p.post("/panel/campaigns", &form("Hello", "5")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page_url = location(&r);
    let id: i64 = page_url
        .trim_start_matches("/panel/campaigns/")
        .parse()
        .unwrap();
    let edit = format!("/panel/campaigns/{id}/edit");

    // The edit page holds what the campaign has.
    let (status, html) = p.get(&edit).await;
    assert_eq!(status, StatusCode::OK);
    for filled in [
        r#"name="name" required value="Hello""#.to_owned(),
        r#"<option value="email" selected>"#.to_owned(),
        format!(r#"<option value="{segment}" selected>Everyone</option>"#),
        r#"name="from" value="Shop &lt;shop@example.com&gt;""#.to_owned(),
        r#"name="subject" value="Hello""#.to_owned(),
        r#"name="text" rows="3">Hi there</textarea>"#.to_owned(),
        r#"name="rate_per_second" type="number" min="1" max="100000" value="5""#.to_owned(),
    ] {
        assert!(html.contains(&filled), "{filled} in {html}");
    }

    // Problems are shown above the form as posted, and nothing is saved; the same on
    // the new-campaign form.
    let cases: [(Vec<(&str, &str)>, &str); 5] = [
        (
            form("", "5"),
            "name: expected a name of 1 to 200 characters",
        ),
        (
            form("Hello", "0"),
            "rate_per_second: expected 1 to 100,000 messages a second",
        ),
        (
            form("Hello", "fast"),
            "rate_per_second: expected a whole number of messages a second",
        ),
        (
            form("Hello", "")
                .into_iter()
                .map(|(k, v)| {
                    if k == "from" {
                        (k, "not an address")
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "content.from: expected an e-mail address",
        ),
        (
            form("Hello", "")
                .into_iter()
                .filter(|(k, _)| *k != "target")
                .collect(),
            "targets: expected 1 to 50 segment ids",
        ),
    ];
    for (posted, problem) in &cases {
        for path in [edit.as_str(), "/panel/campaigns"] {
            let r = p.post(path, posted).await;
            assert_eq!(
                r.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {problem}"
            );
            let html = r.text().await.unwrap();
            assert!(
                html.contains(&format!(r#"id="campaign-error">{problem}</p>"#)),
                "{path}: {problem} in {html}"
            );
            assert!(
                html.contains(r#"name="text" rows="3">Hi there</textarea>"#),
                "kept"
            );
        }
    }
    let kept = p
        .app
        .store
        .campaign(p.account.id, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.name.as_str(), kept.rate_per_second),
        ("Hello", Some(5))
    );
    assert_eq!(p.app.store.campaigns(p.account.id).await.unwrap().len(), 1);

    // Saved: the new name shows, a send time makes it scheduled.
    let mut changed = form("Hello again", "9");
    changed.push(("scheduled_at", "2099-01-02T03:04"));
    let r = p.post(&edit, &changed).await;
    let (to, html) = follow(&p, r).await;
    assert_eq!(to, format!("/panel/campaigns/{id}?done=saved"));
    assert!(html.contains("<h1>Hello again</h1>"), "{html}");
    assert!(
        html.contains(r#"id="campaign-notice">Changes saved.</p>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"id="campaign-status">scheduled<"#),
        "{html}"
    );
    assert!(
        html.contains(r#"id="campaign-rate">9 messages a second<"#),
        "{html}"
    );
    let saved = p
        .app
        .store
        .campaign(p.account.id, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.rate_per_second, Some(9));
    assert_eq!(
        saved.scheduled_at.map(|t| t.to_string()).as_deref(),
        Some("2099-01-02T03:04:00Z")
    );
    let (_, html) = p.get(&edit).await;
    assert!(html.contains(r#"value="2099-01-02T03:04""#), "{html}");

    // Once cancelled it cannot be edited: the page says why, and a post is refused.
    let r = p.post(&format!("/panel/campaigns/{id}/cancel"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let why =
        format!("campaign {id} is cancelled; only a draft or a scheduled campaign can be edited");
    let (status, html) = p.get(&edit).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains(&why), "{html}");
    let r = p.post(&edit, &form("Too late", "")).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains(&why));
    assert_eq!(p.status(id).await.as_deref(), Some("cancelled"));
}

#[tokio::test]
async fn a_sent_campaign_shows_its_statistics_chart_and_recipients_by_status_page_by_page() {
    let p = panel().await;
    let id = p.campaign(false).await;
    let page_url = format!("/panel/campaigns/{id}");
    let (_, html) = p.get(&page_url).await;
    assert!(
        !html.contains(r#"id="campaign-stats""#),
        "no statistics before sending"
    );

    let r = p.post(&format!("{page_url}/send"), &[]).await;
    let (_, html) = follow(&p, r).await;
    assert!(
        html.contains(r#"id="campaign-notice">Sending started.</p>"#),
        "{html}"
    );
    p.wait_sent(id).await;

    // Ann opens (a person) and clicks; Fay's message is fetched by a prefetcher.
    let mails = p.inbox.lock().unwrap().clone();
    let mail_to = |who: &str| {
        mails
            .iter()
            .find(|m| m.to == [who])
            .unwrap_or_else(|| panic!("no mail to {who}"))
            .data
            .clone()
    };
    let ann = mail_to("ann@example.com");
    let fay = mail_to("fay@example.com");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (link, agent) in [
        (
            link(&ann, "o"),
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        ),
        (
            link(&ann, "c"),
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        ),
        (link(&fay, "o"), "Mozilla/5.0"),
    ] {
        let r = client
            .get(&link)
            .header("user-agent", agent)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success() || r.status().is_redirection(),
            "{link}"
        );
    }

    let (status, html) = p.get(&page_url).await;
    assert_eq!(status, StatusCode::OK);
    let figures = [
        ("stat-recipients", "3"),
        ("stat-sent", "2"),
        ("stat-failed", "0"),
        ("stat-bounced", "1"),
        ("stat-unknown", "0"),
        ("stat-queued", "0"),
        ("stat-opens", "1"),
        ("stat-opens-share", "(50% of sent)"),
        ("stat-clicks", "1"),
        ("stat-clicks-share", "(50% of sent)"),
        ("stat-unsubscribes", "0"),
        ("stat-complaints", "0"),
        ("stat-machine-opens", "1"),
    ];
    for (figure, want) in figures {
        assert!(
            html.contains(&format!(r#"id="{figure}">{want}<"#)),
            "{figure} = {want} in {html}"
        );
    }
    assert!(html.contains("not counted as opens"));
    // The chart: inline SVG, a title on every bar.
    assert!(
        html.contains(r#"<svg class="chart stats-chart" id="stats-chart""#),
        "{html}"
    );
    for title in [
        ": 2 sent</title>",
        ": 1 opens</title>",
        ": 1 clicks</title>",
    ] {
        assert!(html.contains(title), "{title} in {html}");
    }
    // A sent campaign: resend and duplicate, nothing else.
    assert!(html.contains(r#"id="resend-campaign""#));
    for gone in [
        "pause-campaign",
        "edit-campaign",
        "delete-campaign",
        "send-campaign",
    ] {
        assert!(!html.contains(&format!(r#"id="{gone}""#)), "{gone}");
    }

    // Recipients: filtered by status, and paged by external id.
    let listed = |html: &str| -> Vec<String> {
        html.split(r#"<tr data-id=""#)
            .skip(1)
            .map(|row| row.split('"').next().unwrap().to_owned())
            .collect()
    };
    let next = |html: &str| -> Option<String> {
        html.split(r#"id="next-page" href=""#)
            .nth(1)
            .map(|rest| rest.split('"').next().unwrap().replace("&amp;", "&"))
    };
    let cases: [(&str, &[&str], bool); 5] = [
        ("", &["ann", "bob", "fay"], false),
        ("?status=sent", &["ann", "fay"], false),
        ("?status=bounced", &["bob"], false),
        ("?status=failed", &[], false),
        ("?limit=2", &["ann", "bob"], true),
    ];
    for (query, want, more) in cases {
        let (status, html) = p.get(&format!("{page_url}{query}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed(&html), want, "{query}");
        assert_eq!(next(&html).is_some(), more, "{query}");
    }
    let (_, html) = p.get(&format!("{page_url}?limit=2")).await;
    assert!(
        html.contains(r#"data-status="bounced">bounced (1)</a>"#),
        "{html}"
    );
    let (_, html) = p.get(&next(&html).unwrap()).await;
    assert_eq!(listed(&html), ["fay"]);
    assert_eq!(next(&html), None);

    // Resend: only the failed are sent again (a bounce is not a failure).
    let r = p.post(&format!("{page_url}/resend"), &[]).await;
    let (to, html) = follow(&p, r).await;
    assert_eq!(to, format!("{page_url}?done=resent&n=0"));
    assert!(html.contains("0 recipients queued again."), "{html}");
}

#[tokio::test]
async fn a_test_send_from_the_campaign_page_reaches_the_sink_and_shows_each_result() {
    let p = panel().await;
    let id = p.campaign(false).await;
    let test = format!("/panel/campaigns/{id}/test");

    // Refused before anything is sent, the typed addresses kept.
    let cases = [
        (
            "x@example.com, not an address",
            "",
            "to[1]: expected an e-mail address",
        ),
        ("", "", "to: expected 1 to 10 addresses"),
        (
            "a@x.org,b@x.org,c@x.org,d@x.org,e@x.org,f@x.org,g@x.org,h@x.org,i@x.org,j@x.org,k@x.org",
            "",
            "to: expected 1 to 10 addresses",
        ),
        (
            "x@example.com",
            "nobody",
            "contact: no contact &quot;nobody&quot;",
        ),
    ];
    for (to, contact, problem) in cases {
        let r = p.post(&test, &[("to", to), ("contact", contact)]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{to}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&format!(r#"id="campaign-error">{problem}</p>"#)),
            "{problem} in {html}"
        );
        assert!(html.contains(&format!(">{to}</textarea>")), "kept: {to}");
    }
    assert!(p.inbox.lock().unwrap().is_empty());

    // Two addresses, one a line; the sink refuses bob's.
    let r = p
        .post(
            &test,
            &[
                ("to", "x@example.com\r\nbob@example.com"),
                ("contact", "ann"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    for (address, result) in [("x@example.com", "sent"), ("bob@example.com", "bounced")] {
        assert!(
            html.contains(&format!(
                r#"<tr><td>{address}</td><td class="result">{result}</td>"#
            )),
            "{address} {result} in {html}"
        );
    }
    let mails = p.inbox.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["x@example.com"]);
    assert!(
        mails[0].data.contains("Subject: [Test] Hello ann"),
        "{}",
        mails[0].data
    );
    // Nothing is recorded for the campaign.
    assert_eq!(p.status(id).await.as_deref(), Some("draft"));
    assert!(!html.contains(r#"id="campaign-stats""#));
}
