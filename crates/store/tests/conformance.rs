//! The store conformance suite: every scenario is written once against `Arc<dyn Store>`
//! and run on each backend (`sqlite::…` and `postgres::…` tests).
//!
//! SQLite: a fresh database file per test in the temp directory.
//! PostgreSQL: a throwaway database per test on the server named by
//! `SEGMENTD_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped afterwards. An unreachable server fails the test when `CI` is set and is
//! reported as `SKIPPED postgres: …` otherwise.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use segmentd_rules::{FieldType, FieldValue, SystemEventKind};
use segmentd_store::*;
use serde_json::json;
use sqlx::Connection;

// ---------------------------------------------------------------------------------------
// Harness: `segmentd_store::testing` runs each scenario on a fresh store of one backend.

use segmentd_store::testing::{Backend, Ctx, run, unique_name, visible};

/// Declares each scenario as a test in `mod sqlite` and in `mod postgres`.
macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::run(super::Backend::Sqlite, stringify!($scenario), super::$scenario).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::run(super::Backend::Postgres, stringify!($scenario), super::$scenario).await;
                }
            )*
        }
    };
}

conformance!(
    accounts_are_created_listed_and_found_by_api_key_hash,
    fields_are_listed_by_key_and_a_taken_key_conflicts,
    field_values_of_every_type_round_trip,
    deleting_a_field_removes_its_values_from_every_contact,
    upsert_creates_contacts_then_patches_only_what_it_names,
    the_same_external_id_twice_in_a_batch_applies_in_order,
    a_batch_of_ten_thousand_contacts_is_stored_in_one_call,
    contacts_are_paged_by_external_id_in_byte_order,
    deleting_a_contact_removes_its_events,
    events_of_all_three_kinds_round_trip_with_millisecond_timestamps,
    duplicate_client_ids_are_counted_and_the_first_event_stays,
    an_event_batch_naming_unknown_contacts_stores_nothing,
    a_batch_of_ten_thousand_events_is_stored_in_one_call,
    a_contacts_timeline_spans_every_stored_event_and_goes_with_the_contact,
    empty_batches_store_nothing,
    segments_are_created_read_updated_and_deleted,
    segment_names_conflict_case_insensitively,
    segments_are_searched_by_case_insensitive_substring,
    one_account_cannot_see_or_change_another_accounts_data,
    concurrent_writers_keep_every_constraint,
    data_survives_reopening_the_store,
    contacts_are_found_by_ids_and_external_ids_in_the_order_asked,
    membership_changes_are_logged_paged_bucketed_and_replayed,
    // Users and sessions.
    users_are_created_and_found_by_email_in_any_case,
    a_taken_email_conflicts_in_any_account_and_case,
    sessions_are_found_until_they_expire_or_are_deleted,
    a_session_cannot_name_a_user_of_another_account,
    one_accounts_users_and_sessions_are_its_own,
    sign_in_failures_are_counted_in_a_window_and_forgotten_after_it,
    an_idle_session_ends_and_use_keeps_it_alive,
    // Campaigns.
    a_campaign_is_frozen_once_with_its_recipients_and_each_status_is_kept,
    scheduled_campaigns_are_due_only_at_their_time_and_secrets_are_kept,
    freezing_from_contact_ids_stores_the_reachable_ones_at_their_channels_address,
    a_freeze_of_twenty_thousand_contact_ids_is_stored_in_chunks_and_paged_back,
    recipients_are_paged_by_external_id_in_byte_order,
    delivery_claims_due_recipients_records_outcomes_and_retries_later,
    campaigns_move_only_through_their_allowed_transitions,
    engagement_counts_once_per_recipient_and_activity_is_kept_per_hour,
    contacts_are_found_by_exact_email_or_phone,
    // Replaying after an index snapshot.
    the_since_reads_return_exactly_what_was_written_after_a_watermark,
    events_after_a_watermark_all_come_back_when_deleted_newest_ids_are_given_again,
    a_watermark_on_an_account_that_has_nothing_reads_nothing,
    the_changes_logged_after_a_watermark_come_back_for_that_account_only,
    // CSV imports.
    an_import_moves_from_uploaded_to_running_once_and_ends_with_its_figures,
);

// ---------------------------------------------------------------------------------------
// Helpers.

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

fn contact(external_id: &str) -> ContactUpsert {
    ContactUpsert {
        external_id: external_id.to_owned(),
        ..ContactUpsert::default()
    }
}

fn field(key: &str, field_type: FieldType) -> FieldDef {
    FieldDef {
        key: key.to_owned(),
        label: format!("The {key}"),
        field_type,
    }
}

fn system(contact: &str, client_id: Option<&str>, ms: i64, kind: SystemEventKind) -> NewEvent {
    NewEvent {
        client_id: client_id.map(str::to_owned),
        contact: contact.to_owned(),
        timestamp: ts(ms),
        body: EventBody::System {
            kind,
            campaign: Some("spring".to_owned()),
            url: None,
        },
    }
}

fn custom(
    contact: &str,
    client_id: Option<&str>,
    ms: i64,
    name: &str,
    properties: serde_json::Value,
) -> NewEvent {
    NewEvent {
        client_id: client_id.map(str::to_owned),
        contact: contact.to_owned(),
        timestamp: ts(ms),
        body: EventBody::Custom {
            name: name.to_owned(),
            properties: properties.as_object().unwrap().clone(),
        },
    }
}

fn visit(contact: &str, client_id: Option<&str>, ms: i64, url: &str) -> NewEvent {
    NewEvent {
        client_id: client_id.map(str::to_owned),
        contact: contact.to_owned(),
        timestamp: ts(ms),
        body: EventBody::Visit {
            url: url.to_owned(),
        },
    }
}

fn draft(name: &str) -> SegmentDraft {
    SegmentDraft {
        name: name.to_owned(),
        description: format!("about {name}"),
        rule: json!({"all": [{"field": "email", "op": "has_value"}]}),
    }
}

async fn account(store: &Arc<dyn Store>, name: &str) -> Account {
    store.create_account(name, "Europe/Warsaw").await.unwrap()
}

async fn get(store: &Arc<dyn Store>, account: &Account, external_id: &str) -> Contact {
    store
        .contact(account.id, external_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("contact {external_id:?} should exist"))
}

/// External id -> stored id of those of `names` that exist.
async fn id_map(
    store: &Arc<dyn Store>,
    account: &Account,
    names: &[String],
) -> std::collections::HashMap<String, ContactId> {
    store
        .contacts_by_external_ids(account.id, names)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.external_id, c.id))
        .collect()
}

fn ids(contacts: &[Contact]) -> Vec<&str> {
    contacts.iter().map(|c| c.external_id.as_str()).collect()
}

fn client_ids(events: &[StoredEvent]) -> Vec<Option<&str>> {
    events.iter().map(|e| e.client_id.as_deref()).collect()
}

// ---------------------------------------------------------------------------------------
// Scenarios.

async fn accounts_are_created_listed_and_found_by_api_key_hash(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = s.create_account("Beta", "America/New_York").await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(b.time_zone, "America/New_York");

    assert_eq!(s.account(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.account(b.id + 1000).await.unwrap(), None);
    assert_eq!(s.accounts().await.unwrap(), vec![a.clone(), b.clone()]);

    s.add_api_key(a.id, "aaaa").await.unwrap();
    s.add_api_key(a.id, "aaab").await.unwrap();
    s.add_api_key(b.id, "bbbb").await.unwrap();
    assert_eq!(s.account_by_api_key("aaaa").await.unwrap(), Some(a.clone()));
    assert_eq!(s.account_by_api_key("aaab").await.unwrap(), Some(a.clone()));
    assert_eq!(s.account_by_api_key("bbbb").await.unwrap(), Some(b.clone()));
    assert_eq!(s.account_by_api_key("cccc").await.unwrap(), None);
    assert_eq!(s.account_by_api_key("AAAA").await.unwrap(), None);

    // A hash belongs to one account only.
    let err = s.add_api_key(b.id, "aaaa").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(s.account_by_api_key("aaaa").await.unwrap(), Some(a));
}

async fn fields_are_listed_by_key_and_a_taken_key_conflicts(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    assert_eq!(s.fields(a.id).await.unwrap(), vec![]);
    s.create_field(a.id, &field("zip", FieldType::Text))
        .await
        .unwrap();
    s.create_field(a.id, &field("age", FieldType::Number))
        .await
        .unwrap();
    s.create_field(a.id, &field("birthday", FieldType::Date))
        .await
        .unwrap();
    s.create_field(a.id, &field("vip", FieldType::Boolean))
        .await
        .unwrap();
    assert_eq!(
        s.fields(a.id).await.unwrap(),
        vec![
            field("age", FieldType::Number),
            field("birthday", FieldType::Date),
            field("vip", FieldType::Boolean),
            field("zip", FieldType::Text),
        ]
    );

    let err = s
        .create_field(a.id, &field("age", FieldType::Text))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(what) => assert!(what.contains("age"), "{what}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The first definition is untouched.
    assert_eq!(
        s.fields(a.id).await.unwrap()[0],
        field("age", FieldType::Number)
    );

    assert!(s.delete_field(a.id, "zip").await.unwrap());
    assert!(!s.delete_field(a.id, "zip").await.unwrap());
    assert!(!s.delete_field(a.id, "never").await.unwrap());
    assert_eq!(s.fields(a.id).await.unwrap().len(), 3);
    // A deleted key can be declared again, with another type.
    s.create_field(a.id, &field("zip", FieldType::Number))
        .await
        .unwrap();
}

async fn field_values_of_every_type_round_trip(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    s.create_field(a.id, &field("name", FieldType::Text))
        .await
        .unwrap();
    s.create_field(a.id, &field("score", FieldType::Number))
        .await
        .unwrap();
    s.create_field(a.id, &field("born", FieldType::Date))
        .await
        .unwrap();
    s.create_field(a.id, &field("vip", FieldType::Boolean))
        .await
        .unwrap();

    let values = BTreeMap::from([
        (
            "name".to_owned(),
            FieldValue::Text("Zoë \"quoted\" \\ ☃ 日本".to_owned()),
        ),
        ("score".to_owned(), FieldValue::Number(-1234.5678e-3)),
        (
            "born".to_owned(),
            FieldValue::Date("2024-02-29".parse().unwrap()),
        ),
        ("vip".to_owned(), FieldValue::Boolean(false)),
    ]);
    let mut c = contact("c1");
    c.fields = values
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    let mut big = contact("c2");
    big.fields.insert(
        "score".to_owned(),
        Some(FieldValue::Number(1.7976931348623157e308)),
    );
    big.fields
        .insert("vip".to_owned(), Some(FieldValue::Boolean(true)));
    s.upsert_contacts(a.id, &[c, big]).await.unwrap();

    assert_eq!(get(s, &a, "c1").await.fields, values);
    let c2 = get(s, &a, "c2").await;
    assert_eq!(c2.fields["score"], FieldValue::Number(f64::MAX));
    assert_eq!(c2.fields["vip"], FieldValue::Boolean(true));
    assert_eq!(c2.fields.len(), 2);
}

async fn deleting_a_field_removes_its_values_from_every_contact(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Beta").await;
    for acc in [&a, &b] {
        s.create_field(acc.id, &field("age", FieldType::Number))
            .await
            .unwrap();
        s.create_field(acc.id, &field("city", FieldType::Text))
            .await
            .unwrap();
    }
    let batch: Vec<ContactUpsert> = (0..50)
        .map(|i| {
            let mut c = contact(&format!("c{i}"));
            c.fields
                .insert("age".to_owned(), Some(FieldValue::Number(f64::from(i))));
            c.fields.insert(
                "city".to_owned(),
                Some(FieldValue::Text("Kra\u{0}ków".to_owned())),
            );
            c
        })
        .collect();
    s.upsert_contacts(a.id, &batch).await.unwrap();
    s.upsert_contacts(b.id, &batch).await.unwrap();

    assert!(s.delete_field(a.id, "age").await.unwrap());
    for c in s.all_contacts(a.id).await.unwrap() {
        assert_eq!(
            c.fields.keys().collect::<Vec<_>>(),
            ["city"],
            "{}",
            c.external_id
        );
    }
    // The other account keeps its field and values.
    for c in s.all_contacts(b.id).await.unwrap() {
        assert_eq!(c.fields.len(), 2);
    }

    // Declared again with another type, the field starts empty: no stale value is read
    // back (nor fails to parse).
    s.create_field(a.id, &field("age", FieldType::Text))
        .await
        .unwrap();
    let c = get(s, &a, "c7").await;
    assert_eq!(c.fields.get("age"), None);
    let mut patch = contact("c7");
    patch
        .fields
        .insert("age".to_owned(), Some(FieldValue::Text("seven".to_owned())));
    s.upsert_contacts(a.id, &[patch]).await.unwrap();
    assert_eq!(
        get(s, &a, "c7").await.fields["age"],
        FieldValue::Text("seven".to_owned())
    );
}

async fn upsert_creates_contacts_then_patches_only_what_it_names(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    s.create_field(a.id, &field("age", FieldType::Number))
        .await
        .unwrap();
    s.create_field(a.id, &field("city", FieldType::Text))
        .await
        .unwrap();

    // A bare contact: nothing set.
    assert_eq!(
        s.upsert_contacts(a.id, &[contact("bare")]).await.unwrap(),
        1
    );
    let bare = get(s, &a, "bare").await;
    assert_eq!(bare.email, None);
    assert_eq!(bare.phone, None);
    assert_eq!(bare.email_status, None);
    assert_eq!(bare.effective_email_status(), None);
    assert_eq!(bare.push_tokens, Vec::<String>::new());
    assert!(bare.fields.is_empty());

    let mut full = contact("full");
    full.email = Patch::Set("ann@example.com".to_owned());
    full.phone = Patch::Set("+48123456789".to_owned());
    full.email_status = Patch::Set(EmailStatus::Bounced);
    full.sms_status = Patch::Set(SmsStatus::Unsubscribed);
    full.push_tokens = Patch::Set(vec!["tok1".to_owned(), "tok2".to_owned()]);
    full.fields
        .insert("age".to_owned(), Some(FieldValue::Number(41.0)));
    full.fields
        .insert("city".to_owned(), Some(FieldValue::Text("Łódź".to_owned())));
    assert_eq!(s.upsert_contacts(a.id, &[full]).await.unwrap(), 1);
    let created = get(s, &a, "full").await;
    assert_eq!(created.external_id, "full");
    assert_eq!(created.email.as_deref(), Some("ann@example.com"));
    assert_eq!(created.phone.as_deref(), Some("+48123456789"));
    assert_eq!(created.email_status, Some(EmailStatus::Bounced));
    assert_eq!(created.sms_status, Some(SmsStatus::Unsubscribed));
    assert_eq!(created.push_tokens, ["tok1", "tok2"]);
    assert_eq!(created.fields["age"], FieldValue::Number(41.0));
    assert_eq!(created.fields["city"], FieldValue::Text("Łódź".to_owned()));

    // Keep everything: nothing changes, the id stays.
    s.upsert_contacts(a.id, &[contact("full")]).await.unwrap();
    assert_eq!(get(s, &a, "full").await, created);

    // Set some, clear others, keep the rest.
    let mut patch = contact("full");
    patch.email = Patch::Set("ann@new.example".to_owned());
    patch.phone = Patch::Clear;
    patch.email_status = Patch::Clear;
    patch.push_tokens = Patch::Set(vec!["tok3".to_owned()]);
    patch.fields.insert("age".to_owned(), None);
    s.upsert_contacts(a.id, &[patch]).await.unwrap();
    let patched = get(s, &a, "full").await;
    assert_eq!(patched.id, created.id);
    assert_eq!(patched.email.as_deref(), Some("ann@new.example"));
    assert_eq!(patched.phone, None);
    assert_eq!(patched.email_status, None);
    assert_eq!(
        patched.effective_email_status(),
        Some(EmailStatus::Subscribed)
    );
    assert_eq!(patched.sms_status, Some(SmsStatus::Unsubscribed));
    assert_eq!(patched.effective_sms_status(), None);
    assert_eq!(patched.push_tokens, ["tok3"]);
    assert_eq!(patched.fields.get("age"), None);
    assert_eq!(patched.fields["city"], FieldValue::Text("Łódź".to_owned()));

    let mut clear = contact("full");
    clear.email = Patch::Clear;
    clear.sms_status = Patch::Set(SmsStatus::Subscribed);
    clear.push_tokens = Patch::Clear;
    clear.fields.insert("city".to_owned(), None);
    s.upsert_contacts(a.id, &[clear]).await.unwrap();
    let cleared = get(s, &a, "full").await;
    assert_eq!(cleared.email, None);
    assert_eq!(cleared.sms_status, Some(SmsStatus::Subscribed));
    assert!(cleared.push_tokens.is_empty());
    assert!(cleared.fields.is_empty());

    // The other contact was never touched.
    assert_eq!(get(s, &a, "bare").await, bare);
    assert_eq!(s.contact(a.id, "nobody").await.unwrap(), None);
}

async fn the_same_external_id_twice_in_a_batch_applies_in_order(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    s.create_field(a.id, &field("age", FieldType::Number))
        .await
        .unwrap();
    s.create_field(a.id, &field("city", FieldType::Text))
        .await
        .unwrap();

    let mut first = contact("dup");
    first.email = Patch::Set("first@example.com".to_owned());
    first.phone = Patch::Set("+1".to_owned());
    first
        .fields
        .insert("age".to_owned(), Some(FieldValue::Number(1.0)));
    first
        .fields
        .insert("city".to_owned(), Some(FieldValue::Text("Oslo".to_owned())));
    let mut second = contact("dup");
    second.email = Patch::Set("second@example.com".to_owned());
    second
        .fields
        .insert("age".to_owned(), Some(FieldValue::Number(2.0)));
    let mut third = contact("dup");
    third.phone = Patch::Clear;
    let n = s
        .upsert_contacts(a.id, &[first, contact("other"), second, third])
        .await
        .unwrap();
    assert_eq!(n, 4);

    let all = s.all_contacts(a.id).await.unwrap();
    assert_eq!(ids(&all), ["dup", "other"]);
    let dup = get(s, &a, "dup").await;
    assert_eq!(dup.email.as_deref(), Some("second@example.com"));
    assert_eq!(dup.phone, None);
    assert_eq!(dup.fields["age"], FieldValue::Number(2.0));
    assert_eq!(dup.fields["city"], FieldValue::Text("Oslo".to_owned()));

    // Also when the contact already exists before the batch.
    let mut a1 = contact("dup");
    a1.fields.insert("city".to_owned(), None);
    let mut a2 = contact("dup");
    a2.fields
        .insert("age".to_owned(), Some(FieldValue::Number(3.0)));
    s.upsert_contacts(a.id, &[a1, a2]).await.unwrap();
    let dup = get(s, &a, "dup").await;
    assert_eq!(dup.fields.len(), 1);
    assert_eq!(dup.fields["age"], FieldValue::Number(3.0));
    assert_eq!(dup.email.as_deref(), Some("second@example.com"));
}

async fn a_batch_of_ten_thousand_contacts_is_stored_in_one_call(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    s.create_field(a.id, &field("n", FieldType::Number))
        .await
        .unwrap();
    s.create_field(a.id, &field("tag", FieldType::Text))
        .await
        .unwrap();
    let batch: Vec<ContactUpsert> = (0..10_000)
        .map(|i| {
            let mut c = contact(&format!("contact-{i:05}"));
            c.email = Patch::Set(format!("user{i}@example.com"));
            c.phone = Patch::Set(format!("+4860{i:07}"));
            c.push_tokens = Patch::Set(vec![format!("token-{i}")]);
            c.fields
                .insert("n".to_owned(), Some(FieldValue::Number(f64::from(i))));
            c.fields.insert(
                "tag".to_owned(),
                Some(FieldValue::Text(format!("tag {}", i % 7))),
            );
            c
        })
        .collect();
    let started = Instant::now();
    assert_eq!(s.upsert_contacts(a.id, &batch).await.unwrap(), 10_000);
    let created = started.elapsed();

    // Again, as updates of every row.
    let updates: Vec<ContactUpsert> = (0..10_000)
        .map(|i| {
            let mut c = contact(&format!("contact-{i:05}"));
            c.fields
                .insert("n".to_owned(), Some(FieldValue::Number(f64::from(i) + 0.5)));
            c
        })
        .collect();
    let started = Instant::now();
    assert_eq!(s.upsert_contacts(a.id, &updates).await.unwrap(), 10_000);
    let updated = started.elapsed();
    visible(&format!(
        "{}: 10,000 contacts created in {created:?}, updated in {updated:?}",
        s.backend()
    ));
    assert!(
        created < Duration::from_secs(20),
        "creating took {created:?}"
    );
    assert!(
        updated < Duration::from_secs(20),
        "updating took {updated:?}"
    );

    let all = s.all_contacts(a.id).await.unwrap();
    assert_eq!(all.len(), 10_000);
    let c = &all[1234];
    assert_eq!(c.external_id, "contact-01234");
    assert_eq!(c.email.as_deref(), Some("user1234@example.com"));
    assert_eq!(c.push_tokens, ["token-1234"]);
    assert_eq!(c.fields["n"], FieldValue::Number(1234.5));
    assert_eq!(c.fields["tag"], FieldValue::Text("tag 2".to_owned()));
}

async fn contacts_are_paged_by_external_id_in_byte_order(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    // Byte order: uppercase before lowercase, digits before letters, non-ASCII last.
    let names = ["b", "B", "a", "é", "10", "9", "a b", "ab", "z", "Ω", "_"];
    let batch: Vec<ContactUpsert> = names.iter().map(|n| contact(n)).collect();
    s.upsert_contacts(a.id, &batch).await.unwrap();
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));

    assert_eq!(ids(&s.all_contacts(a.id).await.unwrap()), expected);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.contacts_page(a.id, cursor.as_deref(), 3).await.unwrap();
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        cursor = Some(page.last().unwrap().external_id.clone());
        seen.extend(page.into_iter().map(|c| c.external_id));
    }
    assert_eq!(seen, expected);

    // The cursor need not be an existing id.
    let after_a = s.contacts_page(a.id, Some("aa"), 100).await.unwrap();
    assert_eq!(ids(&after_a), ["ab", "b", "z", "é", "Ω"]);
    assert!(
        s.contacts_page(a.id, Some("Ω"), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.contacts_page(a.id, None, 1).await.unwrap()[0].external_id,
        "10"
    );
}

async fn deleting_a_contact_removes_its_events(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    s.upsert_contacts(a.id, &[contact("gone"), contact("stays")])
        .await
        .unwrap();
    let gone = get(s, &a, "gone").await;
    let stays = get(s, &a, "stays").await;
    let out = s
        .insert_events(
            a.id,
            &[
                system("gone", Some("e1"), 1_000, SystemEventKind::MailOpen),
                custom("gone", Some("e2"), 2_000, "purchase", json!({"total": 10})),
                visit("gone", None, 3_000, "https://example.com/"),
                visit("stays", Some("e4"), 4_000, "https://example.com/pricing"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.accepted, 4);

    assert!(s.delete_contact(a.id, "gone").await.unwrap());
    assert!(!s.delete_contact(a.id, "gone").await.unwrap());
    assert!(!s.delete_contact(a.id, "never").await.unwrap());
    assert_eq!(s.contact(a.id, "gone").await.unwrap(), None);
    assert!(s.contact_events(a.id, gone.id).await.unwrap().is_empty());
    let left = s.all_events(a.id).await.unwrap();
    assert_eq!(client_ids(&left), [Some("e4")]);
    assert_eq!(left[0].contact_id, stays.id);

    // The client ids of deleted events are free again; the same external id makes a
    // new contact without the old events.
    s.upsert_contacts(a.id, &[contact("gone")]).await.unwrap();
    let again = get(s, &a, "gone").await;
    assert!(s.contact_events(a.id, again.id).await.unwrap().is_empty());
    let out = s
        .insert_events(
            a.id,
            &[system(
                "gone",
                Some("e1"),
                5_000,
                SystemEventKind::MailClick,
            )],
        )
        .await
        .unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 0));
}

async fn events_of_all_three_kinds_round_trip_with_millisecond_timestamps(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    s.upsert_contacts(a.id, &[contact("ann"), contact("bob")])
        .await
        .unwrap();
    let ann = get(s, &a, "ann").await;
    let bob = get(s, &a, "bob").await;

    let fine: Timestamp = "2024-03-10T12:34:56.789987654Z".parse().unwrap();
    let properties = json!({
        "total": 12.5,
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
        "coupon": null,
        "gift": false,
        "note": "zażółć \"gęślą\" jaźń \u{0001}",
        "nested": {"deep": {"deeper": [1, 2, 3]}},
        "big": 12345678901234567_i64,
    });
    let mut batch = vec![
        NewEvent {
            client_id: Some("sys-1".to_owned()),
            contact: "ann".to_owned(),
            timestamp: fine,
            body: EventBody::System {
                kind: SystemEventKind::MailClick,
                campaign: Some("spring-sale".to_owned()),
                url: Some("https://example.com/sale?x=1&y=2".to_owned()),
            },
        },
        custom(
            "bob",
            Some("cus-1"),
            1_700_000_000_123,
            "purchase",
            properties.clone(),
        ),
        visit(
            "ann",
            None,
            1_700_000_000_456,
            "https://example.com/pricing",
        ),
        custom("ann", None, 1_700_000_000_999, "login", json!({})),
    ];
    for (i, kind) in SystemEventKind::ALL.into_iter().enumerate() {
        let mut e = system("bob", None, 1_000 + i as i64, kind);
        e.body = EventBody::System {
            kind,
            campaign: None,
            url: None,
        };
        batch.push(e);
    }
    let out = s.insert_events(a.id, &batch).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (8, 0));

    let all = s.all_events(a.id).await.unwrap();
    assert_eq!(all.len(), 8);
    // Arrival order, and every item as written except the cut timestamp.
    for (stored, sent) in all.iter().zip(&batch) {
        assert_eq!(stored.client_id, sent.client_id);
        assert_eq!(stored.body, sent.body);
        let want = if sent.contact == "ann" {
            ann.id
        } else {
            bob.id
        };
        assert_eq!(stored.contact_id, want);
    }
    assert_eq!(
        all[0].timestamp,
        "2024-03-10T12:34:56.789Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(all[1].timestamp, ts(1_700_000_000_123));
    match &all[1].body {
        EventBody::Custom { properties: p, .. } => {
            // Equal as JSON; key order is not kept (docs/semantics.md).
            assert_eq!(serde_json::Value::Object(p.clone()), properties);
        }
        other => panic!("expected a custom event, got {other:?}"),
    }

    let anns = s.contact_events(a.id, ann.id).await.unwrap();
    assert_eq!(anns.len(), 3);
    assert!(matches!(
        anns[0].body,
        EventBody::System {
            kind: SystemEventKind::MailClick,
            ..
        }
    ));
    assert!(matches!(anns[1].body, EventBody::Visit { .. }));
    assert!(matches!(&anns[2].body, EventBody::Custom { name, .. } if name == "login"));
    let bobs = s.contact_events(a.id, bob.id).await.unwrap();
    assert_eq!(bobs.len(), 5);
    assert_eq!(bobs[1].timestamp, ts(1_000));
}

async fn duplicate_client_ids_are_counted_and_the_first_event_stays(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    s.upsert_contacts(a.id, &[contact("ann"), contact("bob")])
        .await
        .unwrap();

    let out = s
        .insert_events(
            a.id,
            &[
                system("ann", Some("x1"), 1_000, SystemEventKind::MailOpen),
                system("ann", Some("x2"), 2_000, SystemEventKind::MailOpen),
                // Earlier in the same batch, of another kind and contact: a duplicate.
                visit("bob", Some("x1"), 3_000, "https://example.com/"),
                system("ann", None, 4_000, SystemEventKind::MailOpen),
                system("ann", None, 4_000, SystemEventKind::MailOpen),
            ],
        )
        .await
        .unwrap();
    assert_eq!((out.accepted, out.duplicates), (4, 1));

    let out = s
        .insert_events(
            a.id,
            &[
                // Already stored.
                custom("bob", Some("x2"), 5_000, "purchase", json!({})),
                custom("bob", Some("x3"), 6_000, "purchase", json!({})),
                custom("bob", Some("x3"), 7_000, "purchase", json!({})),
                custom("bob", Some("x1"), 8_000, "purchase", json!({})),
            ],
        )
        .await
        .unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 3));

    let all = s.all_events(a.id).await.unwrap();
    assert_eq!(
        client_ids(&all),
        [Some("x1"), Some("x2"), None, None, Some("x3")]
    );
    assert!(matches!(all[0].body, EventBody::System { .. }));
    assert_eq!(all[0].timestamp, ts(1_000));
    assert_eq!(all[4].timestamp, ts(6_000));

    // Client ids are per account: another account may use the same ones.
    let b = account(s, "Beta").await;
    s.upsert_contacts(b.id, &[contact("ann")]).await.unwrap();
    let out = s
        .insert_events(
            b.id,
            &[system("ann", Some("x1"), 1_000, SystemEventKind::MailOpen)],
        )
        .await
        .unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 0));
}

async fn an_event_batch_naming_unknown_contacts_stores_nothing(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Beta").await;
    s.upsert_contacts(a.id, &[contact("ann")]).await.unwrap();
    // Known in another account only: still unknown here.
    s.upsert_contacts(b.id, &[contact("carl")]).await.unwrap();
    s.insert_events(
        a.id,
        &[system("ann", Some("old"), 500, SystemEventKind::MailOpen)],
    )
    .await
    .unwrap();

    let err = s
        .insert_events(
            a.id,
            &[
                system("ann", Some("n1"), 1_000, SystemEventKind::MailOpen),
                visit("nobody", None, 2_000, "https://example.com/"),
                custom("ann", Some("n2"), 3_000, "x", json!({})),
                custom("carl", None, 4_000, "x", json!({})),
                visit("nobody", None, 5_000, "https://example.com/"),
            ],
        )
        .await
        .unwrap_err();
    match err {
        StoreError::UnknownContacts(indexes) => assert_eq!(indexes, [1, 3, 4]),
        other => panic!("expected UnknownContacts, got {other:?}"),
    }
    assert_eq!(
        client_ids(&s.all_events(a.id).await.unwrap()),
        [Some("old")]
    );
    assert!(s.all_events(b.id).await.unwrap().is_empty());
    // Nothing was taken: the client ids of the refused batch are still free.
    let out = s
        .insert_events(
            a.id,
            &[system("ann", Some("n1"), 1_000, SystemEventKind::MailOpen)],
        )
        .await
        .unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 0));
}

/// 70,000 events cross the SQLite store's 65,536-event index buckets (migration 0005):
/// a timeline must read every bucket, and deleting a contact must empty all of them.
async fn a_contacts_timeline_spans_every_stored_event_and_goes_with_the_contact(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let names = ["ann", "bob", "cy"];
    let contacts: Vec<ContactUpsert> = names.iter().map(|n| contact(n)).collect();
    s.upsert_contacts(a.id, &contacts).await.unwrap();
    for start in (0..70_000).step_by(10_000) {
        let batch: Vec<NewEvent> = (start..start + 10_000)
            .map(|i| visit(names[(i % 3) as usize], None, i, "https://example.com/"))
            .collect();
        s.insert_events(a.id, &batch).await.unwrap();
    }
    let ids = id_map(s, &a, &names.map(str::to_owned)).await;
    for (k, name) in names.iter().enumerate() {
        let timeline = s.contact_events(a.id, ids[*name]).await.unwrap();
        let expected: Vec<Timestamp> = (0..70_000).filter(|i| i % 3 == k as i64).map(ts).collect();
        let got: Vec<Timestamp> = timeline.iter().map(|e| e.timestamp).collect();
        assert_eq!(got.len(), expected.len(), "{name}");
        assert_eq!(got, expected, "{name}: in arrival order");
    }
    assert!(s.delete_contact(a.id, "bob").await.unwrap());
    assert!(s.contact_events(a.id, ids["bob"]).await.unwrap().is_empty());
    assert_eq!(s.all_events(a.id).await.unwrap().len(), 70_000 - 23_333);
    assert_eq!(
        s.contact_events(a.id, ids["ann"]).await.unwrap().len(),
        23_334
    );
    assert!(!s.delete_contact(a.id, "bob").await.unwrap());
}

async fn a_batch_of_ten_thousand_events_is_stored_in_one_call(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let contacts: Vec<ContactUpsert> = (0..1_000).map(|i| contact(&format!("c{i}"))).collect();
    s.upsert_contacts(a.id, &contacts).await.unwrap();
    let batch: Vec<NewEvent> = (0..10_000)
        .map(|i| {
            let who = format!("c{}", i % 1_000);
            let id = format!("ev-{i}");
            match i % 3 {
                0 => system(&who, Some(&id), i, SystemEventKind::MailOpen),
                1 => custom(&who, Some(&id), i, "purchase", json!({"n": i})),
                _ => visit(&who, None, i, "https://example.com/"),
            }
        })
        .collect();
    let started = Instant::now();
    let out = s.insert_events(a.id, &batch).await.unwrap();
    let first = started.elapsed();
    assert_eq!((out.accepted, out.duplicates), (10_000, 0));
    // Each event's contact comes back resolved, in batch order, for the caller's index.
    let names: Vec<String> = (0..1_000).map(|i| format!("c{i}")).collect();
    let ids = id_map(s, &a, &names).await;
    let expected: Vec<_> = batch.iter().map(|e| ids[&e.contact]).collect();
    assert_eq!(out.contacts, expected);
    let started = Instant::now();
    let out = s.insert_events(a.id, &batch).await.unwrap();
    let again = started.elapsed();
    // Visits carry no client id, so they are stored again.
    assert_eq!((out.accepted, out.duplicates), (3_333, 6_667));
    assert_eq!(out.contacts, expected);
    visible(&format!(
        "{}: 10,000 events inserted in {first:?}, re-sent in {again:?}",
        s.backend()
    ));
    assert!(first < Duration::from_secs(20), "inserting took {first:?}");

    let all = s.all_events(a.id).await.unwrap();
    assert_eq!(all.len(), 13_333);
    assert_eq!(all[9_999].timestamp, ts(9_999));
    assert_eq!(all[10_000].timestamp, ts(2));
}

async fn empty_batches_store_nothing(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    assert_eq!(s.upsert_contacts(a.id, &[]).await.unwrap(), 0);
    assert_eq!(
        s.insert_events(a.id, &[]).await.unwrap(),
        InsertOutcome::default()
    );
    assert!(s.all_contacts(a.id).await.unwrap().is_empty());
    assert!(s.all_events(a.id).await.unwrap().is_empty());
}

async fn segments_are_created_read_updated_and_deleted(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let t1 = ts(1_700_000_000_000);
    let t2 = ts(1_700_000_100_000);
    let rule = json!({"any": [{"all": [{"field": "age", "op": "gt", "value": 18}]}, {"segment": 7, "op": "in"}]});
    let created = s
        .create_segment(
            a.id,
            &SegmentDraft {
                name: "Adults".to_owned(),
                description: String::new(),
                rule: rule.clone(),
            },
            t1,
        )
        .await
        .unwrap();
    assert_eq!(created.name, "Adults");
    assert_eq!(created.description, "");
    assert_eq!(created.rule, rule);
    assert_eq!(created.created_at, t1);
    assert_eq!(created.updated_at, t1);
    // Canonical JSON comes back with its key order.
    assert_eq!(created.rule.to_string(), rule.to_string());
    assert_eq!(
        s.segment(a.id, created.id).await.unwrap(),
        Some(created.clone())
    );

    let other = s.create_segment(a.id, &draft("Buyers"), t1).await.unwrap();
    assert_ne!(other.id, created.id);

    let updated = s
        .update_segment(a.id, created.id, &draft("Grown-ups"), t2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.name, "Grown-ups");
    assert_eq!(updated.description, "about Grown-ups");
    assert_eq!(updated.rule, draft("x").rule);
    assert_eq!(updated.created_at, t1);
    assert_eq!(updated.updated_at, t2);
    assert_eq!(
        s.segment(a.id, created.id).await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(
        s.segments(a.id, None).await.unwrap(),
        vec![updated.clone(), other.clone()]
    );

    assert_eq!(
        s.update_segment(a.id, 999_999, &draft("Ghost"), t2)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.segment(a.id, 999_999).await.unwrap(), None);

    assert!(s.delete_segment(a.id, created.id).await.unwrap());
    assert!(!s.delete_segment(a.id, created.id).await.unwrap());
    assert_eq!(s.segment(a.id, created.id).await.unwrap(), None);
    assert_eq!(s.segments(a.id, None).await.unwrap(), vec![other]);
    // A freed name can be taken again.
    s.create_segment(a.id, &draft("grown-ups"), t2)
        .await
        .unwrap();
}

async fn segment_names_conflict_case_insensitively(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let now = ts(1_700_000_000_000);
    let vip = s.create_segment(a.id, &draft("VIP"), now).await.unwrap();
    for taken in ["VIP", "vip", "Vip"] {
        let err = s
            .create_segment(a.id, &draft(taken), now)
            .await
            .unwrap_err();
        match err {
            StoreError::Conflict(what) => assert!(what.contains("segment name"), "{what}"),
            other => panic!("expected a conflict for {taken:?}, got {other:?}"),
        }
    }
    // Non-ASCII letters are folded too.
    s.create_segment(a.id, &draft("Łódź Fans"), now)
        .await
        .unwrap();
    assert!(matches!(
        s.create_segment(a.id, &draft("łÓDŹ fans"), now).await,
        Err(StoreError::Conflict(_))
    ));

    let other = s
        .create_segment(a.id, &draft("Regulars"), now)
        .await
        .unwrap();
    assert!(matches!(
        s.update_segment(a.id, other.id, &draft("vip"), now).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.segment(a.id, other.id).await.unwrap().unwrap().name,
        "Regulars"
    );
    // Renaming a segment to its own name in another case is fine.
    let renamed = s
        .update_segment(a.id, vip.id, &draft("vip"), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, "vip");
    assert_eq!(s.segments(a.id, None).await.unwrap().len(), 3);

    // Names are unique per account only.
    let b = account(s, "Beta").await;
    s.create_segment(b.id, &draft("VIP"), now).await.unwrap();
}

async fn segments_are_searched_by_case_insensitive_substring(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let now = ts(1_700_000_000_000);
    for name in [
        "VIP customers",
        "New customers",
        "Churned",
        "ŻÓŁW club",
        "100% active",
    ] {
        s.create_segment(a.id, &draft(name), now).await.unwrap();
    }
    let names = |v: Vec<Segment>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.segments(a.id, Some("CUSTOMER")).await.unwrap()),
        ["VIP customers", "New customers"]
    );
    assert_eq!(
        names(s.segments(a.id, Some("vip")).await.unwrap()),
        ["VIP customers"]
    );
    assert_eq!(
        names(s.segments(a.id, Some("żółw")).await.unwrap()),
        ["ŻÓŁW club"]
    );
    // Wildcards of SQL mean nothing here.
    assert_eq!(
        names(s.segments(a.id, Some("%")).await.unwrap()),
        ["100% active"]
    );
    assert!(s.segments(a.id, Some("_")).await.unwrap().is_empty());
    assert!(s.segments(a.id, Some("nothing")).await.unwrap().is_empty());
    assert_eq!(s.segments(a.id, Some("")).await.unwrap().len(), 5);
    assert_eq!(s.segments(a.id, None).await.unwrap().len(), 5);
}

async fn one_account_cannot_see_or_change_another_accounts_data(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Beta").await;
    let now = ts(1_700_000_000_000);

    s.create_field(a.id, &field("age", FieldType::Number))
        .await
        .unwrap();
    let mut c = contact("shared-id");
    c.email = Patch::Set("a@example.com".to_owned());
    c.fields
        .insert("age".to_owned(), Some(FieldValue::Number(30.0)));
    s.upsert_contacts(a.id, &[c, contact("only-a")])
        .await
        .unwrap();
    let a_contact = get(s, &a, "shared-id").await;
    s.insert_events(
        a.id,
        &[system(
            "shared-id",
            Some("ev"),
            1_000,
            SystemEventKind::MailOpen,
        )],
    )
    .await
    .unwrap();
    let a_segment = s.create_segment(a.id, &draft("Mine"), now).await.unwrap();
    s.add_api_key(a.id, "key-a").await.unwrap();

    // B sees none of it.
    assert!(s.fields(b.id).await.unwrap().is_empty());
    assert_eq!(s.contact(b.id, "shared-id").await.unwrap(), None);
    assert_eq!(s.contact(b.id, "only-a").await.unwrap(), None);
    assert!(s.all_contacts(b.id).await.unwrap().is_empty());
    assert!(s.contacts_page(b.id, None, 100).await.unwrap().is_empty());
    assert!(s.all_events(b.id).await.unwrap().is_empty());
    assert!(
        s.contact_events(b.id, a_contact.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.segment(b.id, a_segment.id).await.unwrap(), None);
    assert!(s.segments(b.id, None).await.unwrap().is_empty());
    assert!(s.segments(b.id, Some("Mine")).await.unwrap().is_empty());

    // B's deletes and updates of A's resources find nothing and change nothing.
    assert!(!s.delete_field(b.id, "age").await.unwrap());
    assert!(!s.delete_contact(b.id, "shared-id").await.unwrap());
    assert!(!s.delete_segment(b.id, a_segment.id).await.unwrap());
    assert_eq!(
        s.update_segment(b.id, a_segment.id, &draft("Stolen"), now)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        s.insert_events(b.id, &[system("shared-id", None, 1, SystemEventKind::MailOpen)]).await,
        Err(StoreError::UnknownContacts(i)) if i == [0]
    ));

    // B's own contact with the same external id is a different contact.
    let mut bc = contact("shared-id");
    bc.email = Patch::Set("b@example.com".to_owned());
    s.upsert_contacts(b.id, &[bc]).await.unwrap();
    let b_contact = get(s, &b, "shared-id").await;
    assert_ne!(b_contact.id, a_contact.id);
    assert!(b_contact.fields.is_empty());
    // B's same-named segment and field do not collide with A's.
    s.create_segment(b.id, &draft("mine"), now).await.unwrap();
    s.create_field(b.id, &field("age", FieldType::Text))
        .await
        .unwrap();
    assert_eq!(
        s.account_by_api_key("key-a").await.unwrap(),
        Some(a.clone())
    );

    // A is exactly as it was.
    assert_eq!(get(s, &a, "shared-id").await, a_contact);
    assert_eq!(
        get(s, &a, "shared-id").await.fields["age"],
        FieldValue::Number(30.0)
    );
    assert_eq!(
        ids(&s.all_contacts(a.id).await.unwrap()),
        ["only-a", "shared-id"]
    );
    assert_eq!(s.all_events(a.id).await.unwrap().len(), 1);
    assert_eq!(
        s.segment(a.id, a_segment.id).await.unwrap(),
        Some(a_segment)
    );
    assert_eq!(
        s.fields(a.id).await.unwrap(),
        vec![field("age", FieldType::Number)]
    );
    // Deleting B's field leaves A's values alone.
    assert!(s.delete_field(b.id, "age").await.unwrap());
    assert_eq!(
        get(s, &a, "shared-id").await.fields["age"],
        FieldValue::Number(30.0)
    );
}

async fn concurrent_writers_keep_every_constraint(ctx: Ctx) {
    const WRITERS: usize = 6;
    const CONTACTS: usize = 300;
    let s = ctx.store.clone();
    let a = account(&s, "Acme").await;
    for w in 0..WRITERS {
        s.create_field(a.id, &field(&format!("w{w}"), FieldType::Boolean))
            .await
            .unwrap();
    }
    s.upsert_contacts(a.id, &[contact("seed")]).await.unwrap();
    // A second instance on the same database: its own pool and its own migration run, as
    // a second segmentd process has. Half the writers go through it.
    let second = open(&ctx.url).await.unwrap();

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let s = if w % 2 == 0 {
            s.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0;
            let mut duplicates = 0;
            for round in 0..3 {
                // Every writer upserts the same contacts, each setting its own field.
                let batch: Vec<ContactUpsert> = (0..CONTACTS)
                    .map(|i| {
                        let mut c = contact(&format!("c{i:04}"));
                        c.fields
                            .insert(format!("w{w}"), Some(FieldValue::Boolean(round % 2 == 0)));
                        c
                    })
                    .collect();
                s.upsert_contacts(a.id, &batch).await.unwrap();
                // Every writer sends the same client ids.
                let events: Vec<NewEvent> = (0..100)
                    .map(|i| {
                        let id = format!("shared-{round}-{i}");
                        system("seed", Some(&id), i, SystemEventKind::MailOpen)
                    })
                    .collect();
                let out = s.insert_events(a.id, &events).await.unwrap();
                accepted += out.accepted;
                duplicates += out.duplicates;
            }
            (accepted, duplicates)
        }));
    }
    let mut accepted = 0;
    let mut duplicates = 0;
    for t in tasks {
        let (acc, dup) = t.await.unwrap();
        accepted += acc;
        duplicates += dup;
    }

    assert_eq!(
        accepted, 300,
        "each shared client id is accepted exactly once"
    );
    assert_eq!(duplicates, (WRITERS as u64 - 1) * 300);
    let events = s.all_events(a.id).await.unwrap();
    assert_eq!(events.len(), 300);
    let distinct: BTreeSet<_> = events.iter().map(|e| e.client_id.clone()).collect();
    assert_eq!(distinct.len(), 300);

    let all = s.all_contacts(a.id).await.unwrap();
    assert_eq!(all.len(), CONTACTS + 1, "no external id stored twice");
    let distinct: BTreeSet<_> = all.iter().map(|c| c.external_id.clone()).collect();
    assert_eq!(distinct.len(), CONTACTS + 1);
    // No writer's change was lost to another's read-merge-write.
    for c in all.iter().filter(|c| c.external_id != "seed") {
        assert_eq!(c.fields.len(), WRITERS, "{}: {:?}", c.external_id, c.fields);
        assert!(c.fields.values().all(|v| *v == FieldValue::Boolean(true)));
    }
}

async fn data_survives_reopening_the_store(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    s.create_field(a.id, &field("age", FieldType::Number))
        .await
        .unwrap();
    let mut c = contact("ann");
    c.fields
        .insert("age".to_owned(), Some(FieldValue::Number(5.0)));
    s.upsert_contacts(a.id, &[c]).await.unwrap();
    s.insert_events(a.id, &[visit("ann", Some("v"), 1, "https://example.com/")])
        .await
        .unwrap();
    let seg = s.create_segment(a.id, &draft("Kids"), ts(1)).await.unwrap();

    // A second store on the same database: migrations already applied, data all there.
    let again = open(&ctx.url).await.unwrap();
    assert_eq!(again.accounts().await.unwrap(), vec![a.clone()]);
    assert_eq!(
        again.contact(a.id, "ann").await.unwrap(),
        s.contact(a.id, "ann").await.unwrap()
    );
    assert_eq!(again.all_events(a.id).await.unwrap().len(), 1);
    assert_eq!(again.segment(a.id, seg.id).await.unwrap(), Some(seg));
    // Writes through one are seen by the other.
    again
        .upsert_contacts(a.id, &[contact("bob")])
        .await
        .unwrap();
    assert_eq!(ids(&s.all_contacts(a.id).await.unwrap()), ["ann", "bob"]);
}

// ---------------------------------------------------------------------------------------
// Users and sessions.

fn new_session(token_hash: &str, user: &User, expires_ms: i64) -> NewSession {
    NewSession {
        token_hash: token_hash.to_owned(),
        user_id: user.id,
        account_id: user.account_id,
        csrf_token: format!("csrf-{token_hash}"),
        expires_at: ts(expires_ms),
        idle_until: None,
    }
}

async fn users_are_created_and_found_by_email_in_any_case(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let ann = s
        .create_user(a.id, "Ann@Example.com", "$argon2id$hash-a", ts(5))
        .await
        .unwrap();
    assert_eq!(ann.account_id, a.id);
    assert_eq!(ann.email, "Ann@Example.com");
    assert_eq!(ann.created_at, ts(5));
    let bob = s
        .create_user(a.id, "bob@example.com", "$argon2id$hash-b", ts(6))
        .await
        .unwrap();
    assert_eq!(
        s.user_by_email("ann@EXAMPLE.com").await.unwrap(),
        Some(ann.clone())
    );
    assert_eq!(s.user_by_email("nobody@example.com").await.unwrap(), None);
    assert_eq!(s.users(a.id).await.unwrap(), vec![ann.clone(), bob.clone()]);
    assert!(
        s.set_password_hash(a.id, ann.id, "$argon2id$new")
            .await
            .unwrap()
    );
    assert_eq!(
        s.user_by_email("ann@example.com")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
    assert!(!s.set_password_hash(a.id, 9_999, "x").await.unwrap());
}

async fn a_taken_email_conflicts_in_any_account_and_case(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    s.create_user(a.id, "ann@example.com", "h", ts(1))
        .await
        .unwrap();
    for (acc, email) in [(a.id, "ANN@example.com"), (b.id, "ann@example.com")] {
        match s.create_user(acc, email, "h2", ts(2)).await {
            Err(StoreError::Conflict(_)) => {}
            other => panic!("{email}: expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(s.users(a.id).await.unwrap().len(), 1);
    assert!(s.users(b.id).await.unwrap().is_empty());
}

async fn sessions_are_found_until_they_expire_or_are_deleted(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let ann = s
        .create_user(a.id, "Ann@example.com", "h", ts(1))
        .await
        .unwrap();
    assert!(
        s.create_session(&new_session("t1", &ann, 1_000))
            .await
            .unwrap()
    );
    assert!(
        s.create_session(&new_session("t2", &ann, 2_000))
            .await
            .unwrap()
    );
    let found = s.session("t1", ts(999)).await.unwrap().unwrap();
    assert_eq!(
        found,
        Session {
            user_id: ann.id,
            account_id: a.id,
            email: "Ann@example.com".to_owned(),
            csrf_token: "csrf-t1".to_owned(),
            expires_at: ts(1_000),
            idle_until: None,
        }
    );
    // Expired at its expiry instant; unknown tokens are not found.
    assert_eq!(s.session("t1", ts(1_000)).await.unwrap(), None);
    assert_eq!(s.session("nope", ts(0)).await.unwrap(), None);
    // The same token hash cannot be stored twice.
    assert!(matches!(
        s.create_session(&new_session("t2", &ann, 3_000)).await,
        Err(StoreError::Conflict(_))
    ));
    // Sign-out.
    assert!(s.delete_session("t2").await.unwrap());
    assert!(!s.delete_session("t2").await.unwrap());
    assert_eq!(s.session("t2", ts(0)).await.unwrap(), None);
    // Clean-up of expired sessions.
    assert!(
        s.create_session(&new_session("t3", &ann, 5_000))
            .await
            .unwrap()
    );
    assert_eq!(s.delete_expired_sessions(ts(1_500)).await.unwrap(), 1);
    assert!(s.session("t3", ts(1_500)).await.unwrap().is_some());
}

async fn a_session_cannot_name_a_user_of_another_account(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    let ann = s
        .create_user(a.id, "ann@example.com", "h", ts(1))
        .await
        .unwrap();
    let mut forged = new_session("t", &ann, 1_000);
    forged.account_id = b.id;
    assert!(!s.create_session(&forged).await.unwrap());
    assert_eq!(s.session("t", ts(0)).await.unwrap(), None);
    let mut unknown = new_session("u", &ann, 1_000);
    unknown.user_id = 9_999;
    assert!(!s.create_session(&unknown).await.unwrap());
}

async fn one_accounts_users_and_sessions_are_its_own(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    let ann = s
        .create_user(a.id, "ann@example.com", "h", ts(1))
        .await
        .unwrap();
    let bob = s
        .create_user(b.id, "bob@example.com", "h", ts(1))
        .await
        .unwrap();
    assert_eq!(s.users(a.id).await.unwrap(), vec![ann.clone()]);
    assert_eq!(s.users(b.id).await.unwrap(), vec![bob.clone()]);
    // Another account's user cannot be changed through this account.
    assert!(!s.set_password_hash(a.id, bob.id, "x").await.unwrap());
    assert_eq!(
        s.user_by_email("bob@example.com")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "h"
    );
    s.create_session(&new_session("ta", &ann, 1_000))
        .await
        .unwrap();
    s.create_session(&new_session("tb", &bob, 1_000))
        .await
        .unwrap();
    assert_eq!(
        s.session("ta", ts(0)).await.unwrap().unwrap().account_id,
        a.id
    );
    assert_eq!(
        s.session("tb", ts(0)).await.unwrap().unwrap().account_id,
        b.id
    );
}

// ---------------------------------------------------------------------------------------
// Opening by URL (not per backend).

#[tokio::test]
async fn an_unknown_url_scheme_is_refused() {
    for url in ["mysql://localhost/db", "", "/tmp/x.db"] {
        match open(url).await {
            Err(StoreError::BadUrl(u)) => assert_eq!(u, url),
            Err(other) => panic!("{url:?}: expected BadUrl, got {other:?}"),
            Ok(_) => panic!("{url:?}: expected BadUrl, got a store"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_sqlite_store_keeps_one_database_across_calls() {
    let s = open("sqlite::memory:").await.unwrap();
    let a = account(&s, "Acme").await;
    // Concurrent calls would each see an empty database if the pool held several
    // in-memory connections.
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.upsert_contacts(a.id, &[contact(&format!("c{i}"))]).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(s.all_contacts(a.id).await.unwrap().len(), 8);
    assert_eq!(s.accounts().await.unwrap(), vec![a]);
}

#[tokio::test]
async fn a_sqlite_file_is_created_in_wal_mode() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    let url = format!("sqlite://{}", path.display());
    let store = open(&url).await.unwrap();
    assert!(path.exists());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

// ---------------------------------------------------------------------------------------
// Contacts by id, and membership changes.

async fn contacts_are_found_by_ids_and_external_ids_in_the_order_asked(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    s.upsert_contacts(a.id, &[contact("x"), contact("y"), contact("z")])
        .await
        .unwrap();
    s.upsert_contacts(b.id, &[contact("w")]).await.unwrap();
    let w = get(s, &b, "w").await;
    let by_ext = s
        .contacts_by_external_ids(a.id, &["z".into(), "nobody".into(), "x".into(), "w".into()])
        .await
        .unwrap();
    assert_eq!(
        ids(&by_ext),
        ["z", "x"],
        "unknown and other accounts' ids are skipped"
    );
    let wanted = [by_ext[1].id, w.id, by_ext[0].id];
    let by_id = s.contacts_by_ids(a.id, &wanted).await.unwrap();
    assert_eq!(ids(&by_id), ["x", "z"]);
    assert!(s.contacts_by_ids(a.id, &[]).await.unwrap().is_empty());
}

async fn membership_changes_are_logged_paged_bucketed_and_replayed(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    let seg = s.create_segment(a.id, &draft("S"), ts(0)).await.unwrap().id;
    let other = s.create_segment(b.id, &draft("S"), ts(0)).await.unwrap().id;
    let change = |contact: i64, entered: bool, minute: i64| ChangeRecord {
        segment: seg,
        contact,
        external_id: format!("c{contact}"),
        entered,
        at: ts(1_700_000_000_000 - 1_700_000_000_000 % CHANGE_BUCKET_MS + minute * 60_000),
    };
    s.record_changes(
        a.id,
        &[change(1, true, 0), change(2, true, 1), change(1, false, 20)],
    )
    .await
    .unwrap();
    s.record_changes(a.id, &[change(3, true, 21), change(1, true, 40)])
        .await
        .unwrap();
    s.record_changes(
        b.id,
        &[ChangeRecord {
            segment: other,
            ..change(9, true, 0)
        }],
    )
    .await
    .unwrap();

    let page = s.changes_page(a.id, seg, None, 2).await.unwrap();
    let seen: Vec<(i64, bool)> = page
        .iter()
        .map(|c| (c.change.contact, c.change.entered))
        .collect();
    assert_eq!(seen, [(1, true), (2, true)]);
    assert_eq!(page[0].change, change(1, true, 0));
    let rest = s
        .changes_page(a.id, seg, Some(page[1].seq), 10)
        .await
        .unwrap();
    let seen: Vec<(i64, bool)> = rest
        .iter()
        .map(|c| (c.change.contact, c.change.entered))
        .collect();
    assert_eq!(seen, [(1, false), (3, true), (1, true)]);
    assert!(
        s.changes_page(b.id, seg, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "another account's segment"
    );

    let buckets = s.change_buckets(a.id, seg).await.unwrap();
    let counts: Vec<(u64, u64)> = buckets.iter().map(|b| (b.entered, b.exited)).collect();
    assert_eq!(
        counts,
        [(2, 0), (1, 1), (1, 0)],
        "minutes 0-14, 15-29 and 30-44"
    );
    assert_eq!(
        buckets[1].start.as_millisecond() - buckets[0].start.as_millisecond(),
        CHANGE_BUCKET_MS
    );

    let mut members = s.logged_members(a.id).await.unwrap();
    members.sort_unstable();
    assert_eq!(
        members,
        [
            (seg, 1, "c1".into()),
            (seg, 2, "c2".into()),
            (seg, 3, "c3".into())
        ]
    );
    s.delete_segment(a.id, seg).await.unwrap();
    assert!(
        s.logged_members(a.id).await.unwrap().is_empty(),
        "a segment's log goes with it"
    );
    assert!(
        s.change_buckets(a.id, seg).await.unwrap().is_empty(),
        "and so do its growth chart's sums"
    );
    assert_eq!(
        s.logged_members(b.id).await.unwrap(),
        [(other, 9, "c9".into())]
    );
}

// ---------------------------------------------------------------------------------------
// Campaigns.

fn campaign_draft(name: &str, scheduled_at: Option<Timestamp>) -> CampaignDraft {
    CampaignDraft {
        name: name.to_owned(),
        channel: Channel::Email,
        content: json!({"subject": "Hi {{first_name}}", "html": "<p>Hi</p>"}),
        targets: vec![1, 2],
        exclusions: vec![3],
        scheduled_at,
        rate_per_second: None,
    }
}

fn recipient(c: &Contact) -> NewRecipient {
    NewRecipient {
        contact_id: c.id,
        external_id: c.external_id.clone(),
        address: format!("{}@example.com", c.external_id),
    }
}

async fn a_campaign_is_frozen_once_with_its_recipients_and_each_status_is_kept(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    s.upsert_contacts(a.id, &[contact("y"), contact("x")])
        .await
        .unwrap();
    let (x, y) = (get(s, &a, "x").await, get(s, &a, "y").await);
    let c = s
        .create_campaign(a.id, &campaign_draft("Spring", None), ts(1_000))
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Draft);
    assert_eq!(c.targets, vec![1, 2]);
    assert_eq!(c.exclusions, vec![3]);
    assert_eq!(c.content["subject"], "Hi {{first_name}}");
    assert_eq!(c.created_at, ts(1_000));
    assert_eq!(s.campaigns(a.id).await.unwrap(), vec![c.clone()]);
    assert!(s.campaigns(b.id).await.unwrap().is_empty());
    assert!(s.campaign(b.id, c.id).await.unwrap().is_none());
    assert!(
        !s.freeze_campaign(b.id, c.id, &[recipient(&x)], &json!({}), ts(2_000))
            .await
            .unwrap(),
        "another account cannot freeze it"
    );

    let excluded = json!({"no_address": 1});
    assert!(
        s.freeze_campaign(
            a.id,
            c.id,
            &[recipient(&y), recipient(&x)],
            &excluded,
            ts(2_000)
        )
        .await
        .unwrap()
    );
    assert!(
        !s.freeze_campaign(a.id, c.id, &[recipient(&x)], &json!({}), ts(3_000))
            .await
            .unwrap(),
        "a frozen list is never replaced"
    );
    let frozen = s.campaign(a.id, c.id).await.unwrap().unwrap();
    assert_eq!(frozen.status, CampaignStatus::Sending);
    assert_eq!(frozen.frozen_at, Some(ts(2_000)));
    assert_eq!(frozen.excluded, Some(excluded));
    let list = s.campaign_recipients(a.id, c.id).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|r| r.external_id.as_str())
            .collect::<Vec<_>>(),
        ["x", "y"]
    );
    assert!(
        list.iter()
            .all(|r| r.status == RecipientStatus::Queued && r.attempts == 0)
    );
    assert_eq!(list[0].address, "x@example.com");
    assert!(s.campaign_recipients(b.id, c.id).await.unwrap().is_empty());

    s.update_recipient(a.id, c.id, x.id, RecipientStatus::Sent, None, 1, ts(4_000))
        .await
        .unwrap();
    s.update_recipient(
        a.id,
        c.id,
        y.id,
        RecipientStatus::Failed,
        Some("550 no such user"),
        3,
        ts(4_000),
    )
    .await
    .unwrap();
    // Another account's call changes nothing.
    s.update_recipient(
        b.id,
        c.id,
        x.id,
        RecipientStatus::Failed,
        Some("no"),
        9,
        ts(4_000),
    )
    .await
    .unwrap();
    let list = s.campaign_recipients(a.id, c.id).await.unwrap();
    assert_eq!(
        (list[0].status, list[0].attempts, list[0].reason.as_deref()),
        (RecipientStatus::Sent, 1, None)
    );
    // Counted by status with one grouped query; the other account's have none.
    assert_eq!(
        s.recipient_counts(a.id, c.id).await.unwrap(),
        RecipientCounts {
            queued: 0,
            sending: 0,
            sent: 1,
            failed: 1,
            ..RecipientCounts::default()
        }
    );
    assert_eq!(
        s.recipient_counts(b.id, c.id).await.unwrap(),
        RecipientCounts::default()
    );
    assert_eq!(
        (list[1].status, list[1].attempts, list[1].reason.as_deref()),
        (RecipientStatus::Failed, 3, Some("550 no such user"))
    );
    assert_eq!(
        s.campaigns_to_run(ts(5_000)).await.unwrap(),
        vec![CampaignToRun {
            account_id: a.id,
            id: c.id,
            status: CampaignStatus::Sending
        }]
    );
    assert!(s.finish_campaign(a.id, c.id, ts(6_000)).await.unwrap());
    assert!(!s.finish_campaign(a.id, c.id, ts(7_000)).await.unwrap());
    let done = s.campaign(a.id, c.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.sent_at),
        (CampaignStatus::Sent, Some(ts(6_000)))
    );
    assert!(s.campaigns_to_run(ts(8_000)).await.unwrap().is_empty());
    // The list survives the contact's deletion: it is the audit of who was sent what.
    s.delete_contact(a.id, "x").await.unwrap();
    assert_eq!(s.campaign_recipients(a.id, c.id).await.unwrap().len(), 2);
}

async fn scheduled_campaigns_are_due_only_at_their_time_and_secrets_are_kept(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    let c = s
        .create_campaign(a.id, &campaign_draft("Later", Some(ts(10_000))), ts(1_000))
        .await
        .unwrap();
    assert_eq!(
        (c.status, c.scheduled_at),
        (CampaignStatus::Scheduled, Some(ts(10_000)))
    );
    assert!(s.campaigns_to_run(ts(9_999)).await.unwrap().is_empty());
    assert_eq!(
        s.campaigns_to_run(ts(10_000)).await.unwrap(),
        vec![CampaignToRun {
            account_id: a.id,
            id: c.id,
            status: CampaignStatus::Scheduled
        }]
    );
    assert!(
        s.freeze_campaign(a.id, c.id, &[], &json!({}), ts(10_001))
            .await
            .unwrap()
    );
    assert_eq!(
        s.campaign(a.id, c.id).await.unwrap().unwrap().status,
        CampaignStatus::Sending
    );

    let first = s.tracking_secret(a.id, "one").await.unwrap();
    assert_eq!(first, "one");
    assert_eq!(
        s.tracking_secret(a.id, "two").await.unwrap(),
        "one",
        "kept once made"
    );
    assert_eq!(s.tracking_secret(b.id, "three").await.unwrap(), "three");
}

/// An account with contacts `a`..`e` (e-mail `a@x.test`…) and a campaign frozen for all.
async fn frozen_campaign(s: &Arc<dyn Store>) -> (Account, Campaign, Vec<Contact>) {
    let a = account(s, "Acme").await;
    let names = ["a", "b", "c", "d", "e"];
    let upserts: Vec<ContactUpsert> = names
        .iter()
        .map(|n| ContactUpsert {
            email: Patch::Set(format!("{n}@x.test")),
            ..contact(n)
        })
        .collect();
    s.upsert_contacts(a.id, &upserts).await.unwrap();
    let mut contacts = Vec::new();
    for n in names {
        contacts.push(get(s, &a, n).await);
    }
    let c = s
        .create_campaign(a.id, &campaign_draft("Spring", None), ts(1_000))
        .await
        .unwrap();
    let ids: Vec<ContactId> = contacts.iter().map(|c| c.id).collect();
    let outcome = s
        .freeze_campaign_for(a.id, c.id, &ids, &json!({}), ts(2_000))
        .await
        .unwrap();
    assert_eq!(outcome.stored, 5);
    (a, c, contacts)
}

fn outcome(c: &Contact, status: RecipientStatus, next: Option<Timestamp>) -> Outcome {
    Outcome {
        contact_id: c.id,
        status,
        reason: Some(format!("{} went {}", c.external_id, status.as_str())),
        attempts: 1,
        next_attempt_at: next,
    }
}

async fn delivery_claims_due_recipients_records_outcomes_and_retries_later(ctx: Ctx) {
    let s = &ctx.store;
    let (a, c, people) = frozen_campaign(s).await;
    let claimed = s.claim_recipients(a.id, c.id, ts(3_000), 3).await.unwrap();
    assert_eq!(claimed.len(), 3, "at most the limit");
    assert!(claimed.iter().all(|r| r.status == RecipientStatus::Sending
        && r.attempts == 1
        && r.first_attempt_at == Some(ts(3_000))));
    let rest = s.claim_recipients(a.id, c.id, ts(3_000), 10).await.unwrap();
    assert_eq!(rest.len(), 2, "a claimed recipient is never claimed twice");
    assert!(
        s.claim_recipients(a.id, c.id, ts(3_000), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let by_id = |id: ContactId| people.iter().find(|p| p.id == id).unwrap().clone();
    let all: Vec<Contact> = claimed
        .iter()
        .chain(&rest)
        .map(|r| by_id(r.contact_id))
        .collect();
    let outcomes = [
        outcome(&all[0], RecipientStatus::Sent, None),
        outcome(&all[1], RecipientStatus::Bounced, None),
        outcome(&all[2], RecipientStatus::Queued, Some(ts(60_000))),
        outcome(&all[3], RecipientStatus::Unknown, None),
    ];
    s.record_outcomes(a.id, c.id, &outcomes, ts(4_000))
        .await
        .unwrap();
    // A late outcome for a recipient no longer `sending` changes nothing.
    s.record_outcomes(
        a.id,
        c.id,
        &[outcome(&all[0], RecipientStatus::Failed, None)],
        ts(4_500),
    )
    .await
    .unwrap();
    assert_eq!(
        s.recipient_counts(a.id, c.id).await.unwrap(),
        RecipientCounts {
            queued: 1,
            sending: 1,
            sent: 1,
            bounced: 1,
            unknown: 1,
            failed: 0,
        }
    );
    assert_eq!(
        s.next_attempt_at(a.id, c.id).await.unwrap(),
        Some(ts(60_000)),
        "the retry is due later"
    );
    assert!(
        s.claim_recipients(a.id, c.id, ts(59_999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = s
        .claim_recipients(a.id, c.id, ts(60_000), 10)
        .await
        .unwrap();
    assert_eq!(
        retry
            .iter()
            .map(|r| (r.contact_id, r.attempts, r.first_attempt_at))
            .collect::<Vec<_>>(),
        [(all[2].id, 2, Some(ts(3_000)))],
        "one more attempt, the first one's time kept"
    );
    assert_eq!(s.next_attempt_at(a.id, c.id).await.unwrap(), None);

    // A run that stopped leaves its in-flight recipients unknown.
    assert_eq!(
        s.settle_interrupted(a.id, c.id, "interrupted", ts(61_000))
            .await
            .unwrap(),
        2
    );
    let page = s
        .campaign_recipients_page(a.id, c.id, Some(RecipientStatus::Unknown), None, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 3, "filtered by status");
    assert!(page.windows(2).all(|w| w[0].external_id < w[1].external_id));

    // Unknown ones are sent again only on demand, and not to a contact that has
    // unsubscribed since.
    s.upsert_contacts(
        a.id,
        &[ContactUpsert {
            email_status: Patch::Set(EmailStatus::Unsubscribed),
            ..contact(&page[0].external_id)
        }],
    )
    .await
    .unwrap();
    assert!(s.finish_campaign(a.id, c.id, ts(62_000)).await.unwrap());
    assert_eq!(
        s.requeue_recipients(a.id, c.id, &[RecipientStatus::Unknown], ts(63_000))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.campaign(a.id, c.id).await.unwrap().unwrap().status,
        CampaignStatus::Sending,
        "a sent campaign with recipients queued again is sending again"
    );
    let again = s
        .claim_recipients(a.id, c.id, ts(63_000), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|r| r.first_attempt_at == Some(ts(63_000))));

    let totals: Vec<(String, u64)> = s
        .campaign_activity(a.id, c.id)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.kind, b.n))
        .collect();
    assert_eq!(
        totals,
        [
            ("bounced".to_owned(), 1),
            ("sent".to_owned(), 1),
            ("unknown".to_owned(), 3),
        ]
    );
}

async fn campaigns_move_only_through_their_allowed_transitions(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    let c = s
        .create_campaign(a.id, &campaign_draft("Spring", None), ts(1_000))
        .await
        .unwrap();
    let edited = CampaignDraft {
        name: "Spring sale".into(),
        rate_per_second: Some(50),
        ..campaign_draft("", Some(ts(9_000)))
    };
    let Transition::Done(Some(now)) = s.update_campaign(a.id, c.id, &edited).await.unwrap() else {
        panic!("a draft can be edited");
    };
    assert_eq!(
        (
            now.name.as_str(),
            now.status,
            now.scheduled_at,
            now.rate_per_second
        ),
        (
            "Spring sale",
            CampaignStatus::Scheduled,
            Some(ts(9_000)),
            Some(50)
        )
    );
    assert_eq!(
        s.update_campaign(b.id, c.id, &edited).await.unwrap(),
        Transition::NotFound
    );
    let scheduled = [CampaignStatus::Scheduled];
    let Transition::Done(Some(cancelled)) = s
        .set_campaign_status(a.id, c.id, &scheduled, CampaignStatus::Cancelled, None)
        .await
        .unwrap()
    else {
        panic!("a scheduled campaign can be cancelled");
    };
    assert_eq!(cancelled.status, CampaignStatus::Cancelled);
    assert_eq!(
        s.set_campaign_status(a.id, c.id, &scheduled, CampaignStatus::Cancelled, None)
            .await
            .unwrap(),
        Transition::Refused(CampaignStatus::Cancelled)
    );
    assert_eq!(
        s.update_campaign(a.id, c.id, &edited).await.unwrap(),
        Transition::Refused(CampaignStatus::Cancelled)
    );
    assert!(s.campaigns_to_run(ts(10_000)).await.unwrap().is_empty());

    let (_, sending, _) = frozen_campaign(s).await;
    let acct = sending.account_id;
    let Transition::Done(Some(paused)) = s
        .set_campaign_status(
            acct,
            sending.id,
            &[CampaignStatus::Sending],
            CampaignStatus::Paused,
            Some("25 errors in a row"),
        )
        .await
        .unwrap()
    else {
        panic!("a sending campaign can be paused");
    };
    assert_eq!(paused.status_reason.as_deref(), Some("25 errors in a row"));
    assert_eq!(
        s.delete_campaign(acct, sending.id).await.unwrap(),
        Transition::Refused(CampaignStatus::Paused),
        "only drafts and cancelled campaigns are deleted"
    );
    assert_eq!(
        s.campaigns_to_run(ts(10_000))
            .await
            .unwrap()
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [CampaignStatus::Paused]
    );
    assert_eq!(
        s.delete_campaign(b.id, c.id).await.unwrap(),
        Transition::NotFound
    );
    assert_eq!(
        s.delete_campaign(a.id, c.id).await.unwrap(),
        Transition::Done(None)
    );
    assert!(s.campaign(a.id, c.id).await.unwrap().is_none());
}

async fn engagement_counts_once_per_recipient_and_activity_is_kept_per_hour(ctx: Ctx) {
    let s = &ctx.store;
    let (a, c, people) = frozen_campaign(s).await;
    let hour = 3_600_000;
    let x = people[0].id;
    let cases = [
        (Engagement::Open, ts(hour + 1), true),
        (Engagement::Open, ts(hour + 2), false),
        (Engagement::MachineOpen, ts(hour + 3), true),
        (Engagement::MachineOpen, ts(2 * hour), true),
        (Engagement::Click, ts(2 * hour), true),
        (Engagement::Click, ts(2 * hour), false),
        (Engagement::Unsubscribe, ts(2 * hour), true),
        (Engagement::Complaint, ts(2 * hour), true),
        (Engagement::Complaint, ts(2 * hour), false),
        // Not sent yet: a bounce report for a queued recipient does not count.
        (Engagement::Bounce, ts(2 * hour), false),
    ];
    for (engagement, at, counts) in cases {
        assert_eq!(
            s.record_engagement(a.id, c.id, x, engagement, at)
                .await
                .unwrap(),
            counts,
            "{engagement:?} at {at}"
        );
    }
    assert!(
        !s.record_engagement(a.id, c.id, 999_999, Engagement::Open, ts(hour))
            .await
            .unwrap(),
        "not a recipient"
    );
    let buckets: Vec<(i64, String, u64)> = s
        .campaign_activity(a.id, c.id)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.hour.as_millisecond(), b.kind, b.n))
        .collect();
    assert_eq!(
        buckets,
        [
            (hour, "machine_open".to_owned(), 1),
            (hour, "open".to_owned(), 1),
            (2 * hour, "click".to_owned(), 1),
            (2 * hour, "complaint".to_owned(), 1),
            (2 * hour, "machine_open".to_owned(), 1),
            (2 * hour, "unsubscribe".to_owned(), 1),
        ]
    );
}

async fn contacts_are_found_by_exact_email_or_phone(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    let with = |id: &str, email: &str, phone: &str| ContactUpsert {
        email: Patch::Set(email.to_owned()),
        phone: Patch::Set(phone.to_owned()),
        ..contact(id)
    };
    s.upsert_contacts(
        a.id,
        &[
            with("x", "x@x.test", "+15550001"),
            with("y", "y@x.test", "+15550002"),
        ],
    )
    .await
    .unwrap();
    s.upsert_contacts(b.id, &[with("z", "x@x.test", "+15550001")])
        .await
        .unwrap();
    let ids = |found: Vec<Contact>| found.into_iter().map(|c| c.external_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .contacts_by_address(a.id, Channel::Email, "x@x.test")
            .await
            .unwrap()),
        ["x"]
    );
    assert_eq!(
        ids(s
            .contacts_by_address(a.id, Channel::Sms, "+15550002")
            .await
            .unwrap()),
        ["y"]
    );
    assert!(
        s.contacts_by_address(a.id, Channel::Email, "X@x.test2")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.contacts_by_address(a.id, Channel::Push, "x")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn an_idle_session_ends_and_use_keeps_it_alive(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let user = s
        .create_user(a.id, "ann@example.com", "hash", ts(0))
        .await
        .unwrap();
    let session = NewSession {
        idle_until: Some(ts(2_000)),
        ..new_session("t1", &user, 10_000)
    };
    assert!(s.create_session(&session).await.unwrap());
    assert!(s.session("t1", ts(1_999)).await.unwrap().is_some());
    assert!(s.session("t1", ts(2_000)).await.unwrap().is_none(), "idle");
    s.touch_session("t1", ts(5_000)).await.unwrap();
    let found = s.session("t1", ts(4_000)).await.unwrap().unwrap();
    assert_eq!(found.idle_until, Some(ts(5_000)));
    s.touch_session("t1", ts(20_000)).await.unwrap();
    assert!(
        s.session("t1", ts(10_000)).await.unwrap().is_none(),
        "the absolute end holds whatever the use"
    );
}

async fn sign_in_failures_are_counted_in_a_window_and_forgotten_after_it(ctx: Ctx) {
    let s = &ctx.store;
    let minute = 60_000;
    let window = 15 * minute;
    let since = |now: i64| ts(now - window);
    for now in [100 * minute, 101 * minute, 102 * minute] {
        s.record_sign_in_failure("email:ann", ts(now), since(now))
            .await
            .unwrap();
    }
    let at = 103 * minute;
    assert_eq!(
        s.sign_in_failures("email:ann", since(at)).await.unwrap(),
        (3, ts(100 * minute)),
        "counted from the first failure"
    );
    assert_eq!(
        s.sign_in_failures("email:bob", since(at)).await.unwrap().0,
        0
    );
    // Once the window has passed, the failures no longer count, and the next one
    // starts a new window.
    let later = 116 * minute;
    assert_eq!(
        s.sign_in_failures("email:ann", since(later))
            .await
            .unwrap()
            .0,
        0
    );
    s.record_sign_in_failure("email:ann", ts(later), since(later))
        .await
        .unwrap();
    assert_eq!(
        s.sign_in_failures("email:ann", since(later)).await.unwrap(),
        (1, ts(later))
    );
    s.clear_sign_in_failures("email:ann").await.unwrap();
    assert_eq!(
        s.sign_in_failures("email:ann", since(later))
            .await
            .unwrap()
            .0,
        0
    );
}

// ---------------------------------------------------------------------------------------
// Freezing a campaign from contact ids.

fn campaign_on(channel: Channel) -> CampaignDraft {
    CampaignDraft {
        channel,
        ..campaign_draft(channel.as_str(), None)
    }
}

/// A contact with every address set as given.
fn reachable(
    external_id: &str,
    email: Option<(&str, Option<EmailStatus>)>,
    phone: Option<(&str, Option<SmsStatus>)>,
    tokens: &[&str],
) -> ContactUpsert {
    let mut c = contact(external_id);
    if let Some((address, status)) = email {
        c.email = Patch::Set(address.to_owned());
        c.email_status = status.map_or(Patch::Keep, Patch::Set);
    }
    if let Some((number, status)) = phone {
        c.phone = Patch::Set(number.to_owned());
        c.sms_status = status.map_or(Patch::Keep, Patch::Set);
    }
    if !tokens.is_empty() {
        c.push_tokens = Patch::Set(tokens.iter().map(|t| (*t).to_owned()).collect());
    }
    c
}

/// (external id, address) of the frozen list, in its order.
async fn frozen_list(s: &Arc<dyn Store>, a: &Account, id: CampaignId) -> Vec<(String, String)> {
    s.campaign_recipients(a.id, id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            assert_eq!((r.status, r.attempts), (RecipientStatus::Queued, 0));
            (r.external_id, r.address)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(e, a)| ((*e).to_owned(), (*a).to_owned()))
        .collect()
}

async fn freezing_from_contact_ids_stores_the_reachable_ones_at_their_channels_address(ctx: Ctx) {
    use EmailStatus as E;
    use SmsStatus as S;
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    s.upsert_contacts(
        a.id,
        &[
            reachable("e-default", Some(("d@example.com", None)), None, &[]),
            reachable(
                "e-sub",
                Some(("s@example.com", Some(E::Subscribed))),
                None,
                &[],
            ),
            reachable(
                "e-unsub",
                Some(("u@example.com", Some(E::Unsubscribed))),
                None,
                &[],
            ),
            reachable(
                "e-bounced",
                Some(("b@example.com", Some(E::Bounced))),
                None,
                &[],
            ),
            reachable("p-default", None, Some(("+481", None)), &[]),
            reachable("p-sub", None, Some(("+482", Some(S::Subscribed))), &[]),
            reachable("p-unsub", None, Some(("+483", Some(S::Unsubscribed))), &[]),
            reachable("t-two", None, None, &["tok1", "tok2"]),
            reachable("t-one", None, None, &["tok3"]),
            reachable("nothing", None, None, &[]),
        ],
    )
    .await
    .unwrap();
    // A status without its address reaches nobody.
    let mut orphan = contact("status-only");
    orphan.email_status = Patch::Set(E::Subscribed);
    orphan.sms_status = Patch::Set(S::Subscribed);
    s.upsert_contacts(a.id, &[orphan]).await.unwrap();
    s.upsert_contacts(
        b.id,
        &[reachable(
            "b-sub",
            Some(("x@b.example", None)),
            Some(("+489", None)),
            &["tb"],
        )],
    )
    .await
    .unwrap();

    let mut listed: Vec<ContactId> = s
        .all_contacts(a.id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed.len(), 11);
    let b_id = get(s, &b, "b-sub").await.id;
    let unknown = listed.iter().chain([&b_id]).max().unwrap() + 1_000;
    // Another account's contact and an id that names no one are unknown here; an id
    // listed twice is stored once.
    listed.extend([b_id, unknown, listed[0]]);

    let excluded = json!({"exclusion_segments": 4});
    let cases = [
        (
            Channel::Email,
            vec![("e-default", "d@example.com"), ("e-sub", "s@example.com")],
            UnreachableCounts {
                no_address: 7,
                unsubscribed: 1,
                bounced: 1,
            },
        ),
        (
            Channel::Sms,
            vec![("p-default", "+481"), ("p-sub", "+482")],
            UnreachableCounts {
                no_address: 8,
                unsubscribed: 1,
                bounced: 0,
            },
        ),
        (
            Channel::Push,
            vec![("t-one", "tok3"), ("t-two", "tok1,tok2")],
            UnreachableCounts {
                no_address: 9,
                unsubscribed: 0,
                bounced: 0,
            },
        ),
    ];
    for (channel, expected, unreachable) in cases {
        let c = s
            .create_campaign(a.id, &campaign_on(channel), ts(1_000))
            .await
            .unwrap();
        let outcome = s
            .freeze_campaign_for(b.id, c.id, &listed, &excluded, ts(2_000))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            FreezeOutcome::default(),
            "another account's campaign"
        );

        let outcome = s
            .freeze_campaign_for(a.id, c.id, &listed, &excluded, ts(2_000))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            FreezeOutcome {
                frozen: true,
                stored: 2,
                unreachable,
                unknown: 2,
            },
            "{channel:?}"
        );
        assert_eq!(
            outcome.skipped(),
            13 - 2,
            "13 distinct ids listed, 2 stored"
        );
        assert_eq!(
            frozen_list(s, &a, c.id).await,
            pairs(&expected),
            "{channel:?}"
        );
        let frozen = s.campaign(a.id, c.id).await.unwrap().unwrap();
        assert_eq!(
            (frozen.status, frozen.frozen_at, frozen.excluded),
            (
                CampaignStatus::Sending,
                Some(ts(2_000)),
                Some(excluded.clone())
            )
        );

        // Frozen once: a second freeze, from ids or from a list, stores nothing.
        let again = s
            .freeze_campaign_for(a.id, c.id, &listed, &json!({}), ts(3_000))
            .await
            .unwrap();
        assert_eq!(again, FreezeOutcome::default());
        assert!(
            !s.freeze_campaign(a.id, c.id, &[], &json!({}), ts(3_000))
                .await
                .unwrap()
        );
        assert_eq!(frozen_list(s, &a, c.id).await, pairs(&expected));
        assert_eq!(
            s.campaign(a.id, c.id).await.unwrap().unwrap().frozen_at,
            Some(ts(2_000))
        );
    }

    // A scheduled campaign freezes the same way; an empty list freezes it empty.
    let later = s
        .create_campaign(a.id, &campaign_draft("Later", Some(ts(9_000))), ts(1_000))
        .await
        .unwrap();
    let outcome = s
        .freeze_campaign_for(a.id, later.id, &[], &json!({}), ts(9_000))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        FreezeOutcome {
            frozen: true,
            ..FreezeOutcome::default()
        }
    );
    assert_eq!(
        s.campaign(a.id, later.id).await.unwrap().unwrap().status,
        CampaignStatus::Sending
    );
    // An unknown campaign freezes nothing.
    let outcome = s
        .freeze_campaign_for(a.id, later.id + 1_000, &listed, &json!({}), ts(9_000))
        .await
        .unwrap();
    assert_eq!(outcome, FreezeOutcome::default());
}

async fn a_freeze_of_twenty_thousand_contact_ids_is_stored_in_chunks_and_paged_back(ctx: Ctx) {
    const N: usize = 20_000;
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    // Every tenth contact has unsubscribed since the caller chose it.
    let batch: Vec<ContactUpsert> = (0..N)
        .map(|i| {
            let mut c = contact(&format!("c{i:05}"));
            c.email = Patch::Set(format!("user{i}@example.com"));
            if i % 10 == 3 {
                c.email_status = Patch::Set(EmailStatus::Unsubscribed);
            }
            c
        })
        .collect();
    s.upsert_contacts(a.id, &batch).await.unwrap();
    // Listed newest first: the store reads them in its own order.
    let listed: Vec<ContactId> = s
        .all_contacts(a.id)
        .await
        .unwrap()
        .iter()
        .rev()
        .map(|c| c.id)
        .collect();
    let c = s
        .create_campaign(a.id, &campaign_on(Channel::Email), ts(1_000))
        .await
        .unwrap();

    let started = Instant::now();
    let outcome = s
        .freeze_campaign_for(a.id, c.id, &listed, &json!({}), ts(2_000))
        .await
        .unwrap();
    let took = started.elapsed();
    visible(&format!(
        "{}: froze {N} contact ids in {took:?}",
        s.backend()
    ));
    assert_eq!(
        outcome,
        FreezeOutcome {
            frozen: true,
            stored: 18_000,
            unreachable: UnreachableCounts {
                unsubscribed: 2_000,
                ..UnreachableCounts::default()
            },
            unknown: 0,
        }
    );
    assert!(took < Duration::from_secs(30), "freezing took {took:?}");

    let all = s.campaign_recipients(a.id, c.id).await.unwrap();
    assert_eq!(all.len(), 18_000);
    assert!(all.iter().all(|r| !r.external_id.ends_with('3')));
    assert_eq!(all[0].external_id, "c00000");
    assert_eq!(all[0].address, "user0@example.com");

    // Paged back, the pages add up to the whole list.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .campaign_recipients_page(a.id, c.id, None, after.as_deref(), 7_000)
            .await
            .unwrap();
        assert!(page.len() <= 7_000);
        let Some(last) = page.last() else { break };
        after = Some(last.external_id.clone());
        paged.extend(page);
    }
    assert_eq!(paged, all);
}

async fn recipients_are_paged_by_external_id_in_byte_order(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    // Byte order: upper case before lower case, "é" (0xC3 0xA9) after "z".
    let names = ["b", "B", "a", "é", "z", "A1", "a0"];
    let batch: Vec<ContactUpsert> = names
        .iter()
        .map(|n| reachable(n, Some((&format!("{n}@example.com"), None)), None, &[]))
        .collect();
    s.upsert_contacts(a.id, &batch).await.unwrap();
    let listed: Vec<ContactId> = s
        .all_contacts(a.id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    let c = s
        .create_campaign(a.id, &campaign_on(Channel::Email), ts(1_000))
        .await
        .unwrap();
    s.freeze_campaign_for(a.id, c.id, &listed, &json!({}), ts(2_000))
        .await
        .unwrap();

    let page = |after: Option<&'static str>, limit: u32| {
        let s = s.clone();
        let (account, id) = (a.id, c.id);
        async move {
            s.campaign_recipients_page(account, id, None, after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.external_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 3).await, ["A1", "B", "a"]);
    assert_eq!(page(Some("a"), 3).await, ["a0", "b", "z"]);
    assert_eq!(page(Some("z"), 3).await, ["é"]);
    assert!(page(Some("é"), 3).await.is_empty());
    assert_eq!(page(None, 100).await.len(), names.len());
    // Another account's call finds no list.
    assert!(
        s.campaign_recipients_page(b.id, c.id, None, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// Replaying what was written after an index snapshot.

/// Everything the store says was written after `w`: the deleted ids, the changed
/// contacts and the events, each read a page of `page` at a time.
async fn since(
    s: &Arc<dyn Store>,
    a: &Account,
    w: &Watermark,
    page: u32,
) -> (Vec<ContactId>, Vec<Contact>, Vec<(i64, StoredEvent)>) {
    let deleted = s.contacts_deleted_since(a.id, w).await.unwrap();
    let mut changed: Vec<Contact> = Vec::new();
    loop {
        let after = changed.last().map(|c| c.id);
        let next = s
            .contacts_changed_since(a.id, w, after, page)
            .await
            .unwrap();
        assert!(next.len() <= page as usize);
        if next.is_empty() {
            break;
        }
        changed.extend(next);
    }
    let mut events: Vec<(i64, StoredEvent)> = Vec::new();
    loop {
        let after = events.last().map(|(id, _)| *id);
        let next = s.events_since(a.id, w, after, page).await.unwrap();
        assert!(next.len() <= page as usize);
        if next.is_empty() {
            break;
        }
        events.extend(next);
    }
    for pair in changed.windows(2) {
        assert!(pair[0].id < pair[1].id, "contacts in id order");
    }
    for pair in events.windows(2) {
        assert!(pair[0].0 < pair[1].0, "events in id order");
    }
    (deleted, changed, events)
}

fn event_client_ids(events: &[(i64, StoredEvent)]) -> Vec<Option<&str>> {
    events.iter().map(|(_, e)| e.client_id.as_deref()).collect()
}

async fn the_since_reads_return_exactly_what_was_written_after_a_watermark(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Beta").await;
    for acc in [&a, &b] {
        s.create_field(acc.id, &field("age", FieldType::Number))
            .await
            .unwrap();
        s.create_field(acc.id, &field("city", FieldType::Text))
            .await
            .unwrap();
    }
    // Before the watermark: c1 has an age, c3 a city; every contact has events.
    let mut c1 = contact("c1");
    c1.fields
        .insert("age".to_owned(), Some(FieldValue::Number(41.0)));
    let mut c3 = contact("c3");
    c3.fields.insert(
        "city".to_owned(),
        Some(FieldValue::Text("Kraków".to_owned())),
    );
    s.upsert_contacts(a.id, &[c1, contact("c2"), c3, contact("c4"), contact("c5")])
        .await
        .unwrap();
    let mut bx = contact("x1");
    bx.fields
        .insert("age".to_owned(), Some(FieldValue::Number(7.0)));
    s.upsert_contacts(b.id, &[bx, contact("x2")]).await.unwrap();
    let before: Vec<NewEvent> = ["c1", "c2", "c3", "c4", "c5"]
        .iter()
        .enumerate()
        .map(|(i, c)| visit(c, Some(&format!("old-{c}")), 1_000 + i as i64, "https://a/"))
        .collect();
    s.insert_events(a.id, &before).await.unwrap();
    s.insert_events(b.id, &[visit("x1", Some("b-old"), 1_000, "https://b/")])
        .await
        .unwrap();
    let old = |name: &'static str| get(s, &a, name);
    let (c4_id, c5_old_id) = (old("c4").await.id, old("c5").await.id);

    let w = s.watermark(a.id).await.unwrap();
    assert_eq!(since(s, &a, &w, 100).await, (vec![], vec![], vec![]));

    // After it.
    let mut patch = contact("c2");
    patch.email = Patch::Set("c2@example.com".to_owned());
    s.upsert_contacts(a.id, &[patch, contact("c6")])
        .await
        .unwrap();
    assert!(s.delete_field(a.id, "age").await.unwrap()); // c1 loses its age; c3 keeps its city
    assert!(s.delete_contact(a.id, "c4").await.unwrap());
    assert!(s.delete_contact(a.id, "c5").await.unwrap());
    s.upsert_contacts(a.id, &[contact("c5")]).await.unwrap(); // a new contact, a new id
    s.insert_events(
        a.id,
        &[
            system("c1", Some("new-1"), 5_000, SystemEventKind::MailClick),
            custom(
                "c6",
                Some("new-2"),
                5_001,
                "purchase",
                json!({"total": 12.5, "sku": ["a"]}),
            ),
            visit("c5", Some("new-3"), 5_002, "https://a/again"),
            // A duplicate of an old client id stores nothing.
            visit("c2", Some("old-c2"), 5_003, "https://a/dup"),
        ],
    )
    .await
    .unwrap();
    s.insert_events(a.id, &[visit("c3", Some("new-4"), 5_004, "https://a/3")])
        .await
        .unwrap();
    // The other account's writes, of every kind, never show.
    let mut bpatch = contact("x2");
    bpatch.email = Patch::Set("x2@b.example".to_owned());
    s.upsert_contacts(b.id, &[bpatch, contact("x3")])
        .await
        .unwrap();
    assert!(s.delete_field(b.id, "age").await.unwrap());
    s.insert_events(b.id, &[visit("x2", Some("b-new"), 6_000, "https://b/")])
        .await
        .unwrap();
    assert!(s.delete_contact(b.id, "x1").await.unwrap());

    let now: BTreeMap<String, Contact> = s
        .all_contacts(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.external_id.clone(), c))
        .collect();
    let c5_new = &now["c5"];
    assert_ne!(c5_new.id, c5_old_id);

    for page in [1, 2, 1_000] {
        let (deleted, changed, events) = since(s, &a, &w, page).await;
        assert_eq!(
            deleted,
            [c4_id, c5_old_id],
            "page {page}: in deletion order"
        );
        let mut expected: Vec<Contact> = ["c1", "c2", "c6", "c5"]
            .iter()
            .map(|n| now[*n].clone())
            .collect();
        expected.sort_by_key(|c| c.id);
        assert_eq!(changed, expected, "page {page}: as they are now, by id");
        assert!(changed.iter().all(|c| !c.fields.contains_key("age")));
        assert_eq!(now["c2"].email.as_deref(), Some("c2@example.com"));

        assert_eq!(
            event_client_ids(&events),
            [Some("new-1"), Some("new-2"), Some("new-3"), Some("new-4")],
            "page {page}"
        );
        let contacts: Vec<ContactId> = events.iter().map(|(_, e)| e.contact_id).collect();
        assert_eq!(
            contacts,
            [now["c1"].id, now["c6"].id, c5_new.id, now["c3"].id]
        );
        // Properties and times come back as stored, as `all_events` reads them.
        let all = s.all_events(a.id).await.unwrap();
        let tail: Vec<&StoredEvent> = events.iter().map(|(_, e)| e).collect();
        assert_eq!(tail, all.iter().skip(all.len() - 4).collect::<Vec<_>>());
        assert_eq!(
            events[1].1.body,
            EventBody::Custom {
                name: "purchase".to_owned(),
                properties: json!({"total": 12.5, "sku": ["a"]})
                    .as_object()
                    .unwrap()
                    .clone(),
            }
        );
        assert_eq!(events[0].1.timestamp, ts(5_000));
    }

    // A page starts strictly after the id it is given.
    let (_, _, events) = since(s, &a, &w, 1_000).await;
    let rest = s
        .events_since(a.id, &w, Some(events[1].0), 1_000)
        .await
        .unwrap();
    assert_eq!(event_client_ids(&rest), [Some("new-3"), Some("new-4")]);
    let changed = s
        .contacts_changed_since(a.id, &w, Some(now["c2"].id), 1_000)
        .await
        .unwrap();
    assert!(changed.iter().all(|c| c.id > now["c2"].id));

    // A watermark taken after everything reads nothing, and it survives a round trip
    // through JSON (the snapshot header).
    let w2 = s.watermark(a.id).await.unwrap();
    let w2: Watermark = serde_json::from_str(&serde_json::to_string(&w2).unwrap()).unwrap();
    assert_eq!(since(s, &a, &w2, 100).await, (vec![], vec![], vec![]));
    // Rewriting a contact with what it already holds is a write all the same.
    s.upsert_contacts(a.id, &[contact("c3")]).await.unwrap();
    let (_, changed, _) = since(s, &a, &w2, 100).await;
    assert_eq!(ids(&changed), ["c3"]);
}

async fn events_after_a_watermark_all_come_back_when_deleted_newest_ids_are_given_again(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Beta").await;
    s.upsert_contacts(a.id, &[contact("keep"), contact("old")])
        .await
        .unwrap();
    s.upsert_contacts(b.id, &[contact("bx")]).await.unwrap();
    // The table's newest events belong first to A's "old", then to B's "bx".
    s.insert_events(a.id, &[visit("keep", Some("k1"), 1, "https://a/")])
        .await
        .unwrap();
    s.insert_events(
        a.id,
        &[
            visit("old", Some("o1"), 2, "https://a/"),
            visit("old", Some("o2"), 3, "https://a/"),
        ],
    )
    .await
    .unwrap();
    s.insert_events(
        b.id,
        &[
            visit("bx", Some("b1"), 4, "https://b/"),
            visit("bx", Some("b2"), 5, "https://b/"),
        ],
    )
    .await
    .unwrap();
    let old_id = get(s, &a, "old").await.id;
    let w = s.watermark(a.id).await.unwrap();

    // Deleting A's "old" leaves B's newer events; deleting B's "bx" then leaves only
    // A's first event: the ids above it are free again.
    assert!(s.delete_contact(a.id, "old").await.unwrap());
    assert!(s.delete_contact(b.id, "bx").await.unwrap());
    s.insert_events(
        a.id,
        &[
            visit("keep", Some("n1"), 10, "https://a/"),
            visit("keep", Some("n2"), 11, "https://a/"),
            visit("keep", Some("n3"), 12, "https://a/"),
        ],
    )
    .await
    .unwrap();
    s.upsert_contacts(b.id, &[contact("by")]).await.unwrap();
    s.insert_events(b.id, &[visit("by", Some("b3"), 13, "https://b/")])
        .await
        .unwrap();
    s.insert_events(a.id, &[visit("keep", Some("n4"), 14, "https://a/")])
        .await
        .unwrap();

    let (deleted, changed, events) = since(s, &a, &w, 2).await;
    assert_eq!(deleted, [old_id]);
    assert!(changed.is_empty());
    assert_eq!(
        event_client_ids(&events),
        [Some("n1"), Some("n2"), Some("n3"), Some("n4")]
    );
    if s.backend() == "sqlite" {
        // The case this scenario is about did happen: new events took ids at or below
        // the watermark's.
        assert!(
            events[0].0 <= w.event_id,
            "{} > {}",
            events[0].0,
            w.event_id
        );
    }
    // After all of it, a new watermark reads nothing.
    let w2 = s.watermark(a.id).await.unwrap();
    assert_eq!(since(s, &a, &w2, 2).await, (vec![], vec![], vec![]));
    s.insert_events(a.id, &[visit("keep", Some("n5"), 15, "https://a/")])
        .await
        .unwrap();
    let (_, _, events) = since(s, &a, &w2, 2).await;
    assert_eq!(event_client_ids(&events), [Some("n5")]);
}

async fn a_watermark_on_an_account_that_has_nothing_reads_nothing(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Empty").await;
    let b = account(s, "Busy").await;
    s.upsert_contacts(b.id, &[contact("x")]).await.unwrap();
    s.insert_events(b.id, &[visit("x", None, 1, "https://b/")])
        .await
        .unwrap();
    let w = s.watermark(a.id).await.unwrap();
    s.insert_events(b.id, &[visit("x", None, 2, "https://b/")])
        .await
        .unwrap();
    assert!(s.delete_contact(b.id, "x").await.unwrap());
    assert_eq!(since(s, &a, &w, 10).await, (vec![], vec![], vec![]));
    // Its first writes are all read.
    s.upsert_contacts(a.id, &[contact("first")]).await.unwrap();
    s.insert_events(a.id, &[visit("first", Some("f"), 3, "https://a/")])
        .await
        .unwrap();
    let (deleted, changed, events) = since(s, &a, &w, 10).await;
    assert!(deleted.is_empty());
    assert_eq!(ids(&changed), ["first"]);
    assert_eq!(event_client_ids(&events), [Some("f")]);
}

async fn the_changes_logged_after_a_watermark_come_back_for_that_account_only(ctx: Ctx) {
    let s = &ctx.store;
    let a = account(s, "Acme").await;
    let b = account(s, "Other").await;
    let s1 = s
        .create_segment(a.id, &draft("S1"), ts(0))
        .await
        .unwrap()
        .id;
    let s2 = s
        .create_segment(a.id, &draft("S2"), ts(0))
        .await
        .unwrap()
        .id;
    let other = s.create_segment(b.id, &draft("S"), ts(0)).await.unwrap().id;
    let change = |segment: i64, contact: i64, entered: bool| ChangeRecord {
        segment,
        contact,
        external_id: format!("c{contact}"),
        entered,
        at: ts(1_000 + contact),
    };
    s.record_changes(a.id, &[change(s1, 1, true), change(s2, 2, true)])
        .await
        .unwrap();
    let w = s.watermark(a.id).await.unwrap();
    assert!(
        s.changes_since(a.id, &w, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    s.record_changes(a.id, &[change(s1, 1, false), change(s2, 3, true)])
        .await
        .unwrap();
    s.record_changes(b.id, &[change(other, 9, true)])
        .await
        .unwrap();
    s.record_changes(a.id, &[change(s1, 4, true)])
        .await
        .unwrap();
    let all = s.changes_since(a.id, &w, None, 10).await.unwrap();
    let seen: Vec<ChangeRecord> = all.iter().map(|c| c.change.clone()).collect();
    assert_eq!(
        seen,
        [
            change(s1, 1, false),
            change(s2, 3, true),
            change(s1, 4, true)
        ],
        "every segment of the account, in log order, none of the other account's"
    );
    // Paged by seq.
    let first = s.changes_since(a.id, &w, None, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = s
        .changes_since(a.id, &w, Some(first[1].seq), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].change, change(s1, 4, true));
}

async fn an_import_moves_from_uploaded_to_running_once_and_ends_with_its_figures(ctx: Ctx) {
    let s = &ctx.store;
    let a = s.create_account("A", "UTC").await.unwrap();
    let b = s.create_account("B", "UTC").await.unwrap();
    let new = NewImport {
        file_name: "people, \"all\".csv".into(),
        columns: vec!["external_id".into(), "E-mail".into()],
        file_bytes: 5_000_000_000,
    };
    let import = s.create_import(a.id, &new, ts(1_000)).await.unwrap();
    assert_eq!(
        (
            import.status,
            &import.columns,
            import.file_bytes,
            import.created_at
        ),
        (
            ImportStatus::Uploaded,
            &new.columns,
            new.file_bytes,
            ts(1_000)
        )
    );
    assert_eq!(import.progress, ImportProgress::default());
    // Another account neither sees nor starts it.
    assert_eq!(s.import(b.id, import.id).await.unwrap(), None);
    let mapping = json!({"external_id": "external_id", "E-mail": "email"});
    assert!(!s.start_import(b.id, import.id, &mapping).await.unwrap());
    // Of two starts one wins.
    assert!(s.start_import(a.id, import.id, &mapping).await.unwrap());
    assert!(!s.start_import(a.id, import.id, &mapping).await.unwrap());
    let halfway = ImportProgress {
        bytes_read: 2_500_000_000,
        rows_imported: 5_000,
        rows_rejected: 3,
    };
    s.import_progress(a.id, import.id, &halfway).await.unwrap();
    let running = s.import(a.id, import.id).await.unwrap().unwrap();
    assert_eq!(
        (running.status, running.progress, running.mapping.clone()),
        (ImportStatus::Running, halfway, Some(mapping))
    );
    // A second running import is failed by a restart; the first ends done.
    let other = s.create_import(a.id, &new, ts(2_000)).await.unwrap();
    s.start_import(a.id, other.id, &json!({})).await.unwrap();
    let end = ImportProgress {
        bytes_read: 5_000_000_000,
        rows_imported: 9_990,
        rows_rejected: 10,
    };
    s.finish_import(a.id, import.id, ImportStatus::Done, &end, None, ts(3_000))
        .await
        .unwrap();
    assert_eq!(s.interrupt_imports("stopped", ts(4_000)).await.unwrap(), 1);
    let done = s.import(a.id, import.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.progress, done.error, done.finished_at),
        (ImportStatus::Done, end, None, Some(ts(3_000)))
    );
    let failed = s.import(a.id, other.id).await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref(), failed.finished_at),
        (ImportStatus::Failed, Some("stopped"), Some(ts(4_000)))
    );
    // A finished import takes no more progress.
    s.import_progress(a.id, import.id, &halfway).await.unwrap();
    assert_eq!(
        s.import(a.id, import.id).await.unwrap().unwrap().progress,
        end
    );
}
