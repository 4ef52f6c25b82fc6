//! A queue group's state machine: the unchanged `warren_core::queue` machine
//! over log indexes. An `Enqueue` entry is its message's home; the state
//! keeps only the index (plus size, expiry, delivery count). The reply and
//! the effects of a command go back to its proposer only, so only the
//! leader executes effects and a replay after restart executes none.
//!
//! Snapshot: the image of the applied state (`QueueState::image`, format
//! version 2 of `QueueSnapshot`), so its size follows what the queue holds
//! (a few bytes per message: payloads are log indexes, the bodies stay in
//! the log or move to the store's bodies, see `keep_live_bodies`), never
//! its history, and opening a group decodes it rather than replaying.
//! Version 1 snapshots (the history: Create plus every command applied
//! since) are still read, so a store written before keeps opening.

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use parking_lot::Mutex;
use prost::Message as _;
use warren_core::message::Message;
use warren_core::queue::{self, Meta, QueueImage, QueueState};
use warren_rpc::log as pb;
use warren_rpc::log::queue_command::{Command as PbCmd, enqueue::Payload};
use warren_storage::{GroupId, LogStore, MetaKey};

use super::bodies::read_message;
use super::grpc::SnapshotPrep;
use super::snapshot::{PreparedSnapshot, load, meta_for, save};
use super::{Response, TypeConfig, io_err};
use crate::convert::{DecodeError, FromProto, IntoProto, QueueOp, state_image_to_pb};

/// Bodies copied per write when a purge moves still-queued messages out
/// of the log (bounds the memory a deep queue's purge takes).
const MOVE_CHUNK: usize = 4096;

type C = TypeConfig;

/// The `QueueSnapshot` format this machine writes: the state's image.
pub(crate) const IMAGE_VERSION: u32 = 2;
/// The `QueueSnapshot` format of old: the history, replayed when read.
pub(crate) const HISTORY_VERSION: u32 = 1;

/// The applied state of one queue group, shared by its state machine, its
/// log adapter (for purges) and the node (for reads).
#[derive(Default)]
pub(crate) struct QueueCore {
    /// `None` until the group's `Create` entry is applied.
    pub(crate) state: Option<QueueState<u64>>,
    applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    /// Indexes whose bodies were copied to the store's bodies (the record
    /// `MOVED_KEY` holds it durably); `None` until the first purge reads it.
    moved: Option<BTreeSet<u64>>,
}

impl QueueCore {
    /// The index of the last entry applied (`None` before any).
    pub(crate) fn applied_index(&self) -> Option<u64> {
        self.applied.as_ref().map(|l| l.index)
    }
}

/// `QueueCore` behind a lock that is never held across an await.
#[derive(Default)]
pub(crate) struct QueueShared {
    pub(crate) core: Mutex<QueueCore>,
    /// In a cluster: where the effects addressed to this node's owners go
    /// as each replica applies an entry (see [`LocalEffects`]).
    pub(crate) local: Mutex<Option<LocalEffects>>,
    /// Held while bodies move out of the log (see [`Self::keep_live_bodies`]),
    /// which two tasks may do at once; holds the index up to which every
    /// unsettled message's body is known to be in the store's bodies
    /// (`None` after a start: then the last purge point says it).
    moved_upto: tokio::sync::Mutex<Option<u64>>,
}

/// A replica of a group with members on several nodes executes the effects
/// addressed to owners living on its own node (`OwnerId::node`), whoever
/// proposed the command: every replica applies every committed entry, so
/// each such effect is executed exactly once, by the node holding the
/// owner's connection, and none is lost with a proposer's answer. Effects
/// addressed to no owner (dead-lettering) stay with the proposer's answer.
pub(crate) struct LocalEffects {
    pub(crate) node_id: u64,
    pub(crate) tx: tokio::sync::mpsc::UnboundedSender<Vec<queue::Effect<u64>>>,
    /// Bodies of entries delivered here as they were applied, until read.
    pub(crate) bodies: Arc<Mutex<std::collections::BTreeMap<u64, Message>>>,
}

/// Most bodies [`LocalEffects::bodies`] keeps (oldest dropped first: they
/// are in the store by then).
const LOCAL_BODIES: usize = 4096;

/// The owner an effect is addressed to, if any.
pub(crate) fn effect_owner(e: &queue::Effect<u64>) -> Option<queue::OwnerId> {
    match e {
        queue::Effect::Deliver { consumer, .. } | queue::Effect::ConsumerActivated { consumer } => {
            Some(consumer.owner)
        }
        queue::Effect::DeadLetter { .. } => None,
    }
}

impl QueueShared {
    /// Before the log is purged up to `upto` (it was purged up to `prev`):
    /// copies the bodies of unsettled messages in (prev, upto] to the
    /// store's bodies, and deletes stored bodies whose messages are gone.
    /// The set of copied indexes is itself a record of the group, so a
    /// restart forgets none.
    ///
    /// A queue group does this itself before it asks for a purge
    /// (`QueueGroup`'s compaction, with `tidy`), so the purge, which
    /// openraft runs inside the group's Raft core, finds nothing left to
    /// copy: a deep queue's copy takes seconds, and a core busy that long
    /// handles no acknowledgements, lets its leader lease lapse and refuses
    /// every write meanwhile (nacks). Without `tidy` (the purge itself)
    /// settled bodies are left for the next compaction unless there is
    /// copying to do anyway, so the core writes nothing in the usual case.
    pub(crate) async fn keep_live_bodies<S: LogStore>(
        &self,
        store: &S,
        group: GroupId,
        prev: Option<u64>,
        upto: u64,
        tidy: bool,
    ) -> Result<(), io::Error> {
        let mut moved_upto = self.moved_upto.lock().await;
        let prev = prev.max(*moved_upto);
        if !tidy && prev.is_some_and(|p| p >= upto) {
            // The purge after a compaction: nothing can be left to copy,
            // and the settled bodies are the next compaction's. Return
            // before the work below, which is O(backlog) and would run in
            // the Raft core.
            return Ok(());
        }
        let above_prev = |i: u64| prev.is_none_or(|p| i > p);
        let moved = match self.core.lock().moved.clone() {
            Some(m) => m,
            None => read_moved(store, group)?,
        };
        let (to_move, dead) = {
            let core = self.core.lock();
            // Every live message that may have a moved body: a purge may
            // have moved bodies above `upto` (the compaction asks for less
            // than openraft's purge after an installed snapshot took), and
            // those are not dead for being beyond it.
            let bound = moved.last().map_or(upto, |m| upto.max(*m));
            let live: BTreeSet<u64> = match &core.state {
                Some(s) => s.payloads().copied().filter(|i| *i <= bound).collect(),
                None => BTreeSet::new(),
            };
            let dead: Vec<u64> = moved.difference(&live).copied().collect();
            let to_move: Vec<u64> = live
                .range(..=upto)
                .copied()
                .filter(|i| above_prev(*i))
                .collect();
            (to_move, dead)
        };
        if to_move.is_empty() && (dead.is_empty() || !tidy) {
            *moved_upto = (*moved_upto).max(Some(upto));
            return Ok(());
        }
        // The record may list more than the store holds, never less: first
        // everything that may get copied, then, after the deletes, the truth.
        let mut now: BTreeSet<u64> = moved;
        now.extend(to_move.iter().copied());
        save_moved(store, group, &now).await?;
        // In chunks: a deep queue's purge moves a quarter of its backlog,
        // which must not sit in memory (and in one write batch) at once.
        for chunk in to_move.chunks(MOVE_CHUNK) {
            let mut bodies = Vec::with_capacity(chunk.len());
            for i in chunk {
                if let Some(m) = read_message(store, group, *i)? {
                    bodies.push((*i, Bytes::from(m.encode_to_vec())));
                }
            }
            store.put_bodies(group, bodies).await.map_err(io_err)?;
        }
        store
            .delete_bodies(group, dead.clone())
            .await
            .map_err(io_err)?;
        dead.iter().for_each(|i| {
            now.remove(i);
        });
        save_moved(store, group, &now).await?;
        self.core.lock().moved = Some(now);
        *moved_upto = (*moved_upto).max(Some(upto));
        Ok(())
    }
}

/// Where a queue group records which bodies live outside its log.
const MOVED_KEY: MetaKey = MetaKey::Custom(0);

async fn save_moved<S: LogStore>(
    store: &S,
    group: GroupId,
    moved: &BTreeSet<u64>,
) -> Result<(), io::Error> {
    let record = pb::BodyIndexes {
        indexes: moved.iter().copied().collect(),
    };
    store
        .save_meta(group, MOVED_KEY, record.encode_to_vec().into())
        .await
        .map_err(io_err)
}

fn read_moved<S: LogStore>(store: &S, group: GroupId) -> Result<BTreeSet<u64>, io::Error> {
    match store.read_meta(group, MOVED_KEY).map_err(io_err)? {
        Some(b) => Ok(pb::BodyIndexes::decode(b)
            .map_err(io_err)?
            .indexes
            .into_iter()
            .collect()),
        None => Ok(BTreeSet::new()),
    }
}

/// The queue state machine for openraft.
pub(crate) struct QueueMachine<S: LogStore> {
    store: S,
    group: GroupId,
    pub(crate) shared: Arc<QueueShared>,
}

impl<S: LogStore> QueueMachine<S> {
    /// Starts from the group's stored snapshot, if any.
    pub(crate) fn open(store: S, group: GroupId) -> Result<Self, io::Error> {
        let mut core = QueueCore::default();
        if let Some((meta, data)) = load(&store, group)? {
            core = restore(data)?;
            core.applied = meta.last_log_id;
            core.membership = meta.last_membership;
        }
        Ok(QueueMachine {
            store,
            group,
            shared: Arc::new(QueueShared {
                core: Mutex::new(core),
                ..QueueShared::default()
            }),
        })
    }
}

/// The state a snapshot's data holds (`applied` and `membership` come from
/// the snapshot's meta).
pub(crate) fn restore(data: Bytes) -> Result<QueueCore, io::Error> {
    // Empty data is the snapshot of a group that never applied anything.
    if data.is_empty() {
        return Ok(QueueCore::default());
    }
    let snap = pb::QueueSnapshot::decode(data).map_err(io_err)?;
    let state = match snap.format_version {
        IMAGE_VERSION => match snap.image {
            Some(i) => {
                let image = QueueImage::<u64>::from_proto(i).map_err(io_err)?;
                Some(QueueState::from_image(image))
            }
            None => None,
        },
        HISTORY_VERSION => replay_history(snap)?,
        v => return Err(io_err(DecodeError::Version(v))),
    };
    Ok(QueueCore {
        state,
        ..QueueCore::default()
    })
}

/// Rebuilds the state of a version 1 snapshot by replaying its commands.
fn replay_history(snap: pb::QueueSnapshot) -> Result<Option<QueueState<u64>>, io::Error> {
    let Some(c) = snap.create else {
        return Ok(None);
    };
    let mut state = create(c)?;
    for a in snap.commands {
        let meta = Meta {
            index: a.index,
            now_ms: a.now_ms,
        };
        let cmd = a
            .command
            .ok_or_else(|| io_err("snapshot: command missing"))?;
        let QueueOp::Command(cmd) = QueueOp::<u64>::from_proto(cmd).map_err(io_err)? else {
            return Err(io_err("snapshot: create among the commands"));
        };
        queue::apply(&meta, cmd, &mut state);
    }
    Ok(Some(state))
}

fn create(c: pb::queue_command::Create) -> Result<QueueState<u64>, io::Error> {
    let (vhost, name, config): (String, String, _) = FromProto::from_proto(c).map_err(io_err)?;
    Ok(QueueState::new(config).with_name(&vhost, &name))
}

/// Applies one normal entry at `index`; the encoded `QueueResult` if `want`
/// (a proposer waits). Effects addressed to `local`'s node are sent there.
pub(crate) fn apply_proposal(
    core: &mut QueueCore,
    index: u64,
    data: Bytes,
    want: bool,
    local: Option<&LocalEffects>,
) -> Result<Response, io::Error> {
    let p = pb::Proposal::decode(data).map_err(io_err)?;
    let Some(pb::proposal::Command::Queue(mut cmd)) = p.command else {
        return Err(io_err("queue group: entry is not a queue command"));
    };
    let mut result = pb::QueueResult {
        reply: Some(queue::Reply::<u64>::Ok.into_proto()),
        effects: Vec::new(),
    };
    match cmd.command.take() {
        Some(PbCmd::Create(c)) => {
            if core.state.is_none() {
                core.state = Some(create(c)?);
            }
        }
        Some(mut c) => {
            // The machine keeps the index of this entry, not the message.
            let mut body = None;
            if let PbCmd::Enqueue(e) = &mut c {
                body = e.payload.replace(Payload::LogIndex(index));
            }
            cmd.command = Some(c);
            let QueueOp::Command(op) = QueueOp::<u64>::from_proto(cmd).map_err(io_err)? else {
                return Err(io_err("queue group: unexpected create"));
            };
            let state = core
                .state
                .as_mut()
                .ok_or_else(|| io_err("queue command before create"))?;
            let meta = Meta {
                index,
                now_ms: p.now_ms,
            };
            let (reply, fx) = queue::apply(&meta, op, state);
            if let Some(local) = local {
                let mine: Vec<_> = fx
                    .iter()
                    .filter(|e| effect_owner(e).is_some_and(|o| o.node() == local.node_id))
                    .cloned()
                    .collect();
                let delivers_this = mine
                    .iter()
                    .any(|e| matches!(e, queue::Effect::Deliver { msg, .. } if *msg == index));
                if delivers_this && let Some(Payload::Message(m)) = body {
                    // This entry's own write may not be readable from the
                    // store yet (appends are flushed in the background):
                    // its delivery here reads the body from memory.
                    if let Ok(m) = Message::from_proto(m) {
                        let mut bodies = local.bodies.lock();
                        bodies.insert(index, m);
                        while bodies.len() > LOCAL_BODIES {
                            bodies.pop_first();
                        }
                    }
                }
                if !mine.is_empty() {
                    // No receiver (no queue actor yet, or a replay): the
                    // owners they name are gone or not yet known.
                    let _ = local.tx.send(mine);
                }
            }
            if want {
                result.reply = Some(reply.into_proto());
                result.effects = fx.into_iter().map(IntoProto::into_proto).collect();
            }
        }
        None => return Err(io_err("queue group: empty command")),
    }
    Ok(Response(result.encode_to_vec().into()))
}

/// A snapshot's data holding `image` (`None`: the group's Create is not
/// applied yet).
#[cfg(test)]
pub(crate) fn snapshot_data(image: Option<QueueImage<u64>>) -> Bytes {
    encode_snapshot(image.map(IntoProto::into_proto))
}

/// A snapshot's data holding the encoded `image`.
fn encode_snapshot(image: Option<pb::QueueImage>) -> Bytes {
    let snap = pb::QueueSnapshot {
        format_version: IMAGE_VERSION,
        create: None,
        commands: Vec::new(),
        image,
        bodies: Vec::new(),
    };
    snap.encode_to_vec().into()
}

/// What a queue group's stored snapshot becomes when it is sent to
/// another replica: the image plus the bodies of the messages it holds,
/// read from this node's log or bodies. The receiver's log may hold none
/// of them (it is behind, or new), and the queue state only names them by
/// index. A body already gone was settled after the snapshot was taken;
/// the receiver applies that settle next, so it is left out.
pub(crate) fn snapshot_prep<S: LogStore>(store: S, group: GroupId) -> SnapshotPrep {
    Arc::new(move |data: Bytes| {
        if data.is_empty() {
            return Ok(data);
        }
        let mut snap = pb::QueueSnapshot::decode(data.clone()).map_err(io_err)?;
        let Some(image) = snap.image.clone() else {
            return Ok(data);
        };
        let image = QueueImage::<u64>::from_proto(image).map_err(io_err)?;
        let state = QueueState::from_image(image);
        let indexes: BTreeSet<u64> = state.payloads().copied().collect();
        for index in indexes {
            if let Some(message) = read_message(&store, group, index)? {
                snap.bodies.push(pb::IndexedMessage {
                    index,
                    message: Some(message),
                });
            }
        }
        Ok(snap.encode_to_vec().into())
    })
}

/// Splits the bodies a peer sent with a snapshot from the snapshot kept
/// (stored snapshots hold no bodies).
fn split_bodies(data: Bytes) -> Result<(Bytes, Vec<(u64, Bytes)>), io::Error> {
    if data.is_empty() {
        return Ok((data, Vec::new()));
    }
    let mut snap = pb::QueueSnapshot::decode(data.clone()).map_err(io_err)?;
    if snap.bodies.is_empty() {
        return Ok((data, Vec::new()));
    }
    let bodies = std::mem::take(&mut snap.bodies)
        .into_iter()
        .filter_map(|b| b.message.map(|m| (b.index, Bytes::from(m.encode_to_vec()))))
        .collect();
    Ok((snap.encode_to_vec().into(), bodies))
}

impl<S: LogStore> RaftStateMachine<C> for QueueMachine<S> {
    type SnapshotData = Bytes;
    type SnapshotBuilder = PreparedSnapshot<S>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let core = self.shared.core.lock();
        Ok((core.applied, core.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let response = {
                let mut core = self.shared.core.lock();
                core.applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Response(Bytes::new()),
                    EntryPayload::Membership(m) => {
                        core.membership = StoredMembershipOf::<C>::new(Some(entry.log_id), m);
                        Response(Bytes::new())
                    }
                    EntryPayload::Normal(req) => {
                        let want = responder.is_some();
                        let local = self.shared.local.lock();
                        apply_proposal(&mut core, entry.log_id.index, req.0, want, local.as_ref())?
                    }
                }
            };
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The image is taken under the lock, so that it matches `applied`
        // exactly, straight into its columns (a few bytes per message, no
        // copy of the messages); serialising them happens after, without
        // blocking readers of the state.
        let (image, meta) = {
            let core = self.shared.core.lock();
            let image = core.state.as_ref().map(state_image_to_pb);
            (image, meta_for(core.applied, core.membership.clone()))
        };
        PreparedSnapshot {
            store: self.store.clone(),
            group: self.group,
            meta,
            data: encode_snapshot(image),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Bytes,
    ) -> Result<(), io::Error> {
        let (snapshot, bodies) = split_bodies(snapshot)?;
        tracing::info!(group = self.group, last = ?meta.last_log_id, bodies = bodies.len(), "installing a queue snapshot from the leader");
        let mut core = restore(snapshot.clone())?;
        // The bodies of every message the snapshot holds come with it.
        let mut moved_upto = self.shared.moved_upto.lock().await;
        if !bodies.is_empty() {
            // The bodies first, recorded as moved out of the log (like a
            // purge's), so the next purges delete them once settled.
            let mut moved = read_moved(&self.store, self.group)?;
            moved.extend(bodies.iter().map(|(i, _)| *i));
            save_moved(&self.store, self.group, &moved).await?;
            self.store
                .put_bodies(self.group, bodies)
                .await
                .map_err(io_err)?;
            core.moved = Some(moved);
        }
        save(&self.store, self.group, meta, snapshot).await?;
        *moved_upto = meta.last_log_id.as_ref().map(|l| l.index);
        drop(moved_upto);
        core.applied = meta.last_log_id;
        core.membership = meta.last_membership.clone();
        let mut old = self.shared.core.lock();
        // The entries the snapshot stands for were never applied here:
        // their deliveries to this node's consumers are handed over now.
        if let (Some(local), Some(new)) = (self.shared.local.lock().as_ref(), &core.state) {
            let had: BTreeSet<queue::MsgId> = old
                .state
                .as_ref()
                .map(|s| {
                    s.held_deliveries()
                        .iter()
                        .filter_map(|e| match e {
                            queue::Effect::Deliver { msg_id, .. } => Some(*msg_id),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let missed: Vec<_> = new
                .held_deliveries()
                .into_iter()
                .filter(|e| match e {
                    queue::Effect::Deliver {
                        consumer, msg_id, ..
                    } => consumer.owner.node() == local.node_id && !had.contains(msg_id),
                    _ => false,
                })
                .collect();
            if !missed.is_empty() {
                let _ = local.tx.send(missed);
            }
        }
        *old = core;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Bytes>>, io::Error> {
        Ok(load(&self.store, self.group)?
            .map(|(meta, snapshot)| SnapshotOf::<C, Bytes> { meta, snapshot }))
    }
}

#[cfg(test)]
#[path = "tests_snapshot.rs"]
mod tests_snapshot;
