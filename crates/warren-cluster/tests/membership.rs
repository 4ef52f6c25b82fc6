//! Cluster membership over time, with nodes in one process (see
//! `common`): a replica down past the grace period is replaced on a live
//! node, queue leaders spread over the nodes, and nodes are added to and
//! removed from a running cluster while queues keep their messages.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_down_past_the_grace_period_is_replaced_on_a_live_node() -> anyhow::Result<()> {
    let mut c = Cluster::start_with(4, Some(Duration::from_secs(2))).await?;
    assert_eq!(
        c.node(1).meta_apply(declare_queue("gq")).await?,
        Ok(MetaReply::Created)
    );
    c.node(1)
        .create_queue_on(GROUP, "/", "gq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    let leader = c.queue_leader(GROUP).await?;
    let before = names("before", 0..100);
    let lq = c.node(leader).queue(GROUP).context("replica")?;
    enqueue_all(&lq, &before).await?;

    // A member that leads nothing goes away for good (as far as anyone
    // can tell); the group carries on with two of three.
    let meta_leader = c.node(leader).meta_leader();
    let lost = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && Some(*id) != meta_leader)
        .context("a member leading nothing")?;
    c.stop(lost).await?;
    let after = names("after", 0..50);
    enqueue_all(&lq, &after).await?;

    // Past the grace period (judged down after ~1 s, then 2 s), node 4
    // gets a replica, catches up, votes, and the lost member stops voting.
    let mut want: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|id| *id != lost).collect();
    want.sort_unstable();
    eventually_within(
        Duration::from_secs(30),
        "node 4 voting in place of the lost member",
        || lq.members() == want && !lq.membership_changing(),
    )
    .await?;
    let expected: BTreeSet<String> = before.iter().chain(&after).cloned().collect();
    let q4 = c.node(4).queue(GROUP).context("a replica on node 4")?;
    eventually("node 4 holds everything", || {
        count(&q4) == expected.len() as u64
    })
    .await?;
    assert_eq!(bodies_held(&q4)?, expected);
    assert_eq!(lq.readers(), vec![lost], "the lost member stays a reader");

    // It counts: with one more of the original members gone, node 4 and
    // the leader still commit.
    let other = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && *id != lost)
        .context("the third node")?;
    if Some(other) != c.node(leader).meta_leader() {
        c.stop(other).await?;
        enqueue_all(&lq, &names("late", 0..10)).await?;
        eventually("node 4 holds the late ones", || {
            count(&q4) == expected.len() as u64 + 10
        })
        .await?;
    }

    // The lost node returns on its data: its replica catches up as a
    // reader instead of holding a stale log.
    let dir = c.dirs[&lost].path().to_path_buf();
    c.restart(lost, dir).await?;
    let total = count(&lq);
    let back = c.node(lost).queue(GROUP).context("the returned replica")?;
    eventually("the returned replica caught up", || count(&back) == total).await?;
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_leaders_spread_over_the_nodes() -> anyhow::Result<()> {
    // Rebalancing every 5 s: the groups are made before its first round.
    let rounds = Duration::from_secs(5);
    let c = Cluster::start_configured(3, None, Some(rounds)).await?;
    // Six groups made on node 1, which leads them all.
    for i in 0..6u64 {
        let name = format!("b{i}");
        assert_eq!(
            c.node(1).meta_apply(declare_queue(&name)).await?,
            Ok(MetaReply::Created)
        );
        c.node(1)
            .create_queue_on(GROUP + i, "/", &name, QueueConfig::default(), &[1, 2, 3])
            .await?;
    }
    let leaders = |c: &Cluster| -> Vec<Option<u64>> {
        (0..6)
            .map(|i| c.node(1).queue(GROUP + i).and_then(|q| q.leader()))
            .collect()
    };
    eprintln!("leaders before the first round: {:?}", leaders(&c));

    // Node 1 hands leaderships over until every node leads two.
    let mut last = Vec::new();
    let spread = eventually_within(Duration::from_secs(60), "leaders spread", || {
        last = leaders(&c);
        let mut per_node = BTreeMap::new();
        for l in &last {
            let Some(l) = l else { return false };
            *per_node.entry(*l).or_insert(0u32) += 1;
        }
        per_node.len() == 3 && per_node.values().all(|n| *n == 2)
    })
    .await;
    spread.with_context(|| format!("leaders per group: {last:?}"))?;

    // Every group still takes writes.
    for i in 0..6 {
        let leader = c.queue_leader(GROUP + i).await?;
        let q = c.node(leader).queue(GROUP + i).context("replica")?;
        enqueue_all(&q, &names("after", 0..5)).await?;
    }
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_added_and_removed_while_queues_keep_their_messages() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    assert_eq!(
        c.node(1).meta_apply(declare_queue("mq")).await?,
        Ok(MetaReply::Created)
    );
    c.node(1)
        .create_queue_on(GROUP, "/", "mq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    let leader = c.queue_leader(GROUP).await?;
    let before = names("before", 0..100);
    enqueue_all(&c.node(leader).queue(GROUP).context("replica")?, &before).await?;

    // Node 4 starts and waits; it is added through a node that does not
    // lead the metadata (the call goes on to the leader).
    let addr = c.start_new(4).await?;
    let meta_leader = c.node(1).meta_leader().context("meta leader")?;
    let asked = [1, 2, 3]
        .into_iter()
        .find(|n| *n != meta_leader)
        .context("a follower")?;
    let recorded = c.node(asked).add_node(4, &addr.to_string(), false).await?;
    assert_eq!(recorded, addr.to_string());
    // Again: the same address is fine, another one is refused.
    c.node(asked).add_node(4, &addr.to_string(), false).await?;
    let other = c.peers[&1].to_string();
    assert!(c.node(asked).add_node(4, &other, false).await.is_err());
    eventually_within(WAIT, "node 4 voting in the metadata, known to all", || {
        c.nodes.values().all(|n| {
            n.nodes() == vec![1, 2, 3, 4] && n.cluster_status().meta_voters == vec![1, 2, 3, 4]
        })
    })
    .await?;
    eventually("node 4 holds the metadata", || {
        c.node(4).with_meta(|m| m.queue("/", "mq").is_some())
    })
    .await?;

    // Node 4 places a queue with replicas on itself and two others.
    assert_eq!(
        c.node(4).meta_apply(declare_queue("nq")).await?,
        Ok(MetaReply::Created)
    );
    c.node(4)
        .create_queue_on(GROUP + 1, "/", "nq", QueueConfig::default(), &[4, 1, 2])
        .await?;
    let nq = c.queue_leader(GROUP + 1).await?;
    enqueue_all(
        &c.node(nq).queue(GROUP + 1).context("replica")?,
        &names("n", 0..10),
    )
    .await?;

    // A node that is up cannot be removed.
    let refused = c.node(1).remove_node(3, false).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("is up")),
        "{refused:?}"
    );

    // Node 3 stops for good and is removed once judged down.
    c.stop(3).await?;
    let asker = *c.nodes.keys().next().context("a node")?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match c.node(asker).remove_node(3, false).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("remove-node 3: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    eventually_within(
        WAIT,
        "node 3 gone from every table and the metadata",
        || {
            c.nodes.values().all(|n| {
                n.nodes() == vec![1, 2, 4] && n.cluster_status().meta_voters == vec![1, 2, 4]
            })
        },
    )
    .await?;
    // The queue that had a replica on node 3 drops it and fills its place
    // on node 4, which catches up and votes.
    let leader = c.queue_leader_among(GROUP, &[1, 2, 4], WAIT).await?;
    let lq = c.node(leader).queue(GROUP).context("replica")?;
    eventually_within(WAIT, "node 4 voting in place of node 3", || {
        lq.members() == vec![1, 2, 4] && !lq.membership_changing() && lq.readers().is_empty()
    })
    .await?;
    let after = names("after", 0..20);
    enqueue_all(&lq, &after).await?;
    let expected: BTreeSet<String> = before.iter().chain(&after).cloned().collect();
    let q4 = c.node(4).queue(GROUP).context("a replica on node 4")?;
    holds_exactly(&q4, &expected).await?;

    // Node 3 comes back on its old data: refused by everybody, it changes
    // nothing (no node takes it back, the queues keep their leaders).
    let dir = c.dirs[&3].path().to_path_buf();
    c.restart(3, dir).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for id in [1, 2, 4] {
        assert_eq!(c.node(id).nodes(), vec![1, 2, 4], "node {id}'s table");
    }
    let leader = c.queue_leader_among(GROUP, &[1, 2, 4], WAIT).await?;
    let lq = c.node(leader).queue(GROUP).context("replica")?;
    assert_eq!(lq.members(), vec![1, 2, 4]);
    enqueue_all(&lq, &names("late", 0..10)).await?;
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_node_is_grown_onto_the_existing_queues() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    // "g3" on three nodes, "g2" declared with two (RabbitMQ's
    // x-quorum-initial-group-size), each holding messages.
    let mut g2 = declare_queue("g2");
    if let MetaCommand::DeclareQueue { def, .. } = &mut g2 {
        def.arguments.insert(
            "x-quorum-initial-group-size".into(),
            warren_core::value::Value::I64(2),
        );
    }
    for (group, cmd, members) in [
        (GROUP, declare_queue("g3"), &[1, 2, 3][..]),
        (GROUP + 1, g2, &[1, 2][..]),
    ] {
        let name = match &cmd {
            MetaCommand::DeclareQueue { def, .. } => def.name.clone(),
            _ => unreachable!(),
        };
        assert_eq!(c.node(1).meta_apply(cmd).await?, Ok(MetaReply::Created));
        c.node(1)
            .create_queue_on(group, "/", &name, QueueConfig::default(), members)
            .await?;
    }
    let bodies = names("m", 0..50);
    for group in [GROUP, GROUP + 1] {
        let leader = c.queue_leader(group).await?;
        enqueue_all(&c.node(leader).queue(group).context("replica")?, &bodies).await?;
    }

    // Node 4 joins the cluster: the queues keep their members.
    let addr = c.start_new(4).await?;
    c.node(1).add_node(4, &addr.to_string(), false).await?;
    eventually_within(WAIT, "node 4 known to all, holding the metadata", || {
        c.nodes.values().all(|n| n.nodes() == vec![1, 2, 3, 4])
            && c.node(4)
                .with_meta(|m| m.queue("/", "g3").is_some() && m.queue("/", "g2").is_some())
    })
    .await?;
    assert!(c.node(4).queue(GROUP).is_none() && c.node(4).queue(GROUP + 1).is_none());

    // `even`, asked of node 2 (sent on to node 4): only g2 (two voters).
    let r = c.node(2).grow_queues(4, true, None, false).await?;
    assert_eq!(
        (r.grown, r.already, r.skipped, r.failed.clone()),
        (1, 0, 1, vec![]),
        "{r:?}"
    );
    // `all`: g3 too; g2 already has its replica there.
    let r = c.node(3).grow_queues(4, false, Some("/"), false).await?;
    assert_eq!(
        (r.grown, r.already, r.skipped, r.failed.clone()),
        (1, 1, 0, vec![]),
        "{r:?}"
    );
    // A vhost with no queues grows nothing; an unknown node is refused.
    let r = c
        .node(1)
        .grow_queues(4, false, Some("other"), false)
        .await?;
    assert_eq!((r.grown, r.already), (0, 0));
    assert!(c.node(1).grow_queues(9, false, None, false).await.is_err());

    // Node 4 votes in both once caught up, and holds every message.
    let expected: BTreeSet<String> = bodies.iter().cloned().collect();
    for (group, want) in [(GROUP, vec![1, 2, 3, 4]), (GROUP + 1, vec![1, 2, 4])] {
        let q4 = c.node(4).queue(group).context("a replica on node 4")?;
        eventually_within(WAIT, "node 4 voting", || {
            q4.members() == want && !q4.membership_changing() && q4.readers().is_empty()
        })
        .await?;
        holds_exactly(&q4, &expected).await?;
    }

    // Its vote counts: g2 commits with one of its first two voters gone.
    let leader = c.queue_leader(GROUP + 1).await?;
    let follower = [1, 2]
        .into_iter()
        .find(|n| *n != leader)
        .context("g2's other voter")?;
    c.stop(follower).await?;
    let lq = c.node(leader).queue(GROUP + 1).context("replica")?;
    enqueue_all(&lq, &names("late", 0..10)).await?;
    let q4 = c.node(4).queue(GROUP + 1).context("replica")?;
    eventually("node 4 holds the late ones", || count(&q4) == 60).await?;
    c.shutdown().await
}
