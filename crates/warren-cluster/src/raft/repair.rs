//! Repair of a queue group member that lost its replica: a node that came
//! back with an empty data directory answers the group's RPCs with "no
//! such group" (NOT_FOUND), and would otherwise stay a silent voter for
//! good, leaving the queue one failure from losing its majority.
//!
//! ```text
//!   append to peer ─▶ NOT_FOUND ─▶ (leader) demote peer to learner
//!        ─▶ StartReplica(repair) on peer ─▶ peer catches up (snapshot + log)
//!        ─▶ (leader, checked every second) promote learners whose own
//!           report shows them caught up
//! ```
//!
//! The peer votes again only once it holds the log: an empty voter would
//! grant its vote to a candidate missing committed entries. The peer
//! refuses a repair of a queue its metadata does not hold, so a replica
//! deleted with its queue is not brought back by a late append.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::Raft;
use openraft::async_runtime::WatchReceiver as _;
use openraft::storage::RaftStateMachine;
use tokio::sync::mpsc;
use warren_storage::GroupId;

use super::TypeConfig;
use crate::net::Net;

type C = TypeConfig;

/// At most one repair attempt per peer this often.
const RETRY_EVERY: Duration = Duration::from_secs(5);
/// A learner whose replica applied the log to this close to the leader's
/// last index is caught up enough to vote (a follower is always a little
/// behind under load).
const CAUGHT_UP: u64 = 256;
const ASK_WAIT: Duration = Duration::from_secs(10);

/// Where a group's network reports peers that run no replica of it.
pub(crate) type MissingTx = mpsc::UnboundedSender<u64>;

/// Runs the repairs of one queue group until the group stops.
pub(crate) fn spawn<SM: RaftStateMachine<C>>(
    raft: Raft<C, SM>,
    net: Arc<Net>,
    group: GroupId,
    identity: (String, String),
    target: Option<super::TargetFn>,
    lease: Option<Duration>,
    mut missing: mpsc::UnboundedReceiver<u64>,
) {
    tokio::spawn(async move {
        let mut tried: BTreeMap<u64, Instant> = BTreeMap::new();
        let mut server = raft.server_metrics();
        let mut topology = net.topology_changes();
        let mut wait = IDLE_CHECK;
        loop {
            // Sleeps until something that could call for a repair happens:
            // a peer reported missing its replica, a change of the group's
            // leader or membership (its watch closes when the group stops),
            // a peer judged down or up, the peer table changed; or until
            // `wait` ran out (work under way, a grace period running out).
            let mut peer = None;
            tokio::select! {
                p = missing.recv() => match p {
                    Some(p) => peer = Some(p),
                    None => return,
                },
                changed = server.changed() => if changed.is_err() {
                    return;
                },
                _ = topology.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            if raft.metrics().borrow_watched().running_state.is_err() {
                return;
            }
            wait = IDLE_CHECK;
            if !raft.is_leader() {
                continue;
            }
            if let Some(peer) = peer
                && tried.get(&peer).is_none_or(|t| t.elapsed() >= RETRY_EVERY)
            {
                tried.insert(peer, Instant::now());
                let (vhost, name) = (&identity.0, &identity.1);
                if let Err(e) = replace(&raft, &net, lease, group, vhost, name, peer).await {
                    tracing::warn!(
                        group, peer, queue = %name, error = %e,
                        "replacing a lost queue replica failed; will try again"
                    );
                }
                // What the repair itself provoked is stale now.
                while missing.try_recv().is_ok() {}
            }
            promote_caught_up(&raft, &net, lease, group, &identity.1).await;
            if let Some(target) = &target
                && let Err(e) = reconcile(&raft, &net, lease, group, &identity, target).await
            {
                tracing::warn!(
                    group, queue = %identity.1, error = %e,
                    "replacing the replica of a node down for long failed; will try again"
                );
                wait = BUSY_CHECK;
            }
            wait = wait.min(next_check(&raft, &net));
        }
    });
}

/// How often a group with a repair or a replacement under way looks again.
const BUSY_CHECK: Duration = Duration::from_secs(1);
/// How often a group with nothing to repair looks anyway (a safety net:
/// the events above wake it for everything it acts on).
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// When the leader's repair loop must look again without being woken: in
/// [`BUSY_CHECK`] while a learner that is not a reader is on its way to a
/// vote (see [`promote_caught_up`]); when the grace period of a member
/// judged down runs out; otherwise [`IDLE_CHECK`].
fn next_check<SM: RaftStateMachine<C>>(raft: &Raft<C, SM>, net: &Net) -> Duration {
    let metrics = raft.server_metrics();
    let m = metrics.borrow_watched();
    let membership = m.membership_config.membership();
    if membership
        .learner_ids()
        .any(|id| !membership.get_node(&id).is_some_and(super::is_reader))
    {
        return BUSY_CHECK;
    }
    let Some(grace) = net.replace_after() else {
        return IDLE_CHECK;
    };
    membership
        .voter_ids()
        .filter_map(|id| net.down_for(id))
        .map(|down| grace.saturating_sub(down) + Duration::from_millis(100))
        .min()
        .unwrap_or(IDLE_CHECK)
        .min(IDLE_CHECK)
}

/// Demotes `peer` to learner and starts an empty replica on it; the
/// leader then replicates to it, and [`promote_caught_up`] gives its vote
/// back once it holds the log.
async fn replace<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    net: &Net,
    lease: Option<Duration>,
    group: GroupId,
    vhost: &str,
    name: &str,
    peer: u64,
) -> Result<(), String> {
    let voters: BTreeSet<u64> = raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    let reader = {
        let metrics = raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&peer)
            .is_some_and(super::is_reader)
    };
    if reader {
        // A reader that lost its replica: it no longer serves anybody
        // (its node restarted), and joins again when it needs the queue.
        tracing::info!(group, peer, queue = %name, "removing a reader that lost its replica");
        if !writable(raft, lease).await {
            return Err("this node's leader lease could not be renewed".into());
        }
        raft.change_membership(
            openraft::ChangeMembers::RemoveNodes(BTreeSet::from([peer])),
            false,
        )
        .await
        .map_err(|e| format!("removing reader {peer}: {e}"))?;
        return Ok(());
    }
    tracing::warn!(
        group, peer, queue = %name, vhost = %vhost,
        "a member runs no replica of this queue (its data directory was emptied?): \
         demoting it to learner and starting a new replica there"
    );
    if voters.contains(&peer) {
        if !writable(raft, lease).await {
            return Err("this node's leader lease could not be renewed".into());
        }
        // Kept as a learner: still replicated to, no longer voting.
        raft.change_membership(
            openraft::ChangeMembers::RemoveVoters(BTreeSet::from([peer])),
            true,
        )
        .await
        .map_err(|e| format!("demoting node {peer}: {e}"))?;
    }
    net.start_replica(peer, group, vhost, name, ASK_WAIT, true)
        .await
        .map_err(|e| format!("starting a replica on node {peer}: {e}"))?;
    Ok(())
}

/// Promotes every learner whose replica applied the log to within
/// [`CAUGHT_UP`] entries of the leader's: in a queue group, learners that
/// are not readers are only ever replaced members on their way back (a
/// leader that took over mid-repair finishes it here too). The learner's own report decides:
/// the leader's replication progress towards it may still be the one from
/// before it lost its data.
async fn promote_caught_up<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    net: &Net,
    lease: Option<Duration>,
    group: GroupId,
    name: &str,
) {
    let (last, learners): (u64, Vec<u64>) = {
        let metrics = raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let learners = membership
            .learner_ids()
            .filter(|id| !membership.get_node(id).is_some_and(super::is_reader))
            .collect();
        (m.last_log_index.unwrap_or(0), learners)
    };
    let mut ready = BTreeSet::new();
    for l in learners {
        let Ok(info) = net.cluster_info(l, ASK_WAIT).await else {
            continue;
        };
        let applied = info
            .queue_groups
            .iter()
            .zip(&info.queue_applied)
            .find(|(g, _)| **g == group)
            .map(|(_, a)| *a);
        if applied.is_some_and(|a| a > 0 && a + CAUGHT_UP >= last) {
            ready.insert(l);
        }
    }
    if ready.is_empty() || !writable(raft, lease).await {
        return;
    }
    match raft
        .change_membership(openraft::ChangeMembers::AddVoterIds(ready.clone()), false)
        .await
    {
        Ok(_) => tracing::info!(
            group, queue = %name, peers = ?ready,
            "replaced queue replicas caught up and vote again"
        ),
        Err(e) => tracing::warn!(
            group, queue = %name, peers = ?ready, error = %e,
            "promoting caught-up replicas failed; will try again"
        ),
    }
}

/// A membership change is a write: a leader without heartbeats renews its
/// lease first if it lapsed while idle (see `renew_lease`). Only called
/// when there is a change to make, so idle groups stay silent.
async fn writable<SM: RaftStateMachine<C>>(raft: &Raft<C, SM>, lease: Option<Duration>) -> bool {
    match lease {
        Some(lease) => super::group::renew_lease(raft, lease).await,
        None => true,
    }
}

/// Replaces the replicas of members down for longer than the grace period
/// (`Net::replace_after`), one step per call, with nothing remembered
/// between calls (a leader that takes over mid-way carries on):
///
/// 0. members removed from the cluster (`warren ctl cluster remove-node`:
///    no longer in the peer table) leave the group at once;
/// 1. fewer voters than the queue's target, not counting those down that
///    long (or a node that was down when the queue was placed): a live
///    node that is not a voter joins — a reader is promoted
///    at once (it holds the log), another node gets a new replica as a
///    learner, promoted once caught up (`promote_caught_up`);
/// 2. enough live voters: the members down that long stop voting. Each
///    stays a reader, so that when its node returns its replica catches
///    up instead of holding a stale log its clients would wait on.
async fn reconcile<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    net: &Net,
    lease: Option<Duration>,
    group: GroupId,
    identity: &(String, String),
    target: &super::TargetFn,
) -> Result<(), String> {
    let grace = net.replace_after();
    let (voters, learners, readers, joint) = {
        let metrics = raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let (readers, learners): (BTreeSet<u64>, BTreeSet<u64>) = membership
            .learner_ids()
            .partition(|id| membership.get_node(id).is_some_and(super::is_reader));
        let joint = membership.get_joint_config().len() > 1;
        (voters, learners, readers, joint)
    };
    if joint {
        return Ok(());
    }
    let table: BTreeSet<u64> = net.members().into_iter().collect();
    let removed: BTreeSet<u64> = voters
        .iter()
        .chain(&learners)
        .chain(&readers)
        .filter(|id| !table.contains(id))
        .copied()
        .collect();
    if !removed.is_empty() {
        return drop_removed(raft, net, lease, group, identity, &voters, removed).await;
    }
    let long_down =
        |id: &u64| grace.is_some_and(|grace| net.down_for(*id).is_some_and(|d| d >= grace));
    let gone: BTreeSet<u64> = voters.iter().copied().filter(long_down).collect();
    // A member demoted by a repair whose node then stayed away.
    let lost_learners: BTreeSet<u64> = learners.iter().copied().filter(long_down).collect();
    if learners.len() > lost_learners.len() {
        // A change (or a repair) under way.
        return Ok(());
    }
    let Some(target) = target() else {
        return Ok(());
    };
    let (vhost, name) = identity;
    let live = voters.len() - gone.len();
    if live >= target {
        if gone.is_empty() && lost_learners.is_empty() {
            return Ok(());
        }
        let stale: BTreeSet<u64> = gone.union(&lost_learners).copied().collect();
        tracing::warn!(
            group, queue = %name, %vhost, nodes = ?stale, after = ?grace,
            "replicas replaced: the members down for longer than the grace period stop voting"
        );
        if !writable(raft, lease).await {
            return Err("this node's leader lease could not be renewed".into());
        }
        let as_readers: BTreeMap<u64, openraft::BasicNode> = stale
            .iter()
            .map(|id| (*id, reader_node(net, *id)))
            .collect();
        raft.change_membership(openraft::ChangeMembers::SetNodes(as_readers), false)
            .await
            .map_err(|e| format!("marking {stale:?} as readers: {e}"))?;
        if !gone.is_empty() {
            raft.change_membership(openraft::ChangeMembers::RemoveVoters(gone.clone()), true)
                .await
                .map_err(|e| format!("removing voters {gone:?}: {e}"))?;
        }
        return Ok(());
    }
    // Fewer live voters than declared: a member down for long, or a node
    // that was down when the queue was placed.
    // A node to take a replica: live, not a voter; readers first, then
    // spread by group id over the others.
    let candidates: Vec<u64> = net
        .members()
        .into_iter()
        .filter(|n| !voters.contains(n) && !net.is_down(*n))
        .collect();
    if let Some(r) = candidates.iter().copied().find(|n| readers.contains(n)) {
        tracing::warn!(
            group, queue = %name, %vhost, down = ?gone, node = r,
            "fewer live voters than declared (a member down past the grace period, \
             removed, or down when the queue was placed): a reader on a live node becomes a voter"
        );
        if !writable(raft, lease).await {
            return Err("this node's leader lease could not be renewed".into());
        }
        let addr = net.addr(r).map(|a| a.to_string()).unwrap_or_default();
        raft.change_membership(
            openraft::ChangeMembers::SetNodes(BTreeMap::from([(r, openraft::BasicNode { addr })])),
            false,
        )
        .await
        .map_err(|e| format!("unmarking reader {r}: {e}"))?;
        raft.change_membership(
            openraft::ChangeMembers::AddVoterIds(BTreeSet::from([r])),
            false,
        )
        .await
        .map_err(|e| format!("promoting reader {r}: {e}"))?;
        return Ok(());
    }
    if candidates.is_empty() {
        return Ok(());
    }
    let node = candidates[(group as usize) % candidates.len()];
    tracing::warn!(
        group, queue = %name, %vhost, down = ?gone, node,
        "fewer live voters than declared (a member down past the grace period, \
         removed, or down when the queue was placed): starting a new replica on a live node"
    );
    net.start_replica(node, group, vhost, name, ASK_WAIT, true)
        .await
        .map_err(|e| format!("starting a replica on node {node}: {e}"))?;
    if !writable(raft, lease).await {
        return Err("this node's leader lease could not be renewed".into());
    }
    let addr = net.addr(node).map(|a| a.to_string()).unwrap_or_default();
    raft.add_learner(node, openraft::BasicNode { addr }, false)
        .await
        .map_err(|e| format!("adding node {node} as learner: {e}"))?;
    Ok(())
}

/// Takes the members removed from the cluster out of the group: voters
/// first (not kept as learners), then learners and readers. A group
/// whose voters were all removed is left alone (nothing can commit it).
async fn drop_removed<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    net: &Net,
    lease: Option<Duration>,
    group: GroupId,
    identity: &(String, String),
    voters: &BTreeSet<u64>,
    removed: BTreeSet<u64>,
) -> Result<(), String> {
    if voters.iter().all(|v| removed.contains(v)) {
        return Ok(());
    }
    tracing::warn!(
        group, queue = %identity.1, vhost = %identity.0, nodes = ?removed,
        node = net.node_id(),
        "members removed from the cluster leave the queue's group"
    );
    if !writable(raft, lease).await {
        return Err("this node's leader lease could not be renewed".into());
    }
    super::membership::remove_members(raft, voters, removed).await
}

/// `node`'s membership entry as a reader.
fn reader_node(net: &Net, node: u64) -> openraft::BasicNode {
    let addr = net.addr(node).map(|a| a.to_string()).unwrap_or_default();
    openraft::BasicNode {
        addr: format!("{}{addr}", super::READER_MARK),
    }
}
