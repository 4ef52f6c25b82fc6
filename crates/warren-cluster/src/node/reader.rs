//! Using a queue from a node that holds no replica of it (a cluster with
//! more nodes than a queue has replicas, or a classic queue, which has one).
//!
//! Deliveries are made where the log is applied (see the crate docs), so a
//! node serving a consumer must apply the queue's log: it joins the group
//! as a *reader*, a learner that never votes and is never promoted. A
//! publish needs no replica: the broker hands it to a node that has one
//! ([`Node::locate_queue`], then [`Node::publish_to`]).
//!
//! ```text
//!   attach_queue(q) ─▶ FindQueue to every peer ─▶ group id, leader, voters
//!        ─▶ empty replica here ─▶ AddReader to the leader (learner, marked
//!           reader) ─▶ replicated + applied here ─▶ the broker's actor
//! ```

use std::time::Duration;

use warren_storage::{GroupId, LogStore};

use super::Node;
use crate::ClusterError;
use crate::net::Joining;
use crate::queue_group::QueueGroup;

/// How long one FindQueue or AddReader may take.
const ASK: Duration = Duration::from_secs(2);
/// How long joining a group as a reader may take in all.
const ATTACH_WAIT: Duration = Duration::from_secs(15);
const RETRY: Duration = Duration::from_millis(100);
/// How long moving a queue's leadership may take.
const MOVE_WAIT: Duration = Duration::from_secs(10);

/// A queue group as another node reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundQueue {
    pub group: GroupId,
    pub leader: Option<u64>,
    pub voters: Vec<u64>,
}

impl<S: LogStore> Node<S> {
    /// The group this node runs for the queue `vhost`/`name`, if any.
    pub fn local_queue(&self, vhost: &str, name: &str) -> Option<QueueGroup<S>> {
        self.inner
            .queues
            .lock()
            .values()
            .find(|q| q.identity() == (vhost, name))
            .cloned()
    }

    /// Asks every peer not judged down which group holds `vhost`/`name`.
    /// A voter's answer is preferred, and among those one naming a leader.
    pub async fn find_queue(
        &self,
        vhost: &str,
        name: &str,
    ) -> Result<Option<FoundQueue>, ClusterError> {
        let net = self.net()?;
        let me = self.inner.node_id;
        let asks = net
            .members()
            .into_iter()
            .filter(|n| *n != me && !net.is_down(*n))
            .map(|n| {
                let net = net.clone();
                async move { (n, net.find_queue(n, vhost, name, ASK).await) }
            });
        let answers = futures::future::join_all(asks).await;
        let mut best: Option<(u8, FoundQueue)> = None;
        for (n, answer) in answers {
            let Ok(r) = answer else { continue };
            if !r.found {
                continue;
            }
            let rank = u8::from(r.voters.contains(&n)) * 2 + u8::from(r.leader.is_some());
            if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                let found = FoundQueue {
                    group: r.group_id,
                    leader: r.leader,
                    voters: r.voters,
                };
                best = Some((rank, found));
            }
        }
        Ok(best.map(|(_, f)| f))
    }

    /// A node holding a replica of `vhost`/`name` to hand publishes to:
    /// its leader if known, otherwise a voter not judged down.
    pub async fn locate_queue(&self, vhost: &str, name: &str) -> Result<Option<u64>, ClusterError> {
        let net = self.net()?;
        let Some(found) = self.find_queue(vhost, name).await? else {
            return Ok(None);
        };
        Ok(found
            .leader
            .filter(|l| !net.is_down(*l))
            .or_else(|| found.voters.iter().copied().find(|v| !net.is_down(*v))))
    }

    /// Makes this node apply the log of `vhost`/`name`, joining its group
    /// as a reader if it holds no replica yet; returns once the replica
    /// here has applied the log up to its joining. Idempotent, and cheap
    /// for a member.
    pub async fn attach_queue(&self, vhost: &str, name: &str) -> Result<(), ClusterError> {
        let me = self.inner.node_id;
        let existing = self.local_queue(vhost, name);
        if let Some(q) = &existing
            && q.has_member(me)
        {
            return Ok(());
        }
        let net = self.net()?.clone();
        let found = self.find_queue(vhost, name).await?.ok_or_else(|| {
            ClusterError::Config(format!(
                "no node answers for queue '{name}' in vhost '{vhost}'"
            ))
        })?;
        self.join_here(&net, (vhost, name), existing, &found, Joining::Reader)
            .await?;
        tracing::info!(group = found.group, queue = %name, %vhost, "reading the queue's log here");
        Ok(())
    }

    /// Joins the group of `vhost`/`name` that `found` names, as `how`
    /// says, with the replica `existing` here (an empty one left by an earlier attempt, or a
    /// reader's) or a new empty one; a replica started here goes again if
    /// the join failed, so that nothing here takes it for the queue.
    pub(super) async fn join_here(
        &self,
        net: &std::sync::Arc<crate::net::Net>,
        (vhost, name): (&str, &str),
        existing: Option<QueueGroup<S>>,
        found: &FoundQueue,
        how: Joining,
    ) -> Result<(), ClusterError> {
        let q = match existing {
            Some(q) if q.group() == found.group => q,
            _ => {
                // Refused unless the metadata here holds the queue.
                self.start_replica(found.group, vhost, name, true).await?;
                self.queue(found.group)
                    .ok_or(ClusterError::NoSuchGroup(found.group))?
            }
        };
        let joined = self.join_group(net, &q, found, how).await;
        if joined.is_err() && !q.has_member(self.inner.node_id) {
            let _ = self.delete_queue(found.group).await;
        }
        joined
    }

    /// Asks the group's leader (found through `found`) to add this node,
    /// whose empty replica `q` runs, as a reader (or as `how` says);
    /// returns once `q` applied the log up to its joining.
    async fn join_group(
        &self,
        net: &std::sync::Arc<crate::net::Net>,
        q: &crate::QueueGroup<S>,
        found: &FoundQueue,
        how: Joining,
    ) -> Result<(), ClusterError> {
        let me = self.inner.node_id;
        let (vhost, name) = q.identity();
        let mut candidates: Vec<u64> = found.leader.into_iter().collect();
        candidates.extend(found.voters.iter().copied());
        candidates.retain(|n| *n != me);
        candidates.dedup();
        if candidates.is_empty() {
            return Err(ClusterError::Config(format!(
                "queue '{name}' in vhost '{vhost}' has no member to ask"
            )));
        }
        let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
        let mut turn = 0;
        let mut target = candidates[0];
        loop {
            let next = match net.add_reader(target, found.group, ASK, how).await {
                Ok(r) => match r.not_leader {
                    None => break,
                    Some(n) => n.leader.filter(|l| *l != me),
                },
                Err(e) => {
                    tracing::debug!(group = found.group, target, error = %e, "add reader");
                    None
                }
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::NotLeader {
                    group: found.group,
                    leader: None,
                });
            }
            target = next.unwrap_or_else(|| {
                turn += 1;
                candidates[turn % candidates.len()]
            });
            tokio::time::sleep(RETRY).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        q.wait_member(left.max(ASK)).await
    }

    /// Stops reading `vhost`/`name` here (its consumers here are gone):
    /// this node, a reader of the queue's group, leaves it (asked of the
    /// leader), then its replica here is deleted. False if this node is
    /// not a reader of the queue (it holds a replica, or nothing).
    pub async fn detach_queue(&self, vhost: &str, name: &str) -> Result<bool, ClusterError> {
        let me = self.inner.node_id;
        let Some(q) = self.local_queue(vhost, name) else {
            return Ok(false);
        };
        if !q.readers().contains(&me) {
            return Ok(false);
        }
        let net = self.net()?.clone();
        let group = q.group();
        let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
        let mut target = q.leader();
        loop {
            if let Some(t) = target.filter(|t| *t != me) {
                match net.add_reader(t, group, ASK, Joining::Leave).await {
                    Ok(r) => match r.not_leader {
                        None => break,
                        Some(n) => target = n.leader,
                    },
                    Err(e) if e.refused() => return Err(ClusterError::Transport(e.to_string())),
                    Err(e) => {
                        tracing::debug!(group, target = t, error = %e, "leave as reader");
                        target = None;
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::NotLeader {
                    group,
                    leader: q.leader(),
                });
            }
            tokio::time::sleep(RETRY).await;
            if target.is_none() {
                target = q.leader();
            }
        }
        // Out of the group: the leader replicates to it no more.
        self.delete_queue(group).await?;
        tracing::info!(group, queue = %name, %vhost, "no longer reading the queue's log here");
        Ok(true)
    }

    /// Makes node `to`, a voter of the queue's group, lead `vhost`/`name`
    /// (openraft's TransferLeader, asked of the leader: this node if it
    /// leads, otherwise the leader is asked once, `forwarded`). Returns the
    /// leader once it is `to`, or the leader seen when giving up.
    pub async fn move_leader(
        &self,
        vhost: &str,
        name: &str,
        to: u64,
        forwarded: bool,
    ) -> Result<u64, ClusterError> {
        let net = self.net()?.clone();
        let me = self.inner.node_id;
        let local = self.local_queue(vhost, name);
        let (group, leader, voters) = match &local {
            Some(q) => (q.group(), q.leader(), q.members()),
            None => {
                let f = self.find_queue(vhost, name).await?.ok_or_else(|| {
                    ClusterError::Config(format!("no queue '{name}' in vhost '{vhost}'"))
                })?;
                (f.group, f.leader, f.voters)
            }
        };
        if !voters.contains(&to) {
            return Err(ClusterError::Config(format!(
                "node {to} holds no replica of queue '{name}' in vhost '{vhost}' \
                 (its replicas: {voters:?})"
            )));
        }
        if leader == Some(to) {
            return Ok(to);
        }
        let leader = leader.ok_or(ClusterError::NotLeader {
            group,
            leader: None,
        })?;
        match local.filter(|q| q.is_leader()) {
            Some(q) => {
                q.transfer_to(to).await;
                let deadline = tokio::time::Instant::now() + MOVE_WAIT;
                while q.leader() != Some(to) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(RETRY).await;
                }
                q.leader().ok_or(ClusterError::NotLeader {
                    group,
                    leader: None,
                })
            }
            None if forwarded || leader == me => Err(ClusterError::NotLeader {
                group,
                leader: Some(leader),
            }),
            None => net
                .move_leader(leader, vhost, name, to, MOVE_WAIT + ASK)
                .await
                .map_err(|e| ClusterError::Transport(e.to_string())),
        }
    }

    pub(super) fn net(&self) -> Result<&std::sync::Arc<crate::net::Net>, ClusterError> {
        self.inner
            .net
            .as_ref()
            .ok_or_else(|| ClusterError::Config("node runs without peers".into()))
    }
}
