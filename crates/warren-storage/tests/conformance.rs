//! The shared conformance suite against both stores.

use std::sync::Mutex;

use tempfile::TempDir;
use warren_storage::{LogStore, MemStore, RocksOptions, RocksStore, StorageError, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mem_store_conforms() -> Result<(), StorageError> {
    conformance::run_all(MemStore::new).await
}

/// Fresh RocksStores, each in its own temp dir that lives until the test ends.
struct Fresh(Mutex<Vec<TempDir>>);

impl Fresh {
    fn make(&self) -> RocksStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = RocksStore::open(dir.path(), RocksOptions::default()).expect("open store");
        self.0.lock().expect("lock").push(dir);
        s
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rocks_store_conforms() -> Result<(), StorageError> {
    let fresh = Fresh(Mutex::new(Vec::new()));
    conformance::run_all(|| fresh.make()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rocks_store_reopen_keeps_everything() -> Result<(), StorageError> {
    let dir = tempfile::tempdir().expect("temp dir");
    conformance::reopen_keeps_everything(|| {
        RocksStore::open(dir.path(), RocksOptions::default()).expect("open store")
    })
    .await
}

/// Many concurrent appenders: each fsync must carry several appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rocks_store_group_commit_batches() -> Result<(), StorageError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = RocksStore::open(dir.path(), RocksOptions::default())?;
    conformance::concurrent_appends(&s, 256, 8).await?;
    let st = s.stats();
    assert!(st.fsyncs > 0, "a durable store fsyncs: {st:?}");
    assert_eq!(st.fsyncs, st.batches);
    assert!(
        st.fsyncs * 4 <= st.requests,
        "256 concurrent appenders should average >= 4 appends per fsync: {st:?}"
    );
    assert!(st.max_batch_requests >= 16, "{st:?}");
    Ok(())
}

/// A failed write (as a failed fsync) fails every request of the batch, and
/// none of its data becomes visible as acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rocks_store_failed_write_fails_every_waiter() -> Result<(), StorageError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = RocksStore::open(dir.path(), RocksOptions::default())?;
    s.append(1, vec![warren_storage::Entry::new(1, "ok")])
        .await?;
    s.inject_write_failures(true);
    let mut tasks = Vec::new();
    for g in 0..100u64 {
        let s2 = s.clone();
        tasks.push(tokio::spawn(async move {
            s2.append(g, vec![warren_storage::Entry::new(2, "lost")])
                .await
        }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert!(matches!(r, Err(StorageError::Io(_))), "{r:?}");
    }
    let r = s
        .save_meta(1, warren_storage::MetaKey::Vote, "v".into())
        .await;
    assert!(r.is_err());
    let st = s.stats();
    assert!(st.failed_batches >= 1, "{st:?}");
    s.inject_write_failures(false);
    assert_eq!(
        s.log_state(1)?.last_index,
        Some(1),
        "failed appends left nothing"
    );
    s.append(1, vec![warren_storage::Entry::new(2, "after")])
        .await?;
    assert_eq!(s.log_state(1)?.last_index, Some(2));
    Ok(())
}

/// A second open of the same dir while the first is alive fails (RocksDB's LOCK).
#[tokio::test]
async fn rocks_store_is_locked_while_open() -> Result<(), StorageError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = RocksStore::open(dir.path(), RocksOptions::default())?;
    first
        .append(1, vec![warren_storage::Entry::new(1, "x")])
        .await?;
    assert!(RocksStore::open(dir.path(), RocksOptions::default()).is_err());
    drop(first);
    let again = RocksStore::open(dir.path(), RocksOptions::default())?;
    assert_eq!(again.log_state(1)?.last_index, Some(1));
    Ok(())
}

/// A DB written by a future format version is refused, not misread.
#[test]
fn rocks_store_rejects_unknown_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, dir.path()).expect("raw open");
        db.put(b"warren-storage-format", [99u8]).expect("put");
    }
    let r = RocksStore::open(dir.path(), RocksOptions::default());
    assert!(matches!(r, Err(StorageError::Corrupt(_))), "{:?}", r.err());
}
