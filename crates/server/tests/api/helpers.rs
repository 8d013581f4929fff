//! `run()` (a fresh app per test on either backend) and typed helpers, after zero-to-production.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use reqwest::{Method, Response, StatusCode};
use segmentd::auth::issue_api_key;
use segmentd::index::SaveWhen;
use segmentd::settings::DeliverySettings;
use segmentd::startup::Application;
use segmentd::state::AppState;
use segmentd_store::testing::{self, Backend};
use segmentd_store::{Account, Store};
use serde_json::{Value, json};

pub struct TestApp {
    pub address: String,
    pub key: String,
    pub account: Account,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    /// The state of the app now serving (its indexes, for snapshots).
    pub state: AppState,
    /// Where the app keeps index snapshots (none is saved unless a test asks).
    pub snapshots: Arc<tempfile::TempDir>,
}

/// Serves an app over `store` keeping snapshots in `snapshots`; returns its address and
/// state.
async fn serve(store: Arc<dyn Store>, snapshots: Option<PathBuf>) -> (String, AppState) {
    let app = Application::with_options(
        store,
        "127.0.0.1:0".parse().unwrap(),
        // Tests that deliver serve a second app on the same store with their own
        // settings; this one must not take their campaigns up in the background.
        DeliverySettings {
            worker: false,
            ..DeliverySettings::default()
        },
        snapshots,
    )
    .await
    .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    (address, state)
}

/// Runs `test` against a server on a free port over a fresh store of `backend`, with one
/// account ("Test", UTC) and its API key.
pub async fn run<F, Fut>(backend: Backend, name: &str, test: F)
where
    F: FnOnce(TestApp) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    testing::run(backend, name, move |ctx| async move {
        test(spawn_app_with(ctx.store).await).await
    })
    .await;
}

async fn spawn_app_with(store: Arc<dyn Store>) -> TestApp {
    let snapshots = Arc::new(tempfile::tempdir().unwrap());
    let (address, state) = serve(store.clone(), Some(snapshots.path().to_owned())).await;
    let account = store.create_account("Test", "UTC").await.unwrap();
    let key = issue_api_key(store.as_ref(), account.id).await.unwrap();
    TestApp {
        address,
        key,
        account,
        store,
        client: reqwest::Client::new(),
        state,
        snapshots,
    }
}

impl TestApp {
    /// Stops serving from this app's engine and starts a new server over the same store,
    /// as a restart of the process would.
    /// The new server starts from the saved index snapshots, if any.
    pub async fn restart(&mut self) {
        let dir = self.snapshots.path().to_owned();
        (self.address, self.state) = serve(self.store.clone(), Some(dir)).await;
    }

    /// As [`TestApp::restart`], rebuilding every index from the store.
    pub async fn restart_from_the_store(&mut self) {
        (self.address, self.state) = serve(self.store.clone(), None).await;
    }

    /// Saves the serving app's index snapshots (as its timer or a stop would).
    pub async fn save_snapshots(&self) {
        self.state
            .index
            .save_snapshots(SaveWhen::Changed)
            .await
            .unwrap();
    }

    /// Makes the test act as a new account in `time_zone`.
    pub async fn use_new_account(&mut self, time_zone: &str) {
        self.account = self.store.create_account("Zoned", time_zone).await.unwrap();
        self.key = issue_api_key(self.store.as_ref(), self.account.id)
            .await
            .unwrap();
    }

    /// A second account on the same server, with its own key.
    pub async fn other_account(&self) -> (Account, String) {
        let account = self.store.create_account("Other", "UTC").await.unwrap();
        let key = issue_api_key(self.store.as_ref(), account.id)
            .await
            .unwrap();
        (account, key)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.address)
    }

    pub async fn send_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.unwrap()
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        self.send_as(&self.key, method, path, body).await
    }

    pub async fn raw(&self, method: Method, path: &str, body: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn create_field(&self, key: &str, ty: &str) {
        let r = self
            .post("/fields", &json!({"key": key, "label": key, "type": ty}))
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }

    pub async fn post_contacts(&self, contacts: Value) -> Response {
        self.post("/contacts", &json!({ "contacts": contacts }))
            .await
    }

    pub async fn upsert(&self, contacts: Value) {
        let r = self.post_contacts(contacts).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    pub async fn post_events(&self, events: Value) -> Response {
        self.post("/events", &json!({ "events": events })).await
    }

    pub async fn record(&self, events: Value) -> Value {
        let r = self.post_events(events).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// Saves a segment and returns its id.
    pub async fn create_segment(&self, name: &str, rule: Value) -> i64 {
        let r = self
            .post("/segments", &json!({"name": name, "rule": rule}))
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    pub async fn count(&self, id: i64, as_of: &str) -> u64 {
        let r = self
            .get(&format!("/segments/{id}/count?as_of={}", urlencode(as_of)))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["count"].as_u64().unwrap()
    }

    /// Every member's external id (following cursors), evaluated at `as_of`.
    pub async fn members(&self, id: i64, as_of: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let r = self
                .get(&format!(
                    "/segments/{id}/members?limit=2&as_of={}&cursor={cursor}",
                    urlencode(as_of)
                ))
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            let page: Value = r.json().await.unwrap();
            for m in page["items"].as_array().unwrap() {
                out.push(m["external_id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => return out,
            }
        }
    }

    pub async fn preview(&self, rule: Value, as_of: &str) -> Value {
        let r = self
            .post("/segments/preview", &json!({"rule": rule, "as_of": as_of}))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }
}

pub fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Asserts an error response: status, code, and that `details` name exactly these paths.
pub async fn assert_error(r: Response, status: StatusCode, paths: &[&str]) -> Value {
    let got = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let mut found: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    found.sort_unstable();
    let mut want = paths.to_vec();
    want.sort_unstable();
    assert_eq!(found, want, "{body}");
    body
}
