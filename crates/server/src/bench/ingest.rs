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

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::data::{INGEST_FIELDS, ingest_contact, ingest_event, ingest_segments};
use super::{Latencies, send_batches};
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
    /// Event → membership change visible, one probe each.
    pub change_latency: Latencies,
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
        let l = &self.change_latency;
        println!(
            "event -> membership change visible through the API ({} single-event posts, each checked by a count): median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.len(),
            l.median().as_secs_f64() * 1e3,
            l.p99().as_secs_f64() * 1e3,
            l.max().as_secs_f64() * 1e3,
        );
    }
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
    for (k, t) in INGEST_FIELDS {
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
    let segments = ingest_segments();
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
            let items: Vec<Value> = ids.iter().map(|&i| ingest_contact(i, &mut rng)).collect();
            serde_json::to_vec(&json!({ "contacts": items }))
        })
        .collect::<Result<_, _>>()?;
    let event_batches: Vec<Vec<u8>> = (0..bench.events)
        .collect::<Vec<_>>()
        .chunks(bench.batch)
        .map(|ids| {
            let items: Vec<Value> = ids
                .iter()
                .map(|&j| ingest_event(j, bench.contacts.max(1), &mut rng))
                .collect();
            serde_json::to_vec(&json!({ "events": items }))
        })
        .collect::<Result<_, _>>()?;
    let contacts_time = send_prepared(
        &client,
        &format!("{base}/contacts"),
        &key,
        contact_batches,
        bench.clients,
    )
    .await?;
    let events_time = send_prepared(
        &client,
        &format!("{base}/events"),
        &key,
        event_batches,
        bench.clients,
    )
    .await?;
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

/// Sends bodies built beforehand, each taken by the client whose turn it is.
async fn send_prepared(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    bodies: Vec<Vec<u8>>,
    clients: usize,
) -> anyhow::Result<Duration> {
    let count = bodies.len();
    let bodies: Vec<Mutex<Vec<u8>>> = bodies.into_iter().map(Mutex::new).collect();
    let take = move |k: usize| {
        bodies
            .get(k)
            .and_then(|b| b.lock().ok().map(|mut b| std::mem::take(&mut *b)))
            .unwrap_or_default()
    };
    send_batches(client, url, key, count, clients, Arc::new(take)).await
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

    async fn run(&self, probes: usize) -> anyhow::Result<Latencies> {
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
        Ok(Latencies::new(latencies))
    }
}
