//! The demo account: a few thousand contacts with typed fields, 90 days of events and
//! visits, and half a dozen meaningful segments. Seeded, so every run builds the same data
//! relative to the moment it runs.

use std::collections::BTreeMap;

use jiff::{Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use segmentd_rules::{FieldType, FieldValue, SystemEventKind, parse_rule};
use segmentd_store::{Account, ContactUpsert, EventBody, FieldDef, NewEvent, Patch, SegmentDraft};
use serde_json::json;

use crate::catalog::load_catalog;
use crate::state::AppState;
use crate::writes;

pub const DEMO_ACCOUNT: &str = "Demo";

const CITIES: [&str; 8] = [
    "Warsaw", "Kraków", "Gdańsk", "Wrocław", "Poznań", "Łódź", "Berlin", "Prague",
];
const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
const PAGES: [&str; 6] = [
    "/",
    "/pricing",
    "/blog/segments-101",
    "/features",
    "/docs/api",
    "/checkout",
];
const CATEGORIES: [&str; 4] = ["shoes", "books", "garden", "electronics"];

/// Finds the demo account, or creates it with its data. Returns it and whether it is new.
pub async fn ensure_demo(
    state: &AppState,
    contacts: usize,
    now: Timestamp,
) -> anyhow::Result<(Account, bool)> {
    let store = state.store.as_ref();
    if let Some(account) = store
        .accounts()
        .await?
        .into_iter()
        .find(|a| a.name == DEMO_ACCOUNT)
    {
        return Ok((account, false));
    }
    let account = store.create_account(DEMO_ACCOUNT, "Europe/Warsaw").await?;
    fill(state, &account, contacts, now).await?;
    Ok((account, true))
}

fn field(key: &str, label: &str, field_type: FieldType) -> FieldDef {
    FieldDef {
        key: key.into(),
        label: label.into(),
        field_type,
    }
}

/// Writes the demo data through the write path, as the API would.
async fn fill(state: &AppState, account: &Account, n: usize, now: Timestamp) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(0x5E6_3E47);
    for f in [
        field("first_name", "First name", FieldType::Text),
        field("city", "City", FieldType::Text),
        field("plan", "Plan", FieldType::Text),
        field("age", "Age", FieldType::Number),
        field("lifetime_value", "Lifetime value", FieldType::Number),
        field("signup_date", "Signup date", FieldType::Date),
        field("birthday", "Birthday", FieldType::Date),
        field("newsletter", "Newsletter", FieldType::Boolean),
    ] {
        writes::create_field(state, account, &f).await?;
    }
    let today = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let names = [
        "Anna", "Piotr", "Maria", "Jan", "Kasia", "Tomasz", "Ola", "Marek", "Ewa", "Paweł",
    ];
    let mut contacts = Vec::with_capacity(n);
    for i in 0..n {
        let mut fields = BTreeMap::new();
        let mut set = |k: &str, v: FieldValue| {
            fields.insert(k.to_owned(), Some(v));
        };
        set(
            "first_name",
            FieldValue::Text(names[i % names.len()].into()),
        );
        if rng.random_bool(0.95) {
            set(
                "city",
                FieldValue::Text(CITIES[rng.random_range(0..CITIES.len())].into()),
            );
        }
        // 60 % free, 30 % pro, 10 % enterprise.
        let plan = match rng.random_range(0..10) {
            0..6 => PLANS[0],
            6..9 => PLANS[1],
            _ => PLANS[2],
        };
        set("plan", FieldValue::Text(plan.into()));
        if rng.random_bool(0.8) {
            set("age", FieldValue::Number(rng.random_range(18..75) as f64));
        }
        set(
            "lifetime_value",
            FieldValue::Number((rng.random_range(0..200_000) as f64) / 100.0),
        );
        let signup = today.checked_sub(rng.random_range(0..730).days())?;
        set("signup_date", FieldValue::Date(signup));
        if rng.random_bool(0.7) {
            let birthday = jiff::civil::date(
                rng.random_range(1955..2006),
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            );
            set("birthday", FieldValue::Date(birthday));
        }
        set("newsletter", FieldValue::Boolean(rng.random_bool(0.6)));
        let id = format!("c{:05}", i + 1);
        contacts.push(ContactUpsert {
            email: if rng.random_bool(0.9) {
                Patch::Set(format!("{id}@example.com"))
            } else {
                Patch::Keep
            },
            phone: if rng.random_bool(0.6) {
                Patch::Set(format!("+48 600 {:03} {:03}", i / 1000, i % 1000))
            } else {
                Patch::Keep
            },
            push_tokens: if rng.random_bool(0.3) {
                Patch::Set(vec![format!("push-{id}")])
            } else {
                Patch::Keep
            },
            external_id: id,
            fields,
            ..ContactUpsert::default()
        });
    }
    for chunk in contacts.chunks(5_000) {
        writes::upsert_contacts(state, account, chunk).await?;
    }

    let mut events = Vec::new();
    let day_ms = 86_400_000i64;
    let start = now.as_millisecond() - 90 * day_ms;
    let at = |rng: &mut StdRng| {
        Timestamp::from_millisecond(rng.random_range(start..now.as_millisecond()))
    };
    for c in &contacts {
        let engaged = rng.random_range(0..4);
        for _ in 0..rng.random_range(0..(3 + engaged * 4)) {
            let kind = SystemEventKind::ALL[rng.random_range(0..4usize).min(if engaged > 1 {
                3
            } else {
                1
            })];
            events.push(NewEvent {
                client_id: None,
                contact: c.external_id.clone(),
                timestamp: at(&mut rng)?,
                body: EventBody::System {
                    kind,
                    campaign: Some(format!("newsletter-{}", rng.random_range(1..=6))),
                    url: matches!(kind, SystemEventKind::MailClick)
                        .then(|| "https://shop.example.com/sale".into()),
                },
            });
        }
        for _ in 0..rng.random_range(0..(2 + engaged * 2)) {
            events.push(NewEvent {
                client_id: None,
                contact: c.external_id.clone(),
                timestamp: at(&mut rng)?,
                body: EventBody::Custom {
                    name: "purchase".into(),
                    properties: json!({
                        // Most purchases are small: amount = 5 + 495·u³.
                        "amount": (5.0 + 495.0 * rng.random::<f64>().powi(3)).round(),
                        "category": CATEGORIES[rng.random_range(0..CATEGORIES.len())],
                        "shipping": {"country": if rng.random_bool(0.8) { "PL" } else { "DE" }},
                    })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                },
            });
        }
        for _ in 0..rng.random_range(0..(3 + engaged * 3)) {
            events.push(NewEvent {
                client_id: None,
                contact: c.external_id.clone(),
                timestamp: at(&mut rng)?,
                body: EventBody::Visit {
                    url: format!(
                        "https://shop.example.com{}",
                        PAGES[rng.random_range(0..PAGES.len())]
                    ),
                },
            });
        }
    }
    events.sort_by_key(|e| e.timestamp);
    for chunk in events.chunks(10_000) {
        writes::add_events(state, account, chunk.to_vec()).await?;
    }

    let segments = [
        (
            "Warsaw newsletter readers",
            "Subscribers in Warsaw",
            json!({"all": [{"field": "city", "op": "equals", "value": "warsaw"}, {"field": "newsletter", "op": "is_true"}]}),
        ),
        (
            "Engaged e-mail readers",
            "Opened an e-mail in the last 30 days",
            json!({"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 30}}),
        ),
        (
            "Big spenders",
            "Two or more purchases over 200 in the last 90 days",
            json!({"custom_event": "purchase", "op": "occurred", "min_count": 2,
                "where": [{"property": "amount", "op": "greater_than", "value": 200}],
                "within": {"last_days": 90}}),
        ),
        (
            "Pricing visitors who never bought",
            "Saw the pricing page but never purchased",
            json!({"all": [{"visit_url": {"op": "contains", "value": "/pricing"}, "op": "occurred"},
                        {"custom_event": "purchase", "op": "not_occurred"}]}),
        ),
        (
            "Birthdays this week",
            "Birthday today or in the next 7 days",
            json!({"field": "birthday", "op": "anniversary_within", "value": 7}),
        ),
        (
            "Dormant pro users",
            "Pro or enterprise, no e-mail opened in 60 days",
            json!({"all": [{"field": "plan", "op": "in", "value": ["pro", "enterprise"]},
                        {"system_event": "MailOpen", "op": "not_occurred", "within": {"last_days": 60}}]}),
        ),
    ];
    for (name, description, rule) in segments {
        let (catalog, _) = load_catalog(state.store.as_ref(), account.id).await?;
        let rule = parse_rule(&rule, "rule", &catalog, None)
            .map_err(|issues| anyhow::anyhow!("demo segment {name}: {issues:?}"))?;
        writes::create_segment(
            state,
            account,
            &SegmentDraft {
                name: name.into(),
                description: description.into(),
                rule: rule.to_json(),
            },
        )
        .await?;
    }
    Ok(())
}
