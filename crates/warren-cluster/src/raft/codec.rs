//! openraft's log entries, log ids, votes, memberships and snapshot metas
//! as `warren.log.v1` protobuf bytes: the on-disk form of a group's log and
//! small records. Every entry carries the format version; others are refused.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use openraft::alias::{EntryOf, LogIdOf, SnapshotMetaOf, StoredMembershipOf, VoteOf};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::{BasicNode, EntryPayload, Membership};
use prost::Message as _;
use warren_rpc::FORMAT_VERSION;
use warren_rpc::log as pb;

use crate::convert::{DecodeError, required};

use super::{Request, TypeConfig};

type C = TypeConfig;

fn version(v: u32) -> Result<(), DecodeError> {
    if v == FORMAT_VERSION {
        Ok(())
    } else {
        Err(DecodeError::Version(v))
    }
}

fn leader_to_pb(l: &LeaderId<u64, u64>) -> pb::LeaderId {
    pb::LeaderId {
        term: l.term,
        node_id: l.node_id,
    }
}

fn leader_from_pb(l: pb::LeaderId) -> LeaderId<u64, u64> {
    LeaderId {
        term: l.term,
        node_id: l.node_id,
    }
}

pub(crate) fn log_id_to_pb(id: &LogIdOf<C>) -> pb::LogId {
    pb::LogId {
        leader: Some(leader_to_pb(&id.leader_id)),
        index: id.index,
    }
}

pub(crate) fn log_id_from_pb(p: pb::LogId) -> Result<LogIdOf<C>, DecodeError> {
    let leader = leader_from_pb(required(p.leader, "log_id.leader")?);
    Ok(LogIdOf::<C>::new(leader, p.index))
}

pub(crate) fn encode_log_id(id: &LogIdOf<C>) -> Bytes {
    log_id_to_pb(id).encode_to_vec().into()
}

pub(crate) fn decode_log_id(b: Bytes) -> Result<LogIdOf<C>, DecodeError> {
    log_id_from_pb(pb::LogId::decode(b)?)
}

pub(crate) fn vote_to_pb(v: &VoteOf<C>) -> pb::Vote {
    pb::Vote {
        leader: Some(leader_to_pb(&v.leader_id)),
        committed: v.committed,
    }
}

pub(crate) fn vote_from_pb(p: pb::Vote) -> Result<VoteOf<C>, DecodeError> {
    let leader = leader_from_pb(required(p.leader, "vote.leader")?);
    Ok(VoteOf::<C> {
        leader_id: leader,
        committed: p.committed,
    })
}

pub(crate) fn encode_vote(v: &VoteOf<C>) -> Bytes {
    vote_to_pb(v).encode_to_vec().into()
}

pub(crate) fn decode_vote(b: Bytes) -> Result<VoteOf<C>, DecodeError> {
    vote_from_pb(pb::Vote::decode(b)?)
}

fn membership_to_pb(m: &Membership<u64, BasicNode>) -> pb::Membership {
    let configs = m
        .get_joint_config()
        .iter()
        .map(|set| pb::NodeIdSet {
            ids: set.iter().copied().collect(),
        })
        .collect();
    let nodes = m
        .nodes()
        .map(|(id, n)| pb::NodeAddr {
            id: *id,
            addr: n.addr.clone(),
        })
        .collect();
    pb::Membership { configs, nodes }
}

fn membership_from_pb(p: pb::Membership) -> Result<Membership<u64, BasicNode>, DecodeError> {
    let configs: Vec<BTreeSet<u64>> = p
        .configs
        .into_iter()
        .map(|s| s.ids.into_iter().collect())
        .collect();
    let nodes: BTreeMap<u64, BasicNode> = p
        .nodes
        .into_iter()
        .map(|n| (n.id, BasicNode { addr: n.addr }))
        .collect();
    Membership::new(configs, nodes)
        .map_err(|e| crate::convert::invalid("membership", e.to_string()))
}

pub(crate) fn stored_membership_to_pb(m: &StoredMembershipOf<C>) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: m.log_id().as_ref().map(log_id_to_pb),
        membership: Some(membership_to_pb(m.membership())),
    }
}

pub(crate) fn stored_membership_from_pb(
    p: pb::StoredMembership,
) -> Result<StoredMembershipOf<C>, DecodeError> {
    let log_id = p.log_id.map(log_id_from_pb).transpose()?;
    let m = membership_from_pb(required(p.membership, "stored_membership.membership")?)?;
    Ok(StoredMembershipOf::<C>::new(log_id, m))
}

pub(crate) fn encode_entry(e: &EntryOf<C>) -> Bytes {
    use pb::log_entry::Payload;
    let payload = match &e.payload {
        EntryPayload::Blank => Payload::Blank(pb::Empty {}),
        EntryPayload::Normal(r) => Payload::Normal(r.0.clone()),
        EntryPayload::Membership(m) => Payload::Membership(membership_to_pb(m)),
    };
    let p = pb::LogEntry {
        format_version: FORMAT_VERSION,
        log_id: Some(log_id_to_pb(&e.log_id)),
        payload: Some(payload),
    };
    p.encode_to_vec().into()
}

pub(crate) fn decode_entry(b: Bytes) -> Result<EntryOf<C>, DecodeError> {
    use pb::log_entry::Payload;
    let p = pb::LogEntry::decode(b)?;
    version(p.format_version)?;
    let log_id = log_id_from_pb(required(p.log_id, "log_entry.log_id")?)?;
    let payload = match required(p.payload, "log_entry.payload")? {
        Payload::Blank(_) => EntryPayload::Blank,
        Payload::Normal(b) => EntryPayload::Normal(Request(b)),
        Payload::Membership(m) => EntryPayload::Membership(membership_from_pb(m)?),
    };
    Ok(EntryOf::<C> { log_id, payload })
}

pub(crate) fn encode_snapshot_meta(m: &SnapshotMetaOf<C>) -> Bytes {
    snapshot_meta_to_pb(m).encode_to_vec().into()
}

pub(crate) fn snapshot_meta_to_pb(m: &SnapshotMetaOf<C>) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        format_version: FORMAT_VERSION,
        last_log_id: m.last_log_id.as_ref().map(log_id_to_pb),
        last_membership: Some(stored_membership_to_pb(&m.last_membership)),
        // openraft 0.10.0-alpha.37 dropped snapshot ids; the field stays
        // in the format (append-only) and is written empty.
        snapshot_id: String::new(),
    }
}

pub(crate) fn decode_snapshot_meta(b: Bytes) -> Result<SnapshotMetaOf<C>, DecodeError> {
    snapshot_meta_from_pb(pb::SnapshotMeta::decode(b)?)
}

pub(crate) fn snapshot_meta_from_pb(p: pb::SnapshotMeta) -> Result<SnapshotMetaOf<C>, DecodeError> {
    version(p.format_version)?;
    Ok(SnapshotMetaOf::<C> {
        last_log_id: p.last_log_id.map(log_id_from_pb).transpose()?,
        last_membership: stored_membership_from_pb(required(
            p.last_membership,
            "snapshot_meta.last_membership",
        )?)?,
    })
}

/// Checks a snapshot's format version (the snapshot bodies carry their own).
pub(crate) fn check_version(v: u32) -> Result<(), DecodeError> {
    version(v)
}
