//! Publisher confirms (confirm.select) and transactions (tx.*).

use std::collections::BTreeSet;

use lapin::Confirmation;
use lapin::options::{BasicAckOptions, BasicGetOptions, ConfirmSelectOptions, QueueDeleteOptions};
use warren_e2e::raw::{self, Args, RawConn, Reader};
use warren_e2e::{
    declare_queue, expect_code, publish, queue_counts, start, unique, wait_ready, with_timeout,
};

#[tokio::test]
async fn confirms_ack_routed_and_unroutable_messages() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-confirm");
        declare_queue(&ch, &q).await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        assert!(ch.status().confirm());
        let routed = publish(&ch, "", &q, b"routed").await?.await?;
        assert_eq!(routed, Confirmation::Ack(None));
        let unroutable = publish(&ch, "", &unique("nobody"), b"dropped")
            .await?
            .await?;
        assert_eq!(unroutable, Confirmation::Ack(None));
        let mut pending = Vec::new();
        for i in 0..50 {
            pending.push(publish(&ch, "", &q, format!("m{i}").as_bytes()).await?);
        }
        for confirm in pending {
            assert!(confirm.await?.is_ack());
        }
        assert!(ch.wait_for_confirms().await?.is_empty());
        assert_eq!(queue_counts(&ch, &q).await?, (51, 0));
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

/// Reads `basic.ack` frames until every tag in 1..=n is confirmed exactly once,
/// honouring `multiple`; returns how many ack frames it took.
async fn collect_acks(conn: &mut RawConn, n: u64) -> anyhow::Result<usize> {
    let mut confirmed = BTreeSet::new();
    let mut frames = 0;
    while (confirmed.len() as u64) < n {
        let f = conn.read_method().await?;
        anyhow::ensure!(
            f.method_id() == Some((60, 80)),
            "expected basic.ack, got {f:?}"
        );
        frames += 1;
        let mut r = Reader::new(&f.payload[4..]);
        let tag = r.longlong()?;
        let multiple = r.octet()? & 1 == 1;
        anyhow::ensure!((1..=n).contains(&tag), "ack for unknown tag {tag}");
        let first = if multiple { 1 } else { tag };
        for t in first..=tag {
            // A multiple ack may overlap tags already acked singly before it
            // only if they were below it; a single ack must be new.
            anyhow::ensure!(confirmed.insert(t) || multiple, "tag {t} acked twice");
        }
    }
    Ok(frames)
}

#[tokio::test]
async fn confirm_tags_count_from_one_and_cover_every_publish() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let (mut conn, _) = RawConn::open(broker.addr()).await?;
        conn.open_channel(1).await?;
        conn.send(&raw::method_frame(1, 85, 10, Args::new().bits(&[false])))
            .await?;
        let ok = conn.read_method().await?;
        assert_eq!(ok.method_id(), Some((85, 11)), "{ok:?}");
        // 40 publishes in one write: the broker is free to ack them with
        // `multiple`, but every tag 1..=40 must end up confirmed.
        let mut batch = Vec::new();
        for i in 0..40u32 {
            let body = format!("b{i}");
            batch.extend(raw::basic_publish_frame(
                1,
                "",
                "no-such-queue-for-confirms",
            ));
            batch.extend(raw::content_header_frame(1, 60, body.len() as u64));
            batch.extend(raw::frame(raw::FRAME_BODY, 1, body.as_bytes()));
        }
        conn.send(&batch).await?;
        let frames = collect_acks(&mut conn, 40).await?;
        assert!(frames >= 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tx_publishes_take_effect_only_at_commit() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-tx-pub");
        declare_queue(&ch, &q).await?;
        let tx = conn.create_channel().await?;
        tx.tx_select().await?;
        publish(&tx, "", &q, b"one").await?;
        publish(&tx, "", &q, b"two").await?;
        // A synchronous round trip on the tx channel: the broker has
        // handled both publishes, yet nothing is in the queue.
        queue_counts(&tx, &q).await?;
        assert_eq!(queue_counts(&ch, &q).await?, (0, 0));
        tx.tx_commit().await?;
        wait_ready(&ch, &q, 2).await?;
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tx_rollback_discards_publishes() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-tx-rollback");
        declare_queue(&ch, &q).await?;
        let tx = conn.create_channel().await?;
        tx.tx_select().await?;
        publish(&tx, "", &q, b"discarded").await?;
        tx.tx_rollback().await?;
        publish(&tx, "", &q, b"kept").await?;
        tx.tx_commit().await?;
        wait_ready(&ch, &q, 1).await?;
        let got = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(got.delivery.data, b"kept");
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tx_acks_take_effect_at_commit_and_rollback_discards_them() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        let q = unique("q-tx-ack");
        declare_queue(&ch, &q).await?;
        for body in ["a", "b"] {
            publish(&ch, "", &q, body.as_bytes()).await?;
        }
        wait_ready(&ch, &q, 2).await?;
        let tx = conn.create_channel().await?;
        tx.tx_select().await?;
        let a = tx
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        let b = tx
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        tx.basic_ack(a.delivery.delivery_tag, BasicAckOptions::default())
            .await?;
        tx.tx_rollback().await?;
        // The rolled-back ack left `a` unacked; only b gets acked for real.
        tx.basic_ack(b.delivery.delivery_tag, BasicAckOptions::default())
            .await?;
        tx.tx_commit().await?;
        tx.close(200, "bye".into()).await?;
        // Closing the channel requeues what is still unacked: exactly `a`.
        wait_ready(&ch, &q, 1).await?;
        let back = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| anyhow::anyhow!("get-empty"))?;
        assert_eq!(
            (back.delivery.data.as_slice(), back.delivery.redelivered),
            (&b"a"[..], true)
        );
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn commit_without_select_is_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        expect_code(
            ch.tx_commit().await,
            406,
            "PRECONDITION_FAILED - channel is not transactional",
        )?;
        let ch = conn.create_channel().await?;
        expect_code(
            ch.tx_rollback().await,
            406,
            "PRECONDITION_FAILED - channel is not transactional",
        )?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn confirm_and_tx_modes_exclude_each_other_406() -> anyhow::Result<()> {
    let broker = start().await;
    with_timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        expect_code(
            ch.tx_select().await,
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
        )?;
        let ch = conn.create_channel().await?;
        ch.tx_select().await?;
        expect_code(
            ch.confirm_select(ConfirmSelectOptions::default()).await,
            406,
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
        )?;
        Ok(())
    })
    .await
}
