//! queue.declare / purge / delete, exclusivity and auto-delete.

use lapin::Connection;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use warren_e2e::{
    EVENT_TIMEOUT, amqp_error, declare_queue, expect_code, publish, queue_counts, start, unique,
    wait_ready, wait_until, with_timeout,
};

/// Whether `name` exists, asked on a fresh channel (a 404 closes it).
/// An exclusive queue of another connection exists (405).
async fn queue_exists(conn: &Connection, name: &str) -> anyhow::Result<bool> {
    let ch = conn.create_channel().await?;
    match queue_counts(&ch, name).await {
        Ok(_) => Ok(true),
        Err(e) => match amqp_error(&e) {
            Some((404, _)) => Ok(false),
            Some((405, _)) => Ok(true),
            _ => Err(e.into()),
        },
    }
}

#[tokio::test]
async fn server_named_queue_is_amq_gen() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await?;
        assert!(q.name().as_str().starts_with("amq.gen-"), "{}", q.name());
        assert!(q.name().as_str().len() > "amq.gen-".len());
        assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
        let other = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await?;
        assert_ne!(q.name(), other.name());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn passive_declare_of_missing_queue_is_404() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("q-missing");
        let result = queue_counts(&ch, &name).await;
        let text = expect_code(result, 404, "NOT_FOUND")?;
        assert_eq!(text, format!("NOT_FOUND - no queue '{name}' in vhost '/'"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn amq_prefix_queue_name_is_403() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("amq.q");
        let text = expect_code(declare_queue(&ch, &name).await, 403, "ACCESS_REFUSED")?;
        assert_eq!(
            text,
            format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection_405() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let owner = broker.connect().await;
        let other = broker.connect().await;
        let name = unique("q-excl");
        let ch = owner.create_channel().await?;
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await?;
        // Another channel of the owning connection may use it.
        let ch2 = owner.create_channel().await?;
        queue_counts(&ch2, &name).await?;

        let prefix = format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'"
        );
        let och = other.create_channel().await?;
        let result = och
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await;
        expect_code(result, 405, &prefix)?;
        let och = other.create_channel().await?;
        expect_code(queue_counts(&och, &name).await, 405, &prefix)?;
        let och = other.create_channel().await?;
        let result = och
            .basic_consume(
                name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(result, 405, &prefix)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn exclusive_queue_is_deleted_when_its_connection_closes() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let owner = broker.connect().await;
        let observer = broker.connect().await;
        let name = unique("q-excl-gone");
        let ch = owner.create_channel().await?;
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await?;
        assert!(queue_exists(&observer, &name).await?);
        owner.close(200, "bye".into()).await?;
        wait_until(EVENT_TIMEOUT, "exclusive queue deletion", || async {
            Ok((!queue_exists(&observer, &name).await?).then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn auto_delete_queue_goes_when_its_last_consumer_cancels() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("q-autodel");
        let opts = QueueDeclareOptions::default().auto_delete();
        ch.queue_declare(name.as_str().into(), opts, FieldTable::default())
            .await?;
        // Never consumed: it stays.
        assert!(queue_exists(&conn, &name).await?);
        let c1 = ch
            .basic_consume(
                name.as_str().into(),
                "c1".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let c2 = ch
            .basic_consume(
                name.as_str().into(),
                "c2".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        assert_eq!(queue_counts(&ch, &name).await?, (0, 2));
        ch.basic_cancel(c1.tag(), BasicCancelOptions::default())
            .await?;
        assert_eq!(queue_counts(&ch, &name).await?, (0, 1));
        ch.basic_cancel(c2.tag(), BasicCancelOptions::default())
            .await?;
        wait_until(EVENT_TIMEOUT, "auto-delete", || async {
            Ok((!queue_exists(&conn, &name).await?).then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn redeclare_with_other_durability_is_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("q-equiv");
        declare_queue(&ch, &name).await?;
        let durable = QueueDeclareOptions::durable();
        let result = ch.queue_declare(name.as_str().into(), durable, FieldTable::default()).await;
        let text = expect_code(result, 406, "PRECONDITION_FAILED")?;
        assert_eq!(
            text,
            format!("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{name}' in vhost '/': received 'true' but current is 'false'")
        );
        let ch = conn.create_channel().await?;
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn redeclare_with_other_arguments_is_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("q-equiv-args");
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(10));
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::default(),
            args.clone(),
        )
        .await?;
        // Same arguments: fine.
        ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args)
            .await?;
        let mut other = FieldTable::default();
        other.insert("x-max-length".into(), AMQPValue::LongInt(20));
        let result = ch
            .queue_declare(name.as_str().into(), QueueDeclareOptions::default(), other)
            .await;
        expect_code(
            result,
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length'",
        )?;
        let ch = conn.create_channel().await?;
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn purge_reports_and_removes_ready_messages() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("q-purge");
        declare_queue(&ch, &name).await?;
        for i in 0..5 {
            publish(&ch, "", &name, format!("m{i}").as_bytes()).await?;
        }
        wait_ready(&ch, &name, 5).await?;
        assert_eq!(
            ch.queue_purge(name.as_str().into(), QueuePurgeOptions::default())
                .await?,
            5
        );
        assert_eq!(queue_counts(&ch, &name).await?, (0, 0));
        assert_eq!(
            ch.queue_purge(name.as_str().into(), QueuePurgeOptions::default())
                .await?,
            0
        );
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn delete_if_unused_refuses_a_consumed_queue_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("q-del-unused");
        declare_queue(&ch, &name).await?;
        let _consumer = ch
            .basic_consume(
                name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let ch2 = conn.create_channel().await?;
        let if_unused = QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        };
        let result = ch2.queue_delete(name.as_str().into(), if_unused).await;
        let text = expect_code(result, 406, "PRECONDITION_FAILED")?;
        assert_eq!(
            text,
            format!("PRECONDITION_FAILED - queue '{name}' in vhost '/' in use")
        );
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn delete_if_empty_refuses_a_queue_with_messages_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("q-del-empty");
        declare_queue(&ch, &name).await?;
        publish(&ch, "", &name, b"keep me").await?;
        wait_ready(&ch, &name, 1).await?;
        let if_empty = QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        };
        let text = expect_code(
            ch.queue_delete(name.as_str().into(), if_empty).await,
            406,
            "PRECONDITION_FAILED",
        )?;
        assert_eq!(
            text,
            format!("PRECONDITION_FAILED - queue '{name}' in vhost '/' not empty")
        );
        let ch = conn.create_channel().await?;
        // A plain delete reports how many messages went with the queue.
        assert_eq!(
            ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await?,
            1
        );
        assert!(!queue_exists(&conn, &name).await?);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn deleting_a_missing_queue_succeeds_with_zero() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let n = ch
            .queue_delete(
                unique("q-never").as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await?;
        assert_eq!(n, 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn declare_ok_reports_ready_messages_and_consumers() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let name = unique("q-counts");
        declare_queue(&ch, &name).await?;
        for i in 0..3 {
            publish(&ch, "", &name, format!("m{i}").as_bytes()).await?;
        }
        wait_ready(&ch, &name, 3).await?;
        // A non-passive redeclare reports the same counts.
        let q = declare_queue(&ch, &name).await?;
        assert_eq!((q.message_count(), q.consumer_count()), (3, 0));
        let cch = conn.create_channel().await?;
        cch.basic_qos(1, BasicQosOptions::default()).await?;
        let _consumer = cch
            .basic_consume(
                name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // One message is out with the consumer (unacked), so two are ready.
        wait_until(EVENT_TIMEOUT, "counts (2, 1)", || async {
            let counts = queue_counts(&ch, &name).await?;
            Ok((counts == (2, 1)).then_some(()))
        })
        .await?;
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}
