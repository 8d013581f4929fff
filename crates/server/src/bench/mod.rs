//! `segmentd bench …`: the service measured through its real HTTP API, with the server
//! in this process on a free loopback port, so that the figures include JSON parsing,
//! validation and the store's transactions: what a client sees.
//!
//! - [`ingest`]: `bench ingest`, contacts and events loaded through the API, and the
//!   latency from an event to the membership change it causes.
//! - [`paths`]: `bench paths`, every path a person takes through the panel and the API
//!   (builder, live count, lists, pages, search, explain, campaigns, restart, memory, reads
//!   under a write load), each figure next to its target.
//! - [`cluster`]: `bench cluster`, three nodes of a cluster: forwarding overhead, follower
//!   lag under load, failover time.
//! - [`import`]: `bench import`, a generated CSV of contacts imported through
//!   `/api/v1/imports`, its time, rows/s and peak memory, then a new segment's 90-day
//!   history computed from the data.
//! - [`send`]: `bench send`, an e-mail campaign to every contact delivered to a local
//!   SMTP [`sink`], and the messages/s it reached.
//!
//! Here is what they share: sending batches with several clients, an API-key client,
//! latency percentiles, and the process's resident memory. [`data`] generates the
//! contacts, events and rules; [`server`] runs a server on a runtime of its own, which
//! `bench paths` stops and starts again; [`panel`] is a signed-in panel client;
//! [`timed`] has the paths timed one request after another; [`mixed`] is the load of
//! readers beside a writer; [`report`] prints the tables.

pub mod cluster;
pub mod data;
pub mod import;
pub mod ingest;
pub mod mixed;
pub mod panel;
pub mod paths;
pub mod report;
pub mod send;
pub mod server;
pub mod sink;
pub mod timed;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinSet;

pub use ingest::{IngestBench, IngestReport, run_ingest};
pub use paths::{PathsBench, run_paths};
pub use report::PathsReport;
pub use send::{SendBench, SendReport, run_send};

/// Builds the body of batch `k` (of however many there are). Called by whichever
/// client sends that batch, just before it sends it.
pub type BatchBody = Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>;

/// Posts `batches` bodies to `url` with `clients` connections at once, each client
/// taking the next batch when its last one was acknowledged, and returns the wall time
/// until all are. A body is built by `body` only when its turn comes, so that a load of
/// millions of events never sits in this process's memory (`bench paths` measures the
/// server's memory from inside it).
pub async fn send_batches(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    batches: usize,
    clients: usize,
    body: BatchBody,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for _ in 0..clients.max(1) {
        let (next, client, url, key, body) = (
            next.clone(),
            client.clone(),
            url.to_owned(),
            key.to_owned(),
            body.clone(),
        );
        senders.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= batches {
                    return anyhow::Ok(());
                }
                // Built on the blocking pool: a runtime worker busy writing JSON for
                // milliseconds would hold up the responses of the other clients.
                let make = body.clone();
                let bytes = tokio::task::spawn_blocking(move || make(k)).await?;
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes)
                    .send()
                    .await?;
                check(response, &url).await?;
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// The response if it is a success, else an error with its status and body (the API's
/// error says what was wrong with the request).
async fn check(response: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    anyhow::bail!("{what} answered {status}: {body}")
}

/// A client of `/api/v1` with an API key, keeping its connections alive.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT/api/v1`.
    pub base: String,
    pub key: String,
}

impl Api {
    pub fn new(port: u16, key: &str) -> Self {
        Api {
            client: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}/api/v1"),
            key: key.to_owned(),
        }
    }

    /// The same client (and key) for a server that now listens on `port`.
    pub fn at_port(&self, port: u16) -> Self {
        Api {
            base: format!("http://127.0.0.1:{port}/api/v1"),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = self.url(path);
        let response = self.client.get(&url).bearer_auth(&self.key).send().await?;
        Ok(check(response, &url).await?.json().await?)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = self.url(path);
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await?;
        Ok(check(response, &url).await?.json().await?)
    }
}

/// The integer `key` of a JSON answer, or an error naming what was expected.
pub fn int(value: &Value, key: &str) -> anyhow::Result<i64> {
    value[key]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("expected an integer {key:?} in {value}"))
}

/// Latencies of one path, sorted.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Latencies(samples)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nearest-rank quantile: the smallest sample with at least `q` of the samples
    /// at or below it (zero when there are none).
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.0.len();
        let rank = ((n as f64 * q).ceil() as usize).clamp(1, n.max(1));
        self.0.get(rank - 1).copied().unwrap_or_default()
    }

    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn max(&self) -> Duration {
        self.quantile(1.0)
    }
}

/// Runs `path(i)` once untimed (connections are opened, caches warmed), then `samples`
/// times one after another, timing each.
pub async fn sample<F, Fut>(samples: usize, mut path: F) -> anyhow::Result<Latencies>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    path(0).await?;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        path(i).await?;
        times.push(started.elapsed());
    }
    Ok(Latencies::new(times))
}

/// A duration in the unit that keeps three or so significant digits.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1.0 {
        format!("{} ns", d.as_nanos())
    } else if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// A whole number with thousands separators (1,234,567).
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    // The digits before the first separator, then groups of three.
    let head = match digits.len() % 3 {
        0 => 3,
        r => r,
    }
    .min(digits.len());
    let (first, rest) = digits.split_at(head);
    let mut out = first.to_owned();
    for group in rest.as_bytes().chunks(3) {
        out.push(',');
        out.extend(group.iter().map(|&b| char::from(b)));
    }
    out
}

/// This process's resident memory (`VmRSS` of `/proc/self/status`), where there is one.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_ranks() {
        let ms = |v: &[u64]| Latencies::new(v.iter().map(|&m| Duration::from_millis(m)).collect());
        // (samples, q, expected ms)
        let cases: [(&[u64], f64, u64); 8] = [
            (&[], 0.5, 0),
            (&[7], 0.5, 7),
            (&[7], 0.99, 7),
            (&[3, 1, 2], 0.5, 2),
            (&[4, 1, 3, 2], 0.5, 2),
            (&[4, 1, 3, 2], 1.0, 4),
            (&(1..=100).collect::<Vec<_>>(), 0.99, 99),
            (&(1..=1000).collect::<Vec<_>>(), 0.99, 990),
        ];
        for (samples, q, want) in cases {
            assert_eq!(
                ms(samples).quantile(q),
                Duration::from_millis(want),
                "{samples:?} at {q}"
            );
        }
    }

    #[test]
    fn figures_are_formatted_for_reading() {
        let cases = [
            (Duration::from_nanos(150), "150 ns"),
            (Duration::from_nanos(1_500), "1.5 µs"),
            (Duration::from_micros(250), "250.0 µs"),
            (Duration::from_micros(2_345), "2.35 ms"),
            (Duration::from_millis(4_500), "4.50 s"),
        ];
        for (d, want) in cases {
            assert_eq!(fmt_duration(d), want);
        }
        let counts = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_234_567, "1,234,567"),
        ];
        for (n, want) in counts {
            assert_eq!(fmt_count(n), want);
        }
    }

    #[test]
    fn resident_memory_is_read_from_the_status_file() {
        let cases = [
            (
                "Name:\tx\nVmRSS:\t  1234 kB\nVmData:\t9 kB\n",
                Some(1234 * 1024),
            ),
            ("Name:\tx\n", None),
            ("VmRSS:\tlots kB\n", None),
            ("VmRSS:\t12 MB\n", None),
        ];
        for (status, want) in cases {
            assert_eq!(parse_vm_rss(status), want, "{status:?}");
        }
        if cfg!(target_os = "linux") {
            assert!(rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
