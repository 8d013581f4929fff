//! Scenario 3: SIGSTOP an owner past its lease, let the others take over, SIGCONT it.

use std::time::Duration;

use crate::CATCH_UP;
use crate::harness::{Cluster, Options, Tenant, wait_until};

pub async fn an_owner_paused_past_its_lease_comes_back_as_a_follower_and_forwards_its_writes(
    db_url: String,
) {
    let options = Options {
        lease_ms: 2_000,
        ..Options::default()
    };
    let mut cluster = Cluster::start(&db_url, options).await;
    let accounts = cluster.create_accounts("acct", 6).await;
    let placements = cluster.wait_placed(&accounts).await;
    let paused = cluster.index_of(placements[&accounts[0].id].owner.as_ref().unwrap());
    let paused_id = cluster.nodes[paused].id.clone();
    let other = (0..3).find(|&i| i != paused).unwrap();

    // Its accounts get data through it, acknowledged before it freezes.
    let mut tenants = Vec::new();
    for account in &accounts {
        if placements[&account.id].owner.as_ref() == Some(&paused_id) {
            tenants.push(Tenant::set_up(&cluster, paused, account.clone(), 30).await);
        }
    }

    // Frozen, it cannot renew its lease; when the lease has lapsed the others move its
    // accounts to their followers, one epoch on. (The takeover itself shows that the
    // pause outlasted the lease; the deadline leaves room for two leases.)
    cluster.pause(paused);
    let within = cluster.lease() * 2 + Duration::from_secs(2);
    let (_, took) = wait_until(
        "the others take the paused owner's accounts",
        within,
        || async {
            let status = cluster.status(other).await?;
            for t in &tenants {
                let (p, before) = (status.placement(t.account.id)?, &placements[&t.account.id]);
                if p.owner.as_deref() == Some(paused_id.as_str()) || p.epoch != before.epoch + 1 {
                    return Err(format!("{p:?}"));
                }
            }
            if status.nodes.iter().any(|n| n.id == paused_id && n.alive) {
                return Err(format!("{paused_id} still alive: {:?}", status.nodes));
            }
            Ok(())
        },
    )
    .await;
    eprintln!("taken over {took:?} after the pause");
    // Meanwhile writes through another node are served by the new owners.
    for t in &mut tenants {
        let r = cluster
            .api(other, &t.account)
            .upsert(&mut t.ledger, &[("during-pause".into(), true)])
            .await;
        assert!(r.ok(), "{} {}", r.status, r.body);
    }

    // Back, it believes for a moment that it still owns them: writes sent to it must
    // still succeed (its own attempt fails on the epoch; the write goes to the new owner).
    cluster.resume(paused);
    for t in &mut tenants {
        let api = cluster.api(paused, &t.account);
        let r = api
            .upsert(
                &mut t.ledger,
                &[("after-pause".into(), true), ("seed-0".into(), false)],
            )
            .await;
        assert!(
            r.ok(),
            "a write sent to the resumed node: {} {}",
            r.status,
            r.body
        );
        let r = api.purchase(&mut t.ledger, &["after-pause".into()]).await;
        assert!(
            r.ok(),
            "a write sent to the resumed node: {} {}",
            r.status,
            r.body
        );
    }
    // It learns it was replaced: it holds those accounts as follower at most.
    wait_until(
        "the resumed node holds its old accounts only as follower",
        cluster.lease() + Duration::from_secs(1),
        || async {
            let status = cluster.status(paused).await?;
            for t in &tenants {
                if let Some(h) = status.held.iter().find(|h| h.account == t.account.id)
                    && h.role != "follower"
                {
                    return Err(format!("{paused_id} holds {h:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
    let status = cluster.status(other).await.unwrap();
    for t in &tenants {
        let p = status.placement(t.account.id).unwrap();
        assert_ne!(p.owner.as_deref(), Some(paused_id.as_str()), "{p:?}");
    }

    // Nothing acknowledged was lost, before, during or after the pause, on any node.
    cluster.wait_all_alive().await;
    let all: Vec<_> = tenants.iter().map(|t| t.account.clone()).collect();
    cluster.wait_caught_up(&all, CATCH_UP).await;
    for t in &tenants {
        t.agrees_everywhere(&cluster).await.unwrap();
        let api = cluster.api(other, &t.account);
        for (_, segment) in t.segments.each() {
            api.feed_replays_to_members(segment).await.unwrap();
        }
    }
}
