//! The six RabbitMQ tutorials, as a user would first try them.

use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer, ExchangeKind};
use warren_e2e::{
    expect_no_delivery, next_delivery, publish, start, unique, wait_ready, with_timeout,
};

async fn consumer(ch: &Channel, q: &str, no_ack: bool) -> lapin::Result<Consumer> {
    ch.basic_consume(
        q.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

async fn temp_queue(ch: &Channel, ex: &str, keys: &[&str]) -> anyhow::Result<String> {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await?;
    for key in keys {
        ch.queue_bind(
            q.name().clone(),
            ex.into(),
            (*key).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(q.name().to_string())
}

async fn bodies(c: &mut Consumer, n: usize) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(String::from_utf8_lossy(&next_delivery(c).await?.data).into_owned());
    }
    Ok(out)
}

#[tokio::test]
async fn tutorial_1_hello_world() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("hello");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        publish(&ch, "", &q, b"Hello World!").await?;
        let receiver = broker.connect().await;
        let rch = receiver.create_channel().await?;
        let mut c = consumer(&rch, &q, true).await?;
        assert_eq!(bodies(&mut c, 1).await?, vec!["Hello World!"]);
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tutorial_2_work_queues_dispatch_fairly_with_prefetch_one() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("task_queue");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
        let slow_ch = conn.create_channel().await?;
        slow_ch.basic_qos(1, BasicQosOptions::default()).await?;
        let mut slow = consumer(&slow_ch, &q, false).await?;
        let fast_ch = conn.create_channel().await?;
        fast_ch.basic_qos(1, BasicQosOptions::default()).await?;
        let persistent = BasicProperties::default().with_delivery_mode(2);
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"long task.....",
            persistent.clone(),
        )
        .await?;
        // The slow worker takes the first task and sits on it.
        let held = next_delivery(&mut slow).await?;
        assert_eq!(held.properties.delivery_mode(), &Some(2));
        let mut fast = consumer(&fast_ch, &q, false).await?;
        for i in 0..4 {
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                format!("task {i}.").as_bytes(),
                persistent.clone(),
            )
            .await?;
        }
        // Every other task goes to the idle worker, one at a time.
        for i in 0..4 {
            let d = next_delivery(&mut fast).await?;
            assert_eq!(d.data, format!("task {i}.").as_bytes());
            d.acker.ack(BasicAckOptions::default()).await?;
        }
        wait_ready(&ch, &q, 0).await?;
        expect_no_delivery(&mut slow, std::time::Duration::from_millis(200)).await?;
        held.acker.ack(BasicAckOptions::default()).await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tutorial_3_publish_subscribe() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let logs = unique("logs");
        ch.exchange_declare(
            logs.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut subscribers = Vec::new();
        for _ in 0..2 {
            let sch = conn.create_channel().await?;
            let q = temp_queue(&sch, &logs, &[""]).await?;
            subscribers.push((consumer(&sch, &q, true).await?, sch));
        }
        for line in ["info: a", "warning: b"] {
            publish(&ch, &logs, "", line.as_bytes()).await?;
        }
        for (c, _) in &mut subscribers {
            assert_eq!(bodies(c, 2).await?, vec!["info: a", "warning: b"]);
        }
        ch.exchange_delete(logs.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tutorial_4_routing_by_severity() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ex = unique("direct_logs");
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let ech = conn.create_channel().await?;
        let errors_q = temp_queue(&ech, &ex, &["error"]).await?;
        let mut errors = consumer(&ech, &errors_q, true).await?;
        let ach = conn.create_channel().await?;
        let all_q = temp_queue(&ach, &ex, &["info", "warning", "error"]).await?;
        let mut all = consumer(&ach, &all_q, true).await?;
        for (sev, msg) in [
            ("info", "i"),
            ("error", "e"),
            ("debug", "d"),
            ("warning", "w"),
        ] {
            publish(&ch, &ex, sev, msg.as_bytes()).await?;
        }
        publish(&ch, &ex, "error", b"last").await?;
        assert_eq!(bodies(&mut errors, 2).await?, vec!["e", "last"]);
        assert_eq!(bodies(&mut all, 4).await?, vec!["i", "e", "w", "last"]);
        ch.exchange_delete(ex.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tutorial_5_topics() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ex = unique("topic_logs");
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let kch = conn.create_channel().await?;
        let kern_q = temp_queue(&kch, &ex, &["kern.*", "*.critical"]).await?;
        let mut kern = consumer(&kch, &kern_q, true).await?;
        for key in [
            "kern.critical",
            "kern.info",
            "cron.critical",
            "cron.info",
            "kern.disk.full",
            "end.critical",
        ] {
            publish(&ch, &ex, key, key.as_bytes()).await?;
        }
        // Matching two bindings still delivers once.
        assert_eq!(
            bodies(&mut kern, 4).await?,
            vec![
                "kern.critical",
                "kern.info",
                "cron.critical",
                "end.critical"
            ]
        );
        ch.exchange_delete(ex.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

fn fib(n: u64) -> u64 {
    (0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0
}

#[tokio::test]
async fn tutorial_6_rpc_with_reply_to_and_correlation_id() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let server_conn = broker.connect().await;
        let sch = server_conn.create_channel().await?;
        let rpc_queue = unique("rpc_queue");
        sch.queue_declare(
            rpc_queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        sch.basic_qos(1, BasicQosOptions::default()).await?;
        let mut requests = consumer(&sch, &rpc_queue, false).await?;
        let server = tokio::spawn(async move {
            while let Some(Ok(req)) = requests.next().await {
                let n: u64 = String::from_utf8_lossy(&req.data).parse().unwrap_or(0);
                let reply_to = req.properties.reply_to().clone().unwrap_or_default();
                let props = BasicProperties::default().with_correlation_id(
                    req.properties.correlation_id().clone().unwrap_or_default(),
                );
                let sent = sch
                    .basic_publish(
                        "".into(),
                        reply_to,
                        BasicPublishOptions::default(),
                        fib(n).to_string().as_bytes(),
                        props,
                    )
                    .await;
                if sent.is_err() || req.acker.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
            }
        });
        let client_conn = broker.connect().await;
        let cch = client_conn.create_channel().await?;
        let callback = cch
            .queue_declare(
                "".into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await?;
        let mut replies = consumer(&cch, callback.name().as_str(), true).await?;
        for (i, n) in [10u64, 30, 1].into_iter().enumerate() {
            let corr = format!("req-{i}");
            let props = BasicProperties::default()
                .with_reply_to(callback.name().clone())
                .with_correlation_id(corr.as_str().into());
            cch.basic_publish(
                "".into(),
                rpc_queue.as_str().into(),
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                props,
            )
            .await?;
            let reply = next_delivery(&mut replies).await?;
            assert_eq!(
                reply
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|s| s.as_str()),
                Some(corr.as_str())
            );
            assert_eq!(String::from_utf8_lossy(&reply.data), fib(n).to_string());
        }
        cch.queue_delete(rpc_queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
        server.abort();
        Ok(())
    })
    .await
}
