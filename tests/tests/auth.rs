//! Users, passwords and permissions from a RabbitMQ 3.10.8 definitions
//! export (/work/shared/fixtures, see its README). These run only against
//! an in-process Warren started with the file: the shared RabbitMQ used for
//! validation does not have these users, so with WARREN_TEST_BROKER set they
//! print why and pass without checking anything.

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use warren_e2e::{
    TestBroker, declare_queue, drain_until_marker, expect_code, fixture, start,
    start_with_definitions, unique, with_timeout,
};

const DEFINITIONS: &str = "rabbitmq-3.10.8-definitions.json";
const SKIP: &str = "needs the users of the definitions fixture, which only Warren loads";

async fn broker() -> anyhow::Result<Option<TestBroker>> {
    let path = fixture(DEFINITIONS)?;
    let broker = start_with_definitions(&path).await;
    Ok((!broker.skip_if_external(SKIP)).then_some(broker))
}

#[tokio::test]
async fn app1_logs_in_to_orders_with_its_imported_password() -> anyhow::Result<()> {
    let Some(broker) = broker().await? else {
        return Ok(());
    };
    with_timeout(async {
        let conn = broker
            .try_connect(&broker.uri_as("app1", "s3cret-app1", "orders"))
            .await?;
        assert_eq!(conn.status().username(), "app1");
        assert_eq!(conn.status().vhost().as_str(), "orders");
        let result = broker
            .try_connect(&broker.uri_as("app1", "wrong", "orders"))
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
async fn app1_may_configure_only_app1_prefixed_resources() -> anyhow::Result<()> {
    let Some(broker) = broker().await? else {
        return Ok(());
    };
    with_timeout(async {
        let conn = broker.try_connect(&broker.uri_as("app1", "s3cret-app1", "orders")).await?;
        let ch = conn.create_channel().await?;
        let mine = unique("app1-q");
        declare_queue(&ch, &mine).await?;
        let other = unique("other-q");
        let text = expect_code(declare_queue(&ch, &other).await, 403, "ACCESS_REFUSED")?;
        assert_eq!(
            text,
            format!("ACCESS_REFUSED - configure access to queue '{other}' in vhost 'orders' refused for user 'app1'")
        );
        // write and read are `.*`: publishing to and consuming from its queue work.
        let ch = conn.create_channel().await?;
        ch.basic_publish("".into(), mine.as_str().into(), Default::default(), b"hi", BasicProperties::default())
            .await?;
        assert_eq!(drain_until_marker(&ch, &mine).await?, vec!["hi"]);
        ch.queue_delete(mine.as_str().into(), Default::default()).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn app1_may_only_read_in_the_default_vhost() -> anyhow::Result<()> {
    let Some(broker) = broker().await? else {
        return Ok(());
    };
    with_timeout(async {
        let guest = broker.connect().await;
        let gch = guest.create_channel().await?;
        let q = unique("app1-readable");
        declare_queue(&gch, &q).await?;
        gch.basic_publish("".into(), q.as_str().into(), Default::default(), b"for app1", BasicProperties::default())
            .await?;
        let conn = broker.try_connect(&broker.uri_as("app1", "s3cret-app1", "/")).await?;
        let ch = conn.create_channel().await?;
        let got = warren_e2e::wait_until(warren_e2e::EVENT_TIMEOUT, "message for app1", || async {
            Ok(ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await?)
        })
        .await?;
        assert_eq!(got.delivery.data, b"for app1");
        let text = expect_code(declare_queue(&ch, &q).await, 403, "ACCESS_REFUSED")?;
        assert_eq!(text, format!("ACCESS_REFUSED - configure access to queue '{q}' in vhost '/' refused for user 'app1'"));
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let confirm = ch
            .basic_publish("".into(), q.as_str().into(), Default::default(), b"x", BasicProperties::default())
            .await?;
        let text = expect_code(confirm.await, 403, "ACCESS_REFUSED")?;
        assert_eq!(text, "ACCESS_REFUSED - write access to exchange 'amq.default' in vhost '/' refused for user 'app1'");
        gch.queue_delete(q.as_str().into(), Default::default()).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn monitor_may_connect_to_orders_but_do_nothing() -> anyhow::Result<()> {
    let Some(broker) = broker().await? else {
        return Ok(());
    };
    with_timeout(async {
        let conn = broker.try_connect(&broker.uri_as("monitor", "m0nitor", "orders")).await?;
        let ch = conn.create_channel().await?;
        let q = unique("monitor-q");
        let text = expect_code(declare_queue(&ch, &q).await, 403, "ACCESS_REFUSED")?;
        assert_eq!(text, format!("ACCESS_REFUSED - configure access to queue '{q}' in vhost 'orders' refused for user 'monitor'"));
        let ch = conn.create_channel().await?;
        let result = ch
            .basic_consume("orders.audit".into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await;
        let text = expect_code(result, 403, "ACCESS_REFUSED")?;
        assert_eq!(text, "ACCESS_REFUSED - read access to queue 'orders.audit' in vhost 'orders' refused for user 'monitor'");
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let confirm = ch
            .basic_publish("orders.events".into(), "order.created.eu".into(), Default::default(), b"x", BasicProperties::default())
            .await?;
        let text = expect_code(confirm.await, 403, "ACCESS_REFUSED")?;
        assert_eq!(text, "ACCESS_REFUSED - write access to exchange 'orders.events' in vhost 'orders' refused for user 'monitor'");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn users_without_permissions_on_a_vhost_get_530() -> anyhow::Result<()> {
    let Some(broker) = broker().await? else {
        return Ok(());
    };
    with_timeout(async {
        let result = broker
            .try_connect(&broker.uri_as("monitor", "m0nitor", "/"))
            .await;
        expect_code(
            result,
            530,
            "NOT_ALLOWED - access to vhost '/' refused for user 'monitor'",
        )?;
        let result = broker
            .try_connect(&broker.uri_as("monitor", "wrong", "orders"))
            .await;
        expect_code(result, 403, "ACCESS_REFUSED")?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn imported_topology_is_declared_and_routes() -> anyhow::Result<()> {
    let Some(broker) = broker().await? else {
        return Ok(());
    };
    with_timeout(async {
        let conn = broker
            .try_connect(&broker.uri_as("guest", "guest", "orders"))
            .await?;
        let ch = conn.create_channel().await?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        for (name, kind) in [
            ("orders.events", ExchangeKind::Topic),
            ("orders.fanout", ExchangeKind::Fanout),
            ("orders.headers", ExchangeKind::Headers),
            ("orders.unrouted", ExchangeKind::Fanout),
        ] {
            ch.exchange_declare(name.into(), kind, passive, FieldTable::default())
                .await?;
        }
        // The queue's arguments came along: an identical redeclare is equivalent.
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(10_000));
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(60_000));
        ch.queue_declare("orders.audit".into(), QueueDeclareOptions::durable(), args)
            .await?;
        for q in ["orders.audit", "orders.created", "orders.unrouted"] {
            ch.queue_purge(q.into(), Default::default()).await?;
        }
        ch.basic_publish(
            "orders.events".into(),
            "order.created.eu".into(),
            Default::default(),
            b"created",
            BasicProperties::default(),
        )
        .await?;
        // Headers exchange, x-match any on region/tier, alternate exchange for the rest.
        let mut eu = FieldTable::default();
        eu.insert("region".into(), AMQPValue::LongString("eu".into()));
        ch.basic_publish(
            "orders.headers".into(),
            "".into(),
            Default::default(),
            b"eu",
            BasicProperties::default().with_headers(eu),
        )
        .await?;
        let mut us = FieldTable::default();
        us.insert("region".into(), AMQPValue::LongString("us".into()));
        ch.basic_publish(
            "orders.headers".into(),
            "".into(),
            Default::default(),
            b"us",
            BasicProperties::default().with_headers(us),
        )
        .await?;
        assert_eq!(
            drain_until_marker(&ch, "orders.audit").await?,
            vec!["created", "eu"]
        );
        assert_eq!(
            drain_until_marker(&ch, "orders.created").await?,
            vec!["created"]
        );
        assert_eq!(
            drain_until_marker(&ch, "orders.unrouted").await?,
            vec!["us"]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn definitions_fixture_is_present() -> anyhow::Result<()> {
    // Runs everywhere, so a missing fixture fails loudly even against RabbitMQ.
    fixture(DEFINITIONS)?;
    let _ = start().await;
    Ok(())
}
