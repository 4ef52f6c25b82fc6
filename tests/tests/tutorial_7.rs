//! RabbitMQ tutorial 7, publisher confirms, with lapin: the three strategies
//! the tutorial walks through (one at a time, in batches, and handling
//! confirms asynchronously), each publishing a known set and checking that
//! every message was confirmed and is in the queue.

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use warren_e2e::{start, unique, with_timeout};

const MESSAGES: usize = 500;

async fn confirm_channel(conn: &lapin::Connection) -> anyhow::Result<(Channel, String)> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let q = unique("q-tutorial-7");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    Ok((ch, q))
}

async fn publish(ch: &Channel, q: &str, i: usize) -> lapin::Result<lapin::PublisherConfirm> {
    ch.basic_publish(
        "".into(),
        q.into(),
        BasicPublishOptions::default(),
        i.to_string().as_bytes(),
        BasicProperties::default(),
    )
    .await
}

/// Drains the queue and checks it holds exactly 0..MESSAGES in order.
async fn check_and_delete(ch: &Channel, q: &str) -> anyhow::Result<()> {
    let mut got = Vec::new();
    while let Some(m) = ch
        .basic_get(q.into(), BasicGetOptions { no_ack: true })
        .await?
    {
        got.push(String::from_utf8_lossy(&m.delivery.data).parse::<usize>()?);
    }
    assert_eq!(got, (0..MESSAGES).collect::<Vec<_>>());
    ch.queue_delete(q.into(), QueueDeleteOptions::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn strategy_1_publish_and_wait_for_each_confirm() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let (ch, q) = confirm_channel(&conn).await?;
        for i in 0..MESSAGES {
            let confirm = publish(&ch, &q, i).await?.await?;
            assert!(confirm.is_ack(), "message {i} nacked");
        }
        check_and_delete(&ch, &q).await
    })
    .await
}

#[tokio::test]
async fn strategy_2_publish_in_batches() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let (ch, q) = confirm_channel(&conn).await?;
        let mut outstanding = Vec::new();
        for i in 0..MESSAGES {
            outstanding.push(publish(&ch, &q, i).await?);
            if outstanding.len() == 100 {
                for c in outstanding.drain(..) {
                    assert!(c.await?.is_ack());
                }
            }
        }
        for c in outstanding.drain(..) {
            assert!(c.await?.is_ack());
        }
        check_and_delete(&ch, &q).await
    })
    .await
}

#[tokio::test]
async fn strategy_3_handle_confirms_asynchronously() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let (ch, q) = confirm_channel(&conn).await?;
        let mut pending = Vec::new();
        for i in 0..MESSAGES {
            pending.push(tokio::spawn(publish(&ch, &q, i).await?));
        }
        let mut acked = 0;
        for p in pending {
            if p.await??.is_ack() {
                acked += 1;
            }
        }
        assert_eq!(acked, MESSAGES);
        check_and_delete(&ch, &q).await
    })
    .await
}
