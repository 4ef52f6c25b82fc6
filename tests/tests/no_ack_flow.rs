//! A no-ack consumer receives a backlog far larger than the broker's
//! in-flight window for no-ack deliveries (the window is refilled as the
//! connection writes deliveries out), in order and complete.

use futures::StreamExt as _;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use warren_e2e::{EVENT_TIMEOUT, declare_queue, publish, start, unique, with_timeout};

const BACKLOG: usize = 5000;

#[tokio::test]
async fn no_ack_consumer_drains_a_large_backlog_in_order() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let q = unique("q-no-ack-flow");
        declare_queue(&ch, &q).await?;
        let mut confirms = Vec::with_capacity(BACKLOG);
        for i in 0..BACKLOG {
            confirms.push(publish(&ch, "", &q, i.to_string().as_bytes()).await?);
        }
        for c in confirms {
            c.await?;
        }
        let cch = conn.create_channel().await?;
        let mut consumer = cch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        for expected in 0..BACKLOG {
            let d = tokio::time::timeout(EVENT_TIMEOUT, consumer.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("consumer ended at {expected}"))??;
            assert_eq!(String::from_utf8_lossy(&d.data), expected.to_string());
        }
        Ok(())
    })
    .await
}
