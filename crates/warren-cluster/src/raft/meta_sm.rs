//! The metadata group's state machine: `warren_core::meta::MetaState`
//! changed only by committed `MetaCommand` entries. The reply of each
//! command goes back to its proposer only (replay after a restart answers
//! nobody). Snapshots store the state as the commands that rebuild it.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use parking_lot::Mutex;
use prost::Message as _;
use warren_core::meta::{MetaCommand, MetaState};
use warren_rpc::FORMAT_VERSION;
use warren_rpc::log as pb;
use warren_storage::{GroupId, LogStore};

use super::codec::check_version;
use super::snapshot::{PreparedSnapshot, load, meta_for, save};
use super::{Response, TypeConfig, io_err};
use crate::NodeChange;
use crate::convert::{FromProto, IntoProto};
use crate::meta_snapshot::{rebuild, to_commands};

type C = TypeConfig;

/// What the node reads between commands.
pub(crate) struct MetaCore {
    pub(crate) state: MetaState,
    applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    /// Told of every change as it is made here (see [`crate::NodeChange`]);
    /// those that went away are dropped at the next change.
    followers: Vec<tokio::sync::mpsc::UnboundedSender<NodeChange>>,
}

impl MetaCore {
    fn fresh(
        state: MetaState,
        applied: Option<LogIdOf<C>>,
        membership: StoredMembershipOf<C>,
    ) -> Self {
        MetaCore {
            state,
            applied,
            membership,
            followers: Vec::new(),
        }
    }

    /// A copy of the state now, and every change from now on.
    pub(crate) fn follow(
        &mut self,
    ) -> (MetaState, tokio::sync::mpsc::UnboundedReceiver<NodeChange>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.followers.push(tx);
        (self.state.clone(), rx)
    }

    /// Tells every follower of `change`.
    pub(crate) fn notify(&mut self, change: NodeChange) {
        self.followers.retain(|f| f.send(change.clone()).is_ok());
    }

    fn followed(&self) -> bool {
        !self.followers.is_empty()
    }
}

/// The metadata state machine for openraft; `core` is shared with the node.
pub(crate) struct MetaMachine<S: LogStore> {
    store: S,
    group: GroupId,
    pub(crate) core: Arc<Mutex<MetaCore>>,
}

impl<S: LogStore> MetaMachine<S> {
    /// Starts from the group's stored snapshot, or from a fresh broker's
    /// defaults (vhost `/`, user guest); openraft then re-applies the
    /// committed entries after the snapshot.
    pub(crate) fn open(store: S, group: GroupId) -> Result<Self, io::Error> {
        let core = match load(&store, group)? {
            Some((meta, data)) => {
                MetaCore::fresh(decode_state(data)?, meta.last_log_id, meta.last_membership)
            }
            None => MetaCore::fresh(
                MetaState::with_defaults(),
                None,
                StoredMembershipOf::<C>::default(),
            ),
        };
        Ok(MetaMachine {
            store,
            group,
            core: Arc::new(Mutex::new(core)),
        })
    }
}

fn encode_state(state: &MetaState) -> Bytes {
    let snap = pb::MetaSnapshot {
        format_version: FORMAT_VERSION,
        commands: to_commands(state)
            .into_iter()
            .map(IntoProto::into_proto)
            .collect(),
    };
    snap.encode_to_vec().into()
}

fn decode_state(data: Bytes) -> Result<MetaState, io::Error> {
    let snap = pb::MetaSnapshot::decode(data).map_err(io_err)?;
    check_version(snap.format_version).map_err(io_err)?;
    let cmds = snap
        .commands
        .into_iter()
        .map(MetaCommand::from_proto)
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err)?;
    rebuild(cmds).map_err(io_err)
}

/// Decodes a proposal and applies it (its followers are told); the
/// encoded `MetaResult`.
fn apply_proposal(core: &mut MetaCore, data: Bytes) -> Result<Response, io::Error> {
    let p = pb::Proposal::decode(data).map_err(io_err)?;
    let Some(pb::proposal::Command::Meta(cmd)) = p.command else {
        return Err(io_err("metadata group: entry is not a metadata command"));
    };
    let cmd = MetaCommand::from_proto(cmd).map_err(io_err)?;
    let told = core.followed().then(|| cmd.clone());
    let result: pb::MetaResult = core.state.apply(cmd).into_proto();
    if let Some(cmd) = told {
        core.notify(NodeChange::Meta(cmd));
    }
    Ok(Response(result.encode_to_vec().into()))
}

impl<S: LogStore> RaftStateMachine<C> for MetaMachine<S> {
    type SnapshotData = Bytes;
    type SnapshotBuilder = PreparedSnapshot<S>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let core = self.core.lock();
        Ok((core.applied, core.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let response = {
                let mut core = self.core.lock();
                core.applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Response(Bytes::new()),
                    EntryPayload::Membership(m) => {
                        core.membership = StoredMembershipOf::<C>::new(Some(entry.log_id), m);
                        Response(Bytes::new())
                    }
                    EntryPayload::Normal(req) => apply_proposal(&mut core, req.0)?,
                }
            };
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let core = self.core.lock();
        PreparedSnapshot {
            store: self.store.clone(),
            group: self.group,
            meta: meta_for(core.applied, core.membership.clone()),
            data: encode_state(&core.state),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Bytes,
    ) -> Result<(), io::Error> {
        let state = decode_state(snapshot.clone())?;
        save(&self.store, self.group, meta, snapshot).await?;
        let mut core = self.core.lock();
        if core.followed() {
            core.notify(NodeChange::MetaReplaced(Box::new(state.clone())));
        }
        core.state = state;
        core.applied = meta.last_log_id;
        core.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Bytes>>, io::Error> {
        Ok(load(&self.store, self.group)?
            .map(|(meta, snapshot)| SnapshotOf::<C, Bytes> { meta, snapshot }))
    }
}
