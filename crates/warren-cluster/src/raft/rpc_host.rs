//! The server side of one group: what the node's gRPC service calls for a
//! request naming this group, decoded and handed to its `Raft`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use openraft::alias::SnapshotOf;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, Raft, ServerState};
use tonic::Status;
use warren_rpc::log as pb;
use warren_rpc::raft as rpc;
use warren_storage::GroupId;

use super::codec::{snapshot_meta_from_pb, vote_from_pb};
use super::group::renew_lease;
use super::{READER_MARK, Request, TypeConfig, wire};
use crate::net::{GroupRpc, GroupView, Joining, Net};

type C = TypeConfig;

pub(crate) struct RaftRpc<SM: RaftStateMachine<C>> {
    pub(crate) group: GroupId,
    pub(crate) raft: Raft<C, SM>,
    /// For a group that runs without timers and relies on the node's
    /// failure detector (a queue group with peers): its leader lease.
    pub(crate) lease: Option<std::time::Duration>,
    /// The node's transport, whose failure detector's judgements decide
    /// pre-votes in such a group (see [`RaftRpc::stands_by_leader`]).
    pub(crate) net: Arc<Net>,
}

impl<SM: RaftStateMachine<C>> RaftRpc<SM> {
    /// Whether this replica refuses a pre-vote for `candidate` because its
    /// group has a leader that is alive: this node leads, or the leader it
    /// knows is another node its failure detector does not judge down.
    /// Only a group without heartbeats needs this: its followers' leases
    /// (renewed by traffic only) lapse while it idles, after which openraft
    /// would grant any candidate with the longest log, so one node's false
    /// alarm would unseat a healthy idle leader. Refusing a pre-vote never
    /// affects safety; it only spares an election.
    ///
    /// The second answer: this node leads and the candidate asks from a
    /// higher term than the leader's (it stood before, and lost or was
    /// cut off): the leader then sends it a heartbeat, whose refusal tells
    /// the leader of that term, so the group elects anew (in the higher
    /// term) instead of leaving the candidate stranded until the next
    /// write.
    fn stands_by_leader(&self, candidate: u64, term: u64) -> (bool, bool) {
        if self.lease.is_none() {
            return (false, false);
        }
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow_watched();
        match m.current_leader {
            Some(l) if l == candidate => (false, false),
            Some(l) if l == m.id => {
                let leading = m.state == ServerState::Leader;
                // The pre-vote asks for the candidate's term + 1.
                (leading, leading && term > m.vote.leader_id.term + 1)
            }
            Some(l) => (!self.net.is_down(l), false),
            None => (false, false),
        }
    }
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A stopped group answers as if absent: the sender backs off.
fn stopped(group: GroupId, e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("group {group}: {e}"))
}

fn not_leader(leader: Option<u64>) -> rpc::NotLeader {
    rpc::NotLeader { leader }
}

impl<SM> GroupRpc for RaftRpc<SM>
where
    SM: RaftStateMachine<C, SnapshotData = Bytes>,
{
    fn append(
        &self,
        req: rpc::AppendRequest,
    ) -> BoxFuture<'static, Result<rpc::AppendResponse, Status>> {
        let (raft, group) = (self.raft.clone(), self.group);
        Box::pin(async move {
            let req = wire::append_request_from_pb(req).map_err(bad)?;
            let resp = raft
                .append_entries(req)
                .await
                .map_err(|e| stopped(group, e))?;
            Ok(wire::append_response_to_pb(group, &resp))
        })
    }

    fn vote(&self, req: rpc::VoteRequest) -> BoxFuture<'static, Result<rpc::VoteResponse, Status>> {
        let (raft, group) = (self.raft.clone(), self.group);
        let pre_vote = req.pre_vote;
        let req = wire::vote_request_from_pb(req).map(|r| (pre_vote, r));
        let (refuse, tell) = match &req {
            Ok((true, r)) => self.stands_by_leader(r.vote.leader_id.node_id, r.vote.leader_id.term),
            _ => (false, false),
        };
        Box::pin(async move {
            let (pre_vote, req) = req.map_err(bad)?;
            let mut resp = if pre_vote {
                raft.pre_vote(req).await
            } else {
                raft.vote(req).await
            }
            .map_err(|e| stopped(group, e))?;
            if refuse {
                resp.vote_granted = false;
            }
            if tell {
                let _ = raft.trigger().heartbeat().await;
            }
            Ok(wire::vote_response_to_pb(group, &resp))
        })
    }

    fn install_snapshot(
        &self,
        vote: pb::Vote,
        meta: pb::SnapshotMeta,
        data: Bytes,
    ) -> BoxFuture<'static, Result<rpc::SnapshotResponse, Status>> {
        let (raft, group) = (self.raft.clone(), self.group);
        Box::pin(async move {
            let vote = vote_from_pb(vote).map_err(bad)?;
            let meta = snapshot_meta_from_pb(meta).map_err(bad)?;
            let snapshot = SnapshotOf::<C, Bytes> {
                meta,
                snapshot: data,
            };
            let resp = raft
                .install_full_snapshot(vote, snapshot)
                .await
                .map_err(|e| stopped(group, e))?;
            Ok(wire::snapshot_response_to_pb(group, &resp))
        })
    }

    fn view(&self) -> Option<GroupView> {
        self.lease?;
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let granted = !m.vote.committed && m.vote.leader_id.node_id != m.id;
        Some(GroupView {
            leader: m.current_leader,
            leading: m.state == ServerState::Leader,
            electing: m.state == ServerState::Candidate || granted,
            voters: membership.voter_ids().collect(),
            members: membership
                .voter_ids()
                .chain(membership.learner_ids())
                .collect(),
        })
    }

    fn elect(&self, pre_vote: bool) -> BoxFuture<'static, ()> {
        let (raft, group) = (self.raft.clone(), self.group);
        Box::pin(async move {
            if let Err(e) = raft.trigger().elect(pre_vote).await {
                tracing::debug!(group, error = %e, "election not started");
            }
        })
    }

    fn heartbeat(&self) -> BoxFuture<'static, ()> {
        let (raft, group) = (self.raft.clone(), self.group);
        Box::pin(async move {
            if let Err(e) = raft.trigger().heartbeat().await {
                tracing::debug!(group, error = %e, "heartbeat not sent");
            }
        })
    }

    fn transfer_to(&self, to: u64) -> BoxFuture<'static, ()> {
        let (raft, group) = (self.raft.clone(), self.group);
        Box::pin(async move {
            if let Err(e) = raft.trigger().transfer_leader(to).await {
                tracing::debug!(group, to, error = %e, "leadership not handed over");
            }
        })
    }

    fn add_reader(
        &self,
        node: u64,
        how: Joining,
    ) -> BoxFuture<'static, Result<rpc::AddReaderResponse, Status>> {
        let (raft, group, lease) = (self.raft.clone(), self.group, self.lease);
        let addr = self.net.addr(node);
        Box::pin(async move {
            let Some(addr) = addr else {
                return Err(Status::invalid_argument(format!(
                    "node {node} is not in the peer table"
                )));
            };
            let refused = |leader| {
                Ok(rpc::AddReaderResponse {
                    not_leader: Some(not_leader(leader)),
                })
            };
            if !raft.is_leader() {
                return refused(raft.current_leader().await);
            }
            let (member, reader) = {
                let metrics = raft.metrics();
                let m = metrics.borrow_watched();
                let entry = m.membership_config.membership().get_node(&node).cloned();
                (
                    entry.is_some(),
                    entry.as_ref().is_some_and(super::is_reader),
                )
            };
            match how {
                Joining::Leave => {
                    return leave_group(&raft, group, lease, node, member, reader).await;
                }
                // Already a voter, a learner, or a reader: nothing to add.
                Joining::Reader if member => {
                    return Ok(rpc::AddReaderResponse { not_leader: None });
                }
                // A voter, or a learner on its way to a vote.
                Joining::Replica if member && !reader => {
                    return Ok(rpc::AddReaderResponse { not_leader: None });
                }
                Joining::Reader | Joining::Replica => {}
            }
            if let Some(lease) = lease
                && !renew_lease(&raft, lease).await
            {
                return refused(None);
            }
            let (entry, what) = match how {
                Joining::Reader => (format!("{READER_MARK}{addr}"), "a reader"),
                _ => (addr.to_string(), "a replica (a learner until caught up)"),
            };
            let entry = BasicNode { addr: entry };
            // A reader made a replica keeps its log: only its entry changes
            // (the group's repair loop gives it a vote once caught up).
            let added = if reader {
                raft.change_membership(
                    openraft::ChangeMembers::SetNodes(BTreeMap::from([(node, entry)])),
                    false,
                )
                .await
                .map(|_| ())
            } else {
                raft.add_learner(node, entry, false).await.map(|_| ())
            };
            match added {
                Ok(()) => {
                    tracing::info!(group, node, "added {what} to the queue group");
                    Ok(rpc::AddReaderResponse { not_leader: None })
                }
                Err(e) => match e.forward_to_leader() {
                    Some(f) => refused(f.leader_id),
                    None => Err(Status::unavailable(format!(
                        "group {group}: adding reader {node} failed: {e}"
                    ))),
                },
            }
        })
    }

    fn transfer_leader(
        &self,
        req: rpc::TransferLeaderRequest,
    ) -> BoxFuture<'static, Result<rpc::TransferLeaderResponse, Status>> {
        let (raft, group) = (self.raft.clone(), self.group);
        Box::pin(async move {
            let req = wire::transfer_leader_from_pb(req).map_err(bad)?;
            let refused = match raft
                .handle_transfer_leader(req)
                .await
                .map_err(|e| stopped(group, e))?
            {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            };
            Ok(rpc::TransferLeaderResponse { refused })
        })
    }

    fn propose(&self, proposals: Vec<Bytes>) -> BoxFuture<'static, rpc::ProposeResponse> {
        let (raft, group, lease) = (self.raft.clone(), self.group, self.lease);
        Box::pin(async move {
            let refused = |leader| rpc::ProposeResponse {
                group_id: group,
                not_leader: Some(not_leader(leader)),
                results: Vec::new(),
            };
            if !raft.is_leader() {
                return refused(raft.current_leader().await);
            }
            if let Some(lease) = lease
                && !renew_lease(&raft, lease).await
            {
                return refused(None);
            }
            let n = proposals.len();
            let mut answers = match raft
                .client_write_many(proposals.into_iter().map(Request))
                .await
            {
                // Fused: once the group stops, the stream ends early and
                // the loop below polls it again for each missing answer.
                Ok(s) => s.fuse(),
                Err(_) => return refused(None),
            };
            let mut results = Vec::with_capacity(n);
            use rpc::propose_result::Result as R;
            while results.len() < n {
                let r = match answers.next().await {
                    Some(Ok(Ok(resp))) => R::Applied(rpc::Applied {
                        index: resp.log_id.index,
                        response: resp.response.0,
                    }),
                    Some(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => {
                        R::NotLeader(not_leader(f.leader_id))
                    }
                    Some(Ok(Err(e))) => R::Error(e.to_string()),
                    Some(Err(fatal)) => R::Error(fatal.to_string()),
                    None => R::Error("answer missing".into()),
                };
                results.push(rpc::ProposeResult { result: Some(r) });
            }
            rpc::ProposeResponse {
                group_id: group,
                not_leader: None,
                results,
            }
        })
    }
}

/// The leader's side of a reader leaving its queue's group: it is taken out
/// (nothing to do if it is not a member; refused if it holds a replica).
async fn leave_group<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    group: GroupId,
    lease: Option<std::time::Duration>,
    node: u64,
    member: bool,
    reader: bool,
) -> Result<rpc::AddReaderResponse, Status> {
    if !member {
        return Ok(rpc::AddReaderResponse { not_leader: None });
    }
    if !reader {
        return Err(Status::failed_precondition(format!(
            "group {group}: node {node} holds a replica, it is not a reader"
        )));
    }
    if let Some(lease) = lease
        && !renew_lease(raft, lease).await
    {
        return Ok(rpc::AddReaderResponse {
            not_leader: Some(not_leader(None)),
        });
    }
    match raft
        .change_membership(openraft::ChangeMembers::RemoveNodes([node].into()), false)
        .await
    {
        Ok(_) => {
            tracing::info!(group, node, "a reader left the queue group");
            Ok(rpc::AddReaderResponse { not_leader: None })
        }
        Err(e) => match e.forward_to_leader() {
            Some(f) => Ok(rpc::AddReaderResponse {
                not_leader: Some(not_leader(f.leader_id)),
            }),
            None => Err(Status::unavailable(format!(
                "group {group}: removing reader {node} failed: {e}"
            ))),
        },
    }
}
