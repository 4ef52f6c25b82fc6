//! A node whose disk stalls (fsyncs that stop returning) gives up its
//! leaderships within seconds rather than holding them: every group of the
//! node writes through the one stalled writer, so its Raft cores soon wait
//! on the disk and lead nothing. The node then stops answering its peers'
//! pings: they judge it down and elect leaders among themselves (the
//! metadata group elects on its own timers). It also asks each group it
//! leads to hand its leadership to a live voter (openraft's
//! TransferLeader), which helps while its cores still run. Once the disk
//! writes again the node answers pings, its groups learn of the new terms
//! and follow; the rebalancing (`balance`) spreads the leaders again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use warren_storage::LogStore;

use super::Inner;
use crate::net::Net;

/// A write batch running this long means the disk stalled.
pub(crate) const STALLED_AFTER: Duration = Duration::from_secs(3);
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// While the stall lasts, leaderships still held are handed over again
/// this often (a transfer fails while no target holds the whole log).
const AGAIN_EVERY: Duration = Duration::from_secs(2);

/// The running watch; stops when dropped.
pub(crate) struct StallTask {
    task: JoinHandle<()>,
}

impl Drop for StallTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn spawn<S: LogStore>(node: Weak<Inner<S>>, net: Arc<Net>) -> StallTask {
    StallTask {
        task: tokio::spawn(async move {
            let mut stalled = false;
            let mut last_try: Option<tokio::time::Instant> = None;
            loop {
                tokio::time::sleep(CHECK_EVERY).await;
                let Some(inner) = node.upgrade() else { return };
                let ms = inner.store.stats().write_stalled_ms;
                if ms < STALLED_AFTER.as_millis() as u64 {
                    if stalled {
                        tracing::warn!(node = net.node_id(), "the disk writes again");
                        net.set_unhealthy(false);
                    }
                    stalled = false;
                    last_try = None;
                    continue;
                }
                if !stalled {
                    tracing::error!(
                        node = net.node_id(),
                        stalled_ms = ms,
                        "the disk stalled (a write has not returned): handing every leadership \
                         of this node to a live voter, and refusing pings until it writes again"
                    );
                    net.set_unhealthy(true);
                    stalled = true;
                }
                if last_try.is_some_and(|t| t.elapsed() < AGAIN_EVERY) {
                    continue;
                }
                last_try = Some(tokio::time::Instant::now());
                hand_over(&inner, &net).await;
            }
        }),
    }
}

/// Hands every leadership this node holds to a live voter of its group.
async fn hand_over<S: LogStore>(inner: &Inner<S>, net: &Net) {
    let me = net.node_id();
    let live = |v: &u64| *v != me && !net.is_down(*v);
    for (_, g) in net.groups() {
        let Some(v) = g.view() else { continue };
        if let Some(to) = v
            .leading
            .then(|| v.voters.iter().copied().find(live))
            .flatten()
        {
            g.transfer_to(to).await;
        }
    }
    if inner.meta.is_leader()
        && let Some(to) = inner.meta.voters().into_iter().find(live)
    {
        inner.meta.transfer_to(to).await;
    }
}
