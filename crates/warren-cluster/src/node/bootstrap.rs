//! Founding the cluster, once. Only the lowest id of the peer table may
//! initialise the metadata group, and only when
//! - its own store holds no initialised metadata group (it is not a member
//!   coming back), and
//! - a majority of the peer table (itself included) answered ClusterInfo,
//!   and none of them has an initialised metadata group.
//!
//! So a node restarted with an empty data dir while the others hold the
//! cluster joins it (the leader replicates to it: its id is a voter)
//! instead of founding a second one; and because a majority must answer,
//! an existing cluster can only be missed if a majority of its members
//! lost their data. Every other node just waits to be replicated to.
//! The founder makes the first five ids voters and the rest learners.

use std::sync::{Arc, Weak};
use std::time::Duration;

use warren_storage::LogStore;

use super::Inner;

/// Most voters of the metadata group; further nodes are learners.
pub(super) const MAX_VOTERS: usize = 5;

/// Pause between two rounds of asking the peers.
const ROUND_PAUSE: Duration = Duration::from_millis(300);

/// How long one ClusterInfo call may take.
const INFO_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the founder waits to lead before adding the learners.
const LEAD_WAIT: Duration = Duration::from_secs(30);

/// Where this node stands in the founding of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Not decided yet (the founder is asking its peers).
    Pending,
    /// The store held an initialised metadata group: a member rejoining.
    Member,
    /// Not the lowest id: waits to be replicated to.
    Follower,
    /// The founder found an existing cluster (this node answered by
    /// `seen_on`) and joins it instead.
    Joined { seen_on: u64 },
    /// The founder was replicated to by a leader before it decided (an
    /// existing cluster reached it first).
    Replicated,
    /// This node initialised the metadata group.
    Founded,
}

fn set<S: LogStore>(inner: &Inner<S>, state: Bootstrap) {
    tracing::info!(node = inner.node_id, ?state, "cluster bootstrap");
    *inner.bootstrap_state.lock() = state;
}

/// The bootstrap task of a node started as a member of a cluster whose
/// store held no initialised metadata group.
pub(super) async fn run<S: LogStore>(node: Weak<Inner<S>>) {
    loop {
        let Some(inner) = node.upgrade() else { return };
        match round(&inner).await {
            Ok(Some(state)) => {
                let founded = state == Bootstrap::Founded;
                set(&inner, state);
                if founded {
                    add_learners(&inner).await;
                }
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(node = inner.node_id, error = %e, "cluster bootstrap"),
        }
        drop(inner);
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}

/// One round: the decision, or `None` if too few peers answered.
async fn round<S: LogStore>(
    inner: &Arc<Inner<S>>,
) -> Result<Option<Bootstrap>, crate::ClusterError> {
    let Some(net) = inner.net.clone() else {
        return Ok(Some(Bootstrap::Member));
    };
    // The `--peers` table: until the node is a member, the peer table.
    let members: Vec<u64> = net.seed().into_keys().collect();
    if members.first() != Some(&inner.node_id) {
        return Ok(Some(Bootstrap::Follower));
    }
    if inner.meta.is_initialized().await? {
        return Ok(Some(Bootstrap::Replicated));
    }
    let asks = members.iter().filter(|m| **m != inner.node_id).map(|peer| {
        let net = net.clone();
        async move { (*peer, net.cluster_info(*peer, INFO_TIMEOUT).await) }
    });
    let answers = futures::future::join_all(asks).await;
    let mut answered = 1;
    for (peer, answer) in answers {
        match answer {
            Ok(info) if info.meta_initialized => {
                return Ok(Some(Bootstrap::Joined { seen_on: peer }));
            }
            Ok(_) => answered += 1,
            Err(e) => {
                tracing::debug!(node = inner.node_id, peer, error = %e, "bootstrap: no answer")
            }
        }
    }
    if answered * 2 <= members.len() {
        return Ok(None);
    }
    // Someone may have replicated to us while we asked.
    if inner.meta.is_initialized().await? {
        return Ok(Some(Bootstrap::Replicated));
    }
    let voters: Vec<u64> = members.iter().copied().take(MAX_VOTERS).collect();
    inner.meta.initialize(&voters).await?;
    Ok(Some(Bootstrap::Founded))
}

/// The founder adds the members beyond the first five as learners, once
/// it leads (the initial membership must be committed first).
async fn add_learners<S: LogStore>(inner: &Arc<Inner<S>>) {
    let Some(net) = inner.net.clone() else { return };
    // From the `--peers` table: the peer table now follows the metadata
    // membership, which holds only the voters so far.
    let learners: Vec<(u64, std::net::SocketAddr)> =
        net.seed().into_iter().skip(MAX_VOTERS).collect();
    if learners.is_empty() {
        return;
    }
    match inner.meta.wait_leader(LEAD_WAIT).await {
        Ok(l) if l == inner.node_id => {}
        _ => {
            tracing::warn!(
                node = inner.node_id,
                "bootstrap: not leading, learners not added"
            );
            return;
        }
    }
    for (l, addr) in learners {
        net.set_peer(l, addr);
        if let Err(e) = inner.meta.add_learner_at(l, addr.to_string()).await {
            tracing::warn!(node = inner.node_id, learner = l, error = %e, "bootstrap: add learner");
        }
    }
}
