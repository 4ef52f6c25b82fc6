//! `RocksStore`: the durable `LogStore`, one RocksDB per node shared by all
//! groups. Layout in `keys`, the group-commit write path in `writer`, space
//! reclamation in `reclaim`.
//!
//! Threads and ownership: callers' tasks only read the DB and send write
//! requests; the writer thread alone writes; the reclaim thread alone runs
//! manual compactions. Dropping the last `RocksStore` clone stops both threads
//! (after the writer has answered every queued request) and closes the DB.

mod keys;
mod reclaim;
mod writer;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options,
    ReadOptions, SliceTransform,
};
use tokio::sync::{mpsc, oneshot};

use crate::store::LogStore;
use crate::types::{Entry, GroupId, LogState, MetaKey, StorageError, StoreStats};
use keys::{CF_BODY, CF_LOG, CF_META, CF_SNAPSHOT, GROUP_CFS};
use reclaim::Reclaimer;
use writer::{Counters, Op, Request, Writer};

/// Tuning of a `RocksStore`. `Default` is what a broker node uses.
#[derive(Clone, Debug)]
pub struct RocksOptions {
    /// fsync every batch. Only benchmarks measuring the no-fsync ceiling turn this off.
    pub sync: bool,
    /// Write requests that may wait for the writer before callers are held back.
    pub queue_depth: usize,
    /// Most requests one batch (one fsync) carries.
    pub max_batch_requests: usize,
    /// Most payload bytes one batch carries (it may exceed this by one request).
    pub max_batch_bytes: u64,
    /// Longest a purged range waits before its disk space is reclaimed.
    pub reclaim_interval: Duration,
    /// Memtable size per column family.
    pub write_buffer_size: usize,
    /// Memtable memory of all column families together: past it RocksDB
    /// flushes the largest, so a deep publish holds bodies on disk, not in RAM.
    pub memtable_budget: usize,
    /// Block cache shared by all column families (reads of bodies and
    /// snapshots that are no longer in a memtable).
    pub block_cache: usize,
    /// WAL size that forces memtable flushes, bounding WAL disk use.
    pub max_total_wal_size: u64,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self {
            sync: true,
            queue_depth: 8192,
            max_batch_requests: 4096,
            max_batch_bytes: 32 << 20,
            reclaim_interval: Duration::from_secs(2),
            // Halved and quartered from 32 / 96 / 32 MiB (measured, release,
            // one node: a backlog of 1M persistent 1 KiB messages ends at
            // 260-276 MB of RSS instead of 300-333, row C 33-37k msg/s
            // against 33k, publishing the backlog 40-47k msg/s against
            // 40-46k; BENCHMARKS.md, "Smaller RocksDB budgets").
            write_buffer_size: 16 << 20,
            memtable_budget: 48 << 20,
            block_cache: 8 << 20,
            max_total_wal_size: 256 << 20,
        }
    }
}

struct Inner {
    db: Arc<DB>,
    path: PathBuf,
    tx: Option<mpsc::Sender<Request>>,
    counters: Arc<Counters>,
    reclaimer: Arc<Reclaimer>,
    writer: Option<JoinHandle<()>>,
    reclaim_thread: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain and exit; only then is it
        // safe to let the DB go.
        self.tx.take();
        if let Some(w) = self.writer.take()
            && w.join().is_err()
        {
            tracing::error!("storage writer thread panicked");
        }
        self.reclaimer.stop();
        if let Some(r) = self.reclaim_thread.take()
            && r.join().is_err()
        {
            tracing::error!("storage reclaim thread panicked");
        }
    }
}

/// The RocksDB-backed store. Clones share one DB, one writer and one reclaimer.
#[derive(Clone)]
pub struct RocksStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// How long an open waits for another instance of this process to let go
/// of the same directory.
const REOPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the DB; when an instance of this same process still holds the
/// directory's lock (a node closing while it is reopened: its last store
/// clone goes with a task that is still ending), waits for it to go. A lock
/// held by another process fails at once.
fn open_in_turn(dir: &Path, opts: &RocksOptions) -> Result<DB, StorageError> {
    let began = std::time::Instant::now();
    loop {
        match open_db(dir, opts) {
            Err(StorageError::Io(e))
                if e.contains("lock hold by current process") && began.elapsed() < REOPEN_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl RocksStore {
    /// Opens (creating if needed) the store in `dir` and starts its writer
    /// and reclaim threads.
    pub fn open(dir: &Path, opts: RocksOptions) -> Result<Self, StorageError> {
        let db = Arc::new(open_in_turn(dir, &opts)?);
        check_format(&db)?;
        let counters = Arc::new(Counters::default());
        let reclaimer = Arc::new(Reclaimer::default());
        let (tx, rx) = mpsc::channel(opts.queue_depth.max(1));
        let w = Writer {
            db: db.clone(),
            rx,
            counters: counters.clone(),
            reclaimer: reclaimer.clone(),
            sync: opts.sync,
            max_batch_requests: opts.max_batch_requests.max(1),
            max_batch_bytes: opts.max_batch_bytes,
        };
        let spawn_err =
            |e: std::io::Error| StorageError::Io(format!("spawning storage thread: {e}"));
        let writer = std::thread::Builder::new()
            .name("warren-storage-writer".into())
            .spawn(move || w.run())
            .map_err(spawn_err)?;
        let (r, rdb) = (reclaimer.clone(), db.clone());
        let reclaim_thread = std::thread::Builder::new()
            .name("warren-storage-reclaim".into())
            .spawn(move || r.run(rdb, opts.reclaim_interval))
            .map_err(spawn_err)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                path: dir.to_path_buf(),
                tx: Some(tx),
                counters,
                reclaimer,
                writer: Some(writer),
                reclaim_thread: Some(reclaim_thread),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Reclaims the space of every purge and group deletion so far, now,
    /// instead of within `reclaim_interval`.
    pub async fn reclaim_now(&self) -> Result<(), StorageError> {
        let (r, db) = (self.inner.reclaimer.clone(), self.inner.db.clone());
        tokio::task::spawn_blocking(move || r.pass(&db))
            .await
            .map_err(|e| StorageError::Io(format!("reclaim task: {e}")))?
    }

    /// A RocksDB property of the log column family (e.g. `rocksdb.total-sst-files-size`).
    pub fn property(&self, name: &str) -> Result<Option<u64>, StorageError> {
        let cf = cf(&self.inner.db, CF_LOG)?;
        Ok(self.inner.db.property_int_value_cf(&cf, name)?)
    }

    /// Test hook: make every following write fail as a failed fsync would.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, on: bool) {
        self.inner.counters.fail_writes.store(on, Ordering::Relaxed);
    }

    async fn submit(&self, op: Op) -> Result<(), StorageError> {
        let tx = self.inner.tx.as_ref().ok_or(StorageError::Closed)?;
        let (done, rx) = oneshot::channel();
        tx.send(Request { op, done })
            .await
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    fn get(&self, cf_name: &str, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        let db = &self.inner.db;
        Ok(db.get_cf(&cf(db, cf_name)?, key)?.map(Bytes::from))
    }

    /// Read options confined to `[lower, upper)`. Total-order seek because the
    /// fixed prefix extractor would otherwise make seeks across or to the end
    /// of a prefix undefined.
    fn bounded(lower: &[u8], upper: &[u8]) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        ro.set_iterate_lower_bound(lower.to_vec());
        ro.set_iterate_upper_bound(upper.to_vec());
        ro
    }
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<Arc<BoundColumnFamily<'a>>, StorageError> {
    db.cf_handle(name)
        .ok_or_else(|| StorageError::Corrupt(format!("column family {name} missing")))
}

fn open_db(dir: &Path, opts: &RocksOptions) -> Result<DB, StorageError> {
    let mut db_opts = Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_max_total_wal_size(opts.max_total_wal_size);
    db_opts.set_max_background_jobs(2);
    // RocksDB's info log otherwise keeps up to 1000 files.
    db_opts.set_keep_log_file_num(4);
    db_opts.set_max_log_file_size(16 << 20);
    db_opts.set_db_write_buffer_size(opts.memtable_budget);
    let cache = rocksdb::Cache::new_lru_cache(opts.block_cache);
    let cfs = GROUP_CFS.map(|name| {
        let mut o = Options::default();
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        o.set_block_based_table_factory(&table);
        o.set_prefix_extractor(SliceTransform::create_fixed_prefix(keys::PREFIX_LEN));
        o.set_write_buffer_size(opts.write_buffer_size);
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_bottommost_compression_type(DBCompressionType::Zstd);
        ColumnFamilyDescriptor::new(name, o)
    });
    Ok(DB::open_cf_descriptors(&db_opts, dir, cfs)?)
}

/// A new DB gets the format marker; an existing one must carry ours.
fn check_format(db: &DB) -> Result<(), StorageError> {
    match db.get(keys::FORMAT_KEY)? {
        Some(v) if v == [keys::FORMAT_VERSION] => Ok(()),
        Some(v) => Err(StorageError::Corrupt(format!(
            "storage format {v:?}, this build reads {}",
            keys::FORMAT_VERSION
        ))),
        None => {
            if !all_groups(db)?.is_empty() {
                return Err(StorageError::Corrupt(
                    "group data without a format marker".into(),
                ));
            }
            let mut wo = rocksdb::WriteOptions::default();
            wo.set_sync(true);
            db.put_opt(keys::FORMAT_KEY, [keys::FORMAT_VERSION], &wo)?;
            Ok(())
        }
    }
}

/// Distinct group prefixes over every CF: one seek per group, not a full scan.
fn all_groups(db: &DB) -> Result<Vec<GroupId>, StorageError> {
    let mut groups = std::collections::BTreeSet::new();
    for name in GROUP_CFS {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        let mut it = db.raw_iterator_cf_opt(&cf(db, name)?, ro);
        it.seek_to_first();
        while let Some(k) = it.key() {
            let g = keys::group_of(k)?;
            groups.insert(g);
            if g == u64::MAX {
                break;
            }
            it.seek(keys::group_start(g + 1));
        }
        it.status()?;
    }
    Ok(groups.into_iter().collect())
}

impl LogStore for RocksStore {
    async fn append(&self, group: GroupId, entries: Vec<Entry>) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.submit(Op::Append(group, entries)).await
    }

    fn entries(&self, group: GroupId, range: Range<u64>) -> Result<Vec<Entry>, StorageError> {
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let db = &self.inner.db;
        let ro = Self::bounded(
            &keys::indexed(group, range.start),
            &keys::indexed(group, range.end),
        );
        let mut out = Vec::new();
        for item in db.iterator_cf_opt(&cf(db, CF_LOG)?, ro, IteratorMode::Start) {
            let (k, v) = item?;
            out.push(Entry::new(keys::index_of(&k)?, Bytes::from(v.into_vec())));
        }
        Ok(out)
    }

    fn log_state(&self, group: GroupId) -> Result<LogState, StorageError> {
        let db = &self.inner.db;
        let ro = Self::bounded(&keys::group_start(group), &keys::group_end(group));
        let mut it = db.raw_iterator_cf_opt(&cf(db, CF_LOG)?, ro);
        it.seek_to_first();
        let first = it.key().map(keys::index_of).transpose()?;
        it.seek_to_last();
        let last = it.key().map(keys::index_of).transpose()?;
        it.status()?;
        Ok(LogState {
            first_index: first,
            last_index: last,
        })
    }

    async fn truncate_after(&self, group: GroupId, index: u64) -> Result<(), StorageError> {
        self.submit(Op::TruncateAfter(group, index)).await
    }

    async fn purge_upto(&self, group: GroupId, index: u64) -> Result<(), StorageError> {
        self.submit(Op::PurgeUpto(group, index)).await
    }

    async fn save_meta(
        &self,
        group: GroupId,
        key: MetaKey,
        value: Bytes,
    ) -> Result<(), StorageError> {
        let tag = key.to_byte()?;
        self.submit(Op::Meta(group, tag, value)).await
    }

    fn read_meta(&self, group: GroupId, key: MetaKey) -> Result<Option<Bytes>, StorageError> {
        self.get(CF_META, &keys::tagged(group, key.to_byte()?))
    }

    async fn save_snapshot(
        &self,
        group: GroupId,
        meta: Bytes,
        data: Bytes,
    ) -> Result<(), StorageError> {
        self.submit(Op::Snapshot(group, meta, data)).await
    }

    fn read_snapshot(&self, group: GroupId) -> Result<Option<(Bytes, Bytes)>, StorageError> {
        let db = &self.inner.db;
        let snap_cf = cf(db, CF_SNAPSHOT)?;
        // Both halves from one DB snapshot: a save between the two reads must
        // not pair new meta with old data.
        let view = db.snapshot();
        let meta = view.get_cf(&snap_cf, keys::tagged(group, keys::SNAPSHOT_META))?;
        let data = view.get_cf(&snap_cf, keys::tagged(group, keys::SNAPSHOT_DATA))?;
        match (meta, data) {
            (Some(m), Some(d)) => Ok(Some((Bytes::from(m), Bytes::from(d)))),
            (None, None) => Ok(None),
            _ => Err(StorageError::Corrupt(format!(
                "group {group}: snapshot meta and data not both present"
            ))),
        }
    }

    async fn put_bodies(
        &self,
        group: GroupId,
        bodies: Vec<(u64, Bytes)>,
    ) -> Result<(), StorageError> {
        if bodies.is_empty() {
            return Ok(());
        }
        self.submit(Op::PutBodies(group, bodies)).await
    }

    fn get_body(&self, group: GroupId, index: u64) -> Result<Option<Bytes>, StorageError> {
        self.get(CF_BODY, &keys::indexed(group, index))
    }

    async fn delete_bodies(&self, group: GroupId, indexes: Vec<u64>) -> Result<(), StorageError> {
        if indexes.is_empty() {
            return Ok(());
        }
        self.submit(Op::DeleteBodies(group, indexes)).await
    }

    async fn delete_group(&self, group: GroupId) -> Result<(), StorageError> {
        self.submit(Op::DeleteGroup(group)).await
    }

    fn groups(&self) -> Result<Vec<GroupId>, StorageError> {
        all_groups(&self.inner.db)
    }

    fn stats(&self) -> StoreStats {
        self.inner.counters.snapshot()
    }
}
