//! A group's membership as the node's cluster management reads and changes
//! it (see `node::members`): who is in it, at which address, and how far
//! each follows the leader; adding, promoting and removing nodes.

use std::collections::{BTreeMap, BTreeSet};

use openraft::async_runtime::WatchReceiver as _;
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, ChangeMembers, Raft};

use super::group::raft_err;
use super::{GroupHandle, TypeConfig};
use crate::ClusterError;

type C = TypeConfig;

/// A group's membership, as this replica last saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Members {
    /// Every member (voters and learners) with the address recorded for it.
    pub(crate) nodes: BTreeMap<u64, String>,
    pub(crate) voters: BTreeSet<u64>,
    /// A change is under way (old and new voters both count).
    pub(crate) joint: bool,
    /// The log index of the entry that set this membership.
    pub(crate) index: Option<u64>,
    /// On the leader: this replica's last log index, and the last index
    /// each member is known to hold.
    pub(crate) last_index: Option<u64>,
    pub(crate) matched: BTreeMap<u64, Option<u64>>,
}

impl<SM: RaftStateMachine<C>> GroupHandle<SM> {
    /// The membership this replica holds (the last one appended, committed
    /// or not).
    pub(crate) fn members_now(&self) -> Members {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let stored = &m.membership_config;
        let membership = stored.membership();
        Members {
            nodes: membership
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect(),
            voters: membership.voter_ids().collect(),
            joint: membership.get_joint_config().len() > 1,
            index: stored.log_id().map(|l| l.index),
            last_index: m.last_log_index,
            matched: m
                .replication
                .as_ref()
                .map(|r| {
                    r.iter()
                        .map(|(id, l)| (*id, l.as_ref().map(|l| l.index)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Adds `node` as a learner recorded at `addr` (this node must lead);
    /// returns once the change is committed, without waiting for the
    /// learner to catch up (it may not be running yet).
    pub(crate) async fn add_learner_at(&self, node: u64, addr: String) -> Result<(), ClusterError> {
        self.raft
            .add_learner(node, BasicNode { addr }, false)
            .await
            .map(|_| ())
            .map_err(raft_err)
    }

    /// Makes the learners `nodes` voters (this node must lead).
    pub(crate) async fn promote(&self, nodes: BTreeSet<u64>) -> Result<(), ClusterError> {
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(nodes), false)
            .await
            .map(|_| ())
            .map_err(raft_err)
    }

    /// Takes `nodes` out of the group altogether, voters and learners
    /// (this node must lead).
    pub(crate) async fn remove_nodes(&self, nodes: BTreeSet<u64>) -> Result<(), ClusterError> {
        let voters = self.members_now().voters;
        remove_members(&self.raft, &voters, nodes)
            .await
            .map_err(raft_err)
    }
}

/// Takes `nodes` out of the membership whose voters are `voters`
/// (this node must lead): the voters among them first, not kept as
/// learners, then the learners and readers.
pub(super) async fn remove_members<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    voters: &BTreeSet<u64>,
    nodes: BTreeSet<u64>,
) -> Result<(), String> {
    let (voting, others): (BTreeSet<u64>, BTreeSet<u64>) =
        nodes.into_iter().partition(|n| voters.contains(n));
    if !voting.is_empty() {
        raft.change_membership(ChangeMembers::RemoveVoters(voting.clone()), false)
            .await
            .map_err(|e| format!("removing voters {voting:?}: {e}"))?;
    }
    if !others.is_empty() {
        raft.change_membership(ChangeMembers::RemoveNodes(others.clone()), false)
            .await
            .map_err(|e| format!("removing learners {others:?}: {e}"))?;
    }
    Ok(())
}
