//! The broker's durable backend on this node: warren-cluster's metadata
//! group and queue groups over one RocksDB (warren-amqp's `Backend` trait,
//! implemented here so that warren-amqp depends on no storage crate).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use warren_amqp::broker::backend::{Applied, Backend, QueueLog, StoreError};
use warren_cluster::{ClusterError, Node, QueueGroup};
use warren_core::message::Message;
use warren_core::meta::{MetaCommand, MetaError, MetaReply, MetaState};
use warren_core::queue::{Command, QueueConfig, QueueState};

fn store_error(e: ClusterError) -> StoreError {
    StoreError(e.to_string())
}

/// A node's groups as the broker's backend.
pub struct NodeBackend {
    node: Node,
    /// The next queue group id to hand out (ids are never reused).
    next_group: AtomicU64,
}

impl NodeBackend {
    pub fn new(node: Node) -> Self {
        let next = node.queue_groups().last().copied().unwrap_or(0) + 1;
        NodeBackend {
            node,
            next_group: AtomicU64::new(next),
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
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
    ) -> BoxFuture<'static, Result<Arc<dyn QueueLog>, StoreError>> {
        let node = self.node.clone();
        let group = self.next_group.fetch_add(1, Ordering::Relaxed);
        let (vhost, name) = (vhost.to_owned(), name.to_owned());
        async move {
            let q = node
                .create_queue(group, &vhost, &name, config)
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
}
