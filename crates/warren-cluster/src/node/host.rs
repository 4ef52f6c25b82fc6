//! The node as the gRPC services see it: ClusterInfo, StartReplica and
//! FindQueue for its peers, and the admin calls of `warren ctl`.
//! Holds the node weakly, so the service never keeps a stopped node alive.

use std::sync::Weak;

use futures::future::BoxFuture;
use tonic::Status;
use warren_rpc::raft as rpc;
use warren_storage::LogStore;

use super::{Inner, Node};
use crate::ClusterError;
use crate::net::{AdminHost, ClusterReport, GrowReport, Host};

pub(super) struct NodeHost<S: LogStore> {
    node: Weak<Inner<S>>,
}

impl<S: LogStore> NodeHost<S> {
    pub(super) fn new(node: Weak<Inner<S>>) -> Self {
        NodeHost { node }
    }

    fn node(&self) -> Result<Node<S>, Status> {
        self.node
            .upgrade()
            .map(|inner| Node { inner })
            .ok_or_else(|| Status::unavailable("node stopping"))
    }
}

fn status(e: ClusterError) -> Status {
    match e {
        ClusterError::ReservedGroup(_) | ClusterError::Config(_) => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

impl<S: LogStore> Host for NodeHost<S> {
    fn cluster_info(&self) -> BoxFuture<'static, Result<rpc::ClusterInfoResponse, Status>> {
        let node = self.node();
        Box::pin(async move {
            let node = node?;
            let meta = &node.inner.meta;
            Ok(rpc::ClusterInfoResponse {
                node_id: node.inner.node_id,
                meta_initialized: meta.is_initialized().await.map_err(status)?,
                meta_leader: meta.leader(),
                meta_voters: meta.voters(),
                meta_learners: meta.learners(),
                queue_applied: node
                    .queue_groups()
                    .into_iter()
                    .map(|g| node.queue(g).and_then(|q| q.applied_index()).unwrap_or(0))
                    .collect(),
                queue_groups: node.queue_groups(),
            })
        })
    }

    fn start_replica(
        &self,
        req: rpc::StartReplicaRequest,
    ) -> BoxFuture<'static, Result<rpc::StartReplicaResponse, Status>> {
        let node = self.node();
        Box::pin(async move {
            let created = node?
                .start_replica(req.group_id, &req.vhost, &req.name, req.repair)
                .await
                .map_err(status)?;
            Ok(rpc::StartReplicaResponse { created })
        })
    }

    fn find_queue(
        &self,
        req: rpc::FindQueueRequest,
    ) -> BoxFuture<'static, Result<rpc::FindQueueResponse, Status>> {
        let node = self.node();
        Box::pin(async move {
            let node = node?;
            Ok(match node.local_queue(&req.vhost, &req.name) {
                Some(q) => rpc::FindQueueResponse {
                    found: true,
                    group_id: q.group(),
                    leader: q.leader(),
                    voters: q.members(),
                },
                None => rpc::FindQueueResponse::default(),
            })
        })
    }
}

/// An admin call's error as the caller reads it: a refusal (retrying
/// cannot help) or a transient failure.
fn admin_status(e: ClusterError) -> Status {
    match e {
        ClusterError::Config(m) => Status::failed_precondition(m),
        e => Status::unavailable(e.to_string()),
    }
}

impl<S: LogStore> AdminHost for NodeHost<S> {
    fn report(&self) -> BoxFuture<'static, Result<ClusterReport, Status>> {
        let node = self.node();
        Box::pin(async move { Ok(node?.report().await) })
    }

    fn move_leader(
        &self,
        vhost: String,
        name: String,
        to: u64,
        forwarded: bool,
    ) -> BoxFuture<'static, Result<u64, Status>> {
        let node = self.node();
        Box::pin(async move {
            node?
                .move_leader(&vhost, &name, to, forwarded)
                .await
                .map_err(admin_status)
        })
    }

    fn add_node(
        &self,
        id: u64,
        addr: String,
        forwarded: bool,
    ) -> BoxFuture<'static, Result<String, Status>> {
        let node = self.node();
        Box::pin(async move {
            node?
                .add_node(id, &addr, forwarded)
                .await
                .map_err(admin_status)
        })
    }

    fn remove_node(&self, id: u64, forwarded: bool) -> BoxFuture<'static, Result<(), Status>> {
        let node = self.node();
        Box::pin(async move { node?.remove_node(id, forwarded).await.map_err(admin_status) })
    }

    fn grow_queues(
        &self,
        id: u64,
        even_only: bool,
        vhost: Option<String>,
        forwarded: bool,
    ) -> BoxFuture<'static, Result<GrowReport, Status>> {
        let node = self.node();
        Box::pin(async move {
            node?
                .grow_queues(id, even_only, vhost.as_deref(), forwarded)
                .await
                .map_err(admin_status)
        })
    }
}
