//! The harness checked on its own: the ledger's verdicts as a table, and its client and
//! ledger against one plain segmentd node (no cluster) of today.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Cluster, Kind, Ledger, Options, Tenant, wait_until};
use crate::owner_killed::Writer;

/// One row: writes (contacts, vip, acknowledged?) and purchases (contacts,
/// acknowledged?) in order, then the members a segment may show and whether the ledger
/// accepts them.
struct Case {
    writes: &'static [(&'static [(&'static str, bool)], bool)],
    purchases: &'static [(&'static [&'static str], bool)],
    kind: Kind,
    members: &'static [&'static str],
    accepted: bool,
}

fn ledger_of(case: &Case) -> Ledger {
    // The bookkeeping `Api::upsert` and `Api::purchase` do, without a server.
    let mut ledger = Ledger::default();
    for (contacts, acked) in case.writes {
        let contacts: Vec<(String, bool)> =
            contacts.iter().map(|(c, v)| (c.to_string(), *v)).collect();
        ledger.record_upsert(&contacts, *acked);
    }
    for (contacts, acked) in case.purchases {
        let contacts: Vec<String> = contacts.iter().map(|c| c.to_string()).collect();
        ledger.record_purchase(&contacts, *acked);
    }
    ledger
}

#[test]
fn the_ledger_requires_what_was_acknowledged_and_allows_what_may_have_been_stored() {
    let cases = [
        // Acknowledged: exactly these.
        Case {
            writes: &[(&[("a", true), ("b", false)], true)],
            purchases: &[],
            kind: Kind::Vip,
            members: &["a"],
            accepted: true,
        },
        Case {
            writes: &[(&[("a", true), ("b", false)], true)],
            purchases: &[],
            kind: Kind::Vip,
            members: &[],
            accepted: false,
        },
        Case {
            writes: &[(&[("a", true), ("b", false)], true)],
            purchases: &[],
            kind: Kind::Vip,
            members: &["a", "b"],
            accepted: false,
        },
        Case {
            writes: &[(&[("a", true), ("b", false)], true)],
            purchases: &[],
            kind: Kind::Everyone,
            members: &["a", "b"],
            accepted: true,
        },
        Case {
            writes: &[(&[("a", true)], true)],
            purchases: &[],
            kind: Kind::Everyone,
            members: &["a", "zed"],
            accepted: false,
        },
        // A later acknowledged write wins.
        Case {
            writes: &[(&[("a", true)], true), (&[("a", false)], true)],
            purchases: &[],
            kind: Kind::Vip,
            members: &[],
            accepted: true,
        },
        Case {
            writes: &[(&[("a", true)], true), (&[("a", false)], true)],
            purchases: &[],
            kind: Kind::Vip,
            members: &["a"],
            accepted: false,
        },
        // Unacknowledged: either way, but an acknowledged write after it decides.
        Case {
            writes: &[(&[("a", true)], true), (&[("a", false)], false)],
            purchases: &[],
            kind: Kind::Vip,
            members: &["a"],
            accepted: true,
        },
        Case {
            writes: &[(&[("a", true)], true), (&[("a", false)], false)],
            purchases: &[],
            kind: Kind::Vip,
            members: &[],
            accepted: true,
        },
        Case {
            writes: &[(&[("a", true)], false), (&[("a", false)], true)],
            purchases: &[],
            kind: Kind::Vip,
            members: &["a"],
            accepted: false,
        },
        Case {
            writes: &[(&[("a", true)], false)],
            purchases: &[],
            kind: Kind::Everyone,
            members: &[],
            accepted: true,
        },
        // Events: acknowledged means a buyer; an event for a contact that may not exist
        // may be refused.
        Case {
            writes: &[(&[("a", true)], true)],
            purchases: &[(&["a"], true)],
            kind: Kind::Buyers,
            members: &["a"],
            accepted: true,
        },
        Case {
            writes: &[(&[("a", true)], true)],
            purchases: &[(&["a"], true)],
            kind: Kind::Buyers,
            members: &[],
            accepted: false,
        },
        Case {
            writes: &[(&[("a", true)], true)],
            purchases: &[(&["a"], false)],
            kind: Kind::Buyers,
            members: &[],
            accepted: true,
        },
        Case {
            writes: &[(&[("a", true)], false)],
            purchases: &[(&["a"], true)],
            kind: Kind::Buyers,
            members: &["a"],
            accepted: true,
        },
        Case {
            writes: &[(&[("a", true)], true)],
            purchases: &[],
            kind: Kind::Buyers,
            members: &["a"],
            accepted: false,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let ledger = ledger_of(case);
        let members: Vec<String> = case.members.iter().map(|m| m.to_string()).collect();
        let verdict = ledger.check(case.kind, members.len() as u64, &members);
        assert_eq!(verdict.is_ok(), case.accepted, "case {i}: {verdict:?}");
    }
    // A count that disagrees with the members, or a member listed twice, is refused.
    let mut ledger = Ledger::default();
    ledger.record_upsert(&[("a".into(), true)], true);
    assert!(ledger.check(Kind::Vip, 2, &["a".into()]).is_err());
    assert!(
        ledger
            .check(Kind::Vip, 2, &["a".into(), "a".into()])
            .is_err()
    );
}

/// The client, the ledger, the feed replay and the campaign calls of the scenarios,
/// against one segmentd node without `--cluster` on PostgreSQL.
pub async fn the_harness_agrees_with_a_plain_node(db_url: String) {
    let options = Options {
        nodes: 1,
        plain: true,
        ..Options::default()
    };
    let cluster = Cluster::start(&db_url, options).await;
    let accounts = cluster.create_accounts("plain", 2).await;
    assert_ne!(accounts[0].id, accounts[1].id);
    let mut tenant = Tenant::set_up(&cluster, 0, accounts[0].clone(), 30).await;
    let api = cluster.api(0, &tenant.account);
    let r = api
        .upsert(
            &mut tenant.ledger,
            &[("seed-0".into(), false), ("new".into(), true)],
        )
        .await;
    assert!(r.ok(), "{}", r.body);
    let r = api.purchase(&mut tenant.ledger, &["new".into()]).await;
    assert!(r.ok(), "{}", r.body);
    // A refused write (an event for a contact that does not exist) is recorded as such.
    let r = api.purchase(&mut tenant.ledger, &["nobody".into()]).await;
    assert!(!r.ok());
    assert_eq!(tenant.ledger.unacknowledged(), 1);
    // The writer of the kill scenario: batches with entries and exits, all acknowledged.
    let writer = Writer::start(api.clone(), "w");
    writer.wait_more(3, Duration::from_secs(30)).await;
    let (written, failures) = writer.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(written.acknowledged() >= 6);
    tenant.ledger.extend(written);
    tenant.agrees_everywhere(&cluster).await.unwrap();
    for (_, segment) in tenant.segments.each() {
        api.feed_replays_to_members(segment).await.unwrap();
    }
    let everyone = api.count(tenant.segments.everyone).await.unwrap();
    assert!(everyone > 31, "{everyone}");

    let r = api
        .post(
            "/campaigns",
            &json!({"name": "Sale", "channel": "email", "targets": [tenant.segments.everyone],
                "content": {"from": "shop@example.com", "subject": "Sale", "text": "Hi {{email}}"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let campaign = r.json()["id"].as_i64().unwrap();
    let r = api
        .post(&format!("/campaigns/{campaign}/send"), &json!({}))
        .await;
    assert!(r.ok(), "{} {}", r.status, r.body);
    wait_until("the campaign is sent", Duration::from_secs(30), || async {
        let c = api.get(&format!("/campaigns/{campaign}")).await.ok_json()?;
        (c["status"] == "sent").then_some(()).ok_or(format!("{c}"))
    })
    .await;
    let stats = api
        .get(&format!("/campaigns/{campaign}/stats"))
        .await
        .ok_json()
        .unwrap();
    assert_eq!(stats["sent"], everyone, "{stats}");
    let inbox = cluster.inbox.lock().unwrap().clone();
    assert_eq!(inbox.len() as u64, everyone);
    let addresses = tenant.ledger.addresses();
    assert!(inbox.iter().all(|m| addresses.contains(&m.to[0])));
}
