//! The node's failure detector: one task per node stands in for the
//! heartbeats and election timers of every queue group.
//!
//! Queue groups with peers run no Raft timer (see `raft::group`), so an
//! idle queue costs nothing however many there are. Instead this task
//! pings every peer about every [`PING_EVERY`] over the peer's shared
//! channel; a peer that answered nothing for `down_after` is judged down.
//! Each round it looks at the groups whose view (leader, vote, state,
//! membership) changed since the last round, as each group reports it, and
//! at those already waiting for a leader; at every group after a peer's
//! health changed, and every few seconds as a safety net. For
//! every group this node votes in that needs a leader, it triggers an
//! election (a pre-vote round first, so a member that cannot win spends no
//! term). A group needs a leader when
//! - the leader its replica knows of is judged down, or
//! - its replica knows no leader (the whole cluster restarted, a leader
//!   stepped down, a candidate lost), or names this node while it does not
//!   lead (a leader restarted).
//!
//! Members take turns so that they do not split the votes: the live
//! voters in id order, [`stagger`] apart, the lowest first; one whose
//! election did not produce a leader tries again after everyone's turn.
//! Nobody stands while it sees no majority of the voters alive, nor while
//! an election it takes part in (standing, or having granted its vote) is
//! under way, unless that one is stuck for `2 × down_after`: a loaded
//! node's elections may take longer than a turn, and standing on top of
//! them would split the votes again and again. A
//! down leader is replaced at once (detecting it took `down_after`); a
//! group that merely knows no leader waits `down_after` first, because a
//! leader may exist that has not spoken to this replica since it started
//! (idle leaders send nothing). That leader speaks up when its node sees
//! this one come up:
//!
//! - A peer comes up (first answer, first answer after being judged down,
//!   or a new incarnation: it restarted): every group this node leads that
//!   has it as a member sends a heartbeat now, so the peer learns who leads,
//!   and a leader on it that was superseded meanwhile sees the higher term
//!   in the answer and steps down.
//! - A pre-vote is refused (by `raft::rpc_host`) by a replica whose leader
//!   is alive in its node's eyes: one node's false alarm (a slow answer
//!   on a loaded node) cannot unseat a leader the others still reach, even
//!   in an idle group whose followers' leases (renewed only by traffic)
//!   have long lapsed.
//! - This node stalled (a round came more than `down_after / 2` late:
//!   SIGSTOP, a paused VM, a starved runtime): the silence was its own, so
//!   nobody is judged on it; every group it leads sends a heartbeat, and
//!   steps down if it was superseded while it stood still.
//!
//! ```text
//!   every PING_EVERY: Ping ──▶ each peer ──answer──▶ last_ok[peer]
//!                     judge: now - last_ok ≥ down_after → down
//!                     groups whose view changed (all: after a health change):
//!                       leader down / none known → elect (staggered)
//!   peer up / own stall ──▶ heartbeat from the groups this node leads
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use warren_rpc::raft as rpc;
use warren_storage::GroupId;

use crate::net::{GroupRpc, GroupView, Net, NetError};

/// Default time without an answer after which a peer is judged down.
pub(crate) const DOWN_AFTER: Duration = Duration::from_secs(1);

/// How often each peer is pinged (more often if `down_after` is short).
const PING_EVERY: Duration = Duration::from_millis(200);

/// The gap between two members' turns to stand for election: far more
/// than an election round takes (a vote persisted and answered on each
/// voter), so the first one has won before the second one asks.
fn stagger(down_after: Duration) -> Duration {
    (down_after / 4).clamp(Duration::from_millis(50), Duration::from_millis(300))
}

/// What one more group standing for election adds to a member's turn:
/// when many groups fail over at once (every group a node led), the first
/// member's elections take that much longer, and the next member must not
/// stand on top of them (measured, debug build: 334 groups at once took
/// 7.7 s with fixed 250 ms turns, the second member splitting the votes).
const TURN_PER_GROUP: Duration = Duration::from_millis(5);

/// How often the detector looks at every group, whether or not anything
/// told it of a change (a safety net: each round it looks only at the
/// groups whose view changed and those waiting for a leader, see
/// [`Detector::sweep`]).
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The running detector; stops when dropped.
pub(crate) struct DetectorTask {
    task: JoinHandle<()>,
}

impl Drop for DetectorTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the detector of the node `net` belongs to.
pub(crate) fn spawn(net: Arc<Net>) -> DetectorTask {
    let down_after = net.down_after();
    let detector = Detector {
        me: net.node_id(),
        peers: net
            .members()
            .into_iter()
            .filter(|p| *p != net.node_id())
            .map(|p| (p, Peer::new(Instant::now())))
            .collect(),
        net,
        down_after,
        ping_every: PING_EVERY.min(down_after / 3),
        stagger: stagger(down_after),
        pending: BTreeMap::new(),
        full: true,
        full_due: Instant::now(),
    };
    DetectorTask {
        task: tokio::spawn(detector.run()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    /// Not answered yet since this node started (not judged either way).
    Unknown,
    Up,
    Down,
}

struct Peer {
    health: Health,
    /// When it last answered (or when judging it began).
    last_ok: Instant,
    incarnation: Option<u64>,
    pinging: bool,
}

impl Peer {
    fn new(now: Instant) -> Self {
        Peer {
            health: Health::Unknown,
            last_ok: now,
            incarnation: None,
            pinging: false,
        }
    }
}

type Pinged = BoxFuture<'static, (u64, Result<rpc::PingResponse, NetError>)>;

struct Detector {
    me: u64,
    net: Arc<Net>,
    peers: BTreeMap<u64, Peer>,
    down_after: Duration,
    ping_every: Duration,
    stagger: Duration,
    /// Groups that need a leader: when this node's next turn to stand is.
    pending: BTreeMap<GroupId, Pending>,
    /// A peer's health or the peer table changed: the next sweep looks at
    /// every group.
    full: bool,
    /// When the next sweep looks at every group anyway.
    full_due: Instant,
}

/// A group that needs a leader, as this node waits for its turn.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// This node's next turn to stand.
    due: Instant,
    /// Since when an election this node takes part in has been under way.
    electing_since: Option<Instant>,
    /// How many times this node stood since the group needed a leader.
    tries: u32,
}

impl Detector {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.ping_every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pings: FuturesUnordered<Pinged> = FuturesUnordered::new();
        let mut last_round = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = Instant::now();
                    let stalled = now.duration_since(last_round) > self.down_after / 2;
                    last_round = now;
                    self.follow_table(now);
                    self.ping(&mut pings);
                    if stalled {
                        self.after_stall(now);
                    } else {
                        self.judge(now);
                        self.sweep(now);
                    }
                }
                Some((peer, answer)) = pings.next() => self.answered(peer, answer),
            }
        }
    }

    /// Follows the peer table (nodes added to or removed from the
    /// cluster): a new peer is judged from now on; a removed one is
    /// forgotten (and counts as down: see [`Self::is_down`]).
    fn follow_table(&mut self, now: Instant) {
        let table = self.net.members();
        if table.len() == self.peers.len() + 1
            && table
                .iter()
                .all(|id| *id == self.me || self.peers.contains_key(id))
        {
            return;
        }
        self.full = true;
        self.peers.retain(|id, _| table.contains(id));
        for id in table.into_iter().filter(|id| *id != self.me) {
            self.peers.entry(id).or_insert_with(|| Peer::new(now));
        }
    }

    /// Pings every peer that has no ping in flight.
    fn ping(&mut self, pings: &mut FuturesUnordered<Pinged>) {
        for (id, peer) in self.peers.iter_mut().filter(|(_, p)| !p.pinging) {
            peer.pinging = true;
            let (net, id, timeout) = (self.net.clone(), *id, self.down_after);
            pings.push(Box::pin(async move { (id, net.ping(id, timeout).await) }));
        }
    }

    fn answered(&mut self, id: u64, answer: Result<rpc::PingResponse, NetError>) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.pinging = false;
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => {
                tracing::trace!(node = self.me, peer = id, error = %e, "ping unanswered");
                return;
            }
        };
        peer.last_ok = Instant::now();
        let restarted = peer.incarnation.is_some_and(|i| i != resp.incarnation);
        peer.incarnation = Some(resp.incarnation);
        if peer.health != Health::Up || restarted {
            tracing::info!(
                node = self.me,
                peer = id,
                was = ?peer.health,
                restarted,
                "peer up"
            );
            peer.health = Health::Up;
            self.full = true;
            self.net.set_down(id, false);
            self.heartbeat_where(|members| members.contains(&id));
        }
    }

    /// The silence of the last rounds was this node's own: nobody is
    /// judged on it; each group it leads checks it still does.
    fn after_stall(&mut self, now: Instant) {
        tracing::warn!(
            node = self.me,
            "failure detector stalled: judging nobody this round"
        );
        for peer in self.peers.values_mut() {
            peer.last_ok = peer.last_ok.max(now);
        }
        self.full = true;
        self.heartbeat_where(|_| true);
    }

    fn judge(&mut self, now: Instant) {
        for (id, peer) in &mut self.peers {
            if peer.health != Health::Down && now.duration_since(peer.last_ok) >= self.down_after {
                tracing::warn!(
                    node = self.me,
                    peer = id,
                    silent = ?now.duration_since(peer.last_ok),
                    "peer judged down"
                );
                peer.health = Health::Down;
                self.full = true;
                self.net.set_down(*id, true);
            }
        }
    }

    /// A node outside the peer table (removed from the cluster) is down.
    fn is_down(&self, id: u64) -> bool {
        id != self.me && self.peers.get(&id).is_none_or(|p| p.health == Health::Down)
    }

    /// Every group this node leads whose members pass `select` sends a
    /// heartbeat (in a task of its own: the rounds go on meanwhile).
    fn heartbeat_where(&self, select: impl Fn(&[u64]) -> bool) {
        let leading: Vec<Arc<dyn GroupRpc>> = self
            .net
            .groups()
            .into_iter()
            .filter_map(|(_, g)| {
                let v = g.view()?;
                (v.leading && select(&v.members)).then_some(g)
            })
            .collect();
        if leading.is_empty() {
            return;
        }
        tracing::debug!(node = self.me, groups = leading.len(), "heartbeats");
        tokio::spawn(async move {
            for g in leading {
                g.heartbeat().await;
            }
        });
    }

    /// How long a group this node votes in waits before its members take
    /// turns to stand, if it needs a leader: none when its leader is down
    /// (detecting that took long enough), `down_after` when it knows none
    /// (or names this node, which does not lead).
    fn needs_leader(&self, v: &GroupView) -> Option<Duration> {
        if v.leading || !v.voters.contains(&self.me) {
            return None;
        }
        match v.leader {
            Some(l) if l != self.me && !self.is_down(l) => None,
            Some(l) if l != self.me => Some(Duration::ZERO),
            _ => Some(self.down_after),
        }
    }

    /// Finds the groups that need a leader and stands for those where it
    /// is this node's turn. A group's need changes only with its view
    /// (reported by the group: `Net::take_changed`) or with the health of
    /// its members (then [`Self::full`] is set), so a round looks at the
    /// groups whose view changed and those already waiting for a leader;
    /// every group only after a health change and every
    /// [`FULL_SWEEP_EVERY`]. Idle groups cost the detector nothing.
    fn sweep(&mut self, now: Instant) {
        let groups: Vec<(GroupId, Arc<dyn GroupRpc>)> = if self.full || now >= self.full_due {
            self.full = false;
            self.full_due = now + FULL_SWEEP_EVERY;
            // Taken before the views are read: a change after it is
            // looked at next round.
            self.net.take_changed();
            self.net.groups()
        } else {
            let mut ids = self.net.take_changed();
            ids.extend(self.pending.keys().copied());
            ids.into_iter()
                .filter_map(|id| Some((id, self.net.group(id)?)))
                .collect()
        };
        // Every group waiting for a leader is among `groups`: `pending`
        // is rebuilt from them.
        let needy: Vec<_> = groups
            .into_iter()
            .filter_map(|(group, g)| {
                let v = g.view()?;
                let wait = self.needs_leader(&v)?;
                Some((group, g, v, wait))
            })
            .collect();
        // The more groups need a leader, the longer each member's turn.
        let turn = self.stagger + TURN_PER_GROUP * needy.len().min(10_000) as u32;
        let mut pending = BTreeMap::new();
        let mut elect: Vec<(GroupId, Arc<dyn GroupRpc>)> = Vec::new();
        for (group, g, v, wait) in needy {
            let live: Vec<u64> = v
                .voters
                .iter()
                .copied()
                .filter(|id| *id == self.me || !self.is_down(*id))
                .collect();
            if live.len() * 2 <= v.voters.len() {
                // No majority within reach: no election could be won
                // (the turns start over once enough peers are back).
                continue;
            }
            let rank = live.iter().position(|id| *id == self.me).unwrap_or(0) as u32;
            let mut p = self.pending.remove(&group).unwrap_or(Pending {
                due: now + wait + turn * rank,
                electing_since: None,
                tries: 0,
            });
            if v.electing {
                let since = *p.electing_since.get_or_insert(now);
                if now.duration_since(since) < self.down_after * 2 {
                    // Let it finish; the turns go on after it.
                    p.due = p.due.max(now + self.stagger);
                    pending.insert(group, p);
                    continue;
                }
            } else {
                p.electing_since = None;
            }
            if now >= p.due {
                elect.push((group, g));
                // A pre-vote that failed changed nothing (typically a peer
                // had not judged the leader down yet): try again soon, then
                // less and less often, at most once per everyone's turn. A
                // pre-vote that succeeded is an election under way, which
                // nobody disturbs (above).
                let again = (self.stagger * 2u32.pow(p.tries.min(8))).min(turn * live.len() as u32);
                p.due = now + again;
                p.tries += 1;
                p.electing_since = None;
            }
            pending.insert(group, p);
        }
        self.pending = pending;
        if elect.is_empty() {
            return;
        }
        tracing::info!(
            node = self.me,
            groups = elect.len(),
            first = elect[0].0,
            "standing for election in groups without a live leader"
        );
        tokio::spawn(async move {
            for (_, g) in elect {
                g.elect(true).await;
            }
        });
    }
}
