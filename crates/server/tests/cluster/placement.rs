//! Scenario 1: accounts spread over the nodes; any node takes any account's writes; the
//! follower keeps up with the owner.

use std::collections::BTreeMap;

use crate::harness::{Cluster, Options, Tenant, wait_until};
use crate::{CATCH_UP, CONVERGENCE};

pub async fn thirty_accounts_spread_over_three_nodes_and_writes_through_any_node_converge(
    db_url: String,
) {
    let cluster = Cluster::start(&db_url, Options::default()).await;
    let accounts = cluster.create_accounts("acct", 30).await;
    let placements = cluster.wait_placed(&accounts).await;

    // Every node owns some accounts, and each owner has a follower on another node.
    let mut owned: BTreeMap<String, usize> = BTreeMap::new();
    for p in placements.values() {
        *owned.entry(p.owner.clone().unwrap()).or_default() += 1;
        assert_ne!(p.owner, p.follower, "{p:?}");
        assert!(p.epoch >= 1, "{p:?}");
    }
    assert_eq!(owned.len(), 3, "every node owns some of the 30: {owned:?}");
    // Each node's own status agrees that it holds its accounts, in the role placed.
    wait_until(
        "each node holds its accounts in the placed role",
        CATCH_UP,
        || async {
            for i in cluster.running() {
                let status = cluster.status(i).await?;
                let me = &cluster.nodes[i].id;
                for p in placements.values() {
                    let role = if p.owner.as_ref() == Some(me) {
                        "owner"
                    } else if p.follower.as_ref() == Some(me) {
                        "follower"
                    } else {
                        continue;
                    };
                    if !status
                        .held
                        .iter()
                        .any(|h| h.account == p.account && h.role == role)
                    {
                        return Err(format!(
                            "{me} does not hold account {} as {role}",
                            p.account
                        ));
                    }
                }
                if !status.lease_valid {
                    return Err(format!("{me}: lease not valid"));
                }
            }
            Ok(())
        },
    )
    .await;

    // Every write goes through the node that neither owns nor follows the account, so
    // each one is forwarded.
    let mut tenants = Vec::new();
    for account in accounts.iter().cloned() {
        let p = &placements[&account.id];
        let other = (0..3)
            .find(|&i| {
                let id = Some(&cluster.nodes[i].id);
                p.owner.as_ref() != id && p.follower.as_ref() != id
            })
            .unwrap();
        let mut tenant = Tenant::set_up(&cluster, other, account, 40).await;
        let api = cluster.api(other, &tenant.account);
        // A second batch that turns two VIPs into non-VIPs (exits) and adds buyers.
        let r = api
            .upsert(
                &mut tenant.ledger,
                &[
                    ("seed-0".into(), false),
                    ("seed-2".into(), false),
                    ("late-1".into(), true),
                ],
            )
            .await;
        assert!(r.ok(), "{} {}", r.status, r.body);
        let r = api
            .purchase(&mut tenant.ledger, &["seed-1".into(), "late-1".into()])
            .await;
        assert!(r.ok(), "{} {}", r.status, r.body);
        tenants.push(tenant);
    }

    // Within a second of the last write every follower has applied every write...
    let all: Vec<_> = tenants.iter().map(|t| t.account.clone()).collect();
    let took = cluster.wait_caught_up(&all, CONVERGENCE).await;
    eprintln!("followers of 30 accounts caught up {took:?} after the last write");
    let status = cluster.status(0).await.unwrap();
    for t in &tenants {
        // Field, three segments, two upserts, two event batches: all stamped.
        let p = status.placement(t.account.id).unwrap();
        assert!(p.write_seq >= 8, "{p:?}");
        // The placement did not move while nothing failed.
        assert_eq!(
            (&p.owner, &p.follower, p.epoch),
            (
                &placements[&t.account.id].owner,
                &placements[&t.account.id].follower,
                placements[&t.account.id].epoch
            )
        );
    }
    // Each node's cheap probe (no database read) names what its status names, and its
    // followers are where the owners are.
    for i in cluster.running() {
        let status = cluster.status(i).await.unwrap();
        let held = cluster.held(i).await.unwrap();
        let roles = |h: &[crate::harness::Held]| -> Vec<(i64, String)> {
            h.iter().map(|h| (h.account, h.role.clone())).collect()
        };
        assert_eq!(roles(&held), roles(&status.held), "{}", cluster.nodes[i].id);
        for h in held.iter().filter(|h| h.role == "follower") {
            let p = status.placement(h.account).unwrap();
            assert_eq!(h.applied_seq, p.write_seq, "{h:?}");
        }
    }

    // Every node, serving or forwarding, answers exactly what was written.
    for t in &tenants {
        t.agrees_everywhere(&cluster).await.unwrap();
    }

    // The operator's view: `segmentd cluster status` answers and names every node.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_segmentd"))
        .args(["cluster", "status", "--database-url", &db_url])
        .env_remove("SEGMENTD_DATA_DIR")
        .env_remove("SEGMENTD_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in &cluster.nodes {
        assert!(
            text.contains(&node.id),
            "{} is missing from:\n{text}",
            node.id
        );
    }
}
