//! Connection lifecycle: handshake, negotiation, refusals, closing.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use warren_e2e::raw::{self, Args, FieldValue, RawConn, lookup};
use warren_e2e::{EVENT_TIMEOUT, expect_code, start, unique, wait_until, with_timeout};

#[tokio::test]
async fn server_properties_advertise_rabbitmq_capabilities() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let (_conn, hs) = RawConn::open(broker.addr()).await?;
        for key in ["product", "version", "platform"] {
            anyhow::ensure!(
                matches!(lookup(&hs.server_properties, key), Some(FieldValue::LongString(s)) if !s.is_empty()),
                "server property {key} missing: {:?}",
                hs.server_properties
            );
        }
        let caps = lookup(&hs.server_properties, "capabilities")
            .ok_or_else(|| anyhow::anyhow!("no capabilities table"))?;
        for cap in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "per_consumer_qos",
        ] {
            assert_eq!(caps.get(cap), Some(&FieldValue::Bool(true)), "capability {cap}");
        }
        let mechanisms: Vec<&str> = hs.mechanisms.split(' ').collect();
        assert!(mechanisms.contains(&"PLAIN"), "mechanisms {:?}", hs.mechanisms);
        assert!(hs.locales.split(' ').any(|l| l == "en_US"), "locales {:?}", hs.locales);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tune_proposes_rabbitmq_defaults() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let (_conn, hs) = RawConn::open(broker.addr()).await?;
        assert_eq!(hs.channel_max, 2047, "channel_max");
        assert_eq!(hs.frame_max, 131_072, "frame_max");
        assert_eq!(hs.heartbeat, 60, "heartbeat");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn lapin_negotiates_the_lower_heartbeat_and_server_limits() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let uri = format!("{}?heartbeat=7", broker.uri());
        let conn = broker.try_connect(&uri).await?;
        let config = conn.configuration();
        assert_eq!(config.heartbeat(), 7);
        assert_eq!(config.frame_max(), 131_072);
        assert_eq!(config.channel_max(), 2047);
        assert!(conn.status().connected());
        conn.close(200, "bye".into()).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn server_sends_heartbeats_at_the_negotiated_interval() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let mut conn = RawConn::connect(broker.addr()).await?;
        conn.handshake("guest", "guest", "/", Some((2047, 131_072, 1)))
            .await?;
        // With a 1 s interval a heartbeat must come well within the 10 s
        // frame timeout; three in a row show it is periodic. We send ours
        // too, so the server has no reason to drop us meanwhile.
        for i in 0..3 {
            conn.send(&raw::frame(raw::FRAME_HEARTBEAT, 0, b"")).await?;
            let frame = conn
                .read_frame()
                .await?
                .ok_or_else(|| anyhow::anyhow!("server closed before heartbeat {i}"))?;
            assert_eq!(
                (frame.kind, frame.channel),
                (raw::FRAME_HEARTBEAT, 0),
                "{frame:?}"
            );
            assert!(frame.payload.is_empty());
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn silent_client_is_disconnected_after_missed_heartbeats() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let mut conn = RawConn::connect(broker.addr()).await?;
        conn.handshake("guest", "guest", "/", Some((2047, 131_072, 1)))
            .await?;
        // We never send a heartbeat: the server must give up on us (RabbitMQ
        // does after two missed intervals, without a close frame).
        assert!(
            conn.wait_eof(Duration::from_secs(15)).await?,
            "server kept a silent connection open"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn opening_a_channel_above_channel_max_is_refused() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let mut conn = RawConn::connect(broker.addr()).await?;
        conn.handshake("guest", "guest", "/", Some((2, 131_072, 0)))
            .await?;
        conn.open_channel(1).await?;
        conn.open_channel(2).await?;
        conn.send(&raw::method_frame(3, 20, 10, Args::new().shortstr("")))
            .await?;
        let close = conn.expect_connection_close().await?;
        assert_eq!(close.code, 530, "{close:?}");
        assert_eq!(
            close.text,
            "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_vhost_is_refused_with_530() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let vhost = unique("no-such-vhost");
        let result = broker
            .try_connect(&broker.uri_as("guest", "guest", &vhost))
            .await;
        let text = expect_code(result, 530, "NOT_ALLOWED")?;
        assert!(text.contains(&vhost), "{text}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn wrong_password_is_refused_with_403() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let result = broker
            .try_connect(&broker.uri_as("guest", "not-the-password", "/"))
            .await;
        expect_code(
            result,
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN",
        )?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_user_is_refused_with_403() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let user = unique("nobody");
        let result = broker.try_connect(&broker.uri_as(&user, "x", "/")).await;
        expect_code(result, 403, "ACCESS_REFUSED")?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn client_closes_connection_cleanly() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let channel = conn.create_channel().await?;
        assert!(channel.status().connected());
        conn.close(200, "done".into()).await?;
        // lapin records the state change on its own task after close-ok.
        let waited = wait_until(
            EVENT_TIMEOUT,
            "lapin to see the connection closed",
            || async { Ok(conn.status().closed().then_some(())) },
        )
        .await;
        anyhow::ensure!(
            waited.is_ok(),
            "connection state stuck at {:?}",
            conn.status()
        );
        // Nothing can be done on a closed connection's channel.
        let after = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert!(
            after.is_err(),
            "channel still usable after close: {after:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn raw_connection_close_gets_close_ok() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let (mut conn, _) = RawConn::open(broker.addr()).await?;
        let close = Args::new().short(200).shortstr("bye").short(0).short(0);
        conn.send(&raw::method_frame(0, 10, 50, close)).await?;
        let ok = conn.read_method().await?;
        // The spec leaves closing the socket to the client after close-ok;
        // RabbitMQ waits for it, so only close-ok is asserted.
        assert_eq!(ok.method_id(), Some((10, 51)), "{ok:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn client_closes_one_channel_and_keeps_the_other() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let first = conn.create_channel().await?;
        let second = conn.create_channel().await?;
        first.close(200, "done".into()).await?;
        assert!(!first.status().connected());
        let q = second
            .queue_declare(
                "".into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await?;
        assert!(q.name().as_str().starts_with("amq.gen-"));
        // A closed channel id may be reused by a new channel.
        let third = conn.create_channel().await?;
        assert!(third.status().connected());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn server_closes_channel_on_soft_error_and_connection_survives() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let channel = conn.create_channel().await?;
        let missing = unique("missing");
        let result = channel
            .queue_declare(
                missing.as_str().into(),
                QueueDeclareOptions::default().passive(),
                FieldTable::default(),
            )
            .await;
        expect_code(result, 404, "NOT_FOUND - no queue")?;
        assert!(!channel.status().connected());
        assert!(conn.status().connected());
        let again = conn.create_channel().await?;
        again
            .queue_declare(
                "".into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    })
    .await
}
