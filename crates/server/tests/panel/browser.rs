//! The panel in a real browser: Debian's headless `chromium`, driven through
//! `chromedriver` (WebDriver) with fantoccini, against a server on port 0 seeded with the
//! demo data. Screenshots of the main pages go to `target/screenshots/`.
//!
//! Without `chromium`/`chromedriver` on the PATH the test fails when `CI` is set and
//! prints `SKIPPED browser tests: …` otherwise (`.ci/run` installs both).

use std::future::Future;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use segmentd::startup::Application;
use segmentd_store::Store;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";

fn find_on_path(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        return Path::new(name).exists().then(|| PathBuf::from(name));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Ends chromedriver and the browser it started when the test ends, passed or not:
/// chromedriver runs in a process group of its own, and the whole group is killed.
/// The browser profile directory goes with it.
struct Driver(Child, Option<tempfile::TempDir>);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
        drop(self.1.take());
    }
}

/// `POST /session/{id}/se/log {"type": "browser"}`: the browser console, as chromedriver
/// keeps it when `goog:loggingPrefs` asks for it.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, url_error::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_owned()),
        )
    }
}

mod url_error {
    pub use reqwest::Url;
    pub type ParseError = <Url as std::str::FromStr>::Err;
}

struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
    /// Console entries read so far (each read drains chromedriver's buffer).
    console: Vec<Value>,
}

impl Browser {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The element, once it exists; retried across page loads started by the page's
    /// own script (which abort a lookup in flight).
    async fn find(&self, css: &str) -> Element {
        let start = Instant::now();
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) => return e,
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    panic!("no element {css}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// Runs `act` on the element `css`, looking it up again when it fails: the page's
    /// script may replace the element between the lookup and the action (a stale
    /// element reference), as it does when the condition builder re-renders.
    async fn on<T, F, Fut>(&self, css: &str, act: F) -> T
    where
        F: Fn(Element) -> Fut,
        Fut: Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let start = Instant::now();
        loop {
            match act(self.find(css).await).await {
                Ok(v) => return v,
                Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("{css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        self.on(css, |e| async move { e.text().await }).await
    }

    async fn click(&self, css: &str) {
        self.on(css, |e| async move { e.click().await }).await
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.on(css, |e| async move {
            e.clear().await?;
            e.send_keys(text).await
        })
        .await
    }

    async fn choose(&self, css: &str, value: &str) {
        self.on(css, |e| async move { e.select_by_value(value).await })
            .await
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Polls `check` (every 100 ms, for at most 10 s) until it gives `Some`.
    async fn until<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The live count once it has settled on a number different from `not`.
    async fn live_count_other_than(&self, not: Option<u64>) -> u64 {
        self.until("the live count to change", || async {
            let count = self.find("#live-count").await;
            if count.attr("aria-busy").await.ok()?.is_some() {
                return None;
            }
            let n = count
                .text()
                .await
                .ok()?
                .replace(',', "")
                .parse::<u64>()
                .ok()?;
            (Some(n) != not).then_some(n)
        })
        .await
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn read_console(&mut self) {
        let entries = self.client.issue_cmd(BrowserLog).await.unwrap();
        if let Value::Array(items) = entries {
            self.console.extend(items);
        }
    }

    /// The `selector` of the k-th condition (1-based) of the g-th group (1-based).
    fn condition(g: usize, k: usize) -> String {
        format!(
            "#builder > fieldset.group:nth-of-type({g}) > ul.items > li.condition:nth-child({k})"
        )
    }
}

async fn start_browser() -> Option<(Driver, Client)> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|b| find_on_path(b).is_none())
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "{} not installed (apt-get install chromium chromium-driver)",
            missing.join(" and ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("browser tests cannot run and CI is set: {why}");
        }
        eprintln!("SKIPPED browser tests: {why}");
        return None;
    }
    let port = free_port();
    let profile = tempfile::tempdir().unwrap();
    let profile_dir = profile.path().display().to_string();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child, Some(profile));
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1280,800",
                format!("--user-data-dir={profile_dir}"),
            ],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let caps = caps.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver needs a moment to listen: retry the session for up to 20 s.
    let start = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => break c,
            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a chromedriver session: {e}"),
        }
    };
    Some((driver, client))
}

struct Server {
    base: String,
    store: Arc<dyn Store>,
    account: i64,
    key: String,
    _dir: tempfile::TempDir,
}

async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let store = segmentd_store::open(&url).await.unwrap();
    let app = Application::with_store(store.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let now = app.state().clock.now();
    let (account, _) = segmentd::demo::ensure_demo(app.state(), 400, now)
        .await
        .unwrap();
    segmentd::panel::session::ensure_demo_user(store.as_ref(), account.id, now)
        .await
        .unwrap();
    let key = segmentd::auth::issue_api_key(store.as_ref(), account.id)
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Server {
        base,
        store,
        account: account.id,
        key,
        _dir: dir,
    }
}

async fn api_count(server: &Server, id: i64) -> u64 {
    let r: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/segments/{id}/count", server.base))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["count"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketer_builds_saves_edits_and_finds_a_segment_in_the_panel() {
    let Some((_driver, client)) = start_browser().await else {
        return;
    };
    let started = Instant::now();
    let server = start_server().await;
    let mut b = Browser {
        client,
        base: server.base.clone(),
        shots: screenshots_dir(),
        console: Vec::new(),
    };

    // Signed out, the panel sends us to the sign-in page.
    b.goto("/").await;
    b.find("#sign-in").await;
    assert_eq!(b.path().await, "/panel/sign-in");
    b.shot("01-sign-in").await;
    b.type_into("#email", "demo@segmentd.local").await;
    b.type_into("#password", "segmentd-demo").await;
    b.click("#sign-in").await;
    b.find("#segments").await;
    assert_eq!(b.path().await, "/panel/segments");
    b.shot("02-segments").await;

    // Search filters by name as we type.
    let all_rows = b.all("#segments tbody tr").await.len();
    assert!(all_rows >= 5, "the demo has segments");
    b.type_into("#segment-search", "SPEND").await;
    let visible = b
        .until("the list to filter", || async {
            let mut names = Vec::new();
            for r in b.all("#segments tbody tr:not([hidden])").await {
                names.push(r.text().await.ok()?);
            }
            (names.len() < all_rows).then_some(names)
        })
        .await;
    assert_eq!(visible.len(), 1, "{visible:?}");
    assert!(visible[0].contains("Big spenders"), "{visible:?}");
    b.shot("03-segments-search").await;

    // A new segment: group 1 (all) = city equals Warsaw AND opened an e-mail in the last
    // 30 days; OR group 2 (any) = did "purchase" in the last 30 days OR visited /pricing.
    b.click("#new-segment").await;
    b.find("#builder fieldset.group").await;
    b.type_into("#seg-name", "Warsaw readers or shoppers").await;
    b.type_into("#seg-description", "Made in the browser test")
        .await;
    let c11 = Browser::condition(1, 1);
    b.choose(&format!("{c11} select[id$='-type']"), "field")
        .await;
    b.choose(&format!("{c11} select[id$='-field']"), "city")
        .await;
    b.choose(&format!("{c11} select[id$='-op']"), "equals")
        .await;
    b.type_into(&format!("{c11} input[id$='-value']"), "Warsaw")
        .await;
    let warsaw = b.live_count_other_than(None).await;
    assert!(warsaw > 0, "someone lives in Warsaw");
    // The value input suggests the field's most frequent values (from the index).
    b.find(&format!("{c11} datalist option[value='warsaw']"))
        .await;

    b.click("#builder > fieldset.group:nth-of-type(1) .add-condition")
        .await;
    let c12 = Browser::condition(1, 2);
    b.choose(&format!("{c12} select[id$='-type']"), "system")
        .await;
    b.choose(&format!("{c12} select[id$='-event']"), "MailOpen")
        .await;
    b.choose(&format!("{c12} select[id$='-window']"), "last_days")
        .await;
    b.type_into(&format!("{c12} input[id$='-days']"), "30")
        .await;
    let readers = b.live_count_other_than(Some(warsaw)).await;
    assert!(readers < warsaw, "adding an 'all' condition narrows");

    b.click("#add-group").await;
    b.choose("#join-1", "or").await;
    b.choose(
        "#builder > fieldset.group:nth-of-type(2) select[id$='-match']",
        "any",
    )
    .await;
    let c21 = Browser::condition(2, 1);
    b.choose(&format!("{c21} select[id$='-type']"), "custom")
        .await;
    b.type_into(&format!("{c21} input[id$='-name']"), "purchase")
        .await;
    b.choose(&format!("{c21} select[id$='-window']"), "last_days")
        .await;
    b.type_into(&format!("{c21} input[id$='-days']"), "30")
        .await;
    b.click("#builder > fieldset.group:nth-of-type(2) .add-condition")
        .await;
    let c22 = Browser::condition(2, 2);
    b.choose(&format!("{c22} select[id$='-type']"), "visit")
        .await;
    b.choose(&format!("{c22} select[id$='-urlop']"), "contains")
        .await;
    b.type_into(&format!("{c22} input[id$='-url']"), "/pricing")
        .await;
    // URL prefixes seen in visits are offered, and event names.
    b.find(&format!(
        "{c22} datalist option[value='https://shop.example.com/pricing']"
    ))
    .await;
    b.find(&format!("{c21} datalist option[value='purchase']"))
        .await;
    let live = b.live_count_other_than(Some(readers)).await;
    assert!(live > readers, "an 'or' group widens");
    for channel in ["email", "sms", "push"] {
        let n: u64 = b
            .text(&format!("#reach-{channel}"))
            .await
            .replace(',', "")
            .parse()
            .unwrap();
        assert!(n <= live, "{channel}: {n} reachable of {live}");
    }
    b.shot("04-new-segment").await;

    // Create: the segment page, with the count and the rule in words, and a toast
    // that says it was created.
    b.click("#save-segment").await;
    b.find("#segment-words").await;
    assert_eq!(b.text("#toast").await, "Segment created.");
    let id: i64 = b
        .path()
        .await
        .trim_start_matches("/panel/segments/")
        .parse()
        .unwrap();
    let saved = server
        .store
        .segments(server.account, Some("Warsaw readers or shoppers"))
        .await
        .unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        saved[0].rule,
        json!({"any": [
            {"all": [
                {"field": "city", "op": "equals", "value": "Warsaw"},
                {"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 30}}
            ]},
            {"any": [
                {"custom_event": "purchase", "op": "occurred", "within": {"last_days": 30}},
                {"visit_url": {"op": "contains", "value": "/pricing"}, "op": "occurred", "within": {"last_days": 30}}
            ]}
        ]})
    );
    let count = api_count(&server, id).await;
    assert_eq!(count, live, "the live count was the saved segment's count");
    assert_eq!(b.text("#segment-count").await, count.to_string());
    let words = b.text("#segment-words").await;
    assert!(
        words.starts_with("(City equals Warsaw and opened an e-mail in the last 30 days) or"),
        "{words}"
    );
    b.find("#chart svg circle").await;

    // Why is this contact in or out.
    let member = server
        .store
        .all_contacts(server.account)
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    b.type_into("#explain-contact", &member.external_id).await;
    b.click("#explain-form button").await;
    let verdict = b.text("#explain-result .verdict").await;
    assert!(verdict.contains(&member.external_id), "{verdict}");
    assert!(
        b.all("#explain-result li").await.len() >= 7,
        "one line per node"
    );
    b.shot("05-segment-page").await;

    // The list shows it with the right count.
    b.goto("/panel/segments").await;
    let row = "#segments tbody tr[data-name='warsaw readers or shoppers']";
    assert_eq!(
        b.on(&format!("{row} td[data-count]"), |e| async move {
            e.attr("data-count").await
        })
        .await,
        Some(count.to_string())
    );

    // Show: the members, with e-mail, phone and fields.
    b.click(&format!("{row} a[href$='/members']")).await;
    b.find("#members").await;
    let rows = b.all("#members tbody tr").await.len() as u64;
    assert_eq!(rows, count.min(50));
    let header = b.text("#members thead").await.to_lowercase();
    assert!(
        header.contains("e-mail") && header.contains("city"),
        "{header}"
    );
    b.shot("06-members").await;

    // Edit: a bad value is shown beside its condition, a taken name beside the name.
    b.goto(&format!("/panel/segments/{id}/edit")).await;
    b.find(&Browser::condition(2, 2)).await;
    assert_eq!(b.all("#builder > fieldset.group").await.len(), 2);
    b.click("#builder > fieldset.group:nth-of-type(1) .add-condition")
        .await;
    let c13 = Browser::condition(1, 3);
    b.choose(&format!("{c13} select[id$='-field']"), "age")
        .await;
    b.choose(&format!("{c13} select[id$='-op']"), "between")
        .await;
    b.type_into(&format!("{c13} input[id$='-value']"), "60")
        .await;
    b.type_into(&format!("{c13} input[id$='-value2']"), "20")
        .await;
    b.click("#save-segment").await;
    let message = b
        .until("the inline error of the bad value", || async {
            let t = b.text(&format!("{c13} p.error")).await;
            (!t.is_empty()).then_some(t)
        })
        .await;
    assert!(message.contains("value"), "{message}");
    assert_eq!(
        b.on(&c13, |e| async move { e.attr("aria-invalid").await })
            .await,
        Some("true".into())
    );
    b.shot("07-edit-bad-value").await;
    assert!(b.path().await.ends_with("/edit"), "nothing saved");

    b.type_into(&format!("{c13} input[id$='-value']"), "18")
        .await;
    b.type_into(&format!("{c13} input[id$='-value2']"), "99")
        .await;
    b.type_into("#seg-name", "big SPENDERS").await;
    b.click("#save-segment").await;
    let name_error = b
        .until("the inline error of the taken name", || async {
            let t = b.text("#seg-name-error").await;
            (!t.is_empty()).then_some(t)
        })
        .await;
    assert!(name_error.contains("already exists"), "{name_error}");
    b.shot("08-edit-taken-name").await;

    b.type_into("#seg-name", "Adult Warsaw readers or shoppers")
        .await;
    b.click("#save-segment").await;
    b.find("#segment-words").await;
    let words = b.text("#segment-words").await;
    assert!(words.contains("Age is between 18 and 99"), "{words}");
    assert_eq!(
        b.text("h1").await,
        "Adult Warsaw readers or shoppers",
        "saved under the new name"
    );

    // Contacts and custom fields.
    b.goto("/panel/contacts").await;
    b.type_into("#contact-search", &member.external_id).await;
    b.click("form.search button").await;
    b.click("#contacts tbody a").await;
    b.find("#contact-fields").await;
    b.shot("09-contact").await;
    b.goto("/panel/fields").await;
    b.find("#fields").await;
    b.type_into("#field-key", "shoe_size").await;
    b.type_into("#field-label", "Shoe size").await;
    b.choose("#field-type", "number").await;
    b.click("#create-field").await;
    b.find("#fields tr[data-key='shoe_size']").await;
    b.shot("10-fields").await;

    // Phone width.
    b.client.set_window_size(390, 844).await.unwrap();
    b.goto("/panel/segments").await;
    b.find("#segments").await;
    b.shot("11-phone-segments").await;
    b.goto(&format!("/panel/segments/{id}/edit")).await;
    b.find("#builder fieldset.group").await;
    b.shot("12-phone-editor").await;
    b.client.set_window_size(1280, 800).await.unwrap();

    // Sign out, and be refused.
    b.read_console().await;
    b.click("#sign-out").await;
    b.find("#sign-in").await;
    b.goto("/panel/segments").await;
    b.find("#sign-in").await;
    assert_eq!(b.path().await, "/panel/sign-in");

    // The console: no errors but the refusals the scenario asked for (the duplicate
    // name's 409 and the bad value's 422, which the browser logs as failed requests).
    b.read_console().await;
    let errors: Vec<&Value> = b
        .console
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            !(m.contains("/panel/api/segments")
                && (m.contains("status of 409") || m.contains("status of 422")))
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.client.close().await.unwrap();
    eprintln!(
        "browser scenario took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        b.shots.display()
    );
}

/// The website tracking script in a real browser: a contact clicks an SMS campaign link,
/// lands on a local "site" that embeds `/t/s.js`, then opens another page of the site;
/// both page views become visits and a `visit_url` segment sees the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracking_script_turns_page_views_after_a_campaign_click_into_visits() {
    let Some((_driver, client)) = start_browser().await else {
        return;
    };
    // The SMS provider: keeps every message.
    let hooks: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let kept = hooks.clone();
    let provider = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let provider_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", provider_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(provider_listener, provider).await });

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("site.db").display());
    let store = segmentd_store::open(&url).await.unwrap();
    let app = Application::with_store_and_delivery(
        store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        segmentd::settings::DeliverySettings {
            sms_webhook_url: Some(hook_url),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    // The customer's website, on another origin, embedding the script.
    let script = format!("{base}/t/s.js");
    let page = move |title: &'static str| {
        let script = script.clone();
        move || async move {
            axum::response::Html(format!(
                "<!doctype html><title>{title}</title><script src=\"{script}\"></script><h1 id=\"page\">{title}</h1>"
            ))
        }
    };
    let site = axum::Router::new()
        .route("/landing", axum::routing::get(page("Landing")))
        .route("/pricing", axum::routing::get(page("Pricing")));
    let site_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_base = format!("http://{}", site_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(site_listener, site).await });

    let account = store.create_account("Shop", "UTC").await.unwrap();
    let key = segmentd::auth::issue_api_key(store.as_ref(), account.id)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let r = call(
        reqwest::Method::POST,
        "/contacts",
        json!({"contacts": [{"external_id": "ann", "phone": "+48500100200"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let id_of = |v: Value| v["id"].as_i64().unwrap();
    let phones = id_of(
        call(
            reqwest::Method::POST,
            "/segments",
            json!({"name": "Phones", "rule": {"field": "phone", "op": "has_value"}}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap(),
    );
    let pricing = id_of(
        call(
            reqwest::Method::POST,
            "/segments",
            json!({"name": "Saw pricing", "rule": {"visit_url": {"op": "contains", "value": "/pricing"}, "op": "occurred"}}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap(),
    );
    let campaign = id_of(
        call(
            reqwest::Method::POST,
            "/campaigns",
            json!({"name": "Go", "channel": "sms", "targets": [phones],
                   "content": {"text": format!("Look: {site_base}/landing")}}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap(),
    );
    let r = call(
        reqwest::Method::POST,
        &format!("/campaigns/{campaign}/send"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let start = Instant::now();
    let text = loop {
        if let Some(h) = hooks.lock().unwrap().first() {
            break h["text"].as_str().unwrap().to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no SMS arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let click = text.split(' ').find(|w| w.contains("/t/c/")).unwrap();

    let count = || async {
        let r: Value = http
            .get(format!("{base}/api/v1/segments/{pricing}/count"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["count"].as_u64().unwrap()
    };
    client.goto(click).await.unwrap();
    let landed = client.current_url().await.unwrap();
    assert!(
        landed
            .as_str()
            .starts_with(&format!("{site_base}/landing?sd=")),
        "{landed}"
    );
    assert_eq!(count().await, 0, "the landing page is not /pricing");
    // No token in this URL: the script finds it in the site's storage.
    client.goto(&format!("{site_base}/pricing")).await.unwrap();
    let start = Instant::now();
    while count().await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the visit to /pricing was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ann = store.contact(account.id, "ann").await.unwrap().unwrap();
    let visits: Vec<String> = store
        .contact_events(account.id, ann.id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            segmentd_store::EventBody::Visit { url } => Some(url),
            _ => None,
        })
        .collect();
    assert_eq!(
        visits,
        [
            format!("{site_base}/landing"),
            format!("{site_base}/pricing")
        ]
    );

    // The campaign's page at phone width: its statistics chart shows, inside the page
    // (no sideways scrolling).
    let start = Instant::now();
    while store
        .campaign(account.id, campaign)
        .await
        .unwrap()
        .map(|c| c.status.as_str())
        != Some("sent")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "not sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    segmentd::panel::session::create_user(
        store.as_ref(),
        account.id,
        "ann@shop.test",
        "correct horse battery",
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    let b = Browser {
        client,
        base: base.clone(),
        shots: screenshots_dir(),
        console: Vec::new(),
    };
    b.client.set_window_size(390, 844).await.unwrap();
    b.goto("/panel/sign-in").await;
    b.type_into("#email", "ann@shop.test").await;
    b.type_into("#password", "correct horse battery").await;
    b.click("#sign-in").await;
    b.find("#segments").await;
    b.goto(&format!("/panel/campaigns/{campaign}")).await;
    let chart = b.find("#stats-chart").await;
    assert!(chart.is_displayed().await.unwrap());
    let sizes = b
        .client
        .execute(
            "const r = document.getElementById('stats-chart').getBoundingClientRect(); \
             const d = document.documentElement; \
             return [r.width, r.height, d.scrollWidth, d.clientWidth];",
            vec![],
        )
        .await
        .unwrap();
    let [width, height, scroll, client_width] = [0, 1, 2, 3].map(|i| sizes[i].as_f64().unwrap());
    assert!(width > 200.0 && height > 50.0, "chart {width}×{height}");
    assert!(
        width <= client_width && scroll <= client_width,
        "chart {width} px and page {scroll} px wide in a {client_width} px window"
    );
    b.client
        .execute(
            "document.getElementById('stats-chart').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.shot("13-phone-campaign-stats").await;
    b.client.close().await.unwrap();
}

mod data_pages;
