//! Durability end to end: what a `warren serve` process keeps when it is
//! killed with SIGKILL (`kill -9`) and started again on the same data
//! directory (see `warren_e2e::process`).
//!
//! The promise under test is RabbitMQ's: durable exchanges, queues,
//! bindings, vhosts and users survive; transient and exclusive ones vanish;
//! a publisher confirm for a persistent message means it is on disk, so
//! every confirmed message is there after a crash; messages that were out
//! with a consumer come back with `redelivered` set. Durable queues default
//! to quorum queues in Warren, so their behaviour is a quorum queue's (which
//! also keeps transient messages).
//!
//! The broker must be built first (`cargo build -p warren --bin warren`).
//! Only `x_queue_type_rules` runs against an external broker
//! (`WARREN_TEST_BROKER`, how it is checked against RabbitMQ); the others
//! need a broker they can kill and skip there. Durations are printed, never
//! asserted: the machine is shared. Run with `--nocapture` to see them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, Connection, ExchangeKind};
use warren_e2e::process::{
    Outcome, SharedLedger, WarrenProcess, declare_durable, drain, persistent, publish_confirmed,
    seq_of, text_arg, with_limit,
};
use warren_e2e::{
    consume, expect_code, fixture, next_delivery, queue_counts, start, unique, wait_ready,
    with_timeout,
};

/// One broker process at a time: these tests push data through a real disk
/// and print how long it took; running them side by side on a small machine
/// would only blur the numbers and stretch every timeout.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A number in `0..n` that differs from run to run (not from round to
/// round reliably, which does not matter: it only varies the kill point).
fn jitter(n: u32) -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos / 1000) % n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_kill_9() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut broker) = WarrenProcess::start("confirmed_messages_survive_kill_9").await? else {
        return Ok(());
    };
    with_limit(Duration::from_secs(900), async {
        let q = unique("q-kill9");
        for round in 1..=3 {
            kill_mid_stream_and_check(&mut broker, &q, round).await?;
        }
        Ok(())
    })
    .await
}

/// One round: publish with confirms, kill -9 after a few thousand
/// confirms, restart, and find every confirmed message of this round in
/// the queue.
async fn kill_mid_stream_and_check(
    broker: &mut WarrenProcess,
    q: &str,
    round: u32,
) -> anyhow::Result<()> {
    let tag = format!("round{round}");
    let outcomes = publish_until_killed(broker, q, &tag).await?;
    broker.restart().await?;
    let conn = broker.connect().await?;
    let (ready, deliveries) = drain(&conn, q)
        .await
        .with_context(|| format!("draining {q} after restart {round}"))?;
    eprintln!("round {round}: after restart {ready} ready");
    check_round(&tag, &outcomes, &deliveries)?;
    conn.close(200, "round done".into()).await?;
    Ok(())
}

/// Publishes `{tag}-…` messages to `q` until a random-ish number (2000 to
/// 3999) of them is confirmed, then kills the broker; returns the outcome
/// of every publish.
async fn publish_until_killed(
    broker: &mut WarrenProcess,
    q: &str,
    tag: &str,
) -> anyhow::Result<Vec<Outcome>> {
    let threshold = 2000 + usize::try_from(jitter(2000))?;
    let ledger = SharedLedger::default();
    let conn = broker.connect().await?;
    let ch = conn.create_channel().await?;
    declare_durable(&ch, q, FieldTable::default()).await?;
    let began = Instant::now();
    let publisher = tokio::spawn(publish_confirmed(
        ch,
        q.to_owned(),
        tag.to_owned(),
        100,
        u64::MAX,
        ledger.clone(),
    ));
    let reached = warren_e2e::wait_until(
        Duration::from_secs(300),
        &format!("{threshold} confirms"),
        || async {
            let enough = ledger.lock().acked >= threshold;
            anyhow::ensure!(enough || !publisher.is_finished(), "publisher stopped");
            Ok(enough.then_some(()))
        },
    )
    .await;
    if let Err(e) = reached {
        let why = publisher.await?;
        anyhow::bail!("{tag}: {e:#}; the publisher ended with {why:?}");
    }
    let status = broker.kill9().await?;
    let publish_time = began.elapsed();
    // The publisher records every confirm that arrived, then stops on the
    // connection error.
    let ended = tokio::time::timeout(Duration::from_secs(60), publisher)
        .await
        .context("the publisher did not notice the kill within 60 s")??;
    drop(conn);
    let outcomes = std::mem::take(&mut ledger.lock().outcomes);
    let count = |o| outcomes.iter().filter(|x| **x == o).count();
    eprintln!(
        "{tag}: killed ({status}) after {publish_time:?} (threshold {threshold}): {} published, \
         {} acked, {} nacked, {} unconfirmed; the publisher ended with {ended:?}",
        outcomes.len(),
        count(Outcome::Acked),
        count(Outcome::Nacked),
        count(Outcome::Unconfirmed),
    );
    Ok(outcomes)
}

/// Every acked publish was delivered exactly once; anything else delivered
/// is an unconfirmed or nacked publish of this round (possibly repeated).
fn check_round(tag: &str, outcomes: &[Outcome], deliveries: &[Delivery]) -> anyhow::Result<()> {
    let mut times = vec![0u32; outcomes.len()];
    let mut unknown = Vec::new();
    for d in deliveries {
        match seq_of(tag, &d.data).and_then(|s| usize::try_from(s).ok()) {
            Some(seq) if seq < outcomes.len() => times[seq] += 1,
            _ => {
                unknown.push(String::from_utf8_lossy(&d.data[..d.data.len().min(40)]).into_owned())
            }
        }
    }
    let acked = |s: &usize| outcomes[*s] == Outcome::Acked;
    let all = 0..outcomes.len();
    let missing: Vec<usize> = all.clone().filter(|s| acked(s) && times[*s] == 0).collect();
    let doubled: Vec<usize> = all.clone().filter(|s| acked(s) && times[*s] > 1).collect();
    let acked_total = all.clone().filter(acked).count();
    let others = all.clone().filter(|s| !acked(s) && times[*s] > 0).count();
    let others_again = all.filter(|s| !acked(s) && times[*s] > 1).count();
    eprintln!(
        "{tag}: {} delivered: {} of {acked_total} confirmed present, {others} \
         unconfirmed/nacked present ({others_again} more than once), {} unknown",
        deliveries.len(),
        acked_total - missing.len(),
        unknown.len(),
    );
    anyhow::ensure!(
        missing.is_empty(),
        "{tag}: {} of {acked_total} confirmed messages lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    anyhow::ensure!(
        doubled.is_empty(),
        "{tag}: confirmed messages delivered twice: {:?}",
        &doubled[..doubled.len().min(20)]
    );
    anyhow::ensure!(
        unknown.is_empty(),
        "{tag}: messages never published in this round: {:?}",
        &unknown[..unknown.len().min(5)]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_durable_topology() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let definitions = fixture("rabbitmq-3.10.8-definitions.json")?;
    let args = vec![OsString::from("--definitions"), definitions.into()];
    let Some(mut broker) =
        WarrenProcess::start_with("restart_keeps_durable_topology", args).await?
    else {
        return Ok(());
    };
    with_limit(Duration::from_secs(300), async {
        let names = Topology::new();
        let conn = broker.connect().await?;
        names.declare(&conn).await?;
        names.publish(&conn).await?;
        broker.kill9().await?;
        // Without the file this time: users and vhosts must come from disk.
        broker.set_extra_args(Vec::new());
        broker.restart().await?;
        let conn = broker.connect().await?;
        names.check_durable_survived(&conn).await?;
        names.check_messages(&conn).await?;
        names.check_transient_gone(&conn).await?;
        check_definitions_survived(&broker).await?;
        Ok(())
    })
    .await
}

/// Names used by `restart_keeps_durable_topology`.
struct Topology {
    exchange: String,
    queue: String,
    classic: String,
    transient_exchange: String,
    transient_queue: String,
    exclusive_queue: String,
}

/// Persistent and transient messages published to each durable queue.
const KEPT: usize = 5;

fn headers_of(i: usize) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(
        "seq".into(),
        AMQPValue::LongLongInt(i64::try_from(i).unwrap_or(-1)),
    );
    t.insert("origin".into(), AMQPValue::LongString("before-kill".into()));
    t
}

impl Topology {
    fn new() -> Self {
        Topology {
            exchange: unique("x-durable"),
            queue: unique("q-durable"),
            classic: unique("q-classic"),
            transient_exchange: unique("x-transient"),
            transient_queue: unique("q-transient"),
            exclusive_queue: unique("q-exclusive"),
        }
    }

    async fn declare(&self, conn: &Connection) -> anyhow::Result<()> {
        let ch = conn.create_channel().await?;
        let durable_x = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let none = FieldTable::default;
        ch.exchange_declare(
            self.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable_x,
            none(),
        )
        .await?;
        ch.exchange_declare(
            self.transient_exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            none(),
        )
        .await?;
        declare_durable(&ch, &self.queue, none()).await?;
        declare_durable(&ch, &self.classic, text_arg("x-queue-type", "classic")).await?;
        let plain = QueueDeclareOptions::default();
        ch.queue_declare(self.transient_queue.as_str().into(), plain, none())
            .await?;
        let exclusive = QueueDeclareOptions::exclusive();
        ch.queue_declare(self.exclusive_queue.as_str().into(), exclusive, none())
            .await?;
        for (queue, key) in [(&self.queue, "keep.#"), (&self.classic, "classic.#")] {
            let (q, x) = (queue.as_str().into(), self.exchange.as_str().into());
            ch.queue_bind(q, x, key.into(), QueueBindOptions::default(), none())
                .await?;
        }
        Ok(())
    }

    /// [`KEPT`] persistent then [`KEPT`] transient messages to each durable
    /// queue, through the durable exchange, all confirmed.
    async fn publish(&self, conn: &Connection) -> anyhow::Result<()> {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        for prefix in ["keep", "classic"] {
            for (mode, kind) in [(2, "persistent"), (1, "transient")] {
                for i in 0..KEPT {
                    let props = BasicProperties::default()
                        .with_delivery_mode(mode)
                        .with_message_id(format!("{kind}-{i}").into())
                        .with_headers(headers_of(i));
                    let confirm = ch
                        .basic_publish(
                            self.exchange.as_str().into(),
                            format!("{prefix}.{kind}").into(),
                            BasicPublishOptions::default(),
                            format!("{kind} {i}").as_bytes(),
                            props,
                        )
                        .await?
                        .await?;
                    anyhow::ensure!(confirm == Confirmation::Ack(None), "{confirm:?}");
                }
            }
        }
        Ok(())
    }

    async fn check_durable_survived(&self, conn: &Connection) -> anyhow::Result<()> {
        let ch = conn.create_channel().await?;
        let none = FieldTable::default;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        let x = || self.exchange.as_str().into();
        ch.exchange_declare(x(), ExchangeKind::Topic, passive, none())
            .await?;
        // Its kind and durability survived too: an identical redeclare is
        // fine, one that says "transient" is refused.
        let durable_x = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        ch.exchange_declare(x(), ExchangeKind::Topic, durable_x, none())
            .await?;
        let redeclared = ch
            .exchange_declare(
                x(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                none(),
            )
            .await;
        expect_code(
            redeclared,
            406,
            &format!(
                "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{}' in vhost '/'",
                self.exchange
            ),
        )?;
        // Still the classic queue, and still durable.
        let ch = conn.create_channel().await?;
        let quorum = declare_durable(&ch, &self.classic, text_arg("x-queue-type", "quorum")).await;
        expect_code(
            quorum,
            406,
            &format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{}'",
                self.classic
            ),
        )?;
        Ok(())
    }

    async fn check_messages(&self, conn: &Connection) -> anyhow::Result<()> {
        let (ready, got) = drain(conn, &self.queue).await?;
        let expected: Vec<String> = ["persistent", "transient"]
            .iter()
            .flat_map(|kind| (0..KEPT).map(move |i| format!("{kind} {i}")))
            .collect();
        let bodies: Vec<String> = got.iter().map(warren_e2e::body_text).collect();
        eprintln!("default-type durable queue after kill -9: {ready} ready: {bodies:?}");
        // A quorum queue keeps transient messages too (RabbitMQ does).
        assert_eq!(bodies, expected, "default-type durable queue after restart");
        for d in &got {
            let body = warren_e2e::body_text(d);
            let (kind, i) = body.split_once(' ').unwrap_or_default();
            let i: usize = i.parse()?;
            let mode = if kind == "persistent" { 2 } else { 1 };
            let p = &d.properties;
            assert_eq!(*p.delivery_mode(), Some(mode), "{body}");
            assert_eq!(
                p.message_id().as_ref().map(|s| s.as_str()),
                Some(format!("{kind}-{i}").as_str())
            );
            // RabbitMQ's quorum queues add x-delivery-count (0 on a first
            // delivery); everything else is the publisher's.
            let mut headers = FieldTable::default();
            for (k, v) in p
                .headers()
                .as_ref()
                .map(|h| h.inner())
                .into_iter()
                .flatten()
            {
                if k.as_str() != "x-delivery-count" {
                    headers.insert(k.clone(), v.clone());
                }
            }
            assert_eq!(headers, headers_of(i), "{body}");
        }
        // RabbitMQ's classic durable queues keep persistent messages and
        // drop transient ones on restart; Warren's are single-member Raft
        // groups. Only the persistent ones are asserted; print the rest.
        let (ready, got) = drain(conn, &self.classic).await?;
        let bodies: Vec<String> = got.iter().map(warren_e2e::body_text).collect();
        eprintln!("classic durable queue after kill -9: {ready} ready: {bodies:?}");
        for i in 0..KEPT {
            let body = format!("persistent {i}");
            anyhow::ensure!(bodies.contains(&body), "classic queue lost {body:?}");
        }
        // The durable binding still routes.
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = ch
            .basic_publish(
                self.exchange.as_str().into(),
                "keep.after".into(),
                options,
                b"after",
                persistent(),
            )
            .await?
            .await?;
        assert_eq!(confirm, Confirmation::Ack(None), "routed after restart");
        let mut consumer = consume(&ch, &self.queue, BasicConsumeOptions::default()).await?;
        let d = next_delivery(&mut consumer).await?;
        assert_eq!(d.data, b"after");
        d.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    async fn check_transient_gone(&self, conn: &Connection) -> anyhow::Result<()> {
        for queue in [&self.transient_queue, &self.exclusive_queue] {
            let ch = conn.create_channel().await?;
            let passive = QueueDeclareOptions::default().passive();
            let result = ch
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await;
            expect_code(
                result,
                404,
                &format!("NOT_FOUND - no queue '{queue}' in vhost '/'"),
            )?;
        }
        let ch = conn.create_channel().await?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        let x = &self.transient_exchange;
        let result = ch
            .exchange_declare(
                x.as_str().into(),
                ExchangeKind::Fanout,
                passive,
                FieldTable::default(),
            )
            .await;
        expect_code(
            result,
            404,
            &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
        )?;
        Ok(())
    }
}

/// The users, vhost and topology of the definitions fixture (see its
/// README) outlive a restart without the file.
async fn check_definitions_survived(broker: &WarrenProcess) -> anyhow::Result<()> {
    let props = lapin::ConnectionProperties::default;
    let app1 = broker.uri_as("app1", "s3cret-app1", "orders");
    let conn = Connection::connect(&app1, props()).await?;
    assert_eq!(conn.status().username(), "app1");
    conn.close(200, "bye".into()).await?;
    let wrong = Connection::connect(&broker.uri_as("app1", "wrong", "orders"), props()).await;
    expect_code(wrong, 403, "ACCESS_REFUSED - Login was refused")?;

    let conn = Connection::connect(&broker.uri_as("guest", "guest", "orders"), props()).await?;
    let ch = conn.create_channel().await?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(
        "orders.events".into(),
        ExchangeKind::Topic,
        passive,
        FieldTable::default(),
    )
    .await?;
    queue_counts(&ch, "orders.created").await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = unique("order");
    let confirm = ch
        .basic_publish(
            "orders.events".into(),
            "order.created.eu".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        )
        .await?
        .await?;
    assert_eq!(confirm, Confirmation::Ack(None));
    let mut consumer = consume(&ch, "orders.created", BasicConsumeOptions::default()).await?;
    let d = next_delivery(&mut consumer).await?;
    assert_eq!(
        warren_e2e::body_text(&d),
        body,
        "routed by the imported binding"
    );
    d.ack(BasicAckOptions::default()).await?;
    conn.close(200, "bye".into()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_redelivered_after_restart() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "unacked_messages_redelivered_after_restart";
    let Some(mut broker) = WarrenProcess::start(test).await? else {
        return Ok(());
    };
    with_limit(Duration::from_secs(300), async {
        const TOTAL: u64 = 20;
        const OUT: u16 = 10;
        let q = unique("q-unacked");
        let conn = broker.connect().await?;
        let ch = conn.create_channel().await?;
        declare_durable(&ch, &q, FieldTable::default()).await?;
        let ledger = SharedLedger::default();
        publish_confirmed(ch, q.clone(), "m".into(), 0, TOTAL, ledger.clone()).await?;
        assert_eq!(ledger.lock().acked, 20);
        let ch = conn.create_channel().await?;
        ch.basic_qos(OUT, BasicQosOptions::default()).await?;
        let mut consumer = consume(&ch, &q, BasicConsumeOptions::default()).await?;
        let mut out = Vec::new();
        for _ in 0..OUT {
            let d = next_delivery(&mut consumer).await?;
            assert!(
                !d.redelivered,
                "first delivery of {}",
                warren_e2e::body_text(&d)
            );
            out.push(seq_of("m", &d.data).ok_or_else(|| anyhow::anyhow!("odd body"))?);
        }
        wait_ready(&conn.create_channel().await?, &q, 10).await?;
        broker.kill9().await?;
        drop((consumer, ch, conn));

        broker.restart().await?;
        let conn = broker.connect().await?;
        let (ready, got) = drain(&conn, &q).await?;
        assert_eq!(ready, 20, "every message is ready again after the restart");
        let mut flags: BTreeMap<u64, bool> = BTreeMap::new();
        for d in &got {
            let seq = seq_of("m", &d.data).ok_or_else(|| anyhow::anyhow!("odd body"))?;
            anyhow::ensure!(flags.insert(seq, d.redelivered).is_none(), "m-{seq} twice");
        }
        let expected: BTreeMap<u64, bool> = (0..TOTAL).map(|s| (s, out.contains(&s))).collect();
        assert_eq!(
            flags, expected,
            "redelivered exactly for the messages that were out"
        );
        let order: Vec<u64> = got.iter().filter_map(|d| seq_of("m", &d.data)).collect();
        eprintln!("order after restart: {order:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn x_queue_type_rules() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let quorum = || text_arg("x-queue-type", "quorum");
        let rejected: [(QueueDeclareOptions, &str); 3] = [
            (
                QueueDeclareOptions {
                    durable: true,
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                "exclusive-owner",
            ),
            (QueueDeclareOptions::default(), "non-durable"),
            (
                QueueDeclareOptions {
                    durable: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                "auto-delete",
            ),
        ];
        for (options, property) in rejected {
            let ch = conn.create_channel().await?;
            let q = unique("qq-bad");
            let result = ch.queue_declare(q.as_str().into(), options, quorum()).await;
            let text = format!(
                "PRECONDITION_FAILED - invalid property '{property}' for queue '{q}' in vhost '/'"
            );
            assert_eq!(expect_code(result, 406, &text)?, text);
        }

        let ch = conn.create_channel().await?;
        let q = unique("q-fifo");
        let result = declare_durable(&ch, &q, text_arg("x-queue-type", "fifo")).await;
        let text = format!(
            "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \
             \"unsupported queue type 'fifo'\""
        );
        assert_eq!(expect_code(result, 406, &text)?, text);

        // Redeclaring with another type is refused, both ways round.
        for (first, second) in [("quorum", "classic"), ("classic", "quorum")] {
            let ch = conn.create_channel().await?;
            let q = unique(&format!("q-{first}"));
            declare_durable(&ch, &q, text_arg("x-queue-type", first)).await?;
            declare_durable(&ch, &q, text_arg("x-queue-type", first)).await?;
            let result = declare_durable(&ch, &q, text_arg("x-queue-type", second)).await;
            let text = format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in \
                 vhost '/': received '{second}' but current is '{first}'"
            );
            assert_eq!(expect_code(result, 406, &text)?, text);
            let ch = conn.create_channel().await?;
            ch.queue_delete(q.as_str().into(), Default::default())
                .await?;
        }

        // A group size is accepted (and capped by the cluster size).
        let ch = conn.create_channel().await?;
        let q = unique("qq-sized");
        let mut args = quorum();
        args.insert("x-quorum-initial-group-size".into(), AMQPValue::LongInt(3));
        declare_durable(&ch, &q, args.clone()).await?;
        declare_durable(&ch, &q, args).await?;
        let ch2 = conn.create_channel().await?;
        ch2.queue_delete(q.as_str().into(), Default::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_shrinks_after_consume() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(broker) = WarrenProcess::start("data_dir_shrinks_after_consume").await? else {
        return Ok(());
    };
    with_limit(Duration::from_secs(900), async {
        const BODY: usize = 16 * 1024;
        const COUNT: u64 = 4096; // 64 MiB
        const SLACK: u64 = 8 << 20;
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        let q = unique("q-shrink");
        let conn = broker.connect().await?;
        let ch = conn.create_channel().await?;
        declare_durable(&ch, &q, FieldTable::default()).await?;
        let before = broker.data_dir_bytes()?;
        let began = Instant::now();
        let ledger = SharedLedger::default();
        publish_confirmed(ch, q.clone(), "big".into(), BODY, COUNT, ledger.clone()).await?;
        assert_eq!(ledger.lock().acked, 4096, "every publish confirmed");
        let full = broker.data_dir_bytes()?;
        // Confirmed means on disk: the bodies (incompressible) are there.
        anyhow::ensure!(
            full >= before + COUNT * BODY as u64 * 9 / 10,
            "{COUNT} confirmed messages of {BODY} B, yet the data dir only grew from {:.1} MiB \
             to {:.1} MiB",
            mib(before),
            mib(full)
        );
        eprintln!(
            "published {COUNT} x {BODY} B in {:?}: data dir {:.1} MiB -> {:.1} MiB",
            began.elapsed(),
            mib(before),
            mib(full)
        );
        let (_, got) = drain(&conn, &q).await?;
        assert_eq!(got.len(), 4096);
        drop(got);
        let drained = Instant::now();
        let limit = Duration::from_secs(60);
        let mut last_print = Instant::now();
        loop {
            let now = broker.data_dir_bytes()?;
            if now <= before + SLACK {
                eprintln!(
                    "data dir back to {:.1} MiB {:?} after the last ack (before: {:.1} MiB, \
                     full: {:.1} MiB)",
                    mib(now),
                    drained.elapsed(),
                    mib(before),
                    mib(full)
                );
                return Ok(());
            }
            anyhow::ensure!(
                drained.elapsed() < limit,
                "data dir still {:.1} MiB {limit:?} after consuming everything (before \
                 publishing: {:.1} MiB, full: {:.1} MiB); largest files: {:?}",
                mib(now),
                mib(before),
                mib(full),
                broker.largest_files(8)?
            );
            if last_print.elapsed() >= Duration::from_secs(5) {
                eprintln!("data dir {:.1} MiB after {:?}", mib(now), drained.elapsed());
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_backlog() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut broker) = WarrenProcess::start("restart_with_a_backlog").await? else {
        return Ok(());
    };
    with_limit(Duration::from_secs(1200), async {
        const BACKLOG: u64 = 100_000;
        let q = unique("q-backlog");
        let conn = broker.connect().await?;
        let ch = conn.create_channel().await?;
        declare_durable(&ch, &q, FieldTable::default()).await?;
        let began = Instant::now();
        let ledger = SharedLedger::default();
        publish_confirmed(ch, q.clone(), "b".into(), 64, BACKLOG, ledger.clone()).await?;
        let (acked, nacked) = {
            let l = ledger.lock();
            (l.acked, l.nacked)
        };
        let took = began.elapsed();
        eprintln!(
            "{BACKLOG} published in {took:?} ({:.0}/s): {acked} acked, {nacked} nacked; data \
             dir {} bytes",
            BACKLOG as f64 / took.as_secs_f64(),
            broker.data_dir_bytes()?
        );
        assert_eq!((acked, nacked), (100_000, 0), "every publish confirmed");
        broker.kill9().await?;
        drop(conn);

        let restarting = Instant::now();
        broker.restart().await?;
        let conn = broker.connect().await?;
        let ch = conn.create_channel().await?;
        let (ready, _) = queue_counts(&ch, &q).await?;
        let counted = restarting.elapsed();
        ch.basic_qos(100, BasicQosOptions::default()).await?;
        let mut consumer = consume(&ch, &q, BasicConsumeOptions::default()).await?;
        let first = next_delivery(&mut consumer).await?;
        eprintln!(
            "restart with {BACKLOG} messages: listening after {:?}, message_count ({ready}) \
             after {counted:?}, first message after {:?}",
            broker.time_to_listening(),
            restarting.elapsed()
        );
        assert_eq!(u64::from(ready), BACKLOG, "message_count after restart");
        assert_eq!(
            seq_of("b", &first.data),
            Some(0),
            "the oldest message comes first"
        );
        Ok(())
    })
    .await
}
