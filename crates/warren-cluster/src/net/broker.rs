//! The node's `warren.broker.v1.Broker` service (`proto/warren/broker.proto`):
//! what one node's broker hands another's, over the same per-peer channel
//! as Raft. The broker above this crate answers through [`BrokerHost`].

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tonic::{Request, Response, Status};
use warren_core::message::Message;
use warren_rpc::broker as rpc;
use warren_rpc::broker::admin_client::AdminClient;
use warren_rpc::broker::admin_server::{Admin, AdminServer};
use warren_rpc::broker::broker_client::BrokerClient;
use warren_rpc::broker::broker_server::{Broker, BrokerServer};

use super::{MAX_MESSAGE, Net, NetError};
use crate::convert::{FromProto, IntoProto};

/// The broker of this node, as its peers reach it.
pub trait BrokerHost: Send + Sync + 'static {
    /// Puts `msg` on the queue `vhost`/`queue` this node holds; true once
    /// the queue took it, false if it refused it or there is no such queue.
    fn publish(&self, vhost: String, queue: String, msg: Message) -> BoxFuture<'static, bool>;
}

/// Where the service finds the broker (set once the broker runs).
pub(crate) type BrokerSlot = Arc<Mutex<Option<Arc<dyn BrokerHost>>>>;

struct BrokerService {
    node: u64,
    host: BrokerSlot,
}

#[tonic::async_trait]
impl Broker for BrokerService {
    async fn publish(
        &self,
        req: Request<rpc::PublishRequest>,
    ) -> Result<Response<rpc::PublishResponse>, Status> {
        let host = self.host.lock().clone().ok_or_else(|| {
            Status::unavailable(format!("node {}: the broker is not running yet", self.node))
        })?;
        let mut puts = Vec::new();
        for m in req.into_inner().messages {
            let msg = m
                .message
                .ok_or_else(|| Status::invalid_argument("a publish without its message"))?;
            let msg = Message::from_proto(msg)
                .map_err(|e| Status::invalid_argument(format!("bad message: {e}")))?;
            puts.push(host.publish(m.vhost, m.queue, msg));
        }
        // Each queue takes its message in the order sent (the calls were
        // made in order); the answers are awaited together.
        let taken = futures::future::join_all(puts).await;
        Ok(Response::new(rpc::PublishResponse { taken }))
    }
}

/// The service over `host`, for the node's gRPC server.
pub(crate) fn service(node: u64, host: BrokerSlot) -> BrokerServer<impl Broker> {
    BrokerServer::new(BrokerService { node, host })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

impl Net {
    /// Hands `msgs` to the queue `vhost`/`queue` held by `node`, in order,
    /// in one call; for each, true once that queue took it.
    pub(crate) async fn publish_to(
        &self,
        node: u64,
        vhost: &str,
        queue: &str,
        msgs: Vec<Message>,
        timeout: Duration,
    ) -> Result<Vec<bool>, NetError> {
        let channel = self.channel(node)?;
        let mut client = BrokerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let n = msgs.len();
        let mut req = Request::new(rpc::PublishRequest {
            messages: msgs
                .into_iter()
                .map(|m| rpc::QueuedMessage {
                    vhost: vhost.to_owned(),
                    queue: queue.to_owned(),
                    message: Some(m.into_proto()),
                })
                .collect(),
        });
        req.set_timeout(timeout);
        let resp = client
            .publish(req)
            .await
            .map_err(|status| NetError::Rpc { node, status })?;
        let mut taken = resp.into_inner().taken;
        // An answer missing is a message not known to be taken.
        taken.resize(n, false);
        Ok(taken)
    }
}

/// What one node reports of the cluster (`warren ctl cluster status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterReport {
    pub node_id: u64,
    pub meta_leader: Option<u64>,
    pub meta_voters: Vec<u64>,
    pub meta_learners: Vec<u64>,
    pub nodes: Vec<NodeReport>,
    pub queues: Vec<QueueReport>,
}

/// A node of the peer table as the reporting node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    pub node_id: u64,
    pub address: String,
    /// It answered the reporting node just now.
    pub reachable: bool,
    /// The reporting node's failure detector judges it down (queues placed
    /// now leave it out; what its consumers held was given back).
    pub down: bool,
    /// Its metadata group has a membership (it founded or joined).
    pub member: bool,
}

/// One queue group the reporting node holds a replica of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueReport {
    pub group: u64,
    pub vhost: String,
    pub name: String,
    pub leader: Option<u64>,
    pub members: Vec<u64>,
    /// The reporting node's replica: the last log index it applied
    /// (`None` before any), and the messages its copy of the queue holds,
    /// ready and unacked together, and unacked alone. Replicas of a quiet
    /// group agree on all three.
    pub applied_index: Option<u64>,
    pub messages: u64,
    pub unacked: u64,
    /// Members that replicate without voting (a replaced replica that is
    /// catching up before it votes again).
    pub learners: Vec<u64>,
    /// Nodes that hold no replica but apply the log to serve consumers
    /// there (learners that never vote).
    pub readers: Vec<u64>,
}

impl From<ClusterReport> for rpc::StatusResponse {
    fn from(r: ClusterReport) -> Self {
        rpc::StatusResponse {
            node_id: r.node_id,
            meta_leader: r.meta_leader,
            meta_voters: r.meta_voters,
            meta_learners: r.meta_learners,
            nodes: r
                .nodes
                .into_iter()
                .map(|n| rpc::NodeHealth {
                    node_id: n.node_id,
                    address: n.address,
                    reachable: n.reachable,
                    member: n.member,
                    down: n.down,
                })
                .collect(),
            queues: r
                .queues
                .into_iter()
                .map(|q| rpc::QueueReplicas {
                    group_id: q.group,
                    vhost: q.vhost,
                    name: q.name,
                    leader: q.leader,
                    members: q.members,
                    applied_index: q.applied_index,
                    messages: q.messages,
                    unacked: q.unacked,
                    learners: q.learners,
                    readers: q.readers,
                })
                .collect(),
        }
    }
}

impl From<rpc::StatusResponse> for ClusterReport {
    fn from(r: rpc::StatusResponse) -> Self {
        ClusterReport {
            node_id: r.node_id,
            meta_leader: r.meta_leader,
            meta_voters: r.meta_voters,
            meta_learners: r.meta_learners,
            nodes: r
                .nodes
                .into_iter()
                .map(|n| NodeReport {
                    node_id: n.node_id,
                    address: n.address,
                    reachable: n.reachable,
                    member: n.member,
                    down: n.down,
                })
                .collect(),
            queues: r
                .queues
                .into_iter()
                .map(|q| QueueReport {
                    group: q.group_id,
                    vhost: q.vhost,
                    name: q.name,
                    leader: q.leader,
                    members: q.members,
                    applied_index: q.applied_index,
                    messages: q.messages,
                    unacked: q.unacked,
                    learners: q.learners,
                    readers: q.readers,
                })
                .collect(),
        }
    }
}

/// What `grow_queues` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrowReport {
    /// Queues the node joined (it votes in each once caught up).
    pub grown: u32,
    /// Queues it already held a replica of.
    pub already: u32,
    /// Queues passed over: `even_only` and an odd number of voters.
    pub skipped: u32,
    /// "vhost/name: why" for each queue it could not join.
    pub failed: Vec<String>,
}

/// The node behind the admin service (`warren ctl`).
pub(crate) trait AdminHost: Send + Sync + 'static {
    /// The node's report of the cluster.
    fn report(&self) -> BoxFuture<'static, Result<ClusterReport, Status>>;
    /// Makes `to` lead the queue `vhost`/`name`; answers the leader after.
    fn move_leader(
        &self,
        vhost: String,
        name: String,
        to: u64,
        forwarded: bool,
    ) -> BoxFuture<'static, Result<u64, Status>>;
    /// Adds `node` at `addr` to the cluster; answers the address recorded.
    fn add_node(
        &self,
        node: u64,
        addr: String,
        forwarded: bool,
    ) -> BoxFuture<'static, Result<String, Status>>;
    /// Removes `node`, down for good, from the cluster.
    fn remove_node(&self, node: u64, forwarded: bool) -> BoxFuture<'static, Result<(), Status>>;
    /// Gives `node` a replica of every quorum queue that has none there.
    fn grow_queues(
        &self,
        node: u64,
        even_only: bool,
        vhost: Option<String>,
        forwarded: bool,
    ) -> BoxFuture<'static, Result<GrowReport, Status>>;
}

struct AdminService {
    host: Arc<dyn AdminHost>,
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(
        &self,
        _req: Request<rpc::StatusRequest>,
    ) -> Result<Response<rpc::StatusResponse>, Status> {
        Ok(Response::new(self.host.report().await?.into()))
    }

    async fn move_leader(
        &self,
        req: Request<rpc::MoveLeaderRequest>,
    ) -> Result<Response<rpc::MoveLeaderResponse>, Status> {
        let r = req.into_inner();
        let leader = self
            .host
            .move_leader(r.vhost, r.name, r.to, r.forwarded)
            .await?;
        Ok(Response::new(rpc::MoveLeaderResponse { leader }))
    }

    async fn add_node(
        &self,
        req: Request<rpc::AddNodeRequest>,
    ) -> Result<Response<rpc::AddNodeResponse>, Status> {
        let r = req.into_inner();
        let addr = self.host.add_node(r.node_id, r.addr, r.forwarded).await?;
        Ok(Response::new(rpc::AddNodeResponse { addr }))
    }

    async fn remove_node(
        &self,
        req: Request<rpc::RemoveNodeRequest>,
    ) -> Result<Response<rpc::RemoveNodeResponse>, Status> {
        let r = req.into_inner();
        self.host.remove_node(r.node_id, r.forwarded).await?;
        Ok(Response::new(rpc::RemoveNodeResponse {}))
    }

    async fn grow_queues(
        &self,
        req: Request<rpc::GrowQueuesRequest>,
    ) -> Result<Response<rpc::GrowQueuesResponse>, Status> {
        let r = req.into_inner();
        let vhost = (!r.vhost.is_empty()).then_some(r.vhost);
        let report = self
            .host
            .grow_queues(r.node_id, r.even_only, vhost, r.forwarded)
            .await?;
        Ok(Response::new(report.into()))
    }
}

impl From<GrowReport> for rpc::GrowQueuesResponse {
    fn from(r: GrowReport) -> Self {
        rpc::GrowQueuesResponse {
            grown: r.grown,
            already: r.already,
            skipped: r.skipped,
            failed: r.failed,
        }
    }
}

impl From<rpc::GrowQueuesResponse> for GrowReport {
    fn from(r: rpc::GrowQueuesResponse) -> Self {
        GrowReport {
            grown: r.grown,
            already: r.already,
            skipped: r.skipped,
            failed: r.failed,
        }
    }
}

/// The admin service over `host`, for the node's gRPC server.
pub(crate) fn admin_service(host: Arc<dyn AdminHost>) -> AdminServer<impl Admin> {
    AdminServer::new(AdminService { host })
}

impl Net {
    /// Asks `node` (a queue's leader) to hand the leadership of
    /// `vhost`/`name` to `to`; answers the leader after.
    pub(crate) async fn move_leader(
        &self,
        node: u64,
        vhost: &str,
        name: &str,
        to: u64,
        timeout: Duration,
    ) -> Result<u64, NetError> {
        let mut client = AdminClient::new(self.channel(node)?);
        let mut req = Request::new(rpc::MoveLeaderRequest {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            to,
            forwarded: true,
        });
        req.set_timeout(timeout);
        client
            .move_leader(req)
            .await
            .map(|r| r.into_inner().leader)
            .map_err(|status| NetError::Rpc { node, status })
    }

    /// Asks `node` (the metadata leader) to add `id` at `addr`.
    pub(crate) async fn add_node(
        &self,
        node: u64,
        id: u64,
        addr: &str,
        timeout: Duration,
    ) -> Result<String, NetError> {
        let mut client = AdminClient::new(self.channel(node)?);
        let mut req = Request::new(rpc::AddNodeRequest {
            node_id: id,
            addr: addr.to_owned(),
            forwarded: true,
        });
        req.set_timeout(timeout);
        client
            .add_node(req)
            .await
            .map(|r| r.into_inner().addr)
            .map_err(|status| NetError::Rpc { node, status })
    }

    /// Asks `node` to join every quorum queue it holds no replica of.
    pub(crate) async fn grow_queues(
        &self,
        node: u64,
        even_only: bool,
        vhost: Option<&str>,
        timeout: Duration,
    ) -> Result<GrowReport, NetError> {
        let mut client = AdminClient::new(self.channel(node)?);
        let mut req = Request::new(rpc::GrowQueuesRequest {
            node_id: node,
            even_only,
            vhost: vhost.unwrap_or_default().to_owned(),
            forwarded: true,
        });
        req.set_timeout(timeout);
        client
            .grow_queues(req)
            .await
            .map(|r| r.into_inner().into())
            .map_err(|status| NetError::Rpc { node, status })
    }

    /// Asks `node` (the metadata leader) to remove `id`.
    pub(crate) async fn remove_node(
        &self,
        node: u64,
        id: u64,
        timeout: Duration,
    ) -> Result<(), NetError> {
        let mut client = AdminClient::new(self.channel(node)?);
        let mut req = Request::new(rpc::RemoveNodeRequest {
            node_id: id,
            forwarded: true,
        });
        req.set_timeout(timeout);
        client
            .remove_node(req)
            .await
            .map(|_| ())
            .map_err(|status| NetError::Rpc { node, status })
    }
}

/// The admin service of the node whose cluster gRPC address is `addr`.
async fn admin_client(
    addr: &str,
    timeout: Duration,
) -> Result<AdminClient<tonic::transport::Channel>, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("{addr}: bad address: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("{addr}: cannot connect: {e}"))?;
    Ok(AdminClient::new(channel))
}

/// Asks the node whose cluster gRPC address is `addr` to make node `to`
/// lead the queue `vhost`/`name`; answers the queue's leader after.
pub async fn move_queue_leader(
    addr: &str,
    vhost: &str,
    name: &str,
    to: u64,
    timeout: Duration,
) -> Result<u64, String> {
    admin_client(addr, timeout)
        .await?
        .move_leader(rpc::MoveLeaderRequest {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            to,
            forwarded: false,
        })
        .await
        .map(|r| r.into_inner().leader)
        .map_err(|s| format!("{addr}: {}", s.message()))
}

/// Asks the node whose cluster gRPC address is `addr` for its report.
pub async fn cluster_report(addr: &str, timeout: Duration) -> Result<ClusterReport, String> {
    admin_client(addr, timeout)
        .await?
        .status(rpc::StatusRequest {})
        .await
        .map(|r| r.into_inner().into())
        .map_err(|s| format!("{addr}: {}", s.message()))
}

/// Asks the node whose cluster gRPC address is `addr` to add node `id`,
/// dialled at `node_addr`, to the cluster; answers the address recorded.
pub async fn add_cluster_node(
    addr: &str,
    id: u64,
    node_addr: &str,
    timeout: Duration,
) -> Result<String, String> {
    admin_client(addr, timeout)
        .await?
        .add_node(rpc::AddNodeRequest {
            node_id: id,
            addr: node_addr.to_owned(),
            forwarded: false,
        })
        .await
        .map(|r| r.into_inner().addr)
        .map_err(|s| format!("{addr}: {}", s.message()))
}

/// Asks the node whose cluster gRPC address is `addr` to remove node `id`
/// (down for good) from the cluster.
pub async fn remove_cluster_node(addr: &str, id: u64, timeout: Duration) -> Result<(), String> {
    admin_client(addr, timeout)
        .await?
        .remove_node(rpc::RemoveNodeRequest {
            node_id: id,
            forwarded: false,
        })
        .await
        .map(|_| ())
        .map_err(|s| format!("{addr}: {}", s.message()))
}

/// Asks the node whose cluster gRPC address is `addr` to give node `node`
/// a replica of every quorum queue (of `vhost`, or of all) that has none
/// there; with `even_only`, only of queues with an even number of voters.
pub async fn grow_cluster_queues(
    addr: &str,
    node: u64,
    even_only: bool,
    vhost: Option<&str>,
    timeout: Duration,
) -> Result<GrowReport, String> {
    admin_client(addr, timeout)
        .await?
        .grow_queues(rpc::GrowQueuesRequest {
            node_id: node,
            even_only,
            vhost: vhost.unwrap_or_default().to_owned(),
            forwarded: false,
        })
        .await
        .map(|r| r.into_inner().into())
        .map_err(|s| format!("{addr}: {}", s.message()))
}
