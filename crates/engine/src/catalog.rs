//! What the condition builder offers: the event names, property paths (with the types
//! seen), campaigns and visited URL prefixes of the account's live contacts, and the most
//! frequent values of text fields and properties. Kept as data arrives and contacts go,
//! as counts, so that listing them reads no event.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use segmentd_rules::rule::FieldRef;

use crate::Index;
use crate::dict::{Dict, NONE};
use crate::events::{Prop, SlotHasher, TAG_BOOL, TAG_NUMBER, TAG_OTHER, TAG_TEXT};
use crate::fields::TextColumn;

/// A property path's text values are counted until it has this many distinct ones; past
/// that (order ids, free text) suggestions would not help and the counts would cost.
const MAX_COUNTED_VALUES: usize = 10_000;

/// How many values of one property path hold each type, and its text values' counts.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct PropTally {
    /// By type tag (`TAG_TEXT`…`TAG_OTHER`).
    types: [u64; 5],
    /// Text value code → live events holding it; `None` once there are too many.
    values: Option<HashMap<u32, u32, BuildHasherDefault<SlotHasher>>>,
    /// Whether `values` was given up (too many distinct values).
    many: bool,
}

fn tag_of(p: Prop) -> u8 {
    match p {
        Prop::Text(_) => TAG_TEXT,
        Prop::Number(_) => TAG_NUMBER,
        Prop::Boolean(_) => TAG_BOOL,
        Prop::Other => TAG_OTHER,
    }
}

impl PropTally {
    pub fn add(&mut self, p: Prop) {
        if let Some(t) = self.types.get_mut(tag_of(p) as usize) {
            *t += 1;
        }
        if let Prop::Text(code) = p
            && !self.many
        {
            let values = self.values.get_or_insert_with(HashMap::default);
            *values.entry(code).or_insert(0) += 1;
            if values.len() > MAX_COUNTED_VALUES {
                self.values = None;
                self.many = true;
            }
        }
    }

    pub fn remove(&mut self, p: Prop) {
        if let Some(t) = self.types.get_mut(tag_of(p) as usize) {
            *t = t.saturating_sub(1);
        }
        if let (Prop::Text(code), Some(values)) = (p, &mut self.values)
            && let Some(n) = values.get_mut(&code)
        {
            *n -= 1;
            if *n == 0 {
                values.remove(&code);
            }
        }
    }

    /// The JSON types seen among live values.
    pub fn types(&self) -> Vec<&'static str> {
        [
            (TAG_TEXT, "text"),
            (TAG_NUMBER, "number"),
            (TAG_BOOL, "boolean"),
            (TAG_OTHER, "other"),
        ]
        .into_iter()
        .filter(|(t, _)| self.types[*t as usize] > 0)
        .map(|(_, name)| name)
        .collect()
    }

    fn live(&self) -> u64 {
        self.types.iter().sum()
    }

    pub fn heap_bytes(&self) -> usize {
        self.values.as_ref().map_or(0, |v| v.capacity() * 12)
    }
}

/// Live counts of what the builder lists, by code of the index's dictionaries.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Tallies {
    /// Campaign code → live system events with it.
    campaigns: Vec<u64>,
    /// URL code → its prefix's code in `prefixes`.
    prefix_of: Vec<u32>,
    prefixes: Dict,
    /// Prefix code → live visits under it.
    prefix_visits: Vec<u64>,
}

/// A visited URL's prefix as the builder offers it: scheme, host and first path
/// segment, without query or fragment (`https://shop.example.com/pricing`).
pub fn url_prefix(url: &str) -> &str {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let path_start = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map(|j| i + 3 + j),
        None => Some(0).filter(|_| url.starts_with('/')),
    };
    match path_start {
        None => url,
        Some(p) => match url[p + 1..].find('/') {
            Some(q) => &url[..p + 1 + q],
            None => url,
        },
    }
}

fn bump(counts: &mut Vec<u64>, code: u32, up: bool) {
    let i = code as usize;
    if counts.len() <= i {
        counts.resize(i + 1, 0);
    }
    counts[i] = if up {
        counts[i] + 1
    } else {
        counts[i].saturating_sub(1)
    };
}

impl Tallies {
    pub fn campaign(&mut self, code: u32, up: bool) {
        if code != NONE {
            bump(&mut self.campaigns, code, up);
        }
    }

    /// Counts a visit of the URL with `code` (lowercased `url`, known when the code is
    /// new) in or out.
    pub fn visit(&mut self, code: u32, urls: &Dict, up: bool) {
        while self.prefix_of.len() <= code as usize {
            let next = self.prefix_of.len() as u32;
            let prefix = self.prefixes.intern(url_prefix(urls.str(next)));
            self.prefix_of.push(prefix);
        }
        if let Some(&p) = self.prefix_of.get(code as usize) {
            bump(&mut self.prefix_visits, p, up);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.campaigns.capacity() * 8
            + self.prefix_of.capacity() * 4
            + self.prefixes.heap_bytes()
            + self.prefix_visits.capacity() * 8
    }
}

/// A custom event name with its live events and the property paths they carry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventInfo {
    pub name: String,
    pub events: u64,
    pub properties: Vec<PropertyInfo>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PropertyInfo {
    pub path: String,
    /// `text`, `number`, `boolean`, `other` (arrays and objects), as seen.
    pub types: Vec<&'static str>,
}

/// A value with how many live contacts (fields) or events (properties) hold it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Counted {
    pub value: String,
    pub count: u64,
}

/// Everything the builder lists, each list by count (most first), then by name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BuilderCatalog {
    pub events: Vec<EventInfo>,
    pub campaigns: Vec<Counted>,
    pub url_prefixes: Vec<Counted>,
}

/// The `limit` largest of `(value, count)` with a count, most first, then by value.
fn top(items: impl Iterator<Item = (String, u64)>, limit: usize) -> Vec<Counted> {
    let mut all: Vec<Counted> = items
        .filter(|(_, n)| *n > 0)
        .map(|(value, count)| Counted { value, count })
        .collect();
    let order = |a: &Counted, b: &Counted| b.count.cmp(&a.count).then(a.value.cmp(&b.value));
    if all.len() > limit {
        all.select_nth_unstable_by(limit, order);
        all.truncate(limit);
    }
    all.sort_unstable_by(order);
    all
}

impl Index {
    /// What the condition builder lists: custom event names with their property paths,
    /// campaigns and URL prefixes, at most `limit` of each list.
    pub fn builder_catalog(&self, limit: usize) -> BuilderCatalog {
        let paths: HashMap<u32, &str> = self
            .events
            .properties
            .paths
            .iter()
            .map(|(p, id)| (*id, p.as_str()))
            .collect();
        let mut events: Vec<EventInfo> = self
            .events
            .custom
            .iter()
            .filter(|(_, s)| s.live() > 0)
            .map(|(name, s)| {
                let props: BTreeMap<&str, Vec<&'static str>> = s
                    .props
                    .tallies()
                    .filter(|(_, t)| t.live() > 0)
                    .filter_map(|(p, t)| Some((*paths.get(p)?, t.types())))
                    .collect();
                EventInfo {
                    name: name.clone(),
                    events: s.live(),
                    properties: props
                        .into_iter()
                        .map(|(path, types)| PropertyInfo {
                            path: path.to_owned(),
                            types,
                        })
                        .collect(),
                }
            })
            .collect();
        events.sort_unstable_by(|a, b| b.events.cmp(&a.events).then(a.name.cmp(&b.name)));
        events.truncate(limit);
        let t = &self.tallies;
        BuilderCatalog {
            events,
            campaigns: top(
                t.campaigns
                    .iter()
                    .enumerate()
                    .map(|(c, n)| (self.events.campaigns.str(c as u32).to_owned(), *n)),
                limit,
            ),
            url_prefixes: top(
                t.prefix_visits
                    .iter()
                    .enumerate()
                    .map(|(p, n)| (t.prefixes.str(p as u32).to_owned(), *n)),
                limit,
            ),
        }
    }

    /// Takes a deleted contact's events out of the live counts (they stay in the streams,
    /// where nothing reads a deleted contact).
    pub(crate) fn forget_events(&mut self, slot: u32) {
        let (events, tallies) = (&mut self.events, &mut self.tallies);
        for stream in events.system.iter_mut() {
            let mut n = 0;
            stream.for_slot_in(slot, i64::MIN, i64::MAX, |_, campaign| {
                n += 1;
                tallies.campaign(campaign, false);
            });
            stream.dead += n;
        }
        let mut n = 0;
        events
            .visits
            .for_slot_in(slot, i64::MIN, i64::MAX, |_, url| {
                n += 1;
                tallies.visit(url, &events.urls, false);
            });
        events.visits.dead += n;
        for stream in events.custom.values_mut() {
            let mut records = Vec::new();
            stream.for_slot_in(slot, i64::MIN, i64::MAX, |_, r| records.push(r));
            stream.dead += records.len() as u64;
            for r in records {
                stream.props.forget(r);
            }
        }
    }

    /// The most frequent values of a text field among live contacts (lowercased, as
    /// conditions compare them). Near-unique fields (e-mail, phone) have none.
    pub fn field_values(&self, field: &FieldRef, limit: usize) -> Vec<Counted> {
        self.field_values_starting(field, "", limit)
    }

    /// [`Index::field_values`] among the values that start with `prefix` (any case): the
    /// builder asks again as a value is typed, so a rare value is offered too. Reads the
    /// column's dictionary, never the contacts.
    pub fn field_values_starting(
        &self,
        field: &FieldRef,
        prefix: &str,
        limit: usize,
    ) -> Vec<Counted> {
        let prefix = prefix.to_lowercase();
        match self.fields.get(field).and_then(|f| f.text.as_ref()) {
            Some(TextColumn::Dict(d)) => top(
                d.dict
                    .iter()
                    .filter(|(_, s)| s.starts_with(&prefix))
                    .map(|(code, s)| (s.to_owned(), d.posting_count(code))),
                limit,
            ),
            _ => Vec::new(),
        }
    }

    /// The most frequent text values of a custom event's property path among live
    /// events (lowercased); none for a path with too many distinct values.
    pub fn property_values(&self, event: &str, path: &str, limit: usize) -> Vec<Counted> {
        self.property_values_starting(event, path, "", limit)
    }

    /// [`Index::property_values`] among the values that start with `prefix` (any case).
    pub fn property_values_starting(
        &self,
        event: &str,
        path: &str,
        prefix: &str,
        limit: usize,
    ) -> Vec<Counted> {
        let prefix = prefix.to_lowercase();
        let strings = &self.events.properties.strings;
        let tally = self
            .events
            .properties
            .paths
            .get(path)
            .zip(self.events.custom.get(event))
            .and_then(|(p, s)| s.props.tally(*p));
        match tally.and_then(|t| t.values.as_ref()) {
            Some(values) => top(
                values
                    .iter()
                    .map(|(code, n)| (strings.str(*code), u64::from(*n)))
                    .filter(|(s, _)| s.starts_with(&prefix))
                    .map(|(s, n)| (s.to_owned(), n)),
                limit,
            ),
            None => Vec::new(),
        }
    }

    /// The most visited URL prefixes (scheme, host and first path segment) that contain
    /// `text` (any case), from the visit tallies.
    pub fn url_prefixes_containing(&self, text: &str, limit: usize) -> Vec<Counted> {
        let text = text.to_lowercase();
        let t = &self.tallies;
        top(
            t.prefix_visits
                .iter()
                .enumerate()
                .map(|(p, n)| (t.prefixes.str(p as u32), *n))
                .filter(|(s, _)| s.to_lowercase().contains(&text))
                .map(|(s, n)| (s.to_owned(), n)),
            limit,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_prefixes_keep_scheme_host_and_first_segment() {
        for (url, prefix) in [
            (
                "https://shop.example.com/pricing?plan=pro",
                "https://shop.example.com/pricing",
            ),
            (
                "https://shop.example.com/blog/post-1",
                "https://shop.example.com/blog",
            ),
            ("https://shop.example.com/", "https://shop.example.com/"),
            ("https://shop.example.com", "https://shop.example.com"),
            ("https://shop.example.com#top", "https://shop.example.com"),
            ("/docs/api", "/docs"),
            ("pricing", "pricing"),
            ("", ""),
        ] {
            assert_eq!(url_prefix(url), prefix, "{url}");
        }
    }
}
