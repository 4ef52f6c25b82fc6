//! One conformance suite for every `LogStore` (STYLE.md rule 9): `MemStore`
//! and `RocksStore` run the same cases, so the in-memory twin cannot drift
//! from the real store. Each case panics (via `assert!`) on a semantic
//! mismatch and returns `Err` when the store itself fails.
//!
//! Use: `conformance::run_all(|| make_fresh_store()).await?` from a tokio test,
//! plus `reopen_keeps_everything` for stores that persist.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;

use crate::store::LogStore;
use crate::types::{Entry, GroupId, LogState, MetaKey, StorageError};

type Result = std::result::Result<(), StorageError>;

fn entries(group: GroupId, range: std::ops::Range<u64>) -> Vec<Entry> {
    range
        .map(|i| Entry::new(i, format!("g{group}-e{i}").into_bytes()))
        .collect()
}

fn state(first: u64, last: u64) -> LogState {
    LogState {
        first_index: Some(first),
        last_index: Some(last),
    }
}

/// Runs every case, each on a fresh store from `make`.
pub async fn run_all<S: LogStore>(make: impl Fn() -> S) -> Result {
    append_read_overwrite(&make()).await?;
    truncate(&make()).await?;
    purge(&make()).await?;
    meta(&make()).await?;
    snapshots_replace(&make()).await?;
    bodies(&make()).await?;
    delete_group(&make()).await?;
    groups_listing(&make()).await?;
    extreme_ids(&make()).await?;
    concurrent_appends(&make(), 64, 20).await?;
    pipelined_writes_apply_in_order(&make()).await?;
    Ok(())
}

pub async fn append_read_overwrite<S: LogStore>(s: &S) -> Result {
    assert_eq!(s.log_state(1)?, LogState::default());
    assert!(s.entries(1, 0..100)?.is_empty());
    s.append(1, entries(1, 1..11)).await?;
    s.append(2, entries(2, 5..8)).await?;
    assert_eq!(s.entries(1, 1..11)?, entries(1, 1..11));
    assert_eq!(s.entries(1, 3..6)?, entries(1, 3..6));
    assert_eq!(
        s.entries(1, 0..3)?,
        entries(1, 1..3),
        "missing indexes are skipped"
    );
    assert_eq!(s.entries(1, 9..100)?, entries(1, 9..11));
    assert!(s.entries(1, 6..6)?.is_empty(), "empty range");
    assert_eq!(s.log_state(1)?, state(1, 10));
    assert_eq!(s.log_state(2)?, state(5, 7));
    // Overwrite in place: the new payloads win, neighbours stay.
    let new: Vec<Entry> = (4..6)
        .map(|i| Entry::new(i, format!("new{i}").into_bytes()))
        .collect();
    s.append(1, new.clone()).await?;
    let got = s.entries(1, 3..7)?;
    assert_eq!(got[0], entries(1, 3..4)[0]);
    assert_eq!(&got[1..3], &new[..]);
    assert_eq!(got[3], entries(1, 6..7)[0]);
    assert_eq!(s.log_state(1)?, state(1, 10));
    // Empty append is a no-op, not an error.
    s.append(1, Vec::new()).await?;
    // Large payload survives intact.
    let big = Bytes::from(vec![7u8; 1 << 20]);
    s.append(3, vec![Entry::new(1, big.clone())]).await?;
    assert_eq!(s.entries(3, 1..2)?[0].payload, big);
    Ok(())
}

pub async fn truncate<S: LogStore>(s: &S) -> Result {
    s.append(1, entries(1, 1..21)).await?;
    s.append(2, entries(2, 1..21)).await?;
    s.truncate_after(1, 12).await?;
    assert_eq!(s.log_state(1)?, state(1, 12));
    assert_eq!(s.entries(1, 0..100)?, entries(1, 1..13));
    assert_eq!(s.log_state(2)?, state(1, 20), "other group untouched");
    // Re-append after truncation: conflict resolution as Raft does it.
    s.append(1, entries(1, 13..16)).await?;
    assert_eq!(s.log_state(1)?, state(1, 15));
    s.truncate_after(1, 100).await?;
    assert_eq!(
        s.log_state(1)?,
        state(1, 15),
        "truncating above the end is a no-op"
    );
    s.truncate_after(1, 0).await?;
    assert_eq!(s.log_state(1)?, LogState::default());
    assert!(s.entries(1, 0..u64::MAX)?.is_empty());
    Ok(())
}

pub async fn purge<S: LogStore>(s: &S) -> Result {
    s.append(1, entries(1, 1..21)).await?;
    s.append(2, entries(2, 1..21)).await?;
    s.purge_upto(1, 7).await?;
    assert_eq!(s.log_state(1)?, state(8, 20));
    assert_eq!(s.entries(1, 0..10)?, entries(1, 8..10));
    assert_eq!(s.log_state(2)?, state(1, 20), "other group untouched");
    s.purge_upto(1, 3).await?;
    assert_eq!(
        s.log_state(1)?,
        state(8, 20),
        "purging below the start is a no-op"
    );
    s.append(1, entries(1, 21..23)).await?;
    assert_eq!(s.log_state(1)?, state(8, 22));
    s.purge_upto(1, 22).await?;
    assert_eq!(s.log_state(1)?, LogState::default());
    // The log continues after a full purge.
    s.append(1, entries(1, 23..25)).await?;
    assert_eq!(s.log_state(1)?, state(23, 24));
    s.purge_upto(2, u64::MAX).await?;
    assert_eq!(s.log_state(2)?, LogState::default());
    Ok(())
}

pub async fn meta<S: LogStore>(s: &S) -> Result {
    let keys = [
        MetaKey::Vote,
        MetaKey::Committed,
        MetaKey::LastPurged,
        MetaKey::Applied,
        MetaKey::Custom(0),
        MetaKey::Custom(7),
    ];
    for k in keys {
        assert_eq!(s.read_meta(1, k)?, None);
    }
    for (n, k) in keys.iter().enumerate() {
        s.save_meta(1, *k, Bytes::from(format!("v{n}"))).await?;
    }
    for (n, k) in keys.iter().enumerate() {
        assert_eq!(s.read_meta(1, *k)?, Some(Bytes::from(format!("v{n}"))));
        assert_eq!(s.read_meta(2, *k)?, None, "meta is per group");
    }
    s.save_meta(1, MetaKey::Vote, Bytes::from_static(b"term 2"))
        .await?;
    assert_eq!(
        s.read_meta(1, MetaKey::Vote)?,
        Some(Bytes::from_static(b"term 2"))
    );
    s.save_meta(1, MetaKey::Vote, Bytes::new()).await?;
    assert_eq!(
        s.read_meta(1, MetaKey::Vote)?,
        Some(Bytes::new()),
        "empty is not absent"
    );
    // Log operations leave meta alone.
    s.append(1, entries(1, 1..5)).await?;
    s.purge_upto(1, 4).await?;
    assert_eq!(s.read_meta(1, MetaKey::Committed)?, Some(Bytes::from("v1")));
    Ok(())
}

pub async fn snapshots_replace<S: LogStore>(s: &S) -> Result {
    assert_eq!(s.read_snapshot(1)?, None);
    s.save_snapshot(1, Bytes::from("m1"), Bytes::from("d1"))
        .await?;
    assert_eq!(
        s.read_snapshot(1)?,
        Some((Bytes::from("m1"), Bytes::from("d1")))
    );
    assert_eq!(s.read_snapshot(2)?, None);
    s.save_snapshot(1, Bytes::from("m2"), Bytes::from(vec![9u8; 3 << 20]))
        .await?;
    let (m, d) = s.read_snapshot(1)?.unwrap_or_default();
    assert_eq!((m, d.len()), (Bytes::from("m2"), 3 << 20));
    // A smaller snapshot fully replaces a bigger one (no stale tail).
    s.save_snapshot(1, Bytes::from("m3"), Bytes::from("d3"))
        .await?;
    assert_eq!(
        s.read_snapshot(1)?,
        Some((Bytes::from("m3"), Bytes::from("d3")))
    );
    // Concurrent saves and reads: every read sees a matching (meta, data) pair.
    let mut tasks = Vec::new();
    for n in 0..20u32 {
        let s2 = s.clone();
        tasks.push(tokio::spawn(async move {
            let v = Bytes::from(format!("{n}"));
            s2.save_snapshot(5, v.clone(), v).await
        }));
    }
    for _ in 0..50 {
        if let Some((m, d)) = s.read_snapshot(5)? {
            assert_eq!(m, d, "snapshot meta and data come from the same save");
        }
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.map_err(|e| StorageError::Io(e.to_string()))??;
    }
    Ok(())
}

pub async fn bodies<S: LogStore>(s: &S) -> Result {
    assert_eq!(s.get_body(1, 5)?, None);
    let b: Vec<(u64, Bytes)> = [3u64, 5, 9, 100]
        .iter()
        .map(|i| (*i, Bytes::from(format!("b{i}"))))
        .collect();
    s.put_bodies(1, b).await?;
    assert_eq!(s.get_body(1, 5)?, Some(Bytes::from("b5")));
    assert_eq!(s.get_body(1, 4)?, None);
    assert_eq!(s.get_body(2, 5)?, None, "bodies are per group");
    // Bodies outlive log purges: that is their point.
    s.append(1, entries(1, 1..11)).await?;
    s.purge_upto(1, 10).await?;
    assert_eq!(s.get_body(1, 9)?, Some(Bytes::from("b9")));
    // Out-of-order settlement, including an absent index.
    s.delete_bodies(1, vec![9, 3, 42]).await?;
    assert_eq!(s.get_body(1, 3)?, None);
    assert_eq!(s.get_body(1, 9)?, None);
    assert_eq!(s.get_body(1, 5)?, Some(Bytes::from("b5")));
    assert_eq!(s.get_body(1, 100)?, Some(Bytes::from("b100")));
    Ok(())
}

pub async fn delete_group<S: LogStore>(s: &S) -> Result {
    for g in [1, 2, 3] {
        s.append(g, entries(g, 1..10)).await?;
        s.save_meta(g, MetaKey::Vote, Bytes::from("v")).await?;
        s.save_snapshot(g, Bytes::from("m"), Bytes::from("d"))
            .await?;
        s.put_bodies(g, vec![(1, Bytes::from("b"))]).await?;
    }
    s.delete_group(2).await?;
    assert_eq!(s.log_state(2)?, LogState::default());
    assert!(s.entries(2, 0..100)?.is_empty());
    assert_eq!(s.read_meta(2, MetaKey::Vote)?, None);
    assert_eq!(s.read_snapshot(2)?, None);
    assert_eq!(s.get_body(2, 1)?, None);
    for g in [1, 3] {
        assert_eq!(s.log_state(g)?, state(1, 9), "neighbour {g} untouched");
        assert_eq!(s.read_meta(g, MetaKey::Vote)?, Some(Bytes::from("v")));
        assert!(s.read_snapshot(g)?.is_some());
        assert_eq!(s.get_body(g, 1)?, Some(Bytes::from("b")));
    }
    assert_eq!(s.groups()?, vec![1, 3]);
    // A deleted group can be created again from scratch.
    s.append(2, entries(2, 1..3)).await?;
    assert_eq!(s.log_state(2)?, state(1, 2));
    Ok(())
}

pub async fn groups_listing<S: LogStore>(s: &S) -> Result {
    assert_eq!(s.groups()?, Vec::<GroupId>::new());
    s.append(7, entries(7, 1..3)).await?;
    s.save_meta(3, MetaKey::Committed, Bytes::from("c")).await?;
    s.save_snapshot(11, Bytes::from("m"), Bytes::from("d"))
        .await?;
    s.put_bodies(300, vec![(1, Bytes::from("b"))]).await?;
    s.append(0, entries(0, 1..2)).await?;
    assert_eq!(s.groups()?, vec![0, 3, 7, 11, 300]);
    s.delete_group(7).await?;
    s.delete_bodies(300, vec![1]).await?;
    assert_eq!(s.groups()?, vec![0, 3, 11]);
    Ok(())
}

/// Group ids and indexes at the edges of u64 must not spill into neighbours.
pub async fn extreme_ids<S: LogStore>(s: &S) -> Result {
    let top = u64::MAX;
    s.append(top, vec![Entry::new(top, "last"), Entry::new(0, "zero")])
        .await?;
    s.append(top - 1, vec![Entry::new(top, "x")]).await?;
    assert_eq!(s.log_state(top)?, state(0, top));
    assert_eq!(s.entries(top, top..top)?, Vec::new());
    assert_eq!(s.entries(top, 0..top)?, vec![Entry::new(0, "zero")]);
    s.truncate_after(top, top).await?;
    assert_eq!(
        s.log_state(top)?,
        state(0, top),
        "truncate_after(MAX) keeps all"
    );
    s.purge_upto(top, top).await?;
    assert_eq!(s.log_state(top)?, LogState::default());
    assert_eq!(s.log_state(top - 1)?, state(top, top));
    s.delete_group(top).await?;
    assert_eq!(s.groups()?, vec![top - 1]);
    Ok(())
}

/// `groups` groups append concurrently, `per_group` appends each, one entry
/// per append. All must complete in order per group; a durable store must
/// batch (fewer fsyncs than appends).
pub async fn concurrent_appends<S: LogStore>(s: &S, groups: u64, per_group: u64) -> Result {
    let before = s.stats();
    let mut tasks = Vec::new();
    for g in 0..groups {
        let s2 = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 1..=per_group {
                s2.append(g, entries(g, i..i + 1)).await?;
            }
            Ok::<_, StorageError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| StorageError::Io(e.to_string()))??;
    }
    for g in 0..groups {
        assert_eq!(s.entries(g, 0..u64::MAX)?, entries(g, 1..per_group + 1));
    }
    let after = s.stats();
    let appends = groups * per_group;
    assert_eq!(after.requests - before.requests, appends);
    assert_eq!(after.entries_written - before.entries_written, appends);
    assert!(
        after.fsyncs - before.fsyncs < appends,
        "group commit: {} fsyncs for {appends} appends",
        after.fsyncs - before.fsyncs
    );
    Ok(())
}

type Write<'a> = Pin<Box<dyn Future<Output = Result> + Send + 'a>>;

/// Polls every write once in the given order before any completes (as Raft
/// pipelines appends without waiting for the previous flush), then waits for all.
async fn pipelined(writes: Vec<Write<'_>>) -> Result {
    let mut slots: Vec<(Write<'_>, Option<Result>)> =
        writes.into_iter().map(|w| (w, None)).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (w, out) in slots.iter_mut().filter(|(_, out)| out.is_none()) {
            match w.as_mut().poll(cx) {
                Poll::Ready(r) => *out = Some(r),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    for (_, out) in slots {
        out.unwrap_or(Ok(()))?;
    }
    Ok(())
}

/// Writes issued back to back, without waiting, land in issue order even when
/// the store batches them together.
pub async fn pipelined_writes_apply_in_order<S: LogStore>(s: &S) -> Result {
    let new: Vec<Entry> = (6..9)
        .map(|i| Entry::new(i, format!("new{i}").into_bytes()))
        .collect();
    pipelined(vec![
        Box::pin(s.append(1, entries(1, 1..11))),
        Box::pin(s.append(2, entries(2, 1..4))),
        Box::pin(s.truncate_after(1, 5)),
        Box::pin(s.delete_group(2)),
        Box::pin(s.append(1, new.clone())),
        Box::pin(s.purge_upto(1, 2)),
        Box::pin(s.append(2, entries(2, 7..8))),
        Box::pin(s.save_snapshot(3, Bytes::from("m1"), Bytes::from("d1"))),
        Box::pin(s.save_snapshot(3, Bytes::from("m2"), Bytes::from("d2"))),
        Box::pin(s.put_bodies(4, vec![(1, Bytes::from("b"))])),
        Box::pin(s.delete_bodies(4, vec![1])),
    ])
    .await?;
    let mut want = entries(1, 3..6);
    want.extend(new);
    assert_eq!(s.entries(1, 0..100)?, want);
    assert_eq!(s.entries(2, 0..100)?, entries(2, 7..8));
    assert_eq!(
        s.read_snapshot(3)?,
        Some((Bytes::from("m2"), Bytes::from("d2")))
    );
    assert_eq!(s.get_body(4, 1)?, None);
    assert_eq!(s.groups()?, vec![1, 2, 3]);
    Ok(())
}

/// Writes one of everything, drops every handle, opens again: all of it is there.
pub async fn reopen_keeps_everything<S: LogStore>(open: impl Fn() -> S) -> Result {
    {
        let s = open();
        s.append(1, entries(1, 1..101)).await?;
        s.append(2, entries(2, 1..11)).await?;
        s.truncate_after(1, 80).await?;
        s.purge_upto(1, 10).await?;
        s.save_meta(1, MetaKey::Vote, Bytes::from("vote")).await?;
        s.save_meta(2, MetaKey::Custom(3), Bytes::from("members"))
            .await?;
        s.save_snapshot(1, Bytes::from("meta"), Bytes::from("data"))
            .await?;
        s.put_bodies(4, vec![(5, Bytes::from("body"))]).await?;
        s.delete_group(2).await?;
    }
    let s = open();
    assert_eq!(s.log_state(1)?, state(11, 80));
    assert_eq!(s.entries(1, 0..1000)?, entries(1, 11..81));
    assert_eq!(s.read_meta(1, MetaKey::Vote)?, Some(Bytes::from("vote")));
    assert_eq!(
        s.read_snapshot(1)?,
        Some((Bytes::from("meta"), Bytes::from("data")))
    );
    assert_eq!(s.get_body(4, 5)?, Some(Bytes::from("body")));
    assert_eq!(s.read_meta(2, MetaKey::Custom(3))?, None);
    assert_eq!(s.groups()?, vec![1, 4]);
    Ok(())
}
