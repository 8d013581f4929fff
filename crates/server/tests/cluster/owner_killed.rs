//! Scenario 2: SIGKILL an owner while a client writes and a campaign sends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::CATCH_UP;
use crate::harness::{Api, Cluster, Ledger, Options, Tenant, wait_until};

/// A client writing batches to one account until stopped: each batch ten new contacts
/// (every other one a VIP), the previous batch's first VIP leaving the VIPs, and a
/// purchase by every third new contact. Every write and its answer go in the ledger.
pub struct Writer {
    stop: Arc<AtomicBool>,
    /// Batches whose two writes were both acknowledged.
    pub acked: Arc<AtomicUsize>,
    handle: tokio::task::JoinHandle<(Ledger, Vec<String>)>,
}

impl Writer {
    pub fn start(api: Api, prefix: &'static str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let (s, a) = (stop.clone(), acked.clone());
        let handle = tokio::spawn(async move {
            let (mut ledger, mut failures) = (Ledger::default(), Vec::new());
            let mut k = 0usize;
            while !s.load(Ordering::Relaxed) {
                let mut contacts: Vec<(String, bool)> = (0..10)
                    .map(|j| (format!("{prefix}{k}-{j}"), j % 2 == 0))
                    .collect();
                if k > 0 {
                    contacts.push((format!("{prefix}{}-0", k - 1), false));
                }
                let upsert = api.upsert(&mut ledger, &contacts).await;
                let buyers: Vec<String> = (0..10)
                    .step_by(3)
                    .map(|j| format!("{prefix}{k}-{j}"))
                    .collect();
                let purchase = api.purchase(&mut ledger, &buyers).await;
                if upsert.ok() && purchase.ok() {
                    a.fetch_add(1, Ordering::Relaxed);
                } else {
                    for r in [upsert, purchase].iter().filter(|r| !r.ok()) {
                        failures.push(format!("batch {k}: {} {}", r.status, r.body));
                    }
                }
                k += 1;
            }
            (ledger, failures)
        });
        Writer {
            stop,
            acked,
            handle,
        }
    }

    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops after the batch under way; the ledger and every failed write.
    pub async fn finish(self) -> (Ledger, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap()
    }

    /// Waits until `n` more batches than now were acknowledged.
    pub async fn wait_more(&self, n: usize, within: Duration) {
        let from = self.acked();
        wait_until(
            "the writer has more batches acknowledged",
            within,
            || async {
                let now = self.acked();
                (now >= from + n)
                    .then_some(())
                    .ok_or(format!("{} of {n} more", now - from))
            },
        )
        .await;
    }
}

pub async fn a_killed_owner_is_replaced_within_its_lease_and_nothing_acknowledged_is_lost(
    db_url: String,
) {
    let options = Options {
        lease_ms: 2_000,
        // 300 recipients at 100 a second: the campaign is still sending at the kill.
        send_rate: Some(100),
        ..Options::default()
    };
    let mut cluster = Cluster::start(&db_url, options).await;
    let accounts = cluster.create_accounts("acct", 6).await;
    let placements = cluster.wait_placed(&accounts).await;

    // The victim owns the first account; the client talks to the node that neither owns
    // nor follows it, before and after the kill.
    let first = &placements[&accounts[0].id];
    let victim = cluster.index_of(first.owner.as_ref().unwrap());
    let heir = first.follower.clone().unwrap();
    let via = (0..3)
        .find(|&i| i != victim && cluster.nodes[i].id != heir)
        .unwrap();
    let victims: Vec<_> = accounts
        .iter()
        .filter(|a| placements[&a.id].owner == first.owner)
        .cloned()
        .collect();
    let mut tenants = Vec::new();
    for (i, account) in victims.iter().enumerate() {
        let seeded = if i == 0 { 300 } else { 20 };
        tenants.push(Tenant::set_up(&cluster, via, account.clone(), seeded).await);
    }
    let api = cluster.api(via, &tenants[0].account);

    let writer = Writer::start(api.clone(), "w");
    writer.wait_more(3, Duration::from_secs(10)).await;
    let r = api
        .post(
            "/campaigns",
            &json!({"name": "Sale", "channel": "email", "targets": [tenants[0].segments.everyone],
                "content": {"from": "shop@example.com", "subject": "Sale", "text": "Hi {{email}}"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let campaign = r.json()["id"].as_i64().unwrap();
    let r = api
        .post(&format!("/campaigns/{campaign}/send"), &json!({}))
        .await;
    assert!(r.ok(), "{} {}", r.status, r.body);
    wait_until(
        "the campaign is sending",
        Duration::from_secs(10),
        || async {
            let n = cluster.inbox.lock().unwrap().len();
            (n >= 20).then_some(()).ok_or(format!("{n} mails"))
        },
    )
    .await;

    cluster.kill(victim);
    let mailed_at_kill = cluster.inbox.lock().unwrap().len();

    // Within the lease and a second, each of its accounts has a new owner one epoch on
    // (its follower), takes writes and answers reads, all through the client's node.
    let probes: std::sync::Mutex<BTreeMap<i64, Ledger>> = Default::default();
    let victim_id = cluster.nodes[victim].id.clone();
    let within = cluster.lease() + Duration::from_secs(1);
    let (_, took) = wait_until(
        "the killed owner's accounts answer again",
        within,
        || async {
            let status = cluster.status(via).await?;
            for t in &tenants {
                let p = status.placement(t.account.id)?;
                let before = &placements[&t.account.id];
                if p.owner.as_deref() == Some(victim_id.as_str()) || p.epoch <= before.epoch {
                    return Err(format!("not moved yet: {p:?}"));
                }
                let api = cluster.api(via, &t.account);
                // A new probe contact per attempt, in a ledger of its own (no other write
                // touches the probes, so it joins the account's ledger in any order).
                let mut ledger = probes
                    .lock()
                    .unwrap()
                    .remove(&t.account.id)
                    .unwrap_or_default();
                let n = ledger.acknowledged() + ledger.unacknowledged();
                let r = api
                    .upsert(&mut ledger, &[(format!("probe-{n}"), false)])
                    .await;
                probes.lock().unwrap().insert(t.account.id, ledger);
                if !r.ok() {
                    return Err(format!(
                        "account {}: write: {} {}",
                        t.account.id, r.status, r.body
                    ));
                }
                api.count(t.segments.everyone).await?;
            }
            Ok(())
        },
    )
    .await;
    eprintln!("the killed owner's accounts answered again {took:?} after the kill");
    let status = cluster.status(via).await.unwrap();
    for t in &tenants {
        let (p, before) = (
            status.placement(t.account.id).unwrap(),
            &placements[&t.account.id],
        );
        assert_eq!(
            p.owner, before.follower,
            "the warm follower took over: {p:?}"
        );
        assert_eq!(p.epoch, before.epoch + 1, "{p:?}");
    }

    writer.wait_more(3, Duration::from_secs(30)).await;
    let (ledger, failures) = writer.finish().await;
    eprintln!(
        "writer: {} writes acknowledged, {} not: {failures:?}",
        ledger.acknowledged(),
        ledger.unacknowledged()
    );
    tenants[0].ledger.extend(ledger);
    for t in &mut tenants {
        if let Some(probe) = probes.lock().unwrap().remove(&t.account.id) {
            t.ledger.extend(probe);
        }
    }

    // The new owner finished the campaign; nobody got it twice, nobody outside it got it.
    let (sent, _) = wait_until("the campaign is sent", Duration::from_secs(30), || async {
        let c = api.get(&format!("/campaigns/{campaign}")).await.ok_json()?;
        (c["status"] == "sent")
            .then_some(c.clone())
            .ok_or(format!("{c}"))
    })
    .await;
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    for m in cluster.inbox.lock().unwrap().iter() {
        for to in &m.to {
            *received.entry(to.clone()).or_default() += 1;
        }
    }
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "mailed twice: {twice:?}");
    let addresses = tenants[0].ledger.addresses();
    let strangers: Vec<_> = received
        .keys()
        .filter(|a| !addresses.contains(*a))
        .collect();
    assert!(
        strangers.is_empty(),
        "mailed outside the account: {strangers:?}"
    );
    let stats = api
        .get(&format!("/campaigns/{campaign}/stats"))
        .await
        .ok_json()
        .unwrap();
    assert!(
        stats["sent"].as_u64().unwrap() <= received.len() as u64,
        "every recipient marked sent was received: {stats}"
    );
    assert!(
        received.len() > mailed_at_kill,
        "the new owner went on sending: {mailed_at_kill} at the kill, {} in all; {sent}",
        received.len()
    );

    // Once the new followers caught up: every acknowledged write is visible on every
    // node, and each segment's feed replays to exactly its members.
    let all: Vec<_> = tenants.iter().map(|t| t.account.clone()).collect();
    cluster.wait_caught_up(&all, CATCH_UP).await;
    for t in &tenants {
        t.agrees_everywhere(&cluster).await.unwrap();
        let api = cluster.api(via, &t.account);
        for (_, segment) in t.segments.each() {
            api.feed_replays_to_members(segment).await.unwrap();
        }
    }
}
