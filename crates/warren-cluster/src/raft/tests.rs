//! openraft's own storage conformance suite (`openraft::testing::log::Suite`)
//! against our log adapter and both state machines, over the in-memory
//! store and over RocksDB in a temporary directory.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use warren_storage::{MemStore, RocksOptions, RocksStore};

use super::{LogAdapter, MetaMachine, QueueMachine, TypeConfig};

type C = TypeConfig;

const GROUP: u64 = 7;

fn storage_err(e: std::io::Error) -> StorageError<C> {
    StorageError::read(C::err_from_error(&e))
}

struct MemMeta;
impl StoreBuilder<C, LogAdapter<MemStore>, MetaMachine<MemStore>> for MemMeta {
    async fn build(
        &self,
    ) -> Result<((), LogAdapter<MemStore>, MetaMachine<MemStore>), StorageError<C>> {
        let s = MemStore::new();
        let sm = MetaMachine::open(s.clone(), GROUP).map_err(storage_err)?;
        Ok(((), LogAdapter::new(s, GROUP, None), sm))
    }
}

struct MemQueue;
impl StoreBuilder<C, LogAdapter<MemStore>, QueueMachine<MemStore>> for MemQueue {
    async fn build(
        &self,
    ) -> Result<((), LogAdapter<MemStore>, QueueMachine<MemStore>), StorageError<C>> {
        let s = MemStore::new();
        let sm = QueueMachine::open(s.clone(), GROUP).map_err(storage_err)?;
        let shared = Some(sm.shared.clone());
        Ok(((), LogAdapter::new(s, GROUP, shared), sm))
    }
}

struct Rocks;
impl StoreBuilder<C, LogAdapter<RocksStore>, QueueMachine<RocksStore>, tempfile::TempDir>
    for Rocks
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            LogAdapter<RocksStore>,
            QueueMachine<RocksStore>,
        ),
        StorageError<C>,
    > {
        let dir = tempfile::tempdir().map_err(storage_err)?;
        let s = RocksStore::open(dir.path(), RocksOptions::default())
            .map_err(|e| storage_err(std::io::Error::other(e.to_string())))?;
        let sm = QueueMachine::open(s.clone(), GROUP).map_err(storage_err)?;
        let shared = Some(sm.shared.clone());
        Ok((dir, LogAdapter::new(s, GROUP, shared), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_meta_machine_over_mem_store() -> Result<(), StorageError<C>> {
    Suite::test_all(MemMeta).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_queue_machine_over_mem_store() -> Result<(), StorageError<C>> {
    Suite::test_all(MemQueue).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_queue_machine_over_rocks_store() -> Result<(), StorageError<C>> {
    Suite::test_all(Rocks).await
}
