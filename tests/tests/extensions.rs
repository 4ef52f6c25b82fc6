//! RabbitMQ extensions users depend on: TTL, dead-lettering, max-length,
//! alternate exchanges, queue expiry, priorities.

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren_e2e::{
    EVENT_TIMEOUT, declare_queue, drain_until_marker, publish, queue_counts, start, unique,
    wait_ready, wait_until, with_timeout,
};

fn args(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

async fn declare_with(ch: &Channel, name: &str, arguments: FieldTable) -> lapin::Result<()> {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
        .await
        .map(|_| ())
}

async fn delete(ch: &Channel, queues: &[&str]) -> anyhow::Result<()> {
    for q in queues {
        ch.queue_delete((*q).into(), Default::default()).await?;
    }
    Ok(())
}

fn as_str(v: Option<&AMQPValue>) -> Option<String> {
    match v {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn as_int(v: Option<&AMQPValue>) -> Option<i64> {
    match v {
        Some(AMQPValue::LongLongInt(n)) => Some(*n),
        Some(AMQPValue::LongInt(n)) => Some(i64::from(*n)),
        Some(AMQPValue::LongUInt(n)) => Some(i64::from(*n)),
        _ => None,
    }
}

/// The first x-death entry's (reason, queue, count).
fn first_death(props: &BasicProperties) -> anyhow::Result<(String, String, i64)> {
    let headers = props
        .headers()
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no headers"))?;
    let deaths = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        other => anyhow::bail!("x-death is {other:?}"),
    };
    let first = match deaths.first() {
        Some(AMQPValue::FieldTable(t)) => t.inner().clone(),
        other => anyhow::bail!("x-death[0] is {other:?}"),
    };
    Ok((
        as_str(first.get("reason")).unwrap_or_default(),
        as_str(first.get("queue")).unwrap_or_default(),
        as_int(first.get("count")).unwrap_or(-1),
    ))
}

#[tokio::test]
async fn rejected_message_is_dead_lettered_with_x_death() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let dlq = unique("q-dlq");
        let src = unique("q-dl-src");
        declare_queue(&ch, &dlq).await?;
        declare_with(
            &ch,
            &src,
            args(&[
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&dlq)),
            ]),
        )
        .await?;
        publish(&ch, "", &src, b"doomed").await?;
        wait_ready(&ch, &src, 1).await?;
        let got = ch
            .basic_get(src.as_str().into(), BasicGetOptions::default())
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        got.delivery
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await?;
        wait_ready(&ch, &dlq, 1).await?;
        let dead = ch
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(dead.delivery.data, b"doomed");
        assert_eq!(
            first_death(&dead.delivery.properties)?,
            ("rejected".to_owned(), src.clone(), 1)
        );
        assert_eq!(queue_counts(&ch, &src).await?, (0, 0));
        delete(&ch, &[&src, &dlq]).await
    })
    .await
}

#[tokio::test]
async fn expired_message_is_dead_lettered_as_expired() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let dlq = unique("q-dlq-ttl");
        let src = unique("q-ttl");
        declare_queue(&ch, &dlq).await?;
        declare_with(
            &ch,
            &src,
            args(&[
                ("x-message-ttl", AMQPValue::LongInt(50)),
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&dlq)),
            ]),
        )
        .await?;
        publish(&ch, "", &src, b"short-lived").await?;
        wait_ready(&ch, &dlq, 1).await?;
        let dead = ch
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(dead.delivery.data, b"short-lived");
        assert_eq!(
            first_death(&dead.delivery.properties)?,
            ("expired".to_owned(), src.clone(), 1)
        );
        assert_eq!(queue_counts(&ch, &src).await?, (0, 0));
        delete(&ch, &[&src, &dlq]).await
    })
    .await
}

#[tokio::test]
async fn per_message_expiration_drops_the_message() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-expiration");
        declare_queue(&ch, &q).await?;
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"gone",
            BasicProperties::default().with_expiration("30".into()),
        )
        .await?;
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"kept",
            BasicProperties::default(),
        )
        .await?;
        // The expired head is dropped; the other stays.
        wait_until(EVENT_TIMEOUT, "expiry of the first message", || async {
            let got = ch
                .basic_get(q.as_str().into(), BasicGetOptions::default())
                .await?;
            match got {
                Some(m) if m.delivery.data == b"kept" => Ok(Some(())),
                Some(m) => {
                    m.delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: true })
                        .await?;
                    Ok(None)
                }
                None => Ok(None),
            }
        })
        .await?;
        delete(&ch, &[&q]).await
    })
    .await
}

#[tokio::test]
async fn max_length_drops_from_the_head() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-maxlen");
        declare_with(&ch, &q, args(&[("x-max-length", AMQPValue::LongInt(2))])).await?;
        for body in ["m0", "m1", "m2"] {
            publish(&ch, "", &q, body.as_bytes()).await?;
        }
        // The marker itself pushes m1 out too: only m2 and the marker fit.
        assert_eq!(drain_until_marker(&ch, &q).await?, vec!["m2"]);
        delete(&ch, &[&q]).await
    })
    .await
}

#[tokio::test]
async fn max_length_reject_publish_nacks_the_overflow() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-maxlen-reject");
        declare_with(
            &ch,
            &q,
            args(&[
                ("x-max-length", AMQPValue::LongInt(1)),
                ("x-overflow", text("reject-publish")),
            ]),
        )
        .await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        assert!(publish(&ch, "", &q, b"fits").await?.await?.is_ack());
        assert!(publish(&ch, "", &q, b"overflows").await?.await?.is_nack());
        let got = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(got.delivery.data, b"fits");
        delete(&ch, &[&q]).await
    })
    .await
}

#[tokio::test]
async fn alternate_exchange_catches_unroutable_messages() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ae = unique("ex-ae");
        let main = unique("ex-main");
        ch.exchange_declare(
            ae.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            main.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            args(&[("alternate-exchange", text(&ae))]),
        )
        .await?;
        let routed = unique("q-routed");
        let caught = unique("q-caught");
        declare_queue(&ch, &routed).await?;
        declare_queue(&ch, &caught).await?;
        ch.queue_bind(
            routed.as_str().into(),
            main.as_str().into(),
            "known".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.queue_bind(
            caught.as_str().into(),
            ae.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        publish(&ch, &main, "known", b"direct").await?;
        publish(&ch, &main, "unknown", b"fallback").await?;
        assert_eq!(drain_until_marker(&ch, &routed).await?, vec!["direct"]);
        assert_eq!(drain_until_marker(&ch, &caught).await?, vec!["fallback"]);
        delete(&ch, &[&routed, &caught]).await?;
        ch.exchange_delete(main.as_str().into(), Default::default())
            .await?;
        ch.exchange_delete(ae.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unused_queue_with_x_expires_is_deleted() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-expires");
        declare_with(&ch, &q, args(&[("x-expires", AMQPValue::LongInt(200))])).await?;
        // Declares and gets count as use and would restart the clock, so
        // probe with mandatory publishes: once the queue is gone they come back.
        let probe = conn.create_channel().await?;
        probe
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        wait_until(EVENT_TIMEOUT, "queue expiry", || async {
            let confirm = probe
                .basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    b"probe",
                    BasicProperties::default(),
                )
                .await?
                .await?;
            Ok(confirm
                .take_message()
                .map(|returned| assert_eq!(returned.reply_code, 312)))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn priority_queue_delivers_highest_priority_first() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-priority");
        declare_with(
            &ch,
            &q,
            args(&[("x-max-priority", AMQPValue::ShortShortUInt(10))]),
        )
        .await?;
        for (body, prio) in [("low", 1u8), ("high", 9), ("none", 0), ("mid", 5)] {
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                Default::default(),
                body.as_bytes(),
                BasicProperties::default().with_priority(prio),
            )
            .await?;
        }
        wait_ready(&ch, &q, 4).await?;
        let mut order = Vec::new();
        for _ in 0..4 {
            let got = ch
                .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
                .await?
                .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
            order.push(String::from_utf8_lossy(&got.delivery.data).into_owned());
        }
        assert_eq!(order, vec!["high", "mid", "low", "none"]);
        delete(&ch, &[&q]).await
    })
    .await
}
