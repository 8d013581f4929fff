//! `bench cluster`: three nodes of this binary (`serve --cluster`) on one PostgreSQL
//! database and NATS, measured from outside as a client sees them:
//!
//! - forwarding: the same requests sent to an account's owner and to a node that holds
//!   nothing of it, median and p99 of each, and the difference;
//! - follower lag under a steady event load sent to the owner: every few milliseconds
//!   the account's `write_seq` is read from PostgreSQL (what is committed) and the
//!   follower's `applied_seq` polled until it reaches it;
//! - failover: the owner SIGKILLed, then the time until a write to its account through
//!   another node is acknowledged; the node is started again between rounds.
//!
//! Every process shares the machine's cores: the figures say what ran.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Latencies, check};

pub struct ClusterBench {
    pub database_url: String,
    pub nats: String,
    pub events_per_second: u64,
    /// Events per request of the load.
    pub batch: u64,
    pub seconds: u64,
    pub failovers: usize,
    pub lease_ms: u64,
}

struct Node {
    id: String,
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(bench: &ClusterBench, dir: &Path, id: &str) -> anyhow::Result<Node> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join(id))
        .args(["--database-url", &bench.database_url])
        .args(["--cluster", &bench.nats, "--node-id", id])
        .args(["--lease-ms", &bench.lease_ms.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let base = line
        .trim()
        .strip_prefix("segmentd listening on ")
        .ok_or_else(|| anyhow::anyhow!("node {id} said {line:?}"))?
        .to_owned();
    Ok(Node {
        id: id.to_owned(),
        child,
        base,
    })
}

async fn status(client: &reqwest::Client, node: &Node) -> anyhow::Result<Value> {
    let url = format!("{}/cluster/status", node.base);
    Ok(check(client.get(&url).send().await?, &url)
        .await?
        .json()
        .await?)
}

/// Waits until every account has an owner and a follower that hold it.
async fn settled(client: &reqwest::Client, nodes: &[Node], accounts: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut held = 0;
        for n in nodes {
            if let Ok(s) = status(client, n).await {
                held += s["held"].as_array().map_or(0, Vec::len);
            }
        }
        if held >= accounts * 2 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the cluster did not place every account"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn owner_of(s: &Value, account: i64) -> Option<(String, Option<String>)> {
    s["placements"].as_array()?.iter().find_map(|p| {
        (p["account"].as_i64() == Some(account)).then(|| {
            (
                p["owner"].as_str().unwrap_or_default().to_owned(),
                p["follower"].as_str().map(str::to_owned),
            )
        })
    })
}

async fn timed(request: reqwest::RequestBuilder) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = request.send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "answered {}",
        response.status()
    );
    response.bytes().await?;
    Ok(started.elapsed())
}

pub async fn run_cluster(bench: &ClusterBench) -> anyhow::Result<String> {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir)?;
    let result = measure(bench, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("segmentd-bench-cluster-{}", std::process::id()))
}

async fn measure(bench: &ClusterBench, dir: &Path) -> anyhow::Result<String> {
    let store = segmentd_store::open(&bench.database_url).await?;
    let (_, control) = segmentd_store::open_cluster(&bench.database_url, "bench").await?;
    let mut keys = Vec::new();
    for i in 0..6 {
        let account = store
            .create_account(&format!("bench-cluster-{i}"), "UTC")
            .await?;
        keys.push((
            account.id,
            crate::auth::issue_api_key(store.as_ref(), account.id).await?,
        ));
    }
    let mut nodes = Vec::new();
    for id in ["b1", "b2", "b3"] {
        nodes.push(start_node(bench, dir, id)?);
    }
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    settled(&client, &nodes, keys.len()).await?;
    // Nodes that started later take their accounts over once they have been alive for
    // twice the lease: let those moves happen before measuring.
    tokio::time::sleep(Duration::from_millis(bench.lease_ms * 3)).await;
    let (account, key) = keys[0].clone();
    let s = status(&client, &nodes[0]).await?;
    let (owner, follower) =
        owner_of(&s, account).ok_or_else(|| anyhow::anyhow!("account {account} not placed"))?;
    let follower = follower.ok_or_else(|| anyhow::anyhow!("no follower"))?;
    let by_id = |id: &str| nodes.iter().position(|n| n.id == id);
    let o = by_id(&owner).ok_or_else(|| anyhow::anyhow!("owner {owner} unknown"))?;
    let f = by_id(&follower).ok_or_else(|| anyhow::anyhow!("follower unknown"))?;
    let other = (0..3)
        .find(|i| *i != o && *i != f)
        .ok_or_else(|| anyhow::anyhow!("no third node"))?;
    let api = |node: usize, path: &str| format!("{}/api/v1{path}", nodes[node].base);

    // Data: 10,000 contacts, a segment.
    client
        .post(api(o, "/fields"))
        .bearer_auth(&key)
        .json(&json!({"key": "age", "label": "Age", "type": "number"}))
        .send()
        .await?;
    for k in 0..10 {
        let contacts: Vec<Value> = (0..1_000)
            .map(|i| json!({"external_id": format!("c{}", k * 1_000 + i), "fields": {"age": i % 90}}))
            .collect();
        let r = client
            .post(api(o, "/contacts"))
            .bearer_auth(&key)
            .json(&json!({ "contacts": contacts }))
            .send()
            .await?;
        check(r, "contacts").await?;
    }
    let segment: Value = check(
        client
            .post(api(o, "/segments"))
            .bearer_auth(&key)
            .json(&json!({"name": "clicked", "rule": {"custom_event": "click", "op": "occurred", "min_count": 3}}))
            .send()
            .await?,
        "segment",
    )
    .await?
    .json()
    .await?;
    let segment_id = segment["id"].as_i64().unwrap_or(1);

    // Forwarding: owner vs a node that holds nothing of the account.
    let mut direct = Vec::new();
    let mut forwarded = Vec::new();
    let count = format!("/segments/{segment_id}/count");
    for i in 0..400 {
        let (d, fw) = (
            timed(client.get(api(o, &count)).bearer_auth(&key)).await?,
            timed(client.get(api(other, &count)).bearer_auth(&key)).await?,
        );
        if i >= 20 {
            direct.push(d);
            forwarded.push(fw);
        }
    }
    let mut direct_w = Vec::new();
    let mut forwarded_w = Vec::new();
    for i in 0..200 {
        let body = json!({"contacts": [{"external_id": format!("w{i}"), "fields": {"age": 40}}]});
        let (d, fw) = (
            timed(
                client
                    .post(api(o, "/contacts"))
                    .bearer_auth(&key)
                    .json(&body),
            )
            .await?,
            timed(
                client
                    .post(api(other, "/contacts"))
                    .bearer_auth(&key)
                    .json(&body),
            )
            .await?,
        );
        if i >= 10 {
            direct_w.push(d);
            forwarded_w.push(fw);
        }
    }
    let (direct, forwarded) = (Latencies::new(direct), Latencies::new(forwarded));
    let (direct_w, forwarded_w) = (Latencies::new(direct_w), Latencies::new(forwarded_w));

    // Follower lag under a steady load sent to the owner.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let batch = bench.batch.clamp(1, 10_000);
    let per_second = bench.events_per_second.max(batch);
    let writers = 4u64;
    let mut load = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (client, url, key, stop, sent) = (
            client.clone(),
            api(o, "/events"),
            key.clone(),
            stop.clone(),
            sent.clone(),
        );
        // The bodies are made once: rendering 50,000 events a second would take the
        // cores the cluster is measured on.
        let now = jiff::Timestamp::now().to_string();
        let bodies: Vec<bytes::Bytes> = (0..10u64)
            .map(|n| {
                let events: Vec<Value> = (0..batch)
                    .map(|i| {
                        json!({"contact": format!("c{}", (n * batch + i + w * 7) % 10_000),
                               "type": "custom", "name": "click", "timestamp": now})
                    })
                    .collect();
                json!({ "events": events }).to_string().into()
            })
            .collect();
        load.spawn(async move {
            let every = Duration::from_secs_f64((batch * writers) as f64 / per_second as f64);
            let mut ticks = tokio::time::interval(every);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let body = bodies[n % bodies.len()].clone();
                n += 1;
                if let Ok(r) = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await
                    && r.status().is_success()
                {
                    sent.fetch_add(batch, Ordering::Relaxed);
                }
            }
        });
    }
    let started = Instant::now();
    let mut lags = Vec::new();
    // The follower's own view, which reads no database: polling it every millisecond
    // must not load what is measured.
    let held_url = format!("{}/cluster/held", nodes[f].base);
    tokio::time::sleep(Duration::from_millis(500)).await;
    while started.elapsed() < Duration::from_secs(bench.seconds) {
        let t0 = Instant::now();
        let target = control
            .write_seqs(&[account])
            .await?
            .first()
            .map_or(0, |(_, s)| *s);
        loop {
            let s: Value = client.get(&held_url).send().await?.json().await?;
            let applied = s
                .as_array()
                .and_then(|h| h.iter().find(|x| x["account"].as_i64() == Some(account)))
                .and_then(|x| x["applied_seq"].as_i64())
                .unwrap_or(0);
            if applied >= target {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("the follower did not reach seq {target} in 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lags.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let load_seconds = started.elapsed().as_secs_f64();
    let reached = sent.load(Ordering::Relaxed) as f64 / load_seconds;
    let lags = Latencies::new(lags);

    // Failover: the owner of each account in turn killed, its account written through
    // another node until acknowledged.
    let mut failovers = Vec::new();
    for round in 0..bench.failovers {
        let (account, key) = keys[round % keys.len()].clone();
        let s = status(&client, &nodes[0]).await?;
        let (owner, _) = owner_of(&s, account).ok_or_else(|| anyhow::anyhow!("not placed"))?;
        let victim = by_id_in(&nodes, &owner).ok_or_else(|| anyhow::anyhow!("owner unknown"))?;
        let via = (victim + 1) % nodes.len();
        // Only the first account has fields: a contact without any fits every account.
        let body = json!({"contacts": [{"external_id": format!("f{round}")}]});
        let url = format!("{}/api/v1/contacts", nodes[via].base);
        let _ = nodes[victim].child.kill();
        let killed = Instant::now();
        loop {
            let answered = client
                .post(&url)
                .bearer_auth(&key)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            let last = match answered {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(30),
                "no failover in 30 s (account {account}, owner {owner} killed, written through {}; last answer: {last})",
                nodes[via].id
            );
        }
        failovers.push(killed.elapsed());
        let id = nodes[victim].id.clone();
        nodes[victim] = start_node(bench, dir, &id)?;
        settled(&client, &nodes, keys.len()).await?;
        // Let the restarted node settle in before the next round.
        tokio::time::sleep(Duration::from_millis(bench.lease_ms * 3)).await;
    }
    let failovers = Latencies::new(failovers);
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let mut out = String::new();
    use std::fmt::Write;
    writeln!(
        out,
        "segmentd bench cluster: 3 nodes (debug or release as built), PostgreSQL and NATS on this machine"
    )?;
    writeln!(out, "| figure | median | p99 | target |")?;
    writeln!(out, "| --- | ---: | ---: | --- |")?;
    writeln!(
        out,
        "| saved count, at the owner | {} | {} | |",
        ms(direct.median()),
        ms(direct.p99())
    )?;
    writeln!(
        out,
        "| saved count, through another node | {} | {} | |",
        ms(forwarded.median()),
        ms(forwarded.p99())
    )?;
    writeln!(
        out,
        "| forwarding overhead (read) | {} | {} | ≤ 1 ms |",
        ms(forwarded.median().saturating_sub(direct.median())),
        ms(forwarded.p99().saturating_sub(direct.p99()))
    )?;
    writeln!(
        out,
        "| one-contact upsert, at the owner | {} | {} | |",
        ms(direct_w.median()),
        ms(direct_w.p99())
    )?;
    writeln!(
        out,
        "| one-contact upsert, through another node | {} | {} | |",
        ms(forwarded_w.median()),
        ms(forwarded_w.p99())
    )?;
    writeln!(
        out,
        "| forwarding overhead (write) | {} | {} | ≤ 1 ms |",
        ms(forwarded_w.median().saturating_sub(direct_w.median())),
        ms(forwarded_w.p99().saturating_sub(direct_w.p99()))
    )?;
    writeln!(
        out,
        "| follower lag at {:.0} events/s acknowledged, batches of {} ({} samples) | {} | {} | ≤ 50 ms at 50,000/s |",
        reached,
        batch,
        lags.len(),
        ms(lags.median()),
        ms(lags.p99())
    )?;
    writeln!(
        out,
        "| failover, owner SIGKILLed → its account acknowledges a write ({} rounds, lease {} ms) | {} | {} | ≤ 5 s |",
        failovers.len(),
        bench.lease_ms,
        ms(failovers.median()),
        ms(failovers.p99())
    )?;
    Ok(out)
}

fn by_id_in(nodes: &[Node], id: &str) -> Option<usize> {
    nodes.iter().position(|n| n.id == id)
}
