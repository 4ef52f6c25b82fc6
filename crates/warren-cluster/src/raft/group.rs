//! Starting one group's `Raft` and driving it: the only place that calls
//! openraft's runtime API. Each group has one member (this node) for now.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use warren_storage::{GroupId, LogStore};

use super::network::NoNetworkFactory;
use super::{LogAdapter, QueueShared, Request, Response, TypeConfig};
use crate::ClusterError;

type C = TypeConfig;

/// How long a group may take to elect itself after a start.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Snapshot (and then compact the log) after this many entries.
const SNAPSHOT_EVERY: u64 = 1024;

/// One running group.
pub(crate) struct GroupHandle<SM: RaftStateMachine<C>> {
    raft: Raft<C, SM>,
    pub(crate) group: GroupId,
}

fn raft_err(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Raft(e.to_string())
}

fn config(group: GroupId, queue: bool) -> Result<Config, ClusterError> {
    let c = Config {
        cluster_name: format!("warren-g{group}"),
        // A queue group decides itself when to snapshot (its snapshot's
        // size follows its backlog: `QueueGroup` snapshots after a number
        // of entries proportional to it, so the cost per entry stays flat).
        snapshot_policy: if queue {
            SnapshotPolicy::Never
        } else {
            SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY)
        },
        // With one member nobody lags behind, so nothing needs the entries a
        // snapshot covers: compact right away.
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 256,
        ..Config::default()
    };
    c.validate().map_err(raft_err)
}

/// Starts the group's Raft over `store`; a pristine group is initialised
/// with this node as its only voter. Returns once this node leads it.
pub(crate) async fn start_group<S, SM>(
    node_id: u64,
    group: GroupId,
    store: S,
    sm: SM,
    queue: Option<Arc<QueueShared>>,
) -> Result<GroupHandle<SM>, ClusterError>
where
    S: LogStore,
    SM: RaftStateMachine<C, SnapshotData = bytes::Bytes>,
{
    let cfg = Arc::new(config(group, queue.is_some())?);
    let log = LogAdapter::new(store, group, queue);
    let raft = Raft::new(node_id, cfg, NoNetworkFactory, log, sm)
        .await
        .map_err(raft_err)?;
    if !raft.is_initialized().await.map_err(raft_err)? {
        let members = std::collections::BTreeMap::from([(node_id, BasicNode::default())]);
        raft.initialize(members).await.map_err(raft_err)?;
    }
    raft.wait(Some(LEADER_WAIT))
        .current_leader(node_id, "single-member group elects itself")
        .await
        .map_err(raft_err)?;
    // Leading means the new term's first entry is in the log; once it is
    // applied, so is everything before it: the state is back.
    raft.wait(Some(LEADER_WAIT))
        .metrics(
            |m| m.last_log_index.is_some() && m.last_applied.map(|l| l.index) >= m.last_log_index,
            "log replayed",
        )
        .await
        .map_err(raft_err)?;
    Ok(GroupHandle { raft, group })
}

impl<SM: RaftStateMachine<C>> GroupHandle<SM> {
    /// Proposes `req`; after it is committed (durable) and applied, the log
    /// index it got and the state machine's answer.
    pub(crate) async fn propose(&self, req: Request) -> Result<(u64, Response), ClusterError> {
        let resp = self.raft.client_write(req).await.map_err(raft_err)?;
        Ok((resp.log_id.index, resp.data))
    }

    /// Proposes `reqs` as one batch, behind everything proposed before;
    /// returns once the batch is handed to Raft (not committed). The
    /// stream yields each entry's index and answer, in order, as they are
    /// committed and applied.
    pub(crate) async fn propose_many(
        &self,
        reqs: Vec<Request>,
    ) -> Result<
        futures::stream::BoxStream<'static, Result<(u64, Response), ClusterError>>,
        ClusterError,
    > {
        use futures::StreamExt as _;
        let stream = self.raft.client_write_many(reqs).await.map_err(raft_err)?;
        Ok(stream
            .map(|r| match r {
                Ok(Ok(resp)) => Ok((resp.log_id.index, resp.response)),
                Ok(Err(e)) => Err(raft_err(e)),
                Err(fatal) => Err(raft_err(fatal)),
            })
            .boxed())
    }

    /// Snapshots now and compacts the log up to the snapshot; returns when
    /// both are done.
    pub(crate) async fn snapshot(&self) -> Result<(), ClusterError> {
        self.raft.trigger().snapshot().await.map_err(raft_err)?;
        let applied = self.raft.metrics().borrow_watched().last_applied;
        if let Some(want) = applied {
            // Trigger only queues the request: wait until the snapshot covers
            // what was applied when we asked.
            self.raft
                .wait(Some(LEADER_WAIT))
                .metrics(
                    |m| m.snapshot.is_some_and(|s| s.index >= want.index),
                    "snapshot built",
                )
                .await
                .map_err(raft_err)?;
            self.raft
                .trigger()
                .purge_log(want.index)
                .await
                .map_err(raft_err)?;
            self.raft
                .wait(Some(LEADER_WAIT))
                .metrics(
                    |m| m.purged.is_some_and(|p| p.index >= want.index),
                    "log purged",
                )
                .await
                .map_err(raft_err)?;
        }
        Ok(())
    }

    /// Entries applied since the last snapshot (what its log still holds).
    pub(crate) fn unsnapshotted(&self) -> u64 {
        let m = self.raft.metrics().borrow_watched().clone();
        let applied = m.last_applied.map_or(0, |l| l.index);
        let covered = m.snapshot.map_or(0, |s| s.index);
        applied.saturating_sub(covered)
    }

    pub(crate) async fn shutdown(&self) -> Result<(), ClusterError> {
        self.raft.shutdown().await.map_err(raft_err)
    }
}
