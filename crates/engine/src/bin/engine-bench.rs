//! Benchmark of the engine on seeded generated data.
//!
//! `cargo run --release -p segmentd-engine --bin engine-bench -- --contacts 1000000 --events-per-contact 10`
//!
//! Data: contacts with email, phone and 20 custom fields of mixed types (some missing),
//! and events of every kind spread over the 90 days before "now". Workloads: five saved
//! segments (a five-condition mix of fields and behaviour, a visit count in a window, a
//! `not_occurred`, a fields-only rule, a three-level nested rule). Printed per workload:
//! the count of the saved segment, an ad-hoc evaluation, the first page of 100 members
//! and the reference evaluator on a sample, scaled; then the index build time, ingest
//! with membership upkeep, single event → membership change latency and memory.
//!
//! Then time alone: 50 more saved segments that move with time (rolling windows of 1 to
//! 90 days on every stream, some with filters, counts or `not_occurred`, relative dates,
//! anniversaries and references to them) and a few events dated ahead of the clock;
//! the clock advances in steps of 1 s, 5 s, 1 min and 1 h, and each `refresh` is timed
//! with the contacts it re-decided, beside what the old refresh cost (every
//! time-dependent segment evaluated whole) and the first refresh of a new day.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use segmentd_engine::{Address, Channels, ContactValues, Event, Index};
use segmentd_rules::rule::{Rule, SegmentId};
use segmentd_rules::{
    Catalog, Clock, ContactData, CustomEvent, FieldType, FieldValue, SystemEvent, SystemEventKind,
    Visit, is_member, parse_rule,
};
use serde_json::{Value, json};

struct Args {
    contacts: usize,
    events_per_contact: usize,
    runs: usize,
    sample: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        contacts: 1_000_000,
        events_per_contact: 10,
        runs: 200,
        sample: 10_000,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let n: u64 = value
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--contacts" => a.contacts = n as usize,
            "--events-per-contact" => a.events_per_contact = n as usize,
            "--runs" => a.runs = (n as usize).max(1),
            "--sample" => a.sample = n as usize,
            "--seed" => a.seed = n,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// SplitMix64: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const TEXT_FIELDS: [(&str, u64); 8] = [
    ("country", 50),
    ("city", 2000),
    ("plan", 5),
    ("source", 20),
    ("language", 30),
    ("tier", 4),
    ("industry", 100),
    ("title", 5000),
];
const NUMBER_FIELDS: [&str; 6] = ["age", "score", "ltv", "orders", "nps", "credits"];
const DATE_FIELDS: [&str; 3] = ["birthday", "signup", "last_purchase"];
const BOOL_FIELDS: [&str; 3] = ["vip", "newsletter", "churned"];
const PLANS: [&str; 5] = ["free", "starter", "pro", "enterprise", "trial"];
const TIERS: [&str; 4] = ["bronze", "silver", "gold", "platinum"];
const CITY_PREFIXES: [&str; 8] = ["San ", "Saint-", "New ", "Port ", "Bad ", "Los ", "", "Le "];

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    for (k, _) in TEXT_FIELDS {
        c.fields.insert(k.into(), FieldType::Text);
    }
    for k in NUMBER_FIELDS {
        c.fields.insert(k.into(), FieldType::Number);
    }
    for k in DATE_FIELDS {
        c.fields.insert(k.into(), FieldType::Date);
    }
    for k in BOOL_FIELDS {
        c.fields.insert(k.into(), FieldType::Boolean);
    }
    c
}

fn now() -> Timestamp {
    Timestamp::from_second(1_717_243_200).unwrap_or(Timestamp::UNIX_EPOCH) // 2024-06-01T12:00Z
}

fn ext_id(i: usize) -> String {
    // Not in insertion order, so that the order by external id is real work.
    let mut r = Rng(i as u64 ^ 0xABCD);
    format!("{:012x}-{i}", r.next() >> 16)
}

fn text_value(rng: &mut Rng, key: &str, card: u64) -> String {
    let v = rng.below(card);
    match key {
        "plan" => PLANS[v as usize % PLANS.len()].to_owned(),
        "tier" => TIERS[v as usize % TIERS.len()].to_owned(),
        "country" => format!("C{v:02}"),
        "city" => format!("{}City{v}", CITY_PREFIXES[v as usize % CITY_PREFIXES.len()]),
        _ => format!("{key}-{v}"),
    }
}

fn date_days_ago(rng: &mut Rng, max_days: u64) -> Date {
    let base = TimeZone::UTC.to_datetime(now()).date();
    let d = base.checked_sub(jiff::Span::new().days(rng.below(max_days) as i64));
    d.unwrap_or(base)
}

/// The values of contact `i` (deterministic).
fn contact_values(seed: u64, i: usize) -> ContactValues {
    let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0x1000_0000_01B3));
    let mut fields = BTreeMap::new();
    for (k, card) in TEXT_FIELDS {
        if !rng.chance(10) {
            fields.insert(
                k.to_owned(),
                FieldValue::Text(text_value(&mut rng, k, card)),
            );
        }
    }
    for k in NUMBER_FIELDS {
        if !rng.chance(10) {
            let x = match k {
                "age" => 18.0 + rng.below(72) as f64,
                "ltv" => (rng.f64() * 5000.0).round(),
                "nps" => rng.below(201) as f64 - 100.0,
                _ => (rng.f64() * 100.0).round(),
            };
            fields.insert(k.to_owned(), FieldValue::Number(x));
        }
    }
    for k in DATE_FIELDS {
        if !rng.chance(10) {
            let span = if k == "birthday" { 365 * 60 } else { 365 * 3 };
            fields.insert(
                k.to_owned(),
                FieldValue::Date(date_days_ago(&mut rng, span)),
            );
        }
    }
    for k in BOOL_FIELDS {
        if !rng.chance(10) {
            fields.insert(k.to_owned(), FieldValue::Boolean(rng.chance(30)));
        }
    }
    let phone = rng.chance(50);
    ContactValues {
        email: Some(format!("user{i}@domain{}.com", i % 100)),
        phone: phone.then(|| format!("+3361{:07}", i % 10_000_000)),
        fields,
        channels: Channels {
            email: Address::Subscribed,
            sms: if phone {
                Address::Subscribed
            } else {
                Address::None
            },
            push: rng.chance(30),
        },
    }
}

/// The events of contact `i` (deterministic), spread over the 90 days before now.
fn contact_events(seed: u64, i: usize, n: usize) -> Vec<Event> {
    let mut rng = Rng(seed ^ 0x5555 ^ (i as u64).wrapping_mul(0x9E37_79B9));
    let mut out = Vec::with_capacity(n);
    let ninety_days = 90 * 86_400_000;
    for _ in 0..n {
        let ts =
            Timestamp::from_millisecond(now().as_millisecond() - rng.below(ninety_days) as i64)
                .unwrap_or(Timestamp::UNIX_EPOCH);
        let roll = rng.below(100);
        let e = if roll < 50 {
            let kind = match roll {
                0..30 => SystemEventKind::MailOpen,
                30..40 => SystemEventKind::MailClick,
                40..45 => SystemEventKind::SmsClick,
                _ => SystemEventKind::PushClick,
            };
            Event::System(SystemEvent {
                id: None,
                kind,
                timestamp: ts,
                campaign: Some(format!("camp-{}", rng.below(50))),
                url: None,
            })
        } else if roll < 70 {
            let name = ["purchase", "add_to_cart", "signup"][rng.below(3) as usize];
            let mut props = serde_json::Map::new();
            props.insert("amount".into(), json!((rng.f64() * 200.0).round()));
            props.insert(
                "currency".into(),
                json!(["EUR", "USD", "GBP"][rng.below(3) as usize]),
            );
            props.insert(
                "item".into(),
                json!({"category": format!("cat-{}", rng.below(20))}),
            );
            Event::Custom(CustomEvent {
                id: None,
                name: name.into(),
                timestamp: ts,
                properties: props,
            })
        } else {
            let page = rng.below(500);
            let url = match page {
                0..25 => format!("https://shop.example.com/pricing?ref={}", page % 5),
                _ => format!("https://shop.example.com/p/{page}"),
            };
            Event::Visit(Visit {
                id: None,
                url,
                timestamp: ts,
            })
        };
        out.push(e);
    }
    out
}

/// The five workloads, `[name, rule]` pairs; `segmentd bench paths` reads the same file.
const WORKLOADS: &str = include_str!("workloads.json");

fn workloads() -> Vec<(String, Value)> {
    serde_json::from_str(WORKLOADS).expect("workloads.json is a list of [name, rule] pairs")
}

/// The first id of the refresh workload's segments.
const TIME_BASE_ID: SegmentId = 101;

/// The refresh workload: 50 segments that move with time. 40 rolling windows (each
/// stream × 1, 7, 30, 60, 90 days, cycling through plain, `min_count: 2`,
/// `not_occurred`, a filter and `max_count`), 5 relative-date or anniversary field
/// conditions, and 5 combinations, some referring to the others.
fn time_workloads() -> Vec<Value> {
    let sources: [Value; 8] = [
        json!({"system_event": "MailOpen"}),
        json!({"system_event": "MailClick"}),
        json!({"system_event": "SmsClick"}),
        json!({"system_event": "PushClick"}),
        json!({"custom_event": "purchase"}),
        json!({"custom_event": "add_to_cart"}),
        json!({"custom_event": "signup"}),
        json!({}),
    ];
    let mut out = Vec::new();
    for (k, source) in sources.iter().enumerate() {
        for (w, days) in [1, 7, 30, 60, 90].into_iter().enumerate() {
            let mut c = source.as_object().cloned().unwrap_or_default();
            c.insert("op".into(), json!("occurred"));
            c.insert("within".into(), json!({"last_days": days}));
            match (k + w) % 5 {
                1 => {
                    c.insert("min_count".into(), json!(2));
                }
                2 => {
                    c.insert("op".into(), json!("not_occurred"));
                }
                3 => {
                    if c.contains_key("system_event") {
                        c.insert("campaign".into(), json!("camp-3"));
                    } else if c.contains_key("custom_event") {
                        c.insert(
                            "where".into(),
                            json!([{"property": "amount", "op": "greater_than", "value": 50}]),
                        );
                    } else {
                        c.insert(
                            "visit_url".into(),
                            json!({"op": "contains", "value": "/pricing"}),
                        );
                    }
                }
                4 => {
                    c.insert("max_count".into(), json!(3));
                }
                _ => {}
            }
            out.push(Value::Object(c));
        }
    }
    out.extend([
        json!({"field": "signup", "op": "after", "value": {"relative_days": -30}}),
        json!({"field": "last_purchase", "op": "between",
               "value": [{"relative_days": -90}, {"relative_days": -1}]}),
        json!({"field": "birthday", "op": "anniversary_within", "value": 7}),
        json!({"all": [
            {"field": "signup", "op": "before", "value": {"relative_days": -365}},
            {"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 30}}
        ]}),
        json!({"field": "last_purchase", "op": "equals", "value": {"relative_days": -1}}),
        json!({"all": [
            {"segment": TIME_BASE_ID, "op": "in"},
            {"segment": TIME_BASE_ID + 2, "op": "not_in"}
        ]}),
        json!({"any": [
            {"visit_url": {"op": "contains", "value": "/pricing"}, "op": "occurred",
             "within": {"last_days": 1}},
            {"custom_event": "purchase", "op": "occurred", "within": {"last_days": 30},
             "where": [{"property": "amount", "op": "greater_than", "value": 100}]}
        ]}),
        json!({"not": {"system_event": "MailClick", "op": "occurred",
                       "within": {"last_days": 60}}}),
        json!({"all": [
            {"field": "plan", "op": "in", "value": ["pro", "enterprise"]},
            {"segment": TIME_BASE_ID + 40, "op": "in"}
        ]}),
        json!({"all": [
            {"segment": TIME_BASE_ID + 43, "op": "in"},
            {"system_event": "PushClick", "op": "occurred", "within": {"last_days": 7}}
        ]}),
    ]);
    out
}

/// The saved segments whose maintained membership differs from an evaluation from
/// scratch at the index's clock, each described with a few of the contacts that differ
/// and why the index decides them so.
fn membership_differences(index: &Index, segments: &[(SegmentId, &Rule)]) -> Vec<String> {
    let clock = index.clock().clone();
    let mut out = Vec::new();
    for (id, rule) in segments {
        let fresh = index.evaluate_fresh(rule, &clock);
        let Some(kept) = index.membership(*id) else {
            continue;
        };
        // Member by member: roaring's `==` also compares how each block is stored
        // (an array or a bitmap), which differs between equal sets built differently.
        let extra = kept - &fresh;
        let missing = &fresh - kept;
        if extra.is_empty() && missing.is_empty() {
            continue;
        }
        let mut line = format!(
            "segment {id} {}: {} maintained but not fresh, {} fresh but not maintained",
            rule.to_json(),
            extra.len(),
            missing.len()
        );
        for slot in extra.iter().take(2).chain(missing.iter().take(2)) {
            if let Some(contact) = index.store_id(slot)
                && let Some(x) = index.explain(rule, contact, &clock)
            {
                let why = serde_json::to_string(&x).unwrap_or_default();
                line.push_str(&format!("\n    contact {contact} (slot {slot}): {why}"));
            }
        }
        out.push(line);
    }
    out
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn stats(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort_unstable();
    if d.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    let median = d[d.len() / 2];
    let p99 = d[((d.len() * 99) / 100).min(d.len() - 1)];
    (median, p99)
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut d = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f());
        d.push(t.elapsed());
    }
    stats(d)
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("engine-bench: {e}");
            eprintln!(
                "usage: engine-bench [--contacts N] [--events-per-contact N] [--runs N] [--sample N] [--seed N]"
            );
            std::process::exit(2);
        }
    };
    let n = args.contacts;
    let clock = Clock::new(now(), &TimeZone::UTC);
    let catalog = catalog();
    let rules: Vec<(String, Rule)> = workloads()
        .into_iter()
        .map(
            |(name, json)| match parse_rule(&json, "rule", &catalog, None) {
                Ok(r) => (name, r),
                Err(issues) => {
                    eprintln!("bad workload rule {name}: {issues:?}");
                    std::process::exit(1);
                }
            },
        )
        .collect();

    println!(
        "engine-bench: {n} contacts × {} events, seed {}, {} runs, reference sample {}",
        args.events_per_contact, args.seed, args.runs, args.sample
    );

    // ---- Build -----------------------------------------------------------------------
    let rss_before = rss_bytes();
    let t = Instant::now();
    let mut index = Index::new(clock.clone());
    // Contacts generated (and events added) per batch. The generator's own values for a
    // batch (strings, maps, JSON properties: about 5 KB a contact) are small allocations
    // that glibc keeps for reuse once freed, so a large batch shows up in the RSS delta
    // below as memory the index never held: 10,000 contacts a batch added ~50 B a
    // contact at 1M. A thousand keeps batches of 10,000 events for `add_events`.
    let chunk = 1_000;
    let mut batch: Vec<(i64, Event)> = Vec::new();
    let mut in_index = Duration::ZERO;
    let mut values: Vec<(String, ContactValues)> = Vec::with_capacity(chunk);
    for start in (0..n).step_by(chunk) {
        for i in start..(start + chunk).min(n) {
            values.push((ext_id(i), contact_values(args.seed, i)));
            for e in contact_events(args.seed, i, args.events_per_contact) {
                batch.push((i as i64, e));
            }
        }
        let ti = Instant::now();
        for (k, (ext, v)) in values.iter().enumerate() {
            index.upsert_contact((start + k) as i64, ext, v);
        }
        index.add_events(batch.iter().map(|(c, e)| (*c, e)));
        in_index += ti.elapsed();
        values.clear();
        batch.clear();
        if start % 1_000_000 == 0 && start > 0 {
            eprintln!(
                "  loaded {start} contacts in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    let loaded = t.elapsed();
    drop(values);
    drop(batch);
    let t2 = Instant::now();
    for (i, (_, rule)) in rules.iter().enumerate() {
        if let Err(e) = index.set_segment(i as SegmentId + 1, rule.clone()) {
            eprintln!("{e}");
        }
    }
    index.compact();
    let segments_built = t2.elapsed();
    let rss_after = rss_bytes();
    let mem = index.memory();

    // ---- Per workload ----------------------------------------------------------------
    let sample: Vec<ContactData> = (0..args.sample.min(n))
        .map(|k| {
            let i = (k * (n / args.sample.min(n).max(1))).min(n - 1);
            let v = contact_values(args.seed, i);
            let mut c = ContactData {
                email: v.email,
                phone: v.phone,
                fields: v.fields,
                ..ContactData::default()
            };
            for e in contact_events(args.seed, i, args.events_per_contact) {
                match e {
                    Event::System(e) => c.system_events.push(e),
                    Event::Custom(e) => c.custom_events.push(e),
                    Event::Visit(v) => c.visits.push(v),
                }
            }
            c
        })
        .collect();
    let no_segments: HashMap<SegmentId, Rule> = HashMap::new();
    // An explicit `as_of` (a different clock) evaluates afresh, as a preview does.
    let adhoc_clock = Clock::new(now() + SignedDuration::from_millis(1), &TimeZone::UTC);

    println!();
    println!(
        "| workload | members | count (median / p99) | ad-hoc eval (median / p99) | first page of 100 (median / p99) | reference, scaled | ad-hoc speed-up |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, (name, rule)) in rules.iter().enumerate() {
        let id = i as SegmentId + 1;
        let members = index.count(id);
        let (c50, c99) = time(args.runs, || index.count(id));
        let (a50, a99) = time(args.runs, || {
            index.evaluate_bits(rule, &adhoc_clock).count()
        });
        let (p50, p99) = time(args.runs, || index.members(id, None, 100));
        let t = Instant::now();
        let mut hits = 0usize;
        for c in &sample {
            if is_member(rule, c, &clock, &no_segments) {
                hits += 1;
            }
        }
        std::hint::black_box(hits);
        let reference = t.elapsed().mul_f64(n as f64 / sample.len().max(1) as f64);
        println!(
            "| {name} | {members} | {} / {} | {} / {} | {} / {} | {} | {:.0}× |",
            fmt(c50),
            fmt(c99),
            fmt(a50),
            fmt(a99),
            fmt(p50),
            fmt(p99),
            fmt(reference),
            reference.as_secs_f64() / a50.as_secs_f64().max(1e-9)
        );
    }

    if std::env::var_os("ENGINE_BENCH_LEAVES").is_some() {
        for (name, rule) in &rules {
            let mut leaves = Vec::new();
            rule.visit(&mut |r| {
                if !matches!(r, Rule::All(_) | Rule::Any(_) | Rule::Not(_)) {
                    leaves.push(r.clone());
                }
            });
            for leaf in leaves {
                let (m, _) = time(args.runs, || {
                    index.evaluate_bits(&leaf, &adhoc_clock).count()
                });
                println!("  {name}: {} {}", fmt(m), leaf.to_json());
            }
        }
    }

    // ---- Ingest with membership upkeep ----------------------------------------------
    let ingest_events = (n * args.events_per_contact / 10).clamp(10_000, 2_000_000);
    let mut rng = Rng(args.seed ^ 0xFEED);
    let mut pending: Vec<(i64, Event)> = Vec::with_capacity(ingest_events);
    while pending.len() < ingest_events {
        let i = rng.below(n as u64) as usize;
        for e in contact_events(args.seed ^ rng.next(), i, 1) {
            pending.push((i as i64, e));
        }
    }
    let before_changes = Instant::now();
    let mut changes = 0usize;
    for b in pending.chunks(1000) {
        changes += index.add_events(b.iter().map(|(c, e)| (*c, e))).len();
    }
    let ingest = before_changes.elapsed();

    // ---- Single event → membership change -------------------------------------------
    let mut lat = Vec::new();
    let mut changed = 0usize;
    for k in 0..1000u64 {
        let i = rng.below(n as u64) as i64;
        let e = Event::Visit(Visit {
            id: None,
            url: "https://shop.example.com/pricing?ref=bench".into(),
            timestamp: now() - SignedDuration::from_secs(k as i64),
        });
        let t = Instant::now();
        changed += index.add_events([(i, &e)]).len();
        lat.push(t.elapsed());
    }
    let (l50, l99) = stats(lat);

    println!();
    println!("| figure | value |");
    println!("| --- | ---: |");
    println!(
        "| index build (load {n} contacts + {} events) | {:.2} s ({:.0} events/s) |",
        n * args.events_per_contact,
        loaded.as_secs_f64(),
        (n * args.events_per_contact) as f64 / loaded.as_secs_f64()
    );
    println!(
        "| of which in the index (data generation excluded) | {:.2} s ({:.0} events/s) |",
        in_index.as_secs_f64(),
        (n * args.events_per_contact) as f64 / in_index.as_secs_f64()
    );
    println!(
        "| saved segments built (5 full evaluations + compaction) | {} |",
        fmt(segments_built)
    );
    println!(
        "| ingest with membership upkeep ({ingest_events} events, batches of 1000, {changes} changes) | {:.0} events/s |",
        ingest_events as f64 / ingest.as_secs_f64()
    );
    println!(
        "| single event → membership change (1000 events, {changed} changes) | median {} / p99 {} |",
        fmt(l50),
        fmt(l99)
    );
    println!(
        "| memory per contact, computed heap (contacts {} + fields {} + events {} + segments {}) | {:.0} B |",
        mem.contacts / n.max(1),
        mem.fields / n.max(1),
        mem.events / n.max(1),
        mem.segments / n.max(1),
        mem.total as f64 / n.max(1) as f64
    );
    println!(
        "| memory per contact, RSS delta | {:.0} B |",
        rss_after.saturating_sub(rss_before) as f64 / n.max(1) as f64
    );

    refresh_workload(&mut index, &args, &catalog, &rules);
}

/// Time alone: saves the refresh workload's segments, adds events dated ahead of the
/// clock, then advances the clock step by step, timing each refresh.
fn refresh_workload(index: &mut Index, args: &Args, catalog: &Catalog, first: &[(String, Rule)]) {
    let n = args.contacts;
    let mut catalog = catalog.clone();
    let mut time_rules: Vec<(SegmentId, Rule)> = Vec::new();
    for (i, json) in time_workloads().into_iter().enumerate() {
        let id = TIME_BASE_ID + i as SegmentId;
        match parse_rule(&json, "rule", &catalog, Some(id)) {
            Ok(r) => {
                let mut refers = Vec::new();
                r.visit(&mut |x| {
                    if let Rule::Segment(s) = x {
                        refers.push(s.segment);
                    }
                });
                catalog.segments.insert(id, refers);
                time_rules.push((id, r));
            }
            Err(issues) => {
                eprintln!("bad refresh workload rule {json}: {issues:?}");
                std::process::exit(1);
            }
        }
    }
    let t = Instant::now();
    for (id, rule) in &time_rules {
        if let Err(e) = index.set_segment(*id, rule.clone()) {
            eprintln!("{e}");
        }
    }
    let saved = t.elapsed();
    // A few events dated ahead of the clock (1 % of the contacts, within two hours):
    // they enter every condition on their stream when the clock reaches them.
    let mut rng = Rng(args.seed ^ 0xC10C);
    let ahead: Vec<(i64, Event)> = (0..n / 100)
        .map(|_| {
            let c = rng.below(n as u64) as i64;
            let ts = now() + SignedDuration::from_millis(rng.below(7_200_000) as i64);
            let e = Event::Visit(Visit {
                id: None,
                url: "https://shop.example.com/pricing?ref=ahead".into(),
                timestamp: ts,
            });
            (c, e)
        })
        .collect();
    index.add_events(ahead.iter().map(|(c, e)| (*c, e)));
    index.compact();
    let checked: Vec<(SegmentId, &Rule)> = time_rules
        .iter()
        .map(|(id, r)| (*id, r))
        .chain(
            first
                .iter()
                .enumerate()
                .map(|(i, (_, r))| (i as SegmentId + 1, r)),
        )
        .collect();
    let mut differences = membership_differences(index, &checked);
    let mem = index.memory();
    let pending = index.refresh_stats().pending;

    // What the old refresh did at every tick: each time-dependent segment (these and
    // the first five, all of which move with time) evaluated whole.
    let other = Clock::new(now() + SignedDuration::from_millis(1), &TimeZone::UTC);
    let all_rules: Vec<&Rule> = time_rules
        .iter()
        .map(|(_, r)| r)
        .chain(first.iter().map(|(_, r)| r))
        .collect();
    let (whole50, _) = time(3, || {
        all_rules
            .iter()
            .map(|r| index.evaluate_bits(r, &other).count())
            .sum::<u64>()
    });

    println!();
    println!(
        "Time alone: {} time-dependent segments ({} saved now, {} pending timer entries, {:.2} per contact), {} events dated ahead",
        all_rules.len(),
        first.len() + time_rules.len(),
        pending,
        pending as f64 / n.max(1) as f64,
        ahead.len()
    );
    println!();
    println!(
        "| refresh step | refreshes | time per refresh (median / p99) | contacts re-decided per refresh (median / max) | membership changes |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut at = now();
    for (label, step, count) in [
        ("1 s", 1_000i64, 300usize),
        ("5 s", 5_000, 300),
        ("1 min", 60_000, 120),
        ("1 h", 3_600_000, 8),
    ] {
        let mut took = Vec::with_capacity(count);
        let mut redecided = Vec::with_capacity(count);
        let mut changes = 0usize;
        for _ in 0..count {
            at += SignedDuration::from_millis(step);
            let clock = Clock::new(at, &TimeZone::UTC);
            let t = Instant::now();
            changes += index.refresh(&clock).len();
            took.push(t.elapsed());
            redecided.push(index.refresh_stats().redecided);
        }
        let (m, p) = stats(took);
        redecided.sort_unstable();
        println!(
            "| {label} | {count} | {} / {} | {} / {} | {changes} |",
            fmt(m),
            fmt(p),
            redecided[redecided.len() / 2],
            redecided.last().copied().unwrap_or(0)
        );
    }
    differences.extend(membership_differences(index, &checked));
    // The first refresh of the next day, a millisecond after the last one of the day
    // before: relative dates and anniversaries re-evaluate their segments whole.
    let midnight =
        Timestamp::from_second((at.as_second().div_euclid(86_400) + 1) * 86_400).unwrap_or(at);
    index.refresh(&Clock::new(
        midnight - SignedDuration::from_millis(1),
        &TimeZone::UTC,
    ));
    at = midnight;
    let t = Instant::now();
    let day_changes = index.refresh(&Clock::new(at, &TimeZone::UTC)).len();
    let new_day = t.elapsed();
    let day_stats = index.refresh_stats();

    let steady = index.memory();

    // Maintained membership against an evaluation from scratch: when the segments were
    // saved, after the steps, and after the new day.
    differences.extend(membership_differences(index, &checked));

    println!();
    println!("| figure | value |");
    println!("| --- | ---: |");
    println!(
        "| {} segments saved (each evaluated whole, timers built from the streams) | {} |",
        time_rules.len(),
        fmt(saved)
    );
    println!(
        "| old refresh: every time-dependent segment evaluated whole ({}) | {} |",
        all_rules.len(),
        fmt(whole50)
    );
    println!(
        "| first refresh of a new day ({} segments re-evaluated whole, {} contacts re-decided, {day_changes} changes) | {} |",
        day_stats.reevaluated,
        day_stats.redecided,
        fmt(new_day)
    );
    println!(
        "| timers, computed heap per contact, when saved ({pending} entries pending) / after the steps ({} pending) | {:.1} / {:.1} B |",
        index.refresh_stats().pending,
        mem.timers as f64 / n.max(1) as f64,
        steady.timers as f64 / n.max(1) as f64
    );
    println!(
        "| memory per contact, computed heap, with {} saved segments and their timers | {:.0} B |",
        first.len() + time_rules.len(),
        mem.total as f64 / n.max(1) as f64
    );
    println!(
        "| maintained membership equal to evaluation from scratch (checked before the steps, after them, after the new day) | {} |",
        if differences.is_empty() {
            "yes".to_owned()
        } else {
            format!("NO: {} differences", differences.len())
        }
    );
    for d in &differences {
        println!("{d}");
    }
}
