//! The network of a group whose members are on other nodes: openraft's
//! `RaftNetworkV2` over the node's shared gRPC channels (`net::Net`), each
//! RPC tagged with the group's id. Errors that mean "the peer or its
//! replica is not there" (connection refused, NOT_FOUND …) become
//! `Unreachable`, so openraft backs off before the next try; the rest
//! become `NetworkError` (retried at once).

use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkV2};
use warren_rpc::raft as rpc;
use warren_storage::GroupId;

use super::TypeConfig;
use super::codec::{snapshot_meta_to_pb, vote_to_pb};
use super::repair::MissingTx;
use super::wire;
use crate::convert::DecodeError;
use crate::net::{Net, NetError};

type C = TypeConfig;

/// Size of one chunk of a snapshot on the wire.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// Turns a stored snapshot into the one sent to a peer (a queue group adds
/// the bodies of its live messages, which the peer's log may not hold).
pub(crate) type SnapshotPrep = Arc<dyn Fn(Bytes) -> Result<Bytes, io::Error> + Send + Sync>;

/// Hands out clients of one group.
#[derive(Clone)]
pub(crate) struct GrpcNetworkFactory {
    pub(crate) group: GroupId,
    pub(crate) net: Arc<Net>,
    pub(crate) prep: Option<SnapshotPrep>,
    /// For a queue group: told of peers that run no replica of it.
    pub(crate) missing: Option<MissingTx>,
}

/// A client of one group towards one peer.
pub(crate) struct GrpcNetwork {
    group: GroupId,
    target: u64,
    net: Arc<Net>,
    prep: Option<SnapshotPrep>,
    missing: Option<MissingTx>,
}

impl RaftNetworkFactory<C> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        GrpcNetwork {
            group: self.group,
            target,
            net: self.net.clone(),
            prep: self.prep.clone(),
            missing: self.missing.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("group {group}: {error}")]
struct Failed {
    group: GroupId,
    error: String,
}

impl GrpcNetwork {
    fn failed(&self, e: impl std::fmt::Display) -> Failed {
        Failed {
            group: self.group,
            error: e.to_string(),
        }
    }

    fn rpc_error(&self, e: &NetError) -> RPCError<C> {
        if e.unreachable() {
            RPCError::Unreachable(Unreachable::new(&self.failed(e)))
        } else {
            RPCError::Network(NetworkError::new(&self.failed(e)))
        }
    }

    fn decode_error(&self, e: &DecodeError) -> RPCError<C> {
        RPCError::Network(NetworkError::new(&self.failed(e)))
    }

    fn client(
        &self,
    ) -> Result<warren_rpc::raft::raft_client::RaftClient<tonic::transport::Channel>, NetError>
    {
        self.net.client(self.target)
    }

    fn status(&self, status: tonic::Status) -> NetError {
        if status.code() == tonic::Code::NotFound
            && let Some(missing) = &self.missing
        {
            // The peer runs no replica of this group (see `repair`).
            let _ = missing.send(self.target);
        }
        NetError::Rpc {
            node: self.target,
            status,
        }
    }

    async fn vote_rpc(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
        pre_vote: bool,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        let mut req = tonic::Request::new(wire::vote_request_to_pb(self.group, &rpc, pre_vote));
        req.set_timeout(option.hard_ttl());
        let mut client = self.client().map_err(|e| self.rpc_error(&e))?;
        let resp = client
            .vote(req)
            .await
            .map_err(|s| self.rpc_error(&self.status(s)))?;
        wire::vote_response_from_pb(resp.into_inner()).map_err(|e| self.decode_error(&e))
    }

    /// The chunks of a snapshot: the first carries the vote and the meta.
    fn chunks(
        &self,
        vote: &VoteOf<C>,
        snapshot: &SnapshotOf<C, Bytes>,
        data: Bytes,
    ) -> Vec<rpc::SnapshotChunk> {
        let mut chunks = Vec::with_capacity(data.len() / SNAPSHOT_CHUNK + 1);
        let mut rest = data;
        loop {
            let take = rest.len().min(SNAPSHOT_CHUNK);
            let piece = rest.split_to(take);
            let first = chunks.is_empty();
            chunks.push(rpc::SnapshotChunk {
                group_id: self.group,
                vote: first.then(|| vote_to_pb(vote)),
                meta: first.then(|| snapshot_meta_to_pb(&snapshot.meta)),
                data: piece,
                last: rest.is_empty(),
            });
            if rest.is_empty() {
                return chunks;
            }
        }
    }
}

impl RaftNetworkV2<C> for GrpcNetwork {
    type SnapshotData = Bytes;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let mut req = tonic::Request::new(wire::append_request_to_pb(self.group, &rpc));
        req.set_timeout(option.hard_ttl());
        let mut client = self.client().map_err(|e| self.rpc_error(&e))?;
        let resp = client
            .append(req)
            .await
            .map_err(|s| self.rpc_error(&self.status(s)))?;
        wire::append_response_from_pb(resp.into_inner()).map_err(|e| self.decode_error(&e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.vote_rpc(rpc, option, false).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.vote_rpc(rpc, option, true).await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        let mut req = tonic::Request::new(wire::transfer_leader_to_pb(self.group, &rpc));
        req.set_timeout(option.hard_ttl());
        let mut client = self.client().map_err(|e| self.rpc_error(&e))?;
        let resp = client
            .transfer_leader(req)
            .await
            .map_err(|s| self.rpc_error(&self.status(s)))?
            .into_inner();
        if resp.refused.is_empty() {
            Ok(Ok(()))
        } else {
            // Its reason does not travel back typed: a failed send to
            // openraft (the transfer is tried again by whoever asked).
            Err(RPCError::Network(NetworkError::new(
                &self.failed(resp.refused),
            )))
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let data = match self.prep.clone() {
            // Reading the bodies is blocking store I/O.
            Some(prep) => {
                let raw = snapshot.snapshot.clone();
                tokio::task::spawn_blocking(move || prep(raw))
                    .await
                    .map_err(|e| StreamingError::Network(NetworkError::new(&self.failed(e))))?
                    .map_err(|e| StreamingError::Network(NetworkError::new(&self.failed(e))))?
            }
            None => snapshot.snapshot.clone(),
        };
        let chunks = self.chunks(&vote, &snapshot, data);
        let mut client = self
            .client()
            .map_err(|e| StreamingError::from(self.rpc_error(&e)))?;
        let send = client.snapshot(futures::stream::iter(chunks));
        let resp = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = send => r.map_err(|s| StreamingError::from(self.rpc_error(&self.status(s))))?,
        };
        wire::snapshot_response_from_pb(resp.into_inner())
            .map_err(|e| StreamingError::from(self.decode_error(&e)))
    }
}
