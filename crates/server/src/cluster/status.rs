//! `GET /cluster/status` (any node, no key: it names nodes and account ids, no data) and
//! `segmentd cluster status`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use segmentd_store::cluster::{ClusterStore, NodeRow, Placement};
use serde::Serialize;

use super::Role;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Status {
    pub node: String,
    pub lease_valid: bool,
    pub nodes: Vec<NodeOut>,
    pub placements: Vec<PlacementOut>,
    pub held: Vec<HeldOut>,
}

#[derive(Debug, Serialize)]
pub struct NodeOut {
    pub id: String,
    pub address: String,
    pub alive: bool,
}

#[derive(Debug, Serialize)]
pub struct PlacementOut {
    pub account: i64,
    pub owner: String,
    pub follower: Option<String>,
    pub epoch: i64,
    pub write_seq: i64,
    pub follower_seq: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct HeldOut {
    pub account: i64,
    pub role: &'static str,
    pub epoch: i64,
    pub applied_seq: i64,
    /// Writes applied from their fan-out message (a follower's, since this node
    /// started holding the account).
    pub writes_from_messages: u64,
    /// Log entries read from PostgreSQL and applied instead.
    pub log_entries_read: u64,
}

fn node_out(n: NodeRow) -> NodeOut {
    NodeOut {
        id: n.id,
        address: n.address,
        alive: n.alive,
    }
}

fn placement_out(p: Placement) -> PlacementOut {
    PlacementOut {
        account: p.account,
        owner: p.owner,
        follower: p.follower,
        epoch: p.epoch,
        write_seq: p.write_seq,
        follower_seq: p.follower_seq,
    }
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/status", axum::routing::get(status))
        .route("/held", axum::routing::get(held))
}

/// What this node holds, without reading the database: a probe cheap enough to poll
/// (an owner's `applied_seq` is then the sequence its last write ended at).
async fn held(State(state): State<AppState>) -> Response {
    let Some(cluster) = state.cluster.clone() else {
        return ApiError::NotFound("this segmentd is not part of a cluster".into()).into_response();
    };
    Json(held_out(&cluster, &Default::default())).into_response()
}

/// The accounts held here, by account. `seqs`: the accounts' `write_seq` when read (an
/// owner's index has every write, which go through it).
fn held_out(cluster: &super::Cluster, seqs: &std::collections::HashMap<i64, i64>) -> Vec<HeldOut> {
    let mut held: Vec<HeldOut> = cluster
        .held_all()
        .into_iter()
        .map(|h| {
            let role = h.role();
            let applied = h.applied.load(Ordering::Acquire);
            let applied = match role {
                Role::Owner { .. } => seqs.get(&h.account.id).copied().unwrap_or(applied),
                Role::Follower => applied,
            };
            HeldOut {
                account: h.account.id,
                role: match role {
                    Role::Owner { .. } => "owner",
                    Role::Follower => "follower",
                },
                epoch: h.epoch(),
                applied_seq: applied,
                writes_from_messages: h.from_messages.load(Ordering::Relaxed),
                log_entries_read: h.from_log.load(Ordering::Relaxed),
            }
        })
        .collect();
    held.sort_by_key(|h| h.account);
    held
}

/// Read from the database now (not this node's last look), with what this node holds.
async fn status(State(state): State<AppState>) -> Response {
    let Some(cluster) = state.cluster.clone() else {
        return ApiError::NotFound("this segmentd is not part of a cluster".into()).into_response();
    };
    let (nodes, placements) = match (
        cluster.store.nodes().await,
        cluster.store.placements().await,
    ) {
        (Ok(n), Ok(p)) => (n, p),
        (Err(e), _) | (_, Err(e)) => return ApiError::from(e).into_response(),
    };
    let seqs: std::collections::HashMap<i64, i64> = placements
        .iter()
        .map(|p| (p.account, p.write_seq))
        .collect();
    let held = held_out(&cluster, &seqs);
    Json(Status {
        node: cluster.node().to_owned(),
        lease_valid: cluster.lease_valid(),
        nodes: nodes.into_iter().map(node_out).collect(),
        placements: placements.into_iter().map(placement_out).collect(),
        held,
    })
    .into_response()
}

/// `segmentd cluster status`: nodes, then each account's placement and follower lag.
pub async fn print(store: &dyn ClusterStore) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "nodes:")?;
    for n in store.nodes().await? {
        writeln!(
            out,
            "  {:<12} {:<28} {}",
            n.id,
            n.address,
            if n.alive { "alive" } else { "lease lapsed" }
        )?;
    }
    writeln!(out, "accounts:")?;
    writeln!(
        out,
        "  {:>8} {:<12} {:<12} {:>6} {:>10} {:>8}",
        "account", "owner", "follower", "epoch", "write_seq", "lag"
    )?;
    for p in store.placements().await? {
        let lag = match p.follower_seq {
            Some(f) => (p.write_seq - f).max(0).to_string(),
            None => "-".into(),
        };
        writeln!(
            out,
            "  {:>8} {:<12} {:<12} {:>6} {:>10} {:>8}",
            p.account,
            p.owner,
            p.follower.as_deref().unwrap_or("-"),
            p.epoch,
            p.write_seq,
            lag
        )?;
    }
    Ok(out)
}
