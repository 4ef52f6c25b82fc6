//! Disk-space reclamation after purges and group deletions.
//!
//! `delete_range` only writes a range tombstone: the deleted entries stay in
//! SST files (and the WAL) until a compaction drops them. Left to RocksDB's
//! own triggers that may never happen for a quiet key range, which is how
//! quorum-queue disks that never shrink come about. So the writer records
//! every purged range here, and a background thread (or `reclaim_now`), at
//! most `interval` later, flushes the memtables (which also retires old WAL
//! files) and compacts exactly those ranges down to the bottom level, where
//! the tombstones and everything they cover are dropped.
//!
//! Pending ranges are merged per (column family, group) into one covering
//! range, so the set is bounded by the number of groups, not the number of
//! purges or settlements.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rocksdb::{BottommostLevelCompaction, CompactOptions, DB, FlushOptions};

use super::keys::{GROUP_CFS, PREFIX_LEN};
use crate::types::StorageError;

/// (column family, group) -> covering [from, to).
type Ranges = BTreeMap<(&'static str, u64), (Vec<u8>, Vec<u8>)>;

#[derive(Default)]
struct State {
    pending: Ranges,
    stopping: bool,
}

#[derive(Default)]
pub(super) struct Reclaimer {
    state: Mutex<State>,
    wake: Condvar,
    /// Serialises passes, so `reclaim_now` returning means its ranges are done
    /// even if the background thread had taken them first.
    pass: Mutex<()>,
}

impl Reclaimer {
    /// Records `[from, to)` of `cf`, all within `group`, as deleted; merged
    /// with the group's earlier ranges in the same CF.
    pub fn add(&self, cf: &'static str, group: u64, from: Vec<u8>, to: Vec<u8>) {
        let mut st = self.state.lock();
        match st.pending.entry((cf, group)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((from, to));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let (f, t) = o.get_mut();
                if from < *f {
                    *f = from;
                }
                if to > *t {
                    *t = to;
                }
            }
        }
    }

    /// Reclaims everything pending now, on the caller's thread.
    pub fn pass(&self, db: &DB) -> Result<(), StorageError> {
        let _serial = self.pass.lock();
        let ranges = std::mem::take(&mut self.state.lock().pending);
        if ranges.is_empty() {
            return Ok(());
        }
        compact(db, &ranges)
    }

    /// The background loop: a pass every `interval` while there is work,
    /// until `stop`. Errors are logged and retried next interval.
    pub fn run(self: Arc<Self>, db: Arc<DB>, interval: Duration) {
        loop {
            {
                let mut st = self.state.lock();
                if !st.stopping {
                    self.wake.wait_for(&mut st, interval);
                }
                if st.stopping {
                    break;
                }
                if st.pending.is_empty() {
                    continue;
                }
            }
            if let Err(e) = self.pass(&db) {
                tracing::warn!(error = %e, "storage space reclamation failed; will retry");
            }
        }
        tracing::debug!("storage reclaimer stopped");
    }

    pub fn stop(&self) {
        self.state.lock().stopping = true;
        self.wake.notify_all();
    }
}

fn compact(db: &DB, ranges: &Ranges) -> Result<(), StorageError> {
    // Flush every CF, not only the purged ones: a WAL file is deleted only
    // once no CF's memtable still needs it, and a small CF (meta) that is
    // rarely flushed would otherwise pin every WAL file written since.
    let handles = GROUP_CFS
        .iter()
        .map(|n| super::cf(db, n))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<_> = handles.iter().collect();
    let mut flush = FlushOptions::default();
    flush.set_wait(true);
    db.flush_cfs_opt(&refs, &flush)?;
    db.flush_opt(&flush)?;

    let mut opts = CompactOptions::default();
    // Force: the bottom level is where range tombstones finally drop the data
    // they cover; the default skips it when there is no compaction filter.
    opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
    opts.set_exclusive_manual_compaction(false);
    for ((name, _), (from, to)) in ranges {
        debug_assert!(from.len() >= PREFIX_LEN);
        let cf = super::cf(db, name)?;
        db.compact_range_cf_opt(&cf, Some(from), Some(to), &opts);
    }
    Ok(())
}
