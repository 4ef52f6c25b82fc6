//! basic.ack / nack / reject / recover: settling, requeueing with the
//! redelivered flag, and the channel errors of bad delivery tags.

use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicQosOptions, BasicRecoverOptions, BasicRejectOptions, QueueDeleteOptions,
};
use warren_e2e::{
    EVENT_TIMEOUT, QUIET, body_text, consume, declare_queue, expect_channel_closed,
    expect_no_delivery, fill_queue, next_delivery, publish, queue_counts, start, unique,
    wait_ready, wait_until, watch_channel, with_timeout,
};

#[tokio::test]
async fn ack_multiple_settles_everything_up_to_the_tag() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-ack-multi");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 6).await?;
        let cch = conn.create_channel().await?;
        cch.basic_qos(3, BasicQosOptions::default()).await?;
        let mut c = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        let mut tags = Vec::new();
        for _ in 0..3 {
            tags.push(next_delivery(&mut c).await?.delivery_tag);
        }
        assert_eq!(tags, vec![1, 2, 3]);
        cch.basic_ack(3, BasicAckOptions { multiple: true }).await?;
        // All three slots are free again.
        let mut rest = Vec::new();
        for _ in 0..3 {
            let d = next_delivery(&mut c).await?;
            assert!(!d.redelivered);
            rest.push(body_text(&d));
        }
        assert_eq!(rest, vec!["m3", "m4", "m5"]);
        cch.basic_ack(0, BasicAckOptions { multiple: true }).await?;
        // Nothing is left to come back when the channel closes.
        cch.close(200, "done".into()).await?;
        wait_ready(&ch, &q, 0).await?;
        publish(&ch, "", &q, b"marker").await?;
        let got = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(body_text(&got.delivery), "marker");
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn nack_multiple_with_requeue_redelivers_in_order() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-nack");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 3).await?;
        let cch = conn.create_channel().await?;
        cch.basic_qos(3, BasicQosOptions::default()).await?;
        let mut c = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        for _ in 0..3 {
            next_delivery(&mut c).await?;
        }
        cch.basic_nack(
            3,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await?;
        let mut again = Vec::new();
        for _ in 0..3 {
            let d = next_delivery(&mut c).await?;
            assert!(
                d.redelivered,
                "requeued message must be flagged redelivered"
            );
            again.push(body_text(&d));
        }
        assert_eq!(again, vec!["m0", "m1", "m2"]);
        // nack without requeue drops them.
        cch.basic_nack(
            0,
            BasicNackOptions {
                multiple: true,
                requeue: false,
            },
        )
        .await?;
        wait_until(
            EVENT_TIMEOUT,
            "queue empty of ready and unacked",
            || async {
                Ok((ch
                    .queue_purge(q.as_str().into(), Default::default())
                    .await?
                    == 0
                    && queue_counts(&ch, &q).await? == (0, 1))
                    .then_some(()))
            },
        )
        .await?;
        expect_no_delivery(&mut c, QUIET).await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn reject_requeue_redelivers_and_reject_drop_discards() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-reject");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 1).await?;
        let cch = conn.create_channel().await?;
        let mut c = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        let d = next_delivery(&mut c).await?;
        assert!(!d.redelivered);
        d.acker.reject(BasicRejectOptions { requeue: true }).await?;
        let d = next_delivery(&mut c).await?;
        assert!(d.redelivered);
        assert_eq!(body_text(&d), "m0");
        d.acker
            .reject(BasicRejectOptions { requeue: false })
            .await?;
        // Gone: after the consumer is cancelled nothing is ready or comes back.
        cch.basic_cancel(c.tag(), BasicCancelOptions::default())
            .await?;
        cch.close(200, "done".into()).await?;
        assert_eq!(queue_counts(&ch, &q).await?, (0, 0));
        publish(&ch, "", &q, b"marker").await?;
        let got = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(body_text(&got.delivery), "marker");
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_delivery_tag_closes_the_channel_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let mut watcher = watch_channel(&ch).await?;
        ch.basic_ack(42, BasicAckOptions::default()).await?;
        let text = expect_channel_closed(&mut watcher, 406, "PRECONDITION_FAILED").await?;
        assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 42");
        assert!(conn.status().connected());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn double_ack_closes_the_channel_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-double-ack");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 1).await?;
        let mut watcher = watch_channel(&ch).await?;
        let got = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        let tag = got.delivery.delivery_tag;
        ch.basic_ack(tag, BasicAckOptions::default()).await?;
        ch.basic_ack(tag, BasicAckOptions::default()).await?;
        let text = expect_channel_closed(&mut watcher, 406, "PRECONDITION_FAILED").await?;
        assert_eq!(
            text,
            format!("PRECONDITION_FAILED - unknown delivery tag {tag}")
        );
        let ch = conn.create_channel().await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn recover_requeues_unacked_deliveries() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-recover");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 2).await?;
        let cch = conn.create_channel().await?;
        let mut c = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        for _ in 0..2 {
            assert!(!next_delivery(&mut c).await?.redelivered);
        }
        cch.basic_recover(BasicRecoverOptions { requeue: true })
            .await?;
        let mut again = Vec::new();
        for _ in 0..2 {
            let d = next_delivery(&mut c).await?;
            assert!(d.redelivered);
            again.push(body_text(&d));
        }
        again.sort();
        assert_eq!(again, vec!["m0", "m1"]);
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unacked_deliveries_return_redelivered_when_the_channel_closes() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-close-requeue");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 2).await?;
        let cch = conn.create_channel().await?;
        let mut c = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        next_delivery(&mut c).await?;
        next_delivery(&mut c).await?;
        wait_ready(&ch, &q, 0).await?;
        cch.close(200, "bye".into()).await?;
        wait_ready(&ch, &q, 2).await?;
        for expected in ["m0", "m1"] {
            let got = ch
                .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
                .await?
                .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
            assert_eq!(
                (body_text(&got.delivery).as_str(), got.delivery.redelivered),
                (expected, true)
            );
        }
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn no_ack_consumer_ignores_prefetch_and_settles_on_delivery() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-noack");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 5).await?;
        let cch = conn.create_channel().await?;
        cch.basic_qos(1, BasicQosOptions::default()).await?;
        let mut c = consume(
            &cch,
            &q,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await?;
        for i in 0..5 {
            assert_eq!(body_text(&next_delivery(&mut c).await?), format!("m{i}"));
        }
        cch.close(200, "bye".into()).await?;
        // Nothing comes back: no-ack deliveries are settled when sent.
        publish(&ch, "", &q, b"marker").await?;
        let got = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(body_text(&got.delivery), "marker");
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}
