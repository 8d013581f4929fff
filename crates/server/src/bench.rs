//! `segmentd bench ingest`: loads contacts and events through the real HTTP API into a
//! fresh account with five saved segments, and reports throughput, for either backend.
//! Every acknowledged batch is durable in the store and applied to the in-memory index,
//! with membership changes logged: the figure is ingest *with* membership upkeep.
//!
//! The server runs in this process on a free port; requests go over loopback TCP, so the
//! figures include JSON parsing, validation and the store's transactions: what a client
//! sees.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::auth::issue_api_key;
use crate::settings::Settings;
use crate::startup::Application;

pub struct IngestBench {
    pub contacts: usize,
    pub events: usize,
    pub batch: usize,
    /// Clients sending at once, each one batch after another.
    pub clients: usize,
}

pub struct IngestReport {
    pub backend: &'static str,
    pub contacts: usize,
    pub contacts_time: Duration,
    pub events: usize,
    pub events_time: Duration,
    /// Event → membership change visible, one probe each, sorted.
    pub change_latency: Vec<Duration>,
}

impl IngestReport {
    pub fn print(&self) {
        let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
        println!("| backend | what | items | seconds | items/s |");
        println!("| --- | --- | ---: | ---: | ---: |");
        println!(
            "| {} | contacts | {} | {:.2} | {:.0} |",
            self.backend,
            self.contacts,
            self.contacts_time.as_secs_f64(),
            rate(self.contacts, self.contacts_time)
        );
        println!(
            "| {} | events | {} | {:.2} | {:.0} |",
            self.backend,
            self.events,
            self.events_time.as_secs_f64(),
            rate(self.events, self.events_time)
        );
        let at = |q: f64| {
            let n = self.change_latency.len();
            let i = ((n as f64 * q).ceil() as usize).clamp(1, n.max(1)) - 1;
            self.change_latency.get(i).copied().unwrap_or_default()
        };
        println!(
            "event -> membership change visible through the API ({} single-event posts, each checked by a count): median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.change_latency.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            at(1.0).as_secs_f64() * 1e3,
        );
    }
}

const CITIES: [&str; 4] = ["Warsaw", "Kraków", "Gdańsk", "Berlin"];

fn contact(i: usize, rng: &mut StdRng) -> Value {
    let city = CITIES[rng.random_range(0..CITIES.len())];
    json!({
        "external_id": format!("b{i:08}"),
        "email": format!("b{i}@example.com"),
        "fields": {
            "city": city,
            "age": rng.random_range(18..80),
            "vip": rng.random_bool(0.1),
        }
    })
}

fn event(i: usize, contacts: usize, rng: &mut StdRng) -> Value {
    let contact = format!("b{:08}", rng.random_range(0..contacts));
    let timestamp = jiff::Timestamp::from_second(1_770_000_000 + (i as i64) * 7)
        .map(|t| t.to_string())
        .unwrap_or_default();
    match i % 3 {
        0 => {
            json!({"type": "system", "id": format!("s{i}"), "contact": contact, "event": "MailOpen",
                    "timestamp": timestamp, "campaign": "c1"})
        }
        1 => {
            json!({"type": "custom", "id": format!("p{i}"), "contact": contact, "name": "purchase",
                    "timestamp": timestamp, "properties": {"amount": rng.random_range(1..500), "category": "shoes"}})
        }
        _ => json!({"type": "visit", "contact": contact, "url": "https://shop.example.com/pricing",
                    "timestamp": timestamp}),
    }
}

/// Posts every body with `clients` connections at once, each taking the next body when
/// its last one was acknowledged, and returns the wall time until all are.
async fn send_all(
    client: reqwest::Client,
    url: String,
    key: String,
    bodies: Vec<Vec<u8>>,
    clients: usize,
) -> anyhow::Result<Duration> {
    let queue = Arc::new(Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for _ in 0..clients.max(1) {
        let (queue, client, url, key) = (queue.clone(), client.clone(), url.clone(), key.clone());
        senders.spawn(async move {
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("queue poisoned"))?
                    .next();
                let Some(body) = next else {
                    return anyhow::Ok(());
                };
                client
                    .post(&url)
                    .bearer_auth(&key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await?
                    .error_for_status()?;
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

pub async fn run_ingest(settings: &Settings, bench: &IngestBench) -> anyhow::Result<IngestReport> {
    let app = Application::build(settings).await?;
    let store = app.state().store.clone();
    let backend = store.backend();
    let base = format!("http://127.0.0.1:{}/api/v1", app.port());
    tokio::spawn(app.run_until_stopped());
    let stamp = jiff::Timestamp::now().as_millisecond();
    let account = store
        .create_account(&format!("bench-{stamp}"), "UTC")
        .await?;
    let key = issue_api_key(store.as_ref(), account.id).await?;
    let client = reqwest::Client::new();
    for (k, t) in [("city", "text"), ("age", "number"), ("vip", "boolean")] {
        client
            .post(format!("{base}/fields"))
            .bearer_auth(&key)
            .json(&json!({"key": k, "type": t}))
            .send()
            .await?
            .error_for_status()?;
    }
    // Saved segments of the engine benchmark's shapes, so that ingest pays for membership
    // upkeep as it would in production.
    let segments = [
        json!({"all": [{"field": "city", "op": "equals", "value": "warsaw"}, {"field": "age", "op": "between", "value": [25, 40]},
                       {"field": "vip", "op": "is_false"}, {"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 30}},
                       {"custom_event": "purchase", "op": "occurred", "where": [{"property": "amount", "op": "greater_than", "value": 100}]}]}),
        json!({"visit_url": {"op": "contains", "value": "/pricing"}, "op": "occurred", "min_count": 3, "within": {"last_days": 7}}),
        json!({"system_event": "MailOpen", "op": "not_occurred", "within": {"last_days": 60}}),
        json!({"any": [{"field": "city", "op": "in", "value": ["kraków", "gdańsk"]}, {"field": "age", "op": "less_than", "value": 21}]}),
        json!({"any": [{"all": [{"field": "vip", "op": "is_true"}, {"not": {"custom_event": "purchase", "op": "occurred"}}]},
                       {"all": [{"field": "age", "op": "greater_than", "value": 60}, {"any": [{"system_event": "MailClick", "op": "occurred"}, {"op": "occurred"}]}]}]}),
    ];
    let mut segment_ids = Vec::new();
    for (i, rule) in segments.into_iter().enumerate() {
        let saved: Value = client
            .post(format!("{base}/segments"))
            .bearer_auth(&key)
            .json(&json!({"name": format!("workload {i}"), "rule": rule}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        segment_ids.push(saved["id"].as_i64().unwrap_or_default());
    }
    let mut rng = StdRng::seed_from_u64(7);
    // Bodies are built and serialized before the clock starts: a client's own work is not
    // the server's, and the client shares these two cores.
    let contact_batches: Vec<Vec<u8>> = (0..bench.contacts)
        .collect::<Vec<_>>()
        .chunks(bench.batch)
        .map(|ids| {
            let items: Vec<Value> = ids.iter().map(|&i| contact(i, &mut rng)).collect();
            serde_json::to_vec(&json!({ "contacts": items }))
        })
        .collect::<Result<_, _>>()?;
    let event_batches: Vec<Vec<u8>> = (0..bench.events)
        .collect::<Vec<_>>()
        .chunks(bench.batch)
        .map(|ids| {
            let items: Vec<Value> = ids
                .iter()
                .map(|&j| event(j, bench.contacts.max(1), &mut rng))
                .collect();
            serde_json::to_vec(&json!({ "events": items }))
        })
        .collect::<Result<_, _>>()?;
    let send = |path: &str, bodies| {
        send_all(
            client.clone(),
            format!("{base}{path}"),
            key.clone(),
            bodies,
            bench.clients,
        )
    };
    let contacts_time = send("/contacts", contact_batches).await?;
    let events_time = send("/events", event_batches).await?;
    let probe = ChangeProbe {
        client: &client,
        base: &base,
        key: &key,
        // "MailOpen not occurred in the last 60 days".
        segment: segment_ids.get(2).copied().unwrap_or_default(),
    };
    let change_latency = probe.run(PROBES).await?;
    Ok(IngestReport {
        backend,
        contacts: bench.contacts,
        contacts_time,
        events: bench.events,
        events_time,
        change_latency,
    })
}

/// Single events sent one at a time after the load.
const PROBES: usize = 200;

/// Measures event → membership change through the API, on the loaded account: each
/// probe is a new contact (so in "MailOpen not occurred in the last 60 days"), then one
/// MailOpen for it. The time is from sending the event to its acknowledgement, which
/// comes after the store's commit and the index's update; the count read after it must
/// be one lower, or the bench fails.
struct ChangeProbe<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    key: &'a str,
    segment: i64,
}

impl ChangeProbe<'_> {
    async fn count(&self) -> anyhow::Result<i64> {
        let body: Value = self
            .client
            .get(format!("{}/segments/{}/count", self.base, self.segment))
            .bearer_auth(self.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        body["count"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no count in {body}"))
    }

    async fn run(&self, probes: usize) -> anyhow::Result<Vec<Duration>> {
        let post = |path: &str, body: Value| {
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(self.key)
                .json(&body)
                .send()
        };
        let ids: Vec<Value> = (0..probes)
            .map(|i| json!({"external_id": format!("probe-{i}")}))
            .collect();
        post("/contacts", json!({ "contacts": ids }))
            .await?
            .error_for_status()?;
        let mut before = self.count().await?;
        let mut latencies = Vec::with_capacity(probes);
        for i in 0..probes {
            let event = json!({"events": [{"type": "system", "contact": format!("probe-{i}"),
                "event": "MailOpen", "timestamp": jiff::Timestamp::now().to_string()}]});
            let started = Instant::now();
            post("/events", event).await?.error_for_status()?;
            latencies.push(started.elapsed());
            let after = self.count().await?;
            anyhow::ensure!(
                after == before - 1,
                "probe {i}: the count went from {before} to {after}, not one lower"
            );
            before = after;
        }
        latencies.sort();
        Ok(latencies)
    }
}
