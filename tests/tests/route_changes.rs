//! Routing follows topology changes at once, publish after publish on the
//! same channel (the broker caches routes per channel; these changes must
//! invalidate them): bind, unbind, queue delete, exchange delete.

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};
use warren_e2e::{declare_queue, publish, start, unique, with_timeout};

async fn ready(ch: &Channel, q: &str) -> anyhow::Result<u32> {
    let mut n = 0;
    while ch
        .basic_get(q.into(), BasicGetOptions { no_ack: true })
        .await?
        .is_some()
    {
        n += 1;
    }
    Ok(n)
}

#[tokio::test]
async fn routes_follow_bind_unbind_and_deletes() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ex = unique("ex-changes");
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let q = unique("q-changes");
        declare_queue(&ch, &q).await?;

        publish(&ch, &ex, "k", b"before-bind").await?.await?;
        ch.queue_bind(
            q.as_str().into(),
            ex.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        publish(&ch, &ex, "k", b"bound").await?.await?;
        publish(&ch, &ex, "k", b"bound-again").await?.await?;
        assert_eq!(
            ready(&ch, &q).await?,
            2,
            "only publishes after the bind arrive"
        );

        ch.queue_unbind(
            q.as_str().into(),
            ex.as_str().into(),
            "k".into(),
            FieldTable::default(),
        )
        .await?;
        publish(&ch, &ex, "k", b"unbound").await?.await?;
        assert_eq!(ready(&ch, &q).await?, 0, "nothing after the unbind");

        // Default exchange: a deleted queue is no longer a target, and a
        // queue re-created under the same name is.
        publish(&ch, "", &q, b"direct").await?.await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        publish(&ch, "", &q, b"to-nobody").await?.await?;
        declare_queue(&ch, &q).await?;
        publish(&ch, "", &q, b"recreated").await?.await?;
        assert_eq!(ready(&ch, &q).await?, 1, "the re-created queue gets it");

        // The channel is closed with 404 for a publish to a deleted
        // exchange: a consumer on the channel learns the reply code
        // without racing the close (lapin may refuse the next operation
        // as "closing" before it reports the code).
        let mut watcher = warren_e2e::watch_channel(&ch).await?;
        ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
        let _ = publish(&ch, &ex, "k", b"gone").await;
        warren_e2e::expect_channel_closed(&mut watcher, 404, "NOT_FOUND").await?;
        Ok(())
    })
    .await
}
