//! basic.*: qos, consume, exclusive consumers, cancel, get, returns and
//! round-robin dispatch. Acknowledgements are in basic_ack.rs.

use futures::StreamExt as _;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use warren_e2e::{
    EVENT_TIMEOUT, QUIET, body_text, consume, declare_queue, expect_code, expect_no_delivery,
    fill_queue, next_delivery, publish, queue_counts, start, unique, wait_ready, with_timeout,
};

#[tokio::test]
async fn prefetch_limits_unacked_deliveries_per_consumer() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-prefetch");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 10).await?;
        let cch = conn.create_channel().await?;
        cch.basic_qos(3, BasicQosOptions::default()).await?;
        let mut a = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        let mut b = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        // Per consumer: each of the two holds 3, so 4 remain ready.
        let mut got_a = Vec::new();
        for _ in 0..3 {
            got_a.push(next_delivery(&mut a).await?);
            next_delivery(&mut b).await?;
        }
        wait_ready(&ch, &q, 4).await?;
        expect_no_delivery(&mut a, QUIET).await?;
        expect_no_delivery(&mut b, QUIET).await?;
        // Acking one of a's frees exactly one slot for a.
        got_a[0].acker.ack(BasicAckOptions::default()).await?;
        next_delivery(&mut a).await?;
        wait_ready(&ch, &q, 3).await?;
        expect_no_delivery(&mut a, QUIET).await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn global_qos_limits_the_whole_channel() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-global-qos");
        declare_queue(&ch, &q).await?;
        fill_queue(&ch, &q, 10).await?;
        let cch = conn.create_channel().await?;
        cch.basic_qos(4, BasicQosOptions { global: true }).await?;
        let mut a = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        let mut b = consume(&cch, &q, BasicConsumeOptions::default()).await?;
        // Four in flight for the channel, shared by both consumers.
        wait_ready(&ch, &q, 6).await?;
        let mut held = Vec::new();
        for consumer in [&mut a, &mut b] {
            while let Ok(Some(Ok(d))) = tokio::time::timeout(QUIET, consumer.next()).await {
                held.push(d);
            }
        }
        assert_eq!(
            held.len(),
            4,
            "in flight on a channel with global prefetch 4"
        );
        held[0].acker.ack(BasicAckOptions::default()).await?;
        wait_ready(&ch, &q, 5).await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn exclusive_consumer_shuts_out_others_403() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-excl-consumer");
        declare_queue(&ch, &q).await?;
        let _first = consume(
            &ch,
            &q,
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await?;
        let ch2 = conn.create_channel().await?;
        let result = consume(&ch2, &q, BasicConsumeOptions::default()).await;
        let text = expect_code(result, 403, "ACCESS_REFUSED")?;
        assert_eq!(
            text,
            format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
        );
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn exclusive_consume_on_a_consumed_queue_is_403() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-excl-late");
        declare_queue(&ch, &q).await?;
        let _first = consume(&ch, &q, BasicConsumeOptions::default()).await?;
        let ch2 = conn.create_channel().await?;
        let result = consume(
            &ch2,
            &q,
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await;
        expect_code(result, 403, "ACCESS_REFUSED")?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn consuming_a_missing_queue_is_404() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-absent");
        let text = expect_code(
            consume(&ch, &q, BasicConsumeOptions::default()).await,
            404,
            "NOT_FOUND",
        )?;
        assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cancel_ends_the_consumer_and_leaves_messages_queued() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-cancel");
        declare_queue(&ch, &q).await?;
        let mut consumer = consume(&ch, &q, BasicConsumeOptions::default()).await?;
        ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await?;
        let end = tokio::time::timeout(EVENT_TIMEOUT, consumer.next()).await?;
        assert!(end.is_none(), "stream should end after cancel: {end:?}");
        assert_eq!(queue_counts(&ch, &q).await?, (0, 0));
        publish(&ch, "", &q, b"stays").await?;
        wait_ready(&ch, &q, 1).await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn deleting_the_queue_cancels_its_consumers() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-server-cancel");
        declare_queue(&ch, &q).await?;
        let mut consumer = consume(&ch, &q, BasicConsumeOptions::default()).await?;
        let other = conn.create_channel().await?;
        other
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        // consumer_cancel_notify: the server sends basic.cancel, lapin ends the stream.
        let end = tokio::time::timeout(EVENT_TIMEOUT, consumer.next()).await?;
        assert!(end.is_none(), "stream should end on server cancel: {end:?}");
        // The channel itself stays open.
        assert!(ch.status().connected());
        let q2 = unique("q-after-cancel");
        declare_queue(&ch, &q2).await?;
        ch.queue_delete(q2.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_312() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let key = unique("nowhere");
        let confirm = ch
            .basic_publish(
                "".into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"lost",
                BasicProperties::default().with_message_id("mid-1".into()),
            )
            .await?
            .await?;
        assert!(
            confirm.is_ack(),
            "unroutable messages are still acked: {confirm:?}"
        );
        let returned = confirm
            .take_message()
            .ok_or_else(|| anyhow::anyhow!("no basic.return"))?;
        assert_eq!(returned.reply_code, 312);
        assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
        assert_eq!(returned.delivery.routing_key.as_str(), key);
        assert_eq!(returned.delivery.exchange.as_str(), "");
        assert_eq!(returned.delivery.data, b"lost");
        assert_eq!(
            returned
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some("mid-1")
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn get_returns_messages_in_order_then_empty() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-get");
        declare_queue(&ch, &q).await?;
        assert!(
            ch.basic_get(q.as_str().into(), BasicGetOptions::default())
                .await?
                .is_none()
        );
        fill_queue(&ch, &q, 2).await?;
        let first = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(
            (
                body_text(&first.delivery).as_str(),
                first.message_count,
                first.delivery.redelivered
            ),
            ("m0", 1, false)
        );
        assert_eq!(first.delivery.routing_key.as_str(), q);
        let second = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(
            (body_text(&second.delivery).as_str(), second.message_count),
            ("m1", 0)
        );
        assert!(
            ch.basic_get(q.as_str().into(), BasicGetOptions::default())
                .await?
                .is_none()
        );
        // The first was not acked: it comes back, redelivered, when rejected.
        first
            .delivery
            .acker
            .reject(BasicRejectOptions { requeue: true })
            .await?;
        let again = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(
            (
                body_text(&again.delivery).as_str(),
                again.delivery.redelivered
            ),
            ("m0", true)
        );
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn two_consumers_share_messages_round_robin() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-rr");
        declare_queue(&ch, &q).await?;
        let ch_a = conn.create_channel().await?;
        let ch_b = conn.create_channel().await?;
        let mut a = consume(
            &ch_a,
            &q,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await?;
        let mut b = consume(
            &ch_b,
            &q,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await?;
        for i in 0..10 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await?;
        }
        let mut got_a = Vec::new();
        let mut got_b = Vec::new();
        for _ in 0..5 {
            got_a.push(body_text(&next_delivery(&mut a).await?));
            got_b.push(body_text(&next_delivery(&mut b).await?));
        }
        // Strict alternation: one gets the even messages, the other the odd.
        let even: Vec<String> = (0..10).step_by(2).map(|i| format!("m{i}")).collect();
        let odd: Vec<String> = (1..10).step_by(2).map(|i| format!("m{i}")).collect();
        assert!(
            (got_a == even && got_b == odd) || (got_a == odd && got_b == even),
            "a={got_a:?} b={got_b:?}"
        );
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_is_530() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-tag");
        let q2 = unique("q-tag2");
        declare_queue(&ch, &q).await?;
        declare_queue(&ch, &q2).await?;
        ch.basic_consume(
            q.as_str().into(),
            "same-tag".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let result = ch
            .basic_consume(
                q2.as_str().into(),
                "same-tag".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(
            result,
            530,
            "NOT_ALLOWED - attempt to reuse consumer tag 'same-tag'",
        )?;
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        ch.queue_delete(q2.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}
