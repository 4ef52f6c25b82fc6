//! Three `warren serve` processes as one cluster on 127.0.0.1 (see
//! `warren_e2e::cluster`): clients on any node share the durable queues,
//! and killing a queue's leader with SIGKILL loses no confirmed message.
//!
//! The broker must be built first (`cargo build -p warren --bin warren`).
//! These tests need nodes they can start and kill: against an external
//! broker (`WARREN_TEST_BROKER`) they skip. Durations are printed, never
//! asserted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Confirmation, ExchangeKind};
use warren_e2e::cluster::Cluster;
use warren_e2e::process::{
    SharedLedger, declare_durable, drain, persistent, publish_confirmed, seq_of, with_limit,
};
use warren_e2e::{consume, queue_counts};

/// One cluster at a time: three brokers per test on a small machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LIMIT: Duration = Duration::from_secs(300);

/// Polls `check` until it gives something, for at most `limit`.
async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `queue` exists as seen through `conn` (a passive declare on a
/// channel of its own; `None` if no channel could be opened).
async fn queue_exists(conn: &lapin::Connection, queue: &str) -> Option<bool> {
    let ch = conn.create_channel().await.ok()?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let ok = ch
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .is_ok();
    // A channel a failed passive declare closed cannot be closed again.
    let _ = ch.close(200, "".into()).await;
    Some(ok)
}

/// Waits until `queue` is visible (`present`) or gone through `conn`: a
/// change made on another node reaches this one's metadata a moment later.
async fn wait_for_queue_state(
    conn: &lapin::Connection,
    queue: &str,
    present: bool,
    what: &str,
) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(20), what, || async {
        (queue_exists(conn, queue).await? == present).then_some(())
    })
    .await
}

/// Waits until the queue is visible through `conn`.
async fn wait_for_queue(conn: &lapin::Connection, queue: &str) -> anyhow::Result<()> {
    wait_for_queue_state(conn, queue, true, "the queue on this node").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_any_node_share_a_durable_queue() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start("clients_on_any_node_share_a_durable_queue", 3).await?
    else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        let (c1, c2, c3) = (
            cluster.node(1).connect().await?,
            cluster.node(2).connect().await?,
            cluster.node(3).connect().await?,
        );
        // Declared on node 1: a quorum queue replicated on all three.
        let ch1 = c1.create_channel().await?;
        declare_durable(&ch1, "shared", FieldTable::default()).await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        ch1.exchange_declare(
            "fx".into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch1.queue_bind(
            "shared".into(),
            "fx".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        wait_for_queue(&c2, "shared").await?;
        wait_for_queue(&c3, "shared").await?;

        // Every node reports the same cluster: three members up, the queue
        // on all three, led by the node it was declared on.
        for id in 1..=3 {
            let status = cluster.ctl(id, &["cluster", "status"]).await?;
            eprintln!("warren ctl cluster status on node {id}:\n{status}");
            anyhow::ensure!(status.contains(&format!("asked node: {id}")), "{status}");
            for n in 1..=3 {
                let line = format!("node {n} {} up\n", cluster.cluster_addrs[n - 1]);
                anyhow::ensure!(status.contains(&line), "no '{line}' in:\n{status}");
            }
            let queue = status
                .lines()
                .find(|l| l.starts_with("queue shared vhost / "))
                .with_context(|| format!("queue missing in:\n{status}"))?;
            anyhow::ensure!(
                queue.contains("leader 1 replicas [1,2,3] "),
                "queue line: {queue}"
            );
        }

        // An operator moves its leadership to node 2, asking node 3 (the
        // request goes on to the leader, node 1); a replica it does not
        // have is refused.
        let moved = cluster
            .ctl(3, &["queue", "move-leader", "shared", "--to", "2"])
            .await?;
        anyhow::ensure!(moved.contains("leader 2"), "move-leader said: {moved}");
        let line = queue_line(&cluster, 1, "shared").await?;
        anyhow::ensure!(line.contains("leader 2 "), "after the move: {line}");
        anyhow::ensure!(
            cluster
                .ctl(3, &["queue", "move-leader", "shared", "--to", "9"])
                .await
                .is_err(),
            "moving to a node without a replica succeeded"
        );

        // A consumer on node 3, a publisher on node 2 (through the fanout
        // bound on node 1).
        let ch3 = c3.create_channel().await?;
        ch3.basic_qos(50, BasicQosOptions::default()).await?;
        let mut consumer = consume(&ch3, "shared", BasicConsumeOptions::default()).await?;
        let ch2 = c2.create_channel().await?;
        ch2.confirm_select(ConfirmSelectOptions::default()).await?;
        const N: u64 = 500;
        let mut confirms = Vec::new();
        for i in 0..N {
            let body = format!("m-{i}|");
            let c = ch2
                .basic_publish(
                    "fx".into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent(),
                )
                .await?;
            confirms.push(c);
        }
        for c in confirms {
            anyhow::ensure!(
                matches!(c.await?, Confirmation::Ack(_)),
                "a publish was nacked"
            );
        }
        let began = Instant::now();
        let mut seen = BTreeSet::new();
        while seen.len() < N as usize {
            let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
                .await
                .context("waiting for deliveries on node 3")?
                .context("consumer ended")??;
            anyhow::ensure!(!d.redelivered, "first delivery flagged redelivered");
            let body = String::from_utf8(d.data.clone())?;
            anyhow::ensure!(seen.insert(body.clone()), "{body} delivered twice");
            d.ack(BasicAckOptions::default()).await?;
        }
        eprintln!(
            "{N} published on node 2 consumed on node 3 in {:?} after the last confirm",
            began.elapsed()
        );
        let expected: BTreeSet<String> = (0..N).map(|i| format!("m-{i}|")).collect();
        anyhow::ensure!(
            seen == expected,
            "the set delivered differs from the set published"
        );
        ch3.close(200, "done".into()).await?;

        // The acks reached the queue, whichever node looks at it.
        for c in [&c1, &c2] {
            let ch = c.create_channel().await?;
            wait_until(Duration::from_secs(20), "an empty queue", || async {
                let (ready, _) = queue_counts(&ch, "shared").await.ok()?;
                (ready == 0).then_some(())
            })
            .await?;
        }

        // basic.get on node 1 of a message published on node 3.
        let ch3 = c3.create_channel().await?;
        ch3.basic_publish(
            "".into(),
            "shared".into(),
            BasicPublishOptions::default(),
            b"via-get",
            persistent(),
        )
        .await?;
        let got = wait_until(Duration::from_secs(20), "basic.get on node 1", || async {
            ch1.basic_get("shared".into(), BasicGetOptions { no_ack: true })
                .await
                .ok()
                .flatten()
        })
        .await?;
        anyhow::ensure!(
            got.delivery.data == b"via-get",
            "basic.get returned another message"
        );

        // Deleted on node 2: gone on every node.
        let ch2 = c2.create_channel().await?;
        ch2.queue_delete("shared".into(), Default::default())
            .await?;
        wait_for_queue_state(&c3, "shared", false, "the queue gone on node 3").await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_queue_leader_loses_no_confirmed_message() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "killing_the_queue_leader_loses_no_confirmed_message";
    let Some(mut cluster) = Cluster::start(test, 3).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        // Declared on node 1, which leads the queue's group.
        let c1 = cluster.node(1).connect().await?;
        let ch1 = c1.create_channel().await?;
        declare_durable(&ch1, "q", FieldTable::default()).await?;
        let c2 = cluster.node(2).connect().await?;
        wait_for_queue(&c2, "q").await?;

        // A publisher with confirms on node 2; node 1 dies under it.
        let ledger = SharedLedger::default();
        let publisher = tokio::spawn(publish_confirmed(
            c2.create_channel().await?,
            "q".into(),
            "k".into(),
            1024,
            4000,
            ledger.clone(),
        ));
        wait_until(Duration::from_secs(60), "500 confirms", || async {
            (ledger.lock().acked >= 500).then_some(())
        })
        .await?;
        let killed = Instant::now();
        cluster.node_mut(1).kill9().await?;
        eprintln!("node 1 killed with {} confirmed", ledger.lock().acked);
        let watch = ledger.clone();
        let progress = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let l = watch.lock();
                eprintln!(
                    "publisher: {} sent, {} acked, {} nacked",
                    l.outcomes.len(),
                    l.acked,
                    l.nacked
                );
            }
        });
        let published = publisher.await?;
        progress.abort();
        let (acked, nacked) = {
            let l = ledger.lock();
            (l.acked, l.nacked)
        };
        eprintln!(
            "publisher done {:?} after the kill: {published:?}; acked {acked} nacked {nacked}",
            killed.elapsed(),
        );

        // Every confirmed message is on node 3.
        let c3 = cluster.node(3).connect().await?;
        let (_, got) = drain(&c3, "q").await?;
        let delivered: BTreeSet<u64> = got.iter().filter_map(|d| seq_of("k", &d.data)).collect();
        let outcomes = ledger.lock().outcomes.clone();
        let lost: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(seq, o)| {
                **o == warren_e2e::process::Outcome::Acked && !delivered.contains(&(*seq as u64))
            })
            .map(|(seq, _)| seq)
            .collect();
        eprintln!(
            "drained {} on node 3; {} confirmed; lost {}",
            got.len(),
            ledger.lock().acked,
            lost.len()
        );
        anyhow::ensure!(lost.is_empty(), "confirmed messages lost: {lost:?}");
        anyhow::ensure!(
            ledger.lock().acked >= 500,
            "too few confirms to mean anything"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_on_any_node_reach_an_exclusive_queue() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "publishes_on_any_node_reach_an_exclusive_queue";
    let Some(cluster) = Cluster::start(test, 3).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        // An exclusive, server-named queue on node 2, bound to a fanout
        // declared on node 1 (a reply queue of the RPC tutorial, too).
        let c2 = cluster.node(2).connect().await?;
        let ch2 = c2.create_channel().await?;
        let options = QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        };
        let q = ch2
            .queue_declare("".into(), options, FieldTable::default())
            .await?;
        let name = q.name().as_str().to_owned();
        let c1 = cluster.node(1).connect().await?;
        let ch1 = c1.create_channel().await?;
        ch1.exchange_declare(
            "logs".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch2.queue_bind(
            name.as_str().into(),
            "logs".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut consumer = consume(
            &ch2,
            &name,
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
        )
        .await?;

        // Node 1 publishes through the fanout, node 3 straight to the
        // queue by name; both with confirms. The binding made on node 2
        // reaches node 1's routing a moment later: publish until it does.
        ch1.confirm_select(ConfirmSelectOptions::default()).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let first = loop {
            let c = ch1
                .basic_publish(
                    "logs".into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    b"probe",
                    persistent(),
                )
                .await?;
            c.await?;
            if let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_millis(300), consumer.next()).await
            {
                break d?;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the fanout never reached the queue"
            );
        };
        anyhow::ensure!(first.data == b"probe", "unexpected first message");
        for i in 0..50 {
            let c = ch1
                .basic_publish(
                    "logs".into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    format!("n1-{i}").as_bytes(),
                    persistent(),
                )
                .await?;
            anyhow::ensure!(matches!(c.await?, Confirmation::Ack(_)), "nacked");
        }
        let c3 = cluster.node(3).connect().await?;
        let ch3 = c3.create_channel().await?;
        ch3.confirm_select(ConfirmSelectOptions::default()).await?;
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        for i in 0..50 {
            let c = ch3
                .basic_publish(
                    "".into(),
                    name.as_str().into(),
                    mandatory,
                    format!("n3-{i}").as_bytes(),
                    persistent(),
                )
                .await?;
            anyhow::ensure!(matches!(c.await?, Confirmation::Ack(_)), "nacked");
        }
        let mut got = Vec::new();
        while got.len() < 100 {
            let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
                .await
                .context("waiting for deliveries on node 2")?
                .context("consumer ended")??;
            let body = String::from_utf8(d.data)?;
            // A probe that came late is not one of the 100.
            if body != "probe" {
                got.push(body);
            }
        }
        // Each publisher's messages arrive in the order it sent them.
        let from =
            |p: &str| -> Vec<String> { got.iter().filter(|b| b.starts_with(p)).cloned().collect() };
        let want = |p: &str| -> Vec<String> { (0..50).map(|i| format!("{p}{i}")).collect() };
        anyhow::ensure!(
            from("n1-") == want("n1-"),
            "node 1's messages: {:?}",
            from("n1-")
        );
        anyhow::ensure!(
            from("n3-") == want("n3-"),
            "node 3's messages: {:?}",
            from("n3-")
        );

        // The queue goes with its connection, on every node.
        c2.close(200, "bye".into()).await?;
        wait_for_queue_state(&c3, &name, false, "the queue gone on node 3").await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_of_a_dead_node_are_redelivered() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "unacked_messages_of_a_dead_node_are_redelivered";
    let Some(mut cluster) = Cluster::start(test, 3).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        let c1 = cluster.node(1).connect().await?;
        let ch1 = c1.create_channel().await?;
        declare_durable(&ch1, "held", FieldTable::default()).await?;
        ch1.confirm_select(ConfirmSelectOptions::default()).await?;
        for i in 0..20 {
            let c = ch1
                .basic_publish(
                    "".into(),
                    "held".into(),
                    BasicPublishOptions::default(),
                    format!("h-{i}").as_bytes(),
                    persistent(),
                )
                .await?;
            anyhow::ensure!(matches!(c.await?, Confirmation::Ack(_)), "nacked");
        }
        // A consumer on node 3 takes 5 and acks none of them.
        let c3 = cluster.node(3).connect().await?;
        wait_for_queue(&c3, "held").await?;
        let ch3 = c3.create_channel().await?;
        ch3.basic_qos(5, BasicQosOptions::default()).await?;
        let mut held = consume(&ch3, "held", BasicConsumeOptions::default()).await?;
        let mut taken = BTreeSet::new();
        while taken.len() < 5 {
            let d = tokio::time::timeout(Duration::from_secs(20), held.next())
                .await
                .context("deliveries on node 3")?
                .context("consumer ended")??;
            taken.insert(String::from_utf8(d.data)?);
        }
        // Node 3 dies with them; node 2 gets all 20, those 5 redelivered.
        let killed = Instant::now();
        cluster.node_mut(3).kill9().await?;
        let c2 = cluster.node(2).connect().await?;
        let ch2 = c2.create_channel().await?;
        let mut consumer = consume(&ch2, "held", BasicConsumeOptions::default()).await?;
        let mut got = BTreeSet::new();
        let mut redelivered = BTreeSet::new();
        while got.len() < 20 {
            let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
                .await
                .with_context(|| format!("{} of 20 delivered on node 2", got.len()))?
                .context("consumer ended")??;
            let body = String::from_utf8(d.data.clone())?;
            if d.redelivered {
                redelivered.insert(body.clone());
            }
            got.insert(body);
            d.ack(BasicAckOptions::default()).await?;
        }
        eprintln!(
            "node 3's 5 unacked messages back on node 2 {:?} after the kill",
            killed.elapsed()
        );
        anyhow::ensure!(
            redelivered == taken,
            "redelivered {redelivered:?}, held {taken:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_while_a_node_is_down_is_placed_on_the_live_ones() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "a_queue_declared_while_a_node_is_down_is_placed_on_the_live_ones";
    let Some(mut cluster) = Cluster::start(test, 3).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        cluster.node_mut(3).kill9().await?;
        // Once node 1's failure detector judges node 3 down (its status
        // says so), a declare there places the queue on nodes 1
        // and 2 only (before, it waited for node 3 and failed).
        let down = format!("node 3 {} down\n", cluster.cluster_addrs[2]);
        wait_until(Duration::from_secs(20), "node 3 judged down", || async {
            let status = cluster.ctl(1, &["cluster", "status"]).await.ok()?;
            status.contains(&down).then_some(())
        })
        .await?;
        let c1 = cluster.node(1).connect().await?;
        let ch1 = c1.create_channel().await?;
        declare_durable(&ch1, "two", FieldTable::default()).await?;
        let status = cluster.ctl(1, &["cluster", "status"]).await?;
        let line = status
            .lines()
            .find(|l| l.starts_with("queue two "))
            .with_context(|| format!("queue missing in:\n{status}"))?;
        anyhow::ensure!(line.contains("replicas [1,2] "), "queue line: {line}");
        // And it works: a message published on node 2 is got on node 1.
        let c2 = cluster.node(2).connect().await?;
        wait_for_queue(&c2, "two").await?;
        let ch2 = c2.create_channel().await?;
        ch2.confirm_select(ConfirmSelectOptions::default()).await?;
        let c = ch2
            .basic_publish(
                "".into(),
                "two".into(),
                BasicPublishOptions::default(),
                b"x",
                persistent(),
            )
            .await?;
        anyhow::ensure!(matches!(c.await?, Confirmation::Ack(_)), "nacked");
        let got = wait_until(Duration::from_secs(20), "basic.get on node 1", || async {
            ch1.basic_get("two".into(), BasicGetOptions { no_ack: true })
                .await
                .ok()
                .flatten()
        })
        .await?;
        anyhow::ensure!(got.delivery.data == b"x", "another message");

        // Node 3 returns: the queue's leader gives it the replica the
        // placement could not (three were declared, by default).
        cluster.node_mut(3).restart().await?;
        wait_until(
            Duration::from_secs(30),
            "a third replica on node 3",
            || async {
                let line = queue_line(&cluster, 1, "two").await.ok()?;
                line.contains("replicas [1,2,3] ").then_some(())
            },
        )
        .await?;
        Ok(())
    })
    .await
}

/// Binds `queue` to amq.fanout through `conn` once that node's metadata
/// knows the queue (a bind only checks that it exists); retried until then.
async fn bind_when_known(conn: &lapin::Connection, queue: &str) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(20), "the queue known here", || async {
        let ch = conn.create_channel().await.ok()?;
        let bound = ch
            .queue_bind(
                queue.into(),
                "amq.fanout".into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .is_ok();
        let _ = ch.close(200, "".into()).await;
        bound.then_some(())
    })
    .await
}

/// The queue's line in `warren ctl cluster status` asked of node `id`.
async fn queue_line(cluster: &Cluster, id: u64, queue: &str) -> anyhow::Result<String> {
    let status = cluster.ctl(id, &["cluster", "status"]).await?;
    status
        .lines()
        .find(|l| l.starts_with(&format!("queue {queue} ")))
        .map(str::to_owned)
        .with_context(|| format!("queue {queue} missing in:\n{status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_is_used_from_nodes_that_hold_no_replica_of_it() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "a_queue_is_used_from_nodes_that_hold_no_replica_of_it";
    let Some(cluster) = Cluster::start(test, 3).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        // A classic durable queue is a group of one: its only replica is
        // on node 1, where it is declared.
        let c1 = cluster.node(1).connect().await?;
        let ch1 = c1.create_channel().await?;
        declare_durable(
            &ch1,
            "solo",
            warren_e2e::process::text_arg("x-queue-type", "classic"),
        )
        .await?;
        let line = queue_line(&cluster, 1, "solo").await?;
        anyhow::ensure!(line.contains("replicas [1] "), "queue line: {line}");

        // Published on node 3 (holding nothing of it), through a fanout
        // and the default exchange: handed to node 1, confirmed there.
        let c3 = cluster.node(3).connect().await?;
        bind_when_known(&c3, "solo").await?;
        let ch3 = c3.create_channel().await?;
        ch3.confirm_select(ConfirmSelectOptions::default()).await?;
        const N: u64 = 300;
        let mut confirms = Vec::new();
        for i in 0..N {
            let (exchange, key) = if i % 2 == 0 {
                ("amq.fanout", "")
            } else {
                ("", "solo")
            };
            let body = format!("m-{i}|");
            let c = ch3
                .basic_publish(
                    exchange.into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent(),
                )
                .await?;
            confirms.push(c);
        }
        for c in confirms {
            anyhow::ensure!(
                matches!(c.await?, Confirmation::Ack(_)),
                "a publish was nacked"
            );
        }
        let (ready, _) = queue_counts(&ch1, "solo").await?;
        anyhow::ensure!(ready == N as u32, "node 1 holds {ready} of {N}");

        // Consumed on node 2, which reads the queue from then on (a
        // reader: replicated to, never voting), with prefetch kept exact.
        let c2 = cluster.node(2).connect().await?;
        let ch2 = c2.create_channel().await?;
        ch2.basic_qos(20, BasicQosOptions::default()).await?;
        let mut consumer = consume(&ch2, "solo", BasicConsumeOptions::default()).await?;
        let mut seen = BTreeSet::new();
        let mut held = Vec::new();
        while seen.len() < N as usize {
            let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
                .await
                .context("waiting for deliveries on node 2")?
                .context("consumer ended")??;
            anyhow::ensure!(!d.redelivered, "first delivery flagged redelivered");
            let body = String::from_utf8(d.data.clone())?;
            anyhow::ensure!(seen.insert(body.clone()), "{body} delivered twice");
            held.push(d);
            if held.len() == 20 {
                // The 21st must wait for an ack.
                anyhow::ensure!(
                    tokio::time::timeout(Duration::from_millis(300), consumer.next())
                        .await
                        .is_err(),
                    "more than the prefetch of 20 unacked"
                );
                for d in held.drain(..) {
                    d.ack(BasicAckOptions::default()).await?;
                }
            }
        }
        for d in held.drain(..) {
            d.ack(BasicAckOptions::default()).await?;
        }
        let expected: BTreeSet<String> = (0..N).map(|i| format!("m-{i}|")).collect();
        anyhow::ensure!(
            seen == expected,
            "the set consumed differs from the set published"
        );
        wait_until(
            Duration::from_secs(20),
            "every ack applied on node 1",
            || async {
                let (ready, consumers) = queue_counts(&ch1, "solo").await.ok()?;
                let line = queue_line(&cluster, 1, "solo").await.ok()?;
                (ready == 0 && consumers == 1 && line.contains("unacked 0")).then_some(line)
            },
        )
        .await
        .map(|line| eprintln!("after the acks: {line}"))?;
        let line = queue_line(&cluster, 1, "solo").await?;
        anyhow::ensure!(
            line.contains("replicas [1] ") && line.contains("readers [2]"),
            "node 2 should read the queue without voting: {line}"
        );

        // basic.get on node 3 of a message published on node 2; then a
        // purge on node 3 and the delete on node 2 act on the one queue.
        ch2.close(200, "done".into()).await?;
        let ch2p = c2.create_channel().await?;
        ch2p.basic_publish(
            "".into(),
            "solo".into(),
            BasicPublishOptions::default(),
            b"via-get",
            persistent(),
        )
        .await?;
        let got = wait_until(Duration::from_secs(20), "basic.get on node 3", || async {
            ch3.basic_get("solo".into(), BasicGetOptions { no_ack: true })
                .await
                .ok()
                .flatten()
        })
        .await?;
        anyhow::ensure!(
            got.delivery.data == b"via-get",
            "basic.get returned another message"
        );
        ch2p.basic_publish(
            "".into(),
            "solo".into(),
            BasicPublishOptions::default(),
            b"to-purge",
            persistent(),
        )
        .await?;
        wait_until(Duration::from_secs(20), "the message on node 1", || async {
            let (ready, _) = queue_counts(&ch1, "solo").await.ok()?;
            (ready == 1).then_some(())
        })
        .await?;
        let purged = ch3.queue_purge("solo".into(), Default::default()).await?;
        anyhow::ensure!(purged == 1, "purged {purged}");
        ch2p.queue_delete("solo".into(), Default::default()).await?;
        wait_for_queue_state(&c1, "solo", false, "the queue gone on node 1").await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_lose_no_confirmed_message_of_a_queue_used_from_non_replicas()
-> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "five_nodes_lose_no_confirmed_message_of_a_queue_used_from_non_replicas";
    let Some(mut cluster) = Cluster::start(test, 5).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        // Three replicas of five nodes: 1 (leading), 2 and 3.
        let c1 = cluster.node(1).connect().await?;
        let ch1 = c1.create_channel().await?;
        declare_durable(&ch1, "q5", FieldTable::default()).await?;
        let line = queue_line(&cluster, 1, "q5").await?;
        anyhow::ensure!(
            line.contains("leader 1 replicas [1,2,3] "),
            "queue line: {line}"
        );

        // A consumer on node 5 and a publisher on node 4: neither holds a
        // replica.
        let c5 = cluster.node(5).connect().await?;
        wait_for_queue(&c5, "q5").await?;
        let ch5 = c5.create_channel().await?;
        ch5.basic_qos(100, BasicQosOptions::default()).await?;
        let mut consumer = consume(&ch5, "q5", BasicConsumeOptions::default()).await?;
        let delivered = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let seen = delivered.clone();
        let consuming = tokio::spawn(async move {
            while let Some(d) = consumer.next().await {
                let Ok(d) = d else { break };
                if let Some(seq) = seq_of("f", &d.data) {
                    seen.lock().unwrap_or_else(|e| e.into_inner()).insert(seq);
                }
                if d.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
            }
        });
        let c4 = cluster.node(4).connect().await?;
        bind_when_known(&c4, "q5").await?;
        let ledger = SharedLedger::default();
        let publisher = tokio::spawn(publish_confirmed(
            c4.create_channel().await?,
            "q5".into(),
            "f".into(),
            1024,
            3000,
            ledger.clone(),
        ));
        wait_until(Duration::from_secs(60), "500 confirms", || async {
            (ledger.lock().acked >= 500).then_some(())
        })
        .await?;
        cluster.node_mut(1).kill9().await?;
        eprintln!(
            "node 1 (the leader) killed with {} confirmed",
            ledger.lock().acked
        );
        let published = publisher.await?;
        let (acked, nacked) = {
            let l = ledger.lock();
            (l.acked, l.nacked)
        };
        eprintln!("publisher done: {published:?}; acked {acked} nacked {nacked}");

        // Every confirmed message reaches the consumer on node 5.
        let outcomes = ledger.lock().outcomes.clone();
        let confirmed: BTreeSet<u64> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == warren_e2e::process::Outcome::Acked)
            .map(|(seq, _)| seq as u64)
            .collect();
        let missing = wait_until(Duration::from_secs(60), "every confirmed delivered", || {
            let delivered = delivered.clone();
            let confirmed = confirmed.clone();
            async move {
                let d = delivered.lock().unwrap_or_else(|e| e.into_inner());
                confirmed.is_subset(&d).then_some(())
            }
        })
        .await;
        consuming.abort();
        if missing.is_err() {
            let d = delivered.lock().unwrap_or_else(|e| e.into_inner());
            let lost: Vec<u64> = confirmed.difference(&d).copied().collect();
            anyhow::bail!(
                "{} confirmed messages never delivered: {lost:?}",
                lost.len()
            );
        }
        anyhow::ensure!(confirmed.len() >= 500, "too few confirms to mean anything");
        let line = queue_line(&cluster, 2, "q5").await?;
        eprintln!("after the kill: {line}");
        anyhow::ensure!(
            line.contains("leader 2 ") || line.contains("leader 3 "),
            "no new leader among the live replicas: {line}"
        );
        anyhow::ensure!(
            line.contains("readers [5]"),
            "node 5 should read the queue: {line}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_a_node_judged_down_while_alive_are_cancelled() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "consumers_of_a_node_judged_down_while_alive_are_cancelled";
    let Some(cluster) = Cluster::start(test, 3).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        let c1 = cluster.node(1).connect().await?;
        let ch1 = c1.create_channel().await?;
        declare_durable(&ch1, "paused", FieldTable::default()).await?;
        let c3 = cluster.node(3).connect().await?;
        wait_for_queue(&c3, "paused").await?;
        let ch3 = c3.create_channel().await?;
        let mut consumer = consume(&ch3, "paused", BasicConsumeOptions::default()).await?;
        wait_until(
            Duration::from_secs(20),
            "the consumer counted on node 1",
            || async {
                let (_, consumers) = queue_counts(&ch1, "paused").await.ok()?;
                (consumers == 1).then_some(())
            },
        )
        .await?;

        // Node 3 pauses long enough to be judged down: the queue drops its
        // consumer. Once resumed, node 3 tells the client (basic.cancel)
        // rather than leave it waiting for nothing.
        cluster.node(3).pause(true)?;
        wait_until(Duration::from_secs(20), "the consumer dropped", || async {
            let (_, consumers) = queue_counts(&ch1, "paused").await.ok()?;
            (consumers == 0).then_some(())
        })
        .await?;
        cluster.node(3).pause(false)?;
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(d) = consumer.next().await {
                d?;
            }
            anyhow::Ok(())
        })
        .await;
        anyhow::ensure!(
            matches!(ended, Ok(Ok(()))),
            "the consumer was not cancelled: {ended:?}"
        );
        // The channel stays open: consuming again works.
        let mut again = consume(&ch3, "paused", BasicConsumeOptions::default()).await?;
        ch1.basic_publish(
            "".into(),
            "paused".into(),
            BasicPublishOptions::default(),
            b"after",
            persistent(),
        )
        .await?;
        let d = tokio::time::timeout(Duration::from_secs(20), again.next())
            .await
            .context("waiting for a delivery after consuming again")?
            .context("consumer ended")??;
        anyhow::ensure!(d.data == b"after", "another message");
        Ok(())
    })
    .await
}

/// Publishes `n` persistent messages tagged `tag` to `queue` through
/// `conn`, every one confirmed (no fault runs meanwhile).
async fn publish_all(
    conn: &lapin::Connection,
    queue: &str,
    tag: &str,
    n: u64,
) -> anyhow::Result<()> {
    let ledger = SharedLedger::default();
    let ch = conn.create_channel().await?;
    publish_confirmed(ch, queue.into(), tag.into(), 64, n, ledger.clone()).await?;
    let acked = ledger.lock().acked;
    anyhow::ensure!(acked as u64 == n, "{acked} of {n} confirmed");
    Ok(())
}

/// Drains `queue` through `conn`; the sequence numbers of `tag` got.
async fn drained_seqs(
    conn: &lapin::Connection,
    queue: &str,
    tag: &str,
) -> anyhow::Result<BTreeSet<u64>> {
    let (_, got) = drain(conn, queue).await?;
    Ok(got.iter().filter_map(|d| seq_of(tag, &d.data)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_added_and_a_dead_one_removed_with_warren_ctl() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "a_node_is_added_and_a_dead_one_removed_with_warren_ctl";
    let Some(mut cluster) = Cluster::start(test, 3).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        let c1 = cluster.node(1).connect().await?;
        declare_durable(&c1.create_channel().await?, "grow", FieldTable::default()).await?;
        publish_all(&c1, "grow", "before", 200).await?;

        // Node 4 starts (it listens for clients once it joined); it is
        // added through node 2.
        let (id, addr, args) = cluster.new_node_args()?;
        let start = warren_e2e::process::WarrenProcess::start_with(test, args);
        let add = async {
            // Its cluster port must be up: retried until the node listens.
            wait_until(
                Duration::from_secs(60),
                "warren ctl cluster add-node",
                || async {
                    let out = cluster
                        .ctl(
                            2,
                            &["cluster", "add-node", &id.to_string(), &addr.to_string()],
                        )
                        .await;
                    if let Err(e) = &out {
                        eprintln!("{e}");
                    }
                    out.ok()
                },
            )
            .await
        };
        let (started, added) = tokio::join!(start, add);
        let node = started?.context("external broker")?;
        eprintln!("{}", added?);
        cluster.joined(node, addr);
        wait_until(Duration::from_secs(60), "node 4 voting", || async {
            let status = cluster.ctl(1, &["cluster", "status"]).await.ok()?;
            status.contains("voters [1,2,3,4]").then_some(())
        })
        .await?;
        // Everything held so far is consumed on node 4.
        let c4 = cluster.node(4).connect().await?;
        let got = drained_seqs(&c4, "grow", "before").await?;
        anyhow::ensure!(
            got == (0..200).collect(),
            "got {} of 200 on node 4",
            got.len()
        );

        // The queue existed before node 4: `queue grow` gives it a replica
        // there (node 4, a reader since its consumer, becomes a voter).
        let grown = cluster.ctl(1, &["queue", "grow", "4", "all"]).await?;
        anyhow::ensure!(grown.contains("1 queues grown"), "queue grow: {grown}");
        wait_until(
            Duration::from_secs(60),
            "grow replicated on 1, 2, 3, 4",
            || async {
                let status = cluster.ctl(1, &["cluster", "status"]).await.ok()?;
                let line = status.lines().find(|l| l.starts_with("queue grow "))?;
                (line.contains("replicas [1,2,3,4] ") && !line.contains("learners")).then_some(())
            },
        )
        .await?;
        let again = cluster.ctl(2, &["queue", "grow", "4", "even"]).await?;
        anyhow::ensure!(
            again.contains("0 queues grown, 1 already"),
            "queue grow again: {again}"
        );

        // A node that is up cannot be removed.
        let refused = cluster.ctl(1, &["cluster", "remove-node", "3"]).await;
        anyhow::ensure!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("is up")),
            "removing a running node: {refused:?}"
        );
        // Node 3 dies for good and is removed once judged down.
        cluster.node_mut(3).kill9().await?;
        wait_until(
            Duration::from_secs(60),
            "warren ctl cluster remove-node 3",
            || async { cluster.ctl(4, &["cluster", "remove-node", "3"]).await.ok() },
        )
        .await?;
        // The queue's replica on node 3 is replaced on node 4.
        wait_until(
            Duration::from_secs(60),
            "grow replicated on 1, 2, 4",
            || async {
                let status = cluster.ctl(1, &["cluster", "status"]).await.ok()?;
                let line = status.lines().find(|l| l.starts_with("queue grow "))?;
                (status.contains("voters [1,2,4]")
                    && !status.contains(&format!(" {} ", cluster.cluster_addrs[2]))
                    && line.contains("replicas [1,2,4] ")
                    && !line.contains("learners"))
                .then_some(())
            },
        )
        .await?;
        publish_all(&c4, "grow", "after", 100).await?;
        let c2 = cluster.node(2).connect().await?;
        let got = drained_seqs(&c2, "grow", "after").await?;
        anyhow::ensure!(
            got == (0..100).collect(),
            "got {} of 100 on node 2",
            got.len()
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_queue_is_used_from_every_node_and_goes_with_its_node() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "a_transient_queue_is_used_from_every_node_and_goes_with_its_node";
    let Some(mut cluster) = Cluster::start(test, 3).await? else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        // RabbitMQ's first tutorial, over three nodes: a non-durable queue
        // declared by the consumer on node 2, again by the producer on
        // node 3, published to on node 3, consumed on node 1.
        let c2 = cluster.node(2).connect().await?;
        let ch2 = c2.create_channel().await?;
        let plain = QueueDeclareOptions::default();
        ch2.queue_declare("hello".into(), plain, FieldTable::default())
            .await?;
        let line = queue_line(&cluster, 2, "hello").await?;
        anyhow::ensure!(line.contains("replicas [2] "), "queue line: {line}");
        let c3 = cluster.node(3).connect().await?;
        let ch3 = c3.create_channel().await?;
        wait_until(
            Duration::from_secs(20),
            "hello declared on node 3",
            || async {
                let ch = c3.create_channel().await.ok()?;
                ch.queue_declare("hello".into(), plain, FieldTable::default())
                    .await
                    .ok()
            },
        )
        .await?;
        ch3.confirm_select(ConfirmSelectOptions::default()).await?;
        const N: u64 = 50;
        for i in 0..N {
            let c = ch3
                .basic_publish(
                    "".into(),
                    "hello".into(),
                    BasicPublishOptions::default(),
                    format!("hello {i}").as_bytes(),
                    lapin::BasicProperties::default(),
                )
                .await?;
            anyhow::ensure!(matches!(c.await?, Confirmation::Ack(_)), "#{i} nacked");
        }
        let c1 = cluster.node(1).connect().await?;
        let ch1 = c1.create_channel().await?;
        let mut consumer = consume(&ch1, "hello", BasicConsumeOptions::default()).await?;
        for i in 0..N {
            let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
                .await
                .context("a delivery on node 1")?
                .context("consumer ended")??;
            anyhow::ensure!(
                d.data == format!("hello {i}").as_bytes(),
                "#{i}: {:?}",
                String::from_utf8_lossy(&d.data)
            );
            d.ack(BasicAckOptions::default()).await?;
        }

        // It lived on node 2: once node 2 restarts, it is gone, as a
        // RabbitMQ transient queue is after its node restarts.
        drop(consumer);
        cluster.node_mut(2).restart().await?;
        wait_until(Duration::from_secs(30), "hello gone", || async {
            (!queue_exists(&c1, "hello").await?).then_some(())
        })
        .await?;

        // One declared on node 3 goes as soon as node 3 is judged down
        // (RabbitMQ deletes a node's transient queues when it goes down);
        // a durable one declared there stays.
        ch3.queue_declare("hello3".into(), plain, FieldTable::default())
            .await?;
        declare_durable(&ch3, "kept3", FieldTable::default()).await?;
        wait_for_queue(&c1, "hello3").await?;
        wait_for_queue(&c1, "kept3").await?;
        cluster.node_mut(3).kill9().await?;
        wait_for_queue_state(&c1, "hello3", false, "hello3 gone with node 3").await?;
        anyhow::ensure!(
            queue_exists(&c1, "kept3").await == Some(true),
            "the durable queue stays"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_reader_stops_reading_and_reads_again_when_used() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "an_unused_reader_stops_reading_and_reads_again_when_used";
    let Some(cluster) = Cluster::start_with(test, 3, &["--release-readers-after", "2"]).await?
    else {
        return Ok(());
    };
    with_limit(LIMIT, async {
        // A classic queue on node 1, consumed on node 2: node 2 reads it.
        let c1 = cluster.node(1).connect().await?;
        declare_durable(
            &c1.create_channel().await?,
            "lent",
            warren_e2e::process::text_arg("x-queue-type", "classic"),
        )
        .await?;
        publish_all(&c1, "lent", "one", 20).await?;
        let c2 = cluster.node(2).connect().await?;
        wait_for_queue(&c2, "lent").await?;
        let got = drained_seqs(&c2, "lent", "one").await?;
        anyhow::ensure!(
            got == (0..20).collect(),
            "got {} of 20 on node 2",
            got.len()
        );
        let line = queue_line(&cluster, 1, "lent").await?;
        anyhow::ensure!(line.contains("readers [2]"), "queue line: {line}");

        // Nothing on node 2 uses it any more: after 2 s node 2 leaves the
        // queue's group and its copy goes.
        wait_until(
            Duration::from_secs(30),
            "node 2 no longer reading",
            || async {
                let line = queue_line(&cluster, 1, "lent").await.ok()?;
                let gone = queue_line(&cluster, 2, "lent").await.is_err();
                (!line.contains("readers") && gone).then_some(())
            },
        )
        .await?;

        // Publishing on node 2 still works (handed to node 1), and a
        // consumer there makes it read the queue again.
        publish_all(&c2, "lent", "two", 20).await?;
        let got = drained_seqs(&c2, "lent", "two").await?;
        anyhow::ensure!(got == (0..20).collect(), "got {} of 20 again", got.len());
        let line = queue_line(&cluster, 1, "lent").await?;
        anyhow::ensure!(line.contains("readers [2]"), "queue line: {line}");
        Ok(())
    })
    .await
}
