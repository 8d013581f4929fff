//! `segmentd bench send`: e-mail campaign throughput end to end, through the real HTTP
//! API, to a local SMTP sink that accepts every message at once ([`Sink`]).
//!
//! The server runs in this process on a free loopback port (on a runtime of its own, see
//! [`Server`]), delivering over plain SMTP to the sink. Through the API the bench loads
//! N contacts with e-mail addresses, saves a segment that holds them all, creates an
//! e-mail campaign to it (HTML and text, a link in each and `{{email}}` in subject and
//! body, so that rendering and link tracking do their work for every message), sends it,
//! and polls the campaign until it is `sent` (or `paused`). The figure is messages/s:
//! the messages the sink accepted over the time from the send call until the sink had
//! them all. The sink must have exactly N, or the bench fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::report::{FigureRow, figures};
use super::server::Server;
use super::sink::Sink;
use super::{Api, fmt_count, fmt_duration, int, send_batches};
use crate::auth::issue_api_key;
use crate::settings::{Settings, SmtpTls};

pub struct SendBench {
    pub contacts: usize,
}

/// Issue #12's target: on 2 cores, to a local sink that accepts at once.
pub const TARGET_PER_SECOND: f64 = 1_000.0;

/// Contacts per request of the load, and clients sending them.
const BATCH: usize = 10_000;
const CLIENTS: usize = 2;
/// How often the campaign's status is read while it is delivered.
const STATUS_POLL: Duration = Duration::from_millis(100);
/// How often the sink's count is looked at: the resolution of "the sink has them all".
const SINK_POLL: Duration = Duration::from_millis(2);
/// How often progress is logged.
const PROGRESS: Duration = Duration::from_secs(10);
/// The bench gives up when no message has reached the sink for this long and the
/// campaign is still not done (SMTP's timeout is 30 s, the retries' back-off shorter).
const STALL: Duration = Duration::from_secs(120);
/// Recipients read per page when the final statuses are counted.
const RECIPIENTS_PAGE: usize = 10_000;

/// Campaign statuses the bench stops at.
const DONE: [&str; 2] = ["sent", "paused"];

pub struct SendReport {
    pub title: String,
    pub rows: Vec<FigureRow>,
    /// Whether the sink received exactly one message per contact.
    pub ok: bool,
    /// `OK: …` or `FAIL: …`.
    pub verdict: String,
}

impl SendReport {
    pub fn render(&self) -> String {
        let mut out = format!("## {}\n\n", self.title);
        figures(&mut out, &self.rows);
        out.push('\n');
        out.push_str(&self.verdict);
        out.push('\n');
        out
    }
}

/// A directory of its own under the system's temporary directory, for a run given no
/// `--data-dir` or `--database-url`: every account of a data directory is loaded at
/// start, and a campaign left `sending` there would be resumed into the sink's count.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "segmentd-bench-send-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    ))
}

/// The settings the bench runs with: a free port, SMTP to the sink (plain, no
/// credentials), no SMS or push provider.
fn bench_settings(settings: &Settings, smtp_port: u16) -> anyhow::Result<Settings> {
    let mut settings = settings.clone();
    settings.listen = "127.0.0.1:0".parse()?;
    let d = &mut settings.delivery;
    d.smtp_host = "127.0.0.1".to_owned();
    d.smtp_port = smtp_port;
    d.smtp_tls = SmtpTls::None;
    d.smtp_credentials = None;
    d.sms_webhook_url = None;
    d.push_webhook_url = None;
    // Tracking links point at this server.
    d.public_url = None;
    Ok(settings)
}

/// `{"contacts": [...]}` for contacts `k * batch ..` of `total`, each with an address.
fn contacts_body(k: usize, batch: usize, total: usize) -> Vec<u8> {
    let from = k.saturating_mul(batch).min(total);
    let to = from.saturating_add(batch).min(total);
    let items: Vec<Value> = (from..to)
        .map(|i| json!({"external_id": format!("send-{i:08}"), "email": format!("user{i}@example.com")}))
        .collect();
    serde_json::to_vec(&json!({ "contacts": items })).unwrap_or_default()
}

/// The campaign: both parts, a link in each (tracked, so signed per recipient), the
/// unsubscribe link, and the address in subject and body.
fn campaign_body(segment: i64) -> Value {
    json!({
        "name": "bench send",
        "channel": "email",
        "content": {
            "from": "Bench <bench@example.com>",
            "subject": "Hello {{email}}",
            "html": "<html><body><p>Hi {{email}},</p><p>our <a href=\"https://shop.example.com/sale?from=bench\">sale</a> is on.</p>\
                     <p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p></body></html>",
            "text": "Hi {{email}}, our sale is on: https://shop.example.com/sale?from=bench",
        },
        "targets": [segment],
    })
}

fn per_second(n: u64, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64().max(1e-9)
}

pub async fn run_send(settings: &Settings, bench: &SendBench) -> anyhow::Result<SendReport> {
    anyhow::ensure!(bench.contacts > 0, "--contacts must be at least 1");
    let n = bench.contacts as u64;
    let sink = Sink::start().await?;
    let settings = bench_settings(settings, sink.port())?;
    let server = Server::start(&settings).await?;
    let store = server.state().store.clone();
    let backend = store.backend();
    let stamp = jiff::Timestamp::now().as_millisecond();
    let account = {
        let store = store.clone();
        server
            .run(async move { store.create_account(&format!("send-{stamp}"), "UTC").await })
            .await??
    };
    let key = {
        let (store, id) = (store.clone(), account.id);
        server
            .run(async move { issue_api_key(store.as_ref(), id).await })
            .await??
    };
    let api = Api::new(server.port(), &key);

    tracing::info!(contacts = n, "bench send: loading contacts");
    let total = bench.contacts;
    let load_time = send_batches(
        &api.client,
        &api.url("/contacts"),
        &api.key,
        total.div_ceil(BATCH),
        CLIENTS,
        Arc::new(move |k| contacts_body(k, BATCH, total)),
    )
    .await?;
    let rule = json!({"field": "email", "op": "has_value"});
    let segment = int(
        &api.post("/segments", &json!({"name": "everyone", "rule": rule}))
            .await?,
        "id",
    )?;
    let members = int(
        &api.get(&format!("/segments/{segment}/count")).await?,
        "count",
    )?;
    anyhow::ensure!(
        members == bench.contacts as i64,
        "the segment holds {members} contacts, not the {n} loaded"
    );
    let campaign = int(
        &api.post("/campaigns", &campaign_body(segment)).await?,
        "id",
    )?;

    tracing::info!(recipients = n, "bench send: sending");
    let started = Instant::now();
    api.post(&format!("/campaigns/{campaign}/send"), &json!({}))
        .await?;
    let freeze = started.elapsed();
    let watched = watch(&api, &sink, campaign, n, started).await?;
    let messages = sink.messages();
    let connections = sink.connections();
    let statuses = recipient_statuses(&api, campaign).await?;
    server.stop().await?;

    let rate_time = watched.all_at.unwrap_or(watched.stopped_at);
    let rate = per_second(messages, rate_time);
    let mut rows = vec![
        FigureRow::new(
            "contacts with an e-mail address loaded (POST /api/v1/contacts)",
            format!(
                "{} in {} ({}/s)",
                fmt_count(n),
                fmt_duration(load_time),
                fmt_count(per_second(n, load_time) as u64)
            ),
        ),
        FigureRow::new(
            "time to freeze (POST /api/v1/campaigns/{id}/send answered)",
            fmt_duration(freeze),
        ),
        FigureRow::new(
            "send call -> the sink has every message",
            match watched.all_at {
                Some(t) => fmt_duration(t),
                None => format!("never ({} of {})", fmt_count(messages), fmt_count(n)),
            },
        ),
        FigureRow::new(
            "delivery wall time (send answered -> campaign done)",
            fmt_duration(watched.stopped_at.saturating_sub(freeze)),
        ),
        FigureRow::new(
            "messages/s (sink count / send call -> the sink has every message)",
            format!("{rate:.1}"),
        )
        .target(
            format!(
                "≥ {} messages/s on 2 cores",
                fmt_count(TARGET_PER_SECOND as u64)
            ),
            rate >= TARGET_PER_SECOND,
        ),
        FigureRow::new(
            "messages/s after the freeze (send answered -> the sink has every message)",
            format!(
                "{:.1}",
                per_second(messages, rate_time.saturating_sub(freeze))
            ),
        ),
        FigureRow::new("sink: messages accepted", fmt_count(messages)),
        FigureRow::new(
            "sink: connections opened",
            format!(
                "{} ({:.1} messages per connection)",
                fmt_count(connections),
                messages as f64 / connections.max(1) as f64
            ),
        ),
        FigureRow::new(
            "campaign status (GET /api/v1/campaigns/{id})",
            watched.status.clone(),
        ),
        FigureRow::new(
            "recipients by status (GET /api/v1/campaigns/{id}/recipients)",
            statuses.describe(),
        ),
        FigureRow::new(
            "left out when frozen (the campaign's `excluded`)",
            excluded(&watched.campaign),
        ),
    ];
    if let Some(reason) = &statuses.first_failure {
        rows.push(FigureRow::new("first failure's reason", reason.clone()));
    }
    let ok = messages == n;
    let verdict = if ok {
        format!(
            "OK: the sink received exactly {} messages, one per contact",
            fmt_count(n)
        )
    } else {
        let why = if watched.stalled {
            format!(
                "; nothing reached the sink for {} and the campaign is still {}",
                fmt_duration(STALL),
                watched.status
            )
        } else {
            format!("; the campaign is {}", watched.status)
        };
        format!(
            "FAIL: the sink received {} messages, expected {} (one per contact){why}",
            fmt_count(messages),
            fmt_count(n)
        )
    };
    Ok(SendReport {
        title: format!(
            "segmentd bench send: {backend}, {} contacts, e-mail over plain SMTP to a local sink",
            fmt_count(n)
        ),
        rows,
        ok,
        verdict,
    })
}

/// What watching the delivery saw.
struct Watched {
    /// The campaign as last read.
    campaign: Value,
    status: String,
    /// From the send call until the sink had every message, if it did.
    all_at: Option<Duration>,
    /// From the send call until the campaign was seen done (or the bench gave up).
    stopped_at: Duration,
    stalled: bool,
}

/// Polls the sink's count and the campaign's status until the campaign is done, or
/// nothing has reached the sink for [`STALL`].
async fn watch(
    api: &Api,
    sink: &Sink,
    campaign: i64,
    n: u64,
    started: Instant,
) -> anyhow::Result<Watched> {
    let path = format!("/campaigns/{campaign}");
    let mut all_at = None;
    let (mut last_count, mut last_change) = (0, Instant::now());
    let mut next_poll = Instant::now();
    let mut next_progress = Instant::now() + PROGRESS;
    let mut current = Value::Null;
    loop {
        let now = Instant::now();
        let mut done = false;
        if now >= next_poll {
            current = api.get(&path).await?;
            done = DONE.contains(&current["status"].as_str().unwrap_or_default());
            next_poll = Instant::now() + STATUS_POLL;
        }
        // Read after the status: once it says done, every message of the campaign has
        // been answered by the sink, so counted.
        let count = sink.messages();
        if all_at.is_none() && count >= n {
            all_at = Some(started.elapsed());
        }
        if count != last_count {
            (last_count, last_change) = (count, Instant::now());
        }
        let stalled = !done && last_change.elapsed() >= STALL;
        if done || stalled {
            return Ok(Watched {
                status: current["status"].as_str().unwrap_or("unknown").to_owned(),
                campaign: current,
                all_at,
                stopped_at: started.elapsed(),
                stalled,
            });
        }
        if now >= next_progress {
            tracing::info!(
                messages = count,
                of = n,
                per_second = (per_second(count, started.elapsed()) * 10.0).round() / 10.0,
                "bench send: delivering"
            );
            next_progress = now + PROGRESS;
        }
        tokio::time::sleep(SINK_POLL).await;
    }
}

/// The frozen recipients counted by delivery status, read through the API.
#[derive(Debug, Default)]
struct Statuses {
    by_status: BTreeMap<String, u64>,
    first_failure: Option<String>,
}

impl Statuses {
    fn describe(&self) -> String {
        if self.by_status.is_empty() {
            return "none".to_owned();
        }
        self.by_status
            .iter()
            .map(|(status, n)| format!("{status} {}", fmt_count(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn recipient_statuses(api: &Api, campaign: i64) -> anyhow::Result<Statuses> {
    let mut statuses = Statuses::default();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor
            .as_deref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let page = api
            .get(&format!(
                "/campaigns/{campaign}/recipients?limit={RECIPIENTS_PAGE}{after}"
            ))
            .await?;
        for r in page["items"].as_array().into_iter().flatten() {
            let status = r["status"].as_str().unwrap_or("unknown");
            *statuses.by_status.entry(status.to_owned()).or_default() += 1;
            if status == "failed" && statuses.first_failure.is_none() {
                statuses.first_failure = r["reason"].as_str().map(str::to_owned);
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(statuses),
        }
    }
}

/// The campaign's `excluded` counts, `reason n` pairs.
fn excluded(campaign: &Value) -> String {
    match campaign["excluded"].as_object() {
        Some(reasons) if !reasons.is_empty() => reasons
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The load's batches cover every contact once, each with an address.
    #[test]
    fn batches_hold_every_contact_once_with_an_address() {
        let parsed = |k| -> Vec<Value> {
            let v: Value = serde_json::from_slice(&contacts_body(k, 300, 1_000)).unwrap();
            v["contacts"].as_array().unwrap().clone()
        };
        let all: Vec<Value> = (0..4).flat_map(parsed).collect();
        assert_eq!(all.len(), 1_000);
        assert!(parsed(4).is_empty());
        let ids: std::collections::HashSet<&str> = all
            .iter()
            .map(|c| c["external_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1_000);
        assert!(
            all.iter()
                .all(|c| c["email"].as_str().unwrap().contains('@'))
        );
    }
}
