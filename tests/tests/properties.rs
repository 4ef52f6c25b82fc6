//! All 14 basic properties and every field-table type survive the broker
//! byte for byte.

use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable};
use warren_e2e::{declare_queue, next_delivery, start, unique, with_timeout};

fn every_field_type() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("flag".into(), AMQPValue::Boolean(true));
    nested.insert(
        "deeper".into(),
        AMQPValue::FieldTable({
            let mut t = FieldTable::default();
            t.insert("x".into(), AMQPValue::LongLongInt(-1));
            t
        }),
    );
    let array: FieldArray = vec![
        AMQPValue::LongInt(1),
        AMQPValue::LongString("two".into()),
        AMQPValue::FieldArray(vec![AMQPValue::Boolean(false)].into()),
        AMQPValue::Void,
    ]
    .into();
    let mut t = FieldTable::default();
    t.insert("bool".into(), AMQPValue::Boolean(true));
    t.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    t.insert("u8".into(), AMQPValue::ShortShortUInt(200));
    t.insert("i16".into(), AMQPValue::ShortInt(-1600));
    t.insert("u16".into(), AMQPValue::ShortUInt(65_000));
    t.insert("i32".into(), AMQPValue::LongInt(-320_000));
    t.insert("u32".into(), AMQPValue::LongUInt(4_000_000_000));
    t.insert("i64".into(), AMQPValue::LongLongInt(-(1 << 40)));
    t.insert("f32".into(), AMQPValue::Float(1.5));
    t.insert("f64".into(), AMQPValue::Double(-2.25e100));
    t.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12_345,
        }),
    );
    t.insert(
        "string".into(),
        AMQPValue::LongString("héllo\0world".into()),
    );
    t.insert(
        "bytes".into(),
        AMQPValue::ByteArray(vec![0u8, 1, 254, 255].into()),
    );
    t.insert("array".into(), AMQPValue::FieldArray(array));
    t.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    t.insert("table".into(), AMQPValue::FieldTable(nested));
    t.insert("void".into(), AMQPValue::Void);
    t
}

#[tokio::test]
async fn all_basic_properties_and_header_types_round_trip() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-props");
        declare_queue(&ch, &q).await?;
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("gzip".into())
            .with_headers(every_field_type())
            .with_delivery_mode(2)
            .with_priority(7)
            .with_correlation_id("corr-1".into())
            .with_reply_to("reply-queue".into())
            .with_expiration("600000".into())
            .with_message_id("msg-1".into())
            .with_timestamp(1_600_000_000)
            .with_type("order.created".into())
            // RabbitMQ checks user_id against the authenticated user.
            .with_user_id("guest".into())
            .with_app_id("warren-e2e".into())
            .with_cluster_id("cluster-a".into());
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"{}",
            props.clone(),
        )
        .await?;
        let mut c = ch
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
        let d = next_delivery(&mut c).await?;
        assert_eq!(d.data, b"{}");
        assert_eq!(d.properties.headers(), props.headers(), "headers");
        assert_eq!(d.properties, props);
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn absent_properties_stay_absent_and_empty_body_is_delivered() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-noprops");
        declare_queue(&ch, &q).await?;
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"",
            BasicProperties::default(),
        )
        .await?;
        let mut c = ch
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
        let d = next_delivery(&mut c).await?;
        assert!(d.data.is_empty());
        assert_eq!(d.properties, BasicProperties::default());
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn user_id_other_than_the_login_is_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        ch.confirm_select(Default::default()).await?;
        let confirm = ch
            .basic_publish(
                "".into(),
                "anything".into(),
                Default::default(),
                b"x",
                BasicProperties::default().with_user_id("mallory".into()),
            )
            .await?;
        warren_e2e::expect_code(
            confirm.await,
            406,
            "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'",
        )?;
        Ok(())
    })
    .await
}
