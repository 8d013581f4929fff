//! Scenario 4: NATS is an accelerator, never the record. One server down changes
//! nothing; all three down, followers catch up from PostgreSQL; back, the cluster goes on.

use std::collections::BTreeMap;

use crate::CATCH_UP;
use crate::harness::{Cluster, Options, Placement, Tenant};

/// Writes one acknowledged batch to every account through the node that neither owns
/// nor follows it, then waits until every follower applied it and checks every node.
async fn write_and_catch_up(
    cluster: &Cluster,
    tenants: &mut [Tenant],
    placements: &BTreeMap<i64, Placement>,
    phase: &str,
) {
    for t in tenants.iter_mut() {
        let p = &placements[&t.account.id];
        let via = (0..cluster.nodes.len())
            .find(|&i| {
                let id = Some(&cluster.nodes[i].id);
                p.owner.as_ref() != id && p.follower.as_ref() != id
            })
            .unwrap();
        let api = cluster.api(via, &t.account);
        let contacts: Vec<(String, bool)> = (0..10)
            .map(|i| (format!("{phase}-{i}"), i % 2 == 1))
            .chain([("seed-0".to_owned(), phase.len().is_multiple_of(2))])
            .collect();
        let r = api.upsert(&mut t.ledger, &contacts).await;
        assert!(r.ok(), "{phase}: {} {}", r.status, r.body);
        let r = api
            .purchase(&mut t.ledger, &[format!("{phase}-0"), format!("{phase}-5")])
            .await;
        assert!(r.ok(), "{phase}: {} {}", r.status, r.body);
    }
    let accounts: Vec<_> = tenants.iter().map(|t| t.account.clone()).collect();
    let took = cluster.wait_caught_up(&accounts, CATCH_UP).await;
    eprintln!("{phase}: followers caught up in {took:?}");
    for t in tenants.iter() {
        t.agrees_everywhere(cluster)
            .await
            .unwrap_or_else(|e| panic!("{phase}: {e}"));
    }
}

/// What the followers of these accounts applied so far, summed over the nodes: writes
/// from fan-out messages, and entries read from the log.
async fn followed(cluster: &Cluster, tenants: &[Tenant]) -> (u64, u64) {
    let mut sums = (0, 0);
    for i in cluster.running() {
        let status = cluster.status(i).await.unwrap();
        for h in status.held.iter().filter(|h| h.role == "follower") {
            if tenants.iter().any(|t| t.account.id == h.account) {
                sums.0 += h.writes_from_messages;
                sums.1 += h.log_entries_read;
            }
        }
    }
    sums
}

/// Writes again until followers apply writes from messages again (the stream's
/// servers elect a leader and the nodes' consumers move to a live server within
/// seconds); what they applied by then.
async fn messages_resume(
    cluster: &Cluster,
    tenants: &mut [Tenant],
    placements: &BTreeMap<i64, Placement>,
    phase: &str,
    since: (u64, u64),
) -> (u64, u64) {
    for round in 0..20 {
        let now = followed(cluster, tenants).await;
        if now.0 > since.0 {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        write_and_catch_up(cluster, tenants, placements, &format!("{phase}-{round}")).await;
    }
    panic!("{phase}: no write came as a message in 20 rounds (since {since:?})");
}

/// Owner, follower and epoch of every account.
async fn roles(
    cluster: &Cluster,
    tenants: &[Tenant],
) -> Vec<(i64, Option<String>, Option<String>, i64)> {
    let status = cluster.status(0).await.unwrap();
    tenants
        .iter()
        .map(|t| {
            let p = status.placement(t.account.id).unwrap();
            (p.account, p.owner.clone(), p.follower.clone(), p.epoch)
        })
        .collect()
}

pub async fn without_nats_writes_go_on_and_followers_catch_up_from_postgres(db_url: String) {
    let mut cluster = Cluster::start(&db_url, Options::default()).await;
    let accounts = cluster.create_accounts("acct", 6).await;
    let placements = cluster.wait_placed(&accounts).await;
    let mut tenants = Vec::new();
    for account in accounts {
        tenants.push(Tenant::set_up(&cluster, 0, account, 20).await);
    }
    let start = followed(&cluster, &tenants).await;
    write_and_catch_up(&cluster, &mut tenants, &placements, "all-up").await;
    let before = roles(&cluster, &tenants).await;
    // With NATS up, the writes reach the followers as messages.
    let all_up = followed(&cluster, &tenants).await;
    assert!(
        all_up.0 > start.0,
        "no write came as a message: {start:?} → {all_up:?}"
    );

    cluster.nats.kill(0);
    write_and_catch_up(&cluster, &mut tenants, &placements, "one-down").await;
    let one_down = messages_resume(&cluster, &mut tenants, &placements, "one-down", all_up).await;

    cluster.nats.kill(1);
    cluster.nats.kill(2);
    write_and_catch_up(&cluster, &mut tenants, &placements, "all-down").await;
    // Without NATS every write was read from the log.
    let all_down = followed(&cluster, &tenants).await;
    assert_eq!(all_down.0, one_down.0, "a message without NATS?");
    assert!(
        all_down.1 >= one_down.1 + 2 * tenants.len() as u64,
        "the followers did not read the log: {one_down:?} → {all_down:?}"
    );

    for i in 0..3 {
        cluster.nats.restart(i);
    }
    cluster.nats.wait_formed().await;
    write_and_catch_up(&cluster, &mut tenants, &placements, "back-up").await;
    messages_resume(&cluster, &mut tenants, &placements, "back-up", all_down).await;

    // No node lost its lease over NATS, so no account moved.
    assert_eq!(roles(&cluster, &tenants).await, before);
    cluster.wait_all_alive().await;
    for t in &tenants {
        let api = cluster.api(1, &t.account);
        for (_, segment) in t.segments.each() {
            api.feed_replays_to_members(segment).await.unwrap();
        }
    }
}
