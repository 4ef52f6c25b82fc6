//! Snapshot plumbing shared by both state machines: a builder that only
//! stores bytes prepared by the machine, and loading the stored snapshot of
//! a group at start. The snapshot bodies themselves (`MetaSnapshot`,
//! `QueueSnapshot`) are each machine's business.

use std::io;

use bytes::Bytes;
use openraft::RaftSnapshotBuilder;
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use warren_storage::{GroupId, LogStore};

use super::codec::{decode_snapshot_meta, encode_snapshot_meta};
use super::{TypeConfig, io_err};

type C = TypeConfig;

/// A snapshot whose data the state machine already encoded (under its lock,
/// so it matches `meta.last_log_id` exactly); building = saving it durably.
pub(crate) struct PreparedSnapshot<S: LogStore> {
    pub(crate) store: S,
    pub(crate) group: GroupId,
    pub(crate) meta: SnapshotMetaOf<C>,
    pub(crate) data: Bytes,
}

impl<S: LogStore> RaftSnapshotBuilder<C> for PreparedSnapshot<S> {
    type SnapshotData = Bytes;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Bytes>, io::Error> {
        save(&self.store, self.group, &self.meta, self.data.clone()).await?;
        Ok(SnapshotOf::<C, Bytes> {
            meta: self.meta.clone(),
            snapshot: self.data.clone(),
        })
    }
}

/// The meta of a snapshot covering everything applied up to `last`.
pub(crate) fn meta_for(
    last: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
) -> SnapshotMetaOf<C> {
    SnapshotMetaOf::<C> {
        last_log_id: last,
        last_membership: membership,
    }
}

pub(crate) async fn save<S: LogStore>(
    store: &S,
    group: GroupId,
    meta: &SnapshotMetaOf<C>,
    data: Bytes,
) -> Result<(), io::Error> {
    store
        .save_snapshot(group, encode_snapshot_meta(meta), data)
        .await
        .map_err(io_err)
}

/// The group's stored snapshot, if any.
pub(crate) fn load<S: LogStore>(
    store: &S,
    group: GroupId,
) -> Result<Option<(SnapshotMetaOf<C>, Bytes)>, io::Error> {
    let Some((meta, data)) = store.read_snapshot(group).map_err(io_err)? else {
        return Ok(None);
    };
    Ok(Some((decode_snapshot_meta(meta).map_err(io_err)?, data)))
}
