//! What the panel reads besides membership — the builder's catalog (event names with
//! their property paths and types, campaigns, URL prefixes, frequent values), reach by
//! channel and contact search — stays equal to a model computed from the live contacts
//! through random upserts, deletions and events.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use segmentd_engine::{
    Address, BuilderCatalog, Channels, ContactValues, Counted, Event, EventInfo, Index,
    PropertyInfo, ReachCounts,
};
use segmentd_rules::FieldValue;
use segmentd_rules::rule::{FieldRef, Rule};
use serde_json::Value;

#[derive(Debug, Clone)]
enum Step {
    Upsert(usize, ContactValues),
    Delete(usize),
    Events(usize, Vec<Event>),
}

fn address() -> impl Strategy<Value = Address> {
    prop::sample::select(vec![
        Address::None,
        Address::Subscribed,
        Address::Unsubscribed,
        Address::Bounced,
    ])
}

fn contact_values() -> impl Strategy<Value = ContactValues> {
    (
        values(),
        prop::option::of(prop::sample::select(vec![
            "Ann@X.com",
            "ann@y.org",
            "bo@x.com",
        ])),
        prop::option::of(prop::sample::select(vec!["+48 600", "+48 601", "600"])),
        address(),
        address(),
        any::<bool>(),
    )
        .prop_map(|(mut v, email, phone, e, s, push)| {
            v.email = email.map(str::to_owned);
            v.phone = phone.map(str::to_owned);
            v.channels = Channels {
                email: e,
                sms: s,
                push,
            };
            v
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..8, contact_values()).prop_map(|(n, v)| Step::Upsert(n, v)),
        1 => (0usize..8).prop_map(Step::Delete),
        4 => (0usize..8, prop::collection::vec(prop_oneof![
            system_event().prop_map(Event::System),
            custom_event().prop_map(Event::Custom),
            visit().prop_map(Event::Visit),
        ], 1..5)).prop_map(|(n, e)| Step::Events(n, e)),
    ]
}

#[derive(Default)]
struct Model {
    /// Store id → values, events, external id.
    live: BTreeMap<i64, (ContactValues, Vec<Event>, String)>,
    next_event: usize,
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// A property value's flattened paths as the builder names them: (path, type, text).
fn flatten(
    props: &serde_json::Map<String, Value>,
    prefix: &str,
    out: &mut Vec<(String, &'static str, Option<String>)>,
) {
    for (k, v) in props {
        if k.is_empty() || k.contains('.') {
            continue;
        }
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Null => {}
            Value::String(s) => out.push((path.clone(), "text", Some(lower(s)))),
            Value::Number(_) => out.push((path.clone(), "number", None)),
            Value::Bool(_) => out.push((path.clone(), "boolean", None)),
            Value::Array(_) | Value::Object(_) => out.push((path.clone(), "other", None)),
        }
        if let Value::Object(inner) = v {
            flatten(inner, &path, out);
        }
    }
}

fn url_prefix(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let path = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map(|j| i + 3 + j),
        None => url.starts_with('/').then_some(0),
    };
    match path.and_then(|p| url[p + 1..].find('/').map(|q| p + 1 + q)) {
        Some(end) => url[..end].to_owned(),
        None => url.to_owned(),
    }
}

fn top(counts: BTreeMap<String, u64>) -> Vec<Counted> {
    let mut v: Vec<Counted> = counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(value, count)| Counted { value, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
    v
}

impl Model {
    fn events(&self) -> impl Iterator<Item = &Event> {
        self.live.values().flat_map(|(_, e, _)| e)
    }

    fn catalog(&self) -> BuilderCatalog {
        let mut names: BTreeMap<String, (u64, BTreeMap<String, BTreeSet<&'static str>>)> =
            BTreeMap::new();
        let mut campaigns: BTreeMap<String, u64> = BTreeMap::new();
        let mut prefixes: BTreeMap<String, u64> = BTreeMap::new();
        for e in self.events() {
            match e {
                Event::Custom(c) => {
                    let entry = names.entry(c.name.clone()).or_default();
                    entry.0 += 1;
                    let mut flat = Vec::new();
                    flatten(&c.properties, "", &mut flat);
                    for (path, ty, _) in flat {
                        entry.1.entry(path).or_default().insert(ty);
                    }
                }
                Event::System(s) => {
                    if let Some(c) = &s.campaign {
                        *campaigns.entry(c.clone()).or_default() += 1;
                    }
                }
                Event::Visit(v) => *prefixes.entry(url_prefix(&lower(&v.url))).or_default() += 1,
            }
        }
        let order = ["text", "number", "boolean", "other"];
        let mut events: Vec<EventInfo> = names
            .into_iter()
            .map(|(name, (events, props))| EventInfo {
                name,
                events,
                properties: props
                    .into_iter()
                    .map(|(path, types)| PropertyInfo {
                        path,
                        types: order.into_iter().filter(|t| types.contains(t)).collect(),
                    })
                    .collect(),
            })
            .collect();
        events.sort_by(|a, b| b.events.cmp(&a.events).then(a.name.cmp(&b.name)));
        BuilderCatalog {
            events,
            campaigns: top(campaigns),
            url_prefixes: top(prefixes),
        }
    }

    fn property_values(&self, name: &str, path: &str) -> Vec<Counted> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for e in self.events() {
            if let Event::Custom(c) = e
                && c.name == name
            {
                let mut flat = Vec::new();
                flatten(&c.properties, "", &mut flat);
                for (p, _, text) in flat {
                    if let (true, Some(t)) = (p == path, text) {
                        *counts.entry(t).or_default() += 1;
                    }
                }
            }
        }
        top(counts)
    }

    fn field_values(&self, key: &str) -> Vec<Counted> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (v, _, _) in self.live.values() {
            if let Some(FieldValue::Text(t)) = v.fields.get(key)
                && !t.is_empty()
            {
                *counts.entry(lower(t)).or_default() += 1;
            }
        }
        top(counts)
    }

    fn reach(&self) -> ReachCounts {
        let mut r = ReachCounts::default();
        for (v, _, _) in self.live.values() {
            r.email += u64::from(v.channels.email == Address::Subscribed);
            r.sms += u64::from(v.channels.sms == Address::Subscribed);
            r.push += u64::from(v.channels.push);
        }
        r
    }

    /// Contacts matching a search, by external id.
    fn search(&self, q: &str) -> Vec<i64> {
        let q = lower(q);
        let mut found: Vec<(&String, i64)> = self
            .live
            .iter()
            .filter(|(_, (v, _, ext))| {
                let texts = v.fields.values().filter_map(|f| match f {
                    FieldValue::Text(t) if !t.is_empty() => Some(t.as_str()),
                    _ => None,
                });
                std::iter::once(ext.as_str())
                    .chain(v.email.as_deref())
                    .chain(v.phone.as_deref())
                    .chain(texts)
                    .any(|s| lower(s).starts_with(&q))
            })
            .map(|(id, (_, _, ext))| (ext, *id))
            .collect();
        found.sort();
        found.into_iter().map(|(_, id)| id).collect()
    }
}

fn everyone() -> Rule {
    Rule::Not(Box::new(Rule::Any(Vec::new())))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn catalog_reach_and_search_follow_upserts_deletions_and_events(
        steps in prop::collection::vec(step(), 1..30),
    ) {
        let mut index = Index::new(clock_at(now()));
        let mut model = Model::default();
        // Store ids: a deleted contact created again gets a new one, as in the store.
        let mut ids: Vec<i64> = (0..8).map(|n| 100 + n).collect();
        for step in steps {
            match step {
                Step::Upsert(n, values) => {
                    let id = ids[n];
                    let ext = format!("{}Ext-{id}", if id % 2 == 0 { "a" } else { "B" });
                    index.upsert_contact(id, &ext, &values);
                    let entry = model.live.entry(id).or_insert_with(|| (values.clone(), Vec::new(), ext.clone()));
                    entry.0 = values;
                }
                Step::Delete(n) => {
                    let id = ids[n];
                    index.delete_contact(id);
                    model.live.remove(&id);
                    ids[n] += 100;
                }
                Step::Events(n, events) => {
                    let id = ids[n];
                    let mut events = events;
                    for e in &mut events {
                        // Unique ids: duplicates are the store's business.
                        model.next_event += 1;
                        let fresh = Some(format!("e{}", model.next_event));
                        match e {
                            Event::System(x) => x.id = fresh,
                            Event::Custom(x) => x.id = fresh,
                            Event::Visit(x) => x.id = fresh,
                        }
                    }
                    index.add_events(events.iter().map(|e| (id, e)));
                    if let Some(entry) = model.live.get_mut(&id) {
                        entry.1.extend(events);
                    }
                }
            }
            prop_assert_eq!(index.builder_catalog(100), model.catalog());
            for name in NAMES {
                for path in ["item", "a", "tags.name", "tags", "amount"] {
                    prop_assert_eq!(
                        index.property_values(name, path, 100),
                        model.property_values(name, path),
                        "{} {}", name, path
                    );
                }
            }
            for key in KEYS {
                prop_assert_eq!(
                    index.field_values(&FieldRef::Custom(key.to_owned()), 100),
                    model.field_values(key)
                );
            }
            let all = index.evaluate_bits(&everyone(), index.clock());
            prop_assert_eq!(all.count(), model.live.len() as u64);
            prop_assert_eq!(index.reach(&all), model.reach());
            for q in ["", "a", "AEXT", "bext-1", "ann", "ANN@X", "+48 60", "600", "str", "x", "İ"] {
                prop_assert_eq!(index.search(q, None, 100), model.search(q), "search {:?}", q);
            }
        }
    }
}
