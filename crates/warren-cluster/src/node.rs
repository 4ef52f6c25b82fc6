//! `Node`: this node's groups — the metadata group and one group per
//! durable queue — over one store. What the binary drives.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use prost::Message as _;
use warren_core::meta::{MetaCommand, MetaError, MetaReply, MetaState};
use warren_core::queue::QueueConfig;
use warren_rpc::log as pb;
use warren_storage::{
    GroupId, LogStore, METADATA_GROUP, MemStore, RocksOptions, RocksStore, StoreStats,
};

use crate::ClusterError;
use crate::convert::{DecodeError, FromProto, IntoProto};
use crate::queue_group::{QueueGroup, proposal, read_identity, save_identity};
use crate::raft::{GroupHandle, MetaCore, MetaMachine, QueueMachine, start_group};

/// One Warren node: its store and its running groups. Clones share the node.
pub struct Node<S: LogStore = RocksStore> {
    inner: Arc<Inner<S>>,
}

impl<S: LogStore> Clone for Node<S> {
    fn clone(&self) -> Self {
        Node {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S: LogStore> {
    node_id: u64,
    store: S,
    meta: GroupHandle<MetaMachine<S>>,
    meta_core: Arc<Mutex<MetaCore>>,
    queues: Mutex<BTreeMap<GroupId, QueueGroup<S>>>,
}

impl Node<RocksStore> {
    /// Opens (or creates) the node's RocksDB under `dir` and brings back
    /// every group found there.
    pub async fn open(dir: &Path, node_id: u64) -> Result<Self, ClusterError> {
        let store = RocksStore::open(dir, RocksOptions::default())?;
        Self::with_store(store, node_id).await
    }
}

impl Node<MemStore> {
    /// A node whose store is memory only (tests; nothing survives a drop).
    pub async fn open_in_memory(node_id: u64) -> Result<Self, ClusterError> {
        Self::with_store(MemStore::new(), node_id).await
    }
}

async fn open_queue<S: LogStore>(
    store: &S,
    node_id: u64,
    group: GroupId,
) -> Result<QueueGroup<S>, ClusterError> {
    let identity = read_identity(store, group)?;
    let sm = QueueMachine::open(store.clone(), group)?;
    let shared = sm.shared.clone();
    let handle = start_group(node_id, group, store.clone(), sm, Some(shared.clone())).await?;
    Ok(QueueGroup::new(store.clone(), handle, shared, identity))
}

impl<S: LogStore> Node<S> {
    /// Starts the metadata group and every queue group `store` holds.
    pub async fn with_store(store: S, node_id: u64) -> Result<Self, ClusterError> {
        let sm = MetaMachine::open(store.clone(), METADATA_GROUP)?;
        let meta_core = sm.core.clone();
        let meta = start_group(node_id, METADATA_GROUP, store.clone(), sm, None).await?;
        // All at once: each waits for its own election, which need not
        // queue behind the others' (a node with many queues restarts in
        // about the time of one).
        let opening = store
            .groups()?
            .into_iter()
            .filter(|g| *g != METADATA_GROUP)
            .map(|group| {
                let store = store.clone();
                async move {
                    let q = open_queue(&store, node_id, group).await?;
                    Ok::<_, ClusterError>((group, q))
                }
            });
        let queues: BTreeMap<GroupId, QueueGroup<S>> = futures::future::try_join_all(opening)
            .await?
            .into_iter()
            .collect();
        Ok(Node {
            inner: Arc::new(Inner {
                node_id,
                store,
                meta,
                meta_core,
                queues: Mutex::new(queues),
            }),
        })
    }

    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// Applies `cmd` through the metadata group: the outer error is the
    /// cluster's (nothing was decided), the inner one the machine's answer.
    pub async fn meta_apply(
        &self,
        cmd: MetaCommand,
    ) -> Result<Result<MetaReply, MetaError>, ClusterError> {
        let req = proposal(pb::proposal::Command::Meta(cmd.into_proto()));
        let (_, resp) = self.inner.meta.propose(req).await?;
        let result = pb::MetaResult::decode(resp.0).map_err(DecodeError::from)?;
        Ok(FromProto::from_proto(result)?)
    }

    /// A copy of the applied metadata.
    pub fn meta(&self) -> MetaState {
        self.inner.meta_core.lock().state.clone()
    }

    /// Reads the applied metadata without copying it.
    pub fn with_meta<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        f(&self.inner.meta_core.lock().state)
    }

    /// Creates a queue group (one member: this node) whose queue is named
    /// `name` in `vhost` for error texts.
    pub async fn create_queue(
        &self,
        group: GroupId,
        vhost: &str,
        name: &str,
        config: QueueConfig,
    ) -> Result<QueueGroup<S>, ClusterError> {
        if group == METADATA_GROUP {
            return Err(ClusterError::ReservedGroup(group));
        }
        if self.inner.queues.lock().contains_key(&group) {
            return Err(ClusterError::GroupExists(group));
        }
        save_identity(&self.inner.store, group, vhost, name).await?;
        let q = open_queue(&self.inner.store, self.inner.node_id, group).await?;
        if let Err(e) = q.create(vhost, name, config).await {
            // Leave nothing behind: a group without its Create is useless.
            let _ = q.shutdown().await;
            let _ = self.inner.store.delete_group(group).await;
            return Err(e);
        }
        self.inner.queues.lock().insert(group, q.clone());
        Ok(q)
    }

    pub fn queue(&self, group: GroupId) -> Option<QueueGroup<S>> {
        self.inner.queues.lock().get(&group).cloned()
    }

    /// Ids of the running queue groups, ascending.
    pub fn queue_groups(&self) -> Vec<GroupId> {
        self.inner.queues.lock().keys().copied().collect()
    }

    /// Stops the group and deletes everything it stored.
    pub async fn delete_queue(&self, group: GroupId) -> Result<(), ClusterError> {
        let q = self
            .inner
            .queues
            .lock()
            .remove(&group)
            .ok_or(ClusterError::NoSuchGroup(group))?;
        q.shutdown().await?;
        self.inner.store.delete_group(group).await?;
        Ok(())
    }

    /// Snapshots the metadata now and compacts its log (normally automatic).
    pub async fn snapshot_meta(&self) -> Result<(), ClusterError> {
        self.inner.meta.snapshot().await
    }

    /// Stops every group; the store closes when the last clone is dropped.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        let queues: Vec<QueueGroup<S>> = self.inner.queues.lock().values().cloned().collect();
        for q in queues {
            q.shutdown().await?;
        }
        self.inner.meta.shutdown().await
    }

    pub fn store_stats(&self) -> StoreStats {
        self.inner.store.stats()
    }
}
