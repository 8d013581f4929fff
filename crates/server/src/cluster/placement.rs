//! Where accounts should live: rendezvous (highest random weight) hashing over the live
//! nodes. Each account ranks every node by a hash of (account, node); the first owns it,
//! the second follows it. A node that joins or leaves moves only the accounts it ranks
//! first or second for, and every node computes the same ranking with no shared state.
//!
//! [`plan`] turns the database's view into compare-and-set changes:
//! - an account without a placement is placed;
//! - a dead owner's account moves to its follower (or the best live node), with a new
//!   follower: this is the failover;
//! - a live owner that is no longer first (a node joined) hands the account over, but
//!   only to a follower whose index is ready and that has been alive for `settle`: first
//!   that node becomes the follower, then the owner (the planned move);
//! - a missing or dead follower is replaced.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use segmentd_store::AccountId;
use segmentd_store::cluster::{ClusterView, PlacementChange};

/// The rank of `node` for `account`: FNV-1a over both, then a 64-bit finalizer, so that
/// similar ids spread.
fn weight(account: AccountId, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in account.to_le_bytes().iter().chain(node.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// `nodes` best first for `account`.
pub fn ranking<'a>(account: AccountId, nodes: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut ranked: Vec<&str> = nodes.into_iter().collect();
    ranked.sort_by(|a, b| weight(account, b).cmp(&weight(account, a)).then(a.cmp(b)));
    ranked
}

/// The changes that bring `view` closer to where accounts should be.
pub fn plan(view: &ClusterView, replicas: usize, settle: Duration) -> Vec<PlacementChange> {
    let settle_ms = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);
    let alive: Vec<&str> = view
        .nodes
        .iter()
        .filter(|n| n.alive)
        .map(|n| n.id.as_str())
        .collect();
    if alive.is_empty() {
        return Vec::new();
    }
    let settled: HashSet<&str> = view
        .nodes
        .iter()
        .filter(|n| n.alive && n.alive_for_ms >= settle_ms)
        .map(|n| n.id.as_str())
        .collect();
    let ready: HashSet<(AccountId, &str)> =
        view.ready.iter().map(|(a, n)| (*a, n.as_str())).collect();
    let placed: HashMap<AccountId, _> = view.placements.iter().map(|p| (p.account, p)).collect();
    let is_alive = |n: &str| alive.contains(&n);
    let mut changes = Vec::new();
    for &account in &view.accounts {
        let ranked = ranking(account, alive.iter().copied());
        let second = |not: &str| {
            (replicas > 1)
                .then(|| ranked.iter().find(|n| **n != not).map(|n| (*n).to_owned()))
                .flatten()
        };
        let Some(p) = placed.get(&account) else {
            changes.push(PlacementChange::Place {
                account,
                owner: ranked[0].to_owned(),
                follower: second(ranked[0]),
            });
            continue;
        };
        if !is_alive(&p.owner) {
            let owner = match &p.follower {
                Some(f) if is_alive(f) => f.as_str(),
                _ => ranked[0],
            };
            changes.push(PlacementChange::Move {
                account,
                epoch: p.epoch,
                owner: owner.to_owned(),
                follower: second(owner),
            });
            continue;
        }
        // Where it should be among the nodes settled in (and its owner, which stays
        // until a settled node is ready to take it).
        let wanted = ranking(
            account,
            alive
                .iter()
                .copied()
                .filter(|n| settled.contains(n) || *n == p.owner),
        );
        let best = wanted[0];
        if best != p.owner && replicas > 1 {
            if p.follower.as_deref() == Some(best) {
                if ready.contains(&(account, best)) {
                    changes.push(PlacementChange::Move {
                        account,
                        epoch: p.epoch,
                        owner: best.to_owned(),
                        follower: Some(p.owner.clone()),
                    });
                }
            } else {
                changes.push(PlacementChange::Follow {
                    account,
                    epoch: p.epoch,
                    follower: Some(best.to_owned()),
                });
            }
            continue;
        }
        if best != p.owner {
            // One index per account: the move is cold; only on a settled node.
            changes.push(PlacementChange::Move {
                account,
                epoch: p.epoch,
                owner: best.to_owned(),
                follower: None,
            });
            continue;
        }
        let follower_ok = p.follower.as_deref().is_some_and(is_alive);
        if replicas > 1
            && !follower_ok
            && let Some(f) = second(&p.owner)
        {
            changes.push(PlacementChange::Follow {
                account,
                epoch: p.epoch,
                follower: Some(f),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use segmentd_store::cluster::{NodeRow, Placement};

    fn node(id: &str, alive: bool) -> NodeRow {
        NodeRow {
            id: id.into(),
            address: format!("http://{id}"),
            alive,
            alive_for_ms: if alive { 60_000 } else { 0 },
        }
    }

    fn placed(account: AccountId, owner: &str, follower: Option<&str>) -> Placement {
        Placement {
            account,
            owner: owner.into(),
            follower: follower.map(Into::into),
            epoch: 7,
            write_seq: 0,
            handoff_seq: 0,
            follower_seq: None,
        }
    }

    const SETTLE: Duration = Duration::from_secs(5);

    #[test]
    fn accounts_spread_over_the_nodes_and_each_ranking_is_stable() {
        let nodes = ["n1", "n2", "n3"];
        let mut owners: HashMap<&str, usize> = HashMap::new();
        for account in 1..=300 {
            let r = ranking(account, nodes);
            assert_eq!(r, ranking(account, nodes), "the same ranking every time");
            *owners.entry(r[0]).or_default() += 1;
        }
        for n in nodes {
            let owned = owners.get(n).copied().unwrap_or(0);
            assert!((60..=140).contains(&owned), "{n} owns {owned} of 300");
        }
    }

    #[test]
    fn a_node_joining_takes_only_accounts_it_ranks_first() {
        for account in 1..=200 {
            let before = ranking(account, ["n1", "n2", "n3"])[0];
            let after = ranking(account, ["n1", "n2", "n3", "n4"])[0];
            assert!(
                after == before || after == "n4",
                "account {account} moved between old nodes"
            );
        }
    }

    #[test]
    fn each_situation_gets_its_change() {
        let all = vec![node("n1", true), node("n2", true), node("n3", true)];
        let account = 42;
        let r = ranking(account, ["n1", "n2", "n3"]);
        let (first, second, third) = (r[0], r[1], r[2]);
        type Case = (
            &'static str,
            Vec<NodeRow>,
            Option<Placement>,
            Vec<PlacementChange>,
        );
        let cases: Vec<Case> = vec![
            (
                "a new account is placed on its first two nodes",
                all.clone(),
                None,
                vec![PlacementChange::Place {
                    account,
                    owner: first.into(),
                    follower: Some(second.into()),
                }],
            ),
            (
                "a placement where it should be stays",
                all.clone(),
                Some(placed(account, first, Some(second))),
                vec![],
            ),
            (
                "a dead owner's account moves to its follower, with a new follower",
                all.iter().map(|n| node(&n.id, n.id != first)).collect(),
                Some(placed(account, first, Some(second))),
                vec![PlacementChange::Move {
                    account,
                    epoch: 7,
                    owner: second.into(),
                    follower: Some(third.into()),
                }],
            ),
            (
                "a dead follower is replaced",
                all.iter().map(|n| node(&n.id, n.id != second)).collect(),
                Some(placed(account, first, Some(second))),
                vec![PlacementChange::Follow {
                    account,
                    epoch: 7,
                    follower: Some(third.into()),
                }],
            ),
            (
                "a live owner that is not first gets the first node as follower",
                all.clone(),
                Some(placed(account, second, Some(third))),
                vec![PlacementChange::Follow {
                    account,
                    epoch: 7,
                    follower: Some(first.into()),
                }],
            ),
            (
                "a node that has just joined waits before it takes accounts",
                all.iter()
                    .map(|n| NodeRow {
                        alive_for_ms: if n.id == first { 10 } else { 60_000 },
                        ..n.clone()
                    })
                    .collect(),
                Some(placed(account, second, Some(third))),
                vec![],
            ),
        ];
        for (case, nodes, placement, expected) in cases {
            let view = ClusterView {
                nodes,
                placements: placement.into_iter().collect(),
                accounts: vec![account],
                ready: vec![],
            };
            assert_eq!(plan(&view, 2, SETTLE), expected, "{case}");
        }
    }

    #[test]
    fn the_first_node_takes_over_once_its_follower_index_is_ready() {
        let account = 42;
        let r = ranking(account, ["n1", "n2", "n3"]);
        let mut view = ClusterView {
            nodes: vec![node("n1", true), node("n2", true), node("n3", true)],
            placements: vec![placed(account, r[1], Some(r[0]))],
            accounts: vec![account],
            ready: vec![],
        };
        assert_eq!(plan(&view, 2, SETTLE), vec![], "not ready: nothing moves");
        view.ready.push((account, r[0].to_owned()));
        assert_eq!(
            plan(&view, 2, SETTLE),
            vec![PlacementChange::Move {
                account,
                epoch: 7,
                owner: r[0].into(),
                follower: Some(r[1].into()),
            }]
        );
    }
}
