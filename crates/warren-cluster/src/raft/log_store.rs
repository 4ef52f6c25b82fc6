//! openraft's `RaftLogStorage` + `RaftLogReader` for one group, over any
//! `warren_storage::LogStore`. Entries are prost-encoded `LogEntry` values
//! keyed by index; vote, committed and last-purged log ids are the group's
//! small records.
//!
//! Appends are pipelined: `append` hands the entries to the store's writer
//! and returns at once, keeping them in a per-group overlay so they are
//! readable (openraft reads them back as soon as `append` returns); a task
//! completes openraft's `IOFlushed` once the store's group-commit fsync
//! covered them, and then drops them from the overlay. So while one fsync
//! runs, the next appends of the same group queue behind it and the writer
//! carries them all in its next batch, instead of one Raft append per fsync.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::ops::{Bound, Range, RangeBounds};
use std::sync::Arc;
use std::task::Poll;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use parking_lot::Mutex;
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
    /// Entries handed to the store whose write has not completed yet.
    unflushed: Arc<Mutex<Unflushed>>,
}

/// The overlay of appended but not yet written entries: index → (the
/// append that wrote it, encoded entry). The append number lets a finished
/// write drop only its own entries, not ones that replaced them after a
/// truncation.
#[derive(Default)]
struct Unflushed {
    next_append: u64,
    entries: BTreeMap<u64, (u64, Entry)>,
}

impl<S: LogStore> LogAdapter<S> {
    pub(crate) fn new(store: S, group: GroupId, queue: Option<Arc<QueueShared>>) -> Self {
        LogAdapter {
            store,
            group,
            queue,
            unflushed: Arc::default(),
        }
    }

    /// The write of append number `append` completed: its entries are in
    /// the store (or failed, and the group stops), out of the overlay.
    fn flushed(&self, append: u64, indexes: &[u64]) {
        let mut u = self.unflushed.lock();
        for i in indexes {
            if u.entries.get(i).is_some_and(|(n, _)| *n == append) {
                u.entries.remove(i);
            }
        }
    }

    fn read_log_id(&self, key: MetaKey) -> Result<Option<LogIdOf<C>>, io::Error> {
        let raw = self.store.read_meta(self.group, key).map_err(io_err)?;
        raw.map(decode_log_id).transpose().map_err(io_err)
    }
}

/// Polls a store write once, here, so that it takes its place in the
/// group's write order (the store orders a group's writes by their first
/// poll, and openraft calls in log order), and returns it to be awaited
/// elsewhere: the caller goes on while the fsync runs.
async fn queued<T: Send + 'static>(
    write: impl Future<Output = T> + Send + 'static,
) -> BoxFuture<'static, T> {
    let mut write = write.boxed();
    match futures::poll!(write.as_mut()) {
        Poll::Ready(done) => futures::future::ready(done).boxed(),
        Poll::Pending => write,
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
        let range = half_open(&range);
        // The overlay first: an entry leaves it only after its write
        // completed, so whatever is missing from this copy is in the store.
        let pending: Vec<Entry> = {
            let u = self.unflushed.lock();
            u.entries
                .range(range.clone())
                .map(|(_, (_, e))| e.clone())
                .collect()
        };
        let mut stored = self.store.entries(self.group, range).map_err(io_err)?;
        if !pending.is_empty() {
            let mut merged: BTreeMap<u64, Entry> =
                stored.into_iter().map(|e| (e.index, e)).collect();
            merged.extend(pending.into_iter().map(|e| (e.index, e)));
            stored = merged.into_values().collect();
        }
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
        // committed entries at once, before any election. It is a hint,
        // not a promise (a stale one only delays that until the group has
        // a leader again), so it is handed to the writer and not waited
        // for: it rides with the next group-commit fsync instead of taking
        // one of its own between two appends.
        let Some(c) = committed else { return Ok(()) };
        let (store, group) = (self.store.clone(), self.group);
        let write = queued(async move {
            store
                .save_meta(group, MetaKey::Committed, encode_log_id(&c))
                .await
        })
        .await;
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::warn!(group, error = %e, "saving the commit point");
            }
        });
        Ok(())
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
        if batch.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        let indexes: Vec<u64> = batch.iter().map(|e| e.index).collect();
        let append = {
            let mut u = self.unflushed.lock();
            u.next_append += 1;
            let n = u.next_append;
            for e in &batch {
                u.entries.insert(e.index, (n, e.clone()));
            }
            n
        };
        let (store, group) = (self.store.clone(), self.group);
        let write = queued(async move { store.append(group, batch).await }).await;
        let this = self.clone();
        tokio::spawn(async move {
            let res = write.await;
            match &res {
                Ok(()) => this.flushed(append, &indexes),
                // The entries stay readable from memory: openraft reads back
                // what append was given (a committed entry is applied from
                // here even if this node's own write failed), and a short
                // read is a broken contract it asserts on. The node stops
                // on a failed write anyway (`warren serve`).
                Err(e) => tracing::error!(group = this.group, error = %e, "raft log append failed"),
            }
            callback.io_completed(res.map_err(io_err));
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        {
            let mut u = self.unflushed.lock();
            match &last_log_id {
                Some(id) => drop(u.entries.split_off(&id.index.saturating_add(1))),
                None => u.entries.clear(),
            }
        }
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
            q.keep_live_bodies(&self.store, self.group, prev, log_id.index, false)
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
