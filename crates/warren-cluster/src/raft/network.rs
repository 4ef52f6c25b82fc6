//! The network of a group on a node without peers (`Node::open`,
//! `Node::with_store`): there is nobody to talk to. openraft still wants a
//! factory; every call reports the peer unreachable (none is ever dialled
//! while the group's only voter is this node). Nodes started with a peer
//! table use the gRPC network of `grpc.rs` for every group instead.

use std::future::Future;

use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkV2};

use super::TypeConfig;

type C = TypeConfig;

#[derive(Debug, thiserror::Error)]
#[error("node {0} is not reachable: this node runs without peers")]
struct NoPeers(u64);

/// Hands out [`NoNetwork`] clients.
#[derive(Clone, Debug, Default)]
pub(crate) struct NoNetworkFactory;

/// A client to a peer that cannot be reached.
#[derive(Debug)]
pub(crate) struct NoNetwork {
    target: u64,
}

impl NoNetwork {
    fn unreachable(&self) -> Unreachable<C> {
        Unreachable::new(&NoPeers(self.target))
    }
}

impl RaftNetworkFactory<C> for NoNetworkFactory {
    type Network = NoNetwork;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        NoNetwork { target }
    }
}

impl RaftNetworkV2<C> for NoNetwork {
    type SnapshotData = bytes::Bytes;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<C>,
        _option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<C>,
        _snapshot: SnapshotOf<C, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}
