//! What every handler shares: the store, the evaluator and the clock.

use std::sync::Arc;

use jiff::Timestamp;
use segmentd_store::Store;

use crate::evaluation::Evaluator;

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
    pub evaluator: Arc<dyn Evaluator>,
    pub clock: Arc<dyn Clock>,
    /// Campaign delivery: settings, the HTTP client and the campaigns running here.
    pub campaigns: Arc<crate::campaigns::Delivery>,
}
