//! What every handler shares: the store, the indexes and the clock.

use std::sync::Arc;

use jiff::Timestamp;
use segmentd_store::Store;

use crate::index::Indexes;

/// Where handlers get the time from, so tests can fix it. Never read deep in logic.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Every account's in-memory index: all reads of membership go through it.
    pub index: Arc<Indexes>,
    pub clock: Arc<dyn Clock>,
    /// Each account's parsed catalog (fields, segment references), invalidated by the
    /// writes in [`crate::writes`].
    pub catalogs: Arc<crate::catalog::CatalogCache>,
    /// Campaign delivery: settings, the HTTP client and the campaigns running here.
    pub campaigns: Arc<crate::campaigns::Delivery>,
    /// Password hashes computed at once (each costs tens of milliseconds of a core): a
    /// burst of sign-ins waits here instead of taking every core.
    pub hashing: Arc<tokio::sync::Semaphore>,
    /// This node's part of a cluster (`serve --cluster`); `None`: a single segmentd.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Where CSV imports keep their uploads and rejected rows.
    pub imports: Arc<crate::imports::ImportFiles>,
    /// Each segment's membership computed for past days (the growth chart's days
    /// before its change log), kept until its rule changes or backdated data arrives.
    pub computed_history: Arc<crate::history::ComputedHistory>,
}
