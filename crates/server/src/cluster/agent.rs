//! The node's loop: its lease, its turn at coordinating, and the indexes it holds
//! brought to what the placements say.
//!
//! For each account, by the placement this node reads every [`TICK`]:
//! - named owner or follower and not held: its index is built from one database
//!   snapshot (`ClusterStore::load`), as of a log sequence, and a follower task keeps
//!   it up to the log;
//! - named owner at a new epoch: [`take_over`] — writes here wait while the index
//!   applies the log to its end (the old owner is fenced, so the end is final), the
//!   change log is brought to the index's membership (what the old owner applied but
//!   did not log), recipients the old owner had in flight become `unknown`, and only
//!   then does this node write, log and send for the account;
//! - named follower while it owned: it steps down (its index holds exactly the writes
//!   up to the handoff sequence);
//! - named neither: the index is dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use segmentd_store::AccountId;
use segmentd_store::cluster::Placement;

use super::{Cluster, Held, Role, follow, placement};
use crate::index::IndexError;
use crate::state::AppState;

/// How often placements are read and coordination is tried.
pub const TICK: Duration = Duration::from_millis(200);

/// How long a node that joined waits before accounts are handed over to it.
pub fn settle(lease: Duration) -> Duration {
    lease * 2
}

/// Registers the node and starts its loops.
pub async fn start(state: AppState, cluster: Arc<Cluster>) -> anyhow::Result<()> {
    let started = Instant::now();
    cluster
        .store
        .join(cluster.node(), &cluster.address, cluster.settings.lease)
        .await?;
    cluster.lease_renewed(started);
    tokio::spawn(renew_lease(cluster.clone()));
    tokio::spawn(super::fanout::start(cluster.clone()));
    tokio::spawn(run(state, cluster));
    Ok(())
}

async fn renew_lease(cluster: Arc<Cluster>) {
    let every = cluster.settings.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let started = Instant::now();
        match cluster
            .store
            .renew(cluster.node(), cluster.settings.lease)
            .await
        {
            Ok(true) => cluster.lease_renewed(started),
            Ok(false) => {
                let _ = cluster
                    .store
                    .join(cluster.node(), &cluster.address, cluster.settings.lease)
                    .await
                    .map(|()| cluster.lease_renewed(started));
            }
            Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
        }
    }
}

async fn run(state: AppState, cluster: Arc<Cluster>) {
    let mut last_report = Instant::now();
    loop {
        if let Err(e) = tick(&state, &cluster).await {
            tracing::warn!(error = %e, "cluster tick failed");
        }
        if last_report.elapsed() >= Duration::from_millis(500) {
            last_report = Instant::now();
            report(&cluster).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = cluster.refresh.notified() => {}
        }
    }
}

async fn tick(state: &AppState, cluster: &Arc<Cluster>) -> anyhow::Result<()> {
    if cluster.lease_valid() {
        let (replicas, settle) = (cluster.settings.replicas, settle(cluster.settings.lease));
        let plan = move |view: &segmentd_store::cluster::ClusterView| {
            placement::plan(view, replicas, settle)
        };
        if let Some(n) = cluster.store.coordinate(&plan).await?
            && n > 0
        {
            tracing::info!(changes = n, "placements changed");
        }
    }
    let nodes = cluster.store.nodes().await?;
    let placements = cluster.store.placements().await?;
    *cluster.nodes.write() = nodes.into_iter().map(|n| (n.id.clone(), n)).collect();
    let me = cluster.node().to_owned();
    let mut named = std::collections::HashSet::new();
    for p in &placements {
        let role = if p.owner == me {
            Role::Owner { epoch: p.epoch }
        } else if p.follower.as_deref() == Some(me.as_str()) {
            Role::Follower
        } else {
            continue;
        };
        named.insert(p.account);
        // Without a lease this node acts on nothing it owns (the database refuses its
        // writes anyway); it waits to renew or to be moved.
        if matches!(role, Role::Owner { .. }) && !cluster.lease_valid() {
            continue;
        }
        match cluster.held(p.account) {
            None => spawn_build(state.clone(), cluster.clone(), p.clone()),
            Some(held) => adjust(state, cluster, &held, p, role).await,
        }
    }
    *cluster.placements.write() = placements.into_iter().map(|p| (p.account, p)).collect();
    for held in cluster.held_all() {
        if !named.contains(&held.account.id) {
            drop_account(state, cluster, &held);
        }
    }
    Ok(())
}

/// Brings a held account's role to the placement's.
async fn adjust(
    state: &AppState,
    cluster: &Arc<Cluster>,
    held: &Arc<Held>,
    p: &Placement,
    role: Role,
) {
    match (held.role(), role) {
        (Role::Owner { epoch: had }, Role::Owner { epoch }) if had == epoch => {}
        (_, Role::Owner { epoch }) => {
            if let Err(e) = take_over(state, held, epoch).await {
                tracing::warn!(account = held.account.id, error = %e, "taking over failed");
            }
        }
        (Role::Owner { epoch: had }, Role::Follower) => {
            step_down(state, cluster, held, p, had).await
        }
        (Role::Follower, Role::Follower) => {
            // Short of what the log held a tick ago: a message went missing (or NATS is
            // down). Anything newer is most likely still on its way.
            let seen = held.seen.swap(p.write_seq, Ordering::AcqRel);
            if seen > held.applied.load(Ordering::Acquire) {
                held.wake.notify_one();
            }
        }
    }
}

fn spawn_build(state: AppState, cluster: Arc<Cluster>, p: Placement) {
    // One build per account at a time.
    if !cluster.building.lock().insert(p.account) {
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = build(&state, &cluster, p.account).await {
            tracing::warn!(account = p.account, error = %e, "building a cluster index failed");
        }
        cluster.building.lock().remove(&p.account);
        cluster.refresh.notify_one();
    });
}

/// The account's index from one snapshot of the database, held as follower (a takeover
/// follows on the next tick when this node owns it).
async fn build(state: &AppState, cluster: &Arc<Cluster>, account: AccountId) -> anyhow::Result<()> {
    let started = Instant::now();
    let Some(acc) = state.store.account(account).await? else {
        return Ok(());
    };
    let loaded = cluster.store.load(account).await?;
    let zone = jiff::tz::TimeZone::get(&acc.time_zone)?;
    let (contacts, events) = (loaded.contacts.len(), loaded.events.len());
    let index = crate::rebuild::from_rows(
        state.store.as_ref(),
        &acc,
        &zone,
        loaded.contacts,
        loaded.events,
        state.clock.now(),
    )
    .await?;
    state.index.insert(&acc, index)?;
    let (held, inbox) = Held::new(acc, loaded.seq);
    cluster.held.lock().insert(account, held.clone());
    tokio::spawn(follow_task(state.clone(), held, inbox));
    tracing::info!(
        account,
        contacts,
        events,
        seq = loaded.seq,
        ms = started.elapsed().as_millis() as u64,
        "cluster: account indexed"
    );
    Ok(())
}

/// Applies the owner's messages as they come, and the log when the agent finds the
/// index behind, while this node follows the account. An owner's own messages come
/// back to it too: they are skipped.
async fn follow_task(
    state: AppState,
    held: Arc<Held>,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>,
) {
    loop {
        let message = tokio::select! {
            message = inbox.recv() => message,
            _ = held.wake.notified() => None,
        };
        if held.dropped.load(Ordering::Acquire) {
            return;
        }
        if held.role() != Role::Follower {
            continue;
        }
        let followed = match message {
            Some(payload) => follow::apply_message(&state, &held, payload).await,
            None => follow::catch_up(&state, &held).await.map(drop),
        };
        if let Err(e) = followed {
            tracing::warn!(account = held.account.id, error = %e, "following the log failed");
        }
    }
}

/// This node owns the account from `epoch` on.
pub async fn take_over(state: &AppState, held: &Arc<Held>, epoch: i64) -> Result<(), IndexError> {
    let started = Instant::now();
    let account = held.account.clone();
    let Some(idx) = state.index.held(account.id) else {
        return Ok(());
    };
    // No write of this node is in flight, and none starts, until the index is whole.
    let _quiet = idx.quiesce().await;
    let applied = follow::catch_up(state, held).await?;
    let _applying = held.applying.lock().await;
    let now = state.clock.now();
    let logged = crate::rebuild::logged_membership(state.store.as_ref(), &account).await?;
    let diff = crate::index::evaluate(idx.clone(), move |index| {
        crate::rebuild::difference(logged, index, &Default::default(), now)
    })
    .await?;
    state.store.record_changes(account.id, &diff).await?;
    let logged = diff.len();
    let mut unknown = 0;
    for c in state.store.campaigns_to_run(now).await? {
        if c.account_id == account.id
            && matches!(
                c.status,
                segmentd_store::CampaignStatus::Sending | segmentd_store::CampaignStatus::Paused
            )
        {
            unknown += state
                .store
                .settle_interrupted(
                    account.id,
                    c.id,
                    "in flight at its sender when the account moved: may or may not have been sent, so not retried",
                    now,
                )
                .await?;
        }
    }
    idx.set_owned(true);
    held.set_role(Role::Owner { epoch }, epoch);
    tracing::info!(
        account = account.id,
        epoch,
        log_entries_applied = applied,
        changes_logged = logged,
        recipients_unknown = unknown,
        ms = started.elapsed().as_millis() as u64,
        "cluster: account taken over"
    );
    Ok(())
}

/// The account moved away; this node follows it now.
async fn step_down(
    state: &AppState,
    cluster: &Arc<Cluster>,
    held: &Arc<Held>,
    p: &Placement,
    had: i64,
) {
    let Some(idx) = state.index.held(held.account.id) else {
        return;
    };
    idx.set_owned(false);
    // Writes in flight here finish first (each either committed before the move, so the
    // index has it, or was refused).
    let _quiet = idx.quiesce().await;
    if p.epoch == had + 1 {
        // The index holds exactly what this node wrote: the log up to the handoff.
        held.applied.store(p.handoff_seq, Ordering::Release);
        held.set_role(Role::Follower, p.epoch);
        held.wake.notify_one();
        tracing::info!(
            account = held.account.id,
            epoch = p.epoch,
            "cluster: stepped down to follower"
        );
    } else {
        // It moved more than once since: what this index misses is not known; build it
        // again.
        tracing::info!(
            account = held.account.id,
            "cluster: stepped down; index built again"
        );
        drop_account(state, cluster, held);
    }
}

fn drop_account(state: &AppState, cluster: &Cluster, held: &Held) {
    held.dropped.store(true, Ordering::Release);
    held.wake.notify_one();
    if let Some(idx) = state.index.held(held.account.id) {
        idx.set_owned(false);
    }
    state.index.remove(held.account.id);
    cluster.held.lock().remove(&held.account.id);
    tracing::info!(
        account = held.account.id,
        "cluster: account no longer held here"
    );
}

/// Tells the coordinator how far this node's indexes are.
async fn report(cluster: &Cluster) {
    let applied: Vec<(AccountId, i64)> = cluster
        .held_all()
        .iter()
        .map(|h| (h.account.id, h.applied.load(Ordering::Acquire)))
        .collect();
    if let Err(e) = cluster
        .store
        .report_progress(cluster.node(), &applied)
        .await
    {
        tracing::debug!(error = %e, "reporting progress failed");
    }
}
