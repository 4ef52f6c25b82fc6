//! Rough enqueue throughput of one queue group: sequential proposals, then
//! many in flight at once (how a broker with many publishers drives it).
//! `cargo run --release -p warren-cluster --example enqueue_rate [DIR]`
//! (RocksDB under DIR; memory when no DIR is given).

use std::time::Instant;

use bytes::Bytes;
use warren_cluster::{Node, QueueGroup};
use warren_core::message::Message;
use warren_core::queue::{Command, QueueConfig};
use warren_storage::LogStore;

fn enqueue(n: usize) -> Command<Message> {
    let msg = Message {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::new(),
        body: Bytes::from(vec![(n % 251) as u8; 1024]),
        persistent: true,
        priority: 0,
        expiration_ms: None,
    };
    Command::Enqueue {
        size: msg.size(),
        msg,
        expiration_ms: None,
        priority: 0,
    }
}

async fn run<S: LogStore>(q: QueueGroup<S>, node: &Node<S>) -> anyhow::Result<()> {
    let n = 2000;
    let t = Instant::now();
    for i in 0..n {
        q.apply(enqueue(i)).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "sequential: {n} enqueues in {secs:.2}s = {:.0}/s",
        n as f64 / secs
    );

    let before = node.store_stats();
    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move { q.apply(enqueue(i)).await })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let after = node.store_stats();
    println!(
        "{n} in flight: {secs:.2}s = {:.0}/s, fsyncs {}",
        n as f64 / secs,
        after.fsyncs - before.fsyncs
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1) {
        Some(dir) => {
            let node = Node::open(std::path::Path::new(&dir), 1).await?;
            let q = match node.queue(1) {
                Some(q) => q,
                None => {
                    node.create_queue(1, "/", "q", QueueConfig::default())
                        .await?
                }
            };
            run(q, &node).await?;
            node.shutdown().await?;
        }
        None => {
            let node = Node::open_in_memory(1).await?;
            let q = node
                .create_queue(1, "/", "q", QueueConfig::default())
                .await?;
            run(q, &node).await?;
            node.shutdown().await?;
        }
    }
    Ok(())
}
