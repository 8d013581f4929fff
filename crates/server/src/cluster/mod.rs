//! A cluster of segmentd nodes on one PostgreSQL (the truth and the control plane) and
//! NATS JetStream (the change fan-out). `serve --cluster` starts a node; without it
//! nothing here runs.
//!
//! The unit of placement is the account (a rule never reads another account's data).
//! Each account has an owner, which alone writes it, logs its membership changes, runs
//! its time refresh's log and its campaigns, and a warm follower, whose index applies
//! the owner's writes as the owner sends them through NATS, and from the database's
//! change log (`cluster_log`, written by migration 0013's triggers in each write's
//! transaction) whenever a message is missing. Every node answers every request:
//! `forward.rs` sends it to the owner when this node may not serve it.
//!
//! - `placement.rs`: where accounts should be (rendezvous hashing), a pure function.
//! - `agent.rs`: the node's loop — lease, coordination, and bringing the indexes held
//!   here to what the placements say (build, take over, step down, drop).
//! - `follow.rs`: a follower's index brought up to the log, from messages or the log.
//! - `fanout.rs`: NATS JetStream — a message per write (`segmentd.changes.<account>`,
//!   id `account:seq`) carries it to followers at once; without it they read the log.
//! - `wire.rs`: what such a message holds.
//! - `forward.rs`: the routing layer.
//! - `status.rs`: `GET /cluster/status`, `GET /cluster/held` and `segmentd cluster status`.

pub mod agent;
pub mod fanout;
pub mod follow;
pub mod forward;
pub mod placement;
pub mod status;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use segmentd_store::cluster::{ClusterStore, NodeRow, Placement};
use segmentd_store::{Account, AccountId};
use tokio::sync::Notify;

/// Writes waiting for the fan-out.
const OUTGOING: usize = 4096;

/// What `serve --cluster` was given.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// NATS servers (`nats://host:port`), one or more of one JetStream cluster.
    pub nats: Vec<String>,
    pub node: String,
    /// How other nodes reach this one (`http://host:port`); default the bound address.
    pub advertise: Option<String>,
    pub lease: Duration,
    /// Indexes per account: 1 (owner only) or 2 (owner and a warm follower).
    pub replicas: usize,
}

/// What this node does for an account it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes it, as of this placement epoch.
    Owner {
        epoch: i64,
    },
    Follower,
}

/// An account whose index this node holds.
pub struct Held {
    pub account: Account,
    role: Mutex<Role>,
    /// The epoch of the placement this node last acted on.
    epoch: AtomicI64,
    /// The last log sequence the index has applied. An owner's index has every write,
    /// which go through it: for it, the sequence its last write ended at.
    pub applied: AtomicI64,
    /// The account's `write_seq` as the agent last read it: a follower still short of
    /// it a tick later missed a message and reads the log.
    seen: AtomicI64,
    /// Fan-out messages for this account, in the order the owner sent them.
    inbox: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
    /// Woken by the agent when the log has more than messages brought.
    pub wake: Notify,
    /// Writes applied as their fan-out message carried them.
    pub from_messages: AtomicU64,
    /// Log entries read from the database and applied.
    pub from_log: AtomicU64,
    /// Held while the log is applied, and by a takeover.
    pub applying: tokio::sync::Mutex<()>,
    /// Set when the node stops holding it: its follower task ends.
    pub dropped: std::sync::atomic::AtomicBool,
}

impl Held {
    /// A follower's hold of an account whose index has applied the log up to `applied`,
    /// with the receiving end of its inbox.
    fn new(
        account: Account,
        applied: i64,
    ) -> (
        Arc<Held>,
        tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>,
    ) {
        let (inbox, messages) = tokio::sync::mpsc::unbounded_channel();
        let held = Held {
            account,
            role: Mutex::new(Role::Follower),
            epoch: AtomicI64::default(),
            applied: applied.into(),
            seen: applied.into(),
            inbox,
            wake: Notify::new(),
            from_messages: AtomicU64::default(),
            from_log: AtomicU64::default(),
            applying: tokio::sync::Mutex::default(),
            dropped: std::sync::atomic::AtomicBool::default(),
        };
        (Arc::new(held), messages)
    }

    pub fn role(&self) -> Role {
        *self.role.lock()
    }

    fn set_role(&self, role: Role, epoch: i64) {
        *self.role.lock() = role;
        self.epoch.store(epoch, Ordering::Release);
    }

    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }
}

pub struct Cluster {
    pub settings: ClusterSettings,
    pub store: Arc<dyn ClusterStore>,
    /// How other nodes reach this one.
    pub address: String,
    /// Until when this node may act as an owner, by its own clock: the start of its last
    /// lease renewal that succeeded, plus the lease. PostgreSQL fences it anyway; this
    /// stops its campaign sends and writes before the database has to.
    lease_until: Mutex<Option<Instant>>,
    placements: RwLock<HashMap<AccountId, Placement>>,
    nodes: RwLock<HashMap<String, NodeRow>>,
    held: Mutex<HashMap<AccountId, Arc<Held>>>,
    /// Accounts whose index is being built here.
    building: Mutex<std::collections::HashSet<AccountId>>,
    /// API key hashes seen, with their account: where to route a request (the owner
    /// checks the key again).
    keys: Mutex<HashMap<String, AccountId>>,
    /// Writes made here, for the fan-out to send (bounded: when NATS cannot keep up,
    /// followers read the log instead).
    outgoing: tokio::sync::mpsc::Sender<fanout::Outgoing>,
    outgoing_rx: Mutex<Option<tokio::sync::mpsc::Receiver<fanout::Outgoing>>>,
    /// Wakes the agent (a placement looked stale to the routing layer).
    pub refresh: Notify,
    pub http: reqwest::Client,
}

impl Cluster {
    pub fn new(settings: ClusterSettings, store: Arc<dyn ClusterStore>, address: String) -> Self {
        let (outgoing, outgoing_rx) = tokio::sync::mpsc::channel(OUTGOING);
        Cluster {
            settings,
            store,
            address,
            lease_until: Mutex::new(None),
            placements: RwLock::default(),
            nodes: RwLock::default(),
            held: Mutex::default(),
            building: Mutex::default(),
            keys: Mutex::default(),
            outgoing,
            outgoing_rx: Mutex::new(Some(outgoing_rx)),
            refresh: Notify::new(),
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(30))
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// Whether this node's lease is still ahead by its own clock.
    pub fn lease_valid(&self) -> bool {
        self.lease_until
            .lock()
            .is_some_and(|until| Instant::now() < until)
    }

    fn lease_renewed(&self, started: Instant) {
        *self.lease_until.lock() = Some(started + self.settings.lease);
    }

    /// The account's index here, if any, with this node's role.
    pub fn held(&self, account: AccountId) -> Option<Arc<Held>> {
        self.held.lock().get(&account).cloned()
    }

    pub fn held_all(&self) -> Vec<Arc<Held>> {
        self.held.lock().values().cloned().collect()
    }

    /// Whether this node writes the account now.
    pub fn owns(&self, account: AccountId) -> bool {
        self.lease_valid()
            && self
                .held(account)
                .is_some_and(|h| matches!(h.role(), Role::Owner { .. }))
    }

    pub fn placement(&self, account: AccountId) -> Option<Placement> {
        self.placements.read().get(&account).cloned()
    }

    pub fn placements(&self) -> Vec<Placement> {
        let mut all: Vec<Placement> = self.placements.read().values().cloned().collect();
        all.sort_by_key(|p| p.account);
        all
    }

    pub fn nodes(&self) -> Vec<NodeRow> {
        let mut all: Vec<NodeRow> = self.nodes.read().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The address of the node that owns the account, as last read.
    pub fn owner_address(&self, account: AccountId) -> Option<String> {
        let owner = self.placement(account)?.owner;
        if owner == self.settings.node {
            return Some(self.address.clone());
        }
        self.nodes.read().get(&owner).map(|n| n.address.clone())
    }

    /// Sends the write this owner just committed and applied to the followers: the log
    /// range it made (from the index's last write to the account's `write_seq` now,
    /// read while this node still owns it at the same epoch) and the slices it applied
    /// when they can travel. Called under the account's write gate, which every write
    /// that logs holds, so the range is this write's and no other's.
    pub async fn written(&self, account: AccountId, slices: Option<Vec<wire::WireSlice>>) {
        let Some(held) = self.held(account) else {
            return;
        };
        let Role::Owner { epoch } = held.role() else {
            return;
        };
        let to = match self
            .store
            .owned_write_seq(account, self.node(), epoch)
            .await
        {
            Ok(Some(to)) => to,
            // Moved away since: the next owner's followers read the log.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(account, error = %e, "reading the write sequence failed");
                return;
            }
        };
        let from = held.applied.swap(to, Ordering::AcqRel);
        if to <= from {
            return;
        }
        let change = wire::Change { from, to, slices };
        if self
            .outgoing
            .try_send(fanout::Outgoing { account, change })
            .is_err()
        {
            tracing::debug!(account, "fan-out queue full: followers read the log");
        }
    }

    /// Hands a fan-out message to the account's follower task, if this node holds it.
    pub fn deliver(&self, account: AccountId, payload: bytes::Bytes) {
        if let Some(h) = self.held(account) {
            let _ = h.inbox.send(payload);
        }
    }

    pub fn key_account(&self, hash: &str) -> Option<AccountId> {
        self.keys.lock().get(hash).copied()
    }

    pub fn remember_key(&self, hash: String, account: AccountId) {
        let mut keys = self.keys.lock();
        // A bound, not a cache policy: routing only needs to be usually right.
        if keys.len() > 100_000 {
            keys.clear();
        }
        keys.insert(hash, account);
    }
}
