//! The benchmarks' data: seeded contacts and events, and the rules of the saved segments
//! they are measured with.
//!
//! `bench ingest` keeps its small generator (three fields, three kinds of events, the
//! bodies built up front). `bench paths` uses [`Population`]: the engine benchmark's
//! shapes of data (text, number, date and boolean fields, e-mail and phone on most
//! contacts, system events, customer events with properties, website visits), written
//! straight to the API's JSON a batch at a time, each item from its own index, so that
//! any client can build any batch when its turn comes.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::civil::Date;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// `bench ingest`
// ---------------------------------------------------------------------------------------

const INGEST_CITIES: [&str; 4] = ["Warsaw", "Kraków", "Gdańsk", "Berlin"];

/// The fields `bench ingest`'s contacts have: key and type.
pub const INGEST_FIELDS: [(&str, &str); 3] =
    [("city", "text"), ("age", "number"), ("vip", "boolean")];

pub fn ingest_contact(i: usize, rng: &mut StdRng) -> Value {
    let city = INGEST_CITIES[rng.random_range(0..INGEST_CITIES.len())];
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

pub fn ingest_event(i: usize, contacts: usize, rng: &mut StdRng) -> Value {
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

/// `bench ingest`'s saved segments: the engine benchmark's shapes on its three fields, so
/// that ingest pays for membership upkeep as it would in production.
pub fn ingest_segments() -> [Value; 5] {
    [
        json!({"all": [{"field": "city", "op": "equals", "value": "warsaw"}, {"field": "age", "op": "between", "value": [25, 40]},
                       {"field": "vip", "op": "is_false"}, {"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 30}},
                       {"custom_event": "purchase", "op": "occurred", "where": [{"property": "amount", "op": "greater_than", "value": 100}]}]}),
        json!({"visit_url": {"op": "contains", "value": "/pricing"}, "op": "occurred", "min_count": 3, "within": {"last_days": 7}}),
        json!({"system_event": "MailOpen", "op": "not_occurred", "within": {"last_days": 60}}),
        json!({"any": [{"field": "city", "op": "in", "value": ["kraków", "gdańsk"]}, {"field": "age", "op": "less_than", "value": 21}]}),
        json!({"any": [{"all": [{"field": "vip", "op": "is_true"}, {"not": {"custom_event": "purchase", "op": "occurred"}}]},
                       {"all": [{"field": "age", "op": "greater_than", "value": 60}, {"any": [{"system_event": "MailClick", "op": "occurred"}, {"op": "occurred"}]}]}]}),
    ]
}

// ---------------------------------------------------------------------------------------
// `bench paths`
// ---------------------------------------------------------------------------------------

/// SplitMix64: a few instructions per number, seeded from an item's index, so that an
/// item is the same whichever client generates it and in whatever order.
pub struct Mix(u64);

impl Mix {
    pub fn new(seed: u64, item: u64) -> Self {
        let mut mix = Mix(seed ^ item.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        mix.draw();
        mix
    }

    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough below `n` (zero when `n` is zero).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.draw() % n }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The custom fields of `bench paths`' contacts, key and type: those the engine
/// benchmark's rules read, and a few more of each type.
pub const FIELDS: [(&str, &str); 12] = [
    ("country", "text"),
    ("city", "text"),
    ("plan", "text"),
    ("tier", "text"),
    ("age", "number"),
    ("ltv", "number"),
    ("score", "number"),
    ("signup", "date"),
    ("birthday", "date"),
    ("vip", "boolean"),
    ("newsletter", "boolean"),
    ("churned", "boolean"),
];

const PLANS: [&str; 5] = ["free", "starter", "pro", "enterprise", "trial"];
const TIERS: [&str; 4] = ["bronze", "silver", "gold", "platinum"];
const CITY_PREFIXES: [&str; 8] = ["San ", "Saint-", "New ", "Port ", "Bad ", "Los ", "", "Le "];
const CITIES: u64 = 2_000;
const CUSTOM_EVENTS: [&str; 3] = ["purchase", "add_to_cart", "signup"];
const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];
/// Events of the load are spread over this many days before the bench started.
const EVENT_DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;

/// The five saved-segment workloads of the engine benchmark (`engine-bench`), by name:
/// the same rules, on the same shapes of data.
pub fn workloads() -> Vec<(String, Value)> {
    serde_json::from_str(WORKLOADS).expect("workloads.json is a list of [name, rule] pairs")
}

/// The engine benchmark's file of workloads, so that both benches time the same rules.
const WORKLOADS: &str = include_str!("../../../engine/src/bin/workloads.json");

/// `bench paths`' contacts and their events, generated on demand.
#[derive(Debug, Clone)]
pub struct Population {
    pub seed: u64,
    pub contacts: usize,
    /// Events of the load (each for a contact drawn at random).
    pub events: usize,
    /// When the bench started: the load's events are dated in the 90 days before it.
    pub now: Timestamp,
    today: Date,
}

impl Population {
    pub fn new(seed: u64, contacts: usize, events: usize, now: Timestamp) -> Self {
        Population {
            seed,
            contacts,
            events,
            now,
            today: jiff::tz::TimeZone::UTC.to_datetime(now).date(),
        }
    }

    /// Contact `i`'s external id: not in the order of `i`, so that ordering members by
    /// external id is real work, as in the engine benchmark.
    pub fn external_id(&self, i: usize) -> String {
        let mut r = Mix::new(self.seed ^ 0xE7E1, i as u64);
        format!("{:010x}-{i}", r.draw() >> 24)
    }

    pub fn email(i: usize) -> String {
        format!("user{i}@domain{}.com", i % 100)
    }

    /// Whether contact `i` has its e-mail address (19 in 20 have): the first draw of
    /// its generator.
    pub fn has_email(&self, i: usize) -> bool {
        !Mix::new(self.seed, i as u64).chance(5)
    }

    /// Contact `i`'s city (every contact has a value the generator could give it; 10%
    /// are left without one).
    pub fn city(v: u64) -> String {
        let prefix = CITY_PREFIXES[(v % CITY_PREFIXES.len() as u64) as usize];
        format!("{prefix}City{v}")
    }

    pub fn batches(items: usize, batch: usize) -> usize {
        items.div_ceil(batch.max(1))
    }

    /// `{"contacts": [...]}` for contacts `k * batch ..`, at most `batch` of them.
    pub fn contacts_body(&self, k: usize, batch: usize) -> Vec<u8> {
        let (from, to) = span(k, batch, self.contacts);
        let mut out = String::with_capacity((to - from) * 420 + 16);
        out.push_str("{\"contacts\":[");
        for i in from..to {
            if i > from {
                out.push(',');
            }
            self.write_contact(&mut out, i);
        }
        out.push_str("]}");
        out.into_bytes()
    }

    /// `{"events": [...]}` for events `k * batch ..` of the load, at most `batch`.
    pub fn events_body(&self, k: usize, batch: usize) -> Vec<u8> {
        let (from, to) = span(k, batch, self.events);
        let now = self.now.as_millisecond();
        self.write_events(from..to, "e", |r| {
            now - 1 - r.below((EVENT_DAYS * DAY_MS) as u64) as i64
        })
    }

    /// A batch of events dated in the last minute before `now`, for the writer of the
    /// mixed load: `k` numbers the batch, and its custom events' ids are new.
    pub fn live_events_body(&self, k: usize, batch: usize, now: Timestamp) -> Vec<u8> {
        let from = self.events + k * batch;
        let now = now.as_millisecond();
        self.write_events(from..from + batch, "live", |r| now - r.below(60_000) as i64)
    }

    fn write_events(
        &self,
        items: std::ops::Range<usize>,
        id_prefix: &str,
        mut when: impl FnMut(&mut Mix) -> i64,
    ) -> Vec<u8> {
        let mut out = String::with_capacity(items.len() * 190 + 16);
        out.push_str("{\"events\":[");
        let first = items.start;
        for j in items {
            if j > first {
                out.push(',');
            }
            let mut r = Mix::new(self.seed ^ 0xE7E7, j as u64);
            let at = when(&mut r);
            self.write_event(&mut out, j, &mut r, at, id_prefix);
        }
        out.push_str("]}");
        out.into_bytes()
    }

    fn write_contact(&self, out: &mut String, i: usize) {
        let mut r = Mix::new(self.seed, i as u64);
        let _ = write!(out, "{{\"external_id\":\"{}\"", self.external_id(i));
        // The first draw, as `has_email` makes it.
        let email = !r.chance(5);
        if email {
            let _ = write!(out, ",\"email\":\"{}\"", Self::email(i));
        }
        let phone = r.chance(80);
        if phone {
            let _ = write!(out, ",\"phone\":\"+4860{:07}\"", i % 10_000_000);
        }
        out.push_str(",\"fields\":{");
        let mut fields = Fields { out, first: true };
        // Each field is missing on one contact in ten, as in the engine benchmark.
        let has = |r: &mut Mix| !r.chance(10);
        if has(&mut r) {
            fields.text("country", &format!("C{:02}", r.below(50)));
        }
        if has(&mut r) {
            fields.text("city", &Self::city(r.below(CITIES)));
        }
        if has(&mut r) {
            fields.text("plan", PLANS[r.below(PLANS.len() as u64) as usize]);
        }
        if has(&mut r) {
            fields.text("tier", TIERS[r.below(TIERS.len() as u64) as usize]);
        }
        if has(&mut r) {
            fields.raw("age", 18 + r.below(72));
        }
        if has(&mut r) {
            fields.raw("ltv", r.below(5_001));
        }
        if has(&mut r) {
            fields.raw("score", r.below(101));
        }
        if has(&mut r) {
            let days = r.below(3 * 365);
            fields.text("signup", &self.days_ago(days));
        }
        if has(&mut r) {
            let days = r.below(60 * 365);
            fields.text("birthday", &self.days_ago(days));
        }
        if has(&mut r) {
            fields.raw("vip", r.chance(10));
        }
        if has(&mut r) {
            fields.raw("newsletter", r.chance(30));
        }
        if has(&mut r) {
            fields.raw("churned", r.chance(10));
        }
        out.push('}');
        // Channels only where they differ from the default (an address is subscribed).
        let mut channels = Vec::new();
        let roll = r.below(100);
        if email && roll < 3 {
            channels.push("\"email\":\"unsubscribed\"".to_owned());
        } else if email && roll < 4 {
            channels.push("\"email\":\"bounced\"".to_owned());
        }
        if phone && r.chance(5) {
            channels.push("\"sms\":\"unsubscribed\"".to_owned());
        }
        if r.chance(30) {
            channels.push(format!("\"push_tokens\":[\"tok-{i}\"]"));
        }
        if !channels.is_empty() {
            let _ = write!(out, ",\"channels\":{{{}}}", channels.join(","));
        }
        out.push('}');
    }

    fn write_event(&self, out: &mut String, j: usize, r: &mut Mix, at_ms: i64, id_prefix: &str) {
        let contact = self.external_id(r.below(self.contacts as u64) as usize);
        let at = Timestamp::from_millisecond(at_ms).unwrap_or(self.now);
        let roll = r.below(100);
        if roll < 50 {
            let kind = match roll {
                0..30 => "MailOpen",
                30..40 => "MailClick",
                40..45 => "SmsClick",
                _ => "PushClick",
            };
            let _ = write!(
                out,
                "{{\"type\":\"system\",\"contact\":\"{contact}\",\"event\":\"{kind}\",\"timestamp\":\"{at}\",\"campaign\":\"camp-{}\"}}",
                r.below(50)
            );
        } else if roll < 70 {
            let name = CUSTOM_EVENTS[r.below(CUSTOM_EVENTS.len() as u64) as usize];
            let _ = write!(
                out,
                "{{\"type\":\"custom\",\"id\":\"{id_prefix}{j}\",\"contact\":\"{contact}\",\"name\":\"{name}\",\"timestamp\":\"{at}\",\
                 \"properties\":{{\"amount\":{},\"sku\":\"SKU-{:04}\",\"currency\":\"{}\"}}}}",
                r.below(200),
                r.below(1_000),
                CURRENCIES[r.below(CURRENCIES.len() as u64) as usize]
            );
        } else {
            let page = r.below(500);
            let url = if page < 25 {
                format!("https://shop.example.com/pricing?ref={}", page % 5)
            } else {
                format!("https://shop.example.com/p/{page}")
            };
            let _ = write!(
                out,
                "{{\"type\":\"visit\",\"contact\":\"{contact}\",\"url\":\"{url}\",\"timestamp\":\"{at}\"}}"
            );
        }
    }

    fn days_ago(&self, days: u64) -> String {
        self.today
            .checked_sub(jiff::Span::new().days(days as i64))
            .unwrap_or(self.today)
            .to_string()
    }
}

/// Items `k * batch ..` of `total`, at most `batch` of them (empty past the end).
fn span(k: usize, batch: usize, total: usize) -> (usize, usize) {
    let from = k.saturating_mul(batch).min(total);
    (from, from.saturating_add(batch).min(total))
}

/// Writes `"key":value` pairs of a JSON object, commas between. The keys and text values
/// come from this file and never need escaping.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        let _ = write!(self.out, "\"{key}\":");
    }

    fn text(&mut self, key: &str, value: &str) {
        self.key(key);
        let _ = write!(self.out, "\"{value}\"");
    }

    fn raw(&mut self, key: &str, value: impl std::fmt::Display) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn population() -> Population {
        let now = Timestamp::from_second(1_770_000_000).unwrap();
        Population::new(7, 1_000, 10_000, now)
    }

    fn parsed(body: Vec<u8>, list: &str) -> Vec<Value> {
        let v: Value = serde_json::from_slice(&body).unwrap();
        v[list].as_array().unwrap().clone()
    }

    /// Batches cover every item once, the last one short, past the end empty.
    #[test]
    fn batches_split_the_items_without_overlap() {
        let p = population();
        // (batch, k, expected contacts)
        let cases = [
            (300, 0, 300),
            (300, 3, 100),
            (300, 4, 0),
            (1_000, 0, 1_000),
            (7, 142, 6),
        ];
        for (batch, k, want) in cases {
            let items = parsed(p.contacts_body(k, batch), "contacts");
            assert_eq!(items.len(), want, "batch {batch}, k {k}");
            if let Some(first) = items.first() {
                assert_eq!(first["external_id"], json!(p.external_id(k * batch)));
            }
        }
        assert_eq!(Population::batches(1_000, 300), 4);
        assert_eq!(Population::batches(0, 300), 0);
        let all: usize = (0..Population::batches(10_000, 3_000))
            .map(|k| parsed(p.events_body(k, 3_000), "events").len())
            .sum();
        assert_eq!(all, 10_000);
    }

    /// The same batch is the same bytes whoever builds it: items come from their index.
    #[test]
    fn a_batch_is_the_same_whenever_it_is_built() {
        let p = population();
        assert_eq!(p.contacts_body(2, 100), p.contacts_body(2, 100));
        assert_eq!(p.events_body(5, 100), p.events_body(5, 100));
        assert_ne!(p.events_body(5, 100), p.events_body(6, 100));
    }

    /// Fields have their declared types, most contacts have an e-mail and a phone, and
    /// external ids are unique.
    #[test]
    fn contacts_have_typed_fields_and_addresses() {
        let p = population();
        let contacts = parsed(p.contacts_body(0, 1_000), "contacts");
        let ids: std::collections::HashSet<&str> = contacts
            .iter()
            .map(|c| c["external_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1_000);
        for (i, c) in contacts.iter().enumerate() {
            assert_eq!(c["email"].is_string(), p.has_email(i), "{c}");
        }
        let share = |f: &dyn Fn(&Value) -> bool| contacts.iter().filter(|c| f(c)).count();
        assert!(share(&|c| c["email"].is_string()) > 900);
        assert!((700..900).contains(&share(&|c| c["phone"].is_string())));
        for (key, ty) in FIELDS {
            let values: Vec<&Value> = contacts
                .iter()
                .filter_map(|c| c["fields"].get(key))
                .collect();
            assert!(
                (850..950).contains(&values.len()),
                "{key}: {}",
                values.len()
            );
            for v in values {
                let ok = match ty {
                    "text" => v.is_string(),
                    "number" => v.is_number(),
                    "boolean" => v.is_boolean(),
                    _ => v.as_str().is_some_and(|d| d.parse::<Date>().is_ok()),
                };
                assert!(ok, "{key} = {v}");
            }
        }
    }

    /// Events are of every kind, for known contacts, dated in the 90 days before `now`
    /// (the live ones in the last minute), with new ids for the live ones.
    #[test]
    fn events_are_of_every_kind_and_dated_before_now() {
        let p = population();
        let known: std::collections::HashSet<String> =
            (0..p.contacts).map(|i| p.external_id(i)).collect();
        let check = |events: Vec<Value>, oldest: i64| {
            let mut kinds = std::collections::BTreeSet::new();
            for e in &events {
                kinds.insert(e["type"].as_str().unwrap().to_owned());
                assert!(known.contains(e["contact"].as_str().unwrap()));
                let at: Timestamp = e["timestamp"].as_str().unwrap().parse().unwrap();
                assert!(at <= p.now && at.as_millisecond() >= oldest, "{e}");
                if e["type"] == "custom" {
                    assert!(e["properties"]["amount"].is_number());
                    assert!(e["properties"]["sku"].is_string());
                }
            }
            assert_eq!(kinds.len(), 3, "{kinds:?}");
        };
        let now = p.now.as_millisecond();
        check(parsed(p.events_body(0, 2_000), "events"), now - 90 * DAY_MS);
        let live = parsed(p.live_events_body(3, 500, p.now), "events");
        assert!(
            live.iter()
                .any(|e| e["id"].as_str().is_some_and(|id| id.starts_with("live")))
        );
        check(live, now - 60_000);
    }
}
