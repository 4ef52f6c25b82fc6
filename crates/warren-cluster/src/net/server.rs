//! The node's `warren.raft.v1.Raft` service: each request is dispatched to
//! the group it names (NOT_FOUND if this node runs no such group), or to
//! the node for the cluster-wide calls. Ping is answered here.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use warren_rpc::raft as rpc;
use warren_rpc::raft::raft_server::{Raft, RaftServer};
use warren_storage::GroupId;

use super::{GroupRpc, Host, MAX_MESSAGE, Net};

/// Largest snapshot a peer may send (it is held in memory until installed).
const MAX_SNAPSHOT: usize = 4 << 30;

/// How long a stopping server waits for in-flight requests.
const STOP_GRACE: Duration = Duration::from_secs(2);

struct RaftService {
    net: Arc<Net>,
    host: Arc<dyn Host>,
}

impl RaftService {
    /// Refuses everything while the node is isolated (fault injection).
    fn open(&self) -> Result<(), Status> {
        if self.net.isolated() {
            return Err(Status::unavailable(format!(
                "node {} is isolated (fault injection)",
                self.net.node_id()
            )));
        }
        if self.net.closing() {
            return Err(Status::unavailable(format!(
                "node {} is shutting down",
                self.net.node_id()
            )));
        }
        Ok(())
    }

    /// Refuses the Raft requests of a node outside the peer table: one
    /// removed from the cluster that came back with its old data.
    fn admit(&self, vote: Option<&warren_rpc::log::Vote>) -> Result<(), Status> {
        let from = vote.and_then(|v| v.leader.as_ref()).map(|l| l.node_id);
        match from {
            Some(node) if !self.net.admits(node) => Err(Status::permission_denied(format!(
                "node {node} is not a member of this cluster (removed with `warren ctl \
                 cluster remove-node`?): empty its data directory and add it again"
            ))),
            _ => Ok(()),
        }
    }

    fn group(&self, group: GroupId) -> Result<Arc<dyn GroupRpc>, Status> {
        self.open()?;
        self.net.group(group).ok_or_else(|| {
            Status::not_found(format!("node {} runs no group {group}", self.net.node_id()))
        })
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append(
        &self,
        request: Request<rpc::AppendRequest>,
    ) -> Result<Response<rpc::AppendResponse>, Status> {
        let req = request.into_inner();
        let g = self.group(req.group_id)?;
        self.admit(req.vote.as_ref())?;
        g.append(req).await.map(Response::new)
    }

    async fn vote(
        &self,
        request: Request<rpc::VoteRequest>,
    ) -> Result<Response<rpc::VoteResponse>, Status> {
        let req = request.into_inner();
        let g = self.group(req.group_id)?;
        self.admit(req.vote.as_ref())?;
        g.vote(req).await.map(Response::new)
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<rpc::SnapshotChunk>>,
    ) -> Result<Response<rpc::SnapshotResponse>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("snapshot: no chunk"))?;
        let group = first.group_id;
        let g = self.group(group)?;
        let vote = first
            .vote
            .ok_or_else(|| Status::invalid_argument("snapshot: first chunk without vote"))?;
        self.admit(Some(&vote))?;
        let meta = first
            .meta
            .ok_or_else(|| Status::invalid_argument("snapshot: first chunk without meta"))?;
        let mut data = BytesMut::from(&first.data[..]);
        let mut last = first.last;
        while !last {
            let c = chunks.message().await?.ok_or_else(|| {
                Status::invalid_argument("snapshot: stream ended before its last chunk")
            })?;
            if c.group_id != group {
                return Err(Status::invalid_argument("snapshot: chunks of two groups"));
            }
            if data.len().saturating_add(c.data.len()) > MAX_SNAPSHOT {
                return Err(Status::resource_exhausted("snapshot too large"));
            }
            data.extend_from_slice(&c.data);
            last = c.last;
        }
        g.install_snapshot(vote, meta, data.freeze())
            .await
            .map(Response::new)
    }

    async fn propose(
        &self,
        request: Request<rpc::ProposeRequest>,
    ) -> Result<Response<rpc::ProposeResponse>, Status> {
        let req = request.into_inner();
        let g = self.group(req.group_id)?;
        Ok(Response::new(g.propose(req.proposals).await))
    }

    async fn cluster_info(
        &self,
        _request: Request<rpc::ClusterInfoRequest>,
    ) -> Result<Response<rpc::ClusterInfoResponse>, Status> {
        self.open()?;
        self.host.cluster_info().await.map(Response::new)
    }

    async fn start_replica(
        &self,
        request: Request<rpc::StartReplicaRequest>,
    ) -> Result<Response<rpc::StartReplicaResponse>, Status> {
        self.open()?;
        self.host
            .start_replica(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn find_queue(
        &self,
        request: Request<rpc::FindQueueRequest>,
    ) -> Result<Response<rpc::FindQueueResponse>, Status> {
        self.open()?;
        self.host
            .find_queue(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn add_reader(
        &self,
        request: Request<rpc::AddReaderRequest>,
    ) -> Result<Response<rpc::AddReaderResponse>, Status> {
        let req = request.into_inner();
        let g = self.group(req.group_id)?;
        g.add_reader(req.node, crate::net::Joining::of(&req))
            .await
            .map(Response::new)
    }

    async fn transfer_leader(
        &self,
        request: Request<rpc::TransferLeaderRequest>,
    ) -> Result<Response<rpc::TransferLeaderResponse>, Status> {
        let req = request.into_inner();
        let g = self.group(req.group_id)?;
        g.transfer_leader(req).await.map(Response::new)
    }

    async fn ping(
        &self,
        _request: Request<rpc::PingRequest>,
    ) -> Result<Response<rpc::PingResponse>, Status> {
        self.open()?;
        if self.net.unhealthy() {
            return Err(Status::unavailable(format!(
                "node {}: its disk stalled",
                self.net.node_id()
            )));
        }
        Ok(Response::new(rpc::PingResponse {
            node_id: self.net.node_id(),
            incarnation: self.net.incarnation(),
        }))
    }
}

/// The running server; [`ServerTask::stop`] closes its listener.
pub(crate) struct ServerTask {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Serves the node's Raft service on `listener` until stopped.
pub(crate) fn serve(
    listener: TcpListener,
    net: Arc<Net>,
    host: Arc<dyn Host>,
    broker: super::BrokerSlot,
    admin: Arc<dyn super::AdminHost>,
) -> ServerTask {
    let node = net.node_id();
    let broker = super::broker::service(node, broker);
    let admin = super::broker::admin_service(admin);
    let service = RaftServer::new(RaftService { net, host })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(service)
            .add_service(broker)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(node, error = %e, "cluster gRPC server failed");
        }
    });
    ServerTask {
        stop: Some(stop),
        task,
    }
}

impl ServerTask {
    /// Stops accepting, lets in-flight requests finish for a moment, then
    /// drops whatever is left; the listener is closed on return.
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            let _ = (&mut self.task).await;
        }
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}
