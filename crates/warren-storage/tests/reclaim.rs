//! Disk space comes back after purges and group deletions: the data dir
//! returns to within a few MiB of where it started.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_storage::{Entry, LogStore, MetaKey, RocksOptions, RocksStore, StorageError};

const MIB: u64 = 1 << 20;
const SLACK: u64 = 4 * MIB;

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).expect("read dir").flatten() {
        let Ok(md) = e.metadata() else { continue };
        total += if md.is_dir() {
            dir_size(&e.path())
        } else {
            md.len()
        };
    }
    total
}

/// Incompressible payloads, so compression cannot hide retained data.
fn noise(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// Appends `mib` MiB of 1 KiB entries to `group`, 256 per append; returns the last index.
async fn fill(s: &RocksStore, group: u64, mib: u64) -> Result<u64, StorageError> {
    let n = mib * 1024;
    let mut i = 1;
    while i <= n {
        let batch: Vec<Entry> = (i..(i + 256).min(n + 1))
            .map(|j| Entry::new(j, noise(j, 1024)))
            .collect();
        i += batch.len() as u64;
        s.append(group, batch).await?;
    }
    Ok(n)
}

async fn wait_for_size(dir: &Path, limit: u64, deadline: Duration) -> u64 {
    let end = Instant::now() + deadline;
    loop {
        let size = dir_size(dir);
        if size <= limit || Instant::now() > end {
            return size;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The background reclaimer frees a purged log within its interval, without
/// anyone asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_log_space_is_reclaimed_in_background() -> Result<(), StorageError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = RocksOptions {
        reclaim_interval: Duration::from_millis(500),
        ..RocksOptions::default()
    };
    let s = RocksStore::open(dir.path(), opts)?;
    s.save_meta(5, MetaKey::Vote, "v".into()).await?;
    let start = dir_size(dir.path());
    let last = fill(&s, 5, 64).await?;
    let full = dir_size(dir.path());
    assert!(
        full >= start + 60 * MIB,
        "64 MiB written: {start} -> {full}"
    );
    // Live data in a neighbouring group must survive the reclamation.
    s.append(6, vec![Entry::new(1, "neighbour")]).await?;
    s.purge_upto(5, last).await?;
    let after = wait_for_size(dir.path(), start + SLACK, Duration::from_secs(60)).await;
    assert!(
        after <= start + SLACK,
        "dir {start} at start, {full} full, {after} after purge"
    );
    assert_eq!(s.entries(6, 0..10)?, vec![Entry::new(1, "neighbour")]);
    assert_eq!(s.read_meta(5, MetaKey::Vote)?, Some(Bytes::from("v")));
    Ok(())
}

/// Settling out of order: purge the log past messages that are still
/// unsettled (moved to bodies), then settle those bodies in a scattered
/// order; `reclaim_now` brings the dir back. Then the group goes entirely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_group_and_bodies_space_is_reclaimed_now() -> Result<(), StorageError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = RocksOptions {
        reclaim_interval: Duration::from_secs(3600),
        ..RocksOptions::default()
    };
    let s = RocksStore::open(dir.path(), opts)?;
    let start = dir_size(dir.path());
    let last = fill(&s, 9, 32).await?;
    // Every 3rd message is still unsettled when the log is purged.
    let live: Vec<u64> = (1..=last).filter(|i| i % 3 == 0).collect();
    for chunk in live.chunks(512) {
        s.put_bodies(9, chunk.iter().map(|i| (*i, noise(*i, 1024))).collect())
            .await?;
    }
    s.purge_upto(9, last).await?;
    s.reclaim_now().await?;
    let mid = dir_size(dir.path());
    assert!(
        mid >= start + 8 * MIB,
        "unsettled bodies stay: {start} -> {mid}"
    );
    assert_eq!(s.get_body(9, 3)?, Some(noise(3, 1024)));
    // Settle them scattered: odd positions first, then the rest.
    let (odd, even): (Vec<_>, Vec<_>) = live.iter().partition(|i| (*i / 3) % 2 == 1);
    s.delete_bodies(9, odd).await?;
    s.delete_bodies(9, even).await?;
    s.reclaim_now().await?;
    let after = wait_for_size(dir.path(), start + SLACK, Duration::from_secs(30)).await;
    assert!(
        after <= start + SLACK,
        "start {start}, mid {mid}, after {after}"
    );
    assert_eq!(s.get_body(9, 3)?, None);
    s.save_meta(9, MetaKey::Applied, "a".into()).await?;
    assert_eq!(s.groups()?, vec![9]);
    s.delete_group(9).await?;
    s.reclaim_now().await?;
    assert_eq!(s.groups()?, Vec::<u64>::new());
    Ok(())
}
