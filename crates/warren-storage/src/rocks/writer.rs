//! The group-commit writer: one thread owns every write to the DB. It takes
//! all requests pending on its channel, turns them into ONE `WriteBatch`,
//! writes it with `sync = true` (one WAL fsync), and only then answers each
//! request, with the same result for all: a failed write or fsync fails every
//! request it carried, never acknowledges any.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use super::keys::{self, CF_BODY, CF_LOG, CF_META, CF_SNAPSHOT, GROUP_CFS};
use super::reclaim::Reclaimer;
use crate::types::{Entry, GroupId, StorageError, StoreStats};

/// One write, as the caller asked for it.
pub(super) enum Op {
    Append(GroupId, Vec<Entry>),
    TruncateAfter(GroupId, u64),
    PurgeUpto(GroupId, u64),
    Meta(GroupId, u8, Bytes),
    Snapshot(GroupId, Bytes, Bytes),
    PutBodies(GroupId, Vec<(u64, Bytes)>),
    DeleteBodies(GroupId, Vec<u64>),
    DeleteGroup(GroupId),
}

impl Op {
    fn payload_bytes(&self) -> u64 {
        let n = match self {
            Op::Append(_, es) => es.iter().map(|e| e.payload.len()).sum(),
            Op::Meta(_, _, v) => v.len(),
            Op::Snapshot(_, m, d) => m.len() + d.len(),
            Op::PutBodies(_, bs) => bs.iter().map(|(_, b)| b.len()).sum(),
            _ => 0,
        };
        n as u64
    }
}

pub(super) struct Request {
    pub op: Op,
    pub done: oneshot::Sender<Result<(), StorageError>>,
}

/// Counters shared between the writer and `RocksStore::stats`.
#[derive(Default)]
pub(super) struct Counters {
    fsyncs: AtomicU64,
    batches: AtomicU64,
    requests: AtomicU64,
    entries: AtomicU64,
    bytes: AtomicU64,
    max_batch: AtomicU64,
    failed: AtomicU64,
    /// When the batch being written began, in ms since `epoch`, plus one
    /// (0: no batch under way).
    writing_since: AtomicU64,
    epoch: std::sync::OnceLock<std::time::Instant>,
    /// Test hook: when set, every batch fails as a failed fsync would.
    pub fail_writes: AtomicBool,
}

impl Counters {
    pub fn snapshot(&self) -> StoreStats {
        StoreStats {
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            entries_written: self.entries.load(Ordering::Relaxed),
            bytes_written: self.bytes.load(Ordering::Relaxed),
            max_batch_requests: self.max_batch.load(Ordering::Relaxed),
            failed_batches: self.failed.load(Ordering::Relaxed),
            write_stalled_ms: match self.writing_since.load(Ordering::Relaxed) {
                0 => 0,
                since => self.now_ms().saturating_sub(since - 1),
            },
        }
    }

    fn now_ms(&self) -> u64 {
        let epoch = self.epoch.get_or_init(std::time::Instant::now);
        epoch.elapsed().as_millis() as u64
    }
}

pub(super) struct Writer {
    pub db: Arc<DB>,
    pub rx: mpsc::Receiver<Request>,
    pub counters: Arc<Counters>,
    pub reclaimer: Arc<Reclaimer>,
    pub sync: bool,
    pub max_batch_requests: usize,
    pub max_batch_bytes: u64,
}

impl Writer {
    /// Runs until every sender is gone and the channel is drained.
    pub fn run(mut self) {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        while let Some(first) = self.rx.blocking_recv() {
            let batch = self.gather(first);
            self.commit(batch, &opts);
        }
        tracing::debug!("storage writer stopped");
    }

    /// Everything already waiting joins this batch, up to the limits; under
    /// load the queue refills while the previous fsync runs, so batches grow
    /// with the load.
    fn gather(&mut self, first: Request) -> Vec<Request> {
        let mut bytes = first.op.payload_bytes();
        let mut reqs = vec![first];
        while reqs.len() < self.max_batch_requests && bytes < self.max_batch_bytes {
            match self.rx.try_recv() {
                Ok(r) => {
                    bytes += r.op.payload_bytes();
                    reqs.push(r);
                }
                Err(_) => break,
            }
        }
        reqs
    }

    fn commit(&self, reqs: Vec<Request>, opts: &WriteOptions) {
        let c = &self.counters;
        c.writing_since.store(c.now_ms() + 1, Ordering::Relaxed);
        let result = self.write(&reqs, opts);
        c.writing_since.store(0, Ordering::Relaxed);
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.max_batch.fetch_max(reqs.len() as u64, Ordering::Relaxed);
        match &result {
            Ok(()) => {
                if self.sync {
                    c.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                c.requests.fetch_add(reqs.len() as u64, Ordering::Relaxed);
                for r in &reqs {
                    c.bytes.fetch_add(r.op.payload_bytes(), Ordering::Relaxed);
                    if let Op::Append(_, es) = &r.op {
                        c.entries.fetch_add(es.len() as u64, Ordering::Relaxed);
                    }
                }
                // Before answering, so a caller that awaited a purge and then
                // asks for reclamation finds its range queued.
                for r in &reqs {
                    self.queue_reclaim(&r.op);
                }
            }
            Err(e) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, requests = reqs.len(), "storage write failed; failing every request in the batch");
            }
        }
        for r in reqs {
            // A dropped receiver means the caller stopped waiting; nothing to tell.
            let _ = r.done.send(result.clone());
        }
    }

    fn write(&self, reqs: &[Request], opts: &WriteOptions) -> Result<(), StorageError> {
        if self.counters.fail_writes.load(Ordering::Relaxed) {
            return Err(StorageError::Io("injected write failure".into()));
        }
        let mut batch = WriteBatch::default();
        for r in reqs {
            self.add(&mut batch, &r.op)?;
        }
        self.db.write_opt(batch, opts)?;
        Ok(())
    }

    fn add(&self, b: &mut WriteBatch, op: &Op) -> Result<(), StorageError> {
        let cf = |name| super::cf(&self.db, name);
        match op {
            Op::Append(g, es) => {
                let log = cf(CF_LOG)?;
                for e in es {
                    b.put_cf(&log, keys::indexed(*g, e.index), &e.payload);
                }
            }
            Op::TruncateAfter(g, i) => {
                b.delete_range_cf(
                    &cf(CF_LOG)?,
                    &keys::indexed_after(*g, *i)[..],
                    &keys::group_end(*g)[..],
                );
            }
            Op::PurgeUpto(g, i) => {
                b.delete_range_cf(
                    &cf(CF_LOG)?,
                    &keys::group_start(*g)[..],
                    &keys::indexed_after(*g, *i)[..],
                );
            }
            Op::Meta(g, k, v) => b.put_cf(&cf(CF_META)?, keys::tagged(*g, *k), v),
            Op::Snapshot(g, m, d) => {
                let snap = cf(CF_SNAPSHOT)?;
                b.put_cf(&snap, keys::tagged(*g, keys::SNAPSHOT_META), m);
                b.put_cf(&snap, keys::tagged(*g, keys::SNAPSHOT_DATA), d);
            }
            Op::PutBodies(g, bs) => {
                let body = cf(CF_BODY)?;
                for (i, v) in bs {
                    b.put_cf(&body, keys::indexed(*g, *i), v);
                }
            }
            Op::DeleteBodies(g, is) => {
                let body = cf(CF_BODY)?;
                for i in is {
                    b.delete_cf(&body, keys::indexed(*g, *i));
                }
            }
            Op::DeleteGroup(g) => {
                for name in GROUP_CFS {
                    b.delete_range_cf(
                        &cf(name)?,
                        &keys::group_start(*g)[..],
                        &keys::group_end(*g)[..],
                    );
                }
            }
        }
        Ok(())
    }

    fn queue_reclaim(&self, op: &Op) {
        match op {
            Op::PurgeUpto(g, i) => {
                let (from, to) = (keys::group_start(*g), keys::indexed_after(*g, *i));
                self.reclaimer.add(CF_LOG, *g, from.to_vec(), to.to_vec());
            }
            Op::DeleteGroup(g) => {
                for name in GROUP_CFS {
                    let (from, to) = (keys::group_start(*g), keys::group_end(*g));
                    self.reclaimer.add(name, *g, from.to_vec(), to.to_vec());
                }
            }
            // Settled bodies leave point tombstones scattered over the body
            // range; compacting that range drops them with their values.
            Op::DeleteBodies(g, is) => {
                if let (Some(lo), Some(hi)) = (is.iter().min(), is.iter().max()) {
                    let (from, to) = (keys::indexed(*g, *lo), keys::indexed_after(*g, *hi));
                    self.reclaimer.add(CF_BODY, *g, from.to_vec(), to.to_vec());
                }
            }
            _ => {}
        }
    }
}
