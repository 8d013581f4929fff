//! Scenario 5: a fourth node joins and accounts move to it while clients write and read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::CATCH_UP;
use crate::harness::{Api, Cluster, Ledger, Options, Tenant, wait_until};

pub async fn a_joining_node_takes_accounts_over_while_clients_see_no_error(db_url: String) {
    let mut cluster = Cluster::start(&db_url, Options::default()).await;
    let accounts = cluster.create_accounts("acct", 30).await;
    cluster.wait_placed(&accounts).await;
    let mut tenants = Vec::new();
    for (i, account) in accounts.into_iter().enumerate() {
        tenants.push(Tenant::set_up(&cluster, i % 3, account, 10).await);
    }

    // A client goes round the accounts and the three old nodes: a write, then a count
    // and a members page; every answer must be a success.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<Vec<(i64, Api, i64)>> = (0..3)
        .map(|node| {
            tenants
                .iter()
                .map(|t| (t.account.id, cluster.api(node, &t.account), t.segments.vip))
                .collect()
        })
        .collect();
    let client = {
        let (stop, done) = (stop.clone(), done.clone());
        tokio::spawn(async move {
            let mut ledgers: BTreeMap<i64, Ledger> = BTreeMap::new();
            let mut errors = Vec::new();
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // Account k mod 30, through node (k + k / 30) mod 3: each account is
                // visited through every old node in turn.
                let n = clients[0].len();
                let (account, api, vip) = &clients[(k + k / n) % 3][k % n];
                let ledger = ledgers.entry(*account).or_default();
                let contacts = [(format!("live-{k}"), k.is_multiple_of(2))];
                let r = api.upsert(ledger, &contacts).await;
                if !r.ok() {
                    errors.push(format!(
                        "{}: write to account {account}: {} {}",
                        api.base, r.status, r.body
                    ));
                }
                if let Err(e) = api.count(*vip).await {
                    errors.push(format!("{}: count of account {account}: {e}", api.base));
                }
                let page = api.get(&format!("/segments/{vip}/members?limit=5")).await;
                if !page.ok() {
                    errors.push(format!(
                        "{}: members of account {account}: {} {}",
                        api.base, page.status, page.body
                    ));
                }
                done.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
            (ledgers, errors)
        })
    };
    let rounds = |n: usize| {
        let done = done.clone();
        async move {
            let from = done.load(Ordering::Relaxed);
            wait_until("the client goes on", Duration::from_secs(60), || async {
                let now = done.load(Ordering::Relaxed);
                (now >= from + n)
                    .then_some(())
                    .ok_or(format!("{} of {n}", now - from))
            })
            .await;
        }
    };
    rounds(30).await;

    let joined = cluster.add_node().await;
    let joined_id = cluster.nodes[joined].id.clone();
    cluster.wait_all_alive().await;
    // Accounts move to it: it owns some, and holds them as owner itself.
    let (moved, took) = wait_until(
        "accounts move to the new node",
        Duration::from_secs(20),
        || async {
            let status = cluster.status(0).await?;
            let moved = status.owned_by(&joined_id);
            if moved.is_empty() {
                return Err(format!("{joined_id} owns nothing yet"));
            }
            let own = cluster.status(joined).await?;
            for a in &moved {
                if !own
                    .held
                    .iter()
                    .any(|h| h.account == *a && h.role == "owner")
                {
                    return Err(format!(
                        "{joined_id} does not hold account {a} as owner yet"
                    ));
                }
            }
            Ok(moved)
        },
    )
    .await;
    eprintln!(
        "{} accounts moved to {joined_id} within {took:?}",
        moved.len()
    );
    rounds(30).await;
    stop.store(true, Ordering::Relaxed);
    let (ledgers, errors) = client.await.unwrap();
    assert!(
        errors.is_empty(),
        "{} errors seen by the client: {errors:#?}",
        errors.len()
    );

    for t in &mut tenants {
        if let Some(l) = ledgers.get(&t.account.id) {
            t.ledger.extend(l.clone());
        }
    }
    let all: Vec<_> = tenants.iter().map(|t| t.account.clone()).collect();
    cluster.wait_caught_up(&all, CATCH_UP).await;
    for t in &tenants {
        t.agrees_everywhere(&cluster).await.unwrap();
    }
    let status = cluster.status(joined).await.unwrap();
    assert!(!status.owned_by(&joined_id).is_empty(), "{status:?}");
}
