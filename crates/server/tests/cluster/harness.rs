//! The cluster under test: one fresh PostgreSQL database, a 3-server NATS JetStream
//! cluster, an SMTP sink and `segmentd serve --cluster` nodes as child processes; plus
//! `wait_until`, the client of one account on one node, and `/cluster/status`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::nats::Nats;
use crate::smtp::{Inbox, smtp_sink};

/// `n` distinct ports free a moment ago (all held at once while chosen, so never the
/// same one twice; the child binds them soon after: good enough on one machine).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The last `n` lines of a log file, to explain a failure.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        lines[from..].join("\n")
    )
}

/// Polls `probe` until it answers `Ok`, and fails the test with the probe's last answer
/// when `within` has passed first. Returns the value and how long it took.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let outcome = probe().await;
        let took = start.elapsed();
        match outcome {
            Ok(v) => return (v, took),
            Err(why) if took >= within => {
                panic!("{what}: not within {within:?} (waited {took:?}); last: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// How the nodes of a cluster are started.
#[derive(Clone, Copy)]
pub struct Options {
    pub nodes: usize,
    pub lease_ms: u64,
    /// `--send-rate` (messages per second), to keep a campaign sending across a kill.
    pub send_rate: Option<u32>,
    /// Nodes without `--cluster` (single segmentd processes): only to check the harness
    /// itself against today's segmentd.
    pub plain: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            lease_ms: 3_000,
            send_rate: None,
            plain: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Running,
    /// SIGSTOP: the process exists and holds its sockets, but does nothing.
    Stopped,
    Killed,
}

pub struct Node {
    pub id: String,
    /// `http://127.0.0.1:PORT`, from the line it prints once it listens.
    pub address: String,
    log: PathBuf,
    child: Child,
    pub life: Life,
}

impl Node {
    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} {}", self.id);
    }
}

/// An account, its key, and (once set up) its three segments.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub key: String,
}

pub struct Cluster {
    pub db_url: String,
    pub nats: Nats,
    pub nodes: Vec<Node>,
    pub options: Options,
    pub smtp_port: u16,
    /// Every message the SMTP sink accepted from any node.
    pub inbox: Inbox,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// NATS, the SMTP sink and `options.nodes` nodes on the database at `db_url`; returns
    /// once the first node's status lists every node alive.
    pub async fn start(db_url: &str, options: Options) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let nats = Nats::start(&dir.path().join("nats")).await;
        let (smtp_port, inbox) = smtp_sink().await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let mut cluster = Cluster {
            db_url: db_url.to_owned(),
            nats,
            nodes: Vec::new(),
            options,
            smtp_port,
            inbox,
            http,
            dir,
        };
        for _ in 0..options.nodes {
            cluster.add_node().await;
        }
        if !options.plain {
            cluster.wait_all_alive().await;
        }
        cluster
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.options.lease_ms)
    }

    /// Starts node `n{len+1}`; returns its index once it listens.
    pub async fn add_node(&mut self) -> usize {
        let id = format!("n{}", self.nodes.len() + 1);
        let data_dir = self.dir.path().join(&id);
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = self.dir.path().join(format!("{id}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_segmentd"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(["--database-url", &self.db_url])
            .args(["--smtp-host", "127.0.0.1"])
            .args(["--smtp-port", &self.smtp_port.to_string()]);
        if !self.options.plain {
            command
                .args(["--cluster", &self.nats.urls()])
                .args(["--node-id", &id])
                .args(["--lease-ms", &self.options.lease_ms.to_string()]);
        }
        if let Some(rate) = self.options.send_rate {
            command.args(["--send-rate", &rate.to_string()]);
        }
        for var in [
            "SEGMENTD_CONFIG",
            "SEGMENTD_LISTEN",
            "SEGMENTD_DATA_DIR",
            "SEGMENTD_DATABASE_URL",
            "SEGMENTD_CLUSTER",
            "SEGMENTD_NODE_ID",
            "SEGMENTD_ADVERTISE",
            "SEGMENTD_LEASE_MS",
            "SEGMENTD_REPLICAS",
        ] {
            command.env_remove(var);
        }
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // A thread reads stdout to the end (so the node never writes into a full or
        // closed pipe) and hands over the address from "segmentd listening on …".
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("segmentd listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(address.trim().to_owned());
                }
            }
        });
        let address = match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(address)) => address,
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {id} never said it listens ({}):\n{}",
                    if outcome.is_err() {
                        "timed out"
                    } else {
                        "it exited"
                    },
                    tail(&log, 40)
                );
            }
        };
        self.nodes.push(Node {
            id,
            address,
            log,
            child,
            life: Life::Running,
        });
        self.nodes.len() - 1
    }

    /// SIGKILL: the node dies at once, holding whatever it held.
    pub fn kill(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let _ = n.child.kill();
        let _ = n.child.wait();
        n.life = Life::Killed;
    }

    /// SIGSTOP: the node freezes (its lease lapses while it cannot know).
    pub fn pause(&mut self, node: usize) {
        self.nodes[node].signal("-STOP");
        self.nodes[node].life = Life::Stopped;
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, node: usize) {
        self.nodes[node].signal("-CONT");
        self.nodes[node].life = Life::Running;
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].life == Life::Running)
            .collect()
    }

    pub fn index_of(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Creates accounts `{prefix}1..=n` with the CLI (concurrently) and returns them with
    /// their keys, in order.
    pub async fn create_accounts(&self, prefix: &str, n: usize) -> Vec<Account> {
        let handles: Vec<_> = (1..=n)
            .map(|i| {
                let (name, url) = (format!("{prefix}{i}"), self.db_url.clone());
                tokio::task::spawn_blocking(move || create_account(&name, &url))
            })
            .collect();
        let mut accounts = Vec::new();
        for h in handles {
            accounts.push(h.await.unwrap());
        }
        accounts
    }

    /// The client of `account` on node `node`.
    pub fn api(&self, node: usize, account: &Account) -> Api {
        Api {
            base: format!("{}/api/v1", self.nodes[node].address),
            key: account.key.clone(),
            http: self.http.clone(),
        }
    }

    /// `GET /cluster/status` of one node.
    pub async fn status(&self, node: usize) -> Result<Status, String> {
        self.get_json(node, "/cluster/status").await
    }

    /// `GET /cluster/held` of one node: what it holds, read from no database.
    pub async fn held(&self, node: usize) -> Result<Vec<Held>, String> {
        self.get_json(node, "/cluster/held").await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        node: usize,
        path: &str,
    ) -> Result<T, String> {
        let url = format!("{}{path}", self.nodes[node].address);
        let r = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url}: {status} {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url}: {e}: {body}"))
    }

    /// Waits until node `via` lists every running node alive and no other node alive.
    pub async fn wait_all_alive(&self) {
        let via = self.running()[0];
        let want: Vec<String> = self
            .running()
            .iter()
            .map(|&i| self.nodes[i].id.clone())
            .collect();
        wait_until(
            "every running node is alive in the status",
            Duration::from_secs(20),
            || async {
                let status = self.status(via).await?;
                let mut alive: Vec<String> = status
                    .nodes
                    .iter()
                    .filter(|n| n.alive)
                    .map(|n| n.id.clone())
                    .collect();
                // Each advertises the address it listens on (no --advertise given).
                for n in &status.nodes {
                    if let Some(node) = self.nodes.iter().find(|m| m.id == n.id)
                        && n.address.trim_end_matches('/') != node.address
                    {
                        return Err(format!(
                            "{} advertises {}, listens on {}",
                            n.id, n.address, node.address
                        ));
                    }
                }
                alive.sort();
                (alive == want)
                    .then_some(())
                    .ok_or(format!("alive {alive:?}, want {want:?}"))
            },
        )
        .await;
    }

    /// Waits until every account is placed with an owner and (with two nodes or more
    /// running) a follower, both running; returns the placements by account.
    pub async fn wait_placed(&self, accounts: &[Account]) -> BTreeMap<i64, Placement> {
        let running: Vec<String> = self
            .running()
            .iter()
            .map(|&i| self.nodes[i].id.clone())
            .collect();
        let via = self.running()[0];
        wait_until(
            "every account is placed on running nodes",
            Duration::from_secs(10),
            || async {
                let status = self.status(via).await?;
                let mut out = BTreeMap::new();
                for a in accounts {
                    let p = status.placement(a.id)?;
                    let owner = p.owner.clone().unwrap_or_default();
                    if !running.contains(&owner) {
                        return Err(format!("account {}: owner {owner:?}", a.id));
                    }
                    if running.len() > 1 {
                        let follower = p.follower.clone().unwrap_or_default();
                        if !running.contains(&follower) || follower == owner {
                            return Err(format!("account {}: follower {follower:?}", a.id));
                        }
                    }
                    out.insert(a.id, p.clone());
                }
                Ok(out)
            },
        )
        .await
        .0
    }

    /// `Ok` when, for each account, the status shows its follower at `write_seq`, and
    /// the owner's and the follower's own status show their indexes applied to it.
    pub async fn caught_up(&self, accounts: &[Account]) -> Result<(), String> {
        let mut statuses = BTreeMap::new();
        for i in self.running() {
            statuses.insert(self.nodes[i].id.clone(), self.status(i).await?);
        }
        let any = statuses.values().next().ok_or("no node runs")?;
        for a in accounts {
            let p = any.placement(a.id)?;
            if p.follower_seq != Some(p.write_seq) {
                return Err(format!("account {}: {p:?}", a.id));
            }
            for (role, node) in [("owner", &p.owner), ("follower", &p.follower)] {
                let Some(node) = node else {
                    continue;
                };
                let Some(status) = statuses.get(node) else {
                    return Err(format!(
                        "account {}: its {role} {node} is not running",
                        a.id
                    ));
                };
                let held = status.held.iter().find(|h| h.account == a.id);
                match held {
                    Some(h) if h.role == role && h.applied_seq == p.write_seq => {}
                    other => {
                        return Err(format!(
                            "account {} at write_seq {}: {node} holds {other:?} as {role}",
                            a.id, p.write_seq
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits (at most `within`) until [`Cluster::caught_up`].
    pub async fn wait_caught_up(&self, accounts: &[Account], within: Duration) -> Duration {
        wait_until("followers catch up", within, || self.caught_up(accounts))
            .await
            .1
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL reaches a stopped process too.
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!("{}", tail(&node.log, 30));
            }
        }
    }
}

fn create_account(name: &str, db_url: &str) -> Account {
    let out = Command::new(env!("CARGO_BIN_EXE_segmentd"))
        .args([
            "account",
            "create",
            "--name",
            name,
            "--database-url",
            db_url,
        ])
        .env_remove("SEGMENTD_DATA_DIR")
        .env_remove("SEGMENTD_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "account create {name}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "account NAME created (id N)" then "API key: KEY".
    let id = stdout
        .lines()
        .find_map(|l| l.split_once("created (id ")?.1.strip_suffix(')'))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no account id in {stdout}"));
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("API key: "))
        .unwrap_or_else(|| panic!("no API key in {stdout}"))
        .trim()
        .to_owned();
    Account {
        id,
        name: name.to_owned(),
        key,
    }
}

/// `GET /cluster/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub node: String,
    pub lease_valid: bool,
    pub nodes: Vec<NodeInfo>,
    pub placements: Vec<Placement>,
    pub held: Vec<Held>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub address: String,
    pub alive: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Placement {
    pub account: i64,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub follower: Option<String>,
    pub epoch: i64,
    pub write_seq: i64,
    #[serde(default)]
    pub follower_seq: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Held {
    pub account: i64,
    pub role: String,
    pub applied_seq: i64,
    pub writes_from_messages: u64,
    pub log_entries_read: u64,
}

impl Status {
    pub fn placement(&self, account: i64) -> Result<&Placement, String> {
        self.placements
            .iter()
            .find(|p| p.account == account)
            .ok_or_else(|| format!("{}: no placement of account {account}", self.node))
    }

    /// The accounts `node` owns.
    pub fn owned_by(&self, node: &str) -> Vec<i64> {
        self.placements
            .iter()
            .filter(|p| p.owner.as_deref() == Some(node))
            .map(|p| p.account)
            .collect()
    }
}

/// An answer: status 0 when the request got none (refused, reset, timed out).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// The answer as JSON, or why not (for probes).
    pub fn ok_json(&self) -> Result<Value, String> {
        if !self.ok() {
            return Err(format!("{} {}", self.status, self.body));
        }
        serde_json::from_str(&self.body).map_err(|e| format!("{e}: {}", self.body))
    }
}

/// One account's client on one node.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: String,
    http: reqwest::Client,
}

/// The three segments every account gets in these tests.
#[derive(Debug, Clone, Copy)]
pub struct Segments {
    /// `vip` is true.
    pub vip: i64,
    /// A custom `purchase` event occurred.
    pub buyers: i64,
    /// Has an e-mail address: every contact here.
    pub everyone: i64,
}

impl Segments {
    pub fn each(&self) -> [(Kind, i64); 3] {
        [
            (Kind::Vip, self.vip),
            (Kind::Buyers, self.buyers),
            (Kind::Everyone, self.everyone),
        ]
    }
}

impl Api {
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let start = Instant::now();
        match req.send().await {
            Ok(r) => Reply {
                status: r.status().as_u16(),
                body: r.text().await.unwrap_or_else(|e| e.to_string()),
            },
            Err(e) => {
                // The whole chain: "error sending request" alone does not say whether
                // the connection was refused, reset or timed out.
                let mut why = format!("{e}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push_str(&format!(": {s}"));
                    source = s.source();
                }
                Reply {
                    status: 0,
                    body: format!("{why} (after {:?})", start.elapsed()),
                }
            }
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// The boolean field `vip` and the three segments; every call must succeed.
    pub async fn set_up(&self) -> Segments {
        let r = self
            .post(
                "/fields",
                &json!({"key": "vip", "label": "VIP", "type": "boolean"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}: {}", self.base, r.body);
        let mut ids = Vec::new();
        for (name, rule) in [
            ("VIP", json!({"field": "vip", "op": "is_true"})),
            (
                "Buyers",
                json!({"custom_event": "purchase", "op": "occurred"}),
            ),
            ("Everyone", json!({"field": "email", "op": "has_value"})),
        ] {
            let r = self
                .post("/segments", &json!({"name": name, "rule": rule}))
                .await;
            assert_eq!(r.status, 201, "{}: {}", self.base, r.body);
            ids.push(r.json()["id"].as_i64().unwrap());
        }
        Segments {
            vip: ids[0],
            buyers: ids[1],
            everyone: ids[2],
        }
    }

    /// Upserts `contacts` (external id, vip) with e-mail addresses, and records the write
    /// in `ledger` as acknowledged or not.
    pub async fn upsert(&self, ledger: &mut Ledger, contacts: &[(String, bool)]) -> Reply {
        let body: Vec<Value> = contacts
            .iter()
            .map(|(id, vip)| {
                json!({"external_id": id, "email": format!("{id}@example.com"), "fields": {"vip": vip}})
            })
            .collect();
        let r = self.post("/contacts", &json!({ "contacts": body })).await;
        ledger.record_upsert(contacts, r.ok());
        r
    }

    /// Records a `purchase` event for each contact (each event with its own id), and the
    /// write in `ledger` as acknowledged or not.
    pub async fn purchase(&self, ledger: &mut Ledger, contacts: &[String]) -> Reply {
        let n = ledger.writes.len();
        let body: Vec<Value> = contacts
            .iter()
            .map(|id| {
                json!({"type": "custom", "id": format!("{id}-purchase-{n}"), "contact": id,
                    "name": "purchase", "timestamp": "2026-01-01T00:00:00Z"})
            })
            .collect();
        let r = self.post("/events", &json!({ "events": body })).await;
        ledger.record_purchase(contacts, r.ok());
        r
    }

    /// `n` new contacts `{prefix}-{i}` (every other one a VIP) and a purchase by every
    /// third; both writes must be acknowledged.
    pub async fn seed(&self, ledger: &mut Ledger, prefix: &str, n: usize) {
        let contacts: Vec<(String, bool)> = (0..n)
            .map(|i| (format!("{prefix}-{i}"), i % 2 == 0))
            .collect();
        let r = self.upsert(ledger, &contacts).await;
        assert!(
            r.ok(),
            "{}: upsert {prefix}: {} {}",
            self.base,
            r.status,
            r.body
        );
        let buyers: Vec<String> = contacts
            .iter()
            .step_by(3)
            .map(|(id, _)| id.clone())
            .collect();
        let r = self.purchase(ledger, &buyers).await;
        assert!(
            r.ok(),
            "{}: purchase {prefix}: {} {}",
            self.base,
            r.status,
            r.body
        );
    }

    /// A segment's maintained count (no `as_of`).
    pub async fn count(&self, segment: i64) -> Result<u64, String> {
        let v = self
            .get(&format!("/segments/{segment}/count"))
            .await
            .ok_json()?;
        v["count"].as_u64().ok_or_else(|| format!("count: {v}"))
    }

    /// Every member's external id, all pages.
    pub async fn members(&self, segment: i64) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!(
                    "/segments/{segment}/members?limit=10000&cursor={cursor}"
                ))
                .await
                .ok_json()?;
            for m in page["items"].as_array().ok_or("no items")? {
                out.push(
                    m["external_id"]
                        .as_str()
                        .ok_or("no external_id")?
                        .to_owned(),
                );
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => return Ok(out),
            }
        }
    }

    /// The segment's change feed, all pages: (external id, entered?).
    pub async fn changes(&self, segment: i64) -> Result<Vec<(String, bool)>, String> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!(
                    "/segments/{segment}/changes?limit=10000&cursor={cursor}"
                ))
                .await
                .ok_json()?;
            for c in page["items"].as_array().ok_or("no items")? {
                let id = c["external_id"].as_str().ok_or("no external_id")?;
                let entered = match c["change"].as_str() {
                    Some("entered") => true,
                    Some("exited") => false,
                    _ => return Err(format!("a change of what kind? {c}")),
                };
                out.push((id.to_owned(), entered));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => return Ok(out),
            }
        }
    }

    /// This account's counts and members as the ledger allows them, read on this node.
    pub async fn agrees_with(&self, segments: &Segments, ledger: &Ledger) -> Result<(), String> {
        for (kind, id) in segments.each() {
            let count = self.count(id).await?;
            let members = self.members(id).await?;
            ledger
                .check(kind, count, &members)
                .map_err(|e| format!("{}: {kind:?}: {e}", self.base))?;
        }
        Ok(())
    }

    /// Replays the segment's change feed: no contact enters twice without leaving in
    /// between, none leaves without having entered, and the replay ends at exactly the
    /// current members.
    pub async fn feed_replays_to_members(&self, segment: i64) -> Result<(), String> {
        let changes = self.changes(segment).await?;
        let mut members = std::collections::BTreeSet::new();
        for (i, (id, entered)) in changes.iter().enumerate() {
            let fine = if *entered {
                members.insert(id.clone())
            } else {
                members.remove(id)
            };
            if !fine {
                return Err(format!(
                    "segment {segment}: change {i} ({id} {}) repeats the contact's last change",
                    if *entered { "entered" } else { "exited" }
                ));
            }
        }
        let now: std::collections::BTreeSet<String> =
            self.members(segment).await?.into_iter().collect();
        if members != now {
            let lost: Vec<_> = now.difference(&members).collect();
            let extra: Vec<_> = members.difference(&now).collect();
            return Err(format!(
                "segment {segment}: members missing from the feed {lost:?}; in the feed but not members {extra:?}"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vip,
    Buyers,
    Everyone,
}

#[derive(Debug, Clone)]
enum Write {
    Upsert {
        contacts: Vec<(String, bool)>,
        acked: bool,
    },
    Purchase {
        contacts: Vec<String>,
        acked: bool,
    },
}

/// Every write the test sent to one account, in order, each acknowledged (2xx) or not
/// (an error, no answer: it may or may not have been stored). From it, which contacts
/// must, may or must not be members.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    writes: Vec<Write>,
}

impl Ledger {
    pub fn acknowledged(&self) -> usize {
        self.writes
            .iter()
            .filter(|w| {
                matches!(
                    w,
                    Write::Upsert { acked: true, .. } | Write::Purchase { acked: true, .. }
                )
            })
            .count()
    }

    /// Records an upsert of `contacts` (external id, vip), acknowledged or not.
    pub fn record_upsert(&mut self, contacts: &[(String, bool)], acked: bool) {
        self.writes.push(Write::Upsert {
            contacts: contacts.to_vec(),
            acked,
        });
    }

    /// Records a batch of one purchase per contact, acknowledged or not.
    pub fn record_purchase(&mut self, contacts: &[String], acked: bool) {
        self.writes.push(Write::Purchase {
            contacts: contacts.to_vec(),
            acked,
        });
    }

    /// Appends another ledger's writes (of other contacts: their order does not matter).
    pub fn extend(&mut self, other: Ledger) {
        self.writes.extend(other.writes);
    }

    pub fn unacknowledged(&self) -> usize {
        self.writes.len() - self.acknowledged()
    }

    /// The e-mail address of every contact that may exist.
    pub fn addresses(&self) -> std::collections::BTreeSet<String> {
        self.possible_members(Kind::Everyone)
            .into_iter()
            .filter(|(_, can)| can.contains(&true))
            .map(|(id, _)| format!("{id}@example.com"))
            .collect()
    }

    /// For every contact ever written: whether it can be a member of `kind`'s segment
    /// (`false`, `true`, or both when a write that could decide was not acknowledged).
    fn possible_members(&self, kind: Kind) -> BTreeMap<String, Vec<bool>> {
        // Per contact, the possible (exists, vip, bought) states after each write.
        type State = (bool, Option<bool>, bool);
        let mut states: BTreeMap<String, Vec<State>> = BTreeMap::new();
        for write in &self.writes {
            match write {
                Write::Upsert { contacts, acked } => {
                    for (id, vip) in contacts {
                        let s = states
                            .entry(id.clone())
                            .or_insert_with(|| vec![(false, None, false)]);
                        let after: Vec<State> =
                            s.iter().map(|&(_, _, b)| (true, Some(*vip), b)).collect();
                        if *acked {
                            *s = after;
                        } else {
                            s.extend(after);
                        }
                        s.sort_unstable();
                        s.dedup();
                    }
                }
                Write::Purchase { contacts, acked } => {
                    for id in contacts {
                        let s = states
                            .entry(id.clone())
                            .or_insert_with(|| vec![(false, None, false)]);
                        // An event for a contact that does not exist is refused.
                        let after: Vec<State> = s
                            .iter()
                            .filter(|st| st.0)
                            .map(|&(e, v, _)| (e, v, true))
                            .collect();
                        if *acked {
                            *s = after;
                        } else {
                            s.extend(after);
                        }
                        s.sort_unstable();
                        s.dedup();
                    }
                }
            }
        }
        states
            .into_iter()
            .map(|(id, s)| {
                let mut can: Vec<bool> = s
                    .iter()
                    .map(|&(exists, vip, bought)| {
                        exists
                            && match kind {
                                Kind::Vip => vip == Some(true),
                                Kind::Buyers => bought,
                                Kind::Everyone => true,
                            }
                    })
                    .collect();
                can.sort_unstable();
                can.dedup();
                (id, can)
            })
            .collect()
    }

    /// The segment of `kind` holds `members` (and `count` of them): every contact that
    /// must be a member is, none that must not be is, and none the test never wrote.
    pub fn check(&self, kind: Kind, count: u64, members: &[String]) -> Result<(), String> {
        let possible = self.possible_members(kind);
        let mut problems = Vec::new();
        let listed: std::collections::BTreeSet<&String> = members.iter().collect();
        if listed.len() != members.len() {
            problems.push("a member is listed twice".to_owned());
        }
        if count != members.len() as u64 {
            problems.push(format!("count {count} but {} members", members.len()));
        }
        for m in members {
            if !possible.contains_key(m) {
                problems.push(format!("{m} was never written"));
            }
        }
        for (id, can) in &possible {
            let is = listed.contains(id);
            if !can.contains(&is) {
                problems.push(format!(
                    "{id} {} a member",
                    if is { "must not be" } else { "must be" }
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            problems.truncate(10);
            Err(problems.join("; "))
        }
    }
}

/// One account in a scenario: the account, its segments and what was written to it.
pub struct Tenant {
    pub account: Account,
    pub segments: Segments,
    pub ledger: Ledger,
}

impl Tenant {
    /// Sets the account up through node `via` and seeds it with `contacts` contacts.
    pub async fn set_up(
        cluster: &Cluster,
        via: usize,
        account: Account,
        contacts: usize,
    ) -> Tenant {
        let api = cluster.api(via, &account);
        let segments = api.set_up().await;
        let mut ledger = Ledger::default();
        api.seed(&mut ledger, "seed", contacts).await;
        Tenant {
            account,
            segments,
            ledger,
        }
    }

    /// Counts and members agree with the ledger on every running node.
    pub async fn agrees_everywhere(&self, cluster: &Cluster) -> Result<(), String> {
        for i in cluster.running() {
            cluster
                .api(i, &self.account)
                .agrees_with(&self.segments, &self.ledger)
                .await
                .map_err(|e| {
                    let (a, node) = (&self.account, &cluster.nodes[i].id);
                    format!("account {} ({}) via {node}: {e}", a.id, a.name)
                })?;
        }
        Ok(())
    }
}
