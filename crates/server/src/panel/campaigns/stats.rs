//! A campaign's statistics on its page: the figures of `campaigns::stats`, and a bar
//! chart of sends, opens and clicks over time drawn here as inline SVG, so the page
//! needs no script and loads nothing else.

use maud::{Markup, html};

use crate::campaigns::stats::{CampaignStats, HourStats};

pub(super) use crate::panel::numbers::{percent, thousands};

fn figure(id: &str, label: &str, n: u64, share: Option<String>) -> Markup {
    html! {
        li {
            span.label { (label) }
            strong.value id=(id) { (thousands(n)) }
            @if let Some(p) = share { " " span.share id=(format!("{id}-share")) { "(" (p) " of sent)" } }
        }
    }
}

/// The statistics card.
pub(super) fn section(stats: &CampaignStats, zone: &jiff::tz::TimeZone) -> Markup {
    html! {
        section.card id="campaign-stats" aria-labelledby="stats-title" {
            h2 id="stats-title" { "Statistics" }
            ul.stats {
                (figure("stat-recipients", "Recipients", stats.recipients, None))
                (figure("stat-sent", "Sent", stats.sent, None))
                (figure("stat-failed", "Failed", stats.failed, None))
                (figure("stat-bounced", "Bounced", stats.bounced, None))
                (figure("stat-unknown", "Outcome unknown", stats.unknown, None))
                (figure("stat-queued", "Queued", stats.queued + stats.sending, None))
                (figure("stat-opens", "Unique opens", stats.unique_opens, percent(stats.unique_opens, stats.sent)))
                (figure("stat-clicks", "Unique clicks", stats.unique_clicks, percent(stats.unique_clicks, stats.sent)))
                (figure("stat-unsubscribes", "Unsubscribes", stats.unsubscribes, None))
                (figure("stat-complaints", "Complaints", stats.complaints, None))
                (figure("stat-machine-opens", "Machine opens", stats.machine_opens, None))
            }
            p.hint { "Machine opens: opens by Apple Mail Privacy Protection and link scanners, not counted as opens." }
            h3 { "Over time" }
            @if stats.hourly.is_empty() {
                p.muted id="stats-chart-empty" { "Nothing sent yet." }
            } @else {
                (chart(&buckets(&stats.hourly), zone))
                ul.legend {
                    li.k-sent { "Sent" }
                    li.k-opens { "Opens" }
                    li.k-clicks { "Clicks" }
                }
            }
        }
    }
}

/// At most this many bars: a campaign whose opens go on for weeks is drawn in buckets
/// of several hours, so each bar stays wide enough to see and point at.
const MAX_BUCKETS: i64 = 72;

/// One bar group: `hours` hours from `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bucket {
    pub start: jiff::Timestamp,
    pub hours: i64,
    pub sent: u64,
    pub opens: u64,
    pub clicks: u64,
}

/// The hours (sparse, oldest first) laid out from the first to the last, empty hours
/// included, grouped into at most [`MAX_BUCKETS`] buckets of equal length.
pub(super) fn buckets(hourly: &[HourStats]) -> Vec<Bucket> {
    let parsed: Vec<(jiff::Timestamp, &HourStats)> = hourly
        .iter()
        .filter_map(|h| h.hour.parse::<jiff::Timestamp>().ok().map(|t| (t, h)))
        .collect();
    let (Some(first), Some(last)) = (parsed.first().map(|p| p.0), parsed.last().map(|p| p.0))
    else {
        return Vec::new();
    };
    let span = (last.as_second() - first.as_second()) / 3600 + 1;
    let per = (span + MAX_BUCKETS - 1) / MAX_BUCKETS;
    let count = (span + per - 1) / per;
    let mut out: Vec<Bucket> = (0..count)
        .map(|i| Bucket {
            start: jiff::Timestamp::from_second(first.as_second() + i * per * 3600)
                .unwrap_or(first),
            hours: per,
            sent: 0,
            opens: 0,
            clicks: 0,
        })
        .collect();
    for (t, h) in parsed {
        let i = ((t.as_second() - first.as_second()) / 3600 / per) as usize;
        if let Some(b) = out.get_mut(i) {
            b.sent += h.sent;
            b.opens += h.opens;
            b.clicks += h.clicks;
        }
    }
    out
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `n` (at least 1): the chart's top line.
pub(super) fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if let Some(v) = step.checked_mul(m)
                && v >= n
            {
                return v;
            }
        }
        match step.checked_mul(10) {
            Some(s) => step = s,
            None => return u64::MAX,
        }
    }
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Grouped bars (sent, opens, clicks) per bucket, the top and middle values on the y
/// axis, the first, middle and last bucket's time on the x axis, each bar's figures in
/// its `<title>` (shown on hover).
fn chart(buckets: &[Bucket], zone: &jiff::tz::TimeZone) -> Markup {
    let top = nice_ceiling(
        buckets
            .iter()
            .map(|b| b.sent.max(b.opens).max(b.clicks))
            .max()
            .unwrap_or(0),
    );
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / buckets.len().max(1) as f64;
    let bar = (slot * 0.8 / 3.0).max(1.0);
    let y = |v: u64| TOP + plot_h - plot_h * (v as f64 / top as f64);
    let when = |b: &Bucket| {
        let z = b.start.to_zoned_datetime(zone.clone());
        if b.hours == 1 {
            z.strftime("%Y-%m-%d %H:00").to_string()
        } else {
            format!("{} ({} h)", z.strftime("%Y-%m-%d %H:00"), b.hours)
        }
    };
    let short = |b: &Bucket| {
        b.start
            .to_zoned_datetime(zone.clone())
            .strftime("%d %b %H:00")
            .to_string()
    };
    let mut labelled = vec![0, buckets.len() / 2, buckets.len().saturating_sub(1)];
    labelled.dedup();
    let mut marks = vec![top, top / 2, 0];
    marks.dedup();
    html! {
        svg.chart.stats-chart id="stats-chart" viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label="Sent, opens and clicks over time" xmlns="http://www.w3.org/2000/svg" {
            @for v in &marks {
                @let at = y(*v);
                line.grid x1=(LEFT) x2=(W - RIGHT) y1=(at) y2=(at) {}
                text.axis x=(LEFT - 6.0) y=(at + 4.0) text-anchor="end" { (thousands(*v)) }
            }
            @for (i, b) in buckets.iter().enumerate() {
                @let x0 = LEFT + slot * i as f64 + slot * 0.1;
                @for (k, (class, n, what)) in [("sent", b.sent, "sent"), ("opens", b.opens, "opens"), ("clicks", b.clicks, "clicks")].into_iter().enumerate() {
                    rect class=(class) x=(format!("{:.2}", x0 + bar * k as f64)) y=(format!("{:.2}", y(n)))
                        width=(format!("{bar:.2}")) height=(format!("{:.2}", y(0) - y(n))) {
                        title { (when(b)) ": " (thousands(n)) " " (what) }
                    }
                }
            }
            @for i in &labelled {
                @if let Some(b) = buckets.get(*i) {
                    @let anchor = if buckets.len() == 1 { "middle" } else if *i == 0 { "start" } else if *i + 1 == buckets.len() { "end" } else { "middle" };
                    @let x = if anchor == "start" { LEFT } else if anchor == "end" { W - RIGHT } else { LEFT + slot * (*i as f64 + 0.5) };
                    text.axis x=(format!("{x:.2}")) y=(H - 8.0) text-anchor=(anchor) { (short(b)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (12_345, "12,345"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ];
        for (n, want) in cases {
            assert_eq!(thousands(n), want, "{n}");
        }
    }

    #[test]
    fn shares_are_whole_percents_when_exact_else_one_decimal() {
        let cases = [
            (1, 2, Some("50%")),
            (1, 3, Some("33.3%")),
            (2, 3, Some("66.7%")),
            (0, 5, Some("0%")),
            (5, 5, Some("100%")),
            (1, 1_000, Some("0.1%")),
            (1, 0, None),
        ];
        for (part, whole, want) in cases {
            assert_eq!(percent(part, whole).as_deref(), want, "{part}/{whole}");
        }
    }

    #[test]
    fn the_charts_top_line_is_a_round_number_at_or_above_the_highest_bar() {
        let cases = [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 5),
            (6, 10),
            (11, 20),
            (450, 500),
            (501, 1_000),
            (u64::MAX, u64::MAX),
        ];
        for (n, want) in cases {
            assert_eq!(nice_ceiling(n), want, "{n}");
        }
    }

    fn hour(at: &str, sent: u64, opens: u64, clicks: u64) -> HourStats {
        HourStats {
            hour: at.to_owned(),
            sent,
            opens,
            clicks,
            ..HourStats::default()
        }
    }

    #[test]
    fn hours_are_laid_out_without_gaps_and_grouped_when_there_are_many() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().expect("timestamp");
        // Empty hours in between become empty bars.
        let b = buckets(&[
            hour("2026-12-01T10:00:00Z", 5, 1, 0),
            hour("2026-12-01T12:00:00Z", 0, 2, 1),
        ]);
        let got: Vec<_> = b
            .iter()
            .map(|b| (b.start, b.hours, b.sent, b.opens, b.clicks))
            .collect();
        assert_eq!(
            got,
            [
                (t("2026-12-01T10:00:00Z"), 1, 5, 1, 0),
                (t("2026-12-01T11:00:00Z"), 1, 0, 0, 0),
                (t("2026-12-01T12:00:00Z"), 1, 0, 2, 1),
            ]
        );
        // Ten days of hours: 240 hours in buckets of 4, the last hour in the last one.
        let b = buckets(&[
            hour("2026-12-01T00:00:00Z", 9, 0, 0),
            hour("2026-12-01T03:00:00Z", 1, 4, 0),
            hour("2026-12-10T23:00:00Z", 0, 1, 1),
        ]);
        assert_eq!(b.len(), 60);
        assert!(b.iter().all(|b| b.hours == 4));
        assert_eq!((b[0].sent, b[0].opens), (10, 4));
        assert_eq!((b[59].opens, b[59].clicks), (1, 1));
        assert_eq!(b[59].start, t("2026-12-10T20:00:00Z"));
        assert!(buckets(&[]).is_empty());
    }

    #[test]
    fn the_chart_gives_every_bar_a_title_and_labels_its_axes() {
        let utc = jiff::tz::TimeZone::UTC;
        let svg = chart(
            &buckets(&[
                hour("2026-12-01T10:00:00Z", 1_200, 300, 40),
                hour("2026-12-01T11:00:00Z", 0, 12, 3),
            ]),
            &utc,
        )
        .into_string();
        for want in [
            "<title>2026-12-01 10:00: 1,200 sent</title>",
            "<title>2026-12-01 10:00: 300 opens</title>",
            "<title>2026-12-01 11:00: 3 clicks</title>",
            ">2,000</text>", // the top line
            ">1,000</text>",
            ">01 Dec 10:00</text>",
            ">01 Dec 11:00</text>",
        ] {
            assert!(svg.contains(want), "{want} in {svg}");
        }
        assert_eq!(svg.matches("<rect").count(), 6);
    }
}
