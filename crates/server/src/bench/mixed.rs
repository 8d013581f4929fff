//! The mixed load of `bench paths`: readers asking for counts, member pages and
//! previews while a writer ingests events as fast as the server acknowledges them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::data::Population;
use super::{Api, Latencies, check};

/// Readers at once.
pub const READERS: usize = 3;

/// Each reader waits this long between its reads. Readers without a pause would measure
/// how two cores are split between them and the writer, not how long a read waits for
/// the writes, which is what a person at the panel notices.
pub const READER_PAUSE: Duration = Duration::from_millis(10);

/// What readers ask, in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Count,
    Members,
    Preview,
}

impl Read {
    pub const ALL: [Read; 3] = [Read::Count, Read::Members, Read::Preview];

    pub fn name(self) -> &'static str {
        match self {
            Read::Count => "saved count (GET /api/v1/segments/{id}/count)",
            Read::Members => "members page (GET /api/v1/segments/{id}/members?limit=100)",
            Read::Preview => "preview (POST /api/v1/segments/preview)",
        }
    }
}

pub struct MixedReport {
    /// Every read, and the reads of each kind (in [`Read::ALL`]'s order).
    pub reads: Latencies,
    pub by_kind: Vec<(Read, Latencies)>,
    pub events: usize,
    pub writing: Duration,
}

impl MixedReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.writing.as_secs_f64().max(1e-9)
    }
}

/// Runs readers and one writer for `length`. The writer sends batches of `batch` new
/// events (dated in the last minute, for random contacts), one after another; readers
/// cycle through the saved `segments` and their `rules`.
pub async fn run(
    api: &Api,
    population: &Population,
    segments: &[i64],
    rules: &[Value],
    batch: usize,
    length: Duration,
) -> anyhow::Result<MixedReport> {
    anyhow::ensure!(
        !segments.is_empty() && segments.len() == rules.len(),
        "the mixed load needs saved segments with their rules"
    );
    let deadline = Instant::now() + length;
    let writer = {
        let (api, population) = (api.clone(), Arc::new(population.clone()));
        tokio::spawn(async move {
            let url = api.url("/events");
            let started = Instant::now();
            let mut sent = 0;
            let mut k = 0;
            while Instant::now() < deadline {
                // Built on the blocking pool, so that the readers' answers are not held
                // up behind this client's own work.
                let p = population.clone();
                let body = tokio::task::spawn_blocking(move || {
                    p.live_events_body(k, batch, jiff::Timestamp::now())
                })
                .await?;
                let response = api
                    .client
                    .post(&url)
                    .bearer_auth(&api.key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await?;
                check(response, &url).await?;
                sent += batch;
                k += 1;
            }
            anyhow::Ok((sent, started.elapsed()))
        })
    };
    let shared = Arc::new((segments.to_vec(), rules.to_vec()));
    let mut readers = JoinSet::new();
    for r in 0..READERS {
        let (api, shared) = (api.clone(), shared.clone());
        readers.spawn(async move {
            let (segments, rules) = &*shared;
            let mut times: Vec<(Read, Duration)> = Vec::new();
            let mut i = r;
            while Instant::now() < deadline {
                let kind = Read::ALL[i % Read::ALL.len()];
                let s = (i / Read::ALL.len()) % segments.len();
                let started = Instant::now();
                match kind {
                    Read::Count => {
                        api.get(&format!("/segments/{}/count", segments[s])).await?;
                    }
                    Read::Members => {
                        api.get(&format!("/segments/{}/members?limit=100", segments[s]))
                            .await?;
                    }
                    Read::Preview => {
                        api.post("/segments/preview", &json!({"rule": rules[s]}))
                            .await?;
                    }
                }
                times.push((kind, started.elapsed()));
                i += 1;
                tokio::time::sleep(READER_PAUSE).await;
            }
            anyhow::Ok(times)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = readers.join_next().await {
        all.extend(done??);
    }
    let (events, writing) = writer.await??;
    let by_kind = Read::ALL
        .into_iter()
        .map(|kind| {
            let times = all.iter().filter(|(k, _)| *k == kind).map(|(_, t)| *t);
            (kind, Latencies::new(times.collect()))
        })
        .collect();
    Ok(MixedReport {
        reads: Latencies::new(all.into_iter().map(|(_, t)| t).collect()),
        by_kind,
        events,
        writing,
    })
}
