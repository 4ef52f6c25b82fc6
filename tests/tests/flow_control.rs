//! The memory alarm: publishers are blocked (connection.blocked) while
//! queues hold more than the high watermark, and unblocked once consumers
//! bring it down; the disk alarm likewise. Warren-only: RabbitMQ's limits
//! are not set per test.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::{BasicProperties, types::FieldTable};
use warren_e2e::*;

#[tokio::test]
async fn publishers_are_blocked_above_the_memory_watermark_and_released_below() -> anyhow::Result<()>
{
    let broker = start_with_memory_watermark(256 * 1024).await;
    if broker.skip_if_external("the memory watermark is set per in-process broker") {
        return Ok(());
    }
    with_timeout(async {
        let publisher = broker.connect().await;
        let pch = publisher.create_channel().await?;
        let q = unique("q-memory-alarm");
        pch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        // 400 KiB for a queue nobody consumes crosses the 256 KiB watermark.
        // lapin itself holds publishes while blocked, so they run in a task.
        let (pch2, q2) = (pch.clone(), q.clone());
        let publishing = tokio::spawn(async move {
            let body = vec![7u8; 1024];
            for _ in 0..400 {
                pch2.basic_publish(
                    "".into(),
                    q2.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await?;
            }
            anyhow::Ok(())
        });
        wait_until(EVENT_TIMEOUT, "connection.blocked", || async {
            Ok(publisher.status().blocked().then_some(()))
        })
        .await?;
        // A connection that never published is not blocked and can drain the queue.
        let other = broker.connect().await;
        let och = other.create_channel().await?;
        assert!(!other.status().blocked());
        och.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await?;
        // Purging frees the memory; the publisher is unblocked and finishes
        // (it may block and be released again while it does).
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if publishing.is_finished() {
                    break;
                }
                och.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
                    .await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(())
        })
        .await??;
        publishing.await??;
        wait_until(EVENT_TIMEOUT, "connection.unblocked", || async {
            Ok((!publisher.status().blocked()).then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

/// The disk alarm: with less free disk than `--disk-free-limit` (here a
/// limit no disk meets), a connection is blocked as soon as it publishes
/// (as with RabbitMQ, what it sent before the block may still be taken), so
/// its stream is held: not queued, not confirmed. Connections that only
/// consume are not blocked.
#[tokio::test]
async fn publishers_are_blocked_below_the_disk_free_limit() -> anyhow::Result<()> {
    let broker = start_with_disk_free_limit(u64::MAX / 2).await;
    if broker.skip_if_external("the disk free limit is set per in-process broker") {
        return Ok(());
    }
    with_timeout(async {
        let publisher = broker.connect().await;
        let pch = publisher.create_channel().await?;
        let q = unique("q-disk-alarm");
        pch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
        pch.confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await?;
        const SENT: u32 = 500;
        let (pch2, q2) = (pch.clone(), q.clone());
        let publishing = tokio::spawn(async move {
            let body = vec![1u8; 4096];
            let mut confirms = Vec::new();
            for _ in 0..SENT {
                let c = pch2
                    .basic_publish(
                        "".into(),
                        q2.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?;
                confirms.push(c);
            }
            for c in confirms {
                c.await?;
            }
            anyhow::Ok(())
        });
        wait_until(EVENT_TIMEOUT, "connection.blocked", || async {
            Ok(publisher.status().blocked().then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !publishing.is_finished(),
            "the whole stream was confirmed through the disk alarm"
        );
        let other = broker.connect().await;
        let och = other.create_channel().await?;
        assert!(!other.status().blocked());
        let queued = queue_counts(&och, &q).await?.0;
        assert!(
            queued < SENT,
            "all {SENT} messages were queued through the disk alarm"
        );
        publishing.abort();
        Ok(())
    })
    .await
}
