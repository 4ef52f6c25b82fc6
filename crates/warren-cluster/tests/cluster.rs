//! Three nodes in one process, over gRPC on 127.0.0.1 ephemeral ports,
//! each on its own RocksDB in a temporary directory: the metadata group
//! spans them, proposals made on followers are forwarded, a queue group
//! replicated on all three loses nothing when its leader's node stops, a
//! node restarted on its data catches up (by snapshot, bodies included),
//! and an emptied lowest-id node joins the cluster instead of founding one.
//!
//! Queue groups run no election timers: the node-level failure detector
//! elects for them. So: the groups a stopped node led get new leaders, a
//! cut-off leader that comes back steps down, a group whose leader stepped
//! down elects again, and a cluster restarted as a whole elects every group.
//!
//! Waits poll with generous deadlines; nothing asserts a duration except
//! that elections the detector owes happen within [`FAILOVER`].

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_spans_the_nodes_and_followers_forward() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    // The lowest id founded the cluster; the others waited for it.
    assert_eq!(c.node(1).cluster_status().bootstrap, Bootstrap::Founded);
    for id in [2, 3] {
        assert_eq!(c.node(id).cluster_status().bootstrap, Bootstrap::Follower);
    }
    for n in c.nodes.values() {
        assert_eq!(n.cluster_status().meta_voters, vec![1, 2, 3]);
    }
    let leader = c.node(1).meta_leader().context("leader")?;
    let follower = if leader == 1 { 2 } else { 1 };

    assert_eq!(
        c.node(leader)
            .meta_apply(declare_queue("by-leader"))
            .await?,
        Ok(MetaReply::Created)
    );
    // Through a follower: forwarded, and the machine's answer comes back.
    assert_eq!(
        c.node(follower)
            .meta_apply(declare_queue("by-follower"))
            .await?,
        Ok(MetaReply::Created)
    );
    assert_eq!(
        c.node(follower)
            .meta_apply(declare_queue("by-leader"))
            .await?,
        Ok(MetaReply::Existed)
    );
    let err = c
        .node(follower)
        .meta_apply(MetaCommand::DeleteVhost {
            name: "nope".into(),
        })
        .await?
        .err()
        .context("refused")?;
    assert_eq!(err.code, 404);
    for n in c.nodes.values() {
        eventually("both queues in every node's metadata", || {
            n.with_meta(|m| {
                m.queue("/", "by-leader").is_some() && m.queue("/", "by-follower").is_some()
            })
        })
        .await?;
    }
    c.shutdown().await
}

/// What a broker following node 2 sees: a copy of the metadata taken when
/// it began, then every change made (on any node) and every queue group
/// arriving or leaving; the copy with the changes applied equals the node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_keeps_an_equal_copy_of_the_metadata_change_by_change() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let leader = c.node(1).meta_leader().context("leader")?;
    let watched = if leader == 2 { 3 } else { 2 };
    let other = [1, 2, 3]
        .into_iter()
        .find(|n| *n != watched && *n != leader)
        .context("a third node")?;
    assert_eq!(
        c.node(leader).meta_apply(declare_queue("before")).await?,
        Ok(MetaReply::Created)
    );
    let w = c.node(watched).clone();
    eventually("the watched node has applied it", || {
        w.with_meta(|m| m.queue("/", "before").is_some())
    })
    .await?;
    let (mut copy, groups, mut changes) = w.follow();
    assert!(copy.queue("/", "before").is_some());
    assert!(groups.is_empty());

    for (n, name) in [(leader, "a"), (other, "b"), (watched, "c")] {
        assert_eq!(
            c.node(n).meta_apply(declare_queue(name)).await?,
            Ok(MetaReply::Created)
        );
    }
    c.node(other)
        .meta_apply(MetaCommand::DeleteQueue {
            vhost: "/".into(),
            name: "a".into(),
        })
        .await??;
    // Refused: applied everywhere all the same, changing nothing.
    let refused = c
        .node(other)
        .meta_apply(MetaCommand::DeleteVhost {
            name: "nope".into(),
        })
        .await?;
    assert!(refused.is_err());
    c.node(other)
        .create_queue_on(GROUP, "/", "rq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    let n = c.node(watched).clone();
    eventually("the replica on the watched node", || {
        n.queue(GROUP).is_some()
    })
    .await?;
    n.delete_queue(GROUP).await?;

    let mut seen = Vec::new();
    eventually("every change told", || {
        while let Ok(change) = changes.try_recv() {
            match change {
                NodeChange::Meta(cmd) => {
                    let _ = copy.apply(cmd);
                }
                NodeChange::MetaReplaced(state) => copy = *state,
                NodeChange::QueueHere(g) => seen.push(format!("here {g}")),
                NodeChange::QueueGone { group, vhost, name } => {
                    seen.push(format!("gone {group} {vhost} {name}"))
                }
            }
        }
        seen.len() == 2 && n.with_meta(|m| *m == copy)
    })
    .await?;
    assert_eq!(
        seen,
        vec![format!("here {GROUP}"), format!("gone {GROUP} / rq")]
    );
    assert!(copy.queue("/", "a").is_none());
    for q in ["before", "b", "c"] {
        assert!(copy.queue("/", q).is_some(), "{q}");
    }
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_queue_keeps_every_committed_enqueue_when_its_leader_stops() -> anyhow::Result<()>
{
    let mut c = Cluster::start().await?;
    let q = c
        .node(2)
        .create_queue_on(GROUP, "/", "rq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    assert_eq!(q.members(), vec![1, 2, 3]);
    let leader = c.queue_leader(GROUP).await?;
    let first = names("a", 0..400);
    enqueue_all(&c.node(leader).queue(GROUP).context("replica")?, &first).await?;

    // A follower's submissions are forwarded to the leader.
    let follower = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .context("a follower")?;
    let forwarded = names("f", 0..50);
    let fq = c.node(follower).queue(GROUP).context("replica")?;
    assert!(!fq.is_leader());
    enqueue_all(&fq, &forwarded).await?;

    let stopping = std::time::Instant::now();
    c.stop(leader).await?;
    let stopped = stopping.elapsed();
    let next = c.queue_leader(GROUP).await?;
    assert_ne!(next, leader);
    // A measurement, not a check: how long the group went without a leader.
    eprintln!(
        "queue group: node {leader} stopped in {stopped:?}; node {next} leads {:?} after the stop began",
        stopping.elapsed()
    );
    let expected: BTreeSet<String> = first.iter().chain(&forwarded).cloned().collect();
    for (id, n) in &c.nodes {
        let q = n.queue(GROUP).context("replica")?;
        eventually(&format!("node {id} applying every enqueue"), || {
            count(&q) == expected.len() as u64
        })
        .await?;
        assert_eq!(bodies_held(&q)?, expected, "node {id}");
    }
    // The new leader takes new work, from either remaining member.
    let more = names("b", 0..20);
    let first_node = c.nodes.values().next().context("node")?;
    enqueue_all(&first_node.queue(GROUP).context("replica")?, &more[..10]).await?;
    let last_node = c.nodes.values().last().context("node")?;
    enqueue_all(&last_node.queue(GROUP).context("replica")?, &more[10..]).await?;
    let nq = c.node(next).queue(GROUP).context("replica")?;
    let mut all = expected.clone();
    all.extend(more);
    assert_eq!(count(&nq), all.len() as u64);
    assert_eq!(bodies_held(&nq)?, all);
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_by_snapshot_with_bodies() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    c.node(1)
        .create_queue_on(GROUP, "/", "rq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    let leader = c.queue_leader(GROUP).await?;
    let before = names("before", 0..100);
    enqueue_all(&c.node(leader).queue(GROUP).context("replica")?, &before).await?;

    // Stop a member that leads neither group, so both keep their leaders.
    let down = leading_nothing(&c, leader)?;
    let down_dir = c.dirs[&down].path().to_path_buf();
    c.stop(down).await?;

    // Enough while it is away that the leader's log, once compacted, no
    // longer holds what it lacks: it must get a snapshot, bodies included.
    let lq = c.node(leader).queue(GROUP).context("replica")?;
    let during = names("during", 0..2500);
    for chunk in during.chunks(500) {
        enqueue_all(&lq, chunk).await?;
    }
    lq.snapshot().await?;
    assert_eq!(
        c.node(leader)
            .meta_apply(declare_queue("while-away"))
            .await?,
        Ok(MetaReply::Created)
    );

    let restarting = std::time::Instant::now();
    c.restart(down, down_dir).await?;
    assert_eq!(c.node(down).cluster_status().bootstrap, Bootstrap::Member);
    let n = c.node(down);
    eventually("metadata caught up", || {
        n.with_meta(|m| m.queue("/", "while-away").is_some())
    })
    .await?;
    let q = n.queue(GROUP).context("replica reopened")?;
    let expected: BTreeSet<String> = before.iter().chain(&during).cloned().collect();
    eventually("queue caught up", || count(&q) == expected.len() as u64).await?;
    eprintln!(
        "node {down}: {} messages caught up {:?} after its restart began",
        expected.len(),
        restarting.elapsed()
    );
    assert_eq!(bodies_held(&q)?, expected);
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_lost_its_data_gets_a_new_replica_and_votes_again() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    // The repair is refused for a queue the member's metadata lacks.
    assert_eq!(
        c.node(1).meta_apply(declare_queue("rq")).await?,
        Ok(MetaReply::Created)
    );
    c.node(1)
        .create_queue_on(GROUP, "/", "rq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    let leader = c.queue_leader(GROUP).await?;
    let before = names("before", 0..100);
    enqueue_all(&c.node(leader).queue(GROUP).context("replica")?, &before).await?;

    // A member leading nothing comes back with an empty data directory.
    let lost = leading_nothing(&c, leader)?;
    c.stop(lost).await?;
    let fresh = tempfile::tempdir()?;
    c.restart(lost, fresh.path().to_path_buf()).await?;
    let after = names("after", 0..50);
    let lq = c.node(leader).queue(GROUP).context("replica")?;
    enqueue_all(&lq, &after).await?;

    // The leader finds the replica missing, demotes the member, starts a
    // new replica there and promotes it back once it caught up.
    let n = c.node(lost);
    let expected: BTreeSet<String> = before.iter().chain(&after).cloned().collect();
    eventually("a new replica on the emptied node", || {
        n.queue(GROUP).is_some()
    })
    .await?;
    let q = n.queue(GROUP).context("new replica")?;
    eventually("the new replica caught up", || {
        count(&q) == expected.len() as u64
    })
    .await?;
    assert_eq!(bodies_held(&q)?, expected);
    eventually("the member votes again", || {
        lq.members() == vec![1, 2, 3] && !lq.membership_changing()
    })
    .await?;
    // And it counts: with the leader's other follower gone, the group
    // still commits on the leader and the repaired member.
    let other = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && *id != lost)
        .context("the third node")?;
    c.stop(other).await?;
    enqueue_all(&lq, &names("late", 0..10)).await?;
    eventually("the repaired member holds the late ones", || {
        count(&q) == expected.len() as u64 + 10
    })
    .await?;
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptied_lowest_node_joins_instead_of_founding() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    assert_eq!(
        c.node(2).meta_apply(declare_queue("before")).await?,
        Ok(MetaReply::Created)
    );
    c.stop(1).await?;
    // Nodes 2 and 3 carry on (and elect among themselves if 1 led).
    c.node(2).wait_for_meta_leader(WAIT).await?;
    eventually("a leader among 2 and 3", || {
        matches!(c.node(2).meta_leader(), Some(2 | 3))
    })
    .await?;

    let fresh = tempfile::tempdir()?;
    c.restart(1, fresh.path().to_path_buf()).await?;
    let n = c.node(1);
    eventually("node 1 decided", || {
        n.cluster_status().bootstrap != Bootstrap::Pending
    })
    .await?;
    // Either it found the cluster by asking, or the cluster's leader
    // reached it first; never does it found a second one.
    assert!(
        matches!(
            n.cluster_status().bootstrap,
            Bootstrap::Joined { seen_on: 2 | 3 } | Bootstrap::Replicated
        ),
        "{:?}",
        n.cluster_status().bootstrap
    );
    eventually("node 1 replicated to", || {
        n.with_meta(|m| m.queue("/", "before").is_some())
    })
    .await?;
    assert_eq!(n.cluster_status().meta_voters, vec![1, 2, 3]);
    assert_eq!(
        n.meta_apply(declare_queue("after")).await?,
        Ok(MetaReply::Created)
    );
    for id in [2, 3] {
        eventually("the others see it", || {
            c.node(id).with_meta(|m| m.queue("/", "after").is_some())
        })
        .await?;
    }
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_queue_on_a_cluster_node() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let q = c
        .node(3)
        .create_queue(GROUP, "/", "local", QueueConfig::default())
        .await?;
    assert_eq!(q.members(), vec![3]);
    assert_eq!(q.leader(), Some(3));
    enqueue_all(&q, &names("x", 0..10)).await?;
    assert_eq!(count(&q), 10);
    assert!(c.node(1).queue(GROUP).is_none());
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_apply_on_a_follower_rides_out_a_leader_change() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    let leader = c.node(1).meta_leader().context("leader")?;
    c.stop(leader).await?;
    // At once, while the others still name the stopped node as leader:
    // the follower keeps forwarding until one of them is elected.
    let other = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .context("a node")?;
    assert_eq!(
        c.node(other).meta_apply(declare_queue("across")).await?,
        Ok(MetaReply::Created)
    );
    let now = c.node(other).meta_leader().context("new leader")?;
    assert_ne!(now, leader);
    for n in c.nodes.values() {
        eventually("the survivors applied it", || {
            n.with_meta(|m| m.queue("/", "across").is_some())
        })
        .await?;
    }
    c.shutdown().await
}

/// Creates `count` three-member queue groups from `first`, `parallel` at
/// a time, each created through the next node in turn (so that their
/// leaders spread over the nodes).
async fn create_groups(c: &Cluster, first: u64, count: u64, parallel: usize) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let creations = (first..first + count).map(|g| {
        let node = c.node(1 + g % 3).clone();
        async move {
            node.create_queue_on(g, "/", &format!("q{g}"), QueueConfig::default(), &[1, 2, 3])
                .await
                .with_context(|| format!("creating group {g}"))
        }
    });
    let mut created = futures::stream::iter(creations).buffer_unordered(parallel);
    while let Some(r) = created.next().await {
        r?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_led_by_a_stopped_node_elect_new_leaders_within_seconds() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    let groups: Vec<u64> = (100..106).collect();
    create_groups(&c, 100, groups.len() as u64, 3).await?;
    let mut sent: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut leaders = BTreeMap::new();
    for g in &groups {
        let leader = c.queue_leader(*g).await?;
        let bodies = names(&format!("g{g}"), 0..100);
        enqueue_all(&c.node(leader).queue(*g).context("replica")?, &bodies).await?;
        sent.insert(*g, bodies);
        leaders.insert(*g, leader);
    }
    // Stop the node that leads the most groups.
    let down = (1..=3u64)
        .max_by_key(|id| leaders.values().filter(|l| *l == id).count())
        .context("a node")?;
    let led: Vec<u64> = leaders
        .iter()
        .filter(|(_, l)| **l == down)
        .map(|(g, _)| *g)
        .collect();
    let stopping = std::time::Instant::now();
    c.stop(down).await?;
    let stopped = stopping.elapsed();
    let rest: Vec<u64> = c.nodes.keys().copied().collect();
    for g in &groups {
        let next = c.queue_leader_among(*g, &rest, FAILOVER).await?;
        assert_ne!(next, down);
    }
    // A measurement, not a check.
    eprintln!(
        "node {down} (leading groups {led:?}) stopped in {stopped:?}; every group led by a \
         running node {:?} after the stop began",
        stopping.elapsed()
    );
    for g in &groups {
        let expected: BTreeSet<String> = sent[g].iter().cloned().collect();
        for id in &rest {
            let q = c.node(*id).queue(*g).context("replica")?;
            holds_exactly(&q, &expected)
                .await
                .with_context(|| format!("group {g} on node {id}"))?;
        }
        // And each takes new work, through either survivor.
        for id in &rest {
            let more = names(&format!("after-{id}"), 0..5);
            enqueue_all(&c.node(*id).queue(*g).context("replica")?, &more).await?;
        }
    }
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_is_replaced_and_steps_down_when_it_comes_back() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node(1)
        .create_queue_on(GROUP, "/", "rq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    let old = c.queue_leader(GROUP).await?;
    let before = names("before", 0..50);
    enqueue_all(&c.node(old).queue(GROUP).context("replica")?, &before).await?;

    // Cut the leader off, as a pause longer than the detector's timeout
    // looks from the other nodes.
    let cutting = std::time::Instant::now();
    c.node(old).set_isolated(true);
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != old).collect();
    let new = c.queue_leader_among(GROUP, &rest, FAILOVER).await?;
    eprintln!(
        "node {old} cut off; node {new} leads {:?} later",
        cutting.elapsed()
    );
    let during = names("during", 0..50);
    enqueue_all(&c.node(rest[0]).queue(GROUP).context("replica")?, &during).await?;
    // The old leader still thinks it leads, but its lease lapsed with no
    // quorum to renew it: what it is asked meanwhile is not committed
    // there (it waits for a leader it can reach).
    let oq = c.node(old).queue(GROUP).context("replica")?;
    assert!(oq.is_leader());
    let stranded = oq.submit(enqueue(msg("while-cut-off")));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&oq), before.len() as u64);

    // Back: the new leader's heartbeat (sent when its node sees the old
    // one answer again) carries the higher term, and the old one steps
    // down without anybody writing to the group.
    let back = std::time::Instant::now();
    c.node(old).set_isolated(false);
    eventually_within(FAILOVER, "the old leader stepping down", || {
        !oq.is_leader() && oq.leader() == Some(new)
    })
    .await?;
    eprintln!(
        "node {old} back; it follows node {new} {:?} later",
        back.elapsed()
    );
    // The proposal made while cut off went to the new leader, once.
    let (reply, _) = stranded.await??;
    assert!(matches!(reply, Reply::Enqueued { .. }), "{reply:?}");
    let mut expected: BTreeSet<String> = before.iter().chain(&during).cloned().collect();
    expected.insert("while-cut-off".into());
    holds_exactly(&oq, &expected).await?;
    // Work submitted on it goes to the new leader.
    let after = names("after", 0..10);
    enqueue_all(&oq, &after).await?;
    assert_eq!(c.queue_leader(GROUP).await?, new);
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_whose_leader_stepped_down_on_a_live_node_gets_a_leader() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node(1)
        .create_queue_on(GROUP, "/", "rq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    let leader = c.queue_leader(GROUP).await?;
    let before = names("before", 0..20);
    enqueue_all(&c.node(leader).queue(GROUP).context("replica")?, &before).await?;
    // A follower, cut off, stands for election without a pre-vote: it
    // cannot win, but its term goes up; once back, the leader hears of
    // the higher term and steps down, on a node that stays up. Nothing
    // is down, so only the "no known leader" path can elect again.
    let follower = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .context("a follower")?;
    c.node(follower).set_isolated(true);
    c.node(follower).force_election(GROUP).await;
    let fq = c.node(follower).queue(GROUP).context("replica")?;
    eventually("the follower standing", || fq.leader().is_none()).await?;
    c.node(follower).set_isolated(false);
    let lq = c.node(leader).queue(GROUP).context("replica")?;
    eventually_within(FAILOVER, "a leader again, that all agree on", || {
        c.agreed_leader(GROUP, &[1, 2, 3]).is_some()
    })
    .await?;
    eprintln!(
        "group re-elected: node {:?} leads (node {leader} did, and leads: {})",
        c.agreed_leader(GROUP, &[1, 2, 3]),
        lq.is_leader()
    );
    let after = names("after", 0..20);
    enqueue_all(&fq, &after).await?;
    let expected: BTreeSet<String> = before.iter().chain(&after).cloned().collect();
    for id in [1, 2, 3] {
        let q = c.node(id).queue(GROUP).context("replica")?;
        holds_exactly(&q, &expected).await?;
    }
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_restarted_as_a_whole_elects_every_group() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    let groups: Vec<u64> = (100..104).collect();
    create_groups(&c, 100, groups.len() as u64, 2).await?;
    for g in &groups {
        let leader = c.queue_leader(*g).await?;
        let q = c.node(leader).queue(*g).context("replica")?;
        enqueue_all(&q, &names(&format!("g{g}"), 0..30)).await?;
    }
    for id in [1, 2, 3] {
        c.stop(id).await?;
    }
    let restarting = std::time::Instant::now();
    for id in [1, 2, 3] {
        let dir = c.dirs[&id].path().to_path_buf();
        c.restart(id, dir).await?;
    }
    for g in &groups {
        c.queue_leader_among(*g, &[1, 2, 3], FAILOVER).await?;
    }
    eprintln!(
        "every group led again {:?} after the restart began",
        restarting.elapsed()
    );
    for g in &groups {
        let expected: BTreeSet<String> = names(&format!("g{g}"), 0..30).into_iter().collect();
        let q = c.node(1).queue(*g).context("replica")?;
        holds_exactly(&q, &expected).await?;
        enqueue_all(&q, &names("again", 0..5)).await?;
    }
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_groups_leave_queue_creation_working() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let t = std::time::Instant::now();
    create_groups(&c, 100, 200, 8).await?;
    eprintln!("200 three-member groups created in {:?}", t.elapsed());
    let (cpu0, t0) = (cpu_time()?, std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!(
        "idle: 200 groups x 3 replicas: {:.0}% of a core",
        100.0 * (cpu_time()? - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64()
    );
    // One more, created while they idle, takes work at once.
    let q = c
        .node(2)
        .create_queue_on(GROUP, "/", "late", QueueConfig::default(), &[1, 2, 3])
        .await?;
    enqueue_all(&q, &names("late", 0..20)).await?;
    assert_eq!(count(&q), 20);
    c.shutdown().await
}

/// This process's CPU time (user + system), from /proc.
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_name = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, in clock ticks
    // (100 a second on Linux).
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// A measurement, not a check (run with `--ignored --nocapture`): how long
/// replicated queues take to create, what idle groups cost in CPU (at each
/// count of `WARREN_MEASURE_GROUPS`, default 20,200,1000), the enqueue rate
/// through the leader and through a follower, and how long the groups a
/// stopped node led take to get new leaders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_groups_and_forwarding() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    let counts: Vec<u64> = std::env::var("WARREN_MEASURE_GROUPS")
        .unwrap_or_else(|_| "20,200,1000".into())
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()?;
    let mut groups = 0u64;
    for target in counts {
        let t = std::time::Instant::now();
        create_groups(&c, 100 + groups, target.saturating_sub(groups), 8).await?;
        eprintln!(
            "{} more three-member queue groups created in {:?} ({target} in all)",
            target.saturating_sub(groups),
            t.elapsed()
        );
        groups = groups.max(target);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, t0) = (cpu_time()?, std::time::Instant::now());
        tokio::time::sleep(Duration::from_secs(10)).await;
        let busy = cpu_time()? - cpu0;
        eprintln!(
            "idle: {groups} groups x 3 replicas (+ metadata) in one process: {:.1}% of a core",
            100.0 * busy.as_secs_f64() / t0.elapsed().as_secs_f64()
        );
    }
    let leader = c.queue_leader(100).await?;
    let follower = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .context("follower")?;
    for (label, id) in [("leader", leader), ("follower", follower)] {
        let q = c.node(id).queue(100).context("replica")?;
        let bodies = names(label, 0..5000);
        let t = std::time::Instant::now();
        enqueue_all(&q, &bodies).await?;
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "5000 enqueues submitted on the {label}: {:.0}/s",
            5000.0 / s
        );
    }
    // Failover: stop the node that leads the most groups.
    let all: Vec<u64> = (100..100 + groups).collect();
    let mut led = BTreeMap::<u64, usize>::new();
    for g in &all {
        if let Some(l) = c.agreed_leader(*g, &[1, 2, 3]) {
            *led.entry(l).or_default() += 1;
        }
    }
    eprintln!("groups led per node: {led:?}");
    let down = led
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(id, _)| *id)
        .context("a leader")?;
    let stopping = std::time::Instant::now();
    c.stop(down).await?;
    let stopped = stopping.elapsed();
    let rest: Vec<u64> = c.nodes.keys().copied().collect();
    eventually(
        &format!("all {groups} groups led by nodes {rest:?}"),
        || all.iter().all(|g| c.agreed_leader(*g, &rest).is_some()),
    )
    .await?;
    eprintln!(
        "failover: node {down} ({} groups led) stopped in {stopped:?}; every group led again \
         {:?} after the stop began",
        led[&down],
        stopping.elapsed()
    );
    c.shutdown().await
}
