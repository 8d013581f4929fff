//! The cluster's control plane and change log (PostgreSQL only; migration 0013).
//!
//! A node opens the store with [`crate::open_cluster`], which names the node on every
//! connection (`segmentd.node`): the database's triggers then log each write of an
//! account in its transaction and refuse any write from a node that does not own the
//! account with a live lease. What lives here is what the nodes read and change of that
//! state; where accounts should go is decided by the server (`plan`), applied here
//! under an advisory lock with compare-and-set.

use std::time::Duration;

use async_trait::async_trait;

use crate::{AccountId, Contact, Result, StoredEvent};

/// A node as the database sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    pub address: String,
    /// Its lease is ahead by PostgreSQL's clock.
    pub alive: bool,
    /// How long it has been alive without a lapse, in milliseconds.
    pub alive_for_ms: i64,
}

/// Where an account lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub account: AccountId,
    pub owner: String,
    pub follower: Option<String>,
    pub epoch: i64,
    /// The account's last write sequence.
    pub write_seq: i64,
    /// `write_seq` when the owner last changed: what the old owner's index holds.
    pub handoff_seq: i64,
    /// What the follower last reported having applied.
    pub follower_seq: Option<i64>,
}

/// What a log entry says a write changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// Contacts inserted or updated (ids).
    Contacts,
    /// Events inserted (ids).
    Events,
    /// Contacts deleted (ids).
    Deleted,
    /// Fields or segments changed: read them again.
    Definitions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: i64,
    pub kind: LogKind,
    pub ids: Vec<i64>,
}

/// Everything the coordinator decides from, read in its transaction.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<NodeRow>,
    pub placements: Vec<Placement>,
    pub accounts: Vec<AccountId>,
    /// (account, node): the node reported its index of the account within the last few
    /// seconds.
    pub ready: Vec<(AccountId, String)>,
}

/// A change of placement, applied only if the account's epoch is still `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementChange {
    /// A new account.
    Place {
        account: AccountId,
        owner: String,
        follower: Option<String>,
    },
    /// A new owner (epoch + 1).
    Move {
        account: AccountId,
        epoch: i64,
        owner: String,
        follower: Option<String>,
    },
    /// Another follower; the owner stays.
    Follow {
        account: AccountId,
        epoch: i64,
        follower: Option<String>,
    },
}

/// An account's data as of one write sequence, read in one snapshot of the database.
pub struct Loaded {
    pub seq: i64,
    pub contacts: Vec<Contact>,
    pub events: Vec<StoredEvent>,
}

pub type Plan<'a> = &'a (dyn Fn(&ClusterView) -> Vec<PlacementChange> + Sync);

#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// Registers the node (again) with a lease of `lease` from now.
    async fn join(&self, node: &str, address: &str, lease: Duration) -> Result<()>;
    /// Moves the node's lease to `lease` from now; `false` when it is not registered.
    /// A node whose lease had lapsed counts as alive only from now.
    async fn renew(&self, node: &str, lease: Duration) -> Result<bool>;
    /// Ends the node's lease now (a graceful stop): its accounts move at once.
    async fn leave(&self, node: &str) -> Result<()>;
    async fn nodes(&self) -> Result<Vec<NodeRow>>;
    async fn placements(&self) -> Result<Vec<Placement>>;
    /// Under the cluster's advisory lock (`None`: another node holds it), reads the
    /// view, asks `plan` for changes and applies each with compare-and-set. Returns how
    /// many applied. A move waits for the account's writes in flight.
    async fn coordinate(&self, plan: Plan<'_>) -> Result<Option<usize>>;
    /// The account's log after `after`, in order, at most `limit` entries.
    async fn log_since(&self, account: AccountId, after: i64, limit: u32) -> Result<Vec<LogEntry>>;
    /// The events with these ids that still exist, in id order.
    async fn events_by_ids(&self, account: AccountId, ids: &[i64]) -> Result<Vec<StoredEvent>>;
    /// Every contact and event of the account and the write sequence they are as of.
    async fn load(&self, account: AccountId) -> Result<Loaded>;
    /// The accounts' last write sequences.
    async fn write_seqs(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>>;
    /// The account's last write sequence while `node` owns it as of `epoch`; `None`
    /// once it does not (another owner's writes may follow).
    async fn owned_write_seq(
        &self,
        account: AccountId,
        node: &str,
        epoch: i64,
    ) -> Result<Option<i64>>;
    /// Records how far this node's indexes have applied these accounts' logs.
    async fn report_progress(&self, node: &str, applied: &[(AccountId, i64)]) -> Result<()>;
}
