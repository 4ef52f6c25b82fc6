//! Leader rebalancing: a node that leads more queue groups than another
//! voter of those groups hands some of its leaderships over (openraft's
//! TransferLeader), so that after a failover, or queues declared mostly on
//! one node, leaders spread again with no operator action.
//!
//! Each node moves only its own leaderships, at most [`MOVES_PER_ROUND`]
//! a round, and only to a live voter of the group leading at least two
//! fewer groups (as this node sees them): every move lowers the spread, so
//! the nodes converge instead of trading leaders back and forth.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::net::Net;

/// At most this many leaderships handed over per round by one node: a
/// transfer interrupts the group's writes for an election.
const MOVES_PER_ROUND: usize = 8;

/// The running balancer; stops when dropped.
pub(crate) struct BalanceTask {
    task: JoinHandle<()>,
}

impl Drop for BalanceTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts balancing the node's leaderships every `every`.
pub(crate) fn spawn(net: Arc<Net>, every: Duration) -> BalanceTask {
    BalanceTask {
        task: tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                round(&net).await;
            }
        }),
    }
}

/// One round: picks the moves, then asks for them.
async fn round(net: &Net) {
    if net.unhealthy() {
        // Its disk stalled: its views are stale and it should lead nothing.
        return;
    }
    let me = net.node_id();
    let groups = net.groups();
    let mut led: BTreeMap<u64, usize> = net
        .members()
        .into_iter()
        .filter(|n| *n == me || !net.is_down(*n))
        .map(|n| (n, 0))
        .collect();
    let mut mine = Vec::new();
    for (group, g) in &groups {
        let Some(v) = g.view() else { continue };
        if v.leading {
            *led.entry(me).or_default() += 1;
            mine.push((*group, g.clone(), v.voters));
        } else if let Some(l) = v.leader
            && let Some(n) = led.get_mut(&l)
        {
            *n += 1;
        }
    }
    let mut moves = Vec::new();
    for (group, g, voters) in mine {
        if moves.len() >= MOVES_PER_ROUND {
            break;
        }
        let here = led[&me];
        let target = voters
            .iter()
            .copied()
            .filter(|v| *v != me)
            .filter_map(|v| led.get(&v).map(|n| (*n, v)))
            .min();
        if let Some((theirs, to)) = target
            && theirs + 1 < here
        {
            *led.entry(me).or_default() -= 1;
            *led.entry(to).or_default() += 1;
            moves.push((group, g, to));
        }
    }
    if moves.is_empty() {
        return;
    }
    tracing::info!(
        node = me,
        moves = moves.len(),
        leaders = ?led,
        "handing queue leaderships to less loaded voters"
    );
    for (_, g, to) in moves {
        g.transfer_to(to).await;
    }
}
