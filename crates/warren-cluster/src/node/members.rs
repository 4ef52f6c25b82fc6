//! Which nodes make up the cluster, and changing that: `warren ctl cluster
//! add-node` and `remove-node`.
//!
//! The metadata group's membership is the list of the cluster's nodes,
//! each recorded with the address its peers dial. Every node follows it:
//! a task here keeps the transport's peer table equal to it (see `Net`),
//! so a node added on the leader is dialled by everybody, and a node
//! removed is forgotten by everybody, and its Raft requests refused.
//!
//! ```text
//!   add-node N addr ─▶ (metadata leader) add N as a learner ─▶ N catches up
//!        ─▶ (leader, checked every 500 ms) N votes if fewer than 5 do
//!   remove-node N   ─▶ (metadata leader, N judged down) N leaves the membership
//!        ─▶ every node drops N from its peer table ─▶ each queue group's
//!           leader drops N and fills its place (`raft::repair`)
//! ```
//!
//! A removed node is refused rather than merged back: the groups went on
//! without it, and its log may hold a membership that still names it.
//! Its data directory must be emptied before it is added again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use tokio::task::JoinHandle;
use warren_storage::LogStore;

use super::bootstrap::MAX_VOTERS;
use super::{Inner, Node};
use crate::ClusterError;
use crate::raft::Members;

/// How often the peer table is checked against the membership, and the
/// leader looks for learners to promote.
const EVERY: Duration = Duration::from_millis(500);

/// A learner this close to the leader's last log index votes.
const CAUGHT_UP: u64 = 64;

/// How long a membership change may take to commit (a majority of the
/// voters must answer).
const CHANGE_WAIT: Duration = Duration::from_secs(15);

/// How long a forwarded add or remove may take.
const FORWARD_WAIT: Duration = Duration::from_secs(20);

/// The task keeping the peer table in step with the membership.
pub(super) struct MembersTask(JoinHandle<()>);

impl Drop for MembersTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) fn spawn<S: LogStore>(node: Weak<Inner<S>>) -> MembersTask {
    MembersTask(tokio::spawn(async move {
        let mut said_removed = false;
        loop {
            tokio::time::sleep(EVERY).await;
            let Some(inner) = node.upgrade() else { return };
            let members = inner.meta.members_now();
            if members.nodes.is_empty() {
                // Not a member yet: the peer table is the `--peers` one.
                continue;
            }
            if !members.nodes.contains_key(&inner.node_id) {
                if !said_removed {
                    tracing::error!(
                        node = inner.node_id,
                        "this node was removed from the cluster (warren ctl cluster \
                         remove-node): its peers refuse it; empty its data directory \
                         and add it again to bring it back"
                    );
                    said_removed = true;
                }
                continue;
            }
            sync_table(&inner, &members);
            if inner.meta.is_leader() {
                promote_caught_up(&inner, &members).await;
            }
        }
    }))
}

/// Sets the peer table to the membership's nodes: at the `--peers`
/// address for the nodes it names, else at the address recorded.
fn sync_table<S: LogStore>(inner: &Inner<S>, members: &Members) {
    let Some(net) = &inner.net else { return };
    let seed = net.seed();
    let table: BTreeMap<u64, SocketAddr> = members
        .nodes
        .iter()
        .filter_map(|(id, recorded)| {
            let addr = seed.get(id).copied().or_else(|| recorded.parse().ok());
            if addr.is_none() {
                tracing::warn!(
                    node = inner.node_id, peer = id, address = %recorded,
                    "a member's recorded address does not parse; it is left out"
                );
            }
            addr.map(|a| (*id, a))
        })
        .collect();
    if table == net.table() {
        return;
    }
    let (added, removed) = net.set_table(table);
    if !added.is_empty() || !removed.is_empty() {
        tracing::info!(
            node = inner.node_id,
            ?added,
            ?removed,
            "cluster members changed"
        );
        inner.changed();
    }
}

/// On the metadata leader: while fewer than [`MAX_VOTERS`] vote, the
/// learner that follows closest (a node added, or beyond the first five)
/// votes too, one at a time.
async fn promote_caught_up<S: LogStore>(inner: &Inner<S>, members: &Members) {
    if members.joint || members.voters.len() >= MAX_VOTERS {
        return;
    }
    let last = members.last_index.unwrap_or(0);
    let ready = members
        .nodes
        .keys()
        .filter(|id| !members.voters.contains(id))
        .filter(|id| {
            let matched = members.matched.get(id).copied().flatten().unwrap_or(0);
            matched > 0 && matched + CAUGHT_UP >= last
        })
        .copied()
        .next();
    let Some(node) = ready else { return };
    match tokio::time::timeout(CHANGE_WAIT, inner.meta.promote(BTreeSet::from([node]))).await {
        Ok(Ok(())) => tracing::info!(node = inner.node_id, peer = node, "a member now votes"),
        Ok(Err(e)) => tracing::warn!(node = inner.node_id, peer = node, error = %e,
            "promoting a caught-up member failed; will try again"),
        Err(_) => tracing::warn!(
            node = inner.node_id,
            peer = node,
            "promoting a caught-up member did not commit in time; will try again"
        ),
    }
}

/// Where an add or a remove is decided: here if this node leads the
/// metadata group, else on the leader (forwarded there once).
enum Decide {
    Here,
    At(u64),
}

impl<S: LogStore> Node<S> {
    async fn decider(&self, forwarded: bool) -> Result<Decide, ClusterError> {
        let leader = self.wait_for_meta_leader(CHANGE_WAIT).await?;
        if leader == self.inner.node_id && self.inner.meta.is_leader() {
            return Ok(Decide::Here);
        }
        if forwarded || leader == self.inner.node_id {
            return Err(ClusterError::NotLeader {
                group: warren_storage::METADATA_GROUP,
                leader: Some(leader),
            });
        }
        Ok(Decide::At(leader))
    }

    /// Adds node `id`, dialled at `addr` (host:port, resolved here), to
    /// the cluster: it becomes a learner of the metadata group now and
    /// votes once caught up, if fewer than five do. The node itself is
    /// started with `--peers` naming itself and some of the members; it
    /// waits to be replicated to. Idempotent for the same address;
    /// answers the address recorded.
    pub async fn add_node(
        &self,
        id: u64,
        addr: &str,
        forwarded: bool,
    ) -> Result<String, ClusterError> {
        let net = self.net()?.clone();
        let sock = resolve(addr).await?;
        let leader = match self.decider(forwarded).await? {
            Decide::Here => self.inner.node_id,
            Decide::At(leader) => {
                return net
                    .add_node(leader, id, &sock.to_string(), FORWARD_WAIT)
                    .await
                    .map_err(forward_err);
            }
        };
        let members = self.inner.meta.members_now();
        if let Some(recorded) = members.nodes.get(&id) {
            return if recorded.parse::<SocketAddr>().ok() == Some(sock) {
                Ok(recorded.clone())
            } else {
                Err(ClusterError::Config(format!(
                    "node {id} is already a member, at {recorded}: remove it first"
                )))
            };
        }
        if let Some((other, _)) = members
            .nodes
            .iter()
            .find(|(_, a)| a.parse::<SocketAddr>().ok() == Some(sock))
        {
            return Err(ClusterError::Config(format!(
                "{sock} is the address of node {other}"
            )));
        }
        tracing::info!(node = leader, peer = id, address = %sock, "adding a node to the cluster");
        net.set_peer(id, sock);
        let added = tokio::time::timeout(
            CHANGE_WAIT,
            self.inner.meta.add_learner_at(id, sock.to_string()),
        )
        .await
        .map_err(|_| uncommitted("adding", id))?;
        added?;
        self.inner.changed();
        Ok(sock.to_string())
    }

    /// Removes node `id`, down for good, from the cluster: it leaves the
    /// metadata group at once; each queue group then drops it and, where
    /// that leaves fewer replicas than declared, starts one on another
    /// node. Refused while the node is up (this node's failure detector
    /// does not judge it down).
    pub async fn remove_node(&self, id: u64, forwarded: bool) -> Result<(), ClusterError> {
        let net = self.net()?.clone();
        let me = match self.decider(forwarded).await? {
            Decide::Here => self.inner.node_id,
            Decide::At(leader) => {
                return net
                    .remove_node(leader, id, FORWARD_WAIT)
                    .await
                    .map_err(forward_err);
            }
        };
        let members = self.inner.meta.members_now();
        if !members.nodes.contains_key(&id) {
            return Err(ClusterError::Config(format!(
                "node {id} is not a member of the cluster"
            )));
        }
        if id == me || !net.is_down(id) {
            return Err(ClusterError::Config(format!(
                "node {id} is up: stop it before removing it (only a node that is \
                 down can be removed)"
            )));
        }
        if members.voters.len() == 1 && members.voters.contains(&id) {
            return Err(ClusterError::Config(format!(
                "node {id} is the only voter of the metadata"
            )));
        }
        tracing::warn!(node = me, peer = id, "removing a node from the cluster");
        let removed = tokio::time::timeout(
            CHANGE_WAIT,
            self.inner.meta.remove_nodes(BTreeSet::from([id])),
        )
        .await
        .map_err(|_| uncommitted("removing", id))?;
        removed?;
        sync_table(&self.inner, &self.inner.meta.members_now());
        Ok(())
    }
}

fn uncommitted(what: &str, id: u64) -> ClusterError {
    ClusterError::Transport(format!(
        "{what} node {id} did not commit within {CHANGE_WAIT:?}: a majority of the \
         metadata voters must answer"
    ))
}

/// A forwarded call's error: the leader's refusal stays one.
fn forward_err(e: crate::net::NetError) -> ClusterError {
    if e.refused() {
        ClusterError::Config(e.to_string())
    } else {
        ClusterError::Transport(e.to_string())
    }
}

/// `addr` (host:port) as the address peers dial.
async fn resolve(addr: &str) -> Result<SocketAddr, ClusterError> {
    let bad = |e: String| ClusterError::Config(format!("address '{addr}': {e}"));
    let mut found = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| bad(e.to_string()))?;
    found
        .next()
        .ok_or_else(|| bad("resolves to nothing".into()))
}
