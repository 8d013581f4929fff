//! What `bench paths` prints: markdown tables, each figure beside its target and whether
//! it meets it.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Latencies, fmt_count, fmt_duration};

/// A path timed through HTTP, against an upper bound for its latency.
pub struct PathRow {
    pub path: String,
    pub latencies: Latencies,
    pub target: Duration,
}

/// One saved-segment workload: the API's count and preview beside the engine's own on
/// the server's index.
pub struct WorkloadRow {
    pub name: String,
    pub members: u64,
    pub api_count: Latencies,
    pub engine_count: Latencies,
    pub api_preview: Latencies,
    pub engine_preview: Latencies,
}

/// The API's saved count should answer in this median time.
pub const API_COUNT_TARGET: Duration = Duration::from_micros(300);
/// The API's preview should take at most this much longer than the engine's evaluation.
pub const API_PREVIEW_OVERHEAD: Duration = Duration::from_millis(1);

/// A figure of the whole service (throughput, memory, restart) with its target as text.
pub struct FigureRow {
    pub what: String,
    pub figure: String,
    pub target: String,
    /// `None`: no target.
    pub met: Option<bool>,
}

impl FigureRow {
    pub fn new(what: impl Into<String>, figure: impl Into<String>) -> Self {
        FigureRow {
            what: what.into(),
            figure: figure.into(),
            target: "—".into(),
            met: None,
        }
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

pub struct PathsReport {
    /// What was run: backend, sizes, clients, samples.
    pub title: String,
    pub load: Vec<FigureRow>,
    pub paths: Vec<PathRow>,
    pub workloads: Vec<WorkloadRow>,
    pub service: Vec<FigureRow>,
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// A table of figures, each beside its target.
pub fn figures(out: &mut String, rows: &[FigureRow]) {
    let _ = writeln!(out, "| what | figure | target | met |");
    let _ = writeln!(out, "| --- | ---: | --- | --- |");
    for r in rows {
        let met = r.met.map_or("—", yes);
        let _ = writeln!(out, "| {} | {} | {} | {met} |", r.what, r.figure, r.target);
    }
}

impl PathsReport {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {}\n", self.title);
        let _ = writeln!(
            out,
            "Targets are those for 1M contacts × 10 events on 2 cores; \"met\" compares \
             this run's figure with them.\n"
        );
        let _ = writeln!(out, "### Load through the HTTP API\n");
        figures(&mut out, &self.load);

        let _ = writeln!(
            out,
            "\n### Paths through HTTP (one keep-alive client, requests one after another)\n"
        );
        let _ = writeln!(
            out,
            "| path | samples | median | p99 | target | median met | p99 met |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- | --- | --- |");
        for r in &self.paths {
            let l = &r.latencies;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | ≤ {} | {} | {} |",
                r.path,
                l.len(),
                fmt_duration(l.median()),
                fmt_duration(l.p99()),
                fmt_duration(r.target),
                yes(l.median() <= r.target),
                yes(l.p99() <= r.target),
            );
        }

        let _ = writeln!(
            out,
            "\n### Saved-segment workloads: the API beside the engine on the server's own index\n"
        );
        let _ = writeln!(
            out,
            "| workload | members | API count median / p99 | engine count median | target | met | \
             API preview median / p99 | engine preview median | target | met |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | --- | --- |"
        );
        for w in &self.workloads {
            let preview_target = w.engine_preview.median() + API_PREVIEW_OVERHEAD;
            let _ = writeln!(
                out,
                "| {} | {} | {} / {} | {} | median ≤ {} | {} | {} / {} | {} | median ≤ {} (engine + {}) | {} |",
                w.name,
                fmt_count(w.members),
                fmt_duration(w.api_count.median()),
                fmt_duration(w.api_count.p99()),
                fmt_duration(w.engine_count.median()),
                fmt_duration(API_COUNT_TARGET),
                yes(w.api_count.median() <= API_COUNT_TARGET),
                fmt_duration(w.api_preview.median()),
                fmt_duration(w.api_preview.p99()),
                fmt_duration(w.engine_preview.median()),
                fmt_duration(preview_target),
                fmt_duration(API_PREVIEW_OVERHEAD),
                yes(w.api_preview.median() <= preview_target),
            );
        }

        let _ = writeln!(out, "\n### The service\n");
        figures(&mut out, &self.service);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Latencies {
        Latencies::new(vec![Duration::from_millis(v)])
    }

    #[test]
    fn every_figure_is_printed_beside_its_target() {
        let report = PathsReport {
            title: "bench".into(),
            load: vec![
                FigureRow::new("events (durable ingest)", "250,000/s")
                    .target("≥ 200,000 events/s", true),
            ],
            paths: vec![PathRow {
                path: "builder open".into(),
                latencies: ms(30),
                target: Duration::from_millis(20),
            }],
            workloads: vec![WorkloadRow {
                name: "fields only".into(),
                members: 12_345,
                api_count: ms(1),
                engine_count: Latencies::new(vec![Duration::from_nanos(100)]),
                api_preview: ms(3),
                engine_preview: ms(1),
            }],
            service: vec![FigureRow::new("snapshot save", "1.00 s")],
        };
        let text = report.render();
        let lines = [
            "| events (durable ingest) | 250,000/s | ≥ 200,000 events/s | yes |",
            "| builder open | 1 | 30.00 ms | 30.00 ms | ≤ 20.00 ms | **no** | **no** |",
            "| fields only | 12,345 | 1.00 ms / 1.00 ms | 100 ns | median ≤ 300.0 µs | **no** | \
             3.00 ms / 3.00 ms | 1.00 ms | median ≤ 2.00 ms (engine + 1.00 ms) | **no** |",
            "| snapshot save | 1.00 s | — | — |",
        ];
        for line in lines {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
