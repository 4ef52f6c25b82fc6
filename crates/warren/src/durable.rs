//! The broker's durable backend on this node: warren-cluster's metadata
//! group and queue groups over one RocksDB (warren-amqp's `Backend` trait,
//! implemented here so that warren-amqp depends on no storage crate).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use warren_amqp::broker::backend::{
    Applied, Backend, BackendChange, ChangeFeed, Following, QueueLog, StoreError,
};
use warren_cluster::{ClusterError, Node, NodeChange, QueueGroup};
use warren_core::message::Message;
use warren_core::meta::{DEFAULT_QUORUM_REPLICAS, MetaCommand, MetaError, MetaReply, MetaState};
use warren_core::queue::{Command, Effect, QueueConfig, QueueState};

fn store_error(e: ClusterError) -> StoreError {
    StoreError(e.to_string())
}

/// Queue group ids made in a cluster: the node id above these bits.
const GROUP_NODE_SHIFT: u32 = 40;

/// A node's groups as the broker's backend.
pub struct NodeBackend {
    node: Node,
    /// The next queue group id to hand out (ids are never reused).
    next_group: AtomicU64,
}

impl NodeBackend {
    pub fn new(node: Node) -> Self {
        // In a cluster, group ids carry the node that made them (ids are
        // unique across the cluster with no round of agreement).
        let base = if node.clustered() {
            node.node_id() << GROUP_NODE_SHIFT
        } else {
            0
        };
        let last = node
            .queue_groups()
            .into_iter()
            .filter(|g| !node.clustered() || g >> GROUP_NODE_SHIFT == node.node_id())
            .max()
            .unwrap_or(base);
        NodeBackend {
            node,
            next_group: AtomicU64::new(last.max(base) + 1),
        }
    }

    /// The members of a new queue group of `replicas` nodes (default
    /// [`DEFAULT_QUORUM_REPLICAS`], at most the number of nodes not judged down):
    /// this node first
    /// (it stands for the first election, so the declaring client's node
    /// leads), then the next nodes of the peer table in ring order, so
    /// queues declared evenly over the nodes spread their replicas evenly.
    fn placement(&self, replicas: Option<u32>) -> Vec<u64> {
        let me = self.node.node_id();
        // Nodes judged down are passed over: a replica could not start there.
        let down = self
            .node
            .nodes_down()
            .map(|d| d.borrow().clone())
            .unwrap_or_default();
        let nodes: Vec<u64> = self
            .node
            .nodes()
            .into_iter()
            .filter(|n| *n == me || !down.contains(n))
            .collect();
        let want = replicas
            .map_or(DEFAULT_QUORUM_REPLICAS as usize, |r| r as usize)
            .clamp(1, nodes.len());
        let start = nodes.iter().position(|n| *n == me).unwrap_or(0);
        (0..want)
            .map(|i| nodes[(start + i) % nodes.len()])
            .collect()
    }

    pub fn node(&self) -> &Node {
        &self.node
    }
}

/// The node's changes, as the broker reads them.
struct NodeFeed {
    node: Node,
    changes: mpsc::UnboundedReceiver<NodeChange>,
}

impl ChangeFeed for NodeFeed {
    fn next_change(&mut self) -> Option<BackendChange> {
        loop {
            return Some(match self.changes.try_recv().ok()? {
                NodeChange::Meta(cmd) => BackendChange::Meta(cmd),
                NodeChange::MetaReplaced(state) => BackendChange::MetaReplaced(state),
                NodeChange::QueueHere(group) => match self.node.queue(group) {
                    Some(q) => BackendChange::LogHere(Arc::new(GroupLog(q))),
                    // Gone again already: its going is next in the feed.
                    None => continue,
                },
                NodeChange::QueueGone { group, vhost, name } => BackendChange::LogGone {
                    id: group,
                    vhost,
                    name,
                },
            });
        }
    }
}

/// One durable queue: a queue group.
struct GroupLog(QueueGroup);

impl QueueLog for GroupLog {
    fn id(&self) -> u64 {
        self.0.group()
    }

    fn identity(&self) -> (String, String) {
        let (vhost, name) = self.0.identity();
        (vhost.to_owned(), name.to_owned())
    }

    fn submit(&self, cmd: Command<Message>) -> BoxFuture<'static, Applied> {
        let answer = self.0.submit(cmd);
        async move {
            match answer.await {
                Ok(r) => r.map_err(store_error),
                Err(_) => Err(StoreError("queue group stopped".into())),
            }
        }
        .boxed()
    }

    fn body(&self, index: u64) -> Result<Message, StoreError> {
        self.0.read_body(index).map_err(store_error)
    }

    fn with_state(&self, f: &mut dyn FnMut(&QueueState<u64>)) {
        self.0.with_state(|s| f(s));
    }

    fn clustered(&self) -> bool {
        self.0.clustered()
    }

    fn local_effects(&self) -> Option<mpsc::UnboundedReceiver<Vec<Effect<u64>>>> {
        self.0.local_effects()
    }

    fn leader_changes(&self) -> Option<futures::stream::BoxStream<'static, ()>> {
        self.0.clustered().then(|| self.0.leader_changes())
    }

    fn leads(&self) -> bool {
        !self.0.clustered() || self.0.is_leader()
    }

    fn reads_only(&self) -> bool {
        self.0.reads_only()
    }
}

impl Backend for NodeBackend {
    fn meta(&self) -> MetaState {
        self.node.meta()
    }

    fn meta_apply(
        &self,
        cmd: MetaCommand,
    ) -> BoxFuture<'static, Result<Result<MetaReply, MetaError>, StoreError>> {
        let node = self.node.clone();
        async move { node.meta_apply(cmd).await.map_err(store_error) }.boxed()
    }

    fn queues(&self) -> Vec<Arc<dyn QueueLog>> {
        self.node
            .queue_groups()
            .into_iter()
            .filter_map(|g| self.node.queue(g))
            .map(|q| Arc::new(GroupLog(q)) as Arc<dyn QueueLog>)
            .collect()
    }

    fn create_queue(
        &self,
        vhost: &str,
        name: &str,
        config: QueueConfig,
        replicas: Option<u32>,
    ) -> BoxFuture<'static, Result<Arc<dyn QueueLog>, StoreError>> {
        let node = self.node.clone();
        let group = self.next_group.fetch_add(1, Ordering::Relaxed);
        let members = self.placement(replicas);
        let (vhost, name) = (vhost.to_owned(), name.to_owned());
        async move {
            let q = node
                .create_queue_on(group, &vhost, &name, config, &members)
                .await
                .map_err(store_error)?;
            Ok(Arc::new(GroupLog(q)) as Arc<dyn QueueLog>)
        }
        .boxed()
    }

    fn delete_queue(&self, log: Arc<dyn QueueLog>) -> BoxFuture<'static, Result<(), StoreError>> {
        let node = self.node.clone();
        let group = log.id();
        async move { node.delete_queue(group).await.map_err(store_error) }.boxed()
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.node.clustered().then(|| self.node.changes())
    }

    fn follow(&self) -> Option<Following> {
        if !self.node.clustered() {
            return None;
        }
        let (meta, groups, changes) = self.node.follow();
        Some(Following {
            meta,
            logs: groups
                .into_iter()
                .map(|q| Arc::new(GroupLog(q)) as Arc<dyn QueueLog>)
                .collect(),
            feed: Box::new(NodeFeed {
                node: self.node.clone(),
                changes,
            }),
        })
    }

    fn nodes_down(&self) -> Option<tokio::sync::watch::Receiver<std::collections::BTreeSet<u64>>> {
        self.node.nodes_down()
    }

    fn attach_queue(&self, vhost: &str, name: &str) -> BoxFuture<'static, Result<(), StoreError>> {
        let node = self.node.clone();
        let (vhost, name) = (vhost.to_owned(), name.to_owned());
        async move { node.attach_queue(&vhost, &name).await.map_err(store_error) }.boxed()
    }

    fn detach_queue(
        &self,
        vhost: &str,
        name: &str,
    ) -> BoxFuture<'static, Result<bool, StoreError>> {
        let node = self.node.clone();
        let (vhost, name) = (vhost.to_owned(), name.to_owned());
        async move { node.detach_queue(&vhost, &name).await.map_err(store_error) }.boxed()
    }

    fn locate_queue(
        &self,
        vhost: &str,
        name: &str,
    ) -> BoxFuture<'static, Result<Option<u64>, StoreError>> {
        let node = self.node.clone();
        let (vhost, name) = (vhost.to_owned(), name.to_owned());
        async move { node.locate_queue(&vhost, &name).await.map_err(store_error) }.boxed()
    }

    fn publish_to(
        &self,
        node: u64,
        vhost: &str,
        queue: &str,
        msgs: Vec<Arc<Message>>,
    ) -> BoxFuture<'static, Result<Option<Vec<bool>>, StoreError>> {
        let this = self.node.clone();
        let (vhost, queue) = (vhost.to_owned(), queue.to_owned());
        async move {
            let msgs = msgs.into_iter().map(Arc::unwrap_or_clone).collect();
            this.publish_to(node, &vhost, &queue, msgs)
                .await
                .map_err(store_error)
        }
        .boxed()
    }
}

/// The broker of this node as its peers' brokers reach it.
pub struct BrokerOnNode(pub std::sync::Weak<warren_amqp::Broker>);

impl warren_cluster::BrokerHost for BrokerOnNode {
    fn publish(&self, vhost: String, queue: String, msg: Message) -> BoxFuture<'static, bool> {
        let broker = self.0.clone();
        async move {
            match broker.upgrade() {
                Some(b) => b.publish_here(&vhost, &queue, msg).await,
                None => false,
            }
        }
        .boxed()
    }
}
