//! The panel's sign-in, sessions, CSRF protection and account isolation, over HTTP.

use std::sync::Arc;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use segmentd::panel::session::create_user;
use segmentd::settings::DeliverySettings;
use segmentd::startup::Application;
use segmentd_rules::FieldType;
use segmentd_store::{Account, ContactUpsert, FieldDef, SegmentDraft, Store};
use serde_json::{Value, json};

pub(crate) struct App {
    pub(crate) base: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A signed-in browser, as far as HTTP goes: the cookie and the page's CSRF token.
pub(crate) struct Session {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) const PASSWORD: &str = "correct horse battery";

async fn spawn() -> App {
    spawn_with(DeliverySettings::default()).await
}

/// A server on a fresh SQLite store, delivering campaigns as `delivery` says.
pub(crate) async fn spawn_with(delivery: DeliverySettings) -> App {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let store = segmentd_store::open(&url).await.unwrap();
    let app = Application::with_store_and_delivery(
        store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        delivery,
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    App {
        base,
        store,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl App {
    pub(crate) async fn account_with_user(&self, name: &str, email: &str) -> Account {
        let account = self.store.create_account(name, "UTC").await.unwrap();
        create_user(
            self.store.as_ref(),
            account.id,
            email,
            PASSWORD,
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
        account
    }

    pub(crate) fn req(&self, method: Method, path: &str, s: Option<&Session>) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match s {
            Some(s) => r.header(COOKIE, &s.cookie),
            None => r,
        }
    }

    async fn sign_in(&self, email: &str, password: &str) -> Response {
        self.req(Method::POST, "/panel/sign-in", None)
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn session(&self, email: &str) -> Session {
        let r = self.sign_in(email, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        let cookie = set.split(';').next().unwrap().to_owned();
        let page = self
            .req(Method::GET, "/panel/segments", None)
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = page
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        Session { cookie, csrf }
    }

    /// A JSON call with the session's CSRF token, or with `csrf` instead when given.
    async fn api(
        &self,
        method: Method,
        path: &str,
        s: &Session,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> Response {
        let mut r = self
            .req(method, path, Some(s))
            .header("x-csrf-token", csrf.unwrap_or(&s.csrf));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }
}

pub(crate) fn location(r: &Response) -> String {
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_session_pages_redirect_to_sign_in_and_the_json_is_unauthorized() {
    let app = spawn().await;
    let r = app.req(Method::GET, "/", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/panel/segments");
    for page in [
        "/panel/segments",
        "/panel/segments/new",
        "/panel/segments/1",
        "/panel/contacts",
        "/panel/fields",
    ] {
        let r = app.req(Method::GET, page, None).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(location(&r), format!("/panel/sign-in?next={page}"));
    }
    for (method, path) in [
        (Method::GET, "/panel/api/segments"),
        (Method::POST, "/panel/api/segments"),
        (Method::POST, "/panel/api/preview"),
        (Method::GET, "/panel/api/segments/1/history"),
    ] {
        let r = app
            .req(method, path, None)
            .header(COOKIE, "segmentd_session=forged")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The sign-in page itself and the assets need no session.
    for open in [
        "/panel/sign-in",
        "/panel/assets/panel.js",
        "/panel/assets/panel.css",
    ] {
        let r = app.req(Method::GET, open, None).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn a_wrong_password_or_unknown_address_signs_no_one_in() {
    let app = spawn().await;
    app.account_with_user("Acme", "ann@example.com").await;
    for (email, password) in [
        ("ann@example.com", "wrong password"),
        ("bob@example.com", PASSWORD),
    ] {
        let r = app.sign_in(email, password).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().get(SET_COOKIE).is_none());
        assert!(r.text().await.unwrap().contains("Wrong e-mail or password"));
    }
    // A form posted from another site is refused.
    let r = app
        .req(Method::POST, "/panel/sign-in", None)
        .header("origin", "http://evil.example")
        .form(&[("email", "ann@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn sign_in_locks_an_address_after_five_failures_and_answers_with_retry_after() {
    use segmentd::panel::session::FAILURES_PER_EMAIL;
    let app = spawn().await;
    app.account_with_user("Acme", "ann@example.com").await;
    app.account_with_user("Other", "bob@example.com").await;
    // A success before the limit starts the count again.
    for _ in 0..FAILURES_PER_EMAIL - 1 {
        let r = app.sign_in("ann@example.com", "wrong password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.sign_in("ann@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    for _ in 0..FAILURES_PER_EMAIL {
        let r = app.sign_in("ANN@example.com", "wrong password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Locked now, even with the right password, in any case of the address.
    let r = app.sign_in("ann@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get(SET_COOKIE).is_none());
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));
    // Another address from the same client is not locked by ann's failures.
    assert_eq!(
        app.sign_in("bob@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn keys_are_created_once_shown_and_revoked_from_the_panel() {
    let app = spawn().await;
    app.account_with_user("Acme", "ann@example.com").await;
    let s = app.session("ann@example.com").await;
    let form = |path: &str, fields: &[(&str, &str)]| {
        app.req(Method::POST, path, Some(&s)).form(fields).send()
    };
    let r = form("/panel/keys", &[("csrf", &s.csrf), ("name", "Zapier")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let key = page
        .split("id=\"new-key-value\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    assert!(key.starts_with("sk_"), "{key}");
    let api = |key: &str| {
        app.http
            .get(format!("{}/api/v1/contacts", app.base))
            .bearer_auth(key.to_owned())
            .send()
    };
    assert_eq!(api(&key).await.unwrap().status(), StatusCode::OK);
    // The list shows it by name and first characters only.
    let list = app
        .req(Method::GET, "/panel/keys", Some(&s))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("Zapier") && list.contains(&key[..10]) && !list.contains(&key));
    let id = list
        .split("data-id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    // A revoke without the CSRF token changes nothing; with it, the key stops at once.
    let r = form(&format!("/panel/keys/{id}/revoke"), &[("csrf", "wrong")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(api(&key).await.unwrap().status(), StatusCode::OK);
    let r = form(&format!("/panel/keys/{id}/revoke"), &[("csrf", &s.csrf)])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(api(&key).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_members_page_links_a_csv_of_the_whole_segment_for_its_own_account_only() {
    let app = spawn().await;
    let account = app.account_with_user("Acme", "ann@acme.test").await;
    app.account_with_user("Other", "bob@other.test").await;
    let s = app.session("ann@acme.test").await;
    let other = app.session("bob@other.test").await;
    let key = segmentd::auth::issue_api_key(app.store.as_ref(), account.id)
        .await
        .unwrap();
    let r = app
        .http
        .post(format!("{}/api/v1/contacts", app.base))
        .bearer_auth(&key)
        .json(&json!({"contacts": [
            {"external_id": "a", "email": "a@example.com"},
            {"external_id": "b", "email": "b@example.com"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .api(
            Method::POST,
            "/panel/api/segments",
            &s,
            Some(json!({"name": "All", "rule": {"field": "email", "op": "has_value"}})),
            None,
        )
        .await;
    let segment = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let page = app
        .req(
            Method::GET,
            &format!("/panel/segments/{segment}/members"),
            Some(&s),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let link = format!("/panel/segments/{segment}/members.csv");
    assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
    let r = app.req(Method::GET, &link, Some(&s)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let csv = r.text().await.unwrap();
    assert_eq!(
        csv.lines().skip(1).collect::<Vec<_>>(),
        [
            "a,a@example.com,,subscribed,",
            "b,b@example.com,,subscribed,"
        ]
    );
    let r = app
        .req(Method::GET, &link, Some(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "another account's segment"
    );
}

#[tokio::test]
async fn counts_are_shown_with_thousands_separators_on_every_page() {
    let app = spawn().await;
    let account = app.account_with_user("Acme", "ann@acme.test").await;
    let s = app.session("ann@acme.test").await;
    let key = segmentd::auth::issue_api_key(app.store.as_ref(), account.id)
        .await
        .unwrap();
    let contacts: Vec<Value> = (0..1_234)
        .map(|i| json!({"external_id": format!("c{i:04}"), "email": format!("c{i}@example.com")}))
        .collect();
    let r = app
        .http
        .post(format!("{}/api/v1/contacts", app.base))
        .bearer_auth(&key)
        .json(&json!({ "contacts": contacts }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .api(
            Method::POST,
            "/panel/api/segments",
            &s,
            Some(json!({"name": "All", "rule": {"field": "email", "op": "has_value"}})),
            None,
        )
        .await;
    let segment = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let cases = [
        ("/panel/segments".to_owned(), "data-count=\"1234\">1,234<"),
        (
            format!("/panel/segments/{segment}"),
            "id=\"segment-count\">1,234<",
        ),
        (
            format!("/panel/segments/{segment}/members"),
            "id=\"members-count\">1,234 contacts",
        ),
        (
            format!("/panel/segments/{segment}"),
            "id=\"segment-share\">of 1,234 contacts (100%)<",
        ),
        // After a save the page confirms it; only our own words are ever shown.
        (
            format!("/panel/segments/{segment}?done=saved"),
            "id=\"toast\">Changes saved.<",
        ),
    ];
    for (path, expected) in cases {
        let html = app
            .req(Method::GET, &path, Some(&s))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains(expected), "{path}: {expected}");
    }
    // The members page says which page of how many, and the next page knows it is 2.
    let get = |path: String| {
        let req = app.req(Method::GET, &path, Some(&s));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let first = get(format!("/panel/segments/{segment}/members")).await;
    assert!(
        first.contains("page <span id=\"page-number\">1</span> of 25"),
        "{first}"
    );
    let next = first
        .split("id=\"next-page\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let second = get(next).await;
    assert!(second.contains("page <span id=\"page-number\">2</span> of 25"));
    let html = app
        .req(
            Method::GET,
            &format!("/panel/segments/{segment}?done=%3Cb%3Ehi"),
            Some(&s),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("id=\"toast\"") && !html.contains("<b>hi"));
}

#[tokio::test]
async fn the_cookie_is_secure_with_the_host_prefix_whenever_the_public_url_is_https() {
    let cases = [
        (None, false, "segmentd_session="),
        (Some("http://panel.example"), false, "segmentd_session="),
        (
            Some("https://panel.example"),
            false,
            "__Host-segmentd_session=",
        ),
        (
            Some("http://panel.example"),
            true,
            "__Host-segmentd_session=",
        ),
    ];
    for (public_url, forced, prefix) in cases {
        let app = spawn_with(segmentd::settings::DeliverySettings {
            public_url: public_url.map(str::to_owned),
            secure_cookies: forced,
            ..Default::default()
        })
        .await;
        app.account_with_user("Acme", "ann@example.com").await;
        let r = app.sign_in("ann@example.com", PASSWORD).await;
        let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(cookie.starts_with(prefix), "{public_url:?}: {cookie}");
        assert_eq!(
            cookie.contains("; Secure"),
            prefix.starts_with("__Host-"),
            "{cookie}"
        );
        // The cookie works under its own name, and signed-in pages are never cached.
        let page = app
            .req(Method::GET, "/panel/segments", None)
            .header(COOKIE, cookie.split(';').next().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{cookie}");
        assert_eq!(page.headers()["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_and_any_case_of_the_address_signs_in() {
    let app = spawn().await;
    app.account_with_user("Acme", "Ann@Example.com").await;
    let r = app.sign_in("ann@EXAMPLE.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/panel/segments");
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // Only plain panel paths are followed after sign-in; a bad `next` still signs in.
    for next in [
        "https://evil.example/",
        "/panel\r\nSet-Cookie: x=1",
        "/panel/\u{0}",
    ] {
        let r = app
            .req(Method::POST, "/panel/sign-in", None)
            .form(&[
                ("email", "ann@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        if next.contains('\u{0}') {
            // NUL is refused at the door, before any sign-in.
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{next:?}");
            continue;
        }
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(location(&r), "/panel/segments", "{next:?}");
        assert!(r.headers().get(SET_COOKIE).is_some(), "{next:?}");
    }
}

#[tokio::test]
async fn a_write_without_the_sessions_csrf_token_is_forbidden_and_changes_nothing() {
    let app = spawn().await;
    let acme = app.account_with_user("Acme", "ann@example.com").await;
    app.store
        .create_field(
            acme.id,
            &FieldDef {
                key: "city".into(),
                label: "City".into(),
                field_type: FieldType::Text,
            },
        )
        .await
        .unwrap();
    let s = app.session("ann@example.com").await;
    let other = app.session("ann@example.com").await;
    let segment =
        json!({"name": "Warsaw", "rule": {"field": "city", "op": "equals", "value": "Warsaw"}});
    for bad in ["", "0000", other.csrf.as_str()] {
        let r = app
            .api(
                Method::POST,
                "/panel/api/segments",
                &s,
                Some(segment.clone()),
                Some(bad),
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "token {bad:?}");
        let r = app
            .api(
                Method::POST,
                "/panel/api/fields",
                &s,
                Some(json!({"key": "age", "type": "number"})),
                Some(bad),
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = app
            .api(
                Method::DELETE,
                "/panel/api/fields/city",
                &s,
                None,
                Some(bad),
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    assert!(app.store.segments(acme.id, None).await.unwrap().is_empty());
    assert_eq!(app.store.fields(acme.id).await.unwrap().len(), 1);
    // Sign-out without the token does not sign out.
    let r = app
        .req(Method::POST, "/panel/sign-out", Some(&s))
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // With the token, the same writes go through.
    let r = app
        .api(Method::POST, "/panel/api/segments", &s, Some(segment), None)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.store.segments(acme.id, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = spawn().await;
    app.account_with_user("Acme", "ann@example.com").await;
    let s = app.session("ann@example.com").await;
    let r = app
        .api(Method::GET, "/panel/api/segments", &s, None, None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .req(Method::POST, "/panel/sign-out", Some(&s))
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/panel/sign-in"));
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie is worth nothing now.
    let r = app
        .req(Method::GET, "/panel/segments", Some(&s))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = app
        .api(Method::GET, "/panel/api/segments", &s, None, None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_panel_user_never_sees_or_touches_another_accounts_data() {
    let app = spawn().await;
    let acme = app.account_with_user("Acme", "ann@example.com").await;
    let other = app.account_with_user("Other", "bob@example.com").await;
    app.store
        .create_field(
            other.id,
            &FieldDef {
                key: "secret".into(),
                label: "Secret".into(),
                field_type: FieldType::Text,
            },
        )
        .await
        .unwrap();
    app.store
        .upsert_contacts(
            other.id,
            &[ContactUpsert {
                external_id: "bobs-contact".into(),
                ..ContactUpsert::default()
            }],
        )
        .await
        .unwrap();
    let theirs = app
        .store
        .create_segment(
            other.id,
            &SegmentDraft {
                name: "Theirs".into(),
                description: String::new(),
                rule: json!({"field": "email", "op": "has_value"}),
            },
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    let s = app.session("ann@example.com").await;
    let id = theirs.id;
    for page in [
        format!("/panel/segments/{id}"),
        format!("/panel/segments/{id}/edit"),
        format!("/panel/segments/{id}/members"),
        "/panel/contact?id=bobs-contact".to_owned(),
    ] {
        let r = app.req(Method::GET, &page, Some(&s)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{page}");
    }
    for path in [
        format!("/panel/api/segments/{id}/history"),
        format!("/panel/api/segments/{id}/explain?contact=bobs-contact"),
    ] {
        let r = app.api(Method::GET, &path, &s, None, None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = app
        .api(
            Method::PUT,
            &format!("/panel/api/segments/{id}"),
            &s,
            Some(json!({"name": "Mine now", "rule": {"field": "email", "op": "has_value"}})),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .api(Method::DELETE, "/panel/api/fields/secret", &s, None, None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let listed: Value = app
        .api(Method::GET, "/panel/api/segments", &s, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    let page = app
        .req(Method::GET, "/panel/segments", Some(&s))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Theirs"));
    // Their data is untouched.
    assert_eq!(
        app.store.segment(other.id, id).await.unwrap().unwrap().name,
        "Theirs"
    );
    assert_eq!(app.store.fields(other.id).await.unwrap().len(), 1);
    assert!(app.store.segments(acme.id, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_live_preview_counts_and_reports_problems_by_path() {
    let app = spawn().await;
    let acme = app.account_with_user("Acme", "ann@example.com").await;
    app.store
        .upsert_contacts(
            acme.id,
            &[
                ContactUpsert {
                    external_id: "a".into(),
                    email: segmentd_store::Patch::Set("a@example.com".into()),
                    ..ContactUpsert::default()
                },
                ContactUpsert {
                    external_id: "b".into(),
                    phone: segmentd_store::Patch::Set("+48 600 000 000".into()),
                    ..ContactUpsert::default()
                },
            ],
        )
        .await
        .unwrap();
    let s = app.session("ann@example.com").await;
    let r: Value = app
        .api(
            Method::POST,
            "/panel/api/preview",
            &s,
            Some(json!({"rule": {"any": [{"field": "email", "op": "has_value"}, {"field": "phone", "op": "has_value"}]}})),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"valid": true, "count": 2, "reachable": {"email": 1, "sms": 1, "push": 0}, "total": 2})
    );
    let r = app
        .api(
            Method::POST,
            "/panel/api/preview",
            &s,
            Some(json!({"rule": {"any": [{"all": [{"field": "nope", "op": "has_value"}]}]}})),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["valid"], false);
    assert_eq!(r["errors"][0]["path"], "rule.any[0].all[0].field");
}

#[tokio::test]
async fn a_campaign_is_created_previewed_and_sent_from_the_panel() {
    let app = spawn().await;
    let account = app.account_with_user("Acme", "ann@acme.test").await;
    let s = app.session("ann@acme.test").await;
    // Through the API, so the index knows them.
    let key = segmentd::auth::issue_api_key(app.store.as_ref(), account.id)
        .await
        .unwrap();
    let r = app
        .http
        .post(format!("{}/api/v1/contacts", app.base))
        .bearer_auth(&key)
        .json(&json!({"contacts": [
            {"external_id": "a", "email": "a@example.com", "phone": "+48500000001"},
            {"external_id": "b", "email": "b@example.com", "phone": "+48500000002"},
            {"external_id": "c", "email": "c@example.com"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Created through the API so the evaluator knows the segment.
    let r = app
        .api(
            Method::POST,
            "/panel/api/segments",
            &s,
            Some(json!({"name": "All", "rule": {"field": "email", "op": "has_value"}})),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let segment = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    let form = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("name", "Hello".to_owned()),
            ("channel", "sms".to_owned()),
            ("target", segment.to_string()),
            ("text", "Hi {{external_id}}".to_owned()),
        ]
    };
    let r = app
        .req(Method::POST, "/panel/campaigns", Some(&s))
        .form(&form("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.store.campaigns(account.id).await.unwrap().is_empty());
    let r = app
        .req(Method::POST, "/panel/campaigns", Some(&s))
        .form(&form(&s.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page_url = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let page = app
        .req(Method::GET, &page_url, Some(&s))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="preview-recipients">2<"#), "{page}");
    assert!(page.contains(r#"id="ex-no-address">1<"#), "{page}");

    let send = format!("{page_url}/send");
    let r = app
        .req(Method::POST, &send, Some(&s))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .req(Method::POST, &send, Some(&s))
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = app
        .req(Method::GET, &page_url, Some(&s))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("2 frozen"), "{page}");
    let list = app.store.campaigns(account.id).await.unwrap();
    let frozen = app
        .store
        .campaign_recipients(account.id, list[0].id)
        .await
        .unwrap();
    assert_eq!(
        frozen
            .iter()
            .map(|r| r.address.as_str())
            .collect::<Vec<_>>(),
        ["+48500000001", "+48500000002"]
    );

    // A campaign scheduled from the form: the local time is read in the account's zone
    // (UTC here) and the campaign waits for it.
    let mut scheduled = form(&s.csrf);
    scheduled[1].1 = "Later".to_owned();
    scheduled.push(("scheduled_at", "2099-01-02T03:04".to_owned()));
    let r = app
        .req(Method::POST, "/panel/campaigns", Some(&s))
        .form(&scheduled)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let later = app
        .store
        .campaigns(account.id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "Later")
        .unwrap();
    assert_eq!(
        later.scheduled_at.map(|t| t.to_string()),
        Some("2099-01-02T03:04:00Z".to_owned())
    );
    assert_eq!(later.status.as_str(), "scheduled");
}

/// The builder's lists, value suggestions, reach and contact search come from the index
/// and follow updates and deletions made through the API.
#[tokio::test]
async fn builder_lists_suggestions_reach_and_search_follow_updates_and_deletions() {
    let app = spawn().await;
    let acme = app.account_with_user("Acme", "ann@example.com").await;
    let key = segmentd::auth::issue_api_key(app.store.as_ref(), acme.id)
        .await
        .unwrap();
    let api = |method: Method, path: &str, body: Value| {
        app.http
            .request(method, format!("{}/api/v1{path}", app.base))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let ok = |r: Response| {
        assert!(r.status().is_success(), "{}", r.status());
        r
    };
    ok(api(
        Method::POST,
        "/fields",
        json!({"key": "city", "type": "text"}),
    )
    .await
    .unwrap());
    ok(api(Method::POST, "/contacts", json!({"contacts": [
        {"external_id": "ann", "email": "Ann@Example.com", "phone": "+48 600 100",
         "fields": {"city": "Warsaw"}, "channels": {"email": "unsubscribed"}},
        {"external_id": "bob", "email": "bob@x.org", "fields": {"city": "Wrocław"}},
        {"external_id": "cat", "fields": {"city": "Warsaw"}, "channels": {"push_tokens": ["t1"]}}
    ]})).await.unwrap());
    let now = jiff::Timestamp::now().to_string();
    ok(api(Method::POST, "/events", json!({"events": [
        {"type": "custom", "contact": "ann", "name": "purchase", "timestamp": now,
         "properties": {"category": "Shoes", "amount": 5}},
        {"type": "custom", "contact": "bob", "name": "purchase", "timestamp": now,
         "properties": {"category": "shoes"}},
        {"type": "visit", "contact": "ann", "url": "https://shop.example.com/pricing?plan=pro", "timestamp": now},
        {"type": "system", "contact": "ann", "event": "MailOpen", "campaign": "newsletter-1", "timestamp": now}
    ]})).await.unwrap());
    let s = app.session("ann@example.com").await;

    let catalog = |html: String| -> Value {
        let json = html
            .split("id=\"builder-catalog\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap()
            .replace("\\u003c", "<");
        serde_json::from_str(&json).unwrap()
    };
    let page = |path: &'static str| {
        let r = app.req(Method::GET, path, Some(&s));
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    let get = |path: String| {
        let r = app.req(Method::GET, &path, Some(&s));
        async move { r.send().await.unwrap() }
    };
    let c = catalog(page("/panel/segments/new").await);
    assert_eq!(c["event_names"], json!(["purchase"]));
    assert_eq!(
        c["events"][0]["properties"],
        json!([{"path": "amount", "types": ["number"]}, {"path": "category", "types": ["text"]}])
    );
    assert_eq!(c["campaigns"], json!(["newsletter-1"]));
    assert_eq!(
        c["url_prefixes"],
        json!(["https://shop.example.com/pricing"])
    );
    let values = |q: &'static str| async move {
        get(format!("/panel/api/values?{q}"))
            .await
            .json::<Value>()
            .await
            .unwrap()["values"]
            .clone()
    };
    assert_eq!(
        values("field=city").await,
        json!([{"value": "warsaw", "count": 2}, {"value": "wrocław", "count": 1}])
    );
    assert_eq!(
        values("event=purchase&property=category").await,
        json!([{"value": "shoes", "count": 2}])
    );
    assert_eq!(
        get("/panel/api/values?field=city&event=purchase".into())
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let reach = || async {
        app.api(
            Method::POST,
            "/panel/api/preview",
            &s,
            Some(json!({"rule": {"field": "city", "op": "has_value"}})),
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap()
    };
    assert_eq!(
        reach().await,
        json!({"valid": true, "count": 3, "reachable": {"email": 1, "sms": 1, "push": 1}, "total": 3})
    );
    let found = |q: &'static str| async move {
        let html = get(format!(
            "/panel/contacts?q={}",
            q.replace('+', "%2B").replace(' ', "+")
        ))
        .await
        .text()
        .await
        .unwrap();
        ["ann", "bob", "cat"]
            .into_iter()
            .filter(|e| html.contains(&format!("/panel/contact?id={e}\"")))
            .collect::<Vec<_>>()
    };
    assert_eq!(found("ANN@ex").await, ["ann"], "e-mail prefix, any case");
    assert_eq!(found("+48 600").await, ["ann"], "phone prefix");
    assert_eq!(found("war").await, ["ann", "cat"], "a text field's value");
    assert_eq!(found("b").await, ["bob"], "external id and e-mail");
    assert_eq!(found("zzz").await, Vec::<&str>::new());

    // Updates and deletions: ann goes (with her events), bob moves, cat subscribes.
    ok(api(Method::DELETE, "/contacts/ann", json!(null))
        .await
        .unwrap());
    ok(api(
        Method::POST,
        "/contacts",
        json!({"contacts": [
            {"external_id": "bob", "fields": {"city": "Kraków"}},
            {"external_id": "cat", "email": "cat@x.org"}
        ]}),
    )
    .await
    .unwrap());
    let c = catalog(page("/panel/segments/new").await);
    assert_eq!(
        c["event_names"],
        json!(["purchase"]),
        "bob's purchase stays"
    );
    assert_eq!(
        c["events"][0]["properties"],
        json!([{"path": "category", "types": ["text"]}]),
        "ann's amount went with her"
    );
    assert_eq!(c["campaigns"], json!([]));
    assert_eq!(c["url_prefixes"], json!([]));
    assert_eq!(
        values("field=city").await,
        json!([{"value": "kraków", "count": 1}, {"value": "warsaw", "count": 1}])
    );
    assert_eq!(
        values("event=purchase&property=category").await,
        json!([{"value": "shoes", "count": 1}])
    );
    assert_eq!(
        reach().await,
        json!({"valid": true, "count": 2, "reachable": {"email": 2, "sms": 0, "push": 1}, "total": 2})
    );
    assert_eq!(found("ann").await, Vec::<&str>::new());
    assert_eq!(found("war").await, ["cat"]);
    assert_eq!(found("kra").await, ["bob"]);
    assert_eq!(found("cat@").await, ["cat"]);
}

/// An account with `city` (text) and `age` (number), contacts `ann`, `bob`, `cat`, `dan`,
/// a signed-in user and an API key.
async fn small_account(app: &App) -> (Account, Session, String) {
    let account = app.account_with_user("Acme", "ann@acme.test").await;
    let key = segmentd::auth::issue_api_key(app.store.as_ref(), account.id)
        .await
        .unwrap();
    for (key_, ty) in [("city", "text"), ("age", "number")] {
        let r = app
            .http
            .post(format!("{}/api/v1/fields", app.base))
            .bearer_auth(&key)
            .json(&json!({"key": key_, "type": ty}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = app
        .http
        .post(format!("{}/api/v1/contacts", app.base))
        .bearer_auth(&key)
        .json(&json!({"contacts": [
            {"external_id": "ann", "email": "ann@shop.test", "phone": "+48 600 100 200", "fields": {"city": "Warsaw", "age": 30}},
            {"external_id": "bob", "email": "bob@shop.test", "fields": {"city": "Wrocław", "age": 40}},
            {"external_id": "cat", "email": "cat@other.test", "fields": {"city": "Warsaw", "age": 50}},
            {"external_id": "dan", "phone": "+48 700 100 200", "fields": {"city": "Kraków"}}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let s = app.session("ann@acme.test").await;
    (account, s, key)
}

#[tokio::test]
async fn the_builder_is_told_each_problem_in_a_sentence_beside_its_condition() {
    let app = spawn().await;
    let (_, s, key) = small_account(&app).await;
    // (draft, where the problem is, the sentence the builder shows)
    let cases = [
        (
            json!({"field": "age", "op": "between", "value": [50, 20]}),
            "rule.value",
            "Low must be at most high.",
        ),
        (
            json!({"all": [{"field": "age", "op": "equals", "value": ""}]}),
            "rule.all[0].value",
            "Enter a number.",
        ),
        (
            json!({"any": [{"all": [{"field": "city", "op": "in", "value": []}]}]}),
            "rule.any[0].all[0].value",
            "Enter at least one value.",
        ),
        (
            json!({"visit_url": {"op": "contains", "value": "/p"}, "op": "occurred", "within": {"last_days": 0}}),
            "rule.within.last_days",
            "Enter a number of days from 1 to 3650.",
        ),
        (
            json!({"segment": 999, "op": "in"}),
            "rule.segment",
            "That segment no longer exists. Choose another one.",
        ),
    ];
    for (rule, path, sentence) in cases {
        let r = app
            .api(
                Method::POST,
                "/panel/api/preview",
                &s,
                Some(json!({ "rule": rule })),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let r: Value = r.json().await.unwrap();
        assert_eq!(r["valid"], false, "{rule}");
        assert_eq!(r["errors"][0]["path"], path, "{rule}");
        assert_eq!(r["errors"][0]["message"], sentence, "{rule}");
        // Saving says the same; the API keeps its own words (spec/api.md).
        let saved = app
            .api(
                Method::POST,
                "/panel/api/segments",
                &s,
                Some(json!({"name": "Draft", "rule": rule})),
                None,
            )
            .await;
        assert_eq!(saved.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let saved: Value = saved.json().await.unwrap();
        assert_eq!(saved["error"]["details"][0]["message"], sentence);
        assert_eq!(saved["error"]["message"], sentence);
        let api: Value = app
            .http
            .post(format!("{}/api/v1/segments", app.base))
            .bearer_auth(&key)
            .json(&json!({"name": "Draft", "rule": rule}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(api["error"]["details"][0]["path"], path);
        assert_ne!(api["error"]["details"][0]["message"], sentence);
    }
}

#[tokio::test]
async fn a_taken_name_is_refused_with_a_sentence_that_names_and_links_the_segment_that_has_it() {
    let app = spawn().await;
    let (_, s, _) = small_account(&app).await;
    let create = |name: &'static str| {
        app.api(
            Method::POST,
            "/panel/api/segments",
            &s,
            Some(json!({"name": name, "rule": {"field": "city", "op": "has_value"}})),
            None,
        )
    };
    let first = create("Big Spenders").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let id = first.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for taken in ["Big Spenders", "big spenders", "  BIG SPENDERS "] {
        let r = app
            .api(
                Method::POST,
                "/panel/api/segments",
                &s,
                Some(json!({"name": taken, "rule": {"field": "city", "op": "has_value"}})),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::CONFLICT, "{taken}");
        let r: Value = r.json().await.unwrap();
        let detail = &r["error"]["details"][0];
        assert_eq!(detail["path"], "name");
        assert_eq!(
            detail["message"],
            "A segment named \u{201c}Big Spenders\u{201d} already exists. Choose another name.",
            "{taken}"
        );
        assert_eq!(detail["segment"], json!({"id": id, "name": "Big Spenders"}));
    }
}

#[tokio::test]
async fn a_segment_that_would_include_itself_is_refused_in_a_sentence_while_editing_and_saving() {
    let app = spawn().await;
    let (account, s, _) = small_account(&app).await;
    let create = |name: &'static str, rule: Value| {
        let r = app.api(
            Method::POST,
            "/panel/api/segments",
            &s,
            Some(json!({"name": name, "rule": rule})),
            None,
        );
        async move {
            let r = r.await;
            assert_eq!(r.status(), StatusCode::CREATED, "{name}");
            r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
        }
    };
    let warsaw = create(
        "Warsaw",
        json!({"field": "city", "op": "equals", "value": "Warsaw"}),
    )
    .await;
    let older = create("Older Warsaw", json!({"all": [{"segment": warsaw, "op": "in"}, {"field": "age", "op": "greater_than", "value": 35}]})).await;
    let oldest = create("Oldest Warsaw", json!({"segment": older, "op": "in"})).await;
    // (Warsaw's new rule, the sentence)
    let cases = [
        (
            json!({"segment": warsaw, "op": "in"}),
            "A segment cannot include itself.".to_owned(),
        ),
        (
            json!({"segment": older, "op": "not_in"}),
            "\u{201c}Older Warsaw\u{201d} already includes this segment, so it cannot be used here: the two would go round in a circle.".to_owned(),
        ),
        (
            json!({"any": [{"field": "city", "op": "has_value"}, {"segment": oldest, "op": "in"}]}),
            "\u{201c}Oldest Warsaw\u{201d} already includes this segment (through \u{201c}Older Warsaw\u{201d}), so it cannot be used here: they would go round in a circle.".to_owned(),
        ),
    ];
    for (rule, sentence) in cases {
        let preview: Value = app
            .api(
                Method::POST,
                "/panel/api/preview",
                &s,
                Some(json!({"rule": rule, "segment": warsaw})),
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(preview["valid"], false, "{rule}");
        assert_eq!(preview["errors"][0]["message"], sentence.as_str());
        let r = app
            .api(
                Method::PUT,
                &format!("/panel/api/segments/{warsaw}"),
                &s,
                Some(json!({"name": "Warsaw", "rule": rule})),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r: Value = r.json().await.unwrap();
        assert_eq!(r["error"]["details"][0]["message"], sentence.as_str());
    }
    let kept = app
        .store
        .segment(account.id, warsaw)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.rule,
        json!({"field": "city", "op": "equals", "value": "Warsaw"})
    );
    // The same reference is fine in another segment, and counts its members.
    let preview: Value = app
        .api(
            Method::POST,
            "/panel/api/preview",
            &s,
            Some(json!({"rule": {"segment": older, "op": "not_in"}})),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["valid"], true);
    assert_eq!(preview["count"], 3, "all but cat (Warsaw, 50)");
    assert_eq!(preview["total"], 4);
    // The builder offers every saved segment but the one being edited.
    let page = app
        .req(
            Method::GET,
            &format!("/panel/segments/{warsaw}/edit"),
            Some(&s),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let catalog: Value = serde_json::from_str(
        page.split("id=\"builder-catalog\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        catalog["segments"],
        json!([{"id": older, "name": "Older Warsaw"}, {"id": oldest, "name": "Oldest Warsaw"}])
    );
}

#[tokio::test]
async fn the_members_page_searches_within_the_segment_by_external_id_email_or_phone() {
    let app = spawn().await;
    let (_, s, _) = small_account(&app).await;
    let r = app
        .api(
            Method::POST,
            "/panel/api/segments",
            &s,
            Some(json!({"name": "Not Kraków", "rule": {"field": "city", "op": "not_equals", "value": "Kraków"}})),
            None,
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // (query, the members found, the sentence above the table)
    let cases: [(&str, &[&str], &str); 7] = [
        ("", &["ann", "bob", "cat"], "3 contacts"),
        ("a", &["ann"], "1 of 3 contacts match \u{201c}a\u{201d}"),
        ("SHOP", &[], "0 of 3 contacts match \u{201c}SHOP\u{201d}"),
        (
            "bob@",
            &["bob"],
            "1 of 3 contacts match \u{201c}bob@\u{201d}",
        ),
        (
            "+48 600",
            &["ann"],
            "1 of 3 contacts match \u{201c}+48 600\u{201d}",
        ),
        // dan has the phone but is not a member.
        ("+48 7", &[], "0 of 3 contacts match \u{201c}+48 7\u{201d}"),
        (
            "war",
            &["ann", "cat"],
            "2 of 3 contacts match \u{201c}war\u{201d}",
        ),
    ];
    for (query, members, said) in cases {
        let q: String = url_encode(query);
        let html = app
            .req(
                Method::GET,
                &format!("/panel/segments/{id}/members?q={q}"),
                Some(&s),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let found: Vec<&str> = ["ann", "bob", "cat", "dan"]
            .into_iter()
            .filter(|e| html.contains(&format!("/panel/contact?id={e}\"")))
            .collect();
        assert_eq!(found, members, "{query:?}");
        let count = html
            .split("id=\"members-count\">")
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap()
            .replace("<span id=\"members-found\">", "")
            .replace("</span>", "");
        assert_eq!(count, said, "{query:?}");
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn value_suggestions_narrow_to_what_is_typed_for_fields_properties_and_urls() {
    let app = spawn().await;
    let (_, s, key) = small_account(&app).await;
    let now = jiff::Timestamp::now().to_string();
    let r = app
        .http
        .post(format!("{}/api/v1/events", app.base))
        .bearer_auth(&key)
        .json(&json!({"events": [
            {"type": "custom", "contact": "ann", "name": "purchase", "timestamp": now, "properties": {"category": "Shoes"}},
            {"type": "custom", "contact": "bob", "name": "purchase", "timestamp": now, "properties": {"category": "Shirts"}},
            {"type": "custom", "contact": "cat", "name": "purchase", "timestamp": now, "properties": {"category": "Hats"}},
            {"type": "visit", "contact": "ann", "url": "https://shop.test/pricing?x=1", "timestamp": now},
            {"type": "visit", "contact": "bob", "url": "https://shop.test/blog/a", "timestamp": now}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // (query, the values offered)
    let cases = [
        ("field=city&prefix=w", json!(["warsaw", "wrocław"])),
        ("field=city&prefix=WR", json!(["wrocław"])),
        ("field=city&prefix=x", json!([])),
        (
            "event=purchase&property=category&prefix=sh",
            json!(["shirts", "shoes"]),
        ),
        (
            "event=purchase&property=category",
            json!(["hats", "shirts", "shoes"]),
        ),
        ("url=PRICING", json!(["https://shop.test/pricing"])),
        (
            "url=shop.test",
            json!(["https://shop.test/blog", "https://shop.test/pricing"]),
        ),
    ];
    for (query, want) in cases {
        let r = app
            .req(Method::GET, &format!("/panel/api/values?{query}"), Some(&s))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{query}");
        let body: Value = r.json().await.unwrap();
        let values: Vec<Value> = body["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].clone())
            .collect();
        assert_eq!(Value::Array(values), want, "{query}");
    }
}
