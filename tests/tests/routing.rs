//! Routing end to end through direct, fanout, topic and headers exchanges.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren_e2e::{
    declare_queue, drain_until_marker, next_delivery, publish, start, unique, with_timeout,
};

async fn exchange(ch: &Channel, kind: ExchangeKind) -> anyhow::Result<String> {
    let name = unique("ex-route");
    ch.exchange_declare(
        name.as_str().into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(name)
}

async fn bound_queue(
    ch: &Channel,
    ex: &str,
    key: &str,
    args: FieldTable,
) -> anyhow::Result<String> {
    let q = unique("q-route");
    declare_queue(ch, &q).await?;
    ch.queue_bind(
        q.as_str().into(),
        ex.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await?;
    Ok(q)
}

async fn cleanup(ch: &Channel, ex: &str, queues: &[String]) -> anyhow::Result<()> {
    for q in queues {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    ch.exchange_delete(ex.into(), Default::default()).await?;
    Ok(())
}

#[tokio::test]
async fn direct_routes_on_exact_key_including_multiple_bindings() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ex = exchange(&ch, ExchangeKind::Direct).await?;
        let errors = bound_queue(&ch, &ex, "error", FieldTable::default()).await?;
        let all = bound_queue(&ch, &ex, "error", FieldTable::default()).await?;
        for key in ["info", "warning"] {
            ch.queue_bind(
                all.as_str().into(),
                ex.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        for key in ["info", "error", "debug", "warning", "Error"] {
            publish(&ch, &ex, key, key.as_bytes()).await?;
        }
        assert_eq!(drain_until_marker(&ch, &errors).await?, vec!["error"]);
        assert_eq!(
            drain_until_marker(&ch, &all).await?,
            vec!["info", "error", "warning"]
        );
        // The default exchange routes by queue name only.
        publish(&ch, "", &errors, b"direct-to-queue").await?;
        assert_eq!(
            drain_until_marker(&ch, &errors).await?,
            vec!["direct-to-queue"]
        );
        cleanup(&ch, &ex, &[errors, all]).await
    })
    .await
}

#[tokio::test]
async fn fanout_ignores_the_key_and_unbind_stops_routing() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ex = exchange(&ch, ExchangeKind::Fanout).await?;
        let a = bound_queue(&ch, &ex, "", FieldTable::default()).await?;
        let b = bound_queue(&ch, &ex, "whatever", FieldTable::default()).await?;
        publish(&ch, &ex, "k1", b"one").await?;
        ch.queue_unbind(
            b.as_str().into(),
            ex.as_str().into(),
            "whatever".into(),
            FieldTable::default(),
        )
        .await?;
        publish(&ch, &ex, "k2", b"two").await?;
        assert_eq!(drain_until_marker(&ch, &a).await?, vec!["one", "two"]);
        assert_eq!(drain_until_marker(&ch, &b).await?, vec!["one"]);
        cleanup(&ch, &ex, &[a, b]).await
    })
    .await
}

#[tokio::test]
async fn topic_wildcards_match_words() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ex = exchange(&ch, ExchangeKind::Topic).await?;
        let keys = [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "quick.brown.fox",
            "orange",
            "quick.orange.new.rabbit",
            "lazy.orange.new.rabbit",
            "lazy",
            "",
            "a..b",
        ];
        let cases: [(&str, &[&str]); 8] = [
            (
                "*.orange.*",
                &[
                    "quick.orange.rabbit",
                    "lazy.orange.elephant",
                    "quick.orange.fox",
                ],
            ),
            ("*.*.rabbit", &["quick.orange.rabbit", "lazy.pink.rabbit"]),
            (
                "lazy.#",
                &[
                    "lazy.orange.elephant",
                    "lazy.brown.fox",
                    "lazy.pink.rabbit",
                    "lazy.orange.new.rabbit",
                    "lazy",
                ],
            ),
            ("#", &keys),
            (
                "#.rabbit",
                &[
                    "quick.orange.rabbit",
                    "lazy.pink.rabbit",
                    "quick.orange.new.rabbit",
                    "lazy.orange.new.rabbit",
                ],
            ),
            // RabbitMQ: the empty key has no words, so `*` misses it while
            // `#` matches it; "a..b" has an empty middle word that `*` takes.
            ("*", &["orange", "lazy"]),
            ("a.*.b", &["a..b"]),
            ("quick.#.fox", &["quick.orange.fox", "quick.brown.fox"]),
        ];
        let mut queues = Vec::new();
        for (pattern, _) in &cases {
            queues.push(bound_queue(&ch, &ex, pattern, FieldTable::default()).await?);
        }
        for key in keys {
            publish(&ch, &ex, key, key.as_bytes()).await?;
        }
        for ((pattern, expected), q) in cases.iter().zip(&queues) {
            let got = drain_until_marker(&ch, q).await?;
            assert_eq!(got, expected.to_vec(), "pattern {pattern:?}");
        }
        cleanup(&ch, &ex, &queues).await
    })
    .await
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

#[tokio::test]
async fn headers_exchange_matches_all_or_any() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ex = exchange(&ch, ExchangeKind::Headers).await?;
        let all = bound_queue(
            &ch,
            &ex,
            "",
            table(&[
                ("x-match", text("all")),
                ("format", text("pdf")),
                ("type", text("report")),
            ]),
        )
        .await?;
        let any = bound_queue(
            &ch,
            &ex,
            "",
            table(&[
                ("x-match", text("any")),
                ("format", text("zip")),
                ("type", text("log")),
            ]),
        )
        .await?;
        // Without x-match, "all" is the default.
        let default = bound_queue(&ch, &ex, "", table(&[("format", text("pdf"))])).await?;
        // A numeric header matches by value.
        let num = bound_queue(&ch, &ex, "", table(&[("n", AMQPValue::LongInt(42))])).await?;
        let messages: [(&str, FieldTable); 6] = [
            (
                "pdf-report",
                table(&[("format", text("pdf")), ("type", text("report"))]),
            ),
            ("pdf-only", table(&[("format", text("pdf"))])),
            (
                "zip-report",
                table(&[("format", text("zip")), ("type", text("report"))]),
            ),
            (
                "log",
                table(&[("type", text("log")), ("extra", AMQPValue::Boolean(true))]),
            ),
            ("none", FieldTable::default()),
            ("n42", table(&[("n", AMQPValue::LongInt(42))])),
        ];
        for (body, headers) in messages {
            ch.basic_publish(
                ex.as_str().into(),
                "ignored-key".into(),
                Default::default(),
                body.as_bytes(),
                BasicProperties::default().with_headers(headers),
            )
            .await?;
        }
        assert_eq!(drain_until_marker(&ch, &all).await?, vec!["pdf-report"]);
        assert_eq!(
            drain_until_marker(&ch, &any).await?,
            vec!["zip-report", "log"]
        );
        assert_eq!(
            drain_until_marker(&ch, &default).await?,
            vec!["pdf-report", "pdf-only"]
        );
        assert_eq!(drain_until_marker(&ch, &num).await?, vec!["n42"]);
        cleanup(&ch, &ex, &[all, any, default, num]).await
    })
    .await
}

#[tokio::test]
async fn a_large_body_fanned_out_arrives_intact_everywhere() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let ex = exchange(&ch, ExchangeKind::Fanout).await?;
        let mut queues = Vec::new();
        for _ in 0..5 {
            queues.push(bound_queue(&ch, &ex, "", FieldTable::default()).await?);
        }
        // Several frames' worth (frame_max is 128 KiB), with a pattern that
        // exposes reordered or dropped frames.
        let body: Vec<u8> = (0..700_000u32)
            .map(|i| (i.wrapping_mul(31) % 251) as u8)
            .collect();
        publish(&ch, &ex, "", &body).await?;
        for q in &queues {
            let cch = conn.create_channel().await?;
            let mut c = cch
                .basic_consume(
                    q.as_str().into(),
                    "".into(),
                    lapin::options::BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            let d = next_delivery(&mut c).await?;
            assert_eq!(d.data.len(), body.len());
            assert!(d.data == body, "body corrupted in {q}");
            cch.close(200, "ok".into()).await?;
        }
        cleanup(&ch, &ex, &queues).await
    })
    .await
}
