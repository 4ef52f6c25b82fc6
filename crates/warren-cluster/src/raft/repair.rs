//! Repair of a queue group member that lost its replica: a node that came
//! back with an empty data directory answers the group's RPCs with "no
//! such group" (NOT_FOUND), and would otherwise stay a silent voter for
//! good, leaving the queue one failure from losing its majority.
//!
//! ```text
//!   append to peer ─▶ NOT_FOUND ─▶ (leader) demote peer to learner
//!        ─▶ StartReplica(repair) on peer ─▶ peer catches up (snapshot + log)
//!        ─▶ promote peer to voter
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
/// How long a new replica may take to catch up before the attempt is
/// abandoned (the next NOT_FOUND or lag starts another).
const CATCH_UP: Duration = Duration::from_secs(120);
const START_WAIT: Duration = Duration::from_secs(10);

/// Where a group's network reports peers that run no replica of it.
pub(crate) type MissingTx = mpsc::UnboundedSender<u64>;

/// Runs the repairs of one queue group until the group stops.
pub(crate) fn spawn<SM: RaftStateMachine<C>>(
    raft: Raft<C, SM>,
    net: Arc<Net>,
    group: GroupId,
    identity: (String, String),
    mut missing: mpsc::UnboundedReceiver<u64>,
) {
    tokio::spawn(async move {
        let mut tried: BTreeMap<u64, Instant> = BTreeMap::new();
        loop {
            // Wake now and then to notice that the group stopped (the task
            // holds a handle that would keep it alive).
            let peer = match tokio::time::timeout(Duration::from_secs(1), missing.recv()).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(_) => {
                    if raft.metrics().borrow_watched().running_state.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if raft.metrics().borrow_watched().running_state.is_err() {
                return;
            }
            if !raft.is_leader() || tried.get(&peer).is_some_and(|t| t.elapsed() < RETRY_EVERY) {
                continue;
            }
            tried.insert(peer, Instant::now());
            let (vhost, name) = (&identity.0, &identity.1);
            match repair(&raft, &net, group, vhost, name, peer).await {
                Ok(()) => tracing::info!(
                    group, peer, queue = %name, vhost = %vhost,
                    "a lost queue replica was replaced: the member caught up and votes again"
                ),
                Err(e) => tracing::warn!(
                    group, peer, queue = %name, error = %e,
                    "repairing a lost queue replica failed; will try again"
                ),
            }
            // What the repair itself provoked is stale now.
            while missing.try_recv().is_ok() {}
        }
    });
}

async fn repair<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    net: &Net,
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
    tracing::warn!(
        group, peer, queue = %name, vhost = %vhost,
        "a member runs no replica of this queue (its data directory was emptied?): \
         demoting it to learner and starting a new replica there"
    );
    if voters.contains(&peer) {
        // Kept as a learner: still replicated to, no longer voting.
        raft.change_membership(
            openraft::ChangeMembers::RemoveVoters(BTreeSet::from([peer])),
            true,
        )
        .await
        .map_err(|e| format!("demoting node {peer}: {e}"))?;
    }
    net.start_replica(peer, group, vhost, name, START_WAIT, true)
        .await
        .map_err(|e| format!("starting a replica on node {peer}: {e}"))?;
    // Caught up: the peer holds everything this leader has committed.
    let target = raft.metrics().borrow_watched().last_log_index.unwrap_or(0);
    raft.wait(Some(CATCH_UP))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&peer).cloned().flatten())
                    .is_some_and(|matched| matched.index >= target)
            },
            "new replica caught up",
        )
        .await
        .map_err(|e| format!("node {peer} catching up: {e}"))?;
    raft.change_membership(
        openraft::ChangeMembers::AddVoterIds(BTreeSet::from([peer])),
        false,
    )
    .await
    .map_err(|e| format!("promoting node {peer}: {e}"))?;
    Ok(())
}
