//! A cluster of segmentd nodes on one PostgreSQL (the truth and the control plane) and
//! NATS JetStream (the change fan-out). `serve --cluster` starts a node; without it
//! nothing here runs.
//!
//! The unit of placement is the account (a rule never reads another account's data).
//! Each account has an owner, which alone writes it, logs its membership changes, runs
//! its time refresh's log and its campaigns, and a warm follower, whose index applies
//! the owner's writes from the database's change log (`cluster_log`, written by
//! migration 0013's triggers in each write's transaction). Every node answers every
//! request: `forward.rs` sends it to the owner when this node may not serve it.
//!
//! - `placement.rs`: where accounts should be (rendezvous hashing), a pure function.
//! - `agent.rs`: the node's loop — lease, coordination, and bringing the indexes held
//!   here to what the placements say (build, take over, step down, drop).
//! - `follow.rs`: a follower's index brought up to the log.
//! - `fanout.rs`: NATS JetStream — a message per write (`segmentd.changes.<account>`,
//!   id `account:seq`) wakes followers at once; without it they poll the database.
//! - `forward.rs`: the routing layer.
//! - `status.rs`: `GET /cluster/status` and `segmentd cluster status`.

pub mod agent;
pub mod fanout;
pub mod follow;
pub mod forward;
pub mod placement;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use segmentd_store::cluster::{ClusterStore, NodeRow, Placement};
use segmentd_store::{Account, AccountId};
use tokio::sync::Notify;

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
    /// The last log sequence the index has applied (a follower's; an owner's index has
    /// every write, which go through it).
    pub applied: AtomicI64,
    /// Woken by a fan-out message or the agent when the log has more.
    pub wake: Notify,
    /// Held while the log is applied, and by a takeover.
    pub applying: tokio::sync::Mutex<()>,
    /// Set when the node stops holding it: its follower task ends.
    pub dropped: std::sync::atomic::AtomicBool,
}

impl Held {
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
    /// Accounts written here since the last fan-out message.
    written: tokio::sync::mpsc::UnboundedSender<AccountId>,
    written_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<AccountId>>>,
    /// Wakes the agent (a placement looked stale to the routing layer).
    pub refresh: Notify,
    pub http: reqwest::Client,
}

impl Cluster {
    pub fn new(settings: ClusterSettings, store: Arc<dyn ClusterStore>, address: String) -> Self {
        let (written, written_rx) = tokio::sync::mpsc::unbounded_channel();
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
            written,
            written_rx: Mutex::new(Some(written_rx)),
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

    /// Notes that the account was written here: a fan-out message follows.
    pub fn written(&self, account: AccountId) {
        let _ = self.written.send(account);
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

    /// Wakes the follower task of the account, if this node follows it.
    pub fn wake(&self, account: AccountId) {
        if let Some(h) = self.held(account) {
            h.wake.notify_one();
        }
    }
}
