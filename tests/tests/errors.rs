//! Error semantics across operations: which errors close what, and that
//! soft errors stay on their channel while hard ones take the connection.

use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ChannelFlowOptions, ExchangeBindOptions,
    QueueBindOptions,
};
use lapin::types::FieldTable;
use warren_e2e::{
    EVENT_TIMEOUT, declare_queue, expect_code, next_delivery, publish, start, unique, wait_until,
    with_timeout,
};

#[tokio::test]
async fn binding_to_a_missing_exchange_or_queue_is_404() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-bind");
        declare_queue(&ch, &q).await?;
        let ex = unique("ex-missing");
        let result = ch
            .queue_bind(
                q.as_str().into(),
                ex.as_str().into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        let text = expect_code(result, 404, "NOT_FOUND")?;
        assert_eq!(text, format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"));
        let ch = conn.create_channel().await?;
        let missing_q = unique("q-missing");
        let result = ch
            .queue_bind(
                missing_q.as_str().into(),
                "amq.direct".into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        let text = expect_code(result, 404, "NOT_FOUND")?;
        assert_eq!(
            text,
            format!("NOT_FOUND - no queue '{missing_q}' in vhost '/'")
        );
        let ch = conn.create_channel().await?;
        let result = ch
            .exchange_bind(
                "amq.fanout".into(),
                ex.as_str().into(),
                "".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(result, 404, "NOT_FOUND - no exchange")?;
        let ch = conn.create_channel().await?;
        ch.queue_delete(q.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unbinding_a_binding_that_does_not_exist_succeeds() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-unbind");
        declare_queue(&ch, &q).await?;
        ch.queue_unbind(
            q.as_str().into(),
            "amq.direct".into(),
            "never-bound".into(),
            FieldTable::default(),
        )
        .await?;
        assert!(ch.status().connected());
        ch.queue_delete(q.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_soft_error_leaves_other_channels_consuming() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-survivor");
        declare_queue(&ch, &q).await?;
        let cch = conn.create_channel().await?;
        let mut c = cch
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
        publish(&ch, "", &q, b"before").await?;
        assert_eq!(next_delivery(&mut c).await?.data, b"before");
        let bad = conn.create_channel().await?;
        expect_code(
            warren_e2e::queue_counts(&bad, &unique("nope")).await,
            404,
            "NOT_FOUND",
        )?;
        publish(&ch, "", &q, b"after").await?;
        assert_eq!(next_delivery(&mut c).await?.data, b"after");
        ch.queue_delete(q.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_hard_error_closes_every_channel_of_the_connection() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-hard");
        declare_queue(&ch, &q).await?;
        let mut c = ch
            .basic_consume(
                q.as_str().into(),
                "tag".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let other = conn.create_channel().await?;
        // Reusing a consumer tag is a connection error (530) in RabbitMQ.
        let result = ch
            .basic_consume(
                q.as_str().into(),
                "tag".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(result, 530, "NOT_ALLOWED")?;
        // The first consumer's stream ends and the other channel is gone too.
        let end = tokio::time::timeout(EVENT_TIMEOUT, futures::StreamExt::next(&mut c)).await?;
        assert!(
            !matches!(end, Some(Ok(_))),
            "consumer still delivering: {end:?}"
        );
        wait_until(EVENT_TIMEOUT, "connection closed", || async {
            Ok((!conn.status().connected() && !other.status().connected()).then_some(()))
        })
        .await?;
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        ch.queue_delete(q.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn immediate_publish_is_540_not_implemented() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        ch.confirm_select(Default::default()).await?;
        let confirm = ch
            .basic_publish(
                "".into(),
                "anything".into(),
                BasicPublishOptions {
                    immediate: true,
                    ..Default::default()
                },
                b"x",
                BasicProperties::default(),
            )
            .await?;
        expect_code(confirm.await, 540, "NOT_IMPLEMENTED - immediate=true")?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn channel_flow_off_is_540_not_implemented() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let result = ch.channel_flow(ChannelFlowOptions { active: false }).await;
        expect_code(result, 540, "NOT_IMPLEMENTED - active=false")?;
        Ok(())
    })
    .await
}
