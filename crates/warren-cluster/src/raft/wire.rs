//! openraft's RPC messages as the `warren.raft.v1` protobuf types of the
//! transport (STYLE.md 4: wire types stop here). Entries travel as the same
//! encoded `LogEntry` bytes the log stores, so a replicated entry is never
//! re-encoded on its way from one node's log to another's.

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    VoteRequest, VoteResponse,
};
use warren_rpc::raft as rpc;
use warren_storage::GroupId;

use super::TypeConfig;
use super::codec::{
    decode_entry, encode_entry, log_id_from_pb, log_id_to_pb, vote_from_pb, vote_to_pb,
};
use crate::convert::{DecodeError, required};

type C = TypeConfig;

pub(crate) fn append_request_to_pb(
    group: GroupId,
    r: &AppendEntriesRequest<C>,
) -> rpc::AppendRequest {
    rpc::AppendRequest {
        group_id: group,
        vote: Some(vote_to_pb(&r.vote)),
        prev_log_id: r.prev_log_id.as_ref().map(log_id_to_pb),
        entries: r.entries.iter().map(encode_entry).collect(),
        leader_commit: r.leader_commit.as_ref().map(log_id_to_pb),
    }
}

pub(crate) fn append_request_from_pb(
    p: rpc::AppendRequest,
) -> Result<AppendEntriesRequest<C>, DecodeError> {
    Ok(AppendEntriesRequest {
        vote: vote_from_pb(required(p.vote, "append_request.vote")?)?,
        prev_log_id: p.prev_log_id.map(log_id_from_pb).transpose()?,
        entries: p
            .entries
            .into_iter()
            .map(decode_entry)
            .collect::<Result<Vec<_>, _>>()?,
        leader_commit: p.leader_commit.map(log_id_from_pb).transpose()?,
    })
}

pub(crate) fn append_response_to_pb(
    group: GroupId,
    r: &AppendEntriesResponse<C>,
) -> rpc::AppendResponse {
    use rpc::append_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Success(Default::default()),
        AppendEntriesResponse::PartialSuccess(Some(id)) => R::PartialSuccess(log_id_to_pb(id)),
        AppendEntriesResponse::PartialSuccess(None) => R::PartialSuccessNone(Default::default()),
        AppendEntriesResponse::Conflict => R::Conflict(Default::default()),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote_to_pb(v)),
    };
    rpc::AppendResponse {
        group_id: group,
        result: Some(result),
    }
}

pub(crate) fn append_response_from_pb(
    p: rpc::AppendResponse,
) -> Result<AppendEntriesResponse<C>, DecodeError> {
    use rpc::append_response::Result as R;
    Ok(match required(p.result, "append_response.result")? {
        R::Success(_) => AppendEntriesResponse::Success,
        R::PartialSuccess(id) => AppendEntriesResponse::PartialSuccess(Some(log_id_from_pb(id)?)),
        R::PartialSuccessNone(_) => AppendEntriesResponse::PartialSuccess(None),
        R::Conflict(_) => AppendEntriesResponse::Conflict,
        R::HigherVote(v) => AppendEntriesResponse::HigherVote(vote_from_pb(v)?),
    })
}

pub(crate) fn vote_request_to_pb(
    group: GroupId,
    r: &VoteRequest<C>,
    pre_vote: bool,
) -> rpc::VoteRequest {
    rpc::VoteRequest {
        group_id: group,
        vote: Some(vote_to_pb(&r.vote)),
        last_log_id: r.last_log_id.as_ref().map(log_id_to_pb),
        pre_vote,
        leadership_transfer: r.leadership_transfer,
    }
}

pub(crate) fn vote_request_from_pb(p: rpc::VoteRequest) -> Result<VoteRequest<C>, DecodeError> {
    let mut r = VoteRequest::new(
        vote_from_pb(required(p.vote, "vote_request.vote")?)?,
        p.last_log_id.map(log_id_from_pb).transpose()?,
    );
    r.leadership_transfer = p.leadership_transfer;
    Ok(r)
}

pub(crate) fn vote_response_to_pb(group: GroupId, r: &VoteResponse<C>) -> rpc::VoteResponse {
    rpc::VoteResponse {
        group_id: group,
        vote: Some(vote_to_pb(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: r.last_log_id.as_ref().map(log_id_to_pb),
    }
}

pub(crate) fn vote_response_from_pb(p: rpc::VoteResponse) -> Result<VoteResponse<C>, DecodeError> {
    Ok(VoteResponse::new(
        vote_from_pb(required(p.vote, "vote_response.vote")?)?,
        p.last_log_id.map(log_id_from_pb).transpose()?,
        p.vote_granted,
    ))
}

pub(crate) fn snapshot_response_to_pb(
    group: GroupId,
    r: &SnapshotResponse<C>,
) -> rpc::SnapshotResponse {
    rpc::SnapshotResponse {
        group_id: group,
        vote: Some(vote_to_pb(&r.vote)),
    }
}

pub(crate) fn snapshot_response_from_pb(
    p: rpc::SnapshotResponse,
) -> Result<SnapshotResponse<C>, DecodeError> {
    Ok(SnapshotResponse::new(vote_from_pb(required(
        p.vote,
        "snapshot_response.vote",
    )?)?))
}

pub(crate) fn transfer_leader_to_pb(
    group: GroupId,
    r: &TransferLeaderRequest<C>,
) -> rpc::TransferLeaderRequest {
    rpc::TransferLeaderRequest {
        group_id: group,
        from_leader: Some(vote_to_pb(r.from_leader())),
        to_node_id: *r.to_node_id(),
        last_log_id: r.last_log_id().map(log_id_to_pb),
    }
}

pub(crate) fn transfer_leader_from_pb(
    p: rpc::TransferLeaderRequest,
) -> Result<TransferLeaderRequest<C>, DecodeError> {
    Ok(TransferLeaderRequest::new(
        vote_from_pb(required(p.from_leader, "transfer_leader.from_leader")?)?,
        p.to_node_id,
        p.last_log_id.map(log_id_from_pb).transpose()?,
    ))
}

#[cfg(test)]
mod tests {
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::{EntryPayload, Membership};

    use super::*;
    use crate::raft::Request;
    use openraft::alias::{EntryOf, LogIdOf, VoteOf};

    fn log_id(term: u64, node: u64, index: u64) -> LogIdOf<C> {
        LogIdOf::<C>::new(
            LeaderId {
                term,
                node_id: node,
            },
            index,
        )
    }

    #[test]
    fn append_requests_round_trip() {
        let membership = Membership::new_with_defaults(vec![[1u64, 2, 3].into()], []);
        let req = AppendEntriesRequest::<C> {
            vote: VoteOf::<C>::new_committed(3, 1),
            prev_log_id: Some(log_id(2, 2, 7)),
            entries: vec![
                EntryOf::<C> {
                    log_id: log_id(3, 1, 8),
                    payload: EntryPayload::Blank,
                },
                EntryOf::<C> {
                    log_id: log_id(3, 1, 9),
                    payload: EntryPayload::Normal(Request(bytes::Bytes::from_static(b"p"))),
                },
                EntryOf::<C> {
                    log_id: log_id(3, 1, 10),
                    payload: EntryPayload::Membership(membership),
                },
            ],
            leader_commit: Some(log_id(3, 1, 8)),
        };
        let back = append_request_from_pb(append_request_to_pb(4, &req)).expect("decodes");
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.entries, req.entries);
        assert_eq!(back.leader_commit, req.leader_commit);
    }

    #[test]
    fn append_responses_round_trip() {
        for r in [
            AppendEntriesResponse::<C>::Success,
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::PartialSuccess(Some(log_id(1, 2, 3))),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(VoteOf::<C>::new(5, 3)),
        ] {
            let back = append_response_from_pb(append_response_to_pb(1, &r)).expect("decodes");
            assert_eq!(back, r);
        }
    }

    #[test]
    fn votes_round_trip() {
        let mut req = VoteRequest::<C>::new(VoteOf::<C>::new(4, 2), Some(log_id(3, 1, 11)));
        req.leadership_transfer = true;
        let p = vote_request_to_pb(9, &req, true);
        assert!(p.pre_vote);
        let back = vote_request_from_pb(p).expect("decodes");
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.last_log_id, req.last_log_id);
        assert!(back.leadership_transfer);

        let resp = VoteResponse::<C>::new(VoteOf::<C>::new(4, 2), None, true);
        let back = vote_response_from_pb(vote_response_to_pb(9, &resp)).expect("decodes");
        assert_eq!(back.vote, resp.vote);
        assert_eq!(back.last_log_id, None);
        assert!(back.vote_granted);
    }
}
