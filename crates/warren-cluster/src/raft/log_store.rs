//! openraft's `RaftLogStorage` + `RaftLogReader` for one group, over any
//! `warren_storage::LogStore`. Entries are prost-encoded `LogEntry` values
//! keyed by index; vote, committed and last-purged log ids are the group's
//! small records. Appends complete openraft's `IOFlushed` only after the
//! store's append future resolved, i.e. after the group-commit fsync.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, Range, RangeBounds};
use std::sync::Arc;

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use warren_storage::{Entry, GroupId, LogStore, MetaKey};

use super::codec::{decode_entry, decode_log_id, decode_vote, encode_entry, encode_log_id};
use super::queue_sm::QueueShared;
use super::{TypeConfig, io_err};

type C = TypeConfig;

/// One group's view of the node's store. Cheap to clone (the reader is a clone).
#[derive(Clone)]
pub(crate) struct LogAdapter<S: LogStore> {
    store: S,
    group: GroupId,
    /// For a queue group: its state, so that purging first moves the bodies
    /// of still-unsettled messages out of the log (see `QueueShared`).
    queue: Option<Arc<QueueShared>>,
}

impl<S: LogStore> LogAdapter<S> {
    pub(crate) fn new(store: S, group: GroupId, queue: Option<Arc<QueueShared>>) -> Self {
        LogAdapter {
            store,
            group,
            queue,
        }
    }

    fn read_log_id(&self, key: MetaKey) -> Result<Option<LogIdOf<C>>, io::Error> {
        let raw = self.store.read_meta(self.group, key).map_err(io_err)?;
        raw.map(decode_log_id).transpose().map_err(io_err)
    }
}

/// A `RangeBounds<u64>` as the half-open range the store takes.
fn half_open(range: &impl RangeBounds<u64>) -> Range<u64> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    start..end
}

impl<S: LogStore> RaftLogReader<C> for LogAdapter<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<C>>, io::Error> {
        let stored = self
            .store
            .entries(self.group, half_open(&range))
            .map_err(io_err)?;
        stored
            .into_iter()
            .map(|e| decode_entry(e.payload).map_err(io_err))
            .collect()
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        let raw = self
            .store
            .read_meta(self.group, MetaKey::Vote)
            .map_err(io_err)?;
        raw.map(decode_vote).transpose().map_err(io_err)
    }
}

impl<S: LogStore> RaftLogStorage<C> for LogAdapter<S> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last_purged_log_id = self.read_log_id(MetaKey::LastPurged)?;
        let state = self.store.log_state(self.group).map_err(io_err)?;
        let last = match state.last_index {
            Some(i) => {
                let mut e = self.store.entries(self.group, i..i + 1).map_err(io_err)?;
                match e.pop() {
                    Some(e) => Some(decode_entry(e.payload).map_err(io_err)?.log_id),
                    None => None,
                }
            }
            None => None,
        };
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        let b = super::codec::encode_vote(vote);
        self.store
            .save_meta(self.group, MetaKey::Vote, b)
            .await
            .map_err(io_err)
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        // Persisting the commit point lets a restarted node re-apply its
        // committed entries at once, before any election.
        let Some(c) = committed else { return Ok(()) };
        self.store
            .save_meta(self.group, MetaKey::Committed, encode_log_id(&c))
            .await
            .map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        self.read_log_id(MetaKey::Committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let batch: Vec<Entry> = entries
            .into_iter()
            .map(|e| Entry::new(e.log_id.index, encode_entry(&e)))
            .collect();
        // Awaited here rather than in a spawned task: openraft reads the
        // entries back as soon as this returns. Groups do not wait for each
        // other: the store merges concurrent appends into one fsync.
        let res = self.store.append(self.group, batch).await.map_err(io_err);
        let ret = res.as_ref().map(|_| ()).map_err(io_err);
        callback.io_completed(res);
        ret
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        match last_log_id {
            Some(id) => self.store.truncate_after(self.group, id.index).await,
            // "Everything": the store's truncate keeps index 0, so drop the
            // whole remaining log as a purge of its last index instead.
            None => match self.store.log_state(self.group).map_err(io_err)?.last_index {
                Some(last) => self.store.purge_upto(self.group, last).await,
                None => Ok(()),
            },
        }
        .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        // Bodies of unsettled messages first: if we crash after this, the
        // next purge moves them again (puts are idempotent).
        if let Some(q) = &self.queue {
            let prev = self.read_log_id(MetaKey::LastPurged)?.map(|l| l.index);
            q.keep_live_bodies(&self.store, self.group, prev, log_id.index)
                .await?;
        }
        // Then the purge point: once durable, openraft ignores the entries at
        // or below it, so a crash before the range delete is harmless.
        self.store
            .save_meta(self.group, MetaKey::LastPurged, encode_log_id(&log_id))
            .await
            .map_err(io_err)?;
        self.store
            .purge_upto(self.group, log_id.index)
            .await
            .map_err(io_err)
    }
}
