//! `segmentd bench paths`: the paths a person takes through the panel and the API,
//! each timed through HTTP on a loaded account and printed beside its target.
//!
//! In order: a load of generated contacts and events through the API (contacts/s,
//! events/s, and the server's resident memory per contact); a panel user signs in; the
//! panel's paths (builder, live counts, lists, pages, members, contact search, explain)
//! and the API's; the five saved-segment workloads, the API's count and preview beside
//! the engine's own on the server's index in this process; a campaign's audience
//! preview; freezing the largest audience (SMS with no provider configured, so nothing
//! leaves this machine); a restart (snapshots saved, every task stopped, the server built
//! again on the same data) until the first count answers; and readers beside a writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use segmentd_store::Account;
use serde_json::{Value, json};

use super::data::{FIELDS, Population, workloads};
use super::mixed::{self, READER_PAUSE, READERS};
use super::panel::Panel;
use super::report::{FigureRow, PathsReport};
use super::server::Server;
use super::timed::{Ctx, Saved, campaign_preview, panel_paths, workload_rows};
use super::{Api, Latencies, fmt_count, fmt_duration, int, rss_bytes, send_batches};
use crate::auth::issue_api_key;
use crate::panel::session::create_user;
use crate::settings::Settings;

pub struct PathsBench {
    pub contacts: usize,
    pub events_per_contact: usize,
    /// Contacts or events per request of the load.
    pub batch: usize,
    /// Clients sending the load's batches at once.
    pub clients: usize,
    /// Timed requests per path.
    pub samples: usize,
    /// How long readers run beside the writer.
    pub mixed: Duration,
}

/// The population's seed.
const SEED: u64 = 42;
const PASSWORD: &str = "bench-paths-password";

// The targets of the whole service, for 1M contacts × 10 events on 2 cores (those of
// single paths are in `timed`).
const RESTART_TARGET: Duration = Duration::from_secs(5);
const RSS_PER_CONTACT_TARGET: f64 = 400.0;
const MIXED_READ_P99_TARGET: Duration = Duration::from_millis(20);
const MIXED_EVENTS_TARGET: f64 = 50_000.0;
const INGEST_EVENTS_TARGET: f64 = 200_000.0;

/// A restarted server that has not answered with the count it had by then has failed.
const RESTART_GIVE_UP: Duration = Duration::from_secs(300);

/// The settings the bench runs with: a free port, and no SMS or push provider, so that
/// the campaign it sends delivers nothing anywhere (each recipient fails at once).
fn bench_settings(settings: &Settings) -> anyhow::Result<Settings> {
    let mut settings = settings.clone();
    settings.listen = "127.0.0.1:0".parse()?;
    settings.delivery.sms_webhook_url = None;
    settings.delivery.push_webhook_url = None;
    Ok(settings)
}

pub async fn run_paths(settings: &Settings, bench: &PathsBench) -> anyhow::Result<PathsReport> {
    anyhow::ensure!(bench.contacts > 0, "--contacts must be at least 1");
    let settings = bench_settings(settings)?;
    let started_at = Timestamp::now();
    let stamp = started_at.as_millisecond();
    let server = Server::start(&settings).await?;
    let store = server.state().store.clone();
    let backend = store.backend();
    let account = {
        let store = store.clone();
        server
            .run(async move { store.create_account(&format!("paths-{stamp}"), "UTC").await })
            .await??
    };
    let key = {
        let (store, id) = (store.clone(), account.id);
        server
            .run(async move { issue_api_key(store.as_ref(), id).await })
            .await??
    };
    let api = Api::new(server.port(), &key);
    for (key, field_type) in FIELDS {
        api.post("/fields", &json!({"key": key, "type": field_type}))
            .await?;
    }
    let mut segments = Vec::new();
    for (name, rule) in workloads() {
        let saved = api
            .post("/segments", &json!({"name": name, "rule": rule}))
            .await?;
        segments.push(Saved {
            name,
            id: int(&saved, "id")?,
            rule,
        });
    }

    let population = Population::new(
        SEED,
        bench.contacts,
        bench.contacts.saturating_mul(bench.events_per_contact),
        started_at,
    );
    let rss_before = rss_bytes();
    tracing::info!(
        contacts = population.contacts,
        events = population.events,
        "bench paths: loading"
    );
    let load = load(&api, &population, bench).await?;
    let rss_after = rss_bytes();
    let index_heap = index_heap(&server, &account).await?;

    let email = format!("paths-{stamp}@bench.segmentd.local");
    {
        let (store, id, email) = (store.clone(), account.id, email.clone());
        server
            .run(async move {
                create_user(store.as_ref(), id, &email, PASSWORD, Timestamp::now()).await
            })
            .await??;
    }
    let panel = Panel::sign_in(server.port(), &email, PASSWORD).await?;
    let ctx = Ctx {
        api: &api,
        panel: &panel,
        population: &population,
        segments: &segments,
        samples: bench.samples,
    };
    tracing::info!("bench paths: timing the panel's and the API's paths");
    let mut paths = panel_paths(&ctx).await?;
    tracing::info!("bench paths: the saved-segment workloads, API beside engine");
    let workloads = workload_rows(&ctx, &server, &account).await?;
    let (campaign, campaign_row, audience) = campaign_preview(&ctx).await?;
    paths.push(campaign_row);

    // The freeze comes before the restart, which ends its delivery (see `freeze`), and
    // before the mixed load, whose new events would shrink the audience.
    tracing::info!("bench paths: freezing the largest audience");
    let mut service = vec![freeze(&server, &api, &account, campaign, &audience).await?];
    tracing::info!("bench paths: restarting");
    let (server, api) = restart(&settings, server, &api, &segments, &mut service).await?;
    service.extend(memory_rows(
        rss_before,
        rss_after,
        index_heap,
        bench.contacts,
    ));
    tracing::info!(
        seconds = bench.mixed.as_secs_f64(),
        "bench paths: mixed load"
    );
    let ids: Vec<i64> = segments.iter().map(|s| s.id).collect();
    let rules: Vec<Value> = segments.iter().map(|s| s.rule.clone()).collect();
    let mixed = mixed::run(&api, &population, &ids, &rules, bench.batch, bench.mixed).await?;
    service.extend(mixed_rows(&mixed, bench.batch));
    server.stop().await?;

    Ok(PathsReport {
        title: format!(
            "segmentd bench paths: {backend}, {} contacts × {} events, {} clients, batches of {}, {} samples per path",
            fmt_count(bench.contacts as u64),
            bench.events_per_contact,
            bench.clients,
            bench.batch,
            bench.samples
        ),
        load,
        paths,
        workloads,
        service,
    })
}

fn per_second(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64().max(1e-9)
}

/// Loads the population through the API, contacts then events, each batch built by the
/// client that sends it.
async fn load(
    api: &Api,
    population: &Population,
    bench: &PathsBench,
) -> anyhow::Result<Vec<FigureRow>> {
    let shared = Arc::new(population.clone());
    let batch = bench.batch;
    let p = shared.clone();
    let contacts_time = send_batches(
        &api.client,
        &api.url("/contacts"),
        &api.key,
        Population::batches(population.contacts, batch),
        bench.clients,
        Arc::new(move |k| p.contacts_body(k, batch)),
    )
    .await?;
    let p = shared;
    let events_time = send_batches(
        &api.client,
        &api.url("/events"),
        &api.key,
        Population::batches(population.events, batch),
        bench.clients,
        Arc::new(move |k| p.events_body(k, batch)),
    )
    .await?;
    let figure = |n: usize, t: Duration| {
        format!(
            "{}/s ({} in {:.2} s)",
            fmt_count(per_second(n, t) as u64),
            fmt_count(n as u64),
            t.as_secs_f64()
        )
    };
    let events_rate = per_second(population.events, events_time);
    Ok(vec![
        FigureRow::new(
            "contacts (POST /api/v1/contacts)",
            figure(population.contacts, contacts_time),
        ),
        FigureRow::new(
            "events, durable ingest (POST /api/v1/events)",
            figure(population.events, events_time),
        )
        .target(
            format!("≥ {} events/s", fmt_count(INGEST_EVENTS_TARGET as u64)),
            events_rate >= INGEST_EVENTS_TARGET,
        ),
    ])
}

/// Stops the server as `serve` stops (snapshots saved, every task ended), builds a new
/// one on the same data and times until its first answer to a count, which must be the
/// count before. "fields only" is counted: no event window moves it meanwhile.
async fn restart(
    settings: &Settings,
    server: Server,
    api: &Api,
    segments: &[Saved],
    rows: &mut Vec<FigureRow>,
) -> anyhow::Result<(Server, Api)> {
    let segment = segments
        .iter()
        .find(|s| s.name == "fields only")
        .unwrap_or(&segments[0]);
    let path = format!("/segments/{}/count", segment.id);
    let before = int(&api.get(&path).await?, "count")?;
    let saving = server.stop().await?;
    let started = Instant::now();
    let server = Server::start(settings).await?;
    let api = api.at_port(server.port());
    loop {
        let answered = api.get(&path).await.and_then(|v| int(&v, "count"));
        match answered {
            Ok(count) if count == before => break,
            other => {
                anyhow::ensure!(
                    started.elapsed() < RESTART_GIVE_UP,
                    "after the restart the count of \"{}\" is {other:?}, not {before}",
                    segment.name
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let took = started.elapsed();
    rows.push(
        FigureRow::new(
            format!(
                "restart to first answer (new server on the same data, until GET /api/v1/segments/{{id}}/count answers {before})"
            ),
            fmt_duration(took),
        )
        .target(format!("≤ {}", fmt_duration(RESTART_TARGET)), took <= RESTART_TARGET),
    );
    rows.push(FigureRow::new(
        "snapshot save when stopping (before the restart)",
        fmt_duration(saving),
    ));
    Ok((server, api))
}

fn fmt_mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    })
}

/// The heap the account's index holds by the engine's own accounting (`Index::memory`),
/// read in this process: the part of the RSS that is the index, not the store's page
/// caches or what the allocator keeps.
async fn index_heap(server: &Server, account: &Account) -> anyhow::Result<usize> {
    let (indexes, account) = (server.state().index.clone(), account.clone());
    let idx = server
        .run(async move { indexes.of(&account).await })
        .await??;
    let report = tokio::task::spawn_blocking(move || idx.read(|index| index.memory())).await?;
    // The parts go to the log: where a per-contact figure over target comes from.
    tracing::info!(memory = ?report, "the index's heap, in bytes");
    Ok(report.total)
}

fn memory_rows(
    before: Option<u64>,
    after: Option<u64>,
    index_heap: usize,
    contacts: usize,
) -> Vec<FigureRow> {
    let contacts = contacts.max(1) as f64;
    let per_contact = before
        .zip(after)
        .map(|(b, a)| a.saturating_sub(b) as f64 / contacts);
    let target = format!("≤ {RSS_PER_CONTACT_TARGET:.0} B/contact");
    let per_contact_row = FigureRow::new(
        "server RSS per contact ((after − before the load) / contacts)",
        per_contact.map_or("n/a".into(), |b| format!("{b:.0} B")),
    );
    vec![
        FigureRow::new("server RSS before the load", fmt_mib(before)),
        FigureRow::new("server RSS after the load", fmt_mib(after)),
        match per_contact {
            Some(b) => per_contact_row.target(target, b <= RSS_PER_CONTACT_TARGET),
            None => per_contact_row,
        },
        FigureRow::new(
            "of which the index's heap per contact (the engine's accounting; the rest is mostly \
             the store's caches, on SQLite up to 128 MiB a connection, and what allocators keep)",
            format!(
                "{:.0} B ({})",
                index_heap as f64 / contacts,
                fmt_mib(Some(index_heap as u64))
            ),
        ),
    ]
}

fn mixed_rows(mixed: &mixed::MixedReport, batch: usize) -> Vec<FigureRow> {
    let target = format!("p99 ≤ {}", fmt_duration(MIXED_READ_P99_TARGET));
    let reads = |what: String, l: &Latencies| {
        FigureRow::new(
            what,
            format!("{} / {}", fmt_duration(l.median()), fmt_duration(l.p99())),
        )
        .target(
            target.clone(),
            !l.is_empty() && l.p99() <= MIXED_READ_P99_TARGET,
        )
    };
    let mut rows = vec![reads(
        format!(
            "mixed load: reads median / p99 ({} reads by {READERS} readers, {} ms apart, beside the writer)",
            fmt_count(mixed.reads.len() as u64),
            READER_PAUSE.as_millis()
        ),
        &mixed.reads,
    )];
    for (kind, l) in &mixed.by_kind {
        rows.push(reads(
            format!("mixed load: {} median / p99", kind.name()),
            l,
        ));
    }
    let rate = mixed.events_per_second();
    rows.push(
        FigureRow::new(
            format!("mixed load: events ingested meanwhile (one writer, batches of {batch})"),
            format!(
                "{}/s ({} in {:.1} s)",
                fmt_count(rate as u64),
                fmt_count(mixed.events as u64),
                mixed.writing.as_secs_f64()
            ),
        )
        .target(
            format!("≥ {} events/s", fmt_count(MIXED_EVENTS_TARGET as u64)),
            rate >= MIXED_EVENTS_TARGET,
        ),
    );
    rows
}

/// Sends the campaign to the largest audience: the request returns once its recipients
/// are frozen in the store, which is the time measured; their number is then read from
/// the store. Its delivery starts then, failing each recipient at once (no SMS provider
/// is configured), two store writes each: the campaign is marked sent, so that the
/// restart that follows, which ends the delivery, does not resume it.
async fn freeze(
    server: &Server,
    api: &Api,
    account: &Account,
    campaign: i64,
    audience: &str,
) -> anyhow::Result<FigureRow> {
    let started = Instant::now();
    let sent = api
        .post(&format!("/campaigns/{campaign}/send"), &json!({}))
        .await?;
    let took = started.elapsed();
    anyhow::ensure!(
        sent["frozen_at"].is_string(),
        "the campaign was not frozen: {sent}"
    );
    let store = server.state().store.clone();
    let account = account.id;
    let frozen = {
        let store = store.clone();
        server
            .run(async move { store.recipient_counts(account, campaign).await })
            .await??
            .total()
    };
    server
        .run(async move {
            store
                .finish_campaign(account, campaign, Timestamp::now())
                .await
        })
        .await??;
    Ok(FigureRow::new(
        format!(
            "freeze of the largest audience ({} recipients frozen; previewed: {audience}; POST /api/v1/campaigns/{{id}}/send)",
            fmt_count(frozen)
        ),
        fmt_duration(took),
    ))
}
